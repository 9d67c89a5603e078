//! Commits: how the archive holds every input record exactly once across
//! crashes.
//!
//! A commit makes a set of files durable together with the source positions
//! that produced them. It is written in this order:
//!
//! 1. `_state/pending/<n>.json`: the paths about to be uploaded;
//! 2. the files (Parquet and quarantine), each visible only when whole;
//! 3. `_state/commits/<n>.json`, written create-only: the commit point. It
//!    holds every source's positions and cumulative counts, and the exact
//!    bytes of the integrity-log entries of its files;
//! 4. those log entries;
//! 5. the pending note is deleted.
//!
//! Recovery at start ([`recover`]) takes the newest commit record, writes any
//! of its log entries a crash left unwritten (roll forward; their bytes are in
//! the record), and deletes the files of every pending note newer than it
//! (roll back: they were uploaded but never committed, and their records will
//! be read again). Sources then resume from the committed positions. So a
//! reader of `<stream>/**/*.parquet` sees each input record once, and a crash
//! at any point loses nothing that was committed.

use super::store::{Archive, Conflict, commit_file, commit_single, retrying};
use crate::sources::Positions;
use anyhow::Context;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const COMMITS: &str = "commits";
const PENDING: &str = "pending";

/// Record counts of one source, cumulative over every commit of the archive:
/// `read + expanded + copies = written + quarantined + sum(dropped)` at every commit.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub read: u64,
    /// Extra events from records that held several.
    pub expanded: u64,
    pub written: u64,
    pub quarantined: u64,
    /// Per rule (`stage: reason`, `filter: name`, `sample: name`, `limit: name`).
    pub dropped: BTreeMap<String, u64>,
    /// Extra copies of events that a route sent to several streams.
    #[serde(default)]
    pub copies: u64,
    /// Events a filter would have dropped that the protected set kept, per
    /// `protected rule (over filter)`; they are in `written`.
    #[serde(default)]
    pub protected: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.expanded += other.expanded;
        self.written += other.written;
        self.quarantined += other.quarantined;
        for (rule, n) in &other.dropped {
            *self.dropped.entry(rule.clone()).or_default() += n;
        }
        self.copies += other.copies;
        for (rule, n) in &other.protected {
            *self.protected.entry(rule.clone()).or_default() += n;
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    pub fn balanced(&self) -> bool {
        self.read + self.expanded + self.copies == self.written + self.quarantined + self.dropped_total()
    }
}

/// A source's state at a commit.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceState {
    pub positions: Positions,
    pub counts: Counts,
}

/// One commit, as stored in `_state/commits/<n>.json`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRecord {
    pub commit: u64,
    pub time: String,
    /// Per source name (also sources no longer in the config, so that one
    /// taken out and put back does not read its files again).
    pub sources: BTreeMap<String, SourceState>,
    /// Per stream: `(index, exact bytes)` of the log entries of this commit.
    pub entries: BTreeMap<String, Vec<(u64, String)>>,
    /// Quarantine files of this commit, relative to the archive root.
    pub quarantine: Vec<String>,
    /// The config, plugins and key that wrote this commit (see `self_audit`).
    #[serde(default)]
    pub pipeline: Option<crate::self_audit::PipelineIdentity>,
    /// Whether this is the last commit of a run that stopped cleanly.
    #[serde(default)]
    pub clean_stop: bool,
    /// Quarantine files a replay took out: deleted after this record is
    /// written (and by recovery, if a crash came first).
    #[serde(default)]
    pub retired_quarantine: Vec<String>,
    /// Files retention took out (each has a retired entry in this commit's
    /// log entries): deleted after those entries are written (and by recovery,
    /// if a crash came first).
    #[serde(default)]
    pub expired: Vec<String>,
    /// The alert rules' windows (`alerting.rs`), restored at the next start.
    #[serde(default)]
    pub alert_windows: Vec<((String, String), super::alerting::Window)>,
}

/// What [`recover`] found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The last commit, if any.
    pub record: Option<CommitRecord>,
    /// Files of unfinished commits that were removed.
    pub removed_files: usize,
    /// Log entries of the last commit that had to be written.
    pub restored_entries: usize,
}

fn state_path(archive: &Archive, dir: &str, n: u64) -> ObjectPath {
    let name = format!("{n:020}.json");
    archive.path_of(["_state", dir, name.as_str()])
}

async fn numbered(archive: &Archive, dir: &str) -> anyhow::Result<Vec<(u64, ObjectPath)>> {
    let prefix = archive.path_of(["_state", dir]);
    let listing = archive.store.list_with_delimiter(Some(&prefix)).await?;
    let mut out: Vec<(u64, ObjectPath)> = listing
        .objects
        .into_iter()
        .filter_map(|m| {
            let n = m.location.filename()?.strip_suffix(".json")?.parse().ok()?;
            Some((n, m.location))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Writes the note that lists the files commit `n` is about to upload.
pub async fn write_pending(archive: &Archive, n: u64, paths: &[String]) -> anyhow::Result<()> {
    let bytes = bytes::Bytes::from(serde_json::to_vec(paths).expect("strings serialize"));
    let path = state_path(archive, PENDING, n);
    retrying(archive, "writing the pending note", || async {
        archive.store.put(&path, bytes.clone().into()).await?;
        Ok(())
    })
    .await
}

/// Writes the commit record; fails if commit `n` exists with other content
/// (another writer).
pub async fn write_record(archive: &Archive, record: &CommitRecord) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).expect("records serialize");
    let path = state_path(archive, COMMITS, record.commit);
    commit_single(archive, &path, bytes.into()).await.map_err(|e| match e.downcast_ref::<Conflict>() {
        Some(_) => anyhow::anyhow!(
            "commit {} of {} already exists: is another sluice writing to this archive?",
            record.commit,
            archive.location
        ),
        None => e,
    })
}

/// Deletes commit `n`'s pending note once the commit is complete.
pub async fn clear_pending(archive: &Archive, n: u64) -> anyhow::Result<()> {
    let path = state_path(archive, PENDING, n);
    retrying(archive, "removing the pending note", || delete(archive, &path)).await
}

/// Deletes an object; one that is not there is fine.
async fn delete(archive: &Archive, path: &ObjectPath) -> anyhow::Result<()> {
    match archive.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Brings the archive back to its last commit (see the module docs).
pub async fn recover(archive: &Archive) -> anyhow::Result<Recovered> {
    let commits = numbered(archive, COMMITS).await?;
    let record: Option<CommitRecord> = match commits.last() {
        Some((_, path)) => {
            let bytes = archive.store.get(path).await?.bytes().await?;
            Some(serde_json::from_slice(&bytes).with_context(|| format!("commit record {path}"))?)
        }
        None => None,
    };
    let last = record.as_ref().map_or(0, |r| r.commit);
    let (mut removed_files, mut restored_entries) = (0, 0);
    if let Some(record) = &record {
        for (stream, entries) in &record.entries {
            for (index, text) in entries {
                if roll_forward_entry(archive, stream, *index, text).await? {
                    restored_entries += 1;
                }
            }
        }
        delete_retired(archive, &record.retired_quarantine).await?;
        delete_retired(archive, &record.expired).await?;
    }
    for (n, note) in numbered(archive, PENDING).await? {
        if n > last {
            let bytes = archive.store.get(&note).await?.bytes().await?;
            let paths: Vec<String> = serde_json::from_slice(&bytes).with_context(|| format!("pending note {note}"))?;
            for relative in &paths {
                let path = archive.path_from_relative(relative)?;
                // S3 deletes a missing key without complaint: look first, so
                // that only files that were there are counted
                match archive.store.head(&path).await {
                    Ok(_) => {}
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e).with_context(|| format!("looking for uncommitted {relative}")),
                }
                delete(archive, &path).await.with_context(|| format!("removing uncommitted {relative}"))?;
                tracing::warn!(path = %relative, "Removed a file of an unfinished commit.");
                removed_files += 1;
            }
        }
        delete(archive, &note).await?;
    }
    Ok(Recovered { record, removed_files, restored_entries })
}

/// Deletes files a commit took out of the archive (quarantine a replay
/// took out, files retention expired), if still there.
pub async fn delete_retired(archive: &Archive, paths: &[String]) -> anyhow::Result<()> {
    for relative in paths {
        let path = archive.path_from_relative(relative)?;
        retrying(archive, &format!("removing retired file {relative}"), || delete(archive, &path)).await?;
    }
    Ok(())
}

/// Makes sure a log entry named by the last commit exists with its bytes;
/// returns whether it had to be written.
async fn roll_forward_entry(archive: &Archive, stream: &str, index: u64, text: &str) -> anyhow::Result<bool> {
    let name = crate::integrity::log::entry_name(index);
    let path = archive.path_of(crate::integrity::log::entries_prefix(stream).split('/').chain([name.as_str()]));
    match archive.store.get(&path).await {
        Ok(found) => {
            let bytes = found.bytes().await?;
            anyhow::ensure!(
                bytes.as_ref() == text.as_bytes(),
                "integrity log entry {path} differs from the one its commit recorded; run `sluice verify`"
            );
            Ok(false)
        }
        Err(object_store::Error::NotFound { .. }) => {
            tracing::warn!(%path, "Writing a log entry of the last commit that a crash left unwritten.");
            commit_file(archive, &path, text.as_bytes().to_vec().into()).await?;
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

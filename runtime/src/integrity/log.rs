//! The per-stream integrity log, as the sink writes it:
//!
//! ```text
//! <out>/_integrity/<stream>/entries/<index, 20 digits>.json      one per committed file (Parquet or quarantine)
//! <out>/_integrity/<stream>/checkpoints/<size, 20 digits>-<µs>.note   signed checkpoints
//! ```
//!
//! An entry's exact bytes are a leaf of the stream's RFC 9162 tree; a
//! checkpoint signs the tree's size and root. Entries are written with
//! `PutMode::Create` under their index, so two writers cannot both claim one.

use super::merkle::{self, Hash};
use super::note::{Checkpoint, NoteSigner};
use crate::sinks::{Archive, commit_file};
use anyhow::Context;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

/// A plugin that produced a file's events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub stage: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One committed file, as recorded in the log. Field order is fixed: the
/// serialized bytes are what the tree hashes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub index: u64,
    /// Path of the file relative to the archive root.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub rows: u64,
    /// Hex RFC 9162 root over the files' event hashes, in row order.
    pub events_root: String,
    pub seq_first: i64,
    pub seq_last: i64,
    /// Microseconds since the epoch, UTC.
    pub time_min: i64,
    pub time_max: i64,
    /// SHA-256 of the file's schema description (`schema::schema_hash`).
    pub schema: String,
    pub plugins: Vec<PluginRef>,
    pub committed: String,
}

/// A file taken out of the archive by retention, as recorded in the log: the
/// log keeps proving the stream's completeness (`seq` range, rows) after the
/// file is gone, and `verify` checks the expiry against the period it names.
/// Field order is fixed, as for [`LogEntry`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetiredEntry {
    pub index: u64,
    /// Index of the retired file's entry.
    pub retires: u64,
    pub path: String,
    pub sha256: String,
    pub rows: u64,
    pub seq_first: i64,
    pub seq_last: i64,
    /// The file's newest event (µs), which must be older than `cutoff`.
    pub time_max: i64,
    /// Why: `retention`.
    pub reason: String,
    /// The stream's policy as configured (`pci (13 months)`, `400d`).
    pub policy: String,
    /// Its period (`13 months`, `400d`): `cutoff` is at most this long before `committed`.
    pub period: String,
    /// µs.
    pub cutoff: i64,
    /// When the retirement was decided (the cutoff is `period` before it).
    pub committed: String,
}

/// A committed quarantine file (`_quarantine/<stream>/...ndjson`): the
/// records of the stream that could not be archived, each with its reason.
/// Logged like the stream's Parquet files, so that `verify` finds one that
/// was altered, deleted or slipped in. Field order is fixed, as for [`LogEntry`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuarantineEntry {
    pub index: u64,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// Its lines: one quarantined record each.
    pub records: u64,
    pub committed: String,
}

/// A quarantine file taken out of the archive: replayed (`sluice quarantine
/// replay` sent its records through the chain again, to the archive or back
/// to quarantine, in the same commit) or past its stream's retention.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRetiredEntry {
    pub index: u64,
    /// Index of the retired file's [`QuarantineEntry`].
    pub retires: u64,
    pub path: String,
    pub sha256: String,
    pub records: u64,
    /// `replay` or `retention`.
    pub reason: String,
    /// For `retention`: the policy and period, and the cutoff (µs) that the
    /// file's write time (its name's UUIDv7) is older than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<i64>,
    pub committed: String,
}

/// An entry of the log: a committed file, or the retirement of one; a
/// committed quarantine file, or the retirement of one. (Each kind has its
/// own set of fields, which tells them apart.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Entry {
    File(LogEntry),
    Retired(RetiredEntry),
    Quarantine(QuarantineEntry),
    QuarantineRetired(QuarantineRetiredEntry),
}

impl Entry {
    pub fn index(&self) -> u64 {
        match self {
            Entry::File(e) => e.index,
            Entry::Retired(e) => e.index,
            Entry::Quarantine(e) => e.index,
            Entry::QuarantineRetired(e) => e.index,
        }
    }

    /// The last `seq` of the events the entry covers (quarantine has none).
    pub fn seq_last(&self) -> Option<i64> {
        match self {
            Entry::File(e) => Some(e.seq_last),
            Entry::Retired(e) => Some(e.seq_last),
            Entry::Quarantine(_) | Entry::QuarantineRetired(_) => None,
        }
    }
}

/// Reads a stream's log: every entry, parsed, with its exact bytes, in index
/// order; fails on a hole or an entry that is not valid.
pub async fn read_entries(archive: &Archive, stream: &str) -> anyhow::Result<Vec<(Entry, bytes::Bytes)>> {
    let prefix = archive.path_of(entries_prefix(stream).split('/'));
    let mut names: Vec<(u64, object_store::path::Path)> = Vec::new();
    let listing = archive.store.list_with_delimiter(Some(&prefix)).await?;
    for meta in listing.objects {
        let name = meta.location.filename().unwrap_or_default().to_string();
        let index =
            entry_index(&name).with_context(|| format!("unexpected object {} in the integrity log", meta.location))?;
        names.push((index, meta.location));
    }
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    for (expected, (index, location)) in names.iter().enumerate() {
        anyhow::ensure!(
            *index == expected as u64,
            "the integrity log of stream `{stream}` has no entry {expected}; run `sluice verify` on the archive"
        );
        let bytes = archive.store.get(location).await?.bytes().await?;
        let entry: Entry = serde_json::from_slice(&bytes).with_context(|| format!("entry {location}"))?;
        entries.push((entry, bytes));
    }
    Ok(entries)
}

/// A stream's quarantine files that are in the archive now, by path: logged,
/// and not retired since.
pub fn live_quarantine(entries: &[(Entry, bytes::Bytes)]) -> std::collections::BTreeMap<String, QuarantineEntry> {
    let mut live = std::collections::BTreeMap::new();
    for (entry, _) in entries {
        match entry {
            Entry::Quarantine(q) => {
                live.insert(q.path.clone(), q.clone());
            }
            Entry::QuarantineRetired(r) => {
                live.remove(&r.path);
            }
            _ => {}
        }
    }
    live
}

/// A stream's quarantine files as logged (by path) for [`read_quarantine`].
pub async fn logged_quarantine(
    archive: &Archive,
    stream: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, QuarantineEntry>> {
    let entries = read_entries(archive, stream)
        .await
        .with_context(|| format!("the integrity log of stream `{stream}` in {}", archive.location))?;
    Ok(live_quarantine(&entries))
}

/// Reads a quarantine file to use its records (a replay, an archive source),
/// refusing one that its stream's log does not name, or names with other bytes.
pub async fn read_quarantine(
    archive: &Archive,
    logged: &std::collections::BTreeMap<String, QuarantineEntry>,
    location: &object_store::path::Path,
) -> anyhow::Result<bytes::Bytes> {
    use sha2::Digest;
    let path = archive.relative(location);
    let Some(entry) = logged.get(&path) else {
        anyhow::bail!(
            "quarantine file {path} is not in its stream's integrity log (slipped in, or written before sluice \
             logged quarantine files): move it out of the archive to go on, and run `sluice verify`"
        );
    };
    let bytes = archive.store.get(location).await?.bytes().await.with_context(|| format!("cannot read {path}"))?;
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    anyhow::ensure!(
        digest == entry.sha256 && bytes.len() as u64 == entry.size,
        "quarantine file {path} does not match its integrity log entry {} (sha256 {digest}, {} bytes): \
         run `sluice verify` on the archive",
        entry.index,
        bytes.len()
    );
    Ok(bytes)
}

/// A stream's files that are in the archive now: logged, and not retired since.
pub fn live_files(entries: Vec<(Entry, bytes::Bytes)>) -> Vec<LogEntry> {
    let retired: std::collections::BTreeSet<u64> = entries
        .iter()
        .filter_map(|(e, _)| match e {
            Entry::Retired(r) => Some(r.retires),
            _ => None,
        })
        .collect();
    entries
        .into_iter()
        .filter_map(|(e, _)| match e {
            Entry::File(f) if !retired.contains(&f.index) => Some(f),
            _ => None,
        })
        .collect()
}

pub fn entries_prefix(stream: &str) -> String {
    format!("_integrity/{stream}/entries")
}

pub fn checkpoints_prefix(stream: &str) -> String {
    format!("_integrity/{stream}/checkpoints")
}

pub fn entry_name(index: u64) -> String {
    format!("{index:020}.json")
}

/// Parses `<20 digits>.json`.
pub fn entry_index(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The origin line of a stream's checkpoints: binds the archive location and
/// the stream into what is signed.
pub fn default_origin(location: &str, stream: &str) -> String {
    format!("sluice:{}/{stream}", location.trim_end_matches('/'))
}

/// What the sink keeps of one stream's log while it runs.
pub struct StreamLog {
    pub stream: String,
    origin: String,
    leaves: Vec<Hash>,
    /// The next event's `seq`.
    pub next_seq: i64,
    /// The stream's quarantine files in the archive, by path, as logged.
    pub quarantine: std::collections::BTreeMap<String, QuarantineEntry>,
    checkpointed: u64,
    last_checkpoint: Option<std::time::Instant>,
}

impl StreamLog {
    /// Reads what the archive already holds for `stream`, so that indices and
    /// `seq` go on where they stopped.
    pub async fn load(archive: &Archive, stream: &str, origin: String) -> anyhow::Result<StreamLog> {
        let mut leaves = Vec::new();
        let mut next_seq = 0;
        let entries = read_entries(archive, stream).await?;
        for (entry, bytes) in &entries {
            if let Some(last) = entry.seq_last() {
                next_seq = next_seq.max(last + 1);
            }
            leaves.push(merkle::leaf_hash(bytes));
        }
        let checkpointed = leaves.len() as u64;
        Ok(StreamLog {
            stream: stream.to_string(),
            origin,
            leaves,
            next_seq,
            quarantine: live_quarantine(&entries),
            checkpointed,
            last_checkpoint: None,
        })
    }

    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Writes the next entry, given as its exact bytes (which a commit record
    /// also holds); `index` must be the log's size.
    pub async fn append_exact(&mut self, archive: &Archive, index: u64, bytes: Vec<u8>) -> anyhow::Result<()> {
        anyhow::ensure!(index == self.size(), "log entry {index} of `{}` is out of order", self.stream);
        let name = entry_name(index);
        let path = archive.path_of(entries_prefix(&self.stream).split('/').chain([name.as_str()]));
        let leaf = merkle::leaf_hash(&bytes);
        commit_file(archive, &path, bytes.into()).await.with_context(|| format!("integrity log entry {path}"))?;
        self.leaves.push(leaf);
        Ok(())
    }

    /// Signs and writes a checkpoint if entries were added and `interval` has
    /// passed, or if `heartbeat` has passed whatever was added, or if `force`.
    pub async fn checkpoint_if_due(
        &mut self,
        archives: &[&Archive],
        signer: &NoteSigner,
        interval: std::time::Duration,
        heartbeat: std::time::Duration,
        force: bool,
    ) -> anyhow::Result<bool> {
        let since = self.last_checkpoint.map(|t| t.elapsed());
        let grown = self.size() > self.checkpointed;
        let due = force && (grown || since.is_none())
            || grown && since.is_none_or(|s| s >= interval)
            || since.is_none_or(|s| s >= heartbeat);
        if !due {
            return Ok(false);
        }
        let now = chrono::Utc::now();
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: self.size(),
            root: merkle::root(&self.leaves),
            extensions: vec![format!("time {}", now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))],
        };
        let note = signer.sign(&checkpoint.body());
        let name = format!("{:020}-{}.note", checkpoint.size, now.timestamp_micros());
        for archive in archives {
            let path = archive.path_of(checkpoints_prefix(&self.stream).split('/').chain([name.as_str()]));
            commit_file(archive, &path, note.clone().into_bytes().into())
                .await
                .with_context(|| format!("checkpoint {path}"))?;
        }
        self.checkpointed = self.size();
        self.last_checkpoint = Some(std::time::Instant::now());
        Ok(true)
    }
}

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
//!
//! `<out>/_integrity/<stream>/state.json` ([`LogState`]) is what the sink
//! needs of the log to go on with it, as of some entry: a start reads it and
//! the entries after it, not the whole log. It proves nothing; `verify`
//! never reads it.

use super::merkle::{self, Hash};
use super::note::{Checkpoint, NoteSigner, NoteVerifier};
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
    read_entries_from(archive, stream, 0).await
}

/// [`read_entries`] from entry `from` on (listed after entry `from - 1`: an
/// object store lists only those).
pub async fn read_entries_from(
    archive: &Archive,
    stream: &str,
    from: u64,
) -> anyhow::Result<Vec<(Entry, bytes::Bytes)>> {
    use futures::TryStreamExt;
    let prefix = archive.path_of(entries_prefix(stream).split('/'));
    let mut names: Vec<(u64, object_store::path::Path)> = Vec::new();
    let listing: Vec<object_store::ObjectMeta> = match from {
        0 => archive.store.list(Some(&prefix)).try_collect().await?,
        _ => {
            let after = archive.path_of(entries_prefix(stream).split('/').chain([entry_name(from - 1).as_str()]));
            archive.store.list_with_offset(Some(&prefix), &after).try_collect().await?
        }
    };
    for meta in listing {
        let name = meta.location.filename().unwrap_or_default().to_string();
        let index =
            entry_index(&name).with_context(|| format!("unexpected object {} in the integrity log", meta.location))?;
        names.push((index, meta.location));
    }
    // a store that takes the offset as inclusive, or ignores it
    names.retain(|(index, _)| *index >= from);
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    for ((index, location), expected) in names.iter().zip(from..) {
        anyhow::ensure!(
            *index == expected,
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
    let retired: std::collections::BTreeSet<u64> = entries
        .iter()
        .filter_map(|(e, _)| match e {
            Entry::QuarantineRetired(r) => Some(r.retires),
            _ => None,
        })
        .collect();
    entries
        .iter()
        .filter_map(|(e, _)| match e {
            Entry::Quarantine(q) if !retired.contains(&q.index) => Some((q.path.clone(), q.clone())),
            _ => None,
        })
        .collect()
}

/// A stream's quarantine files to use their records (a replay, an archive
/// source): those its log names and has not retired, by path. Files in its
/// `_quarantine/<stream>/` folder that the log does not name (slipped in,
/// left by an unfinished commit, or written before sluice logged quarantine
/// files) are not used: each is named in a warning.
pub async fn logged_quarantine(archive: &Archive, stream: &str) -> anyhow::Result<Vec<QuarantineEntry>> {
    use futures::TryStreamExt;
    let entries = read_entries(archive, stream)
        .await
        .with_context(|| format!("the integrity log of stream `{stream}` in {}", archive.location))?;
    let live = live_quarantine(&entries);
    let prefix = archive.path_of(["_quarantine", stream]);
    let present: Vec<object_store::ObjectMeta> = archive.store.list(Some(&prefix)).try_collect().await?;
    for meta in present {
        let path = archive.relative(&meta.location);
        if !live.contains_key(&path) {
            tracing::warn!(%path, "Quarantine file not in its stream's integrity log: not used (run `sluice verify`).");
        }
    }
    Ok(live.into_values().collect())
}

/// Reads a logged quarantine file, refusing one that is gone or whose bytes
/// are not those its entry names.
pub async fn read_quarantine(archive: &Archive, entry: &QuarantineEntry) -> anyhow::Result<bytes::Bytes> {
    use sha2::Digest;
    let path = &entry.path;
    let location = archive.path_from_relative(path)?;
    let bytes = match archive.store.get(&location).await {
        Ok(r) => r.bytes().await.with_context(|| format!("cannot read {path}"))?,
        Err(object_store::Error::NotFound { .. }) => {
            anyhow::bail!("quarantine file {path} (integrity log entry {}) is gone: run `sluice verify`", entry.index)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
    };
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

/// What the sink keeps of a stream's log, as of entry `size - 1`, written
/// after each commit that adds entries. A start that finds it reads only the
/// entries after it, so it does not take longer as the archive grows (one
/// read per committed file, which on an object store is minutes per 100k
/// files). It is only used when it fits the log (see `StreamLog::resume`);
/// otherwise the start reads the whole log. A forged state that passes those
/// checks would make the sink sign roots that `verify` finds inconsistent
/// with the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogState {
    pub size: u64,
    /// Hex leaf hash of entry `size - 1`.
    pub last_leaf: String,
    /// The tree's perfect subtrees, largest first: (leaves, hex root).
    pub frontier: Vec<(u64, String)>,
    pub next_seq: i64,
}

pub fn state_path(stream: &str) -> String {
    format!("_integrity/{stream}/state.json")
}

/// The text of a checkpoint of `size` entries of `stream`, if there is one
/// (the first listed: names are `<size>-<µs>.note`, listed from that size on).
async fn checkpoint_of_size(archive: &Archive, stream: &str, size: u64) -> anyhow::Result<Option<String>> {
    use futures::TryStreamExt;
    let prefix = archive.path_of(checkpoints_prefix(stream).split('/'));
    let name = format!("{size:020}-");
    let after = archive.path_of(checkpoints_prefix(stream).split('/').chain([format!("{:020}", size).as_str()]));
    let mut listing = archive.store.list_with_offset(Some(&prefix), &after);
    while let Some(meta) = listing.try_next().await? {
        if meta.location.filename().is_some_and(|f| f.starts_with(&name)) {
            let bytes = archive.store.get(&meta.location).await?.bytes().await?;
            return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    Ok(None)
}

/// What the sink keeps of one stream's log while it runs.
pub struct StreamLog {
    pub stream: String,
    origin: String,
    tree: merkle::RootBuilder,
    /// The leaf hash of the newest entry.
    last_leaf: Option<Hash>,
    /// The next event's `seq`.
    pub next_seq: i64,
    checkpointed: u64,
    last_checkpoint: Option<std::time::Instant>,
}

impl StreamLog {
    /// Reads what the archive already holds for `stream`, so that indices and
    /// `seq` go on where they stopped: its state and the entries after it, or
    /// the whole log when there is no state that fits it. `verifier`: the
    /// key the sink signs checkpoints with (a state must agree with the
    /// checkpoint of its size, if there is one).
    pub async fn load(
        archive: &Archive,
        stream: &str,
        origin: String,
        verifier: Option<&NoteVerifier>,
    ) -> anyhow::Result<StreamLog> {
        let mut log = StreamLog {
            stream: stream.to_string(),
            origin,
            tree: merkle::RootBuilder::default(),
            last_leaf: None,
            next_seq: 0,
            checkpointed: 0,
            last_checkpoint: None,
        };
        if let Err(e) = log.resume(archive, verifier).await {
            tracing::warn!(stream, error = %format!("{e:#}"), "The integrity log's state does not fit the log; reading the whole log.");
        }
        let from = log.size();
        let entries = read_entries_from(archive, stream, from).await?;
        let read = entries.len();
        for (entry, bytes) in &entries {
            if let Some(last) = entry.seq_last() {
                log.next_seq = log.next_seq.max(last + 1);
            }
            log.push_leaf(bytes);
        }
        log.checkpointed = log.size();
        tracing::info!(stream, entries = log.size(), from_state = from, read, "Integrity log loaded.");
        Ok(log)
    }

    /// Takes the stream's state if there is one and it fits the log (else
    /// changes nothing): the entry it ends at is there with the bytes it
    /// names, that entry is the last leaf of its tree (when the tree's size
    /// is odd) and under its next `seq`, and a signed checkpoint of its size
    /// (a stop writes one) has its tree's root.
    async fn resume(&mut self, archive: &Archive, verifier: Option<&NoteVerifier>) -> anyhow::Result<()> {
        let path = archive.path_of(state_path(&self.stream).split('/'));
        let bytes = match archive.store.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let state: LogState = serde_json::from_slice(&bytes).context("not a log state")?;
        let hash = |hex: &str| -> anyhow::Result<Hash> {
            hex::decode(hex)?.try_into().map_err(|_| anyhow::anyhow!("a hash of other than 32 bytes"))
        };
        let frontier = state.frontier.iter().map(|(n, h)| Ok((*n, hash(h)?))).collect::<anyhow::Result<_>>()?;
        let tree = merkle::RootBuilder::from_frontier(state.size, frontier)
            .context("its frontier is not a tree of its size")?;
        anyhow::ensure!(state.size > 0, "it covers no entry");
        let last =
            archive.path_of(entries_prefix(&self.stream).split('/').chain([entry_name(state.size - 1).as_str()]));
        let entry = archive.store.get(&last).await.with_context(|| format!("its last entry {last}"))?.bytes().await?;
        let leaf = merkle::leaf_hash(&entry);
        anyhow::ensure!(leaf == hash(&state.last_leaf)?, "its last entry {last} has other bytes");
        if state.size % 2 == 1 {
            anyhow::ensure!(tree.frontier().last() == Some(&(1, leaf)), "its tree does not end in its last entry");
        }
        let parsed: Entry = serde_json::from_slice(&entry).with_context(|| format!("entry {last}"))?;
        anyhow::ensure!(
            parsed.seq_last().is_none_or(|s| s < state.next_seq),
            "its next seq {} is not past its last entry's",
            state.next_seq
        );
        if let Some(verifier) = verifier
            && let Some(text) = checkpoint_of_size(archive, &self.stream, state.size).await?
            && let Ok((checkpoint, _)) = Checkpoint::open(&text, std::slice::from_ref(verifier))
        {
            anyhow::ensure!(
                checkpoint.root == tree.root(),
                "its tree's root is not that of the checkpoint of its size"
            );
        }
        self.tree = tree;
        self.last_leaf = Some(leaf);
        self.next_seq = state.next_seq;
        Ok(())
    }

    /// Adds the next entry's exact bytes to the tree.
    fn push_leaf(&mut self, bytes: &[u8]) {
        let leaf = merkle::leaf_hash(bytes);
        self.tree.push(leaf);
        self.last_leaf = Some(leaf);
    }

    /// Writes the state (after a commit added entries). A failure is only
    /// logged: the next start then reads more of the log.
    pub async fn save_state(&self, archive: &Archive) {
        let Some(last_leaf) = self.last_leaf else { return };
        let state = LogState {
            size: self.size(),
            last_leaf: hex::encode(last_leaf),
            frontier: self.tree.frontier().iter().map(|(n, h)| (*n, hex::encode(h))).collect(),
            next_seq: self.next_seq,
        };
        let path = archive.path_of(state_path(&self.stream).split('/'));
        let bytes = serde_json::to_vec(&state).expect("a state serializes");
        if let Err(e) = archive.store.put(&path, bytes.into()).await {
            tracing::warn!(stream = %self.stream, error = %e, "Cannot write the integrity log's state; the next start reads more of the log.");
        }
    }

    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// Writes the next entry, given as its exact bytes (which a commit record
    /// also holds); `index` must be the log's size. (`next_seq` is the
    /// sink's to keep: it numbered the entry's events.)
    pub async fn append_exact(&mut self, archive: &Archive, index: u64, bytes: Vec<u8>) -> anyhow::Result<()> {
        anyhow::ensure!(index == self.size(), "log entry {index} of `{}` is out of order", self.stream);
        let name = entry_name(index);
        let path = archive.path_of(entries_prefix(&self.stream).split('/').chain([name.as_str()]));
        let bytes = bytes::Bytes::from(bytes);
        commit_file(archive, &path, bytes.clone()).await.with_context(|| format!("integrity log entry {path}"))?;
        self.push_leaf(&bytes);
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
            root: self.tree.root(),
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

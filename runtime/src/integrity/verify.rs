//! `sluice verify`: re-derives an archive's integrity from its bytes and names
//! every problem: which stream, which file or entry or checkpoint, which check.

use super::canonical::{EVENT_HASH, event_hashes};
use super::log::{LogEntry, checkpoints_prefix, entries_prefix, entry_index};
use super::merkle::{self, Hash};
use super::note::{Checkpoint, NoteVerifier};
use crate::sinks::Archive;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub stream: String,
    /// The file, entry or checkpoint concerned.
    pub subject: String,
    /// Which check failed.
    pub check: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: [{}] {}", self.stream, self.subject, self.check, self.detail)
    }
}

/// What to verify against.
pub struct Options {
    pub keys: Vec<NoteVerifier>,
    /// Checkpoints trusted from elsewhere (an earlier verification, a copy).
    pub trusted: Vec<String>,
    /// Longest allowed time between consecutive checkpoints of a stream.
    pub max_gap: Option<std::time::Duration>,
}

/// What was checked, for the report.
#[derive(Debug, Default)]
pub struct Report {
    pub counts: Counts,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub streams: u64,
    pub entries: u64,
    pub files: u64,
    pub events: u64,
    pub checkpoints: u64,
}

struct Ctx<'a> {
    stream: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Ctx<'_> {
    fn problem(&mut self, subject: impl Into<String>, check: &'static str, detail: impl Into<String>) {
        self.problems.push(Problem {
            stream: self.stream.to_string(),
            subject: subject.into(),
            check,
            detail: detail.into(),
        });
    }
}

pub async fn verify(archive: &Archive, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut streams: BTreeSet<String> = BTreeSet::new();
    for dir in list_dirs(archive, &archive.prefix).await? {
        if !dir.starts_with('_') {
            streams.insert(dir);
        }
    }
    for dir in list_dirs(archive, &archive.path_of(["_integrity"])).await? {
        streams.insert(dir);
    }
    let mut trusted: Vec<(Checkpoint, String)> = Vec::new();
    for text in &options.trusted {
        match Checkpoint::open(text, &options.keys) {
            Ok(c) => trusted.push(c),
            Err(e) => report.problems.push(Problem {
                stream: "-".into(),
                subject: "trusted checkpoint".into(),
                check: "signature",
                detail: e.to_string(),
            }),
        }
    }
    for stream in &streams {
        report.counts.streams += 1;
        let mut ctx = Ctx { stream, problems: &mut report.problems };
        verify_stream(archive, options, &trusted, &mut ctx, &mut report.counts).await?;
    }
    for (c, _) in &trusted {
        if !streams.iter().any(|s| c.origin.ends_with(&format!("/{s}"))) {
            report.problems.push(Problem {
                stream: "-".into(),
                subject: format!("trusted checkpoint {}", c.origin),
                check: "truncation",
                detail: "its stream is not in the archive at all".into(),
            });
        }
    }
    Ok(report)
}

async fn list_dirs(archive: &Archive, prefix: &ObjectPath) -> anyhow::Result<Vec<String>> {
    let listing = archive.store.list_with_delimiter(Some(prefix)).await?;
    Ok(listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
}

async fn list_all(archive: &Archive, prefix: &ObjectPath) -> anyhow::Result<Vec<ObjectPath>> {
    use futures::TryStreamExt;
    let mut out: Vec<ObjectPath> = archive.store.list(Some(prefix)).map_ok(|m| m.location).try_collect().await?;
    out.sort();
    Ok(out)
}

async fn verify_stream(
    archive: &Archive,
    options: &Options,
    trusted: &[(Checkpoint, String)],
    ctx: &mut Ctx<'_>,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let stream = ctx.stream.to_string();
    // 1. the log: entries 0..n, contiguous, each naming its own index
    let mut entries: Vec<(LogEntry, Hash)> = Vec::new();
    let mut by_index: BTreeMap<u64, ObjectPath> = BTreeMap::new();
    for path in list_all(archive, &archive.path_of(entries_prefix(&stream).split('/'))).await? {
        let name = path.filename().unwrap_or_default().to_string();
        match entry_index(&name) {
            Some(i) => {
                by_index.insert(i, path);
            }
            None => ctx.problem(path.to_string(), "log", "unexpected object in the integrity log"),
        }
    }
    for (expected, (index, path)) in by_index.iter().enumerate() {
        if *index != expected as u64 {
            ctx.problem(
                format!("entry {expected}"),
                "log",
                format!("missing (next present entry is {index}): the log has a hole"),
            );
            break;
        }
        let bytes = archive.store.get(path).await?.bytes().await?;
        match serde_json::from_slice::<LogEntry>(&bytes) {
            Ok(entry) if entry.index == *index => entries.push((entry, merkle::leaf_hash(&bytes))),
            Ok(entry) => {
                ctx.problem(
                    format!("entry {index}"),
                    "log",
                    format!("records index {} (moved or reordered)", entry.index),
                );
                entries.push((entry, merkle::leaf_hash(&bytes)));
            }
            Err(e) => {
                ctx.problem(format!("entry {index}"), "log", format!("not a valid entry: {e}"));
                break;
            }
        }
    }
    counts.entries += entries.len() as u64;
    let leaves: Vec<Hash> = entries.iter().map(|(_, h)| *h).collect();
    let n = leaves.len() as u64;

    // 2. checkpoints: signed by a trusted key, consistent with the log and each other
    let mut checkpoints: Vec<(Checkpoint, String)> = Vec::new();
    for path in list_all(archive, &archive.path_of(checkpoints_prefix(&stream).split('/'))).await? {
        let subject = format!("checkpoint {}", path.filename().unwrap_or_default());
        let bytes = archive.store.get(&path).await?.bytes().await?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            ctx.problem(subject, "checkpoint", "not UTF-8 text");
            continue;
        };
        match Checkpoint::open(text, &options.keys) {
            Ok(c) => checkpoints.push((c.0, subject)),
            Err(e) => ctx.problem(subject, "signature", e.to_string()),
        }
    }
    counts.checkpoints += checkpoints.len() as u64;
    let suffix = format!("/{stream}");
    for (c, subject) in &checkpoints {
        if !c.origin.ends_with(&suffix) {
            ctx.problem(subject.clone(), "origin", format!("origin `{}` is not this stream's", c.origin));
        }
        if c.size > n {
            ctx.problem(
                subject.clone(),
                "truncation",
                format!("signed a log of {} entries; the log has {n}: entries were deleted", c.size),
            );
        } else if c.root != merkle::root(&leaves[..c.size as usize]) {
            ctx.problem(
                subject.clone(),
                "consistency",
                format!("root for size {} does not match the log: entries altered, reordered or forked", c.size),
            );
        }
    }
    let mut by_size: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for (c, subject) in &checkpoints {
        if let Some(other) = by_size.insert(c.size, c.root)
            && other != c.root
        {
            ctx.problem(subject.clone(), "fork", format!("two checkpoints of size {} with different roots", c.size));
        }
    }
    if let Some(origin) = checkpoints.first().map(|(c, _)| c.origin.clone())
        && checkpoints.iter().any(|(c, _)| c.origin != origin)
    {
        ctx.problem("checkpoints", "origin", "checkpoints of one stream carry different origins");
    }
    // ordered by time, sizes never shrink (a rollback would)
    let mut timed: Vec<(chrono::DateTime<chrono::Utc>, u64, &str)> =
        checkpoints.iter().filter_map(|(c, s)| c.time().map(|t| (t, c.size, s.as_str()))).collect();
    timed.sort();
    for pair in timed.windows(2) {
        if pair[1].1 < pair[0].1 {
            ctx.problem(
                pair[1].2,
                "rollback",
                format!("size {} after size {} at an earlier time", pair[1].1, pair[0].1),
            );
        }
        if let Some(max) = options.max_gap {
            let gap = (pair[1].0 - pair[0].0).to_std().unwrap_or_default();
            if gap > max {
                ctx.problem(
                    pair[1].2,
                    "heartbeat",
                    format!(
                        "no checkpoint between {} and {} ({}s > {}s)",
                        pair[0].0,
                        pair[1].0,
                        gap.as_secs(),
                        max.as_secs()
                    ),
                );
            }
        }
    }
    match checkpoints.iter().map(|(c, _)| c.size).max() {
        None => ctx.problem("checkpoints", "signature", "no checkpoint signed by a trusted key"),
        Some(latest) if latest < n => ctx.problem(
            format!("entries {latest}..{n}"),
            "coverage",
            "not covered by any signed checkpoint (injected?)",
        ),
        _ => {}
    }
    for (c, _) in trusted.iter().filter(|(c, _)| c.origin.ends_with(&suffix)) {
        if c.size > n {
            ctx.problem(
                "trusted checkpoint",
                "truncation",
                format!("trusted size {} but the log has {n} entries: the tail was deleted", c.size),
            );
        } else if c.root != merkle::root(&leaves[..c.size as usize]) {
            ctx.problem(
                "trusted checkpoint",
                "consistency",
                format!("the log's root at size {} differs from the trusted one (fork or rewrite)", c.size),
            );
        }
    }

    // 3. every file the log names: bytes, rows, event hashes, seq and time ranges
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut all_seqs: Vec<i64> = Vec::new();
    for (entry, _) in &entries {
        named.insert(entry.path.clone());
        let subject = format!("{} (entry {})", entry.path, entry.index);
        let Ok(path) = archive.path_from_relative(&entry.path) else {
            ctx.problem(subject, "log", "entry names an invalid path");
            continue;
        };
        let bytes = match archive.store.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                ctx.problem(subject, "file", "deleted");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        counts.files += 1;
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != entry.sha256 || bytes.len() as u64 != entry.size {
            ctx.problem(
                subject.clone(),
                "sha256",
                format!("file bytes changed (sha256 {digest}, {} bytes)", bytes.len()),
            );
        }
        check_rows(bytes, entry, &subject, ctx, counts, &mut all_seqs);
    }
    check_sequence(all_seqs, ctx);

    // 4. files in the stream that the log does not name
    for path in list_all(archive, &archive.path_of([stream.as_str()])).await? {
        let rel = archive.relative(&path);
        if !named.contains(&rel) {
            ctx.problem(rel, "injected", "file is not in the integrity log");
        }
    }
    Ok(())
}

/// The stream's `seq` values over all its files must be exactly 0..N: a gap is
/// a lost or deleted event, a repeat a duplicated one.
fn check_sequence(mut seqs: Vec<i64>, ctx: &mut Ctx<'_>) {
    seqs.sort_unstable();
    let mut expected = 0i64;
    let mut reported = 0;
    for s in seqs {
        if s < expected {
            if reported < 10 {
                ctx.problem(format!("seq {s}"), "sequence", "appears more than once (duplicated event)");
            }
            reported += 1;
        } else if s > expected {
            if reported < 10 {
                ctx.problem(format!("seq {expected}..{}", s - 1), "sequence", "missing: events were lost or deleted");
            }
            reported += 1;
        }
        expected = expected.max(s + 1);
    }
}

fn check_rows(
    bytes: bytes::Bytes,
    entry: &LogEntry,
    subject: &str,
    ctx: &mut Ctx<'_>,
    counts: &mut Counts,
    all_seqs: &mut Vec<i64>,
) {
    let builder = match ParquetRecordBatchReaderBuilder::try_new(bytes) {
        Ok(b) => b,
        Err(e) => return ctx.problem(subject, "parquet", format!("unreadable: {e}")),
    };
    if crate::schema::schema_hash(builder.schema()) != entry.schema {
        ctx.problem(subject, "schema", "the file's schema is not the one the log recorded");
    }
    let reader = match builder.build() {
        Ok(r) => r,
        Err(e) => return ctx.problem(subject, "parquet", format!("unreadable: {e}")),
    };
    let mut hashes: Vec<Hash> = Vec::new();
    let mut seqs: Vec<i64> = Vec::new();
    let (mut tmin, mut tmax) = (i64::MAX, i64::MIN);
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return ctx.problem(subject, "parquet", format!("unreadable: {e}")),
        };
        let computed = event_hashes(&batch);
        if let Some(col) = batch.column_by_name(EVENT_HASH) {
            let stored = col.as_string::<i32>();
            for (i, h) in computed.iter().enumerate() {
                if stored.value(i) != hex::encode(h) {
                    ctx.problem(
                        subject,
                        "event_hash",
                        format!("row {} does not match its event_hash (edited)", hashes.len() + i),
                    );
                }
            }
        }
        hashes.extend(computed);
        if let Some(col) = batch.column_by_name("seq") {
            seqs.extend(col.as_primitive::<Int64Type>().values().iter());
        }
        if let Some(col) = batch.column_by_name("time") {
            for t in col.as_primitive::<TimestampMicrosecondType>().values().iter() {
                tmin = tmin.min(*t);
                tmax = tmax.max(*t);
            }
        }
    }
    counts.events += hashes.len() as u64;
    if hashes.len() as u64 != entry.rows {
        ctx.problem(subject, "rows", format!("{} rows, the log says {}", hashes.len(), entry.rows));
    }
    if hex::encode(merkle::root(&hashes)) != entry.events_root {
        ctx.problem(subject, "events_root", "the Merkle root of the file's events differs from the log");
    }
    let (first, last) = (seqs.iter().min().copied(), seqs.iter().max().copied());
    if !seqs.is_empty() && (first, last) != (Some(entry.seq_first), Some(entry.seq_last)) {
        ctx.problem(
            subject,
            "sequence",
            format!("seq range is not {}..={} as the log says", entry.seq_first, entry.seq_last),
        );
    }
    all_seqs.extend(seqs);
    if !hashes.is_empty() && (tmin, tmax) != (entry.time_min, entry.time_max) {
        ctx.problem(subject, "time", "time range differs from the log");
    }
}

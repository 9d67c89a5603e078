//! `sluice verify`: re-derives an archive's integrity from its bytes and names
//! every problem: which stream, which file or entry or checkpoint, which check.

use super::canonical::{EVENT_HASH, event_hashes};
use super::log::{
    Entry, LogEntry, QuarantineEntry, QuarantineRetiredEntry, RetiredEntry, checkpoints_prefix, entries_prefix,
    entry_index,
};
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
    /// Files retention took out (each a retired entry in its log).
    pub retired: u64,
    /// Quarantine files checked against their entries.
    pub quarantine: u64,
    /// Quarantine files retired (by a replay, or by retention), each checked
    /// to be gone and its retirement to be sound.
    pub quarantine_retired: u64,
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
    for dir in list_dirs(archive, &archive.path_of(["_quarantine"])).await? {
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
    let mut entries: Vec<(Entry, Hash)> = Vec::new();
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
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if entry.index() == *index => entries.push((entry, merkle::leaf_hash(&bytes))),
            Ok(entry) => {
                ctx.problem(
                    format!("entry {index}"),
                    "log",
                    format!("records index {} (moved or reordered)", entry.index()),
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

    // 3. retirements: each names an earlier file entry exactly, once, and
    // respects the period it names
    let mut retired: BTreeMap<u64, &RetiredEntry> = BTreeMap::new();
    for (entry, _) in &entries {
        let Entry::Retired(r) = entry else { continue };
        let subject = format!("{} (entry {})", r.path, r.index);
        let file = match entries.get(r.retires as usize) {
            Some((Entry::File(f), _)) if r.retires < r.index => f,
            _ => {
                ctx.problem(subject, "retention", format!("retires entry {}, which is not an earlier file", r.retires));
                continue;
            }
        };
        let same = (&file.path, &file.sha256, file.rows, file.seq_first, file.seq_last, file.time_max)
            == (&r.path, &r.sha256, r.rows, r.seq_first, r.seq_last, r.time_max);
        if !same {
            ctx.problem(subject.clone(), "retention", format!("does not describe the file of entry {}", r.retires));
        }
        if let Some(period) = expiry_problem(r) {
            ctx.problem(subject.clone(), "retention", period);
        }
        if let Some(late) = dated_after_its_checkpoint(&timed, r.index, &r.committed) {
            ctx.problem(subject.clone(), "retention", late);
        }
        if retired.insert(r.retires, r).is_some() {
            ctx.problem(subject, "retention", format!("entry {} is retired twice", r.retires));
        }
    }

    // 4. every file the log names (and has not retired): bytes, rows, event
    // hashes, seq and time ranges
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut all_seqs: Vec<i64> = Vec::new();
    let mut retired_ranges: Vec<(i64, i64)> = Vec::new();
    for (entry, _) in &entries {
        let Entry::File(entry) = entry else { continue };
        named.insert(entry.path.clone());
        let subject = format!("{} (entry {})", entry.path, entry.index);
        let Ok(path) = archive.path_from_relative(&entry.path) else {
            ctx.problem(subject, "log", "entry names an invalid path");
            continue;
        };
        let bytes = match archive.store.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) if retired.contains_key(&entry.index) => {
                counts.retired += 1;
                if entry.rows > 0 {
                    retired_ranges.push((entry.seq_first, entry.seq_last));
                }
                continue;
            }
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
        // the Parquet reader can panic on corrupt bytes (a flipped bit in the
        // footer: "column start and length should not be negative") instead
        // of failing: a tampered file is reported, it never ends the check
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_rows(bytes, entry, &subject, ctx, counts, &mut all_seqs)
        }));
        if let Err(panic) = checked {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ctx.problem(subject, "parquet", format!("unreadable: the Parquet reader failed: {why}"));
        }
    }
    check_sequence(all_seqs, retired_ranges, ctx);

    // 5. quarantine files: each logged one present with its bytes and count
    // of records, unless retired (by a replay, or by retention in time)
    let retired_quarantine = check_quarantine_retirements(&entries, &timed, ctx);
    for (entry, _) in &entries {
        let Entry::Quarantine(q) = entry else { continue };
        let retired = retired_quarantine.get(&q.index).copied();
        if check_quarantine_file(archive, &stream, q, retired, ctx, counts).await? {
            named.insert(q.path.clone());
        }
    }

    // 6. files in the stream, and in its quarantine, that the log does not name
    let mut present = list_all(archive, &archive.path_of([stream.as_str()])).await?;
    present.extend(list_all(archive, &archive.path_of(["_quarantine", stream.as_str()])).await?);
    for path in present {
        let rel = archive.relative(&path);
        if !named.contains(&rel) {
            ctx.problem(rel, "injected", "file is not in the integrity log");
        }
    }
    Ok(())
}

/// Checks that each quarantine retirement names an earlier quarantine entry
/// exactly, once, and (for retention) that the file was written before the
/// cutoff and the cutoff respects the period. Returns which entry retires
/// each retired one.
fn check_quarantine_retirements(
    entries: &[(Entry, Hash)],
    timed: &[(chrono::DateTime<chrono::Utc>, u64, &str)],
    ctx: &mut Ctx<'_>,
) -> BTreeMap<u64, u64> {
    let mut retired = BTreeMap::new();
    for (entry, _) in entries {
        let Entry::QuarantineRetired(r) = entry else { continue };
        let subject = format!("{} (entry {})", r.path, r.index);
        let file = match entries.get(r.retires as usize) {
            Some((Entry::Quarantine(q), _)) if r.retires < r.index => q,
            _ => {
                ctx.problem(
                    subject,
                    "quarantine",
                    format!("retires entry {}, which is not an earlier quarantine file", r.retires),
                );
                continue;
            }
        };
        if (&file.path, &file.sha256, file.records) != (&r.path, &r.sha256, r.records) {
            ctx.problem(subject.clone(), "quarantine", format!("does not describe the file of entry {}", r.retires));
        }
        match r.reason.as_str() {
            "replay" => {}
            "retention" => {
                if let Some(why) = quarantine_expiry_problem(r) {
                    ctx.problem(subject.clone(), "retention", why);
                }
            }
            other => ctx.problem(subject.clone(), "quarantine", format!("unknown reason `{other}`")),
        }
        if let Some(late) = dated_after_its_checkpoint(timed, r.index, &r.committed) {
            ctx.problem(subject.clone(), "quarantine", late);
        }
        if retired.insert(r.retires, r.index).is_some() {
            ctx.problem(subject, "quarantine", format!("entry {} is retired twice", r.retires));
        }
    }
    retired
}

/// A retirement's time is taken on trust only up to the first signed
/// checkpoint that covers its entry: it cannot have been decided after that.
fn dated_after_its_checkpoint(
    timed: &[(chrono::DateTime<chrono::Utc>, u64, &str)],
    index: u64,
    committed: &str,
) -> Option<String> {
    let covering = timed.iter().filter(|(_, size, _)| *size > index).map(|(t, _, _)| *t).min()?;
    let decided = chrono::DateTime::parse_from_rfc3339(committed).ok()?;
    (decided > covering).then(|| format!("dated {decided}, after the checkpoint of {covering} that covers it"))
}

/// Why a quarantine file's retention came before its period allowed, if it
/// did: the cutoff must be at least the period before the retirement, and
/// the file written (the UUIDv7 in its name) before the cutoff.
fn quarantine_expiry_problem(r: &QuarantineRetiredEntry) -> Option<String> {
    let (Some(period), Some(cutoff)) = (&r.period, r.cutoff) else {
        return Some("a retention without its period and cutoff".into());
    };
    if let Some(early) = cutoff_problem(period, cutoff, &r.committed) {
        return Some(early);
    }
    let name = r.path.rsplit('/').next().unwrap_or_default();
    match crate::retention::quarantine_written(name) {
        Some(written) if written < cutoff => None,
        Some(_) => Some("the file was not written before the cutoff: expired early".into()),
        None => Some("the file's name carries no write time".into()),
    }
}

/// Checks one logged quarantine file (`retired`: by which entry, if it was):
/// its bytes, and one record per line; a retired one must be gone. Returns
/// whether the entry names a quarantine file of this stream.
async fn check_quarantine_file(
    archive: &Archive,
    stream: &str,
    q: &QuarantineEntry,
    retired: Option<u64>,
    ctx: &mut Ctx<'_>,
    counts: &mut Counts,
) -> anyhow::Result<bool> {
    let subject = format!("{} (entry {})", q.path, q.index);
    let prefix = format!("_quarantine/{stream}/");
    let path = match archive.path_from_relative(&q.path) {
        Ok(path) if q.path.starts_with(&prefix) => path,
        _ => {
            ctx.problem(subject, "log", "entry names no quarantine file of this stream");
            return Ok(false);
        }
    };
    let bytes = match (archive.store.get(&path).await, retired) {
        (Ok(_), Some(by)) => {
            // its records went back to the archive or past their retention
            ctx.problem(
                subject,
                "quarantine",
                format!("retired by entry {by}, but still present (unless a crash cut its commit short: the next start deletes it)"),
            );
            return Ok(true);
        }
        (Ok(r), None) => r.bytes().await?,
        (Err(object_store::Error::NotFound { .. }), Some(_)) => {
            counts.quarantine_retired += 1;
            return Ok(true);
        }
        (Err(object_store::Error::NotFound { .. }), None) => {
            ctx.problem(subject, "file", "deleted");
            return Ok(true);
        }
        (Err(e), _) => return Err(e.into()),
    };
    counts.quarantine += 1;
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != q.sha256 || bytes.len() as u64 != q.size {
        ctx.problem(subject.clone(), "sha256", format!("file bytes changed (sha256 {digest}, {} bytes)", bytes.len()));
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    if lines != q.records {
        ctx.problem(subject, "records", format!("{lines} records, the log says {}", q.records));
    }
    Ok(true)
}

/// Why a retirement came before its period allowed, if it did: its cutoff
/// must be at least the period before the time it was committed, and the
/// file's newest event older than the cutoff.
fn expiry_problem(r: &RetiredEntry) -> Option<String> {
    if let Some(early) = cutoff_problem(&r.period, r.cutoff, &r.committed) {
        return Some(early);
    }
    (r.time_max >= r.cutoff).then(|| "the file's newest event is not older than the cutoff: expired early".into())
}

/// Why a retirement's `cutoff` is not one its `period` allows when it was
/// `committed`, if it is not: it must be at least the period before.
fn cutoff_problem(period: &str, cutoff: i64, committed: &str) -> Option<String> {
    let parsed = match crate::retention::Period::parse(period) {
        Ok(p) => p,
        Err(e) => return Some(format!("names no valid period: {e}")),
    };
    let committed = match chrono::DateTime::parse_from_rfc3339(committed) {
        Ok(t) => t.with_timezone(&chrono::Utc),
        Err(e) => return Some(format!("commit time `{committed}` is not a time: {e}")),
    };
    (cutoff > parsed.cutoff(committed).timestamp_micros())
        .then(|| format!("cutoff is later than {period} before its commit: expired early"))
}

/// The stream's `seq` values over all its files must be exactly 0..N (files
/// retention took out count by their recorded range): a gap is a lost or
/// deleted event, a repeat a duplicated one.
fn check_sequence(mut seqs: Vec<i64>, retired: Vec<(i64, i64)>, ctx: &mut Ctx<'_>) {
    seqs.sort_unstable();
    // the present events as runs of consecutive values; repeats within them are reported here
    let mut ranges: Vec<(i64, i64)> = retired;
    let mut reported = 0;
    let mut run: Option<(i64, i64)> = None;
    for s in seqs {
        run = match run {
            Some((first, last)) if s == last => {
                if reported < 10 {
                    ctx.problem(format!("seq {s}"), "sequence", "appears more than once (duplicated event)");
                }
                reported += 1;
                Some((first, last))
            }
            Some((first, last)) if s == last + 1 => Some((first, s)),
            Some(done) => {
                ranges.push(done);
                Some((s, s))
            }
            None => Some((s, s)),
        };
    }
    ranges.extend(run);
    ranges.sort_unstable();
    let mut expected = 0i64;
    for (first, last) in ranges {
        if first < expected {
            if reported < 10 {
                let to = last.min(expected - 1);
                ctx.problem(format!("seq {first}..{to}"), "sequence", "appears more than once (duplicated event)");
            }
            reported += 1;
        } else if first > expected {
            if reported < 10 {
                ctx.problem(
                    format!("seq {expected}..{}", first - 1),
                    "sequence",
                    "missing: events were lost or deleted",
                );
            }
            reported += 1;
        }
        expected = expected.max(last + 1);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn retired(period: &str, cutoff: &str, time_max_before_cutoff: i64) -> RetiredEntry {
        let cutoff = chrono::DateTime::parse_from_rfc3339(cutoff).unwrap().timestamp_micros();
        RetiredEntry {
            index: 9,
            retires: 1,
            path: "a/x.parquet".into(),
            sha256: String::new(),
            rows: 1,
            seq_first: 0,
            seq_last: 0,
            time_max: cutoff - time_max_before_cutoff,
            reason: "retention".into(),
            policy: period.into(),
            period: period.into(),
            cutoff,
            committed: "2026-11-26T00:00:00Z".into(),
        }
    }

    #[test]
    fn an_expiry_before_its_period_is_reported() {
        assert_eq!(expiry_problem(&retired("30d", "2026-10-27T00:00:00Z", 1)), None);
        assert_eq!(expiry_problem(&retired("13 months", "2025-10-26T00:00:00Z", 1)), None);
        let early = expiry_problem(&retired("30d", "2026-10-28T00:00:00Z", 1)).unwrap();
        assert!(early.contains("cutoff is later than 30d before its commit"), "{early}");
        let recent = expiry_problem(&retired("30d", "2026-10-27T00:00:00Z", 0)).unwrap();
        assert!(recent.contains("newest event is not older than the cutoff"), "{recent}");
        let bad = expiry_problem(&retired("soon", "2026-10-27T00:00:00Z", 1)).unwrap();
        assert!(bad.contains("names no valid period"), "{bad}");
    }

    /// A quarantine file named as written at `written`, retired by retention
    /// on 2026-11-26 with `period` and `cutoff`.
    fn quarantine_retired(period: Option<&str>, cutoff: &str, written: &str) -> QuarantineRetiredEntry {
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
        let written = at(written);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, written.timestamp() as u64, 0);
        QuarantineRetiredEntry {
            index: 9,
            retires: 1,
            path: format!("_quarantine/a/a-{}.ndjson", uuid::Uuid::new_v7(ts)),
            sha256: String::new(),
            records: 1,
            reason: "retention".into(),
            policy: period.map(str::to_string),
            period: period.map(str::to_string),
            cutoff: Some(at(cutoff).timestamp_micros()),
            committed: "2026-11-26T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_quarantine_expiry_before_its_period_is_reported() {
        let check = |period, cutoff, written| quarantine_expiry_problem(&quarantine_retired(period, cutoff, written));
        assert_eq!(check(Some("30d"), "2026-10-27T00:00:00Z", "2026-10-26T23:59:59Z"), None);
        let early = check(Some("30d"), "2026-10-28T00:00:00Z", "2026-10-01T00:00:00Z").unwrap();
        assert!(early.contains("cutoff is later than 30d before its commit"), "{early}");
        let recent = check(Some("30d"), "2026-10-27T00:00:00Z", "2026-10-27T00:00:00Z").unwrap();
        assert!(recent.contains("not written before the cutoff"), "{recent}");
        let bare = check(None, "2026-10-27T00:00:00Z", "2026-10-01T00:00:00Z").unwrap();
        assert!(bare.contains("without its period and cutoff"), "{bare}");
    }

    #[test]
    fn retired_ranges_count_toward_the_sequence() {
        let check = |seqs: Vec<i64>, retired: Vec<(i64, i64)>| {
            let mut problems = Vec::new();
            check_sequence(seqs, retired, &mut Ctx { stream: "a", problems: &mut problems });
            problems.into_iter().map(|p| format!("{}: {}", p.subject, p.detail)).collect::<Vec<_>>()
        };
        assert!(check(vec![3, 4, 5, 8], vec![(0, 2), (6, 7)]).is_empty());
        assert_eq!(
            check(vec![3, 4, 5, 5, 9], vec![(0, 2), (6, 7)]),
            ["seq 5: appears more than once (duplicated event)", "seq 8..8: missing: events were lost or deleted"]
        );
        // an event both present and in a retired range is there twice
        assert_eq!(check(vec![0, 1, 2], vec![(2, 4)]), ["seq 2..2: appears more than once (duplicated event)"]);
        assert_eq!(check(vec![2], vec![]), ["seq 0..1: missing: events were lost or deleted"]);
    }
}

//! Events already archived, read again (`type = "archive"`; `sluice replay`):
//! the committed files of some streams, as their integrity logs list them,
//! each checked against the SHA-256 its log entry recorded before a row of it
//! is used. Rows are chosen by time (`since`/`until`, which also skip whole
//! files by their logged time range) and a condition, and handed to the
//! chain as their `raw_data` (for a new parser) or as the event itself (for
//! new transforms).
//!
//! Exactly once: a file's position is the number of its rows read, under its
//! archive path, with the file's SHA-256 as fingerprint; it is committed with
//! the events it produced, like a file source's byte offset. A replay that
//! stops resumes at the next row, and a replay run again reads nothing.

use super::{Batcher, FilePosition, Positions, Source};
use crate::config::ArchiveRecord;
use crate::integrity::canonical::Canonical;
use crate::integrity::log::{
    Entry, LogEntry, QuarantineEntry, live_files, logged_quarantine, read_entries, read_quarantine,
};
use crate::route::{Expr, RowView};
use crate::schema::{StreamSchema, check_event};
use crate::sinks::Archive;
use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct ArchiveSource {
    pub archive: Archive,
    pub streams: Vec<String>,
    pub record: ArchiveRecord,
    /// Microseconds, inclusive.
    pub since: Option<i64>,
    /// Microseconds, exclusive.
    pub until: Option<i64>,
    pub select: Option<Expr>,
    /// Where the last commit left each file.
    pub resume: Positions,
    pub runtime: tokio::runtime::Handle,
    /// What was read, for the run's summary.
    pub report: Arc<Mutex<ArchiveReport>>,
}

/// What an archive source read.
#[derive(Debug, Default, Clone)]
pub struct ArchiveReport {
    /// Files read in this run (each checked against its log entry).
    pub files: u64,
    /// Files skipped: outside the time range, or read to their end before.
    pub files_skipped: u64,
    /// Rows of the files read (after any resumed position).
    pub rows: u64,
    /// Rows handed to the chain.
    pub replayed: u64,
    /// Rows chosen but not replayable: no `raw_data` to hand a parser.
    pub without_raw: u64,
    /// Quarantined records chosen but not replayable, by why.
    pub unreplayable: std::collections::BTreeMap<String, u64>,
}

impl ArchiveSource {
    /// Reads one quarantine file (NDJSON) from line `start` on: each record
    /// whose `observed_time` is in range, with its tenant. A line's position
    /// is its number; the file's size is its fingerprint (quarantine files are
    /// never rewritten, only deleted by `sluice quarantine replay`). It must be
    /// the file its stream's integrity log names.
    fn read_quarantine(
        &self,
        file: &QuarantineEntry,
        batcher: &mut Batcher,
        stop: &AtomicBool,
        report: &mut ArchiveReport,
    ) -> anyhow::Result<bool> {
        let path = file.path.clone();
        let bytes = self.runtime.block_on(read_quarantine(&self.archive, file))?;
        let fingerprint = bytes.len().to_string();
        let start = match self.resume.get(&path) {
            Some(p) if p.fingerprint == fingerprint => p.offset,
            _ => 0,
        };
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        if start >= lines.len() as u64 {
            report.files_skipped += 1;
            return Ok(true);
        }
        report.files += 1;
        batcher.begin_file(&path, FilePosition { fingerprint, fingerprint_len: 0, offset: start });
        for (n, line) in lines.iter().enumerate().skip(start as usize) {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            report.rows += 1;
            let q: serde_json::Value =
                serde_json::from_slice(line).with_context(|| format!("{path}: line {}", n + 1))?;
            let observed = q["observed_time"].as_str().and_then(|t| crate::config::parse_time(t).ok());
            if !observed.is_some_and(|t| self.in_range(t)) {
                batcher.skip_to(n as u64 + 1);
                continue;
            }
            let delivered = match crate::replay::replayable(&q) {
                Ok(record) => {
                    report.replayed += 1;
                    let tenant = q["tenant"].as_str().map(str::to_string);
                    batcher.set_tenant(tenant) && batcher.push_record_at(record, n as u64 + 1)
                }
                Err(why) => {
                    *report.unreplayable.entry(why.to_string()).or_default() += 1;
                    batcher.skip_to(n as u64 + 1);
                    true
                }
            };
            if !delivered {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn in_range(&self, time: i64) -> bool {
        self.since.is_none_or(|s| time >= s) && self.until.is_none_or(|u| time < u)
    }

    /// Whether a file's logged time range misses the range asked for.
    fn misses(&self, file: &LogEntry) -> bool {
        self.since.is_some_and(|s| file.time_max < s) || self.until.is_some_and(|u| file.time_min >= u)
    }

    fn read_file(
        &self,
        file: &LogEntry,
        batcher: &mut Batcher,
        stop: &AtomicBool,
        report: &mut ArchiveReport,
    ) -> anyhow::Result<bool> {
        let start = match self.resume.get(&file.path) {
            Some(p) if p.fingerprint == file.sha256 => p.offset,
            _ => 0,
        };
        if start >= file.rows || self.misses(file) {
            report.files_skipped += 1;
            return Ok(true);
        }
        let location = self.archive.path_from_relative(&file.path)?;
        let bytes = self
            .runtime
            .block_on(async { self.archive.store.get(&location).await?.bytes().await })
            .with_context(|| format!("cannot read {}", file.path))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        anyhow::ensure!(
            sha256 == file.sha256,
            "{} does not match its integrity log entry (sha256 {sha256}, logged {}): not replayed; run `sluice verify`",
            file.path,
            file.sha256
        );
        report.files += 1;
        let position = FilePosition { fingerprint: file.sha256.clone(), fingerprint_len: file.size, offset: start };
        batcher.begin_file(&file.path, position);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(1024).build())
            .with_context(|| format!("{} is not readable Parquet", file.path))?;
        let mut row_no: u64 = 0;
        for batch in reader {
            let batch = batch.with_context(|| format!("reading {}", file.path))?;
            let columns = Columns::of(&batch)?;
            for row in 0..batch.num_rows() {
                row_no += 1;
                if row_no <= start {
                    continue;
                }
                if stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
                report.rows += 1;
                let record = self.choose(row, &columns, &crate::schema::CORE, report);
                let delivered = match record {
                    Some(record) => {
                        report.replayed += 1;
                        // each event stays in its tenant, whatever the new chain makes of it
                        let tenant = columns.tenant.filter(|c| c.is_valid(row)).map(|c| c.value(row).to_string());
                        batcher.set_tenant(tenant) && batcher.push_record_at(record, row_no)
                    }
                    None => {
                        batcher.skip_to(row_no);
                        true
                    }
                };
                if !delivered {
                    return Ok(false);
                }
            }
        }
        anyhow::ensure!(row_no == file.rows, "{} has {row_no} rows; its log entry says {}", file.path, file.rows);
        Ok(true)
    }

    /// The record a row gives the chain, if it is chosen and has one.
    fn choose(
        &self,
        row: usize,
        columns: &Columns,
        core: &StreamSchema,
        report: &mut ArchiveReport,
    ) -> Option<Vec<u8>> {
        if !self.in_range(columns.time.value(row)) {
            return None;
        }
        let needs_event = self.record == ArchiveRecord::Event || self.select.is_some();
        let event = needs_event.then(|| columns.event(row));
        if let (Some(select), Some(event)) = (&self.select, &event) {
            // a row that does not fit the core columns is not chosen (it cannot be: it was written by them)
            let row = check_event(event, 0, "", core).ok()?;
            let source = match row.cell(columns.log_name_core) {
                crate::schema::CellRef::Text(s) => s.to_string(),
                _ => String::new(),
            };
            if !select.matches(&RowView::new(&row, &source)) {
                return None;
            }
        }
        match self.record {
            ArchiveRecord::Event => event.map(String::into_bytes),
            ArchiveRecord::Quarantine => unreachable!("quarantine files are read by read_quarantine"),
            ArchiveRecord::RawData => match columns.raw_data.filter(|c| c.is_valid(row)) {
                Some(raw) => Some(raw.value(row).as_bytes().to_vec()),
                None => {
                    report.without_raw += 1;
                    None
                }
            },
        }
    }
}

/// The columns of one batch that the source reads.
struct Columns<'a> {
    time: &'a arrow_array::PrimitiveArray<TimestampMicrosecondType>,
    raw_data: Option<&'a arrow_array::StringArray>,
    tenant: Option<&'a arrow_array::StringArray>,
    /// Everything but `seq`, `event_hash` and `unmapped`, in canonical order.
    event_columns: Canonical<'a>,
    unmapped: Option<&'a arrow_array::StringArray>,
    /// Index of `metadata_log_name` in the core schema's rows.
    log_name_core: usize,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> anyhow::Result<Columns<'a>> {
        let time = batch.column_by_name("time").context("the file has no `time` column")?;
        let string = |name: &str| batch.column_by_name(name).map(|c| c.as_string::<i32>());
        let event_columns = Canonical::with(batch, |name| !matches!(name, "seq" | "unmapped"));
        Ok(Columns {
            time: time.as_primitive::<TimestampMicrosecondType>(),
            raw_data: string("raw_data"),
            tenant: string("tenant_uid"),
            event_columns,
            unmapped: string("unmapped"),
            log_name_core: crate::schema::column_index("metadata_log_name").expect("a core column"),
        })
    }

    /// The row as an event: its columns (timestamps as µs), and `unmapped`
    /// as the object it holds.
    fn event(&self, row: usize) -> String {
        let mut text = self.event_columns.text(row);
        if let Some(unmapped) = self.unmapped.filter(|c| c.is_valid(row)) {
            text.pop();
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str("\"unmapped\":");
            text.push_str(unmapped.value(row));
            text.push('}');
        }
        text
    }
}

impl Source for ArchiveSource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let mut report = ArchiveReport::default();
        let result = (|| {
            if self.record == ArchiveRecord::Quarantine {
                for stream in &self.streams {
                    let files = self
                        .runtime
                        .block_on(logged_quarantine(&self.archive, stream))
                        .with_context(|| format!("the quarantine of stream `{stream}` in {}", self.archive.location))?;
                    for file in &files {
                        if !self.read_quarantine(file, &mut batcher, &stop, &mut report)? {
                            return Ok(());
                        }
                    }
                }
                return Ok(());
            }
            for stream in &self.streams {
                let entries = self
                    .runtime
                    .block_on(read_entries(&self.archive, stream))
                    .with_context(|| format!("the integrity log of stream `{stream}` in {}", self.archive.location))?;
                anyhow::ensure!(
                    entries.iter().any(|(e, _)| matches!(e, Entry::File(_))),
                    "stream `{stream}` has no files in {}",
                    self.archive.location
                );
                for file in live_files(entries) {
                    if !self.read_file(&file, &mut batcher, &stop, &mut report)? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })();
        batcher.flush();
        *self.report.lock().expect("not poisoned") = report;
        result
    }
}

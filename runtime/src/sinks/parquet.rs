//! The sink: one open Parquet file per (stream, partition), rolled by size,
//! and the quarantine, NDJSON files under `_quarantine/<stream>/`, apart from
//! every stream's partitions. Files become visible in the archive only through
//! a commit (`commit.rs`), which closes every open file and records the source
//! positions that produced them.
//!
//! Files are encoded into a local staging file while open, and stay there,
//! closed, until the commit uploads them. The rows of a file's next row group
//! are held as Arrow batches and hashed and encoded together when the row
//! group is written: an encoder in progress holds a zstd context pair per
//! column (about 200 KB), which over 50 open partitions cost more memory than
//! the rows themselves (measured with heaptrack; `docs/performance.md`). The
//! hashing and encoding run on the sink's pool of threads, so that the sink's
//! own thread, which every event passes, keeps only the bookkeeping.

use super::commit::{self, CommitRecord, Counts, SourceState};
use super::store::{Archive, commit_file, commit_staged};
use crate::integrity::log::{LogEntry, PluginRef, QuarantineEntry, QuarantineRetiredEntry, RetiredEntry, StreamLog};
use crate::integrity::merkle;
use crate::integrity::note::NoteSigner;
use crate::retention::{self, Plan, Policy};
use crate::schema::{self, StreamSchema};
use crate::self_audit::{self, PipelineIdentity, Previous};
use crate::sources::FilePosition;
use anyhow::Context;
use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{BloomFilterPosition, EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use parquet::schema::types::SchemaDescriptor;
use rayon::prelude::*;
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Memory the sink may hold in rows of row groups not yet written, over all
/// open files (Arrow memory: uncompressed).
const MEMORY_BUDGET: usize = 48 << 20;

/// What fraction of its Arrow memory a row group is taken to take in the file
/// until the file has written one (zstd Parquet of audit events: about 1/6).
const FIRST_ENCODED_FRACTION: f64 = 0.2;

/// Rows per row group at most (fewer when the memory budget flushes early).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The open files may hold this many written row groups between them: each
/// keeps its metadata in memory (~60 KB, 50 columns) until its file closes.
/// Past it, the file holding the most is closed early (it is committed with
/// the others). With many partitions open the memory budget makes row groups
/// small (~5,000 rows at 10 M events, 48 files open), and what they held grew
/// by ~90 MiB over a 300 s commit interval.
const OPEN_ROW_GROUPS: usize = 1024;

/// Columns whose values (nearly) never repeat: ids, hashes, times. A
/// dictionary would hash every value and then be dropped for plain encoding
/// once it outgrew its page, so they are written plain from the start.
const UNIQUE_COLUMNS: &[&str] = &[
    "time",
    "observed_time",
    "seq",
    crate::integrity::canonical::EVENT_HASH,
    "metadata_uid",
    "api_request_uid",
    "trace_id",
    "span_id",
    "unmapped",
    "message",
];

/// How every Parquet file of the archive is written.
pub fn writer_properties(zstd_level: i32) -> anyhow::Result<WriterProperties> {
    let mut builder = WriterProperties::builder();
    for column in UNIQUE_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    Ok(builder
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        // min/max per column chunk; per page (the page index) only for
        // `time`, the column whose pages a time-range query skips: a page
        // index is metadata an open file holds until it closes
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from("time"), EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_column_bloom_filter_enabled(ColumnPath::from("metadata_uid"), true)
        // sized for a full row group: the filter is allocated up front, per open file
        .set_column_bloom_filter_max_ndv(ColumnPath::from("metadata_uid"), ROW_GROUP_ROWS as u64)
        // written after its row group, not held (each allocated for a full
        // row group) until the file closes
        .set_bloom_filter_position(BloomFilterPosition::AfterRowGroup)
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// What a worker sends the sink for each raw batch (also for one that
/// produced nothing, so that its source position still moves).
pub struct SinkMsg {
    pub source: usize,
    /// The batch's number within its source: the sink applies batches in this order.
    pub no: u64,
    pub positions: Vec<(String, FilePosition)>,
    /// Records read, extra events from expanded records, and drops by rule;
    /// `written` and `quarantined` are counted by the sink.
    pub counts: Counts,
    /// Checked events, split by stream and partition (`key=value` path segments).
    pub partitions: Vec<(usize, Vec<String>, Vec<ArrayRef>)>,
    /// Quarantine records, one JSON line each, with the stream whose
    /// quarantine takes it.
    pub quarantine: Vec<(usize, String)>,
    /// Events that matched alert rules.
    pub hits: Vec<super::alerting::Hit>,
}

/// How the sink lays out and rolls files.
pub struct SinkSettings {
    pub streams: Vec<String>,
    /// Per source: its name and the index of its stream.
    pub sources: Vec<(String, usize)>,
    /// Closed files in staging past four of these trigger a commit.
    pub roll_bytes: usize,
    /// Per stream: a file closes at this size.
    pub stream_roll_bytes: Vec<usize>,
    pub roll_age: Duration,
    pub staging_dir: PathBuf,
    pub zstd_level: i32,
    /// Per stream, its columns.
    pub schemas: Vec<Arc<StreamSchema>>,
    /// Per stream, the plugins whose output it holds (recorded in the log).
    pub plugins: Vec<Vec<PluginRef>>,
    pub integrity: IntegritySettings,
    /// Partition keys (for the pipeline's own events; workers split the rest).
    pub partition_by: Vec<String>,
    /// Recorded with each commit; compared at the next start (`self_audit`).
    pub identity: PipelineIdentity,
    /// Per stream name, its retention (streams without one are kept forever).
    pub retention: BTreeMap<String, Policy>,
    /// Apply retention at the first tick and then this often (`None`: only when asked).
    pub retention_every: Option<Duration>,
    /// S3 Object Lock on every file of a stream with a retention (see `sink.object_lock`).
    pub object_lock: Option<super::LockMode>,
    /// The volume time series' interval (`None`: no `_volume` stream).
    pub volume_interval: Option<Duration>,
    /// Per source: when it should raise findings.
    pub expectations: Vec<super::volume::Expectation>,
    /// Findings are also appended here, one JSON line each.
    pub alert_file: Option<PathBuf>,
    /// Findings are also POSTed here.
    pub alert_webhook: Option<(String, reqwest::Client)>,
    /// The counters are written here (Prometheus text) every few seconds.
    pub metrics_file: Option<PathBuf>,
    /// And kept here, for the admin listener's `/metrics`.
    pub metrics_text: Option<Arc<std::sync::Mutex<String>>>,
    /// Every source's positions as of the last commit record (http sources
    /// delete the spool segments committed whole).
    pub committed: Option<Arc<crate::sources::Committed>>,
    pub alert_rules: Vec<super::alerting::Rule>,
}

/// How the integrity log is checkpointed.
pub struct IntegritySettings {
    /// Without a key the log is still written, but no checkpoint is signed.
    pub signer: Option<NoteSigner>,
    /// A checkpoint at most this long after new entries...
    pub interval: Duration,
    /// ...and at least this often when idle (a heartbeat that proves silence).
    pub heartbeat: Duration,
    /// Checkpoints are also written here.
    pub copy_to: Option<Archive>,
    /// Origin line of the checkpoints (default: `sluice:<location>/<stream>`).
    pub origin: Option<String>,
}

/// What the sink did in this run.
#[derive(Debug, Default, Clone)]
pub struct SinkStats {
    pub counts: Counts,
    pub files: u64,
    pub bytes: u64,
    pub commits: u64,
}

struct OpenFile {
    writer: SerializedFileWriter<BufWriter<File>>,
    /// Column encoders for each row group.
    columns: ArrowRowGroupWriterFactory,
    schema: Arc<StreamSchema>,
    /// The rows of the next row group, with `seq` (`schema::seq_batch`), not
    /// yet hashed.
    pending: Vec<arrow_array::RecordBatch>,
    pending_rows: usize,
    pending_memory: usize,
    /// Arrow memory of the row groups written so far (for the encoded size
    /// of the pending ones).
    written_memory: usize,
    /// Row groups written so far.
    row_groups: usize,
    /// Rows per row group at most: the writer properties' (the sink's
    /// [`ROW_GROUP_ROWS`]).
    row_group_rows: usize,
    staging: PathBuf,
    first_seq: i64,
    opened: Instant,
    /// The events root so far (the hashes themselves are not kept).
    events: merkle::RootBuilder,
    seq_last: i64,
    time_min: i64,
    time_max: i64,
}

/// Pending rows' share of the memory budget: their Arrow memory, and the
/// `event_hash` text they will carry (64 hex digits and an offset per row).
fn pending_memory(batch: &arrow_array::RecordBatch) -> usize {
    batch.get_array_memory_size() + batch.num_rows() * 68
}

impl OpenFile {
    /// A new file in staging, whose bytes start as `ArrowWriter` writes them
    /// (the Parquet schema and the Arrow schema in its metadata); its row
    /// groups are encoded here (`write_row_group`).
    fn create(
        staging: PathBuf,
        schema: Arc<StreamSchema>,
        props: &WriterProperties,
        first_seq: i64,
    ) -> anyhow::Result<Self> {
        let row_group_rows = props.max_row_group_row_count().context("writer properties without a row-group size")?;
        let file = File::create(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
        let writer =
            ArrowWriter::try_new(BufWriter::with_capacity(64 << 10, file), schema.file.clone(), Some(props.clone()))?;
        let (writer, columns) = writer.into_serialized_writer()?;
        Ok(OpenFile {
            writer,
            columns,
            schema,
            pending: Vec::new(),
            pending_rows: 0,
            pending_memory: 0,
            written_memory: 0,
            row_groups: 0,
            row_group_rows,
            staging,
            first_seq,
            opened: Instant::now(),
            events: merkle::RootBuilder::default(),
            seq_last: first_seq,
            time_min: i64::MAX,
            time_max: i64::MIN,
        })
    }

    /// Adds rows (a batch from `schema::seq_batch`, the next `seq` of the
    /// file) and writes a row group once a whole one is pending.
    fn push(&mut self, batch: arrow_array::RecordBatch, pool: &Pool) -> anyhow::Result<()> {
        self.pending_rows += batch.num_rows();
        self.pending_memory += pending_memory(&batch);
        self.pending.push(batch);
        if self.pending_rows >= self.row_group_rows {
            self.write_row_group(pool)?;
        }
        Ok(())
    }

    /// Hashes and encodes up to `row_group_rows` of the pending rows as one
    /// row group (its encoders, and their zstd contexts, are freed when it is
    /// written); the rest stay pending. The hashing (by batch) and the
    /// encoding (by column) run on the pool while the sink's thread waits:
    /// only the pool's threads spread the sink's work over the cores, since
    /// the sink assigns `seq`, which is part of each hash, and so cannot hand
    /// hashing to the workers.
    fn write_row_group(&mut self, pool: &Pool) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = 0;
        let mut group = Vec::new();
        let mut rest = Vec::new();
        for batch in std::mem::take(&mut self.pending) {
            let room = self.row_group_rows - rows;
            if room == 0 {
                rest.push(batch);
            } else if batch.num_rows() <= room {
                rows += batch.num_rows();
                group.push(batch);
            } else {
                group.push(batch.slice(0, room));
                rest.push(batch.slice(room, batch.num_rows() - room));
                rows = self.row_group_rows;
            }
        }
        let (schema, columns, index) = (&self.schema, &self.columns, self.row_groups);
        let parquet_schema = self.writer.schema_descr();
        let (chunks, hashes) = pool.threads.install(|| -> anyhow::Result<_> {
            let (group, hashes): (Vec<_>, Vec<_>) =
                group.into_par_iter().map(|batch| schema::hash_batch(batch, schema)).unzip();
            let encoders = columns.create_column_writers(index)?;
            Ok((encode_columns(&schema.file, parquet_schema, encoders, group)?, hashes))
        })?;
        for hash in hashes.into_iter().flatten() {
            self.events.push(hash);
        }
        let mut row_group = self.writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        pool.collect();
        self.row_groups += 1;
        let rest_memory: usize = rest.iter().map(pending_memory).sum();
        self.written_memory += self.pending_memory.saturating_sub(rest_memory);
        self.pending_rows -= rows;
        self.pending_memory = rest_memory;
        self.pending = rest;
        Ok(())
    }

    /// The file's size if it were closed now: what is written, and the pending
    /// rows at the ratio of encoded bytes to Arrow memory seen so far.
    fn estimated_size(&self) -> usize {
        let written = self.writer.bytes_written() as f64;
        let fraction =
            if self.written_memory > 0 { written / self.written_memory as f64 } else { FIRST_ENCODED_FRACTION };
        (written + self.pending_memory as f64 * fraction) as usize
    }
}

/// Encodes one row group's columns, each on whichever thread of the pool is
/// free: the same column chunks, page for page, as `ArrowWriter` writes
/// encoding them one after the other on the sink's thread, which would then
/// carry the whole Parquet and zstd cost of the pipeline alone (a unit test
/// compares the bytes).
///
/// Each column's arrays are freed as soon as they are encoded, as
/// `ArrowWriter` frees each batch once written: the rows and their encoded
/// form are not held whole at the same time.
fn encode_columns(
    schema: &arrow_schema::Schema,
    parquet_schema: &SchemaDescriptor,
    encoders: Vec<ArrowColumnWriter>,
    batches: Vec<arrow_array::RecordBatch>,
) -> anyhow::Result<Vec<ArrowColumnChunk>> {
    let mut arrays: Vec<Vec<ArrayRef>> = schema.fields().iter().map(|_| Vec::with_capacity(batches.len())).collect();
    for batch in batches {
        for (column, array) in arrays.iter_mut().zip(batch.columns()) {
            column.push(array.clone());
        }
    }
    // a column's encoders: one per Parquet leaf under it (a list of structs
    // has one per field), in leaf order
    let mut by_column: Vec<Vec<ArrowColumnWriter>> = arrays.iter().map(|_| Vec::new()).collect();
    for (leaf, encoder) in encoders.into_iter().enumerate() {
        by_column[parquet_schema.get_column_root_idx(leaf)].push(encoder);
    }
    let columns: Vec<_> = schema.fields().iter().zip(by_column).zip(arrays).collect();
    let chunks = columns
        .into_par_iter()
        .map(|((field, mut encoders), arrays)| {
            for array in arrays {
                let leaves = compute_leaves(field, &array)?;
                anyhow::ensure!(
                    leaves.len() == encoders.len(),
                    "column `{}`: leaves and encoders differ",
                    field.name()
                );
                for (encoder, leaf) in encoders.iter_mut().zip(&leaves) {
                    encoder.write(leaf)?;
                }
            }
            encoders.into_iter().map(|e| Ok(e.close()?)).collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(chunks.into_iter().flatten().collect())
}

/// The sink's pool of threads, one per core: it hashes and encodes row groups.
struct Pool {
    threads: rayon::ThreadPool,
    /// When its threads last returned freed pages to the system.
    collected: std::cell::Cell<Instant>,
}

/// How often, at most, the pool's threads return freed pages.
const COLLECT_EVERY: Duration = Duration::from_millis(250);

impl Pool {
    fn new() -> anyhow::Result<Self> {
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(crate::cores())
            .thread_name(|i| format!("sluice-sink-{i}"))
            .build()
            .context("cannot start the sink's threads")?;
        Ok(Pool { threads, collected: std::cell::Cell::new(Instant::now()) })
    }

    /// Called after a row group is written. Its encoded chunks were
    /// allocated on the pool's threads and freed on the sink's, and the
    /// allocator takes such frees back, and returns pages to the system, only
    /// when the thread that allocated them next allocates or collects: idle
    /// between row groups, the threads held 20-50 MiB more at the peak (1 M
    /// events). Collecting after every row group held least but cost ~2 % of
    /// the CPU, in page faults on the memory given back; every 250 ms brings
    /// the peak back under where it was with no pool, for 1-2 % of the CPU
    /// (unforced, the collect costs nothing measurable but leaves the peak
    /// 10-20 MiB over: docs/performance.md, session 17). The sink does not
    /// wait for it (though the next row group's tasks may queue behind it).
    fn collect(&self) {
        if self.collected.get().elapsed() >= COLLECT_EVERY {
            self.collected.set(Instant::now());
            self.threads.spawn_broadcast(|_| collect_freed_memory());
        }
    }
}

/// Has the calling thread's allocator heap take back the blocks other
/// threads freed and return empty pages to the system.
#[allow(unsafe_code)]
fn collect_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and has no preconditions: it
    // collects the calling thread's heap and, forced, purges freed memory
    // process-wide; where mimalloc is not the global allocator it finds
    // nothing to do.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// A closed file in staging, waiting for the next commit.
struct Sealed {
    stream: usize,
    staging: PathBuf,
    path: ObjectPath,
    /// Without `sha256` and `size` (known at upload) and `index` (at commit).
    entry: LogEntry,
}

/// A quarantine replay: the files it takes out, and the lines of them that
/// are not replayed (written again, in the replay's commit).
struct Replay {
    retire: Vec<(usize, QuarantineEntry)>,
    keep: Vec<(usize, String)>,
}

/// A source as the sink sees it.
struct SourceRun {
    name: String,
    /// The next batch number to apply, and batches that came early.
    next_no: u64,
    waiting: BTreeMap<u64, SinkMsg>,
    /// Positions and cumulative counts, as of the last batch applied.
    state: SourceState,
}

struct OpenQuarantine {
    lines: Vec<u8>,
    count: u64,
    opened: Instant,
}

pub struct Sink {
    archive: Archive,
    runtime: tokio::runtime::Handle,
    settings: SinkSettings,
    props: WriterProperties,
    /// Hashes events and encodes Parquet columns (`OpenFile::write_row_group`).
    pool: Pool,
    logs: Vec<StreamLog>,
    open: HashMap<(usize, Vec<String>), OpenFile>,
    sealed: Vec<Sealed>,
    sealed_bytes: u64,
    quarantine: HashMap<usize, OpenQuarantine>,
    sources: Vec<SourceRun>,
    /// Sources of the last commit that the config no longer has, carried on.
    retired: BTreeMap<String, SourceState>,
    commit_no: u64,
    /// Whether anything was applied since the last commit.
    dirty: bool,
    last_commit: Instant,
    /// `SLUICE_FAILPOINT`: a commit step at which to abort, for crash tests.
    failpoint: Option<String>,
    /// How the previous run ended (for the start events).
    previous: Previous,
    /// Set for the last commit of a clean stop.
    stopping: bool,
    /// Set when this run replays quarantine (`Sink::replay`).
    replay: Option<Replay>,
    /// Files retention takes out in the next commit: per stream, their
    /// retired entries (indexed at the commit), and quarantine files.
    retiring: Vec<(usize, RetiredEntry)>,
    expiring_quarantine: Vec<retention::ExpiredQuarantine>,
    last_retention: Option<Instant>,
    volume: Option<super::volume::Volume>,
    /// Per source.
    watches: Vec<super::volume::Watch>,
    last_metrics: Option<Instant>,
    /// Webhook deliveries under way (waited for at the stop).
    deliveries: Vec<tokio::task::JoinHandle<()>>,
    alerting: super::alerting::Alerting,
    /// Held while the sink runs: one writer per staging directory.
    _lock: File,
    pub stats: SinkStats,
}

impl Sink {
    /// Opens the sink: takes the staging directory's lock, brings the archive
    /// back to its last commit (`commit::recover`) and loads each stream's log.
    pub fn new(archive: Archive, runtime: tokio::runtime::Handle, settings: SinkSettings) -> anyhow::Result<Self> {
        let dir = &settings.staging_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create staging dir {}", dir.display()))?;
        // not truncated before it is ours: it names the process that holds it
        let mut lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".lock"))?;
        if let Err(e) = lock.try_lock() {
            anyhow::bail!("staging dir {} is in use by another sluice ({e})", dir.display());
        }
        lock.set_len(0)?;
        writeln!(lock, "{}", std::process::id())?;
        // files of a run that died: never committed, their records will be read again
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                std::fs::remove_file(&path).ok();
            }
        }
        let props = writer_properties(settings.zstd_level)?;
        let pool = Pool::new()?;
        let recovered = runtime.block_on(commit::recover(&archive))?;
        let mut logs = Vec::new();
        for stream in &settings.streams {
            let origin = match &settings.integrity.origin {
                Some(o) => format!("{o}/{stream}"),
                None => crate::integrity::log::default_origin(&archive.location, stream),
            };
            let verifier = settings.integrity.signer.as_ref().map(NoteSigner::verifier);
            logs.push(runtime.block_on(StreamLog::load(&archive, stream, origin, verifier.as_ref()))?);
        }
        let previous = Previous {
            identity: recovered.record.as_ref().and_then(|r| r.pipeline.clone()),
            clean_stop: recovered.record.as_ref().is_some_and(|r| r.clean_stop),
            removed_files: recovered.removed_files,
            restored_entries: recovered.restored_entries,
        };
        let mut alerting = super::alerting::Alerting::new(settings.alert_rules.clone());
        if let Some(record) = &recovered.record {
            alerting.restore(record.alert_windows.clone());
        }
        let (commit_no, mut retired) = match recovered.record {
            Some(record) => {
                tracing::info!(commit = record.commit, "Resuming after the last commit.");
                (record.commit, record.sources)
            }
            None => (0, BTreeMap::new()),
        };
        let sources = settings
            .sources
            .iter()
            .map(|(name, _)| SourceRun {
                name: name.clone(),
                next_no: 0,
                waiting: BTreeMap::new(),
                state: retired.remove(name).unwrap_or_default(),
            })
            .collect();
        let watches = settings
            .sources
            .iter()
            .zip(&settings.expectations)
            .map(|((name, _), expect)| {
                let interval = settings.volume_interval.unwrap_or(Duration::from_secs(60));
                super::volume::Watch::new(name.clone(), expect.clone(), interval, Instant::now())
            })
            .collect();
        let volume = settings.volume_interval.map(super::volume::Volume::new);
        Ok(Sink {
            archive,
            runtime,
            settings,
            props,
            pool,
            logs,
            open: HashMap::new(),
            sealed: Vec::new(),
            sealed_bytes: 0,
            quarantine: HashMap::new(),
            sources,
            retired,
            commit_no,
            dirty: false,
            last_commit: Instant::now(),
            failpoint: std::env::var("SLUICE_FAILPOINT").ok(),
            previous,
            stopping: false,
            replay: None,
            retiring: Vec::new(),
            expiring_quarantine: Vec::new(),
            last_retention: None,
            volume,
            watches,
            last_metrics: None,
            deliveries: Vec::new(),
            alerting,
            _lock: lock,
            stats: SinkStats::default(),
        })
    }

    /// Where the last commit left a source (empty if it never committed).
    pub fn committed_state(&self, source: usize) -> &SourceState {
        &self.sources[source].state
    }

    /// Makes this run a quarantine replay: records read are quarantine records
    /// read again, so they leave the quarantined count instead of adding to
    /// `read`; nothing is committed before the end, and the one commit at the
    /// end takes the `retire` files out of quarantine and writes `keep` (per
    /// stream, the lines not replayed) back.
    pub fn replay(&mut self, retire: Vec<(usize, QuarantineEntry)>, keep: Vec<(usize, String)>) {
        self.replay = Some(Replay { retire, keep });
    }

    /// Records the pipeline's start (and what changed since the last commit)
    /// in its own stream; then applies retention if the run does.
    pub fn record_start(&mut self) -> anyhow::Result<()> {
        let events = self_audit::start_events(crate::sources::now_micros(), &self.settings.identity, &self.previous);
        self.record_self(events)?;
        if self.settings.retention_every.is_some() && !self.settings.retention.is_empty() {
            self.apply_retention()?;
        }
        Ok(())
    }

    /// Records a clean stop, and commits everything with it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let event = self_audit::stop_event(crate::sources::now_micros(), &self.stats.counts);
        self.record_self(vec![event])?;
        self.stopping = true;
        let ticked = self.tick(true);
        // the findings still on their way to the webhook, for a while
        let deliveries = std::mem::take(&mut self.deliveries);
        let waited = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(deliveries)).await
        });
        if waited.is_err() {
            tracing::warn!("Stopped before every finding reached the alert webhook.");
        }
        ticked
    }

    /// Appends the pipeline's own events to the stream `_sluice`.
    fn record_self(&mut self, events: Vec<String>) -> anyhow::Result<()> {
        self.record_in(self_audit::STREAM, events)
    }

    /// Writes the metrics file (atomically: a reader never sees half of it)
    /// if it is due (every 5 s) or `now`.
    fn write_metrics(&mut self, now: bool) -> anyhow::Result<()> {
        if self.settings.metrics_file.is_none() && self.settings.metrics_text.is_none() {
            return Ok(());
        }
        if !now && self.last_metrics.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return Ok(());
        }
        let sources: Vec<(&str, &Counts, bool)> = self
            .sources
            .iter()
            .zip(&self.watches)
            .map(|(s, w)| (s.name.as_str(), &s.state.counts, w.is_silent()))
            .collect();
        let mut text = super::volume::prometheus(&sources, &self.settings.streams, self.volume.as_ref(), &self.stats);
        // a time, not an age: it stays true while the sink is stuck and nothing is redrawn
        let at = crate::sources::now_micros() as f64 / 1e6 - self.last_commit.elapsed().as_secs_f64();
        text.push_str(&format!(
            "# HELP sluice_last_commit_timestamp_seconds When the last commit (or the start) was, Unix seconds.\n\
             # TYPE sluice_last_commit_timestamp_seconds gauge\nsluice_last_commit_timestamp_seconds {at:.3}\n"
        ));
        if let Some(path) = &self.settings.metrics_file {
            let tmp = path.with_extension("prom.tmp");
            if let Err(e) = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path)) {
                // metrics are not worth stopping the pipeline for
                tracing::warn!(path = %path.display(), error = %e, "Cannot write the metrics file.");
            }
        }
        if let Some(shared) = &self.settings.metrics_text {
            *shared.lock().expect("not poisoned") = text;
        }
        self.last_metrics = Some(Instant::now());
        Ok(())
    }

    /// Records findings in `_sluice`, the alert file and the log.
    fn record_findings(&mut self, findings: Vec<super::volume::Finding>) -> anyhow::Result<()> {
        if findings.is_empty() {
            return Ok(());
        }
        let now = crate::sources::now_micros();
        let events: Vec<String> = findings.iter().map(|f| self_audit::finding_event(now, f)).collect();
        self.emit(events, findings.iter().map(|f| format!("{f:?}")).collect())
    }

    /// Writes findings (JSON events) to `_sluice`, the alert file and the log.
    fn emit(&mut self, events: Vec<String>, descriptions: Vec<String>) -> anyhow::Result<()> {
        for d in &descriptions {
            tracing::warn!(finding = %d, "Finding.");
        }
        if let Some(path) = &self.settings.alert_file {
            // an alert output that fails must not stop the audit trail: the
            // findings are in the archive whatever happens here
            use std::io::Write;
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| events.iter().try_for_each(|e| writeln!(file, "{e}")));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "Cannot write the alert file.");
            }
        }
        if let Some((url, client)) = &self.settings.alert_webhook {
            self.deliveries.retain(|d| !d.is_finished());
            for event in &events {
                let (url, client, body) = (url.clone(), client.clone(), event.clone());
                self.deliveries.push(self.runtime.spawn(deliver(client, url, body)));
            }
        }
        self.record_self(events)
    }

    /// Appends events the sink makes itself (`_sluice`, `_volume`) to their stream.
    fn record_in(&mut self, name: &str, events: Vec<String>) -> anyhow::Result<()> {
        let stream = self.settings.streams.iter().position(|s| s == name).expect("a stream of the sink");
        let schema = self.settings.schemas[stream].clone();
        let mut rows = schema::PartitionedRows::new(&schema, &self.settings.partition_by);
        for text in events {
            let row = schema::check_event(&text, crate::sources::now_micros(), name, &schema)
                .map_err(|e| anyhow::anyhow!("the pipeline's own event does not fit the schema: {e}"))?;
            rows.push(row);
        }
        let partitions = rows.finish();
        for (segments, columns) in partitions {
            self.append(stream, segments, columns)?;
        }
        self.dirty = true;
        Ok(())
    }

    /// Applies retention now (see `retention.rs`): finds the files that have
    /// outlived their stream's policy and no hold keeps, records each deletion
    /// in `_sluice`, and commits — retired log entries first, then the files
    /// are deleted. Returns what it found.
    pub fn apply_retention(&mut self) -> anyhow::Result<Plan> {
        let now = chrono::Utc::now();
        let plan = self.runtime.block_on(retention::plan(&self.archive, &self.settings.retention, now))?;
        self.last_retention = Some(Instant::now());
        if plan.is_empty() && plan.held.is_empty() {
            return Ok(plan);
        }
        // the retired entries carry the time their cutoff was computed from, so
        // `verify` can check the cutoff against it exactly
        let planned = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        for expired in &plan.expire {
            let stream = self.settings.streams.iter().position(|s| *s == expired.stream).expect("a policy's stream");
            let e = &expired.entry;
            self.retiring.push((
                stream,
                RetiredEntry {
                    index: 0,
                    retires: e.index,
                    path: e.path.clone(),
                    sha256: e.sha256.clone(),
                    rows: e.rows,
                    seq_first: e.seq_first,
                    seq_last: e.seq_last,
                    time_max: e.time_max,
                    reason: "retention".into(),
                    policy: expired.policy.to_string(),
                    period: expired.policy.period.to_string(),
                    cutoff: expired.cutoff,
                    committed: planned.clone(),
                },
            ));
        }
        self.expiring_quarantine.extend(plan.quarantine.iter().cloned());
        self.record_self(self_audit::retention_events(now.timestamp_micros(), &plan))?;
        self.commit()?;
        Ok(plan)
    }

    /// Takes one batch's output; applies it, and any that waited for it, in
    /// each source's batch order; then commits if one is due.
    pub fn handle(&mut self, msg: SinkMsg) -> anyhow::Result<()> {
        let source = msg.source;
        self.sources[source].waiting.insert(msg.no, msg);
        loop {
            let run = &mut self.sources[source];
            let Some(msg) = run.waiting.remove(&run.next_no) else { break };
            run.next_no += 1;
            self.apply(msg)?;
        }
        self.tick(false)
    }

    fn apply(&mut self, msg: SinkMsg) -> anyhow::Result<()> {
        let SinkMsg { source, positions, mut counts, partitions, quarantine, hits, .. } = msg;
        // a replay runs records that were already seen: their hits were counted then
        let fired: Vec<_> = match self.replay {
            None => hits.into_iter().filter_map(|h| self.alerting.hit(h)).collect(),
            Some(_) => Vec::new(),
        };
        if !fired.is_empty() {
            let now = crate::sources::now_micros();
            let events = fired.iter().map(|f| self_audit::rule_event(now, f)).collect();
            let lines = fired.iter().map(|f| format!("rule `{}` fired for `{}` ({} events)", f.rule, f.key, f.count));
            self.emit(events, lines.collect())?;
        }
        if let Some(volume) = &mut self.volume {
            let now = crate::sources::now_micros();
            for (stream, _, columns) in &partitions {
                volume.add(now, source, *stream, columns);
            }
        }
        if counts.read > 0 && self.replay.is_none() {
            let findings = self.watches[source].read(counts.read, Instant::now());
            self.record_findings(findings)?;
        }
        for (stream, partition, columns) in partitions {
            counts.written += columns.first().map_or(0, |c| c.len()) as u64;
            self.append(stream, partition, columns)?;
        }
        for (stream, line) in quarantine {
            self.quarantine_line(stream, &line);
            counts.quarantined += 1;
        }
        self.stats.counts.add(&counts);
        let SourceRun { name, state, .. } = &mut self.sources[source];
        state.positions.extend(positions);
        if self.replay.is_some() {
            // these records were counted as read and quarantined when they came
            // in: now they leave quarantine, for wherever the replay sent them
            let (read, quarantined) = (counts.read, counts.quarantined);
            counts.read = 0;
            counts.quarantined = 0;
            state.counts.add(&counts);
            state.counts.quarantined =
                (state.counts.quarantined + quarantined).checked_sub(read).with_context(|| {
                    format!("replay accounting: source `{name}` had fewer quarantined records than replayed")
                })?;
        } else {
            state.counts.add(&counts);
        }
        self.dirty = true;
        Ok(())
    }

    /// Adds one line to the stream's open quarantine file.
    fn quarantine_line(&mut self, stream: usize, line: &str) {
        let q = self.quarantine.entry(stream).or_insert_with(|| OpenQuarantine {
            lines: Vec::new(),
            count: 0,
            opened: Instant::now(),
        });
        q.lines.extend_from_slice(line.as_bytes());
        q.lines.push(b'\n');
        q.count += 1;
    }

    fn append(&mut self, stream: usize, partition: Vec<String>, columns: Vec<ArrayRef>) -> anyhow::Result<()> {
        let rows = columns.first().map_or(0, |c| c.len()) as i64;
        if rows == 0 {
            return Ok(());
        }
        let first_seq = self.logs[stream].next_seq;
        self.logs[stream].next_seq += rows;
        let batch = schema::seq_batch(columns, first_seq, &self.settings.schemas[stream]);
        let times = batch.column_by_name("time").expect("time column").as_primitive::<TimestampMicrosecondType>();
        let (tmin, tmax) = times.values().iter().fold((i64::MAX, i64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
        let key = (stream, partition);
        if !self.open.contains_key(&key) {
            let staging = self.settings.staging_dir.join(format!("{}.parquet", uuid::Uuid::now_v7()));
            let schema = self.settings.schemas[stream].clone();
            let file = OpenFile::create(staging, schema, &self.props, first_seq)?;
            self.open.insert(key.clone(), file);
        }
        let file = self.open.get_mut(&key).expect("opened above");
        file.push(batch, &self.pool)?;
        file.seq_last = first_seq + rows - 1;
        file.time_min = file.time_min.min(tmin);
        file.time_max = file.time_max.max(tmax);
        if file.estimated_size() >= self.settings.stream_roll_bytes[key.0] {
            let file = self.open.remove(&key).expect("present");
            self.seal(key.0, &key.1, file)?;
        }
        self.bound_memory()?;
        self.bound_row_groups()
    }

    /// Keeps the row groups the open files hold under [`OPEN_ROW_GROUPS`] by
    /// closing the file with the most (one with a single row group is left:
    /// closing it would free little and make a file per row group).
    fn bound_row_groups(&mut self) -> anyhow::Result<()> {
        while self.open.values().map(|f| f.row_groups).sum::<usize>() >= OPEN_ROW_GROUPS {
            let Some(key) = self
                .open
                .iter()
                .filter(|(_, f)| f.row_groups > 1)
                .max_by_key(|(_, f)| f.row_groups)
                .map(|(k, _)| k.clone())
            else {
                return Ok(());
            };
            let file = self.open.remove(&key).expect("present");
            self.seal(key.0, &key.1, file)?;
        }
        Ok(())
    }

    /// Keeps the row groups being built in memory under the budget by writing
    /// out the largest one to its staging file. Many partitions open at once
    /// (a backfill of a day, many tenants) then cost smaller row groups, not memory.
    fn bound_memory(&mut self) -> anyhow::Result<()> {
        loop {
            let total: usize = self.open.values().map(|f| f.pending_memory).sum();
            if total <= MEMORY_BUDGET {
                return Ok(());
            }
            let largest = self.open.values_mut().max_by_key(|f| f.pending_memory).expect("total > 0");
            largest.write_row_group(&self.pool)?;
        }
    }

    /// Commits if one is due: a file or quarantine open for `roll_age`, closed
    /// files in staging past four roll sizes, positions that moved `roll_age`
    /// ago, or shutdown. Then signs checkpoints that are due.
    pub fn tick(&mut self, shutdown: bool) -> anyhow::Result<()> {
        if self.replay.is_none() {
            let now = Instant::now();
            let findings: Vec<_> = self.watches.iter_mut().flat_map(|w| w.tick(now)).collect();
            self.record_findings(findings)?;
        }
        self.write_metrics(shutdown)?;
        let age = self.settings.roll_age;
        let roll_bytes = self.settings.roll_bytes;
        let due = shutdown || self.replay.is_none() && self.due_by_size_or_age(age, roll_bytes);
        if due {
            self.commit()?;
        }
        if let Some(every) = self.settings.retention_every
            && !shutdown
            && self.replay.is_none()
            && !self.settings.retention.is_empty()
            && self.last_retention.is_none_or(|t| t.elapsed() >= every)
        {
            let plan = self.apply_retention()?;
            if !plan.expire.is_empty() || !plan.quarantine.is_empty() {
                tracing::info!(
                    files = plan.expire.len(),
                    quarantine = plan.quarantine.len(),
                    held = plan.held.len(),
                    "Retention applied."
                );
            }
        }
        self.checkpoint(shutdown)
    }

    fn due_by_size_or_age(&self, age: Duration, roll_bytes: usize) -> bool {
        self.open.values().any(|f| f.opened.elapsed() >= age)
            || self.quarantine.values().any(|q| q.opened.elapsed() >= age || q.lines.len() >= roll_bytes)
            || self.sealed_bytes >= 4 * roll_bytes as u64
            || self.dirty && self.last_commit.elapsed() >= age
    }

    /// Signs checkpoints of the streams whose logs are due (all of them at shutdown).
    fn checkpoint(&mut self, shutdown: bool) -> anyhow::Result<()> {
        let Some(signer) = &self.settings.integrity.signer else { return Ok(()) };
        let mut archives = vec![&self.archive];
        archives.extend(self.settings.integrity.copy_to.as_ref());
        let (interval, heartbeat) = (self.settings.integrity.interval, self.settings.integrity.heartbeat);
        for log in &mut self.logs {
            self.runtime.block_on(log.checkpoint_if_due(&archives, signer, interval, heartbeat, shutdown))?;
        }
        Ok(())
    }

    /// Closes an open file into staging; it is uploaded by the next commit.
    fn seal(&mut self, stream: usize, partition: &[String], file: OpenFile) -> anyhow::Result<()> {
        let mut file = file;
        while !file.pending.is_empty() {
            file.write_row_group(&self.pool)?;
        }
        let OpenFile { writer, staging, first_seq, seq_last, events, time_min, time_max, .. } = file;
        let meta = writer.close()?;
        let name = &self.settings.streams[stream];
        let file_name = format!("{name}-{first_seq}-{}.parquet", uuid::Uuid::now_v7());
        let segments =
            std::iter::once(name.as_str()).chain(partition.iter().map(String::as_str)).chain([file_name.as_str()]);
        let path = self.archive.path_of(segments);
        let entry = LogEntry {
            index: 0,
            path: self.archive.relative(&path),
            sha256: String::new(),
            size: 0,
            rows: meta.file_metadata().num_rows() as u64,
            events_root: hex::encode(events.root()),
            seq_first: first_seq,
            seq_last,
            time_min,
            time_max,
            schema: schema::schema_hash(&self.settings.schemas[stream].file),
            plugins: self.settings.plugins[stream].clone(),
            committed: String::new(),
        };
        debug_assert_eq!(entry.rows, events.len());
        self.sealed_bytes += std::fs::metadata(&staging).map_or(0, |m| m.len());
        self.sealed.push(Sealed { stream, staging, path, entry });
        Ok(())
    }

    /// The Object Lock of a new file of `stream` whose newest event is
    /// `time_max`: until its retention lets it go (`_sluice`: the longest
    /// retention of any stream). `None` without a lock, a retention, or a
    /// date still ahead (old data past its period is expired, not locked).
    fn lock_until(&self, stream: usize, time_max: i64) -> Option<(super::LockMode, chrono::DateTime<chrono::Utc>)> {
        let mode = self.settings.object_lock?;
        let policies = &self.settings.retention;
        let period = match policies.get(&self.settings.streams[stream]) {
            Some(policy) => policy.period,
            None if self.settings.streams[stream] == self_audit::STREAM => {
                policies.values().map(|p| p.period).max_by_key(|p| p.max_days())?
            }
            None => return None,
        };
        let until = period.after(chrono::DateTime::from_timestamp_micros(time_max)?);
        (until > chrono::Utc::now()).then_some((mode, until))
    }

    /// Aborts the process at a named commit step when `SLUICE_FAILPOINT` names
    /// it: the crash tests' way to hit each step exactly.
    fn failpoint(set: &Option<String>, step: &str) {
        if set.as_deref() == Some(step) {
            eprintln!("sluice: failpoint {step}: aborting");
            std::process::abort();
        }
    }

    /// Closes every open file and makes them, the quarantine and the source
    /// positions durable together (the order is in `commit.rs`).
    fn commit(&mut self) -> anyhow::Result<()> {
        if let Some(volume) = &mut self.volume {
            let sources: Vec<String> = self.sources.iter().map(|s| s.name.clone()).collect();
            let rows = volume.drain(&sources, &self.settings.streams);
            if !rows.is_empty() {
                self.record_in(super::volume::STREAM, rows)?;
            }
        }
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for key in keys {
            let file = self.open.remove(&key).expect("listed");
            self.seal(key.0, &key.1, file)?;
        }
        let replayed = match &mut self.replay {
            Some(replay) if self.stopping => {
                let (keep, retire) = (std::mem::take(&mut replay.keep), std::mem::take(&mut replay.retire));
                for (stream, line) in keep {
                    self.quarantine_line(stream, &line);
                }
                retire
            }
            _ => Vec::new(),
        };
        let mut quarantine: Vec<(usize, OpenQuarantine)> = self.quarantine.drain().collect();
        quarantine.sort_by_key(|(stream, _)| *stream);
        let expiring = std::mem::take(&mut self.expiring_quarantine);
        let retire: Vec<String> =
            replayed.iter().map(|(_, q)| q.path.clone()).chain(expiring.iter().map(|q| q.path.clone())).collect();
        let retiring = std::mem::take(&mut self.retiring);
        if self.sealed.is_empty() && quarantine.is_empty() && !self.dirty && retire.is_empty() && retiring.is_empty() {
            return Ok(());
        }
        let n = self.commit_no + 1;
        let started = Instant::now();
        let bytes_before = self.stats.bytes;
        let mut quarantine: Vec<(usize, ObjectPath, OpenQuarantine)> = quarantine
            .into_iter()
            .map(|(stream, q)| {
                let name = &self.settings.streams[stream];
                let file_name = format!("{name}-{}.ndjson", uuid::Uuid::now_v7());
                (stream, self.archive.path_of(["_quarantine", name.as_str(), file_name.as_str()]), q)
            })
            .collect();
        let quarantine_paths: Vec<String> = quarantine.iter().map(|(_, p, _)| self.archive.relative(p)).collect();
        let mut paths: Vec<String> = self.sealed.iter().map(|s| s.entry.path.clone()).collect();
        paths.extend(quarantine_paths.iter().cloned());

        let archive = &self.archive;
        if !paths.is_empty() {
            self.runtime.block_on(commit::write_pending(archive, n, &paths))?;
        }
        Self::failpoint(&self.failpoint, "after-pending");
        let committed = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut next_index: Vec<u64> = self.logs.iter().map(StreamLog::size).collect();
        let mut entries: Vec<(usize, u64, Vec<u8>)> = Vec::new();
        let locks: Vec<_> = self.sealed.iter().map(|s| self.lock_until(s.stream, s.entry.time_max)).collect();
        for (i, sealed) in self.sealed.iter_mut().enumerate() {
            let (sha256, size) = self.runtime.block_on(commit_staged(archive, &sealed.path, &sealed.staging))?;
            sealed.entry.sha256 = hex::encode(sha256);
            sealed.entry.size = size;
            sealed.entry.committed = committed.clone();
            sealed.entry.index = next_index[sealed.stream];
            next_index[sealed.stream] += 1;
            self.stats.bytes += size;
            // locked before the commit names it: no committed file is ever unlocked
            if let Some((mode, until)) = locks[i] {
                self.runtime.block_on(super::lock_object(archive, &sealed.path, mode, until))?;
            }
            if i == 0 {
                Self::failpoint(&self.failpoint, "after-upload");
            }
            let entry = serde_json::to_vec(&sealed.entry).expect("entries serialize");
            entries.push((sealed.stream, sealed.entry.index, entry));
        }
        let mut expired = Vec::new();
        for (stream, mut entry) in retiring {
            entry.index = next_index[stream];
            next_index[stream] += 1;
            expired.push(entry.path.clone());
            entries.push((stream, entry.index, serde_json::to_vec(&entry).expect("entries serialize")));
        }
        // quarantine files taken out, each retired in its stream's log (one
        // the log does not name has no entry to retire), once
        let streams = &self.settings.streams;
        let retiring_quarantine = replayed.iter().map(|(stream, q)| (*stream, q, None)).chain(
            expiring
                .iter()
                .filter_map(|e| Some((streams.iter().position(|s| *s == e.stream)?, e.entry.as_ref()?, Some(e)))),
        );
        let mut retired_now = std::collections::BTreeSet::new();
        for (stream, q, expired) in retiring_quarantine {
            if !retired_now.insert(q.path.clone()) {
                continue;
            }
            let q = q.clone();
            let entry = QuarantineRetiredEntry {
                index: next_index[stream],
                retires: q.index,
                path: q.path,
                sha256: q.sha256,
                records: q.records,
                reason: if expired.is_some() { "retention" } else { "replay" }.into(),
                policy: expired.map(|e| e.policy.to_string()),
                period: expired.map(|e| e.policy.period.to_string()),
                cutoff: expired.map(|e| e.cutoff),
                committed: committed.clone(),
            };
            next_index[stream] += 1;
            entries.push((stream, entry.index, serde_json::to_vec(&entry).expect("entries serialize")));
        }
        for ((stream, path, q), relative) in quarantine.iter_mut().zip(&quarantine_paths) {
            let lines = std::mem::take(&mut q.lines);
            let entry = QuarantineEntry {
                index: next_index[*stream],
                path: relative.clone(),
                sha256: hex::encode(sha2::Sha256::digest(&lines)),
                size: lines.len() as u64,
                records: q.count,
                committed: committed.clone(),
            };
            next_index[*stream] += 1;
            self.stats.bytes += entry.size;
            self.runtime.block_on(commit_file(archive, path, lines.into()))?;
            entries.push((*stream, entry.index, serde_json::to_vec(&entry).expect("entries serialize")));
        }

        let mut record = CommitRecord {
            commit: n,
            time: committed,
            sources: self.retired.clone(),
            entries: BTreeMap::new(),
            quarantine: quarantine_paths,
            pipeline: Some(self.settings.identity.clone()),
            clean_stop: self.stopping,
            retired_quarantine: retire,
            expired,
            alert_windows: self.alerting.state(),
        };
        for run in &self.sources {
            record.sources.insert(run.name.clone(), run.state.clone());
        }
        for (stream, index, bytes) in &entries {
            let text = String::from_utf8(bytes.clone()).expect("JSON is UTF-8");
            record.entries.entry(self.settings.streams[*stream].clone()).or_default().push((*index, text));
        }
        self.runtime.block_on(commit::write_record(archive, &record))?;
        Self::failpoint(&self.failpoint, "after-commit-record");
        if let Some(committed) = &self.settings.committed {
            let mut committed = committed.lock().expect("not poisoned");
            for run in &self.sources {
                committed.insert(run.name.clone(), run.state.positions.clone());
            }
        }

        let mut grown = std::collections::BTreeSet::new();
        for (i, (stream, index, bytes)) in entries.into_iter().enumerate() {
            self.runtime.block_on(self.logs[stream].append_exact(archive, index, bytes))?;
            grown.insert(stream);
            if i == 0 {
                Self::failpoint(&self.failpoint, "after-first-entry");
            }
        }
        for stream in grown {
            self.runtime.block_on(self.logs[stream].save_state(archive));
        }
        self.runtime.block_on(commit::delete_retired(archive, &record.retired_quarantine))?;
        self.runtime.block_on(commit::delete_retired(archive, &record.expired))?;
        for path in &record.expired {
            tracing::info!(%path, "Expired file deleted.");
        }
        self.runtime.block_on(commit::clear_pending(archive, n))?;
        for sealed in self.sealed.drain(..) {
            std::fs::remove_file(&sealed.staging).ok();
            tracing::info!(path = %sealed.path, rows = sealed.entry.rows, bytes = sealed.entry.size, "File committed.");
        }
        for (_, path, q) in &quarantine {
            tracing::info!(%path, records = q.count, "Quarantine file committed.");
        }
        let (secs, bytes) = (started.elapsed().as_secs_f64(), self.stats.bytes - bytes_before);
        tracing::info!(
            commit = n,
            files = paths.len(),
            bytes,
            secs = format!("{secs:.2}"),
            mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-9)),
            "Committed."
        );
        self.stats.files += (paths.len()) as u64;
        self.stats.commits += 1;
        self.sealed_bytes = 0;
        self.commit_no = n;
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }
}

/// POSTs one finding to the alert webhook: three tries, 1 s and 2 s apart.
async fn deliver(client: reqwest::Client, url: String, body: String) {
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(attempt)).await;
        }
        let sent = client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
        match sent.map(|r| r.status()) {
            Ok(status) if status.is_success() => return,
            Ok(status) => tracing::warn!(%status, attempt, "The alert webhook refused a finding."),
            Err(e) => tracing::warn!(error = %e, attempt, "Cannot reach the alert webhook."),
        }
    }
    tracing::error!("A finding did not reach the alert webhook after three tries (it is in _sluice).");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{BatchBuilder, check_event, file_batch};

    /// Batch `b` of the test events: `rows` checked events, every kind of
    /// column, a list of structs (several leaves), nulls, repeated and unique
    /// values.
    fn columns(schema: &StreamSchema, b: i64, rows: i64) -> Vec<ArrayRef> {
        let mut builder = BatchBuilder::new(schema);
        for i in 0..rows {
            let resources = if i % 3 == 0 {
                "[]".to_string()
            } else {
                format!(r#"[{{"type":"pod","name":"p{i}"}},{{"uid":"u{}"}}]"#, i % 5)
            };
            let extra = if i % 4 == 0 { String::new() } else { format!(r#","extra_n":{}"#, i * b) };
            let event = format!(
                r#"{{"time":{},"class_uid":300{},"actor_user_name":"user-{}","message":"event {b} {i}","resources":{resources},"unmapped":{{"k":{i}}},"metadata_uid":"id-{b}-{i}"{extra}}}"#,
                1_793_538_000_000_000 + b * 1_000_000 + i,
                i % 4,
                i % 7
            );
            builder.push(check_event(&event, 1_793_538_000_000_000, "auth", schema).unwrap());
        }
        builder.finish()
    }

    fn test_schema() -> StreamSchema {
        StreamSchema::new(vec![("extra_n".into(), schema::Kind::Int64)])
    }

    /// Row groups whose columns were encoded on the pool are the bytes that
    /// `ArrowWriter` writes from the same batches on one thread: every kind
    /// of column, dictionary and plain columns, the `time` page index, the
    /// bloom filter, two row groups.
    #[test]
    fn row_groups_encoded_on_the_pool_are_what_arrow_writer_writes() {
        let schema = test_schema();
        let batches: Vec<_> = (0..3i64).map(|b| file_batch(columns(&schema, b, 700), b * 700, &schema).0).collect();
        let props = writer_properties(3).unwrap();

        let mut arrow_writer = ArrowWriter::try_new(Vec::new(), schema.file.clone(), Some(props.clone())).unwrap();
        arrow_writer.write(&batches[0]).unwrap();
        arrow_writer.write(&batches[1]).unwrap();
        arrow_writer.flush().unwrap();
        arrow_writer.write(&batches[2]).unwrap();
        let expected = arrow_writer.into_inner().unwrap();

        let writer = ArrowWriter::try_new(Vec::new(), schema.file.clone(), Some(props)).unwrap();
        let (mut writer, columns) = writer.into_serialized_writer().unwrap();
        for (i, group) in [&batches[..2], &batches[2..]].into_iter().enumerate() {
            let encoders = columns.create_column_writers(i).unwrap();
            let chunks = encode_columns(&schema.file, writer.schema_descr(), encoders, group.to_vec()).unwrap();
            let mut row_group = writer.next_row_group().unwrap();
            for chunk in chunks {
                chunk.append_to_row_group(&mut row_group).unwrap();
            }
            row_group.close().unwrap();
        }
        let actual = writer.into_inner().unwrap();
        assert_eq!(actual.len(), expected.len());
        assert!(actual == expected, "the pool's file differs from ArrowWriter's");
    }

    /// A file written through `push` and `write_row_group`, whose row groups
    /// cut batches in two (4 batches of 300 rows, row groups of 500): its
    /// events root is over the hashes `file_batch` gives the same rows, in
    /// row order, and its bytes are what `ArrowWriter` writes from those
    /// batches with the same row-group size (so `seq` and `event_hash` too).
    #[test]
    fn a_file_written_by_row_groups_is_hashed_in_row_order() {
        let schema = Arc::new(test_schema());
        let props = writer_properties(3).unwrap().into_builder().set_max_row_group_row_count(Some(500)).build();
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("file.parquet");
        let pool = Pool::new().unwrap();
        let mut file = OpenFile::create(staging.clone(), schema.clone(), &props, 10).unwrap();
        let (mut batches, mut hashes) = (Vec::new(), Vec::new());
        for b in 0..4i64 {
            let (columns, seq) = (columns(&schema, b, 300), 10 + b * 300);
            let (batch, batch_hashes) = file_batch(columns.clone(), seq, &schema);
            batches.push(batch);
            hashes.extend(batch_hashes);
            file.push(schema::seq_batch(columns, seq, &schema), &pool).unwrap();
        }
        assert_eq!((file.row_groups, file.pending_rows), (2, 200));
        while !file.pending.is_empty() {
            file.write_row_group(&pool).unwrap();
        }
        assert_eq!(file.row_groups, 3);
        assert_eq!(file.events.len(), 1200);
        assert_eq!(file.events.root(), merkle::root(&hashes));
        file.writer.into_inner().unwrap().into_inner().unwrap();
        let written = std::fs::read(&staging).unwrap();

        let mut arrow_writer = ArrowWriter::try_new(Vec::new(), schema.file.clone(), Some(props)).unwrap();
        for batch in &batches {
            arrow_writer.write(batch).unwrap();
        }
        let expected = arrow_writer.into_inner().unwrap();
        assert_eq!(written.len(), expected.len());
        assert!(written == expected, "the file differs from ArrowWriter's");
    }
}

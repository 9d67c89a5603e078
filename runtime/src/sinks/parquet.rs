//! The sink: one open Parquet file per (stream, partition), rolled by size or
//! age, committed whole to the archive; and the quarantine, NDJSON files under
//! `_quarantine/<stream>/`, apart from every stream's partitions.
//!
//! Files are encoded into a local staging file while open (memory holds only
//! the row group in progress) and uploaded when closed.

use super::store::{Archive, commit_file};
use crate::integrity::log::{LogEntry, PluginRef, StreamLog};
use crate::integrity::merkle::{self, Hash};
use crate::integrity::note::NoteSigner;
use crate::schema::{self, StreamSchema};
use anyhow::Context;
use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Memory the sink may hold in row groups being built, over all open files.
const MEMORY_BUDGET: usize = 64 << 20;

/// Rows per row group at most (fewer when the memory budget flushes early).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// What workers send to the sink.
pub enum SinkMsg {
    /// Checked events of one stream, split by partition (`key=value` path segments).
    Events { stream: usize, partitions: Vec<(Vec<String>, Vec<ArrayRef>)> },
    /// Quarantine records of one stream, one JSON line each.
    Quarantine { stream: usize, lines: Vec<String> },
}

/// How the sink lays out and rolls files.
pub struct SinkSettings {
    pub streams: Vec<String>,
    pub roll_bytes: usize,
    pub roll_age: Duration,
    pub staging_dir: PathBuf,
    pub zstd_level: i32,
    /// Per stream, its columns.
    pub schemas: Vec<Arc<StreamSchema>>,
    /// Per stream, the plugins whose output it holds (recorded in the log).
    pub plugins: Vec<Vec<PluginRef>>,
    pub integrity: IntegritySettings,
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

/// What the sink wrote.
#[derive(Debug, Default, Clone)]
pub struct SinkStats {
    pub events: u64,
    pub quarantined: u64,
    pub files: u64,
    pub bytes: u64,
}

struct OpenFile {
    writer: ArrowWriter<BufWriter<File>>,
    staging: PathBuf,
    first_seq: i64,
    opened: Instant,
    hashes: Vec<Hash>,
    seq_last: i64,
    time_min: i64,
    time_max: i64,
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
    logs: Vec<StreamLog>,
    open: HashMap<(usize, Vec<String>), OpenFile>,
    quarantine: HashMap<usize, OpenQuarantine>,
    pub stats: SinkStats,
}

impl Sink {
    pub fn new(archive: Archive, runtime: tokio::runtime::Handle, settings: SinkSettings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.staging_dir)
            .with_context(|| format!("cannot create staging dir {}", settings.staging_dir.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(settings.zstd_level)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_column_bloom_filter_enabled(ColumnPath::from("metadata_uid"), true)
            // sized for a full row group: the filter is allocated up front, per open file
            .set_column_bloom_filter_max_ndv(ColumnPath::from("metadata_uid"), ROW_GROUP_ROWS as u64)
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
            .build();
        let mut logs = Vec::new();
        for stream in &settings.streams {
            let origin = match &settings.integrity.origin {
                Some(o) => format!("{o}/{stream}"),
                None => crate::integrity::log::default_origin(&archive.location, stream),
            };
            logs.push(runtime.block_on(StreamLog::load(&archive, stream, origin))?);
        }
        Ok(Sink {
            archive,
            runtime,
            settings,
            props,
            logs,
            open: HashMap::new(),
            quarantine: HashMap::new(),
            stats: SinkStats::default(),
        })
    }

    /// Handles one message, then closes whatever is due.
    pub fn handle(&mut self, msg: SinkMsg) -> anyhow::Result<()> {
        match msg {
            SinkMsg::Events { stream, partitions } => {
                for (partition, columns) in partitions {
                    self.append(stream, partition, columns)?;
                }
            }
            SinkMsg::Quarantine { stream, lines } => {
                let q = self.quarantine.entry(stream).or_insert_with(|| OpenQuarantine {
                    lines: Vec::new(),
                    count: 0,
                    opened: Instant::now(),
                });
                for line in lines {
                    q.lines.extend_from_slice(line.as_bytes());
                    q.lines.push(b'\n');
                    q.count += 1;
                }
            }
        }
        self.roll_due(false)
    }

    fn append(&mut self, stream: usize, partition: Vec<String>, columns: Vec<ArrayRef>) -> anyhow::Result<()> {
        let rows = columns.first().map_or(0, |c| c.len()) as i64;
        let first_seq = self.logs[stream].next_seq;
        self.logs[stream].next_seq += rows;
        let (batch, hashes) = schema::file_batch(columns, first_seq, &self.settings.schemas[stream]);
        let times = batch.column_by_name("time").expect("time column").as_primitive::<TimestampMicrosecondType>();
        let (tmin, tmax) = times.values().iter().fold((i64::MAX, i64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
        let key = (stream, partition);
        if !self.open.contains_key(&key) {
            let staging = self.settings.staging_dir.join(format!("{}.parquet", uuid::Uuid::now_v7()));
            let file = File::create(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
            let writer = ArrowWriter::try_new(
                BufWriter::with_capacity(64 << 10, file),
                self.settings.schemas[stream].file.clone(),
                Some(self.props.clone()),
            )?;
            let file = OpenFile {
                writer,
                staging,
                first_seq,
                opened: Instant::now(),
                hashes: Vec::new(),
                seq_last: first_seq,
                time_min: i64::MAX,
                time_max: i64::MIN,
            };
            self.open.insert(key.clone(), file);
        }
        let file = self.open.get_mut(&key).expect("opened above");
        file.writer.write(&batch)?;
        file.hashes.extend(hashes);
        file.seq_last = first_seq + rows - 1;
        file.time_min = file.time_min.min(tmin);
        file.time_max = file.time_max.max(tmax);
        self.stats.events += rows as u64;
        if file.writer.bytes_written() + file.writer.in_progress_size() >= self.settings.roll_bytes {
            let file = self.open.remove(&key).expect("present");
            self.close(key.0, &key.1, file)?;
        }
        self.bound_memory()
    }

    /// Keeps the row groups being built in memory under the budget by writing
    /// out the largest one to its staging file. Many partitions open at once
    /// (a backfill of a day, many tenants) then cost smaller row groups, not memory.
    fn bound_memory(&mut self) -> anyhow::Result<()> {
        loop {
            let total: usize = self.open.values().map(|f| f.writer.memory_size()).sum();
            if total <= MEMORY_BUDGET {
                return Ok(());
            }
            let largest = self.open.values_mut().max_by_key(|f| f.writer.memory_size()).expect("total > 0");
            largest.writer.flush()?;
        }
    }

    /// Closes files that are old enough (or all of them, at shutdown).
    pub fn roll_due(&mut self, all: bool) -> anyhow::Result<()> {
        let age = self.settings.roll_age;
        let due: Vec<_> =
            self.open.iter().filter(|(_, f)| all || f.opened.elapsed() >= age).map(|(k, _)| k.clone()).collect();
        for key in due {
            let file = self.open.remove(&key).expect("listed");
            self.close(key.0, &key.1, file)?;
        }
        let due: Vec<usize> = self
            .quarantine
            .iter()
            .filter(|(_, q)| all || q.opened.elapsed() >= age || q.lines.len() >= self.settings.roll_bytes)
            .map(|(s, _)| *s)
            .collect();
        for stream in due {
            let q = self.quarantine.remove(&stream).expect("listed");
            let name = &self.settings.streams[stream];
            let file_name = format!("{name}-{}.ndjson", uuid::Uuid::now_v7());
            let path = self.archive.path_of(["_quarantine", name.as_str(), file_name.as_str()]);
            let size = q.lines.len() as u64;
            self.runtime.block_on(commit_file(&self.archive, &path, q.lines.into()))?;
            self.stats.quarantined += q.count;
            self.stats.files += 1;
            self.stats.bytes += size;
            tracing::info!(%path, records = q.count, bytes = size, "Quarantine file committed.");
        }
        self.checkpoint(all)
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

    fn close(&mut self, stream: usize, partition: &[String], file: OpenFile) -> anyhow::Result<()> {
        let OpenFile { writer, staging, first_seq, seq_last, hashes, time_min, time_max, .. } = file;
        let meta = writer.close()?;
        let bytes = std::fs::read(&staging).with_context(|| format!("cannot read back {}", staging.display()))?;
        let name = &self.settings.streams[stream];
        let file_name = format!("{name}-{first_seq}-{}.parquet", uuid::Uuid::now_v7());
        let segments =
            std::iter::once(name.as_str()).chain(partition.iter().map(String::as_str)).chain([file_name.as_str()]);
        let path = self.archive.path_of(segments);
        let size = bytes.len() as u64;
        let entry = LogEntry {
            index: 0,
            path: self.archive.relative(&path),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size,
            rows: hashes.len() as u64,
            events_root: hex::encode(merkle::root(&hashes)),
            seq_first: first_seq,
            seq_last,
            time_min,
            time_max,
            schema: schema::schema_hash(&self.settings.schemas[stream].file),
            plugins: self.settings.plugins[stream].clone(),
            committed: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        let (archive, log) = (&self.archive, &mut self.logs[stream]);
        self.runtime
            .block_on(async {
                commit_file(archive, &path, bytes.into()).await?;
                log.append(archive, entry).await
            })
            .with_context(|| format!("file kept at {}", staging.display()))?;
        std::fs::remove_file(&staging).ok();
        self.stats.files += 1;
        self.stats.bytes += size;
        tracing::info!(%path, rows = meta.file_metadata().num_rows(), bytes = size, "File committed.");
        Ok(())
    }
}

//! Sources turn files, streams and archived events into batches of raw
//! records (one per line, or one per archived event).
//! Each source runs on its own thread and blocks when the workers fall behind,
//! so a fast source never grows memory without bound.
//!
//! Every batch carries where its source stood after it (for files: the byte
//! offset after the batch's last line, per file). The sink commits those
//! positions together with the data they produced, and a restart resumes from
//! them (see `sinks::commit`).

mod archive;
mod file;
mod objects;
mod spool;
mod stdin;

pub use archive::{ArchiveReport, ArchiveSource};
pub use file::FileSource;
pub use objects::ObjectSource;
pub use spool::{Committed, Spool, SpoolSource};
pub use stdin::StdinSource;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How far a source has read one file. The file is recognised by its first
/// `fingerprint_len` bytes (whose SHA-256 is `fingerprint`), not by its name or
/// inode, so a copied archive or a renamed file resumes correctly and a new
/// file under an old name starts from its beginning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePosition {
    pub fingerprint: String,
    pub fingerprint_len: u64,
    /// Bytes read (of the decompressed stream, for gzip), always at a line end.
    pub offset: u64,
}

/// Where a source stands: per file path, its position.
pub type Positions = BTreeMap<String, FilePosition>;

/// Records handed to the workers together.
pub struct RawBatch {
    /// Index of the source in the pipeline.
    pub source: usize,
    /// Number of this batch within its source, from 0 in each run: the sink
    /// puts batches back in this order.
    pub no: u64,
    pub records: Vec<Vec<u8>>,
    /// When the batch was read, microseconds since the epoch (the events'
    /// `observed_time` unless a plugin sets one).
    pub observed: i64,
    /// The position, after this batch, of every file it read from.
    pub positions: Vec<(String, FilePosition)>,
    /// The tenant every record of the batch belongs to, when the source
    /// knows it (an http source, from the sender's token): it overrides
    /// whatever the events say.
    pub tenant: Option<Arc<str>>,
}

/// Collects lines into batches and sends them on, with the positions they
/// reach.
pub struct Batcher {
    source: usize,
    batch_size: usize,
    records: Vec<Vec<u8>>,
    bytes: usize,
    tx: Sender<RawBatch>,
    no: u64,
    /// The file being read and how far.
    current: Option<(String, FilePosition)>,
    /// Files left since the last batch, with their final positions.
    left: Vec<(String, FilePosition)>,
    /// The last position sent per file: a position is sent only when it moved,
    /// so an idle source sends nothing (and causes no commits).
    sent: std::collections::HashMap<String, FilePosition>,
    /// The tenant of the records being collected.
    tenant: Option<Arc<str>>,
}

/// A batch is sent once it has this many bytes, whatever its record count.
const BATCH_BYTES: usize = 1 << 20;

impl Batcher {
    pub fn new(source: usize, batch_size: usize, tx: Sender<RawBatch>) -> Self {
        Batcher {
            source,
            batch_size,
            records: Vec::with_capacity(batch_size),
            bytes: 0,
            tx,
            no: 0,
            current: None,
            left: Vec::new(),
            sent: std::collections::HashMap::new(),
            tenant: None,
        }
    }

    /// The records that follow belong to this tenant (a batch holds one
    /// tenant's records only). Returns false when the pipeline has shut down.
    pub fn set_tenant(&mut self, tenant: Option<String>) -> bool {
        if self.tenant.as_deref() == tenant.as_deref() {
            return true;
        }
        let sent = self.records.is_empty() || self.flush();
        self.tenant = tenant.map(Arc::from);
        sent
    }

    fn unsent(&self, (path, position): &(String, FilePosition)) -> bool {
        self.sent.get(path) != Some(position)
    }

    /// The lines that follow come from this file, which has been read up to
    /// `position.offset`.
    pub fn begin_file(&mut self, path: &str, position: FilePosition) {
        if let Some((p, _)) = &self.current
            && p == path
        {
            self.current = Some((path.to_string(), position));
            return;
        }
        if let Some(previous) = self.current.take()
            && self.unsent(&previous)
        {
            self.left.push(previous);
        }
        self.current = Some((path.to_string(), position));
    }

    /// The current file's fingerprint grew (it was shorter than the
    /// fingerprint length when opened).
    pub fn set_fingerprint(&mut self, fingerprint: &str, len: u64) {
        if let Some((_, position)) = &mut self.current {
            position.fingerprint = fingerprint.to_string();
            position.fingerprint_len = len;
        }
    }

    /// Adds one line (without its line ending) that ends at `offset` in the
    /// current file (ignored when there is none). Blank lines are skipped, but
    /// still move the position. Returns false when the pipeline has shut down.
    pub fn push(&mut self, mut line: Vec<u8>, offset: u64) -> bool {
        if let Some((_, position)) = &mut self.current {
            position.offset = offset;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            return true;
        }
        self.bytes += line.len();
        self.records.push(line);
        if self.records.len() >= self.batch_size || self.bytes >= BATCH_BYTES {
            return self.flush();
        }
        true
    }

    /// Adds one record as it is: no line ending stripped, kept even if empty
    /// (a quarantined record being replayed). Returns false when the
    /// pipeline has shut down.
    pub fn push_record(&mut self, record: Vec<u8>) -> bool {
        self.bytes += record.len();
        self.records.push(record);
        if self.records.len() >= self.batch_size || self.bytes >= BATCH_BYTES {
            return self.flush();
        }
        true
    }

    /// Adds one record as it is that ends at `offset` of the current file
    /// (a row number, for an archive source). Returns false when the pipeline
    /// has shut down.
    pub fn push_record_at(&mut self, record: Vec<u8>, offset: u64) -> bool {
        self.skip_to(offset);
        self.push_record(record)
    }

    /// Moves the current file's position past what was skipped.
    pub fn skip_to(&mut self, offset: u64) {
        if let Some((_, position)) = &mut self.current {
            position.offset = offset;
        }
    }

    /// Sends what has been collected (also a batch of no records whose
    /// positions moved, so that skipped lines are committed too). Returns
    /// false when nobody listens.
    pub fn flush(&mut self) -> bool {
        let mut positions = std::mem::take(&mut self.left);
        if let Some(current) = &self.current
            && self.unsent(current)
        {
            positions.push(current.clone());
        }
        if self.records.is_empty() && positions.is_empty() {
            return true;
        }
        for (path, position) in &positions {
            self.sent.insert(path.clone(), position.clone());
        }
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(self.batch_size));
        self.bytes = 0;
        let batch = RawBatch {
            source: self.source,
            no: self.no,
            records,
            observed: now_micros(),
            positions,
            tenant: self.tenant.clone(),
        };
        self.no += 1;
        self.tx.send(batch).is_ok()
    }
}

/// Something that reads until it is exhausted (or told to stop).
pub trait Source: Send {
    fn run(self: Box<Self>, batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()>;
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

//! Sources turn files and streams into batches of raw records (one per line).
//! Each source runs on its own thread and blocks when the workers fall behind,
//! so a fast source never grows memory without bound.

mod file;
mod stdin;

pub use file::FileSource;
pub use stdin::StdinSource;

use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Records handed to the workers together.
pub struct RawBatch {
    /// Index of the source in the pipeline.
    pub source: usize,
    pub records: Vec<Vec<u8>>,
    /// When the batch was read, microseconds since the epoch (the events'
    /// `observed_time` unless a plugin sets one).
    pub observed: i64,
}

/// Collects lines into batches and sends them on.
pub struct Batcher {
    source: usize,
    batch_size: usize,
    records: Vec<Vec<u8>>,
    bytes: usize,
    tx: Sender<RawBatch>,
    pub read: Arc<AtomicU64>,
}

/// A batch is sent once it has this many bytes, whatever its record count.
const BATCH_BYTES: usize = 1 << 20;

impl Batcher {
    pub fn new(source: usize, batch_size: usize, tx: Sender<RawBatch>, read: Arc<AtomicU64>) -> Self {
        Batcher { source, batch_size, records: Vec::with_capacity(batch_size), bytes: 0, tx, read }
    }

    /// Adds one line (without its line ending). Blank lines are skipped.
    /// Returns false when the pipeline has shut down.
    pub fn push(&mut self, mut line: Vec<u8>) -> bool {
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

    /// Sends what has been collected. Returns false when nobody listens.
    pub fn flush(&mut self) -> bool {
        if self.records.is_empty() {
            return true;
        }
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(self.batch_size));
        self.read.fetch_add(records.len() as u64, Ordering::Relaxed);
        self.bytes = 0;
        let batch = RawBatch { source: self.source, records, observed: now_micros() };
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

//! The write-ahead spool of an `http` or `syslog` source: what makes a 200
//! mean "durable".
//!
//! The HTTP handler appends each accepted request as one block to the
//! source's current segment file and fsyncs it before answering (the syslog
//! listener appends what each read brought, without an fsync); the
//! source's reader thread reads the segments in order and hands their
//! records to the pipeline, and the sink commits its position with the
//! events they produced — so a crash after a 200 loses nothing (the spool is
//! read again from the last commit) and duplicates nothing.
//!
//! Layout: `<spool_dir>/<source>/<20-digit number>.spool`. A block is one
//! line per record, `TENANT\tRECORD\n` — or `TENANT\x0bHEX\n` for a record
//! that holds a newline (a multi-line syslog message) — closed by a line
//! `.\n`. The tenant is empty when the source has none. The
//! reader takes a block only once its closing line is there, so a request
//! whose write was cut short by a crash (never acknowledged) is never read.
//! A run never appends to an older segment: each start opens a new one, and
//! one grown past [`SEGMENT_BYTES`] makes way for the next. Segment numbers
//! start from the clock (µs) and only grow, so a name is never used twice —
//! committed positions are kept by name, and a reused name would inherit an
//! old position. A segment is sealed once a later one exists; a sealed
//! segment that a commit read to its end is deleted.

use super::{Batcher, FilePosition, Positions, Source};
use anyhow::Context;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A segment makes way for the next past this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// How often an idle reader looks for new blocks.
const POLL: Duration = Duration::from_millis(20);
/// How often the reader deletes the segments commits have finished.
const CLEANUP: Duration = Duration::from_secs(1);

/// Committed positions per source, as the sink last wrote them.
pub type Committed = Mutex<BTreeMap<String, Positions>>;

/// One http source's spool: appended to by the HTTP handler, read by [`SpoolSource`].
pub struct Spool {
    dir: PathBuf,
    writer: Mutex<Segment>,
    /// Bytes appended (including those left unread by the last run).
    written: AtomicU64,
    /// Bytes the reader has taken.
    read: AtomicU64,
    /// The segment being written, and how much of it is whole and synced:
    /// the reader reads no further, so it never takes a block whose write
    /// or fsync may still fail (and be cut back out).
    current: AtomicU64,
    visible: AtomicU64,
    /// Set when the listeners stop: appends are refused from then on.
    closed: AtomicBool,
}

struct Segment {
    number: u64,
    file: File,
    size: u64,
}

fn segment_name(number: u64) -> String {
    format!("{number:020}.spool")
}

/// The segments in `dir`, by number.
fn segments(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list the spool {}", dir.display()))? {
        let path = entry?.path();
        let number = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".spool")?.parse().ok());
        if let Some(number) = number {
            found.push((number, path));
        }
    }
    found.sort();
    Ok(found)
}

impl Spool {
    /// Opens a source's spool and starts a new segment; `committed` is where
    /// the last commit left the reader (segments it read whole are deleted).
    pub fn open(dir: &Path, committed: &Positions) -> anyhow::Result<Spool> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the spool {}", dir.display()))?;
        let existing = segments(dir)?;
        let mut unread = 0;
        for (number, path) in &existing {
            let size = std::fs::metadata(path)?.len();
            let done = committed.get(&segment_name(*number)).map_or(0, |p| p.offset);
            if done >= size {
                std::fs::remove_file(path).with_context(|| format!("cannot delete {}", path.display()))?;
            } else {
                unread += size - done;
            }
        }
        let segment = Segment::create(dir, Segment::next_number(existing.last().map(|(n, _)| *n)))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            current: AtomicU64::new(segment.number),
            visible: AtomicU64::new(0),
            writer: Mutex::new(segment),
            written: AtomicU64::new(unread),
            read: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Refuses appends from now on, once any append under way is done.
    pub fn close(&self) {
        let _writer = self.writer.lock().expect("not poisoned");
        self.closed.store(true, Ordering::SeqCst);
    }

    /// How far the reader may read segment `number`: to the end of a sealed
    /// one; of the one being written, what is whole and synced.
    fn readable(&self, number: u64, size: u64) -> u64 {
        if self.current.load(Ordering::SeqCst) == number { self.visible.load(Ordering::SeqCst).min(size) } else { size }
    }

    /// Starts the next segment (the writer's lock held).
    fn rotate(&self, segment: &mut Segment) -> std::io::Result<()> {
        let next = Segment::create(&self.dir, Segment::next_number(Some(segment.number)))?;
        // the reader must never pair the new number with the old length
        self.visible.store(0, Ordering::SeqCst);
        self.current.store(next.number, Ordering::SeqCst);
        *segment = next;
        Ok(())
    }

    /// Bytes accepted and not yet read by the pipeline.
    pub fn unread(&self) -> u64 {
        self.written.load(Ordering::Relaxed).saturating_sub(self.read.load(Ordering::Relaxed))
    }

    /// Appends one request's records for `tenant` as one block and fsyncs it.
    pub fn append(&self, tenant: &str, records: &[Vec<u8>]) -> std::io::Result<()> {
        self.append_block(tenant, records, true)
    }

    /// Appends records as one block; with `sync`, fsyncs it before returning.
    pub fn append_block(&self, tenant: &str, records: &[Vec<u8>], sync: bool) -> std::io::Result<()> {
        let mut block = Vec::with_capacity(records.iter().map(|r| r.len() + tenant.len() + 2).sum::<usize>() + 2);
        for record in records {
            block.extend_from_slice(tenant.as_bytes());
            if record.contains(&b'\n') {
                block.push(0x0b);
                block.extend_from_slice(hex::encode(record).as_bytes());
            } else {
                block.push(b'\t');
                block.extend_from_slice(record);
            }
            block.push(b'\n');
        }
        block.extend_from_slice(b".\n");
        let mut segment = self.writer.lock().expect("not poisoned");
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the spool is closed (the pipeline is stopping)"));
        }
        if segment.size >= SEGMENT_BYTES {
            self.rotate(&mut segment)?;
        }
        let written =
            segment.file.write_all(&block).and_then(|()| if sync { segment.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // the request is refused: take back what was written of it, so
            // that neither it nor a torn line before the next block is read
            if let Err(undo) = segment.file.set_len(segment.size).and_then(|()| segment.file.sync_data()) {
                tracing::error!(error = %undo, "Cannot take a refused request out of the spool; it may be archived.");
            }
            if let Err(e) = self.rotate(&mut segment) {
                tracing::error!(error = %e, "Cannot start a new spool segment.");
            }
            return Err(e);
        }
        segment.size += block.len() as u64;
        self.visible.store(segment.size, Ordering::SeqCst);
        self.written.fetch_add(block.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Segment {
    /// A number above `last` and above every earlier run's (from the clock).
    fn next_number(last: Option<u64>) -> u64 {
        let now = u64::try_from(super::now_micros()).unwrap_or(0);
        last.map_or(now, |l| now.max(l + 1))
    }

    fn create(dir: &Path, number: u64) -> std::io::Result<Segment> {
        let file = OpenOptions::new().create_new(true).append(true).open(dir.join(segment_name(number)))?;
        // the new name must survive a crash too
        File::open(dir)?.sync_all()?;
        Ok(Segment { number, file, size: 0 })
    }
}

/// Reads a spool's segments into the pipeline, one batch per tenant at a time.
pub struct SpoolSource {
    pub spool: Arc<Spool>,
    /// The source's name: its committed positions are looked up under it.
    pub name: String,
    /// Where the last commit left each segment.
    pub resume: Positions,
    /// Positions as the sink commits them (sealed segments read whole are deleted).
    pub committed: Arc<Committed>,
}

impl SpoolSource {
    /// Deletes sealed segments that a commit has read to their end.
    fn delete_committed(&self, before: u64) {
        let committed = self.committed.lock().expect("not poisoned").get(&self.name).cloned().unwrap_or_default();
        let Ok(found) = segments(&self.spool.dir) else { return };
        for (number, path) in found.into_iter().filter(|(n, _)| *n < before) {
            let size = std::fs::metadata(&path).map_or(u64::MAX, |m| m.len());
            if committed.get(&segment_name(number)).is_some_and(|p| p.offset >= size) {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::debug!(segment = %path.display(), "Spool segment committed and deleted."),
                    Err(e) => tracing::warn!(segment = %path.display(), error = %e, "Cannot delete a spool segment."),
                }
            }
        }
    }
}

impl Source for SpoolSource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        // how far each segment has been read in this run
        let mut offsets: BTreeMap<u64, u64> = BTreeMap::new();
        let mut buffer: Vec<u8> = Vec::new();
        let mut last_cleanup = std::time::Instant::now();
        loop {
            let found = segments(&self.spool.dir)?;
            let mut progressed = false;
            for (i, (number, path)) in found.iter().enumerate() {
                let name = segment_name(*number);
                let sealed = i + 1 < found.len();
                let start = *offsets.entry(*number).or_insert_with(|| self.resume.get(&name).map_or(0, |p| p.offset));
                let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let size = self.spool.readable(*number, file.metadata()?.len());
                if start >= size {
                    continue;
                }
                file.seek(SeekFrom::Start(start))?;
                buffer.clear();
                (&mut file).take(size - start).read_to_end(&mut buffer)?;
                batcher
                    .begin_file(&name, FilePosition { fingerprint: name.clone(), fingerprint_len: 0, offset: start });
                let (mut block_start, mut at) = (0, 0);
                let mut lines: Vec<(usize, usize)> = Vec::new();
                while let Some(len) = buffer[at..].iter().position(|&b| b == b'\n') {
                    let line = (at, at + len);
                    at += len + 1;
                    if &buffer[line.0..line.1] != b"." {
                        lines.push(line);
                        continue;
                    }
                    // a whole block: its records, each ending at its line's end, then its closing line
                    for &(s, e) in &lines {
                        let text = &buffer[s..e];
                        let at = || {
                            format!(
                                "{}: a spool line that is not TENANT TAB RECORD at byte {}",
                                path.display(),
                                start + s as u64
                            )
                        };
                        let tab = text.iter().position(|&b| b == b'\t' || b == 0x0b).with_context(at)?;
                        let record = match text[tab] {
                            b'\t' => text[tab + 1..].to_vec(),
                            _ => hex::decode(&text[tab + 1..]).ok().with_context(at)?,
                        };
                        let tenant = (tab > 0).then(|| String::from_utf8_lossy(&text[..tab]).into_owned());
                        if !batcher.set_tenant(tenant) || !batcher.push_record_at(record, start + e as u64 + 1) {
                            return Ok(());
                        }
                    }
                    lines.clear();
                    batcher.skip_to(start + at as u64);
                    self.spool.read.fetch_add((at - block_start) as u64, Ordering::Relaxed);
                    block_start = at;
                    offsets.insert(*number, start + at as u64);
                    progressed = true;
                    if stop.load(Ordering::Relaxed) {
                        batcher.flush();
                        return Ok(());
                    }
                }
                if sealed && block_start < buffer.len() {
                    // the end of a block whose write a crash cut short: it was never acknowledged
                    let torn = buffer.len() - block_start;
                    tracing::warn!(segment = %path.display(), bytes = torn, "Skipping an unfinished request block (never acknowledged).");
                    batcher.skip_to(size);
                    self.spool.read.fetch_add(torn as u64, Ordering::Relaxed);
                    offsets.insert(*number, size);
                    progressed = true;
                }
            }
            batcher.flush();
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // committed segments go even while requests keep coming
            if last_cleanup.elapsed() >= CLEANUP {
                self.delete_committed(found.last().map_or(0, |(n, _)| *n));
                last_cleanup = std::time::Instant::now();
            }
            if !progressed {
                std::thread::sleep(POLL);
            }
        }
    }
}

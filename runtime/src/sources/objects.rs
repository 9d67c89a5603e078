//! Objects under a prefix of an object store (`type = "objects"`): every
//! object found there is read once — gzip detected by its magic bytes, one
//! record per line — in key order, and with `follow`, the prefix is listed
//! again every `poll_secs` for new objects (CloudTrail's delivery layout,
//! `AWSLogs/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/*.json.gz`).
//!
//! An object's position is the decompressed bytes read, under its key, with
//! its ETag (or size and modification time) as fingerprint, committed with
//! the events like a file's offset; an object read to its end is marked done
//! (offset `u64::MAX`), so it is never fetched again. An object rewritten
//! under the same key (a new ETag) is read again from its start — objects
//! are written whole on S3, GCS and Azure; in a local folder, write a file
//! under another name and rename it, or a growing file is read again. The
//! version read is the version listed (`If-Match` on its ETag). Following,
//! a failing store is tried again at the next listing.

use super::{Batcher, FilePosition, Positions, Source};
use crate::sinks::Archive;
use anyhow::Context;
use futures::TryStreamExt;
use object_store::ObjectMeta;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The offset of an object read to its end.
const DONE: u64 = u64::MAX;

pub struct ObjectSource {
    pub archive: Archive,
    pub follow: bool,
    pub poll: Duration,
    pub resume: Positions,
    pub runtime: tokio::runtime::Handle,
}

fn fingerprint(meta: &ObjectMeta) -> String {
    match &meta.e_tag {
        Some(tag) => tag.clone(),
        None => format!("{}:{}", meta.size, meta.last_modified.timestamp_micros()),
    }
}

impl ObjectSource {
    fn list(&self) -> anyhow::Result<Vec<ObjectMeta>> {
        let mut objects: Vec<ObjectMeta> = self
            .runtime
            .block_on(self.archive.store.list(Some(&self.archive.prefix)).try_collect())
            .with_context(|| format!("cannot list {}", self.archive.location))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Reads one object from `start`: the version that was listed (if it
    /// changed since, `Changed`: the next listing has the new one).
    fn read(&self, meta: &ObjectMeta, start: u64, batcher: &mut Batcher, stop: &AtomicBool) -> anyhow::Result<Fetched> {
        let key = self.archive.relative(&meta.location);
        let options = object_store::GetOptions { if_match: meta.e_tag.clone(), ..Default::default() };
        let fetched =
            self.runtime.block_on(async { self.archive.store.get_opts(&meta.location, options).await?.bytes().await });
        let bytes = match fetched {
            Ok(bytes) => bytes,
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                return Ok(Fetched::Changed);
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {key}"))),
        };
        let text: std::borrow::Cow<[u8]> = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .with_context(|| format!("{key} is not valid gzip"))?;
            out.into()
        } else {
            bytes[..].into()
        };
        let position = FilePosition { fingerprint: fingerprint(meta), fingerprint_len: meta.size, offset: start };
        batcher.begin_file(&key, position);
        let mut at = 0usize;
        for line in text.split_inclusive(|&b| b == b'\n') {
            at += line.len();
            if (at as u64) <= start {
                continue;
            }
            if stop.load(Ordering::Relaxed) || !batcher.push(line.to_vec(), at as u64) {
                return Ok(Fetched::Stopped);
            }
        }
        batcher.skip_to(DONE);
        Ok(Fetched::Done)
    }

    /// One listing and the objects it shows that are not read yet; false
    /// when the pipeline has shut down.
    fn pass(&self, done: &mut Positions, batcher: &mut Batcher, stop: &AtomicBool) -> anyhow::Result<bool> {
        for meta in self.list()? {
            let key = self.archive.relative(&meta.location);
            let listed = fingerprint(&meta);
            let start = match done.get(&key) {
                Some(p) if p.fingerprint == listed => p.offset,
                _ => 0,
            };
            if start == DONE {
                continue;
            }
            match self.read(&meta, start, batcher, stop)? {
                Fetched::Stopped => return Ok(false),
                Fetched::Changed => continue,
                Fetched::Done => {
                    done.insert(key, FilePosition { fingerprint: listed, fingerprint_len: meta.size, offset: DONE });
                }
            }
        }
        Ok(true)
    }
}

/// How reading an object ended.
enum Fetched {
    Done,
    /// The pipeline is shutting down.
    Stopped,
    /// It changed or went away after it was listed.
    Changed,
}

impl Source for ObjectSource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let mut done: Positions = self.resume.clone();
        loop {
            match self.pass(&mut done, &mut batcher, &stop) {
                Ok(true) => {}
                Ok(false) => {
                    batcher.flush();
                    return Ok(());
                }
                // following, a store that fails is tried again at the next listing
                Err(e) if self.follow => {
                    tracing::warn!(prefix = %self.archive.location, error = format!("{e:#}"), "Cannot read the objects; trying again at the next listing.");
                }
                Err(e) => {
                    batcher.flush();
                    return Err(e);
                }
            }
            batcher.flush();
            if !self.follow {
                return Ok(());
            }
            let listed = std::time::Instant::now();
            while listed.elapsed() < self.poll {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

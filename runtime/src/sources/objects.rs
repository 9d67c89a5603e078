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
//! under the same key (a new ETag) is read again from its start.

use super::{Batcher, FilePosition, Positions, Source};
use crate::sinks::Archive;
use anyhow::Context;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};
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

    /// Reads one object from `start`; false when the pipeline has shut down.
    fn read(&self, meta: &ObjectMeta, start: u64, batcher: &mut Batcher, stop: &AtomicBool) -> anyhow::Result<bool> {
        let key = self.archive.relative(&meta.location);
        let bytes = self
            .runtime
            .block_on(async { self.archive.store.get(&meta.location).await?.bytes().await })
            .with_context(|| format!("cannot read {key}"))?;
        let text = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .with_context(|| format!("{key} is not valid gzip"))?;
            out
        } else {
            bytes.to_vec()
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
                return Ok(false);
            }
        }
        batcher.skip_to(DONE);
        Ok(true)
    }
}

impl Source for ObjectSource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let mut done: Positions = self.resume.clone();
        loop {
            for meta in self.list()? {
                let key = self.archive.relative(&meta.location);
                let start = match done.get(&key) {
                    Some(p) if p.fingerprint == fingerprint(&meta) => p.offset,
                    _ => 0,
                };
                if start == DONE {
                    continue;
                }
                if !self.read(&meta, start, &mut batcher, &stop)? {
                    batcher.flush();
                    return Ok(());
                }
                let fingerprint = fingerprint(&meta);
                done.insert(key, FilePosition { fingerprint, fingerprint_len: meta.size, offset: DONE });
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

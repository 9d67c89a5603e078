//! Files named by paths and globs. Read to the end, or with `follow`, tailed:
//! growth is read as it comes, a rotated file is finished and its successor
//! read from the start, a truncated file is read again from the start, and new
//! files matching a glob are picked up. Gzip is detected by its magic bytes.

use super::{Batcher, Source};
use anyhow::{Context, bail};
use flate2::read::MultiGzDecoder;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

pub struct FileSource {
    pub patterns: Vec<String>,
    pub follow: bool,
}

impl FileSource {
    /// The files the patterns name now, sorted.
    pub fn expand(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for pattern in &self.patterns {
            if pattern.contains(['*', '?', '[']) {
                let matched = glob::glob(pattern).with_context(|| format!("bad glob `{pattern}`"))?;
                let before = paths.len();
                for entry in matched {
                    let path = entry?;
                    if path.is_file() {
                        paths.push(path);
                    }
                }
                if paths.len() == before && !self.follow {
                    bail!("no file matches `{pattern}`");
                }
            } else {
                let path = PathBuf::from(pattern);
                if !path.is_file() && !self.follow {
                    bail!("`{pattern}` is not a readable file");
                }
                paths.push(path);
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

fn open(path: &PathBuf) -> anyhow::Result<(Box<dyn BufRead + Send>, bool)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    let gz = n == 2 && magic == [0x1f, 0x8b];
    let file = File::open(path)?;
    let reader: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    Ok((reader, gz))
}

/// Reads complete lines until EOF. A last line without a newline is returned
/// in `partial` (the file may still be growing).
fn read_lines(
    reader: &mut dyn BufRead,
    partial: &mut Vec<u8>,
    batcher: &mut Batcher,
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let n = reader.read_until(b'\n', partial)?;
        if n == 0 {
            return Ok(true);
        }
        if partial.last() != Some(&b'\n') {
            return Ok(true);
        }
        if !batcher.push(std::mem::take(partial)) {
            return Ok(false);
        }
    }
}

struct Tailed {
    reader: Box<dyn BufRead + Send>,
    partial: Vec<u8>,
    ino: u64,
    pos_check: u64,
    gz: bool,
}

impl Source for FileSource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        if !self.follow {
            for path in self.expand()? {
                let (mut reader, _) = open(&path)?;
                let mut partial = Vec::new();
                let go_on = read_lines(reader.as_mut(), &mut partial, &mut batcher, &stop)
                    .with_context(|| format!("reading {}", path.display()))?;
                if !go_on {
                    break;
                }
                // a last line without a newline is still a record
                if !partial.is_empty() && !batcher.push(partial) {
                    break;
                }
            }
            batcher.flush();
            return Ok(());
        }
        let mut open_files: BTreeMap<PathBuf, Tailed> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            for path in self.expand()? {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let replaced = match open_files.get(&path) {
                    None => true,
                    Some(t) => !t.gz && (t.ino != meta.ino() || meta.len() < t.pos_check),
                };
                if replaced {
                    if let Some(mut old) = open_files.remove(&path) {
                        // finish what the rotated file still holds
                        read_lines(old.reader.as_mut(), &mut old.partial, &mut batcher, &stop)?;
                        if !old.partial.is_empty() {
                            batcher.push(old.partial);
                        }
                    }
                    let (reader, gz) = open(&path)?;
                    open_files.insert(
                        path.clone(),
                        Tailed { reader, partial: Vec::new(), ino: meta.ino(), pos_check: 0, gz },
                    );
                }
                let t = open_files.get_mut(&path).expect("inserted above");
                if !read_lines(t.reader.as_mut(), &mut t.partial, &mut batcher, &stop)? {
                    break;
                }
                t.pos_check = std::fs::metadata(&path).map_or(0, |m| m.len());
            }
            if !batcher.flush() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        batcher.flush();
        Ok(())
    }
}

//! Files named by paths and globs. Read to the end, or with `follow`, tailed:
//! growth is read as it comes, a rotated file is finished and its successor
//! read from the start, a truncated file is read again from the start, and new
//! files matching a glob are picked up. Gzip is detected by its magic bytes.
//! Each file resumes where the last commit left it, if it is the same file.

use super::{Batcher, FilePosition, Positions, Source};
use anyhow::{Context, bail};
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(200);

pub struct FileSource {
    pub patterns: Vec<String>,
    pub follow: bool,
    /// Where the last commit left each file; a file is resumed there if it is
    /// still the same file (same fingerprint).
    pub resume: Positions,
}

/// How many leading bytes identify a file.
const FINGERPRINT_BYTES: u64 = 1024;

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

struct Opened {
    reader: Box<dyn BufRead + Send>,
    gz: bool,
    position: FilePosition,
}

/// Opens a file where `resume` left it if it is the same file (its first
/// bytes hash to the recorded fingerprint), else at its start.
fn open(path: &Path, resume: Option<&FilePosition>) -> anyhow::Result<Opened> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES as usize);
    (&mut file).take(FINGERPRINT_BYTES).read_to_end(&mut head)?;
    let fingerprint = |n: usize| hex::encode(Sha256::digest(&head[..n]));
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let len = file.metadata()?.len();
    let mut offset = match resume {
        Some(r)
            if r.fingerprint_len as usize <= head.len() && fingerprint(r.fingerprint_len as usize) == r.fingerprint =>
        {
            r.offset
        }
        _ => 0,
    };
    if !gz && offset > len {
        tracing::warn!(path = %path.display(), offset, len, "File is shorter than where it was left; reading it from the start.");
        offset = 0;
    }
    let reader: Box<dyn BufRead + Send> = if gz {
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 20, MultiGzDecoder::new(file));
        // a gzip stream cannot seek: skip what was already read
        let skipped = std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
            .with_context(|| format!("reading {}", path.display()))?;
        offset = skipped;
        Box::new(reader)
    } else {
        file.seek(SeekFrom::Start(offset))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    if offset > 0 {
        tracing::info!(path = %path.display(), offset, "Resuming where the last commit left off.");
    }
    let position = FilePosition { fingerprint: fingerprint(head.len()), fingerprint_len: head.len() as u64, offset };
    Ok(Opened { reader, gz, position })
}

/// Reads complete lines until EOF; `offset` follows the end of the last
/// complete line. A last line without a newline is left in `partial` (the
/// file may still be growing).
fn read_lines(
    reader: &mut dyn BufRead,
    partial: &mut Vec<u8>,
    offset: &mut u64,
    batcher: &mut Batcher,
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let n = reader.read_until(b'\n', partial)?;
        if n == 0 || partial.last() != Some(&b'\n') {
            return Ok(true);
        }
        *offset += partial.len() as u64;
        if !batcher.push(std::mem::take(partial), *offset) {
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
    position: FilePosition,
}

impl Tailed {
    /// Reads what the file holds now. Returns false when the pipeline stops.
    fn read(&mut self, key: &str, batcher: &mut Batcher, stop: &AtomicBool) -> anyhow::Result<bool> {
        batcher.begin_file(key, self.position.clone());
        read_lines(self.reader.as_mut(), &mut self.partial, &mut self.position.offset, batcher, stop)
            .with_context(|| format!("reading {key}"))
    }
}

impl Source for FileSource {
    fn run(mut self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        if !self.follow {
            for path in self.expand()? {
                let key = path.display().to_string();
                let Opened { mut reader, mut position, .. } = open(&path, self.resume.get(&key))?;
                batcher.begin_file(&key, position.clone());
                let mut partial = Vec::new();
                let go_on = read_lines(reader.as_mut(), &mut partial, &mut position.offset, &mut batcher, &stop)
                    .with_context(|| format!("reading {key}"))?;
                if !go_on {
                    break;
                }
                // a last line without a newline is still a record
                if !partial.is_empty() {
                    position.offset += partial.len() as u64;
                    if !batcher.push(partial, position.offset) {
                        break;
                    }
                }
            }
            batcher.flush();
            return Ok(());
        }
        let mut open_files: BTreeMap<PathBuf, Tailed> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            let paths = self.expand()?;
            // a file that vanished (deleted, or renamed away by a rotation that
            // leaves no successor) is still open: read what it holds, then let go
            let gone: Vec<PathBuf> = open_files.keys().filter(|p| !paths.contains(p) || !p.exists()).cloned().collect();
            for path in gone {
                let mut old = open_files.remove(&path).expect("listed");
                let key = path.display().to_string();
                old.read(&key, &mut batcher, &stop)?;
                if !old.partial.is_empty() {
                    old.position.offset += old.partial.len() as u64;
                    batcher.push(old.partial, old.position.offset);
                }
                tracing::info!(path = %key, "File is gone; finished reading it.");
            }
            for path in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let key = path.display().to_string();
                let replaced = match open_files.get(&path) {
                    None => true,
                    Some(t) => !t.gz && (t.ino != meta.ino() || meta.len() < t.pos_check),
                };
                if replaced {
                    if let Some(mut old) = open_files.remove(&path) {
                        // finish what the rotated file still holds
                        old.read(&key, &mut batcher, &stop)?;
                        if !old.partial.is_empty() {
                            old.position.offset += old.partial.len() as u64;
                            batcher.push(old.partial, old.position.offset);
                        }
                    }
                    // the committed position applies to the first file seen under this path
                    let Opened { reader, gz, position } = open(&path, self.resume.remove(&key).as_ref())?;
                    open_files.insert(
                        path.clone(),
                        Tailed { reader, partial: Vec::new(), ino: meta.ino(), pos_check: 0, gz, position },
                    );
                }
                let t = open_files.get_mut(&path).expect("inserted above");
                if !t.read(&key, &mut batcher, &stop)? {
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

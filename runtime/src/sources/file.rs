//! Files named by paths and globs. Read to the end, or with `follow`, tailed:
//! growth is read as it comes, a rotated file is read for a while longer
//! (its writer may not have reopened its log yet) while its successor is read
//! from the start, a truncated file is read again from the start, and new
//! files matching a glob are picked up. Gzip is detected by its magic bytes.
//! Each file resumes where the last commit left it, if it is the same file;
//! one that a rotation took from its path before it was read to its end is
//! looked for beside it, and in `olddir` (logrotate's) if one is given.

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
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(200);

pub struct FileSource {
    pub patterns: Vec<String>,
    pub follow: bool,
    /// How long a file rotated away or deleted is still read after it last
    /// grew: a writer goes on writing to its old file until it reopens its
    /// log (logrotate's `postrotate` signal), and what it writes there in
    /// that time must not be lost.
    pub rotate_wait: Duration,
    /// Where logrotate moves rotated files (its `olddir`): relative to each
    /// file's folder unless absolute.
    pub olddir: Option<PathBuf>,
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

/// Where reading a file stands: its position, and its first bytes while they
/// are fewer than the fingerprint length (a new file still growing), so the
/// fingerprint grows with them and always covers what was read.
struct Cursor {
    position: FilePosition,
    head: Vec<u8>,
    /// Whether `head` still follows the file (plain files under 1 KiB).
    growing: bool,
}

impl Cursor {
    /// Accounts for one complete line that starts at the current offset.
    fn consume(&mut self, line: &[u8], batcher: &mut Batcher) {
        let start = self.position.offset as usize;
        self.position.offset += line.len() as u64;
        if self.growing {
            let have = self.head.len();
            if start <= have && start + line.len() > have {
                let take = (start + line.len() - have).min(FINGERPRINT_BYTES as usize - have);
                self.head.extend_from_slice(&line[have - start..have - start + take]);
                self.position.fingerprint = hex::encode(Sha256::digest(&self.head));
                self.position.fingerprint_len = self.head.len() as u64;
                batcher.set_fingerprint(&self.position.fingerprint, self.position.fingerprint_len);
            }
            self.growing = self.head.len() < FINGERPRINT_BYTES as usize;
        }
    }
}

struct Opened {
    reader: Box<dyn BufRead + Send>,
    gz: bool,
    cursor: Cursor,
}

/// Whether `head` (a file's first bytes) is the file `position` was taken
/// from. A short fingerprint that does not cover what was read is no proof
/// (for gzip the fingerprint is of the compressed bytes, the offset of the
/// decompressed stream: a short gzip file is fingerprinted whole).
fn same_file(head: &[u8], position: &FilePosition) -> bool {
    let n = position.fingerprint_len as usize;
    let gz = head.starts_with(&[0x1f, 0x8b]);
    n <= head.len()
        && (gz || n as u64 >= position.offset.min(FINGERPRINT_BYTES))
        && hex::encode(Sha256::digest(&head[..n])) == position.fingerprint
}

/// Opens a file where it was left: by the position recorded under its path if
/// it is the same file (for gzip, also if it decompresses to it), else by a
/// position of a file with the same full fingerprint under another name (a
/// rename, a rotation; for gzip, also a plain file that a rotation
/// compressed), else at its start.
fn open(path: &Path, resume: Option<&FilePosition>, known: &[FilePosition]) -> anyhow::Result<Opened> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let head = Head::of(&mut file)?;
    let gz = head.plain.is_some();
    let len = file.metadata()?.len();
    let renamed = |head: &[u8]| {
        known.iter().filter(|k| k.fingerprint_len == FINGERPRINT_BYTES && same_file(head, k)).map(|k| k.offset).max()
    };
    let resumed = resume.filter(|r| head.is(r)).map(|r| r.offset);
    // `app.log.1` compressed into `app.log.2.gz`: known by what it decompresses to
    let other =
        resumed.is_none().then(|| renamed(&head.raw).or_else(|| head.plain.as_deref().and_then(renamed))).flatten();
    // a copy of a file read further than the copy reaches (`copytruncate`, a
    // copy still being written) holds nothing new up to there: it is read
    // only past that offset, if it grows so far
    let mut offset = resumed.or(other).unwrap_or(0);
    if !gz && resumed.is_some() && offset > len {
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
    let head = head.raw;
    let position =
        FilePosition { fingerprint: hex::encode(Sha256::digest(&head)), fingerprint_len: head.len() as u64, offset };
    let growing = !gz && head.len() < FINGERPRINT_BYTES as usize;
    Ok(Opened { reader, gz, cursor: Cursor { position, head, growing } })
}

/// Reads complete lines until EOF. A last line without a newline is left in
/// `partial` (the file may still be growing).
fn read_lines(
    reader: &mut dyn BufRead,
    partial: &mut Vec<u8>,
    cursor: &mut Cursor,
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
        cursor.consume(partial, batcher);
        if !batcher.push(std::mem::take(partial), cursor.position.offset) {
            return Ok(false);
        }
    }
}

/// Takes a last line that has no newline as a record.
fn finish_partial(partial: Vec<u8>, cursor: &mut Cursor, batcher: &mut Batcher) -> bool {
    if partial.is_empty() {
        return true;
    }
    cursor.consume(&partial, batcher);
    batcher.push(partial, cursor.position.offset)
}

/// A file's first bytes as they are and, for gzip, as they decompress (as
/// far as they do: a damaged stream is read, and reported, when the file is).
struct Head {
    raw: Vec<u8>,
    plain: Option<Vec<u8>>,
}

impl Head {
    /// The head of `file`, read from its start (the file is left anywhere).
    fn of(file: &mut File) -> std::io::Result<Head> {
        let mut raw = Vec::with_capacity(FINGERPRINT_BYTES as usize);
        file.take(FINGERPRINT_BYTES).read_to_end(&mut raw)?;
        let plain = if raw.starts_with(&[0x1f, 0x8b]) {
            file.seek(SeekFrom::Start(0))?;
            let mut plain = Vec::with_capacity(FINGERPRINT_BYTES as usize);
            let _ = MultiGzDecoder::new(file).take(FINGERPRINT_BYTES).read_to_end(&mut plain);
            Some(plain)
        } else {
            None
        };
        Ok(Head { raw, plain })
    }

    fn read(path: &Path) -> std::io::Result<Head> {
        Head::of(&mut File::open(path)?)
    }

    /// Whether this is the file `position` was taken from (or it compressed).
    fn is(&self, position: &FilePosition) -> bool {
        same_file(&self.raw, position) || self.plain.as_ref().is_some_and(|plain| same_file(plain, position))
    }
}

/// The key a rotated file's position is recorded under.
const ROTATED: &str = " (rotated)";

impl FileSource {
    /// Files with lines left unread when the last run ended that have since
    /// been rotated away from the path they were read under (a crash during a
    /// rotation's wait; a rotation, or `copytruncate`, while sluice was
    /// down), each with that path and the furthest committed position of it.
    /// A file is looked for in its path's directory, where logrotate leaves it
    /// (`auth.log.1`, `auth.log-20261127`, `auth.log.2.gz`), then in
    /// [`FileSource::olddir`], by its first bytes, among the files whose names
    /// begin as the path's does (its name up to the first dot). Files the
    /// patterns match are left to the main loop, which resumes one by its
    /// fingerprint when that is whole (1 KiB).
    fn left_behind(&self) -> anyhow::Result<Vec<(PathBuf, PathBuf, FilePosition)>> {
        let named: Vec<(u64, u64)> =
            self.expand()?.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| file_id(&m)).collect();
        // a path's rotated file was read before the one last read under the path: it goes first
        let mut positions: Vec<(&str, bool, &FilePosition)> = self
            .resume
            .iter()
            .map(|(key, position)| match key.strip_suffix(ROTATED) {
                Some(path) => (path, false, position),
                None => (key.as_str(), true, position),
            })
            .collect();
        positions.sort_by_key(|(path, current, _)| (*path, *current));
        // each directory's files the patterns do not match, by name, listed
        // once; a file's head is read when a position's name fits it
        let mut dirs: BTreeMap<PathBuf, Vec<Listed>> = BTreeMap::new();
        let mut found = Vec::new();
        let mut taken: Vec<(u64, u64)> = Vec::new();
        for (path, current, position) in positions {
            let path = Path::new(path);
            // an empty file's position names no file; a path the patterns no
            // longer name (the config changed) is no longer this source's
            if position.fingerprint_len == 0 || !self.names(path) {
                continue;
            }
            if current && Head::read(path).is_ok_and(|head| head.is(position)) {
                continue; // still where it was read
            }
            let Some(stem) = path.file_name().and_then(|n| n.to_str()).map(|n| n.split('.').next().unwrap_or(n)) else {
                continue;
            };
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            // `join` keeps an absolute `olddir` as it is
            let mut looked_in: Vec<PathBuf> =
                std::iter::once(dir.to_path_buf()).chain(self.olddir.as_ref().map(|old| dir.join(old))).collect();
            looked_in.dedup();
            for dir in &looked_in {
                dirs.entry(dir.clone()).or_insert_with(|| unnamed_files(dir, &named));
            }
            let Some((file, meta, head)) =
                looked_in.iter().flat_map(|dir| &dirs[dir]).find_map(|(file, meta, head)| {
                    let fits = !taken.contains(&file_id(meta))
                        && file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(stem));
                    let head = fits.then(|| head.get_or_init(|| Head::read(file).ok()).as_ref()).flatten()?;
                    head.is(position).then_some((file, meta, head))
                })
            else {
                continue;
            };
            // the file may be known under its old path and as rotated
            let furthest = self.resume.values().filter(|p| head.is(p)).max_by_key(|p| p.offset).expect("matched");
            let unread = match head.plain {
                // gzip's trailer holds the size (mod 2^32) of its last member, which
                // is all of it as logrotate writes it
                Some(_) => gzip_size(file) != Some(furthest.offset as u32),
                None => meta.len() > furthest.offset,
            };
            if unread {
                taken.push(file_id(meta));
                found.push((path.to_path_buf(), file.clone(), furthest.clone()));
            }
        }
        Ok(found)
    }

    /// Whether the patterns name `path` (one that a committed position names).
    fn names(&self, path: &Path) -> bool {
        self.patterns.iter().any(|pattern| match pattern.contains(['*', '?', '[']) {
            true => glob::Pattern::new(pattern).is_ok_and(|p| p.matches_path(path)),
            false => Path::new(pattern) == path,
        })
    }
}

/// A directory's file, for [`FileSource::left_behind`]: its metadata, and
/// its head once read.
type Listed = (PathBuf, std::fs::Metadata, std::cell::OnceCell<Option<Head>>);

/// The files in `dir` that are none of `named` (by device and inode), by name.
fn unnamed_files(dir: &Path, named: &[(u64, u64)]) -> Vec<Listed> {
    let mut files: Vec<Listed> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            (!named.contains(&file_id(&meta))).then(|| (path, meta, std::cell::OnceCell::new()))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// The uncompressed size a gzip file's trailer gives (of its last member, mod 2^32).
fn gzip_size(path: &Path) -> Option<u32> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::End(-4)).ok()?;
    let mut size = [0; 4];
    file.read_exact(&mut size).ok()?;
    Some(u32::from_le_bytes(size))
}

/// Which file a path names: its device and inode.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

struct Tailed {
    reader: Box<dyn BufRead + Send>,
    partial: Vec<u8>,
    id: (u64, u64),
    pos_check: u64,
    gz: bool,
    cursor: Cursor,
}

impl Tailed {
    /// Reads what the file holds now. Returns false when the pipeline stops.
    fn read(&mut self, key: &str, batcher: &mut Batcher, stop: &AtomicBool) -> anyhow::Result<bool> {
        batcher.begin_file(key, self.cursor.position.clone());
        read_lines(self.reader.as_mut(), &mut self.partial, &mut self.cursor, batcher, stop)
            .with_context(|| format!("reading {key}"))
    }

    /// Reads it to its end (it was rotated away or deleted) and returns where
    /// it ended; a read error is logged (the source goes on) and gives none.
    fn finish(mut self, key: &str, batcher: &mut Batcher, stop: &AtomicBool) -> Option<FilePosition> {
        if let Err(e) = self.read(key, batcher, stop) {
            tracing::warn!(path = %key, error = %format!("{e:#}"), "Could not finish reading a rotated or vanished file.");
            return None;
        }
        finish_partial(std::mem::take(&mut self.partial), &mut self.cursor, batcher);
        Some(self.cursor.position)
    }
}

/// A followed file that was rotated away or deleted, still read until it has
/// not grown for `rotate_wait`. Its position is recorded under its old path
/// with ` (rotated)` added, apart from the path's new file.
struct Rotated {
    key: String,
    file: Tailed,
    grew: Instant,
}

impl Rotated {
    /// Adds a file replaced at `path`, or gone from it, to those read for a
    /// while longer, after reading what it holds now (which comes before
    /// what its successor holds).
    fn add(
        rotated: &mut Vec<Rotated>,
        path: &Path,
        mut file: Tailed,
        batcher: &mut Batcher,
        stop: &AtomicBool,
        known: &mut Vec<FilePosition>,
    ) {
        let key = format!("{}{ROTATED}", path.display());
        // rotated again within the wait: the older one is read to its end now
        if let Some(i) = rotated.iter().position(|r| r.key == key) {
            let last = rotated.swap_remove(i);
            known.extend(last.file.finish(&last.key, batcher, stop));
        }
        if let Err(e) = file.read(&key, batcher, stop) {
            tracing::warn!(path = %key, error = %format!("{e:#}"), "Cannot read a rotated file; letting it go.");
            return;
        }
        rotated.push(Rotated { key, file, grew: Instant::now() });
    }
}

impl Source for FileSource {
    fn run(mut self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        // positions of files by fingerprint, for files that changed name
        let mut known: Vec<FilePosition> = self.resume.values().cloned().collect();
        if !self.follow {
            for path in self.expand()? {
                let key = path.display().to_string();
                let Opened { mut reader, mut cursor, .. } = open(&path, self.resume.get(&key), &known)?;
                batcher.begin_file(&key, cursor.position.clone());
                let mut partial = Vec::new();
                let go_on = read_lines(reader.as_mut(), &mut partial, &mut cursor, &mut batcher, &stop)
                    .with_context(|| format!("reading {key}"))?;
                // a last line without a newline is still a record
                if !go_on || !finish_partial(partial, &mut cursor, &mut batcher) {
                    break;
                }
                known.push(cursor.position);
            }
            batcher.flush();
            return Ok(());
        }
        let mut open_files: BTreeMap<PathBuf, Tailed> = BTreeMap::new();
        let mut rotated: Vec<Rotated> = Vec::new();
        // what a rotation took away before it was read is read first, as a rotated file
        for (path, found, position) in self.left_behind()? {
            let opened = open(&found, Some(&position), &[]).and_then(|opened| {
                let id = file_id(&std::fs::metadata(&found)?);
                Ok((opened, id))
            });
            match opened {
                Ok((Opened { reader, gz, cursor }, id)) => {
                    tracing::info!(path = %path.display(), file = %found.display(), "Found a file rotated away with lines left to read.");
                    let file = Tailed { reader, partial: Vec::new(), id, pos_check: 0, gz, cursor };
                    Rotated::add(&mut rotated, &path, file, &mut batcher, &stop, &mut known);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), file = %found.display(), error = %format!("{e:#}"), "Cannot open a rotated file found again.")
                }
            }
        }
        while !stop.load(Ordering::Relaxed) {
            let paths = self.expand()?;
            // a file that vanished (deleted, or renamed away by a rotation that
            // leaves no successor) is still open
            let gone: Vec<PathBuf> = open_files.keys().filter(|p| !paths.contains(p) || !p.exists()).cloned().collect();
            for path in gone {
                let old = open_files.remove(&path).expect("listed");
                tracing::info!(path = %path.display(), "File is gone; reading what is still added to it.");
                Rotated::add(&mut rotated, &path, old, &mut batcher, &stop, &mut known);
            }
            for path in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let key = path.display().to_string();
                let id = file_id(&meta);
                let same = open_files.get(&path).is_some_and(|t| t.gz || (t.id == id && meta.len() >= t.pos_check));
                if !same {
                    if let Some(old) = open_files.remove(&path) {
                        if old.id == id {
                            // truncated in place: what it held is gone
                            known.extend(old.finish(&key, &mut batcher, &stop));
                        } else {
                            Rotated::add(&mut rotated, &path, old, &mut batcher, &stop, &mut known);
                        }
                    }
                    // the file now here may be open already: renamed by a rotation
                    // from a name that now holds another file, or none
                    let moved = open_files
                        .iter()
                        .find(|(p, t)| t.id == id && std::fs::metadata(p).map_or(true, |m| file_id(&m) != t.id))
                        .map(|(p, _)| p.clone());
                    if let Some(file) = moved.and_then(|p| open_files.remove(&p)) {
                        open_files.insert(path.clone(), file);
                    } else if let Some(i) = rotated.iter().position(|r| r.file.id == id) {
                        open_files.insert(path.clone(), rotated.swap_remove(i).file);
                    } else {
                        // files still open count as known: a copy of one (copytruncate) or a
                        // compressed one goes on where that one is
                        let held = open_files.values().chain(rotated.iter().map(|r| &r.file));
                        let known: Vec<FilePosition> =
                            known.iter().cloned().chain(held.map(|t| t.cursor.position.clone())).collect();
                        // the committed position applies to the first file seen under this path;
                        // a file that cannot be opened now (gone again, no permission) is tried at the next poll
                        let opened = match open(&path, self.resume.get(&key), &known) {
                            Ok(opened) => opened,
                            Err(e) => {
                                tracing::warn!(path = %key, error = %format!("{e:#}"), "Cannot open a followed file; will retry.");
                                continue;
                            }
                        };
                        self.resume.remove(&key);
                        let Opened { reader, gz, cursor } = opened;
                        open_files
                            .insert(path.clone(), Tailed { reader, partial: Vec::new(), id, pos_check: 0, gz, cursor });
                    }
                }
                let t = open_files.get_mut(&path).expect("inserted above");
                match t.read(&key, &mut batcher, &stop) {
                    Ok(true) => {}
                    Ok(false) => break,
                    // kept open where it is: read again at the next poll
                    Err(e) => {
                        tracing::warn!(path = %key, error = %format!("{e:#}"), "Read error on a followed file; will retry.")
                    }
                }
                t.pos_check = std::fs::metadata(&path).map_or(0, |m| m.len());
            }
            let now = Instant::now();
            let mut i = 0;
            while i < rotated.len() {
                let r = &mut rotated[i];
                let before = (r.file.cursor.position.offset, r.file.partial.len());
                match r.file.read(&r.key, &mut batcher, &stop) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(path = %r.key, error = %format!("{e:#}"), "Cannot read a rotated file; letting it go.");
                        rotated.swap_remove(i);
                        continue;
                    }
                }
                if (r.file.cursor.position.offset, r.file.partial.len()) != before {
                    r.grew = now;
                }
                if now.duration_since(r.grew) >= self.rotate_wait {
                    let r = rotated.swap_remove(i);
                    known.extend(r.file.finish(&r.key, &mut batcher, &stop));
                    tracing::info!(path = %r.key, wait = ?self.rotate_wait, "Rotated file stopped growing; finished reading it.");
                } else {
                    i += 1;
                }
            }
            if !batcher.flush() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        // a rotated file is found again after a restart only beside its old
        // path or in `olddir`, under a name that begins as that path's does:
        // what it holds is read now
        let never_stop = AtomicBool::new(false);
        for r in rotated {
            r.file.finish(&r.key, &mut batcher, &never_stop);
        }
        batcher.flush();
        Ok(())
    }
}

//! Helpers for the integration tests: run the real binary, read results back.

#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The path of a test-fixture plugin built by runtime/build.rs.
pub fn fixture_plugin(name: &str) -> String {
    match name {
        "faulty" => env!("SLUICE_PLUGIN_FAULTY").to_string(),
        other => panic!("no fixture plugin {other}"),
    }
}

pub fn corpus_dir() -> PathBuf {
    let dir =
        std::env::var_os("SLUICE_CORPUS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/corpus"));
    assert!(dir.is_dir(), "the corpus is not at {} (set SLUICE_CORPUS)", dir.display());
    dir
}

pub fn find_file(dir: &Path, name: &str) -> PathBuf {
    list_files(dir)
        .into_iter()
        .find(|f| f.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("{name} not found under {}", dir.display()))
}

/// The commit records under `<out>/_state/commits`, oldest first. Only the
/// `.json` names: the local store writes a record to a staging name and links
/// it into place, so a running pipeline may show a whole record under a
/// staging name that a kill leaves uncommitted.
pub fn commit_records(out: &Path) -> Vec<PathBuf> {
    let dir = out.join("_state/commits");
    if !dir.exists() {
        return Vec::new();
    }
    list_files(&dir).into_iter().filter(|f| f.extension().is_some_and(|e| e == "json")).collect()
}

/// Every file below `dir`, sorted.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Copies the files under `from` (an archive, say) to the same paths under `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for file in list_files(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(&file, &target).unwrap();
    }
}

/// A temporary directory that tests run pipelines in.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> Self {
        TestDir(tempfile::tempdir().unwrap())
    }
    pub fn root(&self) -> &Path {
        self.0.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        self.write_bytes(rel, text.as_bytes())
    }
    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        p
    }
    /// Writes `pipeline.toml` and runs it in this directory.
    pub fn run_pipeline(&self, toml: &str) -> Run {
        let p = self.write("pipeline.toml", toml);
        sluice_in(self.root(), &["run", p.to_str().unwrap()], &[])
    }
    /// Every quarantine record of `stream` under the archive `out`.
    pub fn quarantine(&self, out: &str, stream: &str) -> Vec<Value> {
        let q = self.quarantine_or_empty(out, stream);
        assert!(!q.is_empty(), "no quarantine records for {stream}");
        q
    }
    pub fn quarantine_or_empty(&self, out: &str, stream: &str) -> Vec<Value> {
        let dir = self.path(out).join("_quarantine").join(stream);
        if !dir.exists() {
            return Vec::new();
        }
        list_files(&dir)
            .iter()
            .flat_map(|f| {
                fs::read_to_string(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>()
            })
            .collect()
    }
}

/// The counts of a run's summary line.
#[derive(Debug)]
pub struct Summary {
    pub read: u64,
    pub written: u64,
    pub quarantined: u64,
    pub dropped: u64,
    pub files: u64,
    /// Extra events from records that became several.
    pub expanded: u64,
    /// Extra copies of events routed to several streams.
    pub copies: u64,
}

impl Summary {
    /// Every record is accounted for: read + expanded + copies = written + quarantined + dropped.
    pub fn assert_balanced(&self) {
        assert_eq!(self.read + self.expanded + self.copies, self.written + self.quarantined + self.dropped, "{self:?}");
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }
    pub fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "{self}");
    }
    pub fn assert_failure(&self) {
        assert!(matches!(self.code, Some(c) if c != 0), "expected a failure: {self}");
    }
    /// Parses `read N records, wrote N events, quarantined N, dropped N, N files, ...`.
    pub fn summary(&self) -> Summary {
        let line = self.stdout.lines().find(|l| l.starts_with("read ")).unwrap_or_else(|| panic!("no summary: {self}"));
        let numbers: Vec<u64> = line.split([' ', ',']).filter_map(|w| w.parse().ok()).collect();
        Summary {
            read: numbers[0],
            written: numbers[1],
            quarantined: numbers[2],
            dropped: numbers[3],
            files: numbers[4],
            expanded: self
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("expanded ")?.split(':').next()?.parse().ok())
                .unwrap_or(0),
            copies: self
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("copies ")?.split(':').next()?.parse().ok())
                .unwrap_or(0),
        }
    }
}

pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args).env_remove("SLUICE_LOG");
    c
}

pub fn sluice_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = command(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.stdin(Stdio::null()).output().unwrap())
}

pub fn sluice_stdin(dir: &Path, args: &[&str], input: &str) -> Run {
    let mut child =
        command(dir, args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

pub fn spawn_sluice(dir: &Path, args: &[&str]) -> Child {
    spawn_sluice_env(dir, args, &[])
}

/// `sluice` started with these environment variables set, its output piped.
pub fn spawn_sluice_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = command(dir, args);
    c.envs(env.iter().copied());
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Sends SIGTERM and waits for the process to finish.
pub fn terminate(child: &mut Child) -> Run {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = std::mem::replace(child, Command::new("true").spawn().unwrap());
    Run::from(out.wait_with_output().unwrap())
}

pub fn append(path: &Path, text: &str) {
    fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// A gzip file writer (`finish()` to complete it).
pub fn gzip_writer(path: &Path) -> flate2::write::GzEncoder<fs::File> {
    flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::default())
}

/// Writes `bytes` as a gzip file.
pub fn write_gzip(path: &Path, bytes: &[u8]) {
    let mut gz = gzip_writer(path);
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap();
}

const DUCKDB: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
print(json.dumps(con.sql(sys.argv[1]).fetchall(), default=str))
"#;

/// Runs SQL in DuckDB (Python) and returns the rows as JSON.
pub fn duckdb(sql: &str) -> Value {
    let out =
        Command::new("python3").args(["-c", DUCKDB, sql]).output().expect("python3 is needed for the DuckDB checks");
    assert!(out.status.success(), "DuckDB failed on {sql}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The pipeline's own events of one operation in the archive `out` (its
/// `_sluice` stream), in order: each event's `unmapped` details, with its
/// `class_uid`, `activity_id` and `severity_id` added.
pub fn sluice_events(out: &Path, operation: &str) -> Vec<Value> {
    let rows = duckdb(&format!(
        "SELECT unmapped, class_uid, activity_id, severity_id FROM read_parquet('{}/_sluice/**/*.parquet') \
         WHERE api_operation = '{operation}' ORDER BY seq",
        out.display()
    ));
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut v: Value = serde_json::from_str(r[0].as_str().unwrap()).unwrap();
            v["class_uid"] = r[1].clone();
            v["activity_id"] = r[2].clone();
            v["severity_id"] = r[3].clone();
            v
        })
        .collect()
}

pub fn duckdb_count(relation: &str) -> u64 {
    duckdb(&format!("SELECT count(*) FROM {relation}"))[0][0].as_u64().unwrap()
}

/// Which of `needles` appear in any file of the archive, Parquet decoded
/// (`tests/tools/leak_check.py`).
pub fn find_strings_in_archive(root: &Path, needles: &[String]) -> Vec<String> {
    let list = tempfile::NamedTempFile::new().unwrap();
    fs::write(list.path(), needles.join("\n") + "\n").unwrap();
    let script = repo_root().join("tests/tools/leak_check.py");
    let out = Command::new("python3")
        .args([script.to_str().unwrap(), root.to_str().unwrap(), list.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "search failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Polls `done` every 100 ms for up to 60 s.
pub fn wait_for(what: &str, done: impl Fn() -> bool) {
    assert!(poll_for(done), "timed out waiting for {what}");
}

/// Polls `done` every 100 ms for up to 60 s; whether it came true.
pub fn poll_for(done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed().as_secs() >= 60 {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    true
}

/// The body of a GET, or `None` while nothing answers (a listener not up yet).
pub fn http_get(url: &str) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { reqwest::get(url).await.ok()?.text().await.ok() })
}

/// The sum of a Prometheus counter's samples (all label sets) in `text`.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A port nothing listens on now (the test's server takes it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the pipeline behind the admin listener on `admin` has written
/// `n` events (all sources together).
pub fn wait_written(admin: u16, n: u64) {
    let url = format!("http://127.0.0.1:{admin}/metrics");
    wait_for(&format!("{n} events written"), || {
        http_get(&url).is_some_and(|m| metric_sum(&m, "sluice_events_written_total") == n)
    });
}

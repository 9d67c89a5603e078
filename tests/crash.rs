//! Crash safety: sluice killed at any point and restarted until done leaves an
//! archive that holds every input event exactly once.
//!
//! The workload is `../shared/bench/gen_events.py` through the benchmark
//! pipeline (parse → redact → enrich, signed), with files rolled at 1 MiB and
//! committed every second so that kills land between, during and after
//! commits. The archive is compared with a reference run that was never
//! interrupted, row by row in DuckDB (every column except `seq`, `event_hash`
//! and `observed_time`, which legitimately differ between runs), and must pass
//! `sluice verify`.
//!
//! `SLUICE_CRASH_KILLS` (default 6) and `SLUICE_CRASH_EVENTS` (default 20000)
//! scale the random-kill test; the closing-note figures come from
//! `SLUICE_CRASH_KILLS=100 SLUICE_CRASH_EVENTS=200000 cargo test --release -p sluice --test integration crash_random -- --nocapture`.

use crate::util::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The benchmark pipeline, committing often.
fn pipeline(t: &TestDir) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("examples/benchmark/pipeline.toml")).unwrap();
    let text = text.replace("[sink]\n", "[sink]\nroll_size_mb = 1\nroll_age_secs = 1\n");
    assert!(text.contains("roll_age_secs = 1"), "the benchmark pipeline has no [sink] table");
    t.write("pipeline.toml", &text)
}

pub struct Workload {
    pub t: TestDir,
    events: u64,
}

impl Workload {
    pub fn new(events: u64) -> Workload {
        let t = TestDir::new();
        let script = repo_root().join("../shared/bench/gen_events.py");
        assert!(script.is_file(), "{} is missing", script.display());
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(t.path("data"))
            .args(["--events", &events.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "gen_events.py failed: {}", String::from_utf8_lossy(&out.stderr));
        sluice_in(t.root(), &["keys", "generate", "--out", "keys"], &[]).assert_success();
        pipeline(&t);
        Workload { t, events }
    }

    /// `out`: a directory of the test, or a URL.
    fn env(&self, out: &str) -> Vec<(String, String)> {
        let out = if out.contains("://") { out.to_string() } else { self.t.path(out).display().to_string() };
        vec![
            ("SLUICE_BENCH_DIR".into(), self.t.path("data").display().to_string()),
            ("SLUICE_OUT".into(), out),
            ("SLUICE_SIGNING_KEY".into(), self.t.path("keys/signing.key").display().to_string()),
        ]
    }

    pub fn command(&self, out: &str, failpoint: Option<&str>) -> std::process::Command {
        let mut c = command(self.t.root(), &["run", "pipeline.toml"]);
        c.envs(self.env(out));
        if let Some(f) = failpoint {
            c.env("SLUICE_FAILPOINT", f);
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Runs to completion (must succeed).
    pub fn run(&self, out: &str) -> Run {
        let run = Run::from(self.command(out, None).output().unwrap());
        run.assert_success();
        run
    }

    /// Compares archive `out` with the reference archive `reference`.
    pub fn assert_same(&self, reference: &str, out: &str) {
        // the two streams of the benchmark pipeline (not `_sluice`: the
        // pipeline's own start and stop events differ from run to run)
        let rows = |dir: &str| {
            let globs: Vec<String> = ["audit", "operational"]
                .iter()
                .map(|s| format!("'{}/{s}/**/*.parquet'", self.t.path(dir).display()))
                .collect();
            format!(
                "SELECT * EXCLUDE (seq, event_hash, observed_time) FROM read_parquet([{}], hive_partitioning = true)",
                globs.join(", ")
            )
        };
        let (a, b) = (rows(reference), rows(out));
        let counts = duckdb(&format!(
            "SELECT (SELECT count(*) FROM ({a})), (SELECT count(*) FROM ({b})), \
             (SELECT count(*) FROM ({a} EXCEPT ALL {b})), (SELECT count(*) FROM ({b} EXCEPT ALL {a}))"
        ));
        let [expected, got, lost, extra] = [0, 1, 2, 3].map(|i| counts[0][i].as_u64().unwrap());
        println!("reference {expected} events, archive {got}: lost {lost}, duplicated or altered {extra}");
        assert!(expected > 0);
        assert_eq!((lost, extra), (0, 0), "the archive differs from the reference run");
        assert_eq!(expected, got);

        // every record of the input is accounted for in the last commit
        let commits = commit_records(&self.t.path(out));
        let last: serde_json::Value = serde_json::from_slice(&std::fs::read(commits.last().unwrap()).unwrap()).unwrap();
        let mut read = 0;
        for (name, source) in last["sources"].as_object().unwrap() {
            let c = &source["counts"];
            let dropped: u64 = c["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
            let n = |k: &str| c[k].as_u64().unwrap();
            let copies = c["copies"].as_u64().unwrap_or(0);
            assert_eq!(n("read") + n("expanded") + copies, n("written") + n("quarantined") + dropped, "{name}: {c}");
            read += n("read");
        }
        assert_eq!(read, self.events, "records read over all runs");
        assert!(
            !self.t.path(out).join("_state/pending").exists()
                || list_files(&self.t.path(out).join("_state/pending")).is_empty(),
            "a pending note outlived its commit"
        );

        let key = self.t.path("keys/signing.pub");
        let out_dir = self.t.path(out);
        let verify =
            sluice_in(self.t.root(), &["verify", out_dir.to_str().unwrap(), "--key", key.to_str().unwrap()], &[]);
        verify.assert_success();
    }
}

/// Parquet files visible in an archive (what a reader's glob would see).
fn visible_files(dir: &Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    list_files(dir).iter().filter(|f| f.extension().is_some_and(|e| e == "parquet")).count()
}

#[test]
fn crash_at_each_commit_step_then_resume_exactly_once() {
    let w = Workload::new(4000);
    let reference = w.run("ref");
    assert!(reference.summary().read == 4000, "{reference}");

    // each run dies at one step of its first commit; the next one recovers
    for step in ["after-pending", "after-upload", "after-commit-record", "after-first-entry"] {
        let run = Run::from(w.command("out", Some(step)).output().unwrap());
        assert_ne!(run.code, Some(0), "failpoint {step} did not fire:\n{run}");
        assert!(run.stderr.contains(&format!("failpoint {step}")), "{run}");
        if step == "after-upload" {
            // the uploaded file is visible until recovery removes it
            assert!(visible_files(&w.t.path("out")) > 0);
        }
    }
    let last = w.run("out");
    let summary = last.summary();
    assert!(summary.read < 4000, "the last run should resume, not start over: {last}");
    w.assert_same("ref", "out");

    // the pipeline's own record of it: runs 3-5 committed their start; run 4
    // found that run 3 had not finished its last commit, and so did run 5 of
    // run 4, unless run 3 had read everything before its first commit (a fast
    // machine): then run 4 read nothing, its one commit held a single log
    // entry (its own events), and dying after that entry left nothing to
    // recover. The last event is the final run's stop (runs 3 and 4 may also
    // have reached their stop before the commit they died in).
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&commit_records(&w.t.path("out"))[0]).unwrap()).unwrap();
    let run3_read: u64 =
        first["sources"].as_object().unwrap().values().map(|s| s["counts"]["read"].as_u64().unwrap()).sum();
    let recovers = if run3_read == 4000 { 1 } else { 2 };
    let ops = duckdb(&format!(
        "SELECT list(api_operation ORDER BY seq) FROM read_parquet('{}/_sluice/**/*.parquet')",
        w.t.path("out").display()
    ));
    let ops: Vec<&str> = ops[0][0].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    let count = |op: &str| ops.iter().filter(|o| **o == op).count();
    assert_eq!((count("pipeline.start"), count("pipeline.recover")), (3, recovers), "run 3 read {run3_read}: {ops:?}");
    assert_eq!(ops.last(), Some(&"pipeline.stop"), "{ops:?}");
}

#[test]
fn crash_random_kills_lose_and_duplicate_nothing() {
    let kills: u32 = std::env::var("SLUICE_CRASH_KILLS").map_or(6, |v| v.parse().unwrap());
    let events: u64 = std::env::var("SLUICE_CRASH_EVENTS").map_or(20_000, |v| v.parse().unwrap());
    let w = Workload::new(events);
    let started = Instant::now();
    w.run("ref");
    let full = started.elapsed();

    // a deterministic spread of kill times over the length of a full run
    let mut seed: u64 = std::env::var("SLUICE_CRASH_SEED").map_or(0x5eed, |v| v.parse().unwrap());
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut killed = 0;
    let mut finished_early = 0;
    let mut runs = 0;
    while killed < kills {
        runs += 1;
        let mut child = w.command("out", None).spawn().unwrap();
        let delay = full.mul_f64(0.02 + 0.5 * next());
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            killed += 1;
        } else {
            let run = Run::from(child.wait_with_output().unwrap());
            run.assert_success();
            finished_early += 1;
            // done: start over on a fresh archive so that every kill counts
            std::fs::remove_dir_all(w.t.path("out")).unwrap();
        }
    }
    w.run("out");
    println!("{runs} runs, {killed} SIGKILLs, {finished_early} runs finished before their kill (archive reset)");
    w.assert_same("ref", "out");
}

#[test]
fn crash_positions_live_with_the_output() {
    let t = TestDir::new();
    let lines = |from: usize, to: usize| -> String {
        (from..to).map(|i| format!("{{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"m{i}\"}}\n")).collect()
    };
    t.write("plain.ndjson", &lines(0, 100));
    write_gzip(&t.path("packed.ndjson.gz"), lines(100, 150).as_bytes());
    let pipeline = "[sources.a]\ntype = \"file\"\npaths = [\"*.ndjson*\"]\nchain = [\"json\"]\n\
        [stages.json]\nplugin = \"parse-json\"\nconfig = { time_field = \"time\", fields = { message = \"message\" } }\n\
        [sink]\nurl = \"${OUT}\"\n";
    let run = |out: &str| {
        let p = t.write("pipeline.toml", pipeline);
        let r = sluice_in(t.root(), &["run", p.to_str().unwrap()], &[("OUT", out)]);
        r.assert_success();
        r.summary()
    };
    assert_eq!(run("one").read, 150);
    // the same output: nothing new
    assert_eq!(run("one").read, 0);
    // appended lines, and a line without its newline yet: all read once
    append(&t.path("plain.ndjson"), &lines(200, 210));
    append(&t.path("plain.ndjson"), "{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"last\"}");
    assert_eq!(run("one").read, 11);
    // a new file under an old name (different first bytes) is read from its start
    t.write("plain.ndjson", &lines(300, 305));
    assert_eq!(run("one").read, 5);
    // a new, empty output starts from the beginning
    assert_eq!(run("two").read, 55);
    let messages = duckdb(&format!(
        "SELECT count(*), count(DISTINCT message) FROM read_parquet('{}/a/**/*.parquet')",
        t.path("one").display()
    ));
    assert_eq!(messages[0], serde_json::json!([166, 166]), "every line once in the first output");
}

#[test]
fn crash_renamed_and_rotated_files_are_not_read_twice() {
    let t = TestDir::new();
    // lines long enough that a file's first KiB identifies it
    let lines = |from: usize, to: usize| -> String {
        (from..to)
            .map(|i| format!("{{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"m{i} {}\"}}\n", "x".repeat(60)))
            .collect()
    };
    std::fs::create_dir_all(t.path("logs")).unwrap();
    t.write("logs/app.log", &lines(0, 100));
    let pipeline = |follow: bool| {
        format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"logs/app.log*\"]\nfollow = {follow}\nchain = [\"json\"]\n\
             [stages.json]\nplugin = \"parse-json\"\nconfig = {{ time_field = \"time\", fields = {{ message = \"message\" }} }}\n\
             [sink]\nurl = \"out\"\nroll_age_secs = 1\n"
        )
    };
    let run = t.run_pipeline(&pipeline(false));
    assert_eq!(run.summary().read, 100, "{run}");
    // between runs: rotated to a name the glob also matches, a new file started
    std::fs::rename(t.path("logs/app.log"), t.path("logs/app.log.1")).unwrap();
    append(&t.path("logs/app.log.1"), &lines(100, 110));
    t.write("logs/app.log", &lines(200, 205));
    let run = t.run_pipeline(&pipeline(false));
    assert_eq!(run.summary().read, 15, "only the 10 appended to the renamed file and the 5 new: {run}");

    // while following: the same rotation under a running pipeline
    let p = t.write("pipeline.toml", &pipeline(true));
    let mut child = spawn_sluice(t.root(), &["run", p.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    append(&t.path("logs/app.log"), &lines(205, 215));
    std::thread::sleep(std::time::Duration::from_millis(600));
    std::fs::rename(t.path("logs/app.log"), t.path("logs/app.log.2")).unwrap();
    append(&t.path("logs/app.log.2"), &lines(215, 220));
    t.write("logs/app.log", &lines(300, 303));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let run = terminate(&mut child);
    run.assert_success();
    assert_eq!(run.summary().read, 18, "10 + 5 after the rename + 3 new: {run}");
    let counts = duckdb(&format!(
        "SELECT count(*), count(DISTINCT message) FROM read_parquet('{}/a/**/*.parquet')",
        t.path("out").display()
    ));
    assert_eq!(counts, serde_json::json!([[133, 133]]), "every line once");
}

#[test]
fn crash_a_file_that_started_empty_is_recognised_by_what_was_read() {
    let t = TestDir::new();
    let lines = |tag: &str, n: usize| -> String {
        (0..n).map(|i| format!("{{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"{tag} {i}\"}}\n")).collect()
    };
    t.write("x.log", "");
    let pipeline = |follow: bool| {
        format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"x.log\"]\nfollow = {follow}\nchain = [\"json\"]\n\
             [stages.json]\nplugin = \"parse-json\"\nconfig = {{ time_field = \"time\", fields = {{ message = \"message\" }} }}\n\
             [sink]\nurl = \"out\"\nroll_age_secs = 1\n"
        )
    };
    let p = t.write("pipeline.toml", &pipeline(true));
    let mut child = command(t.root(), &["run", p.to_str().unwrap()]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    append(&t.path("x.log"), &lines("old", 10));
    // a commit record that holds the 10 lines (files are uploaded before it)
    wait_for("a commit of the 10 lines", || {
        commit_records(&t.path("out")).iter().any(|f| {
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f).unwrap_or_default()).unwrap_or_default();
            record["sources"]["a"]["counts"]["read"] == 10
        })
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // the same file, grown: resumed where the commit left it
    append(&t.path("x.log"), &lines("more", 5));
    let run = t.run_pipeline(&pipeline(false));
    assert_eq!(run.summary().read, 5, "{run}");
    // a different, longer file under the same name
    t.write("x.log", &lines("new", 30));
    let run = t.run_pipeline(&pipeline(false));
    assert_eq!(run.summary().read, 30, "the new file is read whole, not from the old file's offset: {run}");
}

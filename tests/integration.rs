//! Runs the real `sluice` binary on small pipelines and reads what it wrote
//! back with DuckDB (PyPI `duckdb`, installed by `.ci/run`).
//!
//! The `corpus_*` tests read real public logs from `../shared/corpus` (set
//! `SLUICE_CORPUS` to read them elsewhere); they fail, never skip, when it is missing.

mod util;

use std::fs;
use util::*;

const JSON_PARSER: &str = r#"
[stages.json]
plugin = "parse-json"
config = { time_field = "time", fields = { message = "message", actor_user_name = "actor_user_name", tenant_uid = "tenant_uid", class_uid = "class_uid" } }
"#;

fn faulty_stage(mode: &str, extra: &str) -> String {
    format!(
        "[stages.faulty]\nplugin = \"{}\"\n{extra}\nconfig = {{ mode = \"{mode}\", field = \"message\", equals = \"boom\" }}\n",
        fixture_plugin("faulty")
    )
}

/// `n` JSON events, one per line; line `bad` (if any) carries the trigger.
fn events(n: usize, bad: Option<usize>) -> String {
    (0..n)
        .map(|i| {
            let msg = if Some(i) == bad { "boom".to_string() } else { format!("event {i}") };
            format!(
                "{{\"time\":\"2026-11-01T10:{:02}:00Z\",\"message\":\"{msg}\",\"actor_user_name\":\"u{i}\"}}\n",
                i % 60
            )
        })
        .collect()
}

#[test]
fn quickstart_lands_every_record_typed_and_without_secrets() {
    let t = TestDir::new();
    let out = t.path("out");
    let run = sluice_in(
        &repo_root(),
        &["run", "examples/quickstart/pipeline.toml"],
        &[("SLUICE_OUT", out.to_str().unwrap())],
    );
    run.assert_success();
    let s = run.summary();
    let inputs: u64 = ["auth.log", "k8s-audit.ndjson", "cloudtrail.ndjson", "app.ndjson"]
        .iter()
        .map(|f| {
            fs::read_to_string(repo_root().join("examples/quickstart/data").join(f)).unwrap().lines().count() as u64
        })
        .sum();
    assert_eq!(s.read, inputs);
    assert_eq!(s.read, s.written + s.quarantined + s.dropped, "{run}");
    assert_eq!(s.quarantined, 0, "{run}");
    // DuckDB sees every event, per stream, apart from the quarantine
    let mut total = 0;
    for stream in ["auth", "k8s", "cloudtrail", "app"] {
        let n =
            duckdb_count(&format!("read_parquet('{}/{stream}/**/*.parquet', hive_partitioning=true)", out.display()));
        assert!(n > 0, "stream {stream} is empty");
        total += n;
    }
    assert_eq!(total, s.written);
    // typed columns: the event time is a UTC µs timestamp, ids are integers
    // (DuckDB infers the zero-padded `hour=HH` partition as text)
    let types = duckdb(&format!(
        "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{}/auth/**/*.parquet', hive_partitioning=true)) \
         WHERE column_name IN ('time','class_uid','src_endpoint_port','seq','event_day','hour') ORDER BY column_name",
        out.display()
    ));
    assert_eq!(
        types,
        serde_json::json!([
            ["class_uid", "INTEGER"],
            ["event_day", "BIGINT"],
            ["hour", "VARCHAR"],
            ["seq", "BIGINT"],
            ["src_endpoint_port", "INTEGER"],
            ["time", "TIMESTAMP WITH TIME ZONE"]
        ])
    );
    // the sshd mapping on a known line
    let failed = duckdb(&format!(
        "SELECT count(*) FROM read_parquet('{}/auth/**/*.parquet') WHERE class_uid = 3002 AND status_id = 2 AND actor_user_name IS NOT NULL AND src_endpoint_ip IS NOT NULL",
        out.display()
    ));
    let failed_in_input = fs::read_to_string(repo_root().join("examples/quickstart/data/auth.log"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("Failed password"))
        .count();
    assert_eq!(failed, serde_json::json!([[failed_in_input]]));
    // no planted secret anywhere in the output, decoded
    let secrets: Vec<String> = fs::read_to_string(repo_root().join("examples/quickstart/planted-secrets.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(secrets.len() > 100);
    let leaked = find_strings_in_archive(&out, &secrets);
    assert!(leaked.is_empty(), "secrets reached the archive: {leaked:?}");
}

#[test]
fn typo_in_config_is_reported_with_file_line_and_key() {
    let t = TestDir::new();
    let p = t.write(
        "pipeline.toml",
        "[sources.a]\ntype = \"file\"\npaths = [\"x\"]\nchian = [\"json\"]\n\n[sink]\nurl = \"out\"\n",
    );
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("pipeline.toml:4:1: sources.a.chian: unknown field `chian`"), "{run}");
    let run = sluice_in(t.root(), &["run", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("unknown field `chian`"), "{run}");
}

#[test]
fn bad_value_and_missing_env_are_reported() {
    let t = TestDir::new();
    let p = t.write(
        "pipeline.toml",
        &format!("[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\"]\n{JSON_PARSER}\n[sink]\nurl = \"${{NOT_SET_ANYWHERE}}\"\n"),
    );
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("pipeline.toml:11:8: environment variable `NOT_SET_ANYWHERE` is not set"), "{run}");
    let p = t.write(
        "pipeline.toml",
        &format!("[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\"]\n{JSON_PARSER}\n[sink]\nurl = \"out\"\nroll_age_secs = -5\n"),
    );
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("pipeline.toml:12:17: sink.roll_age_secs"), "{run}");
}

#[test]
fn plugin_config_is_checked_by_validate() {
    let t = TestDir::new();
    let p = t.write(
        "pipeline.toml",
        "[sources.a]\ntype = \"file\"\npaths = [\"in\"]\nchain = [\"json\"]\n[stages.json]\nplugin = \"parse-json\"\nconfig = { time_feild = \"t\" }\n[sink]\nurl = \"out\"\n",
    );
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("pipeline.toml:6:10: stages.json:"), "{run}");
    assert!(run.stderr.contains("refused its config: parse-json: unknown config key `time_feild`"), "{run}");
}

#[test]
fn plugins_get_no_clock_unless_granted() {
    let t = TestDir::new();
    // parse-syslog guesses the year of RFC 3164 lines from the clock: denied by
    // default, the clock reads 1970, and the plugin refuses to guess
    let no_clock = "[sources.a]\ntype = \"file\"\npaths = [\"in\"]\nchain = [\"syslog\"]\n[stages.syslog]\nplugin = \"parse-syslog\"\n[sink]\nurl = \"out\"\n";
    let p = t.write("pipeline.toml", no_clock);
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("parse-syslog: set `year`"), "{run}");
    let p = t.write(
        "pipeline.toml",
        &no_clock.replace("plugin = \"parse-syslog\"\n", "plugin = \"parse-syslog\"\nclocks = true\n"),
    );
    sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]).assert_success();
}

#[test]
fn sha256_pin_is_enforced() {
    let t = TestDir::new();
    let wrong = "0".repeat(64);
    let p = t.write(
        "pipeline.toml",
        &format!("[sources.a]\ntype = \"file\"\npaths = [\"in\"]\nchain = [\"json\"]\n[stages.json]\nplugin = \"parse-json\"\nsha256 = \"{wrong}\"\n[sink]\nurl = \"out\"\n"),
    );
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(run.stderr.contains(&format!("but the pipeline pins {wrong}")), "{run}");
    // the right pin passes: take it from validate's own report of an unpinned pipeline
    let unpinned =
        t.write("unpinned.toml", &fs::read_to_string(&p).unwrap().replace(&format!("sha256 = \"{wrong}\"\n"), ""));
    let ok = sluice_in(t.root(), &["validate", unpinned.to_str().unwrap()], &[]);
    ok.assert_success();
    let digest = ok.stdout.split("sha256 ").nth(1).unwrap()[..64].to_string();
    fs::write(&p, fs::read_to_string(&p).unwrap().replace(&wrong, &digest)).unwrap();
    sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]).assert_success();
}

#[test]
fn a_plugin_trap_on_one_record_quarantines_only_that_record() {
    let t = TestDir::new();
    t.write("in.ndjson", &events(50, Some(17)));
    let pipeline = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\", \"faulty\"]\n{JSON_PARSER}\n{}\n[sink]\nurl = \"out\"\n",
        faulty_stage("trap", "")
    );
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (50, 49, 1), "{run}");
    assert_eq!(duckdb_count(&format!("read_parquet('{}/a/**/*.parquet')", t.path("out").display())), 49);
    let q = t.quarantine("out", "a");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["stage"], "faulty");
    assert_eq!(q[0]["plugin"], "faulty");
    assert_eq!(q[0]["plugin_sha256"].as_str().unwrap().len(), 64);
    assert!(q[0]["reason"].as_str().unwrap().contains("plugin trapped"), "{}", q[0]);
    assert!(q[0]["record"].as_str().unwrap().contains("\"boom\""));
    // every other record landed, exactly once
    let users = duckdb(&format!(
        "SELECT count(DISTINCT actor_user_name) FROM read_parquet('{}/a/**/*.parquet')",
        t.path("out").display()
    ));
    assert_eq!(users, serde_json::json!([[49]]));
}

#[test]
fn a_plugin_stuck_in_a_loop_is_stopped_at_its_deadline() {
    let t = TestDir::new();
    t.write("in.ndjson", &events(20, Some(3)));
    let pipeline = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\", \"faulty\"]\n{JSON_PARSER}\n{}\n[sink]\nurl = \"out\"\n",
        faulty_stage("loop", "timeout_ms = 200")
    );
    let started = std::time::Instant::now();
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (20, 19, 1), "{run}");
    let q = t.quarantine("out", "a");
    assert!(q[0]["reason"].as_str().unwrap().contains("time limit"), "{}", q[0]);
    // bisecting 20 records costs a handful of 200 ms deadlines, not more
    assert!(started.elapsed().as_secs() < 30);
}

/// `time_limit = false` compiles the plugin without deadline checks: a call
/// far longer than `timeout_ms` (the fixture's `busy` mode, a few hundred ms
/// of work) completes, where the same stage with its limit is stopped.
#[test]
fn a_stage_without_a_time_limit_is_not_stopped() {
    let t = TestDir::new();
    t.write("in.ndjson", &events(10, Some(4)));
    for (extra, written, quarantined) in [("timeout_ms = 20", 9, 1), ("timeout_ms = 20\ntime_limit = false", 10, 0)] {
        let pipeline = format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\", \"faulty\"]\n{JSON_PARSER}\n{}\n[sink]\nurl = \"out-{written}\"\n",
            faulty_stage("busy", extra)
        );
        let run = t.run_pipeline(&pipeline);
        run.assert_success();
        let s = run.summary();
        assert_eq!((s.read, s.written, s.quarantined), (10, written, quarantined), "{extra}: {run}");
        let warned = run.stderr.contains("stages.faulty: no time limit (time_limit = false)");
        assert_eq!(warned, quarantined == 0, "{run}");
        if quarantined == 1 {
            let q = t.quarantine("out-9", "a");
            assert!(q[0]["reason"].as_str().unwrap().contains("time limit"), "{}", q[0]);
        }
    }
}

#[test]
fn a_memory_hungry_plugin_is_capped() {
    let t = TestDir::new();
    t.write("in.ndjson", &events(10, Some(9)));
    let pipeline = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\", \"faulty\"]\n{JSON_PARSER}\n{}\n[sink]\nurl = \"out\"\n",
        faulty_stage("oom", "memory_mb = 16")
    );
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (10, 9, 1), "{run}");
    let q = t.quarantine("out", "a");
    assert!(q[0]["reason"].as_str().unwrap().contains("memory limit (16 MiB)"), "{}", q[0]);
}

#[test]
fn bad_input_is_quarantined_with_its_reason() {
    let t = TestDir::new();
    let mut input = events(5, None).into_bytes();
    input.extend_from_slice(b"{not json\n");
    input.extend_from_slice(b"{\"time\":\"yesterday\"}\n");
    input.extend_from_slice(b"{\"time\":\"2026-11-01T00:00:00Z\",\"class_uid\":\"three\"}\n");
    input.extend_from_slice(b"\xff\xfe{\"time\":1}\n");
    t.write_bytes("in.ndjson", &input);
    let pipeline = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\"]\n{JSON_PARSER}\n[sink]\nurl = \"out\"\n"
    );
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (9, 5, 4), "{run}");
    let q = t.quarantine("out", "a");
    let reasons: Vec<&str> = q.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("not valid JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("yesterday")), "{reasons:?}");
    assert!(reasons.contains(&"field `class_uid`: expected an integer, got string"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("UTF-8")), "{reasons:?}");
    let schema_rejects: Vec<_> = q.iter().filter(|r| r["stage"] == "schema").collect();
    assert_eq!(schema_rejects.len(), 1);
    assert!(q.iter().any(|r| { r["record_hex"].as_str().is_some_and(|h| h.starts_with("fffe")) }));
}

#[test]
fn quarantined_records_are_redacted_fail_closed() {
    let t = TestDir::new();
    let token = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
    let mut input = format!("{{not json, but password=hunter2hunter2 and {token}\n").into_bytes();
    input.extend_from_slice(format!("{{\"time\":\"when? {token}\"}}\n").as_bytes());
    input.extend_from_slice(b"\xff\xfe --password=s3cr3t-Passw0rd\n");
    input.extend_from_slice(events(2, None).as_bytes());
    t.write_bytes("in.ndjson", &input);
    let pipeline = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\"]\n{JSON_PARSER}\n\
         [stages.redact]\nplugin = \"redact\"\n[sink]\nurl = \"out\"\nquarantine_redactor = \"redact\"\n"
    );
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    assert_eq!((run.summary().written, run.summary().quarantined), (2, 3), "{run}");
    let q = t.quarantine("out", "a");
    let text = serde_json::to_string(&q).unwrap();
    for secret in [token, "hunter2hunter2", "s3cr3t-Passw0rd"] {
        assert!(!text.contains(secret), "{secret} in quarantine: {text}");
    }
    assert!(q.iter().all(|r| r["record"].as_str().is_some_and(|t| t.contains("[REDACTED:"))), "{text}");
    assert!(q.iter().any(|r| r["record_lossy"] == true), "{text}");
    assert!(q.iter().any(|r| r["redactions"].as_array().is_some_and(|a| !a.is_empty())), "{text}");

    // a redactor that fails on a record withholds it: hash and length only
    let failing = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"bad.ndjson\"]\nchain = [\"json\"]\n{JSON_PARSER}\n{}\n\
         [sink]\nurl = \"out2\"\nquarantine_redactor = \"faulty\"\n",
        faulty_stage("trap", "").replace("field = \"message\"", "field = \"raw_data\"")
    );
    t.write("bad.ndjson", "not json at all\n");
    let run = t.run_pipeline(&failing.replace("equals = \"boom\"", "equals = \"not json at all\""));
    run.assert_success();
    let q = t.quarantine("out2", "a");
    assert_eq!(q.len(), 1);
    assert!(q[0].get("record").is_none(), "{}", q[0]);
    assert_eq!(q[0]["record_len"], 15);
    assert_eq!(q[0]["record_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn gzip_and_globs_are_read_transparently() {
    let t = TestDir::new();
    t.write("logs/a.ndjson", &events(7, None));
    write_gzip(&t.path("logs/b.ndjson.gz"), events(11, None).as_bytes());
    let pipeline = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"logs/*\"]\nchain = [\"json\"]\n{JSON_PARSER}\n[sink]\nurl = \"out\"\n"
    );
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    assert_eq!(run.summary().written, 18, "{run}");
    assert_eq!(duckdb_count(&format!("read_parquet('{}/a/**/*.parquet')", t.path("out").display())), 18);
}

#[test]
fn stdin_source_and_partitions() {
    let t = TestDir::new();
    let input = "{\"time\":\"2026-11-01T10:00:00Z\",\"tenant_uid\":\"t1\"}\n{\"time\":\"2026-11-02T23:59:59Z\",\"tenant_uid\":\"t/2\"}\n";
    let p = t.write(
        "pipeline.toml",
        &format!("[sources.s]\ntype = \"stdin\"\nchain = [\"json\"]\n{JSON_PARSER}\n[sink]\nurl = \"out\"\npartition_by = [\"tenant_uid\", \"event_day\", \"hour\"]\n"),
    );
    let run = sluice_stdin(t.root(), &["run", p.to_str().unwrap()], input);
    run.assert_success();
    assert_eq!(run.summary().written, 2);
    let files = list_files(&t.path("out/s"));
    let rel: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(t.path("out/s")).unwrap().parent().unwrap().display().to_string())
        .collect();
    assert!(rel.contains(&"tenant_uid=t1/event_day=20261101/hour=10".to_string()), "{rel:?}");
    assert!(rel.contains(&"tenant_uid=t%2F2/event_day=20261102/hour=23".to_string()), "{rel:?}");
    let rows = duckdb(&format!(
        "SELECT tenant_uid, epoch_us(time), seq FROM read_parquet('{}/s/**/*.parquet', hive_partitioning=false) ORDER BY seq",
        t.path("out").display()
    ));
    assert_eq!(rows, serde_json::json!([["t1", 1793527200000000_i64, 0], ["t/2", 1793663999000000_i64, 1]]));
}

/// Starts sluice following `paths` (source `a`, JSON lines, files rolled
/// after 1 s).
fn follow(t: &TestDir, paths: &str, options: &str) -> std::process::Child {
    let p = t.write(
        "pipeline.toml",
        &format!("[sources.a]\ntype = \"file\"\npaths = [\"{paths}\"]\nfollow = true\n{options}chain = [\"json\"]\n{JSON_PARSER}\n[sink]\nurl = \"out\"\nroll_age_secs = 1\n"),
    );
    spawn_sluice(t.root(), &["run", p.to_str().unwrap()])
}

/// How many files source `a` has committed.
fn files(t: &TestDir) -> usize {
    if t.path("out/a").exists() { list_files(&t.path("out/a")).len() } else { 0 }
}

#[test]
fn sigterm_flushes_a_following_source_and_rotation_is_followed() {
    let t = TestDir::new();
    t.write("live.ndjson", &events(5, None));
    let mut child = follow(&t, "live.ndjson", "");
    let files = || files(&t);
    // each step waits until what was written so far is committed (files roll after 1 s)
    wait_for("the first file", || files() >= 1);
    append(&t.path("live.ndjson"), &events(3, None));
    wait_for("the appended lines", || files() >= 2);
    fs::rename(t.path("live.ndjson"), t.path("live.ndjson.1")).unwrap();
    append(&t.path("live.ndjson.1"), &events(2, None)); // written to the old file after rotation
    t.write("live.ndjson", &events(4, None));
    // (once seen timing out under load: then show what sluice said)
    if !poll_for(|| files() >= 3) {
        panic!("timed out waiting for the rotated file: {}", terminate(&mut child));
    }
    // lines that are still open when SIGTERM comes are flushed, not lost
    append(&t.path("live.ndjson"), &events(6, None));
    std::thread::sleep(std::time::Duration::from_millis(400));
    let run = terminate(&mut child);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written), (20, 20), "{run}");
    assert_eq!(duckdb_count(&format!("read_parquet('{}/a/**/*.parquet')", t.path("out").display())), 20);
}

#[test]
fn lines_written_to_a_rotated_file_after_the_switch_are_not_lost() {
    let t = TestDir::new();
    t.write("live.ndjson", &events(3, None));
    // a long wait, so that a slow machine cannot make the test flaky
    let mut child = follow(&t, "live.ndjson", "rotate_wait_secs = 120\n");
    let files = || files(&t);
    wait_for("the first file", || files() >= 1);
    fs::rename(t.path("live.ndjson"), t.path("live.ndjson.1")).unwrap();
    t.write("live.ndjson", &events(2, None));
    // the successor's lines are committed: sluice has switched to it
    wait_for("the successor's lines", || files() >= 2);
    // the writer has not reopened its log yet and still writes to the old file
    append(&t.path("live.ndjson.1"), &tagged("late", 4));
    if !poll_for(|| files() >= 3) {
        panic!("the lines written to the rotated file were not read: {}", terminate(&mut child));
    }
    // what it holds when sluice stops is read before it stops (the new name matches no pattern)
    append(&t.path("live.ndjson.1"), &events(2, None));
    let run = terminate(&mut child);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written), (11, 11), "{run}");
    assert_eq!(messages(&t, "late"), serde_json::json!(["late 0", "late 1", "late 2", "late 3"]));
}

/// Lines with messages `{prefix} 0`, `{prefix} 1`, ...
fn tagged(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{{\"time\":\"2026-11-01T11:00:00Z\",\"message\":\"{prefix} {i}\"}}\n")).collect()
}

/// The committed messages that start with `prefix`, sorted, duplicates kept.
fn messages(t: &TestDir, prefix: &str) -> serde_json::Value {
    duckdb(&format!(
        "SELECT list(message ORDER BY message) FROM read_parquet('{}/a/**/*.parquet') WHERE message LIKE '{prefix}%'",
        t.path("out").display()
    ))[0][0]
        .clone()
}

/// Follows `live.ndjson` (lines `a 0..2`), rotates it to `live.ndjson.1`
/// with a new `live.ndjson` (`b 0..1`), waits until all 5 are committed, and
/// kills sluice while it still reads the rotated file (a 120 s wait).
fn killed_while_a_rotated_file_is_read(t: &TestDir) {
    let mut child = following(t, "live.ndjson", &tagged("a", 3), "live.ndjson", "rotate_wait_secs = 120\n");
    fs::rename(t.path("live.ndjson"), t.path("live.ndjson.1")).unwrap();
    t.write("live.ndjson", &tagged("b", 2));
    wait_for("the successor's lines", || committed(t) >= 5);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_crash_while_a_rotated_file_is_still_read_loses_none_of_it() {
    let t = TestDir::new();
    killed_while_a_rotated_file_is_read(&t);
    // its writer then adds more to it
    append(&t.path("live.ndjson.1"), &tagged("late", 4));
    // the rotated file's new name matches no pattern: found again by its first bytes
    stop_having_read(
        &t,
        &mut follow(&t, "live.ndjson", "rotate_wait_secs = 120\n"),
        9,
        4,
        std::time::Duration::from_millis(500),
    );
    assert_eq!(messages(&t, "late"), serde_json::json!(["late 0", "late 1", "late 2", "late 3"]));
}

#[test]
fn a_rotation_while_sluice_is_stopped_loses_nothing() {
    let t = TestDir::new();
    t.write("app.log", &events(3, None));
    let mut child = follow(&t, "app.log", "");
    stop_at(&t, &mut child, 3, std::time::Duration::ZERO);
    // while sluice is stopped, more lines, then logrotate (`create` mode) with a new file
    append(&t.path("app.log"), &tagged("unread", 2));
    fs::rename(t.path("app.log"), t.path("app.log-20261127")).unwrap();
    t.write("app.log", &tagged("new", 3));
    stop_having_read(&t, &mut follow(&t, "app.log", ""), 8, 5, std::time::Duration::from_millis(500));
    assert_eq!(messages(&t, "unread"), serde_json::json!(["unread 0", "unread 1"]));
    // `copytruncate` while stopped: the lines not read yet are in the copy only
    append(&t.path("app.log"), &tagged("copied", 2));
    fs::copy(t.path("app.log"), t.path("app.log.1")).unwrap();
    fs::write(t.path("app.log"), tagged("after", 1)).unwrap();
    stop_having_read(&t, &mut follow(&t, "app.log", ""), 11, 3, std::time::Duration::from_millis(500));
    assert_eq!(messages(&t, "copied"), serde_json::json!(["copied 0", "copied 1"]));
    // rotated and compressed at once (`compress` without `delaycompress`), no successor yet
    append(&t.path("app.log"), &tagged("zipped", 2));
    write_gzip(&t.path("app.log.2.gz"), &fs::read(t.path("app.log")).unwrap());
    fs::remove_file(t.path("app.log")).unwrap();
    stop_having_read(&t, &mut follow(&t, "app.log", ""), 13, 2, std::time::Duration::from_millis(500));
    assert_eq!(messages(&t, "zipped"), serde_json::json!(["zipped 0", "zipped 1"]));
}

#[test]
fn a_rotation_into_olddir_while_sluice_is_stopped_loses_nothing() {
    let t = TestDir::new();
    t.write("logs/app.log", &events(3, None));
    let options = "olddir = \"old\"\n";
    let mut child = follow(&t, "logs/app.log", options);
    stop_at(&t, &mut child, 3, std::time::Duration::ZERO);
    // while sluice is stopped, more lines, then logrotate with `olddir old`
    // (relative to the log's folder, not to sluice's) and a new file
    append(&t.path("logs/app.log"), &tagged("unread", 2));
    fs::create_dir(t.path("logs/old")).unwrap();
    fs::rename(t.path("logs/app.log"), t.path("logs/old/app.log.1")).unwrap();
    t.write("logs/app.log", &tagged("new", 3));
    stop_having_read(&t, &mut follow(&t, "logs/app.log", options), 8, 5, std::time::Duration::from_millis(500));
    assert_eq!(messages(&t, "unread"), serde_json::json!(["unread 0", "unread 1"]));
    // rotated on into a second `olddir` given as an absolute path, compressed
    append(&t.path("logs/app.log"), &tagged("moved", 2));
    let elsewhere = t.path("archive");
    fs::create_dir(&elsewhere).unwrap();
    write_gzip(&elsewhere.join("app.log.1.gz"), &fs::read(t.path("logs/app.log")).unwrap());
    fs::remove_file(t.path("logs/app.log")).unwrap();
    let options = format!("olddir = \"{}\"\n", elsewhere.display());
    stop_having_read(&t, &mut follow(&t, "logs/app.log", &options), 10, 2, std::time::Duration::from_millis(500));
    assert_eq!(messages(&t, "moved"), serde_json::json!(["moved 0", "moved 1"]));
    // nothing again at the next start
    stop_having_read(&t, &mut follow(&t, "logs/app.log", &options), 10, 0, std::time::Duration::from_secs(1));
}

#[test]
fn two_files_rotated_from_one_path_are_each_read_once_after_a_restart() {
    let t = TestDir::new();
    killed_while_a_rotated_file_is_read(&t);
    // both files get more lines, and a second rotation moves them on before sluice starts again
    append(&t.path("live.ndjson.1"), &tagged("a late", 2));
    append(&t.path("live.ndjson"), &tagged("b late", 2));
    fs::rename(t.path("live.ndjson.1"), t.path("live.ndjson.2")).unwrap();
    fs::rename(t.path("live.ndjson"), t.path("live.ndjson.1")).unwrap();
    t.write("live.ndjson", &tagged("c", 1));
    // the older file touched last (as compressing it would): its age is not in its time
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    fs::File::options().append(true).open(t.path("live.ndjson.2")).unwrap().set_modified(later).unwrap();
    let options = "rotate_wait_secs = 1\n";
    stop_having_read(&t, &mut follow(&t, "live.ndjson", options), 10, 5, std::time::Duration::from_millis(1500));
    // each once, the older file's lines first
    let order = duckdb(&format!(
        "SELECT list(message ORDER BY seq) FROM read_parquet('{}/a/**/*.parquet') WHERE message LIKE '% late %'",
        t.path("out").display()
    ));
    assert_eq!(order, serde_json::json!([[["a late 0", "a late 1", "b late 0", "b late 1"]]]));
    // and nothing again at the next start
    stop_having_read(&t, &mut follow(&t, "live.ndjson", options), 10, 0, std::time::Duration::from_secs(1));
}

#[test]
fn a_restart_reads_only_rotated_files_of_its_own_paths() {
    let t = TestDir::new();
    t.write("old.log", &tagged("one", 1));
    let mut child = follow(&t, "old.log", "");
    stop_at(&t, &mut child, 1, std::time::Duration::ZERO);
    append(&t.path("old.log"), &tagged("more", 2));
    fs::rename(t.path("old.log"), t.path("old.log.1")).unwrap();
    // a file of another name that begins with the same bytes
    fs::copy(t.path("old.log.1"), t.path("other.log")).unwrap();
    // the source now reads another file: what `old.log` left is not its business
    t.write("new.log", &tagged("new", 1));
    stop_having_read(&t, &mut follow(&t, "new.log", ""), 2, 1, std::time::Duration::from_secs(1));
    // back on `old.log`, whose rotated file is gone: `other.log` is not taken for it
    fs::remove_file(t.path("old.log.1")).unwrap();
    stop_having_read(&t, &mut follow(&t, "old.log", ""), 2, 0, std::time::Duration::from_secs(1));
    assert_eq!(messages(&t, "more"), serde_json::json!(null));
}

/// Writes `text` to `file`, starts sluice following `paths`, and waits
/// until its lines are committed.
fn following(t: &TestDir, file: &str, text: &str, paths: &str, options: &str) -> std::process::Child {
    t.write(file, text);
    let child = follow(t, paths, options);
    let n = text.lines().count() as u64;
    wait_for("the first lines", || committed(t) >= n);
    child
}

/// How many events source `a` has committed.
fn committed(t: &TestDir) -> u64 {
    if files(t) == 0 { 0 } else { duckdb_count(&format!("read_parquet('{}/a/**/*.parquet')", t.path("out").display())) }
}

/// Waits until `n` events are committed, gives sluice `settle` to read
/// anything more, stops it, and checks that it read and wrote exactly `n`.
fn stop_at(t: &TestDir, child: &mut std::process::Child, n: u64, settle: std::time::Duration) {
    stop_having_read(t, child, n, n, settle)
}

/// Waits until `n` events are committed in all, gives sluice `settle` to
/// read anything more, stops it, and checks that this run read exactly `read`.
fn stop_having_read(t: &TestDir, child: &mut std::process::Child, n: u64, read: u64, settle: std::time::Duration) {
    if !poll_for(|| committed(t) >= n) {
        panic!("timed out waiting for {n} events: {}", terminate(child));
    }
    std::thread::sleep(settle);
    let run = terminate(child);
    run.assert_success();
    assert_eq!((run.summary().read, committed(t)), (read, n), "{run}");
}

#[test]
fn numbered_rotation_under_a_glob_reads_nothing_twice() {
    let t = TestDir::new();
    let mut child = following(&t, "app.log", &events(3, None), "app.log*", "");
    // logrotate's numbered names: each rotation shifts `.1` to `.2` and the
    // live file to `.1`; the new names sort after the old, so sluice meets
    // each file's successor before the file under its new name
    fs::rename(t.path("app.log"), t.path("app.log.1")).unwrap();
    t.write("app.log", &events(2, None));
    append(&t.path("app.log.1"), &events(1, None)); // its writer has not reopened yet
    wait_for("the second file", || committed(&t) >= 6);
    fs::rename(t.path("app.log.1"), t.path("app.log.2")).unwrap();
    fs::rename(t.path("app.log"), t.path("app.log.1")).unwrap();
    t.write("app.log", &events(4, None));
    append(&t.path("app.log.1"), &events(1, None));
    // each file goes on where it was under its new name
    stop_at(&t, &mut child, 11, std::time::Duration::ZERO);
}

#[test]
fn a_rotated_file_compressed_later_is_not_read_again() {
    let t = TestDir::new();
    // over 1 KiB, so that its fingerprint is whole and can name it under another name
    let first = events(20, None);
    let mut child = following(&t, "auth.log", &first, "auth.log*", "rotate_wait_secs = 1\n");
    fs::rename(t.path("auth.log"), t.path("auth.log.1")).unwrap();
    t.write("auth.log", &events(2, None));
    wait_for("the successor's lines", || committed(&t) >= 22);
    // the next rotation compresses it (logrotate's `delaycompress`)
    write_gzip(&t.path("auth.log.2.gz"), first.as_bytes());
    fs::remove_file(t.path("auth.log.1")).unwrap();
    append(&t.path("auth.log"), &events(3, None));
    stop_at(&t, &mut child, 25, std::time::Duration::from_secs(2));
}

#[test]
fn copytruncate_rotation_reads_each_line_once() {
    let t = TestDir::new();
    let mut child = following(&t, "app.log", &events(20, None), "app.log*", "");
    // logrotate's `copytruncate`: lines sluice may not have read yet, a copy, then the file emptied
    append(&t.path("app.log"), &events(2, None));
    fs::copy(t.path("app.log"), t.path("app.log.1")).unwrap();
    // a big file takes a while to copy: sluice sees the copy before the file is emptied
    std::thread::sleep(std::time::Duration::from_secs(1));
    fs::OpenOptions::new().write(true).open(t.path("app.log")).unwrap().set_len(0).unwrap();
    append(&t.path("app.log"), &events(3, None));
    stop_at(&t, &mut child, 25, std::time::Duration::from_secs(1));
}

#[test]
fn bodies_that_hold_several_events_balance() {
    let t = TestDir::new();
    let item = |i: u32| {
        format!(
            "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":\"id-{i}\",\"stage\":\"ResponseComplete\",\"requestURI\":\"/api/v1/pods\",\"verb\":\"list\",\"user\":{{\"username\":\"u{i}\"}},\"sourceIPs\":[\"10.0.0.{i}\"],\"responseStatus\":{{\"code\":200}},\"requestReceivedTimestamp\":\"2026-11-01T10:00:0{i}.000000Z\",\"stageTimestamp\":\"2026-11-01T10:00:0{i}.100000Z\"}}"
        )
    };
    // an EventList of three, a single Event, and an empty EventList
    let body = format!(
        "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{},{},{}]}}\n{}\n{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[]}}\n",
        item(1),
        item(2),
        item(3),
        item(4)
    );
    t.write("k8s.ndjson", &body);
    let run = t.run_pipeline(
        "[sources.k8s]\ntype = \"file\"\npaths = [\"k8s.ndjson\"]\nchain = [\"k8s\"]\n[stages.k8s]\nplugin = \"parse-k8s-audit\"\n[sink]\nurl = \"out\"\n",
    );
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.expanded, s.written, s.dropped), (3, 2, 4, 1), "{run}");
    s.assert_balanced();
    let users = duckdb(&format!(
        "SELECT list(actor_user_name ORDER BY actor_user_name) FROM read_parquet('{}/k8s/**/*.parquet')",
        t.path("out").display()
    ));
    assert_eq!(users, serde_json::json!([[["u1", "u2", "u3", "u4"]]]));
}

#[test]
fn streams_declare_extra_typed_columns() {
    let t = TestDir::new();
    t.write(
        "pay.ndjson",
        "{\"time\":\"2026-11-01T10:00:00Z\",\"amount\":1250,\"paid\":\"2026-11-01T09:59:00Z\",\"note\":\"x\"}\n\
         {\"time\":\"2026-11-01T10:01:00Z\",\"amount\":\"lots\"}\n",
    );
    sluice_in(t.root(), &["keys", "generate", "--out", "keys"], &[]).assert_success();
    let run = t.run_pipeline(
        "[sources.pay]\ntype = \"file\"\npaths = [\"pay.ndjson\"]\nchain = [\"json\"]\n\
         [stages.json]\nplugin = \"parse-json\"\n\
         config = { time_field = \"time\", keep_original = false, fields = { amount_cents = \"amount\", paid_at = \"paid\", note = \"note\" } }\n\
         [streams.pay]\ncolumns = { amount_cents = \"int64\", paid_at = \"timestamp\" }\n\
         [sink]\nurl = \"out\"\n[integrity]\nsigning_key = \"keys/signing.key\"\n",
    );
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.written, s.quarantined), (1, 1), "{run}");
    let out = t.path("out");
    let rows = duckdb(&format!(
        "SELECT amount_cents, typeof(amount_cents), epoch_us(paid_at), typeof(paid_at), unmapped FROM read_parquet('{}/pay/**/*.parquet')",
        out.display()
    ));
    assert_eq!(
        rows,
        serde_json::json!([[1250, "BIGINT", 1793527140000000_i64, "TIMESTAMP WITH TIME ZONE", "{\"note\":\"x\"}"]])
    );
    let q = t.quarantine("out", "pay");
    assert_eq!(q[0]["reason"], "field `amount_cents`: expected an integer, got string");
    let key = t.path("keys/signing.pub");
    sluice_in(t.root(), &["verify", out.to_str().unwrap(), "--key", key.to_str().unwrap()], &[]).assert_success();
}

#[test]
fn plugin_of_the_wrong_kind_is_refused() {
    let t = TestDir::new();
    let p = t.write(
        "pipeline.toml",
        "[sources.a]\ntype = \"file\"\npaths = [\"in\"]\nchain = [\"redact\"]\n[stages.redact]\nplugin = \"redact\"\n[sink]\nurl = \"out\"\n",
    );
    let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(
        run.stderr.contains(
            "pipeline.toml:4:10: sources.a.chain: stage `redact` is a transform, but position 1 needs a parser"
        ),
        "{run}"
    );
}

mod alerts;
mod azurite;
mod bad_input;
mod corpus;
mod crash;
mod garage;
mod http;
mod integrity;
#[cfg(feature = "native-plugins")]
mod native;
mod object_lock;
mod objects;
mod plugin_test;
mod polyglot;
mod quarantine;
mod query;
mod reload;
mod replay;
mod reports;
mod retention;
mod routing;
mod self_audit;
mod store;
mod syslog;
mod tap;
mod volume;

#[test]
fn a_stage_reads_only_the_files_it_is_granted() {
    let t = TestDir::new();
    t.write(
        "in.ndjson",
        "{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"m\",\"actor_user_name\":\"alice\"}\n\
         {\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"m\",\"actor_user_name\":\"bob\"}\n",
    );
    t.write("tables/users.csv", "name,department,manager\nalice,payroll,\"Grace, CFO\"\n");
    let pipeline = |grant: &str, file: &str| {
        format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\", \"enrich\"]\n{JSON_PARSER}\n\
             [stages.enrich]\nplugin = \"enrich-static\"\n{grant}\n\
             config = {{ lookups = {{ users = {{ key = \"actor_user_name\", file = \"{file}\" }} }} }}\n\
             [sink]\nurl = \"out\"\n"
        )
    };
    let run = t.run_pipeline(&pipeline("read_files = [\"tables/users.csv\"]", "/grants/users.csv"));
    run.assert_success();
    let rows = duckdb(&format!(
        "SELECT actor_user_name, unmapped FROM read_parquet('{}/a/**/*.parquet') ORDER BY 1",
        t.path("out").display()
    ));
    let alice: serde_json::Value = serde_json::from_str(rows[0][1].as_str().unwrap()).unwrap();
    assert_eq!(
        (&alice["actor_user_department"], &alice["actor_user_manager"]),
        (&"payroll".into(), &"Grace, CFO".into())
    );
    assert!(rows[1][1].is_null() || !rows[1][1].as_str().unwrap().contains("department"), "{rows}");
    // without the grant, or for any other file of the host, the plugin sees nothing
    for (grant, file) in [("", "/grants/users.csv"), ("read_files = [\"tables/users.csv\"]", "/etc/passwd")] {
        let run = t.run_pipeline(&pipeline(grant, file));
        run.assert_failure();
        assert!(run.stderr.contains("refused its config") && run.stderr.contains("cannot read"), "{run}");
    }
}

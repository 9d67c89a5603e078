//! Config reload: SIGHUP to a running `sluice run` swaps the chain without
//! losing or duplicating an event; a config that does not load leaves the
//! running pipeline as it was.

use crate::util::*;
use serde_json::json;

/// A following file source `app`, parsed, then the stages in `extra_chain`.
fn pipeline(admin: u16, extra_chain: &str, extra: &str) -> String {
    format!(
        r#"
[sources.app]
type = "file"
paths = ["in.ndjson"]
follow = true
chain = ["json"{extra_chain}]

[stages.json]
plugin = "parse-json"
config = {{ time_field = "time", fields = {{ message = "message", metadata_uid = "id" }} }}
{extra}
[metrics]
listen = "127.0.0.1:{admin}"

[sink]
url = "out"
roll_age_secs = 1
"#
    )
}

const TAG: &str = "[stages.tag]\nplugin = \"enrich-static\"\nconfig = { set = { version = \"v2\" } }\n";

fn lines(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("{{\"time\":\"2026-11-01T10:00:{:02}Z\",\"message\":\"m{i}\",\"id\":\"e{i}\"}}\n", i % 60))
        .collect()
}

fn hangup(child: &std::process::Child) {
    let status = std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn commits(t: &TestDir) -> usize {
    commit_records(&t.path("out")).len()
}

#[test]
fn sighup_swaps_the_chain_and_every_event_lands_once() {
    let t = TestDir::new();
    let admin = free_port();
    t.write("in.ndjson", &lines(0..10));
    t.write("pipeline.toml", &pipeline(admin, "", ""));
    let mut child = spawn_sluice(t.root(), &["run", "pipeline.toml"]);
    wait_written(admin, 10);

    // a config that does not load: the running pipeline goes on as it was
    t.write("pipeline.toml", &pipeline(admin, ", \"nope\"", ""));
    hangup(&child);
    std::thread::sleep(std::time::Duration::from_secs(2));
    append(&t.path("in.ndjson"), &lines(10..15));
    wait_written(admin, 15);

    // the new chain tags what follows
    t.write("pipeline.toml", &pipeline(admin, ", \"tag\"", TAG));
    let before = commits(&t);
    // `sluice reload` finds the running process by its lock and sends it SIGHUP
    let reload = sluice_in(t.root(), &["reload", "pipeline.toml"], &[]);
    reload.assert_success();
    assert!(reload.stdout.contains(&format!("process {}", child.id())), "{reload}");
    // the old pipeline's last commit, then the new one starts from it
    wait_for("the commit of the stopping pipeline", || commits(&t) > before);
    append(&t.path("in.ndjson"), &lines(15..30));
    wait_written(admin, 30);
    let run = terminate(&mut child);
    run.assert_success();
    assert!(run.stderr.contains("Reload refused, the running pipeline goes on"), "{run}");
    assert!(run.stderr.contains("unknown stage `nope`"), "{run}");
    assert_eq!(run.stdout.matches("reloaded ").count(), 1, "{run}");

    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT metadata_uid), \
         count(*) FILTER (json_extract_string(unmapped, '$.version') = 'v2'), \
         min(CAST(substr(metadata_uid, 2) AS INT)) FILTER (json_extract_string(unmapped, '$.version') = 'v2') \
         FROM read_parquet('{}/app/**/*.parquet')",
        t.path("out").display()
    ));
    // events 15..29 came after the reload: tagged; the first 15 not
    assert_eq!(rows, json!([[30, 30, 15, 15]]));
}

#[test]
fn sighup_closes_kept_alive_connections_and_every_acknowledged_event_lands() {
    use crate::http::{ACME, Server, event, post};
    let mut s = Server::new("", "\"json\"", "");
    let pid = s.pid();
    // one client, so its connection is kept alive across the reload
    let client = reqwest::Client::new();
    let url = s.url("/app");
    let mut acked = Vec::new();
    for request in 0..40 {
        if request == 20 {
            // the same file again: a reload that changes nothing but the process's pipeline
            let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
            assert!(status.success());
        }
        let body: String = (0..5).map(|j| event(request * 5 + j, "acme") + "\n").collect();
        let started = std::time::Instant::now();
        loop {
            match post(&client, &url, Some(ACME), "application/x-ndjson", body.clone().into_bytes()) {
                Ok((200, _, _)) => break,
                // the old pipeline's connection closed, or the new one is not listening yet: retry
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
            assert!(started.elapsed().as_secs() < 60, "request {request} never taken");
        }
        acked.extend((0..5).map(|j| format!("e{}", request * 5 + j)));
    }
    s.wait_written(200);
    let run = s.stop();
    run.assert_success();
    assert_eq!(run.stdout.matches("reloaded ").count(), 1, "{run}");
    // the request under way at the reload was answered before its connection closed: none sent twice
    let rows = s.rows("count(DISTINCT metadata_uid), count(*)");
    assert_eq!(rows, serde_json::json!([[200, 200]]));
}

#[test]
fn reload_without_a_running_pipeline_says_so() {
    let t = TestDir::new();
    t.write("in.ndjson", &lines(0..2));
    t.write(
        "pipeline.toml",
        &pipeline(0, "", "").replace("follow = true\n", "").replace("[metrics]\nlisten = \"127.0.0.1:0\"\n", ""),
    );
    sluice_in(t.root(), &["run", "pipeline.toml"], &[]).assert_success();
    let run = sluice_in(t.root(), &["reload", "pipeline.toml"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("no sluice is running this pipeline"), "{run}");
}

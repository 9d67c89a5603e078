//! `sluice tap`: live events at a stage boundary of a running pipeline, from
//! its admin listener, with a condition.

use crate::util::*;
use serde_json::Value;
use std::process::Stdio;

#[test]
fn tap_shows_what_passes_a_stage_boundary_and_only_what_matches() {
    let t = TestDir::new();
    let admin = free_port();
    t.write("in.ndjson", "");
    t.write(
        "pipeline.toml",
        &format!(
            r#"
[sources.app]
type = "file"
paths = ["in.ndjson"]
follow = true
chain = ["json", "redact"]
[stages.json]
plugin = "parse-json"
config = {{ time_field = "time", fields = {{ message = "message", actor_user_name = "user", metadata_uid = "id" }} }}
[stages.redact]
plugin = "redact"
[metrics]
listen = "127.0.0.1:{admin}"
[sink]
url = "out"
"#
        ),
    );
    let mut pipeline = spawn_sluice(t.root(), &["run", "pipeline.toml"]);
    let address = format!("127.0.0.1:{admin}");
    wait_for("the admin listener", || http_get(&format!("http://{address}/metrics")).is_some());

    let tap = |args: &[&str]| {
        let mut all = vec!["tap", address.as_str()];
        all.extend_from_slice(args);
        command(t.root(), &all).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let bobs = tap(&["--after", "redact", "--where", "actor_user_name == \"bob\"", "--limit", "2"]);
    let raw = tap(&["--before", "json", "--limit", "1"]);
    // events keep coming until both taps have what they asked for
    let mut taps = [bobs, raw];
    let started = std::time::Instant::now();
    for i in 0.. {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        append(
            &t.path("in.ndjson"),
            &format!(
                "{{\"time\":\"2026-11-01T10:00:00Z\",\"user\":\"{user}\",\"id\":\"e{i}\",\"message\":\"login password=hunter2 ok\"}}\n"
            ),
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        if taps.iter_mut().all(|c| c.try_wait().unwrap().is_some()) {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "the taps never got their events");
    }
    let [bobs, raw] = taps.map(|c| Run::from(c.wait_with_output().unwrap()));
    bobs.assert_success();
    raw.assert_success();

    // after the redactor: bob's events only, parsed and redacted
    let events: Vec<Value> = bobs.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2, "{bobs}");
    for e in &events {
        assert_eq!(e["actor_user_name"], "bob", "{e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("[REDACTED:") && !message.contains("hunter2"), "{message}");
    }
    // before the parser: the raw record as it was read
    let line = raw.stdout.lines().next().unwrap();
    assert!(line.starts_with("{\"time\":\"2026-11-01T10:00:00Z\",\"user\":"), "{raw}");

    // an unknown stage, and a condition that does not parse
    let nope = Run::from(tap(&["--after", "nope"]).wait_with_output().unwrap());
    nope.assert_failure();
    assert!(nope.stderr.contains("no stage `nope` (stages: json, redact)"), "{nope}");
    let bad = Run::from(tap(&["--after", "json", "--where", "status_id =="]).wait_with_output().unwrap());
    bad.assert_failure();
    assert!(bad.stderr.contains("400"), "{bad}");
    // the taps whose clients left are forgotten, and the workers stop offering
    let metrics = format!("http://{address}/metrics");
    wait_for("the closed taps forgotten", || {
        append(
            &t.path("in.ndjson"),
            "{\"time\":\"2026-11-01T10:00:00Z\",\"user\":\"zed\",\"id\":\"z\",\"message\":\"m\"}\n",
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        http_get(&metrics).is_some_and(|m| m.lines().any(|l| l == "sluice_taps_open 0"))
    });
    terminate(&mut pipeline).assert_success();
}

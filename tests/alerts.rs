//! Alert rules: thresholds over sliding windows of event time per key fire
//! exactly when they should, as OCSF Detection Findings in `_sluice` and in
//! the alert file, with the events that triggered them; the windows survive a
//! restart.

use crate::util::*;

/// A failed (status 2) or successful login of `user` at `minute:second`.
fn login(user: &str, minute: u32, second: u32, status: i32) -> String {
    format!(
        "{{\"time\":\"2026-11-01T10:{minute:02}:{second:02}Z\",\"class_uid\":3002,\"status_id\":{status},\"actor_user_name\":\"{user}\",\"uid\":\"{user}-{minute}-{second}\"}}\n"
    )
}

const PIPELINE: &str = r#"
[sources.auth]
type = "file"
paths = ["in.ndjson"]
chain = ["json"]
[stages.json]
plugin = "parse-json"
config = { time_field = "time", fields = { class_uid = "class_uid", status_id = "status_id", actor_user_name = "actor_user_name", metadata_uid = "uid" } }
[alerts]
file = "alerts.ndjson"
[[alerts.rules]]
name = "brute-force"
when = "class_uid == 3002 and status_id == 2"
per = "actor_user_name"
threshold = 5
window = "5m"
[sink]
url = "out"
"#;

fn fired(t: &TestDir) -> Vec<serde_json::Value> {
    sluice_events(&t.path("out"), "rule.fired")
}

#[test]
fn a_threshold_rule_fires_exactly_when_it_should() {
    let t = TestDir::new();
    let mut input = String::new();
    // alice: 5 failures within 5 minutes (fires), a 6th inside the window (does not)
    for (m, s) in [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 30)] {
        input += &login("alice", m, s, 2);
    }
    // bob: 6 failures, but never 5 within 5 minutes; carol: 5 successes
    for m in [0, 2, 4, 6, 8, 10] {
        input += &login("bob", m, 0, 2);
    }
    for m in 0..5 {
        input += &login("carol", m, 0, 1);
    }
    // alice again, long after her window emptied: fires a second time
    for m in 20..25 {
        input += &login("alice", m, 0, 2);
    }
    t.write("in.ndjson", &input);
    let run = t.run_pipeline(PIPELINE);
    run.assert_success();
    let findings = fired(&t);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for f in &findings {
        assert_eq!(
            (f["rule"].as_str(), f["key"].as_str(), f["count"].as_u64()),
            (Some("brute-force"), Some("alice"), Some(5))
        );
        assert_eq!((&f["class_uid"], &f["severity_id"]), (&2004.into(), &4.into()));
    }
    let uids: Vec<&str> = findings[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["metadata_uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["alice-0-0", "alice-1-0", "alice-2-0", "alice-3-0", "alice-4-0"]);
    // the same findings went to the alert file
    let alerts = std::fs::read_to_string(t.path("alerts.ndjson")).unwrap();
    assert_eq!(alerts.lines().filter(|l| l.contains("\"rule.fired\"")).count(), 2, "{alerts}");
}

#[test]
fn a_window_survives_a_restart() {
    let t = TestDir::new();
    let first: String = (0..3).map(|m| login("alice", m, 0, 2)).collect();
    t.write("in.ndjson", &first);
    t.run_pipeline(PIPELINE).assert_success();
    assert!(fired(&t).is_empty());
    // two more in the next run: five within five minutes over the two runs
    append(&t.path("in.ndjson"), &(login("alice", 3, 0, 2) + &login("alice", 4, 0, 2)));
    let run = t.run_pipeline(PIPELINE);
    run.assert_success();
    assert_eq!(run.summary().read, 2, "{run}");
    let findings = fired(&t);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["count"], 5);
}

#[test]
fn any_read_of_a_secret_by_a_person_fires_on_the_standard_workload() {
    let w = crate::crash::Workload::new(5_000);
    let text = std::fs::read_to_string(w.t.path("pipeline.toml")).unwrap();
    w.t.write(
        "pipeline.toml",
        &format!(
            "{text}\n[[alerts.rules]]\nname = \"secret-read\"\n\
             when = 'unmapped.metadata_labels in [\"secret-access\"] and actor_user_name !~ \"^system:serviceaccount:\"'\n\
             severity_id = 5\n"
        ),
    );
    w.run("out");
    let out = w.t.path("out");
    let expected = duckdb_count(&format!(
        "read_parquet(['{0}/audit/**/*.parquet', '{0}/operational/**/*.parquet']) \
         WHERE list_contains(json_extract_string(unmapped, '$.metadata_labels[*]'), 'secret-access') \
         AND NOT regexp_matches(coalesce(actor_user_name, ''), '^system:serviceaccount:')",
        out.display()
    ));
    let findings = duckdb_count(&format!(
        "read_parquet('{}/_sluice/**/*.parquet') WHERE api_operation = 'rule.fired' AND severity_id = 5",
        out.display()
    ));
    println!("secret-read: {findings} findings, {expected} matching events");
    assert!(expected > 10, "{expected}");
    assert_eq!(findings, expected);
}

/// A receiver for the alert webhook: answers 503 to the first POST (the
/// sink tries again) and 200 to the rest, and hands over each body.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 { "503 Service Unavailable" } else { "200 OK" };
            write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            if n > 0 {
                tx.send(String::from_utf8(body).unwrap()).unwrap();
            }
        }
    });
    (port, rx)
}

#[test]
fn findings_are_posted_to_the_alert_webhook() {
    let t = TestDir::new();
    let (port, bodies) = webhook_receiver();
    let input: String = (0..5).map(|m| login("alice", m, 0, 2)).collect::<String>() + &login("bob", 0, 0, 2);
    t.write("in.ndjson", &input);
    let pipeline = PIPELINE.replace("[alerts]\n", &format!("[alerts]\nwebhook = \"http://127.0.0.1:{port}/hook\"\n"));
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    // refused once, taken on the second try, before the run ended
    let body = bodies.recv_timeout(std::time::Duration::from_secs(5)).expect("a finding posted");
    let finding: serde_json::Value = serde_json::from_str(&body).unwrap();
    let details = &finding["unmapped"];
    assert_eq!(finding["api_operation"], "rule.fired", "{finding}");
    assert_eq!(details["events"].as_array().map(Vec::len), Some(5), "{finding}");
    assert_eq!((details["rule"].as_str(), details["key"].as_str()), (Some("brute-force"), Some("alice")), "{finding}");
    assert!(bodies.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "one finding only");
    assert!(run.stderr.contains("The alert webhook refused a finding."), "{run}");
}

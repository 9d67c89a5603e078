//! The compliance and investigation reports of `examples/reports/`, run with
//! DuckDB (`examples/reports/run.py`) on an archive of `gen_events.py` data,
//! against answers computed from the raw input files alone
//! (`tests/tools/report_truth.py`); and the Python examples of
//! `docs/querying.md`, run as written.

use crate::util::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A CloudTrail record that stops a trail: the workload has none.
pub(crate) const STOP_LOGGING: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/mallory","accountId":"123456789012","userName":"mallory"},"eventTime":"2026-11-01T00:30:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"eu-west-1","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2.17.0","requestParameters":{"name":"org-trail"},"responseElements":null,"requestID":"r-stop","eventID":"e-stop","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management"}"#;

pub(crate) fn report(archive: &std::path::Path, name: &str, params: &[&str]) -> Vec<Value> {
    let script = repo_root().join("examples/reports/run.py");
    let sql = repo_root().join(format!("examples/reports/{name}.sql"));
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(archive)
        .arg(&sql)
        .args(params)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// Rows counted by the value of column `column`.
fn by(rows: &[Value], column: usize) -> Value {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        *counts.entry(r[column].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    json!(counts)
}

#[test]
fn reports_give_the_answers_of_the_raw_input() {
    let w = crate::crash::Workload::new(5_000);
    append(&w.t.path("data/cloudtrail.ndjson"), &format!("{STOP_LOGGING}\n"));
    // alice logs in from one address three times: only the first is new
    append(
        &w.t.path("data/auth.log"),
        "Nov  1 00:20:00 bastion-1 sshd[77]: Accepted publickey for alice from 10.9.9.9 port 2222 ssh2: ED25519 SHA256:x\n\
         Nov  1 00:10:00 bastion-1 sshd[78]: Accepted publickey for alice from 10.9.9.9 port 2223 ssh2: ED25519 SHA256:y\n\
         Nov  1 00:30:00 bastion-1 sshd[79]: Accepted publickey for alice from 10.9.9.9 port 2224 ssh2: ED25519 SHA256:z\n",
    );
    w.run("out");
    let archive = w.t.path("out");
    let (actor, from, to) = ("alice", "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z");
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("tests/tools/report_truth.py"))
        .arg(w.t.path("data"))
        .args([actor, from, to])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let truth: Value = serde_json::from_slice(&out.stdout).unwrap();

    let failed = report(&archive, "failed_logins_per_user_per_day", &[]);
    let mut failed: Vec<Value> = failed.into_iter().collect();
    failed.sort_by_key(|r| r.to_string());
    assert!(failed.len() > 10);
    assert_eq!(json!(failed), truth["failed_logins_per_user_per_day"]);

    let new = report(&archive, "logins_from_new_source_ips", &[]);
    let mut firsts: Vec<Value> = new.iter().map(|r| json!([r[0], r[1], r[2]])).collect();
    firsts.sort_by_key(|r| r.to_string());
    let mut expected = truth["logins_from_new_source_ips"].as_array().unwrap().clone();
    expected.sort_by_key(|r| r.to_string());
    assert_eq!(firsts, expected);
    assert!(firsts.contains(&json!(["2026-11-01 00:10:00+00:00", "alice", "10.9.9.9"])), "the earliest of the three");

    for (name, operation_column) in
        [("privilege_changes", 2), ("secret_and_payroll_access", 2), ("deletions", 2), ("audit_config_changes", 2)]
    {
        let rows = report(&archive, name, &[]);
        println!("{name}: {} rows", rows.len());
        assert_eq!(by(&rows, operation_column), truth[name], "{name}");
    }
    assert_eq!(truth["audit_config_changes"], json!({"StopLogging": 1}));

    let timeline =
        report(&archive, "actor_timeline", &[&format!("actor={actor}"), &format!("from={from}"), &format!("to={to}")]);
    assert_eq!(json!(timeline.len()), truth["actor_timeline"]);
    assert!(timeline.len() > 3);

    let id = truth["correlation"]["id"].as_str().unwrap();
    let trace = report(&archive, "correlation", &[&format!("id={id}")]);
    let operations: Vec<&Value> = trace.iter().map(|r| &r[3]).collect();
    assert_eq!(json!(operations), truth["correlation"]["operations"]);
}

#[test]
fn the_python_examples_of_the_query_guide_run() {
    let w = crate::crash::Workload::new(2_000);
    let run = w.run("out");
    let written = run.summary().written;
    let guide = std::fs::read_to_string(repo_root().join("docs/querying.md")).unwrap();
    let blocks: Vec<&str> = guide.split("```python\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert!(blocks.len() >= 2, "docs/querying.md has no python examples");
    for block in blocks {
        let code = format!("ARCHIVE = {:?}\n{block}", w.t.path("out").display().to_string());
        let out = std::process::Command::new("python3").args(["-c", &code]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{block}\n{}", String::from_utf8_lossy(&out.stderr));
        // every example prints the number of events it read first
        assert_eq!(stdout.lines().next(), Some(written.to_string().as_str()), "{block}\n{stdout}");
    }
}

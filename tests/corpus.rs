//! Real public logs from `../shared/corpus` (read in place, never copied):
//! records in = events out + quarantined for every file, and field values that
//! agree with the ground truth published beside them.

use crate::util::*;
use serde_json::Value;
use std::fs;

fn syslog_pipeline(files: &[std::path::PathBuf], year: i32) -> String {
    let paths: Vec<String> = files.iter().map(|f| format!("\"{}\"", f.display())).collect();
    format!(
        "[sources.syslog]\ntype = \"file\"\npaths = [{}]\nchain = [\"syslog\", \"redact\"]\n[stages.syslog]\nplugin = \"parse-syslog\"\nconfig = {{ year = {year} }}\n[stages.redact]\nplugin = \"redact\"\n[sink]\nurl = \"out\"\n",
        paths.join(", ")
    )
}

#[test]
fn corpus_openssh_counts_match_loghub() {
    let dir = corpus_dir().join("sshd");
    let log = find_file(&dir, "OpenSSH_2k.log");
    let csv = find_file(&dir, "OpenSSH_2k.log_structured.csv");
    let t = TestDir::new();
    let run = t.run_pipeline(&syslog_pipeline(std::slice::from_ref(&log), 2026));
    run.assert_success();
    let s = run.summary();
    let lines = fs::read_to_string(&log).unwrap().lines().filter(|l| !l.trim().is_empty()).count() as u64;
    assert_eq!(s.read, lines);
    assert_eq!(s.read, s.written + s.quarantined + s.dropped, "{run}");
    assert_eq!(s.quarantined, 0, "{run}");
    // loghub's structured CSV: E27 is "Failed password for <*> from <*> port <*> ssh2", E10 "Accepted password ..."
    let structured = fs::read_to_string(&csv).unwrap();
    let count_template = |needle: &str| structured.lines().filter(|l| l.contains(needle)).count();
    let failed_csv = count_template("Failed password for");
    let accepted_csv = count_template("Accepted password for");
    let out = t.path("out");
    let q = |status: i32| {
        duckdb(&format!(
            "SELECT count(*) FROM read_parquet('{}/syslog/**/*.parquet') WHERE class_uid = 3002 AND activity_id = 1 AND status_id = {status} AND status_detail LIKE '% password'",
            out.display()
        ))
    };
    assert_eq!(q(2), serde_json::json!([[failed_csv]]));
    assert_eq!(q(1), serde_json::json!([[accepted_csv]]));
    // a known line: "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2"
    let row = duckdb(&format!(
        "SELECT actor_user_name, src_endpoint_ip, src_endpoint_port, device_hostname, process_pid, strftime(time, '%m-%d %H:%M:%S') \
         FROM read_parquet('{}/syslog/**/*.parquet') WHERE src_endpoint_port = 38926 AND actor_user_name = 'webmaster'",
        out.display()
    ));
    assert_eq!(row, serde_json::json!([["webmaster", "173.234.31.186", 38926, "LabSZ", 24200, "12-10 06:55:48"]]));
}

#[test]
fn corpus_syslog_files_balance() {
    let mut files = list_files(&corpus_dir().join("syslog"));
    files.retain(|f| {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        !name.ends_with(".csv") && !name.ends_with(".md") && !name.ends_with(".txt") && !name.ends_with(".json")
    });
    assert!(!files.is_empty());
    let t = TestDir::new();
    let run = t.run_pipeline(&syslog_pipeline(&files, 2026));
    run.assert_success();
    let s = run.summary();
    assert!(s.read > 100, "{run}");
    assert_eq!(s.read, s.written + s.quarantined + s.dropped, "{run}");
    assert_eq!(duckdb_count(&format!("read_parquet('{}/syslog/**/*.parquet')", t.path("out").display())), s.written);
    // whatever did not parse says why
    for r in t.quarantine_or_empty("out", "syslog") {
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
}

#[test]
fn corpus_cloudtrail_json_maps_actor_and_outcome() {
    let file = find_file(&corpus_dir().join("cloudtrail"), "test-console-login-json.log");
    let t = TestDir::new();
    let pipeline = format!(
        "[sources.ct]\ntype = \"file\"\npaths = [\"{}\"]\nchain = [\"ct\", \"redact\"]\n[stages.ct]\nplugin = \"parse-json\"\n\
         config = {{ time_field = \"eventTime\", fields = {{ metadata_uid = \"eventID\", actor_user_name = \"userIdentity.userName\", src_endpoint_ip = \"sourceIPAddress\", api_operation = \"eventName\", status_code = \"errorCode\" }} }}\n\
         [stages.redact]\nplugin = \"redact\"\n[sink]\nurl = \"out\"\n",
        file.display()
    );
    let run = t.run_pipeline(&pipeline);
    run.assert_success();
    let s = run.summary();
    let lines = fs::read_to_string(&file).unwrap().lines().filter(|l| !l.trim().is_empty()).count() as u64;
    assert_eq!((s.read, s.written + s.quarantined), (lines, lines), "{run}");
    let expected: Value = serde_json::from_str(
        &fs::read_to_string(file.with_file_name("test-console-login-json.log-expected.json")).unwrap(),
    )
    .unwrap();
    let first = &expected["expected"][0];
    let id = first["event"]["id"].as_str().unwrap();
    let row = duckdb(&format!(
        "SELECT api_operation, src_endpoint_ip FROM read_parquet('{}/ct/**/*.parquet') WHERE metadata_uid = '{id}'",
        t.path("out").display()
    ));
    assert_eq!(row, serde_json::json!([[first["event"]["action"], first["source"]["address"]]]));
}

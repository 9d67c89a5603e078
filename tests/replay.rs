//! `sluice replay`: archived events of a time range through a new version of
//! a chain into a new stream — re-parsed from their `raw_data`, or as events
//! through new transforms — each chosen event once, from files checked
//! against their integrity log.

use crate::util::*;
use serde_json::{Value, json};

/// The first pipeline: an app's JSON events, parsed with three fields
/// mapped, redacted, the raw record kept; `n` events, half on 1 November,
/// half on 2 November; every third a `delete`; event 5 carries a password.
fn archive(n: usize) -> TestDir {
    let t = TestDir::new();
    let input: String = (0..n)
        .map(|i| {
            let day = 1 + 2 * i / n;
            let action = if i % 3 == 0 { "delete" } else { "login" };
            let token = if i == 5 { "password=hunter2-Secret" } else { "none" };
            format!(
                "{{\"ts\":\"2026-11-0{day}T{:02}:{:02}:00Z\",\"user\":\"u{}\",\"action\":\"{action}\",\"id\":\"id-{i}\",\"note\":\"{token}\",\"region\":\"eu-west-1\"}}\n",
                i % 24,
                i % 60,
                i % 7
            )
        })
        .collect();
    t.write("in.ndjson", &input);
    let run = t.run_pipeline(&format!(
        r#"
[sources.app]
type = "file"
paths = ["in.ndjson"]
chain = ["app", "redact"]
keep_raw = true
stream = "events"
{}
[stages.redact]
plugin = "redact"

[sink]
url = "out"
partition_by = ["event_day"]
"#,
        app_stage("app", ", tenant_uid = \"user\"")
    ));
    run.assert_success();
    assert_eq!(run.summary().written, n as u64, "{run}");
    t
}

fn app_stage(name: &str, extra_fields: &str) -> String {
    format!(
        r#"
[stages.{name}]
plugin = "parse-json"
[stages.{name}.config]
time_field = "ts"
fields = {{ actor_user_name = "user", api_operation = "action", metadata_uid = "id"{extra_fields} }}
"#
    )
}

fn replay(t: &TestDir, toml: &str) -> Run {
    t.write("replay.toml", toml);
    sluice_in(t.root(), &["replay", "replay.toml"], &[])
}

/// The new parser maps `region` too; only deletes of 2 November are replayed.
fn reparse_pipeline() -> String {
    format!(
        r#"
[sources.app-fix]
type = "archive"
from_streams = ["events"]
since = "2026-11-02T00:00:00Z"
until = "2026-11-03T00:00:00Z"
where = 'source == "app" and api_operation == "delete"'
chain = ["app2"]
stream = "events_v2"
{}
[sink]
url = "out"
partition_by = ["event_day"]
"#,
        app_stage("app2", ", cloud_region = \"region\", tenant_uid = \"region\"")
    )
}

fn parquet(t: &TestDir, stream: &str) -> String {
    format!("read_parquet('{}/{stream}/**/*.parquet')", t.path("out").display())
}

#[test]
fn replay_reparses_raw_data_of_a_range_into_a_new_stream_once() {
    let t = archive(600);
    // keep_raw: the record is in raw_data, after the redactor
    let raw = duckdb(&format!("SELECT raw_data FROM {} WHERE metadata_uid = 'id-5'", parquet(&t, "events")));
    let raw = raw[0][0].as_str().unwrap();
    assert!(raw.contains("\"id\":\"id-5\"") && raw.contains("[REDACTED:"), "{raw}");
    assert!(!raw.contains("hunter2"), "{raw}");

    let run = replay(&t, &reparse_pipeline());
    run.assert_success();
    // events 300..599 are on 2 November; the deletes among them: multiples of 3
    let expected: Vec<String> = (300..600).filter(|i| i % 3 == 0).map(|i| format!("id-{i}")).collect();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (100, 100, 0), "{run}");
    assert!(run.stdout.contains("source app-fix: read 300 rows of 1 archived files (1 skipped"), "{run}");
    let rows = duckdb(&format!(
        "SELECT list(metadata_uid ORDER BY metadata_uid), count(*), count(DISTINCT metadata_uid), \
         count(*) FILTER (cloud_region = 'eu-west-1'), min(time)::VARCHAR, count(*) FILTER (api_operation <> 'delete') \
         FROM {}",
        parquet(&t, "events_v2")
    ));
    let mut ids: Vec<String> = serde_json::from_value(rows[0][0].clone()).unwrap();
    ids.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        rows[0].as_array().unwrap()[1..],
        [json!(100), json!(100), json!(100), json!("2026-11-02 00:00:00+00"), json!(0)]
    );
    // each event stays in the tenant it was archived under, whatever the new parser maps
    let tenants = duckdb(&format!(
        "SELECT count(*) FILTER (n.tenant_uid = o.tenant_uid AND n.tenant_uid LIKE 'u%') FROM {} n JOIN {} o USING (metadata_uid)",
        parquet(&t, "events_v2"),
        parquet(&t, "events")
    ));
    assert_eq!(tenants, json!([[100]]));

    // the new stream's files are logged with the plugin that made them
    let entries = list_files(&t.path("out/_integrity/events_v2/entries"));
    assert!(!entries.is_empty());
    for entry in entries {
        let e: Value = serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap();
        let plugins = e["plugins"].as_array().unwrap();
        assert_eq!(plugins.len(), 1, "{e}");
        assert_eq!((plugins[0]["stage"].as_str(), plugins[0]["name"].as_str()), (Some("app2"), Some("parse-json")));
        assert_eq!(plugins[0]["sha256"].as_str().map(str::len), Some(64));
    }

    // run again: nothing new is read, nothing is written twice
    let again = replay(&t, &reparse_pipeline());
    again.assert_success();
    assert_eq!(again.summary().read, 0, "{again}");
    assert!(again.stdout.contains("read 0 rows of 0 archived files (2 skipped"), "{again}");
    assert_eq!(duckdb_count(&parquet(&t, "events_v2")), 100);
    // the original stream is untouched
    assert_eq!(duckdb_count(&parquet(&t, "events")), 600);
}

#[test]
fn replay_of_events_through_a_new_transform_keeps_what_they_were() {
    let t = archive(200);
    let run = replay(
        &t,
        r#"
[sources.enriched]
type = "archive"
from_streams = ["events"]
record = "event"
chain = ["enrich"]
stream = "events_enriched"

[stages.enrich]
plugin = "enrich-static"
config = { set = { replayed = "v2" }, lookups = { users = { key = "actor_user_name", rows = { u3 = { department = "payroll" } } } } }

[sink]
url = "out"
partition_by = ["event_day"]
"#,
    );
    run.assert_success();
    assert_eq!(run.summary().written, 200, "{run}");
    // every column the events had is the same (but seq, event_hash,
    // unmapped, which the enricher extends); the source is still `app`
    let columns =
        "time, observed_time, actor_user_name, api_operation, metadata_uid, metadata_log_name, raw_data, redactions";
    let differ = duckdb(&format!(
        "SELECT count(*) FROM ((SELECT {columns} FROM {a}) EXCEPT ALL (SELECT {columns} FROM {b})) \
         UNION ALL SELECT count(*) FROM ((SELECT {columns} FROM {b}) EXCEPT ALL (SELECT {columns} FROM {a}))",
        a = parquet(&t, "events"),
        b = parquet(&t, "events_enriched")
    ));
    assert_eq!(differ, json!([[0], [0]]));
    let rows = duckdb(&format!(
        "SELECT count(*) FILTER (json_extract_string(unmapped, '$.replayed') = 'v2'), \
         count(*) FILTER (json_extract_string(unmapped, '$.actor_user_department') = 'payroll'), \
         count(*) FILTER (actor_user_name = 'u3'), any_value(metadata_log_name), \
         count(*) FILTER (json_extract_string(unmapped, '$.region') = 'eu-west-1') FROM {}",
        parquet(&t, "events_enriched")
    ));
    let u3 = (0..200).filter(|i| i % 7 == 3).count();
    assert_eq!(rows, json!([[200, u3, u3, "app", 200]]));
}

#[test]
fn replay_killed_midway_resumes_and_writes_each_event_once() {
    let n = 30_000;
    let t = archive(n);
    let toml = r#"
[sources.all]
type = "archive"
from_streams = ["events"]
chain = ["app2"]
stream = "events_v2"
[stages.app2]
plugin = "parse-json"
config = { time_field = "ts", fields = { metadata_uid = "id" } }
[sink]
url = "out"
partition_by = ["event_day"]
roll_age_secs = 1
"#;
    t.write("replay.toml", toml);
    let entries = t.path("out/_integrity/events_v2/entries");
    let mut child = spawn_sluice(t.root(), &["replay", "replay.toml"]);
    wait_for("a commit of the replay", || entries.is_dir() && !list_files(&entries).is_empty());
    child.kill().unwrap();
    let killed = Run::from(child.wait_with_output().unwrap());
    assert_eq!(killed.code, None, "the replay ended before it was killed, so it tests nothing: {killed}");
    // the run again starts after what the killed run committed
    let run = replay(&t, toml);
    run.assert_success();
    assert!(run.summary().read < n as u64, "the replay started over: {run}");
    let rows = duckdb(&format!("SELECT count(*), count(DISTINCT metadata_uid) FROM {}", parquet(&t, "events_v2")));
    assert_eq!(rows, json!([[n, n]]));
}

#[test]
fn replay_refuses_a_file_that_does_not_match_its_integrity_log() {
    let t = archive(100);
    // the first file the replay reads: the stream log's first entry
    let entry = list_files(&t.path("out/_integrity/events/entries")).into_iter().next().unwrap();
    let entry: Value = serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap();
    let file = t.path("out").join(entry["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let run = replay(&t, &reparse_pipeline().replace("since = \"2026-11-02T00:00:00Z\"\n", ""));
    run.assert_failure();
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(run.stderr.contains(name) && run.stderr.contains("does not match its integrity log entry"), "{run}");
    assert!(!t.path("out/events_v2").exists(), "nothing is written from a tampered archive");
}

#[test]
fn replay_configs_that_cannot_work_are_refused_with_their_place() {
    let t = archive(10);
    let cases = [
        // reading a stream the pipeline writes would write every event twice
        (
            reparse_pipeline().replace("stream = \"events_v2\"", "stream = \"events\""),
            "from_streams: this pipeline writes stream `events` of the same archive; replay into a new stream",
        ),
        (
            reparse_pipeline()
                .replace("from_streams = [\"events\"]\n", "record = \"event\"\nfrom_streams = [\"events\"]\n"),
            "stage `app2` is a parser, but position 1 needs a transform (record = \"event\" hands the chain events)",
        ),
        (reparse_pipeline().replace("api_operation ==", "api_operation ="), "sources.app-fix.where:"),
        (
            reparse_pipeline().replace("until = \"2026-11-03T00:00:00Z\"", "until = \"2026-11-01T00:00:00Z\""),
            "sources.app-fix: `until` must be after `since`",
        ),
        (
            reparse_pipeline().replace("since = \"2026-11-02T00:00:00Z\"", "since = \"yesterday\""),
            "is not an RFC 3339 time",
        ),
        (reparse_pipeline().replace("from_streams = [\"events\"]\n", ""), "an archive source needs `from_streams`"),
        (
            reparse_pipeline().replace("type = \"archive\"", "type = \"file\"\npaths = [\"in.ndjson\"]"),
            "sources.app-fix.from_streams: only an `archive` source takes it",
        ),
    ];
    for (toml, message) in cases {
        let run = replay(&t, &toml);
        run.assert_failure();
        assert!(run.stderr.contains(message), "wanted {message:?}: {run}");
        assert!(run.stderr.contains("replay.toml:"), "the error names its place: {run}");
    }
    // a pipeline without an archive source has nothing to replay
    let run = sluice_in(t.root(), &["replay", "pipeline.toml"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("the pipeline has no `type = \"archive\"` source"), "{run}");
}

#[test]
fn keep_raw_keeps_records_that_became_one_event_only() {
    let t = TestDir::new();
    let k8s: Vec<String> = std::fs::read_to_string(repo_root().join("examples/quickstart/data/k8s-audit.ndjson"))
        .unwrap()
        .lines()
        .take(3)
        .map(str::to_string)
        .collect();
    // a webhook EventList of two events, and one event on its own
    let list =
        format!("{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{},{}]}}", k8s[0], k8s[1]);
    t.write("in.ndjson", &format!("{list}\n{}\n", k8s[2]));
    let run = t.run_pipeline(
        r#"
[sources.k8s]
type = "file"
paths = ["in.ndjson"]
chain = ["k8s"]
keep_raw = true
[stages.k8s]
plugin = "parse-k8s-audit"
[sink]
url = "out"
"#,
    );
    run.assert_success();
    assert_eq!(run.summary().written, 3, "{run}");
    // copying the list into both of its events would store it twice, and a replay would make four
    let rows = duckdb(&format!("SELECT count(*), count(raw_data), any_value(raw_data) FROM {}", parquet(&t, "k8s")));
    assert_eq!(rows, json!([[3, 1, k8s[2]]]));
}

#[test]
fn quarantined_records_are_replayed_into_a_new_stream_and_stay_quarantined() {
    let t = TestDir::new();
    // the app's parser wants `ts`; three records say `when` instead
    let mut input: String =
        (0..7).map(|i| format!("{{\"ts\":\"2026-11-01T10:00:0{i}Z\",\"id\":\"ok{i}\"}}\n")).collect();
    input +=
        &(0..3).map(|i| format!("{{\"when\":\"2026-11-01T11:00:0{i}Z\",\"id\":\"late{i}\"}}\n")).collect::<String>();
    t.write("in.ndjson", &input);
    let first = t.run_pipeline(&format!(
        "[sources.app]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"app\"]\nstream = \"events\"\n{}\n[sink]\nurl = \"out\"\n",
        app_stage("app", "")
    ));
    let s = first.summary();
    assert_eq!((s.written, s.quarantined), (7, 3), "{first}");
    let fixed = r#"
[sources.late]
type = "archive"
record = "quarantine"
from_streams = ["events"]
since = "2020-01-01T00:00:00Z"
chain = ["fixed"]
stream = "events_fixed"
[stages.fixed]
plugin = "parse-json"
config = { time_field = "when", fields = { metadata_uid = "id" } }
[sink]
url = "out"
"#;
    let run = replay(&t, fixed);
    run.assert_success();
    assert_eq!(run.summary().written, 3, "{run}");
    let rows = duckdb(&format!("SELECT list(metadata_uid ORDER BY metadata_uid) FROM {}", parquet(&t, "events_fixed")));
    assert_eq!(rows, json!([[["late0", "late1", "late2"]]]));
    // a copy: the quarantine is as it was; run again, nothing is read
    assert_eq!(t.quarantine("out", "events").len(), 3);
    let again = replay(&t, fixed);
    again.assert_success();
    assert_eq!(again.summary().read, 0, "{again}");
    // a condition is for events, not quarantined records
    let refused = replay(&t, &fixed.replace("chain = [", "where = 'class_uid == 1'\nchain = ["));
    refused.assert_failure();
    assert!(refused.stderr.contains("quarantined records are not events"), "{refused}");
}

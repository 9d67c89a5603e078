//! Streams, routes and noise control: events land in the streams their
//! conditions name, filters drop, sample and limit exactly what they match,
//! never a protected event, and every copy and drop is counted by rule.

use crate::util::*;

/// One NDJSON event for `parse-json` (fields map 1:1).
fn event(minute: u32, class: i32, status: i32, op: &str, user: &str) -> String {
    format!(
        "{{\"time\":\"2026-11-01T10:{minute:02}:00Z\",\"class_uid\":{class},\"status_id\":{status},\"api_operation\":\"{op}\",\"actor_user_name\":\"{user}\"}}\n"
    )
}

const PARSER: &str = r#"
[stages.json]
plugin = "parse-json"
config = { time_field = "time", fields = { class_uid = "class_uid", status_id = "status_id", api_operation = "api_operation", actor_user_name = "actor_user_name" } }
"#;

fn pipeline(extra: &str) -> String {
    format!(
        "[sources.app]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [\"json\"]\nroute = \"split\"\n{PARSER}\n{extra}\n[sink]\nurl = \"out\"\n"
    )
}

fn count(t: &TestDir, stream: &str, filter: &str) -> u64 {
    duckdb_count(&format!("read_parquet('{}/{stream}/**/*.parquet') WHERE {filter}", t.path("out").display()))
}

/// 20 failed logins, 10 permission changes, 5 changes to audit configuration, 100 reads.
fn mixed_input() -> String {
    let mut input = String::new();
    for i in 0..20 {
        input += &event(1, 3002, 2, "login", &format!("u{i}"));
    }
    for i in 0..10 {
        input += &event(2, 3005, 1, "role.grant", &format!("u{i}"));
    }
    for _ in 0..5 {
        input += &event(3, 6003, 1, "StopLogging", "admin");
    }
    for i in 0..100 {
        input += &event(4, 6003, 1, "get", &format!("system:svc-{}", i % 3));
    }
    input
}

#[test]
fn a_filter_that_matches_everything_still_keeps_every_protected_event() {
    let t = TestDir::new();
    t.write("in.ndjson", &mixed_input());
    let toml = pipeline(
        "[routes.split]\ndefault = \"all\"\n\
         [[filters]]\nname = \"everything\"\nwhen = \"time exists\"\n\
         [metrics]\nfile = \"sluice.prom\"\n",
    );
    let p = t.write("pipeline.toml", &toml);
    let validate = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
    validate.assert_success();
    assert!(
        validate.stdout.contains("pipeline.toml:14:8: filters.everything: may match protected events (failed-authentication, failure-or-denied, account-or-permission-change, iam-change, rbac-change, audit-config-change, classified)"),
        "{validate}"
    );
    let run = t.run_pipeline(&toml);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.dropped), (135, 35, 100), "{run}");
    s.assert_balanced();
    assert!(run.stdout.contains("dropped 100: filter: everything"), "{run}");
    assert!(run.stdout.contains("protected 20: kept by failed-authentication (over everything)"), "{run}");
    assert!(run.stdout.contains("protected 10: kept by account-or-permission-change (over everything)"), "{run}");
    assert!(run.stdout.contains("protected 5: kept by audit-config-change (over everything)"), "{run}");
    assert_eq!(count(&t, "all", "class_uid = 3002 AND status_id = 2"), 20);
    assert_eq!(count(&t, "all", "class_uid = 3005"), 10);
    assert_eq!(count(&t, "all", "api_operation = 'StopLogging'"), 5);
    assert_eq!(count(&t, "all", "api_operation = 'get'"), 0);
    // the counts are in the commit record too
    let commits = commit_records(&t.path("out"));
    let last: serde_json::Value = serde_json::from_slice(&std::fs::read(commits.last().unwrap()).unwrap()).unwrap();
    let c = &last["sources"]["app"]["counts"];
    assert_eq!(c["dropped"]["filter: everything"], 100, "{c}");
    assert_eq!(c["protected"]["failed-authentication (over everything)"], 20, "{c}");
    let metrics = std::fs::read_to_string(t.path("sluice.prom")).unwrap();
    assert!(
        metrics.contains("sluice_events_dropped_total{source=\"app\",rule=\"filter: everything\"} 100\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "sluice_events_protected_total{source=\"app\",rule=\"audit-config-change (over everything)\"} 5\n"
        ),
        "{metrics}"
    );
}

#[test]
fn routes_send_events_to_their_streams_and_copies_are_counted() {
    let t = TestDir::new();
    t.write("in.ndjson", &mixed_input());
    let run = t.run_pipeline(&pipeline(
        "[routes.split]\ndefault = \"operational\"\n\
         [[routes.split.rules]]\nwhen = 'class_uid in [3002, 3005] or api_operation == \"StopLogging\"'\nto = [\"audit\"]\n\
         [[routes.split.rules]]\nwhen = 'status_id == 2'\nto = [\"security\", \"audit\"]\n",
    ));
    run.assert_success();
    let s = run.summary();
    // failed logins go to audit and security: 20 copies
    assert_eq!((s.read, s.copies, s.written), (135, 20, 155), "{run}");
    s.assert_balanced();
    assert_eq!(count(&t, "audit", "true"), 35);
    assert_eq!(count(&t, "security", "true"), 20);
    assert_eq!(count(&t, "operational", "true"), 100);
    assert_eq!(count(&t, "operational", "api_operation <> 'get'"), 0);
    // each stream has its own log (and `_sluice`, `_volume`): the archive verifies
    let verify = sluice_in(t.root(), &["verify", "out", "--key", "/dev/null"], &[]);
    assert!(verify.stdout.contains("5 streams"), "{verify}");
    assert!(!verify.stdout.contains("[sequence]") && !verify.stdout.contains("[file]"), "{verify}");
}

#[test]
fn samples_and_limits_drop_exactly_what_they_should() {
    let t = TestDir::new();
    let mut input = String::new();
    // three users, 20 reads each in one minute, then 5 more each in the next
    for minute in [5, 6] {
        for i in 0..(if minute == 5 { 60 } else { 15 }) {
            input += &event(minute, 6003, 1, "get", &format!("svc-{}", i % 3));
        }
    }
    // 400 list calls, and 10 failed ones that no sample may drop
    for i in 0..400 {
        input += &event(7, 6003, 1, "list", &format!("bot-{i}"));
    }
    for i in 0..10 {
        input += &event(7, 6003, 2, "list", &format!("bot-{i}"));
    }
    t.write("in.ndjson", &input);
    let toml = pipeline(
        "[routes.split]\ndefault = \"operational\"\n\
         [[filters]]\nname = \"per-user-reads\"\nwhen = 'api_operation == \"get\"'\nlimit = 5\nper = \"actor_user_name\"\nwindow_secs = 60\n\
         [[filters]]\nname = \"lists\"\nwhen = 'api_operation == \"list\"'\nkeep_one_in = 4\nstreams = [\"operational\"]\n",
    );
    let run = t.run_pipeline(&toml);
    run.assert_success();
    let s = run.summary();
    s.assert_balanced();
    // limit: 5 per user per minute: 15 in the first minute, 15 in the second
    assert!(run.stdout.contains("dropped 45: limit: per-user-reads"), "{run}");
    assert_eq!(count(&t, "operational", "api_operation = 'get'"), 30);
    // sample: about one in four of the 400, and every failed one
    let sampled = count(&t, "operational", "api_operation = 'list' AND status_id = 1");
    assert!((60..=140).contains(&sampled), "{sampled}");
    assert!(run.stdout.contains(&format!("dropped {}: sample: lists", 400 - sampled)), "{run}");
    // every failed one: kept by the sample, or by the protected set over it
    assert_eq!(count(&t, "operational", "status_id = 2"), 10);
    let protected: u64 = run
        .stdout
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("protected ")?.strip_suffix(": kept by failure-or-denied (over lists)")?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no protected count: {run}"));
    assert!((5..=10).contains(&protected), "{run}");
    // the same events are kept on another run: sampling is by event, not by chance
    let again = TestDir::new();
    again.write("in.ndjson", &input);
    again.run_pipeline(&toml).assert_success();
    let kept = |d: &TestDir| {
        duckdb(&format!(
            "SELECT list(actor_user_name ORDER BY actor_user_name) FROM read_parquet('{}/operational/**/*.parquet') WHERE api_operation = 'list'",
            d.path("out").display()
        ))
    };
    assert_eq!(kept(&t), kept(&again));
}

#[test]
fn routing_the_standard_workload_matches_the_same_condition_in_duckdb() {
    let w = crate::crash::Workload::new(5_000);
    let routed = w.run("routed");
    routed.summary().assert_balanced();
    // the same pipeline without the route: one stream per source
    let text = std::fs::read_to_string(w.t.path("pipeline.toml")).unwrap();
    w.t.write("pipeline.toml", &text.replace("route = \"audit-split\"\n", ""));
    w.run("plain");
    w.t.write("pipeline.toml", &text);
    let condition = "class_uid IN (3001, 3002, 3003, 3005, 3006) OR status_id = 2 OR coalesce(list_has_any(\
        json_extract_string(unmapped, '$.metadata_labels[*]'), \
        ['failed-authentication', 'privileged-action', 'secret-access', 'audit-config-change']), false)";
    let rows = |dir: &str, streams: &[&str]| {
        let globs: Vec<String> =
            streams.iter().map(|s| format!("'{}/{s}/**/*.parquet'", w.t.path(dir).display())).collect();
        format!("SELECT * EXCLUDE (seq, event_hash, observed_time) FROM read_parquet([{}])", globs.join(", "))
    };
    let plain = rows("plain", &["auth", "k8s", "cloudtrail", "app"]);
    for (stream, wanted) in [("audit", format!("({condition})")), ("operational", format!("NOT ({condition})"))] {
        let expected = format!("SELECT * FROM ({plain}) WHERE {wanted}");
        let got = rows("routed", &[stream]);
        let counts = duckdb(&format!(
            "SELECT (SELECT count(*) FROM ({expected})), (SELECT count(*) FROM ({got})), \
             (SELECT count(*) FROM ({expected} EXCEPT ALL {got})), (SELECT count(*) FROM ({got} EXCEPT ALL {expected}))"
        ));
        let [want, have, missing, extra] = [0, 1, 2, 3].map(|i| counts[0][i].as_u64().unwrap());
        println!("{stream}: {have} events (DuckDB on the unrouted archive: {want})");
        assert!(want > 500, "{stream}: {want}");
        assert_eq!((have, missing, extra), (want, 0, 0), "{stream}");
    }
}

#[test]
fn bad_conditions_are_reported_with_their_place() {
    let t = TestDir::new();
    let check = |extra: &str, expected: &str| {
        let p = t.write("pipeline.toml", &pipeline(extra));
        let run = sluice_in(t.root(), &["validate", p.to_str().unwrap()], &[]);
        run.assert_failure();
        assert!(run.stderr.contains(expected), "expected `{expected}`:\n{run}");
    };
    check(
        "[routes.split]\ndefault = \"ops\"\n[[routes.split.rules]]\nwhen = 'clas_uid == 3002'\nto = [\"audit\"]\n",
        "pipeline.toml:14:9: routes.split.rules[0].when: unknown field `clas_uid`",
    );
    check(
        "[routes.split]\ndefault = \"ops\"\n[[filters]]\nname = \"x\"\nwhen = 'api_operation ~ \"(\"'\n",
        "pipeline.toml:15:23: filters.x.when: bad regular expression",
    );
    check(
        "[routes.split]\ndefault = \"ops\"\n[[filters]]\nname = \"x\"\nwhen = 'status_id == \"2\"'\n",
        "filters.x.when: `status_id` holds an integer",
    );
    check(
        "[routes.split]\ndefault = \"ops\"\n[[filters]]\nname = \"x\"\nwhen = 'status_id == 1'\nstreams = [\"nope\"]\n",
        "filters.x.streams: no stream `nope`",
    );
    check(
        "[routes.split]\ndefault = \"ops\"\n[[filters]]\nname = \"x\"\nwhen = 'status_id == 1'\nlimit = 5\n",
        "filters.x: give `keep_one_in` (at least 2), or `limit` (at least 1) with `per`, or neither (drop)",
    );
    check("[routes.other]\ndefault = \"ops\"\n", "sources.app.route: unknown route `split` (routes: other)");
}

//! Volume telemetry and silence detection: the `_volume` stream counts what
//! was written per interval, source, stream and class; a source that goes
//! quiet raises one finding after its threshold and one recovery note when it
//! resumes; a burst over the trailing baseline raises one spike finding.

use crate::util::*;
use std::time::Duration;

fn line(i: usize) -> String {
    format!("{{\"time\":\"2026-11-01T10:00:{:02}Z\",\"class_uid\":{},\"message\":\"m{i}\"}}\n", i % 60, 3002 + (i % 2))
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(line).collect()
}

const PARSER: &str = "[stages.json]\nplugin = \"parse-json\"\nconfig = { time_field = \"time\", fields = { class_uid = \"class_uid\", message = \"message\" } }\n";

fn alerts(t: &TestDir) -> Vec<serde_json::Value> {
    std::fs::read_to_string(t.path("alerts.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn volume_counts_what_was_written_per_source_stream_and_class() {
    let t = TestDir::new();
    t.write("a.ndjson", &lines(0..30));
    t.write("b.ndjson", &lines(0..11));
    let run = t.run_pipeline(&format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"a.ndjson\"]\nchain = [\"json\"]\n\
         [sources.b]\ntype = \"file\"\npaths = [\"b.ndjson\"]\nchain = [\"json\"]\nstream = \"a\"\n{PARSER}\n\
         [metrics]\nfile = \"sluice.prom\"\n[sink]\nurl = \"out\"\n"
    ));
    run.assert_success();
    // the same counts for Prometheus
    let metrics = std::fs::read_to_string(t.path("sluice.prom")).unwrap();
    for line in [
        "sluice_records_read_total{source=\"a\"} 30",
        "sluice_events_written_total{source=\"b\"} 11",
        "sluice_stream_events_total{source=\"b\",stream=\"a\",class_uid=\"3003\"} 5",
        "sluice_source_silent{source=\"a\"} 0",
        "# TYPE sluice_events_dropped_total counter",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }
    let counts = duckdb(&format!(
        "SELECT source, stream, class_uid, sum(events)::BIGINT FROM read_parquet('{}/_volume/**/*.parquet') GROUP BY ALL ORDER BY ALL",
        t.path("out").display()
    ));
    assert_eq!(
        counts,
        serde_json::json!([["a", "a", 3002, 15], ["a", "a", 3003, 15], ["b", "a", 3002, 6], ["b", "a", 3003, 5]])
    );
    // `_volume` is a stream like any other: in the log, verified
    let verify = sluice_in(t.root(), &["verify", "out", "--key", "/dev/null"], &[]);
    assert!(verify.stdout.contains("3 streams") && !verify.stdout.contains("[file]"), "{verify}");
}

#[test]
fn a_quiet_source_raises_one_finding_and_one_recovery_note() {
    let t = TestDir::new();
    t.write("live.ndjson", &lines(0..3));
    let p = t.write(
        "pipeline.toml",
        &format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"live.ndjson\"]\nfollow = true\nchain = [\"json\"]\nsilent_after = \"3s\"\n{PARSER}\n\
             [alerts]\nfile = \"alerts.ndjson\"\n[sink]\nurl = \"out\"\nroll_age_secs = 1\n"
        ),
    );
    let started = std::time::Instant::now();
    let mut child = spawn_sluice(t.root(), &["run", p.to_str().unwrap()]);
    wait_for("the silence finding", || !alerts(&t).is_empty());
    assert!(started.elapsed() >= Duration::from_secs(3), "not before the threshold");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(alerts(&t).len(), 1, "one finding per silence");
    append(&t.path("live.ndjson"), &lines(3..5));
    wait_for("the recovery note", || alerts(&t).len() >= 2);
    let run = terminate(&mut child);
    run.assert_success();
    assert_eq!(run.summary().written, 5, "{run}");

    let a = alerts(&t);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(
        (a[0]["api_operation"].as_str(), a[1]["api_operation"].as_str()),
        (Some("source.silent"), Some("source.resumed"))
    );
    // the same findings are in the archive, as OCSF Detection Findings
    let silent = sluice_events(&t.path("out"), "source.silent");
    let resumed = sluice_events(&t.path("out"), "source.resumed");
    assert_eq!((silent.len(), resumed.len()), (1, 1), "{silent:?} {resumed:?}");
    assert_eq!((&silent[0]["source"], &silent[0]["silent_after_secs"]), (&"a".into(), &3.into()));
    assert_eq!((&silent[0]["class_uid"], &silent[0]["activity_id"]), (&2004.into(), &1.into()));
    assert_eq!(resumed[0]["activity_id"], 3);
    assert!(resumed[0]["silent_for_secs"].as_u64().unwrap() >= 3, "{resumed:?}");
}

#[test]
fn a_burst_over_the_baseline_raises_one_spike_finding() {
    let t = TestDir::new();
    t.write("live.ndjson", "");
    let p = t.write(
        "pipeline.toml",
        &format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"live.ndjson\"]\nfollow = true\nchain = [\"json\"]\nspike_factor = 5.0\n{PARSER}\n\
             [runtime]\nvolume_interval_secs = 1\n[alerts]\nfile = \"alerts.ndjson\"\n[sink]\nurl = \"out\"\nroll_age_secs = 1\n"
        ),
    );
    let mut child = spawn_sluice(t.root(), &["run", p.to_str().unwrap()]);
    let mut n = 0;
    // a baseline of 2 records a second, a burst of 200, and the baseline again
    for second in 0..12 {
        let count = if second == 8 { 200 } else { 2 };
        append(&t.path("live.ndjson"), &lines(n..n + count));
        n += count;
        std::thread::sleep(Duration::from_secs(1));
    }
    let run = terminate(&mut child);
    run.assert_success();
    assert_eq!(run.summary().written, n as u64, "{run}");
    let spikes: Vec<_> = alerts(&t).into_iter().filter(|a| a["api_operation"] == "source.spike").collect();
    assert_eq!(spikes.len(), 1, "{spikes:?}");
    assert_eq!(sluice_events(&t.path("out"), "source.spike").len(), 1);
    let records = sluice_events(&t.path("out"), "source.spike")[0]["records"].as_u64().unwrap();
    assert!(records >= 50, "{records}");
}

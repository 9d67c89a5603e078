//! The pipeline's own audit trail: starts, stops, and changes to its config,
//! plugins and signing key land in the stream `_sluice` as OCSF Event Log
//! Activity events.

use crate::util::*;

const PIPELINE: &str = r#"
[sources.a]
type = "file"
paths = ["in.ndjson"]
chain = ["json"]
[stages.json]
plugin = "parse-json"
config = { time_field = "time", fields = { message = "message" } }
[sink]
url = "out"
[integrity]
signing_key = "${KEY}"
"#;

#[test]
fn self_audit_records_starts_stops_and_changes() {
    let t = TestDir::new();
    t.write("in.ndjson", "{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"m\"}\n");
    for dir in ["k1", "k2"] {
        sluice_in(t.root(), &["keys", "generate", "--out", dir, "--name", dir], &[]).assert_success();
    }
    let run = |toml: &str, key: &str| {
        let p = t.write("pipeline.toml", toml);
        let key = t.path(&format!("{key}/signing.key"));
        sluice_in(t.root(), &["run", p.to_str().unwrap()], &[("KEY", key.to_str().unwrap())]).assert_success();
    };
    run(PIPELINE, "k1");
    run(PIPELINE, "k1"); // nothing changed
    run(&format!("{PIPELINE}# a comment is a change of the file\n"), "k1");
    // the stage's plugin is swapped: every record now fails to parse, and says so
    t.write("in.ndjson", "{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"m\"}\nnot json\n");
    let swapped = PIPELINE.replace(
        "plugin = \"parse-json\"\nconfig = { time_field = \"time\", fields = { message = \"message\" } }",
        "plugin = \"parse-syslog\"\nconfig = { year = 2026 }",
    );
    assert_ne!(swapped, PIPELINE);
    run(&swapped, "k1");
    run(&swapped, "k2");

    let events = duckdb(&format!(
        "SELECT api_operation, class_uid, activity_id, type_uid, unmapped FROM read_parquet('{}/_sluice/**/*.parquet') ORDER BY seq",
        t.path("out").display()
    ));
    let ops: Vec<&str> = events.as_array().unwrap().iter().map(|e| e[0].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "pipeline.start",
            "pipeline.stop",
            "pipeline.start",
            "pipeline.stop",
            "pipeline.start",
            "config.change",
            "pipeline.stop",
            "pipeline.start",
            "config.change",
            "plugin.change",
            "pipeline.stop",
            "pipeline.start",
            "key.rotate",
            "pipeline.stop",
        ]
    );
    let first = &events[0];
    assert_eq!((first[1].as_i64(), first[2].as_i64(), first[3].as_i64()), (Some(1008), Some(6), Some(100806)));
    let plugin_change: serde_json::Value = serde_json::from_str(events[9][4].as_str().unwrap()).unwrap();
    assert_eq!(plugin_change["stage"], "json");
    assert_ne!(plugin_change["before"], plugin_change["after"]);
    // the stop event carries the run's counts
    let stop: serde_json::Value = serde_json::from_str(events[10][4].as_str().unwrap()).unwrap();
    assert_eq!((stop["read"].as_u64(), stop["quarantined"].as_u64()), (Some(1), Some(1)), "{stop}");
    // the key change is recorded with both verifier keys (public), never the private key
    let rotate = events[12][4].as_str().unwrap();
    assert!(rotate.contains("k1+") && rotate.contains("k2+") && !rotate.contains("PRIVATE"), "{rotate}");
}

//! An `objects` source on a real S3 server (Garage): CloudTrail's delivery
//! layout, gzip and plain objects, each read once, new ones picked up.

use crate::garage::Garage;
use crate::util::*;
use object_store::ObjectStoreExt;
use serde_json::json;
use sluice::sinks::Archive;
use std::io::Write;

const PIPELINE: &str = r#"
[sources.trail]
type = "objects"
url = "s3://sluice/trail/AWSLogs/"
chain = ["cloudtrail"]
[stages.cloudtrail]
plugin = "parse-cloudtrail"
[sink]
url = "out"
"#;

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn objects_under_a_prefix_are_each_read_once_and_new_ones_picked_up() {
    let garage = Garage::start();
    let records: Vec<String> = std::fs::read_to_string(repo_root().join("examples/quickstart/data/cloudtrail.ndjson"))
        .unwrap()
        .lines()
        .take(8)
        .map(str::to_string)
        .collect();
    let bucket = Archive::open_with("s3://sluice/trail", &garage.options()).unwrap();
    let put = |key: &str, bytes: Vec<u8>| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(bucket.store.put(&bucket.path_from_relative(key).unwrap(), bytes.into())).unwrap();
    };
    let day = "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/01";
    // a delivery file: one gzipped JSON document of three records
    put(&format!("{day}/a_CloudTrail_1.json.gz"), gzip(&format!("{{\"Records\":[{}]}}", records[..3].join(","))));
    // and two records as plain NDJSON
    put(&format!("{day}/b.ndjson"), records[3..5].join("\n").into_bytes());
    // outside the prefix: not read
    put("elsewhere/c.ndjson", records[5..6].join("\n").into_bytes());

    let t = TestDir::new();
    t.write("pipeline.toml", PIPELINE);
    let env: Vec<(String, String)> = garage.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = sluice_in(t.root(), &["run", "pipeline.toml"], &env);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.expanded, s.quarantined), (3, 5, 2, 0), "{run}");

    // again: nothing is read twice
    let again = sluice_in(t.root(), &["run", "pipeline.toml"], &env);
    again.assert_success();
    assert_eq!(again.summary().read, 0, "{again}");

    // a new delivery: only it is read
    put(&format!("{day}/d_CloudTrail_2.json.gz"), gzip(&format!("{{\"Records\":[{}]}}", records[6..8].join(","))));
    let third = sluice_in(t.root(), &["run", "pipeline.toml"], &env);
    third.assert_success();
    assert_eq!(third.summary().written, 2, "{third}");

    let ids: Vec<String> = records
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap()["eventID"].as_str().unwrap().to_string())
        .collect();
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT metadata_uid), count(*) FILTER (metadata_uid = '{}') FROM read_parquet('{}/trail/**/*.parquet')",
        ids[5],
        t.path("out").display()
    ));
    assert_eq!(rows, json!([[7, 7, 0]]));

    // following: an object that appears while it runs is picked up at the next listing
    let admin = free_port();
    let following = PIPELINE.replace("chain = [", "follow = true\npoll_secs = 1\nchain = [")
        + &format!("[metrics]\nlisten = \"127.0.0.1:{admin}\"\n");
    t.write("pipeline.toml", &following);
    let mut child = spawn_sluice_env(t.root(), &["run", "pipeline.toml"], &env);
    let metrics = format!("http://127.0.0.1:{admin}/metrics");
    wait_for("the metrics listener", || http_get(&metrics).is_some());
    put(&format!("{day}/e.ndjson"), records[5..6].join("\n").into_bytes());
    wait_for("the new object's event", || {
        http_get(&metrics).is_some_and(|m| metric_sum(&m, "sluice_events_written_total") == 8)
    });
    let run = terminate(&mut child);
    run.assert_success();
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT metadata_uid) FROM read_parquet('{}/trail/**/*.parquet')",
        t.path("out").display()
    ));
    assert_eq!(rows, json!([[8, 8]]));
}

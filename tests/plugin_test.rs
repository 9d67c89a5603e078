//! `sluice plugin test`: a plugin outside any pipeline, on golden files.

use crate::util::*;

#[test]
fn a_plugin_is_tested_on_golden_files_with_a_readable_diff() {
    let t = TestDir::new();
    t.write("in.ndjson", "{\"ts\":\"2026-11-01T00:00:00Z\",\"user\":\"alice\"}\nnot json\n{\"user\":\"bob\"}\n");
    t.write("parse.toml", "time_field = \"ts\"\n[fields]\nactor_user_name = \"user\"\n");
    let args = ["plugin", "test", "parse-json", "--input", "in.ndjson", "--config", "parse.toml"];
    let run = sluice_in(t.root(), &args, &[]);
    run.assert_success();
    let lines: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert_eq!(lines[0]["keep"]["actor_user_name"], "alice");
    assert_eq!(lines[0]["keep"]["time"], 1793491200000000_i64);
    assert!(lines[1]["error"].as_str().unwrap().starts_with("not valid JSON"), "{run}");
    assert_eq!(lines[2]["error"], "time field `ts` is missing");

    // a golden file, made once, then checked
    let write = [&args[..], &["--write", "golden.ndjson"]].concat();
    sluice_in(t.root(), &write, &[]).assert_success();
    let check = [&args[..], &["--expect", "golden.ndjson"]].concat();
    let ok = sluice_in(t.root(), &check, &[]);
    ok.assert_success();
    assert!(ok.stdout.contains("ok: parse-json 0.1.0: 3 lines match golden.ndjson"), "{ok}");
    // a change in behaviour is shown line by line, and fails
    let golden = std::fs::read_to_string(t.path("golden.ndjson")).unwrap();
    t.write("golden.ndjson", &golden.replacen("\"alice\"", "\"alicia\"", 1));
    let diff = sluice_in(t.root(), &check, &[]);
    diff.assert_failure();
    assert!(diff.stdout.contains("line 1:\n  expected {\"keep\":{\"actor_user_name\":\"alicia\""), "{diff}");
    assert!(diff.stdout.contains("FAILED: parse-json 0.1.0: 1 of 3 lines differ"), "{diff}");
}

#[test]
fn a_fault_is_pinned_on_its_line_and_a_bad_config_is_refused() {
    let t = TestDir::new();
    t.write(
        "events.ndjson",
        "{\"time\":1,\"message\":\"ok\"}\n{\"time\":2,\"message\":\"boom\"}\n{\"time\":3,\"message\":\"ok\"}\n",
    );
    t.write("faulty.toml", "mode = \"trap\"\nfield = \"message\"\nequals = \"boom\"\n");
    let plugin = fixture_plugin("faulty");
    let run =
        sluice_in(t.root(), &["plugin", "test", &plugin, "--input", "events.ndjson", "--config", "faulty.toml"], &[]);
    run.assert_success();
    let lines: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert!(lines[0].get("keep").is_some() && lines[2].get("keep").is_some(), "{run}");
    assert!(lines[1]["fault"].as_str().unwrap().contains("trapped"), "{run}");

    t.write("bad.toml", "year = \"last\"\n");
    let refused = sluice_in(
        t.root(),
        &["plugin", "test", "parse-syslog", "--input", "events.ndjson", "--config", "bad.toml"],
        &[],
    );
    refused.assert_failure();
    assert!(refused.stderr.contains("refused its config"), "{refused}");
}

#[test]
fn a_plugin_is_measured_on_its_own() {
    let t = TestDir::new();
    t.write("in.ndjson", "{\"time\":\"2026-11-01T00:00:00Z\",\"user\":\"alice\"}\nnot json\n");
    let args = ["plugin", "bench", "parse-json", "--input", "in.ndjson", "--batch", "10", "--rounds", "5", "--json"];
    let run = sluice_in(t.root(), &args, &[]);
    run.assert_success();
    let costs: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!((&costs["name"], &costs["batch"]), (&"parse-json".into(), &10.into()), "{run}");
    assert!(costs["size"].as_u64().unwrap() > 10_000, "{run}");
    for key in ["load_cold_ms", "load_cached_ms", "instantiate_us", "memory_mib", "ns_per_event"] {
        assert!(costs[key].as_f64().unwrap() > 0.0, "{key}: {run}");
    }
    // a plugin that faults is not measured
    t.write("boom.ndjson", "{\"time\":1,\"message\":\"boom\"}\n");
    t.write("faulty.toml", "mode = \"trap\"\nfield = \"message\"\nequals = \"boom\"\n");
    let plugin = fixture_plugin("faulty");
    let args = ["plugin", "bench", &plugin, "--input", "boom.ndjson", "--config", "faulty.toml", "--rounds", "3"];
    let run = sluice_in(t.root(), &args, &[]);
    run.assert_failure();
    assert!(run.stderr.contains("the plugin faulted during the benchmark"), "{run}");
}

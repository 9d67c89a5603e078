//! Bad input: each case gets a clear error or a quarantine entry with its
//! reason — never a crash, a hang or a silent loss — and the counts balance.

use crate::util::*;

const JSON: &str = r#"
[stages.json]
plugin = "parse-json"
config = { time_field = "time", fields = { message = "message" } }
"#;

fn pipeline(paths: &str, extra: &str) -> String {
    format!(
        "[sources.a]\ntype = \"file\"\npaths = [{paths}]\nchain = [\"json\"]\n{extra}\n{JSON}\n[sink]\nurl = \"out\"\n"
    )
}

fn good(i: usize) -> String {
    format!("{{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"good {i}\"}}\n")
}

/// Runs `input` (bytes of one file) with good lines around it; returns the
/// run and the quarantine reasons.
fn around(input: &[u8]) -> (Run, Summary, Vec<String>) {
    let t = TestDir::new();
    let mut bytes = good(0).into_bytes();
    bytes.extend_from_slice(input);
    bytes.extend_from_slice(good(1).as_bytes());
    t.write_bytes("in.ndjson", &bytes);
    let run = t.run_pipeline(&pipeline("\"in.ndjson\"", ""));
    run.assert_success();
    let s = run.summary();
    s.assert_balanced();
    let reasons = t.quarantine_or_empty("out", "a").iter().map(|q| q["reason"].as_str().unwrap().to_string()).collect();
    (run, s, reasons)
}

#[test]
fn bad_input_invalid_utf8_and_nul_bytes() {
    let (run, s, reasons) =
        around(b"\xff\xfe\x00{\"time\":1}\n{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"a\x00b\"}\n");
    assert_eq!((s.read, s.written, s.quarantined), (4, 2, 2), "{run}");
    assert!(reasons.iter().any(|r| r.contains("UTF-8")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("control character")), "{reasons:?}");
    // an escaped NUL is valid JSON and valid text: kept as it is
    let (run, s, _) = around(b"{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"a\\u0000b\"}\n");
    assert_eq!((s.read, s.written), (3, 3), "{run}");
}

#[test]
fn bad_input_a_10_mib_line() {
    let mut line = b"{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"".to_vec();
    line.extend(std::iter::repeat_n(b'x', 10 << 20));
    line.extend_from_slice(b"\"}\n");
    let (run, s, reasons) = around(&line);
    // parsing 10 MiB of JSON needs more than the default 64 MiB of plugin
    // memory: the plugin traps on that record alone, the rest goes on
    assert_eq!((s.read, s.written, s.quarantined), (3, 2, 1), "{run}");
    assert!(reasons[0].contains("exceeded its memory limit (64 MiB)"), "{reasons:?}");
}

#[test]
fn bad_input_json_nested_10000_levels() {
    let mut line = b"{\"time\":\"2026-11-01T00:00:00Z\",\"message\":\"deep\",\"x\":".to_vec();
    line.extend(std::iter::repeat_n(b'[', 10_000));
    line.extend(std::iter::repeat_n(b']', 10_000));
    line.extend_from_slice(b"}\n");
    let (run, s, reasons) = around(&line);
    assert_eq!((s.read, s.written, s.quarantined), (3, 2, 1), "{run}");
    assert!(reasons[0].contains("recursion limit"), "{reasons:?}");
}

#[test]
fn bad_input_truncated_gzip_is_an_error_naming_the_file() {
    let t = TestDir::new();
    let mut gz = gzip_writer(&t.path("full.gz"));
    for i in 0..20_000 {
        std::io::Write::write_all(&mut gz, good(i).as_bytes()).unwrap();
    }
    gz.finish().unwrap();
    let bytes = std::fs::read(t.path("full.gz")).unwrap();
    t.write_bytes("in.ndjson.gz", &bytes[..bytes.len() / 2]);
    let run = t.run_pipeline(&pipeline("\"in.ndjson.gz\"", ""));
    run.assert_failure();
    assert!(run.stderr.contains("in.ndjson.gz"), "{run}");
    let s = run.summary();
    s.assert_balanced();
    // what came before the cut is kept
    assert!(s.written > 1000 && s.written < 20_000, "{run}");
    // and a second run does not read it twice: it stops at the same cut
    let again = t.run_pipeline(&pipeline("\"in.ndjson.gz\"", ""));
    again.assert_failure();
    assert_eq!(again.summary().written, 0, "{again}");
}

#[test]
fn bad_input_empty_and_blank_files() {
    let t = TestDir::new();
    t.write("empty.ndjson", "");
    t.write("blank.ndjson", "\n\r\n\n");
    let run = t.run_pipeline(&pipeline("\"empty.ndjson\", \"blank.ndjson\"", ""));
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (0, 0, 0), "{run}");
}

#[test]
fn bad_input_a_followed_file_that_vanishes_is_read_to_its_end() {
    let t = TestDir::new();
    let lines: String = (0..100).map(good).collect();
    t.write("live.ndjson", &lines);
    let p = t.write(
        "pipeline.toml",
        &pipeline("\"live.ndjson\"", "follow = true").replace("[sink]\n", "[sink]\nroll_age_secs = 1\n"),
    );
    let mut child = spawn_sluice(t.root(), &["run", p.to_str().unwrap()]);
    wait_for("the first commit", || t.path("out/_state/commits").exists());
    // grow it and delete it at once: the growth was never read while it had a name
    append(&t.path("live.ndjson"), &(100..150).map(good).collect::<String>());
    std::fs::remove_file(t.path("live.ndjson")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let run = terminate(&mut child);
    run.assert_success();
    assert_eq!(run.summary().read, 150, "{run}");
}

#[test]
fn bad_input_missing_or_corrupted_plugin_is_a_located_error() {
    let t = TestDir::new();
    t.write("in.ndjson", &good(0));
    let missing = pipeline("\"in.ndjson\"", "").replace("plugin = \"parse-json\"", "plugin = \"plugins/nope.wasm\"");
    let run = t.run_pipeline(&missing);
    run.assert_failure();
    assert!(run.stderr.contains("pipeline.toml:") && run.stderr.contains("nope.wasm"), "{run}");

    t.write_bytes("plugins/bad.wasm", b"\0asm\x0d\0\x01\0garbage that is not a component");
    let corrupted = pipeline("\"in.ndjson\"", "").replace("plugin = \"parse-json\"", "plugin = \"plugins/bad.wasm\"");
    let run = t.run_pipeline(&corrupted);
    run.assert_failure();
    assert!(run.stderr.contains("pipeline.toml:") && run.stderr.contains("bad.wasm"), "{run}");
    assert!(!run.stdout.contains("read "), "nothing runs with a broken plugin: {run}");
}

//! `sluice run --native-plugins` (feature `native-plugins`), the benchmark's
//! pipeline (b): the same plugins as host code must make the same archive as
//! their Wasm components, and say so in the integrity log.

use crate::crash::Workload;
use crate::util::*;
use serde_json::Value;

#[test]
fn native_plugins_make_the_same_events_as_their_components() {
    let w = Workload::new(3000);
    w.run("wasm");
    let mut native = w.command("native", None);
    native.args(["--native-plugins"]);
    let run = Run::from(native.output().unwrap());
    run.assert_success();
    assert!(run.stdout.contains("read 3000 records, wrote 3000 events"), "{run}");
    w.assert_same("wasm", "native");

    // files are logged with the code that made them
    let digests = |out: &str| -> Vec<String> {
        let entries = list_files(&w.t.path(out).join("_integrity/audit/entries"));
        assert!(!entries.is_empty());
        entries
            .iter()
            .flat_map(|f| {
                let e: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
                e["plugins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["sha256"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert!(digests("native").iter().all(|d| d == "native"));
    assert!(digests("wasm").iter().all(|d| d.len() == 64));
}

//! The quickstart workload (`examples/quickstart`, made by
//! `shared/bench/gen_events.py`) through the default rules, natively: no
//! planted secret may survive, and nothing but the fields that carry one may
//! change. The records are redacted as they are read (a syslog line as a
//! `message`, a JSON line as the event), before any parser maps them.

use redact::Redact;
use serde_json::{Map, Value, json};
use sluice_plugin_sdk::{Outcome, Transform};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn quickstart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

#[test]
fn no_planted_secret_survives_and_only_their_fields_change() {
    let dir = quickstart();
    let secrets: Vec<String> =
        fs::read_to_string(dir.join("planted-secrets.txt")).unwrap().lines().map(str::to_string).collect();
    assert!(secrets.len() > 100);
    let mut plugin = Redact::init(json!({})).unwrap();
    let mut changed: BTreeMap<String, usize> = BTreeMap::new();
    let (mut events, mut unchanged, mut scanned) = (0, 0, 0);
    for file in ["auth.log", "k8s-audit.ndjson", "cloudtrail.ndjson", "app.ndjson"] {
        for line in fs::read_to_string(dir.join("data").join(file)).unwrap().lines() {
            let (event, text): (Map<String, Value>, String) = if file.ends_with(".log") {
                let event = json!({"message": line});
                (event.as_object().cloned().unwrap(), event.to_string())
            } else {
                (serde_json::from_str(line).unwrap(), line.to_string())
            };
            events += 1;
            // the scan that spares most events the decoding must agree with the walk
            let scan = plugin.unchanged(&text);
            scanned += usize::from(scan);
            let out = match plugin.process(event.clone()) {
                Outcome::Keep(out) => {
                    assert!(!scan, "the scan called an event unchanged that the walk changed: {text}");
                    out
                }
                Outcome::Unchanged => {
                    unchanged += 1;
                    event
                }
                other => panic!("not kept: {other:?} {line}"),
            };
            let text = Value::Object(out.clone()).to_string();
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{secret} survived in {file}: {text}");
            }
            for r in out.get("redactions").and_then(Value::as_array).into_iter().flatten() {
                let key = format!("{file} {} {}", r["path"].as_str().unwrap(), r["rule"].as_str().unwrap());
                *changed.entry(key).or_default() += 1;
            }
        }
    }
    println!("{events} events, {unchanged} unchanged, {scanned} of them found so by the scan");
    // the scan errs only towards the walk, and seldom on this workload
    assert!(scanned * 100 >= unchanged * 99, "the scan passed {scanned} of {unchanged} unchanged events");
    println!("redactions by file, path and rule:");
    for (key, n) in &changed {
        println!("  {n:5} {key}");
    }
    // the generator plants secrets in these fields only
    let planted = ["message", "details", "request.body.password", "request.headers.authorization"];
    for key in changed.keys() {
        let path = key.split(' ').nth(1).unwrap();
        assert!(planted.contains(&path), "a field without a planted secret changed: {key}");
    }
}

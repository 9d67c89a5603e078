//! The quickstart workload (`examples/quickstart`, made by
//! `shared/bench/gen_events.py`) through the benchmark pipeline's parsers and
//! its `enrich` config, natively. Each event is decoded into the borrowing
//! tree and enriched; the checks: the tree holds what serde_json decodes, the
//! text written is the tree (whether keys were only added, or some were also
//! cut out and written again), and every enrichment the config names happens
//! somewhere.

use enrich_static::EnrichStatic;
use enrich_static::doc::Doc;
use serde_json::{Value, json};
use sluice_plugin_sdk::{Outcome, Parser, Transform};
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `config` of a stage in `examples/benchmark/pipeline.toml`.
fn config(stage: &str) -> Value {
    let text = fs::read_to_string(repo().join("examples/benchmark/pipeline.toml")).unwrap();
    let pipeline: toml::Table = toml::from_str(&text).unwrap();
    pipeline["stages"][stage].get("config").map_or(json!({}), |c| serde_json::to_value(c).unwrap())
}

/// The events a parser makes of one quickstart file, as JSON text.
fn parsed<P: Parser>(stage: &str, file: &str) -> Vec<String> {
    let mut parser = P::init(config(stage)).unwrap();
    let data = fs::read(repo().join("examples/quickstart/data").join(file)).unwrap();
    let mut events = Vec::new();
    for record in data.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
        match parser.parse(record) {
            Outcome::Keep(event) => events.push(serde_json::to_string(&event).unwrap()),
            Outcome::Text(text) => events.push(text),
            other => panic!("{file}: {other:?}"),
        }
    }
    events
}

#[test]
fn the_text_written_is_the_tree() {
    let mut events = parsed::<parse_syslog::ParseSyslog>("syslog", "auth.log");
    events.extend(parsed::<parse_k8s_audit::ParseK8sAudit>("k8s", "k8s-audit.ndjson"));
    events.extend(parsed::<parse_cloudtrail::ParseCloudTrail>("cloudtrail", "cloudtrail.ndjson"));
    events.extend(parsed::<parse_json::ParseJson>("app", "app.ndjson"));
    assert!(events.len() >= 4000, "{}", events.len());

    let mut enrich = EnrichStatic::init(config("enrich")).unwrap();
    let (mut appended, mut tagged, mut zoned, mut looked_up, mut correlated) = (0, 0, 0, 0, 0);
    for text in &events {
        let mut doc = Doc::parse(text).unwrap();
        let decoded: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(doc.top()).unwrap(), decoded, "{text}");

        enrich.apply(&mut doc);
        let tree = serde_json::to_value(doc.top()).unwrap();
        let out = doc.finish(text);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), tree, "{text}");
        // and names no key twice (decoded, that would not show)
        assert!(Doc::parse(&out).unwrap().unchanged(), "{out}");
        appended += usize::from(out.starts_with(&text[..text.len() - 1]));
        // what the SDK calls gives the same text
        assert_eq!(enrich.process_text(text), Some(Outcome::Text(out)));

        // enrichment adds; of what the event had, it may only raise the severity
        let object = tree.as_object().unwrap();
        for (key, value) in decoded.as_object().unwrap() {
            if key != "severity_id" && key != "metadata_labels" {
                assert_eq!(&object[key], value, "{key} in {text}");
            }
        }
        assert_eq!(object["pipeline"], "benchmark");
        tagged += usize::from(object.contains_key("metadata_labels"));
        zoned += usize::from(object.contains_key("src_endpoint_zone"));
        looked_up += usize::from(object.contains_key("actor_user_department"));
        correlated += usize::from(object.contains_key("correlation_uid"));
    }
    let n = events.len();
    eprintln!(
        "{n} events: {appended} only added to, {tagged} tagged, {zoned} zoned, {looked_up} looked up, {correlated} correlated"
    );
    // the others had a key changed: their severity raised
    assert!(appended > 0 && appended < n);
    assert!(tagged > 0 && zoned > 0 && looked_up > 0 && correlated > 0);
}

/// The same events, pretty-printed (white space everywhere for the cut to
/// read past), through a config that also renames, removes, and sets again
/// keys the events have.
#[test]
fn the_cut_writes_the_tree_whatever_the_text_and_config() {
    let mut events = parsed::<parse_k8s_audit::ParseK8sAudit>("k8s", "k8s-audit.ndjson");
    events.extend(parsed::<parse_cloudtrail::ParseCloudTrail>("cloudtrail", "cloudtrail.ndjson"));
    let mut config = config("enrich");
    config["rename"] = json!({"api_operation": "operation", "cloud_region": "api_operation", "time": "time"});
    config["defaults"] = json!({"cloud_region": "none", "status_detail": "ok"});
    config["set"] = json!({"metadata_product_name": "sluice"});
    let enrich = EnrichStatic::init(config).unwrap();
    for text in &events {
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(text).unwrap()).unwrap();
        let mut doc = Doc::parse(&pretty).unwrap();
        enrich.apply(&mut doc);
        let tree = serde_json::to_value(doc.top()).unwrap();
        let out = doc.finish(&pretty);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), tree, "{pretty}");
        assert!(Doc::parse(&out).unwrap().unchanged(), "{out}");
        let decoded: Value = serde_json::from_str(text).unwrap();
        assert_eq!(tree["operation"], decoded["api_operation"]);
        assert_eq!(tree["api_operation"], decoded.get("cloud_region").cloned().unwrap_or(Value::Null));
        assert_eq!(tree["cloud_region"], "none");
        assert_eq!(tree["time"], decoded["time"]);
    }
}

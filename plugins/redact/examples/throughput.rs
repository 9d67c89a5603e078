//! Native throughput of the redactor over a file of JSON events, for comparison
//! with the same code as Wasm in a pipeline:
//! `cargo run --release -p redact --example throughput -- EVENTS.ndjson`
use redact::Redact;
use sluice_plugin_sdk::{Outcome, Transform};

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput EVENTS.ndjson");
    let lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(String::from).collect();
    let mut plugin = Redact::init(serde_json::json!({})).unwrap();
    let bytes: usize = lines.iter().map(String::len).sum();
    let start = std::time::Instant::now();
    let mut masked = 0;
    for line in &lines {
        let event = serde_json::from_str(line).unwrap();
        if let Outcome::Keep(e) = plugin.process(event) {
            masked += usize::from(e.contains_key("redactions"));
            std::hint::black_box(serde_json::Value::Object(e).to_string());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} events, {:.1} MB: {:.2} µs/event, {:.1} MB/s (parse + redact + serialize), {masked} events redacted",
        lines.len(),
        bytes as f64 / 1e6,
        secs * 1e6 / lines.len() as f64,
        bytes as f64 / 1e6 / secs
    );
}

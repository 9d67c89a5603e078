//! `sluice plugin test`: one plugin, outside any pipeline, on golden files.
//!
//! Each input line is one record (a parser's raw bytes) or one event (a
//! transform's JSON), given to the plugin on its own, so that a fault is
//! pinned on its line. Each outcome is written as one JSON line —
//! `{"keep": event}`, `{"many": [events]}`, `{"drop": rule}`,
//! `{"error": reason}`, or `{"fault": why}` when the plugin trapped, ran out
//! of time or memory (the instance is then replaced). Compared with a golden
//! file line by line as JSON values, so key order does not matter.

use crate::wasm::{Outcome, Plugin, PluginKind, PluginSpec, WasmHost};
use anyhow::Context;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Loads a bundled plugin by name, or a `.wasm` component from a path, with
/// its config (a TOML or JSON file; none: an empty table).
pub fn load(host: &WasmHost, reference: &str, config: Option<&Path>) -> anyhow::Result<Arc<Plugin>> {
    let (display, bytes) = match crate::bundled::get(reference) {
        Some(bytes) => (format!("{reference} (bundled)"), bytes.to_vec()),
        None => {
            let bytes = std::fs::read(reference).with_context(|| {
                format!(
                    "`{reference}` is neither a bundled plugin ({}) nor a readable file",
                    crate::bundled::names().join(", ")
                )
            })?;
            (reference.to_string(), bytes)
        }
    };
    let config_json = match config {
        None => "{}".to_string(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let value: Value = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
            } else {
                let table: toml::Table =
                    toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
                serde_json::to_value(table)?
            };
            value.to_string()
        }
    };
    let spec = PluginSpec {
        stage: "test".into(),
        display,
        bytes,
        sha256: None,
        config_json,
        timeout: Some(Duration::from_secs(2)),
        memory_bytes: 64 << 20,
        clocks: false,
        read_files: Vec::new(),
    };
    Ok(host.load(spec)?)
}

/// Runs the plugin on each line; one JSON outcome per line.
pub fn run(plugin: &Plugin, lines: &[Vec<u8>]) -> anyhow::Result<Vec<Value>> {
    let instantiate = || plugin.instantiate().map_err(|e| anyhow::anyhow!("the plugin refused its config: {e}"));
    let mut instance = instantiate()?;
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let result = match plugin.kind {
            PluginKind::Parser => instance.parse(std::slice::from_ref(line)),
            PluginKind::Transform => instance.process(&[String::from_utf8_lossy(line).into_owned()]),
        };
        let outcome = match result {
            Ok(mut outcomes) if outcomes.len() == 1 => match outcomes.remove(0) {
                Outcome::Keep(e) => json!({ "keep": event(&e) }),
                Outcome::Many(es) => json!({ "many": es.iter().map(|e| event(e)).collect::<Vec<_>>() }),
                Outcome::Drop(rule) => json!({ "drop": rule }),
                Outcome::Error(reason) => json!({ "error": reason }),
            },
            Ok(outcomes) => {
                instance = instantiate()?;
                json!({ "fault": format!("the plugin returned {} outcomes for one input", outcomes.len()) })
            }
            Err(e) => {
                let why = instance.describe_fault(&e);
                instance = instantiate()?;
                json!({ "fault": why })
            }
        };
        out.push(outcome);
    }
    Ok(out)
}

/// What one plugin costs, measured by [`bench`].
#[derive(Debug, serde::Serialize)]
pub struct Costs {
    pub name: String,
    pub version: String,
    /// Component size, bytes.
    pub size: u64,
    /// Loading with an empty compiled-code cache: compile, link, one instance, `init`.
    pub load_cold_ms: f64,
    /// The same from a warm cache (what every later start pays).
    pub load_cached_ms: f64,
    /// Median of a new instance plus its `init` (what a worker pays, and a trap costs).
    pub instantiate_us: f64,
    /// Linear memory of a fresh instance, MiB.
    pub memory_mib: f64,
    /// Median ns per event over rounds of `batch`-sized calls.
    pub ns_per_event: f64,
    pub batch: usize,
}

/// Measures a plugin: cold and cached load, instantiation, and ns/event at
/// `batch` (the input's lines, repeated to fill each batch), medians of `rounds`.
pub fn bench(
    reference: &str,
    config: Option<&Path>,
    lines: &[Vec<u8>],
    batch: usize,
    rounds: usize,
) -> anyhow::Result<Costs> {
    anyhow::ensure!(!lines.is_empty() && batch > 0 && rounds > 0, "nothing to measure: empty input, batch or rounds");
    let cache = CacheDir::new()?;
    let cache = cache.0.as_path();
    let timed = |f: &dyn Fn() -> anyhow::Result<Arc<Plugin>>| -> anyhow::Result<(Arc<Plugin>, f64)> {
        let started = std::time::Instant::now();
        let plugin = f()?;
        Ok((plugin, started.elapsed().as_secs_f64() * 1e3))
    };
    let (_, load_cold_ms) = timed(&|| load(&WasmHost::with_cache(Some(cache))?, reference, config))?;
    let (plugin, load_cached_ms) = timed(&|| load(&WasmHost::with_cache(Some(cache))?, reference, config))?;

    let instantiate = || plugin.instantiate().map_err(|e| anyhow::anyhow!("the plugin refused its config: {e}"));
    let mut starts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = std::time::Instant::now();
        drop(instantiate()?);
        starts.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut instance = instantiate()?;
    let memory_mib = instance.memory_in_use() as f64 / (1 << 20) as f64;
    let records: Vec<Vec<u8>> = lines.iter().cycle().take(batch).cloned().collect();
    let events: Vec<String> = records.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
    let mut call = || -> anyhow::Result<()> {
        let outcomes = match plugin.kind {
            PluginKind::Parser => instance.parse(&records),
            PluginKind::Transform => instance.process(&events),
        }
        .map_err(|e| anyhow::anyhow!("the plugin faulted during the benchmark: {e:#}"))?;
        anyhow::ensure!(outcomes.len() == batch, "the plugin returned {} outcomes for {batch} inputs", outcomes.len());
        Ok(())
    };
    for _ in 0..3 {
        call()?; // warm up
    }
    let mut per_event = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = std::time::Instant::now();
        call()?;
        per_event.push(started.elapsed().as_secs_f64() * 1e9 / batch as f64);
    }
    Ok(Costs {
        name: plugin.name().to_string(),
        version: plugin.version().to_string(),
        size: crate::bundled::get(reference)
            .map(|b| b.len() as u64)
            .or_else(|| std::fs::metadata(reference).ok().map(|m| m.len()))
            .unwrap_or(0),
        load_cold_ms,
        load_cached_ms,
        instantiate_us: median(starts),
        memory_mib,
        ns_per_event: median(per_event),
        batch,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A fresh directory for a cold compiled-code cache, removed when dropped.
struct CacheDir(std::path::PathBuf);

impl CacheDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("sluice-bench-cache-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        Ok(CacheDir(dir))
    }
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An event as a JSON value (text that is not JSON is kept as a string).
fn event(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Differences from a golden file, one message per differing line.
pub fn compare(expected: &str, got: &[Value]) -> Vec<String> {
    let expected: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut problems = Vec::new();
    for i in 0..expected.len().max(got.len()) {
        let want = expected.get(i).map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::String(l.to_string())));
        let have = got.get(i);
        if want.as_ref() != have {
            let show = |v: Option<&Value>| v.map_or("(nothing)".to_string(), |v| v.to_string());
            problems.push(format!("line {}:\n  expected {}\n  got      {}", i + 1, show(want.as_ref()), show(have)));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_compared_as_json_values() {
        let got = vec![json!({"keep": {"a": 1, "b": 2}}), json!({"drop": "noise"})];
        assert!(compare("{\"keep\":{\"b\":2,\"a\":1}}\n{\"drop\":\"noise\"}\n", &got).is_empty());
        let diff = compare("{\"keep\":{\"a\":1,\"b\":3}}\n", &got);
        assert_eq!(diff.len(), 2);
        assert_eq!(
            diff[0],
            "line 1:\n  expected {\"keep\":{\"a\":1,\"b\":3}}\n  got      {\"keep\":{\"a\":1,\"b\":2}}"
        );
        assert!(diff[1].starts_with("line 2:\n  expected (nothing)"));
    }
}

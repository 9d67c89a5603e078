//! Live counters of each plugin stage — calls, inputs, outcomes, faults and
//! a histogram of call latency — shared by every worker's instance of the
//! stage and rendered for `GET /metrics` (and read by `sluice top`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BOUNDS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// One stage's counters.
#[derive(Default)]
pub struct StageMetrics {
    pub calls: AtomicU64,
    /// Records or events handed to the stage (again, for a batch retried in halves after a fault).
    pub inputs: AtomicU64,
    /// Events it returned (kept, or one of several).
    pub outputs: AtomicU64,
    /// Inputs it refused (`error` outcomes).
    pub errors: AtomicU64,
    /// Inputs it dropped by a rule.
    pub drops: AtomicU64,
    /// Calls that trapped, ran out of time or memory, or answered wrongly.
    pub faults: AtomicU64,
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl StageMetrics {
    /// Records one call that took `took`.
    pub fn observe(&self, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// A Prometheus label value, escaped.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Every stage's counters, by stage name.
#[derive(Default)]
pub struct Telemetry {
    pub stages: BTreeMap<String, Arc<StageMetrics>>,
}

impl Telemetry {
    pub fn new<'a>(stages: impl IntoIterator<Item = &'a str>) -> Telemetry {
        Telemetry { stages: stages.into_iter().map(|s| (s.to_string(), Arc::default())).collect() }
    }

    /// The counters as Prometheus text.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        type Get = fn(&StageMetrics) -> &AtomicU64;
        let counters: [(&str, &str, Get); 6] = [
            ("sluice_stage_calls_total", "Plugin calls.", |m| &m.calls),
            ("sluice_stage_inputs_total", "Records or events handed to the stage.", |m| &m.inputs),
            ("sluice_stage_outputs_total", "Events the stage returned.", |m| &m.outputs),
            ("sluice_stage_errors_total", "Inputs the stage refused (quarantined).", |m| &m.errors),
            ("sluice_stage_drops_total", "Inputs the stage dropped by a rule.", |m| &m.drops),
            ("sluice_stage_faults_total", "Calls that trapped, timed out or ran out of memory.", |m| &m.faults),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (stage, m) in &self.stages {
                let _ = writeln!(out, "{name}{{stage=\"{}\"}} {}", label(stage), get(m).load(Ordering::Relaxed));
            }
        }
        let name = "sluice_stage_call_seconds";
        let _ = writeln!(out, "# HELP {name} Plugin call latency (one call is one batch).\n# TYPE {name} histogram");
        for (stage, m) in &self.stages {
            let stage = label(stage);
            let mut cumulative = 0;
            for (i, bound) in BOUNDS.iter().map(|b| b.to_string()).chain(["+Inf".to_string()]).enumerate() {
                cumulative += m.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{stage=\"{stage}\",le=\"{bound}\"}} {cumulative}");
            }
            let sum = m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {cumulative}");
        }
        out
    }
}

/// Where a tap listens: the inputs of a stage, or its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapPoint {
    Before(String),
    After(String),
}

/// One `sluice tap` client: what it wants, and where to send it.
#[derive(Clone)]
struct Tap {
    point: TapPoint,
    select: Option<Arc<crate::route::Expr>>,
    tx: tokio::sync::mpsc::Sender<String>,
}

/// The taps open now. Workers look at one atomic when none is open.
#[derive(Default)]
pub struct Taps {
    open: std::sync::atomic::AtomicUsize,
    taps: std::sync::Mutex<Vec<Tap>>,
    /// Items not sent because a tap's client was slower than the pipeline.
    pub missed: AtomicU64,
}

/// Items a tap's client may be behind by before items are skipped for it.
const TAP_BACKLOG: usize = 256;

impl Taps {
    /// Opens a tap; items arrive on the returned receiver until it is dropped.
    pub fn open(&self, point: TapPoint, select: Option<crate::route::Expr>) -> tokio::sync::mpsc::Receiver<String> {
        let (tx, rx) = tokio::sync::mpsc::channel(TAP_BACKLOG);
        let mut taps = self.taps.lock().expect("not poisoned");
        taps.push(Tap { point, select: select.map(Arc::new), tx });
        self.open.store(taps.len(), Ordering::Relaxed);
        rx
    }

    pub fn any(&self) -> bool {
        self.open.load(Ordering::Relaxed) > 0
    }

    /// How many are open.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Hands the items passing `point` (events as JSON text, or raw records)
    /// to the taps there whose condition they match; never waits for a
    /// client. Taps whose client went away are forgotten here, whatever
    /// passes; the lock is held only to copy the list.
    pub fn offer(&self, point: &TapPoint, items: &mut dyn Iterator<Item = std::borrow::Cow<'_, str>>) {
        let here: Vec<Tap> = {
            let mut taps = self.taps.lock().expect("not poisoned");
            taps.retain(|t| !t.tx.is_closed());
            self.open.store(taps.len(), Ordering::Relaxed);
            taps.iter().filter(|t| &t.point == point).cloned().collect()
        };
        if here.is_empty() {
            return;
        }
        let core: &crate::schema::StreamSchema = &crate::schema::CORE;
        for item in items {
            for tap in &here {
                if let Some(select) = &tap.select {
                    // a condition reads events; a raw record (or an event that does not check) does not match
                    let Ok(row) = crate::schema::check_event(&item, 0, "", core) else { continue };
                    if !select.matches(&crate::route::RowView::new(&row, "")) {
                        continue;
                    }
                }
                if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tap.tx.try_send(item.to_string()) {
                    self.missed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_fall_in_cumulative_buckets() {
        let t = Telemetry::new(["parse"]);
        let m = &t.stages["parse"];
        m.observe(Duration::from_micros(300));
        m.observe(Duration::from_millis(3));
        m.observe(Duration::from_secs(9));
        let text = t.prometheus();
        for line in [
            "sluice_stage_calls_total{stage=\"parse\"} 3",
            "sluice_stage_call_seconds_bucket{stage=\"parse\",le=\"0.0001\"} 0",
            "sluice_stage_call_seconds_bucket{stage=\"parse\",le=\"0.0005\"} 1",
            "sluice_stage_call_seconds_bucket{stage=\"parse\",le=\"0.005\"} 2",
            "sluice_stage_call_seconds_bucket{stage=\"parse\",le=\"5\"} 2",
            "sluice_stage_call_seconds_bucket{stage=\"parse\",le=\"+Inf\"} 3",
            "sluice_stage_call_seconds_count{stage=\"parse\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}

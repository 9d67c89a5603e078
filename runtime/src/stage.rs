//! One trait for every stage of a chain, and the chain that runs them.
//!
//! The pipeline only sees [`Stage`]; a Wasm plugin is one implementation of it
//! ([`WasmStage`]). The chain gives every input its own outcome: when a call
//! faults (trap, timeout, memory cap, wrong number of outcomes) the batch is
//! split in halves and retried on a fresh instance until the faulting record is
//! alone; that record is quarantined with the reason, and every other record
//! goes on. Outputs are only ever taken from calls that succeeded, so no record
//! is lost or duplicated by a fault.

use crate::telemetry::{StageMetrics, TapPoint, Taps};
use crate::wasm::{self, Instance, Plugin};
use std::borrow::Cow;
use std::sync::Arc;

/// What a stage did with one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Keep(String),
    Drop(String),
    Many(Vec<String>),
    Error(String),
}

impl From<wasm::Outcome> for Outcome {
    fn from(o: wasm::Outcome) -> Self {
        match o {
            wasm::Outcome::Keep(e) => Outcome::Keep(e),
            wasm::Outcome::Drop(r) => Outcome::Drop(r),
            wasm::Outcome::Many(es) => Outcome::Many(es),
            wasm::Outcome::Error(r) => Outcome::Error(r),
        }
    }
}

/// Who produced an outcome: written with every quarantined record.
#[derive(Debug, Clone)]
pub struct StageIdentity {
    pub stage: String,
    pub plugin: String,
    pub version: String,
    pub sha256: String,
}

/// A slice of a stage's input: raw records for a parser, events for a transform.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    Records(&'a [Vec<u8>]),
    Events(&'a [String]),
}

impl<'a> Input<'a> {
    fn len(&self) -> usize {
        match self {
            Input::Records(r) => r.len(),
            Input::Events(e) => e.len(),
        }
    }

    fn halves(self) -> (Input<'a>, Input<'a>) {
        let mid = self.len() / 2;
        match self {
            Input::Records(r) => (Input::Records(&r[..mid]), Input::Records(&r[mid..])),
            Input::Events(e) => (Input::Events(&e[..mid]), Input::Events(&e[mid..])),
        }
    }
}

/// A step of a chain.
pub trait Stage: Send {
    fn identity(&self) -> &StageIdentity;
    /// One outcome per input, in order, or a fault that spoils the whole call.
    fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String>;
}

/// A stage backed by a Wasm plugin; one per worker.
pub struct WasmStage {
    plugin: Arc<Plugin>,
    identity: StageIdentity,
    instance: Option<Instance>,
}

impl WasmStage {
    pub fn new(plugin: Arc<Plugin>) -> Self {
        let identity = StageIdentity {
            stage: plugin.stage.clone(),
            plugin: plugin.name().to_string(),
            version: plugin.version().to_string(),
            sha256: plugin.digest.clone(),
        };
        WasmStage { plugin, identity, instance: None }
    }
}

impl Stage for WasmStage {
    fn identity(&self) -> &StageIdentity {
        &self.identity
    }

    fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String> {
        let instance = match &mut self.instance {
            Some(i) => i,
            slot @ None => slot.insert(self.plugin.instantiate().map_err(|e| format!("plugin failed to start: {e}"))?),
        };
        let result = match input {
            Input::Records(r) => instance.parse(r),
            Input::Events(e) => instance.process(e),
        };
        match result {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Outcome::from).collect()),
            Err(e) => {
                let reason = instance.describe_fault(&e);
                tracing::warn!(stage = %self.identity.stage, plugin = %self.identity.plugin, %reason, "Plugin call failed; rebuilding the instance.");
                self.instance = None;
                Err(reason)
            }
        }
    }
}

/// One [`WasmStage`] used by several chains of a worker (the same stage in
/// the chains of several sources, and the quarantine redactor): one instance,
/// so memory grows with stages, not with stages × sources.
#[derive(Clone)]
pub struct SharedStage {
    inner: Arc<std::sync::Mutex<Box<dyn Stage>>>,
    identity: StageIdentity,
    /// The stage's counters, shared with the other workers' instances.
    metrics: Arc<StageMetrics>,
}

impl SharedStage {
    pub fn new(plugin: &Arc<Plugin>, metrics: Arc<StageMetrics>) -> Self {
        let stage: Box<dyn Stage> = Box::new(WasmStage::new(plugin.clone()));
        #[cfg(feature = "native-plugins")]
        let stage = match crate::native::stage(plugin) {
            Some(Ok(native)) => native,
            Some(Err(e)) => panic!("the native build of {} refused the config its Wasm build took: {e}", plugin.name()),
            None => stage,
        };
        let identity = stage.identity().clone();
        SharedStage { inner: Arc::new(std::sync::Mutex::new(stage)), identity, metrics }
    }
}

impl Stage for SharedStage {
    fn identity(&self) -> &StageIdentity {
        &self.identity
    }

    fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        // one worker thread uses it: the lock is never contended
        let result = self.inner.lock().expect("not poisoned").call(input);
        let m = &self.metrics;
        m.observe(started.elapsed());
        m.inputs.fetch_add(input.len() as u64, Relaxed);
        match &result {
            Ok(outcomes) if outcomes.len() == input.len() => {
                // counted here, added once: the counters are shared by every worker
                let (mut outputs, mut drops, mut errors) = (0, 0, 0);
                for outcome in outcomes {
                    match outcome {
                        Outcome::Keep(_) => outputs += 1,
                        Outcome::Many(events) => outputs += events.len() as u64,
                        Outcome::Drop(_) => drops += 1,
                        Outcome::Error(_) => errors += 1,
                    }
                }
                m.outputs.fetch_add(outputs, Relaxed);
                m.drops.fetch_add(drops, Relaxed);
                m.errors.fetch_add(errors, Relaxed);
            }
            // a fault, or the wrong number of outcomes (which the chain treats as one)
            _ => {
                m.faults.fetch_add(1, Relaxed);
            }
        }
        result
    }
}

/// A record that left the chain without becoming events.
#[derive(Debug)]
pub struct Rejected {
    /// Index of the raw record it came from.
    pub origin: u32,
    /// The stage that rejected it, or `None` for the host's schema check.
    pub stage: Option<StageIdentity>,
    pub reason: String,
}

/// What a chain made of one batch of raw records.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// Events with the index of the raw record each came from.
    pub events: Vec<(u32, String)>,
    pub quarantined: Vec<Rejected>,
    /// Records dropped on purpose by a stage, with the rule.
    pub dropped: Vec<Rejected>,
    /// Extra events made by splitting: a record that became n ≥ 1 events adds n − 1.
    pub expanded: u64,
}

/// The ordered stages a source's records go through.
pub struct Chain {
    stages: Vec<Box<dyn Stage>>,
    /// The records are events already (JSON objects): every stage is a
    /// transform, and an empty chain passes them on as they are.
    events_in: bool,
    /// Each record goes into its events' `raw_data` after the parser (see
    /// [`with_raw_data`]).
    keep_raw: bool,
    /// `sluice tap` clients, shown what passes each stage.
    taps: Option<Arc<Taps>>,
}

impl Chain {
    /// A chain whose first stage is a parser.
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Self {
        Chain { stages, events_in: false, keep_raw: false, taps: None }
    }

    /// A chain of transforms whose records are events.
    pub fn of_events(stages: Vec<Box<dyn Stage>>) -> Self {
        Chain { stages, events_in: true, keep_raw: false, taps: None }
    }

    /// Keeps each record that became one event in its `raw_data` (a record
    /// that held several — an `EventList`, a CloudTrail `Records` file — is not
    /// copied into each: that would store it k times, and re-parsing each copy
    /// would make k² events).
    pub fn keeping_raw(mut self) -> Self {
        self.keep_raw = !self.events_in;
        self
    }

    /// Shows what passes each stage to the open taps.
    pub fn tapped(mut self, taps: Arc<Taps>) -> Self {
        self.taps = Some(taps);
        self
    }

    pub fn run(&mut self, records: &[Vec<u8>]) -> ChainOutput {
        let mut out = ChainOutput::default();
        let mut origins: Vec<u32> = (0..records.len() as u32).collect();
        let mut events: Vec<String> = Vec::new();
        if self.events_in {
            events = records.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
        }
        for (i, stage) in self.stages.iter_mut().enumerate() {
            let input = if i == 0 && !self.events_in { Input::Records(records) } else { Input::Events(&events) };
            let taps = self.taps.as_deref().filter(|t| t.any());
            if let Some(taps) = taps {
                let point = TapPoint::Before(stage.identity().stage.clone());
                match input {
                    Input::Records(r) => taps.offer(&point, &mut r.iter().map(|b| String::from_utf8_lossy(b))),
                    Input::Events(e) => taps.offer(&point, &mut e.iter().map(|e| Cow::Borrowed(e.as_str()))),
                }
            }
            let mut results = Vec::with_capacity(input.len());
            call_isolated(stage.as_mut(), input, &mut results);
            let mut next_events = Vec::with_capacity(results.len());
            let mut next_origins = Vec::with_capacity(results.len());
            for (result, &origin) in results.into_iter().zip(&origins) {
                let rejected = |reason| Rejected { origin, stage: Some(stage.identity().clone()), reason };
                match result {
                    Ok(Outcome::Keep(mut e)) => {
                        if i == 0
                            && self.keep_raw
                            && let Ok(record) = std::str::from_utf8(&records[origin as usize])
                        {
                            with_raw_data(&mut e, record);
                        }
                        next_events.push(e);
                        next_origins.push(origin);
                    }
                    Ok(Outcome::Many(es)) if es.is_empty() => {
                        out.dropped.push(rejected("no events in the record".into()));
                    }
                    Ok(Outcome::Many(es)) => {
                        out.expanded += es.len() as u64 - 1;
                        next_origins.extend(std::iter::repeat_n(origin, es.len()));
                        next_events.extend(es);
                    }
                    Ok(Outcome::Drop(rule)) => out.dropped.push(rejected(rule)),
                    Ok(Outcome::Error(reason)) | Err(reason) => out.quarantined.push(rejected(reason)),
                }
            }
            if let Some(taps) = taps {
                let point = TapPoint::After(stage.identity().stage.clone());
                taps.offer(&point, &mut next_events.iter().map(|e| Cow::Borrowed(e.as_str())));
            }
            events = next_events;
            origins = next_origins;
        }
        out.events = origins.into_iter().zip(events).collect();
        out
    }
}

/// Puts `raw_data: record` first in a JSON object's text, without parsing
/// it, unless the text names a `raw_data` already (the parser set one). Text
/// that is not an object is left alone (the schema check refuses it).
fn with_raw_data(event: &mut String, record: &str) {
    if event.contains("\"raw_data\"") {
        return;
    }
    let body = event.trim_start();
    let Some(rest) = body.strip_prefix('{') else { return };
    let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
    let quoted = serde_json::to_string(record).expect("a string serializes");
    *event = format!("{{\"raw_data\":{quoted}{separator}{rest}");
}

/// One outcome per event from a transform stage, a fault pinned on the event
/// that caused it (as an `Err`).
pub fn process_each(stage: &mut dyn Stage, events: &[String]) -> Vec<Result<Outcome, String>> {
    let mut out = Vec::with_capacity(events.len());
    call_isolated(stage, Input::Events(events), &mut out);
    out
}

/// Calls `stage` so that a fault is pinned on the one input that causes it.
fn call_isolated(stage: &mut dyn Stage, input: Input<'_>, out: &mut Vec<Result<Outcome, String>>) {
    if input.len() == 0 {
        return;
    }
    let fault = match stage.call(input) {
        Ok(outcomes) if outcomes.len() == input.len() => {
            out.extend(outcomes.into_iter().map(Ok));
            return;
        }
        Ok(outcomes) => format!("plugin returned {} outcomes for {} inputs", outcomes.len(), input.len()),
        Err(fault) => fault,
    };
    if input.len() == 1 {
        out.push(Err(fault));
    } else {
        let (a, b) = input.halves();
        call_isolated(stage, a, out);
        call_isolated(stage, b, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage that faults whenever its input contains a poisoned record.
    struct Poisoned {
        id: StageIdentity,
        calls: usize,
    }

    impl Stage for Poisoned {
        fn identity(&self) -> &StageIdentity {
            &self.id
        }
        fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String> {
            self.calls += 1;
            let Input::Records(records) = input else { unreachable!() };
            if records.iter().any(|r| r == b"poison") {
                return Err("trapped".into());
            }
            Ok(records
                .iter()
                .map(|r| match r.as_slice() {
                    b"skip" => Outcome::Drop("rule-1".into()),
                    b"bad" => Outcome::Error("no good".into()),
                    b"two" => Outcome::Many(vec!["a".into(), "b".into()]),
                    r => Outcome::Keep(String::from_utf8_lossy(r).into()),
                })
                .collect())
        }
    }

    #[test]
    fn raw_data_is_spliced_into_objects_only_where_the_parser_set_none() {
        let cases = [
            (r#"{"a":1}"#, r#"{"raw_data":"x \"y\"","a":1}"#),
            (" { } ", r#"{"raw_data":"x \"y\"" } "#),
            (r#"{"raw_data":"mine"}"#, r#"{"raw_data":"mine"}"#),
            ("[1]", "[1]"),
        ];
        for (event, want) in cases {
            let mut event = event.to_string();
            with_raw_data(&mut event, "x \"y\"");
            assert_eq!(event, want);
            if want.starts_with('{') {
                serde_json::from_str::<serde_json::Value>(&event).expect("still JSON");
            }
        }
    }

    #[test]
    fn a_fault_is_pinned_on_its_record_and_nothing_else_is_lost() {
        let id = StageIdentity { stage: "p".into(), plugin: "p".into(), version: "1".into(), sha256: "x".into() };
        let mut chain = Chain::new(vec![Box::new(Poisoned { id, calls: 0 })]);
        let mut records: Vec<Vec<u8>> = (0..100).map(|i| format!("r{i}").into_bytes()).collect();
        records[37] = b"poison".to_vec();
        records[50] = b"skip".to_vec();
        records[51] = b"bad".to_vec();
        records[52] = b"two".to_vec();
        let out = chain.run(&records);
        assert_eq!(out.quarantined.len(), 2);
        assert_eq!((out.quarantined[0].origin, out.quarantined[0].reason.as_str()), (37, "trapped"));
        assert_eq!((out.quarantined[1].origin, out.quarantined[1].reason.as_str()), (51, "no good"));
        assert_eq!(out.dropped.len(), 1);
        assert_eq!(out.events.len(), 98);
        assert_eq!(out.expanded, 1);
        // every record is accounted for: 100 in + 1 from the split = 98 + 2 + 1
        assert_eq!(100 + out.expanded as usize, out.events.len() + out.quarantined.len() + out.dropped.len());
        let origins: Vec<u32> = out.events.iter().map(|(o, _)| *o).collect();
        let mut expected: Vec<u32> = (0..100).filter(|i| ![37, 50, 51].contains(i)).collect();
        expected.insert(expected.iter().position(|&o| o == 52).unwrap(), 52);
        assert_eq!(origins, expected);
    }
}

//! Volume telemetry and the findings it drives. The sink counts the events
//! it writes per interval (`runtime.volume_interval_secs`, default a minute,
//! by the sink's clock), source, stream and class, and writes the counts into
//! the stream `_volume` at each commit — a small time series analysts query
//! like any stream (sum `events` per interval: an interval cut by a commit
//! has two rows). Per source it also watches the records read: a source that
//! reads nothing for longer than its `silent_after` raises one finding, and
//! one recovery note when it reads again (a stopped audit source is itself an
//! audit event, NIST AU-5); an interval whose count passes `spike_factor`
//! times the average of the trailing intervals raises one finding per spike.

use crate::schema::{Kind, StreamSchema};
use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The stream the counts go to.
pub const STREAM: &str = "_volume";

/// Intervals of history a spike is measured against (at most), and at least.
const HISTORY: usize = 60;
const MIN_HISTORY: usize = 5;

/// The columns of `_volume`: the core schema (`time` is the interval's start,
/// `class_uid` the class counted) and the source, stream and count.
pub fn schema() -> StreamSchema {
    StreamSchema::new(vec![
        ("source".into(), Kind::Utf8),
        ("stream".into(), Kind::Utf8),
        ("events".into(), Kind::Int64),
    ])
}

/// Events written, per (interval start µs, source, stream, class).
pub struct Volume {
    interval_us: i64,
    counts: BTreeMap<(i64, usize, usize, Option<i32>), u64>,
    /// Since start, per (source, stream, class): the metrics' counters.
    pub totals: BTreeMap<(usize, usize, Option<i32>), u64>,
}

impl Volume {
    pub fn new(interval: Duration) -> Volume {
        Volume { interval_us: interval.as_micros() as i64, counts: BTreeMap::new(), totals: BTreeMap::new() }
    }

    /// Counts the rows of one partition's columns by `class_uid`.
    pub fn add(&mut self, now_us: i64, source: usize, stream: usize, columns: &[ArrayRef]) {
        let start = now_us - now_us.rem_euclid(self.interval_us);
        let (class_index, _) = crate::schema::column("class_uid").expect("a core column");
        // a partition holds few classes: count them here, then add each once
        let mut per_class: Vec<(Option<i32>, u64)> = Vec::new();
        for class in columns[class_index].as_primitive::<Int32Type>().iter() {
            match per_class.iter_mut().find(|(c, _)| *c == class) {
                Some((_, n)) => *n += 1,
                None => per_class.push((class, 1)),
            }
        }
        for (class, n) in per_class {
            *self.counts.entry((start, source, stream, class)).or_default() += n;
            *self.totals.entry((source, stream, class)).or_default() += n;
        }
    }

    /// The counts so far as `_volume` events (JSON), emptied.
    pub fn drain(&mut self, sources: &[String], streams: &[String]) -> Vec<String> {
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(|((start, source, stream, class), events)| {
                serde_json::json!({
                    "time": start,
                    "class_uid": class,
                    "source": sources[source],
                    "stream": streams[stream],
                    "events": events,
                    "metadata_product_name": "sluice",
                })
                .to_string()
            })
            .collect()
    }
}

/// What a source is expected to do.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub silent_after: Option<Duration>,
    pub spike_factor: Option<f64>,
}

/// Something worth an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Silent { source: String, after: Duration },
    Resumed { source: String, silent_for: Duration },
    Spike { source: String, records: u64, baseline: f64, factor: f64 },
}

/// One source's watch: when it last read, and records read per interval.
pub struct Watch {
    name: String,
    expect: Expectation,
    interval: Duration,
    last_seen: Instant,
    silent: bool,
    /// The interval being counted (its number since the watch started) and its count.
    bucket: u64,
    current: u64,
    history: VecDeque<u64>,
    spiking: bool,
    started: Instant,
}

impl Watch {
    pub fn new(name: String, expect: Expectation, interval: Duration, now: Instant) -> Watch {
        Watch {
            name,
            expect,
            interval,
            last_seen: now,
            silent: false,
            bucket: 0,
            current: 0,
            history: VecDeque::new(),
            spiking: false,
            started: now,
        }
    }

    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// Records the source read (`n > 0`); a recovery note if it was silent.
    pub fn read(&mut self, n: u64, now: Instant) -> Vec<Finding> {
        let mut findings = self.tick(now);
        self.current += n;
        if self.silent {
            self.silent = false;
            // the backlog of a source that comes back is not a spike: start over
            self.history.clear();
            self.spiking = false;
            findings.push(Finding::Resumed { source: self.name.clone(), silent_for: now - self.last_seen });
        }
        self.last_seen = now;
        findings
    }

    /// Checks for silence, and for a spike in each interval that ended.
    pub fn tick(&mut self, now: Instant) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(after) = self.expect.silent_after
            && !self.silent
            && now - self.last_seen >= after
        {
            self.silent = true;
            findings.push(Finding::Silent { source: self.name.clone(), after });
        }
        let bucket = ((now - self.started).as_micros() / self.interval.as_micros().max(1)) as u64;
        while self.bucket < bucket {
            let records = std::mem::take(&mut self.current);
            if let Some(factor) = self.expect.spike_factor
                && self.history.len() >= MIN_HISTORY
            {
                let baseline = self.history.iter().sum::<u64>() as f64 / self.history.len() as f64;
                let spike = records as f64 > factor * baseline.max(1.0);
                if spike && !self.spiking {
                    findings.push(Finding::Spike { source: self.name.clone(), records, baseline, factor });
                }
                self.spiking = spike;
            }
            self.history.push_back(records);
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
            self.bucket += 1;
        }
        findings
    }
}

/// Prometheus text exposition of the sink's counters: per source, records
/// read, events written, quarantined, copied, dropped and kept by the
/// protected set per rule (cumulative over the archive's commits), events
/// written per stream and class (this run), whether the source is silent,
/// and the files, bytes and commits of this run.
pub fn prometheus(
    sources: &[(&str, &crate::sinks::commit::Counts, bool)],
    streams: &[String],
    volume: Option<&Volume>,
    stats: &crate::sinks::SinkStats,
) -> String {
    use std::fmt::Write;
    let label = crate::telemetry::label;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let per_source = |f: &dyn Fn(&crate::sinks::commit::Counts) -> u64| {
        sources.iter().map(|(s, c, _)| (format!("source=\"{}\"", label(s)), f(c))).collect::<Vec<_>>()
    };
    family("sluice_records_read_total", "counter", "Records read.", per_source(&|c| c.read));
    family("sluice_events_written_total", "counter", "Events written.", per_source(&|c| c.written));
    family(
        "sluice_events_quarantined_total",
        "counter",
        "Records and events quarantined.",
        per_source(&|c| c.quarantined),
    );
    family(
        "sluice_events_copies_total",
        "counter",
        "Extra copies of events routed to several streams.",
        per_source(&|c| c.copies),
    );
    let per_rule = |f: &dyn Fn(&crate::sinks::commit::Counts) -> &BTreeMap<String, u64>| {
        sources
            .iter()
            .flat_map(|(s, c, _)| {
                f(c).iter().map(move |(rule, n)| (format!("source=\"{}\",rule=\"{}\"", label(s), label(rule)), *n))
            })
            .collect::<Vec<_>>()
    };
    family("sluice_events_dropped_total", "counter", "Events dropped, by rule.", per_rule(&|c| &c.dropped));
    family(
        "sluice_events_protected_total",
        "counter",
        "Events a filter would have dropped that the protected set kept, by rule.",
        per_rule(&|c| &c.protected),
    );
    if let Some(v) = volume {
        let rows = v
            .totals
            .iter()
            .map(|((source, stream, class), n)| {
                let class = class.map_or(String::new(), |c| c.to_string());
                (
                    format!(
                        "source=\"{}\",stream=\"{}\",class_uid=\"{class}\"",
                        label(sources[*source].0),
                        label(&streams[*stream])
                    ),
                    *n,
                )
            })
            .collect();
        family("sluice_stream_events_total", "counter", "Events written this run, by stream and class.", rows);
    }
    let silent =
        sources.iter().map(|(s, _, silent)| (format!("source=\"{}\"", label(s)), u64::from(*silent))).collect();
    family("sluice_source_silent", "gauge", "1 while a source is past its silent_after.", silent);
    family("sluice_files_committed_total", "counter", "Files committed this run.", vec![(String::new(), stats.files)]);
    family("sluice_bytes_committed_total", "counter", "Bytes committed this run.", vec![(String::new(), stats.bytes)]);
    family("sluice_commits_total", "counter", "Commits this run.", vec![(String::new(), stats.commits)]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_silence_finding_then_one_recovery_note() {
        let t0 = Instant::now();
        let expect = Expectation { silent_after: Some(Duration::from_secs(10)), spike_factor: None };
        let mut w = Watch::new("a".into(), expect, Duration::from_secs(60), t0);
        assert!(w.tick(t0 + Duration::from_secs(9)).is_empty());
        let silent = w.tick(t0 + Duration::from_secs(10));
        assert_eq!(silent, [Finding::Silent { source: "a".into(), after: Duration::from_secs(10) }]);
        assert!(w.tick(t0 + Duration::from_secs(30)).is_empty(), "once per silence");
        let back = w.read(3, t0 + Duration::from_secs(40));
        assert_eq!(back, [Finding::Resumed { source: "a".into(), silent_for: Duration::from_secs(40) }]);
        assert!(w.read(3, t0 + Duration::from_secs(41)).is_empty());
        assert_eq!(w.tick(t0 + Duration::from_secs(51)).len(), 1, "silent again");
    }

    #[test]
    fn a_spike_over_the_trailing_baseline_is_found_once() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let expect = Expectation { silent_after: None, spike_factor: Some(5.0) };
        let mut w = Watch::new("a".into(), expect, second, t0);
        let mut findings = Vec::new();
        for i in 0..20u32 {
            let n = if (10..13).contains(&i) { 100 } else { 10 };
            findings.extend(w.read(n, t0 + second * i + second / 2));
        }
        findings.extend(w.tick(t0 + second * 21));
        assert_eq!(findings.len(), 1, "{findings:?}");
        let Finding::Spike { records, baseline, .. } = &findings[0] else { panic!("{findings:?}") };
        assert_eq!((*records, *baseline), (100, 10.0));
    }
}

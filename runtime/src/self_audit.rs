//! The pipeline audits itself: its start and stop, a restart after a crash,
//! and changes to its config, its plugins or its signing key are written into
//! the archive as events of the stream `_sluice` — OCSF Event Log Activity
//! (class 1008), with the same columns, integrity log and proofs as any other
//! stream. A stopped or tampered-with audit pipeline is itself an audit event.
//!
//! What changed is found by comparing this run's [`PipelineIdentity`] with the
//! one in the archive's last commit record.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The stream the pipeline's own events go to.
pub const STREAM: &str = "_sluice";

/// What the pipeline is, as recorded with each commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineIdentity {
    /// SHA-256 of the pipeline file as written (before `${...}` is replaced, so
    /// that secrets passed through the environment are not hashed).
    pub config_sha256: String,
    /// Per stage: the SHA-256 of its plugin.
    pub plugins: BTreeMap<String, String>,
    /// The verifier key line of the signing key, if checkpoints are signed.
    pub signing_key: Option<String>,
}

/// How the previous run ended, as far as the archive knows.
pub struct Previous {
    pub identity: Option<PipelineIdentity>,
    /// Whether its last commit was the one it makes at a clean stop.
    pub clean_stop: bool,
    /// What recovery had to do: uncommitted files removed, log entries restored.
    pub removed_files: usize,
    pub restored_entries: usize,
}

const EVENT_LOG_ACTIVITY: i64 = 1008;
const START: i64 = 6;
const STOP: i64 = 7;
const RESTART: i64 = 8;
const OTHER: i64 = 99;

fn event(time: i64, activity: i64, operation: &str, severity: i64, message: String, details: Value) -> String {
    json!({
        "time": time,
        "class_uid": EVENT_LOG_ACTIVITY,
        "category_uid": 1,
        "activity_id": activity,
        "type_uid": EVENT_LOG_ACTIVITY * 100 + activity,
        "severity_id": severity,
        "status_id": 1,
        "message": message,
        "api_operation": operation,
        "metadata_uid": uuid::Uuid::now_v7().to_string(),
        "metadata_product_name": "sluice",
        "metadata_log_name": STREAM,
        "device_hostname": hostname(),
        "process_name": "sluice",
        "process_pid": std::process::id(),
        "actor_user_name": std::env::var("USER").unwrap_or_default(),
        "unmapped": details,
    })
    .to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The events of a start: the start itself, a restart note if the previous
/// run did not stop cleanly, and one event per change since the last commit.
pub fn start_events(time: i64, now: &PipelineIdentity, previous: &Previous) -> Vec<String> {
    let version = env!("CARGO_PKG_VERSION");
    let mut events = vec![event(
        time,
        START,
        "pipeline.start",
        1,
        format!("sluice {version} started"),
        json!({"version": version, "config_sha256": now.config_sha256}),
    )];
    let Some(before) = &previous.identity else { return events };
    if !previous.clean_stop || previous.removed_files > 0 || previous.restored_entries > 0 {
        events.push(event(
            time,
            RESTART,
            "pipeline.recover",
            3,
            format!(
                "the previous run did not stop cleanly; recovery removed {} uncommitted files and restored {} log entries",
                previous.removed_files, previous.restored_entries
            ),
            json!({"removed_files": previous.removed_files, "restored_entries": previous.restored_entries}),
        ));
    }
    if before.config_sha256 != now.config_sha256 {
        events.push(event(
            time,
            OTHER,
            "config.change",
            2,
            "the pipeline file changed since the last commit".into(),
            json!({"before": before.config_sha256, "after": now.config_sha256}),
        ));
    }
    let stages: std::collections::BTreeSet<&String> = before.plugins.keys().chain(now.plugins.keys()).collect();
    for stage in stages {
        let (old, new) = (before.plugins.get(stage), now.plugins.get(stage));
        if old != new {
            events.push(event(
                time,
                OTHER,
                "plugin.change",
                2,
                format!("the plugin of stage `{stage}` changed since the last commit"),
                json!({"stage": stage, "before": old, "after": new}),
            ));
        }
    }
    if before.signing_key != now.signing_key {
        events.push(event(
            time,
            OTHER,
            "key.rotate",
            3,
            "the checkpoint signing key changed since the last commit".into(),
            json!({"before": before.signing_key, "after": now.signing_key}),
        ));
    }
    events
}

/// The event of a clean stop, with what the run did.
pub fn stop_event(time: i64, counts: &crate::sinks::commit::Counts) -> String {
    event(
        time,
        STOP,
        "pipeline.stop",
        1,
        format!(
            "sluice stopped: read {}, wrote {}, quarantined {}, dropped {}",
            counts.read,
            counts.written,
            counts.quarantined,
            counts.dropped_total()
        ),
        serde_json::to_value(counts).expect("counts serialize"),
    )
}

const DELETE: i64 = 2;

/// The events of a retention pass: one `retention.delete` per file taken out
/// (what, why, which policy), then a `retention.apply` summary naming the
/// holds in force and what they kept.
pub fn retention_events(time: i64, plan: &crate::retention::Plan) -> Vec<String> {
    let micros = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t)
            .map_or_else(|| t.to_string(), |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let mut events = Vec::new();
    for e in &plan.expire {
        let f = &e.entry;
        events.push(event(
            time,
            DELETE,
            "retention.delete",
            1,
            format!(
                "deleted {} ({} events, newest {}): older than the {} retention of stream `{}`",
                f.path,
                f.rows,
                micros(f.time_max),
                e.policy,
                e.stream
            ),
            json!({
                "stream": e.stream, "path": f.path, "sha256": f.sha256, "rows": f.rows,
                "seq_first": f.seq_first, "seq_last": f.seq_last, "time_min": f.time_min, "time_max": f.time_max,
                "log_entry": f.index, "reason": "retention", "policy": e.policy.to_string(),
                "period": e.policy.period.to_string(), "cutoff": e.cutoff,
            }),
        ));
    }
    for q in &plan.quarantine {
        events.push(event(
            time,
            DELETE,
            "retention.delete",
            1,
            format!(
                "deleted quarantine file {} (written {}): older than the {} retention of stream `{}`",
                q.path,
                micros(q.written),
                q.policy,
                q.stream
            ),
            json!({
                "stream": q.stream, "path": q.path, "quarantine": true, "written": q.written,
                "reason": "retention", "policy": q.policy.to_string(), "period": q.policy.period.to_string(),
                "cutoff": q.cutoff,
            }),
        ));
    }
    let rows: u64 = plan.expire.iter().map(|e| e.entry.rows).sum();
    let holds: Vec<Value> = plan
        .holds
        .iter()
        .map(|h| {
            let kept = plan.held.iter().filter(|(_, id)| *id == h.id).count();
            json!({"id": h.id, "stream": h.stream, "prefix": h.prefix, "reason": h.reason, "by": h.by, "kept_files": kept})
        })
        .collect();
    events.push(event(
        time,
        OTHER,
        "retention.apply",
        1,
        format!(
            "retention deleted {} files ({rows} events) and {} quarantine files; holds kept {} files past their policy",
            plan.expire.len(),
            plan.quarantine.len(),
            plan.held.len()
        ),
        json!({"files": plan.expire.len(), "events": rows, "quarantine_files": plan.quarantine.len(),
               "held_files": plan.held.len(), "holds": holds}),
    ));
    events
}

const DETECTION_FINDING: i64 = 2004;

/// A finding about the pipeline's sources, as an OCSF Detection Finding
/// (class 2004): `source.silent` and `source.spike` open one (activity 1,
/// Create), `source.resumed` closes it (activity 3, Close).
pub fn finding_event(time: i64, finding: &crate::sinks::volume::Finding) -> String {
    use crate::sinks::volume::Finding;
    let (activity, operation, severity, message, details) = match finding {
        Finding::Silent { source, after } => (
            1,
            "source.silent",
            4,
            format!("source `{source}` has read nothing for {}s", after.as_secs()),
            json!({"source": source, "silent_after_secs": after.as_secs()}),
        ),
        Finding::Resumed { source, silent_for } => (
            3,
            "source.resumed",
            1,
            format!("source `{source}` reads again after {}s of silence", silent_for.as_secs()),
            json!({"source": source, "silent_for_secs": silent_for.as_secs()}),
        ),
        Finding::Spike { source, records, baseline, factor } => (
            1,
            "source.spike",
            3,
            format!(
                "source `{source}` read {records} records in one interval, over {factor}x its trailing average of {baseline:.1}"
            ),
            json!({"source": source, "records": records, "baseline": format!("{baseline:.1}"), "factor": factor}),
        ),
    };
    let mut event: Value =
        serde_json::from_str(&event(time, activity, operation, severity, message, details)).expect("events are JSON");
    event["class_uid"] = DETECTION_FINDING.into();
    event["category_uid"] = 2.into();
    event["type_uid"] = (DETECTION_FINDING * 100 + activity).into();
    event.to_string()
}

/// A fired alert rule, as an OCSF Detection Finding (class 2004, Create):
/// the rule, the key, and the events in its window.
pub fn rule_event(time: i64, fired: &crate::sinks::alerting::Fired) -> String {
    let per = fired.per.as_deref().unwrap_or("all");
    let message = match fired.count {
        1 => format!("rule `{}` fired ({per} = {})", fired.rule, fired.key),
        n => format!("rule `{}` fired: {n} events within {}s ({per} = {})", fired.rule, fired.window_secs, fired.key),
    };
    let details = json!({
        "rule": fired.rule, "per": fired.per, "key": fired.key, "count": fired.count,
        "window_secs": fired.window_secs,
        "events": fired.hits.iter().map(|h| json!({"time": h.time, "event": h.event})).collect::<Vec<_>>(),
    });
    let mut event: Value = serde_json::from_str(&event(time, 1, "rule.fired", fired.severity_id, message, details))
        .expect("events are JSON");
    event["class_uid"] = DETECTION_FINDING.into();
    event["category_uid"] = 2.into();
    event["type_uid"] = (DETECTION_FINDING * 100 + 1).into();
    event.to_string()
}

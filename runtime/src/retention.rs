//! Retention: how long each stream's data is kept, legal holds that keep it
//! longer, and the plan that `sluice retention apply` (and a running pipeline,
//! every `retention.apply_every_hours`) carries out.
//!
//! A file expires when its newest event is older than its stream's period,
//! counted back from now: with day or hour partitions that is the whole
//! partition, and never sooner than the policy allows. A file under an active
//! hold never expires. An expired file leaves the archive through a commit
//! (`sinks/parquet.rs`, `Sink::expire`) that appends a *retired* entry to its
//! stream's integrity log — so expiry is an entry, not a hole, and `verify`
//! checks it against the period it names — and writes one `retention.delete`
//! event per file into the `_sluice` stream. The stream `_sluice` itself (which
//! records the deletions) is never expired.
//!
//! Holds live in the archive, `_state/holds/<id>.json`, each written once and
//! never changed; releasing one writes `_state/holds/<id>.released.json`. They
//! need no lock, so a hold can be placed while a pipeline runs.

use crate::integrity::log::{LogEntry, QuarantineEntry, live_files, live_quarantine, read_entries};
use crate::sinks::{Archive, commit_single};
use anyhow::Context;
use chrono::{DateTime, Months, TimeDelta, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A retention period: whole days, or calendar months (a year is 12 months,
/// so "6 years" ends on the same calendar day, leap days included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Months(u32),
}

impl Period {
    /// Parses `400d`, `30 days`, `2w`, `13 months`, `6 years`, `7y`.
    pub fn parse(text: &str) -> Result<Period, String> {
        let (number, unit) = number_and_unit(text);
        let n: u32 = number.parse().map_err(|_| format!("`{text}` is not a period like \"400d\" or \"13 months\""))?;
        if n == 0 {
            return Err(format!("`{text}`: a retention period must be longer than zero"));
        }
        let scaled = |k: u32| n.checked_mul(k).ok_or_else(|| format!("`{text}` is too long"));
        match unit.to_ascii_lowercase().as_str() {
            "d" | "day" | "days" => Ok(Period::Days(n)),
            "w" | "week" | "weeks" => scaled(7).map(Period::Days),
            "mo" | "month" | "months" => Ok(Period::Months(n)),
            "y" | "year" | "years" => scaled(12).map(Period::Months),
            _ => Err(format!("`{text}`: the unit must be days (d), weeks (w), months (mo) or years (y)")),
        }
    }

    /// The instant `self` after `t`: when an event of time `t` may go.
    pub fn after(self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Period::Days(n) => t.checked_add_signed(TimeDelta::days(n.into())).unwrap_or(DateTime::<Utc>::MAX_UTC),
            Period::Months(n) => t.checked_add_months(Months::new(n)).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// At least as long as the period, in days (to compare periods).
    pub fn max_days(self) -> u64 {
        match self {
            Period::Days(n) => n.into(),
            Period::Months(n) => u64::from(n) * 31,
        }
    }

    /// The instant `self` before `now`: events older than it have been kept
    /// for the whole period.
    pub fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Period::Days(n) => now.checked_sub_signed(TimeDelta::days(n.into())).unwrap_or(DateTime::<Utc>::MIN_UTC),
            Period::Months(n) => now.checked_sub_months(Months::new(n)).unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Days(n) => write!(f, "{n}d"),
            Period::Months(n) => write!(f, "{n} months"),
        }
    }
}

/// `"13 months"` → `("13", "months")`: the leading digits and the rest, trimmed
/// (also for `config::parse_duration`).
pub fn number_and_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    (&t[..split], t[split..].trim())
}

/// A stream's retention: the period, and the class it came from (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub period: Period,
    pub class: Option<String>,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.class {
            Some(class) => write!(f, "{class} ({})", self.period),
            None => write!(f, "{}", self.period),
        }
    }
}

/// A legal hold: nothing under `<stream>/<prefix>` (and none of the stream's
/// quarantine) expires while it is active.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub id: String,
    pub stream: String,
    /// Start of the paths held, below the stream (e.g. `event_day=202601`);
    /// empty: the whole stream.
    pub prefix: String,
    pub reason: String,
    pub created: String,
    pub by: String,
}

/// The release of a hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub id: String,
    pub reason: String,
    pub released: String,
    pub by: String,
}

impl Hold {
    /// Whether the hold keeps a file (path relative to the archive root).
    pub fn covers(&self, path: &str) -> bool {
        let held = format!("{}/{}", self.stream, self.prefix);
        path.starts_with(&held)
    }
}

const HOLDS: &str = "holds";

fn user() -> String {
    std::env::var("USER").unwrap_or_default()
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Every hold ever placed on the archive, with its release if it has one, oldest first.
pub async fn holds(archive: &Archive) -> anyhow::Result<Vec<(Hold, Option<Release>)>> {
    let prefix = archive.path_of(["_state", HOLDS]);
    let mut names: Vec<_> = archive.store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
    names.sort();
    let mut placed = Vec::new();
    let mut released = BTreeMap::new();
    for path in names {
        let bytes = archive.store.get(&path).await?.bytes().await?;
        let name = path.filename().unwrap_or_default();
        if name.ends_with(".released.json") {
            let r: Release = serde_json::from_slice(&bytes).with_context(|| format!("hold release {path}"))?;
            released.insert(r.id.clone(), r);
        } else {
            placed.push(serde_json::from_slice::<Hold>(&bytes).with_context(|| format!("hold {path}"))?);
        }
    }
    Ok(placed
        .into_iter()
        .map(|h| {
            let r = released.remove(&h.id);
            (h, r)
        })
        .collect())
}

/// The holds in force.
pub async fn active_holds(archive: &Archive) -> anyhow::Result<Vec<Hold>> {
    Ok(holds(archive).await?.into_iter().filter(|(_, r)| r.is_none()).map(|(h, _)| h).collect())
}

/// Places a hold (written once, create-only).
pub async fn add_hold(archive: &Archive, stream: &str, prefix: &str, reason: &str) -> anyhow::Result<Hold> {
    anyhow::ensure!(!reason.trim().is_empty(), "a hold needs a reason");
    anyhow::ensure!(
        !stream.is_empty() && !stream.contains('/') && !stream.starts_with('.'),
        "`{stream}` is not a stream name"
    );
    let hold = Hold {
        id: uuid::Uuid::now_v7().to_string(),
        stream: stream.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        reason: reason.to_string(),
        created: now_text(),
        by: user(),
    };
    let name = format!("{}.json", hold.id);
    let path = archive.path_of(["_state", HOLDS, name.as_str()]);
    commit_single(archive, &path, serde_json::to_vec_pretty(&hold)?.into()).await?;
    Ok(hold)
}

/// Releases an active hold.
pub async fn release_hold(archive: &Archive, id: &str, reason: &str) -> anyhow::Result<(Hold, Release)> {
    anyhow::ensure!(!reason.trim().is_empty(), "releasing a hold needs a reason");
    let (hold, released) = holds(archive)
        .await?
        .into_iter()
        .find(|(h, _)| h.id == id)
        .with_context(|| format!("no hold `{id}` in {} (see `sluice hold list`)", archive.location))?;
    if let Some(r) = released {
        anyhow::bail!("hold `{id}` was already released at {} by {}", r.released, r.by);
    }
    let release = Release { id: id.to_string(), reason: reason.to_string(), released: now_text(), by: user() };
    let name = format!("{id}.released.json");
    let path = archive.path_of(["_state", HOLDS, name.as_str()]);
    commit_single(archive, &path, serde_json::to_vec_pretty(&release)?.into()).await?;
    Ok((hold, release))
}

/// A file that has outlived its stream's policy.
#[derive(Debug, Clone)]
pub struct Expired {
    pub stream: String,
    /// Its entry in the stream's log.
    pub entry: LogEntry,
    pub policy: Policy,
    /// µs: every event of the file is older than this.
    pub cutoff: i64,
}

/// A quarantine file that has outlived its stream's policy (by the time it
/// was written: quarantined records may have no event time).
#[derive(Debug, Clone)]
pub struct ExpiredQuarantine {
    pub stream: String,
    pub path: String,
    /// Its entry in the stream's log (none for a file the log does not name).
    pub entry: Option<QuarantineEntry>,
    pub written: i64,
    pub policy: Policy,
    pub cutoff: i64,
}

/// What retention would do now.
#[derive(Debug, Default)]
pub struct Plan {
    pub expire: Vec<Expired>,
    pub quarantine: Vec<ExpiredQuarantine>,
    /// Files past their policy that a hold keeps: (path, hold id).
    pub held: Vec<(String, String)>,
    pub holds: Vec<Hold>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.expire.is_empty() && self.quarantine.is_empty()
    }
}

/// Finds what has outlived its policy, stream by stream (`policies`: the
/// streams that have one; others are kept forever).
pub async fn plan(archive: &Archive, policies: &BTreeMap<String, Policy>, now: DateTime<Utc>) -> anyhow::Result<Plan> {
    let holds = active_holds(archive).await?;
    let mut plan = Plan::default();
    for (stream, policy) in policies {
        let cutoff = policy.period.cutoff(now).timestamp_micros();
        let entries = read_entries(archive, stream).await?;
        let mut logged = live_quarantine(&entries);
        for file in live_files(entries) {
            if file.time_max >= cutoff {
                continue;
            }
            match holds.iter().find(|h| h.covers(&file.path)) {
                Some(hold) => plan.held.push((file.path.clone(), hold.id.clone())),
                None => {
                    plan.expire.push(Expired { stream: stream.clone(), entry: file, policy: policy.clone(), cutoff })
                }
            }
        }
        let prefix = archive.path_of(["_quarantine", stream.as_str()]);
        let mut files: Vec<_> = archive.store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
        files.sort();
        for file in files {
            let path = archive.relative(&file);
            let Some(written) = quarantine_written(file.filename().unwrap_or_default()) else { continue };
            if written >= cutoff {
                continue;
            }
            match holds.iter().find(|h| h.stream == *stream) {
                Some(hold) => plan.held.push((path, hold.id.clone())),
                None => plan.quarantine.push(ExpiredQuarantine {
                    stream: stream.clone(),
                    entry: logged.remove(&path),
                    path,
                    written,
                    policy: policy.clone(),
                    cutoff,
                }),
            }
        }
    }
    plan.holds = holds;
    Ok(plan)
}

/// When a quarantine file was written: the time in its UUIDv7 name
/// (`<stream>-<uuid>.ndjson`), in µs.
pub fn quarantine_written(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".ndjson")?;
    let uuid = uuid::Uuid::parse_str(stem.get(stem.len().checked_sub(36)?..)?).ok()?;
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some(secs as i64 * 1_000_000 + i64::from(nanos / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_in_days_and_calendar_months() {
        assert_eq!(Period::parse("400d"), Ok(Period::Days(400)));
        assert_eq!(Period::parse("30 days"), Ok(Period::Days(30)));
        assert_eq!(Period::parse("2w"), Ok(Period::Days(14)));
        assert_eq!(Period::parse("13 months"), Ok(Period::Months(13)));
        assert_eq!(Period::parse("6 years"), Ok(Period::Months(72)));
        assert_eq!(Period::parse("7Y"), Ok(Period::Months(84)));
        for bad in ["", "d", "0d", "12", "3 fortnights", "-1d", "1.5y", "99999999999d"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Period::parse("6 years").unwrap().to_string(), "72 months");
    }

    #[test]
    fn cutoffs_count_calendar_months_and_clamp_to_month_end() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(Period::Days(400).cutoff(t("2026-11-26T10:00:00Z")), t("2025-10-22T10:00:00Z"));
        assert_eq!(Period::Months(13).cutoff(t("2026-11-26T10:00:00Z")), t("2025-10-26T10:00:00Z"));
        // 31 March minus one month is the last day of February
        assert_eq!(Period::Months(1).cutoff(t("2026-03-31T00:00:00Z")), t("2026-02-28T00:00:00Z"));
        // six years back from a leap day
        assert_eq!(Period::Months(72).cutoff(t("2028-02-29T12:00:00Z")), t("2022-02-28T12:00:00Z"));
        // an event may go the moment its period has passed, and not before
        let event = t("2025-10-26T10:00:00Z");
        assert_eq!(Period::Months(13).after(event), t("2026-11-26T10:00:00Z"));
        // no period, however long, overflows the calendar
        assert_eq!(Period::Days(u32::MAX).cutoff(event), DateTime::<Utc>::MIN_UTC);
        assert_eq!(Period::Months(u32::MAX).after(event), DateTime::<Utc>::MAX_UTC);
        assert!(Period::Months(13).cutoff(Period::Months(13).after(event)) >= event);
    }

    #[test]
    fn holds_cover_paths_under_their_prefix_only() {
        let hold = |prefix: &str| Hold {
            id: "h".into(),
            stream: "auth".into(),
            prefix: prefix.into(),
            reason: "case 7".into(),
            created: String::new(),
            by: String::new(),
        };
        let path = "auth/event_day=20260105/hour=03/auth-0-x.parquet";
        assert!(hold("").covers(path));
        assert!(hold("event_day=202601").covers(path));
        assert!(hold("event_day=20260105/hour=03").covers(path));
        assert!(!hold("event_day=20260106").covers(path));
        assert!(!hold("").covers("authz/event_day=20260105/hour=03/x.parquet"));
    }

    #[test]
    fn quarantine_files_are_dated_by_their_uuidv7() {
        let before = Utc::now().timestamp_micros();
        let name = format!("auth-{}.ndjson", uuid::Uuid::now_v7());
        let written = quarantine_written(&name).unwrap();
        assert!(written >= before - 1_000 && written <= Utc::now().timestamp_micros(), "{written}");
        assert_eq!(quarantine_written("auth-notauuid.ndjson"), None);
    }
}

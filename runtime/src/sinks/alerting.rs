//! Alert rules: conditions over the events as they flow, counted in a
//! sliding window of event time per key, that raise a finding when they reach
//! a threshold — e.g. five failed logins of one user within five minutes, any
//! read of a secret by a person, any change to audit configuration.
//!
//! Workers evaluate each rule's condition on every checked event (before
//! routes and filters: a filtered event still happened) and send the sink the
//! hits; the sink, which applies each source's batches in order, keeps the
//! windows. A rule with `threshold = 1` fires on every hit; above that it
//! fires when a key's window reaches the threshold, and again only after the
//! window has fallen back below it. The windows are saved in every commit
//! record and restored at start, so a restart neither forgets a half-full
//! window nor, since the sources resume from the same commit, counts an
//! event twice.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One event that matched a rule, with what a responder needs to look it up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub rule: usize,
    pub key: String,
    /// Event time, µs.
    pub time: i64,
    /// `metadata_uid`, actor, operation, source address and source of the event.
    pub event: BTreeMap<String, String>,
}

/// A rule as the sink applies it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// The field whose value keys the windows (`None`: one window).
    pub per: Option<String>,
    pub threshold: usize,
    pub window_us: i64,
    pub severity_id: i64,
}

/// A rule's window for one key.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Window {
    pub hits: VecDeque<Hit>,
    /// Fired, and not yet back below the threshold.
    pub fired: bool,
}

/// A rule that fired: the rule, the key, how many events its window held,
/// and (up to 100 of) those events.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: String,
    pub per: Option<String>,
    pub key: String,
    pub severity_id: i64,
    pub window_secs: i64,
    pub count: usize,
    pub hits: Vec<Hit>,
}

/// Every rule's windows.
#[derive(Debug, Default)]
pub struct Alerting {
    pub rules: Vec<Rule>,
    /// Per (rule name, key): kept by name, so a saved state survives rules
    /// being added or reordered.
    windows: BTreeMap<(String, String), Window>,
    /// Per rule name: the newest event time it saw (not counting times more
    /// than an hour ahead of the clock), which ages its windows out.
    newest: BTreeMap<String, i64>,
}

/// Event times further ahead of the clock than this do not age windows out
/// (a device clock set years ahead must not empty every window).
const AHEAD_US: i64 = 3_600_000_000;

/// Events a finding lists at most (the count is always exact).
const LISTED: usize = 100;

impl Alerting {
    pub fn new(rules: Vec<Rule>) -> Alerting {
        Alerting { rules, windows: BTreeMap::new(), newest: BTreeMap::new() }
    }

    fn saw(&mut self, rule: &str, time: i64) {
        if time <= crate::sources::now_micros() + AHEAD_US {
            let newest = self.newest.entry(rule.to_string()).or_insert(i64::MIN);
            *newest = (*newest).max(time);
        }
    }

    /// Adds a hit; returns the finding if the rule fires.
    pub fn hit(&mut self, hit: Hit) -> Option<Fired> {
        let rule = self.rules[hit.rule].clone();
        self.saw(&rule.name, hit.time);
        let window = self.windows.entry((rule.name.clone(), hit.key.clone())).or_default();
        let newest = window.hits.iter().map(|h| h.time).max().unwrap_or(i64::MIN).max(hit.time);
        window.hits.push_back(hit);
        window.hits.retain(|h| h.time > newest - rule.window_us);
        // the newest `threshold` hits tell whether the window is at the
        // threshold: keep no more (memory, and the commit record's size)
        while window.hits.len() > rule.threshold {
            window.hits.pop_front();
        }
        let count = window.hits.len();
        let reached = count >= rule.threshold;
        let fire = reached && (rule.threshold == 1 || !window.fired);
        window.fired = reached;
        if rule.threshold == 1 {
            // every hit is a finding; nothing to remember
            let hits: Vec<Hit> = window.hits.drain(..).collect();
            window.fired = false;
            return fire.then(|| Self::fired(&rule, count, hits));
        }
        let hits: Vec<Hit> = window.hits.iter().rev().take(LISTED).rev().cloned().collect();
        fire.then(|| Self::fired(&rule, count, hits))
    }

    fn fired(rule: &Rule, count: usize, hits: Vec<Hit>) -> Fired {
        Fired {
            rule: rule.name.clone(),
            per: rule.per.clone(),
            key: hits.last().map(|h| h.key.clone()).unwrap_or_default(),
            severity_id: rule.severity_id,
            window_secs: rule.window_us / 1_000_000,
            count,
            hits,
        }
    }

    /// The windows worth keeping (those that still hold a hit within their
    /// rule's window of the newest event that rule saw), to save with a commit.
    pub fn state(&mut self) -> Vec<((String, String), Window)> {
        let spans: BTreeMap<&str, i64> = self.rules.iter().map(|r| (r.name.as_str(), r.window_us)).collect();
        let newest = &self.newest;
        self.windows.retain(|(rule, _), w| {
            let span = spans.get(rule.as_str()).copied().unwrap_or(0);
            let newest = newest.get(rule).copied().unwrap_or(i64::MIN);
            w.hits.iter().any(|h| h.time > newest.saturating_sub(span))
        });
        self.windows.iter().map(|(k, w)| (k.clone(), w.clone())).collect()
    }

    /// Restores saved windows (of rules that still exist, renumbered).
    pub fn restore(&mut self, saved: Vec<((String, String), Window)>) {
        for ((name, key), mut window) in saved {
            let Some(index) = self.rules.iter().position(|r| r.name == name) else { continue };
            window.hits.iter_mut().for_each(|h| h.rule = index);
            for h in &window.hits {
                self.saw(&name, h.time);
            }
            self.windows.insert((name, key), window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    fn alerting(threshold: usize) -> Alerting {
        Alerting::new(vec![Rule {
            name: "brute-force".into(),
            per: Some("actor_user_name".into()),
            threshold,
            window_us: 5 * MINUTE,
            severity_id: 4,
        }])
    }

    fn hit(key: &str, minute: i64) -> Hit {
        Hit { rule: 0, key: key.into(), time: minute * MINUTE, event: BTreeMap::new() }
    }

    #[test]
    fn fires_once_per_window_that_reaches_the_threshold() {
        let mut a = alerting(5);
        let fired: Vec<bool> = [0, 1, 2, 3, 4, 4, 4].iter().map(|&m| a.hit(hit("alice", m)).is_some()).collect();
        assert_eq!(fired, [false, false, false, false, true, false, false]);
        // spread over more than the window: never five within five minutes
        let spread: Vec<bool> = [0, 2, 4, 6, 8, 10].iter().map(|&m| a.hit(hit("bob", m)).is_some()).collect();
        assert!(spread.iter().all(|f| !f));
        // alice's window empties, then fills again: a second finding
        let again: Vec<bool> = [20, 21, 22, 23, 24].iter().map(|&m| a.hit(hit("alice", m)).is_some()).collect();
        assert_eq!(again, [false, false, false, false, true]);
    }

    #[test]
    fn the_state_survives_a_save_and_restore() {
        let mut a = alerting(5);
        for m in 0..3 {
            assert!(a.hit(hit("alice", m)).is_none());
        }
        let saved = a.state();
        let mut b = alerting(5);
        b.restore(saved);
        assert!(b.hit(hit("alice", 3)).is_none());
        let fired = b.hit(hit("alice", 4)).expect("fires after the restart");
        assert_eq!(fired.hits.len(), 5);
    }

    #[test]
    fn a_future_dated_event_does_not_empty_other_windows() {
        let mut a = alerting(5);
        let now = crate::sources::now_micros() / MINUTE;
        for m in 0..3 {
            assert!(a.hit(hit("alice", now + m)).is_none());
        }
        assert!(a.hit(hit("mallory", now + 5 * 365 * 24 * 60)).is_none()); // a clock set years ahead
        a.state();
        assert!(a.hit(hit("alice", now + 3)).is_none());
        let fired = a.hit(hit("alice", now + 4)).expect("alice's window was kept");
        assert_eq!(fired.count, 5);
    }

    #[test]
    fn a_window_keeps_no_more_than_its_threshold_and_counts_exactly() {
        let mut a = Alerting::new(vec![Rule {
            name: "many".into(),
            per: None,
            threshold: 150,
            window_us: 60 * MINUTE,
            severity_id: 3,
        }]);
        let fired: Vec<Fired> = (0..400).filter_map(|i| a.hit(hit("", i / 10))).collect();
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].count, fired[0].hits.len()), (150, 100));
        assert!(a.state().iter().all(|(_, w)| w.hits.len() <= 150));
    }

    #[test]
    fn threshold_one_fires_on_every_hit() {
        let mut a = alerting(1);
        assert!(a.hit(hit("alice", 0)).is_some());
        assert!(a.hit(hit("alice", 0)).is_some());
    }
}

//! `sluice top`: a running pipeline's rates, from two samples of its
//! `/metrics` (the admin listener), as a table that refreshes.

use anyhow::Context;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Samples by metric name, then by label set (`source="a"`).
type Sample = BTreeMap<String, BTreeMap<String, f64>>;

/// Parses Prometheus text (comments skipped).
pub fn parse(text: &str) -> Sample {
    let mut sample = Sample::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        sample.entry(name.to_string()).or_default().insert(labels.to_string(), value);
    }
    sample
}

/// The value of label `key` in a label set.
fn label<'a>(labels: &'a str, key: &str) -> &'a str {
    labels.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"')).unwrap_or("")
}

/// The table of rates between two samples `secs` apart.
pub fn table(before: &Sample, after: &Sample, secs: f64) -> String {
    let value = |s: &Sample, name: &str, labels: &str| s.get(name).and_then(|m| m.get(labels)).copied().unwrap_or(0.0);
    let rate = |name: &str, labels: &str| (value(after, name, labels) - value(before, name, labels)).max(0.0) / secs;
    let delta = |name: &str, labels: &str| (value(after, name, labels) - value(before, name, labels)).max(0.0);
    let keys = |name: &str| after.get(name).map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {:>12} {:>12} {:>12}", "source", "read/s", "written/s", "quarantined");
    for labels in keys("sluice_records_read_total") {
        let _ = writeln!(
            out,
            "{:<24} {:>12.0} {:>12.0} {:>12.0}",
            label(&labels, "source"),
            rate("sluice_records_read_total", &labels),
            rate("sluice_events_written_total", &labels),
            value(after, "sluice_events_quarantined_total", &labels)
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:>12} {:>12} {:>8} {:>8} {:>14}",
        "stage", "in/s", "out/s", "errors", "faults", "ms/call"
    );
    for labels in keys("sluice_stage_calls_total") {
        let calls = delta("sluice_stage_call_seconds_count", &labels);
        let millis = if calls > 0.0 { delta("sluice_stage_call_seconds_sum", &labels) / calls * 1e3 } else { 0.0 };
        let _ = writeln!(
            out,
            "{:<24} {:>12.0} {:>12.0} {:>8.0} {:>8.0} {:>14.2}",
            label(&labels, "stage"),
            rate("sluice_stage_inputs_total", &labels),
            rate("sluice_stage_outputs_total", &labels),
            value(after, "sluice_stage_errors_total", &labels),
            value(after, "sluice_stage_faults_total", &labels),
            millis
        );
    }
    let http = keys("sluice_spool_unread_bytes");
    if !http.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:>12} {:>14}", "http source", "accepted/s", "spool backlog");
        for labels in http {
            let _ = writeln!(
                out,
                "{:<24} {:>12.0} {:>12.0} B",
                label(&labels, "source"),
                rate("sluice_http_records_accepted_total", &labels),
                value(after, "sluice_spool_unread_bytes", &labels)
            );
        }
    }
    let committed = value(after, "sluice_last_commit_timestamp_seconds", "");
    let now = crate::sources::now_micros() as f64 / 1e6;
    let _ = writeln!(out, "\nseconds since the last commit: {:.0}", (now - committed).max(0.0));
    out
}

fn fetch(runtime: &tokio::runtime::Runtime, url: &str) -> anyhow::Result<Sample> {
    let text = runtime
        .block_on(async { reqwest::get(url).await?.error_for_status()?.text().await })
        .with_context(|| format!("cannot read {url}"))?;
    Ok(parse(&text))
}

pub fn run(admin: &str, interval: u64, iterations: Option<u64>) -> anyhow::Result<ExitCode> {
    let base = if admin.contains("://") { admin.to_string() } else { format!("http://{admin}") };
    let url = format!("{}/metrics", base.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut before = fetch(&runtime, &url)?;
    let mut taken = Instant::now();
    let mut printed = 0;
    while iterations.is_none_or(|n| printed < n) {
        std::thread::sleep(Duration::from_secs(interval.max(1)));
        let after = fetch(&runtime, &url)?;
        let secs = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        if terminal {
            print!("\x1b[2J\x1b[H");
        }
        println!("{url}, last {secs:.1}s\n\n{}", table(&before, &after, secs));
        before = after;
        printed += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice tap`: prints what the admin listener's `/tap` streams.
pub fn tap(
    admin: &str,
    before: Option<&str>,
    after: Option<&str>,
    select: Option<&str>,
    limit: Option<u64>,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let base = if admin.contains("://") { admin.to_string() } else { format!("http://{admin}") };
    let mut url = url::Url::parse(&format!("{}/tap", base.trim_end_matches('/')))?;
    {
        let mut query = url.query_pairs_mut();
        match (before, after) {
            (Some(stage), _) => query.append_pair("before", stage),
            (None, Some(stage)) => query.append_pair("after", stage),
            (None, None) => anyhow::bail!("give --before STAGE or --after STAGE"),
        };
        if let Some(select) = select {
            query.append_pair("where", select);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut response = reqwest::get(url.clone()).await.with_context(|| format!("cannot reach {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            anyhow::bail!("{status}: {}", response.text().await.unwrap_or_default());
        }
        let (mut shown, mut pending) = (0u64, Vec::new());
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = response.chunk().await? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                out.write_all(&line)?;
                shown += 1;
                if limit.is_some_and(|l| shown >= l) {
                    out.flush()?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            out.flush()?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_difference_of_two_samples() {
        let before = parse(
            "# HELP x\nsluice_records_read_total{source=\"a\"} 100\nsluice_events_written_total{source=\"a\"} 90\n\
             sluice_stage_calls_total{stage=\"p\"} 1\nsluice_stage_inputs_total{stage=\"p\"} 100\n\
             sluice_stage_call_seconds_count{stage=\"p\"} 1\nsluice_stage_call_seconds_sum{stage=\"p\"} 0.5\n",
        );
        let committed = crate::sources::now_micros() as f64 / 1e6 - 4.2;
        let after = parse(
            &("sluice_records_read_total{source=\"a\"} 300\nsluice_events_written_total{source=\"a\"} 290\n\
               sluice_stage_calls_total{stage=\"p\"} 3\nsluice_stage_inputs_total{stage=\"p\"} 300\n\
               sluice_stage_call_seconds_count{stage=\"p\"} 3\nsluice_stage_call_seconds_sum{stage=\"p\"} 0.7\n"
                .to_string()
                + &format!("sluice_last_commit_timestamp_seconds {committed}\n")),
        );
        let text = table(&before, &after, 2.0);
        let row =
            |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap().split_whitespace().collect::<Vec<_>>();
        assert_eq!(row("a "), ["a", "100", "100", "0"]);
        assert_eq!(row("p "), ["p", "100", "0", "0", "0", "100.00"]);
        assert!(text.contains("seconds since the last commit: 4"), "{text}");
    }
}

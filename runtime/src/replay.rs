//! `sluice quarantine replay`: quarantined records run again through the
//! (fixed) pipeline. A record leaves quarantine only in the commit that lands
//! it: the replay makes one commit, at its end, which writes the events, any
//! records that fail again (as new quarantine records), and the lines that
//! could not be replayed, and records the replayed quarantine files as
//! retired — deleted after the commit record, or by recovery if a crash comes
//! first. A crash before that commit leaves the quarantine as it was.

use crate::integrity::log::{QuarantineEntry, logged_quarantine, read_quarantine};
use crate::sinks::Archive;
use crate::sources::{Batcher, Source};
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a replay takes out of quarantine and what it puts back as it was.
#[derive(Debug, Default)]
pub struct ReplayInput {
    /// Per source (pipeline order): the original records to run again, with
    /// the tenant they were sent for (http sources).
    pub records: Vec<Vec<(Option<String>, Vec<u8>)>>,
    /// Quarantine files read (their log entries, per stream index): retired by the replay's commit.
    pub retire: Vec<(usize, QuarantineEntry)>,
    /// Lines of those files that are not replayed, per stream index.
    pub keep: Vec<(usize, String)>,
    /// Why lines were kept, with counts.
    pub kept: std::collections::BTreeMap<String, u64>,
}

/// Reads every quarantine file of the pipeline's streams. A line is replayed
/// if its source is in the pipeline (and is `only`, if given) and it holds the
/// record (`record` text or `record_hex`); lines whose record was withheld by
/// the quarantine redactor or decoded lossily, lines that are one event of a
/// record that became several (`partial`), and lines of other sources are
/// kept. A record the redactor masked is replayed masked: the original never
/// reached the archive.
pub async fn collect(
    archive: &Archive,
    streams: &[String],
    sources: &[(String, usize)],
    only: Option<&str>,
) -> anyhow::Result<ReplayInput> {
    let mut input = ReplayInput { records: vec![Vec::new(); sources.len()], ..ReplayInput::default() };
    for (stream_index, stream) in streams.iter().enumerate() {
        for file in logged_quarantine(archive, stream).await? {
            let bytes = read_quarantine(archive, &file).await?;
            let text =
                std::str::from_utf8(&bytes).with_context(|| format!("quarantine file {} is not UTF-8", file.path))?;
            input.retire.push((stream_index, file));
            for line in text.lines().filter(|l| !l.is_empty()) {
                let mut keep = |why: &str| {
                    input.keep.push((stream_index, line.to_string()));
                    *input.kept.entry(why.to_string()).or_default() += 1;
                };
                let Ok(q) = serde_json::from_str::<serde_json::Value>(line) else {
                    keep("not a quarantine record");
                    continue;
                };
                let source = q["source"].as_str().unwrap_or_default();
                let Some(index) = sources.iter().position(|(name, _)| name == source) else {
                    keep("its source is not in this pipeline");
                    continue;
                };
                if only.is_some_and(|o| o != source) {
                    keep("another source (--source)");
                    continue;
                }
                match replayable(&q) {
                    Ok(record) => input.records[index].push((q["tenant"].as_str().map(str::to_string), record)),
                    Err(why) => keep(why),
                }
            }
        }
    }
    Ok(input)
}

/// The original record of a quarantine line, or why it cannot be replayed:
/// withheld by the redactor, kept only as lossy text, or one rejected part of
/// a record whose other events were written (replaying it would write them
/// again).
pub fn replayable(q: &serde_json::Value) -> Result<Vec<u8>, &'static str> {
    if q["partial"] == true {
        return Err(
            "part of a record whose other events or copies were written (replaying the record would duplicate them)",
        );
    }
    if q["record_lossy"] == true {
        return Err("the record was not valid UTF-8 and is kept only as lossy text");
    }
    match (q["record"].as_str(), q["record_hex"].as_str()) {
        (Some(text), _) => Ok(text.as_bytes().to_vec()),
        (None, Some(h)) => hex::decode(h).map_err(|_| "record_hex is not hex"),
        (None, None) => Err("the record was withheld (only its hash was kept)"),
    }
}

/// Hands a source's quarantined records to the pipeline, each with its
/// tenant (so a replayed record lands in the tenant it was sent for, not the
/// one its text claims). They have no position: the replay's single commit
/// is what makes it exactly once.
pub struct ReplaySource {
    pub records: Vec<(Option<String>, Vec<u8>)>,
}

impl Source for ReplaySource {
    fn run(self: Box<Self>, mut batcher: Batcher, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        for (tenant, record) in self.records {
            if stop.load(Ordering::Relaxed) || !batcher.set_tenant(tenant) || !batcher.push_record(record) {
                break;
            }
        }
        batcher.flush();
        Ok(())
    }
}

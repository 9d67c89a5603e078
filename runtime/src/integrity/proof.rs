//! Inclusion proofs of one event, for an auditor: event → its file's events
//! root → the stream's log → a signed checkpoint. `prove` builds one from an
//! archive; `check` verifies one offline, with nothing but the proof and the
//! trusted keys.

use super::canonical::Canonical;
use super::log::{Entry, LogEntry, checkpoints_prefix, entries_prefix, entry_index};
use super::merkle::{self, Hash};
use super::note::{Checkpoint, NoteVerifier};
use crate::sinks::Archive;
use anyhow::{Context, bail};
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

/// A self-contained proof that one event is in a signed archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventProof {
    pub version: u32,
    /// The event's canonical text: what its hash covers.
    pub event: String,
    /// Its row within the file.
    pub event_index: u64,
    /// Inclusion proof of the event hash in the entry's `events_root` (hex).
    pub event_proof: Vec<String>,
    /// The log entry of the file, exactly as stored.
    pub entry: String,
    pub entry_index: u64,
    /// Inclusion proof of the entry in the checkpoint's tree (hex).
    pub log_proof: Vec<String>,
    /// The signed checkpoint.
    pub checkpoint: String,
}

fn hashes_hex(h: &[Hash]) -> Vec<String> {
    h.iter().map(hex::encode).collect()
}

fn parse_hashes(h: &[String]) -> anyhow::Result<Vec<Hash>> {
    h.iter()
        .map(|x| {
            let bytes = hex::decode(x).context("proof hash is not hex")?;
            bytes.try_into().map_err(|_| anyhow::anyhow!("proof hash is not 32 bytes"))
        })
        .collect()
}

/// Finds the event (`seq` number, or `metadata_uid`) in `stream` and proves it
/// against the newest checkpoint that covers its file.
pub async fn prove(
    archive: &Archive,
    stream: &str,
    event_id: &str,
    keys: &[NoteVerifier],
) -> anyhow::Result<EventProof> {
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    let listing: Vec<_> =
        archive.store.list(Some(&archive.path_of(entries_prefix(stream).split('/')))).try_collect().await?;
    for meta in listing {
        let Some(index) = entry_index(meta.location.filename().unwrap_or_default()) else { continue };
        entries.push((index, archive.store.get(&meta.location).await?.bytes().await?.to_vec()));
    }
    entries.sort();
    anyhow::ensure!(!entries.is_empty(), "stream `{stream}` has no integrity log in this archive");
    let leaves: Vec<Hash> = entries.iter().map(|(_, b)| merkle::leaf_hash(b)).collect();
    let seq: Option<i64> = event_id.parse().ok();
    let parsed: Vec<Entry> = entries.iter().map(|(_, b)| serde_json::from_slice(b)).collect::<Result<_, _>>()?;
    for ((index, bytes), parsed_entry) in entries.iter().zip(&parsed) {
        let Entry::File(entry) = parsed_entry else { continue };
        if seq.is_some_and(|s| s < entry.seq_first || s > entry.seq_last) {
            continue;
        }
        let retirement = parsed.iter().find_map(|e| match e {
            Entry::Retired(r) if r.retires == *index => Some(r),
            _ => None,
        });
        if let Some(r) = retirement {
            if seq.is_some() {
                bail!(
                    "event {event_id} of stream `{stream}` was in {}, which retention took out (log entry {}, policy {}, cutoff {})",
                    r.path,
                    r.index,
                    r.policy,
                    r.cutoff
                );
            }
            continue;
        }
        let file = archive.store.get(&archive.path_from_relative(&entry.path)?).await?.bytes().await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        let mut hashes: Vec<Hash> = Vec::new();
        let mut found: Option<(u64, String)> = None;
        for batch in reader {
            let batch = batch?;
            let seqs = batch.column_by_name("seq").context("no seq column")?.as_primitive::<Int64Type>();
            let uids = batch.column_by_name("metadata_uid").context("no metadata_uid column")?.as_string::<i32>();
            let canonical = Canonical::new(&batch);
            for row in 0..batch.num_rows() {
                let text = canonical.text(row);
                let hit = match seq {
                    Some(s) => seqs.value(row) == s,
                    None => uids.is_valid(row) && uids.value(row) == event_id,
                };
                if hit && found.is_none() {
                    found = Some((hashes.len() as u64, text.clone()));
                }
                hashes.push(merkle::leaf_hash(text.as_bytes()));
            }
        }
        let Some((event_index, event)) = found else { continue };
        // the newest checkpoint that covers this entry
        let mut best: Option<(Checkpoint, String)> = None;
        let checkpoints: Vec<_> =
            archive.store.list(Some(&archive.path_of(checkpoints_prefix(stream).split('/')))).try_collect().await?;
        for meta in checkpoints {
            let text = String::from_utf8(archive.store.get(&meta.location).await?.bytes().await?.to_vec())?;
            let Ok((c, _)) = Checkpoint::open(&text, keys) else { continue };
            if c.size > *index && c.size <= leaves.len() as u64 && best.as_ref().is_none_or(|(b, _)| c.size > b.size) {
                best = Some((c, text));
            }
        }
        let (checkpoint, text) = best.context("no checkpoint signed by a trusted key covers this event's file yet")?;
        return Ok(EventProof {
            version: 1,
            event,
            event_index,
            event_proof: hashes_hex(&merkle::inclusion_proof(event_index as usize, &hashes)),
            entry: String::from_utf8(bytes.clone())?,
            entry_index: *index,
            log_proof: hashes_hex(&merkle::inclusion_proof(*index as usize, &leaves[..checkpoint.size as usize])),
            checkpoint: text,
        });
    }
    bail!("no event `{event_id}` in stream `{stream}` (give its seq number or metadata_uid)")
}

/// What a valid proof establishes.
#[derive(Debug)]
pub struct Proven {
    pub origin: String,
    pub size: u64,
    pub signed_by: String,
    pub path: String,
    pub seq: Option<i64>,
}

/// Verifies a proof offline against trusted keys.
pub fn check(proof_text: &str, keys: &[NoteVerifier]) -> anyhow::Result<Proven> {
    let proof: EventProof = serde_json::from_str(proof_text).context("not a sluice event proof")?;
    anyhow::ensure!(proof.version == 1, "unknown proof version {}", proof.version);
    let event: serde_json::Value = serde_json::from_str(&proof.event).context("event is not JSON")?;
    let entry: LogEntry = serde_json::from_str(&proof.entry).context("entry is not a log entry")?;
    anyhow::ensure!(
        entry.index == proof.entry_index,
        "entry says index {} but the proof says {}",
        entry.index,
        proof.entry_index
    );
    let events_root: Hash = hex::decode(&entry.events_root)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("entry's events_root is not a hash")?;
    let event_hash = merkle::leaf_hash(proof.event.as_bytes());
    if !merkle::verify_inclusion(
        proof.event_index,
        entry.rows,
        &event_hash,
        &parse_hashes(&proof.event_proof)?,
        &events_root,
    ) {
        bail!("the event is not in the file's events root (event, index or event proof altered)");
    }
    let seq = event["seq"].as_i64();
    if let Some(s) = seq {
        anyhow::ensure!(s >= entry.seq_first && s <= entry.seq_last, "event seq {s} is outside the file's range");
    }
    let (checkpoint, signed_by) = Checkpoint::open(&proof.checkpoint, keys).context("checkpoint")?;
    let leaf = merkle::leaf_hash(proof.entry.as_bytes());
    if !merkle::verify_inclusion(
        proof.entry_index,
        checkpoint.size,
        &leaf,
        &parse_hashes(&proof.log_proof)?,
        &checkpoint.root,
    ) {
        bail!("the file's entry is not in the signed log (entry, index or log proof altered)");
    }
    Ok(Proven { origin: checkpoint.origin, size: checkpoint.size, signed_by, path: entry.path, seq })
}

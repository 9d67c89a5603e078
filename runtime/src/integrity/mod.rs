//! Tamper evidence for the archive.
//!
//! Every event row gets an `event_hash` (RFC 9162 leaf hash of its canonical
//! text, `canonical.rs`); every Parquet file is recorded in its stream's
//! integrity log (`log.rs`) with its SHA-256, size, rows, the Merkle root of its
//! event hashes, its `seq` and time ranges, the schema hash and the plugins that
//! produced it; the log's Merkle tree (`merkle.rs`) is signed in checkpoints
//! (`note.rs`, Ed25519, C2SP signed-note). `verify.rs` re-derives all of it.

pub mod canonical;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod verify;

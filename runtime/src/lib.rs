//! sluice: an audit-log pipeline.
//!
//! ```text
//!  sources ──► batches of raw records ──► parser plugin ──► transform plugins ──► schema check ──► sink
//!  (files, stdin;    (sources/)             (Wasm, stage.rs + wasm/)               (schema.rs)      (sinks/)
//!   one thread each)                               │ fault / error                      │ bad type     │
//!                                                  ▼                                    ▼              ▼
//!                                              quarantine (_quarantine/<stream>/*.ndjson)   Parquet per stream and
//!                                                                                       partition, committed whole
//! ```
//!
//! A pipeline file (`config.rs`) names sources, plugin stages and a sink.
//! Sources read on their own threads and hand batches to a pool of workers over
//! a bounded channel; each worker owns one instance of every plugin, runs the
//! source's chain, checks the events against the typed schema and splits them by
//! partition; one sink thread orders the batches, has its pool of threads hash
//! the events and encode Parquet, and commits files to the object store.

pub mod bundled;
pub mod config;
pub mod http;
pub mod integrity;
#[cfg(feature = "native-plugins")]
pub mod native;
pub mod pipeline;
pub mod plugin_dev;
pub mod plugin_test;
pub mod replay;
pub mod retention;
pub mod route;
pub mod schema;
pub mod self_audit;
pub mod sinks;
pub mod sources;
pub mod stage;
pub mod syslog;
pub mod telemetry;
pub mod top;
pub mod wasm;

/// The cores this process may run on (2 when that cannot be known): the
/// default number of workers, and the sink's threads.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

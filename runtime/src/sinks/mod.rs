//! Where events go: Parquet files per stream and partition, and the quarantine.

pub mod alerting;
pub mod commit;
mod parquet;
mod store;
pub mod volume;

pub use parquet::{IntegritySettings, Sink, SinkMsg, SinkSettings, SinkStats, writer_properties};
pub use store::{
    Archive, Conflict, LockMode, commit_file, commit_single, commit_staged, is_cloud, lock_object, retrying,
};

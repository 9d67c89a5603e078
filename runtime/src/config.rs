//! The pipeline file: what a user writes (`PipelineConfig`), how it is read
//! (environment interpolation, then TOML with every unknown key rejected), and
//! the checks that need no I/O. Building the running pipeline is `pipeline.rs`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A whole pipeline: named sources, named stages, and one sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where raw records come from, by name. Each source names the chain of
    /// stages its records go through and the stream its events land in.
    pub sources: BTreeMap<String, SourceConfig>,
    /// The plugin stages, by name. A chain refers to them by these names.
    #[serde(default)]
    pub stages: BTreeMap<String, StageConfig>,
    /// Per-stream settings, by stream name (optional).
    #[serde(default)]
    pub streams: BTreeMap<String, StreamConfig>,
    /// Where events are written.
    pub sink: SinkConfig,
    /// Tuning of the runtime itself.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Tamper evidence. The integrity log is always written; checkpoints are
    /// signed when a key is given.
    #[serde(default)]
    pub integrity: IntegrityConfig,
    /// How long streams are kept (see `[streams.<name>] retention`).
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Routes, by name: a source with `route = "<name>"` has each event sent
    /// to the streams whose conditions it matches.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
    /// Noise rules, in order: the first whose condition matches an event
    /// decides (drop, sample or limit it), unless the event is protected.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    /// Events that no filter may drop.
    #[serde(default)]
    pub protected: ProtectedConfig,
    /// Where findings go besides the archive.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// The pipeline's counters for Prometheus.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The HTTP ingest listener that `type = "http"` sources share.
    pub http: Option<HttpConfig>,
}

/// The HTTP ingest listener: every `type = "http"` source is a path on it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port (`127.0.0.1:8080`, `[::]:443`).
    pub listen: Spanned<String>,
    /// Who may send: one `TENANT SHA256-OF-TOKEN [STREAM,...]` per line (`#`
    /// comments). The tenant comes from the token, never from the payload;
    /// with streams listed, the token may write only those.
    pub tokens_file: Spanned<String>,
    /// Where accepted requests are kept (fsynced) until the archive has
    /// committed them: a 200 means they are here. Must survive a restart.
    pub spool_dir: Spanned<String>,
    /// Bodies larger than this are refused (413).
    #[serde(default = "default_max_body_mb")]
    pub max_body_mb: u64,
    /// Past this many spooled bytes not yet read by the pipeline, requests
    /// are refused with 429 and `Retry-After`.
    #[serde(default = "default_spool_limit_mb")]
    pub spool_limit_mb: u64,
    /// TLS: the server's certificate chain and private key (PEM files).
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    /// mTLS: clients must present a certificate issued by one of these CAs (PEM).
    pub client_ca: Option<Spanned<String>>,
}

fn default_poll_secs() -> u64 {
    30
}

fn default_rotate_wait_secs() -> u64 {
    5
}

fn default_max_body_mb() -> u64 {
    10
}

fn default_spool_limit_mb() -> u64 {
    256
}

/// The counters (records in, events out, quarantined, dropped and protected
/// per rule, per stream and class, silent sources), as Prometheus text.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A file rewritten every 5 s (and at shutdown), e.g. for node_exporter's
    /// textfile collector.
    pub file: Option<PathBuf>,
    /// An admin listener (`127.0.0.1:9090`) serving the same text at `GET /metrics`.
    pub listen: Option<Spanned<String>>,
}

/// A route: conditions (see `route.rs` for their form) and the streams they send to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The stream of events that match no rule (also where the source's
    /// quarantine goes). Nothing falls through.
    pub default: Spanned<String>,
    /// Every rule an event matches adds its streams (an event can go to several).
    #[serde(default)]
    pub rules: Vec<RouteRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A condition, e.g. `class_uid in [3001, 3002] or status_id == 2`.
    pub when: Spanned<String>,
    /// The streams the matching events go to.
    pub to: Vec<Spanned<String>>,
}

/// A rule for known noise. Without `keep_one_in` or `limit` it drops what it matches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Names the rule in the counts (`filter: <name>`, `sample: <name>`, `limit: <name>`).
    pub name: Spanned<String>,
    pub when: Spanned<String>,
    /// Only for events bound to these streams (default: all).
    #[serde(default)]
    pub streams: Vec<Spanned<String>>,
    /// Sample: keep one matching event in this many (chosen by a hash of the
    /// event, so the same events on every run).
    pub keep_one_in: Option<u64>,
    /// Limit: keep the first this many matching events per value of `per`
    /// per `window_secs` of event time.
    pub limit: Option<u64>,
    /// The field a limit counts by, e.g. `actor_user_name`.
    pub per: Option<Spanned<String>>,
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
}

fn default_window_secs() -> u64 {
    60
}

/// The protected set: events a filter would drop are kept (and counted) when
/// they match one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedConfig {
    /// The built-in rules (`route::PROTECTED`: failed authentication, failures
    /// and denials, account, permission, IAM and RBAC changes, changes to audit
    /// configuration, events the enricher classified as such).
    #[serde(default = "default_true")]
    pub builtin: bool,
    /// More, by name: conditions.
    #[serde(default)]
    pub rules: BTreeMap<String, Spanned<String>>,
}

impl Default for ProtectedConfig {
    fn default() -> Self {
        ProtectedConfig { builtin: true, rules: BTreeMap::new() }
    }
}

fn default_true() -> bool {
    true
}

/// Retention periods and when they are applied.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Named periods a stream's `retention` can refer to, e.g.
    /// `pci = "13 months"`, `hipaa = "6 years"`.
    #[serde(default)]
    pub classes: BTreeMap<String, Spanned<String>>,
    /// Retention of streams that set none: a period or a class. Without it
    /// they are kept forever. The pipeline's own stream `_sluice` is never expired.
    pub default: Option<Spanned<String>>,
    /// A running pipeline applies retention when it starts and then this often
    /// (hours); 0: only `sluice retention apply` does.
    #[serde(default = "default_apply_every_hours")]
    pub apply_every_hours: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { classes: BTreeMap::new(), default: None, apply_every_hours: default_apply_every_hours() }
    }
}

fn default_apply_every_hours() -> u64 {
    24
}

/// How the integrity log is checkpointed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityConfig {
    /// Path of the Ed25519 signing key written by `sluice keys generate`.
    /// Empty: the log is written, but no checkpoint is signed.
    #[serde(default)]
    pub signing_key: String,
    /// New log entries are covered by a signed checkpoint within this many seconds.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_secs: u64,
    /// A checkpoint is signed at least this often, even when nothing arrives:
    /// a heartbeat that proves silence.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// A second archive URL that every checkpoint is also written to.
    pub copy_to: Option<String>,
    /// Origin line of the checkpoints, before `/<stream>` (default:
    /// `sluice:<sink location>`). Put the tenant, bucket and prefix here.
    pub origin: Option<String>,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        IntegrityConfig {
            signing_key: String::new(),
            checkpoint_interval_secs: default_checkpoint_interval(),
            heartbeat_secs: default_heartbeat(),
            copy_to: None,
            origin: None,
        }
    }
}

fn default_checkpoint_interval() -> u64 {
    60
}
fn default_heartbeat() -> u64 {
    3600
}

/// One source of raw records.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `file` (paths and globs, gzip read transparently), `stdin`, `http`
    /// (POSTs to a path of the `[http]` listener), `syslog` (TCP, TLS or UDP),
    /// `objects` (what appears under an object-store prefix), or `archive`
    /// (events already archived, read again: see `sluice replay`).
    #[serde(rename = "type")]
    pub kind: Spanned<SourceKind>,
    /// For `file`: paths or glob patterns, relative to the working directory.
    #[serde(default)]
    pub paths: Vec<String>,
    /// For `file`: keep reading as files grow, are rotated, or appear; for
    /// `objects`: keep listing the prefix for new objects.
    #[serde(default)]
    pub follow: bool,
    /// For `file` with `follow`: how long a file rotated away (or deleted) is
    /// still read after it last grew, for a writer that has not reopened its
    /// log yet.
    #[serde(default = "default_rotate_wait_secs")]
    pub rotate_wait_secs: u64,
    /// For `file` with `follow`: the folder logrotate moves rotated files
    /// into (its `olddir`), relative to each file's folder unless absolute.
    /// At a start, lines a rotation took away unread are looked for there too.
    pub olddir: Option<Spanned<String>>,
    /// For `http`: the path clients POST to (default `/<source name>`).
    pub path: Option<Spanned<String>>,
    /// For `objects`: the store and prefix whose objects are read
    /// (`s3://bucket/AWSLogs/`, `gs://…`, `az://…`, a folder); credentials
    /// from the environment.
    pub url: Option<Spanned<String>>,
    /// For `objects` with `follow`: how often the prefix is listed again.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
    /// For `syslog`: the address and port to listen on (`0.0.0.0:514`).
    pub listen: Option<Spanned<String>>,
    /// For `syslog`: `tcp` (octet counting or newline framing, RFC 6587;
    /// TLS with `tls_cert`, RFC 5425) or `udp` (one message per datagram).
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// For `syslog`: where received messages wait for the pipeline (a spool
    /// as for http sources).
    pub spool_dir: Option<Spanned<String>>,
    /// For `syslog`: the tenant of everything received here.
    pub tenant: Option<Spanned<String>>,
    /// For `syslog` over TCP: TLS from PEM files, and for mTLS the CAs
    /// client certificates must chain to.
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    pub client_ca: Option<Spanned<String>>,
    /// Stage names, in order. The first must be a parser, the rest transforms
    /// (for an `archive` source with `record = "event"`: transforms only, or none).
    pub chain: Vec<Spanned<String>>,
    /// Keep each record in its events' `raw_data` (when the parser does not
    /// set it): put there right after the parser, so the transforms that
    /// follow (a redactor) see it. What makes a parser fix replayable later.
    #[serde(default)]
    pub keep_raw: bool,
    /// For `archive`: the archive to read (path or URL; default: this
    /// pipeline's own sink). Credentials come from the environment.
    pub archive: Option<Spanned<String>>,
    /// For `archive`: the streams whose committed files are read.
    #[serde(default)]
    pub from_streams: Vec<Spanned<String>>,
    /// For `archive`: what the chain gets of each archived event — its
    /// `raw_data` (default; for a new parser) or the whole `event` as JSON
    /// (for new transforms); or `quarantine`: the streams' quarantined
    /// records (for a parser that takes what the old one refused), chosen by
    /// `since`/`until` on when they were read.
    #[serde(default)]
    pub record: ArchiveRecord,
    /// For `archive`: only events whose `time` is at or after this (RFC 3339).
    pub since: Option<Spanned<String>>,
    /// For `archive`: only events whose `time` is before this (RFC 3339).
    pub until: Option<Spanned<String>>,
    /// For `archive`: only events matching this condition (the route
    /// language; `source` is the event's `metadata_log_name`).
    #[serde(rename = "where")]
    pub select: Option<Spanned<String>>,
    /// The stream this source's events are written to (default: the source's name).
    pub stream: Option<String>,
    /// Or a route (`[routes.<name>]`) that picks the streams of each event.
    pub route: Option<Spanned<String>>,
    /// A finding is raised when the source reads nothing for this long
    /// (`"10m"`, `"24h"`), and a recovery note when it resumes.
    pub silent_after: Option<Spanned<String>>,
    /// A finding is raised when the records read in one volume interval pass
    /// this many times the average of the trailing intervals.
    pub spike_factor: Option<f64>,
}

impl SourceConfig {
    /// Whether the chain takes events (an `archive` source replaying events)
    /// rather than raw records.
    pub fn events_in(&self) -> bool {
        *self.kind.get_ref() == SourceKind::Archive && self.record == ArchiveRecord::Event
    }
}

/// Microseconds since the epoch of an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time (2026-11-01T00:00:00Z): {e}"))
}

/// Whether two archive locations name the same place (the same text, or the
/// same existing local folder).
fn same_location(a: &str, b: &str) -> bool {
    fn local(u: &str) -> Option<&str> {
        (!u.contains("://") || u.starts_with("file://")).then(|| u.trim_start_matches("file://"))
    }
    if a.trim_end_matches('/') == b.trim_end_matches('/') {
        return true;
    }
    match (local(a), local(b)) {
        (Some(a), Some(b)) => match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}

/// Settings of one stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Extra typed columns this stream's files carry after the core schema:
    /// `name = "string" | "int32" | "int64" | "timestamp"`. An event key of that
    /// name goes to the column (checked against its type) instead of `unmapped`.
    #[serde(default)]
    pub columns: BTreeMap<String, Spanned<String>>,
    /// How long the stream's files (and its quarantine) are kept: a period
    /// (`"400d"`, `"13 months"`, `"7y"`) or a class of `[retention.classes]`.
    /// A file goes when its newest event is older than that.
    pub retention: Option<Spanned<String>>,
    /// Partition keys of this stream (default: `sink.partition_by`).
    pub partition_by: Option<Vec<Spanned<String>>>,
    /// A file of this stream closes at this size (default: `sink.roll_size_mb`).
    pub roll_size_mb: Option<u64>,
}

/// The kinds of source.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Stdin,
    Http,
    Syslog,
    Objects,
    Archive,
}

/// How a syslog source receives.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    #[default]
    Tcp,
    Udp,
}

/// What an `archive` source hands the chain of each archived event.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveRecord {
    /// Its `raw_data` (the original record, if the pipeline that wrote it kept it).
    #[default]
    RawData,
    /// The event itself, as JSON: the chain is transforms only.
    Event,
    /// The records quarantined for the streams (`_quarantine/<stream>/`), as
    /// they were read: a copy into a new stream (the quarantine stays; `sluice
    /// quarantine replay` is the one that empties it).
    Quarantine,
}

/// One plugin stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// A bundled plugin (`parse-json`, `parse-syslog`, `parse-k8s-audit`,
    /// `parse-cloudtrail`, `parse-auditd`, `parse-gcp-audit`, `parse-github-audit`,
    /// `parse-okta`, `parse-access-log`, `redact`, `enrich-static`)
    /// or the path of a `.wasm` component, relative to the pipeline file.
    pub plugin: Spanned<String>,
    /// If set, the plugin's SHA-256 (hex) must match, or the pipeline does not start.
    pub sha256: Option<Spanned<String>>,
    /// Longest time one batch call may run before the plugin is interrupted.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `false`: no time limit at all (`timeout_ms` is ignored). The plugin's
    /// compiled code then has no deadline checks, which makes it 17-25 %
    /// faster, but a call that never returns (or an `init` that never does)
    /// is never stopped: that source's events stop reaching the archive and
    /// shutdown waits for the call. Only for plugins trusted not to loop;
    /// the memory cap, the capabilities and the handling of traps stay.
    /// `sluice validate` and `run` warn about such a stage.
    #[serde(default = "default_true")]
    pub time_limit: bool,
    /// Let the plugin read the host's clocks. Without it (the default) the
    /// wall clock reads the Unix epoch and the monotonic clock stands still.
    #[serde(default)]
    pub clocks: bool,
    /// Files the plugin may read (paths relative to the pipeline file): each is
    /// copied at start into a directory of its own that the plugin sees,
    /// read-only, as `/grants/<file name>`. Nothing else of the host's file
    /// system is visible to it.
    #[serde(default)]
    pub read_files: Vec<Spanned<String>>,
    /// Cap on each plugin instance's linear memory, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// The plugin's own settings, handed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

fn default_timeout_ms() -> u64 {
    2_000
}
fn default_memory_mb() -> u64 {
    64
}

/// Where and how events are written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Object-store URL: a plain path or `file://` (local disk), `s3://bucket/prefix`
    /// (credentials and endpoint from the standard AWS environment variables),
    /// `gs://bucket/prefix` (GOOGLE_* variables, service account or application
    /// default credentials), `az://container/prefix` (AZURE_STORAGE_* variables,
    /// or the other Azure credential sources), or `memory://` (tests).
    pub url: Spanned<String>,
    /// Store options that override the environment, for `s3://`, `gs://` and
    /// `az://` URLs: any `object_store` key of that store (`aws_endpoint`,
    /// `aws_region`, `aws_allow_http`, `google_service_account`,
    /// `azure_storage_account_name`, `azure_storage_endpoint`, ...). Prefer
    /// credentials from the environment or the provider chain; option values
    /// are never logged.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Hive partition keys, outermost first: `event_day`, `hour`, or any string
    /// or integer column (e.g. `class_uid`, `tenant_uid`). Default: `event_day`,
    /// `hour`; for a stream an http source writes, `tenant_uid` first.
    #[serde(default = "default_partition_by")]
    pub partition_by: Vec<Spanned<String>>,
    /// A file is closed once it reaches this size (MiB); it is uploaded by the
    /// next commit.
    #[serde(default = "default_roll_size_mb")]
    pub roll_size_mb: u64,
    /// A commit (every open file closed and uploaded, with the source positions
    /// that produced them) happens at least this often (seconds) while data flows.
    #[serde(default = "default_roll_age_secs")]
    pub roll_age_secs: u64,
    /// How long a write to the store is retried through an outage (seconds),
    /// backing off up to 30 s between attempts. The pipeline waits meanwhile
    /// (its inputs are the buffer); past it the run fails, losing nothing:
    /// the next run resumes from the last commit.
    #[serde(default = "default_retry_for_secs")]
    pub retry_for_secs: u64,
    /// Local directory for files being written (default: a directory per
    /// archive under the system temp dir). Locked while a run uses it.
    pub staging_dir: Option<PathBuf>,
    /// zstd level for Parquet pages.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// A transform stage (e.g. one using the bundled `redact`) that every
    /// quarantined record's text and reason pass through before they are
    /// written, so a record that failed to parse cannot carry a secret into the
    /// archive. If it fails on a record, only that record's SHA-256 and length
    /// are kept (fail closed).
    pub quarantine_redactor: Option<Spanned<String>>,
    /// S3 Object Lock (`"compliance"` or `"governance"`; s3:// only, in a
    /// bucket created with Object Lock on): every Parquet file of a stream with
    /// a retention is locked until its newest event plus that period — the
    /// moment `retention apply` may delete it — and the `_sluice` stream's
    /// files for the longest period of any stream.
    pub object_lock: Option<Spanned<crate::sinks::LockMode>>,
}

fn default_partition_by() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "event_day".into()), Spanned::new(0..0, "hour".into())]
}
fn default_roll_size_mb() -> u64 {
    128
}
fn default_roll_age_secs() -> u64 {
    300
}
fn default_retry_for_secs() -> u64 {
    600
}
fn default_zstd_level() -> i32 {
    3
}

/// Tuning of the runtime.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Plugin worker threads (0 = one per core).
    #[serde(default)]
    pub workers: usize,
    /// Records per plugin call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Resolution of the volume time series (the `_volume` stream, silence and
    /// spike detection), in seconds; 0 turns the `_volume` stream off.
    #[serde(default = "default_volume_interval")]
    pub volume_interval_secs: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { workers: 0, batch_size: default_batch_size(), volume_interval_secs: default_volume_interval() }
    }
}

fn default_batch_size() -> usize {
    256
}
fn default_volume_interval() -> u64 {
    60
}

/// Where findings (a silent source, a spike) are sent besides the archive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A file each finding is appended to as one JSON line (`/dev/stdout` for standard output).
    pub file: Option<PathBuf>,
    /// A URL each finding is POSTed to as JSON (three tries; the findings are
    /// in `_sluice` whatever the receiver does).
    pub webhook: Option<Spanned<String>>,
    /// Rules watched as events flow; each that fires is a finding.
    #[serde(default)]
    pub rules: Vec<AlertRuleConfig>,
}

/// A rule: `threshold` events matching `when` within `window` (of event
/// time), per value of `per`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    pub name: Spanned<String>,
    /// A condition (see `route.rs`), e.g. `class_uid == 3002 and status_id == 2`.
    pub when: Spanned<String>,
    /// The field that keys the windows, e.g. `actor_user_name` (default: one window).
    pub per: Option<Spanned<String>>,
    /// Events in one window that fire the rule (1: every event fires it).
    #[serde(default = "default_threshold")]
    pub threshold: usize,
    /// The sliding window, e.g. `"5m"`.
    #[serde(default = "default_window")]
    pub window: Spanned<String>,
    /// Severity of the finding (OCSF: 1 informational … 5 critical).
    #[serde(default = "default_alert_severity")]
    pub severity_id: i64,
}

fn default_threshold() -> usize {
    1
}
fn default_window() -> Spanned<String> {
    Spanned::new(0..0, "5m".into())
}
fn default_alert_severity() -> i64 {
    4
}

/// Parses `90s`, `10m`, `24h`, `2d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = crate::retention::number_and_unit(text);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like \"90s\", \"10m\" or \"24h\""))?;
    let unit = match unit {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    match n {
        0 => Err(format!("`{text}` must be longer than zero")),
        _ => Ok(std::time::Duration::from_secs(n * unit)),
    }
}

/// A config problem, located in the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A pipeline file as read: the config plus what is needed to report on it.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: PipelineConfig,
    pub path: PathBuf,
    text: String,
    /// SHA-256 of the file as written, before `${...}` is replaced.
    pub raw_sha256: String,
}

impl LoadedConfig {
    /// Reads, interpolates and parses a pipeline file, then checks it (no I/O
    /// beyond reading the file).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read pipeline file: {e}"),
        })?;
        Self::parse(path, &raw, &|name| std::env::var(name).ok())
    }

    /// Parses pipeline text; `env` looks up `${NAME}` references.
    pub fn parse(path: &Path, raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = interpolate(raw, env).map_err(|(offset, message)| {
            let (line, column) = line_col(raw, offset);
            ConfigError { file: file.clone(), line, column, message }
        })?;
        let de = toml::Deserializer::parse(&text).map_err(|e| toml_error(&file, &text, e, None))?;
        let config: PipelineConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            toml_error(&file, &text, e.into_inner(), Some(key))
        })?;
        let raw_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()));
        let loaded = LoadedConfig { config, path: path.to_path_buf(), text, raw_sha256 };
        loaded.check()?;
        Ok(loaded)
    }

    /// An error at the place `span` points to.
    pub fn error_at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = if span.is_empty() && span.start == 0 { (0, 0) } else { line_col(&self.text, span.start) };
        ConfigError { file: self.path.display().to_string(), line, column, message: message.into() }
    }

    /// The directory that relative plugin paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// The columns of a stream: the core schema plus its declared extras.
    pub fn stream_schema(&self, stream: &str) -> crate::schema::StreamSchema {
        let extras = self.config.streams.get(stream).map_or_else(Vec::new, |s| {
            s.columns
                .iter()
                .map(|(name, kind)| (name.clone(), crate::schema::extra_kind(kind.get_ref()).expect("checked at load")))
                .collect()
        });
        crate::schema::StreamSchema::new(extras)
    }

    /// The retention of every stream that has one (streams of `streams`
    /// without one are kept forever).
    pub fn retention_policies(&self, streams: &[String]) -> BTreeMap<String, crate::retention::Policy> {
        let r = &self.config.retention;
        streams
            .iter()
            .filter_map(|stream| {
                let value =
                    self.config.streams.get(stream).and_then(|s| s.retention.as_ref()).or(r.default.as_ref())?;
                Some((stream.clone(), self.policy(value.get_ref()).expect("checked at load")))
            })
            .collect()
    }

    /// A class name or a period.
    fn policy(&self, value: &str) -> Result<crate::retention::Policy, String> {
        use crate::retention::{Period, Policy};
        if let Some(period) = self.config.retention.classes.get(value) {
            return Ok(Policy { period: Period::parse(period.get_ref())?, class: Some(value.to_string()) });
        }
        Period::parse(value).map(|period| Policy { period, class: None }).map_err(|e| {
            let classes: Vec<&str> = self.config.retention.classes.keys().map(String::as_str).collect();
            match classes.is_empty() {
                true => e,
                false => format!("{e}, nor a class ({})", classes.join(", ")),
            }
        })
    }

    /// The streams the sources write to (through their routes), in source
    /// order, each once.
    pub fn streams(&self) -> Vec<String> {
        let mut streams: Vec<String> = Vec::new();
        let mut add = |s: &str| {
            if !streams.iter().any(|x| x == s) {
                streams.push(s.to_string());
            }
        };
        for (name, source) in &self.config.sources {
            match source.route.as_ref().and_then(|r| self.config.routes.get(r.get_ref())) {
                Some(route) => {
                    add(route.default.get_ref());
                    route.rules.iter().flat_map(|r| &r.to).for_each(|s| add(s.get_ref()));
                }
                None => add(self.stream_of(name)),
            }
        }
        streams
    }

    /// The place in the file of byte `offset` of the string value at `span`.
    fn inside(&self, span: std::ops::Range<usize>, offset: usize) -> std::ops::Range<usize> {
        let triple = |q: &str| self.text[span.clone()].starts_with(&q.repeat(3));
        let quotes = if triple("\"") || triple("'") { 3 } else { 1 };
        let at = span.start + quotes + offset;
        at..at
    }

    /// Parses a condition of the file, or reports where it is wrong.
    fn condition(&self, key: &str, when: &Spanned<String>) -> Result<crate::route::Expr, ConfigError> {
        crate::route::Expr::parse(when.get_ref())
            .map_err(|e| self.error_at(self.inside(when.span(), e.offset), format!("{key}: {}", e.message)))
    }

    /// The routes, filters and protected set, compiled against `streams`.
    pub fn router(&self, streams: &[String]) -> Result<crate::route::Router, ConfigError> {
        use crate::route::{Action, Destination, Expr, Filter, Router};
        let c = &self.config;
        let index = |s: &Spanned<String>, key: &str| {
            streams
                .iter()
                .position(|x| x == s.get_ref())
                .ok_or_else(|| self.error_at(s.span(), format!("{key}: no stream `{}`", s.get_ref())))
        };
        let mut destinations = Vec::new();
        for (name, source) in &c.sources {
            destinations.push(match &source.route {
                None => Destination::Stream(streams.iter().position(|s| s == self.stream_of(name)).expect("listed")),
                Some(r) => {
                    let route = &c.routes[r.get_ref()];
                    let mut rules = Vec::new();
                    for (i, rule) in route.rules.iter().enumerate() {
                        let key = format!("routes.{}.rules[{i}]", r.get_ref());
                        let to = rule.to.iter().map(|s| index(s, &format!("{key}.to"))).collect::<Result<_, _>>()?;
                        rules.push((self.condition(&format!("{key}.when"), &rule.when)?, to));
                    }
                    Destination::Route { rules, default: index(&route.default, "default")? }
                }
            });
        }
        let mut filters = Vec::new();
        for f in &c.filters {
            let name = f.name.get_ref();
            let key = format!("filters.{name}");
            let action = match (f.keep_one_in, f.limit, &f.per) {
                (None, None, None) => Action::Drop,
                (Some(n), None, None) if n >= 2 => Action::Sample(n),
                (None, Some(n), Some(per)) if n >= 1 && f.window_secs >= 1 => {
                    let field = crate::route::Expr::field(per.get_ref())
                        .map_err(|m| self.error_at(per.span(), format!("{key}.per: {m}")))?;
                    Action::Limit { n, per: field, window_us: f.window_secs as i64 * 1_000_000 }
                }
                _ => {
                    return Err(self.error_at(
                        f.name.span(),
                        format!(
                            "{key}: give `keep_one_in` (at least 2), or `limit` (at least 1) with `per`, or neither (drop)"
                        ),
                    ));
                }
            };
            filters.push(Filter {
                name: name.clone(),
                when: self.condition(&format!("{key}.when"), &f.when)?,
                streams: f.streams.iter().map(|s| index(s, &format!("{key}.streams"))).collect::<Result<_, _>>()?,
                action,
            });
        }
        let mut alerts = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        if let Some(url) = &c.alerts.webhook
            && !url::Url::parse(url.get_ref()).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(self.error_at(url.span(), "alerts.webhook: not an http:// or https:// URL"));
        }
        for rule in &c.alerts.rules {
            let name = rule.name.get_ref();
            let key = format!("alerts.rules.{name}");
            if !names.insert(name) {
                return Err(self.error_at(rule.name.span(), format!("alerts.rules: two rules named `{name}`")));
            }
            if rule.threshold == 0 || !(1..=5).contains(&rule.severity_id) {
                return Err(
                    self.error_at(rule.name.span(), format!("{key}: threshold must be at least 1, severity_id 1..=5"))
                );
            }
            parse_duration(rule.window.get_ref())
                .map_err(|m| self.error_at(rule.window.span(), format!("{key}.window: {m}")))?;
            let per = match &rule.per {
                Some(p) => {
                    Some(Expr::field(p.get_ref()).map_err(|m| self.error_at(p.span(), format!("{key}.per: {m}")))?)
                }
                None => None,
            };
            alerts
                .push(crate::route::AlertCondition { when: self.condition(&format!("{key}.when"), &rule.when)?, per });
        }
        let mut protected = Vec::new();
        if c.protected.builtin {
            for (name, text) in crate::route::PROTECTED {
                protected.push((name.to_string(), Expr::parse(text).expect("the built-in rules parse")));
            }
        }
        for (name, when) in &c.protected.rules {
            protected.push((name.clone(), self.condition(&format!("protected.rules.{name}"), when)?));
        }
        Ok(Router::new(destinations, filters, protected).with_alerts(alerts))
    }

    /// The alert rules as the sink applies them (their conditions are in the router).
    pub fn alert_rules(&self) -> Vec<crate::sinks::alerting::Rule> {
        self.config
            .alerts
            .rules
            .iter()
            .map(|r| crate::sinks::alerting::Rule {
                name: r.name.get_ref().clone(),
                per: r.per.as_ref().map(|p| p.get_ref().clone()),
                threshold: r.threshold,
                window_us: parse_duration(r.window.get_ref()).expect("checked at load").as_micros() as i64,
                severity_id: r.severity_id,
            })
            .collect()
    }

    /// What `validate` and `run` warn about: stages without a time limit, and
    /// filters that could match protected events (those are kept and
    /// counted, not dropped).
    pub fn warnings(&self, router: &crate::route::Router) -> Vec<String> {
        let unlimited = self.config.stages.iter().filter(|(_, s)| !s.time_limit).map(|(name, stage)| {
            let at = self.error_at(stage.plugin.span(), String::new());
            format!(
                "{}:{}:{}: stages.{name}: no time limit (time_limit = false): a call that never returns is never stopped",
                at.file, at.line, at.column
            )
        });
        let filters = router.overlaps().into_iter().map(|(name, rules)| {
            let span = self.config.filters.iter().find(|f| f.name.get_ref() == name).map_or(0..0, |f| f.name.span());
            let at = self.error_at(span, String::new());
            format!(
                "{}:{}:{}: filters.{name}: may match protected events ({}); those are kept and counted, not dropped",
                at.file,
                at.line,
                at.column,
                rules.join(", ")
            )
        });
        unlimited.chain(filters).collect()
    }

    /// The archive the sink writes to, with its store options and retry budget.
    pub fn archive(&self) -> anyhow::Result<crate::sinks::Archive> {
        let sink = &self.config.sink;
        let mut archive = crate::sinks::Archive::open_with(sink.url.get_ref(), &sink.options)?;
        archive.retry_for = std::time::Duration::from_secs(sink.retry_for_secs);
        Ok(archive)
    }

    /// The sink's staging folder: `sink.staging_dir`, else one per archive
    /// under the temporary folder. Its `.lock` is held by the run writing to
    /// the archive, and holds that process's id (`sluice reload`).
    pub fn staging_dir(&self, archive: &crate::sinks::Archive) -> PathBuf {
        self.config.sink.staging_dir.clone().unwrap_or_else(|| {
            let digest = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(archive.location.as_bytes())[..8]);
            std::env::temp_dir().join(format!("sluice-staging-{digest}"))
        })
    }

    /// Every stream a source can write to: its stream, or all its route names.
    pub fn streams_of<'a>(&'a self, source: &'a str) -> Vec<&'a str> {
        let s = &self.config.sources[source];
        match s.route.as_ref().and_then(|r| self.config.routes.get(r.get_ref())) {
            Some(route) => std::iter::once(route.default.get_ref().as_str())
                .chain(route.rules.iter().flat_map(|r| r.to.iter().map(|t| t.get_ref().as_str())))
                .collect(),
            None => vec![self.stream_of(source)],
        }
    }

    /// The stream a source writes to (its route's default stream, if routed;
    /// where its quarantine goes).
    pub fn stream_of<'a>(&'a self, source: &'a str) -> &'a str {
        let s = &self.config.sources[source];
        if let Some(route) = s.route.as_ref().and_then(|r| self.config.routes.get(r.get_ref())) {
            return route.default.get_ref();
        }
        s.stream.as_deref().unwrap_or(source)
    }

    /// An `archive` source: what it reads, its range and condition, and that
    /// it does not read a stream this pipeline writes (each replayed event
    /// would be written again next to itself).
    fn check_archive_source(&self, name: &str, source: &SourceConfig) -> Result<(), ConfigError> {
        let at = source.kind.span();
        if !source.paths.is_empty() || source.follow {
            return Err(self.error_at(at, format!("sources.{name}: an archive source takes no `paths` or `follow`")));
        }
        if source.from_streams.is_empty() {
            return Err(self.error_at(
                at,
                format!("sources.{name}: an archive source needs `from_streams` (the archived streams to read)"),
            ));
        }
        let mut range = [None, None];
        for (slot, (key, value)) in range.iter_mut().zip([("since", &source.since), ("until", &source.until)]) {
            if let Some(value) = value {
                let time = parse_time(value.get_ref())
                    .map_err(|m| self.error_at(value.span(), format!("sources.{name}.{key}: {m}")))?;
                *slot = Some(time);
            }
        }
        if let ([Some(since), Some(until)], Some(span)) = (range, source.until.as_ref().map(|u| u.span()))
            && since >= until
        {
            return Err(self.error_at(span, format!("sources.{name}: `until` must be after `since`")));
        }
        if let Some(select) = &source.select {
            if source.record == ArchiveRecord::Quarantine {
                return Err(self.error_at(
                    select.span(),
                    format!("sources.{name}.where: quarantined records are not events; choose them by since/until"),
                ));
            }
            self.condition(&format!("sources.{name}.where"), select)?;
        }
        let own = match &source.archive {
            None => true,
            Some(url) => same_location(url.get_ref(), self.config.sink.url.get_ref()),
        };
        if own {
            let written = self.streams();
            if let Some(stream) = source.from_streams.iter().find(|s| written.contains(s.get_ref())) {
                return Err(self.error_at(
                    stream.span(),
                    format!(
                        "sources.{name}.from_streams: this pipeline writes stream `{}` of the same archive; replay into a new stream",
                        stream.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A stream's partition keys: its own; else the sink's — with `tenant_uid`
    /// first for a stream an http source (or a syslog source with a tenant)
    /// writes, unless the file names the sink's keys (an archive many tenants
    /// send to is split by tenant).
    pub fn partition_keys(&self, stream: &str) -> Vec<String> {
        let c = &self.config;
        if let Some(keys) = c.streams.get(stream).and_then(|s| s.partition_by.as_ref()) {
            return keys.iter().map(|k| k.get_ref().clone()).collect();
        }
        let mut keys: Vec<String> = c.sink.partition_by.iter().map(|k| k.get_ref().clone()).collect();
        let defaulted = c.sink.partition_by.iter().all(|k| k.span() == (0..0));
        let tenanted = |s: &SourceConfig| match s.kind.get_ref() {
            SourceKind::Http => true,
            SourceKind::Syslog => s.tenant.is_some(),
            _ => false,
        };
        let from_http = c.sources.iter().any(|(name, s)| tenanted(s) && self.streams_of(name).contains(&stream));
        if defaulted && !keys.is_empty() && from_http && !keys.iter().any(|k| k == "tenant_uid") {
            keys.insert(0, "tenant_uid".to_string());
        }
        keys
    }

    /// The path an http source is POSTed to.
    pub fn http_path(&self, source: &str) -> String {
        match &self.config.sources[source].path {
            Some(path) => path.get_ref().clone(),
            None => format!("/{source}"),
        }
    }

    /// A syslog source: where it listens and spools, its tenant, its TLS.
    fn check_syslog_source(&self, name: &str, source: &SourceConfig) -> Result<(), ConfigError> {
        let at = source.kind.span();
        if !source.paths.is_empty() || source.follow {
            return Err(self.error_at(at, format!("sources.{name}: a syslog source takes no `paths` or `follow`")));
        }
        if source.listen.is_none() || source.spool_dir.is_none() {
            return Err(self.error_at(
                at,
                format!("sources.{name}: a syslog source needs `listen` (address:port) and `spool_dir`"),
            ));
        }
        if let Some(tenant) = &source.tenant
            && !crate::http::valid_tenant(tenant.get_ref())
        {
            return Err(self
                .error_at(tenant.span(), format!("sources.{name}.tenant: 1 to 64 letters, digits, `-`, `_` or `.`")));
        }
        let tls = source.tls_cert.is_some() || source.tls_key.is_some() || source.client_ca.is_some();
        if tls && (source.tls_cert.is_none() || source.tls_key.is_none() || source.protocol == SyslogProtocol::Udp) {
            return Err(self.error_at(at, format!("sources.{name}: TLS needs `tls_cert` and `tls_key`, over tcp")));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if c.sources.is_empty() {
            return Err(self.error_at(0..0, "the pipeline has no [sources.*]"));
        }
        let mut http_paths: BTreeMap<String, &str> = BTreeMap::new();
        for (name, source) in c.sources.iter().filter(|(_, s)| *s.kind.get_ref() == SourceKind::Http) {
            if let Some(other) = http_paths.insert(self.http_path(name), name) {
                return Err(self.error_at(
                    source.kind.span(),
                    format!("sources.{name}: its path `{}` is also source `{other}`'s", self.http_path(name)),
                ));
            }
        }
        if let Some(http) = &c.http
            && (http.tls_cert.is_some() != http.tls_key.is_some()
                || (http.client_ca.is_some() && http.tls_cert.is_none()))
        {
            return Err(self.error_at(
                http.listen.span(),
                "http: TLS needs both `tls_cert` and `tls_key`; `client_ca` (mTLS) needs TLS",
            ));
        }
        for (name, source) in &c.sources {
            if let Some(olddir) = &source.olddir
                && (*source.kind.get_ref() != SourceKind::File || !source.follow)
            {
                return Err(self.error_at(
                    olddir.span(),
                    format!("sources.{name}.olddir: only a `file` source with `follow = true` takes it"),
                ));
            }
            match *source.kind.get_ref() {
                SourceKind::File if source.paths.is_empty() => {
                    return Err(
                        self.error_at(source.kind.span(), format!("sources.{name}: a file source needs `paths`"))
                    );
                }
                SourceKind::Stdin if !source.paths.is_empty() || source.follow => {
                    return Err(self.error_at(
                        source.kind.span(),
                        format!("sources.{name}: a stdin source takes no `paths` or `follow`"),
                    ));
                }
                SourceKind::Archive => self.check_archive_source(name, source)?,
                SourceKind::Http if !source.paths.is_empty() || source.follow => {
                    return Err(self.error_at(
                        source.kind.span(),
                        format!("sources.{name}: an http source takes no `paths` or `follow`"),
                    ));
                }
                SourceKind::Syslog => self.check_syslog_source(name, source)?,
                SourceKind::Objects if source.url.is_none() || !source.paths.is_empty() => {
                    return Err(self.error_at(
                        source.kind.span(),
                        format!(
                            "sources.{name}: an objects source needs `url` (s3://bucket/prefix, …) and takes no `paths`"
                        ),
                    ));
                }
                SourceKind::Objects if source.poll_secs == 0 => {
                    return Err(self.error_at(source.kind.span(), format!("sources.{name}.poll_secs: must be above 0")));
                }
                SourceKind::Http if c.http.is_none() => {
                    return Err(self.error_at(
                        source.kind.span(),
                        format!(
                            "sources.{name}: an http source needs an [http] listener (listen, tokens_file, spool_dir)"
                        ),
                    ));
                }
                _ => {}
            }
            if let Some(path) = &source.path
                && (*source.kind.get_ref() != SourceKind::Http || !path.get_ref().starts_with('/'))
            {
                return Err(self.error_at(
                    path.span(),
                    format!("sources.{name}.path: only an http source takes it, and it starts with `/`"),
                ));
            }
            if let Some(url) = &source.url
                && *source.kind.get_ref() != SourceKind::Objects
            {
                return Err(self.error_at(url.span(), format!("sources.{name}.url: only an `objects` source takes it")));
            }
            let syslog_only = [
                ("listen", source.listen.is_some()),
                ("spool_dir", source.spool_dir.is_some()),
                ("tenant", source.tenant.is_some()),
                ("tls_cert", source.tls_cert.is_some()),
                ("tls_key", source.tls_key.is_some()),
                ("client_ca", source.client_ca.is_some()),
                ("protocol", source.protocol != SyslogProtocol::Tcp),
            ];
            if let Some((key, _)) = syslog_only.iter().find(|(_, set)| *set)
                && *source.kind.get_ref() != SourceKind::Syslog
            {
                return Err(
                    self.error_at(source.kind.span(), format!("sources.{name}.{key}: only a `syslog` source takes it"))
                );
            }
            let archive_only = [
                ("archive", source.archive.is_some()),
                ("from_streams", !source.from_streams.is_empty()),
                ("since", source.since.is_some()),
                ("until", source.until.is_some()),
                ("where", source.select.is_some()),
                ("record", source.record != ArchiveRecord::RawData),
            ];
            if let Some((key, _)) = archive_only.iter().find(|(_, set)| *set)
                && *source.kind.get_ref() != SourceKind::Archive
            {
                return Err(self
                    .error_at(source.kind.span(), format!("sources.{name}.{key}: only an `archive` source takes it")));
            }
            if source.chain.is_empty() && !source.events_in() {
                return Err(
                    self.error_at(source.kind.span(), format!("sources.{name}.chain: needs at least a parser stage"))
                );
            }
            for stage in &source.chain {
                if !c.stages.contains_key(stage.get_ref()) {
                    let known: Vec<_> = c.stages.keys().map(String::as_str).collect();
                    return Err(self.error_at(
                        stage.span(),
                        format!(
                            "sources.{name}.chain: unknown stage `{}` (defined stages: {})",
                            stage.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            }
            if let Some(after) = &source.silent_after {
                parse_duration(after.get_ref())
                    .map_err(|m| self.error_at(after.span(), format!("sources.{name}.silent_after: {m}")))?;
            }
            if source.spike_factor.is_some_and(|f| f.is_nan() || f <= 1.0) {
                return Err(self.error_at(source.kind.span(), format!("sources.{name}.spike_factor: must be above 1")));
            }
            if let Some(route) = &source.route {
                if source.stream.is_some() {
                    return Err(
                        self.error_at(route.span(), format!("sources.{name}: give `stream` or `route`, not both"))
                    );
                }
                if !c.routes.contains_key(route.get_ref()) {
                    let known: Vec<_> = c.routes.keys().map(String::as_str).collect();
                    return Err(self.error_at(
                        route.span(),
                        format!(
                            "sources.{name}.route: unknown route `{}` (routes: {})",
                            route.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            } else if let Some(stream) = &source.stream {
                check_name(stream)
                    .map_err(|m| self.error_at(source.kind.span(), format!("sources.{name}.stream: {m}")))?;
            } else {
                check_name(name).map_err(|m| self.error_at(source.kind.span(), format!("sources.{name}: {m}")))?;
            }
        }
        for (name, stage) in &c.stages {
            if let Some(pin) = &stage.sha256 {
                let p = pin.get_ref();
                if p.len() != 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(self.error_at(pin.span(), format!("stages.{name}.sha256: expected 64 hex digits")));
                }
            }
            if stage.timeout_ms == 0 || stage.memory_mb == 0 {
                return Err(self.error_at(
                    stage.plugin.span(),
                    format!("stages.{name}: timeout_ms and memory_mb must be positive"),
                ));
            }
        }
        for (class, period) in &c.retention.classes {
            crate::retention::Period::parse(period.get_ref())
                .map_err(|m| self.error_at(period.span(), format!("retention.classes.{class}: {m}")))?;
        }
        if let Some(value) = &c.retention.default {
            self.policy(value.get_ref()).map_err(|m| self.error_at(value.span(), format!("retention.default: {m}")))?;
        }
        for (name, route) in &c.routes {
            for s in std::iter::once(&route.default).chain(route.rules.iter().flat_map(|r| &r.to)) {
                check_name(s.get_ref()).map_err(|m| self.error_at(s.span(), format!("routes.{name}: {m}")))?;
            }
        }
        let mut filter_names = std::collections::BTreeSet::new();
        for f in &c.filters {
            if !filter_names.insert(f.name.get_ref()) {
                return Err(self.error_at(f.name.span(), format!("filters: two filters named `{}`", f.name.get_ref())));
            }
        }
        let streams = self.streams();
        self.router(&streams)?;
        for (stream, config) in &c.streams {
            for key in config.partition_by.iter().flatten() {
                if !crate::schema::is_partition_key(key.get_ref()) {
                    return Err(self.error_at(
                        key.span(),
                        format!(
                            "streams.{stream}.partition_by: `{}` is not `event_day`, `hour` or a string/integer column",
                            key.get_ref()
                        ),
                    ));
                }
            }
            if config.roll_size_mb == Some(0) {
                return Err(self.error_at(0..0, format!("streams.{stream}.roll_size_mb: must be positive")));
            }
            if let Some(value) = &config.retention {
                self.policy(value.get_ref())
                    .map_err(|m| self.error_at(value.span(), format!("streams.{stream}.retention: {m}")))?;
            }
            if !streams.contains(stream) {
                let span = config.columns.values().next().or(config.retention.as_ref()).map_or(0..0, |t| t.span());
                return Err(self.error_at(span, format!("streams.{stream}: no source writes to this stream")));
            }
            for (column, kind) in &config.columns {
                if crate::schema::extra_kind(kind.get_ref()).is_none() {
                    return Err(self.error_at(
                        kind.span(),
                        format!(
                            "streams.{stream}.columns.{column}: `{}` is not string, int32, int64 or timestamp",
                            kind.get_ref()
                        ),
                    ));
                }
                let reserved = crate::schema::FILE_SCHEMA.field_with_name(column).is_ok()
                    || matches!(column.as_str(), "event_day" | "hour");
                let plain = !column.is_empty()
                    && column.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if reserved || !plain {
                    return Err(self.error_at(
                        kind.span(),
                        format!(
                            "streams.{stream}.columns.{column}: must be a new lower_snake_case name, not a core column"
                        ),
                    ));
                }
            }
        }
        if let Some(stage) = &c.sink.quarantine_redactor
            && !c.stages.contains_key(stage.get_ref())
        {
            return Err(
                self.error_at(stage.span(), format!("sink.quarantine_redactor: unknown stage `{}`", stage.get_ref()))
            );
        }
        for key in &c.sink.partition_by {
            let k = key.get_ref();
            if !crate::schema::is_partition_key(k) {
                return Err(self.error_at(
                    key.span(),
                    format!(
                        "sink.partition_by: `{k}` is not `event_day`, `hour` or a string/integer column of the schema"
                    ),
                ));
            }
        }
        if let Some(lock) = &c.sink.object_lock
            && !c.sink.url.get_ref().starts_with("s3://")
        {
            return Err(
                self.error_at(lock.span(), "sink.object_lock: Object Lock is an S3 feature; the sink is not s3://")
            );
        }
        if !c.sink.options.is_empty() && !crate::sinks::is_cloud(c.sink.url.get_ref()) {
            return Err(
                self.error_at(c.sink.url.span(), "sink.options: options are for s3://, gs:// and az:// URLs only")
            );
        }
        if c.sink.roll_size_mb == 0 || c.sink.roll_age_secs == 0 {
            return Err(self.error_at(c.sink.url.span(), "sink: roll_size_mb and roll_age_secs must be positive"));
        }
        if !(1..=22).contains(&c.sink.zstd_level) {
            return Err(self.error_at(c.sink.url.span(), "sink.zstd_level: must be 1..=22"));
        }
        if c.runtime.batch_size == 0 {
            return Err(self.error_at(0..0, "runtime.batch_size: must be positive"));
        }
        Ok(())
    }
}

/// Stream names become path segments: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(['_', '.'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("stream name `{name}` must be letters, digits, `-` or `_`, not starting with `_` or `.`"))
    }
}

fn toml_error(file: &str, text: &str, e: toml::de::Error, key: Option<String>) -> ConfigError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
    let message = e.message().trim().to_string();
    let message = match key {
        Some(k) if k != "." && !k.is_empty() => format!("{k}: {message}"),
        _ => message,
    };
    ConfigError { file: file.to_string(), line, column, message }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, column)
}

/// Replaces `${NAME}` and `${NAME:-default}` outside comments; `$$` is a
/// literal `$`. Errors carry the byte offset of the reference.
fn interpolate(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(raw.len());
    let mut offset = 0;
    for line in raw.split_inclusive('\n') {
        let code_len = comment_start(line).unwrap_or(line.len());
        out.push_str(&interpolate_code(&line[..code_len], env).map_err(|(at, m)| (offset + at, m))?);
        out.push_str(&line[code_len..]);
        offset += line.len();
    }
    Ok(out)
}

/// Where a TOML comment starts on this line, if anywhere (a `#` outside strings).
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for (i, b) in line.bytes().enumerate() {
        match quote {
            Some(b'"') if escaped => escaped = false,
            Some(b'"') if b == b'\\' => escaped = true,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' => return Some(i),
            None => {}
        }
    }
    None
}

fn interpolate_code(code: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            offset += i + 2;
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            offset += i + 1;
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            return Err((offset + i, "unclosed `${`".into()));
        };
        let reference = &body[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err((offset + i, format!("bad variable reference `${{{reference}}}`")));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err((
                    offset + i,
                    format!("environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"),
                ));
            }
        }
        let consumed = i + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
        LoadedConfig::parse(Path::new("p.toml"), text, &|n| (n == "OUT").then(|| "/tmp/out".to_string()))
    }

    const VALID: &str = r#"
[sources.auth]
type = "file"
paths = ["auth.log"]
chain = ["syslog"]

[stages.syslog]
plugin = "parse-syslog"

[sink]
url = "${OUT}"
"#;

    #[test]
    fn prepares_valid_config_with_defaults() {
        let c = parse(VALID).unwrap();
        assert_eq!(c.config.sink.url.get_ref(), "/tmp/out");
        assert_eq!(c.config.sink.roll_size_mb, 128);
        assert_eq!(c.config.stages["syslog"].timeout_ms, 2000);
        assert_eq!(c.config.runtime.batch_size, 256);
        assert_eq!(c.stream_of("auth"), "auth");
        let keys: Vec<_> = c.config.sink.partition_by.iter().map(|k| k.get_ref().as_str()).collect();
        assert_eq!(keys, ["event_day", "hour"]);
    }

    #[test]
    fn typo_is_rejected_with_line_and_key() {
        let e = parse(&VALID.replace("chain =", "chian =")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.to_string().contains("unknown field `chian`"), "{e}");
        assert!(e.to_string().starts_with("p.toml:5:"), "{e}");
    }

    #[test]
    fn bad_value_names_key() {
        let e = parse(&VALID.replace("url = \"${OUT}\"", "url = \"${OUT}\"\nroll_size_mb = \"big\"")).unwrap_err();
        assert!(e.to_string().contains("sink.roll_size_mb"), "{e}");
        assert_eq!(e.line, 12, "{e}");
    }

    #[test]
    fn unknown_stage_is_located() {
        let e = parse(&VALID.replace("chain = [\"syslog\"]", "chain = [\"syslgo\"]")).unwrap_err();
        assert_eq!((e.line, e.column), (5, 10), "{e}");
        assert!(e.message.contains("unknown stage `syslgo`"), "{e}");
    }

    #[test]
    fn olddir_is_for_following_file_sources_only() {
        let ok = parse(&VALID.replace("chain =", "follow = true\nolddir = \"old\"\nchain =")).unwrap();
        assert_eq!(ok.config.sources["auth"].olddir.as_ref().map(|d| d.get_ref().as_str()), Some("old"));
        let stdin = VALID.replace("type = \"file\"\npaths = [\"auth.log\"]", "type = \"stdin\"\nolddir = \"old\"");
        let not_following = VALID.replace("chain =", "olddir = \"old\"\nchain =");
        for (text, line) in [(stdin, 4), (not_following, 5)] {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.message, "sources.auth.olddir: only a `file` source with `follow = true` takes it", "{e}");
            assert_eq!((e.line, e.column), (line, 10), "{e}");
        }
    }

    #[test]
    fn stream_columns_are_checked() {
        let ok = parse(&format!("{VALID}\n[streams.auth]\ncolumns = {{ amount_cents = \"int64\" }}\n")).unwrap();
        assert_eq!(ok.config.streams["auth"].columns["amount_cents"].get_ref(), "int64");
        let e = parse(&format!("{VALID}\n[streams.auth]\ncolumns = {{ amount = \"money\" }}\n")).unwrap_err();
        assert!(e.message.contains("`money` is not string, int32, int64 or timestamp"), "{e}");
        assert_eq!(e.line, 14, "{e}");
        let e = parse(&format!("{VALID}\n[streams.auth]\ncolumns = {{ message = \"string\" }}\n")).unwrap_err();
        assert!(e.message.contains("not a core column"), "{e}");
        let e = parse(&format!("{VALID}\n[streams.nobody]\ncolumns = {{ x = \"string\" }}\n")).unwrap_err();
        assert!(e.message.contains("streams.nobody: no source writes to this stream"), "{e}");
    }

    #[test]
    fn retention_is_a_period_or_a_class_and_is_checked() {
        use crate::retention::{Period, Policy};
        let ok = parse(&format!(
            "{VALID}\n[retention]\ndefault = \"400d\"\nclasses = {{ pci = \"13 months\" }}\n[streams.auth]\nretention = \"pci\"\n"
        ))
        .unwrap();
        let policies = ok.retention_policies(&["auth".to_string(), "other".to_string()]);
        assert_eq!(policies["auth"], Policy { period: Period::Months(13), class: Some("pci".into()) });
        assert_eq!(policies["other"], Policy { period: Period::Days(400), class: None });
        let e = parse(&format!(
            "{VALID}\n[retention]\nclasses = {{ pci = \"13 months\" }}\n[streams.auth]\nretention = \"sox\"\n"
        ))
        .unwrap_err();
        assert!(e.message.starts_with("streams.auth.retention: `sox` is not a period"), "{e}");
        assert!(e.message.contains("nor a class (pci)"), "{e}");
        assert_eq!(e.line, 16, "{e}");
        let e = parse(&format!("{VALID}\n[retention]\nclasses = {{ pci = \"13 parsecs\" }}\n")).unwrap_err();
        assert!(e.message.starts_with("retention.classes.pci: `13 parsecs`: the unit must be"), "{e}");
        // without a default, a stream without retention is kept forever
        let forever = parse(VALID).unwrap();
        assert!(forever.retention_policies(&["auth".to_string()]).is_empty());
    }

    #[test]
    fn env_defaults_and_missing() {
        let c = parse(&VALID.replace("${OUT}", "${NOPE:-fallback}")).unwrap();
        assert_eq!(c.config.sink.url.get_ref(), "fallback");
        let e = parse(&VALID.replace("${OUT}", "${NOPE}")).unwrap_err();
        assert!(e.message.contains("`NOPE` is not set"), "{e}");
        assert_eq!(e.line, 11);
        assert_eq!(interpolate("a$$b $x", &|_| None).unwrap(), "a$b $x");
        assert_eq!(
            interpolate("k = \"#${OUT}\" # see ${NOPE}\n", &|_| Some("v".into())).unwrap(),
            "k = \"#v\" # see ${NOPE}\n"
        );
    }

    /// Fuzz target: any text, and any edit of a real pipeline file, gives a
    /// config or a located error — never a panic — and the location is inside
    /// the text. `SLUICE_FUZZ_CASES` sets the number of cases (default 1,000).
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const REAL: &str = include_str!("../../examples/benchmark/pipeline.toml");

        fn cases() -> u32 {
            std::env::var("SLUICE_FUZZ_CASES").map_or(1000, |v| v.parse().expect("a number"))
        }

        fn check(text: &str) {
            let env = |n: &str| (n != "MISSING").then(|| format!("v-{n}"));
            if let Err(e) = LoadedConfig::parse(Path::new("p.toml"), text, &env) {
                let lines = text.lines().count().max(1);
                assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
                assert!(!e.message.is_empty());
            }
        }

        /// One edit: at a fraction of the text, delete, insert or replace with
        /// a character that matters to TOML or to interpolation.
        fn edit() -> impl Strategy<Value = (f64, u8, char)> {
            let chars = prop::sample::select(vec![
                '[', ']', '{', '}', '"', '\'', '=', ',', '.', '#', '\n', '$', '\\', ' ', '0', '-', 'a', '\u{0}',
                '\u{feff}',
            ]);
            (0.0..1.0f64, 0..3u8, chars)
        }

        fn apply(text: &str, edits: &[(f64, u8, char)]) -> String {
            let mut chars: Vec<char> = text.chars().collect();
            for &(at, op, c) in edits {
                let i = ((chars.len() as f64) * at) as usize;
                match op {
                    0 if i < chars.len() => {
                        chars.remove(i);
                    }
                    1 => chars.insert(i.min(chars.len()), c),
                    _ if i < chars.len() => chars[i] = c,
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn fuzz_config_edits_of_a_real_pipeline(edits in prop::collection::vec(edit(), 1..12)) {
                check(&apply(REAL, &edits));
            }

            #[test]
            fn fuzz_config_any_text(text in "\\PC{0,400}") {
                check(&text);
            }

            #[test]
            fn fuzz_config_interpolation(name in "[A-Z_]{0,8}", default in "[^}]{0,8}", tail in "[${}:-]{0,6}") {
                check(&format!("[sink]\nurl = \"${{{name}:-{default}}}{tail}\"\n"));
            }
        }
    }
}

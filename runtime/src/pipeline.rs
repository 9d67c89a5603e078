//! Building a pipeline from its config, and running it.
//!
//! Threads: one per source, `workers` plugin workers, one sink. Channels
//! between them are bounded, so a source faster than the sink waits instead of
//! filling memory. Sources start where the archive's last commit left them.
//! Shutdown: when the stop flag is set (Ctrl-C) or the sources are exhausted,
//! the channels drain in order, the sink commits, and the run ends with a
//! summary whose counts must balance:
//! records read + expanded + routed copies = events written + quarantined +
//! dropped (by a named rule).

use crate::config::{LoadedConfig, SourceKind};
use crate::integrity::log::PluginRef;
use crate::integrity::note::NoteSigner;
use crate::replay::ReplaySource;
use crate::route::{Router, RowView, Verdict};
use crate::schema::{self, StreamSchema};
use crate::self_audit::{self, PipelineIdentity};
use crate::sinks::commit::Counts;
use crate::sinks::{Archive, IntegritySettings, Sink, SinkMsg, SinkSettings};
use crate::sources::{
    ArchiveReport, ArchiveSource, Batcher, FileSource, ObjectSource, RawBatch, Source, Spool, SpoolSource, StdinSource,
};
use crate::stage::{Chain, Rejected, SharedStage, Stage};
use crate::wasm::{LoadError, Plugin, PluginKind, PluginSpec, WasmHost};
use crate::{bundled, config::ConfigError};
use anyhow::Context;
use crossbeam_channel::{Receiver, Sender, bounded};
use serde_json::json;
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The digest a plugin's files are logged with: its component's SHA-256, or
/// `native` when it runs as host code (`sluice run --native-plugins`).
fn logged_digest(plugin: &Plugin) -> String {
    #[cfg(feature = "native-plugins")]
    if crate::native::replaces(plugin) {
        return "native".into();
    }
    plugin.digest.clone()
}

/// A loaded stage plugin and what the pipeline knows of it.
pub struct LoadedStage {
    pub name: String,
    pub plugin: Arc<Plugin>,
}

/// A pipeline whose plugins are compiled and whose config is consistent.
pub struct Pipeline {
    config: LoadedConfig,
    stages: BTreeMap<String, LoadedStage>,
    streams: Vec<String>,
    router: Arc<Router>,
}

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{location}: stages.{stage}: {error}")]
    Plugin { location: String, stage: String, error: Box<LoadError> },
}

impl Pipeline {
    /// Loads and compiles every plugin, checks each chain starts with a parser
    /// followed by transforms, and starts one instance of each plugin (which
    /// runs its `init` on the config it is given).
    pub fn build(config: LoadedConfig, host: &WasmHost) -> Result<Pipeline, BuildError> {
        let mut stages = BTreeMap::new();
        for (name, stage) in &config.config.stages {
            let located = |e: LoadError| {
                let err = config.error_at(stage.plugin.span(), String::new());
                BuildError::Plugin {
                    location: format!("{}:{}:{}", err.file, err.line, err.column),
                    stage: name.clone(),
                    error: Box::new(e),
                }
            };
            let reference = stage.plugin.get_ref();
            let (display, bytes) = match bundled::get(reference) {
                Some(bytes) => (format!("{reference} (bundled)"), bytes.to_vec()),
                None if reference.ends_with(".wasm") => {
                    let path = config.base_dir().join(reference);
                    let bytes = std::fs::read(&path)
                        .map_err(|source| located(LoadError::Read { path: path.display().to_string(), source }))?;
                    (path.display().to_string(), bytes)
                }
                None => {
                    return Err(config
                        .error_at(
                            stage.plugin.span(),
                            format!(
                                "stages.{name}.plugin: `{reference}` is neither a bundled plugin ({}) nor a path to a .wasm file",
                                bundled::names().join(", ")
                            ),
                        )
                        .into());
                }
            };
            let config_json = serde_json::to_string(&stage.config).expect("TOML tables are JSON-representable");
            let spec = PluginSpec {
                stage: name.clone(),
                display,
                bytes,
                sha256: stage.sha256.as_ref().map(|s| s.get_ref().clone()),
                config_json,
                timeout: stage.time_limit.then(|| Duration::from_millis(stage.timeout_ms)),
                memory_bytes: (stage.memory_mb as usize) << 20,
                clocks: stage.clocks,
                read_files: stage.read_files.iter().map(|f| config.base_dir().join(f.get_ref())).collect(),
            };
            let plugin = host.load(spec).map_err(located)?;
            stages.insert(name.clone(), LoadedStage { name: name.clone(), plugin });
        }
        for (source_name, source) in &config.config.sources {
            for (i, stage_ref) in source.chain.iter().enumerate() {
                let kind = stages[stage_ref.get_ref()].plugin.kind;
                let wanted = if i == 0 && !source.events_in() { PluginKind::Parser } else { PluginKind::Transform };
                if kind != wanted {
                    return Err(config
                        .error_at(
                            stage_ref.span(),
                            format!(
                                "sources.{source_name}.chain: stage `{}` is a {kind}, but position {} needs a {wanted}{}",
                                stage_ref.get_ref(),
                                i + 1,
                                if source.events_in() { " (record = \"event\" hands the chain events)" } else { "" }
                            ),
                        )
                        .into());
                }
            }
        }
        if let Some(stage) = &config.config.sink.quarantine_redactor
            && stages[stage.get_ref()].plugin.kind != PluginKind::Transform
        {
            return Err(config
                .error_at(
                    stage.span(),
                    format!("sink.quarantine_redactor: stage `{}` is not a transform", stage.get_ref()),
                )
                .into());
        }
        let streams = config.streams();
        let router = Arc::new(config.router(&streams)?);
        Ok(Pipeline { config, stages, streams, router })
    }

    /// For each stream, the plugins of every chain that feeds it.
    fn plugins_per_stream(&self) -> Vec<Vec<PluginRef>> {
        self.streams
            .iter()
            .map(|stream| {
                let mut refs: Vec<PluginRef> = Vec::new();
                for (name, source) in &self.config.config.sources {
                    if !self.config.streams_of(name).contains(&stream.as_str()) {
                        continue;
                    }
                    for stage in &source.chain {
                        let p = &self.stages[stage.get_ref()].plugin;
                        let r = PluginRef {
                            stage: stage.get_ref().clone(),
                            name: p.name().to_string(),
                            version: p.version().to_string(),
                            sha256: logged_digest(p),
                        };
                        if !refs.contains(&r) {
                            refs.push(r);
                        }
                    }
                }
                refs
            })
            .collect()
    }

    pub fn stages(&self) -> impl Iterator<Item = &LoadedStage> {
        self.stages.values()
    }

    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// Stages without a time limit and filters that could match protected
    /// events (see `LoadedConfig::warnings`).
    pub fn warnings(&self) -> Vec<String> {
        self.config.warnings(&self.router)
    }

    /// Runs until the sources are exhausted or `stop` is set, then commits.
    pub fn run(self, runtime: tokio::runtime::Handle, stop: Arc<AtomicBool>) -> anyhow::Result<Summary> {
        self.run_with(runtime, stop, Mode::Run).map(|(summary, _)| summary)
    }

    /// Runs only the pipeline's `archive` sources (`sluice replay`): archived
    /// events through this pipeline's chains into its streams.
    pub fn replay_archive(self, runtime: tokio::runtime::Handle, stop: Arc<AtomicBool>) -> anyhow::Result<Summary> {
        anyhow::ensure!(
            self.config.config.sources.values().any(|s| *s.kind.get_ref() == SourceKind::Archive),
            "the pipeline has no `type = \"archive\"` source to replay (for quarantined records: `sluice quarantine replay`)"
        );
        self.run_with(runtime, stop, Mode::ArchiveOnly).map(|(summary, _)| summary)
    }

    /// Runs the archive's quarantined records (of source `only`, or all)
    /// through the pipeline instead of its sources; see `replay.rs`. Returns
    /// the summary and why lines were kept in quarantine without a replay.
    pub fn replay(
        self,
        runtime: tokio::runtime::Handle,
        stop: Arc<AtomicBool>,
        only: Option<String>,
    ) -> anyhow::Result<(Summary, BTreeMap<String, u64>)> {
        if let Some(name) = &only {
            anyhow::ensure!(self.config.config.sources.contains_key(name), "the pipeline has no source `{name}`");
        }
        self.run_with(runtime, stop, Mode::Quarantine(only))
    }

    /// What a run would fail on at its start that building did not check:
    /// the tokens file and the TLS files (a reload checks them before it stops
    /// the running pipeline; the ports are still the old one's).
    pub fn preflight(&self) -> anyhow::Result<()> {
        let c = &self.config.config;
        if let Some(http) = &c.http {
            crate::http::read_tokens(std::path::Path::new(http.tokens_file.get_ref()))?;
            tls("http", &http.tls_cert, &http.tls_key, &http.client_ca)?;
        }
        for (name, source) in &c.sources {
            tls(&format!("sources.{name}"), &source.tls_cert, &source.tls_key, &source.client_ca)?;
        }
        Ok(())
    }

    /// The archive the sink writes to.
    pub fn archive(&self) -> anyhow::Result<Archive> {
        self.config.archive()
    }

    /// A stream's partition keys (see `LoadedConfig::partition_keys`).
    fn partition_keys(&self, stream: &str) -> Vec<String> {
        self.config.partition_keys(stream)
    }

    /// Every stream's retention (by stream name; see `retention.rs`).
    pub fn retention_policies(&self) -> BTreeMap<String, crate::retention::Policy> {
        self.config.retention_policies(&self.streams)
    }

    /// Applies the streams' retention to the archive now, as its writer (the
    /// archive's staging lock is taken, so not while a run holds it): the pass
    /// is recorded in `_sluice` between a start and a stop event.
    pub fn apply_retention(&self, runtime: tokio::runtime::Handle) -> anyhow::Result<crate::retention::Plan> {
        let archive = self.archive()?;
        let mut settings = self.sink_settings(&archive)?;
        settings.retention_every = None;
        let mut sink = Sink::new(archive, runtime, settings)?;
        sink.record_start()?;
        let plan = sink.apply_retention()?;
        sink.stop()?;
        Ok(plan)
    }

    /// How the sink lays out, rolls, signs and expires this pipeline's streams.
    fn sink_settings(&self, archive: &Archive) -> anyhow::Result<SinkSettings> {
        let c = &self.config.config;
        // one staging dir per archive: what a dead run left there is cleared at start
        let staging_dir = self.config.staging_dir(archive);
        let source_streams: Vec<(String, usize)> = c
            .sources
            .keys()
            .map(|name| {
                let stream = self.streams.iter().position(|s| s == self.config.stream_of(name)).expect("collected");
                (name.clone(), stream)
            })
            .collect();
        let schemas: Vec<Arc<StreamSchema>> =
            self.streams.iter().map(|s| Arc::new(self.config.stream_schema(s))).collect();
        // the pipeline's own events have a stream of their own, after the config's
        let mut sink_streams = self.streams.clone();
        sink_streams.push(self_audit::STREAM.to_string());
        let mut sink_schemas = schemas.clone();
        sink_schemas.push(Arc::new(StreamSchema::new(Vec::new())));
        let mut sink_plugins = self.plugins_per_stream();
        sink_plugins.push(Vec::new());
        // and the volume counts, if kept
        if c.runtime.volume_interval_secs > 0 {
            sink_streams.push(crate::sinks::volume::STREAM.to_string());
            sink_schemas.push(Arc::new(crate::sinks::volume::schema()));
            sink_plugins.push(Vec::new());
        }
        let signer = match c.integrity.signing_key.as_str() {
            "" => None,
            path => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read signing key {path}"))?;
                Some(NoteSigner::from_text(&text).with_context(|| format!("signing key {path}"))?)
            }
        };
        let identity = PipelineIdentity {
            config_sha256: self.config.raw_sha256.clone(),
            plugins: self.stages.iter().map(|(name, s)| (name.clone(), logged_digest(&s.plugin))).collect(),
            signing_key: signer.as_ref().map(|s| s.verifier().to_text()),
        };
        let stream_roll_bytes = sink_streams
            .iter()
            .map(|s| (c.streams.get(s).and_then(|s| s.roll_size_mb).unwrap_or(c.sink.roll_size_mb) as usize) << 20)
            .collect();
        let settings = SinkSettings {
            streams: sink_streams,
            sources: source_streams,
            schemas: sink_schemas,
            roll_bytes: (c.sink.roll_size_mb as usize) << 20,
            stream_roll_bytes,
            roll_age: Duration::from_secs(c.sink.roll_age_secs),
            staging_dir,
            zstd_level: c.sink.zstd_level,
            plugins: sink_plugins,
            integrity: IntegritySettings {
                signer,
                interval: Duration::from_secs(c.integrity.checkpoint_interval_secs),
                heartbeat: Duration::from_secs(c.integrity.heartbeat_secs),
                copy_to: c.integrity.copy_to.as_deref().map(Archive::open).transpose()?,
                origin: c.integrity.origin.clone(),
            },
            partition_by: c.sink.partition_by.iter().map(|k| k.get_ref().clone()).collect(),
            identity,
            retention: self.retention_policies(),
            object_lock: c.sink.object_lock.as_ref().map(|m| *m.get_ref()),
            volume_interval: (c.runtime.volume_interval_secs > 0)
                .then(|| Duration::from_secs(c.runtime.volume_interval_secs)),
            expectations: c
                .sources
                .values()
                .map(|s| crate::sinks::volume::Expectation {
                    silent_after: s
                        .silent_after
                        .as_ref()
                        .map(|d| crate::config::parse_duration(d.get_ref()).expect("checked at load")),
                    spike_factor: s.spike_factor,
                })
                .collect(),
            alert_file: c.alerts.file.clone(),
            alert_webhook: c.alerts.webhook.as_ref().map(|u| (u.get_ref().clone(), reqwest::Client::new())),
            metrics_file: c.metrics.file.clone(),
            metrics_text: None,
            committed: None,
            alert_rules: self.config.alert_rules(),
            retention_every: match c.retention.apply_every_hours {
                0 => None,
                hours => Some(Duration::from_secs(hours * 3600)),
            },
        };
        Ok(settings)
    }

    fn run_with(
        self,
        runtime: tokio::runtime::Handle,
        stop: Arc<AtomicBool>,
        mode: Mode,
    ) -> anyhow::Result<(Summary, BTreeMap<String, u64>)> {
        let replay = match &mode {
            Mode::Quarantine(only) => Some(only.clone()),
            Mode::Run | Mode::ArchiveOnly => None,
        };
        let started = Instant::now();
        let c = &self.config.config;
        let archive = self.archive()?;
        let workers = if c.runtime.workers == 0 { crate::cores() } else { c.runtime.workers };
        let stream_meta: Arc<Vec<StreamMeta>> = Arc::new(
            self.streams
                .iter()
                .map(|s| StreamMeta {
                    name: s.clone(),
                    schema: Arc::new(self.config.stream_schema(s)),
                    partition_by: self.partition_keys(s),
                })
                .collect(),
        );
        let mut settings = self.sink_settings(&archive)?;
        let serving = matches!(mode, Mode::Run);
        if !serving {
            // sources that do not run in a replay are not silent
            settings.expectations.iter_mut().for_each(|e| *e = Default::default());
        }
        let metrics_text =
            (serving && c.metrics.listen.is_some()).then(|| Arc::new(std::sync::Mutex::new(String::new())));
        settings.metrics_text = metrics_text.clone();
        // the spool readers (http, syslog) delete segments that commits have read
        let committed: Arc<crate::sources::Committed> = Arc::default();
        if c.sources.values().any(|s| matches!(s.kind.get_ref(), SourceKind::Http | SourceKind::Syslog)) {
            settings.committed = Some(committed.clone());
        }
        let replay_streams = settings.streams.clone();
        let replay_sources = settings.sources.clone();
        let mut sink = Sink::new(archive.clone(), runtime.clone(), settings)?;
        sink.record_start()?;
        let mut replay_records = None;
        let mut kept = BTreeMap::new();
        if let Some(only) = &replay {
            let input = runtime.block_on(crate::replay::collect(
                &archive,
                &replay_streams,
                &replay_sources,
                only.as_deref(),
            ))?;
            replay_records = Some(input.records);
            kept = input.kept;
            sink.replay(input.retire, input.keep);
        }

        // the listeners: bound (and their spools opened) before any source starts
        let mut servers = Vec::new();
        let mut spools: BTreeMap<String, Arc<Spool>> = BTreeMap::new();
        let mut ingest_state = None;
        // when the run ends: open connections close, and the spools take no more
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);

        let telemetry = Arc::new(crate::telemetry::Telemetry::new(self.stages.keys().map(String::as_str)));
        let taps: Arc<crate::telemetry::Taps> = Arc::default();
        if serving && let Some(http) = &c.http {
            let mut routes = std::collections::HashMap::new();
            for (index, (name, source)) in c.sources.iter().enumerate() {
                if *source.kind.get_ref() != SourceKind::Http {
                    continue;
                }
                let dir = std::path::Path::new(http.spool_dir.get_ref()).join(name);
                let spool = Arc::new(Spool::open(&dir, &sink.committed_state(index).positions)?);
                let streams = self.config.streams_of(name).into_iter().map(str::to_string).collect();
                routes.insert(
                    self.config.http_path(name),
                    crate::http::Route { source: name.clone(), streams, spool: spool.clone() },
                );
                spools.insert(name.clone(), spool);
            }
            let ingest = Arc::new(crate::http::Ingest::new(
                routes,
                crate::http::read_tokens(std::path::Path::new(http.tokens_file.get_ref()))?,
                (http.max_body_mb as usize) << 20,
                http.spool_limit_mb << 20,
            ));
            let tls = tls("http", &http.tls_cert, &http.tls_key, &http.client_ca)?;
            let listen = http.listen.get_ref();
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(listen))
                .with_context(|| format!("http.listen: cannot listen on {listen}"))?;
            tracing::info!(%listen, tls = tls.is_some(), "Listening for ingest.");
            let handler = crate::http::ingest_handler(ingest.clone());
            servers.push(runtime.spawn(crate::http::serve(listener, tls, handler, shutdown_rx.clone())));
            ingest_state = Some(ingest);
        }
        for (index, (name, source)) in c.sources.iter().enumerate() {
            if !serving || *source.kind.get_ref() != SourceKind::Syslog {
                continue;
            }
            let (listen, dir) = match (&source.listen, &source.spool_dir) {
                (Some(l), Some(d)) => (l.get_ref(), std::path::Path::new(d.get_ref()).join(name)),
                _ => unreachable!("checked at load"),
            };
            let spool = Arc::new(Spool::open(&dir, &sink.committed_state(index).positions)?);
            let tenant = source.tenant.as_ref().map(|t| t.get_ref().clone()).unwrap_or_default();
            let at = || format!("sources.{name}.listen: cannot listen on {listen}");
            let task = match source.protocol {
                crate::config::SyslogProtocol::Udp => {
                    let socket = runtime.block_on(tokio::net::UdpSocket::bind(listen)).with_context(at)?;
                    runtime.spawn(crate::syslog::serve_udp(socket, spool.clone(), tenant))
                }
                crate::config::SyslogProtocol::Tcp => {
                    let tls = tls(&format!("sources.{name}"), &source.tls_cert, &source.tls_key, &source.client_ca)?;
                    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen)).with_context(at)?;
                    runtime.spawn(crate::syslog::serve_tcp(listener, tls, spool.clone(), tenant, shutdown_rx.clone()))
                }
            };
            tracing::info!(source = %name, %listen, "Listening for syslog.");
            servers.push(task);
            spools.insert(name.clone(), spool);
        }
        if let (Some(text), Some(listen)) = (&metrics_text, &c.metrics.listen) {
            let listen = listen.get_ref();
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(listen))
                .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
            let handler = crate::http::admin_handler(crate::http::Admin {
                metrics: text.clone(),
                ingest: ingest_state.clone(),
                telemetry: telemetry.clone(),
                taps: taps.clone(),
            });
            servers.push(runtime.spawn(crate::http::serve(listener, None, handler, shutdown_rx.clone())));
        }

        let (raw_tx, raw_rx) = bounded::<RawBatch>(workers * 2);
        let (sink_tx, sink_rx) = bounded::<SinkMsg>(workers * 4);

        // Sources
        let mut source_meta = Vec::new();
        let mut archive_reports = Vec::new();
        let mut source_threads = Vec::new();
        for (index, (name, source)) in c.sources.iter().enumerate() {
            let stream =
                self.streams.iter().position(|s| s == self.config.stream_of(name)).expect("collected in build");
            let chain_stages: Vec<Arc<Plugin>> =
                source.chain.iter().map(|s| self.stages[s.get_ref()].plugin.clone()).collect();
            source_meta.push(SourceMeta {
                name: name.clone(),
                chain: chain_stages,
                stream,
                events_in: source.events_in(),
                keep_raw: source.keep_raw,
            });
            if matches!(mode, Mode::ArchiveOnly) && *source.kind.get_ref() != SourceKind::Archive {
                continue;
            }
            let reader: Box<dyn Source> = match (&mut replay_records, *source.kind.get_ref()) {
                (Some(records), _) => Box::new(ReplaySource { records: std::mem::take(&mut records[index]) }),
                (None, SourceKind::Archive) => {
                    let report = Arc::new(std::sync::Mutex::new(ArchiveReport::default()));
                    archive_reports.push((name.clone(), report.clone()));
                    let time = |t: &Option<toml::Spanned<String>>| {
                        t.as_ref().map(|t| crate::config::parse_time(t.get_ref()).expect("checked at load"))
                    };
                    Box::new(ArchiveSource {
                        archive: match &source.archive {
                            None => archive.clone(),
                            Some(url) => Archive::open_existing(url.get_ref())
                                .with_context(|| format!("sources.{name}.archive"))?,
                        },
                        streams: source.from_streams.iter().map(|s| s.get_ref().clone()).collect(),
                        record: source.record,
                        since: time(&source.since),
                        until: time(&source.until),
                        select: source
                            .select
                            .as_ref()
                            .map(|w| crate::route::Expr::parse(w.get_ref()).expect("checked at load")),
                        resume: sink.committed_state(index).positions.clone(),
                        runtime: runtime.clone(),
                        report,
                    })
                }
                (None, SourceKind::File) => Box::new(FileSource {
                    patterns: source.paths.clone(),
                    follow: source.follow,
                    rotate_wait: Duration::from_secs(source.rotate_wait_secs),
                    olddir: source.olddir.as_ref().map(|dir| std::path::PathBuf::from(dir.get_ref())),
                    resume: sink.committed_state(index).positions.clone(),
                }),
                (None, SourceKind::Stdin) => Box::new(StdinSource),
                (None, SourceKind::Objects) => Box::new(ObjectSource {
                    archive: Archive::open(source.url.as_ref().expect("checked at load").get_ref())
                        .with_context(|| format!("sources.{name}.url"))?,
                    follow: source.follow,
                    poll: Duration::from_secs(source.poll_secs),
                    resume: sink.committed_state(index).positions.clone(),
                    runtime: runtime.clone(),
                }),
                (None, SourceKind::Http | SourceKind::Syslog) => match spools.get(name) {
                    Some(spool) => Box::new(SpoolSource {
                        spool: spool.clone(),
                        name: name.clone(),
                        resume: sink.committed_state(index).positions.clone(),
                        committed: committed.clone(),
                    }),
                    None => continue,
                },
            };
            let batcher = Batcher::new(index, c.runtime.batch_size, raw_tx.clone());
            let stop = stop.clone();
            let name = name.clone();
            source_threads.push(
                std::thread::Builder::new()
                    .name(format!("source-{name}"))
                    .spawn(move || reader.run(batcher, stop).with_context(|| format!("source `{name}`")))?,
            );
        }
        drop(raw_tx);

        // Workers
        let source_meta = Arc::new(source_meta);
        let redactor: Option<Arc<Plugin>> =
            c.sink.quarantine_redactor.as_ref().map(|s| self.stages[s.get_ref()].plugin.clone());
        let mut worker_threads = Vec::new();
        for w in 0..workers {
            let telemetry = telemetry.clone();
            let taps = taps.clone();
            let redactor = redactor.clone();
            let rx = raw_rx.clone();
            let tx = sink_tx.clone();
            let meta = source_meta.clone();
            let streams = stream_meta.clone();
            let router = self.router.clone();
            worker_threads.push(std::thread::Builder::new().name(format!("worker-{w}")).spawn(move || {
                // one instance per stage per worker, whichever chains use it
                // (a redactor shared by four sources is one instance, not four)
                let mut instances: BTreeMap<String, SharedStage> = BTreeMap::new();
                let mut instance = |p: &Arc<Plugin>| {
                    let metrics = telemetry.stages[&p.stage].clone();
                    instances.entry(p.stage.clone()).or_insert_with(|| SharedStage::new(p, metrics)).clone()
                };
                let mut chains: Vec<Chain> = meta
                    .iter()
                    .map(|m| {
                        let stages = m.chain.iter().map(|p| Box::new(instance(p)) as Box<dyn Stage>).collect();
                        let chain = match (m.events_in, m.keep_raw) {
                            (true, _) => Chain::of_events(stages),
                            (false, true) => Chain::new(stages).keeping_raw(),
                            (false, false) => Chain::new(stages),
                        };
                        chain.tapped(taps.clone())
                    })
                    .collect();
                let mut redactor = redactor.as_ref().map(instance);
                let targets = Targets { sources: &meta, streams: &streams, router: &router };
                work(&rx, &tx, &targets, &mut chains, redactor.as_mut())
            })?);
        }
        drop(raw_rx);
        drop(sink_tx);

        // Sink (this thread); a normal run commits as soon as everything is in
        let mut sink_result = drain_into(&mut sink, &sink_rx);
        if sink_result.is_ok() && replay.is_none() {
            sink_result = sink.stop();
        }
        if sink_result.is_err() {
            // stop everyone; they will see closed channels
            stop.store(true, Ordering::Relaxed);
            drop(sink_rx);
        }
        let mut errors = Vec::new();
        shutdown.send_replace(true);
        for server in &servers {
            server.abort();
        }
        for spool in spools.values() {
            spool.close();
        }
        for t in source_threads {
            if let Err(e) = t.join().expect("source thread panicked") {
                errors.push(format!("{e:#}"));
            }
        }
        for t in worker_threads {
            t.join().expect("worker thread panicked");
        }
        sink_result?;
        if replay.is_some() {
            // a replay commits only whole: else the quarantine stays as it was
            anyhow::ensure!(
                !stop.load(Ordering::Relaxed) && errors.is_empty(),
                "replay interrupted; the quarantine is unchanged {errors:?}"
            );
            sink.stop()?;
        }
        let stats = sink.stats.clone();
        // releases the staging dir's lock; the lock file stays (unlinking it
        // would let two later runs lock two different files)
        drop(sink);

        let summary = Summary {
            counts: stats.counts,
            files: stats.files,
            bytes: stats.bytes,
            commits: stats.commits,
            elapsed: started.elapsed(),
            location: archive.location.clone(),
            errors,
            archive_reads: archive_reports
                .into_iter()
                .map(|(name, report)| (name, report.lock().expect("not poisoned").clone()))
                .collect(),
        };
        Ok((summary, kept))
    }
}

type Setting = Option<toml::Spanned<String>>;

/// A listener's TLS from its certificate, key and client CA files, if it has a certificate.
fn tls(
    at: &str,
    cert: &Setting,
    key: &Setting,
    client_ca: &Setting,
) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    let path = |s: &toml::Spanned<String>| std::path::PathBuf::from(s.get_ref());
    match (cert, key) {
        (Some(cert), Some(key)) => {
            Ok(Some(crate::http::tls_acceptor(at, &path(cert), &path(key), client_ca.as_ref().map(path).as_deref())?))
        }
        _ => Ok(None),
    }
}

struct SourceMeta {
    name: String,
    chain: Vec<Arc<Plugin>>,
    /// Its stream, or its route's default stream (where its quarantine goes).
    stream: usize,
    /// Its records are events (an archive source with `record = "event"`).
    events_in: bool,
    /// Its records go into their events' `raw_data`.
    keep_raw: bool,
}

/// What a run reads.
enum Mode {
    /// The sources.
    Run,
    /// The archive's quarantined records (of one source, or all) instead.
    Quarantine(Option<String>),
    /// Only the `archive` sources.
    ArchiveOnly,
}

struct StreamMeta {
    name: String,
    schema: Arc<StreamSchema>,
    partition_by: Vec<String>,
}

/// What a worker needs to know of where events go.
struct Targets<'a> {
    sources: &'a [SourceMeta],
    streams: &'a [StreamMeta],
    router: &'a Router,
}

fn drain_into(sink: &mut Sink, rx: &Receiver<SinkMsg>) -> anyhow::Result<()> {
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(msg) => sink.handle(msg)?,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => sink.tick(false)?,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// A worker: runs chains over raw batches until the sources are done, and
/// sends the sink one message per batch.
fn work(
    rx: &Receiver<RawBatch>,
    tx: &Sender<SinkMsg>,
    targets: &Targets,
    chains: &mut [Chain],
    mut redactor: Option<&mut SharedStage>,
) {
    for batch in rx {
        let source = &targets.sources[batch.source];
        let out = chains[batch.source].run(&batch.records);
        let mut counts = Counts { read: batch.records.len() as u64, expanded: out.expanded, ..Counts::default() };
        let mut rejected = out.quarantined;
        // the stream whose quarantine takes each rejection: the source's, or
        // the stream whose own columns refused a routed copy
        let mut rejected_stream: Vec<usize> = vec![source.stream; rejected.len()];
        for r in &out.dropped {
            let stage = r.stage.as_ref().map_or("host", |s| s.stage.as_str());
            *counts.dropped.entry(format!("{stage}: {}", r.reason)).or_default() += 1;
        }
        // per record, its events (or copies) written: a rejection of a record
        // that also landed is `partial` (replaying the record would write the
        // rest again)
        let mut landed: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        let mut hits = Vec::new();
        let mut rows: BTreeMap<usize, schema::PartitionedRows> = BTreeMap::new();
        let base = &targets.streams[source.stream];
        // an http source's tenant is the sender's, whatever the event says
        let check = |text: &str, schema: &StreamSchema| {
            let mut row = schema::check_event(text, batch.observed, &source.name, schema)?;
            if let Some(tenant) = &batch.tenant {
                row.set_tenant(tenant);
            }
            Ok::<_, String>(row)
        };
        for (origin, text) in &out.events {
            let row = match check(text, &base.schema) {
                Ok(row) => row,
                Err(reason) => {
                    rejected.push(Rejected { origin: *origin, stage: None, reason });
                    rejected_stream.push(source.stream);
                    continue;
                }
            };
            let view = RowView::new(&row, &source.name);
            for (rule, key) in targets.router.alert_hits(&view) {
                let event = crate::route::summary(&view);
                hits.push(crate::sinks::alerting::Hit { rule, key, time: row.time(), event });
            }
            let mut kept: Vec<usize> = Vec::new();
            let to = targets.router.route(batch.source, &view);
            counts.copies += to.len() as u64 - 1;
            for stream in to {
                match targets.router.filter(stream, &view, text) {
                    Verdict::Keep => kept.push(stream),
                    Verdict::Drop(rule) => *counts.dropped.entry(rule).or_default() += 1,
                    Verdict::Protected { rule, filter } => {
                        *counts.protected.entry(format!("{rule} (over {filter})")).or_default() += 1;
                        kept.push(stream);
                    }
                }
            }
            // the checked row goes to the last stream that takes it; earlier ones get copies
            let mut row = Some(row);
            let last = kept.len().saturating_sub(1);
            for (k, stream) in kept.into_iter().enumerate() {
                let target = &targets.streams[stream];
                let row = if Arc::ptr_eq(&target.schema, &base.schema) || target.schema.same_columns(&base.schema) {
                    match k == last {
                        true => row.take().expect("moved only at the last stream"),
                        false => row.clone().expect("present until the last stream"),
                    }
                } else {
                    match check(text, &target.schema) {
                        Ok(row) => row,
                        Err(reason) => {
                            let reason = format!("stream `{}`: {reason}", target.name);
                            rejected.push(Rejected { origin: *origin, stage: None, reason });
                            rejected_stream.push(stream);
                            continue;
                        }
                    }
                };
                rows.entry(stream)
                    .or_insert_with(|| schema::PartitionedRows::new(&target.schema, &target.partition_by))
                    .push(row);
                *landed.entry(*origin).or_default() += 1;
            }
        }
        let partial = |origin: u32| landed.get(&origin).is_some_and(|n| *n > 0);
        let lines = quarantine_lines(&rejected, &partial, source, &batch, redactor.as_deref_mut());
        let quarantine = rejected_stream.into_iter().zip(lines).collect();
        let partitions = rows
            .into_iter()
            .flat_map(|(stream, rows)| rows.finish().into_iter().map(move |(p, columns)| (stream, p, columns)))
            .collect();
        let msg = SinkMsg {
            source: batch.source,
            no: batch.no,
            positions: batch.positions,
            counts,
            partitions,
            quarantine,
            hits,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// The quarantine records of a batch: where each came from, who refused it
/// and why, and the original bytes (text when UTF-8, else hex). With a
/// redactor, the text and the reason pass through it first; where it fails,
/// only the record's SHA-256 and length are kept. `partial` marks a rejection
/// of a record other events or copies of which were written (`"partial":
/// true`: the record is kept whole as evidence, but not replayed).
fn quarantine_lines(
    rejected: &[Rejected],
    partial: &dyn Fn(u32) -> bool,
    source: &SourceMeta,
    batch: &RawBatch,
    redactor: Option<&mut SharedStage>,
) -> Vec<String> {
    let observed = chrono::DateTime::from_timestamp_micros(batch.observed).unwrap_or_default();
    let observed = observed.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut lines: Vec<serde_json::Value> = rejected
        .iter()
        .map(|r| {
            let (stage, plugin, version, sha256) = match &r.stage {
                Some(s) => (s.stage.as_str(), s.plugin.as_str(), s.version.as_str(), s.sha256.as_str()),
                None => ("schema", "sluice", env!("CARGO_PKG_VERSION"), ""),
            };
            let mut line = json!({
                "observed_time": observed,
                "source": source.name,
                "stage": stage,
                "plugin": plugin,
                "plugin_version": version,
                "plugin_sha256": sha256,
                "reason": r.reason,
            });
            if partial(r.origin) {
                line["partial"] = true.into();
            }
            // the sender's tenant (http), which a replay of the record keeps
            if let Some(tenant) = &batch.tenant {
                line["tenant"] = tenant.as_ref().into();
            }
            line
        })
        .collect();
    let Some(redactor) = redactor else {
        for (line, r) in lines.iter_mut().zip(rejected) {
            let raw = &batch.records[r.origin as usize];
            match std::str::from_utf8(raw) {
                Ok(text) => line["record"] = text.into(),
                Err(_) => line["record_hex"] = hex::encode(raw).into(),
            }
        }
        return lines.iter().map(|l| l.to_string()).collect();
    };
    let events: Vec<String> = rejected
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&batch.records[r.origin as usize]);
            json!({"time": 0, "raw_data": text, "message": r.reason}).to_string()
        })
        .collect();
    let results = crate::stage::process_each(redactor, &events);
    for ((line, r), result) in lines.iter_mut().zip(rejected).zip(results) {
        let raw = &batch.records[r.origin as usize];
        let redacted = match result {
            Ok(crate::stage::Outcome::Keep(e)) => serde_json::from_str::<serde_json::Value>(&e).ok(),
            _ => None,
        };
        match redacted {
            Some(e) if e["raw_data"].is_string() && e["message"].is_string() => {
                line["record"] = e["raw_data"].clone();
                line["reason"] = e["message"].clone();
                if std::str::from_utf8(raw).is_err() {
                    line["record_lossy"] = true.into();
                }
                if e["redactions"].is_array() {
                    line["redactions"] = e["redactions"].clone();
                }
            }
            _ => {
                line["reason"] = "(withheld: the quarantine redactor failed on this record)".into();
                line["record_sha256"] = hex::encode(sha2::Sha256::digest(raw)).into();
                line["record_len"] = raw.len().into();
            }
        }
    }
    lines.iter().map(|l| l.to_string()).collect()
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    /// Records read, events written, quarantined and dropped in this run.
    pub counts: Counts,
    pub files: u64,
    pub bytes: u64,
    pub commits: u64,
    pub elapsed: Duration,
    pub location: String,
    /// Sources that failed (e.g. a file that cannot be read).
    pub errors: Vec<String>,
    /// Per `archive` source, what it read.
    pub archive_reads: Vec<(String, ArchiveReport)>,
}

impl Summary {
    /// Whether every record read is accounted for:
    /// read + expanded = written + quarantined + dropped.
    pub fn balanced(&self) -> bool {
        self.counts.balanced()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let c = &self.counts;
        write!(
            f,
            "read {} records, wrote {} events, quarantined {}, dropped {}, {} files, {} bytes, {} commits, {:.2}s, {:.0} events/s -> {}",
            c.read,
            c.written,
            c.quarantined,
            c.dropped_total(),
            self.files,
            self.bytes,
            self.commits,
            secs,
            c.written as f64 / secs.max(1e-9),
            self.location
        )
    }
}

//! The Wasm side of stages: one engine per process, each plugin compiled once,
//! one instance per worker, nothing granted by default.
//!
//! Limits: an epoch deadline per call (a background thread ticks every
//! [`TICK`]) unless the stage has no time limit, and a cap on each
//! instance's memory. A trapped instance is thrown
//! away and built again from its `InstancePre`; callers in `stage.rs` find the
//! record that caused the trap.

mod v0_1_0;

pub use v0_1_0::Outcome;
use v0_1_0::{Level, PARSER_EXPORT, PluginInfo, TRANSFORM_EXPORT, parser, transform};

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Why a plugin could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("plugin {path}: sha256 is {actual}, but the pipeline pins {expected}")]
    Digest { path: String, expected: String, actual: String },
    #[error("plugin {path} is not a valid Wasm component: {message}")]
    Compile { path: String, message: String },
    #[error("plugin {path} exports {found}, but this sluice speaks sluice:plugin@0.1.x ({wanted})")]
    Version { path: String, found: String, wanted: &'static str },
    #[error("plugin {path} exports neither {PARSER_EXPORT} nor {TRANSFORM_EXPORT}")]
    NotAPlugin { path: String },
    #[error("plugin {path} cannot be linked: {message}")]
    Link { path: String, message: String },
    #[error("plugin {name} {version} refused its config: {message}")]
    Init { name: String, version: String, message: String },
    #[error("plugin {path} failed to start: {message}")]
    Start { path: String, message: String },
    #[error("{message}")]
    Grant { message: String },
    #[error(
        "plugin {path} imports {import}: plugins get no network access (sluice links no wasi:http); \
         rebuild it without HTTP (componentize-js: `-d http fetch-event`)"
    )]
    Network { path: String, import: String },
}

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Parser,
    Transform,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Parser => "parser",
            PluginKind::Transform => "transform",
        })
    }
}

/// The process-wide engines and the epoch ticker.
#[derive(Clone)]
pub struct WasmHost {
    /// Compiles code that checks the epoch deadline (at function entries and
    /// loop back-edges), for calls with a time limit.
    engine: Engine,
    /// Compiles code without those checks, for stages with `time_limit =
    /// false`: the checks cost 17-25 % of a plugin's time (docs/performance.md).
    unlimited: Engine,
}

impl WasmHost {
    pub fn new() -> anyhow::Result<Self> {
        Self::with_cache(default_cache_dir().as_deref())
    }

    /// An engine whose compiled-plugin cache lives in `cache_dir` (none: no cache).
    pub fn with_cache(cache_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        // tables filled at instantiation (an instance serves many calls): an
        // indirect call (`dyn` in a plugin, regex's strategies) then skips the
        // lazy-init check; the standard pipeline measured 0.5-1 % less CPU
        config.table_lazy_init(false);
        #[cfg(feature = "profiling")]
        match std::env::var("SLUICE_WASM_PERFMAP").as_deref() {
            Ok("1") => {
                config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            Ok("jitdump") => {
                config.profiler(wasmtime::ProfilingStrategy::JitDump);
            }
            _ => {}
        }
        let cache = cache_dir.map(|dir| {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir.join("wasmtime"));
            wasmtime::Cache::new(cache)
        });
        match cache {
            Some(Ok(cache)) => {
                config.cache(Some(cache));
            }
            Some(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "Compiled-plugin cache unavailable; compiling every start.")
            }
            None => tracing::warn!("No compiled-plugin cache directory (set SLUICE_CACHE_DIR); compiling every start."),
        }
        let start =
            |config: &Config| Engine::new(config).map_err(|e| anyhow::anyhow!("cannot start the Wasm engine: {e:#}"));
        let unlimited = start(&config)?;
        let engine = start(config.epoch_interruption(true))?;
        let weak = engine.weak();
        std::thread::Builder::new().name("sluice-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })?;
        Ok(WasmHost { engine, unlimited })
    }

    /// Compiles a plugin (once) and checks it is a 0.1.x sluice plugin.
    pub fn load(&self, spec: PluginSpec) -> Result<Arc<Plugin>, LoadError> {
        let path = spec.display.clone();
        let digest = hex::encode(Sha256::digest(&spec.bytes));
        if let Some(expected) = &spec.sha256
            && !expected.eq_ignore_ascii_case(&digest)
        {
            return Err(LoadError::Digest { path, expected: expected.clone(), actual: digest });
        }
        let engine = if spec.timeout.is_some() { &self.engine } else { &self.unlimited };
        let component = Component::new(engine, &spec.bytes)
            .map_err(|e| LoadError::Compile { path: path.clone(), message: format!("{e:#}") })?;
        let kind = plugin_kind(engine, &component, &path)?;
        if let Some((import, _)) =
            component.component_type().imports(engine).find(|(name, _)| name.starts_with("wasi:http/"))
        {
            return Err(LoadError::Network { path, import: import.to_string() });
        }
        let mut linker: Linker<HostState> = Linker::new(engine);
        let link = |e: wasmtime::Error| LoadError::Link { path: path.clone(), message: format!("{e:#}") };
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link)?;
        parser::ParserPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link)?;
        let pre = linker.instantiate_pre(&component).map_err(link)?;
        let pre = match kind {
            PluginKind::Parser => Pre::Parser(parser::ParserPluginPre::new(pre).map_err(link)?),
            PluginKind::Transform => Pre::Transform(transform::TransformPluginPre::new(pre).map_err(link)?),
        };
        let grants = Grants::new(&spec.stage, &spec.read_files).map_err(|message| LoadError::Grant { message })?;
        let mut plugin = Plugin {
            engine: engine.clone(),
            stage: spec.stage,
            kind,
            digest,
            info: PluginInfo { name: String::new(), version: String::new() },
            config_json: spec.config_json,
            timeout: spec.timeout,
            memory_bytes: spec.memory_bytes,
            clocks: spec.clocks,
            grants,
            pre,
        };
        // Start one instance now: it reads the plugin's identity and proves
        // that its config is accepted before any record flows.
        let probe = plugin.instantiate().map_err(|mut message| {
            if message.contains("exceeds memory limits") {
                let mib = plugin.memory_bytes >> 20;
                message.push_str(&format!(" (memory_mb = {mib} is less than the plugin needs to start)"));
            }
            LoadError::Start { path: path.clone(), message }
        })?;
        plugin.info = probe.info;
        Ok(Arc::new(plugin))
    }
}

/// Where compiled plugins are cached, keyed by the component's bytes and the
/// engine's settings: `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`, else
/// `~/.cache/sluice`. A hit turns a compile of seconds into milliseconds.
fn default_cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("SLUICE_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| std::path::PathBuf::from(d).join("sluice")))
        .or_else(|| std::env::var_os("HOME").map(|d| std::path::PathBuf::from(d).join(".cache/sluice")))
}

/// Everything needed to load one stage's plugin.
pub struct PluginSpec {
    pub stage: String,
    /// The path or bundled name, for messages.
    pub display: String,
    pub bytes: Vec<u8>,
    pub sha256: Option<String>,
    pub config_json: String,
    /// `None`: no time limit (compiled without deadline checks).
    pub timeout: Option<Duration>,
    pub memory_bytes: usize,
    /// Whether the plugin may read the host's clocks.
    pub clocks: bool,
    /// Files the plugin may read, as `/grants/<file name>` (read-only copies).
    pub read_files: Vec<std::path::PathBuf>,
}

fn plugin_kind(engine: &Engine, component: &Component, path: &str) -> Result<PluginKind, LoadError> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    if exports.iter().any(|e| e == PARSER_EXPORT) {
        return Ok(PluginKind::Parser);
    }
    if exports.iter().any(|e| e == TRANSFORM_EXPORT) {
        return Ok(PluginKind::Transform);
    }
    // 0.1.x minor/patch releases are compatible; anything else is refused by name.
    let ours = |e: &&String| e.starts_with("sluice:plugin/parser@") || e.starts_with("sluice:plugin/transform@");
    if let Some(found) = exports.iter().find(ours) {
        let version = found.rsplit('@').next().unwrap_or("");
        if version.starts_with("0.1.") {
            return Ok(if found.starts_with("sluice:plugin/parser@") {
                PluginKind::Parser
            } else {
                PluginKind::Transform
            });
        }
        return Err(LoadError::Version { path: path.into(), found: found.clone(), wanted: "sluice:plugin@0.1.0" });
    }
    Err(LoadError::NotAPlugin { path: path.into() })
}

enum Pre {
    Parser(parser::ParserPluginPre<HostState>),
    Transform(transform::TransformPluginPre<HostState>),
}

/// A compiled plugin, ready to be instantiated by any worker.
pub struct Plugin {
    engine: Engine,
    pub stage: String,
    pub kind: PluginKind,
    /// SHA-256 of the component bytes, hex.
    pub digest: String,
    pub info: PluginInfo,
    config_json: String,
    timeout: Option<Duration>,
    memory_bytes: usize,
    clocks: bool,
    /// The directory holding the copies of the files it may read.
    grants: Option<Grants>,
    pre: Pre,
}

/// Read-only copies of the files a plugin was granted, in a directory of
/// their own (removed with the plugin): a copy taken at start, so the plugin
/// sees neither the directory the file lives in nor later changes to it.
struct Grants {
    dir: std::path::PathBuf,
}

impl Grants {
    fn new(stage: &str, files: &[std::path::PathBuf]) -> Result<Option<Grants>, String> {
        if files.is_empty() {
            return Ok(None);
        }
        let dir =
            std::env::temp_dir().join(format!("sluice-grants-{}-{stage}-{}", std::process::id(), uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let grants = Grants { dir };
        for file in files {
            let name = file.file_name().ok_or_else(|| format!("{} is not a file", file.display()))?;
            let to = grants.dir.join(name);
            if to.exists() {
                return Err(format!("two granted files are named {}", name.to_string_lossy()));
            }
            std::fs::copy(file, &to).map_err(|e| format!("cannot read granted file {}: {e}", file.display()))?;
        }
        Ok(Some(grants))
    }
}

impl Drop for Grants {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.info.name
    }
    pub fn version(&self) -> &str {
        &self.info.version
    }
    /// The plugin's config table, as JSON.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The epoch deadline of a call, in ticks. Without a time limit the
    /// engine compiles no checks, so none can see it; it is 0 so that a
    /// check compiled in by mistake would trap at once (and
    /// `a_stage_without_a_time_limit_is_not_stopped` would fail).
    fn deadline_ticks(&self) -> u64 {
        self.timeout.map_or(0, |t| (t.as_millis() / TICK.as_millis()).max(1) as u64)
    }

    /// A fresh instance with its config applied.
    pub fn instantiate(&self) -> Result<Instance, String> {
        self.try_instantiate().map_err(|e| format!("{e:#}"))
    }

    fn try_instantiate(&self) -> wasmtime::Result<Instance> {
        let state = HostState {
            wasi: sandbox(self.clocks, self.grants.as_ref().map(|g| g.dir.as_path()))?,
            table: ResourceTable::new(),
            limits: Limits { memory_bytes: self.memory_bytes, memory_denied: false, memory_in_use: 0 },
            stage: self.stage.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks());
        let (bindings, info, init) = match &self.pre {
            Pre::Parser(pre) => {
                let b = pre.instantiate(&mut store)?;
                let g = b.sluice_plugin_parser();
                let info = g.call_info(&mut store)?;
                store.set_epoch_deadline(self.deadline_ticks());
                let init = g.call_init(&mut store, &self.config_json)?;
                (Bindings::Parser(b), info, init)
            }
            Pre::Transform(pre) => {
                let b = pre.instantiate(&mut store)?;
                let g = b.sluice_plugin_transform();
                let info = g.call_info(&mut store)?;
                store.set_epoch_deadline(self.deadline_ticks());
                let init = g.call_init(&mut store, &self.config_json)?;
                (Bindings::Transform(b), info, init)
            }
        };
        if let Err(message) = init {
            return Err(wasmtime::Error::msg(
                LoadError::Init { name: info.name, version: info.version, message }.to_string(),
            ));
        }
        Ok(Instance { store, bindings, info, deadline: self.deadline_ticks() })
    }
}

enum Bindings {
    Parser(parser::ParserPlugin),
    Transform(transform::TransformPlugin),
}

/// One live instance. After any error from [`Instance::parse`] or
/// [`Instance::process`] it must be dropped: a trapped instance cannot be re-entered.
pub struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
    info: PluginInfo,
    deadline: u64,
}

impl Instance {
    /// Linear memory the instance holds now, bytes.
    pub fn memory_in_use(&self) -> usize {
        self.store.data().limits.memory_in_use
    }

    /// Why the last call failed, in words for a quarantine record.
    pub fn describe_fault(&self, e: &wasmtime::Error) -> String {
        if self.store.data().limits.memory_denied {
            let mib = self.store.data().limits.memory_bytes >> 20;
            return format!("plugin exceeded its memory limit ({mib} MiB) and trapped");
        }
        describe_fault(e)
    }

    pub fn parse(&mut self, records: &[Vec<u8>]) -> wasmtime::Result<Vec<Outcome>> {
        self.store.set_epoch_deadline(self.deadline);
        match &self.bindings {
            Bindings::Parser(b) => b.sluice_plugin_parser().call_parse(&mut self.store, records),
            Bindings::Transform(_) => {
                Err(wasmtime::Error::msg(format!("{} is a transform, not a parser", self.info.name)))
            }
        }
    }

    pub fn process(&mut self, events: &[String]) -> wasmtime::Result<Vec<Outcome>> {
        self.store.set_epoch_deadline(self.deadline);
        match &self.bindings {
            Bindings::Transform(b) => b.sluice_plugin_transform().call_process(&mut self.store, events),
            Bindings::Parser(_) => {
                Err(wasmtime::Error::msg(format!("{} is a parser, not a transform", self.info.name)))
            }
        }
    }
}

/// The WASI context of an instance: no preopened directories, environment,
/// arguments or network addresses, stdin closed, stdout/stderr discarded; and
/// unless `clocks`, clocks that read the Unix epoch and never move.
fn sandbox(clocks: bool, grants: Option<&std::path::Path>) -> wasmtime::Result<WasiCtx> {
    let mut builder = WasiCtx::builder();
    if !clocks {
        builder.wall_clock(StoppedClock).monotonic_clock(StoppedClock);
    }
    if let Some(dir) = grants {
        builder.preopened_dir(dir, "/grants", wasmtime_wasi::FsPerms::ReadOnly)?;
    }
    Ok(builder.build())
}

/// The clock a plugin gets when it is granted none.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// What a store holds: an empty WASI context (no files, env, args or network),
/// the memory limits, and the stage name for log lines.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    stage: String,
}

/// The memory cap of one instance, all its linear memories together;
/// remembers a refused growth so that the resulting trap can be reported as
/// what it is.
struct Limits {
    memory_bytes: usize,
    memory_denied: bool,
    /// Linear memory in use, all memories of the instance together.
    memory_in_use: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The cap is for all of the instance's memories together (a component
        // may have several: the plugin's, an adapter's).
        let ok = self.memory_in_use + desired.saturating_sub(current) <= self.memory_bytes;
        self.memory_denied |= !ok;
        if ok {
            self.memory_in_use += desired.saturating_sub(current);
        }
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl v0_1_0::parser::sluice::plugin::types::Host for HostState {}

impl v0_1_0::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        // Plugins may echo what they process: keep lines short.
        let message: String = message.chars().take(512).collect();
        let stage = self.stage.as_str();
        match level {
            Level::Trace => tracing::trace!(stage, "{message}"),
            Level::Debug => tracing::debug!(stage, "{message}"),
            Level::Info => tracing::info!(stage, "{message}"),
            Level::Warn => tracing::warn!(stage, "{message}"),
            Level::Error => tracing::error!(stage, "{message}"),
        }
    }
}

/// A short reason for a trap or host error, for quarantine records.
fn describe_fault(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => "plugin exceeded its time limit and was interrupted".into(),
            wasmtime::Trap::UnreachableCodeReached => "plugin trapped (panic or abort, e.g. out of memory)".into(),
            wasmtime::Trap::StackOverflow => "plugin trapped: stack overflow".into(),
            other => format!("plugin trapped: {other}"),
        };
    }
    format!("plugin failed: {e:#}")
}

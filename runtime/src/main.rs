//! The `sluice` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::config::LoadedConfig;
use sluice::integrity::note::{NoteSigner, parse_verifiers};
use sluice::integrity::verify::Options;
use sluice::pipeline::Pipeline;
use sluice::sinks::Archive;
use sluice::wasm::WasmHost;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// sluice: an audit-log pipeline. Reads raw records, runs them through sandboxed
/// WebAssembly plugins, and writes typed, partitioned Parquet to object storage.
#[derive(Parser)]
#[command(name = "sluice", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its sources are exhausted (or, for following,
    /// http and syslog sources, until Ctrl-C / SIGTERM), commit, print a
    /// summary. Resumes where the output's last commit left each input.
    /// SIGHUP reloads the pipeline file: the new config starts where the old
    /// one committed, or, if it does not load, the old one goes on.
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Run the bundled plugins as native code in the host instead of Wasm,
        /// without a sandbox: for the benchmark's pipeline (b) only, to
        /// measure what the sandbox costs. Files are logged with the digest
        /// `native`. Exists only in builds with `--features native-plugins`.
        #[cfg(feature = "native-plugins")]
        #[arg(long)]
        native_plugins: bool,
    },
    /// Run a pipeline's `type = "archive"` sources only: archived events of a
    /// time range (and `where` condition) through a new version of a chain
    /// into new streams — for a parser fix (`record = "raw_data"`, kept by
    /// `keep_raw`), a new enrichment (`record = "event"`), or the records the
    /// old parser quarantined (`record = "quarantine"`, a copy). Every file read is
    /// checked against its integrity log entry first; the files written are
    /// logged with the plugins (name, version, sha256) that produced them.
    /// Exactly once: stopped, it resumes at the next event; run again, it
    /// reads nothing new. Quarantined records: `sluice quarantine replay`.
    Replay {
        /// The pipeline file (TOML) with the archive sources and the new chains.
        pipeline: PathBuf,
    },
    /// Make the `sluice run` that writes this pipeline's archive reload its
    /// file (sends it SIGHUP; it names itself in its staging folder's lock).
    Reload {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
    /// Check a pipeline file: syntax, unknown keys, references, plugin files,
    /// sha256 pins, and that each plugin accepts its config. Reads nothing else.
    Validate {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
    /// Re-derive an archive's integrity from its bytes: every file (Parquet and
    /// quarantine) against its stream's integrity log, every event against its hash, the log against
    /// its signed checkpoints. Exits 0 only when the archive is whole; otherwise
    /// names each problem (stream, file/entry/checkpoint, check).
    Verify {
        /// The archive: a path, file://, s3://bucket/prefix or memory:// URL.
        archive: String,
        /// File of trusted public keys (`sluice keys generate` writes one), one per line.
        #[arg(long)]
        key: PathBuf,
        /// A checkpoint trusted from elsewhere (an earlier verification, the
        /// `copy_to` location): the archive must contain its tree. Repeatable.
        #[arg(long = "trusted-checkpoint")]
        trusted_checkpoint: Vec<PathBuf>,
        /// Longest allowed time between consecutive checkpoints, in seconds (a
        /// missing heartbeat is reported).
        #[arg(long = "max-gap")]
        max_gap: Option<u64>,
    },
    /// Print an inclusion proof of one event (JSON): the event, its place in
    /// its file's events root, the file's entry in the stream's log, and a
    /// signed checkpoint of that log. What an auditor asks for.
    Prove {
        /// The archive: a path, file://, s3://bucket/prefix or memory:// URL.
        archive: String,
        /// The stream the event is in.
        stream: String,
        /// The event: its `seq` number or its `metadata_uid`.
        event: String,
        /// Trusted public keys; the proof uses the newest checkpoint they verify.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a proof from `sluice prove` offline, with nothing but the proof and
    /// the trusted keys.
    VerifyProof {
        /// The proof file (JSON).
        proof: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Signing keys for the integrity log.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The quarantine: records that failed parsing, a plugin or the schema.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// How long streams are kept: `[streams.<name>] retention` and `[retention]`
    /// in the pipeline file.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Legal holds: what they cover never expires, whatever the retention.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// SQL over an archive (a local folder or s3://bucket/prefix), with
    /// DataFusion: each stream that holds files is a table named after it
    /// (`_sluice` and `_volume` too), `events` is every stream not starting
    /// with `_`. A WHERE on a partition key (event_day, hour, tenant_uid, ...)
    /// skips the folders it excludes. Needs a build with `--features query`.
    Query {
        /// The archive: a folder, or s3://bucket/prefix (AWS_* environment for credentials).
        archive: String,
        /// One SQL statement (DataFusion's dialect); it may start with a `--` comment.
        #[arg(allow_hyphen_values = true)]
        sql: String,
        /// table, csv, json (one object per line) or parquet (needs --out).
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
        /// Write the result to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Live rates of a running pipeline, from its admin listener (`[metrics]
    /// listen`): per source, records read and events written per second; per
    /// stage, inputs and outputs per second, errors, faults and mean call
    /// time; per http source, records accepted per second and the spool
    /// backlog. Refreshes every --interval seconds.
    Top {
        /// The admin listener: host:port or http://host:port.
        admin: String,
        /// Seconds between samples (the sink's counters are redrawn every 5 s).
        #[arg(long, default_value_t = 5)]
        interval: u64,
        /// Print this many tables, then exit (default: until Ctrl-C).
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// Live events of a running pipeline at a stage boundary, from its admin
    /// listener: what goes into a stage (--before; raw records for a
    /// parser) or comes out of it (--after), one per line, optionally only
    /// events matching a condition (the route language). Shows events as
    /// they are there: before a redactor, unredacted — keep the admin
    /// listener on loopback. Items a slow reader cannot take are skipped,
    /// never waited for.
    Tap {
        /// The admin listener: host:port or http://host:port.
        admin: String,
        /// Show a stage's inputs.
        #[arg(long, conflicts_with = "after", required_unless_present = "after")]
        before: Option<String>,
        /// Show a stage's outputs.
        #[arg(long)]
        after: Option<String>,
        /// Only events matching this condition, e.g. 'status_id == 2'.
        #[arg(long = "where")]
        select: Option<String>,
        /// Stop after this many.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Plugins on their own, outside a pipeline.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run one plugin on an input file — one raw record (parser) or one JSON
    /// event (transform) per line, each given to it alone — and print one JSON
    /// outcome per line: {"keep": event}, {"many": [events]}, {"drop": rule},
    /// {"error": reason} or {"fault": why} (trapped, out of time or memory).
    /// With --expect, compare with a golden file (as JSON values, line by
    /// line), show each difference, and exit 1 if there is one.
    Test {
        /// A bundled plugin's name (e.g. `parse-json`) or a `.wasm` component.
        plugin: String,
        /// The input, one record or event per line.
        #[arg(long)]
        input: PathBuf,
        /// The golden file of outcomes to compare with.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// The plugin's config: a TOML or JSON file (default: empty).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the outcomes to this file (e.g. to make a golden file) instead of printing them.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Measure one plugin: size, load time with an empty and a warm
    /// compiled-code cache, instantiation (with `init`), memory, and ns per
    /// event in batches of --batch (the input's lines repeated). Medians of
    /// --rounds; --json prints one JSON object instead of text.
    Bench {
        /// A bundled plugin's name or a `.wasm` component.
        plugin: String,
        /// Sample input, one record or event per line.
        #[arg(long)]
        input: PathBuf,
        /// The plugin's config: a TOML or JSON file (default: empty).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 51)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Start a plugin project in a new folder (./NAME, or --dir): the
    /// language's SDK, the WIT contract, a working transform plugin and a
    /// golden test (`test/`). Then: `sluice plugin build DIR` and
    /// `sluice plugin test`.
    New {
        /// The plugin's name (lower-case letters, digits, dashes); also the folder.
        name: String,
        /// The language: rust, c, python or js.
        #[arg(long, value_enum)]
        lang: sluice::plugin_dev::Lang,
        /// Where to create the project (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a plugin project (a folder with a sluice-plugin.toml) into a Wasm
    /// component, with its language's toolchain: rust: cargo (target
    /// wasm32-wasip2); c: clang with wasi-libc ($SLUICE_CC to choose), bindings
    /// and component made by sluice itself; python: componentize-py; js:
    /// componentize-qjs. Prints each command it runs.
    Build {
        /// The project folder (default: the current one).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component (default: DIR/NAME.wasm).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Delete the files (and quarantine files) whose newest event is older than
    /// their stream's retention, except what a hold keeps. Each deletion is a
    /// retired entry in the stream's integrity log and a `retention.delete`
    /// event in the `_sluice` stream, committed before the file goes. Takes the
    /// archive's writer lock, so it runs between runs; a running pipeline
    /// applies retention itself (`retention.apply_every_hours`).
    Apply {
        /// The pipeline file (TOML): its streams' retention and its sink's archive.
        pipeline: PathBuf,
        /// Only print what would be deleted and what holds keep.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum HoldCommand {
    /// Place a hold on a stream, or on the paths of a stream that start with a
    /// prefix (e.g. `event_day=202601`). Any hold on a stream also keeps its
    /// quarantine. Needs no lock: it can be placed while a pipeline runs.
    Add {
        /// The pipeline file (TOML) whose archive is held.
        pipeline: PathBuf,
        #[arg(long)]
        stream: String,
        /// Start of the held paths below the stream (default: the whole stream).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Why (a case or ticket), recorded with the hold.
        #[arg(long)]
        reason: String,
    },
    /// Release a hold (recorded, with the reason; the hold's record stays).
    Remove {
        pipeline: PathBuf,
        /// The hold's id, as `sluice hold list` shows it.
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// List the holds in force (with `--all`, also released ones).
    List {
        pipeline: PathBuf,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Run the output's quarantined records again through the pipeline (after
    /// fixing a plugin or the config). In one commit: the records that now
    /// land are written, those that fail again are quarantined again with
    /// their new reason, and the old quarantine files are removed. Interrupted,
    /// it changes nothing. Records that cannot be replayed stay as they are:
    /// those the quarantine redactor withheld, those kept only as lossy text,
    /// and rejected parts of a record whose other events were written (replaying the whole
    /// record would duplicate the others).
    Replay {
        /// The pipeline file (TOML); its sink is the archive whose quarantine is replayed.
        pipeline: PathBuf,
        /// Only the records of this source (default: all sources of the pipeline).
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new Ed25519 key pair: DIR/signing.key (private, mode 0600) and
    /// DIR/signing.pub (the verifier key to give `sluice verify --key`).
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// The key's name, part of every signature line.
        #[arg(long, default_value = "sluice")]
        name: String,
    },
}

// glibc's per-thread arenas hold on to freed memory: MALLOC_ARENA_MAX=2 alone
// took a 10 M-event run's peak RSS from 447 to 358 MiB; mimalloc without
// transparent huge pages (the `no_thp` feature) holds least (docs/performance.md)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // colours only for a person at a terminal, never in a log file or pipe
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(not(feature = "native-plugins"))]
        Command::Run { pipeline } => run(&pipeline, Reading::Sources),
        #[cfg(feature = "native-plugins")]
        Command::Run { pipeline, native_plugins } => {
            if native_plugins {
                sluice::native::enable();
            }
            run(&pipeline, Reading::Sources)
        }
        Command::Replay { pipeline } => run(&pipeline, Reading::Archive),
        Command::Quarantine { command: QuarantineCommand::Replay { pipeline, source } } => {
            run(&pipeline, Reading::Quarantine(source))
        }
        Command::Validate { pipeline } => validate(&pipeline),
        Command::Reload { pipeline } => reload(&pipeline),
        Command::Verify { archive, key, trusted_checkpoint, max_gap } => {
            verify(&archive, &key, &trusted_checkpoint, max_gap)
        }
        Command::Keys { command: KeysCommand::Generate { out, name } } => generate_keys(&out, &name),
        Command::Prove { archive, stream, event, key } => prove(&archive, &stream, &event, &key),
        Command::VerifyProof { proof, key } => verify_proof(&proof, &key),
        Command::Retention { command: RetentionCommand::Apply { pipeline, dry_run } } => {
            apply_retention(&pipeline, dry_run)
        }
        Command::Hold { command } => hold(command),
        Command::Query { archive, sql, format, out } => query(&archive, &sql, format, out.as_deref()),
        Command::Top { admin, interval, iterations } => sluice::top::run(&admin, interval, iterations),
        Command::Tap { admin, before, after, select, limit } => {
            sluice::top::tap(&admin, before.as_deref(), after.as_deref(), select.as_deref(), limit)
        }
        Command::Plugin { command: PluginCommand::Test { plugin, input, expect, config, write } } => {
            plugin_test(&plugin, &input, expect.as_deref(), config.as_deref(), write.as_deref())
        }
        Command::Plugin { command: PluginCommand::New { name, lang, dir } } => plugin_new(&name, lang, dir),
        Command::Plugin { command: PluginCommand::Bench { plugin, input, config, batch, rounds, json } } => {
            plugin_bench(&plugin, &input, config.as_deref(), batch, rounds, json)
        }
        Command::Plugin { command: PluginCommand::Build { dir, out } } => plugin_build(&dir, out.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Pipeline> {
    let config = LoadedConfig::load(path)?;
    let host = WasmHost::new()?;
    Ok(Pipeline::build(config, &host)?)
}

fn reload(path: &Path) -> anyhow::Result<ExitCode> {
    let config = LoadedConfig::load(path)?;
    let lock = config.staging_dir(&config.archive()?).join(".lock");
    let file =
        std::fs::File::open(&lock).with_context(|| format!("no sluice has run this pipeline ({})", lock.display()))?;
    // a lock we can take is a lock nobody holds
    if file.try_lock().is_ok() {
        anyhow::bail!("no sluice is running this pipeline (its lock {} is free)", lock.display());
    }
    let pid = std::fs::read_to_string(&lock)?.trim().parse::<u32>().context("the lock names no process")?;
    let sent = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status()?;
    anyhow::ensure!(sent.success(), "cannot signal process {pid}");
    println!("asked sluice (process {pid}) to reload {}; its log says whether the new config loaded", path.display());
    Ok(ExitCode::SUCCESS)
}

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let pipeline = load(path)?;
    for stage in pipeline.stages() {
        let p = &stage.plugin;
        println!("stage {}: {} {} ({}), sha256 {}", stage.name, p.name(), p.version(), p.kind, p.digest);
    }
    for warning in pipeline.warnings() {
        println!("warning: {warning}");
    }
    println!("ok: {} is valid; streams: {}", path.display(), pipeline.streams().join(", "));
    Ok(ExitCode::SUCCESS)
}

/// What `run` reads.
enum Reading {
    Sources,
    /// The quarantine (of one source, or all).
    Quarantine(Option<String>),
    /// The archive sources only.
    Archive,
}

/// Runs a pipeline, its archive sources only, or its quarantine. A running
/// pipeline (`sluice run`) reloads its file on SIGHUP: the new config is
/// loaded and its plugins started while the old one runs; if that fails,
/// the old one goes on and the error is logged; else the old one stops as
/// on SIGTERM (everything read is committed) and the new one starts from
/// the positions that commit recorded — no event lost or written twice.
fn run(path: &Path, reading: Reading) -> anyhow::Result<ExitCode> {
    let mut pipeline = load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // the running pipeline's stop flag, the next pipeline (a reload), and whether to quit
    let current: Arc<Mutex<Arc<AtomicBool>>> = Arc::default();
    let next: Arc<Mutex<Option<Pipeline>>> = Arc::default();
    let quit = Arc::new(AtomicBool::new(false));
    {
        let (current, next, quit) = (current.clone(), next.clone(), quit.clone());
        let reloads = matches!(reading, Reading::Sources).then(|| path.to_path_buf());
        runtime.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).ok();
            let mut hup = if reloads.is_some() { signal(SignalKind::hangup()).ok() } else { None };
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = received(&mut term) => {}
                    _ = received(&mut hup) => {
                        let path = reloads.clone().expect("only registered when reloading");
                        let (current, next, quit) = (current.clone(), next.clone(), quit.clone());
                        // loaded on the side: a SIGTERM meanwhile is still heard
                        tokio::spawn(async move {
                            tracing::warn!(path = %path.display(), "Reloading: loading the new config while the pipeline runs.");
                            let loaded = tokio::task::spawn_blocking(move || load(&path).and_then(|p| {
                                p.preflight()?;
                                Ok(p)
                            }))
                            .await;
                            match loaded {
                                Ok(Ok(p)) if !quit.load(Ordering::SeqCst) => {
                                    *next.lock().expect("not poisoned") = Some(p);
                                    tracing::warn!("Reloading: stopping the pipeline (it commits what it read), then starting the new one.");
                                    current.lock().expect("not poisoned").store(true, Ordering::SeqCst);
                                }
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => tracing::error!("Reload refused, the running pipeline goes on: {e:#}"),
                                Err(e) => tracing::error!("Reload failed, the running pipeline goes on: {e}"),
                            }
                        });
                        continue;
                    }
                }
                tracing::warn!("Stopping: flushing what has been read.");
                quit.store(true, Ordering::SeqCst);
                current.lock().expect("not poisoned").store(true, Ordering::SeqCst);
            }
        });
    }
    loop {
        for warning in pipeline.warnings() {
            eprintln!("warning: {warning}");
        }
        // installed first, then `quit` read: a signal in between is not lost
        let stop = Arc::new(AtomicBool::new(false));
        *current.lock().expect("not poisoned") = stop.clone();
        if quit.load(Ordering::SeqCst) {
            stop.store(true, Ordering::SeqCst);
        }
        let summary = match reading {
            Reading::Sources => pipeline.run(runtime.handle().clone(), stop)?,
            Reading::Archive => pipeline.replay_archive(runtime.handle().clone(), stop)?,
            Reading::Quarantine(ref only) => {
                let (summary, kept) = pipeline.replay(runtime.handle().clone(), stop, only.clone())?;
                println!("replayed from quarantine:");
                for (why, count) in kept {
                    println!("  kept in quarantine {count}: {why}");
                }
                summary
            }
        };
        let ok = report(&summary);
        match next.lock().expect("not poisoned").take() {
            Some(reloaded) if ok && !quit.load(Ordering::SeqCst) => {
                println!("reloaded {}", path.display());
                pipeline = reloaded;
            }
            _ => return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        }
    }
}

/// The next delivery of a signal, or never when it is not listened for.
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Prints a run's summary; whether it ended well (counts balance, no source failed).
fn report(summary: &sluice::pipeline::Summary) -> bool {
    println!("{summary}");
    for (source, r) in &summary.archive_reads {
        println!(
            "  source {source}: read {} rows of {} archived files ({} skipped: out of range or read before), replayed {}",
            r.rows, r.files, r.files_skipped, r.replayed
        );
        for (why, count) in &r.unreplayable {
            println!("  source {source}: {count} quarantined records not replayed: {why}");
        }
        if r.without_raw > 0 {
            println!(
                "  source {source}: {} chosen events have no raw_data and were not replayed (keep_raw was off when they were written; record = \"event\" replays them as events)",
                r.without_raw
            );
        }
    }
    if summary.counts.expanded > 0 {
        println!("  expanded {}: extra events from records that held several", summary.counts.expanded);
    }
    if summary.counts.copies > 0 {
        println!("  copies {}: extra copies of events routed to several streams", summary.counts.copies);
    }
    for (rule, count) in &summary.counts.dropped {
        println!("  dropped {count}: {rule}");
    }
    for (rule, count) in &summary.counts.protected {
        println!("  protected {count}: kept by {rule}");
    }
    if !summary.balanced() {
        eprintln!(
            "error: counts do not balance: read {} + expanded {} + copies {} != written + quarantined + dropped",
            summary.counts.read, summary.counts.expanded, summary.counts.copies
        );
        return false;
    }
    for e in &summary.errors {
        eprintln!("error: {e}");
    }
    summary.errors.is_empty()
}

fn generate_keys(dir: &Path, name: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let signer = NoteSigner::generate(name)?;
    std::fs::create_dir_all(dir)?;
    let private = dir.join("signing.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .with_context(|| format!("cannot create {} (an existing key is never overwritten)", private.display()))?;
    writeln!(file, "{}", signer.to_text())?;
    let public = dir.join("signing.pub");
    std::fs::write(&public, format!("{}\n", signer.verifier().to_text()))?;
    println!("wrote {} (private, 0600) and {}", private.display(), public.display());
    Ok(ExitCode::SUCCESS)
}

fn read_keys(key: &Path) -> anyhow::Result<Vec<sluice::integrity::note::NoteVerifier>> {
    let keys_text = std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
    parse_verifiers(&keys_text).with_context(|| format!("keys in {}", key.display()))
}

fn prove(archive: &str, stream: &str, event: &str, key: &Path) -> anyhow::Result<ExitCode> {
    let keys = read_keys(key)?;
    let archive = Archive::open_existing(archive)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let proof = runtime.block_on(sluice::integrity::proof::prove(&archive, stream, event, &keys))?;
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(ExitCode::SUCCESS)
}

fn verify_proof(proof: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let keys = read_keys(key)?;
    let text = std::fs::read_to_string(proof).with_context(|| format!("cannot read {}", proof.display()))?;
    match sluice::integrity::proof::check(&text, &keys) {
        Ok(p) => {
            let seq = p.seq.map_or("-".to_string(), |s| s.to_string());
            println!(
                "ok: event seq {seq} is in {} (log of {}, size {}, signed by {})",
                p.path, p.origin, p.size, p.signed_by
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verify(archive: &str, key: &Path, trusted: &[PathBuf], max_gap: Option<u64>) -> anyhow::Result<ExitCode> {
    let keys = read_keys(key)?;
    let trusted = trusted
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let archive = Archive::open_existing(archive)?;
    let options = Options { keys, trusted, max_gap: max_gap.map(std::time::Duration::from_secs) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(sluice::integrity::verify::verify(&archive, &options))?;
    for p in &report.problems {
        println!("{p}");
    }
    let c = &report.counts;
    let verdict = if report.problems.is_empty() { "ok" } else { "FAILED" };
    println!(
        "{verdict}: {} streams, {} log entries, {} files, {} events, {} checkpoints, {} quarantine files, {} retired files, {} retired quarantine files, {} problems",
        c.streams,
        c.entries,
        c.files,
        c.events,
        c.checkpoints,
        c.quarantine,
        c.retired,
        c.quarantine_retired,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn apply_retention(path: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let plan = if dry_run {
        let config = LoadedConfig::load(path)?;
        let archive = config.archive()?;
        let policies = config.retention_policies(&config.streams());
        runtime.block_on(sluice::retention::plan(&archive, &policies, chrono::Utc::now()))?
    } else {
        load(path)?.apply_retention(runtime.handle().clone())?
    };
    let (verb, summary) = if dry_run { ("would expire", "would delete") } else { ("expired", "deleted") };
    let time = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t)
            .map_or_else(|| t.to_string(), |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    for e in &plan.expire {
        let f = &e.entry;
        println!("{verb} {} ({} events, newest {}; {}: {})", f.path, f.rows, time(f.time_max), e.stream, e.policy);
    }
    for q in &plan.quarantine {
        println!("{verb} {} (quarantine written {}; {}: {})", q.path, time(q.written), q.stream, q.policy);
    }
    for (path, hold) in &plan.held {
        println!("held {path} (hold {hold})");
    }
    let events: u64 = plan.expire.iter().map(|e| e.entry.rows).sum();
    println!(
        "{summary} {} files ({events} events) and {} quarantine files; {} past their retention kept by {} holds",
        plan.expire.len(),
        plan.quarantine.len(),
        plan.held.len(),
        plan.holds.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn hold(command: HoldCommand) -> anyhow::Result<ExitCode> {
    use sluice::retention;
    let pipeline = match &command {
        HoldCommand::Add { pipeline, .. }
        | HoldCommand::Remove { pipeline, .. }
        | HoldCommand::List { pipeline, .. } => pipeline,
    };
    let config = LoadedConfig::load(pipeline)?;
    let archive = config.archive()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        HoldCommand::Add { stream, prefix, reason, .. } => {
            let streams = config.streams();
            anyhow::ensure!(
                streams.contains(&stream),
                "the pipeline has no stream `{stream}` (streams: {})",
                streams.join(", ")
            );
            let hold = runtime.block_on(retention::add_hold(&archive, &stream, &prefix, &reason))?;
            println!("hold {} placed on {}/{} ({})", hold.id, hold.stream, hold.prefix, hold.reason);
        }
        HoldCommand::Remove { id, reason, .. } => {
            let (hold, release) = runtime.block_on(retention::release_hold(&archive, &id, &reason))?;
            println!(
                "hold {} on {}/{} released at {} ({})",
                hold.id, hold.stream, hold.prefix, release.released, reason
            );
        }
        HoldCommand::List { all, .. } => {
            let holds = runtime.block_on(retention::holds(&archive))?;
            for (h, released) in &holds {
                match released {
                    None => {
                        println!("{}  {}/{}  since {} by {}: {}", h.id, h.stream, h.prefix, h.created, h.by, h.reason)
                    }
                    Some(r) if all => println!(
                        "{}  {}/{}  {} .. {} (released by {}: {}): {}",
                        h.id, h.stream, h.prefix, h.created, r.released, r.by, r.reason, h.reason
                    ),
                    Some(_) => {}
                }
            }
            let active = holds.iter().filter(|(_, r)| r.is_none()).count();
            println!("{active} holds in force, {} released", holds.len() - active);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "query")]
fn query(archive: &str, sql: &str, format: QueryFormat, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    use sluice_query::Format;
    let format = match format {
        QueryFormat::Table => Format::Table,
        QueryFormat::Csv => Format::Csv,
        QueryFormat::Json => Format::Json,
        QueryFormat::Parquet => Format::Parquet,
    };
    let rows = sluice_query::run(archive, sql, format, out)?;
    if let Some(out) = out {
        eprintln!("{rows} rows -> {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "query"))]
fn query(_: &str, _: &str, _: QueryFormat, _: Option<&Path>) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this sluice was built without `sluice query` (DataFusion); build it with `cargo build --release --features query`"
    )
}

fn plugin_new(name: &str, lang: sluice::plugin_dev::Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = sluice::plugin_dev::new(&dir, name, lang)?;
    println!("created {} ({} files)", dir.display(), files.len());
    for f in files {
        println!("  {f}");
    }
    let d = dir.display();
    println!("next:\n  sluice plugin build {d}");
    println!(
        "  sluice plugin test {d}/{name}.wasm --input {d}/test/input.jsonl --config {d}/test/config.toml --expect {d}/test/expected.jsonl"
    );
    Ok(ExitCode::SUCCESS)
}

fn plugin_bench(
    reference: &str,
    input: &Path,
    config: Option<&Path>,
    batch: usize,
    rounds: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let lines = read_lines(input)?;
    let c = sluice::plugin_test::bench(reference, config, &lines, batch, rounds)?;
    if json {
        println!("{}", serde_json::to_string(&c)?);
    } else {
        println!("{} {}: {} bytes", c.name, c.version, c.size);
        println!("  load, empty cache   {:10.1} ms", c.load_cold_ms);
        println!("  load, warm cache    {:10.1} ms", c.load_cached_ms);
        println!("  instantiate + init  {:10.1} µs (median of {rounds})", c.instantiate_us);
        println!("  memory              {:10.1} MiB", c.memory_mib);
        println!("  per event           {:10.0} ns (batch {batch}, median of {rounds})", c.ns_per_event);
    }
    Ok(ExitCode::SUCCESS)
}

/// The non-empty lines of a file, as bytes.
fn read_lines(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
}

fn plugin_build(dir: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let path = sluice::plugin_dev::build(dir, out)?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("built {} ({size} bytes) in {:.1} s", path.display(), started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn plugin_test(
    reference: &str,
    input: &Path,
    expect: Option<&Path>,
    config: Option<&Path>,
    write: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use sluice::plugin_test;
    let host = WasmHost::new()?;
    let plugin = plugin_test::load(&host, reference, config)?;
    let lines = read_lines(input)?;
    let outcomes = plugin_test::run(&plugin, &lines)?;
    let text: String = outcomes.iter().map(|o| format!("{o}\n")).collect();
    match write {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?,
        None if expect.is_none() => print!("{text}"),
        None => {}
    }
    let Some(expect) = expect else { return Ok(ExitCode::SUCCESS) };
    let golden = std::fs::read_to_string(expect).with_context(|| format!("cannot read {}", expect.display()))?;
    let problems = plugin_test::compare(&golden, &outcomes);
    for p in &problems {
        println!("{p}");
    }
    let name = format!("{} {}", plugin.name(), plugin.version());
    if problems.is_empty() {
        println!("ok: {name}: {} lines match {}", outcomes.len(), expect.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: {name}: {} of {} lines differ from {}", problems.len(), outcomes.len(), expect.display());
        Ok(ExitCode::FAILURE)
    }
}

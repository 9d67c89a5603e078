//! The `sluice` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::config::LoadedConfig;
use sluice::pipeline::Pipeline;
use sluice::wasm::WasmHost;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Run a pipeline until its sources are exhausted (or, for following
    /// sources, until Ctrl-C / SIGTERM), flush every open file, print a summary.
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
    /// Check a pipeline file: syntax, unknown keys, references, plugin files,
    /// sha256 pins, and that each plugin accepts its config. Reads nothing else.
    Validate {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { pipeline } => run(&pipeline),
        Command::Validate { pipeline } => validate(&pipeline),
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

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let pipeline = load(path)?;
    for stage in pipeline.stages() {
        let p = &stage.plugin;
        println!("stage {}: {} {} ({}), sha256 {}", stage.name, p.name(), p.version(), p.kind, p.digest);
    }
    println!("ok: {} is valid; streams: {}", path.display(), pipeline.streams().join(", "));
    Ok(ExitCode::SUCCESS)
}

fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let pipeline = load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(t) => t.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminated => {}
            }
            tracing::warn!("Stopping: flushing what has been read.");
            stop.store(true, Ordering::Relaxed);
        });
    }
    let summary = pipeline.run(runtime.handle().clone(), stop)?;
    println!("{summary}");
    for (rule, count) in &summary.dropped {
        println!("  dropped {count}: {rule}");
    }
    if !summary.balanced() {
        eprintln!("error: counts do not balance: read {} != written + quarantined + dropped", summary.read);
        return Ok(ExitCode::FAILURE);
    }
    if !summary.errors.is_empty() {
        for e in &summary.errors {
            eprintln!("error: {e}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

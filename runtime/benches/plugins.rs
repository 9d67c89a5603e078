//! What each stage of the standard benchmark costs, as Wasm and as the same
//! code compiled into the host, and what encoding the events as Parquet costs.
//!
//! `cargo bench -p sluice --features native-plugins --bench plugins [-- [EVENTS] [STAGE]]`
//!
//! Input: `../shared/bench/gen_events.py` at EVENTS events (default 20,000),
//! the stages and configs of `examples/benchmark/pipeline.toml`. Each parser
//! gets its own source's records; `redact` gets every parsed event, and
//! `enrich` what `redact` made of them. Prints, per stage, the median ns/event
//! over 7 rounds as Wasm at batch sizes 1, 100, 1000 and 10000 (one instance,
//! reused: the steady state of a worker), and natively at 1000; MB/s of input
//! per core at batch 1000 both ways; and Wasm/native. Then the host's own
//! steps per event: the schema check, the Arrow columns, the event hashes, and
//! the zstd Parquet file; and what decoding an event's JSON text into a map
//! and encoding it again costs on its own, natively (the floor of a transform
//! under the 0.1 contract).

use sluice::config::LoadedConfig;
use sluice::schema::{BatchBuilder, StreamSchema, check_event, file_batch};
use sluice::stage::{Input, Outcome, Stage};
use sluice::wasm::WasmHost;
use std::path::{Path, PathBuf};
use std::time::Instant;

// the allocator the `sluice` binary runs with: the native column and the
// host's steps are measured as the pipeline runs them (under glibc's malloc
// the native parsers took up to 1.5x as long)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 7;
const BATCHES: [usize; 4] = [1, 100, 1000, 10_000];

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median ns per input of `stage` over all `inputs`, called in chunks of `batch`.
fn measure(stage: &mut dyn Stage, inputs: &Inputs, batch: usize) -> f64 {
    let n = inputs.len();
    let mut round = || {
        let started = Instant::now();
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let out = stage.call(inputs.slice(start, end)).expect("the stage does not fault on the benchmark");
            assert_eq!(out.len(), end - start);
            std::hint::black_box(out);
        }
        started.elapsed().as_nanos() as f64 / n as f64
    };
    round(); // warm-up
    median((0..ROUNDS).map(|_| round()).collect())
}

enum Inputs {
    Records(Vec<Vec<u8>>),
    Events(Vec<String>),
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Records(r) => r.len(),
            Inputs::Events(e) => e.len(),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            Inputs::Records(r) => r.iter().map(Vec::len).sum(),
            Inputs::Events(e) => e.iter().map(String::len).sum(),
        }
    }
    fn slice(&self, start: usize, end: usize) -> Input<'_> {
        match self {
            Inputs::Records(r) => Input::Records(&r[start..end]),
            Inputs::Events(e) => Input::Events(&e[start..end]),
        }
    }
}

/// The events a stage made of its inputs (every outcome must be an event).
fn events_of(stage: &mut dyn Stage, inputs: &Inputs) -> Vec<String> {
    let mut out = Vec::new();
    for start in (0..inputs.len()).step_by(1000) {
        for outcome in stage.call(inputs.slice(start, (start + 1000).min(inputs.len()))).unwrap() {
            match outcome {
                Outcome::Keep(e) => out.push(e),
                Outcome::Many(es) => out.extend(es),
                other => panic!("the benchmark's records all become events: {other:?}"),
            }
        }
    }
    out
}

fn workload(events: usize) -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let dir = std::env::temp_dir().join(format!("sluice-bench-plugins-{events}"));
    if !dir.join("app.ndjson").exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/gen_events.py");
        let status = std::process::Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .args(["--events", &events.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("python3 runs");
        assert!(status.success(), "{} failed", script.display());
    }
    dir
}

fn main() {
    let events: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20_000);
    // a stage name times that stage alone (for a profiler)
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-') && a.parse::<usize>().is_err());
    let data = workload(events);
    let pipeline_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/benchmark/pipeline.toml");
    // the pipeline file names these; nothing is run, only its stages are built
    with_pipeline_env(&data, &std::env::temp_dir().join("sluice-bench-plugins-out"));
    let config = LoadedConfig::load(&pipeline_file).expect("the benchmark pipeline loads");
    let host = WasmHost::new().expect("the Wasm engine starts");
    let pipeline = sluice::pipeline::Pipeline::build(config, &host).expect("the benchmark pipeline builds");
    let plugin =
        |stage: &str| pipeline.stages().find(|s| s.name == stage).expect("a stage of the benchmark").plugin.clone();

    sluice::native::enable();
    let read = |file: &str| -> Vec<Vec<u8>> {
        std::fs::read(data.join(file))
            .unwrap()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut stages: Vec<(String, Inputs)> = vec![
        ("syslog".into(), Inputs::Records(read("auth.log"))),
        ("k8s".into(), Inputs::Records(read("k8s-audit.ndjson"))),
        ("cloudtrail".into(), Inputs::Records(read("cloudtrail.ndjson"))),
        ("app".into(), Inputs::Records(read("app.ndjson"))),
    ];
    let mut parsed = Vec::new();
    for (stage, inputs) in &stages {
        let mut native = sluice::native::stage(&plugin(stage)).expect("bundled").expect("its config is taken");
        parsed.extend(events_of(native.as_mut(), inputs));
    }
    let mut redacted = Vec::new();
    {
        let mut native = sluice::native::stage(&plugin("redact")).unwrap().unwrap();
        redacted.extend(events_of(native.as_mut(), &Inputs::Events(parsed.clone())));
    }
    let mut enriched = Vec::new();
    {
        let mut native = sluice::native::stage(&plugin("enrich")).unwrap().unwrap();
        enriched.extend(events_of(native.as_mut(), &Inputs::Events(redacted.clone())));
    }
    let untouched = parsed.iter().zip(&redacted).filter(|(a, b)| a == b).count();
    println!("redact leaves {untouched} of {} events as they came", parsed.len());
    stages.push(("redact".into(), Inputs::Events(parsed)));
    stages.push(("enrich".into(), Inputs::Events(redacted)));

    println!(
        "{} events from {}; median ns/event over {ROUNDS} rounds; MB/s of the stage's input per core",
        enriched.len(),
        data.display()
    );
    println!(
        "{:<11} {:<17} {:>7} {:>8} {:>8} {:>8} {:>8} | {:>8} | {:>7} {:>7} | {:>6}",
        "stage", "plugin", "in B/ev", "wasm b1", "b100", "b1000", "b10000", "native", "MB/s w", "MB/s n", "w/n"
    );
    if let Some(only) = &only {
        assert!(stages.iter().any(|(s, _)| s == only), "no stage `{only}` in the benchmark pipeline");
    }
    for (stage, inputs) in stages.iter().filter(|(s, _)| only.as_ref().is_none_or(|o| o == s)) {
        let p = plugin(stage);
        let mut wasm = sluice::stage::WasmStage::new(p.clone());
        let wasm_ns: Vec<f64> = BATCHES.iter().map(|&b| measure(&mut wasm, inputs, b)).collect();
        let mut native = sluice::native::stage(&p).unwrap().unwrap();
        let native_ns = measure(native.as_mut(), inputs, 1000);
        let per_event = inputs.bytes() as f64 / inputs.len() as f64;
        let mbs = |ns: f64| per_event / ns * 1e3;
        println!(
            "{:<11} {:<17} {:>7.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} | {:>8.0} | {:>7.1} {:>7.1} | {:>5.2}×",
            stage,
            p.name(),
            per_event,
            wasm_ns[0],
            wasm_ns[1],
            wasm_ns[2],
            wasm_ns[3],
            native_ns,
            mbs(wasm_ns[2]),
            mbs(native_ns),
            wasm_ns[2] / native_ns
        );
    }

    if only.is_some() {
        return;
    }
    // the host's steps, on the enriched events, one stream with no extra columns
    let schema = StreamSchema::new(Vec::new());
    let n = enriched.len() as f64;
    let timed = |f: &mut dyn FnMut()| {
        f();
        median(
            (0..ROUNDS)
                .map(|_| {
                    let started = Instant::now();
                    f();
                    started.elapsed().as_nanos() as f64 / n
                })
                .collect(),
        )
    };
    let check = timed(&mut || {
        for e in &enriched {
            std::hint::black_box(check_event(e, 0, "bench", &schema).expect("valid"));
        }
    });
    let rows: Vec<_> = enriched.iter().map(|e| check_event(e, 0, "bench", &schema).unwrap()).collect();
    let columns = || {
        let mut builder = BatchBuilder::new(&schema);
        for row in &rows {
            builder.push(row.clone());
        }
        builder.finish()
    };
    let arrow = timed(&mut || {
        std::hint::black_box(columns());
    });
    let built = columns();
    let hashes = timed(&mut || {
        std::hint::black_box(file_batch(built.clone(), 0, &schema));
    });
    let (batch, _) = file_batch(built.clone(), 0, &schema);
    let props = sluice::sinks::writer_properties(3).unwrap();
    let mut size = 0;
    let parquet = timed(&mut || {
        let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.clone())).unwrap();
        writer.write(&batch).unwrap();
        size = writer.into_inner().unwrap().len();
    });
    // what the JSON-text contract costs a transform before it does anything:
    // decoding each event into a map and encoding it again, natively
    let decoded: Vec<serde_json::Map<String, serde_json::Value>> =
        enriched.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let decode = timed(&mut || {
        for e in &enriched {
            std::hint::black_box(serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(e).unwrap());
        }
    });
    let encode = timed(&mut || {
        for e in &decoded {
            std::hint::black_box(serde_json::to_string(e).unwrap());
        }
    });
    println!("one event's JSON text, native, ns/event: decode to a map {decode:.0}, encode {encode:.0}");
    println!(
        "host, ns/event: schema check {check:.0}, Arrow columns {arrow:.0}, seq + event hashes {hashes:.0}, zstd Parquet {parquet:.0} ({:.0} bytes/event)",
        size as f64 / n
    );
}

/// Makes sure the two variables the benchmark's pipeline file names are set:
/// `std::env::set_var` is unsafe in edition 2024 and the workspace denies
/// unsafe code, so the process runs itself again with them, once.
fn with_pipeline_env(data: &Path, out: &Path) {
    if std::env::var_os("SLUICE_BENCH_DIR").is_none() || std::env::var_os("SLUICE_OUT").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env("SLUICE_BENCH_DIR", data)
            .env("SLUICE_OUT", out)
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
}

//! What the host↔plugin boundary costs per event, for the WIT shapes the 0.1
//! contract was chosen from, at batch sizes 1, 100, 1000 and 10000.
//!
//! `cargo bench -p sluice --bench abi` — the plugin (`plugins/fixtures/abi-probe`)
//! passes every batch straight back, so the time is the boundary itself:
//! lowering the batch into guest memory, the guest's allocations, lifting the
//! result back into host values. Events are the JSON audit records of
//! `examples/quickstart/data` (Kubernetes, CloudTrail, application; ~550 bytes),
//! repeated. Prints the median ns/event over 31 rounds of 10000 events.

use std::time::Instant;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ path: "../plugins/fixtures/abi-probe/wit", world: "probe" });

use exports::sluice::abi_probe::shapes::Field;

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

const ROUNDS: usize = 31;
const EVENTS: usize = 10_000;

fn events() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/data");
    let files: Vec<Vec<String>> = ["k8s-audit.ndjson", "cloudtrail.ndjson", "app.ndjson"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap().lines().map(str::to_string).collect())
        .collect();
    (0..EVENTS).map(|i| files[i % 3][(i / 3) % files[i % 3].len()].clone()).collect()
}

fn fields_of(event: &str) -> Vec<Field> {
    let value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(event).unwrap();
    value
        .into_iter()
        .map(|(key, v)| Field { key, value: v.as_str().map_or_else(|| v.to_string(), str::to_string) })
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median ns/event of `call` over chunks of `batch` events.
fn measure(batch: usize, mut call: impl FnMut(std::ops::Range<usize>)) -> f64 {
    let round = |call: &mut dyn FnMut(std::ops::Range<usize>)| {
        let t = Instant::now();
        for start in (0..EVENTS).step_by(batch) {
            call(start..(start + batch).min(EVENTS));
        }
        t.elapsed().as_nanos() as f64 / EVENTS as f64
    };
    round(&mut call); // warm-up
    median((0..ROUNDS).map(|_| round(&mut call)).collect())
}

fn main() {
    let mut config = Config::new();
    config.epoch_interruption(true); // as in the host: the deadline check is part of the cost
    let engine = Engine::new(&config).unwrap();
    let component = Component::from_file(&engine, env!("SLUICE_PLUGIN_ABI_PROBE")).unwrap();
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let pre = ProbePre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let mut store = Store::new(&engine, State { wasi: WasiCtx::builder().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX / 2);
    let probe = pre.instantiate(&mut store).unwrap();
    let shapes = probe.sluice_abi_probe_shapes();

    let events = events();
    let bytes: usize = events.iter().map(String::len).sum();
    let fields: Vec<Vec<Field>> = events.iter().map(|e| fields_of(e)).collect();
    let field_count: usize = fields.iter().map(Vec::len).sum();
    let mut buffer = Vec::new();
    let mut ends = Vec::new();
    for e in &events {
        buffer.extend_from_slice(e.as_bytes());
        ends.push(buffer.len() as u32);
    }
    println!(
        "{} events, {:.0} bytes/event, {:.1} top-level fields/event; median ns/event over {ROUNDS} rounds",
        EVENTS,
        bytes as f64 / EVENTS as f64,
        field_count as f64 / EVENTS as f64
    );
    println!("{:<44} {:>9} {:>9} {:>10} {:>11}", "shape", "batch 1", "batch 100", "batch 1000", "batch 10000");
    let row = |name: &str, f: &mut dyn FnMut(usize) -> f64| {
        println!("{:<44} {:>9.0} {:>9.0} {:>10.0} {:>11.0}", name, f(1), f(100), f(1000), f(10_000));
    };
    row("list<string> -> list<outcome> (0.1 contract)", &mut |b| {
        measure(b, |r| {
            let out = shapes.call_outcomes(&mut store, &events[r]).unwrap();
            std::hint::black_box(out);
        })
    });
    row("list<string> -> list<string>", &mut |b| {
        measure(b, |r| {
            let out = shapes.call_json_lines(&mut store, &events[r]).unwrap();
            std::hint::black_box(out);
        })
    });
    row("one buffer + offsets", &mut |b| {
        measure(b, |r| {
            let start = if r.start == 0 { 0 } else { ends[r.start - 1] as usize };
            let end = ends[r.end - 1] as usize;
            let local: Vec<u32> = ends[r].iter().map(|e| e - start as u32).collect();
            let out = shapes.call_buffer(&mut store, &buffer[start..end], &local).unwrap();
            std::hint::black_box(out);
        })
    });
    row("list<list<record{key,value}>> (per field)", &mut |b| {
        measure(b, |r| {
            let out = shapes.call_fields(&mut store, &fields[r]).unwrap();
            std::hint::black_box(out);
        })
    });
}

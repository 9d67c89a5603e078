#!/usr/bin/env python3
"""The plugin languages compared, in one command: prints a Markdown table.

    cargo build --release && python3 examples/plugins/bench.py [--rounds 51] [--batch 100]

For each language it builds the conformance sample (`examples/plugins/<lang>`)
from source with `sluice plugin build` -- Rust in a fresh target folder, so
the build time is a clean build -- and runs `sluice plugin bench` on it with
the conformance input and config:

  build s       wall time of `sluice plugin build`
  size          component bytes
  load cold     compile + link + one instance + init, empty compiled-code cache
  load cached   the same from a warm cache (every later start)
  instantiate   median of a new instance plus its init (per worker, and per trap)
  memory        linear memory of a fresh instance
  ns/event      median per event, batches of --batch (the 8 input lines repeated)

The toolchains are the ones `.ci/run` installs (clang-19 + wasi-libc,
componentize-py, componentize-qjs, the Rust wasm32-wasip2 target).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LANGS = [
    ("rust", "Rust, cargo wasm32-wasip2 + wit-bindgen"),
    ("c", "C, clang-19 + wasi-libc"),
    ("python", "Python, componentize-py 0.25.1"),
    ("js", "JavaScript, componentize-qjs 0.4.5"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(ROOT, "target/release/sluice"))
    ap.add_argument("--rounds", type=int, default=51)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--only", nargs="*", help="languages to run (default: all)")
    args = ap.parse_args()
    if not os.access(args.sluice, os.X_OK):
        sys.exit(f"{args.sluice} is missing: run `cargo build --release` first")
    conformance = os.path.join(ROOT, "examples/plugins/conformance")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lang, toolchain in LANGS:
            if args.only and lang not in args.only:
                continue
            wasm = os.path.join(tmp, f"{lang}.wasm")
            env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(tmp, "rust-target"))
            started = time.monotonic()
            subprocess.run(
                [args.sluice, "plugin", "build", os.path.join(ROOT, "examples/plugins", lang), "-o", wasm],
                check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            build_s = time.monotonic() - started
            out = subprocess.run(
                [args.sluice, "plugin", "bench", wasm,
                 "--input", os.path.join(conformance, "input.jsonl"),
                 "--config", os.path.join(conformance, "config.toml"),
                 "--batch", str(args.batch), "--rounds", str(args.rounds), "--json"],
                check=True, capture_output=True, text=True,
            )
            costs = json.loads(out.stdout)
            rows.append((toolchain, build_s, costs))
            print(f"{lang}: done", file=sys.stderr)
    print(f"| language, toolchain | build s | size | load cold ms | load cached ms | instantiate µs | memory MiB | ns/event (batch {args.batch}) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for toolchain, build_s, c in rows:
        size = f"{c['size'] / 1e6:.1f} MB" if c["size"] >= 1e6 else f"{c['size'] / 1e3:.0f} KB"
        print(
            f"| {toolchain} | {build_s:.1f} | {size} | {c['load_cold_ms']:.0f} | {c['load_cached_ms']:.0f} "
            f"| {c['instantiate_us']:.0f} | {c['memory_mib']:.1f} | {c['ns_per_event']:.0f} |"
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The standard benchmark, in one command: prints a table.

    cargo build --release --features native-plugins
    python3 examples/benchmark/bench.py [--events 1000000] [--runs 3]

Input: ../shared/bench/gen_events.py at N events (four sources), generated once
and cached under ~/.cache/sluice-bench/<N>. Each pipeline runs as a whole
process, `--runs` times, alternating; the table gives medians:

  (a) sluice: examples/benchmark/pipeline.toml -- parse -> redact -> enrich, all
      Wasm, routed into `audit` and `operational`, zstd Parquet, integrity log.
  (a1) the same with one worker instead of one per core: how (a) scales. The
      sink thread still has a core of its own, so this is not (a) on one core.
  (a0) the same as (a) with the whole process held to one core (CPU
      affinity; sluice then starts one worker): how much of the machine (a)
      turns into throughput.
  (a2) the same with `time_limit = false` on every stage: the plugins'
      compiled code without its deadline checks, what the per-call time limit
      costs.
  (b) the same pipeline with the same plugins compiled into the host
      (`sluice run --native-plugins`, in builds with that feature): what the
      Wasm sandbox costs.
  (c) DuckDB (PyPI `duckdb`), the nearest equivalent: read the four inputs,
      extract the same kind of typed columns, redact with regular expressions,
      write the same Hive-partitioned zstd Parquet.

Per pipeline: events/s (wall), MB/s of input per core (input bytes / CPU
seconds, user + system), CPU seconds, peak RSS, output bytes. CPU and RSS come
from wait4() on the child, so they are the pipeline's own. For (a), the CPU
time of each kind of thread too (read from /proc every 0.1 s while it runs,
so the last tenth of a second is missed, when the sink closes its files and
the pool's share is largest; the main thread's time includes loading the
plugins, which only long runs make small): the sink's own thread is the part
of the pipeline that more cores do not spread, so its time per event bounds
(a)'s throughput on any machine (a loose bound: it also waits while its
pool hashes and encodes a row group).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The reference pipeline. Redaction: the same families of secrets the redact
# plugin's default rules catch in this workload (passwords on command lines,
# bearer tokens, card numbers, AWS secret keys, password fields).
DUCKDB_PIPELINE = r"""
import duckdb, sys
data, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
REDACT = [
    (r"--password=\S+", "--password=[REDACTED]"),
    (r"(?i)bearer [A-Za-z0-9._~+/=-]+", "Bearer [REDACTED]"),
    (r"\b(?:\d[ -]?){13,19}\b", "[REDACTED:card]"),
    (r"(?i)(aws_secret_access_key\s*[=:]\s*)\S+", r"\1[REDACTED]"),
    (r'("password"\s*:\s*")[^"]*', r"\1[REDACTED]"),
]
def redact(expr):
    for pattern, replacement in REDACT:
        expr = f"regexp_replace({expr}, '{pattern}', '{replacement}', 'g')"
    return expr
con.execute(f'''
CREATE VIEW auth AS
SELECT strptime('2026 ' || regexp_extract(line, '^(\w{{3}} +\d+ [\d:]+)', 1), '%Y %b %d %H:%M:%S')::TIMESTAMPTZ AS time,
       3002 AS class_uid,
       CASE WHEN line LIKE '%Failed password%' THEN 2 ELSE 1 END AS status_id,
       regexp_extract(line, 'for (?:invalid user )?(\S+) from', 1) AS actor_user_name,
       regexp_extract(line, 'from (\S+) port', 1) AS src_endpoint_ip,
       regexp_extract(line, '^\S+ +\S+ \S+ (\S+)', 1) AS device_hostname,
       NULL::VARCHAR AS api_operation,
       {redact("line")} AS raw_data
FROM read_csv('{data}/auth.log', columns = {{'line': 'VARCHAR'}}, delim = E'\x01', header = false, quote = '', escape = '')
''')
con.execute(f'''
CREATE VIEW k8s AS
SELECT requestReceivedTimestamp::TIMESTAMPTZ AS time, 6003 AS class_uid,
       CASE WHEN responseStatus.code >= 400 THEN 2 ELSE 1 END AS status_id,
       "user".username AS actor_user_name, sourceIPs[1] AS src_endpoint_ip, NULL AS device_hostname,
       verb AS api_operation, {redact("to_json(annotations)::VARCHAR")} AS raw_data
FROM read_json('{data}/k8s-audit.ndjson', format = 'newline_delimited')
''')
con.execute(f'''
CREATE VIEW trail AS
SELECT eventTime::TIMESTAMPTZ AS time, CASE WHEN eventName = 'ConsoleLogin' THEN 3002 ELSE 6003 END AS class_uid,
       CASE WHEN errorCode IS NULL THEN 1 ELSE 2 END AS status_id,
       userIdentity.userName AS actor_user_name, sourceIPAddress AS src_endpoint_ip, NULL AS device_hostname,
       eventName AS api_operation, {redact("to_json(requestParameters)::VARCHAR")} AS raw_data
FROM read_json('{data}/cloudtrail.ndjson', format = 'newline_delimited', union_by_name = true)
''')
con.execute(f'''
CREATE VIEW app AS
SELECT ts::TIMESTAMPTZ AS time, 6003 AS class_uid, CASE WHEN outcome = 'success' THEN 1 ELSE 2 END AS status_id,
       actor.email AS actor_user_name, actor.ip AS src_endpoint_ip, NULL AS device_hostname, action AS api_operation,
       {redact("coalesce(to_json(request)::VARCHAR, '') || coalesce(details, '')")} AS raw_data
FROM read_json('{data}/app.ndjson', format = 'newline_delimited', union_by_name = true)
''')
con.execute(f'''
COPY (
  SELECT *, strftime(time, '%Y%m%d')::INT AS event_day, strftime(time, '%H') AS hour
  FROM (SELECT * FROM auth UNION ALL SELECT * FROM k8s UNION ALL SELECT * FROM trail UNION ALL SELECT * FROM app)
) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_day, hour))
''')
"""


def thread_cpu(pid, done, found):
    """Until `done` is set, reads the CPU seconds of each of `pid`'s threads
    into `found` (thread id -> (name, seconds)). The main thread is named
    `main`: other threads that nobody names inherit its name."""
    tick = os.sysconf("SC_CLK_TCK")
    while not done.wait(0.1):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = "main" if tid == str(pid) else stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            found[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)


def thread_kinds(found):
    """CPU seconds by kind of thread: the name without its number."""
    kinds = {}
    for name, cpu in found.values():
        kind = re.sub(r"-?\d+$", "", name)
        kinds[kind] = kinds.get(kind, 0.0) + cpu
    return kinds


def run(cmd, env=None, cpus=None, threads=False):
    """Runs a command to completion (on the CPUs `cpus` if given); returns
    (wall s, cpu s, peak RSS bytes, stdout, and if `threads`, CPU s by kind
    of thread)."""
    start = time.monotonic()
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    # stderr to a file: a pipe nobody reads while stdout is read could fill and block
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, preexec_fn=pin)
        done, found = threading.Event(), {}
        sampler = threading.Thread(target=thread_cpu, args=(child.pid, done, found)) if threads else None
        if sampler:
            sampler.start()
        out = child.stdout.read()
        done.set()
        if sampler:
            sampler.join()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - start
        if status != 0:
            err.seek(0)
            sys.exit(f"{cmd[0]} failed: {err.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out.decode(), thread_kinds(found)


A = "(a) sluice, Wasm plugins"
A1 = "(a1) the same, 1 worker"
A0 = "(a0) the same, on 1 core"
A2 = "(a2) the same, no time limit"
B = "(b) native plugins"
C = "(c) DuckDB reference"


def count_rows(out):
    """Events in a DuckDB output directory (counted outside the timed run)."""
    import duckdb

    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchall()[0][0]


def size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sluice", default=os.path.join(ROOT, "target/release/sluice"))
    args = parser.parse_args()

    cache = os.path.join(os.path.expanduser("~/.cache/sluice-bench"), str(args.events))
    if not os.path.exists(os.path.join(cache, "counts.json")):
        gen = os.path.join(ROOT, "..", "shared", "bench", "gen_events.py")
        subprocess.run([sys.executable, gen, cache, "--events", str(args.events)], check=True, stdout=subprocess.DEVNULL)
    inputs = ["auth.log", "k8s-audit.ndjson", "cloudtrail.ndjson", "app.ndjson"]
    input_bytes = sum(os.path.getsize(os.path.join(cache, f)) for f in inputs)

    work = tempfile.mkdtemp(prefix="sluice-bench-")
    script = os.path.join(work, "duckdb_pipeline.py")
    with open(script, "w") as f:
        f.write(DUCKDB_PIPELINE)
    pipeline = os.path.join(ROOT, "examples/benchmark/pipeline.toml")
    one_worker = os.path.join(work, "one-worker.toml")
    with open(pipeline) as f, open(one_worker, "w") as g:
        g.write(f.read() + "\n[runtime]\nworkers = 1\n")
    no_limit = os.path.join(work, "no-time-limit.toml")
    with open(pipeline) as f, open(no_limit, "w") as g:
        text = f.read()
        text, n = re.subn(r'^(plugin = "[^"]*")[ \t]*$', r"\1\ntime_limit = false", text, flags=re.M)
        if n != len(re.findall(r"^\[stages\.[^.\]]+\]", text, flags=re.M)):
            sys.exit(f"{pipeline}: expected one `plugin = ...` line per [stages.*] table")
        g.write(text)
    help_text = subprocess.run([args.sluice, "run", "--help"], capture_output=True, text=True).stdout
    if "--native-plugins" not in help_text:
        sys.exit(f"{args.sluice} has no --native-plugins: cargo build --release --features native-plugins")
    sluice_runs = {
        A: ["run", pipeline],
        A1: ["run", one_worker],
        A0: ["run", pipeline],
        A2: ["run", no_limit],
        B: ["run", "--native-plugins", pipeline],
    }
    one_core = {min(os.sched_getaffinity(0))}
    results = {A: [], A1: [], A0: [], A2: [], B: [], C: []}
    threads = []  # (a)'s CPU s by kind of thread, per run
    try:
        for i in range(args.runs):
            for name in results:
                out = os.path.join(work, f"out-{i}")
                shutil.rmtree(out, ignore_errors=True)
                if name in sluice_runs:
                    env = dict(os.environ, SLUICE_BENCH_DIR=cache, SLUICE_OUT=out, SLUICE_SIGNING_KEY="")
                    cpus = one_core if name == A0 else None
                    wall, cpu, rss, stdout, kinds = run([args.sluice, *sluice_runs[name]], env, cpus, threads=name == A)
                    events = int(stdout.split("wrote ")[1].split()[0])
                    if name == A:
                        threads.append(kinds)
                else:
                    wall, cpu, rss, _, _ = run([sys.executable, script, cache, out])
                    events = count_rows(out)
                results[name].append((wall, cpu, rss, size(out), events))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"input: {args.events:,} events, {input_bytes / 1e6:.0f} MB; medians of {args.runs} runs; {os.cpu_count()} cores")
    print(f"{'pipeline':<28} {'events/s':>10} {'MB/s/core':>10} {'wall s':>7} {'CPU s':>7} {'peak RSS':>9} {'output':>9}")
    medians = {}
    for name, rows in results.items():
        wall, cpu, rss, out_bytes, events = (statistics.median(r[i] for r in rows) for i in range(5))
        medians[name] = (wall, cpu)
        print(f"{name:<28} {events / wall:>10,.0f} {input_bytes / 1e6 / cpu:>10.1f} {wall:>7.1f} {cpu:>7.1f} "
              f"{rss / 2**20:>7.0f}Mi {out_bytes / 1e6:>7.0f}MB")
    (wa, ca), (wa1, _), (wa0, _), (_, ca2), (wb, cb), (wc, cc) = (medians[n] for n in (A, A1, A0, A2, B, C))
    print(f"(a)/(b): Wasm takes {ca / cb:.2f}x the CPU time of native plugins (target: at most 1.25x)")
    print(f"(a2)/(b): without the time limit, {ca2 / cb:.2f}x (the deadline checks: {ca / ca2:.2f}x)")
    print(f"(a)/(c): throughput per core {cc / ca:.2f}x, wall {wc / wa:.2f}x (above 1: sluice is faster)")
    print(f"(a)/(a1): {os.cpu_count()} workers run {wa1 / wa:.2f}x as fast as one (wall)")
    print(f"(a)/(a0): on {len(os.sched_getaffinity(0))} cores (a) runs {wa0 / wa:.2f}x as fast as on one (wall)")
    events = statistics.median(r[4] for r in results[A])
    kinds = {k: statistics.median(t.get(k, 0.0) for t in threads) for k in set().union(*threads)}
    per_event = lambda prefix: sum(v for k, v in kinds.items() if k.startswith(prefix)) / events * 1e6
    sink = per_event("main")  # the sink runs on the main thread
    bound = f", which alone would hold (a) under {1e6 / sink:,.0f} events/s on any number of cores" if sink else ""
    print(f"(a) CPU per event by thread: workers {per_event('worker'):.1f} us, the sink's pool "
          f"{per_event('sluice-sink'):.1f} us, the sink's own thread {sink:.2f} us (one thread{bound}), "
          f"sources {per_event('source-'):.2f} us")


if __name__ == "__main__":
    main()

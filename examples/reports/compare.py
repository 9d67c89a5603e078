#!/usr/bin/env python3
"""Times every report on one archive with DuckDB and with `sluice query`.

    cargo build --release --features query
    python3 examples/reports/compare.py ARCHIVE [--sluice target/release/sluice] [NAME=VALUE ...]

DuckDB runs as `run.py` does (the `events` view over the streams, in-process);
`sluice query` runs as a user would run it, one process per report (start,
list the archive, plan, read, print CSV). Each report runs once with each
engine; the table gives wall milliseconds and row counts. The reports are
written in SQL both engines speak (`unnest`, `r['field']`, `CAST(time AS
DATE)`, `LIKE`); a query that fails in `sluice query` is shown with
DataFusion's first error line.

Parameters default to values that exist in a `gen_events.py` archive; give
NAME=VALUE to change them.
"""
import glob
import os
import subprocess
import sys
import time

import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULTS = {"actor": "alice", "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "id": "none"}


def main():
    args = sys.argv[1:]
    sluice = os.path.join(ROOT, "target/release/sluice")
    if "--sluice" in args:
        i = args.index("--sluice")
        sluice = args[i + 1]
        del args[i : i + 2]
    if not args:
        sys.exit(__doc__)
    archive = args[0]
    params = dict(DEFAULTS, **dict(a.split("=", 1) for a in args[1:]))
    streams = sorted(d for d in os.listdir(archive) if not d.startswith(("_", ".")))
    globs = ", ".join(f"'{os.path.join(archive, s)}/**/*.parquet'" for s in streams)

    print("| report | DuckDB ms | DuckDB rows | sluice query ms | sluice query rows |")
    print("|---|---:|---:|---:|---:|")
    for report in sorted(glob.glob(os.path.join(ROOT, "examples/reports/*.sql"))):
        sql = open(report).read()
        for name, value in params.items():
            sql = sql.replace("{" + name + "}", value.replace("'", "''"))
        # DuckDB, as run.py: a fresh connection and view per report
        started = time.monotonic()
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"CREATE VIEW events AS SELECT * FROM read_parquet([{globs}], hive_partitioning = true, union_by_name = true)"
        )
        duck_rows = len(con.sql(sql).fetchall())
        duck_ms = (time.monotonic() - started) * 1e3
        # sluice query: the whole process
        started = time.monotonic()
        out = subprocess.run([sluice, "query", archive, sql, "--format", "csv"], capture_output=True, text=True)
        ours_ms = (time.monotonic() - started) * 1e3
        name = os.path.basename(report)
        if out.returncode == 0:
            ours_rows = max(len(out.stdout.splitlines()) - 1, 0)
            print(f"| {name} | {duck_ms:.0f} | {duck_rows} | {ours_ms:.0f} | {ours_rows} |")
        else:
            why = next((l for l in out.stderr.splitlines() if l.strip()), "failed")[:90].replace("|", "/")
            print(f"| {name} | {duck_ms:.0f} | {duck_rows} | n/a | {why} |")


if __name__ == "__main__":
    main()

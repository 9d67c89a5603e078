#!/usr/bin/env python3
"""Runs a report on a sluice archive with DuckDB (PyPI `duckdb`).

    python3 examples/reports/run.py ARCHIVE REPORT.sql [NAME=VALUE ...] [--json]

`events` is a view over every stream of the archive (each directory not
starting with `_`, Hive partitions read from the paths); `{NAME}` in the query
is replaced by the value given. Prints CSV, or JSON rows with --json.
"""
import csv
import json
import os
import sys

import duckdb


def main():
    args = [a for a in sys.argv[1:] if a != "--json"]
    if len(args) < 2:
        sys.exit(__doc__)
    archive, report = args[0], args[1]
    params = dict(a.split("=", 1) for a in args[2:])
    streams = sorted(d for d in os.listdir(archive) if not d.startswith(("_", ".")))
    globs = ", ".join(f"'{os.path.join(archive, s)}/**/*.parquet'" for s in streams)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet([{globs}], hive_partitioning = true, union_by_name = true)")
    query = open(report).read()
    for name, value in params.items():
        query = query.replace("{" + name + "}", value.replace("'", "''"))
    result = con.sql(query)
    rows = result.fetchall()
    if "--json" in sys.argv:
        print(json.dumps(rows, default=str))
    else:
        out = csv.writer(sys.stdout)
        out.writerow(result.columns)
        out.writerows(["" if v is None else v for v in row] for row in rows)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Prints every planted secret that appears anywhere in an archive.

Usage: leak_check.py ARCHIVE_DIR SECRETS_FILE

Every file under ARCHIVE_DIR is searched: Parquet files decoded with pyarrow
(every column, every value, as text), anything else (quarantine NDJSON) as
text. The secrets (one per line) are matched as fixed strings by grep -F, which
handles tens of thousands of them at once. Exit 0 whatever is found; the
caller decides.
"""
import pathlib
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq


def main():
    root, secrets = pathlib.Path(sys.argv[1]), sys.argv[2]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as dump:
        for f in sorted(root.rglob("*")):
            if not f.is_file():
                continue
            if f.suffix == ".parquet":
                for column in pq.read_table(f).to_pydict().values():
                    for value in column:
                        dump.write(f"{value}\n")
            else:
                dump.write(f.read_text(errors="replace"))
                dump.write("\n")
        dump.flush()
        found = subprocess.run(["grep", "-F", "-o", "-f", secrets, dump.name], capture_output=True, text=True)
        if found.returncode not in (0, 1):
            sys.exit(f"grep failed: {found.stderr}")
        print("\n".join(sorted(set(found.stdout.split()))))


if __name__ == "__main__":
    main()

"""A reader in a loop, as another tool would read a target (README's recipes).

Run as ``python -m tests.store.recipe_reader TARGET``. For each line on stdin it reads
the target once and prints one JSON line: ``{"ok": true, "ticks": {file_id: [rows,
distinct (msg_seq, pkt_seq)]}}``, ``{"ok": false, "error": ...}`` when the read failed
(a file vanished under it, a DuckDB target locked by its writer).
"""

from __future__ import annotations

import json
import os
import sys

import duckdb


def read_parquet(target: str) -> dict:
    # README's recipe: only Tickscope's part names, hive partitioning.
    glob = os.path.join(target, "ticks", "*", "part-*.parquet")
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT file_id, count(*), count(DISTINCT (msg_seq, pkt_seq)) "
            "FROM read_parquet(?, hive_partitioning=true) GROUP BY file_id", [glob],
        ).fetchall()
    except duckdb.IOException as err:
        if "No files found" in str(err):
            return {}
        raise
    finally:
        con.close()
    return {fid: [n, distinct] for fid, n, distinct in rows}


def read_duckdb(target: str) -> dict:
    if not os.path.exists(target):
        return {}
    con = duckdb.connect(target, read_only=True)  # README's recipe for a DuckDB target
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "ticks" not in tables:
            return {}
        rows = con.execute(
            "SELECT file_id, count(*), count(DISTINCT (msg_seq, pkt_seq)) FROM ticks GROUP BY file_id"
        ).fetchall()
    finally:
        con.close()
    return {fid: [n, distinct] for fid, n, distinct in rows}


def main() -> None:
    target = sys.argv[1]
    read = read_duckdb if target.endswith((".duckdb", ".db")) else read_parquet
    for _ in sys.stdin:
        try:
            result = {"ok": True, "ticks": read(target)}
        except duckdb.Error as err:
            result = {"ok": False, "error": str(err).splitlines()[0]}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

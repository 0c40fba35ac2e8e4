"""`tickscope unknown`: the tokens no master named in a target, each with why.

Reads the ``unknown_tokens`` table the target keeps (rebuilt after every ingest and
resolve). Aligned text by default, ``--json`` (one object per token, one per line)
or ``--csv``.
"""

from __future__ import annotations

import csv
import json
import os
import sys

DESCRIPTION = "List the instrument tokens no master named in a target, with the likely reason."


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("unknown", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per token, one per line")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    parser.set_defaults(run=run)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def render_text(rows: list[dict]) -> str:
    from app.core.market_time import IST

    columns = ["instrument_token", "segment", "ticks", "first_tick_time", "last_tick_time", "diagnosis", "explanation"]
    headers = ["token", "segment", "ticks", "first tick (IST)", "last tick (IST)", "diagnosis", "explanation"]
    table = [headers] + [
        [_cell(r.get(c)) if c not in ("first_tick_time", "last_tick_time") or r.get(c) is None
         else r[c].astimezone(IST).strftime("%Y-%m-%d %H:%M:%S") for c in columns]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns) - 1)]
    numeric = {0, 1, 2}
    out = []
    for line in table:
        cells = [line[i].rjust(widths[i]) if i in numeric else line[i].ljust(widths[i]) for i in range(len(widths))]
        out.append("  ".join(cells + [line[-1]]).rstrip())
    return "\n".join(out) + "\n"


def run(args) -> int:
    import pyarrow.compute as pc

    from app.store import open_target

    with open_target(args.target, read_only=True) as target:
        table = target.unknown_tokens()
        # No unknown tokens means every tick is named only if there are ticks at all.
        has_ticks = table.num_rows > 0 or int(pc.sum(target.captures()["packets"]).as_py() or 0) > 0
    try:
        _write(args, table, has_ticks)
    except BrokenPipeError:  # `tickscope unknown T | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _write(args, table, has_ticks: bool = True) -> None:
    rows = table.to_pylist()
    if args.json:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=_cell) + "\n")
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in table.column_names])
    elif not rows and not has_ticks:
        sys.stdout.write("no ticks in this target yet; ingest captures into it first\n")
    elif not rows:
        sys.stdout.write("no unknown tokens: every tick is named\n")
    else:
        sys.stdout.write(render_text(rows))
        total = sum(r["ticks"] for r in rows)
        sys.stdout.write(f"{len(rows):,} unknown tokens, {total:,} ticks\n")

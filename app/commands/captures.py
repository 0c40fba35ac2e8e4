"""`tickscope captures`: the captures of a target, one line each (or JSON).

The same list as the Data view's Captures tab (``app.store.query.TargetReader.captures``):
file name, trading days, ticks stored, suspect ticks (when the target counts them), bad
packets, unresolved ticks, framing, when it was ingested, its source path and its
integrity state from the target's own ``verify``.
"""

from __future__ import annotations

import json
import sys

DESCRIPTION = "List the captures of a target: days, ticks, faults, framing, integrity."


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("captures", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    parser.add_argument("--json", action="store_true", help="one JSON array of captures")
    parser.set_defaults(run=run)


def _days(days) -> str:
    if not days:
        return "-"
    if len(days) <= 3:
        return ",".join(d.isoformat() for d in days)
    return f"{days[0].isoformat()}..{days[-1].isoformat()} ({len(days)} days)"


def run(args) -> int:
    from app.core.market_time import format_time
    from app.store.query import TargetReader

    with TargetReader(args.target) as reader:
        rows = reader.captures()
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rows]) + "\n")
        return 0
    header = ["file", "days", "ticks", "suspect", "bad", "unresolved", "framing", "ingested (IST)", "integrity"]
    table = [header]
    for r in rows:
        table.append([r.file_name, _days(r.trading_days), f"{r.ticks:,}",
                      "-" if r.suspect is None else f"{r.suspect:,}", f"{r.bad_packets:,}", f"{r.unresolved:,}",
                      r.framing, format_time(r.ingested_at), r.integrity])
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:  # (the last column is not padded: widths has one entry fewer)
        sys.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] + "\n")
    for r in rows:
        sys.stdout.write(f"{r.file_name}: {r.path}  ({r.file_id})\n")
    sys.stdout.write(f"{len(rows):,} capture{'s' if len(rows) != 1 else ''} in {args.target}\n")
    return 0

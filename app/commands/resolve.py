"""`tickscope resolve`: name ticks still unresolved in a target with more instrument masters.

The masters are stored in the target's ``instruments`` table, ticks they name are
updated in place and ``unknown_tokens`` is rebuilt, all as one change
(``Target.resolve_with_masters``: one transaction for DuckDB; for a Parquet dataset
one atomic switch of the captures, with ``unknown_tokens`` rebuilt if a stop left it stale).
"""

from __future__ import annotations

import json
import sys

DESCRIPTION = "Name still-unresolved ticks in a target using more instrument masters."


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("resolve", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    parser.add_argument("--instruments", "-i", nargs="+", action="extend", required=True, metavar="FILE",
                        help="instrument masters (Kite instruments CSV, JSON lookup, Parquet)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.set_defaults(run=run)


def resolve_target(target_path, instrument_paths) -> dict:
    """Load masters, record them, resolve and rebuild unknown tokens; the counts as a dict."""
    from pathlib import Path

    from app.core.instruments import load_master
    from app.store import check_target, open_target

    masters = [load_master(p) for p in instrument_paths]
    path = Path(target_path)
    check_target(path, must_exist=True, writable=False)
    with open_target(path) as target:
        # One change: an interruption never leaves masters, ticks and unknown_tokens out of step.
        resolved, unknown = target.resolve_with_masters(masters)
    return {
        "target": str(path),
        "masters": [m.describe() for m in masters],
        "resolved_ticks": resolved,
        "unknown_tokens": unknown.num_rows,
        "unresolved_ticks": int(sum(unknown["ticks"].to_pylist())) if unknown.num_rows else 0,
    }


def run(args) -> int:
    result = resolve_target(args.target, args.instruments)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        for line in result["masters"]:
            sys.stdout.write(f"master: {line}\n")
        sys.stdout.write(
            f"resolved {result['resolved_ticks']:,} ticks; {result['unresolved_ticks']:,} ticks of "
            f"{result['unknown_tokens']:,} tokens still unknown (see 'tickscope unknown {result['target']}')\n"
        )
    return 0

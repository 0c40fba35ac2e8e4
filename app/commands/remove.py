"""`tickscope remove`: take captures, and everything derived from them, out of a target.

Each argument is a capture's ``file_id`` (sha256, as ``captures`` lists it) or a capture's
path: an existing file is named by its content's sha256 (the file is the truth), another
path by the ``captures.path`` it was ingested from. The target's ``remove`` store
operation (the desktop app uses the same one) deletes their ticks, bad packets and
``captures`` rows and rebuilds ``unknown_tokens`` in one transaction (DuckDB) or one
manifest commit (Parquet). An argument naming no capture of the target removes nothing
(exit 2).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from app.errors import InputError

DESCRIPTION = "Remove captures (by file id or capture path) and their ticks, bad packets and unknown tokens."

_FILE_ID = re.compile(r"^[0-9a-f]{64}$")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("remove", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    parser.add_argument("captures", nargs="+", metavar="FILE_ID|CAPTURE_PATH",
                        help="a capture's file_id (sha256) or the capture file's path")
    parser.add_argument("--json", action="store_true", help="print what was removed as one JSON line")
    parser.set_defaults(run=run)


def file_ids_of(target, names) -> list[str]:
    """The committed file_id each argument names; InputError naming the ones that name none."""
    from app.core.digest import file_sha256

    captures = target.captures()
    by_path: dict[str, list[str]] = {}
    for fid, path in zip(captures["file_id"].to_pylist(), captures["path"].to_pylist(), strict=True):
        by_path.setdefault(os.path.realpath(path) if path else "", []).append(fid)
    committed = set(captures["file_id"].to_pylist())
    found, unknown = [], []
    for name in names:
        text = str(name)
        if _FILE_ID.match(text.lower()) and not Path(text).exists():
            fids = [text.lower()]
        elif Path(text).is_file():
            try:
                fids = [file_sha256(Path(text))]
            except OSError as err:
                raise InputError(f"cannot read {text}: {err.strerror or err}") from None
        else:
            fids = by_path.get(os.path.realpath(text), [])
        hits = [f for f in fids if f in committed]
        if hits:
            found.extend(hits)
        else:
            unknown.append(text)
    if unknown:
        raise InputError(
            f"not a capture of {target.path}: {', '.join(unknown)} (give a file_id from its captures table "
            "or the capture file); nothing was removed"
        )
    return list(dict.fromkeys(found))


def remove_captures(target_path, names) -> dict:
    from app.store import NotInTarget, open_existing_target

    with open_existing_target(target_path) as target:
        file_ids = file_ids_of(target, names)
        try:
            removed = target.remove(file_ids)
        except NotInTarget as err:  # (file_ids_of checked; kept for scripts calling the store)
            raise InputError(f"not a capture of {target.path}: {err}; nothing was removed") from None
        counts = target.counts()
    return {
        "target": str(target_path),
        "removed": [r.to_dict() for r in removed],
        "ticks": sum(r.ticks for r in removed),
        "bad_packets": sum(r.bad_packets for r in removed),
        "left": counts,
    }


def run(args) -> int:
    result = remove_captures(args.target, args.captures)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    for r in result["removed"]:
        sys.stdout.write(f"removed {Path(r['path'] or '').name or r['file_id']} ({r['file_id'][:12]}): "
                         f"{r['ticks']:,} ticks, {r['bad_packets']:,} bad packets\n")
    left = result["left"]
    sys.stdout.write(f"{result['target']} now holds {left['captures']:,} captures, {left['ticks']:,} ticks\n")
    return 0

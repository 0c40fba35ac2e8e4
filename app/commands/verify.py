"""`tickscope verify`: check a target's integrity, one line per finding.

Runs the target's own ``verify`` store operation (``Target.verify``; the desktop app uses
the same one): every committed capture's parts exist with the rows and footer recorded at
commit (Parquet), its stored tick and bad-packet rows match its ``captures`` row, no rows
or parts belong to no capture, no stray files sit in the dataset's folders. Exit 0 when
clean, 5 (``EXIT_DAMAGED``) when anything was found that is damage; a note that is not
(``Finding.damage`` false: a staged part an ended write left, which the next open for
writing deletes, or an unfinished temporary part of a stopped writer) is listed but leaves the exit code 0.
"""

from __future__ import annotations

import json
import sys

from app.errors import EXIT_DAMAGED, EXIT_OK

DESCRIPTION = "Check a target: parts, row counts, orphans and stray files; exit 5 on damage."


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("verify", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: the findings (code, subject, what, action, file_id) and counts")
    parser.set_defaults(run=run)


def verify_target(path) -> dict:
    from app.store import open_existing_target
    from app.store.base import Finding, UnreadableTarget

    try:
        with open_existing_target(path) as target:
            findings = target.verify()
            captures = target.captures().num_rows
    except UnreadableTarget as err:  # its manifest or journal: damage, not a usage error
        findings = [Finding("unreadable", str(path), str(err), "re-ingest its captures into a new target")]
        captures = 0
    return {
        "target": str(path),
        "captures": captures,
        "findings": [f.to_dict() for f in findings],
        "lines": [f.line() for f in findings],
        "exit_code": EXIT_DAMAGED if any(f.damage for f in findings) else EXIT_OK,
    }


def run(args) -> int:
    result = verify_target(args.target)
    if args.json:
        sys.stdout.write(json.dumps({k: v for k, v in result.items() if k != "lines"}) + "\n")
    else:
        for line in result["lines"]:
            sys.stdout.write(line + "\n")
        found = sum(1 for f in result["findings"] if f["damage"])
        notes = len(result["findings"]) - found
        summary = (f"{result['target']}: {result['captures']:,} captures, "
                   + (f"{found:,} problem{'' if found == 1 else 's'} found" if found else "no problems found")
                   + (f", {notes:,} note{'' if notes == 1 else 's'} (not damage)" if notes else ""))
        sys.stdout.write(summary + "\n")
    return result["exit_code"]

"""`tickscope inspect`: one packet (or bad region) of a capture, dissected field by field.

The same rows and the same dissection as the desktop inspector (``app.core.packet_index``).
``--packet N`` is the N-th packet of the capture (1-based, file order; bad regions are not
packets and are not counted), ``--bad N`` the N-th bad region, ``--offset X`` whatever
holds that file offset. The output names both numbers and the row of the inspector's
list (``row``), where packets and bad regions interleave. With ``--json`` the output is
one JSON object.
"""

from __future__ import annotations

import json
import sys

from app.errors import UsageError

DESCRIPTION = "Dissect one packet or bad region of a capture (the inspector's details, in the terminal)."


def add_parser(subparsers) -> None:
    from app.commands.choices import framings

    parser = subparsers.add_parser("inspect", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("capture", metavar="CAPTURE", help="the capture file")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--packet", "-p", metavar="N", help="packet number, 1-based, counting packets only")
    where.add_argument("--bad", metavar="N", help="bad region number, 1-based")
    where.add_argument("--offset", metavar="X", help="a file offset inside the packet (decimal or 0x hex)")
    parser.add_argument("--framing", choices=framings(), default=None, metavar="FRAMING",
                        help="the capture container, one of %(choices)s (default: detected from the content)")
    parser.add_argument("--instruments", "-i", nargs="+", action="extend", default=[], metavar="FILE",
                        help="instrument masters to name the token")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def _book(paths):
    if not paths:
        return None
    from app.core.enrich import InstrumentBook
    from app.core.instruments import load_master

    return InstrumentBook([load_master(p) for p in paths])


def format_view(view, framing: str, number=None) -> str:
    """The dissection as text: header line, then one line per field, then experts."""
    what = "bad region" if view.kind == "bad" else "packet"
    number = view.number if number is None else number
    row = f", row {view.number} in the inspector" if number != view.number else ""
    lines = [
        f"{what} {number}: {view.kind}, {view.length} bytes at offset {view.offset} ({view.offset:#x})"
        + (f", message {view.msg}" if view.msg is not None else "") + row + f" [{framing}]"
    ]
    if view.reason:
        lines.append(f"  bad region: {view.reason}")
    if view.note:
        lines.append(f"  note: {view.note}")
    width = max((len(f.name) + (2 if f.generated else 0) for f in view.dissection.fields), default=4)
    for f in view.dissection.fields:
        name = f"[{f.name}]" if f.generated else f.name
        raw = f.raw[:32].hex(" ") + (" …" if len(f.raw) > 32 else "")
        value = f.value_text()
        meaning = f"  ({f.meaning})" if f.meaning and f.meaning != view.reason else ""
        lines.append(f"  {name:<{width}}  {f.offset:>10}  {f.length:>4}  {raw:<24}  {value}{meaning}")
    for e in view.dissection.experts:
        lines.append(f"  {e.severity}: {e.message}")
    return "\n".join(lines)


def run(args) -> int:
    import numpy as np

    from app.core.packet_index import FLAG_BAD, build_index, parse_offset, symbol_lookup

    packet = offset = None
    bad_number = getattr(args, "bad", None)
    option = "--packet" if args.packet is not None else "--bad"
    if args.packet is not None or bad_number is not None:
        text = args.packet if args.packet is not None else bad_number
        try:
            packet = int(str(text).strip())
        except ValueError:
            raise UsageError(f"{option} must be a whole number, got {text!r}") from None
        if packet < 1:
            raise UsageError(f"{option} counts from 1, got {packet}")
    else:
        try:
            offset = parse_offset(args.offset)
        except ValueError:
            raise UsageError(f"--offset must be a decimal or 0x hex file offset, got {args.offset!r}") from None
    book = _book(args.instruments)
    index = build_index(args.capture, args.framing, symbol_of=symbol_lookup(book))
    flags = index.column("flags")
    is_bad = (flags & FLAG_BAD) != 0
    if packet is not None:
        rows = np.flatnonzero(is_bad if option == "--bad" else ~is_bad)
        if packet > rows.size:
            what = "bad region" if option == "--bad" else "packet"
            raise UsageError(f"{what} {packet} does not exist: {args.capture} has {rows.size:,} {what}s "
                             f"(and {int(is_bad.sum()) if option == '--packet' else int((~is_bad).sum()):,} "
                             f"{'bad regions' if option == '--packet' else 'packets'})")
        row = int(rows[packet - 1])
    else:
        if offset >= index.size:
            raise UsageError(f"offset {offset} is beyond the end of {args.capture} ({index.size:,} bytes)")
        row = index.row_at_offset(offset)
        if row is None:
            raise UsageError(
                f"offset {offset} ({offset:#x}) is in a message header, length prefix, container framing "
                f"or heartbeat, not in a packet: try a nearby offset")
    view = index.view(row)
    bad = bool(is_bad[row])
    number = int(np.count_nonzero(is_bad[: row + 1] == bad))  # its number among packets / bad regions
    if args.json:
        doc = view.to_dict()
        doc["framing"] = index.framing
        doc["framing_evidence"] = index.framing_evidence
        doc["row"] = row + 1
        doc["packet"] = None if bad else number
        doc["bad_region"] = number if bad else None
        print(json.dumps(doc, default=str))
    else:
        print(format_view(view, index.framing, number))
    sys.stdout.flush()
    return 0

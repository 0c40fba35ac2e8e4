"""`tickscope inspect`: one packet (or bad region) of a capture, dissected field by field.

The same rows and the same dissection as the desktop inspector (``app.core.packet_index``):
packet numbers are 1-based in file order, bad regions count as rows, so ``--packet N``
here is row N of the inspector's packet list. ``--offset X`` finds the row holding that
file offset. With ``--json`` the output is one JSON object.
"""

from __future__ import annotations

import json
import sys

from app.errors import UsageError

DESCRIPTION = "Dissect one packet or bad region of a capture (the inspector's details, in the terminal)."


def add_parser(subparsers) -> None:
    from app.core.framing import FRAMINGS

    parser = subparsers.add_parser("inspect", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("capture", metavar="CAPTURE", help="the capture file")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--packet", "-p", metavar="N", help="packet number, 1-based, as in the inspector's list")
    where.add_argument("--offset", metavar="X", help="a file offset inside the packet (decimal or 0x hex)")
    parser.add_argument("--framing", choices=FRAMINGS, default=None,
                        help="the capture container (default: detected from the content)")
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


def _value_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def format_view(view, framing: str) -> str:
    """The dissection as text: header line, then one line per field, then experts."""
    lines = [
        f"packet {view.number}: {view.kind}, {view.length} bytes at offset {view.offset} ({view.offset:#x})"
        + (f", message {view.msg}" if view.msg is not None else "") + f" [{framing}]"
    ]
    if view.reason:
        lines.append(f"  bad region: {view.reason}")
    if view.note:
        lines.append(f"  note: {view.note}")
    width = max((len(f.name) + (2 if f.generated else 0) for f in view.dissection.fields), default=4)
    for f in view.dissection.fields:
        name = f"[{f.name}]" if f.generated else f.name
        raw = f.raw[:32].hex(" ") + (" …" if len(f.raw) > 32 else "")
        value = _value_text(f.value)
        meaning = f"  ({f.meaning})" if f.meaning and f.meaning != view.reason else ""
        lines.append(f"  {name:<{width}}  {f.offset:>10}  {f.length:>4}  {raw:<24}  {value}{meaning}")
    for e in view.dissection.experts:
        lines.append(f"  {e.severity}: {e.message}")
    return "\n".join(lines)


def run(args) -> int:
    from app.core.packet_index import build_index, parse_offset, symbol_lookup

    packet = offset = None
    if args.packet is not None:
        try:
            packet = int(str(args.packet).strip())
        except ValueError:
            raise UsageError(f"--packet must be a whole number, got {args.packet!r}") from None
        if packet < 1:
            raise UsageError(f"--packet counts from 1, got {packet}")
    else:
        try:
            offset = parse_offset(args.offset)
        except ValueError:
            raise UsageError(f"--offset must be a decimal or 0x hex file offset, got {args.offset!r}") from None
    book = _book(args.instruments)
    index = build_index(args.capture, args.framing, symbol_of=symbol_lookup(book))
    if packet is not None:
        if packet > index.rows:
            raise UsageError(f"packet {packet} does not exist: {args.capture} has {index.rows:,} packets and bad regions")
        row = packet - 1
    else:
        if offset >= index.size:
            raise UsageError(f"offset {offset} is beyond the end of {args.capture} ({index.size:,} bytes)")
        row = index.row_at_offset(offset)
        if row is None:
            raise UsageError(
                f"offset {offset} ({offset:#x}) is in a message header, length prefix, container framing "
                f"or heartbeat, not in a packet: try a nearby offset")
    view = index.view(row)
    if args.json:
        doc = view.to_dict()
        doc["framing"] = index.framing
        print(json.dumps(doc, default=str))
    else:
        print(format_view(view, index.framing))
    sys.stdout.flush()
    return 0

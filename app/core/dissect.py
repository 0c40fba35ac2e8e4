"""Wireshark-style dissection of one packet, driven by the layout table.

The inspector's details tree, its hex highlighting and `tickscope inspect` all come
from ``dissect_packet``: every field of the packet's layout with its absolute file
offset, bytes, value as decoded (big-endian), the same bytes read little-endian (to
settle endianness doubts at a glance), the scaled value with its divisor, and what it
means. Derived values are ``generated`` fields (shown in brackets), and faults are
expert entries with a severity. Not for bulk decoding: that is ``app.core.decode``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core import protocol
from app.core.market_time import IST

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"
SEVERITY_NOTE = "note"


@dataclass(frozen=True)
class DissectedField:
    name: str  # e.g. last_price, bid[0].price; generated ones are shown as [name]
    offset: int  # absolute file offset of the first byte
    length: int
    raw: bytes
    value: object  # as decoded: int, float (scaled price), ISO time string, or None
    big_endian: int | None = None
    little_endian: int | None = None
    divisor: float | None = None
    meaning: str = ""
    generated: bool = False  # derived, not on the wire (length 0, offset of the source)
    group: str = ""  # "" for top-level fields, else e.g. "depth: bids"

    def value_text(self, none: str = "-") -> str:
        """The value as `tickscope inspect` and the inspector show it (``none`` when there is none)."""
        if self.value is None:
            return none
        if isinstance(self.value, float):
            return f"{self.value:.10g}"
        return str(self.value)

    @property
    def end(self) -> int:
        return self.offset + self.length

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "offset": self.offset,
            "length": self.length,
            "raw": self.raw.hex(),
            "value": self.value,
            "big_endian": self.big_endian,
            "little_endian": self.little_endian,
            "divisor": self.divisor,
            "meaning": self.meaning,
            "generated": self.generated,
            "group": self.group,
        }


@dataclass(frozen=True)
class Expert:
    severity: str  # error | warning | note
    message: str
    offset: int | None = None


@dataclass
class Dissection:
    offset: int  # absolute file offset of the packet body
    length: int
    kind: str  # layout kind, or "unknown"
    mode: str | None
    fields: list[DissectedField] = field(default_factory=list)
    experts: list[Expert] = field(default_factory=list)

    def field_at(self, file_offset: int) -> DissectedField | None:
        """The wire field whose bytes include ``file_offset`` (hex pane click -> field)."""
        for f in self.fields:
            if not f.generated and f.offset <= file_offset < f.end:
                return f
        return None


def _int(raw: bytes, signed: bool, order: str) -> int:
    return int.from_bytes(raw, order, signed=signed)


def _utc_text(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def _ist_text(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, IST).strftime("%Y-%m-%d %H:%M:%S IST")


def dissect_packet(
    body: bytes,
    offset: int = 0,
    *,
    instrument_name: Callable[[int], str | None] | None = None,
) -> Dissection:
    """Dissect one packet body that starts at absolute file ``offset``.

    ``instrument_name(token)`` may name the token from loaded instrument masters.
    """
    length = len(body)
    layout = protocol.layout_of(body)
    if layout is None:
        d = Dissection(offset, length, "unknown", None)
        d.fields.append(DissectedField("raw", offset, length, bytes(body), body[:64].hex(),
                                       meaning="packet of unknown length: kept as raw bytes"))
        d.experts.append(Expert(SEVERITY_ERROR, f"unknown packet length {length}", offset))
        if length >= 4:
            _token_generated(d, _int(body[:4], False, "big"), offset, instrument_name)
        return d

    d = Dissection(offset, length, layout.kind, layout.mode)
    token = _int(body[0:4], False, "big")
    segment = protocol.segment_of(token)
    divisor = protocol.divisor_of(segment)
    values: dict[str, object] = {}
    for f in layout.fields:
        raw = bytes(body[f.offset:f.end])
        be = _int(raw, f.signed, "big")
        le = _int(raw, f.signed, "little")
        meaning = f.description
        value: object = be
        if f.price:
            value = be / divisor
            meaning = f"{be} / {divisor:g}"
        elif f.timestamp:
            value = _utc_text(be) if be else None
            meaning = _ist_text(be) if be else "0: absent"
        elif f.name == "instrument_token":
            name = instrument_name(token) if instrument_name else None
            meaning = f"segment {segment}: {protocol.segment_meaning(segment)}"
            if name:
                meaning += f"; {name}"
        values[f.name] = value
        d.fields.append(DissectedField(
            f.name, offset + f.offset, f.size, raw, value, be, le,
            divisor if f.price else None, meaning,
        ))
    if layout.depth is not None:
        _dissect_depth(d, body, offset, layout.depth, divisor)
    if layout.evidence is not None:
        d.experts.append(Expert(
            SEVERITY_NOTE,
            f"{layout.length}-byte packet read as {layout.kind}, not as {protocol.LAYOUTS[layout.length].kind}: "
            f"{layout.evidence.description}", offset,
        ))
    _token_generated(d, token, offset, instrument_name)
    _derived(d, values, offset)
    if segment not in protocol.SEGMENTS:
        d.experts.append(Expert(
            SEVERITY_WARNING,
            f"segment byte {segment} is not a Kite segment: likely mis-framed bytes "
            f"(prices shown divided by {protocol.DEFAULT_DIVISOR:g})", offset,
        ))
    return d


def _dissect_depth(d: Dissection, body: bytes, offset: int, depth: protocol.Depth, divisor: float):
    used = depth.entry_fields[-1].offset + depth.entry_fields[-1].size
    for side, label in (("bid", "depth: bids"), ("ask", "depth: asks")):
        if side not in depth.sides:
            continue
        for level in range(depth.levels):
            at = depth.entry_offset(side, level)
            for ef in depth.entry_fields:
                if not depth.present(side, level, ef):
                    continue  # the packet ends before this field
                raw = bytes(body[at + ef.offset: at + ef.offset + ef.size])
                be = _int(raw, False, "big")
                le = _int(raw, False, "little")
                value = be / divisor if ef.price else be
                d.fields.append(DissectedField(
                    f"{side}[{level}].{ef.name}", offset + at + ef.offset, ef.size, raw, value,
                    be, le, divisor if ef.price else None,
                    f"{be} / {divisor:g}" if ef.price else "", group=label,
                ))
            if used < depth.entry_size and (depth.limit is None or at + depth.entry_size <= depth.limit):
                raw = bytes(body[at + used: at + depth.entry_size])
                d.fields.append(DissectedField(
                    f"{side}[{level}].padding", offset + at + used, len(raw), raw, None,
                    _int(raw, False, "big"), _int(raw, False, "little"),
                    meaning="padding: never read (has been non-zero in the wild)", group=label,
                ))
                if any(raw):
                    d.experts.append(Expert(
                        SEVERITY_NOTE, f"non-zero padding in {side}[{level}] (ignored)", offset + at + used
                    ))


def _token_generated(d, token, offset, instrument_name):
    segment = protocol.segment_of(token)
    d.fields.append(DissectedField(
        "segment", offset + 3, 0, b"", segment, meaning=protocol.segment_meaning(segment), generated=True,
    ))
    d.fields.append(DissectedField(
        "exchange_token", offset, 0, b"", protocol.exchange_token_of(token),
        meaning="instrument_token >> 8", generated=True,
    ))
    swapped = int.from_bytes(token.to_bytes(4, "big"), "little")
    name = instrument_name(swapped) if instrument_name else None
    d.fields.append(DissectedField(
        "token_byte_swapped", offset, 0, b"", swapped,
        meaning=("the token read little-endian" + (f": would be {name}" if name else "")),
        generated=True,
    ))


def _derived(d: Dissection, values: dict, offset: int) -> None:
    last, close = values.get("last_price"), values.get("close")
    if isinstance(last, float) and isinstance(close, float):
        change = last - close
        pct = change * 100 / close if close else 0.0
        d.fields.append(DissectedField("change", offset, 0, b"", change,
                                       meaning="last_price - close", generated=True))
        d.fields.append(DissectedField("change_percent", offset, 0, b"", pct,
                                       meaning="change x 100 / close (the Python client's 'change')",
                                       generated=True))

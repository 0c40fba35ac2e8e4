"""The Kite WebSocket binary protocol as data: segments, divisors and packet layouts.

This module owns the one declarative table of packet layouts (``LAYOUTS``). The
vectorised decoder, the Arrow tick schema, the test encoder and the inspector's
dissection tree and hex highlighting are all driven from it, so adding a packet kind
is one entry here plus tests. Facts: ``shared/docs/kite-protocol.md``.

All integers on the wire are big-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# --- messages -------------------------------------------------------------------

MESSAGE_COUNT_SIZE = 2  # u16 number of packets at the start of a message
PACKET_LENGTH_SIZE = 2  # u16 length before each packet
HEARTBEAT = b"\x00"  # a 1-byte message sent every few seconds when idle

# --- segments -------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    code: int
    name: str
    divisor: float
    description: str


SEGMENTS: dict[int, Segment] = {
    s.code: s
    for s in (
        Segment(1, "NSE", 100.0, "NSE equity"),
        Segment(2, "NFO", 100.0, "NSE futures & options"),
        Segment(3, "CDS", 10_000_000.0, "NSE currency derivatives"),
        Segment(4, "BSE", 100.0, "BSE equity"),
        Segment(5, "BFO", 100.0, "BSE futures & options"),
        Segment(6, "BCD", 10_000.0, "BSE currency derivatives"),
        Segment(7, "MCX", 100.0, "MCX commodities"),
        Segment(8, "MCXSX", 100.0, "MCX-SX"),
        Segment(9, "INDICES", 100.0, "indices (NSE, BSE, MCX); not tradable"),
        Segment(12, "NCO", 10_000.0, "NSE commodity derivatives"),
    )
}
INDICES_SEGMENT = 9
DEFAULT_DIVISOR = 100.0  # for segment bytes that are not real segments: display only


def segment_of(instrument_token: int) -> int:
    return instrument_token & 0xFF


def exchange_token_of(instrument_token: int) -> int:
    return instrument_token >> 8


def divisor_of(segment: int) -> float:
    seg = SEGMENTS.get(segment)
    return seg.divisor if seg else DEFAULT_DIVISOR


def segment_meaning(segment: int) -> str:
    """Human text for a segment byte, including what an invalid byte usually means."""
    seg = SEGMENTS.get(segment)
    if seg:
        return f"{seg.name} ({seg.description})"
    return f"not a Kite segment (byte {segment}): usually mis-framed bytes"


# --- packet layouts -------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One fixed-position integer in a packet.

    ``column`` is the tick-schema column it fills, or None for wire fields that are
    dissected but not stored (the index packets' own price change, for example).
    """

    name: str
    offset: int
    size: int  # 2 or 4 bytes
    signed: bool = False
    price: bool = False  # divided by the segment divisor
    timestamp: bool = False  # Unix epoch seconds, UTC; 0 means absent
    column: Optional[str] = None
    description: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def dtype(self) -> str:
        """numpy big-endian dtype string for this field."""
        return (">i" if self.signed else ">u") + str(self.size)


@dataclass(frozen=True)
class DepthEntryField:
    name: str  # quantity | price | orders
    offset: int  # inside the entry
    size: int
    price: bool = False


@dataclass(frozen=True)
class Depth:
    """Market depth: ``levels`` bid entries then ``levels`` ask entries."""

    offset: int
    levels: int  # per side
    entry_size: int
    entry_fields: tuple[DepthEntryField, ...]

    @property
    def end(self) -> int:
        return self.offset + 2 * self.levels * self.entry_size

    def entry_offset(self, side: str, level: int) -> int:
        index = level if side == "bid" else self.levels + level
        return self.offset + index * self.entry_size


@dataclass(frozen=True)
class PacketLayout:
    length: int
    kind: str  # stable short name of the packet kind
    mode: str  # as the official clients name it: ltp | quote | full
    fields: tuple[Field, ...]
    depth: Optional[Depth]
    description: str
    api: bool  # sent by the Kite Connect API (False: seen only on Kite web / old API)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _u32(name, offset, column=None, **kw) -> Field:
    return Field(name, offset, 4, column=column if column is not None else name, **kw)


def _price(name, offset, **kw) -> Field:
    return _u32(name, offset, price=True, **kw)


def _time(name, offset) -> Field:
    return _u32(name, offset, timestamp=True, description="Unix epoch seconds, UTC")


_TOKEN = _u32("instrument_token", 0, description="segment = token & 0xFF, exchange token = token >> 8")
_LTP = _price("last_price", 4)

_QUOTE_FIELDS = (
    _TOKEN,
    _LTP,
    _u32("last_traded_quantity", 8),
    _price("average_traded_price", 12),
    _u32("volume_traded", 16),
    _u32("total_buy_quantity", 20),
    _u32("total_sell_quantity", 24),
    _price("open", 28),
    _price("high", 32),
    _price("low", 36),
    _price("close", 40),
)

_DEPTH_5 = (
    DepthEntryField("quantity", 0, 4),
    DepthEntryField("price", 4, 4, price=True),
    DepthEntryField("orders", 8, 2),  # bytes 10-11 are padding: never read them
)
_DEPTH_20 = (
    DepthEntryField("quantity", 0, 4),
    DepthEntryField("price", 4, 4, price=True),
    DepthEntryField("orders", 8, 4),
)

_INDEX_FIELDS = (
    _TOKEN,
    _LTP,
    _price("high", 8),  # note: high, low, open, close order for indices
    _price("low", 12),
    _price("open", 16),
    _price("close", 20),
    Field(
        "price_change", 24, 4, signed=True, price=True, column=None,
        description="the exchange's own net change; Tickscope derives change = last_price - close",
    ),
)

LAYOUTS: dict[int, PacketLayout] = {
    layout.length: layout
    for layout in (
        PacketLayout(8, "ltp", "ltp", (_TOKEN, _LTP), None, "LTP", api=True),
        PacketLayout(
            12, "ltpc", "ltp", (_TOKEN, _LTP, _price("close", 8)), None,
            "Kite web LTP + close", api=False,
        ),
        PacketLayout(28, "index_quote", "quote", _INDEX_FIELDS, None, "index quote", api=True),
        PacketLayout(
            32, "index_full", "full", _INDEX_FIELDS + (_time("exchange_timestamp", 28),), None,
            "index full", api=True,
        ),
        PacketLayout(44, "quote", "quote", _QUOTE_FIELDS, None, "quote", api=True),
        PacketLayout(
            164, "full_legacy", "full", _QUOTE_FIELDS, Depth(44, 5, 12, _DEPTH_5),
            "pre-2018 full: quote + 5-level depth, no timestamps or OI", api=False,
        ),
        PacketLayout(
            184, "full", "full",
            _QUOTE_FIELDS + (
                _time("last_trade_time", 44),
                _u32("oi", 48),
                _u32("oi_day_high", 52),
                _u32("oi_day_low", 56),
                _time("exchange_timestamp", 60),
            ),
            Depth(64, 5, 12, _DEPTH_5),
            "full: quote + timestamps, OI and 5-level depth", api=True,
        ),
        PacketLayout(
            492, "depth20", "full",
            (_TOKEN, _LTP, _time("exchange_timestamp", 8)),
            Depth(12, 20, 12, _DEPTH_20),
            "Kite web 20-level depth", api=False,
        ),
    )
}

KNOWN_LENGTHS: tuple[int, ...] = tuple(sorted(LAYOUTS))
API_LENGTHS: tuple[int, ...] = tuple(length for length, l in sorted(LAYOUTS.items()) if l.api)
KINDS: tuple[str, ...] = tuple(LAYOUTS[length].kind for length in KNOWN_LENGTHS)
MAX_PACKET_LENGTH = max(KNOWN_LENGTHS)

# Tick columns filled directly from a wire field of some layout, in first-seen order.
WIRE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(f.column for l in LAYOUTS.values() for f in l.fields if f.column)
)
DEPTH_SIDES = ("bid", "ask")
DEPTH_COLUMNS: tuple[str, ...] = tuple(
    f"{side}_{part}" for side in DEPTH_SIDES for part in ("price", "quantity", "orders")
)


def layout_for(length: int) -> Optional[PacketLayout]:
    return LAYOUTS.get(length)


def is_known_length(length: int) -> bool:
    return length in LAYOUTS

"""The Kite WebSocket binary protocol as data: segments, divisors and packet layouts.

This module owns the one declarative table of packet layouts (``LAYOUTS``). The
vectorised decoder, the Arrow tick schema, the test encoder and the inspector's
dissection tree and hex highlighting are all driven from it, so adding a packet kind
is one entry here plus tests. Facts: ``shared/docs/kite-protocol.md``.

All integers on the wire are big-endian.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    column: str | None = None
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
    """Market depth: ``levels`` entries of each of ``sides`` (bids first, then offers).

    ``limit`` is where the packet ends when it cuts its depth short (Kite web's 44-byte
    head of the 20-level packet): entry fields past it are absent (null), never read.
    """

    offset: int
    levels: int  # per side
    entry_size: int
    entry_fields: tuple[DepthEntryField, ...]
    sides: tuple[str, ...] = ("bid", "ask")
    limit: int | None = None

    @property
    def end(self) -> int:
        """Where the entries would end if none were cut short."""
        return self.offset + len(self.sides) * self.levels * self.entry_size

    def entry_offset(self, side: str, level: int) -> int:
        index = self.sides.index(side) * self.levels + level
        return self.offset + index * self.entry_size

    def present(self, side: str, level: int, entry_field: DepthEntryField) -> bool:
        """Whether this entry field is inside the packet (False when the packet cuts it off)."""
        if side not in self.sides:
            return False
        at = self.entry_offset(side, level) + entry_field.offset + entry_field.size
        return self.limit is None or at <= self.limit


@dataclass(frozen=True)
class Evidence:
    """Content that tells a variant layout from the default one of the same length:
    every ``(offset, low, high)`` check holds, i.e. the u32 at ``offset`` is in [low, high)."""

    checks: tuple[tuple[int, int, int], ...]
    description: str


@dataclass(frozen=True)
class PacketLayout:
    length: int
    kind: str  # stable short name of the packet kind
    mode: str  # as the official clients name it: ltp | quote | full
    fields: tuple[Field, ...]
    depth: Depth | None
    description: str
    api: bool  # sent by the Kite Connect API (False: seen only on Kite web / old API)
    # Set on a variant of a length that already has a layout: the content rule that
    # picks this layout instead of the default (``layout_of``). None for defaults.
    evidence: Evidence | None = None

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

# Epoch seconds a packet's time field can hold (2010-01-01 .. 2100-01-01).
EPOCH_MIN_S = 1_262_304_000
EPOCH_MAX_S = 4_102_444_800

_DEPTH20_HEAD_FIELDS = (_TOKEN, _LTP, _time("exchange_timestamp", 8))

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
            _DEPTH20_HEAD_FIELDS,
            Depth(12, 20, 12, _DEPTH_20),
            "Kite web 20-level depth", api=False,
        ),
    )
}

# Kite web's 44-byte packets in 20-depth sessions are not API quotes but the first 44
# bytes of the 492-byte layout: token, last price, exchange time (bytes 8-11), then the
# 20-level entries cut short -- bids 1 and 2 whole, bid 3's quantity and price (its
# orders would be bytes 44-47). Evidence (../shared/fixtures/real-captures, README there):
# - in the websocat session ws492, 3 of its 12 such packets are byte-identical to the
#   first 44 bytes of a 492-byte packet of the same token in the next message;
# - bytes 8-11 of all 12 are epoch seconds of that session (2022-06-15 07:00:38-07:00:49
#   UTC), the 492-byte packets' time field; decoded as a quote that is a "last traded
#   quantity" of ~1.655e9 (the official client, the web app's JS and the Rust peer's
#   kite_ticker_extended_depth.json all do this: its 12 ``quote`` entries);
# - bytes 12-43 read as (quantity, price, orders) give bid levels whose prices fall
#   from the last price by the instrument's tick, as in the 492-byte books.
# Nothing settles bid 3's orders, the offers, OHLC or volume: they stay null.
# Telling one from an API quote: a quote's bytes 8-11 are its last traded quantity; a
# value that reads as a 2010..2100 epoch second (>= 1.26e9 units in one trade) cannot be
# one, while a web head's time always does. Bytes 20-23 and 32-35 (a quote's total buy
# quantity and high) are a web head's order counts, 1-10 in every one seen: both under
# 65536 as well makes a mistaken quote (even one of random test values) vanishingly rare.
# The rule reads the packet alone, so the decoding never depends on what else (or which
# chunk of) the capture holds; "the session also has 492-byte packets" would.
DEPTH20_HEAD = PacketLayout(
    44, "depth20_head", "depth20_head",
    _DEPTH20_HEAD_FIELDS,
    Depth(12, 3, 12, _DEPTH_20, sides=("bid",), limit=44),
    "Kite web head of a 20-level depth packet (cut at 44 bytes)", api=False,
    evidence=Evidence(
        ((8, EPOCH_MIN_S, EPOCH_MAX_S), (20, 0, 1 << 16), (32, 0, 1 << 16)),
        "bytes 8-11 are an epoch second (2010..2100), a time and not a traded quantity, and "
        "bytes 20-23 and 32-35 are order counts (< 65536) of bids 1 and 2",
    ),
)

# Layouts that replace the default of their length when their evidence holds.
VARIANTS: dict[int, tuple[PacketLayout, ...]] = {44: (DEPTH20_HEAD,)}
ALL_LAYOUTS: tuple[PacketLayout, ...] = tuple(
    layout for length in sorted(LAYOUTS) for layout in (LAYOUTS[length],) + VARIANTS.get(length, ())
)

KNOWN_LENGTHS: tuple[int, ...] = tuple(sorted(LAYOUTS))
API_LENGTHS: tuple[int, ...] = tuple(length for length, layout in sorted(LAYOUTS.items()) if layout.api)
KINDS: tuple[str, ...] = tuple(layout.kind for layout in ALL_LAYOUTS)
MODES: tuple[str, ...] = tuple(dict.fromkeys(layout.mode for layout in ALL_LAYOUTS))
MAX_PACKET_LENGTH = max(KNOWN_LENGTHS)

# Tick columns filled directly from a wire field of some layout, in first-seen order.
WIRE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(f.column for layout in ALL_LAYOUTS for f in layout.fields if f.column)
)
DEPTH_SIDES = ("bid", "ask")
DEPTH_COLUMNS: tuple[str, ...] = tuple(
    f"{side}_{part}" for side in DEPTH_SIDES for part in ("price", "quantity", "orders")
)


def layout_for(length: int) -> PacketLayout | None:
    """The default layout of a packet length (see ``layout_of`` for the packet's own)."""
    return LAYOUTS.get(length)


def evidence_holds(evidence: Evidence, body) -> bool:
    for offset, low, high in evidence.checks:
        if len(body) < offset + 4 or not low <= int.from_bytes(bytes(body[offset : offset + 4]), "big") < high:
            return False
    return True


def layout_of(body) -> PacketLayout | None:
    """The layout of one packet body: a variant of its length when its evidence holds."""
    for variant in VARIANTS.get(len(body), ()):
        if evidence_holds(variant.evidence, body):
            return variant
    return LAYOUTS.get(len(body))


def layout_of_tick(length: int, mode: str | None) -> PacketLayout | None:
    """The layout a stored tick was decoded with: its length's variant of that mode, else the default."""
    for variant in VARIANTS.get(length, ()):
        if variant.mode == mode:
            return variant
    return LAYOUTS.get(length)


def layout_by_kind(kind: str) -> PacketLayout | None:
    for layout in ALL_LAYOUTS:
        if layout.kind == kind:
            return layout
    return None


def is_known_length(length: int) -> bool:
    return length in LAYOUTS

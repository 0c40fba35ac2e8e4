"""The tick table's Arrow schema: a contract other tools rely on (names exactly so).

Decoded columns come first (``DECODED_SCHEMA``), then the enrichment columns added by
``app.core.enrich`` (``ENRICHMENT_SCHEMA``); ``TICK_SCHEMA`` is both. Every source of
ticks (binary captures, JSON/JSONL dumps, Parquet exports) ends in ``TICK_SCHEMA``.

Timestamps are UTC instants (microseconds); Kite's 0 means absent and becomes null.
Fields a packet kind does not carry are null. Depth lists hold 5 or 20 levels, null
for packets without depth.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from app.core import protocol

UTC_TIME = pa.timestamp("us", tz="UTC")

# tick_time_source values: where the best-known time of a tick came from.
TIME_SOURCE_EXCHANGE = "exchange"  # the packet's own exchange_timestamp / last_trade_time
TIME_SOURCE_RECEIVE = "receive"  # the capture container's receive time (ts-u32len)
TIME_SOURCE_MESSAGE = "message"  # another packet of the same WebSocket message
TIME_SOURCE_FILENAME = "filename"  # the capture file name's YYYYMMDD_HHMMSS (IST)
TIME_SOURCES = (TIME_SOURCE_EXCHANGE, TIME_SOURCE_RECEIVE, TIME_SOURCE_MESSAGE, TIME_SOURCE_FILENAME)

_PRICE_COLUMNS = {
    f.column for layout in protocol.LAYOUTS.values() for f in layout.fields if f.column and f.price
}
_TIME_COLUMNS = {
    f.column for layout in protocol.LAYOUTS.values() for f in layout.fields if f.column and f.timestamp
}


def _wire_type(column: str) -> pa.DataType:
    if column in _PRICE_COLUMNS:
        return pa.float64()
    if column in _TIME_COLUMNS:
        return UTC_TIME
    return pa.int64()


DECODED_SCHEMA = pa.schema(
    [
        ("file_id", pa.string()),  # sha256 hex of the capture file
        ("msg_seq", pa.int64()),  # 0-based WebSocket message number in the capture
        ("pkt_seq", pa.int32()),  # 0-based packet number inside its message
        ("offset", pa.int64()),  # file offset of the packet body
        ("packet_length", pa.int32()),
        ("mode", pa.string()),  # ltp | quote | full
        ("tradable", pa.bool_()),  # segment != INDICES
        ("instrument_token", pa.int64()),
        ("segment", pa.int16()),
        ("exchange_token", pa.int64()),
        ("last_price", pa.float64()),
        ("last_traded_quantity", pa.int64()),
        ("average_traded_price", pa.float64()),
        ("volume_traded", pa.int64()),
        ("total_buy_quantity", pa.int64()),
        ("total_sell_quantity", pa.int64()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("change", pa.float64()),  # last_price - close
        ("change_percent", pa.float64()),  # change * 100 / close, 0 when close is 0
        ("last_trade_time", UTC_TIME),
        ("exchange_timestamp", UTC_TIME),
        ("oi", pa.int64()),
        ("oi_day_high", pa.int64()),
        ("oi_day_low", pa.int64()),
        ("bid_price", pa.list_(pa.float64())),
        ("bid_quantity", pa.list_(pa.int64())),
        ("bid_orders", pa.list_(pa.int64())),
        ("ask_price", pa.list_(pa.float64())),
        ("ask_quantity", pa.list_(pa.int64())),
        ("ask_orders", pa.list_(pa.int64())),
        ("recv_ts", UTC_TIME),  # capture container's receive time, when it has one
        ("tick_time", UTC_TIME),  # best-known time of the tick
        ("tick_time_source", pa.string()),  # one of TIME_SOURCES, null when nothing is known
        ("trading_date", pa.date32()),  # IST date of tick_time
        # null when clean, else the code of the value rule the tick breaks (app.core.suspect)
        ("suspect_reason", pa.string()),
    ]
)

# Columns a decoder fills; ``suspect_reason`` is computed from them (app.core.suspect).
DECODED_VALUE_NAMES: list[str] = [n for n in DECODED_SCHEMA.names if n != "suspect_reason"]

ENRICHMENT_SCHEMA = pa.schema(
    [
        ("tradingsymbol", pa.string()),
        ("name", pa.string()),
        ("exchange", pa.string()),
        ("instrument_segment", pa.string()),  # the master's segment, e.g. NFO-OPT
        ("instrument_type", pa.string()),
        ("expiry", pa.date32()),
        ("strike", pa.float64()),
        ("lot_size", pa.int64()),
        ("tick_size", pa.float64()),
        ("resolved", pa.bool_()),
        ("instruments_date", pa.date32()),  # the date of the master that named the tick
    ]
)

TICK_SCHEMA = pa.schema(list(DECODED_SCHEMA) + list(ENRICHMENT_SCHEMA))

# The aggregate explain_unknown() takes: one row per unresolved instrument_token
# (app.core.unknown builds it from tables, each target with SQL over its ticks).
UNRESOLVED_AGGREGATE_SCHEMA = pa.schema(
    [
        ("instrument_token", pa.int64()),
        ("ticks", pa.int64()),
        ("first_tick_time", UTC_TIME),
        ("last_tick_time", UTC_TIME),
        ("files", pa.list_(pa.string())),
        ("trading_dates", pa.list_(pa.date32())),
    ]
)

# The wire columns named in the layout table must all be schema columns of the right type.
for _column in protocol.WIRE_COLUMNS:
    assert DECODED_SCHEMA.field(_column).type == _wire_type(_column), _column
for _column in protocol.DEPTH_COLUMNS:
    assert _column in DECODED_SCHEMA.names, _column


def empty_enrichment(num_rows: int) -> list[pa.Array]:
    """All-null enrichment columns (``resolved`` false) for ``num_rows`` unresolved ticks."""
    arrays = [pa.nulls(num_rows, f.type) for f in ENRICHMENT_SCHEMA]
    arrays[ENRICHMENT_SCHEMA.get_field_index("resolved")] = pa.array(np.zeros(num_rows, dtype=bool))
    return arrays


def unenriched(decoded: pa.Table) -> pa.Table:
    """A decoded table widened to ``TICK_SCHEMA`` with every tick unresolved."""
    arrays = list(decoded.select(DECODED_SCHEMA.names).columns)
    return pa.Table.from_arrays(arrays + empty_enrichment(decoded.num_rows), schema=TICK_SCHEMA)

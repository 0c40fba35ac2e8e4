"""How a tick table is laid out in Parquet: per-column encodings chosen by measurement.

Parquet encoding, not decoding, bounds ``tickscope decode`` (one file is encoded by one
thread), and half of the encoder's CPU is zstd compressing what the encodings hand it:
the fewer bytes an encoding leaves, the less there is to compress. Each column gets the
encoding that measured cheapest with the smaller file (``scripts/bench.py``'s split;
figures per 875k ticks of the bench's mixed capture, CPU seconds, zstd):

* dictionary (with RLE/bit-packed indexes) where values repeat: strings, tokens, the
  segment, depth prices, quantities and order counts (the six depth lists are 60% of
  the encoding time: dictionary made quantities and orders ~30% cheaper and smaller,
  e.g. ``bid_quantity`` 0.124 s/6.4 MB -> 0.088 s/4.5 MB), ``last_price``, ``change``;
* DELTA_BINARY_PACKED for columns that grow or move by small steps: ``offset`` (0.018 s/
  1.6 MB -> 0.010 s/0.18 MB), ``msg_seq``, total buy/sell quantities;
* plain where neither pays (day OHLC and OI repeat too little for a dictionary to beat
  zstd on plain values; times): a dictionary tried and abandoned costs hashing every value.

BYTE_STREAM_SPLIT on prices measured slower and larger than a dictionary on this data.
Statistics stay on every column readers can filter on (they prune row groups with them),
not on the six depth lists: min/max of a row group's bid prices over every instrument
prunes nothing, and skipping them saves ~3% of the encoding.
The Arrow schema is unchanged: these are Parquet encodings, readers see the same types.
"""

from __future__ import annotations

import pyarrow as pa

# Columns with few distinct values per row group, or prices on a tick grid.
DICTIONARY_COLUMNS = frozenset({
    "file_id", "pkt_seq", "packet_length", "mode", "tradable", "instrument_token", "segment", "exchange_token",
    "last_price", "last_traded_quantity", "change", "change_percent",
    "bid_price", "bid_quantity", "bid_orders", "ask_price", "ask_quantity", "ask_orders",
    "tick_time_source", "trading_date", "suspect_reason",
    # enrichment: one value per instrument
    "tradingsymbol", "name", "exchange", "instrument_segment", "instrument_type", "expiry", "strike", "lot_size",
    "tick_size", "resolved", "instruments_date",
})
# Integer columns that increase or step by little from row to row.
DELTA_COLUMNS = frozenset({"msg_seq", "offset", "total_buy_quantity", "total_sell_quantity"})
# No min/max statistics: market depth (lists of levels), never a filter.
NO_STATISTICS_COLUMNS = frozenset({
    "bid_price", "bid_quantity", "bid_orders", "ask_price", "ask_quantity", "ask_orders",
})


def _leaf(field: pa.Field) -> str:
    """The Parquet column path of a field (a list's values are ``name.list.element``)."""
    return f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name


def write_options(schema: pa.Schema) -> dict:
    """``pq.ParquetWriter`` keyword arguments for a table of ``schema`` (any subset of the tick columns).

    Columns not named above are written plain; string columns always get a dictionary.
    """
    dictionary, encoding, statistics = [], {}, []
    for field in schema:
        if field.name in DELTA_COLUMNS and pa.types.is_integer(field.type):
            encoding[_leaf(field)] = "DELTA_BINARY_PACKED"
        elif field.name in DICTIONARY_COLUMNS or pa.types.is_string(field.type):
            dictionary.append(_leaf(field))
        if field.name not in NO_STATISTICS_COLUMNS:
            statistics.append(_leaf(field))
    return {"use_dictionary": dictionary, "column_encoding": encoding, "write_statistics": statistics}

"""The tick summary: what the captures list and the instrument search need, kept by the store.

One row per capture, instrument token, trading date and naming (the enrichment columns
the ticks carry: one naming per token and day in practice, since ingest and resolve name
all of a token's ticks of a day at once): how many ticks, the first and last tick time,
how many are flagged suspect. A few thousand rows where the target holds millions of
ticks, so the questions that span the whole target (which instruments match "INFY",
with their counts and times; which trading days a capture covers) read it instead of
every tick.

The store writes it with the capture's ticks, in the same commit:

- DuckDB: the ``tick_summary`` table, filled from the capture's ticks inside the
  capture's own transaction (``SUMMARY_SQL`` restricted to its ``file_id``); remove,
  --force and resolve rewrite the captures' rows in their transactions too.
- Parquet: one part file per capture, ``summary/summary-<fid16>-<wid>.parquet``, computed
  from the capture's staged tick parts and listed among the capture's ``parts`` in the
  manifest, so the journal publishes, replaces and unpublishes it with them.

A target written before the summary existed gets it when first opened for writing; a
read-only reader of one computes the missing part from the ticks (``fallback_sql``).
Every answer read from the summary equals the one from the ticks (tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from app.core import schema

TABLE = "tick_summary"  # the DuckDB table
FOLDER = "summary"  # the Parquet folder

# What a group is: one capture, instrument, trading date and naming.
KEY_COLUMNS = ["file_id", "instrument_token", "trading_date", "exchange_token", "tradingsymbol", "name",
               "exchange", "instrument_type", "resolved"]
SUMMARY_SCHEMA = pa.schema(
    [schema.TICK_SCHEMA.field(name) for name in KEY_COLUMNS]
    + [
        pa.field("ticks", pa.int64()),
        pa.field("first_time", schema.TICK_SCHEMA.field("tick_time").type),
        pa.field("last_time", schema.TICK_SCHEMA.field("tick_time").type),
        pa.field("suspect", pa.int64()),
    ]
)

_DDL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "date32[day]": "DATE", "bool": "BOOLEAN",
              "timestamp[us, tz=UTC]": "TIMESTAMPTZ"}


def ddl() -> str:
    columns = ", ".join(f'"{f.name}" {_DDL_TYPES[str(f.type)]}' for f in SUMMARY_SCHEMA)
    return f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})"


def summary_sql(ticks: str, *, where: str = "true", has_suspect: bool = True) -> str:
    """The summary of the ticks of relation ``ticks`` that match ``where`` (SQL text).

    ``has_suspect`` False: a table of a Tickscope before suspect flags (none counted)."""
    keys = ", ".join(f'"{k}"' for k in KEY_COLUMNS)
    suspect = 'count("suspect_reason")' if has_suspect else "0"
    return (f"SELECT {keys}, count(*)::BIGINT AS ticks, min(tick_time) AS first_time, "
            f"max(tick_time) AS last_time, {suspect}::BIGINT AS suspect\n"
            f"FROM {ticks} WHERE {where} GROUP BY ALL")


def parquet_source(files: Sequence[str]) -> str:
    """SQL reading summary part files (``files`` quoted by the caller's ``literal``)."""
    return f"read_parquet([{', '.join(files)}])"


def conform(table: pa.Table) -> pa.Table:
    return table.select(SUMMARY_SCHEMA.names).cast(SUMMARY_SCHEMA)


def findings(captures: pa.Table, stored: dict[str, int], summed: dict[str, int], reported=()) -> list:
    """Verify's findings about the summary: captures whose summary counts other ticks than
    storage holds (``stored``: file_id -> tick rows found; ``summed``: file_id -> ticks its
    summary counts, absent when the capture has no summary rows: fine only without ticks).
    Captures in ``reported`` (damaged already, same remedy) are not named twice."""
    from app.store.base import REINGEST, Finding, capture_name

    out = []
    for fid, path in zip(captures["file_id"].to_pylist(), captures["path"].to_pylist(), strict=True):
        if fid not in stored or fid in reported:  # its parts are damaged: reported already
            continue
        name = capture_name(path)
        if fid not in summed:
            if stored[fid]:
                out.append(Finding("summary", name, "no tick summary (the captures list and instrument search "
                                   "would miss it)", REINGEST, fid))
            continue
        if summed[fid] != stored[fid]:
            out.append(Finding("summary", name, f"its tick summary counts {summed[fid]:,} ticks, "
                               f"{stored[fid]:,} are stored", REINGEST, fid))
    return out

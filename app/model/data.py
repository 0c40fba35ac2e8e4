"""The Data view's model, without Qt: what the view asks of a target, through the one
query module (``app.store.query``), and the state it shows.

Each function opens the target read-only for one question and closes it (a target admits
one open handle per process, so an ingest is never kept waiting by an idle view); the
window runs them as exclusive tasks. ``InstrumentDay`` is what the candle chart draws:
the same rows ``tickscope candles`` prints, with their start as epoch seconds.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.store.query import (
    CANDLE_COLUMNS,
    INTERVALS,
    CaptureRow,
    Query,
    TargetReader,
    TickFilter,
    candles_query,
    ticks_query,
)

PAGE_ROWS = 200


def reader(path: str) -> TargetReader:
    return TargetReader(path)


# --- captures ----------------------------------------------------------------------------


def load_captures(path: str) -> list[CaptureRow]:
    with reader(path) as r:
        return r.captures()


@dataclass
class CaptureLocation:
    """Where a capture's bytes are now: its recorded path if it still holds them."""

    file_id: str
    path: str  # as recorded at ingest
    size_bytes: int
    found: bool  # the recorded path is a file of the recorded size


def locate_capture(target: str, file_id: str) -> CaptureLocation:
    with reader(target) as r:
        caps = r.target.captures().to_pylist()
    for row in caps:
        if row["file_id"] == file_id:
            path = row["path"] or ""
            found = bool(path) and os.path.isfile(path) and os.path.getsize(path) == (row["size_bytes"] or 0)
            return CaptureLocation(file_id, path, int(row["size_bytes"] or 0), found)
    raise LookupError(f"capture {file_id[:12]} is not in the target any more")


def check_moved_capture(path: str, file_id: str) -> str:
    """The path of a capture the user located again, if its sha256 is ``file_id``; else
    ValueError saying so (the file is the truth: a different file is never shown)."""
    from app.core.digest import file_sha256

    found = file_sha256(path)
    if found != file_id:
        raise ValueError(f"{Path(path).name} is not that capture: its sha256 is {found[:12]}…, "
                         f"the ticks came from {file_id[:12]}…")
    return path


# --- instruments -----------------------------------------------------------------------------


def search_instruments(path: str, text: str, limit: int = 500) -> pa.Table:
    with reader(path) as r:
        return r.instruments(text, limit)


@dataclass
class InstrumentDay:
    """One instrument's candles on one trading day, and what the chart draws around them."""

    token: int
    label: str
    day: dt.date | None
    interval: str
    days: list = field(default_factory=list)  # trading days with ticks of the instrument
    candles: pa.Table = None  # CANDLE_COLUMNS, as `tickscope candles`
    starts: np.ndarray = None  # candle starts, epoch seconds
    quotes: pa.Table = None  # start_us, bid, ask, oi
    sql: str = ""  # Copy SQL of the candles

    @property
    def width(self) -> int:
        return INTERVALS[self.interval]

    def rows(self) -> list[dict]:
        return self.candles.to_pylist() if self.candles is not None else []

    def at(self, x: float) -> dict | None:
        """The candle under chart position ``x`` (epoch seconds), for the crosshair readout."""
        if self.starts is None or not len(self.starts):
            return None
        i = int(np.searchsorted(self.starts, x, side="right")) - 1
        if i < 0 or x >= self.starts[i] + self.width:
            return None
        return self.candles.slice(i, 1).to_pylist()[0]


def _epoch_seconds(starts: pa.Array) -> np.ndarray:
    """ISO texts with their offset ("2025-10-13T09:15:00+05:30"), parsed by Arrow's cast."""
    return pc.cast(starts, pa.timestamp("s", "UTC")).cast(pa.int64()).to_numpy().astype(np.float64)


def load_instrument_day(path: str, token: int, day: dt.date | None, interval: str = "1m",
                        label: str = "") -> InstrumentDay:
    """Candles of ``token`` on ``day`` (its last day with ticks when None)."""
    with reader(path) as r:
        days = [row["trading_date"] for row in r.days(token).to_pylist()]
        if day is None and days:
            day = days[-1]
        result = InstrumentDay(int(token), label or str(token), day, interval, days)
        if day is None:
            result.candles = pa.table({c: [] for c in CANDLE_COLUMNS})
            result.starts = np.zeros(0)
            result.quotes = pa.table({"start_us": pa.array([], pa.int64())})
            return result
        query = candles_query(token, day, None, interval)
        result.candles = r.run(query)
        result.quotes = r.quotes(token, day, interval)
        result.sql = r.copy_sql(query)
    result.starts = _epoch_seconds(result.candles["start"])
    return result


# --- ticks -------------------------------------------------------------------------------------


@dataclass
class TickSelection:
    """What the ticks table shows: a filter, its columns and its order."""

    label: str
    filter: TickFilter
    columns: list = field(default_factory=list)  # empty: the reader's default columns
    order_by: str | None = None
    descending: bool = False

    def query(self, limit: int | None = None, offset: int = 0, ist_text: bool = False) -> Query:
        return ticks_query(self.filter, self.columns, order_by=self.order_by, descending=self.descending,
                           limit=limit, offset=offset, ist_text=ist_text)


@dataclass
class TicksHead:
    """A selection's row count, columns and first page: what the table needs to open."""

    count: int
    columns: list
    page: pa.Table


def open_ticks(path: str, selection: TickSelection, page_rows: int = PAGE_ROWS) -> TicksHead:
    with reader(path) as r:
        if not selection.columns:
            selection.columns = r.default_tick_columns()
        r.check_columns(selection.columns)
        count = r.count(selection.filter)
        page = r.run(selection.query(page_rows, 0))
    return TicksHead(count, list(selection.columns), page)


def ticks_page(path: str, selection: TickSelection, offset: int, page_rows: int = PAGE_ROWS) -> pa.Table:
    with reader(path) as r:
        return r.run(selection.query(page_rows, offset))


def copy_sql(path: str, query: Query) -> str:
    with reader(path) as r:
        return r.copy_sql(query)


def export(path: str, query: Query, out: str, fmt: str) -> int:
    """Write a selection to ``out`` (the rule of ``--out``: a new name or a regular file)."""
    from app.commands.output import check_out

    check_out(Path(out))
    with reader(path) as r:
        return r.export(query, out, fmt)


def export_selection(path: str, selection: TickSelection, out: str, fmt: str) -> int:
    return export(path, selection.query(ist_text=fmt != "parquet"), out, fmt)


def export_candles(path: str, token: int, day: dt.date, interval: str, out: str, fmt: str) -> int:
    return export(path, candles_query(token, day, None, interval), out, fmt)


def capture_selection(row: CaptureRow) -> TickSelection:
    return TickSelection(f"{row.file_name}: all ticks", TickFilter(file_id=row.file_id))


def day_selection(token: int, label: str, day: dt.date) -> TickSelection:
    return TickSelection(f"{label} on {day.isoformat()}", TickFilter(instrument_token=int(token), day=day))


def tick_packet(row: dict) -> tuple[str, int]:
    """(file_id, offset) of a tick row: where its packet is."""
    return str(row["file_id"]), int(row["offset"])


__all__: Sequence[str] = [
    "CaptureLocation", "InstrumentDay", "TickSelection", "TicksHead", "load_captures", "locate_capture",
    "check_moved_capture", "search_instruments", "load_instrument_day", "open_ticks", "ticks_page",
    "copy_sql", "export", "export_selection", "export_candles", "capture_selection", "day_selection", "tick_packet",
]

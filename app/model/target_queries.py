"""Reads and re-resolves a target for the window; every function runs on a worker thread.

Reads go through the one query module (``app.store.query``: SQL in DuckDB, filtered and
counted there; never every tick of the target in Python).
Part of the Qt-free model (``app.model``); the counts every view shares come from
``app.model.targets.read_state``. A target admits one open handle per process, so the
JobManager runs these one at a time and never while an ingest holds the target.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from app.core import protocol


@dataclass
class MasterInfo:
    path: str
    date: dt.date | None
    instruments: int
    description: str


@dataclass
class Breakdown:
    file_id: str
    name: str
    kinds: dict[str, int]
    segments: dict[str, int]
    bad_packets: int


@dataclass
class PriceSeries:
    instrument_token: int
    label: str
    times: object  # numpy float64 epoch seconds
    prices: object
    volumes: object


def target_exists(path: str) -> bool:
    from app.store.checks import check_target

    return check_target(path, writable=False).exists


def open_target(path: str, *, read_only: bool = True):
    from app.store import open_target as _open

    if read_only and "read_only" in inspect.signature(_open).parameters:
        return _open(path, read_only=True)
    return _open(path)


def load_master_infos(paths: Sequence[str]) -> list[MasterInfo]:
    from app.core.instruments import load_master

    infos = []
    for path in paths:
        master = load_master(path)
        infos.append(MasterInfo(str(path), master.date, master.table.num_rows, master.describe()))
    return infos


def resolve_more(path: str, instrument_paths: Sequence[str]) -> tuple[int, pa.Table]:
    """Re-resolve unresolved ticks with extra masters; (ticks resolved, new unknown table)."""
    from app.core.instruments import load_master

    masters = [load_master(p) for p in instrument_paths]
    with open_target(path, read_only=False) as target:
        # Same path as `tickscope resolve`: one transaction where the target allows it.
        resolved, table = target.resolve_with_masters(masters)
    return resolved, table


def _reader(path: str):
    from app.store.query import TargetReader

    return TargetReader(path)


def breakdown(path: str, file_id: str, name: str = "") -> Breakdown:
    """Packets of one capture by kind (packet length) and by segment (counted in SQL)."""
    from app.store.query import breakdown_query

    with _reader(path) as reader:
        counts = reader.run(breakdown_query(file_id)).to_pylist()
        caps = reader.target.captures()
    kinds: dict[str, int] = {}
    segments: dict[str, int] = {}
    for row in counts:
        layout = (protocol.layout_of_tick(int(row["packet_length"]), row.get("mode"))
                  if row["packet_length"] is not None else None)
        label = layout.kind if layout else f"len {row['packet_length']}"
        kinds[label] = kinds.get(label, 0) + int(row["ticks"])
        seg = protocol.SEGMENTS.get(int(row["segment"])) if row["segment"] is not None else None
        label = seg.name if seg else f"invalid {row['segment']}"
        segments[label] = segments.get(label, 0) + int(row["ticks"])
    bad = 0
    match = caps.filter(pc.equal(caps["file_id"], file_id))
    if match.num_rows:
        bad = int(match["bad_packets"][0].as_py() or 0)
        name = name or os.path.basename(str(match["path"][0].as_py() or ""))
    order = {layout.kind: i for i, layout in enumerate(protocol.ALL_LAYOUTS)}
    kinds = dict(sorted(kinds.items(), key=lambda kv: order.get(kv[0], 99)))
    segments = dict(sorted(segments.items(), key=lambda kv: -kv[1]))
    return Breakdown(file_id, name, kinds, segments, bad)


def instrument_label(token: int, symbol: str | None, exchange: str | None) -> str:
    if symbol:
        seg = protocol.SEGMENTS.get(token & 0xFF)
        return f"{exchange or (seg.name if seg else '')}:{symbol}"
    return f"token {token} (unresolved)"


def instrument_choices(path: str, limit: int = 500, text: str = "") -> list[tuple[int, str, int]]:
    """(instrument_token, label, ticks) of the busiest instruments in the target (or those
    matching ``text``: the query module's instrument search)."""
    if not target_exists(path):
        return []
    with _reader(path) as reader:
        rows = reader.instruments(text, limit).to_pylist()
    out = [(int(r["instrument_token"]), instrument_label(int(r["instrument_token"]), r["symbol"], r["exchange"]),
            int(r["ticks"])) for r in rows]
    # Named, tradable instruments first (indices carry no volume), busiest first.
    if not text:
        named = {token for token, label, _ticks in out if not label.startswith("token ")}
        out.sort(key=lambda c: (c[0] not in named, (c[0] & 0xFF) == protocol.INDICES_SEGMENT, -c[2]))
    return out


def price_series(path: str, instrument_token: int, label: str = "") -> PriceSeries:
    """One instrument's timed ticks (filtered in SQL); a NaN between trading days, so a
    line never joins one day's close to the next day's open."""
    import numpy as np

    from app.store.query import series_query

    with _reader(path) as reader:
        ticks = reader.run(series_query(instrument_token))
    times = ticks["us"].to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
    prices = ticks["last_price"].to_numpy(zero_copy_only=False).astype(np.float64)
    # NaN where a packet carries no volume (LTP and index packets): not a zero volume.
    volumes = ticks["volume_traded"].cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False)
    days = ticks["trading_date"].cast(pa.int32()).fill_null(-1).to_numpy(zero_copy_only=False)
    breaks = np.flatnonzero(np.diff(days)) + 1
    if len(breaks):
        times = np.insert(times, breaks, (times[breaks - 1] + times[breaks]) / 2)
        prices = np.insert(prices, breaks, np.nan)
        volumes = np.insert(volumes, breaks, np.nan)
    return PriceSeries(instrument_token, label or str(instrument_token), times, prices, volumes)

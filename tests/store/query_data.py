"""A small target of hand-made ticks for the query tests, and candles computed from its
ticks in plain Python (independent of the SQL in app.store.query)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from app.core import schema
from app.store import CaptureRecord, open_target

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
UTC = dt.UTC
DAY1, DAY2, DAY3 = dt.date(2025, 10, 13), dt.date(2025, 10, 14), dt.date(2025, 10, 16)
INFY, INFY_FUT, INDEX, UNKNOWN = 408065, 13372674, 256265, 99999990
SYMBOLS = {INFY: ("INFY", "INFOSYS", "NSE", "EQ"), INFY_FUT: ("INFY25OCTFUT", "INFOSYS", "NFO", "FUT"),
           INDEX: ("NIFTY 50", "NIFTY 50", "NSE", "EQ")}


def file_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _session_ticks(rng, token: int, day: dt.date, *, minutes: list[int], per_minute: int, start_volume: int,
                   price: float, no_trade_minutes: set, quote_every: int) -> list[dict]:
    """Ticks of one instrument on one day at the given minutes after 09:15 IST."""
    rows = []
    volume = start_volume
    for minute in minutes:
        base = dt.datetime.combine(day, dt.time(9, 15), IST) + dt.timedelta(minutes=minute)
        seconds = sorted(rng.choice(60, size=per_minute, replace=False))
        for i, sec in enumerate(seconds):
            price = round(price + float(rng.normal(0, 0.6)), 2)
            if minute not in no_trade_minutes:
                volume += int(rng.integers(0, 40)) * (1 if rng.random() > 0.2 else 0)
            ltp_only = quote_every and (i % quote_every == quote_every - 1)  # an LTP packet: no volume
            rows.append(dict(
                instrument_token=token, tick_time=(base + dt.timedelta(seconds=int(sec))).astimezone(UTC),
                last_price=price, volume_traded=None if ltp_only or token == INDEX else volume,
                mode="ltp" if ltp_only else "full",
                oi=None if ltp_only or token != INFY_FUT else 1000 + minute,
                bid_price=None if ltp_only or token == INDEX else [round(price - 0.05, 2)] * 5,
                ask_price=None if ltp_only or token == INDEX else [round(price + 0.05, 2)] * 5,
            ))
    return rows


def make_ticks(seed: int = 17) -> dict[str, list[dict]]:
    """Ticks of three captures: INFY on three days (a gap of minutes 5-9 on DAY1, minutes
    without trades, a second session after a pause on DAY2), its future, an index without
    volume, and an unresolved token."""
    rng = np.random.default_rng(seed)
    a = _session_ticks(rng, INFY, DAY1, minutes=[0, 1, 2, 3, 4, 10, 11, 12, 13, 60, 61], per_minute=7,
                       start_volume=250_000, price=1450.0, no_trade_minutes={2, 12}, quote_every=4)
    a += _session_ticks(rng, INFY_FUT, DAY1, minutes=[0, 1, 3, 4, 5], per_minute=5, start_volume=10_000,
                        price=1460.0, no_trade_minutes={4}, quote_every=0)
    a += _session_ticks(rng, UNKNOWN, DAY1, minutes=[0, 1], per_minute=3, start_volume=5, price=10.0,
                        no_trade_minutes=set(), quote_every=0)
    b = _session_ticks(rng, INFY, DAY2, minutes=[0, 1, 2, 200, 201, 202], per_minute=6, start_volume=0,
                       price=1470.0, no_trade_minutes={201}, quote_every=3)
    b += _session_ticks(rng, INDEX, DAY2, minutes=[0, 1, 2], per_minute=4, start_volume=0, price=25000.0,
                        no_trade_minutes=set(), quote_every=0)
    c = _session_ticks(rng, INFY, DAY3, minutes=[5, 6, 7, 30], per_minute=5, start_volume=1_000_000,
                       price=1480.0, no_trade_minutes={7}, quote_every=0)
    return {"day1.bin": a, "day2.bin": b, "day3.bin": c}


def tick_table(fid: str, rows: list[dict]) -> pa.Table:
    """TICK_SCHEMA rows of one capture in time order; offsets and message numbers made up."""
    rows = sorted(rows, key=lambda r: r["tick_time"])
    n = len(rows)
    cols: dict[str, pa.Array] = {}
    for f in schema.TICK_SCHEMA:
        name = f.name
        if name == "file_id":
            cols[name] = pa.array([fid] * n, pa.string())
        elif name == "msg_seq":
            cols[name] = pa.array(np.arange(n, dtype=np.int64))
        elif name == "pkt_seq":
            cols[name] = pa.array(np.zeros(n, np.int32))
        elif name == "offset":
            cols[name] = pa.array(np.arange(n, dtype=np.int64) * 200 + 4)
        elif name == "packet_length":
            cols[name] = pa.array([8 if r["mode"] == "ltp" else 184 for r in rows], pa.int32())
        elif name == "segment":
            cols[name] = pa.array([r["instrument_token"] & 0xFF for r in rows], pa.int16())
        elif name == "exchange_token":
            cols[name] = pa.array([r["instrument_token"] >> 8 for r in rows], pa.int64())
        elif name == "tradable":
            cols[name] = pa.array([r["instrument_token"] != INDEX for r in rows])
        elif name == "tick_time_source":
            cols[name] = pa.array(["exchange"] * n)
        elif name == "trading_date":
            cols[name] = pa.array([r["tick_time"].astimezone(IST).date() for r in rows], pa.date32())
        elif name in ("tradingsymbol", "name", "exchange", "instrument_type"):
            at = {"tradingsymbol": 0, "name": 1, "exchange": 2, "instrument_type": 3}[name]
            cols[name] = pa.array([SYMBOLS.get(r["instrument_token"], (None,) * 4)[at] for r in rows], pa.string())
        elif name == "resolved":
            cols[name] = pa.array([r["instrument_token"] in SYMBOLS for r in rows])
        elif name in rows[0]:
            cols[name] = pa.array([r[name] for r in rows], f.type)
        else:
            cols[name] = pa.nulls(n, f.type)
    return pa.Table.from_pydict(cols, schema=schema.TICK_SCHEMA)


def build_target(path: Path, seed: int = 17) -> Path:
    """Write the captures of ``make_ticks`` into a target (the store's own writer)."""
    with open_target(path) as target:
        for name, rows in make_ticks(seed).items():
            fid = file_id(name)
            table = tick_table(fid, rows)
            write = target.begin(fid)
            write.add_ticks(table)
            times = [r["tick_time"] for r in rows]
            write.commit(CaptureRecord(
                file_id=fid, path=f"/captures/{name}", size_bytes=table.num_rows * 200, framing="raw",
                messages=table.num_rows, packets=table.num_rows,
                unresolved_ticks=sum(1 for r in rows if r["instrument_token"] not in SYMBOLS),
                first_tick_time=min(times), last_tick_time=max(times)))
    return path


def copy_target(template: Path, path: Path) -> Path:
    """A copy of a target ``build_target`` wrote (built once a session, see the
    ``query_target_template`` fixture of tests/conftest.py), for a test to use and change."""
    if template.is_dir():
        shutil.copytree(template, path)
    else:
        shutil.copyfile(template, path)
    return path


def target_name(kind: str) -> str:
    return "t.duckdb" if kind == "duckdb" else "dataset"


# --- candles in plain Python ---------------------------------------------------------

WIDTHS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}


def reference_candles(ticks: list[dict], token: int, day: dt.date, interval: str) -> list[dict]:
    """Candles of one instrument-day from tick dicts (as ``target.ticks().to_pylist()``)."""
    width = WIDTHS[interval]
    mine = [t for t in ticks if t["instrument_token"] == token and t["trading_date"] == day
            and t["tick_time"] is not None and t["last_price"] is not None]
    mine.sort(key=lambda t: (t["tick_time"], t["file_id"], t["msg_seq"], t["pkt_seq"]))
    midnight = dt.datetime.combine(day, dt.time(0), IST)
    buckets: dict[int, list[dict]] = {}
    for t in mine:
        since = int((t["tick_time"].astimezone(IST) - midnight).total_seconds())
        buckets.setdefault(since // width * width, []).append(t)
    out, prior = [], None
    for start in sorted(buckets):
        group = buckets[start]
        prices = [t["last_price"] for t in group]
        volumes = [t["volume_traded"] for t in group if t["volume_traded"] is not None]
        volume = None
        if volumes:
            volume = volumes[-1] - (prior if prior is not None else volumes[0])
            prior = volumes[-1]
        out.append(dict(start=(midnight + dt.timedelta(seconds=start)).isoformat(), open=prices[0],
                        high=max(prices), low=min(prices), close=prices[-1], volume=volume, ticks=len(group)))
    return out

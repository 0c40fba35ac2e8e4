"""`make bench`, query section: the Data view's and CLI twins' queries on big targets.

Builds, in a temporary folder that is deleted afterwards, a DuckDB target and a Parquet
dataset of 5M and of 20M ticks (``--sizes``) over 5 trading days, then times what the
Data view and ``tickscope captures``/``candles``/``ticks`` do, each as a whole (open the
target read-only, ask, close; median of ``--repeat`` runs):

- captures list (with the integrity state from the store's own ``verify``, and without);
- instrument search (substring of a symbol);
- one instrument-day of 1m candles (the middle day of the instrument whose day is nearest
  20,000 ticks, the same size in every target);
- the first page of ticks (200 rows) of that instrument-day, with its row count.

Targets: under 300 ms on the DuckDB target, under 1 s on the Parquet dataset; the
instrument-day queries should grow sub-linearly from 5M to 20M ticks.

How the targets are made (honest about what is measured): ticks are synthetic Arrow
tables built with numpy (one instrument per 2,500 ticks, so an instrument-day keeps its
size as the target grows: 2,000 instruments at 5M, 8,000 at 20M; Zipf-like activity, full-mode ticks with
5-level bid/ask prices and quantities, cumulative volume per instrument and day, named
like a resolved master would name them) and written through the store's own writer
(``Target.begin(...).add_ticks(...).commit(...)``: the same code an ingest commits
through); no capture is decoded. The writing time is printed but is not what this
measures. Usage: ``python scripts/bench_queries.py [--sizes 5000000 20000000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.core import schema  # noqa: E402
from app.core.market_time import IST_OFFSET_US  # noqa: E402

DAYS = [dt.date(2025, 10, 13) + dt.timedelta(days=d) for d in (0, 1, 2, 3, 4)]
DAY_TICKS = 20_000  # the size of the instrument-day the candles and ticks queries read
TICKS_PER_INSTRUMENT = 2_500  # instruments grow with the target: an instrument-day keeps its size
BATCH = 500_000
CAPTURES_PER_DAY = 2
SESSION_US = int((6 * 3600 + 15 * 60) * 1e6)  # 09:15-15:30 IST


def _tokens(instruments: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    exchange_tokens = rng.choice(np.arange(1000, 5_000_000), instruments, replace=False)
    segments = rng.choice([1, 2, 3], instruments)  # NSE, NFO, CDS
    return (exchange_tokens.astype(np.int64) << 8) | segments


def _batch(fid: str, day: dt.date, start_us: int, span_us: int, n: int, msg0: int, tokens, weights,
           volume_state: np.ndarray, price0: np.ndarray, rng) -> pa.Table:
    times = start_us + np.sort(rng.integers(0, span_us, n))
    which = rng.choice(len(weights), n, p=weights)
    price = price0[which] * (1 + rng.normal(0, 0.002, n))
    trade = rng.integers(0, 50, n)
    # Cumulative volume per instrument: a running sum in time order, per instrument.
    order = np.argsort(which, kind="stable")
    sorted_which = which[order]
    cum = np.cumsum(trade[order])
    starts = np.flatnonzero(np.r_[True, sorted_which[1:] != sorted_which[:-1]])
    group_base = np.repeat(cum[starts] - trade[order][starts], np.diff(np.r_[starts, n]))
    running = np.empty(n, np.int64)
    running[order] = cum - group_base + volume_state[sorted_which]
    np.maximum.at(volume_state, which, running)
    token = tokens[which]
    offsets = pa.array(np.arange(0, 5 * n + 1, 5, dtype=np.int32))
    spread = np.repeat(price, 5) + np.tile(np.arange(1, 6) * 0.05, n)
    quantity = rng.integers(1, 500, 5 * n)
    cols = {
        "file_id": pa.array(np.full(n, fid)).dictionary_encode().cast(pa.string()),
        "msg_seq": pa.array(np.arange(msg0, msg0 + n, dtype=np.int64)),
        "pkt_seq": pa.array(np.zeros(n, np.int32)),
        "offset": pa.array(np.arange(msg0, msg0 + n, dtype=np.int64) * 186 + 4),
        "packet_length": pa.array(np.full(n, 184, np.int32)),
        "mode": pa.array(np.full(n, "full")),
        "tradable": pa.array(np.ones(n, bool)),
        "instrument_token": pa.array(token),
        "segment": pa.array((token & 0xFF).astype(np.int16)),
        "exchange_token": pa.array(token >> 8),
        "last_price": pa.array(np.round(price, 2)),
        "last_traded_quantity": pa.array(trade),
        "volume_traded": pa.array(running),
        "oi": pa.array(np.where((token & 0xFF) == 2, running // 3, 0)),
        "bid_price": pa.ListArray.from_arrays(offsets, pa.array(np.round(spread - 0.3, 2))),
        "bid_quantity": pa.ListArray.from_arrays(offsets, pa.array(quantity)),
        "ask_price": pa.ListArray.from_arrays(offsets, pa.array(np.round(spread, 2))),
        "ask_quantity": pa.ListArray.from_arrays(offsets, pa.array(quantity[::-1].copy())),
        "exchange_timestamp": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
        "tick_time": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
        "tick_time_source": pa.array(np.full(n, "exchange")),
        "trading_date": pa.array(np.full(n, (day - dt.date(1970, 1, 1)).days, np.int32)).cast(pa.date32()),
        "tradingsymbol": pa.array(np.char.add("SYM", (token >> 8).astype(str))),
        "name": pa.array(np.char.add("NAME", (which % 500).astype(str))),  # underlyings with many contracts
        "exchange": pa.array(np.array(["NSE", "NFO", "CDS"])[(token & 0xFF) - 1]),
        "instrument_type": pa.array(np.array(["EQ", "FUT", "FUT"])[(token & 0xFF) - 1]),
        "resolved": pa.array(np.ones(n, bool)),
    }
    arrays = [cols[f.name].cast(f.type) if f.name in cols else pa.nulls(n, f.type) for f in schema.TICK_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=schema.TICK_SCHEMA)


def build(path: Path, ticks: int) -> tuple[float, int]:
    """Write ``ticks`` ticks over 5 days (2 captures a day) into the target at ``path``."""
    from app.store import CaptureRecord, open_target

    rng = np.random.default_rng(ticks)
    instruments = max(100, ticks // TICKS_PER_INSTRUMENT)
    tokens = _tokens(instruments)
    weights = 1.0 / np.arange(1, instruments + 1) ** 0.9
    weights /= weights.sum()
    price0 = rng.uniform(50, 5000, instruments)
    per_capture = ticks // (len(DAYS) * CAPTURES_PER_DAY)
    started = time.perf_counter()
    with open_target(path) as target:
        for day in DAYS:
            volume_state = np.zeros(instruments, np.int64)
            day_us = int((dt.datetime.combine(day, dt.time(9, 15)) - dt.datetime(1970, 1, 1)).total_seconds() * 1e6) \
                - IST_OFFSET_US
            for c in range(CAPTURES_PER_DAY):
                fid = hashlib.sha256(f"bench-{ticks}-{day}-{c}".encode()).hexdigest()
                write = target.begin(fid)
                span = SESSION_US // CAPTURES_PER_DAY
                start = day_us + c * span
                done = 0
                while done < per_capture:
                    n = min(BATCH, per_capture - done)
                    batch_span = span * n // per_capture
                    write.add_ticks(_batch(fid, day, start + span * done // per_capture, batch_span, n, done, tokens,
                                           weights, volume_state, price0, rng))
                    done += n
                write.commit(CaptureRecord(file_id=fid, path=f"/captures/bench_{day:%Y%m%d}_{c}.dat",
                                           size_bytes=per_capture * 186, framing="raw", messages=per_capture,
                                           packets=per_capture))
    return time.perf_counter() - started, per_capture * len(DAYS) * CAPTURES_PER_DAY


def _median_ms(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def measure(path: Path, repeat: int) -> dict[str, float]:
    from app.model import data as dm
    from app.store.query import TargetReader

    day = DAYS[2]
    with TargetReader(path) as r:
        # The instrument whose day is nearest DAY_TICKS ticks (a busy real instrument's day):
        # the same size of instrument-day in every target, so growth shows the target's size.
        token, symbol, day_ticks = r.con.execute(
            "SELECT instrument_token, any_value(tradingsymbol), count(*) AS n FROM ticks WHERE trading_date = ? "
            "GROUP BY instrument_token ORDER BY abs(count(*) - ?), instrument_token LIMIT 1", [day, DAY_TICKS]
        ).fetchall()[0]

    def captures(verify=True):
        with TargetReader(path) as r:
            return r.captures(verify=verify)

    def search():
        with TargetReader(path) as r:
            return r.instruments(symbol[:6].lower(), 200)

    def candles():
        with TargetReader(path) as r:
            return r.candles(token, day, "1m")

    def first_page():
        return dm.open_ticks(str(path), dm.day_selection(token, symbol, day))

    def open_only():
        with TargetReader(path):
            return None

    out = {"(the instrument-day's ticks)": float(day_ticks)}
    out["open + close only"], _ = _median_ms(open_only, repeat)
    out["captures list (with verify)"], rows = _median_ms(captures, repeat)
    out["captures list (no verify)"], _ = _median_ms(lambda: captures(False), repeat)
    out["instrument search"], found = _median_ms(search, repeat)
    out["1m candles, one instrument-day"], table = _median_ms(candles, repeat)
    out["first page of ticks + count"], head = _median_ms(first_page, repeat)
    assert len(rows) == len(DAYS) * CAPTURES_PER_DAY and all(r.integrity == "ok" for r in rows)
    assert found.num_rows >= 1 and table.num_rows > 300 and head.page.num_rows == 200
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000_000, 20_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build the targets (default: a temporary folder)")
    parser.add_argument("--keep", default=None, metavar="FOLDER",
                        help="build the targets in FOLDER and keep them; a later run with the same FOLDER "
                             "times the kept targets without rebuilding (build once, time when the machine is quiet)")
    args = parser.parse_args()
    keep = Path(args.keep) if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    folder = keep or Path(tempfile.mkdtemp(prefix="tickscope-bench-queries-", dir=args.dir))
    results: dict[tuple[str, int], dict] = {}
    try:
        for size in args.sizes:
            for kind, name in (("duckdb", "t.duckdb"), ("parquet", "dataset")):
                path = folder / f"{size}-{name}"
                done = folder / f"{size}-{name}.built"
                if keep and done.is_file():
                    written = int(done.read_text())
                    print(f"kept {kind} target of {written:,} ticks over {len(DAYS)} days ({path})", flush=True)
                else:
                    if path.exists():  # a build of ours cut short: start it again
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
                    seconds, written = build(path, size)
                    print(f"built {kind} target of {written:,} ticks over {len(DAYS)} days in {seconds:.1f} s",
                          flush=True)
                    if keep:
                        done.write_text(str(written))
                results[(kind, size)] = measure(path, args.repeat)
                for what, ms in results[(kind, size)].items():
                    unit = "" if what.startswith("(") else " ms"
                    print(f"  {kind:8s} {written / 1e6:5.1f}M  {what:32s} {ms:8.1f}{unit}", flush=True)
                if not keep:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("\nquery                              kind      " + "  ".join(f"{s / 1e6:>6.0f}M" for s in args.sizes)
          + ("   growth" if len(args.sizes) > 1 else "") + "  target")
    for kind, limit in (("duckdb", 300), ("parquet", 1000)):
        for what in results[(kind, args.sizes[0])]:
            values = [results[(kind, s)][what] for s in args.sizes]
            if what.startswith("("):
                print(f"{what:34s} {kind:8s} " + "  ".join(f"{v:8,.0f}" for v in values))
                continue
            growth = f"  {values[-1] / values[0]:5.2f}x" if len(values) > 1 else ""
            ok = "ok" if values[-1] < limit else f"OVER {limit} ms"
            print(f"{what:34s} {kind:8s} " + "  ".join(f"{v:6.0f}ms" for v in values) + f"{growth}  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

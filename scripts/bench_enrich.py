"""Instrument master loading and enrichment throughput (part of ``make bench``).

``bench_enrich(capture_path)`` builds a token lookup as large as the one the project was
born from (358,784 instruments: the capture's own instruments plus filler rows), times
loading it as the official CSV dump, then times ``InstrumentBook.enrich`` over the
capture's decoded ticks. Prints rows/s; never asserts timings.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.core.decode import CaptureReader  # noqa: E402
from app.core.enrich import InstrumentBook  # noqa: E402
from app.core.instruments import load_master  # noqa: E402
from tests.support import synthetic  # noqa: E402

MASTER_ROWS = 358_784
MAX_TICKS = 2_000_000


def _write_big_master(path: Path, day: dt.date, seed: int) -> int:
    rows = synthetic.write_instruments_csv(path, synthetic.make_instruments(seed=seed, date=day), day)
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for i in range(MASTER_ROWS - rows):
            exchange_token = 5_000_000 + i  # clear of the synthetic universe's tokens
            writer.writerow((exchange_token << 8 | 2, exchange_token, f"FILLER{i}", "FILLER", "0",
                             "2025-10-28", "100", "0.05", "75", "CE", "NFO-OPT", "NFO"))
    return MASTER_ROWS


def bench_enrich(capture_path, seed: int) -> dict:
    """``seed``: the seed ``synthetic.generate_capture`` made the capture with."""
    reader = CaptureReader(capture_path)
    tables, rows = [], 0
    for batch in reader.batches():
        tables.append(batch.ticks)
        rows += batch.ticks.num_rows
        if rows >= MAX_TICKS:
            break
    ticks = pa.concat_tables(tables)
    days = sorted(d for d in ticks.column("trading_date").unique().to_pylist() if d is not None)
    day = days[0] if days else synthetic.SESSION_DATE
    with tempfile.TemporaryDirectory(prefix="tickscope-bench-enrich-") as tmp:
        master_path = Path(tmp) / f"instruments_{day:%Y%m%d}.csv"
        _write_big_master(master_path, day, seed)
        started = time.perf_counter()
        master = load_master(master_path)
        load_s = time.perf_counter() - started
    book = InstrumentBook([master])
    book.enrich(ticks.slice(0, 10_000))  # warm-up: first-call allocations
    best = None
    for _ in range(3):
        started = time.perf_counter()
        enriched, stats = book.enrich_with_stats(ticks)
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    result = {
        "master_rows": master.table.num_rows,
        "master_load_s": load_s,
        "ticks": ticks.num_rows,
        "enrich_rows_per_s": ticks.num_rows / best,
        "resolved": stats.resolved,
        "unresolved": stats.unresolved,
    }
    print(f"instruments: {result['master_rows']:,}-row CSV dump loaded in {load_s * 1000:,.0f} ms")
    print(f"enrichment: {result['ticks']:,} ticks in {best:.3f} s = {result['enrich_rows_per_s']:,.0f} rows/s "
          f"(target >= 5,000,000); {stats.resolved:,} resolved, {stats.unresolved:,} unresolved")
    return result


if __name__ == "__main__":
    bench_enrich(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)

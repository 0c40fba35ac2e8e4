"""Hand-built tick tables and masters for the store tests (no decoder involved)."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pyarrow as pa

from app.core import schema
from app.core.instruments import MASTER_SCHEMA, InstrumentMaster

DAY = dt.date(2025, 10, 13)
T0 = dt.datetime(2025, 10, 13, 4, 0, tzinfo=dt.UTC)  # 09:30 IST


def file_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def decoded(fid: str, n: int, *, tokens=(256265, 408065, 12345602), start_msg: int = 0,
            day: dt.date | None = DAY, price: float = 100.0) -> pa.Table:
    """``n`` full-ish ticks of ``fid`` cycling through ``tokens`` (DECODED_SCHEMA)."""
    rng = np.random.default_rng(n + start_msg)
    msg = np.arange(start_msg, start_msg + n, dtype=np.int64)
    token = np.resize(np.asarray(tokens, dtype=np.int64), n)
    times = (np.datetime64(T0.replace(tzinfo=None), "us") + (msg * 1000).astype("timedelta64[us]"))
    cols = {}
    for f in schema.DECODED_SCHEMA:
        t = f.type
        if f.name == "file_id":
            arr = pa.array([fid] * n, pa.string())
        elif f.name == "msg_seq":
            arr = pa.array(msg)
        elif f.name == "pkt_seq":
            arr = pa.array(np.zeros(n, np.int32))
        elif f.name == "offset":
            arr = pa.array(msg * 200)
        elif f.name == "packet_length":
            arr = pa.array(np.full(n, 184, np.int32))
        elif f.name == "mode":
            arr = pa.array(["full"] * n)
        elif f.name == "tradable":
            arr = pa.array((token & 0xFF) != 9)
        elif f.name == "instrument_token":
            arr = pa.array(token)
        elif f.name == "segment":
            arr = pa.array((token & 0xFF).astype(np.int16))
        elif f.name == "exchange_token":
            arr = pa.array(token >> 8)
        elif f.name == "tick_time_source":
            arr = pa.array(["exchange"] * n)
        elif f.name == "trading_date":
            arr = pa.array([day] * n, pa.date32())
        elif pa.types.is_list(t):
            values = rng.integers(1, 1000, n * 5)
            values = values.astype(float) if pa.types.is_floating(t.value_type) else values
            arr = pa.ListArray.from_arrays(pa.array(np.arange(0, n * 5 + 1, 5, dtype=np.int32)), pa.array(values))
        elif pa.types.is_timestamp(t):
            arr = pa.array(times).cast(t)
        elif pa.types.is_floating(t):
            arr = pa.array(price + rng.random(n))
        else:
            arr = pa.array(rng.integers(0, 10_000, n)).cast(t)
        cols[f.name] = arr
    return pa.Table.from_pydict(cols, schema=schema.DECODED_SCHEMA)


def ticks(fid: str, n: int, **kw) -> pa.Table:
    return schema.unenriched(decoded(fid, n, **kw))


def ticks_of_days(fid: str, days: list, per_day: int, *, start_msg: int = 0) -> pa.Table:
    """``per_day`` ticks of each of ``days`` in turn (a day may repeat, None: no date), built
    as one table with its date column set run by run (a table per run cost 100x the CPU)."""
    table = ticks(fid, per_day * len(days), start_msg=start_msg)
    dates = pa.array([day for day in days for _ in range(per_day)], pa.date32())
    where = table.schema.get_field_index("trading_date")
    return table.set_column(where, table.schema.field(where), dates)


def master(tokens_symbols: dict[int, str], day: dt.date | None = DAY, source: str = "master.csv") -> InstrumentMaster:
    tokens = list(tokens_symbols)
    table = pa.table(
        {
            "instrument_token": pa.array(tokens, pa.int64()),
            "exchange_token": pa.array([t >> 8 for t in tokens], pa.int64()),
            "tradingsymbol": pa.array(list(tokens_symbols.values())),
            "name": pa.array(list(tokens_symbols.values())),
            "exchange": pa.array(["NSE"] * len(tokens)),
            "instrument_segment": pa.array(["NSE"] * len(tokens)),
            "instrument_type": pa.array(["EQ"] * len(tokens)),
            "expiry": pa.nulls(len(tokens), pa.date32()),
            "strike": pa.array([0.0] * len(tokens)),
            "lot_size": pa.array([1] * len(tokens), pa.int64()),
            "tick_size": pa.array([0.05] * len(tokens)),
        },
        schema=MASTER_SCHEMA,
    )
    return InstrumentMaster(source=source, date=day, table=table)

"""Instrument masters stored once per content, as validity intervals (app.store.masters)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.core.enrich import InstrumentBook
from app.core.instruments import MASTER_SCHEMA, InstrumentMaster, load_master
from app.core.schema import DECODED_SCHEMA
from app.store import masters as store
from app.store import open_target
from tests.support import synthetic

KINDS = ["duckdb", "parquet"]
D09, D10, D11, D13, D14 = (dt.date(2025, 10, d) for d in (9, 10, 11, 13, 14))


def target_path(tmp_path: Path, kind: str) -> Path:
    return tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")


def master(rows: dict, day=D10, source="m.csv") -> InstrumentMaster:
    cols = {name: [] for name in MASTER_SCHEMA.names}
    for token, symbol in rows.items():
        values = dict(instrument_token=token, exchange_token=token >> 8, tradingsymbol=symbol, name=symbol,
                      exchange="NFO", instrument_segment="NFO-OPT", instrument_type="CE",
                      expiry=dt.date(2025, 10, 28), strike=25000.0, lot_size=75, tick_size=0.05)
        for k, v in values.items():
            cols[k].append(v)
    return InstrumentMaster(source=source, date=day, table=pa.table(cols, schema=MASTER_SCHEMA))


def as_set(table: pa.Table) -> set:
    return {tuple(r.values()) for r in table.select(MASTER_SCHEMA.names).to_pylist()}


def ticks(tokens, dates) -> pa.Table:
    n = len(tokens)
    cols = {f.name: pa.nulls(n, f.type) for f in DECODED_SCHEMA}
    cols["instrument_token"] = pa.array(tokens, pa.int64())
    cols["segment"] = pa.array([t & 0xFF for t in tokens], pa.int16())
    cols["exchange_token"] = pa.array([t >> 8 for t in tokens], pa.int64())
    cols["trading_date"] = pa.array(dates, pa.date32())
    cols["msg_seq"] = pa.array(range(n), pa.int64())
    return pa.table(cols, schema=DECODED_SCHEMA)


@pytest.mark.parametrize("kind", KINDS)
def test_restoring_an_identical_master_rewrites_nothing(tmp_path, kind):
    m = master({1000 + i: f"S{i}" for i in range(50)})
    with open_target(target_path(tmp_path, kind)) as target:
        assert target.record_masters([m]) == [True]
        catalog, rows = target.master_catalog(), target.master_rows()
        files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("instrument*.parquet")}
        same = master({1000 + i: f"S{i}" for i in range(50)}, source="copy.csv")
        assert target.record_masters([m, same]) == [False, False]
        assert target.master_catalog().equals(catalog)
        assert target.master_rows().equals(rows)
        assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("instrument*.parquet")} == files
        assert rows.num_rows == 50


def test_a_changed_row_yields_a_new_interval():
    rows50 = {1000 + i: f"S{i}" for i in range(50)}
    catalog, rows = store.empty()
    for day, table in ((D10, rows50), (D11, {**rows50, 1003: "CHANGED"}), (D13, {**rows50, 1003: "CHANGED"})):
        catalog, rows = store.add_master(catalog, rows, master(table, day), f"sha-{day}")
    assert rows.num_rows == 51  # every row once, plus the changed row's new version
    spans = {(r["instrument_token"], r["tradingsymbol"]): (r["valid_from"], r["valid_to"]) for r in rows.to_pylist()}
    assert spans[(1003, "S3")] == (D10, D10)
    assert spans[(1003, "CHANGED")] == (D11, D13)
    assert spans[(1004, "S4")] == (D10, D13)
    # A token missing on the middle day breaks its interval there.
    catalog, rows = store.add_master(catalog, rows, master({k: v for k, v in rows50.items() if k != 1010}, D14), "x")
    catalog, rows = store.add_master(catalog, rows, master(rows50, dt.date(2025, 10, 15)), "y")
    spans = [(r["valid_from"], r["valid_to"]) for r in rows.to_pylist() if r["instrument_token"] == 1010]
    assert sorted(spans) == [(D10, D13), (dt.date(2025, 10, 15),) * 2]


def test_intervals_give_back_every_master_whatever_the_order_they_are_stored_in():
    rng = random.Random(7)
    base = {10_000 + i: f"S{i}" for i in range(200)}
    days = [dt.date(2025, 10, 1) + dt.timedelta(days=i) for i in range(10)]
    wanted: dict = {}
    catalog, rows = store.empty()
    steps = [(d, "dump.csv") for d in days] + [(d, "extra.csv") for d in rng.sample(days, 4)] + \
        [(None, "lookup.json"), (days[3], "dump.csv"), (rng.choice(days), "dump.csv"), (None, "lookup.json")]
    rng.shuffle(steps)
    for i, (day, source) in enumerate(steps):
        content = {t: (s if rng.random() > 0.05 else f"{s}_{i}") for t, s in base.items() if rng.random() > 0.03}
        m = master(content, day, source)
        result = store.add_master(catalog, rows, m, f"sha{i}")
        catalog, rows = result
        wanted[(source, day)] = as_set(m.table)  # a master of a stored (source, day) replaces it
    assert catalog.num_rows == len(wanted)
    for entry in catalog.to_pylist():
        got = store.master_table(rows, entry["lane"], entry["instruments_date"])
        assert as_set(got) == wanted[(entry["source"], entry["instruments_date"])]
        assert got.num_rows == entry["rows"]


def test_stored_size_grows_with_changes_not_with_days():
    rng = random.Random(3)
    rows_now = {100_000 + i: f"S{i}" for i in range(2000)}
    catalog, rows = store.empty()
    for i in range(8):
        catalog, rows = store.add_master(catalog, rows, master(rows_now, D10 + dt.timedelta(days=i)), f"s{i}")
        changed = rng.sample(sorted(rows_now), 40)  # 2% a day, tokens recycled to other contracts
        rows_now = {**rows_now, **{t: f"NEW{i}_{t}" for t in changed}}
    assert rows.num_rows == 2000 + 7 * 40


def sample_masters(tmp_path: Path) -> list[Path]:
    """The sample's two dumps: 2025-10-10 and 2025-10-13, with recycled F&O tokens."""
    instruments = synthetic.make_instruments(20251013, date=D13)
    paths = []
    for day in (D10, D13):
        path = tmp_path / f"instruments_{day:%Y%m%d}.csv"
        synthetic.write_instruments_csv(path, instruments, day)
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind", KINDS)
def test_enrichment_from_stored_masters_is_unchanged_on_every_day(tmp_path, kind):
    paths = sample_masters(tmp_path)
    loaded = [load_master(p) for p in paths]
    old = InstrumentBook(loaded)  # naming as before: every master in memory
    tokens = sorted(set().union(*(m.table["instrument_token"].to_pylist() for m in loaded)))
    # The scenario's recycled tokens: in the 10th's dump only, never named on the 13th.
    expired = (set(loaded[0].table["instrument_token"].to_pylist())
               - set(loaded[1].table["instrument_token"].to_pylist()))
    assert expired and all(old.resolve([t], [D13]) == [None] and old.resolve([t], [D10])[0] for t in expired)
    days = [D09, D10, D11, D13, D14, None]
    probe = ticks([t for t in tokens + [409, 12345602] for _ in days], [d for _ in tokens + [409, 12345602]
                                                                        for d in days])
    with open_target(target_path(tmp_path, kind)) as target:
        target.record_masters(loaded)
        target.record_masters(loaded)  # again: nothing changes
    with open_target(target_path(tmp_path, kind)) as target:
        book = target.stored_book()
        got, got_stats = book.enrich_with_stats(probe)
    want, want_stats = old.enrich_with_stats(probe)
    assert got.equals(want)
    assert got_stats == want_stats
    assert [m.date for m in book.masters] == [D10, D13]


@pytest.mark.parametrize("kind", KINDS)
def test_a_skipping_run_reads_no_master_and_a_stored_master_file_is_not_parsed(tmp_path, kind, monkeypatch):
    from app.pipeline import ingest as pipeline
    from tests.support.encode import encode_message, encode_packet, frame

    capture = tmp_path / "a.bin"
    packet = encode_packet(184, {"instrument_token": 408065, "last_price": 1, "close": 120000,
                                 "exchange_timestamp": 1700000000})
    capture.write_bytes(frame([encode_message([packet])], "u32len"))
    dump = tmp_path / "inst_20231115.csv"
    dump.write_text("instrument_token,tradingsymbol,exchange\n408065,INFY,NSE\n")
    target = target_path(tmp_path, kind)
    first = pipeline.run_ingest([capture], target, instruments=[dump], workers=1)
    assert [f.status for f in first.files] == ["done"]

    def refuse(*_a, **_k):
        raise AssertionError("a stored master was read")

    monkeypatch.setattr(store.StoredMasters, "rows", refuse)
    monkeypatch.setattr(pipeline, "load_master", refuse, raising=False)
    import app.core.instruments as instruments

    monkeypatch.setattr(instruments, "load_master", refuse)
    again = pipeline.run_ingest([capture], target, instruments=[dump], workers=1)
    assert [f.status for f in again.files] == ["skipped"]
    with open_target(target) as t:
        assert t.master_catalog().num_rows == 1
        assert t.ticks(["tradingsymbol"])["tradingsymbol"].to_pylist() == ["INFY"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_target_with_the_old_instruments_table_opens_and_is_migrated(tmp_path, kind):
    import duckdb

    m10 = master({1000: "A10", 1001: "B"}, D10, "x_20251010.csv")
    m13 = master({1000: "A13", 1001: "B"}, D13, "x_20251013.csv")
    other = master({1000: "OTHER"}, D13, "other.csv")
    legacy = InstrumentBook([m10, m13, other]).to_table()
    path = target_path(tmp_path, kind)
    open_target(path).close()
    if kind == "duckdb":
        con = duckdb.connect(str(path))
        con.register("legacy", legacy)
        con.execute("CREATE TABLE instruments AS SELECT * FROM legacy")
        con.close()
    else:
        (path / "instruments").mkdir()
        pq.write_table(legacy, path / "instruments" / "instruments.parquet")
    with open_target(path, read_only=True) as target:  # read-only: converted in memory
        assert as_set(target.instruments()) == as_set(legacy)
    with open_target(path) as target:
        assert target.master_catalog().num_rows == 3
        assert target.master_rows().num_rows == 4  # B once for both days
        book = target.stored_book()
        out = book.enrich(ticks([1000, 1000, 1001], [D10, D13, D13]))
        # Same-day masters keep their stored search order: x_20251013.csv before other.csv.
        assert out["tradingsymbol"].to_pylist() == ["A10", "A13", "B"]
    if kind == "parquet":
        assert "valid_from" in pq.read_schema(path / "instruments" / "instruments.parquet").names


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_tokens_are_explained_alike_without_loading_every_days_master(tmp_path, kind):
    from app.core.unknown import explain_unknown
    from app.store.base import UNRESOLVED_AGGREGATE_SCHEMA

    paths = sample_masters(tmp_path)
    loaded = [load_master(p) for p in paths]
    expired = sorted(set(loaded[0].table["instrument_token"].to_pylist())
                     - set(loaded[1].table["instrument_token"].to_pylist()))[:3]
    listed = loaded[1].table["instrument_token"].to_pylist()[:2]
    swapped = int.from_bytes(listed[0].to_bytes(4, "big"), "little")
    tokens = expired + listed + [409, swapped, (listed[1] >> 8 << 8) | 4]
    t0 = dt.datetime(2025, 10, 13, 4, tzinfo=dt.UTC)
    aggregate = pa.Table.from_pylist([
        {"instrument_token": t, "ticks": 5, "first_tick_time": t0, "last_tick_time": t0,
         "files": ["a.bin"], "trading_dates": [D10, D13] if i % 2 else [D13]}
        for i, t in enumerate(tokens)], schema=UNRESOLVED_AGGREGATE_SCHEMA)
    with open_target(target_path(tmp_path, kind)) as target:
        target.record_masters(loaded)
    with open_target(target_path(tmp_path, kind)) as target:
        stored = store.StoredMasters(target.master_catalog(), target.master_rows, target.master_rows_of)
        got = explain_unknown(aggregate, InstrumentBook(stored.masters))
        assert stored.loaded == 0  # diagnosis read the interval rows, no day's master
    want = explain_unknown(aggregate, InstrumentBook(loaded))
    assert got.equals(want)
    assert len(set(want["diagnosis"].to_pylist())) >= 3


@pytest.mark.parametrize("kind", KINDS)
def test_same_day_masters_given_together_are_searched_in_the_given_order(tmp_path, kind):
    nse = master({1000: "FROM_NSE", 1001: "ONLY_NSE"}, D10, "nse.csv")
    nfo = master({1000: "FROM_NFO", 1002: "ONLY_NFO"}, D10, "nfo.csv")
    with open_target(target_path(tmp_path, kind)) as target:
        assert target.record_masters([nse, nfo]) == [True, True]
        book = target.stored_book()
        assert [m.source for m in book.masters_for_day(D10)] == ["nse.csv", "nfo.csv"]
        out = book.enrich(ticks([1000, 1001, 1002], [D10] * 3))
        assert out["tradingsymbol"].to_pylist() == ["FROM_NSE", "ONLY_NSE", "ONLY_NFO"]
        # A master stored later for that day goes first: the one passed now wins.
        newer = master({1000: "CORRECTED"}, D10, "fix.csv")
        target.record_masters([newer])
        assert target.stored_book().enrich(ticks([1000], [D10]))["tradingsymbol"].to_pylist() == ["CORRECTED"]

"""Naming ticks with the master of their own trading day; unknown ticks stay null."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.core.enrich import EnrichStats, InstrumentBook, expected_segments
from app.core.instruments import INSTRUMENTS_SCHEMA, MASTER_SCHEMA, InstrumentMaster, load_master
from app.core.schema import DECODED_SCHEMA, ENRICHMENT_SCHEMA, TICK_SCHEMA, unenriched

D10, D11, D13, D09 = dt.date(2025, 10, 10), dt.date(2025, 10, 11), dt.date(2025, 10, 13), dt.date(2025, 10, 9)
T = 12345602  # an NFO token (segment byte 2) that Kite re-assigns


def master(rows, date=None, source="mem"):
    """A master from (token, symbol[, exchange, segment]) tuples."""
    cols = {name: [] for name in MASTER_SCHEMA.names}
    for row in rows:
        token, symbol, exchange, segment = (tuple(row) + ("NFO", "NFO-OPT"))[:4]
        values = dict(instrument_token=token, exchange_token=token >> 8, tradingsymbol=symbol,
                      name=symbol.rstrip("0123456789CEPUT"), exchange=exchange, instrument_segment=segment,
                      instrument_type="CE", expiry=dt.date(2025, 10, 28), strike=25000.0, lot_size=75,
                      tick_size=0.05)
        for k, v in values.items():
            cols[k].append(v)
    return InstrumentMaster(source=source, date=date, table=pa.table(cols, schema=MASTER_SCHEMA))


def ticks(tokens, dates, chunks=1):
    """A DECODED_SCHEMA table: tokens, segments and trading dates set, nulls elsewhere."""
    n = len(tokens)
    cols = {f.name: pa.nulls(n, f.type) for f in DECODED_SCHEMA}
    cols["instrument_token"] = pa.array(tokens, pa.int64())
    cols["segment"] = pa.array([None if t is None else t & 0xFF for t in tokens], pa.int16())
    cols["exchange_token"] = pa.array([None if t is None else t >> 8 for t in tokens], pa.int64())
    cols["trading_date"] = pa.array(dates, pa.date32())
    cols["msg_seq"] = pa.array(range(n), pa.int64())
    table = pa.table(cols, schema=DECODED_SCHEMA)
    if chunks > 1:
        size = max(1, n // chunks)
        table = pa.concat_tables([table.slice(i, size) for i in range(0, n, size)])
    return table


def recycled_book():
    return InstrumentBook([
        master([(T, "NIFTY25OCT25000CE")], D10, "instruments_20251010.csv"),
        master([(T, "BANKNIFTY25NOV50000PE")], D13, "instruments_20251013.csv"),
    ])


def test_recycled_token_is_named_with_the_master_of_its_own_day():
    out, stats = recycled_book().enrich_with_stats(ticks([T] * 5, [D10, D13, D11, D09, None]))
    assert out.schema == TICK_SCHEMA
    assert out.column("tradingsymbol").to_pylist() == [
        "NIFTY25OCT25000CE",      # its own day
        "BANKNIFTY25NOV50000PE",  # its own day
        "NIFTY25OCT25000CE",      # closest earlier master
        "NIFTY25OCT25000CE",      # nothing earlier: closest later, counted
        "BANKNIFTY25NOV50000PE",  # no trading date: the newest master
    ]
    assert out.column("instruments_date").to_pylist() == [D10, D13, D10, D10, D13]
    assert out.column("resolved").to_pylist() == [True] * 5
    assert stats == EnrichStats(rows=5, resolved=5, unresolved=0, named_by_later_master=1, named_without_date=1)


def test_ticks_without_a_date_use_undated_masters_first_then_the_newest_and_are_counted():
    book = InstrumentBook([
        master([(T, "OLD_DAY"), (T + 512, "ONLY_OLD")], D10),
        master([(T, "NEWEST_DAY"), (T + 256, "ONLY_NEWEST")], D13),
        master([(T, "UNDATED_NAME")]),
    ])
    out, stats = book.enrich_with_stats(ticks([T, T + 256, T + 512, T, T], [None, None, None, D13, D10]))
    # An undated master is made for any day; a dated one is a guess for a tick without one.
    assert out.column("tradingsymbol").to_pylist() == ["UNDATED_NAME", "ONLY_NEWEST", None, "NEWEST_DAY", "OLD_DAY"]
    assert stats.named_without_date == 2 and stats.named_by_undated_master == 1
    assert stats.resolved == 4 and stats.unresolved == 1
    assert [m.source for m in book.masters_for_day(None)] == ["mem", "mem"]
    assert [m.date for m in book.masters_for_day(None)] == [None, D13]


def test_string_keyed_lookup_names_int_tokens(tmp_path):
    """The reported bug end to end: 358k-row lookup keyed by "409" left ticks UNKNOWN_409."""
    path = tmp_path / "token_lookup.json"
    path.write_text(json.dumps({"408065": {"symbol": "INFY", "exchange": "NSE", "segment": "NSE"},
                                "256265": {"symbol": "NIFTY 50", "exchange": "NSE", "segment": "INDICES"}}))
    book = InstrumentBook([load_master(path)])
    out = book.enrich(ticks([408065, 256265, 408065], [D10, D10, None]))
    assert out.column("tradingsymbol").to_pylist() == ["INFY", "NIFTY 50", "INFY"]
    assert out.column("exchange").to_pylist() == ["NSE"] * 3
    assert out.column("resolved").to_pylist() == [True] * 3
    assert out.column("instruments_date").null_count == 3  # undated master
    assert book.last_stats.named_by_undated_master == 3 and book.last_stats.segment_mismatches == 0


def test_unknown_tokens_stay_null_and_unresolved():
    book = recycled_book()
    out = book.enrich(ticks([409, T, 153, None], [D10, D10, D10, D10]))
    assert out.column("resolved").to_pylist() == [False, True, False, False]
    for name in ENRICHMENT_SCHEMA.names:
        if name != "resolved":
            column = out.column(name).to_pylist()
            assert [column[i] for i in (0, 2, 3)] == [None] * 3, name
    # No placeholder symbol anywhere in the table.
    for name in out.column_names:
        if pa.types.is_string(out.schema.field(name).type):
            assert not any("UNKNOWN" in (v or "") for v in out.column(name).to_pylist()), name
    assert book.last_stats.unresolved == 3 and book.last_stats.resolved == 1


def test_a_token_missing_from_its_days_master_is_not_named_by_another_day():
    """No fall-through to other dated masters: that is how recycled tokens get wrong names."""
    book = InstrumentBook([
        master([(T, "OLD_CONTRACT")], D10),
        master([(T + 256, "OTHER")], D13),
    ])
    out = book.enrich(ticks([T, T], [D10, D13]))
    assert out.column("tradingsymbol").to_pylist() == ["OLD_CONTRACT", None]
    assert out.column("resolved").to_pylist() == [True, False]


def test_undated_master_is_a_fallback_for_every_day():
    book = InstrumentBook([
        master([(T, "DAY_NAME")], D10),
        master([(T, "UNDATED_NAME"), (T + 256, "ONLY_UNDATED")]),
    ])
    out, stats = book.enrich_with_stats(ticks([T, T + 256, T, T + 256], [D10, D10, D09, D13]))
    assert out.column("tradingsymbol").to_pylist() == ["DAY_NAME", "ONLY_UNDATED", "UNDATED_NAME", "ONLY_UNDATED"]
    assert out.column("instruments_date").to_pylist() == [D10, None, None, None]
    # Before the first dated master, the undated one comes before the later dated one.
    assert stats.named_by_undated_master == 3 and stats.named_by_later_master == 0


def test_masters_of_the_same_day_are_searched_in_the_order_added():
    book = InstrumentBook([
        master([(408065, "INFY", "NSE", "NSE")], D10, "nse.csv"),
        master([(408065, "SHADOWED", "NSE", "NSE"), (T, "NFO_ONLY")], D10, "nfo.csv"),
    ])
    out = book.enrich(ticks([408065, T], [D10, D10]))
    assert out.column("tradingsymbol").to_pylist() == ["INFY", "NFO_ONLY"]
    assert [m.source for m in book.masters_for_day(D10)] == ["nse.csv", "nfo.csv"]


def test_re_enriching_a_tick_table_replaces_the_enrichment():
    first = InstrumentBook([master([(T, "FIRST")], D10)]).enrich(ticks([T, 409], [D10, D10]))
    assert first.schema == TICK_SCHEMA
    second = InstrumentBook([master([(409, "SECOND")], D10)]).enrich(first)
    assert second.schema == TICK_SCHEMA
    assert second.column("tradingsymbol").to_pylist() == [None, "SECOND"]
    assert second.column("resolved").to_pylist() == [False, True]
    assert second.column("msg_seq").to_pylist() == [0, 1]
    # unenriched() tables are TICK_SCHEMA too.
    assert InstrumentBook([master([(T, "X")], D10)]).enrich(unenriched(ticks([T], [D10]))) \
        .column("tradingsymbol").to_pylist() == ["X"]


def test_segment_disagreement_is_counted():
    book = InstrumentBook([master([
        (408065, "INFY", "NSE", "NSE"),           # byte 1, NSE: agrees
        (256265, "NIFTY 50", "NSE", "INDICES"),   # byte 9, indices of any exchange: agrees
        (T, "NFO_AS_NSE", "NSE", "NSE"),          # byte 2 but the master says NSE equity
        (12345612, "NCO_THING", None, "NCO-FUT"),  # byte 12, exchange only in the segment prefix
        (12345607, "ODD", "NEWEXCHANGE", "X"),    # an exchange we cannot check: not counted
    ], D10)])
    _, stats = book.enrich_with_stats(ticks([408065, 256265, T, T, 12345612, 12345607], [D10] * 6))
    assert stats.segment_mismatches == 2 and stats.resolved == 6
    assert expected_segments(book.masters[0].table).tolist() == [1, 9, 1, 12, -1]


def test_chunked_empty_and_bookless_inputs():
    book = recycled_book()
    chunked = ticks([T, 409, T, T, 409, T], [D10, D10, D13, D11, D13, None], chunks=3)
    assert chunked.column("instrument_token").num_chunks == 3
    out = book.enrich(chunked)
    assert out.column("resolved").to_pylist() == [True, False, True, True, False, True]

    empty = book.enrich(ticks([], []))
    assert empty.num_rows == 0 and empty.schema == TICK_SCHEMA

    out, stats = InstrumentBook().enrich_with_stats(ticks([T], [D10]))
    assert out.column("resolved").to_pylist() == [False] and stats.unresolved == 1
    with pytest.raises(ValueError, match="lack decoded columns"):
        book.enrich(pa.table({"instrument_token": [T]}))


def test_enrich_matches_a_row_by_row_reference():
    """Random masters, days and tokens: the vectorised path equals the documented rules."""
    rng = random.Random(7)
    days = [dt.date(2025, 10, d) for d in (6, 8, 10, 13)]
    pool = [(1000 + i) * 256 + 2 for i in range(40)]
    masters = []
    for i, day in enumerate(days + [None, None]):
        rows = [(t, f"S{i}_{t}") for t in rng.sample(pool, 20)]
        masters.append(master(rows, day, f"m{i}"))
    book = InstrumentBook(masters)

    tick_days = [rng.choice([None, *(dt.date(2025, 10, d) for d in range(4, 16))]) for _ in range(2000)]
    tick_tokens = [rng.choice(pool + [409]) for _ in range(2000)]
    out = book.enrich(ticks(tick_tokens, tick_days, chunks=4))

    def reference(token, day):
        dated = sorted({m.date for m in masters if m.date})
        earlier = [d for d in dated if day is None or d <= day]
        later = [d for d in dated if day is not None and d > day]
        undated = [m for m in masters if m.date is None]
        if day is None:  # undated masters first, then the newest day's
            chain = undated + [m for m in masters if dated and m.date == dated[-1]]
        elif earlier:
            chain = [m for m in masters if m.date == earlier[-1]] + undated
        else:
            chain = undated + [m for m in masters if later and m.date == later[0]]
        for m in chain:
            for row in m.table.to_pylist():
                if row["instrument_token"] == token:
                    return row["tradingsymbol"]
        return None

    expected = [reference(t, d) for t, d in zip(tick_tokens, tick_days, strict=True)]
    assert out.column("tradingsymbol").to_pylist() == expected
    assert out.column("resolved").to_pylist() == [e is not None for e in expected]


def test_instruments_table_and_description(tmp_path):
    book = recycled_book()
    book.add(master([(408065, "INFY", "NSE", "NSE")], None, "lookup.json"))
    table = book.to_table()
    assert table.schema == INSTRUMENTS_SCHEMA
    assert table.num_rows == 3
    assert table.column("instruments_date").to_pylist() == [D10, D13, None]
    assert table.column("source").to_pylist() == ["instruments_20251010.csv", "instruments_20251013.csv", "lookup.json"]
    text = book.describe()
    assert "3 instrument master(s)" in text and "2025-10-10 to 2025-10-13" in text and "undated" in text
    assert InstrumentBook().describe().startswith("no instrument masters")
    # The instruments table written to Parquet loads back, day by day.
    pq.write_table(table.filter(pa.compute.equal(table.column("instruments_date"), D13)), tmp_path / "i.parquet")
    again = load_master(tmp_path / "i.parquet")
    assert again.date == D13 and again.date_source == "column"
    assert again.table.column("tradingsymbol").to_pylist() == ["BANKNIFTY25NOV50000PE"]


def test_resolve_and_lookups():
    book = recycled_book()
    named = book.resolve([T, T, 409], [D11, D13, D13])
    assert named[0][1]["tradingsymbol"] == "NIFTY25OCT25000CE" and named[0][0].date == D10
    assert named[1][1]["tradingsymbol"] == "BANKNIFTY25NOV50000PE" and named[2] is None
    assert [m.date for m, _ in book.lookup(T)] == [D10, D13]
    assert [r["instrument_token"] for _, r in book.lookup_exchange_token(T >> 8)] == [T, T]
    assert book.lookup_exchange_token(1) == []


def test_enrich_stats_add_up():
    total = EnrichStats()
    total += EnrichStats(rows=3, resolved=2, unresolved=1)
    total += EnrichStats(rows=2, resolved=2, segment_mismatches=1)
    assert total.to_dict()["rows"] == 5 and total.resolved == 4 and total.segment_mismatches == 1


def test_many_rows_few_tokens_is_vectorised():
    """Not a timing assert: 200k rows through the batch path give the right counts."""
    book = recycled_book()
    n = 200_000
    tokens = np.where(np.arange(n) % 4 == 0, 409, T)
    dates = pa.array(np.full(n, (D13 - dt.date(1970, 1, 1)).days, np.int32)).cast(pa.date32())
    cols = {f.name: pa.nulls(n, f.type) for f in DECODED_SCHEMA}
    cols.update(instrument_token=pa.array(tokens), trading_date=dates)
    table = pa.table(cols, schema=DECODED_SCHEMA)
    out, stats = book.enrich_with_stats(table)
    assert stats.resolved == n * 3 // 4 and stats.unresolved == n // 4
    assert out.column("tradingsymbol").null_count == n // 4

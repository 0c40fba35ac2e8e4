"""Unknown tokens: aggregated per token, merged across files, and each one explained."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from app.core import unknown
from app.core.enrich import InstrumentBook
from app.core.instruments import MASTER_SCHEMA, InstrumentMaster
from app.core.schema import DECODED_SCHEMA, UTC_TIME
from app.core.unknown import (
    AGGREGATE_SCHEMA,
    UNKNOWN_SCHEMA,
    aggregate_unresolved,
    byte_swapped,
    explain_unknown,
    merge_aggregates,
)

D10, D11, D13 = dt.date(2025, 10, 10), dt.date(2025, 10, 11), dt.date(2025, 10, 13)
UTC = dt.UTC
INFY = 408065  # NSE, exchange token 1594
T = 12345602  # NFO


def master(rows, date=None, source="mem.csv"):
    cols = {name: [] for name in MASTER_SCHEMA.names}
    for token, symbol, exchange in rows:
        values = dict(instrument_token=token, exchange_token=token >> 8, tradingsymbol=symbol, name=None,
                      exchange=exchange, instrument_segment=exchange, instrument_type="EQ", expiry=None,
                      strike=None, lot_size=1, tick_size=0.05)
        for k, v in values.items():
            cols[k].append(v)
    return InstrumentMaster(source=source, date=date, table=pa.table(cols, schema=MASTER_SCHEMA))


def enriched(book, tokens, dates, times=None):
    n = len(tokens)
    cols = {f.name: pa.nulls(n, f.type) for f in DECODED_SCHEMA}
    cols["instrument_token"] = pa.array(tokens, pa.int64())
    cols["segment"] = pa.array([t & 0xFF for t in tokens], pa.int16())
    cols["trading_date"] = pa.array(dates, pa.date32())
    if times is not None:
        cols["tick_time"] = pa.array(times, UTC_TIME)
    return book.enrich(pa.table(cols, schema=DECODED_SCHEMA))


def at(hour, minute=0, day=10):
    return dt.datetime(2025, 10, day, hour, minute, tzinfo=UTC)


def explain_one(book, token, dates=(D10,)):
    agg = aggregate_unresolved(enriched(book, [token] * len(dates), list(dates)), "capture.bin")
    result = explain_unknown(agg, book).to_pylist()
    assert len(result) == 1
    return result[0]


def test_aggregate_counts_only_unresolved_ticks():
    book = InstrumentBook([master([(INFY, "INFY", "NSE")], D10)])
    ticks = enriched(
        book,
        [409, INFY, 409, 777, 409],
        [D11, D10, D10, None, D11],
        [at(4, 0, 11), at(4), at(3, 45), None, at(9, 15, 11)],
    )
    agg = aggregate_unresolved(ticks, "a.bin")
    assert agg.schema == AGGREGATE_SCHEMA
    rows = {r["instrument_token"]: r for r in agg.to_pylist()}
    assert set(rows) == {409, 777}
    r = rows[409]
    assert r["ticks"] == 3 and r["files"] == ["a.bin"]
    assert r["first_tick_time"] == at(3, 45) and r["last_tick_time"] == at(9, 15, 11)
    assert r["trading_dates"] == [D10, D11]  # distinct and sorted
    assert rows[777]["ticks"] == 1 and rows[777]["trading_dates"] == [] and rows[777]["first_tick_time"] is None
    assert aggregate_unresolved(enriched(book, [INFY], [D10]), "b.bin").num_rows == 0


def test_merge_adds_counts_and_unions_lists():
    book = InstrumentBook()
    a = aggregate_unresolved(enriched(book, [409, 409, 777], [D11, D10, D10], [at(5), at(6), at(7)]), "a.bin")
    b = aggregate_unresolved(enriched(book, [409], [D13], [at(1, 0, 13)]), "b.bin")
    c = aggregate_unresolved(enriched(book, [409], [D10], [at(2)]), "a.bin")
    merged = merge_aggregates([a, b, AGGREGATE_SCHEMA.empty_table(), c])
    assert merged.schema == AGGREGATE_SCHEMA
    rows = {r["instrument_token"]: r for r in merged.to_pylist()}
    r = rows[409]
    assert r["ticks"] == 4
    assert r["files"] == ["a.bin", "b.bin"]
    assert r["trading_dates"] == [D10, D11, D13]
    assert (r["first_tick_time"], r["last_tick_time"]) == (at(2), at(1, 0, 13))
    assert rows[777]["ticks"] == 1 and rows[777]["files"] == ["a.bin"]
    assert merge_aggregates([]).num_rows == 0


def test_invalid_segment_byte_is_mis_framing_not_a_missing_instrument():
    book = InstrumentBook([master([(INFY, "INFY", "NSE")], D10)])
    row = explain_one(book, 409)
    assert row["segment"] == 153 and row["exchange_token"] == 1
    assert row["diagnosis"] == unknown.INVALID_SEGMENT
    assert "segment byte 153" in row["explanation"] and "mis-framed" in row["explanation"]
    assert row["segment_meaning"].startswith("not a Kite segment")
    assert row["files"] == ["capture.bin"]


def test_token_only_in_other_days_masters_names_them():
    book = InstrumentBook([
        master([(T, "NIFTY25OCT25000CE", "NFO")], D10),
        master([(INFY, "INFY", "NSE")], D11),
        master([(T, "BANKNIFTY25NOV50000PE", "NFO")], D13, "later.csv"),
    ])
    row = explain_one(book, T, dates=(D11,))
    assert row["diagnosis"] == unknown.OTHER_DAYS_ONLY
    text = row["explanation"]
    assert "2025-10-10 as NIFTY25OCT25000CE" in text and "2025-10-13 as BANKNIFTY25NOV50000PE" in text
    assert "master of 2025-10-11" in text and "recycled" in text


def test_byte_swapped_token_names_the_instrument():
    book = InstrumentBook([master([(INFY, "INFY", "NSE")], D10)])
    swapped = byte_swapped(INFY)
    assert swapped == 0x013A0600 and swapped & 0xFF == 0  # reversing gives an invalid low byte...
    row = explain_one(book, swapped)
    assert row["diagnosis"] == unknown.BYTE_SWAPPED  # ...but the reversed bytes name INFY
    assert f"token {INFY} = INFY (NSE)" in row["explanation"] and "little-endian" in row["explanation"]

    # A reversed token whose low byte happens to be a real segment is caught too.
    wide = 0x05ABCD02  # NFO token with a large exchange token
    book = InstrumentBook([master([(wide, "WIDE", "NFO")], D10)])
    row = explain_one(book, byte_swapped(wide))
    assert byte_swapped(wide) & 0xFF == 5
    assert row["diagnosis"] == unknown.BYTE_SWAPPED and "WIDE" in row["explanation"]


def test_exchange_token_in_another_segment_is_named():
    book = InstrumentBook([master([(INFY, "INFY", "NSE")], D10)])
    wrong_segment = (INFY >> 8) << 8 | 2  # INFY's exchange token, NFO's segment byte
    row = explain_one(book, wrong_segment)
    assert row["diagnosis"] == unknown.EXCHANGE_TOKEN_OTHER_SEGMENT
    assert "exchange token 1594 exists in segment 1 (NSE) as INFY (NSE), token 408065" in row["explanation"]
    assert "segment 2 (NFO)" in row["explanation"]


def test_absent_says_what_was_searched():
    book = InstrumentBook([master([(INFY, "INFY", "NSE")], D10), master([(T, "X", "NFO")], None, "lookup.json")])
    row = explain_one(book, 0x0FFFFF01, dates=(D11,))
    assert row["diagnosis"] == unknown.ABSENT
    assert "2 loaded master(s)" in row["explanation"] and "2 instruments searched" in row["explanation"]
    assert "2025-10-11" in row["explanation"]

    row = explain_one(InstrumentBook(), INFY)
    assert row["diagnosis"] == unknown.ABSENT and "no instrument master is loaded" in row["explanation"]


def test_conflicting_master_rows_are_the_stated_reason(tmp_path):
    from app.core.instruments import load_master

    path = tmp_path / "instruments_20251010.csv"
    path.write_text(
        "instrument_token,tradingsymbol,exchange\n"
        f"{T},FIRST,NFO\n{T},SECOND,NFO\n{INFY},INFY,NSE\n"
    )
    book = InstrumentBook([load_master(path)])
    row = explain_one(book, T)
    assert row["diagnosis"] == unknown.CONFLICTING_ROWS
    assert "2 times" in row["explanation"] and "FIRST" in row["explanation"] and "SECOND" in row["explanation"]


def test_token_named_by_a_master_added_later():
    book = InstrumentBook()
    agg = aggregate_unresolved(enriched(book, [INFY], [D10]), "a.bin")
    book.add(master([(INFY, "INFY", "NSE")], D10))
    [row] = explain_unknown(agg, book).to_pylist()
    assert row["diagnosis"] == unknown.NAMED_NOW and "INFY" in row["explanation"]


def test_report_schema_and_order():
    book = InstrumentBook([master([(INFY, "INFY", "NSE")], D10)])
    ticks = enriched(book, [409, 0x0FFFFF01, 0x0FFFFF01, INFY, byte_swapped(INFY)], [D10] * 5)
    report = explain_unknown(aggregate_unresolved(ticks, "a.bin"), book)
    assert report.schema == UNKNOWN_SCHEMA
    assert report.column("instrument_token").to_pylist() == [0x0FFFFF01, 409, byte_swapped(INFY)]  # most ticks first
    assert set(report.column("diagnosis").to_pylist()) <= set(unknown.DIAGNOSES)
    assert all(e and "\n" not in e for e in report.column("explanation").to_pylist())
    assert explain_unknown(AGGREGATE_SCHEMA.empty_table(), book).schema == UNKNOWN_SCHEMA


def test_explanation_speaks_only_of_the_days_still_unnamed():
    book = InstrumentBook([
        master([(T, "OCT_CONTRACT", "NFO")], D10),
        master([(INFY, "INFY", "NSE")], D13),
    ])
    agg = aggregate_unresolved(enriched(book, [T, T], [D13, D13]), "a.bin")
    # The aggregate also claims D11, when the 10-10 master does name T.
    agg = agg.set_column(5, "trading_dates", pa.array([[D11, D13]], pa.list_(pa.date32())))
    [row] = explain_unknown(agg, book).to_pylist()
    assert row["diagnosis"] == unknown.OTHER_DAYS_ONLY
    assert row["explanation"].startswith("ticks of 2025-10-13 are named with the master of 2025-10-13")

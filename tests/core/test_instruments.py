"""Loading instrument masters: every format to the same table, tokens as int64, dates, rejects."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from app.core import instruments
from app.core.instruments import MASTER_SCHEMA, date_from_name, load_master, load_masters
from app.errors import InputError, TickscopeError

DUMP_HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
    "tick_size,lot_size,instrument_type,segment,exchange"
)
# Three instruments as the official daily dump writes them.
DUMP_ROWS = [
    '408065,1594,INFY,"INFOSYS",0,,0,0.05,1,EQ,NSE,NSE',
    "12345602,48225,NIFTY25OCT25000CE,NIFTY,0,2025-10-28,25000,0.05,75,CE,NFO-OPT,NFO",
    '256265,1001,NIFTY 50,"NIFTY 50",0,,0,0,0,EQ,INDICES,NSE',
]
RECORDS = [
    dict(instrument_token=408065, exchange_token=1594, tradingsymbol="INFY", name="INFOSYS", expiry=None,
         strike=0.0, tick_size=0.05, lot_size=1, instrument_type="EQ", segment="NSE", exchange="NSE"),
    dict(instrument_token=12345602, exchange_token=48225, tradingsymbol="NIFTY25OCT25000CE", name="NIFTY",
         expiry="2025-10-28", strike=25000.0, tick_size=0.05, lot_size=75, instrument_type="CE",
         segment="NFO-OPT", exchange="NFO"),
    dict(instrument_token=256265, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50", expiry=None,
         strike=0.0, tick_size=0.0, lot_size=0, instrument_type="EQ", segment="INDICES", exchange="NSE"),
]


def write_dump(path, rows=DUMP_ROWS, header=DUMP_HEADER):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def by_token(master):
    return {r["instrument_token"]: r for r in master.table.to_pylist()}


def test_dump_csv_loads_to_master_schema(tmp_path):
    m = load_master(write_dump(tmp_path / "instruments_20251010.csv"))
    assert m.table.schema == MASTER_SCHEMA
    assert m.rejected == {}
    assert m.date == dt.date(2025, 10, 10) and m.date_source == "file name"
    rows = by_token(m)
    assert set(rows) == {408065, 12345602, 256265}
    opt = rows[12345602]
    assert opt == dict(
        instrument_token=12345602, exchange_token=48225, tradingsymbol="NIFTY25OCT25000CE", name="NIFTY",
        exchange="NFO", instrument_segment="NFO-OPT", instrument_type="CE", expiry=dt.date(2025, 10, 28),
        strike=25000.0, lot_size=75, tick_size=0.05,
    )
    assert rows[408065]["expiry"] is None  # empty expiry is null, not a made-up date


def test_every_format_loads_to_the_same_table(tmp_path):
    """CSV, CSV.gz, JSON object (string keys), JSON array and Parquet: one table."""
    csv_path = write_dump(tmp_path / "dump.csv")
    gz_path = tmp_path / "dump.csv.gz"
    gz_path.write_bytes(gzip.compress(csv_path.read_bytes()))
    obj_path = tmp_path / "lookup.json"
    obj_path.write_text(json.dumps({str(r["instrument_token"]): r for r in RECORDS}))
    arr_path = tmp_path / "lookup_array.json"
    arr_path.write_text(json.dumps(RECORDS))
    pq_path = tmp_path / "dump.parquet"
    pq.write_table(pacsv.read_csv(csv_path), pq_path)
    plain_gz_name = tmp_path / "dump_gz_without_extension"  # content decides, not the name
    plain_gz_name.write_bytes(gz_path.read_bytes())

    reference = load_master(csv_path).table
    for path in (gz_path, obj_path, arr_path, pq_path, plain_gz_name):
        m = load_master(path)
        assert m.table.equals(reference), path.name
        assert m.rejected == {}, path.name


def test_string_keyed_lookup_json_gives_int_tokens(tmp_path):
    """The reported failure: {"409": {...}} looked up with int 409 found nothing."""
    doc = {
        "409": {"symbol": "X409", "exchange": "NFO"},
        " 410 ": {"trading_symbol": "X410"},
        "411.0": {"tradingSymbol": "X411"},
        "NSE:INFY": {"instrument_token": "408065", "tradingsymbol": "INFY"},  # key is not the token
        "412": "X412",  # hand-made {"token": "SYMBOL"}
    }
    path = tmp_path / "token_lookup.json"
    path.write_text(json.dumps(doc))
    assert json.loads(path.read_text()).get(409) is None  # why the naive lookup failed

    m = load_master(path)
    assert m.table.schema.field("instrument_token").type == pa.int64()
    symbols = {r["instrument_token"]: r["tradingsymbol"] for r in m.table.to_pylist()}
    assert symbols == {409: "X409", 410: "X410", 411: "X411", 408065: "INFY", 412: "X412"}
    assert by_token(m)[409]["exchange_token"] == 1  # derived from the token when absent
    assert m.rejected == {}


def test_numeric_json_tokens_and_field_name_variants(tmp_path):
    records = [
        {"token": 409, "Trading_Symbol": "A", "Exchange": "nse", "LotSize": "75.0", "TickSize": "0.05",
         "StrikePrice": "100", "expiry_date": "2025-10-28 00:00:00", "Segment": "nfo-opt", "type": "ce"},
        {"instrument_token": 410.0, "symbol": "B", "expiry": "28-Oct-2025"},
        {"instrument_token": "411", "symbol": "C", "expiry": "2025-10-28T00:00:00+05:30"},
    ]
    path = tmp_path / "array.json"
    path.write_text(json.dumps({"data": records}))  # wrapped arrays are common too
    rows = by_token(load_master(path))
    assert set(rows) == {409, 410, 411}
    a = rows[409]
    assert (a["tradingsymbol"], a["exchange"], a["instrument_segment"], a["instrument_type"]) == (
        "A", "NSE", "NFO-OPT", "CE")
    assert (a["lot_size"], a["tick_size"], a["strike"]) == (75, 0.05, 100.0)
    assert {r["expiry"] for r in rows.values()} == {dt.date(2025, 10, 28)}


def test_rejected_rows_are_counted_with_reasons(tmp_path):
    rows = DUMP_ROWS + [
        ",1,NO_TOKEN,,0,,,,,EQ,NSE,NSE",
        "   ,1,BLANK_TOKEN,,0,,,,,EQ,NSE,NSE",
        "abc,1,TEXT_TOKEN,,0,,,,,EQ,NSE,NSE",
        "12.5,1,FRACTION,,0,,,,,EQ,NSE,NSE",
        "0,1,ZERO,,0,,,,,EQ,NSE,NSE",
        "-7,1,NEGATIVE,,0,,,,,EQ,NSE,NSE",
        "99999999999,1,HUGE,,0,,,,,EQ,NSE,NSE",
        "777,3,FIRST,,0,,,,,EQ,NSE,NSE",
        "777,3,SECOND,,0,,,,,EQ,NSE,NSE",  # same token, different contract
        "888,3,SAME,,0,,,,,EQ,NSE,NSE",
        "888,3,SAME,,0,,,,,EQ,NSE,NSE",  # exact repeat
        " 409.0 ,1,FLOAT_TEXT,,0,,,,,EQ,NSE,NSE",  # fine: whitespace and .0
    ]
    m = load_master(write_dump(tmp_path / "dump.csv", rows))
    assert m.rejected == {
        instruments.REJECT_MISSING_TOKEN: 2,
        instruments.REJECT_NON_NUMERIC_TOKEN: 2,
        instruments.REJECT_TOKEN_NOT_POSITIVE: 2,
        instruments.REJECT_TOKEN_TOO_LARGE: 1,
        instruments.REJECT_CONFLICT: 2,
        instruments.REJECT_REPEAT: 1,
    }
    assert set(by_token(m)) == {408065, 12345602, 256265, 888, 409}
    # Conflicting rows are all withheld (either could be wrong) but kept as evidence.
    assert sorted(m.conflicts.column("tradingsymbol").to_pylist()) == ["FIRST", "SECOND"]
    # Every input row is accounted for.
    assert m.num_rows + m.rejected_rows == len(rows)
    assert "rejected" in m.describe() and "2 non-numeric instrument_token" in m.describe()


def test_json_rows_rejected_with_reasons(tmp_path):
    path = tmp_path / "lookup.json"
    path.write_text(json.dumps({
        "409": {"symbol": "OK"},
        "410": ["not", "a", "record"],
        "411": {"instrument_token": 999, "symbol": "DISAGREES"},
        "x": {"symbol": "NO_TOKEN_ANYWHERE"},
    }))
    m = load_master(path)
    assert by_token(m).keys() == {409}
    assert m.rejected == {
        instruments.REJECT_NOT_RECORD: 1,
        instruments.REJECT_KEY_MISMATCH: 1,
        instruments.REJECT_NON_NUMERIC_TOKEN: 1,
    }


def test_impossible_values_reject_their_row_and_are_named_with_their_line(tmp_path):
    """issue 14: a row is loaded whole or not at all; the report names the first few."""
    rows = [
        "409,1,A,,0,2025-10-28,100,0.05,75,CE,NFO-OPT,NFO",
        "410,1,B,,0,soon,abc,0.05,lots,CE,NFO-OPT,NFO",  # unreadable strike, lot and expiry
        "abc,1,C,,0,2025-10-28,100,0.05,75,CE,NFO-OPT,NFO",  # token not a number
        "0,1,D,,0,2025-10-28,100,0.05,75,CE,NFO-OPT,NFO",
        "4294967296,1,E,,0,2025-10-28,100,0.05,75,CE,NFO-OPT,NFO",  # > 2^32-1
        "411,1,F,,0,2025-10-28,1e30,0.05,75,CE,NFO-OPT,NFO",
        "412,1,G,,0,2025-10-28,100,0.05,-5,CE,NFO-OPT,NFO",
        "413,1,H,,0,9999-99-99,100,0.05,75,CE,NFO-OPT,NFO",
        "414,1,I,,0,2025-10-28,100,-1,75,CE,NFO-OPT,NFO",
        "415,1,J,,-3,2025-10-28,100,0.05,75,CE,NFO-OPT,NFO",  # last_price < 0
        "256265,1,NIFTY 50,,0,,0,0,0,INDEX,INDICES,NSE",  # indices: lot and tick size 0 are real
    ]
    m = load_master(write_dump(tmp_path / "dump.csv", rows))
    assert sorted(by_token(m)) == [409, 256265]
    assert m.rejected == {
        "non-numeric instrument_token": 1, "instrument_token <= 0": 1,
        "instrument_token does not fit in 32 bits": 1, "impossible strike": 2, "impossible lot_size": 1,
        "impossible expiry": 1, "impossible tick_size": 1, "impossible last_price": 1,
    }
    text = m.describe()
    assert "\n" not in text and "9 rows rejected" in text
    assert "line 3: impossible strike 'abc'" in text and "line 4: non-numeric instrument_token 'abc'" in text
    assert len(m.rejected_examples) == 5


@pytest.mark.parametrize(
    "name, expected",
    [
        ("instruments_20251010.csv", dt.date(2025, 10, 10)),
        ("nse-2025-10-13-instruments.json", dt.date(2025, 10, 13)),
        ("dump_20251010_091500.csv.gz", dt.date(2025, 10, 10)),
        ("token_lookup.json", None),
        ("instruments_20251399.csv", None),  # not a calendar date
        ("build123456789.csv", None),
    ],
)
def test_date_from_file_name(name, expected):
    assert date_from_name(name) == expected


def test_date_column_then_argument_wins(tmp_path):
    path = write_dump(
        tmp_path / "instruments_20250101.csv",
        [r + ",2025-10-10" for r in DUMP_ROWS],
        header=DUMP_HEADER + ",instruments_date",
    )
    m = load_master(path)
    assert (m.date, m.date_source) == (dt.date(2025, 10, 10), "column")
    m = load_master(path, date=dt.date(2025, 10, 13))
    assert (m.date, m.date_source) == (dt.date(2025, 10, 13), "argument")
    undated = load_master(write_dump(tmp_path / "lookup.csv"))
    assert undated.date is None and "undated" in undated.describe()


def test_file_with_several_days(tmp_path):
    rows = [DUMP_ROWS[0] + ",2025-10-10", DUMP_ROWS[1] + ",2025-10-10", DUMP_ROWS[0] + ",2025-10-13"]
    path = write_dump(tmp_path / "instruments.csv", rows, header=DUMP_HEADER + ",date")
    with pytest.raises(InputError, match="2 days"):
        load_master(path)
    day = load_master(path, date=dt.date(2025, 10, 13))
    assert day.num_rows == 1 and day.date == dt.date(2025, 10, 13)
    masters = load_masters(path)
    assert [(m.date, m.num_rows) for m in masters] == [(dt.date(2025, 10, 10), 2), (dt.date(2025, 10, 13), 1)]


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(TickscopeError, match="not found"):
        load_master(tmp_path / "missing.csv")
    (tmp_path / "prices.csv").write_text("symbol_name,price\nINFY,1500\n")
    with pytest.raises(InputError, match="no instrument token column"):
        load_master(tmp_path / "prices.csv")
    (tmp_path / "broken.json").write_text('{"409": {"symbol": ')
    with pytest.raises(InputError, match="cannot read") as err:
        load_master(tmp_path / "broken.json")
    assert "\n" not in str(err.value)


def test_type_drift_in_a_later_csv_block_is_fine(tmp_path, monkeypatch):
    """pyarrow infers types from the first block; a "409.0" far down must not break loading."""
    monkeypatch.setattr(instruments, "_CSV_BLOCK_SIZE", 64 << 10)
    rows = [f"{1000 + i},{i},S{i},,0,,,0.05,1,EQ,NSE,NSE" for i in range(30_000)] + [
        "409.0,1,LATE_FLOAT,,0,2025-10-28,,0.05,1,CE,NFO-OPT,NFO"]
    m = load_master(write_dump(tmp_path / "dump.csv", rows))
    assert m.num_rows == 30_001 and by_token(m)[409]["tradingsymbol"] == "LATE_FLOAT"


# --- regressions: wrapped JSON and masters with nothing usable --------------------------


@pytest.mark.parametrize("doc", [
    {"data": {"408065": {"tradingsymbol": "INFY"}, "256265": {"tradingsymbol": "NIFTY 50"}}},
    {"status": "success", "data": [{"instrument_token": 408065, "tradingsymbol": "INFY"},
                                   {"instrument_token": 256265, "tradingsymbol": "NIFTY 50"}]},
    {"data": {"instruments": [{"instrument_token": 408065, "tradingsymbol": "INFY"},
                              {"instrument_token": 256265, "tradingsymbol": "NIFTY 50"}]}},
    {"status": "success", "message": "ok", "data": {"408065": "INFY", "256265": "NIFTY 50"}},
])
def test_wrapped_token_lookups_are_unwrapped(tmp_path, doc):
    path = tmp_path / "lookup.json"
    path.write_text(json.dumps(doc))
    m = load_master(path)
    assert {r["instrument_token"]: r["tradingsymbol"] for r in m.table.to_pylist()} == {
        408065: "INFY", 256265: "NIFTY 50"}
    assert m.rejected == {}


def test_a_lone_record_keyed_by_symbol_is_not_unwrapped(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"INFY": {"instrument_token": 408065, "exchange": "NSE"}}))
    m = load_master(path)
    assert [(r["instrument_token"], r["exchange"]) for r in m.table.to_pylist()] == [(408065, "NSE")]


def test_a_master_with_only_rejected_rows_is_an_input_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"status": "error", "data": {"x": {"tradingsymbol": "INFY"}, "y": "NIFTY"}}))
    from app.errors import InputError

    with pytest.raises(InputError) as info:
        load_master(path)
    message = str(info.value)
    assert message.startswith("no usable instruments in bad.json: 2 rows rejected (")
    assert "\n" not in message
    # Nothing usable and nothing rejected: an empty or header-only file, CSV or JSON alike.
    for path in (write_dump(tmp_path / "header.csv", rows=[]), tmp_path / "empty.csv", tmp_path / "empty.json"):
        if path.name == "empty.csv":
            path.write_bytes(b"")
        elif path.name == "empty.json":
            path.write_text("[]")
        with pytest.raises(InputError, match="holds no instruments"):
            load_master(path)

"""The query module (app.store.query) and its command-line twins, on both targets.

Candles are checked against candles computed in plain Python from the target's ticks
(tests/store/query_data.py): a day with a gap of several minutes, minutes without trades,
LTP ticks without volume, an instrument with ticks on three days, an index without volume.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os

import duckdb
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.errors import TargetLockedError, UsageError
from app.store import open_target
from app.store.query import TargetReader, TickFilter, candles_query, instruments_query, ticks_query
from tests.store import query_data as qd

KINDS = ("duckdb", "parquet")
CASES = [(token, day) for token in (qd.INFY, qd.INFY_FUT, qd.INDEX) for day in (qd.DAY1, qd.DAY2, qd.DAY3)]


@pytest.fixture(params=KINDS)
def target(request, tmp_path, query_target_template):
    return qd.copy_target(query_target_template(request.param), tmp_path / qd.target_name(request.param))


def _all_ticks(path) -> list[dict]:
    with open_target(path, read_only=True) as t:
        return t.ticks().to_pylist()


def test_candles_match_plain_python_for_every_interval(target):
    ticks = _all_ticks(target)
    compared = 0
    with TargetReader(target) as reader:
        for interval in qd.WIDTHS:
            for token, day in CASES:
                expected = qd.reference_candles(ticks, token, day, interval)
                assert reader.candles(token, day, interval).to_pylist() == expected, (interval, token, day)
                compared += len(expected)
    assert compared > 50


def test_the_data_has_what_the_candle_tests_claim(target):
    ticks = _all_ticks(target)
    minute = qd.reference_candles(ticks, qd.INFY, qd.DAY1, "1m")
    starts = [c["start"] for c in minute]
    # A gap: minutes 09:20-09:24 have no tick, so no candle.
    assert "2025-10-13T09:19:00+05:30" in starts and "2025-10-13T09:25:00+05:30" in starts
    assert not any(s.startswith("2025-10-13T09:2") and s[14:16] in ("20", "21", "22", "23", "24") for s in starts)
    # Minutes with ticks but no trades: volume 0, still a candle.
    assert any(c["volume"] == 0 and c["ticks"] > 0 for c in minute)
    # Several days for INFY; an index has candles without volume.
    with TargetReader(target) as reader:
        assert [r["trading_date"] for r in reader.days(qd.INFY).to_pylist()] == [qd.DAY1, qd.DAY2, qd.DAY3]
    index = qd.reference_candles(ticks, qd.INDEX, qd.DAY2, "1m")
    assert index and all(c["volume"] is None for c in index)


def _csv_rows(text: str) -> list[dict]:
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        rows.append(dict(start=row["start"], open=float(row["open"]), high=float(row["high"]), low=float(row["low"]),
                         close=float(row["close"]), volume=int(row["volume"]) if row["volume"] else None,
                         ticks=int(row["ticks"])))
    return rows


@pytest.mark.parametrize("interval", ["1m", "5m", "1h"])
def test_candles_command_matches_plain_python(target, tmp_path, interval, capsysbinary):
    ticks = _all_ticks(target)
    for token, day in CASES:
        expected = qd.reference_candles(ticks, token, day, interval)
        out = tmp_path / f"c-{token}-{day}.csv"
        assert main(["candles", str(target), "--token", str(token), "--day", day.isoformat(),
                     "--interval", interval, "--out", str(out)]) == 0
        assert _csv_rows(out.read_text()) == expected
    # By symbol, to standard output, JSON and Parquet: the same rows.
    expected = qd.reference_candles(ticks, qd.INFY, qd.DAY1, interval)
    capsysbinary.readouterr()
    assert main(["candles", str(target), "--symbol", "nse:infy", "--day", "2025-10-13", "--interval", interval]) == 0
    assert _csv_rows(capsysbinary.readouterr().out.decode()) == expected
    assert main(["candles", str(target), "--symbol", "INFY", "--day", "2025-10-13", "--interval", interval,
                 "--format", "json"]) == 0
    assert json.loads(capsysbinary.readouterr().out) == expected
    out = tmp_path / "c.parquet"
    assert main(["candles", str(target), "--symbol", "INFY", "--day", "2025-10-13", "--interval", interval,
                 "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).to_pylist() == expected


def test_candles_over_several_days_restart_volume_each_day(target):
    ticks = _all_ticks(target)
    with TargetReader(target) as reader:
        both = reader.candles(qd.INFY, qd.DAY1, "1d", last_day=qd.DAY3).to_pylist()
    expected = [qd.reference_candles(ticks, qd.INFY, d, "1d")[0] for d in (qd.DAY1, qd.DAY2, qd.DAY3)]
    assert both == expected


def test_instrument_search(target):
    with TargetReader(target) as reader:
        infy = reader.instruments("infy").to_pylist()
        assert [r["symbol"] for r in infy] == ["INFY", "INFY25OCTFUT"]  # prefix, busiest first
        assert infy[0]["ticks"] == sum(r["ticks"] for r in reader.days(qd.INFY).to_pylist())
        assert infy[0]["first_time"] < infy[0]["last_time"]
        # Substring of the name, of a token, of an exchange token; unresolved tokens too.
        assert {r["symbol"] for r in reader.instruments("osys").to_pylist()} == {"INFY", "INFY25OCTFUT"}
        unknown = reader.instruments(str(qd.UNKNOWN)[2:6]).to_pylist()
        assert [(r["instrument_token"], r["symbol"], r["resolved"]) for r in unknown] == [(qd.UNKNOWN, None, False)]
        assert reader.instruments(str(qd.INFY >> 8)).to_pylist()[0]["instrument_token"] == qd.INFY
        assert reader.instruments("50%").num_rows == 0  # LIKE wildcards are text
        assert reader.instruments("").num_rows == 4


def test_symbol_lookup_errors(target):
    with TargetReader(target) as reader:
        assert reader.token_for("infy25octfut") == qd.INFY_FUT
        with pytest.raises(UsageError, match="no ticks of symbol"):
            reader.token_for("TCS")
        with pytest.raises(UsageError, match="no ticks of symbol"):
            reader.token_for("BSE:INFY")


def test_ticks_pages_sort_and_count(target):
    ticks = [t for t in _all_ticks(target) if t["instrument_token"] == qd.INFY and t["trading_date"] == qd.DAY1]
    flt = TickFilter(instrument_token=qd.INFY, day=qd.DAY1)
    with TargetReader(target) as reader:
        assert reader.count(flt) == len(ticks)
        columns = ["last_price", "tick_time", "file_id", "msg_seq", "pkt_seq", "offset"]
        pages = []
        for offset in range(0, len(ticks), 10):
            pages += reader.ticks_page(flt, columns, order_by="last_price", descending=True, limit=10,
                                       offset=offset).to_pylist()
        expected = sorted(ticks, key=lambda t: (-t["last_price"], t["tick_time"], t["file_id"], t["msg_seq"]))
        assert [(p["last_price"], p["offset"]) for p in pages] == [(t["last_price"], t["offset"]) for t in expected]
        with pytest.raises(UsageError, match="no such tick column"):
            reader.ticks_page(flt, ["last_price", "nope"])
        with pytest.raises(UsageError, match="no such tick column"):
            reader.ticks_page(flt, ["last_price"], order_by="x; DROP TABLE ticks")


def test_copy_sql_returns_the_same_rows_outside_the_app(target):
    flt = TickFilter(instrument_token=qd.INFY, time_from=dt.datetime(2025, 10, 13, 9, 16, tzinfo=qd.IST),
                     time_to=dt.datetime(2025, 10, 14, 9, 16, tzinfo=qd.IST))
    queries = [ticks_query(flt, ["tick_time", "last_price", "volume_traded", "bid_price", "offset"]),
               candles_query(qd.INFY, qd.DAY1, qd.DAY3, "5m"), instruments_query("inf")]
    with TargetReader(target) as reader:
        expected = [reader.run(q).to_pylist() for q in queries]
        texts = [reader.copy_sql(q) for q in queries]
    assert expected[0] and expected[1] and expected[2]
    for text, rows in zip(texts, expected, strict=True):
        assert "$" not in text
        con = duckdb.connect()  # a fresh DuckDB, as a user would run it
        try:
            con.execute("SET TimeZone = 'UTC'")
            *setup, select = [s for s in text.split(";\n") if s.strip()]
            for statement in setup:
                con.execute(statement)
            assert con.sql(select).to_arrow_table().to_pylist() == rows
        finally:
            con.close()


def test_ticks_command_time_range_and_columns(target, tmp_path):
    out = tmp_path / "t.csv"
    assert main(["ticks", str(target), "--symbol", "INFY", "--from", "2025-10-13T09:16", "--to", "2025-10-13 09:18",
                 "--columns", "tick_time,last_price", "volume_traded", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    ticks = sorted((t for t in _all_ticks(target) if t["instrument_token"] == qd.INFY
                    and dt.datetime(2025, 10, 13, 9, 16, tzinfo=qd.IST) <= t["tick_time"]
                    < dt.datetime(2025, 10, 13, 9, 18, tzinfo=qd.IST)), key=lambda t: (t["tick_time"], t["msg_seq"]))
    assert list(rows[0]) == ["tick_time", "last_price", "volume_traded"]
    assert [r["tick_time"] for r in rows] == [t["tick_time"].astimezone(qd.IST).strftime("%Y-%m-%dT%H:%M:%S.%f+05:30")
                                              for t in ticks]
    assert [float(r["last_price"]) for r in rows] == [t["last_price"] for t in ticks]
    parquet = tmp_path / "t.parquet"
    assert main(["ticks", str(target), "--token", str(qd.INFY), "--format", "parquet", "--out", str(parquet)]) == 0
    table = pq.read_table(parquet)
    assert table.num_rows == sum(1 for t in _all_ticks(target) if t["instrument_token"] == qd.INFY)
    assert str(table.schema.field("tick_time").type) == "timestamp[us, tz=UTC]"


def test_out_refuses_what_is_not_a_regular_file_or_a_new_name(target, tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    for out, why in ((folder, "is a folder"), (link, "symbolic link"), (tmp_path / "no" / "x.csv", "does not exist")):
        assert main(["candles", str(target), "--token", str(qd.INFY), "--day", "2025-10-13", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1
    assert not (tmp_path / "elsewhere.csv").exists()
    # A regular file is replaced whole; Parquet needs --out.
    existing = tmp_path / "old.csv"
    existing.write_text("old\n")
    assert main(["candles", str(target), "--token", str(qd.INFY), "--day", "2025-10-13", "--out", str(existing)]) == 0
    assert existing.read_text().startswith("start,open,high,low,close,volume,ticks\n")
    assert main(["candles", str(target), "--token", str(qd.INFY), "--day", "2025-10-13", "--format", "parquet"]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_bad_arguments_are_one_line_exit_2(target, capsys):
    for argv in (["candles", str(target), "--token", "1", "--day", "13-10-2025"],
                 ["candles", str(target), "--symbol", "NOPE", "--day", "2025-10-13"],
                 ["ticks", str(target), "--token", "1", "--from", "yesterday"],
                 ["ticks", str(target), "--token", "1", "--columns", "nope"],
                 ["captures", str(target.parent / "missing.duckdb")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("tickscope: error:") and err.count("\n") == 1, err


def test_captures_list_and_integrity(target, capsys):
    ticks = _all_ticks(target)
    with TargetReader(target) as reader:
        rows = {r.file_name: r for r in reader.captures()}
    assert set(rows) == {"day1.bin", "day2.bin", "day3.bin"}
    for name, row in rows.items():
        mine = [t for t in ticks if t["file_id"] == row.file_id]
        assert row.ticks == len(mine)
        assert row.trading_days == sorted({t["trading_date"] for t in mine})
        assert row.integrity == "ok" and row.path == f"/captures/{name}"
    assert rows["day1.bin"].unresolved == 6
    assert main(["captures", str(target), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["file_name"]: r["ticks"] for r in listed} == {n: r.ticks for n, r in rows.items()}
    # Damage one capture: the integrity column says what the store's verify found.
    fid = rows["day2.bin"].file_id
    if str(target).endswith(".duckdb"):
        con = duckdb.connect(str(target))
        con.execute("DELETE FROM ticks WHERE file_id = ? AND msg_seq < 3", [fid])
        con.close()
    else:
        with open_target(target, read_only=True) as t:
            part = t.committed_parts()[fid][0]
        os.remove(target / part)
    with TargetReader(target) as reader:
        damaged = {r.file_name: r.integrity for r in reader.captures()}
    assert damaged["day1.bin"] == "ok" and damaged["day2.bin"] != "ok"
    assert main(["captures", str(target)]) == 0
    assert damaged["day2.bin"] in capsys.readouterr().out


def test_a_writer_in_this_process_is_not_met(tmp_path):
    path = qd.build_target(tmp_path / "t.duckdb")
    with open_target(path):
        with pytest.raises(TargetLockedError):
            TargetReader(path)
    with TargetReader(path) as reader:
        assert reader.count(TickFilter()) == sum(len(v) for v in qd.make_ticks().values())

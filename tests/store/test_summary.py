"""The store-maintained tick summary (app.store.summary) says what the ticks say: after
ingest, remove, --force re-ingest and resolve, on both targets; a target written before
the summary is read (computed from its ticks) and gets one when opened for writing;
verify notices a summary that disagrees with the ticks."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.core.enrich import InstrumentBook
from app.store import CaptureRecord, journal, open_target
from app.store import summary as tick_summary
from app.store.parquet import MARKER
from app.store.query import TargetReader, TickFilter, days_query, instruments_query, render
from tests.store.query_data import DAY1, INFY, UNKNOWN, build_target, file_id, make_ticks, tick_table
from tests.store.ticks_factory import master

KINDS = ["duckdb", "parquet"]


def target_at(tmp_path, kind):
    return build_target(tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset"))


def _sorted(table: pa.Table) -> list[dict]:
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r.values()))


def assert_consistent(path) -> None:
    """The summary the store keeps equals the one computed from the ticks, and so do the
    answers read from it (instrument search, days, captures list)."""
    with TargetReader(path) as r:
        kept = r.con.sql(f"SELECT * FROM {r.summary}").to_arrow_table()
        scanned = r.con.sql(tick_summary.summary_sql("ticks")).to_arrow_table()
        assert _sorted(kept) == _sorted(scanned)
        for text in ("", "infy", "INFY25", "nifty", str(UNKNOWN)[:5], "zzz"):
            query = instruments_query(text, 100)
            from_scan = r.con.sql(render(query, "ticks")).to_arrow_table()
            assert r.instruments(text, 100).to_pylist() == from_scan.to_pylist(), text
        assert r.days(INFY).to_pylist() == r.con.sql(render(days_query(INFY), "ticks")).to_arrow_table().to_pylist()
        for flt in (TickFilter(), TickFilter(instrument_token=INFY), TickFilter(instrument_token=INFY, day=DAY1),
                    TickFilter(file_id=file_id("day1.bin")), TickFilter(instrument_token=UNKNOWN, day=DAY1)):
            where, params = flt.where()
            assert r.count(flt) == r.con.execute(f"SELECT count(*) FROM ticks WHERE {where}", params).fetchall()[0][0]
        per_capture = {c.file_id: (c.ticks, c.trading_days) for c in r.captures(verify=False)}
        counted = r.con.execute("SELECT file_id, count(*), list(DISTINCT trading_date ORDER BY trading_date) "
                                "FILTER (WHERE trading_date IS NOT NULL) FROM ticks GROUP BY file_id").fetchall()
        assert per_capture == {fid: (n, days or []) for fid, n, days in counted} | {
            fid: (0, []) for fid in per_capture if fid not in {c[0] for c in counted}}
    with open_target(path, read_only=True) as t:
        assert t.verify() == []


@pytest.mark.parametrize("kind", KINDS)
def test_summary_equals_the_ticks_after_ingest_remove_force_and_resolve(tmp_path, kind):
    path = target_at(tmp_path, kind)
    assert_consistent(path)
    with TargetReader(path) as r:
        assert r.summary != "(" and r.con.sql(f"SELECT count(*) FROM {r.summary}").fetchall()[0][0] >= 5

    # remove: the capture's summary rows go with its ticks
    gone = file_id("day2.bin")
    with open_target(path) as t:
        t.remove([gone])
    assert_consistent(path)
    with TargetReader(path) as r:
        assert r.con.execute(f"SELECT count(*) FROM {r.summary} WHERE file_id = ?", [gone]).fetchall()[0][0] == 0

    # --force re-ingest with other ticks (half of them): the old summary is replaced
    fid = file_id("day1.bin")
    table = tick_table(fid, make_ticks()["day1.bin"])
    half = table.slice(0, table.num_rows // 2)
    with open_target(path) as t:
        write = t.begin(fid, force=True)
        write.add_ticks(half)
        write.commit(CaptureRecord(file_id=fid, path="/captures/day1.bin", size_bytes=1, framing="raw",
                                   messages=half.num_rows, packets=half.num_rows,
                                   unresolved_ticks=sum(1 for r in half["resolved"].to_pylist() if not r)))
    assert_consistent(path)
    with TargetReader(path) as r:
        kept = r.con.execute(f"SELECT sum(ticks) FROM {r.summary} WHERE file_id = ?", [fid]).fetchall()[0][0]
        assert kept == half.num_rows < table.num_rows

    # resolve: a token the ticks could not name gets a symbol; search finds it by it
    with open_target(path) as t:
        before = t.captures()
        assert sum(before["unresolved_ticks"].to_pylist())
        assert t.resolve(InstrumentBook([master({UNKNOWN: "NEWLYNAMED"}, day=DAY1)])) > 0
    assert_consistent(path)
    with TargetReader(path) as r:
        found = r.instruments("newlynamed").to_pylist()
        assert [row["instrument_token"] for row in found] == [UNKNOWN] and found[0]["resolved"]


def _strip_summary(path, kind) -> None:
    """Make the target look written by the Tickscope before the summary."""
    if kind == "duckdb":
        con = duckdb.connect(str(path))
        con.execute(f"DROP TABLE {tick_summary.TABLE}")
        con.close()
        return
    manifest = path / "captures" / "captures.parquet"
    table = pq.read_table(manifest)
    lists = {name: table[name].to_pylist() for name in ("parts", "part_rows", "part_bytes", "part_footers")}
    for i, parts in enumerate(lists["parts"]):
        keep = [j for j, rel in enumerate(parts) if not rel.startswith("summary/")]
        for name in lists:
            lists[name][i] = [lists[name][i][j] for j in keep]
    for name, values in lists.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name),
                                 pa.array(values, table.schema.field(name).type))
    pq.write_table(table, manifest)
    for f in (path / "summary").iterdir():
        f.unlink()
    (path / MARKER).write_text(json.dumps({"format": "tickscope-parquet", "version": 2}) + "\n")


@pytest.mark.parametrize("kind", KINDS)
def test_a_target_without_summary_is_read_from_its_ticks_and_gets_one_when_opened_for_writing(tmp_path, kind):
    path = target_at(tmp_path, kind)
    with TargetReader(path) as r:
        want = {t: r.instruments(t).to_pylist() for t in ("", "infy", "nifty")}
        want_caps = [(c.file_id, c.ticks, c.trading_days) for c in r.captures(verify=False)]
    _strip_summary(path, kind)
    with TargetReader(path) as r:  # read-only: the summary is computed from the ticks
        assert tick_summary.TABLE not in r.summary and ("summary" not in r.summary or kind == "parquet")
        assert {t: r.instruments(t).to_pylist() for t in want} == want
        assert [(c.file_id, c.ticks, c.trading_days) for c in r.captures(verify=False)] == want_caps
        if kind == "parquet":
            assert r.target.summary_parts() == ([], set(r.target.file_ids()))
    with open_target(path, read_only=True) as t:
        assert t.verify() == []  # an older target is not damaged
    with open_target(path):  # opened for writing: the summary is built
        pass
    with TargetReader(path) as r:
        if kind == "duckdb":
            assert r.summary == tick_summary.TABLE
        else:
            files, lacking = r.target.summary_parts()
            assert len(files) == 3 and not lacking
            assert json.loads((path / MARKER).read_text())["version"] == 3
        assert {t: r.instruments(t).to_pylist() for t in want} == want
    assert_consistent(path)


@pytest.mark.parametrize("kind", KINDS)
def test_verify_finds_a_summary_that_disagrees_with_the_ticks(tmp_path, kind):
    path = target_at(tmp_path, kind)
    fid = file_id("day1.bin")
    if kind == "duckdb":
        con = duckdb.connect(str(path))
        con.execute(f"UPDATE {tick_summary.TABLE} SET ticks = ticks + 1 WHERE file_id = ? AND instrument_token = ?",
                    [fid, INFY])
        con.close()
    else:  # the summary part left out of the manifest (a dataset of this version must list one)
        manifest = path / "captures" / "captures.parquet"
        table = pq.read_table(manifest)
        rows = table.to_pylist()
        for row in rows:
            if row["file_id"] == fid:
                keep = [j for j, rel in enumerate(row["parts"]) if not rel.startswith("summary/")]
                for name in ("parts", "part_rows", "part_bytes", "part_footers"):
                    row[name] = [row[name][j] for j in keep]
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), manifest)
    with open_target(path, read_only=True) as t:
        found = t.verify()
    assert [(f.code, f.file_id) for f in found if f.code == "summary"] == [("summary", fid)], found
    assert "day1.bin" in found[0].line()


def test_a_staged_summary_is_private_to_its_write():
    name = ".summary-0123456789abcdef-89abcdef.parquet.staged"
    assert journal.is_private_of(name, set(), {"89abcdef"})
    assert not journal.is_private_of(name, set(), {"00000000"})
    assert journal.SUMMARY_NAME.match("summary-0123456789abcdef-89abcdef.parquet")

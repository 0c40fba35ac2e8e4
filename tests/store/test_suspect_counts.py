"""Suspect ticks are stored and counted per capture in both targets; older targets
without the columns still open (issue 14)."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest

from app.pipeline import run_ingest
from app.store import open_target
from tests.support import encode

TOKEN = 408065
T0 = 1_760_326_800


def quote(**values) -> bytes:
    base = {"instrument_token": TOKEN, "last_price": 152_130, "last_traded_quantity": 3,
            "average_traded_price": 152_100, "volume_traded": 91_000, "open": 151_000, "high": 153_000,
            "low": 150_500, "close": 150_000}
    base.update(values)
    return encode.encode_packet(44, base)


@pytest.fixture
def capture(tmp_path):
    packets = [quote(), quote(last_traded_quantity=T0), quote(low=160_000), quote(), quote(last_price=0)]
    path = tmp_path / "in" / "suspect.bin"
    path.parent.mkdir()
    path.write_bytes(b"".join(encode.encode_message([p]) for p in packets))
    return path


def target_path(tmp_path, kind):
    return tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_suspect_ticks_are_stored_and_counted(tmp_path, capture, kind):
    target = target_path(tmp_path, kind)
    report = run_ingest([capture], target)
    assert [f.status for f in report.files] == ["done"] and report.files[0].suspect == 3
    with open_target(target, read_only=True) as t:
        assert t.captures().column("suspect").to_pylist() == [3]
        reasons = t.ticks(["msg_seq", "suspect_reason"]).sort_by("msg_seq").column("suspect_reason").to_pylist()
    assert reasons == [None, "ltq_epoch", "ohlc_inverted", None, "price_nonpositive"]


def test_an_older_duckdb_target_without_the_columns_still_opens(tmp_path, capture):
    target = tmp_path / "t.duckdb"
    run_ingest([capture], target)
    con = duckdb.connect(str(target))
    con.execute("ALTER TABLE ticks DROP COLUMN suspect_reason")
    con.execute("ALTER TABLE captures DROP COLUMN suspect")
    con.close()
    with open_target(target, read_only=True) as t:  # read-only: nothing is changed
        assert t.captures().column("suspect").to_pylist() == [None]
        assert t.ticks(["suspect_reason"]).column("suspect_reason").null_count == 5
    con = duckdb.connect(str(target), read_only=True)
    assert "suspect" not in [r[0] for r in con.execute("DESCRIBE captures").fetchall()]
    con.close()
    # opened for writing, the columns are added and new captures are counted
    other = capture.parent / "other.bin"
    other.write_bytes(encode.encode_message([quote(high=1), quote(last_traded_quantity=T0 + 5)]))
    report = run_ingest([other], target)
    assert [f.status for f in report.files] == ["done"]
    with open_target(target, read_only=True) as t:
        assert sorted(t.captures().column("suspect").to_pylist(), key=str) == [2, None]
        assert t.ticks().num_rows == 7


def test_an_older_parquet_target_without_the_columns_still_opens(tmp_path, capture):
    target = tmp_path / "dataset"
    run_ingest([capture], target)
    manifest = target / "captures" / "captures.parquet"
    table = pq.read_table(manifest)
    pq.write_table(table.drop_columns(["suspect"]).replace_schema_metadata(table.schema.metadata), manifest)
    for part in (target / "ticks").rglob("*.parquet"):
        t = pq.read_table(part)
        pq.write_table(t.drop_columns(["suspect_reason"]).replace_schema_metadata(t.schema.metadata), part)
    with open_target(target, read_only=True) as t:
        assert t.captures().column("suspect").to_pylist() == [None]
        assert t.ticks(["suspect_reason"]).column("suspect_reason").null_count == 5

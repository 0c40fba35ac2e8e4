"""The DuckDB target's bulk writes: every row once and in order, bounded memory, settings restored."""

from __future__ import annotations

import gc

import pyarrow as pa
import pytest

from app.pipeline import run_ingest
from app.store import duck, open_target
from tests.store.test_targets import record
from tests.store.ticks_factory import file_id, ticks


def _setting(target, name: str) -> str:
    return target.con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0]


def test_buffered_inserts_store_every_row_once_in_order_of_keys(tmp_path, monkeypatch):
    # Small row groups so that one capture spans many inserts plus a remainder.
    monkeypatch.setattr(duck, "ROW_GROUP_ROWS", 100)
    a = file_id("a")
    batches = [ticks(a, n, start_msg=start) for n, start in ((130, 0), (45, 130), (260, 175), (7, 435))]
    with open_target(tmp_path / "t.duckdb") as target:
        write = target.begin(a)
        for batch in batches:
            write.add_ticks(batch)
            assert write._pending_rows < write._insert_rows  # never more than one insert waits
        write.add_ticks(batches[0].slice(0, 0))  # an empty batch changes nothing
        write.commit(record(a, pa.concat_tables(batches)))
        assert target.ticks().equals(pa.concat_tables(batches).combine_chunks())


def test_inserted_batches_are_not_held_until_commit(tmp_path, monkeypatch):
    """A registered Arrow view stays referenced until the transaction ends; the bulk path
    must let each batch go once inserted, or a capture's whole data sits in memory."""
    monkeypatch.setattr(duck, "ROW_GROUP_ROWS", 1000)
    a = file_id("a")
    with open_target(tmp_path / "t.duckdb") as target:
        write = target.begin(a)
        gc.collect()
        before = pa.total_allocated_bytes()
        one_batch = 0
        for i in range(40):
            batch = ticks(a, 2000, start_msg=i * 2000)
            one_batch = max(one_batch, batch.nbytes)
            write.add_ticks(batch)
            del batch
        gc.collect()
        held = pa.total_allocated_bytes() - before
        # 40 batches went in; at most about one insert's worth may still be held.
        assert held < 3 * one_batch, (held, one_batch)
        write.commit(record(a, pa.table({"resolved": pa.array([False] * 80_000)})))
        assert target.counts()["ticks"] == 80_000


def test_ingest_settings_are_restored(tmp_path):
    from tests.support import synthetic

    capture = tmp_path / "c.dat"
    synthetic.generate_capture(capture, packets=2000, framing="raw", seed=3)
    with open_target(tmp_path / "t.duckdb") as target:
        names = ("threads", "preserve_insertion_order", "memory_limit")
        defaults = {name: _setting(target, name) for name in names}
        run_ingest([capture], target)
        assert {name: _setting(target, name) for name in names} == defaults
        assert target.counts()["captures"] == 1


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_ingest_memory_limit_scales_with_open_captures(tmp_path, workers):
    with open_target(tmp_path / "t.duckdb") as target:
        target.tune_for_ingest(workers)
        limit = _setting(target, "memory_limit")
        target.tune_for_ingest(None)
    expected_mb = max(duck.INGEST_MEMORY_MB_MIN, duck.INGEST_MEMORY_MB_PER_CAPTURE * workers)
    number, unit = limit.split()
    mib = float(number) * {"MiB": 1, "GiB": 1024}[unit]  # DuckDB shows its setting in binary units
    assert abs(mib - expected_mb / 1.048576) / mib < 0.05, (limit, expected_mb)
    if workers == 4:
        assert expected_mb > duck.INGEST_MEMORY_MB_MIN  # it does scale with the captures written at once


def test_abort_after_real_inserts_leaves_nothing_and_force_keeps_the_old_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(duck, "ROW_GROUP_ROWS", 100)
    a, b = file_id("a"), file_id("b")
    old = ticks(a, 250)
    with open_target(tmp_path / "t.duckdb") as target:
        write = target.begin(a)
        write.add_ticks(old)
        write.commit(record(a, old))
        # A new capture: several inserts reach DuckDB before the abort.
        write = target.begin(b)
        for i in range(5):
            write.add_ticks(ticks(b, 150, start_msg=i * 150))
        inserted = write.cur.execute("SELECT count(*) FROM ticks WHERE file_id = ?", [b]).fetchall()[0][0]
        assert inserted >= 500  # in DuckDB (inside the transaction), not just buffered
        write.abort()
        # --force of a stored capture, aborted after inserting: the old rows stay.
        write = target.begin(a, force=True)
        for i in range(4):
            write.add_ticks(ticks(a, 150, start_msg=i * 150, price=7.0))
        assert write.cur.execute("SELECT count(*) FROM ticks WHERE file_id = ?", [a]).fetchall()[0][0] >= 400
        write.abort()
        assert target.file_ids() == {a}
        assert target.ticks().equals(old.combine_chunks())

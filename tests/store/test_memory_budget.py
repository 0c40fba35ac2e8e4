"""The ingest's one memory setting: parsed once, shared out, and held by the Parquet writer."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from app.core.memory import DEFAULT_MEMORY_LIMIT, MemoryBudget, parse_memory_limit
from app.errors import UsageError
from app.store import open_target
from app.store.parquet import CapturePartsWriter, PartEncoders, WriteBudget
from tests.store.test_targets import record
from tests.store.ticks_factory import DAY, file_id, ticks, ticks_of_days


@pytest.mark.parametrize("text, value", [("512MB", 512 << 20), ("2gb", 2 << 30), ("1.5G", int(1.5 * (1 << 30))),
                                         ("800m", 800 << 20), (str(256 << 20), 256 << 20)])
def test_memory_limit_sizes(text, value):
    assert parse_memory_limit(text) == value


@pytest.mark.parametrize("text", ["lots", "12XB", "-5MB", "10MB", ""])
def test_bad_memory_limits_are_usage_errors(text):
    with pytest.raises(UsageError, match="--memory-limit"):
        parse_memory_limit(text)


def test_every_stage_gets_a_share_that_fits_the_limit():
    for limit in (128 << 20, DEFAULT_MEMORY_LIMIT, 4 << 30):
        m = MemoryBudget(limit)
        decode = m.queue_batches(4) * 3 * m.decode_chunk_bytes
        assert m.writer_bytes + m.engine_bytes + decode <= limit
    assert MemoryBudget.of(None).total == DEFAULT_MEMORY_LIMIT


def _days_batch(fid: str, start: int, days: list, per_day: int) -> pa.Table:
    """One batch holding ``per_day`` ticks of each of ``days`` (a recorder file spanning days)."""
    return ticks_of_days(fid, days, per_day, start_msg=start)


def test_buffered_bytes_never_pass_the_budget_whatever_the_days(tmp_path):
    days = [DAY + dt.timedelta(days=i) for i in range(16)]
    fid = file_id("spanning")
    budget = WriteBudget(4 << 20, slots=2)  # parts of 1 MB, at most 2 MB buffered
    encoders = PartEncoders(1)
    try:
        parts = CapturePartsWriter(tmp_path, fid, "0badcafe", encoders=encoders, budget=budget)
        total = 0
        for i in range(40):
            # Every batch adds a little to every day: no day alone ever fills a part.
            batch = _days_batch(fid, i * 16 * 100, days, 100)
            total += batch.num_rows
            parts.add_ticks(batch)
            assert budget.buffered <= budget.buffer_bytes
        written = parts.finish()
    finally:
        encoders.shutdown()
    assert 0 < budget.peak <= budget.buffer_bytes
    assert budget.buffered == 0
    assert sum(written.values()) == total  # flushing early loses nothing
    assert len({rel.split("/")[1] for rel in written}) == 16


def test_two_captures_share_one_budget(tmp_path):
    with open_target(tmp_path / "dataset") as target:
        target.tune_for_ingest(2, MemoryBudget(128 << 20))
        a, b = file_id("a"), file_id("b")
        wa, wb = target.begin(a), target.begin(b)
        assert wa.parts.budget is wb.parts.budget
        ta, tb = ticks(a, 3000), ticks(b, 2000, day=DAY + dt.timedelta(days=1))
        wa.add_ticks(ta)
        wb.add_ticks(tb)
        assert wa.parts.budget.buffered > 0
        wa.commit(record(a, ta))
        wb.abort()
        assert wa.parts.budget.buffered == 0  # committed and aborted captures hold nothing
        target.tune_for_ingest(None)
        stored = target.ticks(["file_id"])
        assert pc.count_distinct(stored["file_id"]).as_py() == 1 and stored.num_rows == 3000


def test_duckdb_ingest_uses_the_engine_share(tmp_path):
    import duckdb

    memory = MemoryBudget(1 << 30)
    with open_target(tmp_path / "t.duckdb") as target:
        default = target.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        target.tune_for_ingest(2, memory)
        during = target.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        target.tune_for_ingest(None)
        after = target.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory.engine_bytes >> 20}MB'")
    assert during == con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert during != default and after == default


def test_ingest_rejects_a_bad_memory_limit(tmp_path):
    from app.pipeline import IngestJob

    with pytest.raises(UsageError):
        IngestJob([tmp_path], tmp_path / "t.duckdb", memory_limit="huge")

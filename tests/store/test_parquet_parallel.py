"""The Parquet target's parallel part encoding: same rows, one row group per part, failures
and aborts leave nothing, memory is not pinned by small partitions."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import wait

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from app.store import open_target
from app.store.journal import staged_name
from app.store.parquet import CapturePartsWriter, PartEncoders
from app.store.parquet import parts as parquet_parts
from tests.store.test_targets import record
from tests.store.ticks_factory import DAY, file_id, ticks, ticks_of_days

NEXT_DAY = DAY + dt.timedelta(days=1)


def _mixed_batch(fid: str, start: int, n: int, *, runs: int) -> pa.Table:
    """``n`` ticks alternating between DAY, no date and NEXT_DAY in ``runs`` runs."""
    return ticks_of_days(fid, [(DAY, None, NEXT_DAY)[r % 3] for r in range(runs)], n // runs, start_msg=start)


def _files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("runs", [3, 200])  # few runs: zero-copy slices; many: filtered copies
def test_parallel_parts_hold_the_same_rows_as_sequential_ones(tmp_path, monkeypatch, runs):
    monkeypatch.setattr(parquet_parts, "PARALLEL_PART_ROWS", 700)
    fid = file_id("a")
    batches = [_mixed_batch(fid, i * 600, 600, runs=runs) for i in range(8)]
    encoders = PartEncoders(2)
    try:
        outcomes = {}
        for name, enc in (("sequential", None), ("parallel", encoders)):
            root = tmp_path / name
            parts = CapturePartsWriter(root, fid, "0badcafe", encoders=enc)
            for batch in batches:
                parts.add_ticks(batch)
            outcomes[name] = (root, parts.finish())
    finally:
        encoders.shutdown()
    seq_root, seq_parts = outcomes["sequential"]
    par_root, par_parts = outcomes["parallel"]
    assert sum(par_parts.values()) == sum(seq_parts.values()) == 8 * 600
    assert len(par_parts) > len(seq_parts)  # many small parts, encoded concurrently

    def rows(root, parts):
        tables = []
        for rel in parts:
            table = pq.read_table(root / staged_name(rel))  # staged until a commit publishes it
            date = rel.split("trading_date=")[1].split("/")[0]
            tables.append(table.append_column("date", pa.array([date] * table.num_rows)))
        return pa.concat_tables(tables).sort_by([("msg_seq", "ascending")])

    assert rows(par_root, par_parts).equals(rows(seq_root, seq_parts))
    for rel, n in par_parts.items():
        meta = pq.ParquetFile(par_root / staged_name(rel)).metadata
        assert (meta.num_rows, meta.num_row_groups) == (n, 1)
    assert not [p for p in _files(par_root) if p.name.endswith(".tmp")]


def test_an_encoding_failure_fails_the_commit_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_parts, "PARALLEL_PART_ROWS", 500)
    real = pq.write_table
    calls = []

    def flaky(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(table, where, **kw)

    monkeypatch.setattr(parquet_parts.pq, "write_table", flaky)
    a = file_id("a")
    root = tmp_path / "dataset"
    with open_target(root) as target:
        before = set(_files(root))
        write = target.begin(a)
        batches = [ticks(a, 400, start_msg=i * 400) for i in range(5)]
        for batch in batches:
            write.add_ticks(batch)
        with pytest.raises(OSError, match="No space"):
            write.commit(record(a, pa.concat_tables(batches)))
        assert target.file_ids() == set()
        assert set(_files(root)) == before  # no part, no temporary file
    assert len(calls) >= 2


def test_abort_waits_for_parts_being_encoded(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_parts, "PARALLEL_PART_ROWS", 300)
    real = pq.write_table
    started, release = threading.Event(), threading.Event()

    def slow(table, where, **kw):
        started.set()
        assert release.wait(10)
        return real(table, where, **kw)  # the part's file appears after abort began

    monkeypatch.setattr(parquet_parts.pq, "write_table", slow)
    a = file_id("a")
    root = tmp_path / "dataset"
    with open_target(root) as target:
        before = set(_files(root))
        write = target.begin(a)
        write.add_ticks(ticks(a, 400))
        assert started.wait(10)
        aborting = threading.Thread(target=write.abort)
        aborting.start()
        aborting.join(0.3)
        assert aborting.is_alive()  # waiting for the part being encoded
        release.set()
        aborting.join(10)
        assert not aborting.is_alive()
        assert set(_files(root)) == before
        assert target.counts() == {"captures": 0, "ticks": 0, "bad_packets": 0}


def test_a_failed_part_fails_the_capture_before_its_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_parts, "PARALLEL_PART_ROWS", 300)

    def full(table, where, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parquet_parts.pq, "write_table", full)
    a = file_id("a")
    with open_target(tmp_path / "dataset") as target:
        write = target.begin(a)
        write.add_ticks(ticks(a, 400))  # the first part goes to an encoder and fails there
        failed = list(write.parts.encoding)
        wait(failed)
        # Its error keeps no rows alive while it waits to be seen.
        tb = failed[0].exception().__traceback__
        while tb is not None:
            assert not [v for v in tb.tb_frame.f_locals.values() if isinstance(v, pa.Table)]
            tb = tb.tb_next
        with pytest.raises(OSError, match="No space"):
            write.add_ticks(ticks(a, 400, start_msg=400))  # the next part sees it
        write.abort()
        assert target.file_ids() == set()


def test_a_date_with_few_ticks_does_not_pin_whole_batches(tmp_path):
    """The odd tick without a trading date lands in a partition that seldom flushes; it must
    be copied, not kept as a slice of (and so keeping alive) its whole batch."""
    a = file_id("a")
    with open_target(tmp_path / "dataset") as target:
        write = target.begin(a)
        one_batch = 0
        for i in range(30):
            base = i * 2001
            batch = pa.concat_tables([ticks(a, 1000, start_msg=base), ticks(a, 1, start_msg=base + 1000, day=None),
                                      ticks(a, 1000, start_msg=base + 1001)]).combine_chunks()  # as decoded: one chunk
            one_batch = max(one_batch, batch.get_total_buffer_size())
            write.add_ticks(batch)
        undated = write.parts.partitions[parquet_parts.NULL_PARTITION].pending
        assert sum(t.num_rows for t in undated) == 30
        # Buffers the pending tables keep alive (a slice keeps its parent's whole buffers).
        assert sum(t.get_total_buffer_size() for t in undated) < one_batch / 4
        write.commit(record(a, pa.table({"resolved": pa.array([False] * 60_030)})))
        stored = target.ticks(["trading_date"])
        assert pc.sum(pc.is_null(stored["trading_date"]).cast(pa.int64())).as_py() == 30

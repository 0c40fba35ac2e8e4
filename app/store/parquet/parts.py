"""The part files of one capture, written but not committed (``CapturePartsWriter``).

Encoding Parquet is most of an ingest's work, so the target encodes on every core: each
capture's ticks go out in parts of one row group (~512K rows or 128 MB of data, ~35 MB
on disk), each part encoded by a pool thread while the writer buffers the next one; a bounded number of parts in
flight keeps memory bounded. The single writer still decides what counts: parts are
private temporary files until the capture's commit lists them. (The Dask engine's
workers write parts of up to four 1M-row groups in sequence: their cluster supplies the
parallelism.)

"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Sequence
from concurrent.futures import Future, wait
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.store import base, journal
from app.store.base import BAD_PACKETS_SCHEMA
from app.store.journal import fsync_dir, fsync_file
from app.store.parquet.encoding import PartEncoders, _encode_part
from app.store.parquet.layout import (
    NULL_PARTITION,
    PART_OPTIONS,
    PART_ROW_GROUPS,
    PART_SCHEMA,
    ROW_GROUP_BYTES,
    ROW_GROUP_ROWS,
    WRITE_OPTIONS,
)

# Encoded in parallel (``PartEncoders``): one row group per part, so parts are independent.
PARALLEL_PART_ROWS = 512 << 10


class WriteBudget:
    """The bytes of tick rows every capture being written holds, bounded together.

    One per target while an ingest runs (``ParquetTarget.tune_for_ingest``): each trading
    day of each open capture buffers rows until it has a part's worth; whenever the total
    buffered would pass ``buffer_bytes`` the largest day buffer is flushed as a (smaller)
    part, so a capture spanning many days -- whose older days never fill a part -- needs no
    more memory than one spanning a single day. ``total_bytes`` covers the buffers and the
    parts being encoded (``slots`` at most): parts are sized so both fit.
    """

    def __init__(self, total_bytes: int, slots: int):
        self.total_bytes = int(total_bytes)
        self.part_bytes = max(1 << 20, min(ROW_GROUP_BYTES, self.total_bytes // (slots + 2)))
        self.buffer_bytes = 2 * self.part_bytes
        self.buffered = 0  # bytes pending in every partition writer
        self.peak = 0  # the most ever buffered once an add returned (tests, bench)
        self._holders: set = set()

    def added(self, holder: _PartitionWriter, nbytes: int) -> None:
        self.buffered += nbytes
        self._holders.add(holder)

    def released(self, holder: _PartitionWriter, nbytes: int) -> None:
        self.buffered -= nbytes
        self._holders.discard(holder)

    def rebalance(self) -> None:
        """Flush the largest buffers until the total fits."""
        while self.buffered > self.buffer_bytes and self._holders:
            max(self._holders, key=lambda h: h.pending_bytes).flush()
        self.peak = max(self.peak, self.buffered)


class _PartitionWriter:
    """Ticks of one capture and one trading date: row groups buffered, parts rolled over."""

    def __init__(self, owner: CapturePartsWriter, date_key: str):
        self.owner = owner
        self.folder = owner.root / "ticks" / f"trading_date={date_key}"
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.writer: pq.ParquetWriter | None = None
        self.tmp: Path | None = None
        self.groups_in_part = 0

    def add(self, table: pa.Table, nbytes: int) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.pending_bytes += nbytes
        budget = self.owner.budget
        if budget is not None:
            budget.added(self, nbytes)
        rows = PARALLEL_PART_ROWS if self.owner.encoders is not None else ROW_GROUP_ROWS
        limit = budget.part_bytes if budget is not None else ROW_GROUP_BYTES
        if self.pending_rows >= rows or self.pending_bytes >= limit:
            self.flush()
        if budget is not None:
            budget.rebalance()

    def flush(self) -> None:
        if not self.pending_rows:
            return
        table = pa.concat_tables(self.pending)
        if self.owner.budget is not None:
            self.owner.budget.released(self, self.pending_bytes)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        if self.owner.encoders is not None:
            # A part of its own, encoded by a pool thread (see PartEncoders). A part that
            # failed (disk full) fails the capture now, not at its commit.
            self.owner.check_encoders()
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.owner.new_file(self.folder, self.owner.next_part_name())
            self.owner.rows[tmp] = table.num_rows
            self.owner.encoding.append(self.owner.encoders.submit(_encode_part, table, tmp))
            return
        table = table.combine_chunks()
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.tmp = self.owner.new_file(self.folder, self.owner.next_part_name())
            self.writer = pq.ParquetWriter(self.tmp, PART_SCHEMA, **PART_OPTIONS)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.owner.rows[self.tmp] += table.num_rows
        self.groups_in_part += 1
        if self.groups_in_part >= PART_ROW_GROUPS:
            self.close_part()

    def close_part(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.groups_in_part = 0

    def finish(self) -> None:
        self.flush()
        self.close_part()

    def discard(self) -> None:
        if self.owner.budget is not None and self.pending_bytes:
            self.owner.budget.released(self, self.pending_bytes)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        if self.writer is not None:
            with contextlib.suppress(Exception):  # the file is deleted anyway
                self.writer.close()
            self.writer = None


class CapturePartsWriter:
    """The part files of one capture under a dataset folder, written but not committed.

    The one place that lays out tick and bad-packet parts (names, partitions, row groups,
    temporary names, then staged names; see ``app.store.journal``). ``ParquetTarget.begin``
    uses it in the writing process; the Dask engine uses it on workers, which never open
    the target (the client holds its lock) and hand the staged parts to
    ``ParquetTarget.commit_parts``, whose commit publishes them. ``write_id`` must be
    recorded in the target's journal before this writes (``record_write_id``): recovery
    deletes only files of recorded write ids. The Dask engine passes one derived from
    the file id so a retried task rewrites the same staged names instead of adding files.
    """

    def __init__(self, root: Path | str, file_id: str, write_id: str | None = None,
                 encoders: PartEncoders | None = None, budget: WriteBudget | None = None):
        self.root = Path(root)
        self.encoders = encoders
        self.budget = budget  # shared by every capture being written (None: per-day thresholds only)
        self.encoding: list[Future] = []  # parts being encoded by ``encoders``
        self.file_id = base.check_file_id(file_id)
        if write_id is not None and not (len(write_id) == 8 and all(c in "0123456789abcdef" for c in write_id)):
            raise ValueError(f"write_id must be 8 lowercase hex characters, got {write_id!r}")
        self.write_id = write_id or journal.new_id()
        self.partitions: dict[str, _PartitionWriter] = {}
        self.tmp_files: list[tuple[Path, Path]] = []  # (temporary, published name) in write order
        self.rows: dict[Path, int] = {}  # temporary file -> rows written to it
        self.bad_writer: pq.ParquetWriter | None = None
        self.bad_tmp: Path | None = None
        self.part_number = 0

    def next_part_name(self) -> str:
        name = f"part-{self.file_id[:16]}-{self.write_id}-{self.part_number}.parquet"
        self.part_number += 1
        return name

    def new_file(self, folder: Path, name: str) -> Path:
        # A random suffix per attempt: two attempts of one task (a worker presumed dead
        # still running) never write into the same temporary file.
        tmp = journal.temporary_part(folder, name)
        self.tmp_files.append((tmp, folder / name))
        self.rows[tmp] = 0
        return tmp

    def add_ticks(self, ticks: pa.Table) -> None:
        table = base.conform_ticks(ticks)
        if table.num_rows == 0:
            return
        dates = table["trading_date"].combine_chunks()
        body = table.drop_columns(["trading_date"])
        # Ticks come in time order, so a batch is a few runs of one date (and the odd tick
        # without one): runs are zero-copy slices, where filtering copies every column.
        runs = pc.run_end_encode(dates)
        ends = runs.run_ends.to_numpy()
        row_bytes = body.nbytes / body.num_rows  # (nbytes of many slices costs more than this)
        if len(ends) == 1:
            self._partition(dates[0].as_py()).add(body, body.nbytes)
            return
        if len(ends) <= max(8, table.num_rows // 256):
            values = runs.values.to_pylist()
            starts = [0, *ends[:-1].tolist()]
            by_date: dict = {}
            for value, start, end in zip(values, starts, ends.tolist(), strict=True):
                by_date.setdefault(value, []).append(body.slice(start, end - start))
            for value, pieces in by_date.items():
                part = pa.concat_tables(pieces)
                if part.num_rows < table.num_rows // 8:
                    # A slice keeps its whole batch in memory until its partition flushes,
                    # which a date with few ticks (say, the ticks without one) may never do:
                    # take copies the rows (combine_chunks keeps a lone slice as it is).
                    part = part.take(pa.array(np.arange(part.num_rows)))
                self._partition(value).add(part, int(part.num_rows * row_bytes))
            return
        for value in pc.unique(dates).to_pylist():
            mask = pc.is_null(dates) if value is None else pc.fill_null(pc.equal(dates, pa.scalar(value, pa.date32())),
                                                                        False)
            part = body.filter(mask)
            self._partition(value).add(part, int(part.num_rows * row_bytes))

    def _partition(self, date: dt.date | None) -> _PartitionWriter:
        key = NULL_PARTITION if date is None else date.isoformat()
        writer = self.partitions.get(key)
        if writer is None:
            writer = self.partitions[key] = _PartitionWriter(self, key)
        return writer

    def add_bad(self, bad: Sequence) -> None:
        if not bad:
            return
        table = base.bad_packets_table(self.file_id, bad)
        if self.bad_writer is None:
            folder = self.root / "bad_packets"
            folder.mkdir(parents=True, exist_ok=True)
            self.bad_tmp = self.new_file(folder, f"bad-{self.file_id[:16]}-{self.write_id}.parquet")
            self.bad_writer = pq.ParquetWriter(self.bad_tmp, BAD_PACKETS_SCHEMA, **WRITE_OPTIONS)
        self.bad_writer.write_table(table)
        self.rows[self.bad_tmp] += table.num_rows

    def check_encoders(self) -> None:
        """Forget the parts encoded so far; raise the first failure among them."""
        done: list[Future] = []
        running: list[Future] = []
        for future in self.encoding:
            (done if future.done() else running).append(future)
        self.encoding = running
        for future in done:
            error = future.exception()
            if error is not None:
                raise error

    def _wait_for_encoders(self) -> None:
        """Wait for every part being encoded; raise the first failure."""
        wait(self.encoding)  # (interrupted here, discard still waits for them all)
        self.check_encoders()

    def staged(self, final: Path) -> Path:
        return final.parent / f".{final.name}.staged"

    def finish(self) -> dict[str, int]:
        """Close, fsync and stage every part; {published path relative to the root: rows}, in
        write order. Nothing is visible to readers until a commit publishes them."""
        for partition in self.partitions.values():
            partition.finish()
        self._wait_for_encoders()
        if self.bad_writer is not None:
            self.bad_writer.close()
            self.bad_writer = None
        parts = {}
        for tmp, final in self.tmp_files:
            fsync_file(tmp)
            os.replace(tmp, self.staged(final))
            parts[final.relative_to(self.root).as_posix()] = self.rows[tmp]
        for folder in {final.parent for _, final in self.tmp_files}:
            fsync_dir(folder)
        return parts

    def _close_writers(self) -> None:
        # A part still being encoded would write its temporary file after we delete it.
        wait(self.encoding)
        self.encoding = []
        for partition in self.partitions.values():
            partition.discard()
        if self.bad_writer is not None:
            with contextlib.suppress(Exception):  # the file is deleted anyway
                self.bad_writer.close()
            self.bad_writer = None

    def discard(self, keep: frozenset | set = frozenset()) -> None:
        """Delete the temporary and staged files, but a staged file named in ``keep`` (a
        commit record being applied needs it). Published parts are never touched here."""
        self._close_writers()
        for tmp, final in self.tmp_files:
            tmp.unlink(missing_ok=True)
            staged = self.staged(final)
            if staged.relative_to(self.root).as_posix() not in keep:
                staged.unlink(missing_ok=True)

    def discard_temporary(self) -> None:
        """Delete only the temporary files: a staged part may be a finished attempt's that
        the client is committing; the client sweeps what is not committed."""
        self._close_writers()
        for tmp, _ in self.tmp_files:
            tmp.unlink(missing_ok=True)

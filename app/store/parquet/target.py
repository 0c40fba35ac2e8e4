"""``ParquetTarget``: a Parquet dataset folder opened (locked, recovered, migrated), read,
and written through; its other jobs are its bases, one module each (see the package)."""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from app.core import schema
from app.errors import InputError, TargetLockedError
from app.store import base, journal
from app.store.base import (
    BAD_PACKETS_SCHEMA,
    CAPTURES_SCHEMA,
    AlreadyIngested,
    CaptureRecord,
    CaptureWrite,
    Target,
)
from app.store.checks import MARKER, check_target
from app.store.journal import Journal, JournalError
from app.store.parquet import integrity
from app.store.parquet.commit import ManifestCommits
from app.store.parquet.encoding import PartEncoders
from app.store.parquet.layout import FORMAT_VERSION, LOCK, PART_SCHEMA, PARTITIONING, _write_marker
from app.store.parquet.parts import CapturePartsWriter, WriteBudget
from app.store.parquet.resolve import ResolveRewrite
from app.store.parquet.stored_masters import StoredMastersFile
from app.store.parquet.summaries import TickSummaries
from app.store.parquet.unknown_tokens import UnknownTokensFile

log = logging.getLogger(__name__)


def _os_reason(err: OSError) -> str:
    reason = err.strerror or str(err) or type(err).__name__
    return f"{reason}: {err.filename}" if err.filename else reason

class _FileLock:
    """An exclusive, non-blocking lock on ``path`` for this open file (released on close/exit)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock()
        except BlockingIOError:
            pid = self._holder()
            os.close(self.fd)
            raise TargetLockedError(base.locked_message(path.parent, pid)) from None
        except BaseException:
            os.close(self.fd)
            raise
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def _lock(self) -> None:
        if os.name == "nt":
            import msvcrt

            try:
                msvcrt.locking(self.fd, msvcrt.LK_NBLCK, 1)
            except OSError as err:
                raise BlockingIOError(errno.EAGAIN, str(err)) from None
        else:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
            return int(text) if text.isdigit() else None
        except OSError:
            return None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class ParquetTarget(ManifestCommits, StoredMastersFile, UnknownTokensFile, TickSummaries, ResolveRewrite, Target):
    kind = "parquet"

    def __init__(self, path: Path | str, *, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._lock: _FileLock | None = None
        self._claim = None
        self._journal: Journal | None = None
        self._open_writes: list[_ParquetCaptureWrite] = []
        self._mutex = threading.Lock()
        self._encoders: PartEncoders | None = None
        try:
            self._check_folder()
        except OSError as err:
            raise InputError(f"cannot use {self.path} as a Parquet dataset: {_os_reason(err)}") from None
        if not read_only:
            self._claim = base._claim(self.path)
        # Whatever fails from here releases the claim and the lock (close), so a retry in
        # this process is not told the target is "already open".
        try:
            if not read_only:
                try:
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._lock = _FileLock(self.path / LOCK)
                    marker = self.path / MARKER
                    if not marker.exists():
                        _write_marker(marker)
                    self._journal = Journal(self.path)
                    self._journal.recover()
                    self._journal.start()
                except JournalError as err:
                    raise base.UnreadableTarget(
                        f"cannot open the Parquet dataset {self.path}: {err}; move that journal file out of the "
                        "folder to open the dataset as its manifest lists it"
                    ) from None
                except OSError as err:
                    raise InputError(f"cannot use {self.path} as a Parquet dataset: {_os_reason(err)}") from None
            self._captures = self._read_captures()
            if not read_only:
                try:
                    self._migrate()
                    self._migrate_instruments()
                except OSError as err:
                    raise InputError(f"cannot update the Parquet dataset {self.path}: {_os_reason(err)}") from None
        except BaseException:
            self.close()
            raise

    def _check_folder(self) -> None:
        check_target(self.path, must_exist=self.read_only, writable=False)  # writing fails on its own

    def close(self) -> None:
        for write in list(getattr(self, "_open_writes", ())):
            write.abort()
        if getattr(self, "_encoders", None) is not None:
            self._encoders.shutdown()
            self._encoders = None
        if getattr(self, "_journal", None) is not None:
            try:
                self._journal.end()
                journal.prune_partitions(self.path)
            except (OSError, JournalError):  # what stays is swept at the next open (or refused by it)
                log.warning("could not tidy %s at close", self.path, exc_info=True)
            self._journal = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        base._release(self._claim)
        self._claim = None

    @property
    def session(self) -> str | None:
        """This writer's session id (names of its private files carry it)."""
        return self._journal.session if self._journal is not None else None

    def record_write_id(self, write_id: str, *, elsewhere: bool = True) -> None:
        """Record a write id in the journal before any file named with it is created.

        ``elsewhere`` (the default, for callers outside the target: the Dask engine records
        each task's id): another process writes its files and may still be writing after
        this session ends, so the journal keeps the id in its record of ended writes and
        later opens for writing sweep the parts it stages late (``Journal.sweep_ended``).
        The target's own writes, all finished or aborted by ``close``, pass False."""
        self._writable()
        self._journal.record_write_id(write_id, elsewhere=elsewhere)

    def _migrate(self) -> None:
        """Bring a version-1 dataset to this layout (decided from its manifest alone)."""
        marker = self.path / MARKER
        try:
            version = json.loads(marker.read_text()).get("version", 1)
        except (OSError, ValueError, AttributeError):
            version = 1
        if version >= FORMAT_VERSION:
            return
        if version < 2 and self._captures.num_rows:
            # The manifest with its parts fingerprinted; every listed part keeps its name.
            self._commit(self._captures, publish=[], unpublish=[])
        self._add_missing_summaries()
        _write_marker(marker, self.session)
        log.info("migrated the Parquet dataset %s to format %d", self.path, FORMAT_VERSION)

    def _referenced(self) -> set[str]:
        parts = self._captures["parts"].combine_chunks().flatten().to_pylist()
        return set(parts)

    def cleanup(self) -> list[str]:
        """Delete this writer's private files that no open write needs (staged parts of
        captures that were not committed); never a file the journal did not name."""
        if self._journal is None or self._open_writes:
            return []
        return self._journal._sweep({self._journal.session}, set(self._journal.write_ids))

    # -- reading ----------------------------------------------------------------

    def file_ids(self) -> set[str]:
        return set(self._captures["file_id"].to_pylist())

    def captures(self) -> pa.Table:
        return self._captures.select(CAPTURES_SCHEMA.names)

    def committed_parts(self) -> dict[str, list[str]]:
        """file_id -> the part files (relative to the folder) its capture row lists."""
        return dict(zip(self._captures["file_id"].to_pylist(), self._captures["parts"].to_pylist(), strict=True))

    def _tick_files(self) -> list[str]:
        return sorted(
            str(self.path / p) for p in self._referenced() if p.startswith("ticks/")
        )

    def tick_dataset(self) -> pads.Dataset:
        """The committed ticks as a pyarrow dataset (hive-partitioned by trading_date)."""
        files = self._tick_files()
        return pads.dataset(
            files,
            schema=pa.schema(list(PART_SCHEMA) + [schema.TICK_SCHEMA.field("trading_date")]),
            format="parquet",
            partitioning=PARTITIONING,
            partition_base_dir=str(self.path / "ticks"),
        )

    def ticks(self, columns: Sequence[str] | None = None) -> pa.Table:
        names = list(columns) if columns else schema.TICK_SCHEMA.names
        unknown = set(names) - set(schema.TICK_SCHEMA.names)
        if unknown:
            raise ValueError(f"no such tick columns: {sorted(unknown)}")
        keys = ["file_id", "msg_seq", "pkt_seq"]
        table = self.tick_dataset().to_table(columns=list(dict.fromkeys(names + keys)))
        if table.num_rows:
            table = table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))
        return table.select(names)

    def bad_packets(self) -> pa.Table:
        files = sorted(str(self.path / p) for p in self._referenced() if p.startswith("bad_packets/"))
        if not files:
            return BAD_PACKETS_SCHEMA.empty_table()
        table = pads.dataset(files, schema=BAD_PACKETS_SCHEMA, format="parquet").to_table()
        return table.take(pc.sort_indices(table, [("file_id", "ascending"), ("offset", "ascending")]))

    def _sql(self) -> duckdb.DuckDBPyConnection:
        """A private in-memory DuckDB, within the ingest's memory (``engine_bytes``): beyond
        it, DuckDB spills to a temporary folder instead of growing."""
        from app.core.memory import MemoryBudget

        memory = self.memory or MemoryBudget()
        con = duckdb.connect(config={"memory_limit": f"{memory.engine_bytes // (1 << 20)}MB",
                                     "temp_directory": os.path.join(tempfile.gettempdir(),
                                                                    f"tickscope-spill-{os.getpid()}")})
        con.execute("SET TimeZone = 'UTC'")
        return con

    # -- writing ----------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("target opened read-only")

    def _part_encoders(self) -> PartEncoders:
        if self._encoders is None:
            self._encoders = PartEncoders()
        return self._encoders

    def tune_for_ingest(self, decoder_threads: int | None, memory=None) -> None:
        super().tune_for_ingest(decoder_threads, memory)
        self._budget = None  # made for the next capture from the new setting

    def _write_budget(self, encoders: PartEncoders) -> WriteBudget:
        """The budget every capture written now shares (``memory.writer_bytes``; the default
        budget's when no ingest set one)."""
        if getattr(self, "_budget", None) is None:
            from app.core.memory import MemoryBudget

            memory = self.memory or MemoryBudget()
            self._budget = WriteBudget(memory.writer_bytes, encoders.threads + 1)
        return self._budget

    def begin(self, file_id: str, *, force: bool = False) -> _ParquetCaptureWrite:
        self._writable()
        write = _ParquetCaptureWrite(self, base.check_file_id(file_id), force)
        self._open_writes.append(write)
        return write

    # -- integrity (app.store.parquet.integrity) --------------------------------

    def verify(self) -> list[base.Finding]:
        return integrity.verify(self)

    def damaged_captures(self) -> dict[str, str]:
        return integrity.damaged_captures(self)

    def remove(self, file_ids: Sequence[str]) -> list[base.RemovedCapture]:
        return integrity.remove(self, file_ids)

    def format_version(self) -> int:
        try:
            return int(json.loads((self.path / MARKER).read_text()).get("version", 1))
        except (OSError, ValueError, AttributeError, TypeError):
            return 1


class _ParquetCaptureWrite(CaptureWrite):
    def __init__(self, target: ParquetTarget, file_id: str, force: bool):
        self.target = target
        self.file_id = file_id
        self.force = force
        write_id = journal.new_id()
        target.record_write_id(write_id, elsewhere=False)
        encoders = target._part_encoders()
        self.parts = CapturePartsWriter(target.path, file_id, write_id, encoders=encoders,
                                        budget=target._write_budget(encoders))
        self.done = False

    def add_ticks(self, ticks: pa.Table) -> None:
        self.parts.add_ticks(ticks)

    def add_bad(self, bad: Sequence) -> None:
        self.parts.add_bad(bad)

    def commit(self, record: CaptureRecord) -> None:
        if record.file_id != self.file_id:
            raise ValueError("capture record of another file")
        target = self.target
        try:
            if target._captures.filter(pc.equal(target._captures["file_id"], self.file_id)).num_rows and not self.force:
                raise AlreadyIngested(self.file_id)
            target._commit_capture(record, self.parts.finish(), force=self.force)
        except BaseException:
            self.abort()
            raise
        self._finish()

    def abort(self) -> None:
        if self.done:
            return
        self.parts.discard(keep=self.target._pending_staged())
        self._finish()

    def _finish(self) -> None:
        self.done = True
        if self in self.target._open_writes:
            self.target._open_writes.remove(self)

"""The ingestion job: files -> hash -> decode + enrich (thread pool) -> one writer -> target.

Shape of a run (``IngestJob.run``, blocking, in the caller's thread)::

    decoder threads (``workers``)          bounded queue           the run() thread
    hash, skip check, decode, enrich  -->  (begin/batch/end)  -->  the only writer: one
    each file's batches in order            backpressure            transaction per capture

* Exactly one thread (the one calling ``run``) touches the target, so no two writers
  ever meet; each capture is committed with its ``captures`` row or not at all.
* The queue is bounded: a slow target stalls the decoders instead of filling memory,
  whatever the size of the inputs.
* Content already in the target (same sha256) is skipped, also within one job: there a
  later copy waits for the first one's outcome and is "skipped" only once that one is
  stored (failed or cancelled with it otherwise, saying so).
* A file that holds nothing to store fails: a .parquet/.json/.jsonl whose content is not
  that format (never decoded as a binary capture instead), or a capture in which not one
  Kite packet or heartbeat was found.
* A failing file (unreadable, corrupt beyond decoding) fails alone; cancelling a file
  (``cancel_file``) or the job (``cancel`` / the ``cancel`` event) leaves nothing of the
  cancelled files in the target.
* Progress goes to a plain callable (a copy of the file's ``CaptureRecord``, the one
  per-capture record), never concurrently, throttled to ~20 updates a second per file;
  every file's final state is always sent. The report's files are those records too.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core import digest, schema
from app.core.capture import (
    CANCELLED,
    DECODING,
    DONE,
    FAILED,
    HASHING,
    QUEUED,
    REPORT_STATUSES,
    SKIPPED,
    WRITING,
    CaptureRecord,
)
from app.core.decode import no_packets_message
from app.core.memory import MemoryBudget
from app.errors import EXIT_NO_SPACE, EXIT_OK, EXIT_PARTIAL, InputError, UsageError, is_no_space, no_space_message
from app.pipeline.inputs import expand_inputs, read_as
from app.store import AlreadyIngested, Target, open_target

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.05  # seconds between updates of one file (~20/s)
DEFAULT_CHUNK_BYTES = 8 << 20  # capture bytes per decoded batch: bounds each batch's memory
MAX_WORKERS = 64
BOOK_BYTES_PER_ROW = 256  # a master row as enrichment holds it (index + values), measured ~230
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd command

# Why a file failed (CaptureRecord.fault): its own content, writing the target, or a bug.
FAULT_INPUT = "input"
FAULT_WRITE = "write"
FAULT_INTERNAL = "internal"
FAULT_NO_SPACE = "no_space"  # the disk filled up while writing: exit 6, nothing of the file kept


@dataclass
class IngestReport:
    target: str
    files: list[CaptureRecord] = field(default_factory=list)
    seconds: float = 0.0
    # The user stopped the whole run (Ctrl-C): the exit code is 130, as for SIGINT.
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every file was ingested or skipped, 4 when some failed or were cancelled,
        130 when the user interrupted the run."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if any(f.fault == FAULT_NO_SPACE for f in self.files):
            return EXIT_NO_SPACE
        return EXIT_OK if all(f.status in (DONE, SKIPPED) for f in self.files) else EXIT_PARTIAL

    def by_status(self, status: str) -> list[CaptureRecord]:
        return [f for f in self.files if f.status == status]

    @property
    def packets(self) -> int:
        return sum(f.packets for f in self.files if f.status == DONE)

    def counts(self) -> dict[str, int]:
        """Files by reported status: ingested, skipped, failed, cancelled."""
        counts = dict.fromkeys(REPORT_STATUSES, 0)
        for f in self.files:
            counts[f.reported_status] += 1
        return counts

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "ticks": sum(f.ticks for f in self.files if f.status == DONE),
            "files": [f.to_dict() for f in self.files],
        }


class _Cancelled(Exception):
    pass


@dataclass(eq=False)
class _File(CaptureRecord):
    """One input's record, and what its decoder thread and the writer share about it.

    The decoder thread counts into the record; the writer owns ``write`` and settles the
    status. Progress updates and the job's result are copies of the record (``copy``).
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0
    decode_started: float = 0.0
    finished: float = 0.0
    last_emit: float = 0.0
    write: object = None  # the open CaptureWrite (the writer's)
    writer_error: str | None = None

    @property
    def source(self) -> Path:
        return Path(self.path)

    def set_stage(self, stage: str) -> None:
        """``stage``: one of STAGES ("hashing" is decoding's first step)."""
        self.hashing = stage == HASHING
        self.status = DECODING if self.hashing else stage

    def rate(self) -> float:
        if not self.decode_started:
            return 0.0
        elapsed = (self.finished or time.monotonic()) - self.decode_started
        return self.packets / elapsed if elapsed > 0 else 0.0

    def result(self) -> CaptureRecord:
        """The file's final record, as the job reports it."""
        now = time.monotonic()
        self.seconds = round((self.finished or now) - (self.started or now), 3)
        if self.status != FAILED:
            self.fault = None
        return self.copy()


def file_sha256(path: Path, cancel: threading.Event | None = None, on_bytes=None) -> str:
    """``app.core.digest.file_sha256``, cancelled the pipeline's way."""
    try:
        return digest.file_sha256(path, cancel, on_bytes)
    except digest.HashCancelled:
        raise _Cancelled() from None


def decode_batches(f: _File, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
    """(DECODED_SCHEMA ticks, bad packets, bytes done) for one file, in file order.

    Counts messages/packets/heartbeats/framing into ``f`` and stops when ``f.cancel`` is
    set. Shared by the thread pool here and the Dask engine's worker tasks.
    """
    from app.core.tick_sources import read_tick_file

    kind = read_as(f.source)  # json | jsonl | parquet | capture: the one rule (app.pipeline.inputs)
    if kind != "capture":
        f.framing = kind
        seen_messages = np.zeros(0, dtype=np.int64)
        rejected: list = []  # ticks whose price is no number (NaN, Infinity, a string): bad records
        for table in read_tick_file(f.source, file_id=f.file_id, rejected=rejected):
            if f.cancel.is_set():
                raise _Cancelled()
            if table.num_rows:
                seen_messages = np.union1d(seen_messages, pc.unique(table["msg_seq"]).to_numpy(zero_copy_only=False))
            f.messages = len(seen_messages)
            f.packets += table.num_rows
            bad, rejected[:] = list(rejected), []
            yield table, bad, 0
        if rejected:
            yield schema.DECODED_SCHEMA.empty_table(), list(rejected), 0
        return
    from app.core.decode import CaptureReader

    reader = CaptureReader(f.source, chunk_bytes=chunk_bytes, file_id=f.file_id)
    f.framing = reader.framing
    for batch in reader.batches(f.cancel):
        f.packets += batch.ticks.num_rows
        yield batch.ticks, batch.bad, batch.bytes_done
    if f.cancel.is_set():
        raise _Cancelled()
    summary = reader.summary
    f.messages = summary.messages
    f.heartbeats = summary.heartbeats
    f.packets = summary.packets
    f.bad_packets = summary.bad_packets
    f.framing = summary.framing
    if not summary.packets and not summary.heartbeats:
        # Nothing but bad bytes: not a capture at all. Raising here aborts the file's
        # open write, so none of its bad regions stay in the target either.
        raise InputError(no_packets_message(summary.bytes, summary.bad_bytes_by_reason))




def enrich_ticks(book, ticks: pa.Table) -> pa.Table:
    """TICK_SCHEMA ticks: named by ``book`` when it holds masters, else left unresolved."""
    if book is not None and len(book):
        return book.enrich(ticks)
    return schema.unenriched(ticks)


def count_batch(f: _File, ticks: pa.Table, bad) -> None:
    """Add one enriched batch to the file's counts and tick-time range."""
    n = ticks.num_rows
    f.ticks += n
    f.bad_packets += len(bad)
    if not n:
        return
    f.unresolved_ticks += n - int(pc.sum(pc.fill_null(ticks["resolved"], False)).as_py() or 0)
    if "suspect_reason" in ticks.column_names:
        f.suspect += n - ticks["suspect_reason"].null_count
    low, high = pc.min_max(ticks["tick_time"]).values()
    low, high = low.as_py(), high.as_py()
    if low is not None:
        f.first_tick_time = low if f.first_tick_time is None else min(f.first_tick_time, low)
        f.last_tick_time = high if f.last_tick_time is None else max(f.last_tick_time, high)


def check_master_paths(instruments) -> None:
    for item in instruments:
        if not (hasattr(item, "table") and hasattr(item, "source")) and not Path(item).is_file():
            raise InputError(f"instrument master not found: {item} (give the path of the instruments CSV/JSON/Parquet)")


def store_masters(target, instruments) -> list:
    """Store the given masters in ``target``; returns those newly stored.

    A master file whose content (sha256) is stored already for the day its name carries
    is not read at all; one already stored after parsing (same content, same day) is not
    rewritten (``Target.record_masters``).
    """
    from app.core.instruments import date_from_name, load_master

    masters, shas, name_dates = [], [], []
    for item in instruments:
        if hasattr(item, "table") and hasattr(item, "source"):
            masters.append(item)
            shas.append(None)
            name_dates.append(None)
            continue
        path = Path(item)
        try:
            sha = file_sha256(path)
        except OSError:
            sha = None  # load_master says what is wrong with it
        name_date = date_from_name(path.name)
        if sha is not None and target.master_is_stored(sha, name_date):
            log.info("instrument master %s is stored already (same content)", path)
            continue
        masters.append(load_master(path))
        shas.append(sha)
        name_dates.append(name_date)
    if not masters:
        return []
    stored = target.record_masters(masters, shas, name_dates)
    return [m for m, new in zip(masters, stored, strict=True) if new]


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text or type(err).__name__)[:300]


class JobControl:
    """Cancelling a job's files, shared by the local and the Dask engines.

    Subclasses set ``self.files`` (``_File`` list) and ``self._cancelled`` (an Event).
    """

    files: list
    _cancelled: threading.Event

    def cancel(self) -> None:
        """Cancel every file not yet committed."""
        self._cancelled.set()
        for f in self.files:
            f.cancel.set()

    def cancel_file(self, path) -> None:
        """Cancel one file: nothing of it is left in the target (unless already committed)."""
        wanted = os.path.realpath(path)
        for f in self.files:
            if os.path.realpath(f.path) == wanted:
                f.cancel.set()

    @property
    def paths(self) -> list[Path]:
        return [f.source for f in self.files]


class IngestJob(JobControl):
    """One ingest of several files into one target (see the module docstring)."""

    def __init__(
        self,
        paths: Sequence,
        target,
        *,
        instruments: Iterable = (),
        workers: int = 2,
        force: bool = False,
        progress: Callable[[CaptureRecord], None] | None = None,
        chunk_bytes: int | None = None,
        queue_batches: int | None = None,
        memory_limit=None,
    ):
        if not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be a whole number from 1 to {MAX_WORKERS}, got {workers!r}")
        self.target_arg = target
        target_path = target.path if isinstance(target, Target) else Path(target)
        self.target_path = target_path
        self.files = [_File(str(p), index=i) for i, p in enumerate(expand_inputs(paths, exclude=[target_path]))]
        self.instruments = list(instruments)
        self.workers = workers
        self.force = force
        self.progress = progress
        # One memory setting for every stage (app.core.memory): batch size, queue, writer, engine.
        self.memory = MemoryBudget.of(memory_limit)
        self.chunk_bytes = chunk_bytes or self.memory.decode_chunk_bytes
        self._chunk_given, self._queue_given = chunk_bytes is not None, queue_batches is not None
        # Enough batches to keep the writer busy while every decoder works on the next one.
        self.queue: queue.Queue = queue.Queue(maxsize=queue_batches or self.memory.queue_batches(workers))
        self._cancelled = threading.Event()
        self._emit_lock = threading.Lock()
        self._seen_lock = threading.Lock()
        self._seen: dict[str, _File] = {}  # file_id -> the first file with that content
        self._waiting: dict[int, list[_File]] = {}  # first file's index -> its later copies
        self._done = 0  # files in a final state
        self._existing: set[str] = set()
        self._damaged: dict[str, str] = {}  # committed file_id -> what is wrong with its rows
        self.book = None
        self.target: Target | None = None

    # -- progress ---------------------------------------------------------------

    def _emit(self, f: _File, stage: str | None = None, *, force: bool = False) -> None:
        if stage is not None:
            changed = stage != f.stage
            f.set_stage(stage)
            force = force or changed
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - f.last_emit < PROGRESS_INTERVAL:
            return
        f.last_emit = now
        f.rate_pps = f.rate()
        update = f.copy()
        with self._emit_lock:  # the callable never runs twice at once
            try:
                self.progress(update)
            except Exception:  # a broken display must not break the ingest
                log.exception("progress callback failed")

    # -- decoder threads --------------------------------------------------------

    def _put(self, f: _File, message: tuple, *, droppable: bool) -> None:
        """Queue a message; batches give up when their file is cancelled (backpressure)."""
        while True:
            try:
                self.queue.put(message, timeout=0.1)
                return
            except queue.Full:
                if droppable and f.cancel.is_set():
                    raise _Cancelled() from None

    def _decode_file(self, f: _File) -> None:
        f.started = time.monotonic()
        try:
            if f.cancel.is_set():
                raise _Cancelled()
            try:
                f.size_bytes = f.source.stat().st_size
            except OSError as err:
                raise InputError(f"cannot read {f.path}: {err.strerror or err}") from None
            self._emit(f, HASHING)

            def hashed(n):
                f.bytes_done = n
                self._emit(f)

            f.file_id = file_sha256(f.source, f.cancel, hashed)
            with self._seen_lock:
                original = self._seen.get(f.file_id)
                if original is None:
                    self._seen[f.file_id] = f
            if original is not None:
                # Its outcome is the first copy's, known only once the writer settles that one.
                self._put(f, ("duplicate", f, original), droppable=False)
                return
            if f.file_id in self._existing and not self.force:
                f.error = "already in the target"
                self._put(f, ("skip", f), droppable=False)
                return
            f.bytes_done = 0
            f.decode_started = time.monotonic()
            self._emit(f, DECODING)
            for ticks, bad, bytes_done in self._batches(f):
                if f.cancel.is_set():
                    raise _Cancelled()
                ticks = self._enrich(ticks)
                self._count(f, ticks, bad)
                f.bytes_done = bytes_done
                self._put(f, ("batch", f, ticks, bad), droppable=True)
                self._emit(f)
            if f.cancel.is_set():
                raise _Cancelled()
            f.bytes_done = f.size_bytes
            self._put(f, ("end", f), droppable=False)
        except _Cancelled:
            self._put(f, ("abort", f, CANCELLED, None), droppable=False)
        except Exception as err:
            f.fault = FAULT_INPUT if isinstance(err, (InputError, OSError)) else FAULT_INTERNAL
            if f.fault == FAULT_INTERNAL:
                log.exception("decoding %s failed", f.path)
            self._put(f, ("abort", f, FAILED, _one_line(err)), droppable=False)

    def _batches(self, f: _File):
        return decode_batches(f, self.chunk_bytes)

    def _enrich(self, ticks: pa.Table) -> pa.Table:
        return enrich_ticks(self.book, ticks)

    def _count(self, f: _File, ticks: pa.Table, bad) -> None:
        count_batch(f, ticks, bad)

    # -- the writer (the run() thread) -------------------------------------------

    def _handle(self, message: tuple) -> None:
        """Apply one queued message (files reaching a final state are counted in ``_done``)."""
        kind, f = message[0], message[1]
        target = self.target
        if kind == "batch":
            if f.cancel.is_set() or f.writer_error:
                return False
            _, _, ticks, bad = message
            try:
                if f.write is None:
                    f.write = target.begin(f.file_id, force=self._replaces(f))
                f.write.add_ticks(ticks)
                f.write.add_bad(bad)
            except Exception as err:
                log.exception("writing %s failed", f.path)
                f.writer_error, f.fault = self._write_failure(f, err)
                f.cancel.set()  # stops its decoder; the abort message finishes it
                self._abort_write(f)
            return
        if kind == "skip":
            self._finish(f, SKIPPED, f.error)
            return
        if kind == "duplicate":
            original = message[2]
            if not original.final:
                self._waiting.setdefault(original.index, []).append(f)
            else:
                self._settle_duplicate(f, original)
            return
        if kind == "abort":
            _, _, status, error = message
            self._abort_write(f)
            if f.writer_error:
                status, error = FAILED, f.writer_error
            self._finish(f, status, error)
            return
        # "end": the decoder delivered every batch; commit unless cancelled meanwhile.
        if f.cancel.is_set() or f.writer_error:
            self._abort_write(f)
            self._finish(f, FAILED if f.writer_error else CANCELLED, f.writer_error)
            return
        self._emit(f, WRITING)
        f.replaced = (self.force and f.file_id in self._existing) or f.file_id in self._damaged
        f.ingested_at = dt.datetime.now(dt.UTC)
        try:
            if f.write is None:  # a capture without ticks still gets its record
                f.write = target.begin(f.file_id, force=self._replaces(f))
            write, f.write = f.write, None
            write.commit(f)  # its record is the capture's ``captures`` row
        except AlreadyIngested:
            self._finish(f, SKIPPED, "already in the target")
            return
        except Exception as err:
            log.exception("committing %s failed", f.path)
            error, f.fault = self._write_failure(f, err)
            self._finish(f, FAILED, error)
            return
        self._finish(f, DONE, None)

    def _write_failure(self, f: _File, err: BaseException) -> tuple[str, str]:
        """(message, fault) for a failed write; a full disk is its own fault (exit 6)."""
        if is_no_space(err):
            return no_space_message(self.target_path, f.size_bytes), FAULT_NO_SPACE
        return f"writing to the target failed: {_one_line(err)}", FAULT_WRITE

    def _replaces(self, f: _File) -> bool:
        """Whether this capture's write replaces a committed one (--force, or damaged rows)."""
        return self.force or f.file_id in self._damaged

    def _settle_duplicate(self, f: _File, original: _File) -> None:
        """A later copy of ``original`` ends as that one did: skipped only if it is stored."""
        same = f"same content as {original.path}"
        if original.status in (DONE, SKIPPED):
            self._finish(f, SKIPPED, same)
        elif original.status == CANCELLED:
            self._finish(f, CANCELLED, f"{same}, which was cancelled")
        else:
            f.fault = original.fault
            self._finish(f, FAILED, f"{same}, which failed")

    def _abort_write(self, f: _File) -> None:
        if f.write is not None:
            write, f.write = f.write, None
            try:
                write.abort()
            except Exception:
                log.exception("aborting the write of %s failed", f.path)

    def _finish(self, f: _File, status: str, error: str | None) -> None:
        if status == DONE and f.file_id in self._damaged:
            error = f"re-ingested: its stored rows were damaged ({self._damaged[f.file_id]})"
        f.error = error
        f.finished = time.monotonic()
        if status != DONE:
            # Counts describe what is in the target; a skipped file keeps its id only.
            f.ticks = f.unresolved_ticks = f.suspect = 0
        if status == CANCELLED:
            # Nothing of it is stored: the packets and bad packets decoded before the cancel
            # reached the decoder (one batch or more) are not the capture's counts either.
            f.packets = f.bad_packets = 0
        self._done += 1
        self._emit(f, status, force=True)
        for copy in self._waiting.pop(f.index, ()):
            self._settle_duplicate(copy, f)

    # -- run ----------------------------------------------------------------------

    def run(self, cancel: threading.Event | None = None) -> IngestReport:
        """Ingest every file; blocking. Raises TargetLockedError before writing anything."""
        started = time.monotonic()
        check_master_paths(self.instruments)  # before a target is created for nothing
        own_target = not isinstance(self.target_arg, Target)
        target = open_target(self.target_arg) if own_target else self.target_arg
        self.target = target
        try:
            self._damaged = target.damaged_captures()
            # A capture whose stored rows are damaged is ingested again (the file is the truth).
            self._existing = target.file_ids() - set(self._damaged)
            for f in self.files:
                self._emit(f, QUEUED, force=True)
            try:
                target.tune_for_ingest(min(self.workers, len(self.files)), self.memory)
                masters = store_masters(target, self.instruments)
                # Lazy: a stored master's rows are read only when a tick of its day needs a
                # name (a run that skips every file reads none).
                if target.master_catalog().num_rows:
                    self.book = target.stored_book()
                    self._reserve_for_book(target)
                if masters:
                    # Parsing a dump leaves ~200 MB the allocator would otherwise keep.
                    pa.default_memory_pool().release_unused()
                self._pump(cancel)
                if any(f.status == DONE for f in self.files) or masters:
                    target.rebuild_unknown_tokens(self.book)
            finally:
                target.tune_for_ingest(None)
        finally:
            for f in self.files:
                self._abort_write(f)
            if own_target:
                target.close()
            self.target = None
        return IngestReport(
            target=str(target.path), files=[f.result() for f in self.files],
            seconds=time.monotonic() - started,
        )

    def _reserve_for_book(self, target) -> None:
        """Enrichment holds the masters of the days being named: their share comes off the
        budget the other stages divide (one day's master, ~256 bytes a row, per worker)."""
        largest = max((m.num_rows for m in self.book.masters), default=0)
        reserve = largest * BOOK_BYTES_PER_ROW * min(self.workers, max(1, len(self.files)))
        if not reserve:
            return
        self.memory = self.memory.without(reserve)
        if not self._chunk_given:
            self.chunk_bytes = self.memory.decode_chunk_bytes
        if not self._queue_given:
            self.queue.maxsize = self.memory.queue_batches(self.workers)
        target.tune_for_ingest(min(self.workers, len(self.files)), self.memory)

    def _pump(self, cancel: threading.Event | None) -> None:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="tickscope-decode") as pool:
            futures = [pool.submit(self._decode_file, f) for f in self.files]
            try:
                while self._done < len(self.files):
                    if cancel is not None and cancel.is_set() and not self._cancelled.is_set():
                        self.cancel()
                    try:
                        message = self.queue.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    self._handle(message)
            except BaseException:
                # The writer is going away (KeyboardInterrupt, a bug): stop the decoders and
                # drain the queue so none of them stays blocked on a full queue.
                self.cancel()
                while not all(fu.done() for fu in futures):
                    try:
                        self.queue.get(timeout=0.05)
                    except queue.Empty:
                        pass
                raise


def run_ingest(
    paths: Sequence,
    target,
    *,
    instruments: Iterable = (),
    workers: int = 2,
    force: bool = False,
    progress: Callable[[CaptureRecord], None] | None = None,
    cancel: threading.Event | None = None,
    **options,
) -> IngestReport:
    """Ingest ``paths`` into ``target`` (a path or an open Target); see ``IngestJob``."""
    job = IngestJob(paths, target, instruments=instruments, workers=workers, force=force,
                    progress=progress, **options)
    return job.run(cancel=cancel)

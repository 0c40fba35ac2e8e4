"""The ingestion job on a Dask cluster: one task per capture file, one committer.

Shape of a run (``DaskIngestJob.run``, blocking, in the client process)::

    client (runs the command)                      workers (any machine, shared storage)
    expand inputs; open and lock the target
    given masters stored in the target       ---->  each worker opens the stored masters once,
                                                    reading only the days its ticks need
    submit hash_capture(path) per file       ---->  sha256 -> (file_id, size)
    skip ids already committed, duplicates
    record the file's write id in the journal
    submit ingest_capture(file)              ---->  decode + enrich + stage the file's own parts
                                                    (CapturePartsWriter: temporary names, then
                                                    staged names derived from the file id)
    check every staged part and its rows     <----  {part: rows} and the file's counts
    commit: publish the parts, list them in ``captures`` (the client is the only committer)

* The Parquet layout is the single-machine one: the same ``CapturePartsWriter`` writes
  the parts, the same ``ParquetTarget`` commits them. DuckDB targets stay single-machine.
* A task that fails or whose worker dies never half-commits: parts stay staged (invisible
  to readers) until the client's commit publishes them. A retried task rewrites the same
  staged names (the client gives each file one ``write_id`` per run, sent with its task), so
  retries never duplicate rows; staged parts of a file never committed are removed at the
  end of the run. The write id comes from the file id and the run's own random id
  (``task_write_id``): a task of an earlier run still running never writes a name a later
  run of the same capture stages or commits. A task Dask
  does not stop (already running when the run was cancelled, on a worker the cluster
  dropped, or on a remote cluster) may stage its parts after the run closed the target:
  they are never committed, and as the client recorded the task's write id as written
  elsewhere, the journal keeps it past the run (``journal/ended.json``) and the target's
  next opens for writing sweep them (``Journal.sweep_ended``).
* Idempotent like the local engine: content already in the target is skipped before its
  ingest task is submitted.
* ``--memory-limit`` is per task (one file on one worker process): its decoded batches,
  the masters of the days it names and the rows it buffers across trading days before a
  part is written stay within it, shared out as in the local engine (``app.core.memory``).
* Progress goes to the same callable as the local engine (``CaptureRecord`` copies), one update
  per stage change (tasks report when they complete, not while they run).

Dask is an optional extra (``pip install tickscope[cluster]``): this module imports
without it and ``require_dask`` turns its absence into a one-line usage error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from app import __version__
from app.core.capture import CANCELLED, DECODING, DONE, FAILED, HASHING, QUEUED, SKIPPED, WRITING, CaptureRecord
from app.errors import InputError, UsageError, is_no_space, no_space_message
from app.pipeline.ingest import (
    BOOK_BYTES_PER_ROW,
    FAULT_NO_SPACE,
    IngestReport,
    JobControl,
    _File,
    _one_line,
    check_master_paths,
    count_batch,
    decode_batches,
    enrich_ticks,
    file_sha256,
    store_masters,
)
from app.pipeline.inputs import expand_inputs
from app.store import AlreadyIngested, target_kind
from app.store.journal import HEX8, new_id

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install tickscope[cluster]"
POLL_SECONDS = 0.05
CONNECT_TIMEOUT = "20s"
WORKER_WAIT_SECONDS = 60
# Worker processes (decoding holds the GIL in places: threads would not scale), no
# dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback port
# rather than 8787, which another cluster on the machine may hold.
LOCAL_CLUSTER_OPTIONS = dict(
    threads_per_worker=1, processes=True, dashboard_address=None,
    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, silence_logs=logging.ERROR,
)


def require_dask():
    """The ``distributed`` module, or a UsageError saying how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise UsageError(
            f"--engine dask needs Dask, which is not installed ({err.name or 'distributed'} missing); "
            f"install it with `{INSTALL_HINT}`, or use --engine local"
        ) from None
    return distributed


def check_target(target) -> Path:
    """The target's folder, or a UsageError for targets a cluster cannot share."""
    text = str(target)
    if "://" in text:
        raise UsageError(
            f"target {text}: object storage (s3://, gs://, ...) is not supported yet; "
            "give a folder on storage every worker mounts at the same path (e.g. NFS)"
        )
    if target_kind(text) == "duckdb":
        raise UsageError(
            f"target {text} is a DuckDB file, which stays single-machine (one writing process); "
            "give a Parquet folder as --target, or use --engine local"
        )
    return Path(text)


def task_write_id(file_id: str, run_id: str, replacing: Sequence[str] = ()) -> str:
    """The write id of a file's parts in one run: the same for every attempt within the run,
    another in every other run.

    The client computes it once per file and run and sends it with the task, so a task Dask
    retries (its worker died) rewrites the same staged names and never duplicates rows. It
    is derived from the file id AND ``run_id`` (the run's own random id): a task of an
    earlier run of the same capture, still running because Dask does not stop running
    tasks, writes names no later run uses, so it can never replace a part a later run
    stages and commits (with other masters, its rows would carry other enrichment that the
    commit's fingerprint would record as if right). Its parts are never committed and the
    next open for writing sweeps them (``Journal.sweep_ended``). Replacing a committed
    capture (--force) also needs names that differ from the committed parts, which stay
    valid until the new ones are committed: the parts it replaces salt the hash until it
    does.
    """
    if not re.fullmatch(HEX8, run_id or ""):
        raise ValueError(f"run id must be 8 lowercase hex characters, got {run_id!r}")
    taken = {Path(p).name.split("-")[2] for p in replacing if Path(p).name.count("-") >= 2}
    salt = ""
    while True:
        write_id = hashlib.sha256(f"{file_id}|{run_id}{salt}".encode()).hexdigest()[:8]
        if write_id not in taken:
            return write_id
        salt += "+"


class StoredBookRef:
    """What a worker needs to name ticks: where the target's stored masters are, not the masters.

    Only the target folder and the identity of its masters file (size, mtime) travel. Each
    worker process opens the stored masters once, lazily (``ParquetTarget.stored_book``
    read-only: the catalog now, a master's rows only when a tick of its day needs them),
    so a year of daily masters costs a worker the days its captures span, not the year.
    The client stores any ``--instruments`` before submitting tasks and does not rewrite
    the masters file while they run; a worker seeing another file fails the task.
    """

    def __init__(self, root: str, stamp: tuple[int, int], largest_rows: int = 0):
        self.root = str(root)
        self.stamp = tuple(stamp)
        self.largest_rows = int(largest_rows)  # the largest stored master: the book's share of the budget

    @staticmethod
    def masters_file(root) -> Path:
        """The one file holding every stored master (``ParquetTarget._masters_path``)."""
        return Path(root) / "instruments" / "instruments.parquet"

    @classmethod
    def of(cls, target) -> StoredBookRef | None:
        """The reference to ``target``'s stored masters, or None without any."""
        catalog = target.master_catalog()
        if not catalog.num_rows:
            return None
        st = cls.masters_file(target.path).stat()
        return cls(str(Path(target.path).resolve()), (st.st_size, st.st_mtime_ns),
                   max(catalog.column("rows").to_pylist(), default=0))

    def get(self):
        """This worker process's book of the stored masters (opened on first use)."""
        key = (self.root, self.stamp)
        with _BOOKS_LOCK:
            book = _BOOKS.get(key)
            if book is None:
                from app.store.parquet import ParquetTarget

                st = self.masters_file(self.root).stat()
                if (st.st_size, st.st_mtime_ns) != self.stamp:
                    raise InputError(
                        f"the stored instrument masters of {self.root} changed while this ingest ran "
                        f"(seen from worker {socket.gethostname()}); run the same command again"
                    )
                _BOOKS.clear()  # one target's book per worker process at a time
                book = _BOOKS[key] = ParquetTarget(self.root, read_only=True).stored_book()
            return book


# The stored book of each worker process (StoredBookRef.get), kept between its tasks.
_BOOKS: dict = {}
_BOOKS_LOCK = threading.Lock()


# --- what the workers run -------------------------------------------------------------


def hash_capture(path: str) -> tuple[str, int]:
    """(sha256 hex, size) of one input, read on the worker."""
    p = Path(path)
    try:
        size = p.stat().st_size
        return file_sha256(p), size
    except OSError as err:
        raise InputError(f"cannot read {path} on worker {socket.gethostname()}: {err.strerror or err}") from None


def ingest_capture(path: str, hashed: tuple[str, int], write_id: str, root: str, book_ref: StoredBookRef | None,
                   chunk_bytes: int | None = None, memory_limit=None) -> dict:
    """Decode, enrich and write one file's parts under ``root``; their names, rows and the file's counts.

    Runs on a worker. Writes only staged part files (never ``captures``): the client's
    commit publishes them. ``write_id`` is recorded in the target's journal by the client.
    ``memory_limit`` (``--memory-limit``) is what this task may hold on its worker, shared
    out as in the local engine (``app.core.memory``): the masters of the days being named,
    the decoded batch, and the rows buffered across every trading day before a part is
    written (``WriteBudget``).
    """
    from app.core.memory import MemoryBudget
    from app.store.parquet import MARKER, CapturePartsWriter, WriteBudget

    file_id, size = hashed
    if not (Path(root) / MARKER).is_file():
        raise InputError(
            f"the target {root} is not visible on worker {socket.gethostname()}; "
            "put it on storage every worker mounts at the same path"
        )
    started = time.monotonic()
    f = _File(str(path), file_id=file_id, size_bytes=size)
    memory = MemoryBudget.of(memory_limit)
    book = None
    if book_ref is not None:
        book = book_ref.get()
        memory = memory.without(book_ref.largest_rows * BOOK_BYTES_PER_ROW)
    budget = WriteBudget(memory.writer_bytes, 1)  # parts are encoded by this task's thread
    parts = CapturePartsWriter(root, file_id, write_id, budget=budget)
    try:
        for ticks, bad, _ in decode_batches(f, chunk_bytes or memory.decode_chunk_bytes):
            ticks = enrich_ticks(book, ticks)
            count_batch(f, ticks, bad)
            parts.add_ticks(ticks)
            parts.add_bad(bad)
        written = parts.finish()
    except BaseException:
        parts.discard_temporary()
        raise
    return {
        "capture": f.copy(), "parts": written, "seconds": time.monotonic() - started,
        "worker": socket.gethostname(), "buffered_peak": budget.peak, "buffer_limit": budget.buffer_bytes,
    }


def _worker_version() -> str:
    return __version__


# --- the client -------------------------------------------------------------------------


class DaskIngestJob(JobControl):
    """One ingest of several files into one Parquet target on a Dask cluster (module docstring).

    Give ``client`` (an open ``distributed.Client``, left open), ``scheduler`` (an
    address), or ``local_cluster`` (worker processes on this machine, closed after the
    run); with none of them a local cluster of one worker per core is used. ``task`` is
    the per-file function the workers run (``ingest_capture``; replaceable to test
    worker failures).
    """

    def __init__(
        self,
        paths: Sequence,
        target,
        *,
        instruments: Iterable = (),
        client=None,
        scheduler: str | None = None,
        local_cluster: int | None = None,
        force: bool = False,
        progress: Callable[[CaptureRecord], None] | None = None,
        chunk_bytes: int | None = None,
        memory_limit=None,
        task: Callable = ingest_capture,
    ):
        if scheduler and local_cluster:
            raise UsageError("give either --scheduler or --local-cluster, not both")
        if local_cluster is not None and (not isinstance(local_cluster, int) or local_cluster < 1):
            raise UsageError(f"--local-cluster takes a number of worker processes of at least 1, got {local_cluster!r}")
        self.target_path = check_target(target)
        self.distributed = require_dask()
        self.files = [_File(str(p), index=i) for i, p in enumerate(expand_inputs(paths, exclude=[self.target_path]))]
        self.instruments = list(instruments)
        self.client = client
        self.scheduler = scheduler
        self.local_cluster = local_cluster
        self.force = force
        self.progress = progress
        self.chunk_bytes = chunk_bytes  # None: from the memory limit
        # --memory-limit is per task: each worker process holds one file's decode and parts.
        # Parsed here so a bad size is a usage error before any cluster starts.
        from app.core.memory import MemoryBudget

        self.memory_limit = MemoryBudget.of(memory_limit).total
        self.task = task
        # This run's own id: every write id of the run derives from it (task_write_id), so a
        # task of another run of the same capture never writes the names this run commits.
        self.run_id = new_id()
        self._cancelled = threading.Event()
        self._emit_lock = threading.Lock()
        self._existing: set[str] = set()
        self._damaged: dict[str, str] = {}
        self._stored_parts: dict[str, list[str]] = {}
        self._seen: dict[str, Path] = {}
        self._futures: dict[str, tuple[str, _File, object]] = {}  # key -> (kind, file, future)

    def _emit(self, f: _File, stage: str) -> None:
        f.set_stage(stage)
        if self.progress is None:
            return
        f.rate_pps = f.rate()
        update = f.copy()
        with self._emit_lock:
            try:
                self.progress(update)
            except Exception:  # a broken display must not break the ingest
                log.exception("progress callback failed")

    def _finish(self, f: _File, status: str, error: str | None) -> None:
        f.error = error
        f.finished = time.monotonic()
        if status != DONE:
            f.ticks = f.unresolved_ticks = f.suspect = 0
        self._emit(f, status)

    # -- the cluster ----------------------------------------------------------------

    def _connect(self):
        """(client, cluster we started or None, whether we close the client)."""
        distributed = self.distributed
        if self.client is not None:
            return self.client, None, False
        if self.scheduler:
            try:
                client = distributed.Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as err:
                raise UsageError(
                    f"cannot reach the Dask scheduler at {self.scheduler} ({_one_line(err)}); "
                    "check the address (tcp://host:8786) and that `dask scheduler` runs there"
                ) from None
            return client, None, True
        workers = self.local_cluster or os.cpu_count() or 1
        cluster = distributed.LocalCluster(n_workers=workers, **LOCAL_CLUSTER_OPTIONS)
        try:
            client = distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise
        return client, cluster, True

    def _check_workers(self, client) -> None:
        """Fail fast, in one line, when the workers cannot do the job at all."""
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
        except TimeoutError:
            raise UsageError(
                f"no Dask worker joined the scheduler within {WORKER_WAIT_SECONDS} s; start workers "
                f"(`dask worker {self.scheduler or 'ADDRESS'}`) with tickscope installed"
            ) from None
        try:
            versions = client.run(_worker_version)
        except Exception as err:
            raise UsageError(
                f"the Dask workers cannot run tickscope ({_one_line(err)}); install it on every worker "
                f"(`{INSTALL_HINT}`)"
            ) from None
        other = {addr: v for addr, v in versions.items() if v != __version__}
        if other:
            addr, version = next(iter(other.items()))
            raise UsageError(
                f"worker {addr} runs tickscope {version}, this is {__version__}; "
                "install the same version on every worker"
            )
        from app.store.parquet import MARKER

        seen = client.run(os.path.isfile, str(self.target_path.resolve() / MARKER))
        blind = [addr for addr, ok in seen.items() if not ok]
        if blind:
            raise UsageError(
                f"worker {blind[0]} cannot see the target {self.target_path.resolve()}; put the target (and the "
                "captures) on storage every worker mounts at the same path"
            )

    # -- run ------------------------------------------------------------------------

    def run(self, cancel: threading.Event | None = None) -> IngestReport:
        """Ingest every file; blocking. Raises TargetLockedError before writing anything."""
        from app.store.parquet import ParquetTarget

        started = time.monotonic()
        check_master_paths(self.instruments)
        target = ParquetTarget(self.target_path)
        self.target = target
        client = cluster = None
        own_client = False
        try:
            self._damaged = target.damaged_captures()
            # A capture whose stored rows are damaged is ingested again (the file is the truth).
            self._existing = target.file_ids() - set(self._damaged)
            self._stored_parts = target.committed_parts()
            masters = store_masters(target, self.instruments)
            # Workers read the stored masters from the target themselves (StoredBookRef):
            # nothing of the masters travels, and a worker reads only the days it names.
            book_ref = StoredBookRef.of(target)
            for f in self.files:
                self._emit(f, QUEUED)
            client, cluster, own_client = self._connect()
            self._check_workers(client)
            try:
                self._pump(client, target, book_ref, cancel)
            finally:
                leftover = [fu for _, _, fu in self._futures.values()]
                if leftover:
                    client.cancel(leftover)
                self._futures.clear()
            if any(f.status not in (DONE, SKIPPED) for f in self.files):
                target.cleanup()  # staged parts of files not committed. A task still running
                # stages its parts after this (or after close): never committed, and swept by the
                # next open for writing, the journal keeping its write id as an ended write's
                # (recorded as written elsewhere: Journal.sweep_ended).
            if any(f.status == DONE for f in self.files) or masters:
                target.rebuild_unknown_tokens()
        finally:
            target.close()
            if own_client and client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
        return IngestReport(
            target=str(target.path), files=[f.result() for f in self.files], seconds=time.monotonic() - started,
        )

    def _submit(self, client, kind: str, f: _File, fn, *args):
        future = client.submit(fn, *args, pure=False, key=f"tickscope-{kind}-{f.index}-{os.urandom(4).hex()}")
        self._futures[future.key] = (kind, f, future)
        return future

    def _pump(self, client, target, book_ref, cancel: threading.Event | None) -> None:
        from distributed import as_completed

        done = as_completed()
        for f in self.files:
            f.started = time.monotonic()
            done.add(self._submit(client, "hash", f, hash_capture, str(f.path)))
            self._emit(f, HASHING)
        pending = len(self.files)
        while pending:
            if cancel is not None and cancel.is_set() and not self._cancelled.is_set():
                self.cancel()
            for key, (_, f, future) in list(self._futures.items()):
                if f.cancel.is_set() and not f.final:
                    client.cancel([future])
                    del self._futures[key]
                    self._finish(f, CANCELLED, None)
                    pending -= 1
            if not done.has_ready():
                time.sleep(POLL_SECONDS)
                continue
            for future in done.next_batch(block=False):
                entry = self._futures.pop(future.key, None)
                if entry is None:
                    continue  # cancelled above
                kind, f, _ = entry
                if kind == "hash":
                    follow = self._hashed(client, f, future, book_ref)
                    if follow is None:
                        pending -= 1
                    else:
                        done.add(follow)
                else:
                    self._ingested(target, f, future)
                    pending -= 1

    def _outcome(self, f: _File, future):
        """(result, None), or (None, the one-line error) of a future ``as_completed`` gave;
        (None, None) when the file was cancelled while waiting.

        A finished result can be lost before the client reads it (its worker died since):
        the scheduler recomputes it, so this waits for it again rather than reporting the
        lost result as a failure (which read "None": a lost future has no exception).
        """
        while True:
            if f.cancel.is_set():
                return None, None
            try:
                return future.result(timeout=1), None
            except TimeoutError as err:
                if future.status == "error":  # the task's own TimeoutError
                    return None, self._failure(err)
                continue  # still being recomputed
            except Exception as err:  # the task's error, KilledWorker, CancelledError
                return None, self._failure(err)

    def _failure(self, err) -> str:
        if isinstance(err, self.distributed.KilledWorker):
            return "a worker died each time it ran this file (KilledWorker); run the same command again to retry it"
        return _one_line(err) if str(err) else f"the task failed ({type(err).__name__})"

    def _hashed(self, client, f: _File, future, book_ref):
        """Next step after a file's hash: its ingest future, or None when the file is finished."""
        hashed, error = self._outcome(f, future)
        future.release()
        if hashed is None:
            self._finish(f, FAILED if error else CANCELLED, error)
            return None
        f.file_id, f.size_bytes = hashed
        f.bytes_done = f.size_bytes
        duplicate = self._seen.get(f.file_id)
        if duplicate is not None:
            self._finish(f, SKIPPED, f"same content as {duplicate}")
            return None
        self._seen[f.file_id] = f.path
        if f.file_id in self._existing and not self.force:
            self._finish(f, SKIPPED, "already in the target")
            return None
        write_id = self.write_id(f.file_id)  # once per file and run: a retried task reuses it
        self.target.record_write_id(write_id)  # before any file carrying it exists
        f.bytes_done = 0
        f.decode_started = time.monotonic()
        # The hash travels as its value: the ingest task does not depend on the worker that
        # computed it staying alive.
        follow = self._submit(client, "ingest", f, self.task, str(f.path), hashed, write_id,
                              str(self.target_path.resolve()), book_ref, self.chunk_bytes, self.memory_limit)
        self._emit(f, DECODING)
        return follow

    def write_id(self, file_id: str) -> str:
        """The write id this run gives ``file_id``'s parts (``task_write_id``)."""
        return task_write_id(file_id, self.run_id, self._stored_parts.get(file_id) or ())

    def _ingested(self, target, f: _File, future) -> None:
        result, error = self._outcome(f, future)
        future.release()  # a lost result must not be recomputed after it is committed
        if result is None:
            self._finish(f, FAILED if error else CANCELLED, error)
            return
        f.take_counts(result["capture"])
        f.framing = result["capture"].framing
        f.bytes_done = f.size_bytes
        self._emit(f, WRITING)
        tick_rows = sum(n for rel, n in result["parts"].items() if rel.startswith("ticks/"))
        try:
            if tick_rows != f.ticks:
                raise ValueError(f"the task wrote {tick_rows:,} tick rows for {f.ticks:,} ticks")
            damaged = f.file_id in self._damaged
            replacing = (self.force and f.file_id in self._existing) or damaged
            f.replaced, f.ingested_at = replacing, dt.datetime.now(dt.UTC)
            target.commit_parts(f, result["parts"], force=self.force or damaged)
        except AlreadyIngested:
            self._finish(f, SKIPPED, "already in the target")
            return
        except Exception as err:
            log.warning("committing %s failed: %s", f.path, err)
            if is_no_space(err):  # the same contract as the local engine: exit 6
                f.fault = FAULT_NO_SPACE
                self._finish(f, FAILED, no_space_message(self.target_path, f.size_bytes))
            else:
                self._finish(f, FAILED, f"writing to the target failed: {_one_line(err)}")
            return
        note = None
        if f.file_id in self._damaged:
            note = f"re-ingested: its stored rows were damaged ({self._damaged[f.file_id]})"
        self._finish(f, DONE, note)


def run_dask_ingest(paths: Sequence, target, **options) -> IngestReport:
    """Ingest ``paths`` into the Parquet folder ``target`` on a Dask cluster; see ``DaskIngestJob``."""
    cancel = options.pop("cancel", None)
    return DaskIngestJob(paths, target, **options).run(cancel=cancel)

"""The GUI thread's owner of background work: ingest jobs and short tasks.

``JobManager`` lives in the GUI thread. Each piece of work runs as a QRunnable on the
global QThreadPool; its signals object is created here, in the GUI thread, and both are
kept referenced until their finished/failed signal has been handled (superqt's rule:
a runnable must never own the QObject that reports for it).

Pipeline progress arrives on worker threads at any rate. The callback only stores the
latest ``CaptureRecord`` per file in a lock-protected dict; a 50 ms QTimer here drains it
and emits one batched ``progress`` signal, so the GUI sees at most ~20 updates a second
per file whatever the pipeline does, and the final state of each file is never lost
(it is simply the last one stored, and the dict is drained again before a job's
``job_finished`` is relayed).

A target admits one open handle per process, so work that opens it (ingests and
target tasks) is *exclusive*: it runs alone, in submission order, while other tasks
(loading instrument masters) run alongside.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from app.model.session import path_key

log = logging.getLogger(__name__)

DRAIN_INTERVAL_MS = 50
THROUGHPUT_INTERVAL_S = 0.5  # chart points: each one repaints the live chart


class TaskSignals(QObject):
    """Reports for one runnable; created and owned by the GUI thread. Each report carries
    its work id, so the JobManager connects its own slots (bound methods, not lambdas):
    Qt drops those connections when the manager is deleted with its window, and a runnable
    finishing after that reports to nobody instead of into a deleted manager."""

    finished = Signal(int, object)  # work id, result
    failed = Signal(int, object, str)  # work id, exception, formatted traceback

    def __init__(self, work_id: int):
        super().__init__()
        self.work_id = work_id


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[[], Any], signals: TaskSignals):
        super().__init__()
        self.setAutoDelete(False)  # the JobManager keeps it until its signal is handled
        self._fn = fn
        self._signals = signals

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - relayed to the GUI, logged there
            self._report(self._signals.failed, exc, traceback.format_exc())
            return
        self._report(self._signals.finished, result)

    def _report(self, signal, *args) -> None:
        try:
            signal.emit(self._signals.work_id, *args)
        except RuntimeError:  # the app is quitting and its signals object is gone: nobody to tell
            log.info("background work finished after its window closed")


class ProgressCoalescer:
    """Latest progress per file, written by any thread, drained by the GUI timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}

    def put(self, progress) -> None:
        key = path_key(progress.path)
        with self._lock:
            self._latest[key] = progress

    def drain(self) -> list:
        with self._lock:
            latest, self._latest = self._latest, {}
        return list(latest.values())


@dataclass
class _Work:
    id: int
    kind: str  # "ingest" | "task"
    runnable: _Runnable
    signals: TaskSignals
    job: Any = None
    paths: list[str] = field(default_factory=list)
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException, str], None] | None = None
    exclusive: bool = False  # holds the target: runs alone, in submission order
    launched: bool = False


def _default_job_factory(*args, **kwargs):
    from app.pipeline import IngestJob

    return IngestJob(*args, **kwargs)


# Modules the workers import on first use. A first import holds the GIL for tens of
# milliseconds (PySide's import hook even reads each module's source), which would
# freeze the window during the first ingest; importing them up front moves that to startup.
WORKER_MODULES = (
    "app.pipeline", "app.store.duck", "app.store.parquet", "app.core.instruments", "app.core.enrich",
    "app.core.unknown", "app.core.decode", "app.core.framing", "app.core.tick_sources",
    "pyarrow.csv", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.compute", "duckdb",
)


def warm_up() -> None:
    import importlib

    for name in WORKER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional module: its absence shows up when it is needed
            log.debug("warm-up: %s not importable", name)


# While decode threads are busy the GUI thread waits for the GIL at every Python step;
# a short switch interval caps each wait at ~1 ms instead of 5 ms.
GUI_SWITCH_INTERVAL_S = 0.001


class JobManager(QObject):
    """Starts, tracks, throttles and cancels the app's background work."""

    progress = Signal(list)  # list[CaptureRecord]: latest state of files that changed
    job_started = Signal(int, list)  # job id, path keys
    job_finished = Signal(int, object)  # job id, IngestReport
    job_failed = Signal(int, object, str)  # job id, exception, traceback
    task_finished = Signal(int)  # task id (after its callback ran)
    throughput = Signal(float, float, float)  # seconds since the current job started, packets/s, MB/s
    busy_changed = Signal(bool)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        job_factory: Callable[..., Any] | None = None,
        pool: QThreadPool | None = None,
        interval_ms: int = DRAIN_INTERVAL_MS,
    ):
        super().__init__(parent)
        self._factory = job_factory or _default_job_factory
        if job_factory is None:
            warm_up()
        if sys.getswitchinterval() > GUI_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)
        self._pool = pool or QThreadPool.globalInstance()
        # An ingest occupies one pool thread for its whole run; keep room for tasks.
        self._pool.setMaxThreadCount(max(self._pool.maxThreadCount(), 4))
        self._ids = itertools.count(1)
        self._work: dict[int, _Work] = {}
        self._coalescer = ProgressCoalescer()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._drain)
        self._last_seen: dict[str, tuple[int, int]] = {}  # path -> (bytes, packets)
        self._window_bytes = 0
        self._window_packets = 0
        self._window_start = time.monotonic()
        self._epoch: float | None = None
        self._busy = False
        self._pending: collections.deque[_Work] = collections.deque()
        self._exclusive: int | None = None
        self.shutting_down = False

    # --- ingest jobs -----------------------------------------------------------------

    def start_ingest(
        self, paths: list[str], target: str, *, instruments=(), workers: int = 2, force: bool = False
    ) -> int:
        job = self._factory(
            list(paths), target, instruments=list(instruments), workers=workers, force=force,
            progress=self._coalescer.put,
        )
        work_id = next(self._ids)
        signals = TaskSignals(work_id)  # created here, in the GUI thread
        work = _Work(work_id, "ingest", _Runnable(job.run, signals), signals, job=job,
                     paths=[path_key(p) for p in paths], exclusive=True)
        signals.finished.connect(self._ingest_finished)
        signals.failed.connect(self._ingest_failed)
        self._work[work_id] = work
        log.info("ingest job %d: %d files -> %s", work_id, len(paths), target)
        self._submit(work)
        self.job_started.emit(work_id, work.paths)
        return work_id

    def cancel_file(self, path) -> bool:
        """Cancel one file of whichever running job has it; False if none has."""
        key = path_key(path)
        for work in self._ingests():
            if key in work.paths:
                work.job.cancel_file(key)
                return True
        return False

    def cancel_all(self) -> None:
        for work in self._ingests():
            work.job.cancel()

    def active_paths(self) -> set[str]:
        return {p for work in self._ingests() for p in work.paths}

    def running_jobs(self) -> int:
        return sum(1 for _ in self._ingests())

    def _ingests(self):
        return [w for w in self._work.values() if w.kind == "ingest"]

    # --- short tasks -------------------------------------------------------------------

    def run_task(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException, str], None] | None = None,
        *,
        exclusive: bool = False,
    ) -> int:
        """Run ``fn`` on the pool; its callback runs later in the GUI thread.

        ``exclusive``: ``fn`` opens the target, so it waits for any ingest or other
        target task to finish first.
        """
        work_id = next(self._ids)
        signals = TaskSignals(work_id)
        work = _Work(work_id, "task", _Runnable(fn, signals), signals, on_done=on_done,
                     on_error=on_error, exclusive=exclusive)
        signals.finished.connect(self._task_done)
        signals.failed.connect(self._task_failed)
        self._work[work_id] = work
        self._submit(work)
        return work_id

    def _submit(self, work: _Work) -> None:
        if work.exclusive and (self._exclusive is not None or self._pending):
            self._pending.append(work)
        else:
            self._launch(work)
        self._set_busy()

    def _launch(self, work: _Work) -> None:
        if work.exclusive:
            self._exclusive = work.id
        if work.kind == "ingest":
            if self._epoch is None or not any(w.launched for w in self._ingests()):
                self._epoch = time.monotonic()  # the chart's time axis: since this job started
            self._window_start = time.monotonic()
            self._timer.start()
        work.launched = True
        self._pool.start(work.runnable)

    def _release(self, work: _Work | None) -> None:
        if work is not None and work.exclusive and self._exclusive == work.id:
            self._exclusive = None
        while self._exclusive is None and self._pending:
            nxt = self._pending.popleft()
            if nxt.id in self._work:
                self._launch(nxt)

    def pending_tasks(self) -> int:
        return sum(1 for w in self._work.values() if w.kind == "task")

    # --- state ---------------------------------------------------------------------------

    def is_busy(self) -> bool:
        return bool(self._work)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything and wait for the pool; True if nothing is left running."""
        self.shutting_down = True
        for work in list(self._pending):  # never started: nothing to wait for
            self._work.pop(work.id, None)
        self._pending.clear()
        self.cancel_all()
        done = self._pool.waitForDone(timeout_ms)
        self._timer.stop()
        if not done:
            log.error("background work still running after %d ms", timeout_ms)
        return done

    # --- GUI-thread handlers ----------------------------------------------------------------

    @Slot()
    def _drain(self, flush: bool = False) -> None:
        batch = self._coalescer.drain()
        if batch:
            self._account(batch)
            self.progress.emit(batch)
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed >= THROUGHPUT_INTERVAL_S or (flush and elapsed > 0.05 and self._window_bytes):
            self.throughput.emit(
                now - (self._epoch or now),
                self._window_packets / elapsed,
                self._window_bytes / elapsed / 1e6,
            )
            self._window_bytes = self._window_packets = 0
            self._window_start = now
        if not self._ingests():
            self._timer.stop()

    def _account(self, batch: list) -> None:
        for fp in batch:
            key = path_key(fp.path)
            prev_bytes, prev_packets = self._last_seen.get(key, (0, 0))
            bytes_done = int(fp.bytes_done or 0)
            packets = int(fp.packets or 0)
            self._window_bytes += max(0, bytes_done - prev_bytes)
            self._window_packets += max(0, packets - prev_packets)
            self._last_seen[key] = (bytes_done, packets)

    @Slot(int, object)
    def _ingest_finished(self, work_id: int, report) -> None:
        work = self._work.pop(work_id, None)
        self._drain(flush=True)  # final states (and the last throughput point) first, then the report
        for key in work.paths if work else ():
            self._last_seen.pop(key, None)
        self._release(work)
        self.job_finished.emit(work_id, report)
        self._set_busy()

    @Slot(int, object, str)
    def _ingest_failed(self, work_id: int, exc: BaseException, tb: str) -> None:
        work = self._work.pop(work_id, None)
        self._drain()
        for key in work.paths if work else ():
            self._last_seen.pop(key, None)
        self._release(work)
        if isinstance(exc, Exception) and getattr(exc, "exit_code", None) is not None:
            log.warning("ingest job %d: %s", work_id, exc)
        else:
            log.error("ingest job %d failed: %s\n%s", work_id, exc, tb)
        self.job_failed.emit(work_id, exc, tb)
        self._set_busy()

    @Slot(int, object)
    def _task_done(self, work_id: int, result) -> None:
        self._task_finished(work_id, result, None, "")

    @Slot(int, object, str)
    def _task_failed(self, work_id: int, exc: BaseException, tb: str) -> None:
        self._task_finished(work_id, None, exc, tb)

    def _task_finished(self, work_id: int, result, exc, tb: str) -> None:
        work = self._work.pop(work_id, None)
        self._release(work)
        try:
            if work is None or self.shutting_down:
                return
            if exc is None:
                if work.on_done:
                    work.on_done(result)
            else:
                log.error("background task failed: %s\n%s", exc, tb)
                if work.on_error:
                    work.on_error(exc, tb)
        finally:
            self.task_finished.emit(work_id)
            self._set_busy()

    def _set_busy(self) -> None:
        busy = bool(self._work)
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

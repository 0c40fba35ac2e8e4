"""The queue of one target: one record per capture, one status vocabulary, structured faults.

``Session`` holds the rows the window shows (and a scripted ``tickscope gui`` reports).
Every rule about them is here: what a pipeline stage or result means for a row, what
cancelling does (a cancelled row is ``cancelled`` once its job says so or ends, never
left "cancelling…"), what retry resets, how finished rows take their counts from the
target after each change (ingest, resolve, remove), and the ETA (bytes remaining over
the recent rate of all running files). Views observe it through ``SessionListener``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol

from app.core.capture import (  # noqa: F401
    CANCELLED,
    DECODING,
    DONE,
    FAILED,
    FINISHED,
    QUEUED,
    SKIPPED,
    STATUSES,  # the one status vocabulary
    WRITING,
    CaptureRecord,
)
from app.errors import EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from app.model import faults
from app.model.faults import Fault, fault_for_file

RETRYABLE = frozenset({FAILED, CANCELLED})
CANCELLING = "cancelling…"
RATE_WINDOW_S = 10.0  # the ETA's rate: bytes decoded over the last this-many seconds
NO_LONGER_STORED = "no longer in the target"

# A queue row saved with its target keeps its record, not what only a running job knows.
_NOT_SAVED = frozenset({"hashing", "rate_pps", "index", "first_tick_time", "last_tick_time", "ingested_at",
                        "tool_version", "replaced"})


def path_key(path) -> str:
    """The one spelling of a file path used to match rows, progress and results."""
    return os.path.abspath(os.fspath(path))


@dataclass(eq=False)
class QueueRow(CaptureRecord):
    """A capture in the queue: its record (``CaptureRecord``, the one per-capture record
    type) plus what only the session knows of it."""

    failure: Fault | None = None  # with FAILED: the whole story (advice, log file, traceback)
    job_id: int | None = None  # the running job that has it (not persisted)
    cancel_requested: bool = False

    @property
    def stored(self) -> bool:
        """Its capture is in the target (ingested, or skipped as already there)."""
        return self.status in (DONE, SKIPPED) and bool(self.file_id)

    def reset(self) -> None:
        fresh = QueueRow(self.path, size_bytes=self.size_bytes, framing=self.framing)
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(CaptureRecord) if f.name not in _NOT_SAVED}
        data["failure"] = self.failure.to_json() if self.failure else None
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> QueueRow:
        data = dict(data)
        if "size" in data:  # saved by an earlier version
            data.setdefault("size_bytes", data.pop("size"))
            data.setdefault("error", data.pop("note", None) or None)
            if isinstance(data.get("fault"), Mapping):
                data["failure"] = data.pop("fault")
        known = {f.name for f in fields(CaptureRecord)} - _NOT_SAVED
        row = cls(**{k: data[k] for k in known if k in data})
        row.failure = Fault.from_json(data["failure"]) if data.get("failure") else None
        if row.status not in STATUSES:
            row.status = QUEUED
        if row.is_active:  # the app stopped while it ran: it never reached the target
            row.status, row.error = CANCELLED, "interrupted when the app quit"
            row.bytes_done = 0
        return row


class SessionListener(Protocol):
    def rows_inserted(self, first: int, last: int) -> None: ...
    def rows_changed(self, first: int, last: int) -> None: ...
    def rows_reset(self) -> None: ...


@dataclass
class RateMeter:
    """Bytes decoded per second over the last ``window`` seconds, summed over every running file."""

    window: float = RATE_WINDOW_S
    _samples: deque = field(default_factory=deque)  # (monotonic time, total bytes done)

    def add(self, now: float, total_bytes: int) -> None:
        if self._samples and total_bytes < self._samples[-1][1]:
            self._samples.clear()  # a new job: the total started again
        self._samples.append((now, total_bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def clear(self) -> None:
        self._samples.clear()


class Session:
    """The queue of one target (``target`` may be None before one is chosen)."""

    def __init__(self, target: str | None = None, rows: Iterable[QueueRow] = ()):
        self.target = target
        self._rows: list[QueueRow] = list(rows)
        self._index = {r.path: i for i, r in enumerate(self._rows)}
        self._listeners: list[SessionListener] = []
        self.rate = RateMeter()
        self._job_bytes: dict[str, int] = {}  # bytes done per running file, for the rate
        self._clock: Callable[[], float] = time.monotonic

    # --- observing ---------------------------------------------------------------------

    def subscribe(self, listener: SessionListener) -> None:
        self._listeners.append(listener)

    def _inserted(self, first: int, last: int) -> None:
        for listener in self._listeners:
            listener.rows_inserted(first, last)

    def _changed(self, indices: Iterable[int]) -> None:
        indices = list(indices)
        if indices:
            for listener in self._listeners:
                listener.rows_changed(min(indices), max(indices))

    def _reset(self) -> None:
        for listener in self._listeners:
            listener.rows_reset()

    # --- reading ---------------------------------------------------------------------------

    @property
    def rows(self) -> list[QueueRow]:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, path) -> QueueRow | None:
        i = self._index.get(path_key(path))
        return None if i is None else self._rows[i]

    def row_at(self, index: int) -> QueueRow:
        return self._rows[index]

    def queued_unassigned(self) -> list[str]:
        return [r.path for r in self._rows if r.status == QUEUED and r.job_id is None]

    def unfinished(self) -> list[QueueRow]:
        return [r for r in self._rows if not r.final]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self._rows:
            counts[r.status] += 1
        return counts

    def failed(self) -> list[QueueRow]:
        return [r for r in self._rows if r.status == FAILED]

    def exit_code(self) -> int:
        """As `tickscope ingest` would exit: 0 if no file failed; 2 if there was no target to
        start into; 3 if a locked target failed them; else 4."""
        codes = {r.failure.code if r.failure else "" for r in self.failed()}
        if not codes:
            return EXIT_OK
        if faults.NO_TARGET in codes:
            return EXIT_USAGE
        return EXIT_LOCKED if faults.TARGET_LOCKED in codes else EXIT_PARTIAL

    def failure_lines(self, prog: str) -> list[str]:
        """One line per failed row, for a scripted run's stderr."""
        return [f"{prog}: {r.path}: {r.failure.message if r.failure else r.error or 'failed'}" for r in self.failed()]

    def eta_seconds(self) -> float | None:
        """Bytes still to decode in started work over the recent rate of all running files."""
        running = [r for r in self._rows if r.job_id is not None and not r.final]
        if not running:
            return None
        rate = self.rate.rate()
        if rate <= 0:
            return None
        return sum(r.remaining_bytes for r in running) / rate

    # --- changing ------------------------------------------------------------------------------

    def add(self, entries: Iterable) -> list[str]:
        """Queue ``QueueEntry``s (path, size, framing); returns the paths actually (re)queued.

        A path already queued or running is left alone; a finished one is queued again.
        """
        added: list[str] = []
        new_rows: list[QueueRow] = []
        changed: list[int] = []
        for entry in entries:
            key = path_key(entry.path)
            existing = self.row(key)
            if existing is not None:
                if existing.final:
                    existing.reset()
                    existing.size_bytes, existing.framing = entry.size, entry.framing
                    changed.append(self._index[key])
                    added.append(key)
                continue
            if key in (r.path for r in new_rows):
                continue
            new_rows.append(QueueRow(key, size_bytes=entry.size, framing=entry.framing))
        self._changed(changed)
        if new_rows:
            first = len(self._rows)
            for r in new_rows:
                self._index[r.path] = len(self._rows)
                self._rows.append(r)
            self._inserted(first, len(self._rows) - 1)
            added.extend(r.path for r in new_rows)
        return added

    def startable(self) -> list[str]:
        """Queued rows no job has yet, once those whose file vanished are failed (alone)."""
        queued = self.queued_unassigned()
        gone = [p for p in queued if not os.path.exists(p)]
        if gone:
            self.fail(gone, faults.make(faults.VANISHED, "the file no longer exists"))
        return [p for p in queued if p not in gone]

    def assign_job(self, paths: Iterable[str], job_id: int) -> None:
        for path in paths:
            row = self.row(path)
            if row is not None:
                row.job_id = job_id
                self._job_bytes[row.path] = 0

    def apply_progress(self, batch: Iterable[CaptureRecord]) -> None:
        """The latest record of each changed file (one change notice for the batch)."""
        touched: list[int] = []
        for update in batch:
            i = self._index.get(path_key(update.path))
            if i is None:
                continue
            row = self._rows[i]
            if row.final:
                continue  # a late update must not reopen a settled row
            status = row.status if update.status == QUEUED and row.is_active else update.status
            # Hashing reads the file once more; decoding is the progress.
            row.bytes_done = 0 if update.hashing else int(update.bytes_done or 0)
            self._take(row, update)
            row.rate_pps = float(update.rate_pps or 0.0)
            if status in FINISHED:
                self._settle(row, status, update.error, code=update.fault)
            else:
                row.status = status
            if row.job_id is not None:
                self._job_bytes[row.path] = row.size_bytes if row.final else row.bytes_done
            touched.append(i)
        if touched:
            self.rate.add(self._clock(), sum(self._job_bytes.values()))
        self._changed(touched)

    @staticmethod
    def _take(row: QueueRow, record: CaptureRecord) -> None:
        """What the pipeline learnt of the file: its id, framing and counters."""
        row.file_id = record.file_id or row.file_id
        row.framing = record.framing or row.framing
        row.take_counts(record)

    def _settle(self, row: QueueRow, status: str, error: str | None, failure: Fault | None = None,
                code: str | None = None) -> None:
        """A row reaches its final status: its error and failure say exactly that, nothing stale."""
        row.status = status
        row.rate_pps = 0.0
        row.cancel_requested = False
        if status in (DONE, SKIPPED):
            row.bytes_done = row.size_bytes
        row.failure = None
        if status == FAILED:
            row.failure = failure or fault_for_file(error or "failed", row.path, code)
            row.error = row.failure.message
        elif status == CANCELLED:
            row.error = error or "cancelled"
        elif status == SKIPPED:
            row.error = error or "already in the target"
        else:
            row.error = error or None
        row.fault = row.failure.code if row.failure else None

    def apply_result(self, result: CaptureRecord) -> None:
        """A file's final record from the job's report: the authoritative state of one file."""
        i = self._index.get(path_key(result.path))
        if i is None:
            return
        row = self._rows[i]
        self._take(row, result)
        # The pipeline says which kind of failure (codes are the model's).
        self._settle(row, result.status if result.final else FAILED, result.error, code=result.fault)
        row.job_id = None
        self._job_bytes.pop(row.path, None)
        self._changed([i])

    def finish_job(self, job_id: int, report_files: Iterable = ()) -> None:
        """The job ended: apply its report; rows it did not report were cancelled or lost."""
        reported = set()
        for result in report_files:
            self.apply_result(result)
            reported.add(path_key(result.path))
        changed = []
        for i, row in enumerate(self._rows):
            if row.job_id == job_id and row.path not in reported:
                if row.cancel_requested:
                    self._settle(row, CANCELLED, "cancelled")
                else:
                    self._settle(row, FAILED, None, fault_for_file(
                        "the ingest ended without reporting this file", row.path, code="internal"))
                row.job_id = None
                changed.append(i)
        for path in [p for p in self._job_bytes if self.row(p) is None or self.row(p).job_id is None]:
            self._job_bytes.pop(path, None)
        if not self._job_bytes:
            self.rate.clear()
        self._changed(changed)

    def fail_job(self, job_id: int, fault: Fault) -> list[str]:
        """The whole job failed (target locked, a bug): its unfinished rows carry the fault."""
        paths = [r.path for r in self._rows if r.job_id == job_id and not r.final]
        return self.fail(paths, fault)

    def fail(self, paths: Iterable[str], fault: Fault) -> list[str]:
        changed, failed = [], []
        for path in paths:
            i = self._index.get(path_key(path))
            if i is None or self._rows[i].final:
                continue
            row = self._rows[i]
            self._settle(row, FAILED, None, Fault(fault.code, fault.message, fault.advice, row.path,
                                                  fault.traceback, fault.log_file))
            row.job_id = None
            self._job_bytes.pop(row.path, None)
            changed.append(i)
            failed.append(row.path)
        self._changed(changed)
        return failed

    def cancel(self, paths: Iterable[str], cancel_running: Callable[[str], bool]) -> int:
        """Cancel rows: a queued row at once; a running one asks its job (``cancel_running``)
        and shows "cancelling…" until the job reports it or ends."""
        changed, n = [], 0
        for path in paths:
            i = self._index.get(path_key(path))
            if i is None or self._rows[i].final:
                continue
            row = self._rows[i]
            if row.job_id is not None and cancel_running(row.path):
                row.cancel_requested = True
                row.error = CANCELLING
            else:
                self._settle(row, CANCELLED, "cancelled before it started")
                row.job_id = None
            changed.append(i)
            n += 1
        self._changed(changed)
        return n

    def retry(self, paths: Iterable[str]) -> list[str]:
        """Failed or cancelled rows back to the queue; returns their paths."""
        again, changed = [], []
        for path in paths:
            i = self._index.get(path_key(path))
            if i is not None and self._rows[i].status in RETRYABLE:
                self._rows[i].reset()
                changed.append(i)
                again.append(self._rows[i].path)
        self._changed(changed)
        return again

    def remove_finished(self) -> int:
        return self._keep([r for r in self._rows if not r.final])

    def requeue(self, entries: Iterable) -> list[str]:
        """Queue ``entries`` afresh (to ingest again): their old rows, unless running, go first."""
        entries = list(entries)
        self.remove([e.path for e in entries])
        return self.add(entries)

    def remove(self, paths: Iterable[str]) -> int:
        """Take finished or never-started rows out of the queue (running ones stay)."""
        gone = {path_key(p) for p in paths}
        return self._keep([r for r in self._rows if r.path not in gone or r.job_id is not None])

    def _keep(self, keep: list[QueueRow]) -> int:
        removed = len(self._rows) - len(keep)
        if removed:
            self._rows = keep
            self._index = {r.path: i for i, r in enumerate(keep)}
            self._reset()
        return removed

    def apply_target_counts(self, stored: Mapping[str, CaptureRecord]) -> None:
        """Counts from the target's ``captures`` table, read after a change (ingest, resolve,
        remove): finished rows show what the target holds now, so every view agrees."""
        changed = []
        for i, row in enumerate(self._rows):
            if not row.stored:
                continue
            record = stored.get(row.file_id)
            if record is None:
                new = (0, 0, 0, NO_LONGER_STORED)
            else:
                new = (record.packets, record.bad_packets, record.unresolved_ticks,
                       None if row.error == NO_LONGER_STORED else row.error)
            if new != (row.packets, row.bad_packets, row.unresolved_ticks, row.error):
                row.packets, row.bad_packets, row.unresolved_ticks, row.error = new
                changed.append(i)
        self._changed(changed)

    def replace_rows(self, rows: Iterable[QueueRow], target: str | None) -> None:
        """Show another target's queue (the window switched targets)."""
        self.target = target
        self._rows = list(rows)
        self._index = {r.path: i for i, r in enumerate(self._rows)}
        self._job_bytes.clear()
        self.rate.clear()
        self._reset()

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
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Protocol

from app.errors import EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from app.model import faults
from app.model.faults import Fault, fault_for_file

# The one status vocabulary.
QUEUED = "queued"
DECODING = "decoding"
WRITING = "writing"
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, DECODING, WRITING, DONE, SKIPPED, FAILED, CANCELLED)
ACTIVE = frozenset({DECODING, WRITING})
FINISHED = frozenset({DONE, SKIPPED, FAILED, CANCELLED})
RETRYABLE = frozenset({FAILED, CANCELLED})

# Pipeline words (FileProgress.stage, FileResult.status) -> the vocabulary. Hashing is
# reading the file to name it: part of decoding as far as anyone watching is concerned.
_PIPELINE_WORDS = {
    "queued": QUEUED, "hashing": DECODING, "decoding": DECODING, "writing": WRITING,
    "done": DONE, "ingested": DONE, "skipped": SKIPPED, "failed": FAILED, "cancelled": CANCELLED,
}

CANCELLING = "cancelling…"
RATE_WINDOW_S = 10.0  # the ETA's rate: bytes decoded over the last this-many seconds


def status_of(pipeline_word: str, default: str = FAILED) -> str:
    return _PIPELINE_WORDS.get(pipeline_word, default)


def path_key(path) -> str:
    """The one spelling of a file path used to match rows, progress and results."""
    return os.path.abspath(os.fspath(path))


@dataclass
class CaptureRow:
    """Everything the session knows about one capture file (the one record type)."""

    path: str
    size: int
    framing: str
    status: str = QUEUED
    file_id: Optional[str] = None
    bytes_done: int = 0
    packets: int = 0
    bad_packets: int = 0
    unresolved_ticks: int = 0
    ticks: int = 0
    rate_pps: float = 0.0
    note: str = ""
    suspect: int = 0  # ticks stored with a suspect_reason (values that cannot be real)
    fault: Optional[Fault] = None
    job_id: Optional[int] = None  # the running job that has it (not persisted)
    cancel_requested: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def fraction(self) -> float:
        if self.status in (DONE, SKIPPED):
            return 1.0
        return min(1.0, self.bytes_done / self.size) if self.size else 0.0

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def remaining_bytes(self) -> int:
        return 0 if self.is_finished else max(0, self.size - self.bytes_done)

    def reset(self) -> None:
        self.status = QUEUED
        self.bytes_done = self.packets = self.bad_packets = self.unresolved_ticks = self.ticks = self.suspect = 0
        self.rate_pps = 0.0
        self.note = ""
        self.fault = None
        self.job_id = None
        self.cancel_requested = False

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("job_id")
        data.pop("cancel_requested")
        data["fault"] = self.fault.to_json() if self.fault else None
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> "CaptureRow":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("job_id", "fault")}
        row = cls(**known)
        row.fault = Fault.from_json(data["fault"]) if data.get("fault") else None
        if row.status not in STATUSES:
            row.status = QUEUED
        if row.is_active:  # the app stopped while it ran: it never reached the target
            row.status, row.note = CANCELLED, "interrupted when the app quit"
            row.bytes_done = 0
        return row


@dataclass(frozen=True)
class CaptureCounts:
    """One capture's counts as stored in the target (its ``captures`` row)."""

    packets: int
    bad_packets: int
    unresolved_ticks: int


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

    def __init__(self, target: Optional[str] = None, rows: Iterable[CaptureRow] = ()):
        self.target = target
        self._rows: list[CaptureRow] = list(rows)
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
    def rows(self) -> list[CaptureRow]:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, path) -> Optional[CaptureRow]:
        i = self._index.get(path_key(path))
        return None if i is None else self._rows[i]

    def row_at(self, index: int) -> CaptureRow:
        return self._rows[index]

    def queued_unassigned(self) -> list[str]:
        return [r.path for r in self._rows if r.status == QUEUED and r.job_id is None]

    def unfinished(self) -> list[CaptureRow]:
        return [r for r in self._rows if not r.is_finished]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self._rows:
            counts[r.status] += 1
        return counts

    def failed(self) -> list[CaptureRow]:
        return [r for r in self._rows if r.status == FAILED]

    def exit_code(self) -> int:
        """As `tickscope ingest` would exit: 0 if no file failed; 2 if there was no target to
        start into; 3 if a locked target failed them; else 4."""
        codes = {r.fault.code if r.fault else "" for r in self.failed()}
        if not codes:
            return EXIT_OK
        if faults.NO_TARGET in codes:
            return EXIT_USAGE
        return EXIT_LOCKED if faults.TARGET_LOCKED in codes else EXIT_PARTIAL

    def failure_lines(self, prog: str) -> list[str]:
        """One line per failed row, for a scripted run's stderr."""
        return [f"{prog}: {r.path}: {r.fault.message if r.fault else r.note or 'failed'}" for r in self.failed()]

    def eta_seconds(self) -> Optional[float]:
        """Bytes still to decode in started work over the recent rate of all running files."""
        running = [r for r in self._rows if r.job_id is not None and not r.is_finished]
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
        new_rows: list[CaptureRow] = []
        changed: list[int] = []
        for entry in entries:
            key = path_key(entry.path)
            existing = self.row(key)
            if existing is not None:
                if existing.is_finished:
                    existing.reset()
                    existing.size, existing.framing = entry.size, entry.framing
                    changed.append(self._index[key])
                    added.append(key)
                continue
            if key in (r.path for r in new_rows):
                continue
            new_rows.append(CaptureRow(path=key, size=entry.size, framing=entry.framing))
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

    def apply_progress(self, batch: Iterable) -> None:
        """The latest ``FileProgress`` of each changed file (one change notice for the batch)."""
        touched: list[int] = []
        for fp in batch:
            i = self._index.get(path_key(fp.path))
            if i is None:
                continue
            row = self._rows[i]
            if row.is_finished:
                continue  # a late update must not reopen a settled row
            stage = status_of(fp.stage, row.status)
            if stage == QUEUED and row.is_active:
                stage = row.status
            if fp.stage == "hashing":
                row.bytes_done = 0  # hashing reads the file once more; decoding is the progress
            else:
                row.bytes_done = int(fp.bytes_done or 0)
            row.file_id = fp.file_id or row.file_id
            row.packets = int(fp.packets or 0)
            row.bad_packets = int(fp.bad_packets or 0)
            row.unresolved_ticks = int(fp.unresolved_ticks or 0)
            row.suspect = int(getattr(fp, "suspect", 0) or 0)
            row.rate_pps = float(fp.rate_pps or 0.0)
            if stage in FINISHED:
                self._settle(row, stage, fp.error)
            else:
                row.status = stage
            if row.job_id is not None:
                self._job_bytes[row.path] = row.size if row.is_finished else row.bytes_done
            touched.append(i)
        if touched:
            self.rate.add(self._clock(), sum(self._job_bytes.values()))
        self._changed(touched)

    def _settle(self, row: CaptureRow, status: str, error: Optional[str], fault: Optional[Fault] = None) -> None:
        """A row reaches its final status: notes and faults say exactly that, nothing stale."""
        row.status = status
        row.rate_pps = 0.0
        row.cancel_requested = False
        if status in (DONE, SKIPPED):
            row.bytes_done = row.size
        if status == FAILED:
            row.fault = fault or fault_for_file(error or "failed", row.path)
            row.note = row.fault.message
        elif status == CANCELLED:
            row.fault = None
            row.note = error or "cancelled"
        elif status == SKIPPED:
            row.fault = None
            row.note = error or "already in the target"
        else:
            row.fault = None
            row.note = error or ""

    def apply_result(self, result) -> None:
        """A ``FileResult`` of the job's report: the authoritative final state of one file."""
        i = self._index.get(path_key(result.path))
        if i is None:
            return
        row = self._rows[i]
        row.file_id = result.file_id or row.file_id
        row.packets = int(result.packets or 0)
        row.bad_packets = int(result.bad_packets or 0)
        row.unresolved_ticks = int(result.unresolved_ticks or 0)
        row.suspect = int(getattr(result, "suspect", 0) or 0)
        row.ticks = int(getattr(result, "ticks", 0) or 0)
        status = status_of(result.status)
        code = getattr(result, "fault", None)  # the pipeline says which kind (codes are the model's)
        self._settle(row, status, result.error,
                     fault_for_file(result.error or "failed", row.path, code) if status == FAILED else None)
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
        paths = [r.path for r in self._rows if r.job_id == job_id and not r.is_finished]
        return self.fail(paths, fault)

    def fail(self, paths: Iterable[str], fault: Fault) -> list[str]:
        changed, failed = [], []
        for path in paths:
            i = self._index.get(path_key(path))
            if i is None or self._rows[i].is_finished:
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
            if i is None or self._rows[i].is_finished:
                continue
            row = self._rows[i]
            if row.job_id is not None and cancel_running(row.path):
                row.cancel_requested = True
                row.note = CANCELLING
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
        return self._keep([r for r in self._rows if not r.is_finished])

    def remove(self, paths: Iterable[str]) -> int:
        """Take finished or never-started rows out of the queue (running ones stay)."""
        gone = {path_key(p) for p in paths}
        return self._keep([r for r in self._rows if r.path not in gone or r.job_id is not None])

    def _keep(self, keep: list[CaptureRow]) -> int:
        removed = len(self._rows) - len(keep)
        if removed:
            self._rows = keep
            self._index = {r.path: i for i, r in enumerate(keep)}
            self._reset()
        return removed

    def apply_target_counts(self, stored: Mapping[str, CaptureCounts]) -> None:
        """Counts from the target's ``captures`` table, read after a change (ingest, resolve,
        remove): finished rows show what the target holds now, so every view agrees."""
        changed = []
        for i, row in enumerate(self._rows):
            if row.status not in (DONE, SKIPPED) or not row.file_id:
                continue
            counts = stored.get(row.file_id)
            if counts is None:
                new = (0, 0, 0, "no longer in the target")
            else:
                new = (counts.packets, counts.bad_packets, counts.unresolved_ticks,
                       "" if row.note == "no longer in the target" else row.note)
            if new != (row.packets, row.bad_packets, row.unresolved_ticks, row.note):
                row.packets, row.bad_packets, row.unresolved_ticks, row.note = new
                changed.append(i)
        self._changed(changed)

    def replace_rows(self, rows: Iterable[CaptureRow], target: Optional[str]) -> None:
        """Show another target's queue (the window switched targets)."""
        self.target = target
        self._rows = list(rows)
        self._index = {r.path: i for i, r in enumerate(self._rows)}
        self._job_bytes.clear()
        self.rate.clear()
        self._reset()

"""The ingest queue as a Qt table model: one row per capture file, never a widget per row.

Rows are keyed by absolute path. Progress batches from the JobManager update rows in
place and announce one ``dataChanged`` per batch; the job's report then settles each
file's final status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from app.ui.formatting import human_bytes, human_count, human_duration, human_rate
from app.ui.job_manager import path_key

QUEUED = "queued"
HASHING = "hashing"
DECODING = "decoding"
WRITING = "writing"
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
CANCELLED = "cancelled"

ACTIVE = frozenset({HASHING, DECODING, WRITING})
FINISHED = frozenset({DONE, SKIPPED, FAILED, CANCELLED})
STATUSES = (QUEUED, HASHING, DECODING, WRITING, DONE, SKIPPED, FAILED, CANCELLED)

# IngestReport FileResult.status -> row status
RESULT_STATUS = {"ingested": DONE, "skipped": SKIPPED, "failed": FAILED, "cancelled": CANCELLED}

STATUS_COLORS = {
    QUEUED: "#8a8f98",
    HASHING: "#3b82f6",
    DECODING: "#3b82f6",
    WRITING: "#8b5cf6",
    DONE: "#16a34a",
    SKIPPED: "#64748b",
    FAILED: "#dc2626",
    CANCELLED: "#a16207",
}

ProgressRole = Qt.ItemDataRole.UserRole + 1  # float 0..1 for the progress delegate
StatusRole = Qt.ItemDataRole.UserRole + 2  # the row's status string
RawRole = Qt.ItemDataRole.UserRole + 3  # the raw value behind a formatted cell


class Column(IntEnum):
    FILE = 0
    SIZE = 1
    FRAMING = 2
    STATUS = 3
    PROGRESS = 4
    PACKETS = 5
    RATE = 6
    ETA = 7
    BAD = 8
    UNRESOLVED = 9
    NOTE = 10
    ACTION = 11


HEADERS = {
    Column.FILE: "File",
    Column.SIZE: "Size",
    Column.FRAMING: "Framing",
    Column.STATUS: "Status",
    Column.PROGRESS: "Progress",
    Column.PACKETS: "Packets",
    Column.RATE: "Rate",
    Column.ETA: "ETA",
    Column.BAD: "Bad packets",
    Column.UNRESOLVED: "Unresolved ticks",
    Column.NOTE: "Details",
    Column.ACTION: "",
}

_NUMERIC = {Column.SIZE, Column.PACKETS, Column.RATE, Column.ETA, Column.BAD, Column.UNRESOLVED}


@dataclass
class QueueRow:
    path: str
    size: int
    framing: str
    status: str = QUEUED
    file_id: Optional[str] = None
    bytes_done: int = 0
    bytes_total: int = 0
    packets: int = 0
    bad_packets: int = 0
    unresolved_ticks: int = 0
    ticks: int = 0
    rate_pps: float = 0.0
    byte_rate: float = 0.0  # smoothed bytes/s, for the ETA
    note: str = ""
    job_id: Optional[int] = None
    _seen_at: float = 0.0
    _seen_bytes: int = 0

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def fraction(self) -> float:
        if self.status in (DONE, SKIPPED):
            return 1.0
        total = self.bytes_total or self.size
        return min(1.0, self.bytes_done / total) if total else 0.0

    @property
    def eta_seconds(self) -> Optional[float]:
        if self.status not in ACTIVE or self.byte_rate <= 0:
            return None
        total = self.bytes_total or self.size
        return max(0.0, (total - self.bytes_done) / self.byte_rate)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    def reset(self) -> None:
        self.status = QUEUED
        self.bytes_done = self.packets = self.bad_packets = self.unresolved_ticks = self.ticks = 0
        self.rate_pps = self.byte_rate = 0.0
        self.note = ""
        self.job_id = None
        self._seen_at = 0.0
        self._seen_bytes = 0


class QueueModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[QueueRow] = []
        self._index: dict[str, int] = {}

    # --- Qt model API ---------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[Column(section)]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in _NUMERIC:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == ProgressRole:
            return row.fraction
        if role == StatusRole:
            return row.status
        if role == RawRole:
            return self._raw(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == Column.FILE:
                return row.path
            if column in (Column.STATUS, Column.NOTE) and row.note:
                return f"{row.status}: {row.note}"
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == Column.STATUS:
                return QColor(STATUS_COLORS[row.status])
            if column == Column.BAD and row.bad_packets:
                return QColor("#d97706")
            if column == Column.UNRESOLVED and row.unresolved_ticks:
                return QColor("#d97706")
            if column == Column.NOTE and row.status == FAILED:
                return QColor(STATUS_COLORS[FAILED])
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{HEADERS[column] or 'Action'}: {self._display(row, column)}"
        return None

    def _display(self, row: QueueRow, column: Column) -> str:
        if column == Column.FILE:
            return row.name
        if column == Column.SIZE:
            return human_bytes(row.size)
        if column == Column.FRAMING:
            return row.framing
        if column == Column.STATUS:
            return row.status
        if column == Column.PROGRESS:
            return f"{row.fraction * 100:.0f}%"
        if column == Column.PACKETS:
            return human_count(row.packets) if row.packets or row.is_finished else ""
        if column == Column.RATE:
            return human_rate(row.rate_pps) if row.is_active else ""
        if column == Column.ETA:
            return human_duration(row.eta_seconds)
        if column == Column.BAD:
            return human_count(row.bad_packets) if row.bad_packets or row.is_finished else ""
        if column == Column.UNRESOLVED:
            return human_count(row.unresolved_ticks) if row.unresolved_ticks or row.is_finished else ""
        if column == Column.NOTE:
            return row.note
        return ""

    def _raw(self, row: QueueRow, column: Column):
        return {
            Column.FILE: row.path, Column.SIZE: row.size, Column.FRAMING: row.framing,
            Column.STATUS: row.status, Column.PROGRESS: row.fraction, Column.PACKETS: row.packets,
            Column.RATE: row.rate_pps, Column.ETA: row.eta_seconds, Column.BAD: row.bad_packets,
            Column.UNRESOLVED: row.unresolved_ticks, Column.NOTE: row.note, Column.ACTION: row.status,
        }[column]

    # --- queue operations -------------------------------------------------------------

    @property
    def rows(self) -> list[QueueRow]:
        return list(self._rows)

    def row(self, path) -> Optional[QueueRow]:
        i = self._index.get(path_key(path))
        return None if i is None else self._rows[i]

    def row_at(self, index: int) -> QueueRow:
        return self._rows[index]

    def add(self, entries: Iterable[tuple[str, int, str]]) -> list[str]:
        """Queue (path, size, framing) entries; returns the paths actually (re)queued.

        A path already queued or running is left alone; a finished one is queued again.
        """
        added: list[str] = []
        new_rows: list[QueueRow] = []
        for path, size, framing in entries:
            key = path_key(path)
            existing = self.row(key)
            if existing is not None:
                if existing.is_finished:
                    existing.reset()
                    existing.size, existing.framing = size, framing
                    self._changed(self._index[key])
                    added.append(key)
                continue
            if any(r.path == key for r in new_rows):
                continue
            new_rows.append(QueueRow(path=key, size=size, framing=framing))
        if new_rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new_rows) - 1)
            for r in new_rows:
                self._index[r.path] = len(self._rows)
                self._rows.append(r)
            self.endInsertRows()
            added.extend(r.path for r in new_rows)
        return added

    def remove_finished(self) -> int:
        keep = [r for r in self._rows if not r.is_finished]
        removed = len(self._rows) - len(keep)
        if removed:
            self.beginResetModel()
            self._rows = keep
            self._index = {r.path: i for i, r in enumerate(keep)}
            self.endResetModel()
        return removed

    def apply_progress(self, batch: list) -> None:
        """Latest FileProgress of each changed file; one dataChanged for the batch."""
        now = time.monotonic()
        touched: list[int] = []
        for fp in batch:
            i = self._index.get(path_key(fp.path))
            if i is None:
                continue
            row = self._rows[i]
            if row.is_finished:
                continue  # a late update must not reopen a settled row
            stage = fp.stage if fp.stage in STATUSES else row.status
            if stage == QUEUED and row.status in ACTIVE:
                stage = row.status
            row.status = stage
            row.file_id = fp.file_id or row.file_id
            row.bytes_total = int(fp.bytes_total or row.bytes_total or row.size)
            row.bytes_done = int(fp.bytes_done or 0)
            row.packets = int(fp.packets or 0)
            row.bad_packets = int(fp.bad_packets or 0)
            row.unresolved_ticks = int(fp.unresolved_ticks or 0)
            row.rate_pps = float(fp.rate_pps or 0.0)
            if fp.error:
                row.note = str(fp.error)
            if row._seen_at:
                dt = now - row._seen_at
                if dt > 0:
                    instant = max(0.0, (row.bytes_done - row._seen_bytes) / dt)
                    row.byte_rate = instant if not row.byte_rate else 0.7 * row.byte_rate + 0.3 * instant
            row._seen_at, row._seen_bytes = now, row.bytes_done
            touched.append(i)
        if touched:
            self.dataChanged.emit(
                self.index(min(touched), 0), self.index(max(touched), len(Column) - 1)
            )

    def apply_result(self, result) -> None:
        """A FileResult from the IngestReport: the authoritative final state."""
        i = self._index.get(path_key(result.path))
        if i is None:
            return
        row = self._rows[i]
        row.status = RESULT_STATUS.get(result.status, FAILED)
        row.file_id = result.file_id or row.file_id
        row.packets = int(result.packets or 0)
        row.bad_packets = int(result.bad_packets or 0)
        row.unresolved_ticks = int(result.unresolved_ticks or 0)
        row.ticks = int(getattr(result, "ticks", 0) or 0)
        if row.status in (DONE, SKIPPED):
            row.bytes_done = row.bytes_total or row.size
        if result.error:
            row.note = str(result.error)
        elif row.status == SKIPPED and not row.note:
            row.note = "already in the target"
        row.rate_pps = 0.0
        row.job_id = None
        self._changed(i)

    def set_status(self, paths: Iterable[str], status: str, note: str = "", *, only_unfinished=True) -> int:
        changed = []
        for path in paths:
            i = self._index.get(path_key(path))
            if i is None:
                continue
            row = self._rows[i]
            if only_unfinished and row.is_finished:
                continue
            row.status = status
            if note:
                row.note = note
            if status in FINISHED:
                row.rate_pps = 0.0
                row.job_id = None
            changed.append(i)
        for i in changed:
            self._changed(i)
        return len(changed)

    def reset_rows(self, paths: Iterable[str]) -> list[str]:
        """Put finished rows back in the queue (retry); returns their paths."""
        again = []
        for path in paths:
            i = self._index.get(path_key(path))
            if i is not None and self._rows[i].status in (FAILED, CANCELLED, SKIPPED, DONE):
                self._rows[i].reset()
                self._changed(i)
                again.append(self._rows[i].path)
        return again

    def assign_job(self, paths: Iterable[str], job_id: int) -> None:
        for path in paths:
            i = self._index.get(path_key(path))
            if i is not None:
                self._rows[i].job_id = job_id

    def paths_with_status(self, *statuses: str) -> list[str]:
        return [r.path for r in self._rows if r.status in statuses]

    def queued_unassigned(self) -> list[str]:
        return [r.path for r in self._rows if r.status == QUEUED and r.job_id is None]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self._rows:
            counts[r.status] += 1
        return counts

    def totals(self) -> tuple[int, int]:
        """(bad packets, unresolved ticks) over all rows."""
        return (sum(r.bad_packets for r in self._rows), sum(r.unresolved_ticks for r in self._rows))

    def _changed(self, i: int) -> None:
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(Column) - 1))


"""The ingest queue as a Qt table model: a thin adapter over ``app.model.session.Session``.

The session holds the rows and every rule about them; this class only turns them into
cells (text, colours, alignment) and relays the session's change notices as Qt's.
"""

from __future__ import annotations

from enum import IntEnum

from PySide6.QtCore import QAbstractTableModel, QLocale, QModelIndex, Qt
from PySide6.QtGui import QColor

from app.core.capture import (  # noqa: F401 - the one status vocabulary, re-exported for views
    ACTIVE,
    CANCELLED,
    DECODING,
    DONE,
    FAILED,
    FINISHED,
    QUEUED,
    SKIPPED,
    STATUSES,
    WRITING,
)
from app.model.formatting import human_count, human_rate
from app.model.session import QueueRow, Session
from app.ui import theme

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
    BAD = 7
    UNRESOLVED = 8
    NOTE = 9
    ACTION = 10


HEADERS = {
    Column.FILE: "File",
    Column.SIZE: "Size",
    Column.FRAMING: "Framing",
    Column.STATUS: "Status",
    Column.PROGRESS: "Progress",
    Column.PACKETS: "Packets",
    Column.RATE: "Rate",
    Column.BAD: "Bad pkts",
    Column.UNRESOLVED: "Unresolved",
    Column.NOTE: "Details",
    Column.ACTION: "",
}

_NUMERIC = {Column.SIZE, Column.PACKETS, Column.RATE, Column.BAD, Column.UNRESOLVED}


class QueueModel(QAbstractTableModel):
    def __init__(self, session: Session | None = None, parent=None):
        super().__init__(parent)
        self.session = session if session is not None else Session()
        self.session.subscribe(self)

    # --- the session's notices -------------------------------------------------------

    def rows_inserted(self, first: int, last: int) -> None:
        self.beginInsertRows(QModelIndex(), first, last)
        self.endInsertRows()

    def rows_changed(self, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(first, 0), self.index(last, len(Column) - 1))

    def rows_reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    @property
    def rows(self) -> list[QueueRow]:
        return self.session.rows

    def row_at(self, index: int) -> QueueRow:
        return self.session.row_at(index)

    def row(self, path) -> QueueRow | None:
        return self.session.row(path)

    # --- Qt model API ---------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.session)

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
        if not index.isValid() or index.row() >= len(self.session):
            return None
        row = self.session.row_at(index.row())
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
            if column in (Column.STATUS, Column.NOTE) and (row.failure or row.error):
                return row.failure.details() if row.failure else f"{row.status}: {row.error}"
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == Column.STATUS:
                return QColor(theme.status_color(row.status))
            if column == Column.BAD and (row.bad_packets or row.suspect):
                return QColor(theme.colors()["warning"])
            if column == Column.UNRESOLVED and row.unresolved_ticks:
                return QColor(theme.colors()["warning"])
            if column == Column.NOTE and row.status == FAILED:
                return QColor(theme.status_color(FAILED))
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{HEADERS[column] or 'Action'}: {self._display(row, column)}"
        return None

    def _display(self, row: QueueRow, column: Column) -> str:
        if column == Column.FILE:
            return row.name
        if column == Column.SIZE:
            # Qt's own, in the user's locale (decimal separator, SI units as before)
            if row.size_bytes is None:
                return ""
            return QLocale().formattedDataSize(row.size_bytes, 1, QLocale.DataSizeFormat.DataSizeSIFormat)
        if column == Column.FRAMING:
            return row.framing
        if column == Column.STATUS:
            return row.status
        if column == Column.PROGRESS:
            return f"{row.fraction * 100:.0f}%"
        if column == Column.PACKETS:
            return human_count(row.packets) if row.packets or row.final else ""
        if column == Column.RATE:
            return human_rate(row.rate_pps) if row.is_active else ""
        if column == Column.BAD:
            if row.suspect:  # suspect ticks are stored, never silently (issue 14)
                return f"{human_count(row.bad_packets)} +{human_count(row.suspect)} suspect"
            return human_count(row.bad_packets) if row.bad_packets or row.final else ""
        if column == Column.UNRESOLVED:
            return human_count(row.unresolved_ticks) if row.unresolved_ticks or row.final else ""
        if column == Column.NOTE:
            return row.error or ""
        return ""

    def _raw(self, row: QueueRow, column: Column):
        return {
            Column.FILE: row.path, Column.SIZE: row.size_bytes, Column.FRAMING: row.framing,
            Column.STATUS: row.status, Column.PROGRESS: row.fraction, Column.PACKETS: row.packets,
            Column.RATE: row.rate_pps, Column.BAD: row.bad_packets,
            Column.UNRESOLVED: row.unresolved_ticks, Column.NOTE: row.error or "", Column.ACTION: row.status,
        }[column]

"""The packet list's Qt model and the worker that fills a PacketIndex in the background.

``PacketTableModel`` is a virtual table over the index's numpy columns: it holds no
rows of its own, only (when filtered) the array of index rows on display. Rows arrive
in batches while the index fills (one ``beginInsertRows`` per batch); a filter is a
numpy mask over the columns, applied to each new batch as it arrives.
"""

from __future__ import annotations

import threading
import traceback

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QRunnable, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase

from app.core import protocol
from app.core.market_time import IST  # noqa: F401 - the inspector's day filter is on the IST clock
from app.core.packet_index import (
    FLAG_BAD,
    FLAG_ODD_SEGMENT,
    FLAG_TIME_BACK,
    FLAG_UNRESOLVED,
    KIND_NAMES,
    KIND_TEXT,
    PacketIndex,
    RowFilter,
)
from app.model.formatting import time_text, with_zone
from app.ui import theme
from app.ui.icons import icon

COLUMNS = ("No.", "Offset", "Message", "Length", "Kind", "Token", "Symbol", "Segment", "Last price",
           "Exchange time", "Received", "Expert")
(COL_NO, COL_OFFSET, COL_MSG, COL_LENGTH, COL_KIND, COL_TOKEN, COL_SYMBOL, COL_SEGMENT, COL_PRICE,
 COL_TIME, COL_RECV, COL_EXPERT) = range(len(COLUMNS))
_RIGHT = {COL_NO, COL_OFFSET, COL_MSG, COL_LENGTH, COL_TOKEN, COL_PRICE}
INDEX_ROW_ROLE = Qt.ItemDataRole.UserRole + 1

# Row tints (light, dark), like Wireshark's colouring rules: bad regions red, warnings amber.
TINTS = {
    "bad": ("#fde2e2", "#4a1f24"),
    "warning": ("#fff4d6", "#3d3320"),
}


def monospace_font(point_size: float | None = None) -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    if point_size:
        font.setPointSizeF(point_size)
    return font


def expert_text(index: PacketIndex, row: int) -> str:
    flags = int(index._cols["flags"][row])
    if flags & FLAG_BAD:
        return index.reasons.get(row, "bad region")
    parts = []
    if flags & FLAG_ODD_SEGMENT:
        parts.append(f"segment {int(index._cols['segment'][row])} is not a Kite segment")
    if flags & FLAG_TIME_BACK:
        parts.append("exchange time goes backwards")
    if flags & FLAG_UNRESOLVED:
        parts.append("token not in the instrument masters")
    return "; ".join(parts)


def severity_of(flags: int) -> str:
    if flags & FLAG_BAD:
        return "error"
    if flags & (FLAG_ODD_SEGMENT | FLAG_TIME_BACK):
        return "warning"
    if flags & FLAG_UNRESOLVED:
        return "note"
    return ""


SEVERITY_ICONS = {"error": "status-error", "warning": "status-warning", "note": "status-idle"}
SEVERITY_COLORS = {"error": "#dc2626", "warning": "#d97706", "note": "#2563eb"}


def ist_text(epoch: int) -> str:
    """An exchange time in the app's display zone (IST unless View → Time zone says UTC)."""
    return time_text(int(epoch) if epoch else None)


class PacketTableModel(QAbstractTableModel):
    """A virtual view of a PacketIndex: rows are numbers into the index's columns."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.index_: PacketIndex | None = None
        self._shown = np.zeros(0, np.int64)  # index rows on display, in file order
        self._count = 0  # len of the displayed prefix of _shown
        self._seen = 0  # index rows the model has looked at (filtered or not)
        self.filter = RowFilter()
        self._mono = monospace_font()

    # -- binding ------------------------------------------------------------------------------

    def set_index(self, index: PacketIndex | None) -> None:
        self.beginResetModel()
        self.index_ = index
        self._shown = np.zeros(0, np.int64)
        self._count = 0
        self._seen = 0
        self.endResetModel()
        self.sync()

    def set_filter(self, spec: RowFilter) -> None:
        """Re-filter every row the index has so far (one numpy mask), then keep up."""
        self.beginResetModel()
        self.filter = spec
        self._shown = np.zeros(0, np.int64)
        self._count = 0
        self._seen = 0
        self.endResetModel()
        self.sync()

    def sync(self) -> int:
        """Show the index rows that arrived since the last call; returns rows inserted."""
        index = self.index_
        if index is None:
            return 0
        n = index.rows
        if n <= self._seen:
            return 0
        lo = self._seen
        if self.filter.is_empty():
            new = np.arange(lo, n, dtype=np.int64)
        else:
            new = np.flatnonzero(index.mask(self.filter, lo, n)).astype(np.int64) + lo
        self._seen = n
        if not new.size:
            return 0
        need = self._count + new.size
        if need > self._shown.size:
            grown = np.zeros(max(need, 2 * self._shown.size, 1024), np.int64)
            grown[: self._count] = self._shown[: self._count]
            self._shown = grown
        self.beginInsertRows(QModelIndex(), self._count, need - 1)
        self._shown[self._count: need] = new
        self._count = need
        self.endInsertRows()
        return int(new.size)

    # -- lookups -------------------------------------------------------------------------------

    def index_row(self, view_row: int) -> int:
        return int(self._shown[view_row])

    @property
    def seen(self) -> int:
        """Index rows this model has taken in (shown or filtered out). The index grows on
        its worker thread, so rows past this are not in the model yet: a lookup for the
        window stops here, or it would call a row not yet taken in "hidden by the filter"."""
        return self._seen

    def view_row(self, index_row: int) -> int | None:
        """The displayed row of an index row, or None when the filter hides it."""
        shown = self._shown[: self._count]
        i = int(np.searchsorted(shown, index_row))
        return i if i < self._count and shown[i] == index_row else None

    def nearest_view_row(self, index_row: int) -> int | None:
        if not self._count:
            return None
        shown = self._shown[: self._count]
        return min(int(np.searchsorted(shown, index_row)), self._count - 1)

    def displayed_rows(self) -> np.ndarray:
        return self._shown[: self._count]

    # -- Qt model ------------------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return with_zone(COLUMNS[section]) if section in (COL_TIME, COL_RECV) else COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in _RIGHT:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, qindex, role=Qt.ItemDataRole.DisplayRole):
        if not qindex.isValid() or self.index_ is None:
            return None
        row = int(self._shown[qindex.row()])
        col = qindex.column()
        c = self.index_._cols
        flags = int(c["flags"][row])
        bad = bool(flags & FLAG_BAD)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_NO:
                return f"{row + 1}"
            if col == COL_OFFSET:
                return f"{int(c['offset'][row]):#010x}"
            if col == COL_MSG:
                msg = int(c["msg"][row])
                return "" if msg < 0 else f"{msg}"
            if col == COL_LENGTH:
                return f"{int(c['length'][row])}"
            if col == COL_KIND:
                return KIND_NAMES[int(c["kind"][row])]
            if col == COL_RECV:
                # the container's receive time (ts-u32len, a HAR frame's time), to the millisecond
                us = int(c["recv_time"][row])
                return f"{ist_text(us // 1_000_000)}.{(us // 1000) % 1000:03d}" if us > 0 else ""
            if int(c["kind"][row]) == KIND_TEXT and col in (COL_TOKEN, COL_SYMBOL, COL_SEGMENT, COL_PRICE, COL_TIME):
                return ""
            if col == COL_EXPERT and int(c["kind"][row]) == KIND_TEXT:
                text = (self.index_.texts.get(row) or {})
                return ("sent: " if text.get("direction") == "send" else "text: ") + (text.get("text") or "")[:120]
            if bad and col in (COL_TOKEN, COL_SYMBOL, COL_SEGMENT, COL_PRICE, COL_TIME):
                return ""
            if col == COL_TOKEN:
                return f"{int(c['token'][row])}"
            if col == COL_SYMBOL:
                return self.index_.symbol(int(c["token"][row])) or ""
            if col == COL_SEGMENT:
                seg = int(c["segment"][row])
                s = protocol.SEGMENTS.get(seg)
                return s.name if s else f"? {seg}"
            if col == COL_PRICE:
                return f"{float(c['last_price'][row]):,.4f}".rstrip("0").rstrip(".")
            if col == COL_TIME:
                return ist_text(int(c["exchange_time"][row]))
            if col == COL_EXPERT:
                return expert_text(self.index_, row)
            return None
        if role == INDEX_ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DecorationRole and col == COL_EXPERT:
            sev = severity_of(flags)
            return icon(SEVERITY_ICONS[sev], SEVERITY_COLORS[sev]) if sev else None
        if role == Qt.ItemDataRole.BackgroundRole:
            sev = severity_of(flags)
            tint = TINTS.get("bad" if sev == "error" else sev)
            if tint:
                return QColor(tint[1] if theme.current() == "dark" else tint[0])
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and col in (COL_NO, COL_OFFSET, COL_LENGTH, COL_TOKEN, COL_PRICE, COL_MSG):
            return self._mono
        if role == Qt.ItemDataRole.ToolTipRole and col == COL_EXPERT:
            return expert_text(self.index_, row) or None
        return None


# --- the background indexer ---------------------------------------------------------------


class IndexSignals(QObject):
    """Reports for one indexing run; created in (and owned by) the GUI thread."""

    progress = Signal(object)  # packet_index.Progress
    finished = Signal(object)  # the PacketIndex
    failed = Signal(object, str)


class IndexWorker(QRunnable):
    """Fills one PacketIndex on a pool thread; ``cancel`` stops it between chunks."""

    def __init__(self, index: PacketIndex, signals: IndexSignals, prepare=None):
        super().__init__()
        self.setAutoDelete(False)  # the window keeps it until ``finished`` is handled
        self.index = index
        self.signals = signals
        self.prepare = prepare  # runs first on the worker (loading instrument masters)
        self.cancel = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            if self.prepare is not None and not self.cancel.is_set():
                self.prepare(self.index)
            self.index.build(progress=self.signals.progress.emit, cancel=self.cancel)
        except BaseException as exc:  # noqa: BLE001 - reported in the window
            self.signals.failed.emit(exc, traceback.format_exc())
        else:
            self.signals.finished.emit(self.index)
        finally:
            self.done.set()

"""The unknown-token pane: the target's explained unknown-token table, sortable,
filterable, exportable, and re-resolvable with more instrument masters."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.model.formatting import time_text, with_zone
from app.ui import theme
from app.ui.icons import icon

# (table column, header)
COLUMNS = (
    ("instrument_token", "Token"),
    ("segment", "Segment"),
    ("segment_meaning", "Segment meaning"),
    ("exchange_token", "Exchange token"),
    ("ticks", "Ticks"),
    ("first_tick_time", "First seen"),
    ("last_tick_time", "Last seen"),
    ("files", "Files"),
    ("diagnosis", "Diagnosis"),
    ("explanation", "Explanation"),
)
_NUMERIC = {"instrument_token", "segment", "exchange_token", "ticks"}
_SORT_ROLE = Qt.ItemDataRole.UserRole + 10


_TIMES = {"first_tick_time", "last_tick_time"}


def _fmt_time(value) -> str:
    if isinstance(value, dt.datetime) or value is None:
        return time_text(value)
    return str(value)


def _files_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        names = [str(v).replace("\\", "/").rsplit("/", 1)[-1] for v in value]
        return ", ".join(names)
    return str(value)


class UnknownTokensModel(QAbstractTableModel):
    """Rows of the unknown-token table (a few thousand at most: held as Python rows)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[dict] = []
        self.total_ticks = 0

    def set_table(self, table: pa.Table | None) -> None:
        self.beginResetModel()
        self._rows = table.to_pylist() if table is not None else []
        self.total_ticks = sum(int(r.get("ticks") or 0) for r in self._rows)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            key, label = COLUMNS[section]
            return with_zone(label) if key in _TIMES else label
        return None

    def row_dict(self, row: int) -> dict:
        return self._rows[row]

    def diagnoses(self) -> list[str]:
        return sorted({str(r.get("diagnosis") or "") for r in self._rows} - {""})

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        key = COLUMNS[index.column()][0]
        value = row.get(key)
        if role == Qt.ItemDataRole.DisplayRole:
            if key in ("first_tick_time", "last_tick_time"):
                return _fmt_time(value)
            if key == "files":
                return _files_text(value)
            if key in ("ticks", "exchange_token") and value is not None:
                return f"{int(value):,}"
            return "" if value is None else str(value)
        if role == _SORT_ROLE:
            if key == "files":
                return _files_text(value)
            if isinstance(value, dt.datetime):
                return value.timestamp()
            return value if value is not None else ""
        if role == Qt.ItemDataRole.ToolTipRole:
            explanation = row.get("explanation") or ""
            if key == "files" and value:
                return "\n".join(str(v) for v in value)
            if key == "segment_meaning":
                return str(value or "")
            return explanation or None
        if role == Qt.ItemDataRole.TextAlignmentRole and key in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and key == "diagnosis":
            return QColor(theme.colors()["warning"])
        return None


class UnknownTokensProxy(QSortFilterProxyModel):
    """Free-text filter over every column plus an exact diagnosis filter."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(_SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        self._diagnosis = ""

    def set_diagnosis(self, diagnosis: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            self._diagnosis = diagnosis
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._diagnosis = diagnosis
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        model = self.sourceModel()
        if self._diagnosis:
            if str(model.row_dict(source_row).get("diagnosis") or "") != self._diagnosis:
                return False
        return super().filterAcceptsRow(source_row, source_parent)

    def lessThan(self, left, right) -> bool:
        a, b = left.data(_SORT_ROLE), right.data(_SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


class UnknownTokensPane(QWidget):
    export_requested = Signal()
    resolve_requested = Signal()
    show_packets_requested = Signal(int, list)  # token, the capture files it is in

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = UnknownTokensModel(self)
        self.proxy = UnknownTokensProxy(self)
        self.proxy.setSourceModel(self.model)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter tokens, segments, files, diagnoses…  (Ctrl+F)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter unknown tokens")
        self.diagnosis = QComboBox()
        self.diagnosis.setAccessibleName("Diagnosis filter")
        self.diagnosis.addItem("All diagnoses", "")
        self.count = QLabel("")
        self.count.setObjectName("muted")
        self.export_button = QPushButton(icon("export"), "Export CSV…")
        self.resolve_button = QPushButton(icon("resolve"), "Resolve with more instruments…")
        self.packets_button = QPushButton("Show packets")
        self.packets_button.setToolTip("Open the packet inspector on this token's packets in its capture files")
        self.packets_button.setEnabled(False)
        bar.addWidget(self.filter, 2)
        bar.addWidget(self.diagnosis, 1)
        bar.addWidget(self.count)
        bar.addStretch(0)
        bar.addWidget(self.packets_button)
        bar.addWidget(self.export_button)
        bar.addWidget(self.resolve_button)
        layout.addLayout(bar)

        self.stack = QStackedWidget()
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(4, Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate((84, 76, 186, 118, 60, 134, 134, 166, 118)):
            self.view.setColumnWidth(col, width)
        self.empty = QLabel()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("muted")
        self.empty.setWordWrap(True)
        self.table_page = QWidget()
        page = QVBoxLayout(self.table_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.setSpacing(4)
        page.addWidget(self.view, 1)
        self.explanation = QLabel("")
        self.explanation.setObjectName("explanation")
        self.explanation.setWordWrap(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.explanation.setAccessibleName("Explanation of the selected token")
        page.addWidget(self.explanation)
        self.stack.addWidget(self.table_page)
        self.stack.addWidget(self.empty)
        layout.addWidget(self.stack, 1)
        self.view.selectionModel().currentRowChanged.connect(self._show_explanation)
        self.view.doubleClicked.connect(lambda *_: self.request_packets())
        self.packets_button.clicked.connect(self.request_packets)

        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.textChanged.connect(self._update_count)
        self.diagnosis.currentIndexChanged.connect(
            lambda: (self.proxy.set_diagnosis(self.diagnosis.currentData() or ""), self._update_count()))
        self.export_button.clicked.connect(self.export_requested)
        self.resolve_button.clicked.connect(self.resolve_requested)
        self.show_message("Choose a target and ingest captures: tokens no instrument master names show up here.")

    def set_table(self, table: pa.Table | None) -> None:
        self.model.set_table(table)
        current = self.diagnosis.currentData() or ""
        self.diagnosis.blockSignals(True)
        self.diagnosis.clear()
        self.diagnosis.addItem("All diagnoses", "")
        for d in self.model.diagnoses():
            self.diagnosis.addItem(d, d)
        i = self.diagnosis.findData(current)
        self.diagnosis.setCurrentIndex(max(0, i))
        self.diagnosis.blockSignals(False)
        self.proxy.set_diagnosis(self.diagnosis.currentData() or "")
        if table is None:
            self.show_message("The target has no ticks yet.")
        elif table.num_rows == 0:
            self.show_message("No unknown tokens: every tick in the target was named by an instrument master.")
        else:
            self.stack.setCurrentWidget(self.table_page)
            self.view.setCurrentIndex(self.proxy.index(0, 0))
        self._update_count()

    def request_packets(self) -> None:
        """Ask for the inspector on the selected token's packets, in every file it is in."""
        current = self.view.currentIndex()
        if not current.isValid():
            return
        row = self.model.row_dict(self.proxy.mapToSource(current).row())
        files = [str(f) for f in (row.get("files") or []) if f]
        if row.get("instrument_token") is not None and files:
            self.show_packets_requested.emit(int(row["instrument_token"]), files)

    def _show_explanation(self, current, previous=None) -> None:
        self.packets_button.setEnabled(current.isValid())
        if not current.isValid():
            self.explanation.setText("")
            return
        row = self.model.row_dict(self.proxy.mapToSource(current).row())
        self.explanation.setText(
            f"<b>{row.get('instrument_token')}</b> · {row.get('segment_meaning') or ''} · "
            f"<b>{row.get('diagnosis') or ''}</b> — {row.get('explanation') or ''}")

    def show_message(self, text: str) -> None:
        self.empty.setText(text)
        self.stack.setCurrentWidget(self.empty)
        has_rows = self.model.rowCount() > 0
        self.export_button.setEnabled(has_rows)

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        ticks = sum(int(self.model.row_dict(self.proxy.mapToSource(self.proxy.index(r, 0)).row()).get("ticks") or 0)
                    for r in range(shown))
        self.count.setText(f"{shown:,} of {total:,} tokens · {ticks:,} ticks" if total else "")
        self.export_button.setEnabled(total > 0)

    def write_csv(self, path: str) -> int:
        """The rows as shown (filtered and sorted) with raw values; returns rows written."""
        keys = [k for k, _ in COLUMNS]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(keys)
            for r in range(self.proxy.rowCount()):
                row = self.model.row_dict(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
                out = []
                for key in keys:
                    value = row.get(key)
                    if isinstance(value, dt.datetime):
                        value = value.isoformat()
                    elif isinstance(value, (list, tuple)):
                        value = ";".join(str(v) for v in value)
                    out.append("" if value is None else value)
                writer.writerow(out)
        return self.proxy.rowCount()

"""The packet inspector window: every packet's bytes, fields and faults, Wireshark-style.

The window binds widgets to a ``PacketIndex`` it does not compute: the index fills on a
pool thread (``IndexWorker``) and the packet list grows in batches as it does, so the
first packets of a 10M-packet capture show at once and the window stays responsive.
Selecting a row dissects it (``PacketIndex.view``, the same as ``tickscope inspect``);
the details tree and the hex pane select each other's fields and bytes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.core.packet_index import PacketIndex, PacketView, RowFilter, parse_offset, symbol_lookup
from app.ui.icons import icon
from app.ui.inspector.data_strip import DataInspectorStrip
from app.ui.inspector.details import DetailsTree
from app.ui.inspector.filter_bar import FilterBar
from app.ui.inspector.hex_view import LEGEND, HexView, role_colors
from app.ui.inspector.models import IST, IndexSignals, IndexWorker, PacketTableModel, monospace_font
from app.ui.widgets import guard_typing, make_action, row_table

log = logging.getLogger(__name__)


class InspectorAsk:
    """The inspector's modal questions, as class methods tests can replace."""

    @classmethod
    def save_path(cls, parent, suggested: str) -> str:
        path, _ = QFileDialog.getSaveFileName(parent, "Save bytes", suggested, "Binary files (*.bin);;All files (*)")
        return path


def _load_book(paths: Sequence[str]) -> tuple[object, list[str]]:
    """The book of every readable master, and one line per unreadable one: a bad master
    costs its own names, never the inspector (or the other masters)."""
    if not paths:
        return None, []
    from app.core.enrich import InstrumentBook
    from app.core.instruments import load_master
    from app.model.faults import one_line

    masters, problems = [], []
    for path in paths:
        try:
            masters.append(load_master(path))
        except Exception as exc:  # noqa: BLE001 - any unreadable master is reported, not fatal
            log.warning("instrument master %s unreadable in the inspector: %s", path, exc)
            problems.append(f"instrument master {Path(path).name} unreadable ({one_line(exc)}): its tokens are unnamed")
    return (InstrumentBook(masters) if masters else None), problems


class InspectorWindow(QMainWindow):
    first_rows = Signal()  # the first rows of a capture are on display
    index_finished = Signal()  # the current capture is fully indexed (or failed/cancelled)
    row_shown = Signal(int)  # an index row is shown in the details and hex panes
    packet_revealed = Signal(int)  # reveal_offset found and selected its packet (index row)

    def __init__(self, paths: Sequence[str], *, instruments: Sequence[str] = (), tokens: Sequence[int] = (),
                 framing: str | None = None, parent=None):
        super().__init__(parent)
        self.paths = [os.fspath(p) for p in paths]
        self.instrument_paths = list(instruments)
        self.master_problems: list[str] = []
        self.framing = framing
        self.index: PacketIndex | None = None
        self.current: PacketView | None = None
        self._worker: IndexWorker | None = None
        self._signals: IndexSignals | None = None
        self._workers: list[tuple[IndexWorker, IndexSignals]] = []  # kept until their finished signal
        self._book = None
        self._opened_at = 0.0
        self.time_to_first_rows: float | None = None
        self.setWindowTitle("Packet inspector")  # Qt appends the application name
        self.setWindowIcon(icon("tickscope"))
        self.resize(1024, 700)
        self._build()
        self.typing_guard = guard_typing(self)
        if tokens:
            self.filter_bar.token.setText(" ".join(str(t) for t in tokens))
            self.model.filter = self.filter_bar.spec() or RowFilter()
        if self.paths:
            self.open_capture(self.paths[0])

    # ==== construction ==========================================================================

    def _action(self, text: str, slot, shortcut=None, icon_name: str = "", tip: str = "") -> QAction:
        return make_action(self, text, slot, shortcut, icon_name, tip)

    def _build(self) -> None:
        a = self._action
        self.act_goto_packet = a("&Go to packet…", lambda: self.focus_goto(""), "Ctrl+G")
        self.act_goto_offset = a("Go to &offset…", lambda: self.focus_goto("@"), "Ctrl+Shift+G")
        self.act_prev_bad = a("Previous bad packet", lambda: self.step_bad(backwards=True), "Shift+F8",
                              "status-error", "Previous bad packet")
        self.act_next_bad = a("Next bad packet", lambda: self.step_bad(), "F8", "status-error", "Next bad packet")
        self.act_copy_value = a("Copy field &value", self.copy_value, "Ctrl+C")
        self.act_copy_hex = a("Copy packet as &hex", self.copy_hex, "Ctrl+Shift+C")
        self.act_save = a("&Save bytes…", self.ask_save_bytes, "Ctrl+S", "export")
        self.act_close = a("&Close", self.close, "Ctrl+W")

        tb = QToolBar("Inspector", self)
        tb.setObjectName("inspectorToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.capture_box = QComboBox()
        self.capture_box.setAccessibleName("Capture")
        self.capture_box.setMinimumWidth(260)
        for p in self.paths:
            self.capture_box.addItem(Path(p).name, p)
            self.capture_box.setItemData(self.capture_box.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        self.capture_box.currentIndexChanged.connect(
            lambda i: self.open_capture(self.capture_box.itemData(i)) if i >= 0 else None)
        tb.addWidget(self.capture_box)
        tb.addSeparator()
        self.goto = QLineEdit()
        self.goto.setAccessibleName("Go to packet or offset")
        self.goto.setPlaceholderText("Go to packet N or @offset (Ctrl+G)")
        self.goto.setFixedWidth(240)
        self.goto.setFont(monospace_font())
        self.goto.returnPressed.connect(self._goto_typed)
        tb.addWidget(self.goto)
        tb.addSeparator()
        for action in (self.act_prev_bad, self.act_next_bad):
            tb.addAction(action)
        tb.addSeparator()
        for action in (self.act_copy_value, self.act_copy_hex, self.act_save):
            tb.addAction(action)
        self.addToolBar(tb)

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 6, 8, 4)
        outer.setSpacing(6)
        self.filter_bar = FilterBar()
        self.filter_bar.changed.connect(self.set_filter)
        self.filter_bar.resolve_symbols = lambda symbols: self.index.tokens_named(symbols) if self.index else []
        outer.addWidget(self.filter_bar)

        self.model = PacketTableModel(self)
        self.table = row_table("packetList", "Packet list", self.model, row_height=22, alternate=False)
        vh = self.table.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.table.horizontalHeader()
        for col, width in enumerate((76, 96, 72, 64, 88, 88, 176, 74, 96, 150, 170)):
            self.table.setColumnWidth(col, width)
        header.setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)

        self.details = DetailsTree()
        self.hex = HexView()
        self.strip = DataInspectorStrip()
        self.legend = QLabel()
        self.legend.setObjectName("muted")
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setObjectName("explanation")
        self.banner.hide()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(4)
        rl.addWidget(self.banner)
        rl.addWidget(self.hex, 1)
        rl.addWidget(self.legend)
        rl.addWidget(self.strip)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.details)
        bottom.addWidget(right)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        bottom.setSizes([800, 600])
        self.hex.setMinimumWidth(self.hex.sizeHint().width() - 40)
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.table)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 4)
        split.setSizes([330, 470])
        outer.addWidget(split, 1)
        self.setCentralWidget(central)

        self.details.range_selected.connect(self._on_range)
        self.hex.byte_clicked.connect(self._on_byte_clicked)

        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.counts = QLabel("Packets: 0 · Displayed: 0")
        self.counts.setAccessibleName("Packet counts")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(14)
        self.progress.setTextVisible(False)
        self.state = QLabel("")
        self.state.setObjectName("muted")
        bar.addWidget(self.state, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.counts)
        self.refresh_style()

    def refresh_style(self) -> None:
        """Colours that follow the theme: the hex legend, icons and row tints."""
        colors = role_colors()
        chips = []
        for role, label in LEGEND:
            fg, bg = colors[role]
            chips.append(f"<span style='color:{fg}; background:{bg or 'transparent'}; "
                         f"font-family:monospace'>&nbsp;00&nbsp;</span>&nbsp;{label}")
        self.legend.setText("&nbsp;&nbsp; ".join(chips))
        self.act_prev_bad.setIcon(icon("status-error", "#dc2626"))
        self.act_next_bad.setIcon(icon("status-error", "#dc2626"))
        self.act_save.setIcon(icon("export"))
        self.hex.viewport().update()
        self.table.viewport().update()

    # ==== opening a capture ======================================================================

    def open_capture(self, path: str) -> None:
        self._stop_worker()
        self.current = None
        self.details.show_view(None)
        self.hex.set_view(None)
        self.banner.hide()
        self.time_to_first_rows = None
        self._opened_at = time.perf_counter()
        try:
            index = PacketIndex(path, self.framing)
        except Exception as err:  # noqa: BLE001 - a user error (missing/unreadable file)
            self.index = None
            self.model.set_index(None)
            self.state.setText(f"Can't open {Path(path).name}: {err}")
            self.index_finished.emit()
            return
        self.index = index
        self.setWindowTitle(f"{Path(path).name} — Packet inspector — Tickscope")
        self.filter_bar.set_instruments(bool(self.instrument_paths))
        self.model.set_index(index)
        self.state.setText(f"Indexing {Path(path).name} ({index.framing} framing)…")
        self.state.setToolTip(f"framing {index.framing}: {index.framing_evidence}")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.show()
        signals = IndexSignals(self)  # created here, in the GUI thread
        worker = IndexWorker(index, signals, prepare=self._prepare if self.instrument_paths else None)
        signals.progress.connect(self._on_progress)
        signals.finished.connect(lambda ix, w=worker: self._on_finished(w, ix))
        signals.failed.connect(lambda exc, tb, w=worker: self._on_failed(w, exc, tb))
        self._worker, self._signals = worker, signals
        self._workers.append((worker, signals))
        QThreadPool.globalInstance().start(worker)

    def _prepare(self, index: PacketIndex) -> None:
        """On the worker: load the instrument masters before the first rows are indexed."""
        if self._book is None:
            self._book, self.master_problems = _load_book(self.instrument_paths)
        if self._book is not None:
            index.symbol_of = symbol_lookup(self._book)

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.cancel.set()
        self._worker = None

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Cancel indexing and wait for the worker (closing the window)."""
        for worker, _ in list(self._workers):
            worker.cancel.set()
        for worker, _ in list(self._workers):
            worker.done.wait(wait_ms / 1000)

    def _on_progress(self, p) -> None:
        if self.index is None or self._worker is None or p is None:
            return
        if self.sender() is not self._signals:
            return  # a cancelled capture's late report
        self._sync()
        self.progress.setValue(int(1000 * p.bytes_done / max(p.bytes_total, 1)))

    def _sync(self) -> None:
        inserted = self.model.sync()
        if inserted and self.filter_bar.day is None and self.index is not None:
            times = self.index.column("exchange_time")
            nz = times[times > 0][:1]
            if nz.size:
                self.filter_bar.day = dt.datetime.fromtimestamp(int(nz[0]), IST).date()
        if self.model.rowCount() and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.model.index(0, 0))
        if self.time_to_first_rows is None and self.model.rowCount():
            self.time_to_first_rows = time.perf_counter() - self._opened_at
            self.first_rows.emit()
        self._update_counts()
        self._try_reveal()

    def _on_finished(self, worker: IndexWorker, index: PacketIndex) -> None:
        self._forget(worker)
        if worker is not self._worker:
            return
        self._worker = None
        self._sync()
        self.progress.hide()
        if index.error:
            self.state.setText(index.error)
        else:
            elapsed = time.perf_counter() - self._opened_at
            detected = " (detected)" if index.framing_detected else ""
            self.state.setText(f"{Path(index.path).name}: {index.framing} framing{detected}, {index.size:,} bytes, "
                               f"{index.bad_count:,} bad regions · indexed in {elapsed:.1f} s")
        if self.master_problems:
            self.statusBar().showMessage("; ".join(self.master_problems), 15000)
        self.index_finished.emit()

    def _on_failed(self, worker: IndexWorker, exc: BaseException, tb: str) -> None:
        self._forget(worker)
        log.error("indexing failed: %s", tb)
        if worker is not self._worker:
            return
        self._worker = None
        self.progress.hide()
        self.state.setText(f"Indexing failed: {exc}")
        self._sync()
        self.index_finished.emit()

    def _forget(self, worker: IndexWorker) -> None:
        self._workers = [(w, s) for w, s in self._workers if w is not worker]

    def _update_counts(self) -> None:
        total = self.index.rows if self.index else 0
        shown = self.model.rowCount()
        bad = self.index.bad_count if self.index else 0
        self.counts.setText(f"Packets: {total:,} · Displayed: {shown:,}" + (f" · Bad: {bad:,}" if bad else ""))

    # ==== filtering ==============================================================================

    def set_filter(self, spec: RowFilter) -> None:
        keep = self.current_row()
        self.model.set_filter(spec)
        self._update_counts()
        if keep is not None:
            view_row = self.model.nearest_view_row(keep)
            if view_row is not None:
                self.table.setCurrentIndex(self.model.index(view_row, 0))
                self.table.scrollTo(self.model.index(view_row, 0), QAbstractItemView.ScrollHint.PositionAtCenter)

    # ==== selection ==============================================================================

    def current_row(self) -> int | None:
        """The index row (0-based) of the selected list row."""
        current = self.table.currentIndex()
        return self.model.index_row(current.row()) if current.isValid() else None

    def _on_current_row(self, current, previous=None) -> None:
        if not current.isValid() or self.index is None:
            return
        self.show_row(self.model.index_row(current.row()))

    def show_row(self, row: int) -> None:
        try:
            view = self.index.view(row)
        except OSError as err:
            self.state.setText(f"Can't read packet {row + 1}: {err}")
            return
        self.current = view
        self.details.show_view(view)
        self.hex.set_view(view)
        if view.reason or view.note:
            text = (f"<b>Bad region</b> · {view.reason}" if view.reason else "") + (
                ("<br>" if view.reason else "") + view.note if view.note else "")
            self.banner.setText(text)
            self.banner.setStyleSheet("QLabel { border-left: 3px solid #dc2626; }" if view.reason else "")
            self.banner.show()
        else:
            self.banner.hide()
        self.strip.show_bytes(view.offset, self.hex.bytes_from(view.offset, 4))
        self.row_shown.emit(row)

    def reveal_offset(self, offset: int) -> None:
        """Select the packet whose bytes hold file ``offset`` (a tick's ``offset``) as soon as
        indexing reaches it (Show packet in the Data view)."""
        self._reveal = int(offset)
        self._try_reveal()

    def _try_reveal(self) -> None:
        offset = getattr(self, "_reveal", None)
        if offset is None or self.index is None:
            return
        row = self.index.row_at_offset(offset, self.model.seen)
        if row is None:
            if self._worker is None:  # indexing is over and no packet holds it
                self._reveal = None
                self.state.setText(f"No packet at offset {offset:,} ({offset:#x}) in this capture")
            return
        self._reveal = None
        if not self.select_row(row):
            self.state.setText(f"The packet at offset {offset:#x} is hidden by the filter")
            return
        self.show_row(row)
        self.packet_revealed.emit(row)

    def select_row(self, row: int) -> bool:
        """Select index row ``row`` in the list (False when the filter hides it)."""
        view_row = self.model.view_row(row)
        if view_row is None:
            return False
        qindex = self.model.index(view_row, 0)
        self.table.setCurrentIndex(qindex)
        self.table.scrollTo(qindex, QAbstractItemView.ScrollHint.PositionAtCenter)
        return True

    def _on_range(self, byte_range) -> None:
        if byte_range is None:
            self.hex.set_selection(None)
            return
        start, end = byte_range
        self.hex.set_selection(start, end)
        self.strip.show_bytes(start, self.hex.bytes_from(start, 4))

    def _on_byte_clicked(self, address: int) -> None:
        field = self.details.select_address(address)
        if field is None:
            self.details.setCurrentItem(None)
            self.hex.set_selection(address, address + 1)
        self.strip.show_bytes(address, self.hex.bytes_from(address, 4))

    # ==== navigation =============================================================================

    def focus_goto(self, prefix: str) -> None:
        self.goto.setText(prefix)
        self.goto.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.goto.setCursorPosition(len(prefix))

    def _goto_typed(self) -> None:
        text = self.goto.text().strip()
        ok = self.go_to_offset(text[1:]) if text.startswith("@") else self.go_to_packet(text)
        self.goto.setStyleSheet("" if ok else "QLineEdit { border: 1px solid #dc2626; }")
        if ok:
            self.table.setFocus()

    def go_to_packet(self, number) -> bool:
        """Select packet ``number`` (1-based, as in the No. column)."""
        if self.index is None:
            return False
        try:
            n = int(str(number).strip())
        except ValueError:
            self.state.setText(f"{number!r} is not a packet number")
            return False
        if not 1 <= n <= self.model.seen:
            self.state.setText(f"No packet {n}: this capture has {self.model.seen:,} so far")
            return False
        if not self.select_row(n - 1):
            self.state.setText(f"Packet {n} is hidden by the filter")
            return False
        return True

    def go_to_offset(self, text) -> bool:
        if self.index is None:
            return False
        try:
            offset = parse_offset(str(text))
        except ValueError:
            self.state.setText(f"{text!r} is not an offset: use decimal or 0x hex")
            return False
        if offset >= self.index.size:
            self.state.setText(f"Offset {offset:,} is beyond the end of the capture ({self.index.size:,} bytes)")
            return False
        row = self.index.row_near_offset(offset, self.model.seen)
        if row is None or not self.select_row(row):
            self.state.setText(f"No packet at offset {offset:#x} on display")
            return False
        self._on_byte_clicked(offset) if self.current and self.current.base <= offset < self.current.base + len(
            self.current.data) else None
        return True

    def step_bad(self, backwards: bool = False) -> int | None:
        """Select the next (previous) bad region on display; returns its index row."""
        if self.index is None:
            return None
        row = self.current_row()
        row = -1 if row is None and not backwards else (self.model.seen if row is None else row)
        while True:
            row = self.index.next_bad(row, backwards=backwards, rows=self.model.seen)
            if row is None:
                self.state.setText("No more bad packets " + ("before" if backwards else "after") + " this one")
                return None
            if self.select_row(row):
                return row

    # ==== copying and saving =====================================================================

    def selected_bytes(self) -> bytes:
        field = self.details.current_field()
        if field is not None and not field.generated:
            return field.raw
        return self.row_bytes()

    def row_bytes(self) -> bytes:
        view = self.current
        if view is None:
            return b""
        at = view.offset - view.base
        if view.reason and at >= 0:
            return view.data[at:at + view.length]
        return view.data[at:at + view.length] if at >= 0 else b""

    def copy_value(self) -> None:
        field = self.details.current_field()
        if field is None:
            text = self.row_bytes().hex()
        else:
            text = "" if field.value is None else str(field.value)
        QGuiApplication.clipboard().setText(text)

    def copy_hex(self) -> None:
        QGuiApplication.clipboard().setText(self.row_bytes().hex(" "))

    def ask_save_bytes(self) -> None:
        if self.current is None:
            return
        field = self.details.current_field()
        name = f"packet-{self.current.number}" + (f"-{field.name}" if field is not None and not field.generated else "")
        path = InspectorAsk.save_path(self, str(Path(self.paths[0]).with_name(name + ".bin")) if self.paths else name)
        if path:
            self.save_bytes(path)

    def save_bytes(self, path: str) -> int:
        data = self.selected_bytes()
        try:
            Path(path).write_bytes(data)
        except OSError as err:
            self.state.setText(f"Can't save {path}: {err.strerror or err}")
            return 0
        self.state.setText(f"Saved {len(data):,} bytes to {path}")
        return len(data)

    # ==== closing ================================================================================

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)


def open_inspector(paths: Sequence[str], *, instruments: Sequence[str] = (), tokens: Sequence[int] = (),
                   parent=None) -> InspectorWindow:
    window = InspectorWindow(paths, instruments=instruments, tokens=tokens, parent=parent)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    window.show()
    return window

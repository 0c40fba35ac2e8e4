"""The Data view: what the current target holds, beside the ingest queue.

Four tabs: Captures (actions: open in the inspector, reveal in the file manager,
re-ingest, remove, export its ticks), Instruments (search), Instrument day (a calendar of
the days with ticks, candles with volume bars, bid/ask lines, open interest, a crosshair
with an OHLCV readout) and Ticks (a virtual table, paged lazily, sortable by any column,
with Show packet). Qt models here only adapt ``app.model.data``, which asks the one
query module (``app.store.query``); no SQL lives in this file. Work runs through the
window's ``run`` (exclusive tasks on the JobManager: a target has one open handle per
process).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QDate, QModelIndex, QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QGuiApplication, QPainter, QPicture, QTextCharFormat
from PySide6.QtWidgets import (
    QCalendarWidget,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.market_time import format_time
from app.model import data as dm
from app.model.formatting import time_text, time_zone
from app.ui import theme
from app.ui.charts import BuiltWhenShown, CompactAxis, _style_plot, _zone_offset_s, restyle
from app.ui.widgets import row_table

Runner = Callable[..., None]  # run(fn, done, failed): fn on a worker, done/failed in the GUI thread

UP_COLOR = "#16a34a"
DOWN_COLOR = "#dc2626"
BID_COLOR = "#0ea5e9"
ASK_COLOR = "#f59e0b"
OI_COLOR = "#8b5cf6"
VOLUME_COLOR = "#94a3b8"


class DataAsk:
    """The Data view's questions and desktop calls, as class methods tests replace."""

    @classmethod
    def locate_capture(cls, parent, name: str) -> str:
        path, _ = QFileDialog.getOpenFileName(parent, f"Where is {name} now?", "", "All files (*)")
        return path

    @classmethod
    def export_path(cls, parent, suggested: str) -> str:
        path, _ = QFileDialog.getSaveFileName(parent, "Export", suggested,
                                              "CSV (*.csv);;Parquet (*.parquet);;JSON (*.json)")
        return path

    @classmethod
    def confirm_remove(cls, parent, names: list[str], ticks: int, bad_packets: int, target: str) -> bool:
        from app.ui.dialogs import Ask

        return Ask.confirm_remove(parent, names, ticks, bad_packets, target)

    @classmethod
    def reveal(cls, path: str) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))

    @classmethod
    def copy_text(cls, text: str) -> None:
        QGuiApplication.clipboard().setText(text)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.2f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)  # tokens, offsets and sequence numbers read as they are stored
    if isinstance(value, dt.datetime):
        return time_text(value)  # in the app's display zone (IST unless View → Time zone says UTC)
    if isinstance(value, list):  # depth: the best level, then how many
        return f"{_fmt(value[0])} (+{len(value) - 1})" if value else "[]"
    return str(value)


# --- Qt models: adapters over app.model.data -----------------------------------------------------


class CapturesModel(QAbstractTableModel):
    HEADERS = ["File", "Trading days", "Ticks", "Suspect", "Bad", "Unresolved", "Framing", "Ingested",
               "Integrity", "Source path"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list = []

    def set_rows(self, rows: list) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            days = r.trading_days
            values = [r.file_name, (", ".join(d.isoformat() for d in days) if len(days) <= 2
                                    else f"{days[0]} … {days[-1]} ({len(days)})"),
                      f"{r.ticks:,}", "—" if r.suspect is None else f"{r.suspect:,}", f"{r.bad_packets:,}",
                      f"{r.unresolved:,}", r.framing, time_text(r.ingested_at), r.integrity, r.path]
            return values[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 8 and r.integrity not in ("ok", "not checked"):
            return QBrush(QColor(theme.status_color("failed")))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{r.path}\nfile_id {r.file_id}\n{r.integrity}"
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (2, 3, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class ArrowModel(QAbstractTableModel):
    """A small Arrow table (search results) as a read-only table."""

    def __init__(self, headers: dict[str, str], parent=None):
        super().__init__(parent)
        self.headers = headers  # column -> header text
        self.rows: list[dict] = []

    def set_table(self, table: pa.Table) -> None:
        self.beginResetModel()
        self.rows = table.to_pylist()
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(self.headers)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return list(self.headers.values())[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        column = list(self.headers)[index.column()]
        value = self.rows[index.row()].get(column)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == "symbol" and value is None:
                return "(unresolved)"
            if column == "ticks":
                return f"{value:,}"
            return _fmt(value)
        if role == Qt.ItemDataRole.ForegroundRole and column == "symbol" and value is None:
            return QBrush(QColor(theme.colors()["warning"]))
        return None


class TicksModel(QAbstractTableModel):
    """The selection's ticks: ``count`` rows, fetched a page at a time when first shown.

    ``page_needed(page)`` asks the view to fetch a page; ``set_page`` fills it. Sorting by
    a header asks for the selection again in that order (``sort_requested``)."""

    page_needed = Signal(int)
    sort_requested = Signal(str, bool)  # column, descending

    def __init__(self, page_rows: int = dm.PAGE_ROWS, parent=None):
        super().__init__(parent)
        self.page_rows = page_rows
        self.columns: list[str] = []
        self.count = 0
        self.pages: dict[int, list[dict]] = {}
        self.requested: set[int] = set()
        self.generation = 0  # pages of an older selection or order are dropped

    def reset(self, head: dm.TicksHead) -> None:
        self.beginResetModel()
        self.generation += 1
        self.columns = list(head.columns)
        self.count = head.count
        self.pages = {0: head.page.to_pylist()}
        self.requested = {0}
        self.endResetModel()

    def clear(self) -> None:
        self.beginResetModel()
        self.generation += 1
        self.columns, self.count, self.pages, self.requested = [], 0, {}, set()
        self.endResetModel()

    def set_page(self, generation: int, page: int, table: pa.Table) -> None:
        if generation != self.generation:
            return
        self.pages[page] = table.to_pylist()
        first = page * self.page_rows
        last = min(self.count, first + self.page_rows) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self.columns) - 1))

    def row(self, row: int) -> dict | None:
        page = self.pages.get(row // self.page_rows)
        if page is None:
            return None
        at = row % self.page_rows
        return page[at] if at < len(page) else None

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self.count

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        record = self.row(index.row())
        if record is None:
            page = index.row() // self.page_rows
            if page not in self.requested:
                self.requested.add(page)
                self.page_needed.emit(page)
            return "…"
        value = record.get(self.columns[index.column()])
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(value)
        return _fmt(value)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if 0 <= column < len(self.columns):
            self.sort_requested.emit(self.columns[column], order == Qt.SortOrder.DescendingOrder)


# --- the candle chart -----------------------------------------------------------------------------


class CandleItem(pg.GraphicsObject):
    """Candles drawn once into a picture: a body from open to close, a wick from low to high."""

    def __init__(self):
        super().__init__()
        self.picture = QPicture()
        self._rect = QRectF()

    def set_candles(self, x: np.ndarray, o, h, l, c, width: float) -> None:  # noqa: E741 - open/high/low/close
        self.prepareGeometryChange()
        self.picture = QPicture()
        painter = QPainter(self.picture)
        half = width * 0.35
        for xi, oi, hi, li, ci in zip(x, o, h, l, c, strict=True):
            color = QColor(UP_COLOR if ci >= oi else DOWN_COLOR)
            painter.setPen(pg.mkPen(color, width=0))
            painter.drawLine(QPointF(xi + width / 2, li), QPointF(xi + width / 2, hi))
            painter.setBrush(pg.mkBrush(color))
            painter.drawRect(QRectF(xi + width / 2 - half, min(oi, ci), 2 * half, max(abs(ci - oi), 1e-9)))
        painter.end()
        if len(x):
            self._rect = QRectF(float(x.min()), float(np.min(l)), float(x.max() - x.min() + width),
                                float(np.max(h) - np.min(l)) or 1.0)
        else:
            self._rect = QRectF()
        self.update()

    def paint(self, painter, *args) -> None:
        painter.drawPicture(0, 0, self.picture)

    def boundingRect(self) -> QRectF:
        return self._rect


def _with_gaps(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Points at candle middles with a NaN wherever intervals are missing: lines stop at gaps."""
    mid = x + width / 2
    if len(x) < 2:
        return mid, y
    breaks = np.flatnonzero(np.diff(x) > width * 1.5) + 1
    return np.insert(mid, breaks, mid[breaks - 1] + width), np.insert(y.astype(float), breaks, np.nan)


class CandleChart(BuiltWhenShown, QWidget):
    """Candles with volume bars, bid/ask lines, open interest and an OHLCV crosshair."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.readout = QLabel(" ")
        self.readout.setObjectName("muted")
        self.readout.setAccessibleName("Candle under the cursor")
        layout.addWidget(self.readout)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(theme.colors()["plot_bg"])
        layout.addWidget(self.graphics, 1)
        self.day: dm.InstrumentDay | None = None

    def _build(self) -> None:
        # Time axes in the app's display zone (utcOffset is seconds west of UTC).
        self.axes = [pg.DateAxisItem(utcOffset=-_zone_offset_s()) for _ in range(3)]
        self.price_plot = self.graphics.addPlot(enableMenu=False, row=0, col=0, axisItems={"bottom": self.axes[0]})
        self.volume_plot = self.graphics.addPlot(enableMenu=False, row=1, col=0,
                                                 axisItems={"bottom": self.axes[1], "left": CompactAxis("left")})
        self.oi_plot = self.graphics.addPlot(enableMenu=False, row=2, col=0,
                                             axisItems={"bottom": self.axes[2], "left": CompactAxis("left")})
        self.graphics.ci.layout.setRowStretchFactor(0, 4)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)
        self.graphics.ci.layout.setRowStretchFactor(2, 1)
        for plot in (self.volume_plot, self.oi_plot):
            plot.setXLink(self.price_plot)
        _style_plot(self.price_plot, self._title(), "price")
        _style_plot(self.volume_plot, "Volume per candle", "qty")
        _style_plot(self.oi_plot, "Open interest", "OI")
        for plot in (self.price_plot, self.volume_plot, self.oi_plot):
            plot.getAxis("left").setWidth(64)
        self.price_plot.hideAxis("bottom")
        self.volume_plot.hideAxis("bottom")
        self.candles = CandleItem()
        self.price_plot.addItem(self.candles)
        self.bid_curve = self.price_plot.plot(pen=pg.mkPen(BID_COLOR, width=1), connect="finite")
        self.ask_curve = self.price_plot.plot(pen=pg.mkPen(ASK_COLOR, width=1), connect="finite")
        self.oi_curve = self.oi_plot.plot(pen=pg.mkPen(OI_COLOR, width=1.4), connect="finite")
        self.volume_bars: pg.BarGraphItem | None = None
        self.cross = [pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(theme.colors()["muted"], width=0.8))
                      for _ in range(3)]
        for line, plot in zip(self.cross, (self.price_plot, self.volume_plot, self.oi_plot), strict=True):
            plot.addItem(line, ignoreBounds=True)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(theme.colors()["muted"], width=0.8))
        self.price_plot.addItem(self.hline, ignoreBounds=True)
        self.graphics.scene().sigMouseMoved.connect(self._moved)
        if self.day is not None:
            self._draw(self.day)

    def show_day(self, day: dm.InstrumentDay) -> None:
        self.day = day
        self.readout.setText(self._summary(day))
        if self._built:
            self._draw(day)

    @staticmethod
    def _summary(day: dm.InstrumentDay) -> str:
        if day.starts is None or not len(day.starts):
            return f"{day.label}: no ticks" + (f" on {day.day}" if day.day else "")
        return (f"{day.label} · {day.day} · {day.interval} · {len(day.starts):,} candles · "
                "move the pointer over the chart for OHLCV")

    def _draw(self, day: dm.InstrumentDay) -> None:
        if self.volume_bars is not None:
            self.volume_plot.removeItem(self.volume_bars)
            self.volume_bars = None
        rows = day.candles
        x = day.starts if day.starts is not None else np.zeros(0)
        width = float(day.width)
        if not len(x):
            self.candles.set_candles(x, [], [], [], [], width)
            for curve in (self.bid_curve, self.ask_curve, self.oi_curve):
                curve.setData([], [])
            return
        col = {name: rows[name].to_numpy(zero_copy_only=False).astype(float) for name in ("open", "high", "low",
                                                                                          "close")}
        self.candles.set_candles(x, col["open"], col["high"], col["low"], col["close"], width)
        volume = rows["volume"].cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False)
        has = ~np.isnan(volume)
        if has.any():
            self.volume_bars = pg.BarGraphItem(x=x[has] + width / 2, height=volume[has], width=width * 0.7,
                                               brush=pg.mkBrush(VOLUME_COLOR), pen=pg.mkPen(None))
            self.volume_plot.addItem(self.volume_bars)
        quotes = day.quotes
        qx = quotes["start_us"].to_numpy(zero_copy_only=False).astype(float) / 1e6 if quotes.num_rows else np.zeros(0)
        for name, curve in (("bid", self.bid_curve), ("ask", self.ask_curve), ("oi", self.oi_curve)):
            if quotes.num_rows and name in quotes.column_names:
                y = quotes[name].cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False)
                keep = ~np.isnan(y)
                curve.setData(*_with_gaps(qx[keep], y[keep], width), connect="finite")
            else:
                curve.setData([], [])
        has_oi = bool(quotes.num_rows and "oi" in quotes.column_names and quotes["oi"].null_count < quotes.num_rows)
        self._show_oi(has_oi)
        self.price_plot.setXRange(float(x.min()), float(x.max() + width), padding=0.02)
        self.price_plot.setYRange(float(np.nanmin(col["low"])), float(np.nanmax(col["high"])), padding=0.05)
        self.volume_plot.setYRange(0, float(np.nanmax(volume)) * 1.1 if has.any() and np.nanmax(volume) > 0 else 1)

    @staticmethod
    def _title() -> str:
        return f"Candles cut on the IST clock, times in {time_zone()} · bid/ask lines where depth exists"

    def set_time_zone(self) -> None:
        if not self._built:  # the plots take the zone when built
            return
        for axis in self.axes:
            axis.utcOffset = -_zone_offset_s()
            axis.picture = None
            axis.update()
        _style_plot(self.price_plot, self._title(), "price")

    def _show_oi(self, shown: bool) -> None:
        """The OI row only where there is OI; the lowest plot shown carries the time axis."""
        self.oi_plot.setVisible(shown)
        self.oi_plot.setMaximumHeight(16_777_215 if shown else 0)
        self.graphics.ci.layout.setRowStretchFactor(2, 1 if shown else 0)
        self.volume_plot.showAxis("bottom", not shown)

    def readout_at(self, x: float) -> str:
        if self.day is None:
            return ""
        candle = self.day.at(x)
        if candle is None:
            return f"{self.day.label} · no ticks at {format_time(x)[11:16]} IST (a gap)"  # candles are IST
        volume = "—" if candle["volume"] is None else f"{candle['volume']:,}"
        return (f"{self.day.label} · {candle['start'][11:16]} IST · O {candle['open']:,.2f} · H {candle['high']:,.2f}"
                f" · L {candle['low']:,.2f} · C {candle['close']:,.2f} · V {volume} · {candle['ticks']:,} ticks")

    def _moved(self, pos) -> None:
        if self.day is None or not self.price_plot.sceneBoundingRect().united(
                self.volume_plot.sceneBoundingRect()).contains(pos):
            return
        point = self.price_plot.vb.mapSceneToView(pos)
        for line in self.cross:
            line.setPos(point.x())
        self.hline.setPos(point.y())
        self.readout.setText(self.readout_at(point.x()))

    def restyle(self) -> None:
        restyle(self.graphics)
        if not self._built:
            return
        for line in self.cross + [self.hline]:
            line.setPen(pg.mkPen(theme.colors()["muted"], width=0.8))


# --- the view ----------------------------------------------------------------------------------


class DataView(QWidget):
    """The Data tab. ``run(fn, done, failed)`` runs ``fn`` as an exclusive target task."""

    open_packet = Signal(str, int, str)  # capture path, offset, file_id
    open_capture = Signal(str)
    reingest = Signal(str)
    target_changed = Signal()  # a capture was removed
    loaded = Signal(str)  # "captures" | "instruments" | "day" | "ticks" | "page": tests wait on it
    failed = Signal(str)

    def __init__(self, run: Runner, parent=None):
        super().__init__(parent)
        self.run = run
        self.target = ""
        self.selection: dm.TickSelection | None = None
        self.instrument: tuple[int, str] | None = None
        self.day: dm.InstrumentDay | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.message = QLabel("")
        self.message.setObjectName("muted")
        self.message.setWordWrap(True)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        self._stale = False  # the target changed while the view was hidden: refresh when shown
        self._build_captures()
        self._build_instruments()
        self._build_day()
        self._build_ticks()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._stale:
            self.refresh()

    # -- building ---------------------------------------------------------------------------------

    def _bar(self, *widgets) -> QHBoxLayout:
        bar = QHBoxLayout()
        for w in widgets:
            if w is None:
                bar.addStretch(1)
            else:
                bar.addWidget(w)
        return bar

    def _build_captures(self) -> None:
        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 4, 0, 0)
        self.captures_model = CapturesModel(self)
        self.captures_view = row_table("dataCaptures", "Captures in the target", self.captures_model, multi=True)
        self.captures_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((200, 110, 80, 64, 50, 80, 70, 130, 90, 300)):
            self.captures_view.setColumnWidth(column, width)
        self.btn_cap_inspect = QPushButton("Open in inspector")
        self.btn_cap_reveal = QPushButton("Reveal file")
        self.btn_cap_reingest = QPushButton("Re-ingest")
        self.btn_cap_remove = QPushButton("Remove…")
        self.btn_cap_ticks = QPushButton("Ticks")
        self.btn_cap_export = QPushButton("Export ticks…")
        self.btn_cap_refresh = QPushButton("Refresh")
        v.addLayout(self._bar(self.btn_cap_inspect, self.btn_cap_reveal, self.btn_cap_reingest, self.btn_cap_remove,
                              self.btn_cap_ticks, self.btn_cap_export, None, self.btn_cap_refresh))
        v.addWidget(self.captures_view, 1)
        self.btn_cap_inspect.clicked.connect(lambda: self._each_capture(lambda r: self.open_capture.emit(r.path)))
        self.btn_cap_reveal.clicked.connect(lambda: self._each_capture(lambda r: DataAsk.reveal(r.path)))
        self.btn_cap_reingest.clicked.connect(lambda: self._each_capture(lambda r: self.reingest.emit(r.path)))
        self.btn_cap_remove.clicked.connect(self.remove_selected_captures)
        self.btn_cap_ticks.clicked.connect(self._capture_ticks)
        self.btn_cap_export.clicked.connect(self._export_capture)
        self.btn_cap_refresh.clicked.connect(self.refresh)
        self.captures_view.doubleClicked.connect(lambda *_: self._capture_ticks())
        self.tabs.addTab(page, "Captures")

    def _build_instruments(self) -> None:
        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 4, 0, 0)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search symbol, name, token or exchange token (e.g. INFY)…")
        self.search.setAccessibleName("Search instruments")
        self.search.setClearButtonEnabled(True)
        self.btn_inst_day = QPushButton("Candles")
        self.btn_inst_ticks = QPushButton("Ticks")
        v.addLayout(self._bar(self.search, self.btn_inst_day, self.btn_inst_ticks))
        self.instruments_model = ArrowModel({"symbol": "Symbol", "name": "Name", "exchange": "Exchange",
                                             "instrument_type": "Type", "instrument_token": "Token",
                                             "exchange_token": "Exch. token", "ticks": "Ticks",
                                             "first_time": "First tick", "last_time": "Last tick"}, self)
        self.instruments_view = row_table("dataInstruments", "Instruments", self.instruments_model)
        self.instruments_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((150, 130, 70, 50, 90, 90, 80, 140, 140)):
            self.instruments_view.setColumnWidth(column, width)
        v.addWidget(self.instruments_view, 1)
        self.search.returnPressed.connect(self.search_instruments)
        self.search.textChanged.connect(lambda *_: self.search_instruments())
        self.instruments_view.doubleClicked.connect(lambda *_: self._instrument_day())
        self.btn_inst_day.clicked.connect(self._instrument_day)
        self.btn_inst_ticks.clicked.connect(self._instrument_ticks)
        self.tabs.addTab(page, "Instruments")

    def _build_day(self) -> None:
        page = QWidget()
        h = QHBoxLayout(page)
        h.setContentsMargins(0, 4, 0, 0)
        side = QVBoxLayout()
        self.day_title = QLabel("Choose an instrument in Instruments.")
        self.day_title.setWordWrap(True)
        self.calendar = QCalendarWidget()
        self.calendar.setAccessibleName("Days with ticks")
        self.calendar.setGridVisible(False)
        self.calendar.setVerticalHeaderFormat(QCalendarWidget.VerticalHeaderFormat.NoVerticalHeader)
        self.calendar.setMaximumWidth(250)
        self.calendar.setFixedHeight(215)
        self.interval = QComboBox()
        self.interval.addItems(["1m", "5m", "15m", "1h", "1d"])
        self.interval.setAccessibleName("Candle interval")
        self.btn_day_ticks = QPushButton("Ticks of this day")
        self.btn_day_sql = QPushButton("Copy SQL")
        self.btn_day_export = QPushButton("Export candles…")
        side.addWidget(self.day_title)
        side.addWidget(self.calendar)
        side.addLayout(self._bar(QLabel("Interval"), self.interval))
        side.addWidget(self.btn_day_ticks)
        side.addWidget(self.btn_day_sql)
        side.addWidget(self.btn_day_export)
        side.addStretch(1)
        # The side column scrolls rather than make the window taller than 700 px.
        holder = QWidget()
        holder.setLayout(side)
        scroll = QScrollArea()
        scroll.setWidget(holder)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(262)
        h.addWidget(scroll)
        self.chart = CandleChart()
        h.addWidget(self.chart, 1)
        self.calendar.clicked.connect(self._day_clicked)
        self.interval.currentTextChanged.connect(lambda *_: self._reload_day())
        self.btn_day_ticks.clicked.connect(self._day_ticks)
        self.btn_day_sql.clicked.connect(self._copy_day_sql)
        self.btn_day_export.clicked.connect(self._export_day)
        self.tabs.addTab(page, "Instrument day")

    def _build_ticks(self) -> None:
        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 4, 0, 0)
        self.ticks_title = QLabel("Choose a capture, an instrument or a day.")
        self.btn_packet = QPushButton("Show packet")
        self.btn_packet.setToolTip("Open the packet inspector on this tick's capture, at its offset")
        self.btn_ticks_sql = QPushButton("Copy SQL")
        self.btn_ticks_export = QPushButton("Export…")
        v.addLayout(self._bar(self.ticks_title, None, self.btn_packet, self.btn_ticks_sql, self.btn_ticks_export))
        self.ticks_model = TicksModel(parent=self)
        self.ticks_view = row_table("dataTicks", "Ticks", self.ticks_model, row_height=24)
        self.ticks_view.setSortingEnabled(False)
        self.ticks_view.horizontalHeader().setSectionsClickable(True)
        self.ticks_view.horizontalHeader().setSortIndicatorShown(True)
        self.ticks_view.horizontalHeader().sectionClicked.connect(self._sort_clicked)
        v.addWidget(self.ticks_view, 1)
        self.ticks_model.page_needed.connect(self._fetch_page)
        self.ticks_model.sort_requested.connect(self._sort)
        self.btn_packet.clicked.connect(self.show_packet)
        self.ticks_view.doubleClicked.connect(lambda *_: self.show_packet())
        self.btn_ticks_sql.clicked.connect(self._copy_ticks_sql)
        self.btn_ticks_export.clicked.connect(self._export_ticks)
        self.tabs.addTab(page, "Ticks")

    # -- target -------------------------------------------------------------------------------------

    def set_target(self, path: str) -> None:
        if path != self.target:
            self.target = path
            self.instrument = None
            self.selection = None
            self.day = None
            self.ticks_model.clear()
            self.instruments_model.set_table(pa.table({}))
            self.captures_model.set_rows([])
        self.refresh()

    def refresh(self) -> None:
        """Read the captures list again and repeat the current search (after an ingest).
        While the view is hidden this waits for its next show: each finished job refreshes
        the target's views, and a hidden Data tab need not query the target each time."""
        if not self.target:
            return
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        from app.store.checks import check_target

        try:
            exists = check_target(self.target, writable=False).exists
        except Exception:  # noqa: BLE001 - the card says what is wrong with the target
            exists = False
        if not exists:
            self.captures_model.set_rows([])
            self.message.setText("The target holds nothing yet: ingest captures into it first.")
            return
        target = self.target
        self._task(lambda: dm.load_captures(target), self._captures_loaded)
        self.search_instruments()

    def _task(self, fn, done) -> None:
        def failed(exc, tb) -> None:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._stale = True  # (e.g. the target was locked) the view's next show asks again
            self.message.setText(text)
            self.failed.emit(text)

        self.run(fn, done, failed)

    def _captures_loaded(self, rows) -> None:
        self.captures_model.set_rows(rows)
        damaged = sum(1 for r in rows if r.integrity not in ("ok", "not checked"))
        ticks = sum(r.ticks for r in rows)
        self.message.setText(f"{len(rows):,} captures · {ticks:,} ticks"
                             + (f" · {damaged} damaged (see Integrity)" if damaged else " · integrity ok"))
        self.loaded.emit("captures")

    # -- captures -----------------------------------------------------------------------------------

    def selected_captures(self) -> list:
        rows = sorted({i.row() for i in self.captures_view.selectionModel().selectedRows()})
        return [self.captures_model.rows[r] for r in rows]

    def _each_capture(self, action) -> None:
        for row in self.selected_captures():
            action(row)

    def _capture_ticks(self) -> None:
        rows = self.selected_captures()
        if rows:
            self.show_ticks(dm.capture_selection(rows[0]))

    def remove_selected_captures(self) -> None:
        rows = self.selected_captures()
        if not rows:
            return
        ticks = sum(r.ticks for r in rows)
        if not DataAsk.confirm_remove(self, [r.file_name for r in rows], ticks, sum(r.bad_packets for r in rows),
                                      self.target):
            return
        from app.store import remove_captures

        target, ids = self.target, [r.file_id for r in rows]

        def done(removed) -> None:
            self.message.setText(f"Removed {len(removed)} capture(s): {sum(r.ticks for r in removed):,} ticks")
            self.target_changed.emit()
            self.refresh()

        self._task(lambda: remove_captures(target, ids), done)

    def _export_capture(self) -> None:
        rows = self.selected_captures()
        if rows:
            self._export(dm.capture_selection(rows[0]), Path(rows[0].file_name).stem + "-ticks.csv")

    # -- instruments --------------------------------------------------------------------------------

    def search_instruments(self) -> None:
        if not self.target:
            return
        target, text = self.target, self.search.text()

        def done(table) -> None:
            if text != self.search.text():
                return  # an older search
            self.instruments_model.set_table(table)
            if table.num_rows and not self.instruments_view.currentIndex().isValid():
                self.instruments_view.selectRow(0)
            self.loaded.emit("instruments")

        self._task(lambda: dm.search_instruments(target, text), done)

    def _current_instrument(self) -> tuple[int, str] | None:
        index = self.instruments_view.currentIndex()
        if not index.isValid():
            return self.instrument
        row = self.instruments_model.rows[index.row()]
        label = (f"{row['exchange']}:{row['symbol']}" if row["symbol"] else f"token {row['instrument_token']}")
        return int(row["instrument_token"]), label

    def _instrument_day(self) -> None:
        chosen = self._current_instrument()
        if chosen:
            self.show_instrument(*chosen)

    def _instrument_ticks(self) -> None:
        chosen = self._current_instrument()
        if chosen:
            from app.store.query import TickFilter

            self.show_ticks(dm.TickSelection(f"{chosen[1]}: all ticks", TickFilter(instrument_token=chosen[0])))

    # -- instrument day ------------------------------------------------------------------------------

    def show_instrument(self, token: int, label: str, day: dt.date | None = None) -> None:
        self.instrument = (int(token), label)
        self.tabs.setCurrentIndex(2)
        self._load_day(day)

    def _load_day(self, day: dt.date | None) -> None:
        if not self.instrument or not self.target:
            return
        (token, label), target, interval = self.instrument, self.target, self.interval.currentText()

        def done(result: dm.InstrumentDay) -> None:
            self.day = result
            self._mark_days(result.days)
            if result.day:
                self.calendar.setSelectedDate(QDate(result.day.year, result.day.month, result.day.day))
            self.day_title.setText(f"<b>{label}</b><br>{len(result.days)} day(s) with ticks"
                                   + (f" · {result.day}" if result.day else ""))
            self.chart.show_day(result)
            self.loaded.emit("day")

        self._task(lambda: dm.load_instrument_day(target, token, day, interval, label), done)

    def _mark_days(self, days) -> None:
        self.calendar.setDateTextFormat(QDate(), QTextCharFormat())  # clear
        fmt = QTextCharFormat()
        fmt.setFontWeight(700)
        fmt.setBackground(QBrush(QColor(theme.colors()["highlight"]).lighter(170)
                                 if theme.current() == "light" else QColor("#1e3a8a")))
        for d in days:
            self.calendar.setDateTextFormat(QDate(d.year, d.month, d.day), fmt)
        if days:
            last = QDate(days[-1].year, days[-1].month, 1).addMonths(1).addDays(-1)
            self.calendar.setDateRange(QDate(days[0].year, days[0].month, 1), last)

    def _day_clicked(self, qdate: QDate) -> None:
        day = dt.date(qdate.year(), qdate.month(), qdate.day())
        if self.day is not None and day not in self.day.days:
            self.message.setText(f"No ticks of {self.instrument[1]} on {day}: days with ticks are in bold.")
            return
        self._load_day(day)

    def _reload_day(self) -> None:
        if self.day is not None:
            self._load_day(self.day.day)

    def _day_ticks(self) -> None:
        if self.day is not None and self.day.day:
            self.show_ticks(dm.day_selection(self.day.token, self.day.label, self.day.day))

    def _copy_day_sql(self) -> None:
        if self.day is not None and self.day.sql:
            DataAsk.copy_text(self.day.sql)
            self.message.setText("Copied the DuckDB query of these candles.")

    def _export_day(self) -> None:
        if self.day is None or not self.day.day:
            return
        path = DataAsk.export_path(self, f"{self.day.label.replace(':', '_')}-{self.day.day}-{self.day.interval}.csv")
        if path:
            d, target = self.day, self.target
            fmt = _format_of(path)
            self._task(lambda: dm.export_candles(target, d.token, d.day, d.interval, path, fmt),
                       lambda n: self.message.setText(f"Wrote {n:,} candles to {path}"))

    # -- ticks ------------------------------------------------------------------------------------------

    def show_ticks(self, selection: dm.TickSelection) -> None:
        self.selection = selection
        self.tabs.setCurrentIndex(3)
        self.ticks_title.setText(f"<b>{selection.label}</b> · loading…")
        self._open_selection()

    def _open_selection(self) -> None:
        selection, target = self.selection, self.target

        def done(head: dm.TicksHead) -> None:
            if selection is not self.selection:
                return
            self.ticks_model.reset(head)
            self.ticks_view.resizeColumnsToContents()
            order = (f" · sorted by {selection.order_by}{' (descending)' if selection.descending else ''}"
                     if selection.order_by else "")
            self.ticks_title.setText(f"<b>{selection.label}</b> · {head.count:,} ticks{order}")
            if head.count:
                self.ticks_view.selectRow(0)
            self.loaded.emit("ticks")

        self._task(lambda: dm.open_ticks(target, selection), done)

    def _fetch_page(self, page: int) -> None:
        selection, target, generation = self.selection, self.target, self.ticks_model.generation
        rows = self.ticks_model.page_rows

        def done(table) -> None:
            self.ticks_model.set_page(generation, page, table)
            self.loaded.emit("page")

        self._task(lambda: dm.ticks_page(target, selection, page * rows, rows), done)

    def _sort_clicked(self, section: int) -> None:
        if self.selection is None or section >= len(self.ticks_model.columns):
            return
        column = self.ticks_model.columns[section]
        descending = self.selection.order_by == column and not self.selection.descending
        self.ticks_view.horizontalHeader().setSortIndicator(
            section, Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder)
        self._sort(column, descending)

    def _sort(self, column: str, descending: bool) -> None:
        if self.selection is None:
            return
        self.selection.order_by, self.selection.descending = column, descending
        self._open_selection()

    def current_tick(self) -> dict | None:
        index = self.ticks_view.currentIndex()
        return self.ticks_model.row(index.row()) if index.isValid() else None

    def show_packet(self) -> None:
        """Open the inspector on the current tick's capture with its packet selected; when
        the capture has moved, ask where it is and check its sha256 is the tick's file_id."""
        tick = self.current_tick()
        if tick is None or "file_id" not in tick or "offset" not in tick:
            self.message.setText("Select a tick first.")
            return
        file_id, offset = dm.tick_packet(tick)
        target = self.target

        def located(where: dm.CaptureLocation) -> None:
            if where.found:
                self.open_packet.emit(where.path, offset, file_id)
                return
            path = DataAsk.locate_capture(self, Path(where.path).name or file_id[:12])
            if not path:
                self.message.setText(f"{Path(where.path).name} is not at {where.path} any more.")
                return
            self.message.setText(f"Checking that {Path(path).name} is the capture (sha256)…")
            self._task(lambda: dm.check_moved_capture(path, file_id),
                       lambda checked: self.open_packet.emit(checked, offset, file_id))

        self._task(lambda: dm.locate_capture(target, file_id), located)

    def _copy_ticks_sql(self) -> None:
        if self.selection is None:
            return
        selection, target = self.selection, self.target

        def done(text: str) -> None:
            DataAsk.copy_text(text)
            self.message.setText("Copied the DuckDB query of this selection.")

        self._task(lambda: dm.copy_sql(target, selection.query()), done)

    def _export_ticks(self) -> None:
        if self.selection is not None:
            self._export(self.selection, "ticks.csv")

    def _export(self, selection: dm.TickSelection, suggested: str) -> None:
        path = DataAsk.export_path(self, suggested)
        if not path:
            return
        target, fmt = self.target, _format_of(path)
        self._task(lambda: dm.export_selection(target, selection, path, fmt),
                   lambda n: self.message.setText(f"Wrote {n:,} ticks to {path}"))

    def set_time_zone(self) -> None:
        self.chart.set_time_zone()
        for model in (self.captures_model, self.instruments_model, self.ticks_model):
            if model.rowCount():
                model.dataChanged.emit(model.index(0, 0), model.index(model.rowCount() - 1, model.columnCount() - 1))

    def restyle(self) -> None:
        self.chart.restyle()
        if self.day is not None:
            self._mark_days(self.day.days)


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in ("csv", "parquet", "json") else "csv"


__all__ = ["DataView", "DataAsk", "CandleChart", "TicksModel", "CapturesModel"]

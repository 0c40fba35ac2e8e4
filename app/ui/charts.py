"""pyqtgraph charts: live throughput, one capture's packets by kind and segment, and a
price/volume preview of one instrument. They only draw what they are given."""

from __future__ import annotations

import collections
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QFont, QFontMetricsF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.core import market_time
from app.model.formatting import time_zone
from app.ui import theme

pg.setConfigOptions(antialias=True)

PPS_COLOR = "#3b82f6"
MBPS_COLOR = "#8b5cf6"
KIND_COLOR = "#0ea5e9"
SEGMENT_COLOR = "#f59e0b"
PRICE_COLOR = "#16a34a"
VOLUME_COLOR = "#94a3b8"


def _zone_offset_s() -> int:
    return int(market_time.zone(time_zone()).utcoffset(None).total_seconds())


def _style_plot(plot: pg.PlotItem, title: str, left: str, grid: bool = True) -> None:
    plot._tickscope_style = (title, left, grid)  # restyle() applies it again with a new theme
    c = theme.colors()
    plot.setTitle(f"<span style='color:{c['muted']};font-size:9pt'>{title}</span>")
    # The title's row as tall as its line (pyqtgraph fixes it at 30 px): at the window's
    # default size the throughput plots are ~75 px each, and the plot gets the rest.
    title_font = QFont(plot.titleLabel.item.font())
    title_font.setPointSizeF(9)
    title_height = math.ceil(QFontMetricsF(title_font).height()) + 4
    plot.titleLabel.setMaximumHeight(title_height)
    plot.layout.setRowFixedHeight(0, title_height)
    plot.setLabel("left", left, color=c["muted"])
    if grid:  # translucent grid lines cost ~40 ms a repaint: never on live charts
        plot.showGrid(x=False, y=True, alpha=0.15)
    plot.setMenuEnabled(False)  # (built with enableMenu=False: no ViewBox menu is made at all)
    plot.hideButtons()
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(c["border"]))
        axis.setTextPen(pg.mkPen(c["plot_fg"]))


def restyle(graphics: pg.GraphicsLayoutWidget) -> None:
    """Theme colours again on a chart and every plot in it (after a theme change)."""
    graphics.setBackground(theme.colors()["plot_bg"])
    for item in graphics.ci.items:
        style = getattr(item, "_tickscope_style", None)
        if style is not None:
            _style_plot(item, *style)


class BuiltWhenShown:
    """Mixed into a chart (before its Qt class): its pyqtgraph plots (``_build``) are made
    the first time it is shown, not with the window. A window holds ~9 plots (~0.1 CPU-s to
    build) in tabs a user may never open. Until then the chart keeps what it was given and
    ``_build`` draws it."""

    _built = False

    def ensure_built(self) -> None:
        if not self._built:
            self._built = True
            self._build()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.ensure_built()
        super().showEvent(event)

    def _build(self) -> None:
        raise NotImplementedError


class CompactAxis(pg.AxisItem):
    """Tick labels like 250k and 1.2M instead of 250000 and 1200000; on a short vertical axis
    (the throughput plots at the window's default 1024x700), no more labels than fit.

    pyqtgraph always labels every major tick and puts at least two intervals on an axis, so
    a plot ~25 px tall showed 0, 200k and 400k over each other. Here the major spacing is
    widened to the least one-digit value (1-9 times a power of ten: 0 and 300k, say) leaving
    ``LABEL_ROOM`` lines of height between labels, and the minor ticks go with it."""

    LABEL_ROOM = 1.2  # a label's line height times this, at least, between labelled ticks

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        levels = super().tickSpacing(minVal, maxVal, size)
        if self.orientation not in ("left", "right") or not levels or size <= 0 or self._tickSpacing is not None:
            return levels
        line = QFontMetricsF(self.style["tickFont"] or self.font()).height()
        needed = abs(maxVal - minVal) * line * self.LABEL_ROOM / size  # the least spacing, in axis units
        if levels[0][0] >= needed:
            return levels
        return [(_round_up(needed), 0)]

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            v = v * scale
            if abs(v) >= 1e6:
                out.append(f"{v / 1e6:g}M")
            elif abs(v) >= 1e3:
                out.append(f"{v / 1e3:g}k")
            else:
                out.append(f"{v:g}")
        return out


def _round_up(value: float) -> float:
    """The least one-digit multiple of a power of ten (1, 2, ... 9, 10) at least ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return math.ceil(round(value / power, 9)) * power


class ThroughputChart(BuiltWhenShown, pg.GraphicsLayoutWidget):
    """Packets/s and MB/s of the current job, over the seconds since it started."""

    MAX_POINTS = 3000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(theme.colors()["plot_bg"])
        self._t = collections.deque(maxlen=self.MAX_POINTS)
        self._pps = collections.deque(maxlen=self.MAX_POINTS)
        self._mbps = collections.deque(maxlen=self.MAX_POINTS)

    def _build(self) -> None:
        self.pps_plot = self.addPlot(enableMenu=False, row=0, col=0, axisItems={"left": CompactAxis("left")})
        self.mbps_plot = self.addPlot(enableMenu=False, row=1, col=0, axisItems={"left": CompactAxis("left")})
        self.mbps_plot.setXLink(self.pps_plot)
        _style_plot(self.pps_plot, "Packets per second (current job)", "pkt/s", grid=False)
        _style_plot(self.mbps_plot, "Megabytes per second (current job)", "MB/s", grid=False)
        self.pps_plot.hideAxis("bottom")  # shares the lower plot's time axis
        for plot in (self.pps_plot, self.mbps_plot):
            plot.getAxis("left").setWidth(64)
        self.mbps_plot.setLabel("bottom", "seconds since the job started", color=theme.colors()["muted"])
        self.pps_curve = self.pps_plot.plot(
            pen=pg.mkPen(PPS_COLOR, width=2), fillLevel=0, brush=pg.mkBrush(59, 130, 246, 40))
        self.mbps_curve = self.mbps_plot.plot(
            pen=pg.mkPen(MBPS_COLOR, width=2), fillLevel=0, brush=pg.mkBrush(139, 92, 246, 40))
        for plot in (self.pps_plot, self.mbps_plot):
            plot.setYRange(0, 1)
            plot.enableAutoRange(axis="y", enable=True)
        self._draw()

    def add_sample(self, seconds: float, pps: float, mbps: float) -> None:
        self._t.append(seconds)
        self._pps.append(pps)
        self._mbps.append(mbps)
        if self._built:
            self._draw()

    def _draw(self) -> None:
        t = np.fromiter(self._t, float)
        self.pps_curve.setData(t, np.fromiter(self._pps, float))
        self.mbps_curve.setData(t, np.fromiter(self._mbps, float))

    @property
    def samples(self) -> int:
        return len(self._t)

    def reset(self) -> None:
        """No samples: the chart of a new job. (Not ``clear``: GraphicsLayoutWidget sets an
        instance attribute ``clear``, its layout's, which would shadow such a method and take
        both plots out of the chart, leaving them to Python's garbage collector while their
        child items still belong to them in C++.)"""
        self._t.clear()
        self._pps.clear()
        self._mbps.clear()
        if self._built:
            self._draw()


class _Bars:
    def __init__(self, plot: pg.PlotItem, color: str):
        self.plot = plot
        self.color = color
        self.item: pg.BarGraphItem | None = None
        self.labels: list[pg.TextItem] = []

    def set(self, counts: dict[str, int]) -> None:
        if self.item is not None:
            self.plot.removeItem(self.item)
            self.item = None
        for label in self.labels:
            self.plot.removeItem(label)
        self.labels = []
        names = list(counts)
        values = [counts[n] for n in names]
        self.plot.getAxis("bottom").setTicks([list(enumerate(names))])
        if not names:
            return
        self.item = pg.BarGraphItem(x=np.arange(len(names)), height=values, width=0.6,
                                    brush=pg.mkBrush(self.color), pen=pg.mkPen(None))
        self.plot.addItem(self.item)
        for i, value in enumerate(values):
            label = pg.TextItem(f"{value:,}", color=theme.colors()["plot_fg"], anchor=(0.5, 1.1))
            label.setPos(i, value)
            self.plot.addItem(label)
            self.labels.append(label)
        self.plot.setXRange(-0.6, len(names) - 0.4, padding=0)
        self.plot.setYRange(0, max(values) * 1.18 or 1, padding=0)


class BreakdownChart(BuiltWhenShown, QWidget):
    """Packets of the selected capture by kind and by segment."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.caption = QLabel("Select a finished file in the queue to see its packets by kind and segment.")
        self.caption.setObjectName("muted")
        self.caption.setWordWrap(True)
        layout.addWidget(self.caption)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(theme.colors()["plot_bg"])
        layout.addWidget(self.graphics, 1)
        self.current: str | None = None
        self._counts: tuple[dict[str, int], dict[str, int]] = ({}, {})  # kinds, segments

    def _build(self) -> None:
        self.kind_plot = self.graphics.addPlot(enableMenu=False, row=0, col=0, axisItems={"left": CompactAxis("left")})
        self.segment_plot = self.graphics.addPlot(enableMenu=False, row=0, col=1,
                                                  axisItems={"left": CompactAxis("left")})
        _style_plot(self.kind_plot, "Packets by kind", "packets")
        _style_plot(self.segment_plot, "Packets by segment", "packets")
        for plot in (self.kind_plot, self.segment_plot):
            plot.setMouseEnabled(x=False, y=False)
        self.kinds = _Bars(self.kind_plot, KIND_COLOR)
        self.segments = _Bars(self.segment_plot, SEGMENT_COLOR)
        self._draw()

    def show_breakdown(self, breakdown) -> None:
        self.current = breakdown.file_id
        total = sum(breakdown.kinds.values())
        self.caption.setText(
            f"<b>{breakdown.name or breakdown.file_id[:12]}</b> — {total:,} packets, "
            f"{breakdown.bad_packets:,} bad"
        )
        self._counts = (dict(breakdown.kinds), dict(breakdown.segments))
        if self._built:
            self._draw()

    def show_message(self, text: str) -> None:
        self.current = None
        self.caption.setText(text)
        self._counts = ({}, {})
        if self._built:
            self._draw()

    def _draw(self) -> None:
        self.kinds.set(self._counts[0])
        self.segments.set(self._counts[1])


class PricePreview(BuiltWhenShown, QWidget):
    """Last price and per-tick traded volume of one instrument from the target."""

    instrument_chosen = Signal(int, str)  # instrument_token, label
    refresh_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        label = QLabel("&Instrument:")
        self.combo = QComboBox()
        self.combo.setMinimumWidth(280)
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.lineEdit().setPlaceholderText("Type a symbol or token…")
        label.setBuddy(self.combo)
        self.reload = QPushButton("Reload list")
        self.caption = QLabel("")
        self.caption.setObjectName("muted")
        bar.addWidget(label)
        bar.addWidget(self.combo)
        bar.addWidget(self.reload)
        bar.addWidget(self.caption, 1)
        layout.addLayout(bar)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(theme.colors()["plot_bg"])
        layout.addWidget(self.graphics, 1)
        self.combo.activated.connect(self._chosen)
        self.reload.clicked.connect(self.refresh_requested)
        self.points = 0
        self._series = None  # the instrument shown (drawn once the plots are built)
        self._stale = False  # the target changed while hidden: ask for the list when shown

    def mark_stale(self) -> None:
        """The instrument list is out of date; it is asked for (refresh_requested) when shown."""
        self._stale = True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.refresh_requested.emit()

    def _build(self) -> None:
        # Times in the app's display zone (utcOffset is seconds west of UTC).
        self.price_axis = pg.DateAxisItem(utcOffset=-_zone_offset_s())
        self.volume_axis = pg.DateAxisItem(utcOffset=-_zone_offset_s())
        self.price_plot = self.graphics.addPlot(enableMenu=False, row=0, col=0, axisItems={"bottom": self.price_axis})
        self.volume_plot = self.graphics.addPlot(
            enableMenu=False, row=1, col=0, axisItems={"bottom": self.volume_axis, "left": CompactAxis("left")})
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)
        self.volume_plot.setXLink(self.price_plot)
        _style_plot(self.price_plot, f"Last price, times in {time_zone()}", "price")
        _style_plot(self.volume_plot, "Traded volume per tick", "qty")
        self.price_curve = self.price_plot.plot(pen=pg.mkPen(PRICE_COLOR, width=1.6))
        self.volume_bars: pg.BarGraphItem | None = None
        if self._series is not None:
            self._draw(self._series)

    def set_time_zone(self) -> None:
        """Show times in the app's (new) display zone (plots not built yet take it when built)."""
        if not self._built:
            return
        for axis in (self.price_axis, self.volume_axis):
            axis.utcOffset = -_zone_offset_s()
            axis.picture = None
            axis.update()
        _style_plot(self.price_plot, f"Last price, times in {time_zone()}", "price")

    def set_choices(self, choices: list[tuple[int, str, int]]) -> None:
        current = self.combo.currentData()
        self.combo.blockSignals(True)
        self.combo.clear()
        for token, label, ticks in choices:
            self.combo.addItem(f"{label}  ·  {ticks:,} ticks", token)
        if current is not None:
            i = self.combo.findData(current)
            if i >= 0:
                self.combo.setCurrentIndex(i)
        self.combo.blockSignals(False)
        if not choices:
            self.caption.setText("No ticks in the target yet.")
        elif current is None:
            self._chosen(0)

    def _chosen(self, index: int) -> None:
        token = self.combo.itemData(index)
        if token is not None:
            self.instrument_chosen.emit(int(token), self.combo.itemText(index).split("  ·  ")[0])

    def show_series(self, series) -> None:
        self._series = series
        self.points = int(np.isfinite(series.prices).sum())  # NaNs only separate trading days
        self.caption.setText(self._caption(series))
        if self._built:
            self._draw(series)

    def _draw(self, series) -> None:
        times, prices = series.times, series.prices
        self.price_curve.setData(times, prices, connect="finite")
        if self.volume_bars is not None:
            self.volume_plot.removeItem(self.volume_bars)
            self.volume_bars = None
        if not len(times):
            return
        # volume_traded is the day's running total: a tick's own volume is its increase.
        has_volume = ~np.isnan(series.volumes)
        vol_times = times[has_volume]
        cumulative = series.volumes[has_volume]
        per_tick = np.clip(np.diff(cumulative, prepend=cumulative[:1]), 0, None)
        if len(vol_times):
            width = max(0.5, float(np.median(np.diff(vol_times))) * 0.8) if len(vol_times) > 1 else 1.0
            self.volume_bars = pg.BarGraphItem(x=vol_times, height=per_tick, width=width,
                                               brush=pg.mkBrush(VOLUME_COLOR), pen=pg.mkPen(None))
            self.volume_plot.addItem(self.volume_bars)
        self.price_plot.autoRange()
        self.volume_plot.setYRange(0, float(per_tick.max()) * 1.1 if len(per_tick) and per_tick.max() > 0 else 1)

    def _caption(self, series) -> str:
        times, prices = series.times, series.prices
        if not len(times):
            return f"{series.label}: no timed ticks"
        volume_note = "" if (~np.isnan(series.volumes)).any() else " · no volume (LTP packets carry none)"
        return (f"{series.label}: {self.points:,} ticks, last {prices[-1]:,.2f}, "
                f"range {np.nanmin(prices):,.2f} – {np.nanmax(prices):,.2f}{volume_note}")

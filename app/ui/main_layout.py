"""The main window's widget tree (as Qt Designer's ``setupUi`` would build it): the target
and instrument cards, the queue (or its empty panel) beside the Data view, the panes
below it, and the status bar. It places widgets and names them on the window; it
connects nothing and decides nothing."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.ui import queue_model as qm
from app.ui.charts import BreakdownChart, PricePreview, ThroughputChart
from app.ui.delegates import ActionDelegate, ProgressDelegate
from app.ui.details_pane import DetailsPane
from app.ui.icons import icon
from app.ui.unknown_pane import UnknownTokensPane
from app.ui.widgets import DropOverlay, EmptyQueuePanel, InstrumentsCard, SeverityIndicator, TargetCard, row_table

# The queue's starting column widths (the Details column takes what is left).
QUEUE_COLUMN_WIDTHS = {qm.Column.FILE: 190, qm.Column.SIZE: 64, qm.Column.FRAMING: 66, qm.Column.STATUS: 72,
                       qm.Column.PROGRESS: 110, qm.Column.PACKETS: 70, qm.Column.RATE: 64,
                       qm.Column.BAD: 76, qm.Column.UNRESOLVED: 92, qm.Column.NOTE: 120, qm.Column.ACTION: 30}


def setup_main_window(w) -> None:
    """Build the central widget and the status bar of ``w`` (a ``MainWindow``)."""
    central = QWidget()
    outer = QVBoxLayout(central)
    outer.setContentsMargins(10, 6, 10, 4)
    outer.setSpacing(8)

    cards = QHBoxLayout()
    cards.setSpacing(8)
    w.target_card = TargetCard()
    w.target_card.menu.addAction(w.acts.duck_target)
    w.target_card.menu.addAction(w.acts.parquet_target)
    w.instruments_card = InstrumentsCard()
    cards.addWidget(w.target_card, 1)  # equal halves: at 1024 px both say what they must
    cards.addWidget(w.instruments_card, 1)
    outer.addLayout(cards)

    w.splitter = splitter = QSplitter(Qt.Orientation.Vertical)
    splitter.setChildrenCollapsible(False)

    w.queue_stack = QStackedWidget()
    w.queue_view = view = row_table("queueView", "Ingest queue", w.model, multi=True)
    view.setMouseTracking(True)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
    for action in w.acts.queue_commands + [w.acts.inspect, w.acts.remove_from_target]:
        view.addAction(action)
    w.progress_delegate = ProgressDelegate(view)
    w.action_delegate = ActionDelegate(view)
    view.setItemDelegateForColumn(qm.Column.PROGRESS, w.progress_delegate)
    view.setItemDelegateForColumn(qm.Column.ACTION, w.action_delegate)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    for column, width in QUEUE_COLUMN_WIDTHS.items():
        view.setColumnWidth(column, width)
    header.setSectionResizeMode(qm.Column.NOTE, QHeaderView.ResizeMode.Stretch)
    header.setSectionResizeMode(qm.Column.ACTION, QHeaderView.ResizeMode.Fixed)
    w.empty_panel = EmptyQueuePanel()
    w.queue_stack.addWidget(w.empty_panel)
    w.queue_stack.addWidget(view)

    # The queue and the Data view (what the target holds) side by side as tabs.
    from app.ui.data_view import DataView

    w.top_tabs = QTabWidget()
    w.top_tabs.setDocumentMode(True)
    w.top_tabs.setObjectName("topTabs")
    w.data_view = DataView(lambda fn, done, failed: w.jobs.run_task(fn, done, failed, exclusive=True))
    w.top_tabs.addTab(w.queue_stack, "Ingest queue")
    w.top_tabs.addTab(w.data_view, "Data")
    splitter.addWidget(w.top_tabs)

    w.tabs = QTabWidget()
    w.tabs.setDocumentMode(True)
    w.unknown_pane = UnknownTokensPane()
    w.details_pane = DetailsPane()
    w.throughput_chart = ThroughputChart()
    w.breakdown_chart = BreakdownChart()
    w.price_preview = PricePreview()
    w.tabs.addTab(w.details_pane, "Details")
    w.tabs.addTab(w.unknown_pane, icon("resolve"), "Unknown tokens")
    w.tabs.addTab(w.throughput_chart, "Throughput")
    w.tabs.addTab(w.breakdown_chart, "File breakdown")
    w.tabs.addTab(w.price_preview, "Price preview")
    splitter.addWidget(w.tabs)
    splitter.setStretchFactor(0, 3)
    splitter.setStretchFactor(1, 2)
    outer.addWidget(splitter, 1)
    w.setCentralWidget(central)
    w.drop_overlay = DropOverlay(central)

    bar = w.statusBar()
    bar.setSizeGripEnabled(False)
    w.counts_label = QLabel()
    w.counts_label.setAccessibleName("Queue counts")
    w.severity = SeverityIndicator()
    bar.addPermanentWidget(w.counts_label)
    bar.addPermanentWidget(w.severity)

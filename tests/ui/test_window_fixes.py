"""Wiring of the window's fixes: details pane, size, title, theme after restart, typing vs
shortcuts, the Parquet folder dialog, quitting with work queued, a bad master in the inspector."""

from __future__ import annotations

import gc
import itertools
import weakref
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.ui import queue_model as qm
from app.ui import theme
from tests.support import encode
from tests.ui.conftest import wait_idle


def _capture(path: Path) -> Path:
    path.write_bytes(encode.frame([encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265})])],
                                  "raw"))
    return path


def test_a_failed_file_shows_message_file_and_advice_in_the_details_pane(qtbot, window, tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not parquet PAR1")
    window.set_target(str(tmp_path / "t.duckdb"))
    window.add_paths([str(broken)])
    with qtbot.waitSignal(window.queue_done, timeout=60_000):
        window.start()
    wait_idle(qtbot, window)
    row = window.model.row(str(broken))
    assert row.status == qm.FAILED and row.failure is not None and row.failure.code == "input"
    window.queue_view.selectRow(0)
    assert window.tabs.currentWidget() is window.details_pane
    text = window.details_pane.text.toPlainText()
    assert row.failure.message in text and f"File: {broken}" in text and "What to do:" in text
    assert "Failed" in window.details_pane.headline.text()


def test_an_internal_error_shows_the_log_file_and_traceback(qtbot, make_window, tmp_path):
    def broken_job(*args, **kwargs):
        class Job:
            def run(self):
                raise ZeroDivisionError("division by zero")

            def cancel(self):
                pass

            def cancel_file(self, path):
                pass
        return Job()

    window = make_window(interactive=False, job_factory=broken_job)
    window.set_target(str(tmp_path / "t.duckdb"))
    window.add_paths([str(_capture(tmp_path / "a.dat"))])
    with qtbot.waitSignal(window.queue_done, timeout=30_000):
        window.start()
    text = window.details_pane.text.toPlainText()
    assert "Log file:" in text and "ZeroDivisionError" in text and "Traceback" in text
    assert window.details_pane.logs_button.isVisibleTo(window.details_pane)


def test_the_window_fits_1024x700_and_never_resizes_itself(qtbot, window, tmp_path):
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.size().width() == 1024)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    deep = tmp_path / ("a-very-long-folder-name-" * 6)
    deep.mkdir()
    window.set_target(str(deep / ("target-with-a-long-name-" * 4 + ".duckdb")))
    window.add_paths([str(_capture(deep / f"binary_data_20251013_0915{i:02d}_with_a_long_name.dat"))
                      for i in range(30)])
    for name in ("unknown", "throughput", "breakdown", "price", "queue"):
        window.focus_pane(name)
        QApplication.processEvents()
    assert (window.width(), window.height()) == (1024, 700)
    assert window.minimumSizeHint().width() <= 1024


def _owned_twice(objects) -> list[str]:
    """The live Qt objects among ``objects`` that Python owns although a C++ parent (a parent
    item, a scene or a parent QObject) owns them too: freeing them deletes them twice."""
    import shiboken6
    from PySide6.QtCore import QObject
    from PySide6.QtWidgets import QGraphicsItem

    twice = []
    for o in objects:
        if not isinstance(o, QObject | QGraphicsItem) or not shiboken6.isValid(o) or not shiboken6.ownedByPython(o):
            continue
        parent = o.parent() if isinstance(o, QObject) else None
        if parent is None and isinstance(o, QGraphicsItem):
            parent = o.parentItem() or o.scene()
        if parent is not None:
            twice.append(f"{type(o).__name__} in {type(parent).__name__}")
    return twice


def test_a_deleted_window_is_freed_whole_and_the_system_theme_no_longer_reaches_it(qtbot, dialogs, tmp_path):
    # The application's style hints outlive every window: a lambda connected to their
    # colorSchemeChanged kept each deleted window (and its charts' ~60 parentless pyqtgraph
    # menus, restyled by every later theme change) alive, and called into it afterwards.
    # Freed, a window must leave the garbage collector nothing owned twice: a job's start
    # used to take the throughput chart's plots out of its scene (pyqtgraph's layout
    # `clear` shadowed the chart's own), and the collector then freed those plots' child
    # items both as Python objects and as the plots' children (a segfault in a later test).
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings
    from tests.ui.fakes import FakeJob

    window = MainWindow(Settings(), interactive=True, job_factory=lambda *a, **k: FakeJob(*a, **{**k, "steps": 5}))
    window.show()
    window.set_theme("system")
    window.set_target(str(tmp_path / "t.duckdb"))
    window.add_paths([str(_capture(tmp_path / "a.dat"))])
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30_000):
        window.start()
    wait_idle(qtbot, window)
    chart = window.throughput_chart
    assert set(chart.ci.items) == {chart.pps_plot, chart.mbps_plot}  # a job resets the samples, not the plots
    assert chart.pps_plot.scene() is chart.scene() and chart.mbps_plot.scene() is chart.scene()
    freed = weakref.ref(window)
    gc.collect()  # what earlier code left, so the window's garbage is seen alone below
    window._closing = True
    window.close()
    window.jobs.shutdown()
    QCoreApplication.sendPostedEvents()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del window, chart
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector would free, kept for a look
    try:
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert len(garbage) > 1000  # the window's cyclic parts (charts, menus, their Python objects)
    assert _owned_twice(garbage) == []
    del garbage
    gc.collect()
    assert freed() is None, [type(r).__name__ for r in gc.get_referrers(freed())]
    # (pytest-qt fails the test if a slot of the deleted window raises here)
    QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)


def test_the_title_names_the_target_once(window, tmp_path):
    window.set_target(str(tmp_path / "ticks.duckdb"))
    assert window.windowTitle() == "ticks.duckdb"  # Qt appends " — Tickscope" itself
    assert QApplication.applicationDisplayName() == "Tickscope" or "Tickscope" not in window.windowTitle()


def test_the_dark_theme_is_right_after_a_restart_charts_included(make_window):
    first = make_window()
    first.acts.theme["dark"].trigger()
    first.close()
    theme.apply("light")  # what a fresh process starts from
    second = make_window()
    assert theme.current() == "dark"
    plot_bg = theme.DARK["plot_bg"]
    for chart in (second.throughput_chart, second.breakdown_chart.graphics, second.price_preview.graphics):
        assert chart.backgroundBrush().color().name() == plot_bg
    # Plots are built when their tab first shows: in the theme in force then.
    second.focus_pane("throughput")
    axis = second.throughput_chart.pps_plot.getAxis("left")
    assert axis.textPen().color().name() == theme.DARK["plot_fg"]
    # The live chart is a tab page: it is never shown over the other tabs.
    second.focus_pane("unknown")
    assert not second.throughput_chart.isVisible()


def test_ctrl_e_in_the_filter_types_instead_of_exporting(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    window.acts.export.setEnabled(True)
    fired = []
    window.acts.export.triggered.connect(lambda *_: fired.append(1))
    window.focus_pane("filter")
    assert window.unknown_pane.filter.hasFocus()
    QTest.keyClick(window.unknown_pane.filter, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert fired == []
    window.focus_pane("queue")
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert fired == [1]  # elsewhere the shortcut still works


def test_the_parquet_folder_dialog_accepts_a_new_name(qapp, tmp_path):
    from app.store.checks import MARKER
    from app.ui.dialogs import FolderTargetDialog

    dialog = FolderTargetDialog(None, str(tmp_path))
    dialog.name_edit().setText("new-dataset")
    dialog.accept()
    assert dialog.result() == 1 and dialog.chosen == str(tmp_path / "new-dataset")
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / MARKER).write_text("{}")
    dialog = FolderTargetDialog(None, str(tmp_path))
    dialog.name_edit().setText("ours")
    dialog.accept()
    assert dialog.chosen == str(ours)


def test_quitting_with_queued_work_asks_then_cancels_and_the_queue_comes_back(make_window, dialogs, tmp_path):
    target = tmp_path / "t.duckdb"
    window = make_window()
    window.set_target(str(target))
    window.add_paths([str(_capture(tmp_path / "a.dat")), str(_capture(tmp_path / "b.dat"))])
    dialogs["answers"]["cancel_running"] = False
    assert not window.close()
    assert window.isVisible() and window.session.counts()[qm.QUEUED] == 2
    dialogs["answers"]["cancel_running"] = True
    assert window.close()
    assert dialogs["asked"].count("cancel_running") == 2
    assert [r.status for r in window.session.rows] == [qm.CANCELLED, qm.CANCELLED]
    again = make_window()
    assert again.target == str(target)
    assert [(Path(r.path).name, r.status) for r in again.session.rows] == [("a.dat", qm.CANCELLED),
                                                                            ("b.dat", qm.CANCELLED)]


def test_one_unreadable_master_does_not_break_the_inspector(qtbot, window, sample, tmp_path):
    bad = tmp_path / "instruments_broken.csv"
    bad.write_bytes(b"\x00\xff not a master")
    window.masters.add([str(bad), str(sample["masters"][0])])
    from app.ui.inspector import InspectorWindow

    inspector = InspectorWindow([str(sample["capture"])], instruments=window.instrument_paths)
    qtbot.addWidget(inspector)
    with qtbot.waitSignal(inspector.index_finished, timeout=60_000):
        inspector.show()
    assert inspector.index.error is None and inspector.model.rowCount() > 0
    assert len(inspector.master_problems) == 1 and "instruments_broken.csv" in inspector.master_problems[0]
    assert inspector.index.symbol_of is not None  # the readable master still names tokens
    inspector.shutdown()


def test_one_time_zone_is_shown_and_named_ist_by_default_utc_by_setting(make_window):
    from app.ui.inspector.models import ist_text

    window = make_window()
    header = window.unknown_pane.model.headerData
    first_seen = next(i for i in range(window.unknown_pane.model.columnCount())
                      if header(i, Qt.Orientation.Horizontal).startswith("First seen"))
    assert header(first_seen, Qt.Orientation.Horizontal) == "First seen (IST)"
    assert ist_text(1760327100) == "2025-10-13 09:15:00"
    window.focus_pane("price")  # its plots are built when first shown
    assert window.price_preview.price_axis.utcOffset == -19800
    window.acts.zone["UTC"].trigger()
    assert header(first_seen, Qt.Orientation.Horizontal) == "First seen (UTC)"
    assert ist_text(1760327100) == "2025-10-13 03:45:00"
    assert window.price_preview.price_axis.utcOffset == 0
    window.close()
    again = make_window()  # the setting is remembered
    assert again.acts.zone["UTC"].isChecked()
    assert header(first_seen, Qt.Orientation.Horizontal) == "First seen (UTC)"
    again.focus_pane("price")  # plots built after the change take the zone in force
    assert again.price_preview.price_axis.utcOffset == 0
    again.acts.zone["IST"].trigger()


def test_combo_boxes_show_their_current_item(make_window):
    from PySide6.QtWidgets import QComboBox

    window = make_window(theme_choice="dark")
    window.price_preview.set_choices([(408065, "NSE:INFY", 12), (2953217, "NSE:TCS", 3)])
    combos = [c for c in window.findChildren(QComboBox) if c.count()]
    assert len(combos) >= 2  # the diagnosis filter and the instrument picker at least
    for combo in combos:
        assert combo.currentIndex() >= 0 and combo.currentText(), combo.objectName()
        text, back = (combo.palette().color(role).name() for role in
                      (combo.foregroundRole(), combo.backgroundRole()))
        assert theme.contrast(text, back) >= 4.5, (combo.objectName(), text, back)


@pytest.mark.parametrize("theme_name", ["light", "dark"])
def test_the_cards_elide_at_1024x700_never_clip_and_keep_the_whole_text(qtbot, make_window, sample, tmp_path,
                                                                        theme_name):
    from app.model.masters import MasterList
    from app.model.target_queries import MasterInfo

    window = make_window(theme_choice=theme_name)
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.instruments_loaded, timeout=30_000):
        window.add_instruments([str(m) for m in sample["masters"]])
    card = window.instruments_card
    qtbot.waitUntil(lambda: "loading" not in card.detail.text())
    assert card.detail.text() == "2025-10-10, 2025-10-13" and not card.detail.is_elided()
    assert card.value.text().endswith(" instruments") and not card.value.is_elided()
    # Many masters: the line is elided to the card, the tooltip names every one.
    many = MasterList()
    many.add([f"/m/instruments_202510{d:02d}.csv" for d in range(1, 31)])
    for d, path in enumerate(many.paths, 1):
        many.loaded(MasterInfo(path, None if d == 30 else __import__("datetime").date(2025, 10, d), 1000 + d,
                               f"{path}: {1000 + d} instruments"))
    card.show_masters(many.summary())
    QApplication.processEvents()
    for label in (card.value, card.detail):
        assert label.fontMetrics().horizontalAdvance(label.shown_text()) <= label.contentsRect().width()
        assert label.geometry().right() <= card.contentsRect().right()
    assert card.detail.is_elided() and card.detail.shown_text().endswith("…")
    assert card.detail.toolTip().count("\n") == 29 and "instruments_20251030.csv" in card.detail.toolTip()
    # A long target path: elided in the middle, whole in the tooltip and in text().
    deep = tmp_path / ("a-very-long-folder-name-" * 6)
    deep.mkdir()
    target = str(deep / "ticks.duckdb")
    window.set_target(target)
    QApplication.processEvents()
    value = window.target_card.value
    assert value.text() == target and value.toolTip() == target
    assert value.is_elided() and "…" in value.shown_text() and value.shown_text().endswith("ticks.duckdb")


def test_the_packet_inspector_fits_1024x700(qtbot, sample):
    from app.ui.inspector import InspectorWindow

    inspector = InspectorWindow([str(sample["capture"])])
    qtbot.addWidget(inspector)
    with qtbot.waitSignal(inspector.index_finished, timeout=60_000):
        inspector.resize(1024, 700)
        inspector.show()
    hint = inspector.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    assert (inspector.width(), inspector.height()) == (1024, 700)
    for edit in (inspector.filter_bar.token, inspector.filter_bar.times):  # a cut hint is whole in the tooltip
        assert edit.toolTip() == edit.placeholderText()
    inspector.close()


def test_the_throughput_plots_y_labels_do_not_overlap_at_the_default_size(make_window):
    # A scripted run's window (`tickscope gui FILE --screenshot`) at 1024x700: each throughput
    # plot had ~25 px of axis, where pyqtgraph labelled 0, 200k and 400k over each other.
    # Now: what fits, at least two labels, apart.
    from PySide6.QtGui import QImage, QPainter

    window = make_window(interactive=False)
    assert window.size().width() == 1024 and window.size().height() == 700
    window.focus_pane("throughput")
    chart = window.throughput_chart
    for i in range(20):
        chart.add_sample(0.5 + 0.1 * i, 400_000 - 10_000 * i, 230 - 10 * i)
    QApplication.processEvents()  # laid out and auto-ranged as on screen: the layout
    window.grab()  # requests a paint posts (tick text sizes) handled, then painted again
    QApplication.processEvents()
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    for plot in (chart.pps_plot, chart.mbps_plot):
        axis = plot.getAxis("left")
        assert axis.range[1] > (400_000 if plot is chart.pps_plot else 230)
        painter = QPainter(image)
        try:
            _, _, texts = axis.generateDrawSpecs(painter)
        finally:
            painter.end()
        rects = sorted((rect for rect, _, _ in texts), key=lambda r: r.top())
        assert len(rects) >= 2, [text for _, _, text in texts]
        for upper, lower in itertools.pairwise(rects):
            assert upper.bottom() <= lower.top(), [text for _, _, text in texts]

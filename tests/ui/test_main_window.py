"""The real window driving the real pipeline: drops, ingest, cancel, locks, unknown
tokens, charts, settings, keyboard, themes, and responsiveness."""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.ui import queue_model as qm
from app.ui import theme
from tests.conftest import REPO
from tests.support import encode
from tests.ui.conftest import wait_idle

SAMPLE_UNKNOWN = {10194946, 409, 20579840, 5632003}


def _drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    accepted = enter.isAccepted()
    overlay = window.drop_overlay.isVisible()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    return accepted, overlay


def _ingest(qtbot, window, paths, target, masters=(), timeout=120_000):
    if target is not None:
        assert window.set_target(str(target))
    window.add_instruments([str(m) for m in masters])
    window.add_paths([str(p) for p in paths])
    with qtbot.waitSignal(window.queue_done, timeout=timeout):
        window.start()
    wait_idle(qtbot, window)


def _read(target, what="ticks"):
    from app.store import open_target

    with open_target(target, read_only=True) as t:
        return getattr(t, what)()


def _small_capture(folder: Path) -> Path:
    """A six-packet capture: the "other file" of tests about one file's failure or lock."""
    path = folder / "small_20251013_091500.dat"
    path.write_bytes(encode.frame([encode.encode_message([
        encode.encode_packet(8, {"instrument_token": 256265, "last_price": 2_512_345}),
        encode.encode_packet(44, {"instrument_token": 408065, "last_price": 150_010})])] * 3, "raw"))
    return path


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory):
    """A capture big enough to cancel mid-file (tens of MB, generated once)."""
    from tests.support import synthetic

    path = tmp_path_factory.mktemp("big") / "binary_data_20251013_100000.dat"
    synthetic.generate_capture(path, packets=250_000, framing="raw", seed=7)
    return path


# --- drops and the queue -------------------------------------------------------------


def test_drop_of_files_and_a_folder_queues_exactly_the_supported_files(window, tmp_path):
    capture = encode.frame([encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265})])], "raw")
    loose = tmp_path / "loose.dat"
    loose.write_bytes(capture)
    folder = tmp_path / "day"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.bin").write_bytes(capture)
    (folder / "deep" / "b.b64").write_text("AA==\n")
    (folder / "deep" / "c.jsonl").write_text("{}\n")
    (folder / "sniffed").write_bytes(encode.frame([encode.encode_message(
        [encode.encode_packet(44, {"instrument_token": 408065})])], "u32len"))
    (folder / "readme.txt").write_text("hello")
    (folder / "instruments.csv").write_text("a,b\n")
    accepted, overlay = _drop(window, [loose, folder])
    assert accepted and overlay
    assert not window.drop_overlay.isVisible()
    names = sorted(Path(r.path).name for r in window.model.rows)
    assert names == ["a.bin", "b.b64", "c.jsonl", "loose.dat", "sniffed"]
    assert window.queue_stack.currentWidget() is window.queue_view
    message = window.statusBar().currentMessage()
    assert message.startswith("Queued 5 files; not queued: instruments.csv: .csv files are not captures")
    assert message.endswith("(and 1 more)")
    # Dropping the same things again queues nothing twice.
    _drop(window, [loose])
    assert window.model.rowCount() == 5


def test_a_dropped_dataset_folder_is_refused_with_a_reason(window, tmp_path):
    from app.store.checks import MARKER

    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / MARKER).write_text("{}")
    _drop(window, [dataset])
    assert window.model.rowCount() == 0
    message = window.statusBar().currentMessage()
    assert "ds" in message and "Parquet dataset" in message


# --- the real pipeline through the window --------------------------------------------------


def test_gui_ingest_of_the_sample_matches_the_cli(qtbot, window, sample, tmp_path):
    gui_target = tmp_path / "gui.duckdb"
    cli_target = tmp_path / "cli.duckdb"
    _ingest(qtbot, window, [sample["capture"]], gui_target, sample["masters"])
    row = window.model.rows[0]
    assert row.status == qm.DONE, row.error
    assert row.packets > 29_000 and row.bad_packets == 5
    assert row.unresolved_ticks == 890
    # The command line as its own process: nothing this process holds (caches, module
    # state, the window's settings) can make the two agree.
    cli = subprocess.run([sys.executable, "-m", "app", "ingest", str(sample["capture"]), "--target",
                          str(cli_target), "--instruments", *map(str, sample["masters"])],
                         cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert cli.returncode == 0, cli.stderr
    gui_ticks, cli_ticks = _read(gui_target), _read(cli_target)
    assert gui_ticks.num_rows == cli_ticks.num_rows == row.ticks
    assert gui_ticks.equals(cli_ticks)
    gui_unknown, cli_unknown = _read(gui_target, "unknown_tokens"), _read(cli_target, "unknown_tokens")
    assert gui_unknown.sort_by("instrument_token").equals(cli_unknown.sort_by("instrument_token"))
    keep = ["file_id", "packets", "bad_packets", "unresolved_ticks", "framing"]
    assert _read(gui_target, "captures").select(keep).equals(_read(cli_target, "captures").select(keep))
    # The throughput chart was fed while the file ingested, in both its plots (the job's
    # start reset its samples, not its plots).
    chart = window.throughput_chart
    assert chart.samples >= 1
    assert set(chart.ci.items) == {chart.pps_plot, chart.mbps_plot}
    assert len(chart.pps_curve.getData()[0]) == len(chart.mbps_curve.getData()[0]) == chart.samples


def test_unknown_token_pane_shows_the_sample_diagnoses_filters_and_exports(qtbot, window, sample, tmp_path,
                                                                        dialogs):
    _ingest(qtbot, window, [sample["capture"]], tmp_path / "t.duckdb", sample["masters"])
    pane = window.unknown_pane
    assert window.tabs.currentWidget() is pane
    rows = [pane.model.row_dict(i) for i in range(pane.model.rowCount())]
    assert {r["instrument_token"] for r in rows} == SAMPLE_UNKNOWN
    by_token = {r["instrument_token"]: r for r in rows}
    assert by_token[409]["segment"] == 153
    assert by_token[10194946]["ticks"] == 232
    diagnoses = {r["diagnosis"] for r in rows}
    assert len(diagnoses) == 4 and all(diagnoses)
    assert all(r["explanation"] for r in rows)
    # Sorted by ticks, descending, as shown.
    shown = [pane.proxy.index(i, 4).data() for i in range(pane.proxy.rowCount())]
    assert shown == ["232", "223", "221", "214"]
    pane.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert pane.proxy.index(0, 0).data() == "409"
    # Free text filter, then the diagnosis filter.
    pane.filter.setText("NSE futures")
    assert pane.proxy.rowCount() == 1 and pane.proxy.index(0, 0).data() == "10194946"
    pane.filter.clear()
    pane.diagnosis.setCurrentIndex(pane.diagnosis.findData(by_token[409]["diagnosis"]))
    assert pane.proxy.rowCount() == 1 and pane.proxy.index(0, 0).data() == "409"
    assert pane.count.text().startswith("1 of 4 tokens")
    pane.diagnosis.setCurrentIndex(0)
    # Export what is shown.
    out = tmp_path / "unknown.csv"
    dialogs["export"] = str(out)
    window.acts.export.trigger()
    with out.open() as handle:
        exported = list(csv.DictReader(handle))
    assert {int(r["instrument_token"]) for r in exported} == SAMPLE_UNKNOWN
    assert all(r["diagnosis"] and r["explanation"] for r in exported)
    assert window.severity.level == "warning"


def test_resolve_with_more_instruments_re_resolves_in_place(qtbot, window, sample, tmp_path, dialogs):
    target = tmp_path / "t.duckdb"
    _ingest(qtbot, window, [sample["capture"]], target)  # no masters: nothing is named
    assert window.unknown_pane.model.rowCount() > 100
    dialogs["instrument_files"] = [str(m) for m in sample["masters"]]
    with qtbot.waitSignal(window.unknown_refreshed, timeout=60_000):
        window.unknown_pane.resolve_button.click()
    wait_idle(qtbot, window)
    tokens = {window.unknown_pane.model.row_dict(i)["instrument_token"]
              for i in range(window.unknown_pane.model.rowCount())}
    assert tokens == SAMPLE_UNKNOWN
    assert "Resolved" in window.statusBar().currentMessage()
    assert window.instrument_paths == [str(m) for m in sample["masters"]]
    ticks = _read(target)
    assert int(np.sum(~ticks["resolved"].to_numpy(zero_copy_only=False))) == 890
    # Every view shows the target's count after the resolve (before: 890 in one, 658 in another).
    row = window.model.row(str(sample["capture"]))
    assert window.target_state.unresolved_ticks == row.unresolved_ticks == 890
    assert window.unknown_pane.model.total_ticks == 890
    assert "890 unresolved ticks" in window.severity.text.text()
    assert "890 unresolved ticks" in window.target_card.detail.text()


def test_cancel_mid_file_leaves_nothing_of_it_and_the_others_go_on(qtbot, window, big_capture, tmp_path):
    target = tmp_path / "t.duckdb"
    other = _small_capture(tmp_path)
    window.set_target(str(target))
    window.add_paths([str(big_capture), str(other)])
    big = str(big_capture)
    with qtbot.waitSignal(window.queue_done, timeout=120_000):
        window.start()
        qtbot.waitUntil(lambda: window.model.row(big).status == qm.DECODING
                        and 0 < window.model.row(big).bytes_done, timeout=60_000)
        window.queue_view.selectRow(0)
        window.acts.cancel.trigger()
    wait_idle(qtbot, window)
    big_row, sample_row = window.model.row(big), window.model.row(str(other))
    assert big_row.status == qm.CANCELLED
    assert sample_row.status == qm.DONE
    assert all("cancelling" not in (r.error or "") for r in window.model.rows)  # cancelled means cancelled
    assert "Cancelled 1" in window.counts_label.text() and "Done 1" in window.counts_label.text()
    captures = _read(target, "captures")
    ticks = _read(target)
    assert captures["file_id"].to_pylist() == [sample_row.file_id]
    assert set(ticks["file_id"].to_pylist()) == {sample_row.file_id}
    # Retry brings it back.
    assert window.acts.retry.isEnabled()


def test_a_locked_target_shows_its_reason_in_the_rows(qtbot, window, tmp_path):
    target = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
         str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        _ingest(qtbot, window, [_small_capture(tmp_path)], target)
        row = window.model.rows[0]
        assert row.status == qm.FAILED
        assert "locked" in row.error and "another process" in row.error
        assert window.exit_code() == 3
        assert window.severity.level == "error"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Once the other process is gone, retry succeeds.
    with qtbot.waitSignal(window.queue_done, timeout=120_000):
        window.retry_paths([window.model.rows[0].path])
    assert window.model.rows[0].status == qm.DONE


def test_an_unreadable_file_fails_alone(qtbot, window, tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet at all PAR1")
    good_capture = _small_capture(tmp_path)
    _ingest(qtbot, window, [broken, good_capture], tmp_path / "t.duckdb")
    bad, good = window.model.row(str(broken)), window.model.row(str(good_capture))
    assert bad.status == qm.FAILED and bad.error
    assert window.model.data(window.model.index(0, qm.Column.NOTE)) == bad.error
    assert good.status == qm.DONE
    assert window.exit_code() == 4


def test_charts_show_the_selected_file_and_an_instrument(qtbot, window, sample, tmp_path):
    _ingest(qtbot, window, [sample["capture"]], tmp_path / "t.duckdb", sample["masters"])
    row = window.model.rows[0]
    with qtbot.waitSignal(window.breakdown_shown, timeout=30_000):
        window.queue_view.selectRow(0)
    window.focus_pane("breakdown")  # the plots are built when the tab first shows, with what it was given
    chart = window.breakdown_chart
    kinds = dict(zip([t[1] for t in chart.kind_plot.getAxis("bottom")._tickLevels[0]],
                     chart.kinds.item.opts["height"], strict=True))
    assert sum(kinds.values()) == row.ticks
    assert kinds["full"] >= 23_816 and kinds["ltp"] >= 2_916
    segments = dict(zip([t[1] for t in chart.segment_plot.getAxis("bottom")._tickLevels[0]],
                        chart.segments.item.opts["height"], strict=True))
    assert sum(segments.values()) == row.ticks and segments["NFO"] > 0
    assert row.name in chart.caption.text() and f"{row.ticks:,} packets" in chart.caption.text()
    wait_idle(qtbot, window)
    preview = window.price_preview
    assert preview.combo.count() == 0  # a hidden price tab queries nothing
    window.focus_pane("price")  # shown: it asks for the target's instruments
    wait_idle(qtbot, window)
    assert preview.combo.count() > 100
    with qtbot.waitSignal(window.price_shown, timeout=30_000):
        preview.combo.setCurrentIndex(1)
        preview.combo.activated.emit(1)
    assert preview.points > 10
    assert "ticks" in preview.caption.text()


def test_the_event_loop_runs_while_the_sample_ingests(qtbot, window, sample, tmp_path, monkeypatch,
                                                      gui_round_trip):
    """The ingest and every opening of the target run off the GUI thread, and at each of the
    ingest's progress updates the GUI's event loop handles an event before the ingest goes
    on. (How long the loop's gaps are is measured by `make bench`: scripts/bench_gui.py.)"""
    from app.store.duck import DuckDBTarget

    gui = threading.current_thread()
    trips, opened_in = [], []
    factory = window.jobs._factory

    def pinging_factory(*args, progress, **kwargs):
        def relay(update):
            if update.stage in ("hashing", "decoding", "writing") and all(ok for _, ok in trips):
                trips.append((threading.current_thread(), gui_round_trip()))
            progress(update)
        return factory(*args, progress=relay, **kwargs)

    init = DuckDBTarget.__init__

    def recording_init(self, *args, **kwargs):
        opened_in.append(threading.current_thread())
        init(self, *args, **kwargs)

    monkeypatch.setattr(window.jobs, "_factory", pinging_factory)
    window.set_target(str(tmp_path / "t.duckdb"))
    window.add_instruments([str(m) for m in sample["masters"]])
    window.add_paths([str(sample["capture"])])
    monkeypatch.setattr(DuckDBTarget, "__init__", recording_init)
    with qtbot.waitSignal(window.queue_done, timeout=120_000):
        window.start()
    assert window.model.rows[0].status == qm.DONE
    assert len(trips) >= 3 and all(ok for _, ok in trips), trips  # hashing, decoding, writing at least
    assert gui not in {thread for thread, _ in trips}
    assert opened_in and gui not in opened_in
    wait_idle(qtbot, window)


def test_closing_while_ingesting_asks_then_cancels_and_leaves_nothing(qtbot, make_window, big_capture,
                                                                      tmp_path, dialogs):
    window = make_window()
    target = tmp_path / "t.duckdb"
    window.set_target(str(target))
    window.add_paths([str(big_capture)])
    window.start()
    qtbot.waitUntil(lambda: window.model.rows[0].status == qm.DECODING, timeout=60_000)
    dialogs["answers"]["cancel_running"] = False
    window.close()
    assert window.isVisible() and dialogs["asked"].count("cancel_running") == 1
    dialogs["answers"]["cancel_running"] = True
    window.close()
    assert not window.isVisible()
    assert window.jobs.shutting_down  # closing cancelled the work and waited for it
    from PySide6.QtCore import QThreadPool

    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert _read(target, "captures").num_rows == 0 and _read(target).num_rows == 0


# --- target, instruments, settings ---------------------------------------------------------


def test_invalid_target_is_refused_with_a_dialog(window, tmp_path, dialogs):
    not_duck = tmp_path / "text.duckdb"
    not_duck.write_text("hello")
    assert not window.set_target(str(not_duck))
    assert not window.set_target(str(tmp_path / "missing" / "x.duckdb"))
    assert [t for t, _ in dialogs["errors"]] == ["Target not usable", "Target not usable"]
    assert "not a DuckDB database" in dialogs["errors"][0][1]
    assert window.target is None


def test_a_folder_that_is_not_a_tickscope_dataset_is_refused_like_the_cli_does(window, tmp_path, dialogs):
    # Before: accepted here, then every file failed when ParquetTarget refused it on open.
    from app.errors import InputError
    from app.store import open_target
    from app.ui.main_window import TargetProblem, validate_target

    foreign = tmp_path / "notours"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(TargetProblem, match="is a folder that is not a Tickscope dataset"):
        validate_target(str(foreign))
    with pytest.raises(InputError, match="is a folder that is not a Tickscope dataset"):
        open_target(foreign)  # the store's own rule, which the window now applies up front
    assert not window.set_target(str(foreign))
    assert "not a Tickscope dataset" in dialogs["errors"][-1][1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert validate_target(str(empty)) == str(empty)
    dataset = tmp_path / "dataset"
    open_target(dataset).close()
    assert validate_target(str(dataset)) == str(dataset)
    assert validate_target(str(tmp_path / "new")) == str(tmp_path / "new")


def test_scripted_window_never_opens_dialogs(make_window, tmp_path, dialogs):
    window = make_window(interactive=False)
    assert not window.set_target(str(tmp_path / "missing" / "x.duckdb"))
    assert dialogs["errors"] == []
    assert "does not exist" in window.statusBar().currentMessage()
    # The first-start offer is part of the window, not a dialog: nothing waits on it.
    assert window.empty_panel.welcome


def test_target_instruments_and_recents_are_remembered(qtbot, make_window, sample, tmp_path, dialogs):
    first = make_window()
    dialogs["parquet"] = str(tmp_path / "dataset")
    first.acts.parquet_target.trigger()
    dialogs["instrument_files"] = [str(sample["masters"][0])]
    with qtbot.waitSignal(first.instruments_loaded, timeout=30_000):
        first.acts.add_instruments.trigger()
    assert "2025-10-13" in first.instruments_card.detail.text()
    assert "179" in first.instruments_card.value.text()
    assert first.target_card.badge.text() == "Parquet"
    first.add_paths([str(sample["capture"])])
    first.close()
    second = make_window()
    assert second.target == str(tmp_path / "dataset")
    assert second.instrument_paths == [str(sample["masters"][0])]
    assert second.settings.recent_targets[0] == str(tmp_path / "dataset")
    assert second.settings.recent_files == [str(sample["capture"])]
    second.acts.recent_targets_menu.aboutToShow.emit()
    assert any(a.text() == str(tmp_path / "dataset") and a.isChecked()
               for a in second.acts.recent_targets_menu.actions())
    assert second.target_card.value.text().endswith("dataset")


def test_parquet_target_ingest_through_the_window(qtbot, window, sample, tmp_path):
    _ingest(qtbot, window, [sample["capture"]], tmp_path / "dataset", sample["masters"])
    assert window.model.rows[0].status == qm.DONE, window.model.rows[0].error
    assert {window.unknown_pane.model.row_dict(i)["instrument_token"]
            for i in range(window.unknown_pane.model.rowCount())} == SAMPLE_UNKNOWN


def test_first_start_offers_the_sample_in_one_click(qtbot, window, sample, app_dirs):
    panel = window.empty_panel
    assert panel.welcome and panel.sample_button.isVisibleTo(window)
    with qtbot.waitSignal(window.queue_done, timeout=120_000):
        qtbot.mouseClick(panel.sample_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.target == str(app_dirs["data"] / "tickscope.duckdb")
    assert window.model.rows[0].status == qm.DONE
    assert window.unknown_pane.model.rowCount() == 4
    assert window.settings.welcome_dismissed and not window.settings.is_first_start


# --- keyboard and themes ------------------------------------------------------------------


def test_every_action_is_in_a_menu_and_the_main_ones_have_shortcuts(window):
    in_menus = set()
    for menu_action in window.menuBar().actions():
        assert "&" in menu_action.text()
        stack = [menu_action.menu()]
        while stack:
            menu = stack.pop()
            menu.aboutToShow.emit()
            for action in menu.actions():
                if action.menu():
                    stack.append(action.menu())
                in_menus.add(action)
    for action in window.actions():
        assert action in in_menus, action.text()
    for action in (window.acts.add_files, window.acts.add_folder, window.acts.start, window.acts.cancel,
                   window.acts.retry, window.acts.cancel_all, window.acts.duck_target, window.acts.add_instruments,
                   window.acts.export, window.acts.quit, window.acts.find):
        assert not action.shortcut().isEmpty(), action.text()


def test_shortcuts_drive_the_window(qtbot, window, dialogs, tmp_path):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    QTest.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.unknown_pane
    QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.unknown_pane.filter.hasFocus()
    QTest.keyClick(window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.breakdown_chart
    QTest.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert dialogs["asked"] == ["capture_files"]


def test_theme_can_be_forced_and_follows_the_system_by_default(window):
    assert window.acts.theme["system"].isChecked()
    window.acts.theme["dark"].trigger()
    assert theme.current() == "dark"
    assert QApplication.palette().color(QPalette.ColorRole.Window).name() == theme.DARK["window"]
    assert window.settings.theme == "dark"
    window.acts.theme["light"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).name() == theme.LIGHT["window"]
    window.acts.theme["system"].trigger()
    assert window.settings.theme == "system"

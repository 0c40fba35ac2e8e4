"""Fixtures for the desktop app's tests: offscreen Qt, private settings and data
folders, the bundled sample, a real window with its dialogs replaced, and a guard
that fails any test leaving a thread (pool or Python) running."""

from __future__ import annotations

import os
import threading
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tests.conftest import REPO  # noqa: E402

SAMPLES = REPO / "resources" / "samples"
SAMPLE_CAPTURE = SAMPLES / "binary_data_20251013_091500.dat"
SAMPLE_MASTERS = [SAMPLES / "instruments_20251013.csv", SAMPLES / "instruments_20251010.csv"]

# The offscreen platform plugin itself warns whenever a top-level window's size hints
# change (every layout pass of a shown window); it says nothing about the app.
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture(autouse=True)
def app_dirs(tmp_path, monkeypatch):
    """Settings and the data folder live in the test's temp folder, never the user's."""
    settings = tmp_path / "config" / "tickscope.ini"
    data = tmp_path / "data"
    settings.parent.mkdir()
    monkeypatch.setenv("TICKSCOPE_SETTINGS", str(settings))
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(data))
    return {"settings": settings, "data": data}


@pytest.fixture(autouse=True)
def no_leftover_threads(request):
    """Fail a test that leaves the Qt pool busy or a non-daemon Python thread alive."""
    before = {t.ident for t in threading.enumerate()}
    yield
    if "qapp" not in request.fixturenames and "qtbot" not in request.fixturenames:
        return
    from PySide6.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    pool.waitForDone(15_000)
    assert pool.activeThreadCount() == 0, "a Qt pool thread is still running after the test"
    leftover = [t for t in threading.enumerate()
                if t.ident not in before and t.is_alive() and not t.daemon and t is not threading.main_thread()]
    for t in leftover:  # give a finishing thread a moment before calling it a leak
        t.join(timeout=5)
    leftover = [t for t in leftover if t.is_alive()]
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


@pytest.fixture
def sample():
    if not SAMPLE_CAPTURE.is_file() or not all(m.is_file() for m in SAMPLE_MASTERS):
        pytest.skip("the bundled sample (resources/samples) is not there")
    return {"capture": SAMPLE_CAPTURE, "masters": SAMPLE_MASTERS}


@pytest.fixture
def dialogs(monkeypatch):
    """Modal dialogs replaced: error reports are recorded, questions answered."""
    from app.ui import dialogs as dlg

    calls = {"errors": [], "answers": {"cancel_running": True}, "files": [], "folder": "",
             "instrument_files": [], "export": "", "duckdb": "", "parquet": "", "asked": []}

    def record(kind, value_key):
        def method(cls, *args, **kwargs):
            calls["asked"].append(kind)
            return calls[value_key]
        return classmethod(method)

    monkeypatch.setattr(dlg.ErrorDialog, "report",
                        classmethod(lambda cls, parent, title, message, advice="", details="":
                                    calls["errors"].append((title, message))))
    monkeypatch.setattr(dlg.Ask, "capture_files", record("capture_files", "files"))
    monkeypatch.setattr(dlg.Ask, "capture_folder", record("capture_folder", "folder"))
    monkeypatch.setattr(dlg.Ask, "instrument_files", record("instrument_files", "instrument_files"))
    monkeypatch.setattr(dlg.Ask, "export_csv", record("export_csv", "export"))
    monkeypatch.setattr(dlg.Ask, "duckdb_target", record("duckdb_target", "duckdb"))
    monkeypatch.setattr(dlg.Ask, "parquet_target", record("parquet_target", "parquet"))
    monkeypatch.setattr(dlg.Ask, "about", classmethod(lambda cls, parent, text: calls["asked"].append("about")))
    monkeypatch.setattr(
        dlg.Ask, "cancel_running",
        classmethod(lambda cls, parent, running: (calls["asked"].append("cancel_running"),
                                                  calls["answers"]["cancel_running"])[1]))
    return calls


@pytest.fixture
def make_window(qtbot, dialogs):
    """Build real main windows (closed, with their work finished, at teardown)."""
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    windows = []

    def make(**kwargs):
        kwargs.setdefault("interactive", True)
        window = MainWindow(Settings(), **kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    from PySide6.QtCore import QCoreApplication, QEvent

    for window in windows:
        window._closing = True
        window.close()
        window.jobs.shutdown()
    # What the finished pool tasks queued for the windows is delivered while they live.
    QCoreApplication.sendPostedEvents()
    for window in windows:
        window.deleteLater()
    # Deleted now, not whenever some later test's event loop gets to it: every window left
    # alive (~700 widgets) is restyled again by each later theme change and slows every later
    # window's construction (setStyleSheet repolishes all widgets of the application).
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def window(make_window):
    return make_window()


def wait_idle(qtbot, window, timeout=60_000):
    """Until the window's JobManager has nothing running or pending."""
    qtbot.waitUntil(lambda: not window.jobs.is_busy(), timeout=timeout)



@pytest.fixture
def gui_round_trip(qapp):
    """``round_trip()``, called from a worker thread, returns True once the GUI thread's
    event loop has handled an event posted by that call (False after ``timeout`` s): a
    worker that waits on it proves the event loop is running at that point of its work."""
    from PySide6.QtCore import QObject, Qt, Signal

    class RoundTrip(QObject):
        asked = Signal(object)

        def __init__(self):
            super().__init__()
            self.answered_in: list[threading.Thread] = []
            self.asked.connect(self._answer, Qt.ConnectionType.QueuedConnection)

        def _answer(self, done: threading.Event) -> None:
            self.answered_in.append(threading.current_thread())
            done.set()

        def __call__(self, timeout: float = 60) -> bool:
            done = threading.Event()
            self.asked.emit(done)
            return done.wait(timeout)

    return RoundTrip()


@pytest.fixture(autouse=True)
def no_held_keys(qapp):
    """Every test starts with no modifier key held. QTest's key clicks with a modifier
    (Shift+F8 in the inspector's tests) leave the application's modifier state at that
    modifier, so on the same xdist worker a later ``QTableView.selectRow`` read it as a
    Shift-click with no anchor and selected nothing (a test failed 1 run in 2)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QWidget

    held = QGuiApplication.keyboardModifiers()
    if held != Qt.KeyboardModifier.NoModifier:
        probe = QWidget()
        for flag, key in ((Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Shift),
                          (Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_Control),
                          (Qt.KeyboardModifier.AltModifier, Qt.Key.Key_Alt),
                          (Qt.KeyboardModifier.MetaModifier, Qt.Key.Key_Meta)):
            if held & flag:
                QTest.keyRelease(probe, key)
        probe.deleteLater()
    assert QGuiApplication.keyboardModifiers() == Qt.KeyboardModifier.NoModifier
    yield

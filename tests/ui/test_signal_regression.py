"""PySide6-Essentials 6.12.0 aborts CPython 3.11 ("Fatal Python error: bool_dealloc")
after ~1,000 signal emits; we pin 6.11.2. The emits run in a subprocess so that a
crash fails this test instead of killing the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

EMITS = 10_000

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

    N = int(sys.argv[1])

    class Emitter(QObject):
        flag = Signal(bool)
        number = Signal(int)
        payload = Signal(object)
        pair = Signal(int, bool)

    class Receiver(QObject):
        def __init__(self):
            super().__init__()
            self.counts = {"flag": 0, "number": 0, "payload": 0, "pair": 0, "queued": 0}
            self.trues = 0

        @Slot(bool)
        def on_flag(self, value):
            self.counts["flag"] += 1
            self.trues += bool(value)

        @Slot(int)
        def on_number(self, value):
            self.counts["number"] += 1

        def on_payload(self, value):
            self.counts["payload"] += 1

        def on_pair(self, n, value):
            self.counts["pair"] += 1

        def on_queued(self, value):
            self.counts["queued"] += 1

    app = QCoreApplication(sys.argv[:1])
    emitter, receiver = Emitter(), Receiver()
    emitter.flag.connect(receiver.on_flag)
    emitter.number.connect(receiver.on_number)
    emitter.payload.connect(receiver.on_payload)
    emitter.pair.connect(receiver.on_pair)
    for i in range(N):  # direct connections, in this thread
        emitter.flag.emit(i % 2 == 0)
        emitter.number.emit(i)
        emitter.payload.emit({"i": i, "ok": True})
        emitter.pair.emit(i, i % 3 == 0)

    # Queued: a GUI-thread-owned QObject emitting from pool threads, as the app does.
    relay = Emitter()
    relay.flag.connect(receiver.on_queued)

    class Burst(QRunnable):
        def run(self):
            for i in range(N // 4):
                relay.flag.emit(i % 2 == 1)

    pool = QThreadPool.globalInstance()
    for _ in range(4):
        pool.start(Burst())

    def check():
        if receiver.counts["queued"] >= N or not pool.activeThreadCount() and receiver.counts["queued"] >= N:
            app.quit()
        else:
            QTimer.singleShot(10, check)

    QTimer.singleShot(10, check)
    QTimer.singleShot(60_000, app.quit)
    app.exec()
    pool.waitForDone()
    print(receiver.counts["flag"], receiver.counts["number"], receiver.counts["payload"],
          receiver.counts["pair"], receiver.counts["queued"], receiver.trues)
    """
)


def test_ten_thousand_signal_emits_do_not_crash_the_interpreter():
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCRIPT, str(EMITS)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, (
        f"signal emits crashed the interpreter (exit {result.returncode}); a PySide6 regression? "
        f"pin PySide6-Essentials==6.11.2\n{result.stderr[-2000:]}"
    )
    assert "Fatal Python error" not in result.stderr
    flag, number, payload, pair, queued, trues = map(int, result.stdout.split())
    assert (flag, number, payload, pair, queued) == (EMITS,) * 5
    assert trues == EMITS // 2


def test_the_pinned_pyside6_is_the_known_good_one():
    import PySide6

    assert PySide6.__version__ == "6.11.2", "PySide6-Essentials 6.12.0 crashes after ~1,000 emits; see above"

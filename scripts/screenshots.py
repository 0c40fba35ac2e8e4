"""Regenerate the README's window screenshots at 1024x700, in both themes, after a restart.

For each theme: a first process sets the theme, ingests the bundled sample (without
instrument masters, so tokens stay unknown) and a broken file into a fresh DuckDB target,
and quits. A second process starts the app again on the same settings (theme, target,
saved queue and window size come back from disk) and takes:

- ``queue-failed-<theme>.png``: the queue with the failed file selected and its details;
- ``unknown-resolved-<theme>.png``: unknown tokens after "Resolve with more instruments…";
- ``inspector-<theme>.png``: the packet inspector on the sample, a bad packet selected.

Usage: ``QT_QPA_PLATFORM=offscreen python scripts/screenshots.py [OUT_DIR]`` (default
docs/screenshots). Everything else lives in a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "resources" / "samples"
CAPTURE = SAMPLES / "binary_data_20251013_091500.dat"
MASTERS = [SAMPLES / "instruments_20251013.csv", SAMPLES / "instruments_20251010.csv"]
SIZE = (1024, 700)


def _app():
    """The QApplication, with modal dialogs turned into errors (a script must never wait on one)."""
    sys.path.insert(0, str(REPO))
    from app.ui import dialogs
    from app.ui.app import ensure_application

    def refuse(cls, parent, *args, **kwargs):
        raise SystemExit(f"screenshots: a dialog would have opened: {args}")

    dialogs.ErrorDialog.report = classmethod(refuse)
    dialogs.Ask.cancel_running = classmethod(lambda cls, parent, running: True)
    return ensure_application()


def _wait(app, done, timeout=120.0, what="") -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def _settle(app, seconds=0.6) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def setup(theme: str, work: Path) -> None:
    """First run: theme, target, the sample and a broken file ingested; then quit."""
    app = _app()
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    window = MainWindow(Settings())  # a user's run: what it sets is remembered
    window.settings.welcome_dismissed = True
    window.resize(*SIZE)
    window.show()
    window.set_theme(theme)
    window.set_target(str(work / "ticks.duckdb"))
    broken = work / "binary_data_20251013_143000.parquet"
    broken.write_bytes(b"PAR1 cut short while copying PAR1")
    window.add_paths([str(CAPTURE), str(broken)])
    finished = []
    window.queue_done.connect(lambda: finished.append(1))
    window.start()
    _wait(app, lambda: finished and not window.jobs.is_busy(), what="the first ingest")
    window.close()
    app.processEvents()


def shoot(theme: str, work: Path, out: Path) -> None:
    """Second run: everything comes back from disk; take the three pictures."""
    app = _app()
    from app.ui import queue_model as qm
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    window = MainWindow(Settings())
    window.show()
    assert (window.width(), window.height()) == SIZE, window.size()
    _wait(app, lambda: window.target_state is not None and not window.jobs.is_busy(), what="the target")
    failed = [i for i, r in enumerate(window.session.rows) if r.status == qm.FAILED]
    assert failed, "the restored queue has no failed row"
    window.queue_view.selectRow(failed[0])
    _settle(app)
    window.grab().save(str(out / f"queue-failed-{theme}.png"))

    refreshed = []
    window.unknown_refreshed.connect(lambda: refreshed.append(1))
    window.resolve_with([str(m) for m in MASTERS])
    _wait(app, lambda: refreshed and not window.jobs.is_busy(), what="the resolve")
    window.queue_view.clearSelection()
    window.focus_pane("unknown")
    window.unknown_pane.view.selectRow(0)
    _settle(app)
    window.grab().save(str(out / f"unknown-resolved-{theme}.png"))

    inspector = window.open_inspector([str(CAPTURE)])
    indexed = []
    inspector.index_finished.connect(lambda: indexed.append(1))
    inspector.resize(*SIZE)
    _wait(app, lambda: indexed, what="the packet index")
    inspector.step_bad()
    _settle(app)
    inspector.grab().save(str(out / f"inspector-{theme}.png"))
    inspector.close()
    window.close()
    app.processEvents()


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] in ("setup", "shoot"):
        phase, theme, work = argv[0], argv[1], Path(argv[2])
        if phase == "setup":
            setup(theme, work)
        else:
            shoot(theme, work, Path(argv[3]))
        return 0
    out = Path(argv[0]) if argv else REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for theme in ("light", "dark"):
        with tempfile.TemporaryDirectory(prefix="tickscope-shots-") as tmp:
            work = Path(tmp)
            platform = os.environ.get("QT_QPA_PLATFORM", "offscreen")
            if platform == "offscreen":  # its default screen is 800x600: restoring 1024x700 would shrink
                screen = work / "offscreen.json"
                screen.write_text('{"screens": [{"name": "shots", "x": 0, "y": 0, "width": 1600, '
                                  '"height": 1000, "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}')
                platform = f"offscreen:configfile={screen}"
            env = {**os.environ, "QT_QPA_PLATFORM": platform,
                   "TICKSCOPE_SETTINGS": str(work / "config" / "tickscope.ini"),
                   "TICKSCOPE_DATA_DIR": str(work / "data")}
            for phase in ("setup", "shoot"):  # two processes: the second is the restart
                args = [sys.executable, __file__, phase, theme, str(work)] + ([str(out)] if phase == "shoot" else [])
                subprocess.run(args, env=env, check=True, timeout=600)
        print(f"screenshots ({theme}) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

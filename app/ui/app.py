"""Starting the desktop app: the QApplication, logging, the window, and scripted runs
(`tickscope gui FILE... --start --quit-when-done --screenshot PNG`).

A launch given files or --quit-when-done is *scripted*: it never waits on a dialog
(first-start offers included); problems go to the rows, the log and the exit code.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from app.errors import EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, InputError, UsageError

log = logging.getLogger(__name__)


def ensure_application(argv: list[str] | None = None):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from app import __version__
    from app.ui.paths import APPLICATION, ORGANIZATION

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv or [sys.argv[0]])
    app.setApplicationDisplayName("Tickscope")
    app.setDesktopFileName("tickscope")
    return app


def checked_arguments(args) -> tuple[str | None, list[str]]:
    """The usable --target (absolute) and --instruments, or the one-line error about them.
    Qt-free: `tickscope gui` asks before it loads Qt, so a bad argument fails at once."""
    from app.model.targets import TargetProblem, validate_target

    target = getattr(args, "target", None)
    if target:
        try:
            target = validate_target(target)
        except TargetProblem as problem:
            raise UsageError(f"--target {target}: {problem}") from None
    instruments = list(getattr(args, "instruments", None) or [])
    for path in instruments:
        if not Path(path).is_file():
            raise InputError(f"--instruments {path}: no such file")
    return target, instruments


def run_gui(args, *, target: str | None, instruments: list[str]) -> int:
    """The app for `tickscope gui` ARGS. ``target`` and ``instruments`` are what
    ``checked_arguments(args)`` returned (the caller checks them before loading Qt; they
    are not checked again here)."""
    files: list[str] = list(getattr(args, "files", None) or [])
    quit_when_done = bool(getattr(args, "quit_when_done", False))
    scripted = bool(files) or quit_when_done
    app = ensure_application()

    from PySide6.QtCore import QTimer

    from app.model.masters import MasterList
    from app.ui import logs
    from app.ui.icons import icon
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    log_file = logs.setup_logging()
    log.info("tickscope gui starting (scripted=%s, files=%d); log: %s", scripted, len(files), log_file)

    settings = Settings()
    app.setWindowIcon(icon("tickscope"))
    window = MainWindow(settings, interactive=not scripted, theme_choice=getattr(args, "theme", None))
    if target:
        window.set_target(target)
    if instruments:
        if scripted:  # exactly the masters given, for this run only
            window.masters = MasterList()
        window.add_instruments(instruments)
    refused: list[tuple[str, str]] = []
    if files:
        found = window.add_paths(files)
        refused = found.refused
        for path, reason in refused:
            print(f"tickscope: not queued: {path}: {reason}", file=sys.stderr)
    window.show()

    screenshot = getattr(args, "screenshot", None)
    shot_after = getattr(args, "screenshot_after", None)
    state = {"shot": False}

    def take_screenshot() -> None:
        if screenshot and not state["shot"]:
            app.processEvents()
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            ok = window.grab().save(str(screenshot))
            state["shot"] = True
            log.info("screenshot %s: %s", screenshot, "saved" if ok else "FAILED")
            if not ok:
                print(f"tickscope: could not save screenshot {screenshot}", file=sys.stderr)

    def finish() -> None:
        take_screenshot()
        window.close()
        app.quit()

    def finish_when_idle() -> None:
        if window.jobs.is_busy():
            QTimer.singleShot(100, finish_when_idle)
        else:
            QTimer.singleShot(150 if screenshot else 0, finish)  # let the last repaint land in the picture

    if shot_after is not None and screenshot:
        QTimer.singleShot(int(shot_after * 1000), take_screenshot)

    if quit_when_done:
        window.queue_done.connect(lambda: QTimer.singleShot(0, finish_when_idle))
    start = bool(getattr(args, "start", False)) or quit_when_done
    started = False
    if start and window.session.queued_unassigned():
        QTimer.singleShot(0, window.start)
        started = True
    if quit_when_done and not started:
        QTimer.singleShot(200, finish_when_idle)
    elif screenshot and not quit_when_done and shot_after is None:
        QTimer.singleShot(1000, take_screenshot)

    app.exec()
    code = window.exit_code()
    if scripted:  # the rows are gone with the window: say what failed where scripts look
        for line in window.failure_lines():
            print(line, file=sys.stderr)
    if refused and code == EXIT_OK:
        code = EXIT_PARTIAL
    logs.shutdown_logging()
    return code if code in (EXIT_OK, EXIT_USAGE, EXIT_LOCKED, EXIT_PARTIAL) else EXIT_PARTIAL

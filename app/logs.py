"""The command line's log file: where tracebacks go so the terminal only shows one line.

The folder is the desktop app's (``app.ui.paths.log_dir``): ``$TICKSCOPE_DATA_DIR/logs``
when set, else the folder Qt calls AppDataLocation for organisation "Tickscope" and
application "tickscope" plus ``logs``, worked out here without importing Qt so the
command line starts fast and core code stays Qt-free. The file is shared with the
app (same name, size and rotation as ``app.ui.logs``).

Log records never reach stderr: the root logger always gets a handler (the file,
or a NullHandler when the file cannot be opened), so Python's last-resort handler,
which prints tracebacks to the terminal, never fires.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

ORGANIZATION = "Tickscope"  # must match app.ui.paths (Qt builds its folder from these)
APPLICATION = "tickscope"
LOG_NAME = "tickscope.log"
MAX_BYTES = 1 << 20
BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(threadName)s %(name)s: %(message)s"

_handler: logging.Handler | None = None


def data_dir() -> Path:
    """The user's data folder, the same one the desktop app uses (not created here).

    Hand-written rather than platformdirs (judged in issue 18): it must be the folder Qt's
    AppDataLocation gives the app, and platformdirs 4.14 gives another one on Linux (no
    organisation level: ~/.local/share/tickscope), on Windows unless roaming=True (LOCALAPPDATA)
    and on macOS when XDG_DATA_HOME is set (which Qt ignores there); working around all
    three would be longer than these lines.
    """
    override = os.environ.get("TICKSCOPE_DATA_DIR")
    if override:
        return Path(override)
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        # Qt ignores a relative XDG_DATA_HOME, as the XDG spec says.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / ORGANIZATION / APPLICATION


def log_dir() -> Path:
    return data_dir() / "logs"


def log_file() -> Path:
    return log_dir() / LOG_NAME


class _SharedFileHandler(logging.handlers.RotatingFileHandler):
    """The command line's handler; stands aside once the app's own handler writes the same file.

    ``tickscope gui`` goes through the command line, and the app then adds its own
    handler for the same file (``app.ui.logs``): without this, every record would be
    written twice and two handlers would rotate one file.
    """

    def emit(self, record: logging.LogRecord) -> None:
        for other in logging.getLogger().handlers:
            if other is not self and getattr(other, "baseFilename", None) == self.baseFilename:
                return
        super().emit(record)


def setup_cli_logging() -> Path | None:
    """Route every log record to the log file; returns its path, None if it cannot be opened.

    Idempotent (tests call the command line many times in one process); a changed
    ``TICKSCOPE_DATA_DIR`` moves the handler.
    """
    global _handler
    root = logging.getLogger()
    path = log_file()
    if _handler is not None:
        if getattr(_handler, "baseFilename", None) == os.path.abspath(path):
            return path
        if isinstance(_handler, logging.NullHandler) and _handler.tickscope_path == str(path):
            return None
        root.removeHandler(_handler)
        _handler.close()
        _handler = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = _SharedFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                      encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.setLevel(logging.INFO)
        found: Path | None = path
    except OSError:
        # No log file (read-only home, a file where the folder should be): still never stderr.
        handler = logging.NullHandler()
        handler.tickscope_path = str(path)  # type: ignore[attr-defined]
        found = None
    _handler = handler
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return found


def current_log_file() -> Path | None:
    """The file records go to now, None when there is none."""
    name = getattr(_handler, "baseFilename", None)
    return Path(name) if name else None


def shutdown_cli_logging() -> None:
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
        _handler = None

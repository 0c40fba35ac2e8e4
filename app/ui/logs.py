"""The app's rotating log file under the user's data folder (Help -> Open log folder).

Tracebacks of anything that goes wrong go here; the user sees a short message.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from app.ui import paths

LOG_NAME = "tickscope.log"
MAX_BYTES = 1 << 20
BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"

_handler: logging.Handler | None = None


def setup_logging(folder: Path | None = None) -> Path:
    """Send log records of the whole app to the rotating file; returns its path.

    Idempotent: a second call (a second window in tests) moves the handler.
    """
    global _handler
    folder = folder or paths.log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / LOG_NAME
    root = logging.getLogger()
    if _handler is not None:
        if getattr(_handler, "baseFilename", None) == str(log_file):
            return log_file
        root.removeHandler(_handler)
        _handler.close()
    _handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )
    _handler.setFormatter(logging.Formatter(_FORMAT))
    _handler.setLevel(logging.INFO)
    root.addHandler(_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return log_file


def shutdown_logging() -> None:
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
        _handler = None


def current_log_file() -> Path | None:
    return Path(_handler.baseFilename) if _handler is not None else None

"""Where the app finds its bundled resources and keeps its own files.

Resources (icons, the bundled sample) live in ``resources/`` beside ``app/`` in the
source tree and under ``sys._MEIPASS`` in a PyInstaller bundle. The user's data folder
(logs, the default target) is Qt's AppDataLocation, overridable with
``TICKSCOPE_DATA_DIR`` so tests and scripted runs never touch the real one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ORGANIZATION = "Tickscope"
APPLICATION = "tickscope"

SAMPLE_CAPTURE = "binary_data_20251013_091500.dat"
SAMPLE_INSTRUMENTS = ("instruments_20251013.csv", "instruments_20251010.csv")


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


def icon_path(name: str) -> Path:
    return resource("icons", f"{name}.svg")


def samples_dir() -> Path:
    return resource("samples")


def sample_files() -> tuple[Path, list[Path]] | None:
    """The bundled sample capture and its instrument masters, or None if not shipped."""
    folder = samples_dir()
    capture = folder / SAMPLE_CAPTURE
    masters = [folder / name for name in SAMPLE_INSTRUMENTS]
    if capture.is_file() and all(m.is_file() for m in masters):
        return capture, masters
    return None


def data_dir() -> Path:
    """The user's data folder (created on demand)."""
    override = os.environ.get("TICKSCOPE_DATA_DIR")
    if override:
        path = Path(override)
    else:
        from PySide6.QtCore import QStandardPaths

        location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        path = Path(location) if location else Path.home() / ".local" / "share" / APPLICATION
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_target() -> Path:
    return data_dir() / "tickscope.duckdb"

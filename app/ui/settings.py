"""What the app remembers between runs: target, instrument masters, recent lists, theme.

Backed by QSettings (INI format). ``TICKSCOPE_SETTINGS`` names the INI file to use
instead of the user's, which is how tests and scripted runs stay out of the real one.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from app.ui.paths import APPLICATION, ORGANIZATION

RECENT_LIMIT = 10
THEMES = ("system", "light", "dark")


def _as_list(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class Settings:
    """Typed access to the app's QSettings."""

    def __init__(self, path: str | os.PathLike | None = None):
        path = path or os.environ.get("TICKSCOPE_SETTINGS")
        if path:
            self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qsettings = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
            )

    @property
    def file_name(self) -> str:
        return self.qsettings.fileName()

    def sync(self) -> None:
        self.qsettings.sync()

    # --- target ------------------------------------------------------------------

    @property
    def target(self) -> str | None:
        value = self.qsettings.value("target/path", "")
        return str(value) or None

    @target.setter
    def target(self, path: str | None) -> None:
        self.qsettings.setValue("target/path", path or "")
        if path:
            self._push_recent("target/recent", path)

    @property
    def recent_targets(self) -> list[str]:
        return _as_list(self.qsettings.value("target/recent", []))

    # --- instrument masters --------------------------------------------------------

    @property
    def instruments(self) -> list[str]:
        return _as_list(self.qsettings.value("instruments/paths", []))

    @instruments.setter
    def instruments(self, paths: list[str]) -> None:
        self.qsettings.setValue("instruments/paths", list(paths))

    # --- recent captures -----------------------------------------------------------

    @property
    def recent_files(self) -> list[str]:
        return _as_list(self.qsettings.value("files/recent", []))

    def add_recent_files(self, paths: list[str]) -> None:
        for path in paths:
            self._push_recent("files/recent", path)

    def clear_recent_files(self) -> None:
        self.qsettings.setValue("files/recent", [])

    def _push_recent(self, key: str, path: str) -> None:
        items = [p for p in _as_list(self.qsettings.value(key, [])) if p != path]
        self.qsettings.setValue(key, [path, *items][:RECENT_LIMIT])

    # --- appearance and first start --------------------------------------------------

    @property
    def theme(self) -> str:
        value = str(self.qsettings.value("view/theme", "system"))
        return value if value in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r}")
        self.qsettings.setValue("view/theme", value)

    @property
    def time_zone(self) -> str:
        """The zone times are shown in: "IST" (default) or "UTC"."""
        value = str(self.qsettings.value("view/time_zone", "IST")).upper()
        return value if value in ("IST", "UTC") else "IST"

    @time_zone.setter
    def time_zone(self, value: str) -> None:
        if value not in ("IST", "UTC"):
            raise ValueError(f"unknown time zone {value!r}")
        self.qsettings.setValue("view/time_zone", value)

    @property
    def welcome_dismissed(self) -> bool:
        return str(self.qsettings.value("welcome/dismissed", "false")).lower() == "true"

    @welcome_dismissed.setter
    def welcome_dismissed(self, value: bool) -> None:
        self.qsettings.setValue("welcome/dismissed", "true" if value else "false")

    @property
    def is_first_start(self) -> bool:
        return not self.target and not self.instruments and not self.welcome_dismissed

    def geometry(self) -> bytes | None:
        value = self.qsettings.value("window/geometry")
        return value if value else None

    def set_geometry(self, geometry, state) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)

    def window_state(self):
        return self.qsettings.value("window/state")


def existing(paths: list[str]) -> list[str]:
    return [p for p in paths if Path(p).exists()]

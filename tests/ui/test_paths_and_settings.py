"""Resource lookup (source tree and PyInstaller bundle) and the temp settings location."""

from __future__ import annotations

import sys

from app.ui import paths
from app.ui.settings import RECENT_LIMIT, Settings


def test_resources_are_found_in_the_source_tree():
    assert paths.icon_path("tickscope").is_file()
    assert paths.resources_dir().name == "resources"


def test_resources_are_found_in_a_pyinstaller_bundle(monkeypatch, tmp_path):
    (tmp_path / "resources" / "icons").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.icon_path("x") == tmp_path / "resources" / "icons" / "x.svg"
    assert paths.sample_files() is None  # not bundled there: the welcome offer hides its button


def test_data_folder_and_settings_stay_in_the_test_folder(app_dirs, qapp):
    assert paths.data_dir() == app_dirs["data"] and app_dirs["data"].is_dir()
    assert paths.default_target().parent == app_dirs["data"]
    settings = Settings()
    assert settings.file_name == str(app_dirs["settings"])


def test_recent_lists_are_most_recent_first_and_bounded(app_dirs, qapp):
    settings = Settings()
    for i in range(RECENT_LIMIT + 3):
        settings.target = f"/t/{i}.duckdb"
    settings.target = "/t/2.duckdb"
    assert settings.recent_targets[0] == "/t/2.duckdb"
    assert len(settings.recent_targets) == RECENT_LIMIT
    assert settings.recent_targets.count("/t/2.duckdb") == 1
    assert Settings().target == "/t/2.duckdb"  # written through to the INI file
    assert settings.is_first_start is False

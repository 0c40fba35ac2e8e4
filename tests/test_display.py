"""No display: `tickscope` says what to do in one line and exits 2 before Qt is even imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.display import display_problem
from app.errors import EXIT_USAGE
from tests.conftest import REPO

ALL_LIBS = lambda name: f"lib{name}.so"  # noqa: E731 - every library present
NO_LIBS = lambda name: None  # noqa: E731


@pytest.mark.parametrize("env", [{}, {"DISPLAY": ""}, {"QT_QPA_PLATFORM": "xcb"}])
def test_no_display_names_both_ways_out(env):
    problem = display_problem(env, platform="linux", find_library=ALL_LIBS)
    assert problem is not None
    assert "QT_QPA_PLATFORM=offscreen" in problem and "libxcb-cursor0" in problem
    assert "\n" not in problem


def test_headless_platforms_and_other_systems_need_no_display():
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, platform="linux", find_library=NO_LIBS) is None
    assert display_problem({"QT_QPA_PLATFORM": "minimal"}, platform="linux", find_library=NO_LIBS) is None
    assert display_problem({}, platform="darwin", find_library=NO_LIBS) is None
    assert display_problem({}, platform="win32", find_library=NO_LIBS) is None


def test_a_remote_display_with_the_xcb_libraries_is_trusted():
    assert display_problem({"DISPLAY": "somehost:10.0"}, platform="linux", find_library=ALL_LIBS) is None


def test_a_local_display_without_its_socket_is_refused(tmp_path):
    problem = display_problem({"DISPLAY": ":987"}, platform="linux", find_library=ALL_LIBS)
    assert problem is not None and "X987" in problem


def test_missing_xcb_libraries_are_named():
    problem = display_problem({"DISPLAY": "remote:0"}, platform="linux", find_library=NO_LIBS)
    assert problem is not None and "libxcb-cursor" in problem and "sudo apt install" in problem


def test_wayland_session_is_accepted():
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, platform="linux", find_library=NO_LIBS) is None
    assert display_problem({"QT_QPA_PLATFORM": "wayland"}, platform="linux", find_library=NO_LIBS) is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for Linux")
@pytest.mark.parametrize("argv", [[], ["gui"]])
def test_tickscope_without_a_display_exits_2_in_one_line_before_importing_qt(argv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["TICKSCOPE_DATA_DIR"] = str(tmp_path)
    code = (f"import sys; from app.cli import main; rc = main({argv!r}); "
            "print('qt-imported' if 'PySide6' in sys.modules else 'qt-not-imported'); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stdout.strip() == "qt-not-imported"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "QT_QPA_PLATFORM=offscreen" in lines[0], result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for Linux")
def test_the_check_runs_on_the_bare_interpreter(tmp_path):
    # `make run` calls it before the virtual environment exists: standard library only.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-S", "-m", "app.display"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == EXIT_USAGE and "QT_QPA_PLATFORM=offscreen" in result.stderr

"""`tickscope gui` (and `tickscope` alone) as a scripted process: files queued, started,
quit when done with a screenshot, and the exit code telling what happened."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support import encode


def _run(args, app_dirs, timeout=240, display=True):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "TICKSCOPE_SETTINGS": str(app_dirs["settings"]), "TICKSCOPE_DATA_DIR": str(app_dirs["data"])}
    if not display:  # no window could open: Qt must not be reached
        env = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["QT_QPA_PLATFORM"] = "xcb"
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _small_capture(folder: Path) -> Path:
    """A two-packet capture: for runs where what matters is not what a file holds."""
    path = folder / "small_20251013_091500.dat"
    path.write_bytes(encode.frame([encode.encode_message([
        encode.encode_packet(8, {"instrument_token": 256265, "last_price": 2_512_345}),
        encode.encode_packet(44, {"instrument_token": 408065, "last_price": 150_010})])], "raw"))
    return path


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_scripted_ingest_quits_when_done_with_a_screenshot(sample, tmp_path, app_dirs):
    target = tmp_path / "t.duckdb"
    shot = tmp_path / "shots" / "done.png"
    result = _run(["gui", sample["capture"], "--target", target, "--instruments", *sample["masters"],
                   "--quit-when-done", "--screenshot", shot], app_dirs)
    assert result.returncode == 0, result.stderr
    width, height = _png_size(shot)
    assert width >= 800 and height >= 500
    from app.store import open_target

    with open_target(target, read_only=True) as t:
        assert t.captures().num_rows == 1
        assert t.unknown_tokens().num_rows == 4
    log = (app_dirs["data"] / "logs" / "tickscope.log").read_text()
    assert re.search(r"job \d+ finished: 1 files, 0 failed", log), log
    # A scripted run leaves the remembered setup alone.
    if app_dirs["settings"].exists():
        ini = configparser.ConfigParser()
        ini.read(app_dirs["settings"])
        assert not ini.has_option("target", "path") or not ini.get("target", "path")


def test_no_subcommand_opens_the_app_and_an_empty_queue_quits_at_once(tmp_path, app_dirs):
    shot = tmp_path / "empty.png"
    result = _run(["--quit-when-done", "--screenshot", shot], app_dirs)
    assert result.returncode == 0, result.stderr
    assert _png_size(shot)[0] >= 800


def test_a_failed_file_makes_the_exit_code_4(tmp_path, app_dirs):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not parquet PAR1")
    target = tmp_path / "t.duckdb"
    result = _run(["gui", broken, _small_capture(tmp_path), "--target", target, "--quit-when-done"], app_dirs)
    assert result.returncode == 4, result.stderr
    from app.store import open_target

    with open_target(target, read_only=True) as t:  # the other file went in
        assert t.captures().num_rows == 1 and t.ticks().num_rows == 2
    # One line per failed row, where a script looks (before: the reason was in the log only).
    failed = [line for line in result.stderr.splitlines() if line.startswith("tickscope gui: ")]
    assert len(failed) == 1 and failed[0].startswith(f"tickscope gui: {broken}: "), result.stderr


def test_no_target_is_a_usage_error_with_the_reason_on_stderr(tmp_path, app_dirs):
    # Before: exit 4 and nothing on stderr.
    capture = _small_capture(tmp_path)
    result = _run(["gui", capture, "--quit-when-done"], app_dirs)
    assert result.returncode == 2, result.stderr
    assert f"tickscope gui: {capture}: Choose a target first" in result.stderr
    log = (app_dirs["data"] / "logs" / "tickscope.log").read_text()
    assert "no target" in log


def test_a_folder_that_is_not_ours_as_target_exits_2_like_the_cli(tmp_path, app_dirs):
    foreign = tmp_path / "notours"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = _run(["gui", _small_capture(tmp_path), "--target", foreign, "--quit-when-done"], app_dirs)
    assert result.returncode == 2, result.stderr
    assert "not a Tickscope dataset" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_a_locked_target_makes_the_exit_code_3(tmp_path, app_dirs):
    target = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
         str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = _run(["gui", _small_capture(tmp_path), "--target", target, "--quit-when-done"], app_dirs)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.returncode == 3, result.stderr
    log = (app_dirs["data"] / "logs" / "tickscope.log").read_text()
    assert "locked" in log


@pytest.mark.parametrize("args, message", [
    (["--target", "/nonexistent/folder/t.duckdb"], "does not exist"),
    (["--instruments", "/nonexistent/i.csv"], "no such file"),
])
def test_unusable_arguments_are_one_line_errors(args, message, app_dirs, tmp_path):
    # Found before Qt loads: the same line with no display at all (not the display's problem).
    result = _run(["gui", "--quit-when-done", *args], app_dirs, display=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


# `tickscope gui` with ``checked_arguments`` counted (and the target the window is given).
_COUNTED_LAUNCH = """
import sys
import app.ui.app as gui_app
from app.ui.main_window import MainWindow
real_check, real_set_target, calls = gui_app.checked_arguments, MainWindow.set_target, []
def counted(args):
    calls.append("checked")
    return real_check(args)
def set_target(self, path):
    calls.append("window: " + path)
    return real_set_target(self, path)
gui_app.checked_arguments, MainWindow.set_target = counted, set_target
from app.cli import main
code = main(sys.argv[1:])
print(calls)
sys.exit(code)
"""


def test_the_arguments_are_checked_once_and_the_checked_target_reaches_the_window(tmp_path, app_dirs):
    # Before: checked_arguments ran twice per launch (gui.run before Qt, run_gui again).
    # A process of its own: a scripted launch's window and jobs end with it.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "TICKSCOPE_SETTINGS": str(app_dirs["settings"]), "TICKSCOPE_DATA_DIR": str(app_dirs["data"])}
    result = subprocess.run([sys.executable, "-c", _COUNTED_LAUNCH, "gui", "--target", "t.duckdb",
                             "--quit-when-done"], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(["checked", f"window: {tmp_path / 't.duckdb'}"])

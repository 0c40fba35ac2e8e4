"""What the user sees when things go wrong: one line on stderr, the traceback in the log file
(never on the terminal), the right exit code; and where that log file lives."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app import logs
from app.cli import main
from app.store import open_target
from tests.conftest import REPO
from tests.support import synthetic
from tests.support.cli import run_cli

SAMPLES = REPO / "resources" / "samples"


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(folder))
    yield folder
    logs.shutdown_cli_logging()


def tickscope(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    synthetic.generate_capture(folder / "a.dat", packets=300, framing="raw", seed=3)
    return folder / "a.dat"


def test_target_that_cannot_be_created_is_one_line_exit_2(tmp_path, capture):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_cli("ingest", capture, "--target", blocker / "dataset")  # (in-process)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("tickscope: error:") and "Parquet dataset" in line


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_target_under_proc_is_one_line_exit_2(capture):
    result = tickscope("ingest", capture, "--target", "/proc/tickscope-no-such-dataset")
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("tickscope: error:")


def test_corrupt_captures_file_is_one_line_exit_2_for_ingest_and_unknown(tmp_path, capture):
    root = tmp_path / "dataset"
    assert run_cli("ingest", capture, "--target", root).returncode == 0
    (root / "captures" / "captures.parquet").write_bytes(b"garbage" * 50)
    # ingest as a real process; the other commands, reading the same way, in this one
    for run, args in ((tickscope, ("ingest", capture, "--target", root)), (run_cli, ("unknown", root)),
                      (run_cli, ("resolve", root, "-i", SAMPLES / "instruments_20251013.csv"))):
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "not a readable Tickscope dataset" in one_line(result)


BUG = """
import sys
import app.commands.unknown as unknown

def run(args):
    raise RuntimeError("boom in unknown\\nsecond line")

unknown.run = run
from app.cli import main
sys.exit(main(["unknown", "whatever"]))
"""


def test_internal_error_is_one_line_naming_the_log_file_which_holds_the_traceback(data_dir):
    result = run_python(BUG)
    assert result.returncode == 1
    line = one_line(result)
    log_file = data_dir / "logs" / "tickscope.log"
    assert line == f"tickscope: internal error: RuntimeError: boom in unknown (details in {log_file})"
    text = log_file.read_text()
    assert "unexpected error in unknown" in text and "Traceback" in text and "RuntimeError: boom" in text


def test_without_a_usable_log_folder_errors_still_stay_off_the_terminal(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = dict(os.environ, TICKSCOPE_DATA_DIR=str(blocker))
    result = run_python(BUG, env=env)
    assert result.returncode == 1
    line = one_line(result)
    assert line == "tickscope: internal error: RuntimeError: boom in unknown"
    assert "No handlers" not in result.stderr


PIPELINE_BUG = """
import sys
import app.core.decode as decode

def batches(self, *args, **kw):
    raise RuntimeError("decoder bug")
    yield

decode.CaptureReader.batches = batches
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_file_failing_inside_the_pipeline_logs_to_the_file_not_the_terminal(tmp_path, data_dir, capture):
    result = subprocess.run(
        [sys.executable, "-c", PIPELINE_BUG, "ingest", str(capture), "--target", str(tmp_path / "t.duckdb"), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr and "File \"" not in result.stderr
    text = (data_dir / "logs" / "tickscope.log").read_text()
    assert f"{capture.name} failed" in text and "Traceback" in text and "RuntimeError: decoder bug" in text


def test_in_process_internal_error_message_and_log(monkeypatch, capsys, data_dir):
    import app.commands.unknown as unknown

    def run(args):
        raise ValueError("bad state")

    monkeypatch.setattr(unknown, "run", run)
    assert main(["unknown", "x"]) == 1
    err = capsys.readouterr().err
    log_file = data_dir / "logs" / "tickscope.log"
    assert err.strip() == f"tickscope: internal error: ValueError: bad state (details in {log_file})"
    assert "ValueError: bad state" in (data_dir / "logs" / "tickscope.log").read_text()


def test_cli_log_folder_is_the_apps(tmp_path, data_dir):
    from app.ui import paths

    assert logs.log_dir() == paths.log_dir() == data_dir / "logs"
    # Without the override: the folder Qt names AppDataLocation for the app, computed without Qt.
    env = {k: v for k, v in os.environ.items() if k != "TICKSCOPE_DATA_DIR"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    code = """
        import sys
        from app import logs
        blocked = [m for m in sys.modules if m.startswith("PySide6")]
        print(logs.log_dir())
        print(bool(blocked))
        from PySide6.QtCore import QCoreApplication
        from app.ui import paths
        QCoreApplication.setOrganizationName(paths.ORGANIZATION)
        QCoreApplication.setApplicationName(paths.APPLICATION)
        print(paths.log_dir())
    """
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    cli_dir, qt_loaded, app_dir = result.stdout.strip().splitlines()
    assert qt_loaded == "False"
    assert cli_dir == app_dir == str(tmp_path / "xdg" / "Tickscope" / "tickscope" / "logs")


def test_records_are_written_once_when_the_app_adds_its_own_handler(data_dir):
    from app.ui import logs as ui_logs

    assert logs.setup_cli_logging() == data_dir / "logs" / "tickscope.log"
    try:
        ui_file = ui_logs.setup_logging(data_dir / "logs")
        assert ui_file == logs.current_log_file()
        logging.getLogger("tickscope.test").warning("only once please")
    finally:
        ui_logs.shutdown_logging()
    logging.getLogger("tickscope.test").warning("cli alone again")
    text = (data_dir / "logs" / "tickscope.log").read_text()
    assert text.count("only once please") == 1
    assert text.count("cli alone again") == 1


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_unknown_on_an_empty_target_says_it_has_no_ticks(tmp_path, capsys, kind):
    path = tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")
    open_target(path).close()
    assert main(["unknown", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no ticks in this target yet" in out and "every tick is named" not in out

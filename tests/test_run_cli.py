"""tests/support/cli.py's ``run_cli`` stands in for a ``python -m app`` process: these tests
run the same command both ways and compare, and check that a run leaves the test process's
logging as it found it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest

from tests.conftest import REPO
from tests.support.cli import run_cli

# `tickscope captures` with its run replaced by a command that writes everywhere a command can.
_LAUNCH = ("import sys, app.commands.captures as c, tests.test_run_cli as t; c.run = t.noisy_run; "
           "from app.cli import main; sys.exit(main(sys.argv[1:]))")


def noisy_run(args) -> int:
    """Writes what its TARGET argument names: "buffer", "fd2" or "warnings"."""
    print("a text line")
    if args.target == "buffer":
        sys.stdout.flush()
        sys.stdout.buffer.write("bytes through .buffer: \u00e9\n".encode())
        sys.stdout.buffer.flush()
    if args.target == "fd2":
        print("a line on sys.stderr", file=sys.stderr)
        os.write(2, b"written straight to fd 2\n")
    if args.target == "warnings":
        warnings.warn("a warning the command raised", UserWarning, stacklevel=1)
        warnings.warn("hidden in a process by the default filters", DeprecationWarning, stacklevel=1)
    print("the last line", file=sys.stderr)
    return 4


def _process(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _LAUNCH, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


# What the process shows for each (so that the comparison with it compares something).
SHOWN = {
    "buffer": lambda out, err: out == "a text line\nbytes through .buffer: \u00e9\n",
    "fd2": lambda out, err: err == "a line on sys.stderr\nwritten straight to fd 2\nthe last line\n",
    "warnings": lambda out, err: ("UserWarning: a warning the command raised" in err
                                  and "DeprecationWarning" not in err and err.endswith("the last line\n")),
}


@pytest.mark.parametrize("what", sorted(SHOWN))
def test_a_run_shows_what_a_process_shows(what, monkeypatch):
    # Before: bytes written to sys.stdout.buffer failed (a StringIO has none: exit 1), what
    # went to fd 2 was not in stderr, and warnings went to pytest's record, not to stderr.
    import app.commands.captures

    monkeypatch.setattr(app.commands.captures, "run", noisy_run)
    real = _process("captures", what)
    assert real.returncode == 4, real.stderr
    assert SHOWN[what](real.stdout, real.stderr), (real.stdout, real.stderr)

    in_process = run_cli("captures", what)
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == \
        (real.returncode, real.stdout, real.stderr)
    # A fresh process warns every time: so does a second run here (no once-per-location memory).
    assert run_cli("captures", what).stderr == real.stderr


@pytest.mark.parametrize("earlier", [False, True], ids=["no-cli-handler", "cli-handler-set-up-earlier"])
def test_a_run_leaves_the_root_logger_as_it_found_it(tmp_path, earlier):
    # Before: the root logger was left at INFO with every run (the CLI's log set-up). And
    # with the command line's log handler already on the root logger (a command an earlier
    # test ran in this process without run_cli), a run closed that handler, put it back
    # last (another order) and forgot it as the command line's (a later set-up added a
    # second one): 3 of the first 8 runs of a make test-repeat failed here.
    from app import logs

    root = logging.getLogger()
    level = root.level
    if earlier:
        assert logs.setup_cli_logging() is not None
    handlers, log_file = list(root.handlers), logs.current_log_file()
    root.setLevel(logging.ERROR)
    try:
        assert run_cli("captures", tmp_path / "missing.duckdb").returncode == 2  # logs, fails
        assert run_cli("--version").returncode == 0  # ends in SystemExit after the log set-up
        assert root.level == logging.ERROR
        assert root.handlers == handlers
        assert logs.current_log_file() == log_file
        assert not logging.getLogger("tickscope").isEnabledFor(logging.INFO)
        if earlier:  # the command line's handler is still the one set up, and still writes
            assert logs.setup_cli_logging() == log_file and root.handlers == handlers
            root.setLevel(logging.INFO)
            logging.getLogger("tickscope.test").warning("after two runs")
            assert "after two runs" in log_file.read_text(encoding="utf-8")
    finally:
        root.setLevel(level)
        if earlier:
            logs.shutdown_cli_logging()

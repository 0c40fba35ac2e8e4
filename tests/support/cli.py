"""The `tickscope` command line run in the test process: ``run_cli(*args)`` calls
``app.cli.main`` with stdout and stderr captured and returns what a subprocess run would
(a ``CompletedProcess``: exit code, stdout, stderr).

For tests of what a command does and says (exit code, its one line, the JSON line, the files
it leaves), not of what only a real process shows: an interpreter's start and exit (its final
flush, "Exception ignored" messages), a closed pipe, a signal, a second process holding a
file. Those tests start ``python -m app``. An exception escaping ``main`` (which in a real
process would print a traceback) fails the calling test here.
"""

from __future__ import annotations

import contextlib
import io
import subprocess

from app import logs
from app.cli import main


def run_cli(*args) -> subprocess.CompletedProcess:
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exited:  # argparse's usage errors and --help, as the interpreter would
                code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
                if exited.code is not None and not isinstance(exited.code, int):
                    print(exited.code, file=err)
    finally:
        logs.shutdown_cli_logging()
    return subprocess.CompletedProcess(["tickscope", *argv], code, out.getvalue(), err.getvalue())

"""The `tickscope` command line run in the test process: ``run_cli(*args)`` calls
``app.cli.main`` and returns what a ``python -m app`` subprocess run with
``capture_output=True, text=True`` would (a ``CompletedProcess``: exit code, stdout, stderr).

What makes it a faithful stand-in for that process, for the length of the call:
- file descriptors 1 and 2 point at temporary files, and ``sys.stdout``/``sys.stderr`` are
  text streams over those descriptors built as the interpreter builds its own (encoding and
  error handlers of this interpreter's streams; block-buffered stdout, line-buffered stderr,
  or unbuffered under PYTHONUNBUFFERED; each with its binary ``.buffer`` and ``fileno()``):
  what the command prints, writes as bytes, or what a C library or child process writes to
  fd 1 or 2 is captured, in the order a process would show it;
- warnings use a fresh interpreter's default filters (not pytest's) and are printed to that
  stderr, as the interpreter prints them;
- the logging set-up is put back afterwards: the root logger's level and handlers, in their
  order (the CLI adds its log file's handler and sets the level to INFO), the command line's
  handler of ``app.logs`` (one an earlier in-process command set up stays, open), and
  ``logging.disable``.

Not faithful, by nature: an interpreter's start and exit (its final flush errors, "Exception
ignored" messages), a closed pipe, a signal, a second process holding a file, what the
command leaves in module state. Tests of those start ``python -m app``. An exception
escaping ``main`` (which in a real process would print a traceback) fails the calling test.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import warnings

from app import logs
from app.cli import main

# A release build of CPython 3.11 started without -W or PYTHONWARNINGS (the tests' subprocesses).
_DEFAULT_WARNING_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The interpreter's own way of showing a warning: its formatted text on sys.stderr."""
    stream = file if file is not None else sys.stderr
    with contextlib.suppress(OSError):
        stream.write(warnings.formatwarning(message, category, filename, lineno, line))


def _stream(fd: int, like, *, is_stderr: bool) -> io.TextIOWrapper:
    """A text stream over ``fd`` as the interpreter makes sys.stdout/sys.stderr for a pipe."""
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    raw = io.FileIO(fd, "wb", closefd=False)
    binary = raw if unbuffered else io.BufferedWriter(raw)
    stream = io.TextIOWrapper(binary, encoding=getattr(like, "encoding", None) or "utf-8",
                              errors=getattr(like, "errors", None) or ("backslashreplace" if is_stderr else "strict"),
                              line_buffering=is_stderr and not unbuffered, write_through=unbuffered)
    return stream


def _read_text(file, encoding: str) -> str:
    """What ``subprocess.run(..., text=True)`` makes of the bytes: decoded, newlines universal."""
    file.seek(0)
    return io.TextIOWrapper(io.BytesIO(file.read()), encoding=encoding).read()


@contextlib.contextmanager
def _redirected_fd(fd: int, file):
    sys_stream = {1: sys.stdout, 2: sys.stderr}[fd]
    with contextlib.suppress(Exception):
        sys_stream.flush()  # what was written before the run stays out of it
    saved = os.dup(fd)
    try:
        os.dup2(file.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def _logging_restored():
    root = logging.getLogger()
    level, handlers, disabled = root.level, list(root.handlers), logging.root.manager.disable
    # The command line's handler as the run finds it: one an earlier in-process command set
    # up stays (open, in its place, still the command line's); only the run's own goes.
    cli_handler = logs._handler
    try:
        yield
    finally:
        if logs._handler is not cli_handler:
            logs.shutdown_cli_logging()
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        logs._handler = cli_handler
        root.setLevel(level)
        logging.disable(disabled)


def run_cli(*args) -> subprocess.CompletedProcess:
    argv = [str(a) for a in args]
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        with _logging_restored(), _redirected_fd(1, out_file), _redirected_fd(2, err_file):
            out = _stream(1, sys.__stdout__, is_stderr=False)
            err = _stream(2, sys.__stderr__, is_stderr=True)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                        warnings.catch_warnings():
                    warnings.resetwarnings()
                    for action, category, module in reversed(_DEFAULT_WARNING_FILTERS):
                        warnings.filterwarnings(action, category=category, module=module)
                    warnings.showwarning = _show_warning
                    try:
                        code = main(argv)
                    except SystemExit as exited:  # argparse's usage errors and --help, as the interpreter would
                        code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
                        if exited.code is not None and not isinstance(exited.code, int):
                            print(exited.code, file=err)
            finally:
                for stream in (out, err):  # the interpreter's final flush (the descriptors stay open)
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
        stdout, stderr = _read_text(out_file, encoding), _read_text(err_file, encoding)
    return subprocess.CompletedProcess(["tickscope", *argv], code, stdout, stderr)

"""The `tickscope` command: subcommands, one-line errors and exit codes.

Each subcommand lives in ``app/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. With no subcommand the desktop app opens. Errors a user can
cause print one line to stderr and exit with their code (``app.errors``); anything
unexpected is logged with its traceback to the log file (``app.logs``) and reported
in one line naming that file, exit 1. Log records never reach the terminal.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Sequence

from app import __version__, logs
from app.errors import EXIT_DAMAGED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_USAGE, TickscopeError

COMMANDS = ("gui", "decode", "ingest", "unknown", "resolve", "inspect", "selftest", "verify", "remove",
            "captures", "candles", "ticks")

log = logging.getLogger("tickscope")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem in one line with exit code 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tickscope", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tickscope {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.commands.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
    for command in sub.choices.values():  # every command's --help points to the exit-code table
        if not command.epilog:
            command.epilog = EPILOG
        elif "README" not in command.epilog:
            command.epilog = command.epilog.rstrip() + "\n\n" + EPILOG
    parser.epilog = EPILOG
    return parser


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _fail(args, code: int, message: str) -> int:
    """The one way a command fails: one line on stderr and, with ``--json``, a final JSON
    line on stdout (``command``, ``exit_code``, ``error``)."""
    print(message, file=sys.stderr)
    if getattr(args, "json", False):
        try:
            print(json.dumps({"command": getattr(args, "command", None), "exit_code": code,
                              "error": message.removeprefix("tickscope: ").removeprefix("error: ")}))
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _quiet_stdout()
    return code


def _no_space(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # DuckDB reports a full disk as its own IOException, with the OS's words in it
    return "No space left on device" in str(err) or "Disk quota exceeded" in str(err)


_DAMAGED_FILE = re.compile(r'(?:Could not read enough bytes|[Cc]orrupt|checksum|truncated)[^"]*?(?:file "([^"]+)")?')


def _damaged_target(err: BaseException) -> str | None:
    """The path of a DuckDB file too damaged to read (truncated, corrupt), or "" when the
    error is that but names no file; None for any other error."""
    if not type(err).__module__.startswith(("duckdb", "_duckdb")):
        return None
    match = _DAMAGED_FILE.search(str(err))
    if match is None:
        return None
    return match.group(1) or ""


def _no_space_message(err: BaseException) -> str:
    where = getattr(err, "filename", None) or "the disk holding the target or output"
    return f"tickscope: error: no space left on {where}: free some space and run it again"


EPILOG = ("Exit codes (README, 'Exit codes'): 0 ok, 1 internal bug, 2 bad arguments or unreadable "
          "input, 3 target locked, 4 some inputs failed or yielded nothing, 5 verify found damage, "
          "6 no space / write I/O error, 130 interrupted. Errors are one line; --json ends with a "
          "JSON line even on failure.")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opens_app = not argv or (
        argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")
        and (argv[0].startswith("-") or os.path.exists(argv[0]))
    )
    if opens_app:
        # `tickscope`, `tickscope --target T` and `tickscope FILE...` (a desktop entry, a
        # double-clicked capture) open the app with those arguments.
        argv = ["gui", *argv]
    # Before anything can log: otherwise Python's last-resort handler prints tracebacks.
    log_file = logs.setup_cli_logging()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exited:
        if exited.code == EXIT_USAGE and "--json" in argv:  # the usage line went to stderr
            print(json.dumps({"command": argv[0] if argv else None, "exit_code": EXIT_USAGE,
                              "error": "bad arguments (see --help)"}))
        raise
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except TickscopeError as err:
        return _fail(args, err.exit_code, f"tickscope: error: {err}")
    except KeyboardInterrupt:
        return _fail(args, EXIT_INTERRUPTED, "tickscope: interrupted")
    except BrokenPipeError:
        # The reader of our stdout went away (`... | head -1`): end quietly. Point stdout
        # at /dev/null so the interpreter's final flush cannot fail again.
        _quiet_stdout()
        return EXIT_INTERRUPTED
    except Exception as err:
        damaged = _damaged_target(err)
        if damaged is not None:
            log.warning("damaged target in %s: %s", args.command, err)
            code = EXIT_DAMAGED if args.command == "verify" else EXIT_USAGE
            what = damaged or getattr(args, "target", None) or "the DuckDB target"
            return _fail(args, code, f"tickscope: error: the DuckDB target {what} is truncated or corrupt "
                                     "(DuckDB could not read it back): restore it from a copy, or ingest into a new "
                                     "target")
        if _no_space(err):
            log.warning("no space left in %s: %s", args.command, err)
            return _fail(args, EXIT_NO_SPACE, _no_space_message(err))
        log.exception("unexpected error in %s", args.command)
        if isinstance(err, OSError) and err.errno == errno.EIO:
            where = f" on {err.filename}" if err.filename else ""
            return _fail(args, EXIT_NO_SPACE, f"tickscope: error: I/O error{where}: check the disk and run it again")
        # a bug: the traceback is in the log, one line on screen
        where = f" (details in {log_file})" if log_file else ""
        first = str(err).splitlines()[0] if str(err) else ""
        return _fail(args, EXIT_INTERNAL, f"tickscope: internal error: {type(err).__name__}: {first}{where}")


if __name__ == "__main__":
    sys.exit(main())

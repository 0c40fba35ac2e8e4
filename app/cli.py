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
import logging
import os
import sys
from typing import Optional, Sequence

from app import __version__
from app import logs
from app.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_USAGE, TickscopeError

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
    return parser


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
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
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except TickscopeError as err:
        print(f"tickscope: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("tickscope: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (`... | head -1`): end quietly. Point stdout
        # at /dev/null so the interpreter's final flush cannot fail again.
        _quiet_stdout()
        return EXIT_INTERRUPTED
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            where = err.filename or "the disk"
            print(f"tickscope: error: no space left on {where}: free some space and run it again",
                  file=sys.stderr)
            return EXIT_NO_SPACE
        log.exception("unexpected error in %s", args.command)
        print(f"tickscope: error: I/O error: {err.strerror or err}"
              + (f" ({err.filename})" if err.filename else ""), file=sys.stderr)
        return EXIT_NO_SPACE if err.errno == errno.EIO else EXIT_INTERNAL
    except Exception as err:  # a bug: keep the traceback in the log, one line on screen
        log.exception("unexpected error in %s", args.command)
        where = f" (details in {log_file})" if log_file else ""
        first = str(err).splitlines()[0] if str(err) else ""
        print(f"tickscope: internal error: {type(err).__name__}: {first}{where}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

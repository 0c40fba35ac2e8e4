"""`tickscope gui`: the desktop app (also what `tickscope` alone opens)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "gui",
        help="open the desktop app",
        description=(
            "Open the desktop app, optionally with captures queued. With files or "
            "--quit-when-done the run is scripted: no dialogs; problems go to the rows, "
            "the log file, one line per failed file on stderr and the exit code, as for "
            "`tickscope ingest` (0 only if no file failed, 2 no target or an unusable one, "
            "3 target locked, 4 some files failed)."
        ),
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="capture files or folders to queue")
    parser.add_argument("--target", metavar="T", help="DuckDB file or Parquet folder to ingest into")
    parser.add_argument("--instruments", nargs="+", action="extend", metavar="F", default=[],
                        help="instrument masters (CSV/JSON/Parquet dumps); put FILEs before this option")
    parser.add_argument("--start", action="store_true", help="start ingesting the queue at once")
    parser.add_argument("--quit-when-done", action="store_true",
                        help="start, and quit when the queue is done (implies --start)")
    parser.add_argument("--screenshot", metavar="PNG", help="save a picture of the window (before quitting)")
    parser.add_argument("--screenshot-after", type=float, metavar="SECONDS",
                        help="take the --screenshot this long after launch instead of at the end")
    parser.add_argument("--theme", choices=("system", "light", "dark"), help="force a theme for this run")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from app.display import display_problem
    from app.errors import UsageError
    from app.ui.app import checked_arguments, run_gui  # (Qt is imported by run_gui only)

    # Checked once, before Qt: an unusable argument is a one-line error at once, and the
    # window is handed the very values that were checked.
    target, instruments = checked_arguments(args)
    problem = display_problem()  # before Qt: it would abort slowly with its raw message
    if problem:
        raise UsageError(problem)

    return run_gui(args, target=target, instruments=instruments)

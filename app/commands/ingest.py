"""`tickscope ingest`: captures and tick dumps into a DuckDB file or Parquet dataset.

Progress goes to stderr: per-file bars redrawn in place on a terminal, one plain line
per stage change otherwise. The result goes to stdout: a table, or with ``--json``
one JSON line. Ctrl-C cancels cleanly (nothing of unfinished files is kept); a
second Ctrl-C stops at once. ``--engine dask`` runs the same job on a Dask cluster
(``app.pipeline.dask_engine``, docs/cluster.md) with the same progress and output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

DESCRIPTION = "Ingest capture files and folders (binary, JSON/JSONL, Parquet) into a target."
EPILOG = """\
exit codes:
  0    every file ingested or skipped (already in the target, or the same content as
       another input that was stored)
  2    unusable arguments or inputs (no input files, a target that is not ours)
  3    the target is locked by another process
  4    some files failed or were cancelled; the others were still ingested
  130  interrupted with Ctrl-C: files not yet committed are "cancelled" and leave
       nothing in the target; the --json line says "exit_code": 130 too
"""


def _count(flag: str, high: int, what: str = "a whole number"):
    """The argparse type of a count option: a whole number from 1 to ``high``."""

    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {what}, got {text!r}") from None
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} must be from 1 to {high}, got {value}")
        return value

    return parse


_workers = _count("--workers", 64)
_local_workers = _count("--local-cluster", 256, "a number of worker processes")


def add_parser(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser("ingest", help=DESCRIPTION, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="capture files or folders (searched recursively)")
    parser.add_argument("--target", "-t", required=True, metavar="T",
                        help="a .duckdb/.db file, or a folder for a Parquet dataset")
    parser.add_argument("--instruments", "-i", nargs="+", action="extend", default=[], metavar="FILE",
                        help="instrument masters (Kite instruments CSV, JSON lookup, Parquet) to name ticks")
    parser.add_argument("--workers", "-w", type=_workers, default=min(4, os.cpu_count() or 2),
                        help="files decoded at once (default: cores, at most 4)")
    parser.add_argument("--force", action="store_true", help="re-ingest files already in the target (replacing them)")
    parser.add_argument("--memory-limit", default=None, metavar="SIZE",
                        help="memory the ingest may use beyond the program itself, e.g. 512MB or 2GB "
                             "(default 400MB, for a 4 GB laptop); every stage keeps within it")
    parser.add_argument("--json", action="store_true", help="print one JSON line summarising each file")
    cluster = parser.add_argument_group("cluster (docs/cluster.md; needs tickscope[cluster])")
    cluster.add_argument("--engine", choices=("local", "dask"), default="local",
                         help="local: threads in this process (default); dask: one task per file on a Dask "
                              "cluster, Parquet folder targets only")
    where = cluster.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="with --engine dask: the scheduler of a running cluster, e.g. tcp://host:8786")
    where.add_argument("--local-cluster", type=_local_workers, metavar="N",
                       help="with --engine dask: start N worker processes on this machine "
                            "(the default when no --scheduler: one per core)")
    parser.set_defaults(run=run)


def _short(path: str, width: int) -> str:
    # Counted in characters on purpose: a terminal lays text out in character cells and has
    # no font to measure (the app's labels elide by their font: QFontMetrics.elidedText).
    name = Path(path).name
    return name if len(name) <= width else "…" + name[-(width - 1):]


class TerminalProgress:
    """Per-file bars redrawn in place with ANSI codes (stderr is a terminal).

    Hand-written rather than rich.progress (judged in issue 18): rich would draw the bars,
    rates and ETAs, but this display's own parts (at most MAX_LINES files, finished ones
    scrolling away into the totals line, the packet rate and ETA taken from the pipeline's
    CaptureRecord, numbers kept whole while name and bar shrink) would still be custom
    columns and glue of about the same length, for four new packages in the app and the
    bundle (rich 1.4 MB, pygments, markdown-it-py, mdurl).

    The redraw moves the cursor up by lines written, so every line is cut to the
    terminal's width (a wrapped line would take two rows and scramble the next redraw)
    and no more lines are drawn than the terminal has rows.
    """

    BAR = 24
    MAX_LINES = 12  # active files shown; finished ones scroll away as summary counts

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.files: dict[int, object] = {}
        self.lines_drawn = 0
        self.lock = threading.Lock()
        self.last_draw = 0.0
        self.started = time.monotonic()

    def __call__(self, update) -> None:
        with self.lock:
            self.files[update.index] = update
            now = time.monotonic()
            if update.final or now - self.last_draw >= 0.1:
                self.last_draw = now
                self._draw()

    def _line(self, u, width: int = 0) -> str:
        """One file's line; within ``width`` columns the name and bar shrink before
        the numbers, and whatever still does not fit is cut."""
        rate = f"{u.rate_pps / 1000:6.0f}k pkt/s" if u.rate_pps else " " * 13
        eta = ""
        if u.stage == "decoding" and u.rate_pps and 0 < u.fraction < 1:
            elapsed = u.packets / u.rate_pps
            eta = f" ETA {elapsed * (1 - u.fraction) / u.fraction:4.0f}s"
        extra = f" {u.error}" if u.error and u.final else ""
        tail = f"{u.fraction * 100:5.1f}% {u.stage:<9} {u.packets:>11,} pkt {rate}{eta}"
        name_width, bar_width = 28, self.BAR
        if width:
            room = width - len(tail) - 2  # the spaces after the name and the bar
            name_width = min(28, max(12, room - self.BAR))
            bar_width = min(self.BAR, room - name_width)
            if bar_width < 4:  # too narrow to mean anything: the percentage says it
                bar_width = 0
        filled = int(bar_width * u.fraction)
        bar = ("█" * filled + "░" * (bar_width - filled) + " ") if bar_width else ""
        line = f"{_short(u.path, name_width):<{name_width}} {bar}{tail}{extra}"
        return line[:width] if width else line

    def _size(self) -> tuple[int, int]:
        try:  # stderr's own size: stdout may be a pipe (--json > file)
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, ValueError, OSError):
            size = shutil.get_terminal_size()
        return size.columns, size.lines

    def _draw(self) -> None:
        columns, rows = self._size()
        width = max(1, columns - 1)  # the last column would wrap on some terminals
        max_lines = max(1, min(self.MAX_LINES, rows - 2))  # plus the totals line
        updates = [self.files[i] for i in sorted(self.files)]
        active = [u for u in updates if not u.final]
        finished = [u for u in updates if u.final]
        room = max_lines - min(len(active), max_lines)
        shown = (finished[len(finished) - room:] if finished and room else []) + active[:max_lines]
        shown = shown[-max_lines:]
        lines = [self._line(u, width) for u in shown]
        total = sum(u.packets for u in updates)
        elapsed = time.monotonic() - self.started
        lines.append(f"{len(finished)}/{len(updates)} files, {total:,} packets, "
                     f"{total / elapsed / 1000 if elapsed else 0:.0f}k pkt/s overall")
        lines = [line[:width] for line in lines]
        out = []
        if self.lines_drawn:
            out.append(f"\x1b[{self.lines_drawn}F")  # back to the first line drawn
        for line in lines:
            out.append("\x1b[2K" + line + "\n")
        for _ in range(self.lines_drawn - len(lines)):
            out.append("\x1b[2K\n")
        self.lines_drawn = max(self.lines_drawn, len(lines))
        self.stream.write("".join(out))
        self.stream.flush()


class PlainProgress:
    """One line per stage change (stderr is a pipe or a file)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.stages: dict[int, str] = {}
        self.lock = threading.Lock()

    def __call__(self, update) -> None:
        with self.lock:
            if self.stages.get(update.index) == update.stage:
                return
            self.stages[update.index] = update.stage
            if update.stage == "queued":
                return
            text = f"{update.stage:<9} {update.path}"
            if update.final:
                suspect = f"{update.suspect:,} suspect, " if update.suspect else ""
                text += (f" ({update.packets:,} packets, {update.bad_packets:,} bad, {suspect}"
                         f"{update.unresolved_ticks:,} unresolved)")
                if update.error:
                    text += f": {update.error}"
            self.stream.write(text + "\n")
            self.stream.flush()


def _print_table(report, stream: TextIO) -> None:
    rows = [("status", "packets", "bad", "suspect", "unresolved", "seconds", "file")]
    for f in report.files:
        rows.append((f.reported_status, f"{f.packets:,}", f"{f.bad_packets:,}", f"{f.suspect:,}",
                     f"{f.unresolved_ticks:,}",
                     f"{f.seconds:.2f}", f.path + (f"  ({f.error})" if f.error else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        stream.write("  ".join(r[i].rjust(widths[i]) if i else r[i].ljust(widths[i]) for i in range(6))
                     + "  " + r[6] + "\n")
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    rate = report.packets / report.seconds if report.seconds else 0
    stream.write(f"{counts} into {report.target} in {report.seconds:.1f}s ({rate / 1000:.0f}k packets/s)\n")


def _job(args, progress):
    engine = getattr(args, "engine", "local")
    if engine == "dask":
        # Imports without Dask; a missing Dask is a one-line usage error from here.
        from app.pipeline.dask_engine import DaskIngestJob

        # --memory-limit: what each task (one file on one worker process) may hold.
        return DaskIngestJob(args.paths, args.target, instruments=args.instruments, scheduler=args.scheduler,
                             local_cluster=args.local_cluster, force=args.force, progress=progress,
                             memory_limit=getattr(args, "memory_limit", None))
    if getattr(args, "scheduler", None) or getattr(args, "local_cluster", None):
        from app.errors import UsageError

        raise UsageError("--scheduler and --local-cluster need --engine dask")
    from app.pipeline import IngestJob

    return IngestJob(args.paths, args.target, instruments=args.instruments, workers=args.workers,
                     force=args.force, progress=progress, memory_limit=getattr(args, "memory_limit", None))


def run(args) -> int:
    progress = None
    if sys.stderr.isatty() and os.environ.get("TERM") != "dumb":
        progress = TerminalProgress(sys.stderr)
    else:
        progress = PlainProgress(sys.stderr)
    job = _job(args, progress)
    interrupted = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_interrupt(signum, frame):
            if interrupted.is_set():
                raise KeyboardInterrupt
            interrupted.set()
            sys.stderr.write("tickscope: cancelling (Ctrl-C again to stop at once)\n")
            job.cancel()

        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        report = job.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    # The JSON line and the exit status must agree: a Ctrl-C'd run is 130 in both.
    report.interrupted = interrupted.is_set()
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), default=str) + "\n")
    else:
        _print_table(report, sys.stdout)
    return report.exit_code

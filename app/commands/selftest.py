"""`tickscope selftest`: prove an installation works end to end on the bundled sample.

Decodes the sample capture, ingests it with its instrument masters into temporary
DuckDB and Parquet targets, reads the targets back, and checks every count against the
decode of the same run and against ``resources/samples/expected.json`` (the figures of
the sample's README). It also imports the desktop stack (Qt, pyqtgraph, the main window)
without opening a window, so a frozen bundle missing a module fails here, not at a
user's first start. Prints one line: ``tickscope selftest OK: ...`` (exit 0) or
``tickscope selftest FAIL: <reason>`` (exit 1).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from app.errors import EXIT_INTERNAL, EXIT_OK

log = logging.getLogger("tickscope.selftest")

TARGET_KINDS = {"duckdb": "selftest.duckdb", "parquet": "selftest-parquet"}
# What the desktop app needs at run time; importing them finds a bundle that left one out.
GUI_MODULES = ("PySide6.QtWidgets", "PySide6.QtSvg", "pyqtgraph", "app.ui.main_window")


class SelftestFailure(Exception):
    """One check that did not hold; ``str()`` is the one-line reason."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "selftest",
        help="check this installation on the bundled sample",
        description=(
            "Decode and ingest the bundled sample into temporary targets and check every "
            "count. Prints one OK or FAIL line; exit 0 only when everything matches."
        ),
    )
    parser.add_argument("--targets", default="duckdb,parquet", metavar="KINDS",
                        help="comma list of target kinds to ingest into (default: duckdb,parquet)")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the targets into DIR (created, must be empty) and keep them")
    parser.add_argument("--no-gui", action="store_true",
                        help="skip importing the desktop stack (for installs without Qt)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="on failure also print the traceback")
    parser.set_defaults(run=run)
    return parser


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise SelftestFailure(reason)


def _sample() -> tuple[Path, list[Path], dict]:
    from app.ui.paths import samples_dir

    folder = samples_dir()
    expected_path = folder / "expected.json"
    _check(expected_path.is_file(), f"bundled sample not found: {expected_path} is missing")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    capture = folder / expected["capture"]
    masters = [folder / name for name in expected["instruments"]]
    for path in (capture, *masters):
        _check(path.is_file(), f"bundled sample file missing: {path}")
    size = capture.stat().st_size
    _check(size == expected["bytes"],
           f"sample capture is {size:,} bytes, expected {expected['bytes']:,} (damaged install?)")
    digest = hashlib.sha256(capture.read_bytes()).hexdigest()
    _check(digest.startswith(expected["sha256_prefix"]),
           f"sample capture sha256 {digest[:16]} is not {expected['sha256_prefix']} (damaged install?)")
    return capture, masters, expected


def _decode(capture: Path, expected: dict):
    from app.core.decode import CaptureReader

    reader = CaptureReader(capture)
    ticks = sum(batch.ticks.num_rows for batch in reader.batches())
    summary = reader.summary
    _check(summary.bytes_accounted == summary.bytes,
           f"decode accounted for {summary.bytes_accounted:,} of {summary.bytes:,} bytes")
    _check(summary.framing == expected["framing"],
           f"decode detected framing {summary.framing!r}, expected {expected['framing']!r}")
    for name in ("messages", "packets", "bad_packets"):
        got = getattr(summary, name)
        _check(got == expected[name], f"decode found {got:,} {name.replace('_', ' ')}, expected {expected[name]:,}")
    by_length = {str(k): v for k, v in summary.packets_by_length.items()}
    _check(by_length == expected["packets_by_length"],
           f"decode packets by length {by_length} differ from {expected['packets_by_length']}")
    _check(ticks == summary.packets, f"decode yielded {ticks:,} tick rows for {summary.packets:,} packets")
    return summary


def _ingest(kind: str, target: Path, capture: Path, masters: list[Path], summary, expected: dict) -> None:
    from app.core.capture import DONE
    from app.pipeline import run_ingest
    from app.store import open_target

    report = run_ingest([capture], target, instruments=masters, workers=2)
    _check(len(report.files) == 1, f"{kind}: ingest reported {len(report.files)} files for 1")
    result = report.files[0]
    _check(result.status == DONE, f"{kind}: ingest {result.reported_status}: {result.error or 'no reason given'}")
    _check(report.exit_code == EXIT_OK, f"{kind}: ingest exit code {report.exit_code}")
    unknown_ticks = sum(expected["unknown_tokens"].values())
    for name, want in (("packets", summary.packets), ("ticks", summary.packets),
                       ("bad_packets", summary.bad_packets), ("unresolved_ticks", unknown_ticks)):
        got = getattr(result, name)
        _check(got == want, f"{kind}: ingest counted {got:,} {name.replace('_', ' ')}, expected {want:,}")

    with open_target(target, read_only=True) as stored:
        counts = stored.counts()
        _check(counts["captures"] == 1, f"{kind}: target holds {counts['captures']} captures, expected 1")
        _check(counts["ticks"] == summary.packets,
               f"{kind}: target holds {counts['ticks']:,} tick rows, expected {summary.packets:,}")
        _check(counts["bad_packets"] == summary.bad_packets,
               f"{kind}: target holds {counts['bad_packets']} bad packets, expected {summary.bad_packets}")
        unknown = stored.unknown_tokens()
        got_unknown = {str(t): n for t, n in zip(unknown.column("instrument_token").to_pylist(),
                                                 unknown.column("ticks").to_pylist(), strict=True)}
        _check(got_unknown == expected["unknown_tokens"],
               f"{kind}: unknown tokens {got_unknown} differ from {expected['unknown_tokens']}")


def _import_gui() -> None:
    for name in GUI_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # an incomplete bundle raises ImportError or worse (OSError)
            raise SelftestFailure(f"cannot import {name}: {type(err).__name__}: {err}") from err


def selftest(kinds: list[str], workdir: Path, *, gui: bool = True) -> str:
    """Run every check; returns the summary for the OK line, raises SelftestFailure."""
    started = time.monotonic()
    capture, masters, expected = _sample()
    summary = _decode(capture, expected)
    for kind in kinds:
        _ingest(kind, workdir / TARGET_KINDS[kind], capture, masters, summary, expected)
    if gui:
        _import_gui()
    return (f"{summary.packets:,} packets, {summary.bad_packets:,} bad, "
            f"{len(expected['unknown_tokens'])} unknown tokens, "
            f"target rows match ({', '.join(kinds)}) in {time.monotonic() - started:.1f} s")


def run(args) -> int:
    kinds = [k.strip() for k in args.targets.split(",") if k.strip()]
    unknown_kinds = [k for k in kinds if k not in TARGET_KINDS]
    if not kinds or unknown_kinds:
        print(f"tickscope selftest FAIL: --targets takes {' and/or '.join(TARGET_KINDS)}, got {args.targets!r}",
              file=sys.stderr)
        return EXIT_INTERNAL
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        if any(workdir.iterdir()):
            print(f"tickscope selftest FAIL: --keep folder {workdir} is not empty", file=sys.stderr)
            return EXIT_INTERNAL
    else:
        workdir = Path(tempfile.mkdtemp(prefix="tickscope-selftest-"))
    try:
        line = selftest(kinds, workdir, gui=not args.no_gui)
    except Exception as err:  # every failure, expected or not, is one FAIL line
        reason = str(err) if isinstance(err, SelftestFailure) else f"{type(err).__name__}: {err}"
        log.debug("selftest failed", exc_info=True)
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"tickscope selftest FAIL: {' '.join(reason.split())}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"tickscope selftest OK: {line}")
    return EXIT_OK

"""Which files an ingest reads: paths and folders expanded to a sorted list of inputs.

Named files are always taken (their content decides how they are read). Inside
folders, walked recursively without following links, a file is taken when its
extension is a capture's or a tick dump's, or when its first bytes look like one:
instrument masters (.csv), databases and hidden files are left alone, and so is every
folder holding a Tickscope Parquet dataset (its parts are ticks already stored, not
inputs). ``walk_folder`` is that folder rule, shared with the desktop app's intake.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from app.errors import InputError, UsageError
from app.store.parquet import MARKER as DATASET_MARKER

CAPTURE_EXTENSIONS = frozenset({".dat", ".bin", ".raw", ".b64", ".base64", ".packet", ".packets", ".cap"})
TICK_DUMP_EXTENSIONS = frozenset({".json", ".jsonl", ".ndjson", ".parquet", ".pq"})
IGNORED_EXTENSIONS = frozenset(
    {".csv", ".gz", ".duckdb", ".db", ".wal", ".tmp", ".txt", ".md", ".log", ".py", ".zip", ".tar"}
)
SNIFF_HEAD = 1 << 16


def _sniffed(path: Path) -> bool:
    """A file without a telling extension: is it a tick dump or a binary capture?"""
    try:
        from app.core.tick_sources import sniff_tick_file

        if sniff_tick_file(path) is not None:
            return True
    except ImportError:
        pass
    except (OSError, ValueError):
        return False
    from app.core import framing

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(SNIFF_HEAD)
    except OSError:
        return False
    if not head:
        return False
    final = len(head) >= size
    kind = framing.detect_framing(head, size)
    split = framing.Framer(kind).split(head, 0, final)
    # Most of the head must be packets: detection always names some framing.
    return split.accounted.get("packet", 0) * 2 >= len(head)


def _wanted(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in CAPTURE_EXTENSIONS or suffix in TICK_DUMP_EXTENSIONS:
        return True
    if suffix in IGNORED_EXTENSIONS:
        return False
    return _sniffed(path)


def walk_folder(folder: Path, datasets: Optional[list] = None) -> Iterator[Path]:
    """Every candidate file under ``folder``, sorted: hidden entries and Parquet datasets left out.

    A folder holding ``DATASET_MARKER`` is a dataset (a target, maybe a nested one): none of
    it is walked, and it is appended to ``datasets`` when given, so callers can say why.
    Links to folders are not followed.
    """
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        if DATASET_MARKER in filenames:
            dirnames[:] = []
            if datasets is not None:
                datasets.append(Path(dirpath))
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def expand_inputs(paths: Iterable, *, exclude: Iterable = ()) -> list[Path]:
    """The input files named by ``paths`` (files and folders), without duplicates.

    ``exclude`` are paths never read (the target itself when it sits among the
    inputs). A missing path, or no input files at all, is a usage error (exit 2).
    """
    excluded = [Path(os.path.realpath(p)) for p in exclude]
    seen: set[Path] = set()
    files: list[Path] = []

    def add(path: Path) -> None:
        real = Path(os.path.realpath(path))
        if real in seen or _inside(real, excluded):
            return
        seen.add(real)
        files.append(path)

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"input not found: {path} (give capture files or folders that exist)")
        if path.is_dir():
            found = [full for full in walk_folder(path) if full.is_file() and _wanted(full)]
            for full in sorted(found):
                add(full)
        elif path.is_file():
            add(path)
        else:
            raise InputError(f"input is not a regular file or folder: {path}")
    if not files:
        shown = ", ".join(str(p) for p in paths) or "(none)"
        raise UsageError(f"no capture or tick files found in {shown}")
    return files

"""Which files an ingest reads: paths and folders expanded to a sorted list of inputs.

Named files are always taken (their content decides how they are read). Inside
folders, walked recursively without following links, a file is taken when its
extension is a capture's or a tick dump's, or when its first bytes look like one:
instrument masters (.csv), databases and hidden files are left alone, and so is every
folder holding a Tickscope Parquet dataset (its parts are ticks already stored, not
inputs). ``select_inputs`` is the one rule, used by ``tickscope ingest`` and the desktop
app's drop/add (``app.model.intake``) alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import InputError, UsageError
from app.store.parquet import MARKER as DATASET_MARKER

# .har: a browser's HTTP Archive of the Kite WebSocket (framing "har").
CAPTURE_EXTENSIONS = frozenset({".dat", ".bin", ".raw", ".b64", ".base64", ".packet", ".packets", ".cap", ".har"})
TICK_DUMP_EXTENSIONS = frozenset({".json", ".jsonl", ".ndjson", ".parquet", ".pq"})
# .txt and .log are sniffed, not ignored: websocat session logs and pasted HAR fragments
# (``ws_message.txt``) are often saved so; their content decides.
IGNORED_EXTENSIONS = frozenset({".csv", ".gz", ".duckdb", ".db", ".wal", ".tmp", ".md", ".py", ".zip", ".tar"})
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
    from app.core.har import looks_like_har

    if looks_like_har(head):
        return b'"_webSocketMessages"' in head or b'"opcode"' in head
    final = len(head) >= size
    kind = framing.detect_framing(head, size)
    split = framing.Framer(kind).split(head, 0, final)
    if kind == "base64":
        # Text: base64 inflates and sessions hold commands; what matters is that
        # messages decode and next to nothing is bad.
        return split.accounted.get("packet", 0) > 0 and split.accounted.get("bad", 0) * 10 < len(head)
    # Most of the head must be packets: detection always names some framing.
    return split.accounted.get("packet", 0) * 2 >= len(head)


def _wanted(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in CAPTURE_EXTENSIONS or suffix in TICK_DUMP_EXTENSIONS:
        return True
    if suffix in IGNORED_EXTENSIONS:
        return False
    return _sniffed(path)


def read_as(path: Path) -> str:
    """How an input file is read: ``json``, ``jsonl`` or ``parquet`` (a tick dump,
    ``app.core.tick_sources``) or ``capture`` (a binary or text capture in any framing,
    HAR included, ``app.core.decode``). The one decision for ingest, decode and the app.

    Raises ``InputError`` for a file named as a tick dump that is neither a dump nor a
    capture whose content says so (a HAR saved as .json is a capture).
    """
    from app.core.tick_sources import sniff_tick_file

    kind = sniff_tick_file(path)
    if kind is not None:
        return kind
    suffix = path.suffix.lower()
    if suffix in TICK_DUMP_EXTENSIONS:
        from app.core.har import looks_like_har

        try:
            with open(path, "rb") as f:
                head = f.read(SNIFF_HEAD)
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror or err}") from None
        if not looks_like_har(head):
            raise InputError(_not_a_dump_text(path))
    return "capture"


def _not_a_dump_text(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        what = "a Parquet file (no PAR1 header and footer)"
    else:
        what = "a JSON/JSONL tick dump (not UTF-8 text starting with [ or {, or JSON text frames) nor a HAR"
    return f"{path.name} is named {suffix} but is not {what}; not read as a binary capture"


def _why_not(path: Path) -> str:
    """Why a file inside a folder is no input (for the app's "not queued" line)."""
    if not path.is_file():
        return "not a regular file"
    suffix = path.suffix.lower()
    if suffix in IGNORED_EXTENSIONS:
        return f"{suffix} files are not captures or tick dumps"
    return "not a Kite capture or tick dump"


def walk_folder(folder: Path, datasets: list | None = None) -> Iterator[Path]:
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


@dataclass
class InputSelection:
    """What ``select_inputs`` made of the paths it was given."""

    files: list[Path] = field(default_factory=list)  # the inputs, in order, without duplicates
    refused: list[tuple[Path, str]] = field(default_factory=list)  # a named path and why it is no input
    datasets: list[Path] = field(default_factory=list)  # Parquet datasets found (and left alone)
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # files in folders that are no input, and why


def select_inputs(paths: Iterable, *, exclude: Iterable = ()) -> InputSelection:
    """THE rule for what a file is, for ``tickscope ingest`` and the desktop app's drop/add alike.

    A named regular file is always an input (its content decides how it is read); a folder
    gives the candidate files under it (``walk_folder``) that ``_wanted`` takes; a missing
    path, something that is neither file nor folder, or a folder that is a Tickscope dataset
    is refused with a reason. ``exclude`` are paths never read (the target itself when it
    sits among the inputs).
    """
    excluded = [Path(os.path.realpath(p)) for p in exclude]
    seen: set[Path] = set()
    selection = InputSelection()

    def add(path: Path) -> None:
        real = Path(os.path.realpath(path))
        if real in seen or _inside(real, excluded):
            return
        seen.add(real)
        selection.files.append(path)

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            selection.refused.append((path, "no such file or folder"))
        elif path.is_dir():
            datasets: list[Path] = []
            found = []
            for full in walk_folder(path, datasets):
                if full.is_file() and _wanted(full):
                    found.append(full)
                else:
                    selection.left_out.append((full, _why_not(full)))
            selection.datasets.extend(datasets)
            if datasets and datasets[0] == path:
                selection.refused.append((path, "a Tickscope Parquet dataset (ticks already stored), not captures"))
            for full in sorted(found):
                add(full)
        elif path.is_file():
            add(path)
        else:
            selection.refused.append((path, "not a regular file or folder"))
    return selection


def expand_inputs(paths: Iterable, *, exclude: Iterable = ()) -> list[Path]:
    """The input files named by ``paths`` (``select_inputs``), for the command line.

    A missing path, or no input files at all, is a usage error (exit 2).
    """
    paths = list(paths)
    selection = select_inputs(paths, exclude=exclude)
    for path, _reason in selection.refused:
        if not path.exists():
            raise InputError(f"input not found: {path} (give capture files or folders that exist)")
        if not path.is_dir():
            raise InputError(f"input is not a regular file or folder: {path}")
    if not selection.files:
        shown = ", ".join(str(p) for p in paths) or "(none)"
        raise UsageError(f"no capture or tick files found in {shown}")
    return selection.files

"""What the app's drop and "Add captures…" make of paths: the command line's rule, described.

Which files are inputs is decided once, by ``app.pipeline.inputs.select_inputs`` (what
``tickscope ingest`` reads): the window queues exactly those files. This module only adds
what the queue shows of each (size, framing label) and a one-line summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.pipeline.inputs import TICK_DUMP_EXTENSIONS, select_inputs

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class QueueEntry:
    path: str  # absolute
    size: int
    framing: str  # a label for the queue; the pipeline decides how the file is read


@dataclass
class Intake:
    accepted: list[QueueEntry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # path, reason

    def summary(self, already_queued: int = 0) -> str:
        parts = []
        n = len(self.accepted) - already_queued
        if n > 0:
            parts.append(f"Queued {n} file{'s' if n != 1 else ''}")
        if already_queued:
            parts.append(f"{already_queued} already in the queue")
        if self.refused:
            name, reason = self.refused[0]
            more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
            parts.append(f"not queued: {Path(name).name}: {reason}{more}")
        text = "; ".join(parts) or "Nothing to queue"
        return text[0].upper() + text[1:]


def framing_label(path: Path, size: int) -> str:
    """The framing a capture looks like (the core's detector), or the dump kind; "?" if unreadable."""
    try:
        from app.pipeline.inputs import read_as

        kind = read_as(path)
    except Exception:  # noqa: BLE001 - a label only; the pipeline reports the real problem
        kind = path.suffix.lower().lstrip(".") if path.suffix.lower() in TICK_DUMP_EXTENSIONS else "capture"
    if kind != "capture":
        suffix = path.suffix.lower()
        return suffix.lstrip(".") if suffix in TICK_DUMP_EXTENSIONS else kind
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        return "?"
    if not head:
        return "empty"
    try:
        from app.core.framing import detect_framing

        return detect_framing(head, size) or "?"
    except Exception:  # noqa: BLE001 - a label only; the pipeline reports the real problem
        return "?"


def split_present(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files still there, paths gone): what can be ingested again of ``paths``."""
    paths = list(paths)
    present = [p for p in paths if os.path.isfile(p)]
    return present, sorted(set(paths) - set(present))


def gather(paths: Iterable[os.PathLike | str], *, exclude: Iterable = ()) -> Intake:
    """Files and folders -> what to queue: exactly what ``tickscope ingest`` would read."""
    selection = select_inputs(list(paths), exclude=exclude)
    intake = Intake()
    for path in selection.files:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        intake.accepted.append(QueueEntry(str(path.absolute()), size, framing_label(path, size)))
    intake.refused = [(str(p), reason) for p, reason in selection.refused + selection.left_out]
    return intake

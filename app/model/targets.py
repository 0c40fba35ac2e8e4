"""What the window shows of a target, read from the target itself after every change.

``read_state(path)`` is the one snapshot the views share: each capture's stored counts,
the totals and the unknown-token table. The status bar, the target card, the queue's
finished rows and the unknown-token pane all show numbers from the same snapshot, so
they agree after an ingest, a resolve, a remove or a cancel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from app.core.capture import CaptureRecord
from app.store.checks import TargetCheck, TargetProblem, check_target

__all__ = ["TargetProblem", "TargetCheck", "TargetState", "check_target", "read_state", "validate_target"]


def validate_target(path: str) -> str:
    """The absolute target path if usable (new or existing), else ``TargetProblem``."""
    return str(check_target(path).path)


def duckdb_path(path: str) -> str:
    """A name chosen for a DuckDB target, with ``.duckdb`` added when it has no suffix."""
    return path if Path(path).suffix else path + ".duckdb"


@dataclass
class TargetState:
    path: str
    exists: bool
    captures: dict[str, CaptureRecord] = field(default_factory=dict)  # by file_id: the committed records
    packets: int = 0
    bad_packets: int = 0
    unresolved_ticks: int = 0
    unknown: pa.Table | None = None  # the explained unknown-token table

    @property
    def unknown_tokens(self) -> int:
        return self.unknown.num_rows if self.unknown is not None else 0

    def summary(self) -> str:
        """One line for the target card."""
        if not self.exists:
            return "new: created on the first ingest"
        n = len(self.captures)
        if not n:
            return "empty"
        return (f"{n:,} capture{'s' if n != 1 else ''} · {self.packets:,} packets · "
                f"{self.unresolved_ticks:,} unresolved ticks")


def state_from_tables(path: str, captures: pa.Table | None, unknown: pa.Table | None) -> TargetState:
    state = TargetState(path, captures is not None, unknown=unknown)
    if captures is None or not captures.num_rows:
        return state
    for row in captures.to_pylist():
        state.captures[row["file_id"]] = CaptureRecord.from_captures_row(row)
    state.packets = int(pc.sum(captures["packets"]).as_py() or 0)
    state.bad_packets = int(pc.sum(captures["bad_packets"]).as_py() or 0)
    state.unresolved_ticks = int(pc.sum(captures["unresolved_ticks"]).as_py() or 0)
    return state


def read_state(path: str) -> TargetState:
    """Open the target read-only and read its counts and unknown tokens (a worker's job)."""
    from app.store import open_target

    check = check_target(path, writable=False)
    if not check.exists:
        return TargetState(str(check.path), False)
    with open_target(check.path, read_only=True) as target:
        return state_from_tables(str(check.path), target.captures(), target.unknown_tokens())

"""Targets ticks are written to: a DuckDB file or a Parquet dataset folder.

``open_target(path)`` picks the kind from the name: ``.duckdb``/``.db`` is a DuckDB
file, anything else a Parquet dataset folder. The contract (``Target``,
``CaptureWrite``, ``CaptureRecord``) is in ``app.store.base``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from app.store.base import (
    BAD_PACKETS_SCHEMA,
    CAPTURES_SCHEMA,
    AlreadyIngested,
    CaptureRecord,
    CaptureWrite,
    Finding,
    NotInTarget,
    RemovedCapture,
    Target,
)
from app.store.checks import DUCKDB_SUFFIXES, TargetCheck, TargetProblem, check_target, target_kind


def open_target(path: Path | str, *, read_only: bool = False) -> Target:
    """Open (creating it unless ``read_only``) the target at ``path``.

    Raises ``TargetLockedError`` when another process or job holds it, ``InputError``
    when ``path`` is not a usable target.
    """
    if target_kind(path) == "duckdb":
        from app.store.duck import DuckDBTarget

        return DuckDBTarget(path, read_only=read_only)
    from app.store.parquet import ParquetTarget

    return ParquetTarget(path, read_only=read_only)


def open_existing_target(path: Path | str) -> Target:
    """Open for writing a target that must already exist (``verify``, ``remove``): opening
    for writing holds the lock and, for a Parquet dataset, finishes an interrupted commit
    first. InputError when there is no target at ``path``."""
    check_target(path, must_exist=True)
    return open_target(path)


def removal_preview(path: Path | str, file_ids) -> list[RemovedCapture]:
    """What ``remove`` would take for each committed capture of ``file_ids`` (its ``captures``
    row's counts; ids not in the target are left out): what a confirmation shows."""
    import pyarrow.compute as pc

    with open_target(path, read_only=True) as target:
        captures = target.captures()
    wanted = list(dict.fromkeys(file_ids))
    chosen = captures.filter(pc.is_in(captures["file_id"], value_set=pa.array(wanted, pa.string())))
    rows = {r["file_id"]: r for r in chosen.select(["file_id", "path", "packets", "bad_packets"]).to_pylist()}
    return [RemovedCapture(f, rows[f]["path"], rows[f]["packets"] or 0, rows[f]["bad_packets"] or 0)
            for f in wanted if f in rows]


def remove_captures(path: Path | str, file_ids) -> list[RemovedCapture]:
    """Remove committed captures and everything derived from them (``Target.remove``)."""
    with open_existing_target(path) as target:
        return target.remove(list(file_ids))


__all__ = [
    "removal_preview",
    "remove_captures",
    "check_target",
    "TargetCheck",
    "TargetProblem",
    "open_existing_target",
    "Finding",
    "NotInTarget",
    "RemovedCapture",
    "open_target",
    "target_kind",
    "Target",
    "CaptureWrite",
    "CaptureRecord",
    "AlreadyIngested",
    "CAPTURES_SCHEMA",
    "BAD_PACKETS_SCHEMA",
    "DUCKDB_SUFFIXES",
]

"""Targets ticks are written to: a DuckDB file or a Parquet dataset folder.

``open_target(path)`` picks the kind from the name: ``.duckdb``/``.db`` is a DuckDB
file, anything else a Parquet dataset folder. The contract (``Target``,
``CaptureWrite``, ``CaptureRecord``) is in ``app.store.base``.
"""

from __future__ import annotations

from pathlib import Path

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


__all__ = [
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

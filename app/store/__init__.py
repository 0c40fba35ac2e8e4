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

DUCKDB_SUFFIXES = (".duckdb", ".db")


def target_kind(path: Path | str) -> str:
    return "duckdb" if Path(path).suffix.lower() in DUCKDB_SUFFIXES else "parquet"


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
    from app.errors import InputError

    path = Path(path)
    if target_kind(path) == "duckdb":
        exists = path.is_file()
    else:
        from app.store.parquet import MARKER

        exists = (path / MARKER).is_file()
    if not exists:
        raise InputError(f"no Tickscope target at {path}; give a .duckdb file or a dataset folder ingested into")
    return open_target(path)


__all__ = [
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

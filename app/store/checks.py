"""Whether a path can be a target: the one check, for the command line, the app and the stores.

A target is a DuckDB file (``.duckdb``/``.db``) or a Parquet dataset folder (anything
else). It is usable when it is ours or new: an existing DuckDB file must be a DuckDB
database (or empty) and writable; an existing folder must be a Tickscope dataset (holds
``MARKER``) or empty, and writable; a new one needs a writable parent folder. Nothing
here opens a database or takes a lock (``open_target`` does, and calls this first).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.errors import InputError

DUCKDB_SUFFIXES = (".duckdb", ".db")
DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file
MARKER = "tickscope-dataset.json"  # a folder holding it is a Tickscope Parquet dataset


class TargetProblem(InputError):
    """A path that cannot be a target; str() says why and what to do (exit 2)."""


@dataclass(frozen=True)
class TargetCheck:
    path: Path  # absolute
    kind: str  # "duckdb" | "parquet"
    exists: bool  # holds a target already (an empty file or folder does not)

    @property
    def is_duckdb(self) -> bool:
        return self.kind == "duckdb"


def target_kind(path: Path | str) -> str:
    return "duckdb" if Path(path).suffix.lower() in DUCKDB_SUFFIXES else "parquet"


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def check_target(path: Path | str, *, must_exist: bool = False, writable: bool = True) -> TargetCheck:
    """The target at ``path`` if it can be used (new or ours), else ``TargetProblem``.

    ``must_exist``: there must already be a target there (verify, remove, read-only opens).
    ``writable``: it (or, when new, its folder: which must exist) must be writable. The
    stores pass False: opening for writing reports its own OS error, and creates folders.
    """
    if not str(path):
        raise TargetProblem("no target given: choose a .duckdb file or a folder for a Parquet dataset")
    target = Path(path).expanduser().absolute()
    kind = target_kind(target)
    if kind == "duckdb":
        exists = False
        if target.exists():
            if not target.is_file():
                raise TargetProblem(f"{target} is a folder, not a DuckDB file; choose a .duckdb file name")
            try:
                size = target.stat().st_size
                with target.open("rb") as handle:
                    head = handle.read(12)
            except OSError as err:
                raise TargetProblem(f"can't read {target}: {_reason(err)}") from None
            if size and head[8:12] != DUCKDB_MAGIC:
                raise TargetProblem(f"{target} exists but is not a DuckDB database; choose another file name")
            exists = size > 0
            if writable and not os.access(target, os.W_OK):
                raise TargetProblem(f"{target} is read-only; choose a file you can write")
    else:
        exists = False
        if target.exists():
            if not target.is_dir():
                raise TargetProblem(
                    f"{target} is a file: a target is a .duckdb/.db file or a Parquet dataset folder")
            ours = (target / MARKER).is_file()
            try:
                foreign = not ours and any(target.iterdir())
            except OSError as err:
                raise TargetProblem(f"can't read the folder {target}: {_reason(err)}") from None
            if foreign:  # never write into someone else's folder
                raise TargetProblem(
                    f"{target} is a folder that is not a Tickscope dataset; choose an empty or new folder")
            exists = ours
            if writable and not os.access(target, os.W_OK):
                raise TargetProblem(f"the folder {target} is read-only; choose one you can write")
    if writable and not target.exists():
        parent = target.parent
        if not parent.is_dir():
            raise TargetProblem(f"the folder {parent} does not exist; create it or choose another place")
        if writable and not os.access(parent, os.W_OK):
            raise TargetProblem(f"can't create {target.name} in {parent}: the folder is read-only")
    if must_exist and not exists:
        raise TargetProblem(f"no Tickscope target at {target}; give a .duckdb file or a dataset folder ingested into")
    return TargetCheck(target, kind, exists)

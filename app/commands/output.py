"""Where a command writes its result: ``--out FILE`` or standard output.

``check_out`` is the one rule for ``--out`` (``decode``, ``candles``, ``ticks``): a new
name or a regular file, never a symbolic link, folder, device or anything else, in a
folder that exists and can be written (exit 2, nothing touched). Files are written under
a temporary name in the same folder and renamed when complete (``app.store.query``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from app.errors import UsageError


def check_out(out: Path, inputs: Sequence[Path] = ()) -> None:
    """``--out`` must be a new name or a regular file (see the module doc)."""
    if out.is_symlink():
        raise UsageError(f"--out is a symbolic link: {out} (give the real file's path or a new name)")
    if not out.parent.is_dir():
        raise UsageError(f"output folder does not exist: {out.parent} (create it first)")
    if out.is_dir():
        raise UsageError(f"--out is a folder: {out} (give a file name such as ticks.parquet)")
    if out.exists() and not out.is_file():
        raise UsageError(f"--out is not a regular file: {out} (give a new file name such as ticks.parquet)")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to the output folder {out.parent} (read-only or no permission): "
                         "choose another --out")
    for given in inputs:
        try:
            if given.exists() and out.exists() and os.path.samefile(given, out):
                raise UsageError(f"--out is the input {given} itself: give another file name")
        except OSError:
            pass


def write_result(out, fmt: str, write: Callable[[Path], int]) -> int:
    """``write(path)`` the result to ``out`` (checked first) or, without ``--out``, to
    standard output (csv and json; Parquet needs a file). Returns the rows written."""
    if out:
        out = Path(out)
        check_out(out)
        return write(out)
    if fmt == "parquet":
        raise UsageError("--format parquet needs --out FILE (Parquet is not written to the terminal)")
    with tempfile.TemporaryDirectory(prefix="tickscope-out-") as folder:
        path = Path(folder) / f"result.{fmt}"
        rows = write(path)
        sys.stdout.flush()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.flush()
    return rows

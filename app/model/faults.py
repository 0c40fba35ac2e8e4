"""Why a capture failed, as a code plus human text: what happened, the file, what to do.

A ``Fault`` is built from where the failure came from (an exception's type and exit code,
or the pipeline's per-file outcome), never by parsing a sentence back. The window's
details pane shows all of it; an internal error (a bug) also names the log file and
carries the traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from app.errors import EXIT_LOCKED, EXIT_NO_SPACE, EXIT_USAGE

INPUT = "input"  # the file is unreadable or not a capture/tick dump
TARGET_LOCKED = "target-locked"
TARGET_UNUSABLE = "target-unusable"
NO_TARGET = "no-target"
WRITE = "write"  # no space / I/O error writing the target
VANISHED = "vanished"  # the file was removed before its turn
INTERNAL = "internal"  # a bug: traceback in the log

CODES = (INPUT, TARGET_LOCKED, TARGET_UNUSABLE, NO_TARGET, WRITE, VANISHED, INTERNAL)

ADVICE = {
    INPUT: "Check that this is a Kite WebSocket capture or a tick dump; `tickscope inspect FILE` shows "
           "what Tickscope sees in it. Retry once the file is complete.",
    TARGET_LOCKED: "Another Tickscope (or another program) has the target open. Close it, then retry.",
    TARGET_UNUSABLE: "Choose a .duckdb file (new or existing) or an empty/new folder for a Parquet dataset.",
    NO_TARGET: "Choose a DuckDB file or a Parquet folder (File → Choose target), then press Start.",
    WRITE: "Free some space (or fix the disk), then retry: the target keeps its last committed state.",
    VANISHED: "The file was moved or deleted after it was queued; add it again from its new place.",
    INTERNAL: "This is a bug in Tickscope. Retry the file; if it happens again, send the log file "
              "(Help → Open log folder) with a bug report.",
}


@dataclass(frozen=True)
class Fault:
    code: str  # one of CODES
    message: str  # one line: what happened
    advice: str = ""  # what to do
    path: str = ""  # the file it happened to
    traceback: str = ""  # internal errors only
    log_file: str = ""  # internal errors only

    @property
    def internal(self) -> bool:
        return self.code == INTERNAL

    def details(self) -> str:
        """Everything about it as plain text (what the details pane and "Copy" show)."""
        lines = [self.message]
        if self.path:
            lines.append(f"File: {self.path}")
        if self.advice:
            lines.append(f"What to do: {self.advice}")
        if self.log_file:
            lines.append(f"Log file: {self.log_file}")
        if self.traceback:
            lines += ["", self.traceback.rstrip()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Fault:
        return cls(**{k: str(data.get(k) or "") for k in cls.__dataclass_fields__})


def make(code: str, message: str, path: str = "", *, traceback: str = "") -> Fault:
    log_file = ""
    if code == INTERNAL:
        from app.logs import log_file as current_log

        log_file = str(current_log())
    return Fault(code, message, ADVICE.get(code, ""), path, traceback if code == INTERNAL else "", log_file)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fault_from_exception(exc: BaseException, traceback: str = "", path: str = "") -> Fault:
    """A failure raised as an exception: its type and exit code say which kind it is."""
    from app.errors import TickscopeError
    from app.store.checks import TargetProblem

    if isinstance(exc, TargetProblem):
        code = TARGET_UNUSABLE
    elif isinstance(exc, TickscopeError):
        code = {EXIT_LOCKED: TARGET_LOCKED, EXIT_NO_SPACE: WRITE, EXIT_USAGE: INPUT}.get(exc.exit_code, INPUT)
    elif isinstance(exc, OSError):
        code = WRITE if exc.errno in (28, 122) else INPUT  # ENOSPC, EDQUOT
    else:
        code = INTERNAL
    return make(code, one_line(exc), path, traceback=traceback)


def fault_for_file(error: str, path: str, code: str | None = None) -> Fault:
    """A file the pipeline reported failed, with the kind it gave (``app.pipeline.ingest``'s
    FAULT_* values are these codes)."""
    if code == "no_space":  # the pipeline's full-disk kind (exit 6) is a write fault here
        code = WRITE
    if code not in CODES:  # an engine that does not say (the Dask engine): the file's own
        code = INPUT
    if path and error.startswith(f"{path}: "):
        error = error[len(path) + 2:]  # the file has its own line in the details
    return make(code, error, path)

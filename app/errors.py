"""Errors a user can cause, each with the exit code the command line reports.

Exit codes are a contract (other tools script against them); this is the one table,
README's exit-code table mirrors it:
0 success; 1 an internal bug only (traceback in the log); 2 unusable arguments or
unreadable input; 3 target locked by another process; 4 some inputs failed or yielded
nothing (the others were still ingested); 5 ``verify`` found damage in the target;
6 no space left / I/O error while writing (the target keeps its last committed state);
130 interrupted (Ctrl-C).
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_PARTIAL = 4
EXIT_DAMAGED = 5
EXIT_NO_SPACE = 6
EXIT_INTERRUPTED = 130


class TickscopeError(Exception):
    """A problem the user can act on. ``str(err)`` is one line: what happened, what to do."""

    exit_code = EXIT_USAGE


class UsageError(TickscopeError):
    exit_code = EXIT_USAGE


class InputError(TickscopeError):
    """An input file is missing, unreadable or not what it claims to be."""

    exit_code = EXIT_USAGE


class TargetLockedError(TickscopeError):
    exit_code = EXIT_LOCKED


class NoSpaceError(TickscopeError):
    """The disk filled up (or another write I/O error) while writing; nothing half-written kept."""

    exit_code = EXIT_NO_SPACE


def is_no_space(err: BaseException) -> bool:
    """Whether ``err`` is a full disk (or quota): an OSError's errno, or a library's own
    error carrying the OS's words (DuckDB's IOException)."""
    import errno

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left on device" in text or "Disk quota exceeded" in text


def no_space_message(where, needed_bytes=None, kept: str = "the target keeps its last committed state") -> str:
    """'no space left on WHERE (needed about N MB, M MB free): ...' -- one line, exit 6."""
    import os
    import shutil

    detail = []
    if needed_bytes:
        detail.append(f"needed about {max(1, round(needed_bytes / 1e6)):,} MB")
    probe = str(where)
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        detail.append(f"{shutil.disk_usage(probe or '.').free / 1e6:,.0f} MB free")
    except OSError:
        pass
    extra = f" ({', '.join(detail)})" if detail else ""
    return f"no space left on {where}{extra}: free some space and run it again; {kept}"

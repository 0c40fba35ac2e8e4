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

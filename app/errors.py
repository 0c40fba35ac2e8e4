"""Errors a user can cause, each with the exit code the command line reports.

Exit codes are a contract (other tools script against them):
0 success, 2 unusable arguments or unreadable input, 3 target locked by another
process, 4 some files failed (the others were still ingested).
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_PARTIAL = 4


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

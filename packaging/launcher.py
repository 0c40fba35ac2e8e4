"""Entry point frozen by PyInstaller: the same `tickscope` command as `python -m app`.

One addition for the installed app: file managers start it with bare capture paths
(Finder's "Open With" through PyInstaller's argv emulation, Explorer's file association,
a desktop entry's %F), and those open in the desktop app as `tickscope gui FILE...`.
"""

import multiprocessing
import os
import sys


def _arguments(argv):
    from app.cli import COMMANDS

    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-") and os.path.exists(argv[0]):
        return ["gui", *argv]
    return argv


if __name__ == "__main__":
    # A frozen executable re-runs itself for any multiprocessing child; this lets the child
    # take its own path instead of starting another copy of the app.
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main(_arguments(sys.argv[1:])))

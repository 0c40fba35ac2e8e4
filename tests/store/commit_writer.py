"""A writer the commit-under-kill test SIGKILLs: ingests, then force-replaces, pausing at events.

Run as ``python -m tests.store.commit_writer CONFIG_JSON``. Every step that changes the
target's files (os.replace/rename/unlink/rmdir under the target), every progress update
and every capture write call is an event: the writer prints ``E <n> <phase> <what>``
(phase ``ingest`` or ``force``, the second run_ingest, which replaces captures) before the
step and waits for a line on stdin before doing it, so the test can read the target exactly
there, or kill the writer there. ``END`` when both ingests returned.
"""

from __future__ import annotations

import json
import os
import sys
import threading

_lock = threading.Lock()
_count = 0
_phase = "ingest"


def event(what: str) -> None:
    global _count
    with _lock:
        _count += 1
        sys.stdout.write(f"E {_count} {_phase} {what}\n")
        sys.stdout.flush()
        if not sys.stdin.readline():
            os._exit(3)  # the test went away


def install_hooks(target: str) -> None:
    root = os.path.realpath(target)

    def inside(path) -> bool:
        return os.path.realpath(os.fspath(path)).startswith(root)

    for name in ("replace", "rename", "unlink", "rmdir"):
        real = getattr(os, name)

        def hooked(*args, _real=real, _name=name, **kw):
            if inside(args[0]):
                event(f"{_name} {os.path.basename(os.fspath(args[0]))}")
            return _real(*args, **kw)

        setattr(os, name, hooked)

    from app.store import duck

    for method in ("add_ticks", "commit"):
        real = getattr(duck._DuckCaptureWrite, method)

        def hooked_method(self, *args, _real=real, _name=method):
            event(f"duckdb {_name}")
            return _real(self, *args)

        setattr(duck._DuckCaptureWrite, method, hooked_method)


def main() -> None:
    config = json.loads(sys.argv[1])
    install_hooks(config["target"])
    from app.pipeline.ingest import run_ingest

    def progress(update) -> None:
        event(f"progress {os.path.basename(update.path)} {update.stage}")

    global _phase
    for paths, force in ((config["ingest"], False), (config["force"], True)):
        _phase = "force" if force else "ingest"
        report = run_ingest(paths, config["target"], workers=1, force=force, progress=progress)
        failed = [f.error for f in report.files if f.status not in ("done", "skipped")]
        if failed:
            sys.stderr.write(f"failed: {failed}\n")
            sys.exit(4)
    sys.stdout.write("END\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

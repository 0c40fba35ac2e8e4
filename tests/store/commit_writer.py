"""A writer the commit-under-kill test SIGKILLs: ingests, then force-replaces, pausing at events.

The test starts ``run`` in a process of its own, forked by a multiprocessing forkserver that
imported this module, the pipeline and both stores once (``PRELOAD``): each writer run costs
a fork, not an interpreter start and the pyarrow/DuckDB imports. Every step that changes the
target's files (os.replace/rename/unlink/rmdir under the target), every progress update and
every capture write call is an event: the writer sends ``E <n> <phase> <what>`` (phase
``ingest`` or ``force``, the second run_ingest, which replaces captures) on its end of a
Pipe before the step and waits for a message back before doing it, so the test can read
the target exactly there, or kill the writer there. ``END`` when both ingests returned.
"""

from __future__ import annotations

# Imported here, so once in the forkserver (see PRELOAD), not in every writer: the pipeline,
# both stores and what their first ingest imports lazily.
import fcntl  # noqa: F401
import os
import sys
import threading
import zoneinfo  # noqa: F401

import numpy.ma  # noqa: F401
import pyarrow.csv  # noqa: F401

import app.core.decode  # noqa: F401
import app.core.enrich  # noqa: F401
import app.core.instruments  # noqa: F401
import app.core.tick_sources  # noqa: F401
import app.core.unknown  # noqa: F401
import app.pipeline.ingest  # noqa: F401
import app.store.duck  # noqa: F401
import app.store.masters  # noqa: F401
import app.store.parquet  # noqa: F401

# What the forkserver imports once, before it forks any writer.
PRELOAD = ["tests.store.commit_writer"]

_lock = threading.Lock()
_count = 0
_phase = "ingest"
_conn = None  # the writer's end of the Pipe to the test


def event(what: str) -> None:
    global _count
    with _lock:
        _count += 1
        _conn.send(f"E {_count} {_phase} {what}")
        try:
            _conn.recv()
        except EOFError:
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


def _no_fsync(fd: int) -> None:
    os.fstat(fd)  # a closed or bad descriptor still fails, as os.fsync would


def run(config: dict, conn, stderr_path: str) -> None:
    """The writer process: ``config`` is {target, ingest, force, env}; events go over ``conn``;
    its stderr (a failure's traceback) goes to ``stderr_path``."""
    global _conn, _phase
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(err, 2)
    os.close(err)
    os.environ.update(config["env"])
    _conn = conn
    # As in the test processes (tests/conftest.py, _no_disk_wait_in_fsync): fsync guards
    # against losing the page cache (power cut, OS crash); a SIGKILLed process loses none of
    # what it wrote, so here it changes nothing the test can see and only waits on the disk
    # (a third of this test's wall time on a busy machine). The writer still calls it at
    # every point the product does.
    os.fsync = _no_fsync
    install_hooks(config["target"])
    from app.pipeline.ingest import run_ingest

    def progress(update) -> None:
        event(f"progress {os.path.basename(update.path)} {update.stage}")

    for paths, force in ((config["ingest"], False), (config["force"], True)):
        _phase = "force" if force else "ingest"
        report = run_ingest(paths, config["target"], workers=1, force=force, progress=progress)
        failed = [f.error for f in report.files if f.status not in ("done", "skipped")]
        if failed:
            sys.stderr.write(f"failed: {failed}\n")
            sys.stderr.flush()
            os._exit(4)
    conn.send("END")

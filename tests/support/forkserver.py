"""The test process's one multiprocessing forkserver, shared by its users.

multiprocessing starts one forkserver per process, on first use, importing the modules of
its preload list once; each process it forks then starts with them imported. Two test files
fork through it (tests/store/test_commit_under_kill.py's writers, tests/pipeline/
test_dask_engine.py's cluster workers) and may run in the same process, in either order:
whichever starts it, it preloads what both need (a module it lacks is imported by every
child again, ~1 s a Dask worker).
"""

from __future__ import annotations

import importlib.util
import multiprocessing

# What the commit-under-kill writers import (the pipeline and both stores), and Dask's worker.
PRELOAD = ["tests.store.commit_writer", "distributed"]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None


def context():
    """The forkserver context, its preload list set to ``PRELOAD`` and, with Dask installed,
    the packages distributed.utils.get_mp_context preloads for its workers (the modules
    installed). Call it after anything else that sets the list (get_mp_context does, once)."""
    preload = list(PRELOAD)
    if _installed("distributed"):
        from distributed.versions import optional_packages, required_packages

        preload += [name for name in (*required_packages, *optional_packages) if isinstance(name, str)]
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(dict.fromkeys(m for m in preload if _installed(m))))
    return ctx

"""Shared test fixtures: the real Kite packets in ../shared (read in place, never copied)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KITE_MOCKS = REPO.parent / "shared" / "fixtures" / "kite-mocks"


@pytest.fixture(scope="session")
def kite_mocks() -> Path:
    """The folder of real Kite fixtures; tests using it skip when it is absent."""
    if not (KITE_MOCKS / "expected.json").is_file():
        pytest.skip(f"real Kite fixtures not found at {KITE_MOCKS} (../shared is not beside the repo)")
    return KITE_MOCKS


@pytest.fixture(scope="session")
def kite_expected(kite_mocks: Path) -> dict:
    return json.loads((kite_mocks / "expected.json").read_text())["files"]


@pytest.fixture(scope="session")
def query_target_template(tmp_path_factory):
    """``query_target_template(kind)``: the query tests' small target of each kind, built once
    a session (per xdist worker); tests take a copy of it (tests/store/query_data.copy_target)."""
    from tests.store import query_data

    built = {}

    def template(kind: str):
        if kind not in built:
            folder = tmp_path_factory.mktemp(f"query-target-{kind}")
            built[kind] = query_data.build_target(folder / query_data.target_name(kind))
        return built[kind]

    return template


def pytest_configure(config):
    """Qt's own settings (QFileDialog's history of visited folders, in QtProject.conf) go to a
    folder of this test process, not the user's ~/.config: set before any Qt object reads it,
    and inherited by the subprocesses tests start."""
    if "TICKSCOPE_TEST_CONFIG_HOME" not in os.environ:
        folder = tempfile.mkdtemp(prefix="tickscope-test-config-")
        os.environ["XDG_CONFIG_HOME"] = os.environ["TICKSCOPE_TEST_CONFIG_HOME"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def _fsync_without_disk_wait(fd: int) -> None:
    os.fstat(fd)  # a closed or bad descriptor still fails, as os.fsync would


@pytest.fixture(autouse=True, scope="session")
def _no_disk_wait_in_fsync():
    """os.fsync in the test processes returns without waiting for the disk. fsync only
    matters when the page cache is lost (power cut, OS crash), which no test can cause or
    observe: a reader, a SIGKILLed writer and the next open all see what was written either
    way. The product still calls it at every point it does; the tests only stop paying
    ~3-6 ms of disk wait for each of ~2,800 calls a run (DuckDB's own syncs and the CLI
    subprocesses' still go to the disk)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", _fsync_without_disk_wait)
        yield


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """Logs and app data of every test go to a temporary folder, never the user's."""
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "tickscope-data"))



# `make test` runs the suite with pytest-xdist (-n auto --dist loadgroup). Each of these files
# shares a fixture too costly to build once per worker (the frozen bundle, built under a lock
# the other workers would wait on; a Dask cluster; a 2M-packet capture): all its tests run on
# one worker. Every other test goes on its own to whichever worker is free.
ONE_WORKER_FILES = frozenset({
    "tests/test_packaging.py",
    "tests/pipeline/test_dask_engine.py",
    "tests/ui/test_inspector.py",
})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup with the groups above. (pytest-xdist 3.8's own loadgroup tags a
    grouped test by renaming its node id through an attribute pytest 9 no longer reads,
    so with pytest 9 it groups nothing.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER_FILES else nodeid

    return FileGroups(config, log)


def pytest_collection_modifyitems(config, items):
    """Tests needing the frozen bundle (the `packages` fixture of tests/test_packaging.py)
    are marked `bundle`: `make test` leaves them to `make package-check` (.ci/run runs
    both). Under pytest-xdist, tests marked slow are handed out first (after the file
    groups, which go first as the largest units), so no worker starts a long test at the end."""
    for item in items:
        if "packages" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.bundle)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)

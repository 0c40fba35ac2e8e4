"""Shared test fixtures: the real Kite packets in ../shared (read in place, never copied)."""

from __future__ import annotations

import json
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


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """Logs and app data of every test go to a temporary folder, never the user's."""
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(tmp_path_factory.getbasetemp() / "tickscope-data"))


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`), tests using a module- or session-scoped fixture of
    their own module (a generated capture, a Dask cluster, the frozen bundle) run on one
    worker, so that fixture is built once rather than once per worker (--dist loadgroup
    reads this mark); every other test goes to whichever worker is free."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        module = getattr(item, "module", None)
        if info is None or module is None:
            continue
        for name in item.fixturenames:
            defs = info.name2fixturedefs.get(name)
            if not defs:
                continue
            fixture = defs[-1]
            if fixture.scope in ("module", "session") and getattr(fixture.func, "__module__", None) == module.__name__:
                item.add_marker(pytest.mark.xdist_group(module.__name__))
                break

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

"""Re-ingest from the Data view: the capture is ingested again (forced, not skipped) from
where it was stored from, and a capture whose file has moved says so instead of failing."""

from __future__ import annotations

import shutil

from app.store import open_target
from tests.ui.conftest import wait_idle
from tests.ui.test_main_window import _ingest


def _ingested_at(target) -> dict:
    with open_target(target, read_only=True) as t:
        return {r["path"]: r["ingested_at"] for r in t.captures().to_pylist()}


def test_reingest_of_a_stored_capture_forces_it_again(qtbot, window, sample, tmp_path):
    capture = tmp_path / sample["capture"].name
    shutil.copy(sample["capture"], capture)
    target = tmp_path / "t.duckdb"
    _ingest(qtbot, window, [capture], target, masters=sample["masters"])
    before = _ingested_at(target)
    assert list(before) == [str(capture)]
    assert window.session.row(str(capture)).status == "done"

    with qtbot.waitSignal(window.jobs.job_finished, timeout=120_000):
        job = window.reingest_paths([str(capture)])
        assert job is not None
    wait_idle(qtbot, window)
    assert window.session.row(str(capture)).status == "done"  # forced: ingested, not skipped
    after = _ingested_at(target)
    assert list(after) == [str(capture)]
    assert after[str(capture)] > before[str(capture)]


def test_reingest_of_a_moved_capture_says_where_it_was(qtbot, window, sample, tmp_path):
    capture = tmp_path / sample["capture"].name
    shutil.copy(sample["capture"], capture)
    target = tmp_path / "t.duckdb"
    _ingest(qtbot, window, [capture], target, masters=sample["masters"])
    capture.unlink()
    assert window.reingest_paths([str(capture)]) is None
    assert window.statusBar().currentMessage() == f"{capture.name} is not at {capture} any more"
    assert not window.jobs.is_busy()

"""Re-ingest from the Data view: the capture is ingested again (forced, not skipped) from
where it was stored from, and a capture whose file has moved says so instead of failing."""

from __future__ import annotations

from app.store import open_target
from tests.support import encode
from tests.ui.conftest import wait_idle
from tests.ui.test_main_window import _ingest


def _ingested_at(target) -> dict:
    with open_target(target, read_only=True) as t:
        return {r["path"]: r["ingested_at"] for r in t.captures().to_pylist()}


def _capture(tmp_path):
    """A small capture of its own (what is re-ingested is where it was stored from, not its size)."""
    capture = tmp_path / "binary_data_20251013_091500.dat"
    capture.write_bytes(encode.frame([encode.encode_message([
        encode.encode_packet(8, {"instrument_token": 256265, "last_price": 2_512_345}),
        encode.encode_packet(44, {"instrument_token": 408065, "last_price": 150_010})])] * 3, "raw"))
    return capture


def test_reingest_of_a_stored_capture_forces_it_again(qtbot, window, tmp_path):
    capture = _capture(tmp_path)
    target = tmp_path / "t.duckdb"
    _ingest(qtbot, window, [capture], target)
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


def test_reingest_of_a_moved_capture_says_where_it_was(qtbot, window, tmp_path):
    capture = _capture(tmp_path)
    target = tmp_path / "t.duckdb"
    _ingest(qtbot, window, [capture], target)
    capture.unlink()
    assert window.reingest_paths([str(capture)]) is None
    assert window.statusBar().currentMessage() == f"{capture.name} is not at {capture} any more"
    assert not window.jobs.is_busy()

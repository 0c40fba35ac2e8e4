"""Counts identical in every view after ingest, resolve, cancel and remove: the model without
Qt, on a real target (the bundled sample). The views are what the window shows of the
model: the queue's rows, the status bar's line, the target card's summary and the
unknown-token table, each read after the change as the window reads them."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pyarrow.compute as pc
import pytest

from app.core.capture import CANCELLED, DONE
from app.model import target_queries as tq
from app.model.intake import gather
from app.model.session import NO_LONGER_STORED, Session
from app.model.status import status_line
from app.model.targets import read_state
from app.pipeline import run_ingest
from app.store import remove_captures
from tests.conftest import REPO

SAMPLES = REPO / "resources" / "samples"
CAPTURE = SAMPLES / "binary_data_20251013_091500.dat"
MASTERS = [SAMPLES / "instruments_20251013.csv", SAMPLES / "instruments_20251010.csv"]


@pytest.fixture
def sample():
    if not CAPTURE.is_file() or not all(m.is_file() for m in MASTERS):
        pytest.skip("the bundled sample (resources/samples) is not there")


def _ingest(session: Session, job_id: int, paths, target, cancel=None) -> None:
    """A job as the window runs one: progress and report go to the session."""
    added = session.add(gather([str(p) for p in paths]).accepted)
    session.assign_job(added, job_id)
    updates = []
    report = run_ingest(added, target, workers=2, progress=updates.append, cancel=cancel)
    session.apply_progress(updates)
    session.finish_job(job_id, report.files)


def _views(session: Session, target) -> dict:
    """Every view's numbers, read from the target after the change (as the window does)."""
    state = read_state(str(target))
    session.apply_target_counts(state.captures)
    stored = [r for r in session.rows if r.stored]
    unknown_ticks = int(pc.sum(state.unknown["ticks"]).as_py() or 0) if state.unknown is not None else 0
    queue = (sum(r.bad_packets for r in stored), sum(r.unresolved_ticks for r in stored))
    line = status_line(session, state)
    return {"queue": queue, "target": (state.bad_packets, state.unresolved_ticks), "unknown pane": unknown_ticks,
            "status bar": line.text, "card": state.summary(), "state": state}


def _agree(views: dict) -> int:
    bad, unresolved = views["queue"]
    assert views["target"] == (bad, unresolved)
    assert views["unknown pane"] == unresolved
    assert views["status bar"].endswith(f"{bad:,} bad packets · {unresolved:,} unresolved ticks")
    if views["state"].captures:
        assert views["card"].endswith(f"{unresolved:,} unresolved ticks")
    return unresolved


def test_counts_agree_in_every_view_after_ingest_resolve_cancel_and_remove(tmp_path, sample):
    target = tmp_path / "t.duckdb"
    capture = tmp_path / CAPTURE.name
    shutil.copyfile(CAPTURE, capture)
    session = Session(str(target))

    _ingest(session, 1, [capture], target)  # no masters: every tick unresolved
    row = session.row(capture)
    assert row.status == DONE and row.packets > 0
    before = _agree(_views(session, target))
    assert before == row.unresolved_ticks > 0

    resolved, _ = tq.resolve_more(str(target), [str(m) for m in MASTERS])
    after = _agree(_views(session, target))
    assert 0 < after < before and resolved == before - after
    assert row.unresolved_ticks == after  # the finished row took the target's new count

    other = tmp_path / "other.dat"  # a second capture, cancelled before anything is stored
    other.write_bytes(capture.read_bytes()[: capture.stat().st_size // 2])
    cancel = threading.Event()
    cancel.set()
    _ingest(session, 2, [other], target, cancel=cancel)
    assert session.row(other).status == CANCELLED and session.row(other).packets == 0
    assert _agree(_views(session, target)) == after
    assert session.counts()[CANCELLED] == 1 and session.counts()[DONE] == 1

    remove_captures(target, [row.file_id])
    views = _views(session, target)
    assert _agree(views) == 0 and views["card"] == "empty"
    assert (row.error, row.packets, row.unresolved_ticks) == (NO_LONGER_STORED, 0, 0)
    assert Path(row.path) == capture

"""The application model without Qt: the queue's rows, one status vocabulary, cancel that
ends cancelled, counts from the target after resolve/remove, faults, the ETA, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from app.core.capture import HASHING, CaptureRecord
from app.errors import TargetLockedError
from app.model import faults, queue_store
from app.model.intake import QueueEntry
from app.model.session import (
    CANCELLED,
    CANCELLING,
    DECODING,
    DONE,
    FAILED,
    QUEUED,
    SKIPPED,
    STATUSES,
    QueueRow,
    Session,
)
from tests.conftest import REPO

FID = {n: f"{n:x}" * 64 for n in range(1, 6)}


class Recorder:
    def __init__(self):
        self.events = []

    def rows_inserted(self, first, last):
        self.events.append(("inserted", first, last))

    def rows_changed(self, first, last):
        self.events.append(("changed", first, last))

    def rows_reset(self):
        self.events.append(("reset",))


def _session(n=3, size=1000):
    session = Session("/t/target.duckdb")
    session.add([QueueEntry(f"/data/f{i}.dat", size, "raw") for i in range(n)])
    return session


def _progress(path, stage, done, **kw):
    return CaptureRecord(path, kw.pop("file_id", None), 1000, status=DECODING if stage == HASHING else stage,
                         hashing=stage == HASHING, bytes_done=done, **kw)


def _result(path, file_id, status, **kw):
    """A file's final record, as the job reports it."""
    return CaptureRecord(path, file_id, status=status, **kw)


def _stored(packets, bad_packets, unresolved_ticks):
    """A committed capture as the target's captures table gives it back."""
    return CaptureRecord("", status=DONE, packets=packets, bad_packets=bad_packets, unresolved_ticks=unresolved_ticks)


def test_the_status_vocabulary_is_the_issues():
    assert STATUSES == ("queued", "decoding", "writing", "done", "skipped", "failed", "cancelled")


def test_add_keeps_one_row_per_path_requeues_finished_and_notifies():
    session = _session()
    seen = Recorder()
    session.subscribe(seen)
    assert session.add([QueueEntry("/data/f0.dat", 1000, "raw"), QueueEntry("/data/new.dat", 5, "raw")]) \
        == ["/data/new.dat"]
    assert seen.events == [("inserted", 3, 3)]
    session.apply_result(_result("/data/f1.dat", FID[1], "failed", error="no Kite packets in it"))
    assert session.row("/data/f1.dat").status == FAILED
    assert session.add([QueueEntry("/data/f1.dat", 1000, "raw")]) == ["/data/f1.dat"]
    row = session.row("/data/f1.dat")
    assert (row.status, row.error, row.failure, row.fault) == (QUEUED, None, None, None)


def test_hashing_counts_as_decoding_and_progress_is_decoding_bytes():
    session = _session()
    session.assign_job(["/data/f0.dat"], 1)
    session.apply_progress([_progress("/data/f0.dat", "hashing", 900)])
    row = session.row("/data/f0.dat")
    assert row.status == DECODING and row.bytes_done == 0
    session.apply_progress([_progress("/data/f0.dat", "decoding", 400, packets=10)])
    assert row.fraction == pytest.approx(0.4) and row.packets == 10


def test_cancelled_means_cancelled_whatever_the_job_reports():
    session = _session()
    session.assign_job([r.path for r in session.rows], 7)
    asked = []
    assert session.cancel(["/data/f0.dat", "/data/f1.dat"], lambda p: asked.append(p) or True) == 2
    assert [session.row(p).error for p in asked] == [CANCELLING, CANCELLING]
    # f0: the job reports it cancelled without an error text; f1: not reported at all.
    session.finish_job(7, [_result("/data/f0.dat", None, "cancelled"),
                           _result("/data/f2.dat", FID[2], DONE, packets=5)])
    for path in ("/data/f0.dat", "/data/f1.dat"):
        row = session.row(path)
        assert (row.status, row.error, row.job_id) == (CANCELLED, "cancelled", None)
    assert session.row("/data/f2.dat").status == DONE
    assert all(r.error != CANCELLING for r in session.rows)


def test_a_cancel_that_came_too_late_ends_done_without_a_stale_note():
    session = _session(1)
    session.assign_job(["/data/f0.dat"], 1)
    session.cancel(["/data/f0.dat"], lambda p: True)
    session.apply_progress([_progress("/data/f0.dat", "done", 1000, file_id=FID[1])])
    row = session.row("/data/f0.dat")
    assert (row.status, row.error) == (DONE, None)


def test_cancel_of_a_queued_row_is_immediate_and_retry_requeues():
    session = _session(2)
    assert session.cancel(["/data/f0.dat"], lambda p: pytest.fail("not running")) == 1
    assert session.row("/data/f0.dat").status == CANCELLED
    assert session.retry(["/data/f0.dat", "/data/f1.dat"]) == ["/data/f0.dat"]  # f1 was never finished
    assert session.row("/data/f0.dat").status == QUEUED


def test_counts_come_from_the_target_after_resolve_and_remove():
    session = _session(3)
    for i in range(3):
        session.apply_result(_result(f"/data/f{i}.dat", FID[i + 1], DONE, packets=100,
                                        unresolved_ticks=40))
    seen = Recorder()
    session.subscribe(seen)
    # After a resolve the target holds fewer unresolved ticks; f2 was removed from it.
    session.apply_target_counts({FID[1]: _stored(100, 0, 3), FID[2]: _stored(100, 2, 0)})
    rows = session.rows
    assert [r.unresolved_ticks for r in rows] == [3, 0, 0]
    assert rows[1].bad_packets == 2
    assert rows[2].error == "no longer in the target" and rows[2].packets == 0
    assert seen.events == [("changed", 0, 2)]
    assert session.counts()[DONE] == 3
    # Read again unchanged: nothing to announce.
    session.apply_target_counts({FID[1]: _stored(100, 0, 3), FID[2]: _stored(100, 2, 0)})
    assert seen.events == [("changed", 0, 2)]


def test_counts_by_status_after_every_change():
    session = _session(4)
    session.assign_job(["/data/f0.dat", "/data/f1.dat"], 1)
    session.apply_progress([_progress("/data/f0.dat", "decoding", 10)])
    session.cancel(["/data/f3.dat"], lambda p: False)
    session.fail_job(1, faults.fault_from_exception(TargetLockedError("target is locked by process 42")))
    counts = session.counts()
    assert (counts[FAILED], counts[CANCELLED], counts[QUEUED]) == (2, 1, 1)
    assert session.remove(["/data/f3.dat"]) == 1
    assert sum(session.counts().values()) == len(session) == 3


def test_faults_carry_a_code_the_file_and_what_to_do():
    locked = faults.fault_from_exception(TargetLockedError("target is locked by process 42"))
    assert locked.code == faults.TARGET_LOCKED and "Close it" in locked.advice and not locked.traceback
    bug = faults.fault_from_exception(ZeroDivisionError("division by zero"), "Traceback ...\nZeroDivisionError")
    assert bug.internal and bug.log_file.endswith("tickscope.log") and "Traceback" in bug.traceback
    details = bug.details()
    assert "Log file:" in details and "Traceback" in details and "bug" in details
    session = _session(1)
    session.apply_result(_result("/data/f0.dat", FID[1], "failed", error="no Kite packets found"))
    fault = session.row("/data/f0.dat").failure
    assert (fault.code, fault.path, fault.message) == (faults.INPUT, "/data/f0.dat", "no Kite packets found")
    assert "File: /data/f0.dat" in fault.details() and "What to do:" in fault.details()


def test_eta_is_bytes_remaining_over_the_recent_rate_of_all_running_files():
    session = _session(3, size=1000)
    clock = iter([0.0, 1.0, 2.0]).__next__
    session._clock = clock
    session.assign_job([r.path for r in session.rows], 1)  # f2 waits its turn in the job
    session.apply_progress([_progress("/data/f0.dat", "decoding", 0), _progress("/data/f1.dat", "decoding", 0)])
    session.apply_progress([_progress("/data/f0.dat", "decoding", 100), _progress("/data/f1.dat", "decoding", 100)])
    session.apply_progress([_progress("/data/f0.dat", "decoding", 200), _progress("/data/f1.dat", "decoding", 200)])
    # 400 bytes in 2 s over both files = 200 B/s; 800 + 800 + 1000 bytes left.
    assert session.rate.rate() == pytest.approx(200.0)
    assert session.eta_seconds() == pytest.approx(2600 / 200.0)


def test_the_queue_is_saved_with_its_target_and_restored(tmp_path):
    session = _session(3)
    session.assign_job(["/data/f1.dat"], 1)
    session.apply_progress([_progress("/data/f1.dat", "decoding", 500)])
    session.apply_result(_result("/data/f2.dat", FID[3], "failed", error="truncated"))
    queue_store.save("/t/target.duckdb", session.rows, data_dir=tmp_path)
    assert queue_store.load("/t/other.duckdb", data_dir=tmp_path) == []
    rows = queue_store.load("/t/target.duckdb", data_dir=tmp_path)
    assert [r.status for r in rows] == [QUEUED, CANCELLED, FAILED]
    assert rows[1].error == "interrupted when the app quit" and rows[1].job_id is None
    assert rows[2].failure.message == "truncated" and rows[2].failure.path == "/data/f2.dat"
    restored = Session("/t/target.duckdb", rows)
    assert restored.queued_unassigned() == ["/data/f0.dat"]


def test_a_damaged_saved_queue_starts_empty(tmp_path):
    path = queue_store.queue_file("/t/x.duckdb", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert queue_store.load("/t/x.duckdb", data_dir=tmp_path) == []


def test_skipped_rows_say_why():
    session = _session(1)
    session.apply_result(_result("/data/f0.dat", FID[1], "skipped"))
    row = session.row("/data/f0.dat")
    assert (row.status, row.error, row.fraction) == (SKIPPED, "already in the target", 1.0)


def test_a_row_round_trips_through_json():
    row = QueueRow("/a.dat", FID[1], 10, "raw", status=FAILED, error="x", fault=faults.INPUT, packets=3,
                   failure=faults.make(faults.INPUT, "x", "/a.dat"))
    again = QueueRow.from_json(json.loads(json.dumps(row.to_json())))
    assert again.to_json() == row.to_json() and again.failure == row.failure


def test_a_queue_saved_by_the_previous_version_still_loads():
    old = {"path": "/a.dat", "size": 10, "framing": "raw", "status": "failed", "file_id": None, "bytes_done": 0,
           "packets": 0, "bad_packets": 0, "unresolved_ticks": 0, "ticks": 0, "rate_pps": 0.0, "note": "x",
           "suspect": 0, "fault": faults.make(faults.INPUT, "x", "/a.dat").to_json()}
    row = QueueRow.from_json(old)
    assert (row.size_bytes, row.error, row.status, row.failure.code) == (10, "x", FAILED, faults.INPUT)


def test_the_model_imports_without_qt():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys

        class BlockQt:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"):
                    raise ImportError(f"Qt is blocked: {name}")
                return None

        sys.meta_path.insert(0, BlockQt())
        import app.model
        names = [i.name for i in pkgutil.walk_packages(app.model.__path__, "app.model.")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 5


def test_the_pipelines_fault_kind_becomes_the_rows_fault_code():
    session = _session(3)
    session.apply_result(_result("/data/f0.dat", FID[1], "failed", error="writing to the target failed: disk",
                                    fault="write"))
    session.apply_result(_result("/data/f1.dat", FID[2], "failed", error="KeyError: 'x'", fault="internal"))
    session.apply_result(_result("/data/f2.dat", FID[3], "failed", error="/data/f2.dat: not a capture"))
    codes = [r.failure.code for r in session.rows]
    assert codes == [faults.WRITE, faults.INTERNAL, faults.INPUT]
    assert session.row("/data/f1.dat").failure.log_file  # a bug points at the log
    assert session.row("/data/f2.dat").failure.message == "not a capture"  # the file has its own line


def test_the_status_line_counts_and_severity_come_from_session_and_target():
    from app.model.status import ERROR, IDLE, WARNING, status_line
    from app.model.targets import TargetState

    session = _session(2)
    assert status_line(session, None).level == IDLE
    assert status_line(session, None).text == "Nothing ingested yet"
    session.apply_result(_result("/data/f0.dat", FID[1], DONE, packets=10, unresolved_ticks=4))
    state = TargetState("/t", True, {FID[1]: _stored(10, 1, 4)}, packets=10, bad_packets=1,
                        unresolved_ticks=4)
    line = status_line(session, state)
    assert (line.level, line.text) == (WARNING, "1 bad packets · 4 unresolved ticks")
    assert line.counts.startswith("Running 0  ·  Queued 1  ·  Done 1  ·  Failed 0")
    session.apply_result(_result("/data/f1.dat", FID[2], "failed", error="x"))
    assert status_line(session, state).level == ERROR
    assert status_line(session, state).text.startswith("1 failed · ")


def test_exit_code_and_failure_lines_as_the_cli_reports_them(tmp_path):
    from app.errors import EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

    here = tmp_path / "here.dat"
    here.write_bytes(b"x")
    session = Session("/t", [])
    session.add([QueueEntry(str(here), 1, "raw"), QueueEntry(str(tmp_path / "gone.dat"), 1, "raw")])
    assert session.exit_code() == EXIT_OK
    assert session.startable() == [str(here)]  # the vanished one failed alone
    assert session.row(str(tmp_path / "gone.dat")).failure.code == faults.VANISHED
    assert session.exit_code() == EXIT_PARTIAL
    assert session.failure_lines("tickscope gui") == [
        f"tickscope gui: {tmp_path / 'gone.dat'}: the file no longer exists"]
    session.fail([str(here)], faults.fault_from_exception(TargetLockedError("locked by 42")))
    assert session.exit_code() == EXIT_LOCKED
    session.add([QueueEntry("/x.dat", 1, "raw")])
    session.fail(["/x.dat"], faults.make(faults.NO_TARGET, "Choose a target first"))
    assert session.exit_code() == EXIT_USAGE

"""The GUI-thread JobManager: batched progress, cancel, ordering, failures, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from app.errors import TargetLockedError
from app.pipeline.ingest import IngestReport
from app.ui.job_manager import JobManager
from tests.ui.fakes import FakeJob


def _factory(**options):
    def make(*args, **kwargs):
        kwargs.update(options)
        return FakeJob(*args, **kwargs)
    return make


def test_progress_is_coalesced_in_the_gui_thread(qtbot, tmp_path):
    # The drain timer never fires during the job: only the final flush drains, so the GUI
    # gets the latest state of each file once, however many updates the job sent.
    manager = JobManager(job_factory=_factory(steps=1500, step_s=0), interval_ms=3_600_000)
    batches = []
    gui_thread = threading.current_thread()
    manager.progress.connect(lambda batch: batches.append((threading.current_thread(), list(batch))))
    paths = [str(tmp_path / "a.dat"), str(tmp_path / "b.dat")]
    with qtbot.waitSignal(manager.job_finished, timeout=60_000) as finished:
        job_id = manager.start_ingest(paths, str(tmp_path / "t.duckdb"))
    job = FakeJob.instances[-1]
    assert finished.args[0] == job_id
    assert [r.status for r in finished.args[1].files] == ["done", "done"]
    assert job.ran_in != gui_thread.name
    assert job.sent > 3000
    assert len(batches) == 1 and batches[0][0] is gui_thread
    # The final state of every file arrives before job_finished.
    assert sorted((fp.path, fp.stage) for fp in batches[0][1]) == [(p, "done") for p in paths]
    manager.shutdown()


def test_each_drain_holds_one_update_per_file(qtbot, tmp_path):
    # ~0.2-0.3 s a file: several 50 ms drains, each with tens of updates a file to coalesce.
    manager = JobManager(job_factory=_factory(steps=400, step_s=0.0004))
    batches = []
    gui_thread = threading.current_thread()
    manager.progress.connect(lambda batch: batches.append((threading.current_thread(), list(batch))))
    paths = [str(tmp_path / "a.dat"), str(tmp_path / "b.dat")]
    with qtbot.waitSignal(manager.job_finished, timeout=60_000):
        manager.start_ingest(paths, str(tmp_path / "t.duckdb"))
    assert batches and all(thread is gui_thread for thread, _ in batches)
    assert all(len({fp.path for fp in batch}) == len(batch) for _, batch in batches)
    last = {fp.path: fp.stage for _, batch in batches for fp in batch}
    assert last == {p: "done" for p in paths}
    manager.shutdown()


def test_cancel_one_file_leaves_the_others_running(qtbot, tmp_path):
    # Files run one after the other; a is held mid-file while b is cancelled.
    manager = JobManager(job_factory=_factory(steps=20, step_s=0.001, hold_at=5))
    paths = [str(tmp_path / "a.dat"), str(tmp_path / "b.dat")]
    with qtbot.waitSignal(manager.job_finished, timeout=30_000) as finished:
        manager.start_ingest(paths, "t.duckdb")
        job = FakeJob.instances[-1]
        qtbot.waitUntil(job.held.is_set)
        assert manager.cancel_file(paths[1])
        job.release.set()
    assert [r.status for r in finished.args[1].files] == ["done", "cancelled"]
    assert not manager.cancel_file(paths[0])  # no job holds it any more
    manager.shutdown()


def test_job_failure_is_relayed_with_its_message(qtbot):
    manager = JobManager(job_factory=_factory(raise_on_run=TargetLockedError("target t is locked by PID 9")))
    with qtbot.waitSignal(manager.job_failed, timeout=10_000) as failed:
        manager.start_ingest(["/x/a.dat"], "t.duckdb")
    assert isinstance(failed.args[1], TargetLockedError)
    assert "locked" in str(failed.args[1])
    assert not manager.is_busy()


def test_exclusive_work_runs_alone_and_in_order(qtbot):
    manager = JobManager(job_factory=_factory(steps=100, step_s=0.002))
    order: list[str] = []
    active = []
    overlap = []

    def target_task(name):
        def run():
            active.append(name)
            if len(active) > 1:
                overlap.append(tuple(active))
            time.sleep(0.02)
            active.remove(name)
            return name
        return run

    manager.run_task(target_task("read-1"), order.append, exclusive=True)
    manager.start_ingest(["/x/a.dat"], "t.duckdb")
    manager.job_finished.connect(lambda *_: order.append("ingest"))
    manager.run_task(target_task("read-2"), order.append, exclusive=True)
    free = threading.Event()
    manager.run_task(lambda: free.set() or "free", order.append)  # not exclusive: runs at once
    qtbot.waitUntil(lambda: not manager.is_busy(), timeout=20_000)
    assert free.is_set()
    assert [o for o in order if o != "free"] == ["read-1", "ingest", "read-2"]
    assert not overlap


def test_task_errors_reach_their_callback_in_the_gui_thread(qtbot):
    manager = JobManager()
    errors = []

    def boom():
        raise ValueError("no such column")

    with qtbot.waitSignal(manager.task_finished, timeout=5000):
        manager.run_task(boom, lambda r: errors.append(("ok", r)),
                         lambda exc, tb: errors.append((threading.current_thread(), str(exc), "Traceback" in tb)))
    assert errors == [(threading.main_thread(), "no such column", True)]


def test_throughput_samples_while_ingesting(qtbot, monkeypatch):
    from app.ui import job_manager

    monkeypatch.setattr(job_manager, "THROUGHPUT_INTERVAL_S", 0.1)  # (0.5 s in the app)
    # Held mid-file until a sample came while it ran; the 0.2 s of steps after it give the last one.
    manager = JobManager(job_factory=_factory(steps=100, step_s=0.004, hold_at=50))
    samples = []
    manager.throughput.connect(lambda t, pps, mbps: samples.append((t, pps, mbps)))
    with qtbot.waitSignal(manager.job_finished, timeout=30_000):
        manager.start_ingest(["/x/a.dat"], "t.duckdb")
        job = FakeJob.instances[-1]
        qtbot.waitUntil(lambda: job.held.is_set() and bool(samples), timeout=30_000)
        job.release.set()
    assert len(samples) >= 2
    assert any(pps > 0 for _, pps, _ in samples)
    assert [t for t, _, _ in samples] == sorted(t for t, _, _ in samples)


def test_shutdown_cancels_and_waits(qtbot):
    manager = JobManager(job_factory=_factory(steps=100_000, step_s=0.001))
    manager.start_ingest(["/x/a.dat"], "t.duckdb")
    job = FakeJob.instances[-1]
    qtbot.waitUntil(lambda: job.sent > 3)
    assert manager.shutdown(timeout_ms=60_000)
    assert job._cancel_all.is_set() and job.sent < 100_000  # cancelled, not run to its end
    from PySide6.QtCore import QThreadPool

    assert QThreadPool.globalInstance().activeThreadCount() == 0


def test_work_finishing_after_its_manager_was_deleted_reports_to_nobody(qtbot):
    # The manager goes with its window (deleteLater) while an ingest and a task still run.
    # Their reports must reach no slot of the deleted manager: with connections that had no
    # receiver (lambdas) they called into it, and each report raised "Internal C++ object
    # (QTimer) already deleted" / "Signal source has been deleted" in the GUI thread.
    from PySide6.QtCore import QCoreApplication, QEvent, QThreadPool

    release = threading.Event()

    class BlockedJob:
        def __init__(self, paths, target, **_):
            self.target = target

        def run(self):
            release.wait(60)
            return IngestReport(self.target, [])

        def cancel(self):
            release.set()

    manager = JobManager(job_factory=BlockedJob)
    handled = []
    manager.start_ingest(["/x/a.dat"], "t.duckdb")
    manager.run_task(lambda: release.wait(60), handled.append, lambda exc, tb: handled.append(exc))
    destroyed = []
    manager.destroyed.connect(lambda *_: destroyed.append(True))
    manager.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert destroyed == [True]
    release.set()
    assert QThreadPool.globalInstance().waitForDone(60_000)
    QCoreApplication.sendPostedEvents()  # the reports queued by the pool threads, to whoever listens
    assert handled == []  # (and pytest-qt fails the test on any exception raised in a slot)


@pytest.fixture(autouse=True)
def _reset_fakes():
    FakeJob.instances.clear()
    yield

"""The queue's table model: rows keyed by path, batched progress, final results."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.ui import queue_model as qm
from tests.ui.fakes import FileProgress, FileResult


def _model(qapp, n=3):
    model = qm.QueueModel()
    model.add([(f"/data/f{i}.dat", 1000, "raw") for i in range(n)])
    return model


def test_add_keeps_one_row_per_path_and_requeues_finished(qapp):
    model = _model(qapp)
    assert model.rowCount() == 3
    assert model.add([("/data/f0.dat", 1000, "raw"), ("/data/new.dat", 5, "raw")]) == ["/data/new.dat"]
    model.apply_result(FileResult("/data/f1.dat", "x" * 64, "failed", error="boom"))
    assert model.row("/data/f1.dat").status == qm.FAILED
    assert model.add([("/data/f1.dat", 1000, "raw")]) == ["/data/f1.dat"]
    row = model.row("/data/f1.dat")
    assert (row.status, row.note) == (qm.QUEUED, "")
    assert model.rowCount() == 4


def test_progress_batch_updates_rows_with_one_data_changed(qapp):
    model = _model(qapp)
    seen = []
    model.dataChanged.connect(lambda a, b, roles=None: seen.append((a.row(), b.row())))
    model.apply_progress([
        FileProgress("/data/f0.dat", "a" * 64, "decoding", 500, 1000, packets=70, bad_packets=2,
                     unresolved_ticks=3, rate_pps=1234.0),
        FileProgress("/data/f2.dat", "b" * 64, "writing", 900, 1000, packets=90),
    ])
    assert seen == [(0, 2)]
    row = model.row("/data/f0.dat")
    assert (row.status, row.packets, row.bad_packets, row.unresolved_ticks) == ("decoding", 70, 2, 3)
    assert model.data(model.index(0, qm.Column.PROGRESS), qm.ProgressRole) == 0.5
    assert model.data(model.index(0, qm.Column.RATE)) == "1.2k pkt/s"
    assert model.data(model.index(0, qm.Column.BAD), Qt.ItemDataRole.DisplayRole) == "2"
    assert model.counts()["decoding"] == 1 and model.counts()["writing"] == 1
    assert model.totals() == (2, 3)


def test_eta_comes_from_the_measured_byte_rate(qapp, monkeypatch):
    model = _model(qapp, 1)
    clock = iter([100.0, 101.0])
    monkeypatch.setattr(qm.time, "monotonic", lambda: next(clock))
    model.apply_progress([FileProgress("/data/f0.dat", None, "decoding", 100, 1000)])
    model.apply_progress([FileProgress("/data/f0.dat", None, "decoding", 300, 1000)])
    row = model.row("/data/f0.dat")
    assert row.byte_rate == 200.0
    assert row.eta_seconds == 3.5
    assert model.data(model.index(0, qm.Column.ETA)) == "4s"


def test_a_settled_row_ignores_late_progress_and_result_is_final(qapp):
    model = _model(qapp, 1)
    model.apply_result(FileResult("/data/f0.dat", "c" * 64, "ingested", packets=10, unresolved_ticks=1))
    model.apply_progress([FileProgress("/data/f0.dat", None, "decoding", 1, 1000)])
    row = model.row("/data/f0.dat")
    assert row.status == qm.DONE and row.fraction == 1.0 and row.packets == 10


def test_skipped_row_explains_itself(qapp):
    model = _model(qapp, 1)
    model.apply_result(FileResult("/data/f0.dat", "c" * 64, "skipped"))
    assert model.data(model.index(0, qm.Column.NOTE)) == "already in the target"


def test_remove_finished_and_retry(qapp):
    model = _model(qapp)
    model.apply_result(FileResult("/data/f0.dat", None, "ingested"))
    model.apply_result(FileResult("/data/f1.dat", None, "cancelled"))
    assert model.reset_rows(["/data/f1.dat", "/data/f2.dat"]) == ["/data/f1.dat"]
    assert model.remove_finished() == 1
    assert [r.name for r in model.rows] == ["f1.dat", "f2.dat"]
    assert model.row("/data/f2.dat") is model.row_at(1)

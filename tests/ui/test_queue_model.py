"""The queue's Qt model is wiring only: it relays the session's notices and formats cells
(the rules are tested without Qt in tests/model)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.capture import CaptureRecord
from app.model import faults
from app.model.intake import QueueEntry
from app.model.session import Session
from app.ui import queue_model as qm


def test_session_changes_reach_qt_as_model_signals(qapp, qtbot):
    session = Session()
    model = qm.QueueModel(session)
    with qtbot.waitSignal(model.rowsInserted):
        session.add([QueueEntry(f"/data/f{i}.dat", 1000, "raw") for i in range(3)])
    assert model.rowCount() == 3
    session.assign_job(["/data/f1.dat"], 1)
    with qtbot.waitSignal(model.dataChanged) as changed:
        session.apply_progress([CaptureRecord("/data/f1.dat", None, 1000, status="decoding", bytes_done=500,
                                              packets=7)])
    assert changed.args[0].row() == 1 == changed.args[1].row()
    assert model.index(1, qm.Column.STATUS).data() == "decoding"
    assert model.index(1, qm.Column.PROGRESS).data(qm.ProgressRole) == 0.5
    with qtbot.waitSignal(model.modelReset):
        session.apply_result(CaptureRecord("/data/f1.dat", "a" * 64, status="done", packets=9))
        session.remove_finished()
    assert model.rowCount() == 2


def test_a_failed_row_shows_its_fault_in_the_cells(qapp):
    session = Session()
    model = qm.QueueModel(session)
    session.add([QueueEntry("/data/bad.dat", 10, "raw")])
    session.fail(["/data/bad.dat"], faults.make(faults.INPUT, "no Kite packets found"))
    note = model.index(0, qm.Column.NOTE)
    assert note.data() == "no Kite packets found"
    assert "What to do:" in note.data(Qt.ItemDataRole.ToolTipRole)
    from app.ui import theme

    assert model.index(0, qm.Column.STATUS).data(Qt.ItemDataRole.ForegroundRole).name() == \
        theme.status_color(qm.FAILED)


def test_a_row_shows_its_suspect_ticks_next_to_its_bad_packets(qapp):
    """issue 14: suspect ticks are stored, never silently: the file's row says how many."""
    session = Session()
    model = qm.QueueModel(session)
    session.add([QueueEntry("/data/odd.dat", 10, "raw")])
    session.apply_result(CaptureRecord("/data/odd.dat", "b" * 64, status="done", packets=9, bad_packets=2, suspect=3))
    cell = model.index(0, qm.Column.BAD)
    assert cell.data() == "2 +3 suspect"
    assert cell.data(Qt.ItemDataRole.ForegroundRole) is not None


def test_the_size_cell_is_qts_data_size_in_the_users_locale(qapp):
    from PySide6.QtCore import QLocale

    session = Session()
    model = qm.QueueModel(session)
    session.add([QueueEntry("/data/a.dat", 4_596_413, "raw"), QueueEntry("/data/b.dat", 512, "raw")])
    previous = QLocale()
    try:
        QLocale.setDefault(QLocale("de_DE"))
        assert model.index(0, qm.Column.SIZE).data() == "4,6 MB"  # the locale's decimal comma
        QLocale.setDefault(QLocale.c())
        assert model.index(0, qm.Column.SIZE).data() == "4.6 MB"
        assert model.index(1, qm.Column.SIZE).data() == "512 bytes"
    finally:
        QLocale.setDefault(previous)

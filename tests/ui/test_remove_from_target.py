"""'Remove from target…' in the queue's context menu: confirms with the ticks that go, then
runs the store's own remove (the same as `tickscope remove`)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelectionModel

from app.store import open_target
from app.ui import dialogs as dlg
from app.ui import queue_model as qm
from tests.ui.conftest import wait_idle
from tests.ui.test_main_window import _ingest


@pytest.fixture
def confirm(monkeypatch):
    asked = {"calls": [], "answer": True}

    def confirm_remove(cls, parent, names, ticks, bad_packets, target):
        asked["calls"].append((names, ticks, bad_packets, target))
        return asked["answer"]

    monkeypatch.setattr(dlg.Ask, "confirm_remove", classmethod(confirm_remove))
    return asked


def _select_first(window) -> None:
    index = window.model.index(0, 0)
    window.queue_view.selectionModel().select(
        index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)


@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
def test_remove_from_target_confirms_the_ticks_then_removes(qtbot, window, sample, tmp_path, confirm, kind):
    target = tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")
    _ingest(qtbot, window, [sample["capture"]], target, sample["masters"])
    row = window.model.rows[0]
    assert row.status == qm.DONE and row.packets > 0
    assert window.acts.remove_from_target in window.queue_view.actions()
    _select_first(window)
    assert window.acts.remove_from_target.isEnabled()

    confirm["answer"] = False  # declined: nothing changes
    window.acts.remove_from_target.trigger()
    wait_idle(qtbot, window)
    ((names, ticks, bad, _),) = confirm["calls"]
    assert names == [sample["capture"].name] and ticks == row.packets and bad == row.bad_packets
    with open_target(target, read_only=True) as t:
        assert t.counts()["ticks"] == ticks

    confirm["answer"] = True
    with qtbot.waitSignal(window.unknown_refreshed, timeout=60_000):
        window.acts.remove_from_target.trigger()
    wait_idle(qtbot, window)
    with open_target(target, read_only=True) as t:
        assert t.counts() == {"captures": 0, "ticks": 0, "bad_packets": 0}
        assert t.unknown_tokens().num_rows == 0
    assert window.model.rows[0].error == "no longer in the target"
    assert "Removed 1 capture" in window.statusBar().currentMessage()

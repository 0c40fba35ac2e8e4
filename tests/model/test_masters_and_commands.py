"""Model rules the window only shows (no Qt): the instrument masters and what the card says,
which commands can run, and what can be ingested again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from app.core.capture import DONE, FAILED, CaptureRecord
from app.model.commands import available, removable
from app.model.intake import QueueEntry, split_present
from app.model.masters import MasterList
from app.model.session import Session
from app.model.target_queries import MasterInfo

FID = "a" * 64


def test_masters_are_listed_once_and_summarised_for_the_card(tmp_path):
    masters = MasterList()
    one, two = tmp_path / "instruments_20251013.csv", tmp_path / "instruments_20251010.csv"
    assert masters.add([str(one), str(two), str(one)]) == [str(one), str(two)]
    assert masters.add([str(one)]) == []
    assert masters.summary().detail == "2 loading…"
    masters.loaded(MasterInfo(str(one), dt.date(2025, 10, 13), 179, "13 Oct"))
    masters.unreadable(str(two), "not a CSV")
    summary = masters.summary()
    assert (summary.value, summary.detail) == ("2 masters · 179 instruments", "2025-10-13 · 1 unreadable")
    assert summary.tip == f"13 Oct\n{two}: not a CSV"
    assert masters.menu_label(str(two)).endswith("(unreadable)")
    masters.loaded(MasterInfo(str(two), dt.date(2025, 10, 10), 182, "10 Oct"))
    assert (masters.summary().value, masters.summary().detail) == ("2 masters · 361 instruments",
                                                                    "2025-10-10, 2025-10-13")
    assert masters.remove(str(one)) and not masters.remove(str(one))
    assert masters.paths == [str(two)] and str(one) not in masters.infos
    assert MasterList().summary().value == "None added"


def test_which_commands_can_run_follows_the_queue_the_selection_and_the_target():
    session = Session("/t.duckdb")
    session.add([QueueEntry("/d/a.dat", 10, "raw"), QueueEntry("/d/b.dat", 10, "raw")])
    none = available(session, [], target=None, unknown_tokens=0)
    assert (none.start, none.cancel_all, none.clear, none.resolve, none.export, none.remove) == \
        (True, True, False, False, False, False)
    session.apply_result(CaptureRecord("/d/a.dat", FID, status=DONE, packets=5))
    session.apply_result(CaptureRecord("/d/b.dat", None, status=FAILED, error="bad"))
    a, b = session.rows
    assert removable([a, b], "/t.duckdb") == [a] and removable([a, b], None) == []
    can = available(session, [a, b], target="/t.duckdb", unknown_tokens=3)
    assert (can.start, can.cancel, can.retry, can.clear, can.export, can.resolve, can.remove) == \
        (False, False, True, True, True, True, True)
    assert not available(session, [b], target="/t.duckdb", unknown_tokens=0).remove


def test_ingesting_again_requeues_the_files_still_there(tmp_path):
    here = tmp_path / "a.dat"
    here.write_bytes(b"x")
    present, gone = split_present([str(here), str(tmp_path / "gone.dat")])
    assert (present, gone) == ([str(here)], [str(tmp_path / "gone.dat")])
    session = Session("/t")
    session.add([QueueEntry(str(here), 1, "raw")])
    session.apply_result(CaptureRecord(str(here), FID, status=DONE, packets=5))
    assert session.requeue([QueueEntry(str(here), 1, "raw")]) == [str(here)]
    row = session.row(str(here))
    assert (row.status, row.packets, row.file_id) == ("queued", 0, None) and len(session) == 1
    assert Path(row.path) == here

"""Staged parts of an ended write (a Dask task that outlived its run) at the next open.

The bug: a Dask run cancelled while a task runs closes the target cleanly (its session
file, the record of the task's write id, goes with it); the task then stages its parts.
No session recorded that write id any more, so recovery left them and ``verify`` called
them "not a file Tickscope wrote" (exit 5). The journal now keeps the write ids of writes
done elsewhere past their session (``journal/ended.json``), and an open for writing
deletes the staged and temporary parts of those ids, and no others: a file named like one
that no record names stays. The task is played here by the store's own staging API
(``CapturePartsWriter``, what ``ingest_capture`` runs on a worker).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys

import pyarrow.compute as pc

from app.store import journal, open_target
from app.store.parquet import CapturePartsWriter
from tests.store.test_targets import write_capture
from tests.store.ticks_factory import file_id, ticks

WID = "0badc0de"


def stage_like_a_task(root, fid: str, n: int, write_id: str = WID) -> dict[str, int]:
    parts = CapturePartsWriter(root, fid, write_id)
    parts.add_ticks(ticks(fid, n))
    return parts.finish()


def staged_files(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.staged")}


def temporary_parts_like_a_task(root, fid: str, write_id: str = WID) -> list:
    """A ticks, a bad-packet and a summary part left mid-encoding (exact temporary names)."""
    folder = next((root / "ticks").iterdir())
    parts = [
        folder / f".part-{fid[:16]}-{write_id}-3.parquet.1234abcd.tmp",
        root / "bad_packets" / f".bad-{fid[:16]}-{write_id}.parquet.89abcdef.tmp",
        root / "summary" / f".summary-{fid[:16]}-{write_id}.parquet.00ff00ff.tmp",
    ]
    for path in parts:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 half a part")
    return parts


def a_run_recorded(root, write_id: str = WID) -> None:
    """A (Dask) run that gave ``write_id`` to a task, then ended (cancelled) while it ran."""
    with open_target(root) as target:
        target.record_write_id(write_id)


def test_staged_parts_of_an_ended_write_are_swept_at_the_next_open(tmp_path, caplog):
    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 300)])
        target.record_write_id(WID)  # the run records the task's write id, then is cancelled
    assert not list((root / "journal").glob("session-*.json"))  # closed cleanly: no record left
    staged = stage_like_a_task(root, b, 200)  # the task finishes after the close
    bad = root / "bad_packets" / f".bad-{b[:16]}-{WID}.parquet.staged"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"a task's staged bad packets")
    assert staged and len(staged_files(root)) == len(staged) + 1

    with open_target(root, read_only=True) as reader:  # (no lock: nothing is swept)
        findings = reader.verify()
    assert {f.code for f in findings} == {"staged_part"}
    assert {f.subject for f in findings} == staged_files(root)
    assert all(not f.damage and "Tickscope's own staged part" in f.what and "not damage" in f.line()
               for f in findings)
    assert not any("not a file Tickscope wrote" in f.line() for f in findings)

    with caplog.at_level(logging.INFO, logger="app.store.journal"), open_target(root) as target:
        assert staged_files(root) == set()
        assert target.verify() == []
        assert target.counts()["ticks"] == 300
        assert set(target.committed_parts()) == {a}
    assert f"removed {len(staged) + 1} staged parts of ended writes" in caplog.text


def test_a_part_staged_after_the_sweep_is_never_committed_and_goes_at_the_following_open(tmp_path):
    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    a_run_recorded(root)
    with open_target(root) as target:
        late = stage_like_a_task(root, b, 200)  # the zombie task stages while this session writes
        write_capture(target, a, [ticks(a, 300)])
        assert target.counts()["ticks"] == 300
        (finding,) = target.verify()
        assert finding.code == "staged_part" and not finding.damage
    assert len(staged_files(root)) == len(late)  # not this session's write id: left at close
    with open_target(root) as target:
        assert staged_files(root) == set()
        assert target.captures()["file_id"].to_pylist() == [a]
        assert pc.unique(target.ticks(["file_id"])["file_id"]).to_pylist() == [a]
        assert target.counts()["ticks"] == 300
        assert target.verify() == []


def test_files_named_almost_like_a_staged_part_are_never_deleted(tmp_path):
    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    a_run_recorded(root)  # the ended write these names almost belong to
    folder = next((root / "ticks").iterdir())
    name = f"part-{b[:16]}-{WID}-0.parquet"
    kept = [
        folder / f".{name}.staged.bak",
        folder / f"{name}.staged",  # no leading dot
        folder / f".{name}.stagedx",
        folder / f".{name.replace('.parquet', '.parq')}.staged",
        folder / f".part-{b[:15]}-{WID}-0.parquet.staged",  # 15 hex characters
        folder / f".part-{b[:16].upper()}-{WID}-0.parquet.staged",
        folder / f".{name}.1234.tmp",  # a temporary part's name with 4 hex, not 8
        folder / f".{name}.1234abcd.tmp.bak",
        root / "captures" / f".{name}.1234abcd.tmp",  # a temporary part's name where parts don't live
        root / "ticks" / f".{name}.staged",  # not in a partition folder
        root / "captures" / f".{name}.staged",  # not where parts live
        root / "bad_packets" / f".{name}.staged",  # a tick part's name among bad packets
        folder / f".bad-{b[:16]}-{WID}.parquet.staged",  # a bad-packet name among ticks
        tmp_path / f".{name}.staged",  # outside the dataset's folders
    ]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not ours to delete")
    with open_target(root) as target:
        findings = target.verify()
        assert target.counts()["ticks"] == 100
    assert all(p.read_bytes() == b"not ours to delete" for p in kept)
    inside = {p.relative_to(root).as_posix() for p in kept if root in p.parents}
    assert {f.subject for f in findings} == inside
    assert all(f.damage and f.code != "staged_part" for f in findings)


def test_verify_lists_a_staged_part_as_a_note_and_exits_0(tmp_path, monkeypatch):
    from tests.store.test_integrity import tickscope

    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    a_run_recorded(root)
    staged = stage_like_a_task(root, b, 50)
    # A task staging right after verify's own open swept: what verify then finds.
    monkeypatch.setattr(journal.Journal, "sweep_ended", lambda self: [])
    result = tickscope("verify", root)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == len(staged) + 1
    assert all("Tickscope's own staged part" in line and "(not damage)" in line for line in lines[:-1])
    assert lines[-1].endswith(f"1 captures, no problems found, {len(staged)} note"
                              + ("" if len(staged) == 1 else "s") + " (not damage)")
    (root / "ticks" / "README.txt").write_text("a stray is still damage")
    assert tickscope("verify", root).returncode == 5


def test_verify_names_an_unfinished_temporary_part_as_tickscopes_own_and_the_open_keeps_it(tmp_path):
    """What a worker killed mid-encode leaves (``.<part>.<8 hex>.tmp``, no live or dead session
    recording its write id): verify says it is Tickscope's own unfinished temporary part and
    what to do (a note: readers never see it, nothing lists it), not "not a file Tickscope
    wrote"; an open for writing does not delete it (a task of an ended run may still be
    writing it: tests/store/test_targets.py keeps unrecorded temporary names too)."""
    from tests.store.test_integrity import tickscope

    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    unfinished = temporary_parts_like_a_task(root, b)
    with open_target(root) as target:
        findings = target.verify()
        assert target.counts()["ticks"] == 100
    assert all(p.read_bytes() == b"PAR1 half a part" for p in unfinished)
    assert {f.subject for f in findings} == {p.relative_to(root).as_posix() for p in unfinished}
    for f in findings:
        assert f.code == "temporary_part" and not f.damage, f.line()
        assert "Tickscope's own unfinished temporary part" in f.line() and "delete it" in f.line()
        assert "not a file Tickscope wrote" not in f.line()
    result = tickscope("verify", root)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith("1 captures, no problems found, 3 notes (not damage)")


def test_staged_parts_behind_a_linked_folder_are_not_swept(tmp_path):
    # Dataset "link"'s bad_packets folder is a link to dataset "other"'s: the lock held on
    # "link" says nothing about "other"'s writers, so its staged parts stay.
    other, root = tmp_path / "other", tmp_path / "link"
    b = file_id("b")
    with open_target(other) as target:
        write_capture(target, file_id("a"), [ticks(file_id("a"), 10)])
    (other / "bad_packets").mkdir(exist_ok=True)
    theirs = other / "bad_packets" / f".bad-{b[:16]}-{WID}.parquet.staged"
    theirs.write_bytes(b"another dataset's writer")
    with open_target(root) as target:
        write_capture(target, file_id("c"), [ticks(file_id("c"), 10)])
    a_run_recorded(root)  # "link"'s journal records that write id as an ended write's
    if (root / "bad_packets").exists():
        (root / "bad_packets").rmdir()
    (root / "bad_packets").symlink_to(other / "bad_packets", target_is_directory=True)
    with open_target(root):
        pass
    assert theirs.read_bytes() == b"another dataset's writer"


def test_a_users_file_named_exactly_like_a_staged_or_temporary_part_is_never_deleted(tmp_path):
    # Before: any staged part of a write id no live session owned was deleted at the next
    # open, though nothing recorded that Tickscope wrote it.
    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    assert not (root / "journal" / journal.ENDED_FILE).exists()  # local writes all end with their session
    staged = stage_like_a_task(root, b, 50)  # exact names, a write id no journal recorded
    folder = next((root / "ticks").iterdir())
    users = [root / journal.staged_name(rel) for rel in staged] + [
        root / "bad_packets" / f".bad-{b[:16]}-{WID}.parquet.staged",
        root / "summary" / f".summary-{b[:16]}-{WID}.parquet.staged",
        folder / f".part-{b[:16]}-{WID}-7.parquet.1234abcd.tmp",
    ]
    for path in users[len(staged):]:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"the user's")
    before = {p: p.read_bytes() for p in users}
    for _ in range(2):
        with open_target(root) as target:
            findings = target.verify()
            assert target.counts()["ticks"] == 100
    assert {p: p.read_bytes() for p in users} == before
    assert {f.subject for f in findings} == {p.relative_to(root).as_posix() for p in users}
    for f in findings:
        assert not f.damage, f.line()
        if f.code == "staged_part":
            assert "no journal record names its write" in f.line() and "does not delete it" in f.line()
        else:
            assert f.code == "temporary_part" and "deletes it" not in f.line()


def test_temporary_parts_of_an_ended_write_are_swept_with_its_staged_parts(tmp_path):
    # Before: a recorded ended write's temporary parts (a task stopped mid-part) were never swept.
    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    a_run_recorded(root)
    unfinished = temporary_parts_like_a_task(root, b)
    with open_target(root, read_only=True) as reader:
        findings = reader.verify()
    assert {f.subject for f in findings} == {p.relative_to(root).as_posix() for p in unfinished}
    assert all(f.code == "temporary_part" and "the next ingest or open for writing deletes it" in f.line()
               for f in findings)
    with open_target(root) as target:
        assert target.verify() == []
        assert target.counts()["ticks"] == 100
    assert not [p for p in unfinished if p.exists()]


_KILLED_WRITER = """
import sys
from app.store import open_target
from tests.store.test_ended_staged import stage_like_a_task
root, fid, wid = sys.argv[1:]
target = open_target(root)
target.record_write_id(wid)  # a task's write id, recorded before the task writes
stage_like_a_task(target.path, fid, 120, wid)  # the task stages its parts
print("staged", flush=True)
sys.stdin.read()  # killed here: no commit, no clean close
"""


def test_a_recorded_staged_part_left_by_a_killed_writer_is_swept_and_so_is_one_its_task_stages_later(tmp_path):
    from tests.conftest import REPO

    root = tmp_path / "dataset"
    a, b, c = file_id("a"), file_id("b"), file_id("c")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(root), b, WID], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "staged"
    finally:
        writer.kill()
        writer.wait(timeout=60)
    assert writer.returncode == -9
    left = staged_files(root)
    assert left and list((root / "journal").glob("session-*.json"))  # the dead writer's record
    users = root / "bad_packets" / f".bad-{c[:16]}-feedf00d.parquet.staged"  # no record names it
    users.parent.mkdir(exist_ok=True)
    users.write_bytes(b"the user's")

    with open_target(root) as target:  # recovery: the dead session's recorded parts go
        assert staged_files(root) == {users.relative_to(root).as_posix()}
        assert target.counts()["ticks"] == 100
    assert journal.ended_write_ids(root) == {WID}  # its task may still stage: the id outlives it
    late = stage_like_a_task(root, b, 80)  # ... and does, after that open
    assert len(staged_files(root)) == len(late) + 1
    with open_target(root) as target:
        assert staged_files(root) == {users.relative_to(root).as_posix()}
        assert [f.subject for f in target.verify()] == [users.relative_to(root).as_posix()]
    assert users.read_bytes() == b"the user's"


def test_the_record_of_an_ended_write_is_kept_for_a_week_then_its_parts_stay(tmp_path):
    root = tmp_path / "dataset"
    b = file_id("b")
    a_run_recorded(root)
    record = root / "journal" / journal.ENDED_FILE
    ended = json.loads(record.read_text())["write_ids"]
    assert set(ended) == {WID}
    long_ago = dt.datetime.now(dt.UTC) - journal.ENDED_KEPT - dt.timedelta(hours=1)
    record.write_text(json.dumps({"write_ids": {WID: long_ago.isoformat()}}))
    staged = stage_like_a_task(root, b, 50)
    with open_target(root) as target:
        findings = target.verify()
    assert len(staged_files(root)) == len(staged)  # no longer provably an ended write's: kept
    assert all(f.code == "staged_part" and "no journal record" in f.line() for f in findings)
    assert not record.exists()  # nothing left to remember


def test_an_unreadable_record_of_ended_writes_stops_the_open_for_writing_and_deletes_nothing(tmp_path):
    from app.store.base import UnreadableTarget

    root = tmp_path / "dataset"
    a_run_recorded(root)
    staged = stage_like_a_task(root, file_id("b"), 50)
    (root / "journal" / journal.ENDED_FILE).write_text('{"write_ids": ["0badc0de"]}')  # a hand edit
    try:
        open_target(root).close()
        raise AssertionError("opened")
    except UnreadableTarget as err:
        assert "ended.json" in str(err) and "move that journal file out" in str(err)
    assert len(staged_files(root)) == len(staged)
    assert os.path.exists(root / "journal" / journal.ENDED_FILE)

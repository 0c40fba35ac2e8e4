"""Staged parts of an ended write (a Dask task that outlived its run) at the next open.

The bug: a Dask run cancelled while a task runs closes the target cleanly (its session
file, the record of the task's write id, goes with it); the task then stages its parts.
No session recorded that write id any more, so recovery left them and ``verify`` called
them "not a file Tickscope wrote" (exit 5). The task is played here by the store's own
staging API (``CapturePartsWriter``, what ``ingest_capture`` runs on a worker).
"""

from __future__ import annotations

import logging

import pyarrow.compute as pc

from app.store import open_target
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
    with open_target(root) as target:
        late = stage_like_a_task(root, b, 200)  # a zombie task stages while this session writes
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
    from app.store import journal
    from tests.store.test_integrity import tickscope

    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    staged = stage_like_a_task(root, b, 50)
    # A task staging right after verify's own open swept: what verify then finds.
    monkeypatch.setattr(journal.Journal, "sweep_ended_staged", lambda self: [])
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
    folder = next((root / "ticks").iterdir())
    unfinished = [
        folder / f".part-{b[:16]}-{WID}-3.parquet.1234abcd.tmp",
        root / "bad_packets" / f".bad-{b[:16]}-{WID}.parquet.89abcdef.tmp",
        root / "summary" / f".summary-{b[:16]}-{WID}.parquet.00ff00ff.tmp",
    ]
    for path in unfinished:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 half a part")
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
    if (root / "bad_packets").exists():
        (root / "bad_packets").rmdir()
    (root / "bad_packets").symlink_to(other / "bad_packets", target_is_directory=True)
    with open_target(root):
        pass
    assert theirs.read_bytes() == b"another dataset's writer"

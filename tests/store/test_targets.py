"""Both targets on hand-built tick tables: commit/abort, idempotency, locks, layout, resolve."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest

from app.core import schema
from app.core.enrich import InstrumentBook
from app.errors import TargetLockedError
from app.store import AlreadyIngested, CaptureRecord, open_target
from app.store.parquet import NULL_PARTITION
from tests.conftest import REPO
from tests.store.ticks_factory import DAY, file_id, master, ticks

KINDS = ["duckdb", "parquet"]


def target_path(tmp_path: Path, kind: str) -> Path:
    return tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")


def record(fid: str, table: pa.Table, **kw) -> CaptureRecord:
    unresolved = table.num_rows - int(pc.sum(table["resolved"]).as_py() or 0)
    return CaptureRecord(file_id=fid, path=f"/captures/{fid[:8]}.dat", size_bytes=123, framing="raw",
                         messages=table.num_rows, packets=table.num_rows,
                         unresolved_ticks=unresolved, **kw)


def write_capture(target, fid: str, tables: list[pa.Table], *, force=False) -> None:
    write = target.begin(fid, force=force)
    for t in tables:
        write.add_ticks(t)
    write.commit(record(fid, pa.concat_tables(tables)))


@pytest.mark.parametrize("kind", KINDS)
def test_commit_makes_ticks_and_record_visible_together(tmp_path, kind):
    a, b = file_id("a"), file_id("b")
    ta = [ticks(a, 500), ticks(a, 300, start_msg=500)]
    with open_target(target_path(tmp_path, kind)) as target:
        wa = target.begin(a)
        wb = target.begin(b)
        # Interleaved batches of two captures, as the single writer receives them.
        wa.add_ticks(ta[0])
        wb.add_ticks(ticks(b, 200))
        wa.add_ticks(ta[1])
        assert target.counts()["ticks"] == 0  # nothing visible before commit
        wa.commit(record(a, pa.concat_tables(ta)))
        wb.abort()
        assert target.file_ids() == {a}
    with open_target(target_path(tmp_path, kind)) as target:
        stored = target.ticks()
        assert stored.schema.equals(schema.TICK_SCHEMA)
        assert stored.num_rows == 800
        assert stored.equals(pa.concat_tables(ta).combine_chunks())
        captures = target.captures()
        assert captures["file_id"].to_pylist() == [a]
        assert captures["packets"].to_pylist() == [800]
        assert captures["tool_version"][0].as_py()


@pytest.mark.parametrize("kind", KINDS)
def test_same_content_is_refused_and_force_replaces(tmp_path, kind):
    a = file_id("a")
    with open_target(target_path(tmp_path, kind)) as target:
        write_capture(target, a, [ticks(a, 400)])
        with pytest.raises(AlreadyIngested):
            write_capture(target, a, [ticks(a, 400)])
        assert target.counts()["ticks"] == 400
        write_capture(target, a, [ticks(a, 250, price=5.0)], force=True)
        assert target.counts() == {"captures": 1, "ticks": 250, "bad_packets": 0}
        assert pc.max(target.ticks(["last_price"])["last_price"]).as_py() < 10
    if kind == "parquet":  # the replaced capture's part files are gone
        parts = list((target_path(tmp_path, kind) / "ticks").rglob("*.parquet"))
        assert len(parts) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_bad_packets_commit_with_their_capture(tmp_path, kind):
    from dataclasses import dataclass

    @dataclass
    class Bad:
        offset: int
        length: int
        reason: str
        raw: bytes
        msg_seq: int | None = None

    a = file_id("a")
    with open_target(target_path(tmp_path, kind)) as target:
        write = target.begin(a)
        write.add_ticks(ticks(a, 10))
        write.add_bad([Bad(5, 77, "unknown packet length 77", b"\x01\x02")])
        write.abort()
        assert target.bad_packets().num_rows == 0
        write = target.begin(a)
        write.add_ticks(ticks(a, 10))
        write.add_bad([Bad(5, 77, "unknown packet length 77", b"\x01\x02"), Bad(99, 3, "truncated", b"")])
        write.commit(record(a, ticks(a, 10)))
        bad = target.bad_packets()
        assert bad["offset"].to_pylist() == [5, 99]
        assert bad["raw"].to_pylist() == [b"\x01\x02", b""]


@pytest.mark.parametrize("kind", KINDS)
def test_second_open_in_the_same_process_is_refused(tmp_path, kind):
    with open_target(target_path(tmp_path, kind)):
        with pytest.raises(TargetLockedError, match="already open"):
            open_target(target_path(tmp_path, kind))
    open_target(target_path(tmp_path, kind)).close()  # released on close


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from app.store import open_target
    target = open_target({path!r})
    print("holding", flush=True)
    sys.stdin.read()  # holds the target until the test closes stdin or kills it
    """
)


@pytest.mark.parametrize("kind", KINDS)
def test_a_target_held_by_another_process_fails_fast_naming_it(tmp_path, kind):
    path = target_path(tmp_path, kind)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(repo=str(REPO), path=str(path))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(TargetLockedError) as err:
            open_target(path)
        assert holder.poll() is None  # refused while held: it did not wait for the holder to go
        message = str(err.value)
        assert f"PID {holder.pid}" in message and "\n" not in message
        assert "retry" in message
    finally:
        holder.kill()
        holder.wait()
    with open_target(path) as target:  # usable once the holder is gone
        assert target.counts()["ticks"] == 0


def test_parquet_layout_is_readable_by_other_tools(tmp_path):
    root = target_path(tmp_path, "parquet")
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 300), ticks(a, 100, start_msg=300, day=None)])
        write_capture(target, b, [ticks(b, 200, day=DAY.replace(day=14))])
    folders = sorted(p.name for p in (root / "ticks").iterdir())
    assert folders == ["trading_date=2025-10-13", "trading_date=2025-10-14", f"trading_date={NULL_PARTITION}"]
    for part in (root / "ticks").rglob("*.parquet"):
        assert part.name.startswith(f"part-{a[:16]}-") or part.name.startswith(f"part-{b[:16]}-")
    (root / "ticks" / "README.txt").write_text("a user's note: README's glob must not trip on it")
    (root / "ticks" / "trading_date=2025-10-13" / ".DS_Store").write_bytes(b"\0\1")
    glob = str(root / "ticks" / "*" / "part-*.parquet")  # README's recipe
    rows = duckdb.execute(
        "SELECT trading_date, count(*) FROM read_parquet(?, hive_partitioning=true) GROUP BY 1 ORDER BY 1 NULLS LAST",
        [glob],
    ).fetchall()
    assert [(str(d) if d else None, n) for d, n in rows] == [("2025-10-13", 300), ("2025-10-14", 200), (None, 100)]
    import glob as globbing

    table = pads.dataset(sorted(globbing.glob(glob)), format="parquet", partitioning="hive",
                         partition_base_dir=str(root / "ticks")).to_table()
    assert table.num_rows == 600 and "trading_date" in table.column_names
    captures = duckdb.execute("SELECT count(*) FROM read_parquet(?)", [str(root / "captures" / "*.parquet")]).fetchone()
    assert captures == (2,)


def test_parquet_recovery_deletes_only_files_the_journal_recorded(tmp_path):
    root = target_path(tmp_path, "parquet")
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100)])
    committed = sorted((root / "ticks").rglob("*.parquet"))
    folder = committed[0].parent
    # What a kill -9 of a writer leaves: its session record naming its write id, a staged
    # part and a temporary part of that write, a half-written manifest of that session.
    (root / "journal" / "session-deadbeef.json").write_text('{"session": "deadbeef", "write_ids": ["0badc0de"]}')
    recorded = [
        folder / f".part-{b[:16]}-0badc0de-0.parquet.staged",
        folder / f".part-{b[:16]}-0badc0de-1.parquet.1234abcd.tmp",
        root / "bad_packets" / f".bad-{b[:16]}-0badc0de.parquet.staged",
        root / "captures" / ".captures.parquet.deadbeef-12345678.staged",
    ]
    # Files nobody recorded: part-like names, temporary-like names, a user's notes.
    unrecorded = [
        folder / f"part-{b[:16]}-feedf00d-0.parquet",
        folder / f".part-{b[:16]}-feedf00d-1.parquet.1234abcd.tmp",
        root / "captures" / ".captures.parquet.1234.tmp",
        root / "ticks" / "README.txt",
    ]
    for path in recorded + unrecorded:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(committed[0].read_bytes())
    with open_target(root) as target:
        assert target.counts()["ticks"] == 100
    assert not [p for p in recorded if p.exists()]
    assert all(p.exists() for p in unrecorded)
    assert not (root / "journal" / "session-deadbeef.json").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_resolve_names_ticks_after_a_master_is_added(tmp_path, kind):
    a = file_id("a")
    infy, nfo = 408065, 12345602
    with open_target(target_path(tmp_path, kind)) as target:
        table = ticks(a, 300, tokens=(infy, nfo))
        write_capture(target, a, [table])
        target.rebuild_unknown_tokens(InstrumentBook())
        assert sorted(target.unknown_tokens()["instrument_token"].to_pylist()) == [infy, nfo]
        # Only the tick day's master may name them (tokens are recycled): an earlier day's does not.
        other_days = [master({738561: "RELIANCE"}), master({infy: "INFY"}, day=DAY.replace(day=10))]
        assert target.resolve(InstrumentBook(other_days)) == 0
        m = master({infy: "INFY"})
        target.record_instruments(InstrumentBook([m]).to_table())
        book = target.stored_book()
        assert target.resolve(book) == 150
        target.rebuild_unknown_tokens(book)
        assert target.unknown_tokens()["instrument_token"].to_pylist() == [nfo]
        stored = target.ticks(["instrument_token", "tradingsymbol", "resolved", "instruments_date"])
        named = stored.filter(pc.equal(stored["instrument_token"], infy))
        assert set(named["tradingsymbol"].to_pylist()) == {"INFY"}
        assert set(named["instruments_date"].to_pylist()) == {DAY}
        assert target.captures()["unresolved_ticks"].to_pylist() == [150]
        assert target.resolve(book) == 0  # nothing left that the book can name
    with open_target(target_path(tmp_path, kind)) as target:
        assert target.counts()["ticks"] == 300
        assert pc.sum(target.ticks(["resolved"])["resolved"]).as_py() == 150


@pytest.mark.parametrize("kind", KINDS)
def test_stored_masters_round_trip_and_are_not_duplicated(tmp_path, kind):
    m1 = master({408065: "INFY"}, source="a.csv")
    m2 = master({738561: "RELIANCE"}, day=DAY.replace(day=14), source="b.csv")
    with open_target(target_path(tmp_path, kind)) as target:
        target.record_instruments(InstrumentBook([m1, m2]).to_table())
        target.record_instruments(InstrumentBook([m1]).to_table())  # the same master again
        assert target.instruments().num_rows == 2
        masters = target.stored_book().masters
        assert [(m.source, m.date) for m in sorted(masters, key=lambda m: m.source)] == [
            ("a.csv", DAY), ("b.csv", DAY.replace(day=14))
        ]


@pytest.mark.parametrize("kind", KINDS)
def test_file_ids_must_be_sha256_hex(tmp_path, kind):
    with open_target(target_path(tmp_path, kind)) as target:
        for bad in ("../../etc/passwd", "x" * 64, file_id("a").upper()):
            with pytest.raises(ValueError):
                target.begin(bad)


def test_parquet_target_refuses_a_foreign_folder(tmp_path):
    from app.errors import InputError

    (tmp_path / "captures_in").mkdir()
    (tmp_path / "captures_in" / "x.dat").write_bytes(b"\x00")
    with pytest.raises(InputError, match="not a Tickscope dataset"):
        open_target(tmp_path / "captures_in")


def test_duckdb_target_refuses_a_file_that_is_not_a_database(tmp_path):
    from app.errors import InputError

    path = tmp_path / "notes.db"
    path.write_text("hello\n" * 100)
    with pytest.raises(InputError):
        open_target(path)

"""Targets under failure and hostile contents: unusable folders, corrupt files, user tables
with our variable names, resolve naming and atomicity, stale unknown tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from app.core.enrich import InstrumentBook
from app.errors import InputError, TargetLockedError
from app.store import open_target
from app.store import parquet as parquet_store
from app.store.journal import Journal
from app.store.parquet import resolve as parquet_resolve
from tests.store.test_targets import KINDS, record, target_path, write_capture
from tests.store.ticks_factory import file_id, master, ticks

INFY, NFO = 408065, 12345602


@dataclass
class Bad:
    offset: int
    length: int
    reason: str
    raw: bytes
    msg_seq: int | None = None


def _assert_not_claimed(path: Path) -> None:
    """The target can be opened again in this process (a failed open released its claim)."""
    try:
        open_target(path).close()
    except TargetLockedError as err:  # pragma: no cover - the failure this guards against
        pytest.fail(f"failed open left the target claimed: {err}")


# --- Parquet: open failures are one-line input errors and release the target ---------------

def test_parquet_corrupt_captures_file_is_an_input_error_and_releases_the_target(tmp_path):
    root = tmp_path / "dataset"
    a = file_id("a")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 50)])
    captures = root / "captures" / "captures.parquet"
    captures.write_bytes(b"this is not parquet" * 10)
    for read_only in (False, True):
        with pytest.raises(InputError, match="not a readable Tickscope dataset: captures/captures.parquet"):
            open_target(root, read_only=read_only)
    # A second failed open is the same error, not "already open in this process".
    with pytest.raises(InputError, match="not a readable Tickscope dataset"):
        open_target(root)
    captures.unlink()
    _assert_not_claimed(root)


def test_parquet_captures_of_another_layout_is_an_input_error(tmp_path):
    root = tmp_path / "dataset"
    open_target(root).close()
    (root / "captures").mkdir()
    pq.write_table(pa.table({"x": [1]}), root / "captures" / "captures.parquet")
    with pytest.raises(InputError, match="not a readable Tickscope dataset"):
        open_target(root)


def test_parquet_unusable_folder_is_an_input_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = blocker / "dataset"  # mkdir fails: a file sits where a folder must be
    for _ in range(2):  # the second time proves the claim was released
        with pytest.raises(InputError, match="cannot use .* as a Parquet dataset"):
            open_target(path)


def test_parquet_lock_that_cannot_be_opened_is_an_input_error_and_releases_the_claim(tmp_path):
    root = tmp_path / "dataset"
    open_target(root).close()
    (root / parquet_store.LOCK).unlink()
    (root / parquet_store.LOCK).mkdir()  # os.open(O_RDWR) on a folder fails
    for _ in range(2):
        with pytest.raises(InputError, match="cannot use .* as a Parquet dataset"):
            open_target(root)
    (root / parquet_store.LOCK).rmdir()
    _assert_not_claimed(root)


def test_parquet_failing_recovery_releases_the_claim(tmp_path, monkeypatch):
    root = tmp_path / "dataset"
    open_target(root).close()

    def broken(self):
        raise RuntimeError("recovery broke")

    monkeypatch.setattr(Journal, "recover", broken)
    with pytest.raises(RuntimeError):
        open_target(root)
    monkeypatch.undo()
    _assert_not_claimed(root)


# --- Parquet resolve: names follow the capture's rule and never replace a file -------------

PART_NAME = re.compile(r"^part-([0-9a-f]{16})-([0-9a-f]{8})-(\d+)\.parquet$")


def test_parquet_resolved_parts_keep_the_capture_name_rule(tmp_path):
    root = tmp_path / "dataset"
    a = file_id("a")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 100, tokens=(INFY, NFO))])
        assert target.resolve(InstrumentBook([master({INFY: "INFY"})])) == 50
        parts = [p for p in target.committed_parts()[a] if p.startswith("ticks/")]
    assert parts
    for rel in parts:
        assert PART_NAME.match(Path(rel).name) and Path(rel).name.startswith(f"part-{a[:16]}-"), rel
        assert (root / rel).is_file()


def test_parquet_resolve_names_parts_by_the_rule_and_never_replaces_a_part(tmp_path, monkeypatch):
    root = tmp_path / "dataset"
    a, b = file_id("a"), file_id("b")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 300, tokens=(INFY, NFO))])
        write_capture(target, b, [ticks(b, 200, tokens=(INFY, NFO))])
        before = target.committed_parts()
        (a_part,) = [p for p in before[a] if p.startswith("ticks/")]
        a_write_id = PART_NAME.match(Path(a_part).name).group(2)
        # The first new name offered is the very part being rewritten: taking it would
        # replace a file a capture still lists (and the switch would then delete it).
        offered = iter([a_write_id, "0badc0de", "0badc0df", "0badc0e0"])
        monkeypatch.setattr(parquet_resolve, "_new_write_id", lambda: next(offered))
        assert target.resolve(InstrumentBook([master({INFY: "INFY"})])) == 250
        after = target.committed_parts()
    for fid in (a, b):
        tick_parts = [p for p in after[fid] if p.startswith("ticks/")]
        assert tick_parts and set(tick_parts).isdisjoint(before[fid])
        for rel in tick_parts:
            match = PART_NAME.match(Path(rel).name)
            assert match, rel
            assert match.group(1) == fid[:16]  # commit_parts' rule: part-<file_id[:16]>-
            assert Path(rel).name.startswith(f"part-{fid[:16]}-")
    assert Path(after[a][0]).name == "part-" + a[:16] + "-0badc0de-0.parquet"
    files = sorted(p.relative_to(root).as_posix() for p in (root / "ticks").rglob("*.parquet"))
    assert files == sorted(p for fid in (a, b) for p in after[fid] if p.startswith("ticks/"))
    with open_target(root) as target:
        stored = target.ticks(["file_id", "instrument_token", "tradingsymbol"])
        assert stored.num_rows == 500
        named = stored.filter(pc.equal(stored["instrument_token"], INFY))
        assert set(named["tradingsymbol"].to_pylist()) == {"INFY"}


def test_a_commit_never_replaces_a_published_file(tmp_path):
    """A part name already on disk (a user's copy, say) is refused, not overwritten."""
    root = tmp_path / "dataset"
    a = file_id("a")
    with open_target(root) as target:
        write = target.begin(a)
        write.add_ticks(ticks(a, 50))
        name = root / "ticks" / "trading_date=2025-10-13" / f"part-{a[:16]}-{write.parts.write_id}-0.parquet"
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_bytes(b"someone else's file")
        with pytest.raises(FileExistsError):
            write.commit(record(a, ticks(a, 50)))
        assert target.file_ids() == set()
    assert name.read_bytes() == b"someone else's file"
    assert not [p for p in root.rglob("*") if p.name.endswith((".staged", ".tmp"))]


# --- DuckDB: user tables never shadow our data; foreign layouts are refused untouched ------

SHADOW_NAMES = ["batch", "capture_row", "bad_rows", "mapping", "keys", "stored_masters", "explained",
                "empty_ticks"]


def test_duckdb_user_tables_named_like_our_variables_change_nothing(tmp_path):
    path = tmp_path / "t.duckdb"
    con = duckdb.connect(str(path))
    for name in SHADOW_NAMES:
        con.execute(f"CREATE TABLE {name} (x INTEGER)")
        con.execute(f"INSERT INTO {name} VALUES (42)")
    con.close()
    a = file_id("a")
    with open_target(path) as target:
        write = target.begin(a)
        write.add_ticks(ticks(a, 300, tokens=(INFY, NFO)))
        write.add_bad([Bad(5, 77, "unknown packet length 77", b"\x01")])
        write.commit(record(a, ticks(a, 300, tokens=(INFY, NFO))))
        resolved, unknown = target.resolve_with_masters([master({INFY: "INFY"})])
        assert resolved == 150
        assert unknown["instrument_token"].to_pylist() == [NFO]
        target.record_instruments(InstrumentBook([master({NFO: "NFO"})]).to_table())
        assert target.resolve(target.stored_book()) == 150
        target.rebuild_unknown_tokens()
        assert target.unknown_tokens().num_rows == 0
        assert target.counts() == {"captures": 1, "ticks": 300, "bad_packets": 1}
    con = duckdb.connect(str(path), read_only=True)
    for name in SHADOW_NAMES:
        assert con.execute(f"SELECT * FROM {name}").fetchall() == [(42,)], name
    con.close()


@pytest.mark.parametrize("table", ["ticks", "captures", "bad_packets", "instruments", "unknown_tokens"])
def test_duckdb_foreign_layout_is_refused_before_anything_is_created(tmp_path, table):
    path = tmp_path / "theirs.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE {table} (x INTEGER)")
    con.close()
    for read_only in (False, True):
        with pytest.raises(InputError, match=f"holds a {table} table of another layout"):
            open_target(path, read_only=read_only)
    con = duckdb.connect(str(path), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert tables == {table}
    _assert_not_claimed(tmp_path / "ours.duckdb")


def test_duckdb_read_only_open_of_a_database_without_our_tables_is_an_input_error(tmp_path):
    path = tmp_path / "theirs.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(InputError, match="not a Tickscope target"):
        open_target(path, read_only=True)


# --- resolve as one change -------------------------------------------------------------------

def test_duckdb_resolve_with_masters_is_one_transaction(tmp_path, monkeypatch):
    path = tmp_path / "t.duckdb"
    a = file_id("a")
    with open_target(path) as target:
        write_capture(target, a, [ticks(a, 300, tokens=(INFY, NFO))])
        target.rebuild_unknown_tokens(InstrumentBook())
        import app.core.unknown

        def broken(*args, **kw):
            raise RuntimeError("interrupted while explaining")

        monkeypatch.setattr(app.core.unknown, "explain_unknown", broken)
        with pytest.raises(RuntimeError):
            target.resolve_with_masters([master({INFY: "INFY"})])
        monkeypatch.undo()
        # Nothing of it happened: no master stored, no tick named, counts as before.
        assert target.instruments().num_rows == 0
        assert pc.sum(target.ticks(["resolved"])["resolved"]).as_py() == 0
        assert target.captures()["unresolved_ticks"].to_pylist() == [300]
        assert sorted(target.unknown_tokens()["instrument_token"].to_pylist()) == [INFY, NFO]
        resolved, unknown = target.resolve_with_masters([master({INFY: "INFY"})])
        assert resolved == 150 and unknown["instrument_token"].to_pylist() == [NFO]
        assert target.captures()["unresolved_ticks"].to_pylist() == [150]


@pytest.mark.parametrize("kind", KINDS)
def test_resolve_with_masters_records_names_and_rebuilds(tmp_path, kind):
    a = file_id("a")
    with open_target(target_path(tmp_path, kind)) as target:
        write_capture(target, a, [ticks(a, 300, tokens=(INFY, NFO))])
        resolved, unknown = target.resolve_with_masters([master({INFY: "INFY"})])
        assert resolved == 150
        assert unknown["instrument_token"].to_pylist() == [NFO]
    with open_target(target_path(tmp_path, kind), read_only=True) as target:
        assert target.unknown_tokens()["instrument_token"].to_pylist() == [NFO]
        assert target.instruments().num_rows == 1


def test_parquet_stale_unknown_tokens_are_rebuilt_after_an_interrupted_resolve(tmp_path, monkeypatch):
    root = tmp_path / "dataset"
    a = file_id("a")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 300, tokens=(INFY, NFO))])
        target.rebuild_unknown_tokens(InstrumentBook())
        assert sorted(target.unknown_tokens()["instrument_token"].to_pylist()) == [INFY, NFO]

        def killed(self, book=None):
            raise KeyboardInterrupt  # the run stops after the captures switch

        monkeypatch.setattr(parquet_store.ParquetTarget, "rebuild_unknown_tokens", killed)
        with pytest.raises(KeyboardInterrupt):
            target.resolve_with_masters([master({INFY: "INFY"})])
        monkeypatch.undo()
    stored = pq.read_table(root / "unknown_tokens" / "unknown_tokens.parquet")
    assert sorted(stored["instrument_token"].to_pylist()) == [INFY, NFO]  # left stale on disk
    with open_target(root, read_only=True) as target:
        assert target.unknown_tokens()["instrument_token"].to_pylist() == [NFO]
    with open_target(root) as target:
        assert target.unknown_tokens()["instrument_token"].to_pylist() == [NFO]
    stored = pq.read_table(root / "unknown_tokens" / "unknown_tokens.parquet")
    assert stored["instrument_token"].to_pylist() == [NFO]  # rebuilt and stored by the writable open
    with open_target(root, read_only=True) as target:
        assert target.unknown_tokens()["instrument_token"].to_pylist() == [NFO]


def test_parquet_unknown_tokens_missing_after_an_interrupted_ingest_are_rebuilt(tmp_path):
    root = tmp_path / "dataset"
    a = file_id("a")
    with open_target(root) as target:
        write_capture(target, a, [ticks(a, 30, tokens=(INFY,))])  # then stopped before the rebuild
    with open_target(root, read_only=True) as target:
        assert target.unknown_tokens()["instrument_token"].to_pylist() == [INFY]

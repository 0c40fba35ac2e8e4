"""verify and remove on both targets, stray files, repair by re-ingest, v1 migration."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from app.errors import EXIT_DAMAGED
from app.pipeline.ingest import file_sha256, run_ingest
from app.store import NotInTarget, open_target
from app.store.parquet import FORMAT_VERSION, MARKER, PARQUET_CAPTURES_SCHEMA
from tests.support import synthetic
from tests.support.cli import run_cli

KINDS = ["duckdb", "parquet"]


def target_path(tmp_path: Path, kind: str, name: str = "t") -> Path:
    return tmp_path / (f"{name}.duckdb" if kind == "duckdb" else name)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three small captures (one with every fault kind) and a master naming part of them."""
    folder = tmp_path_factory.mktemp("integrity")
    a = synthetic.generate_capture(folder / "a.dat", packets=1500, seed=31, faults=True)
    b = synthetic.generate_capture(folder / "b.dat", packets=1200, seed=32)
    c = synthetic.generate_capture(folder / "c.dat", packets=900, seed=33, framing="u32len")
    master = folder / "instruments_20251013.csv"
    synthetic.write_instruments_csv(master, synthetic.make_instruments(31)[:40], synthetic.SESSION_DATE)
    return {"a": folder / "a.dat", "b": folder / "b.dat", "c": folder / "c.dat", "master": master,
            "packets": {"a": a.packets, "b": b.packets, "c": c.packets}}


def ingest(paths, target, master, **kw):
    report = run_ingest(paths, target, instruments=[master], workers=1, **kw)
    assert all(f.status in ("done", "skipped") for f in report.files), [f.error for f in report.files]
    return report


def tickscope(*args) -> subprocess.CompletedProcess:
    """The command line's verify/remove, run in this process (what they do to a target is what
    these tests check; a real process's exit code, one-line errors and output are
    tests/test_cli_contract.py's and tests/test_cli_errors.py's): code, stdout, stderr, as
    tests/support/cli.py's ``run_cli`` captures them (as a process would show them)."""
    return run_cli(*args)


def snapshot(path: Path) -> dict:
    """What a reader sees, without the per-ingest columns (time of ingest, status)."""
    with open_target(path, read_only=True) as t:
        captures = t.captures().drop_columns(["ingested_at", "status"])
        captures = captures.take(pc.sort_indices(captures, [("file_id", "ascending")]))
        unknown = t.unknown_tokens()
        unknown = unknown.take(pc.sort_indices(unknown, [("instrument_token",
                                                          "ascending")])) if unknown.num_rows else unknown
        return {"ticks": t.ticks(), "bad": t.bad_packets(), "captures": captures,
                "unknown": unknown.replace_schema_metadata(None), "counts": t.counts()}


def parts_of(root: Path, capture: Path) -> list[Path]:
    fid = file_sha256(capture)
    with open_target(root, read_only=True) as t:
        return [root / rel for rel in t.committed_parts()[fid] if rel.startswith("ticks/")]


# --- verify finds damage, names the capture, re-ingest repairs it ----------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_clean_target_verifies_clean(tmp_path, inputs, kind):
    root = target_path(tmp_path, kind)
    ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    with open_target(root) as t:
        assert t.verify() == []
        assert t.damaged_captures() == {}
    result = tickscope("verify", root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_part_fails_verify_and_reingest_repairs_it(tmp_path, inputs, damage):
    root = target_path(tmp_path, "parquet")
    ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    clean = snapshot(root)
    part = parts_of(root, inputs["b"])[0]
    if damage == "delete":
        part.unlink()
    else:
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])
    result = tickscope("verify", root)
    assert result.returncode == EXIT_DAMAGED
    problems = [line for line in result.stdout.splitlines() if line.startswith("b.dat: ")]
    assert problems and "re-ingest" in problems[0], result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("a.dat")]
    as_json = json.loads(tickscope("verify", root, "--json").stdout)
    assert as_json["exit_code"] == EXIT_DAMAGED
    assert {f["file_id"] for f in as_json["findings"]} == {file_sha256(inputs["b"])}

    report = ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    outcome = {Path(f.path).name: (f.status, f.error or "") for f in report.files}
    assert outcome["a.dat"][0] == "skipped"
    assert outcome["b.dat"][0] == "done" and "damaged" in outcome["b.dat"][1]
    with open_target(root) as t:
        assert t.verify() == []
    repaired = snapshot(root)
    assert repaired["ticks"].equals(clean["ticks"]) and repaired["bad"].equals(clean["bad"])
    assert repaired["counts"] == clean["counts"]


def test_a_hand_deleted_duckdb_row_fails_verify_and_reingest_repairs_it(tmp_path, inputs):
    root = target_path(tmp_path, "duckdb")
    ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    clean = snapshot(root)
    con = duckdb.connect(str(root))
    con.execute("DELETE FROM ticks WHERE file_id = ? AND msg_seq = (SELECT min(msg_seq) FROM ticks WHERE file_id = ?)",
                [file_sha256(inputs["a"])] * 2)
    con.close()
    result = tickscope("verify", root)
    assert result.returncode == EXIT_DAMAGED
    (line,) = [line for line in result.stdout.splitlines() if ":" in line and "problem" not in line]
    assert line.startswith("a.dat: ") and "tick rows stored" in line and "re-ingest" in line
    report = ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    assert {Path(f.path).name: f.status for f in report.files} == {"a.dat": "done", "b.dat": "skipped"}
    with open_target(root) as t:
        assert t.verify() == []
    repaired = snapshot(root)
    assert repaired["ticks"].equals(clean["ticks"]) and repaired["counts"] == clean["counts"]


def test_duckdb_orphan_rows_are_reported(tmp_path, inputs):
    root = target_path(tmp_path, "duckdb")
    ingest([inputs["b"]], root, inputs["master"])
    con = duckdb.connect(str(root))
    con.execute("INSERT INTO bad_packets VALUES (?, 0, 1, 'x', '\\x00'::BLOB)", ["f" * 64])
    con.close()
    with open_target(root) as t:
        (finding,) = t.verify()
    assert finding.code == "orphan_rows" and finding.subject == "bad_packets"


# --- stray files: never deleted, always reported --------------------------------------------------


def test_stray_files_survive_ingest_recovery_and_remove_and_verify_reports_them(tmp_path, inputs):
    root = target_path(tmp_path, "parquet")
    ingest([inputs["a"]], root, inputs["master"])
    partition = parts_of(root, inputs["a"])[0].parent
    strays = {
        root / "ticks" / "README.txt": b"notes",
        partition / ".DS_Store": b"\0\1",
        partition / "notes.parquet": b"not ours",  # Parquet-named, but not a name we generate
        # Almost a temporary part's name (4 hex, not 8; exact staged and temporary part names
        # are notes, not strays: tests/store/test_ended_staged.py).
        partition / ".part-0123456789abcdef-0badc0de-0.parquet.1234.tmp": b"no journal names this",
        root / "captures" / "old.csv": b"a,b\n",
        root / "bad_packets" / "x.tmp": b"tmp",
    }
    for path, data in strays.items():
        path.write_bytes(data)
    ingest([inputs["b"]], root, inputs["master"])
    with open_target(root) as t:  # an open for writing runs recovery
        findings = t.verify()
        t.remove([file_sha256(inputs["a"])])
    ingest([inputs["c"]], root, inputs["master"], force=True)
    for path, data in strays.items():
        assert path.read_bytes() == data, path
    reported = {f.subject for f in findings if f.code in ("stray_file", "orphan_part")}
    assert reported == {p.relative_to(root).as_posix() for p in strays}
    # README's recipe still reads the dataset with the strays present.
    glob = str(root / "ticks" / "*" / "part-*.parquet")
    n = duckdb.execute("SELECT count(*) FROM read_parquet(?, hive_partitioning=true)", [glob]).fetchone()[0]
    assert n == inputs["packets"]["b"] + inputs["packets"]["c"]
    result = tickscope("verify", root)
    assert result.returncode == EXIT_DAMAGED and result.stdout.count("\n") == len(strays) + 1


def test_an_orphan_part_is_reported_not_deleted(tmp_path, inputs):
    root = target_path(tmp_path, "parquet")
    ingest([inputs["a"]], root, inputs["master"])
    part = parts_of(root, inputs["a"])[0]
    orphan = part.parent / part.name.replace(part.name.split("-")[2], "0badc0de")
    orphan.write_bytes(part.read_bytes())
    with open_target(root) as t:
        (finding,) = t.verify()
    assert finding.code == "orphan_part" and orphan.exists()


# --- remove: exactly as if never ingested ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_remove_leaves_the_target_as_if_the_capture_was_never_ingested(tmp_path, inputs, kind):
    full = target_path(tmp_path, kind, "full")
    without = target_path(tmp_path, kind, "without")
    ingest([inputs["a"], inputs["b"], inputs["c"]], full, inputs["master"])
    ingest([inputs["b"], inputs["c"]], without, inputs["master"])
    before = snapshot(full)
    assert before["counts"]["bad_packets"] > 0
    result = tickscope("remove", full, inputs["a"], "--json")
    assert result.returncode == 0, result.stderr
    removed = json.loads(result.stdout)
    (entry,) = removed["removed"]
    fid = file_sha256(inputs["a"])
    assert entry["file_id"] == fid and entry["ticks"] == inputs["packets"]["a"]
    assert entry["bad_packets"] == before["counts"]["bad_packets"] > 0
    after, expected = snapshot(full), snapshot(without)
    assert after["counts"] == expected["counts"]
    assert after["ticks"].equals(expected["ticks"])
    assert after["bad"].equals(expected["bad"])
    assert after["captures"].equals(expected["captures"])
    assert after["unknown"].equals(expected["unknown"])
    with open_target(full) as t:
        assert t.verify() == []
        with pytest.raises(NotInTarget):
            t.remove([fid])
    if kind == "parquet":
        on_disk = sorted(p.relative_to(full).as_posix() for p in full.rglob("*.parquet"))
        assert not [p for p in on_disk if fid[:16] in p]


def test_remove_by_file_id_and_unknown_names(tmp_path, inputs):
    root = target_path(tmp_path, "parquet")
    ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    bad = tickscope("remove", root, file_sha256(inputs["a"]), tmp_path / "nowhere.dat")
    assert bad.returncode == 2 and "nothing was removed" in bad.stderr and bad.stderr.count("\n") == 1
    with open_target(root, read_only=True) as t:
        assert t.counts()["captures"] == 2
    ok = tickscope("remove", root, file_sha256(inputs["a"]))
    assert ok.returncode == 0 and ok.stdout.startswith("removed a.dat")


# --- a dataset written by the previous version -----------------------------------------------------


def test_a_version_1_dataset_opens_and_is_migrated(tmp_path, inputs):
    root = target_path(tmp_path, "parquet")
    ingest([inputs["a"], inputs["b"]], root, inputs["master"])
    clean = snapshot(root)
    # The previous layout: the manifest lists parts only, the marker says version 1.
    path = root / "captures" / "captures.parquet"
    old = pq.read_table(path)
    pq.write_table(old.select([n for n in old.column_names if not n.startswith("part_")]), path)
    (root / MARKER).write_text(json.dumps({"format": "tickscope-parquet", "version": 1}) + "\n")
    with open_target(root, read_only=True) as t:
        assert t.ticks().equals(clean["ticks"])
    with open_target(root) as t:
        assert t.verify() == []
    assert json.loads((root / MARKER).read_text())["version"] == FORMAT_VERSION
    assert pq.read_schema(path).names == PARQUET_CAPTURES_SCHEMA.names
    assert snapshot(root)["ticks"].equals(clean["ticks"])


def test_an_unreadable_manifest_is_damage_for_verify(tmp_path, inputs):
    root = target_path(tmp_path, "parquet")
    ingest([inputs["b"]], root, inputs["master"])
    (root / "captures" / "captures.parquet").write_bytes(b"garbage" * 20)
    result = tickscope("verify", root)
    assert result.returncode == EXIT_DAMAGED, result.stderr
    assert "captures/captures.parquet" in result.stdout and result.stderr == ""

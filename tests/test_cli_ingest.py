"""`tickscope ingest`, `unknown` and `resolve` as a user runs them: exit codes, output,
a target held by another process, and kill -9 in the middle of writing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from app.cli import main
from app.commands.ingest import PlainProgress, TerminalProgress
from app.core import decode
from app.core.capture import CaptureRecord
from app.pipeline.ingest import file_sha256
from app.store import duck, open_target
from app.store.parquet import parts as parquet_parts
from tests.conftest import REPO
from tests.support import synthetic
from tests.support.cli import run_cli

KINDS = ["duckdb", "parquet"]


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    """The command line logs to the user's data folder: keep tests (and their subprocesses) out of the real one."""
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(tmp_path / "tickscope-data"))
    yield
    from app import logs

    logs.shutdown_cli_logging()


def target_path(tmp_path: Path, kind: str) -> Path:
    return tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")


def tickscope(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    a = synthetic.generate_capture(folder / "a.dat", packets=3000, framing="raw", seed=11)
    b = synthetic.generate_capture(folder / "b.dat", packets=2000, framing="u32len", seed=12)
    masters = tmp_path_factory.mktemp("masters")
    instruments = synthetic.make_instruments(0)
    # The day's dump lists every ticking instrument; a partial one leaves some unnamed.
    full = masters / "instruments_20251013.csv"
    synthetic.write_instruments_csv(full, instruments, synthetic.SESSION_DATE)
    return folder, a.packets + b.packets, full


def test_ingest_json_summary_and_exit_codes(tmp_path, small, capsys):
    folder, packets, _ = small
    target = tmp_path / "t.duckdb"
    assert main(["ingest", str(folder), "--target", str(target), "--json", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["counts"] == {"ingested": 2, "skipped": 0, "failed": 0, "cancelled": 0}
    assert sum(f["packets"] for f in summary["files"]) == packets
    assert {f["status"] for f in summary["files"]} == {"ingested"}
    assert main(["ingest", str(folder), "--target", str(target), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["counts"]["skipped"] == 2
    with open_target(target) as t:
        assert t.counts()["ticks"] == packets


@pytest.mark.parametrize(
    "args, needle",
    [
        (["ingest", "missing.dat", "--target", "t.duckdb"], "input not found"),
        (["ingest", "EMPTY", "--target", "t.duckdb"], "no capture or tick files"),
        (["ingest", "x.dat", "--target", "t.duckdb", "--workers", "0"], "--workers"),
        (["ingest", "x.dat", "--target", "t.duckdb", "--workers", "many"], "--workers"),
        (["ingest", "x.dat"], "--target"),
        (["ingest", "x.dat", "--target", "t.duckdb", "--instruments", "nope.csv"], "not found"),
        (["ingest", "x.dat", "--target", "t.duckdb", "--memory-limit", "lots"], "--memory-limit"),
        (["ingest", "x.dat", "--target", "t.duckdb", "--memory-limit", "1MB"], "at least 128 MB"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, needle):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "x.dat").write_bytes(b"\x00")
    args = [str(tmp_path / a) if a in ("missing.dat", "EMPTY", "x.dat", "t.duckdb", "nope.csv") else a for a in args]
    # A usage error argparse raises (SystemExit) in a real process once; the rest in this one.
    result = (tickscope if "many" in args else run_cli)(*args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "t.duckdb").exists()  # nothing created before the arguments are checked


def test_some_files_failing_exit_4_and_the_others_are_ingested(tmp_path, small, capsys):
    folder, _, _ = small
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instrument_token": "x"}, 5]\n')
    code = main(["ingest", str(folder / "a.dat"), str(broken), "--target", str(tmp_path / "t.duckdb"), "--json"])
    assert code == 4
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [f["status"] for f in summary["files"]] == ["ingested", "failed"]
    assert summary["files"][1]["error"]


HOLDER = textwrap.dedent(
    """
    import duckdb, sys, time
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE IF NOT EXISTS held (x INT)")
    print("holding", flush=True)
    sys.stdin.read()  # holds the target until the test closes stdin or kills it
    """
)


def test_a_duckdb_target_held_by_another_process_exits_3_fast_and_writes_nothing(tmp_path, small):
    folder, _, _ = small
    target = tmp_path / "t.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = run_cli("ingest", folder, "--target", target)  # the holder is the other process
        held = holder.poll() is None  # it gave up while the target was held: it did not wait for it
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 3, result.stderr
    assert held
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"PID {holder.pid}" in lines[0] and "retry" in lines[0]
    con = duckdb.connect(str(target), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert tables == {"held"}  # nothing of ours was written


@pytest.fixture
def big(tmp_path_factory, kind):
    """A small file then a bigger one (workers=1 keeps that order). For DuckDB the bigger one
    holds more than one DuckDB insert before its pause point: PAUSED_INGEST makes an insert
    one row group (122,880 rows) instead of up to 4 (one per DuckDB thread), so 140,000
    packets do, on any number of cores (700,000 did with 4 row groups: 5x the CPU). A Parquet
    part is far bigger than either (parts.PARALLEL_PART_ROWS, the smaller size): 40,000 packets are handed
    over in more than one decoded batch (decode.SUB_BATCH_PACKETS) before the pause, as many
    as 140,000 were, at a quarter of the decoding and writing."""
    folder = tmp_path_factory.mktemp(f"big-{kind}")
    small = synthetic.generate_capture(folder / "a_small.dat", packets=5000, seed=21)
    large = synthetic.generate_capture(folder / "b_large.dat", packets=140_000 if kind == "duckdb" else 40_000,
                                       seed=22)
    return folder, small.packets, large.packets


# The real `tickscope ingest`, paused in the middle of writing the large capture: once
# the target has been handed ``rows`` of its ticks (none committed), it says PAUSED on
# stderr and waits to be killed. The kill then lands at that point on any machine,
# however fast it decodes or writes (a sleep before the kill raced the ingest).
PAUSED_INGEST = textwrap.dedent(
    """
    import sys, threading
    import app.store.duck, app.store.parquet
    from app.cli import main
    from app.store.base import Target

    victim, rows = sys.argv[1], int(sys.argv[2])
    app.store.duck.MAX_INSERT_ROW_GROUPS = 1  # an insert is one row group, whatever the cores

    def watched(write):
        add_ticks, handed = write.add_ticks, [0]
        def add(ticks):
            add_ticks(ticks)
            handed[0] += ticks.num_rows
            if handed[0] >= rows:
                print(f"PAUSED after {handed[0]} rows", file=sys.stderr, flush=True)
                threading.Event().wait()  # until killed
        write.add_ticks = add
        return write

    def pausing(begin):
        def wrapper(self, file_id, *args, **kwargs):
            write = begin(self, file_id, *args, **kwargs)
            return watched(write) if file_id == victim else write
        return wrapper

    def targets(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from targets(sub)

    for cls in set(targets(Target)):
        if "begin" in vars(cls):
            cls.begin = pausing(cls.begin)
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_kill_9_mid_write_then_rerun_gives_exact_counts(tmp_path, big, kind):
    folder, small_packets, large_packets = big
    target = target_path(tmp_path, kind)
    victim = file_sha256(folder / "b_large.dat")
    if kind == "duckdb":  # beyond one DuckDB insert, and most of the capture handed over (~94%)
        pause_at = duck.ROW_GROUP_ROWS + (large_packets - duck.ROW_GROUP_ROWS) // 2
        assert duck.ROW_GROUP_ROWS < pause_at < large_packets
    else:  # beyond one decoded batch (the pause comes after the second, ~82% of the capture)
        pause_at = large_packets // 2
        assert decode.SUB_BATCH_PACKETS < pause_at < large_packets < parquet_parts.PARALLEL_PART_ROWS
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_INGEST, victim, str(pause_at),
         "ingest", str(folder), "--target", str(target), "--workers", "1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        seen = []
        for line in proc.stderr:  # ends at the pause, or at EOF if the child exits instead
            seen.append(line)
            if line.startswith("PAUSED"):
                break
        assert seen and seen[-1].startswith("PAUSED"), seen
        assert any(line.startswith("done") and "a_small" in line for line in seen), seen
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    with open_target(target) as t:  # opens cleanly; only the committed capture is there
        assert t.counts() == {"captures": 1, "ticks": small_packets, "bad_packets": 0}
    if kind == "parquet":
        assert not list(target.rglob("*.tmp"))
        assert len({p.name.split("-")[1] for p in (target / "ticks").rglob("part-*.parquet")}) == 1

    result = run_cli("ingest", folder, "--target", target, "--json")  # the next run, after the kill
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [f["status"] for f in summary["files"]] == ["skipped", "ingested"]
    with open_target(target) as t:
        assert t.counts() == {"captures": 2, "ticks": small_packets + large_packets, "bad_packets": 0}
        captures = {r["file_id"]: r["packets"] for r in t.captures().to_pylist()}
        ticks = t.ticks(["file_id"])["file_id"].value_counts().to_pylist()
        assert {v["values"]: v["counts"] for v in ticks} == captures


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_and_resolve_commands(tmp_path, small, capsys, kind):
    folder, packets, full_master = small
    target = target_path(tmp_path, kind)
    assert main(["ingest", str(folder), "--target", str(target)]) == 0
    capsys.readouterr()

    assert main(["unknown", str(target)]) == 0
    text = capsys.readouterr().out
    assert "token" in text.splitlines()[0] and "diagnosis" in text.splitlines()[0]
    assert main(["unknown", str(target), "--json"]) == 0
    before = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(r["ticks"] for r in before) == packets  # no master yet: nothing is named
    assert {r["diagnosis"] for r in before} >= {"absent"}

    assert main(["resolve", str(target), "--instruments", str(full_master), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert 0 < result["resolved_ticks"] < packets
    assert result["resolved_ticks"] + result["unresolved_ticks"] == packets

    assert main(["unknown", str(target), "--csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("instrument_token,segment")
    assert len(rows) - 1 == result["unknown_tokens"]
    with open_target(target) as t:
        resolved = t.ticks(["resolved"])["resolved"].to_pylist().count(True)
        assert resolved == result["resolved_ticks"]
        assert t.instruments().num_rows > 0


def test_unknown_on_a_missing_target_is_exit_2(tmp_path):
    result = run_cli("unknown", tmp_path / "none.duckdb")
    assert result.returncode == 2 and "ingest into it first" in result.stderr


def _update(index, stage, packets=0, fraction=0.5):
    return CaptureRecord(f"/data/f{index}.dat", size_bytes=1000, status=stage, bytes_done=int(fraction * 1000),
                         packets=packets, rate_pps=50_000.0 if packets else 0.0, index=index)


def test_terminal_progress_redraws_in_place():
    out = io.StringIO()
    display = TerminalProgress(out)
    display(_update(0, "decoding", 10_000, 0.25))
    display(_update(1, "decoding", 5_000, 0.5))
    display(_update(0, "done", 40_000, 1.0))
    text = out.getvalue()
    assert "\x1b[" in text and "F" in text  # cursor moved back up to redraw
    assert "f0.dat" in text and "100.0%" in text and "ETA" in text


def test_plain_progress_prints_one_line_per_stage():
    out = io.StringIO()
    display = PlainProgress(out)
    for packets in (1, 2, 3):
        display(_update(0, "decoding", packets))
    display(_update(0, "done", 3, 1.0))
    assert out.getvalue().splitlines() == [
        "decoding  /data/f0.dat",
        "done      /data/f0.dat (3 packets, 0 bad, 0 unresolved)",
    ]

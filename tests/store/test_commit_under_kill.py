"""A reader following README's recipe never sees a capture twice or uncommitted, whatever
point a writer is SIGKILLed at; the next open recovers to exact counts (both targets).

The writer (tests/store/commit_writer.py, its own process) ingests three small captures
and force-replaces some of them, pausing at every event: each file operation inside the
target, each progress update, each DuckDB write call. At each file operation of the
Parquet writer the reader (tests/store/recipe_reader.py, its own process, looping over read
requests) reads the target twice: once while the writer waits, once while it carries
on to its next event. The writer is SIGKILLed at an event chosen by a seeded RNG, then
the test opens the target (recovery) and checks it against everything the reader saw.
A DuckDB file cannot be read while its writer holds it: there the reader reads after
each kill, before the next open. No sleeps: every step waits for the line it needs.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import synthetic
from app.pipeline.ingest import file_sha256
from app.store import open_target
from tests.conftest import REPO

KILLS = 30  # per target
LINE_TIMEOUT = 120  # seconds: only a hung helper process ever reaches it


class Helper:
    """A helper process speaking lines: stdout pumped into a queue by a thread."""

    def __init__(self, module: str, arg: str, env: dict, stderr: Path):
        self._stderr = open(stderr, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, arg], cwd=REPO, env=env, text=True, bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, text: str = "") -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def line(self):
        try:
            return self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"{self.proc.args[2]} said nothing for {LINE_TIMEOUT} s") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._stderr.close()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=LINE_TIMEOUT)
        self._stderr.close()


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill-captures")
    made = {}
    for name, seed, framing in (("a", 41, "raw"), ("b", 42, "u32len"), ("c", 43, "raw")):
        info = synthetic.generate_capture(folder / f"{name}.dat", packets=600, seed=seed, framing=framing)
        made[str(folder / f"{name}.dat")] = info.packets
    return made


def read_once(reader: Helper) -> dict:
    reader.send("read")
    answer = json.loads(reader.line())
    return answer


STATS = {"reads": 0, "failed_reads": 0, "reads_with_ticks": 0, "events": 0}


def check_read(answer: dict, seen: set) -> None:
    STATS["reads"] += 1
    if not answer["ok"]:
        STATS["failed_reads"] += 1  # a part vanished under a read of a moving writer: retried
        return
    STATS["reads_with_ticks"] += bool(answer["ticks"])
    for fid, (rows, distinct) in answer["ticks"].items():
        assert rows == distinct, f"reader saw {rows - distinct} duplicate (file_id, msg_seq, pkt_seq) keys of {fid[:16]}"
        seen.add(fid)


def recover_and_check(target: Path, seen: set, packets_by_id: dict, reader: Helper) -> int:
    """The next open (recovery); then every file_id seen is committed and counts are exact."""
    with open_target(target) as t:
        manifest = t.file_ids()
        assert seen <= manifest, f"reader saw uncommitted captures {sorted(f[:16] for f in seen - manifest)}"
        assert t.verify() == [], [f.line() for f in t.verify()]
        captures = t.captures()
    answer = read_once(reader)
    assert answer["ok"], answer
    stored = {fid: rows for fid, (rows, _) in answer["ticks"].items()}
    expected = {fid: packets_by_id[fid] for fid in manifest}
    assert stored == {fid: n for fid, n in expected.items() if n}, "counts after recovery are not exact"
    assert dict(zip(captures["file_id"].to_pylist(), captures["packets"].to_pylist())) == expected
    return len(manifest)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
def test_reader_never_sees_duplicates_or_uncommitted_captures_across_kills(tmp_path, captures, kind):
    target = tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")
    paths = sorted(captures)
    packets_by_id = {file_sha256(Path(p)): n for p, n in captures.items()}
    env = dict(os.environ, TICKSCOPE_DATA_DIR=str(tmp_path / "data"))
    # Seeded: the same kill points each run (KILL_TEST_SEED=... explores others).
    rng = random.Random(f"commit-under-kill-{kind}-{os.environ.get('KILL_TEST_SEED', '')}")
    reader = Helper("tests.store.recipe_reader", str(target), env, tmp_path / "reader.log")
    kills = finished = 0
    STATS.update(reads=0, failed_reads=0, reads_with_ticks=0, events=0)
    events_per_run = 40  # refined by runs that finish
    try:
        while kills < KILLS:
            force = rng.sample(paths, rng.randint(1, 2))
            config = {"target": str(target), "ingest": paths, "force": force}
            writer = Helper("tests.store.commit_writer", json.dumps(config), env, tmp_path / "writer.log")
            kill_at = rng.randint(1, events_per_run)
            seen: set = set()
            killed = False
            try:
                while True:
                    line = writer.line()
                    if line is None or line == "END":
                        assert line == "END", f"writer died on its own: {(tmp_path / 'writer.log').read_text()[-2000:]}"
                        finished += 1
                        events_per_run = int(last_event)  # kill points within what a run does now
                        break
                    tag, number, what = line.split(" ", 2)
                    assert tag == "E", line
                    last_event = number
                    STATS["events"] += 1
                    # Files change only at file operations: read there (progress updates are
                    # kill points only).
                    reads = kind == "parquet" and not what.startswith("progress")
                    if reads:
                        check_read(read_once(reader), seen)  # the state the writer paused in
                    if int(number) >= kill_at:
                        writer.kill()
                        killed = True
                        break
                    if reads:
                        reader.send("read")  # read while the writer carries on
                        writer.send()
                        check_read(json.loads(reader.line()), seen)
                    else:
                        writer.send()
            finally:
                if killed:
                    kills += 1
                else:
                    writer.close()
            answer = read_once(reader)  # before the next open: what the kill left
            assert answer["ok"], answer
            check_read(answer, seen)
            recover_and_check(target, seen, packets_by_id, reader)
        # Finally a run to the end: everything in, exactly once.
        writer = Helper("tests.store.commit_writer",
                        json.dumps({"target": str(target), "ingest": paths, "force": paths[:1]}),
                        env, tmp_path / "writer.log")
        while (line := writer.line()) not in (None, "END"):
            writer.send()
        assert line == "END"
        writer.close()
        assert recover_and_check(target, set(), packets_by_id, reader) == len(paths)
    finally:
        reader.close()
    assert kills >= KILLS
    # The reader really read the target while it changed (not only empty states).
    assert STATS["reads_with_ticks"] >= KILLS // 2, STATS
    print(f"{kind}: {kills} kills, {finished} runs to the end, {STATS}")

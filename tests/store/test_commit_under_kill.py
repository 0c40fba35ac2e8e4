"""A reader following README's recipe never sees a capture twice or uncommitted, whatever
step of the commit protocol a writer is SIGKILLed at; the next open recovers to exact
counts (both targets).

The writer (tests/store/commit_writer.py, its own process, forked per run by a forkserver that
imported the pipeline and stores once) ingests three small captures,
then force-replaces two of them, pausing before every event: each file operation inside
the target, each progress update, each DuckDB write call. The kill points are chosen from
those events, deterministically: a protocol step is the (phase, anything committed yet in
this run, operation) of an event, the operation being the file operation or DuckDB call with
the random/hash parts of its file name masked (``replace .part-*-*-1.parquet.*.tmp``: the
second part of a capture staged). Each run is killed at the first step no earlier run was
killed at, until a run goes to its end without meeting a new one: every step reachable from
the states earlier kills leave is killed at exactly once (38 steps for Parquet, 8 for
DuckDB, against 30 seeded random kills per target before, which hit the same step
repeatedly and often a progress update, where the target is in the same state as at the next
step; progress updates are no kill points for that reason). A kill after a capture's commit
record is in place ends, after recovery, with that capture committed, so the ingest phase
runs out of new captures before it reaches a second capture's steps; the force phase
rewrites two captures in every run and reaches them all (the same protocol plus the
replacement's removals).

At each Parquet file operation of a step not read at before, the reader
(tests/store/recipe_reader.py, its own process, looping over read requests) reads the
target twice: once while the writer waits, once while it carries on to its next event. A
DuckDB file cannot be read while its writer holds it: there the reader reads after each
kill, before the next open. After each kill the test opens the target (recovery) and checks
it against everything the reader saw. No sleeps: every step waits for the line it needs.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.pipeline.ingest import file_sha256
from app.store import open_target
from tests.conftest import REPO
from tests.store import commit_writer
from tests.support import forkserver, synthetic

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


class Writer:
    """A commit_writer run in its own process, forked by a forkserver that imported the pipeline
    and both stores once: a run costs a fork, not an interpreter start and those imports. Its
    events come over a Pipe; kill() is a real SIGKILL of that process, then waits for its exit."""

    context = forkserver.context()  # its preload: commit_writer.PRELOAD's modules (tests/support/forkserver.py)

    def __init__(self, config: dict, stderr: Path):
        self.conn, child = self.context.Pipe()
        self.proc = self.context.Process(target=commit_writer.run, args=(config, child, str(stderr)))
        self.proc.start()
        child.close()  # the writer's end lives in the writer only: its death is EOF here

    def line(self):
        if not self.conn.poll(LINE_TIMEOUT):
            raise AssertionError(f"the writer said nothing for {LINE_TIMEOUT} s")
        try:
            return self.conn.recv()
        except EOFError:
            return None

    def send(self) -> None:
        self.conn.send("")

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.join()
        assert self.proc.exitcode == -signal.SIGKILL, self.proc.exitcode
        self.conn.close()

    def close(self) -> None:
        self.proc.join(LINE_TIMEOUT)
        self.conn.close()


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
        assert rows == distinct, (f"reader saw {rows - distinct} duplicate (file_id, msg_seq, pkt_seq) keys "
                                  f"of {fid[:16]}")
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
    assert dict(zip(captures["file_id"].to_pylist(), captures["packets"].to_pylist(), strict=True)) == expected
    return len(manifest)


def protocol_step(phase: str, committed: bool, what: str) -> tuple:
    """The step an event is: its random and content-hash parts masked, part numbers kept."""
    return phase, committed, re.sub(r"[0-9a-f]{8,}", "*", what)


COMMITS = ("unlink commit.json", "duckdb commit")  # the events after which a capture is in


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
def test_reader_never_sees_duplicates_or_uncommitted_captures_across_kills(tmp_path, captures, kind):
    target = tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")
    paths = sorted(captures)
    packets_by_id = {file_sha256(Path(p)): n for p, n in captures.items()}
    env = dict(os.environ, TICKSCOPE_DATA_DIR=str(tmp_path / "data"))
    config = {"target": str(target), "ingest": paths, "force": paths[:2],
              "env": {"TICKSCOPE_DATA_DIR": env["TICKSCOPE_DATA_DIR"]}}
    reader = Helper("tests.store.recipe_reader", str(target), env, tmp_path / "reader.log")
    killed_at: list[tuple] = []  # the step of each kill, in order
    read_at: set = set()  # Parquet steps the reader read at
    steps: set = set()  # every step met
    STATS.update(reads=0, failed_reads=0, reads_with_ticks=0, events=0)
    try:
        while True:  # one writer run per kill, then one to the end
            writer = Writer(config, tmp_path / "writer.log")
            seen: set = set()
            committed = killed = False
            current = "ingest"
            try:
                while True:
                    line = writer.line()
                    if line is None or line == "END":
                        assert line == "END", f"writer died on its own: {(tmp_path / 'writer.log').read_text()[-2000:]}"
                        break
                    tag, _, phase, what = line.split(" ", 3)
                    assert tag == "E", line
                    STATS["events"] += 1
                    if what.startswith("progress"):
                        writer.send()  # the target is as at the next step: not a kill point
                        continue
                    if phase != current:  # the force run_ingest started: nothing of it committed
                        current, committed = phase, False
                    step = protocol_step(phase, committed, what)
                    steps.add(step)
                    # Files change only at file operations: read there (once per step).
                    reads = kind == "parquet" and step not in read_at
                    if reads:
                        read_at.add(step)
                        check_read(read_once(reader), seen)  # the state the writer paused in
                    if step not in killed_at:
                        killed_at.append(step)
                        writer.kill()
                        killed = True
                        break
                    if reads:
                        reader.send("read")  # read while the writer carries on
                        writer.send()
                        check_read(json.loads(reader.line()), seen)
                    else:
                        writer.send()
                    committed = committed or what in COMMITS
            finally:
                if not killed:
                    writer.close()
            assert killed or writer.proc.exitcode == 0, writer.proc.exitcode
            answer = read_once(reader)  # before the next open: what the kill left
            assert answer["ok"], answer
            check_read(answer, seen)
            stored = recover_and_check(target, seen, packets_by_id, reader)
            if not killed:
                break  # a run met no new step: each step was killed at once
        # The last run went to its end: everything in, exactly once.
        assert stored == len(paths)
    finally:
        reader.close()
    print(f"{kind}: killed at", *killed_at, sep="\n  ")
    assert len(killed_at) == len(set(killed_at)) == len(steps)
    ops = {what for _, _, what in killed_at}
    # The first capture of each phase, and (force, which rewrites two captures in every run)
    # a capture after another one committed in the same run.
    for phase, committed in (("ingest", False), ("force", False), ("force", True)):
        assert {s for p, c, s in killed_at if (p, c) == (phase, committed)}, (phase, committed, killed_at)
    if kind == "parquet":
        assert read_at == steps
        # Every step of the protocol (docs/architecture.md) was a kill point.
        for needle in (".part-", ".summary-", ".commit.json", "unlink commit.json", ".captures.parquet",
                       "unlink part-"):
            assert any(needle in op for op in ops), (needle, sorted(ops))
        # The reader really read the target while it changed (not only empty states).
        assert STATS["reads_with_ticks"] >= len(killed_at) // 2, STATS
    else:
        assert {"duckdb add_ticks", "duckdb commit"} <= ops
    print(f"{kind}: {len(killed_at)} kills at distinct protocol steps, {STATS}")

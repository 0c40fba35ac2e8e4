"""`tickscope ingest` as a terminal shows it: live progress that fits the terminal, and a
Ctrl-C whose exit status and --json line agree."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading

import pytest

from app.cli import main
from app.commands import ingest as ingest_command
from app.commands.ingest import TerminalProgress
from app.core.capture import HASHING, CaptureRecord
from app.pipeline import IngestJob
from app.store import open_target
from tests.support import synthetic

ANSI = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def _update(index, stage, packets=0, fraction=0.5, error=None):
    return CaptureRecord(path=f"/data/a_long_capture_name_for_the_market_open_{index:03d}.dat", size_bytes=1000,
                         status="decoding" if stage == HASHING else stage, hashing=stage == HASHING,
                         bytes_done=int(fraction * 1000), packets=packets,
                         rate_pps=1_250_000.0 if packets else 0.0, index=index, error=error)


def _fake_terminal(monkeypatch, columns, lines):
    monkeypatch.setattr(ingest_command.shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((columns, lines)))


def _drive(display, files=15):
    for i in range(files):
        display.last_draw = 0.0  # draw every update (they are throttled to 10/s otherwise)
        display(_update(i, "decoding", 1_000_000 + i, 0.3))
    display(_update(0, "failed", 5, 1.0, error="no Kite packets found (1,000 bytes, all bad: " + "x" * 80 + ")"))
    display(_update(1, "done", 12_345_678, 1.0))


def test_every_line_fits_an_80_column_terminal_so_redraws_do_not_scramble(monkeypatch):
    _fake_terminal(monkeypatch, 80, 10)
    out = io.StringIO()
    _drive(TerminalProgress(out))
    text = out.getvalue()
    moves = [int(n) for n, code in ANSI.findall(text) if code == "F"]
    assert moves and max(moves) <= 9  # never further up than the terminal is tall
    rows = ANSI.sub("", text).split("\n")
    assert max(len(r) for r in rows) <= 79, max(rows, key=len)
    # Narrow, but the numbers that matter are still there: the name and bar gave way first.
    assert any(re.search(r"30\.0% decoding +1,000,0\d\d pkt +1250k pkt/s ETA +\ds$", r) for r in rows)
    assert any(r.startswith("15 files") or "/15 files" in r for r in rows)


def test_a_wide_terminal_gets_the_whole_line(monkeypatch):
    _fake_terminal(monkeypatch, 200, 50)
    out = io.StringIO()
    _drive(TerminalProgress(out), files=3)
    rows = ANSI.sub("", out.getvalue()).split("\n")
    whole = TerminalProgress(io.StringIO())._line(_update(2, "decoding", 1_000_002, 0.3))
    assert len(whole) > 100 and "█" * 7 + "░" * 17 in whole
    assert whole in rows
    # Still cut at the edge: the failed file's long reason.
    assert max(len(r) for r in rows) == 199


@pytest.fixture(scope="module")
def two_captures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captures")
    synthetic.generate_capture(folder / "a.dat", packets=3000, framing="raw", seed=21)
    synthetic.generate_capture(folder / "b.dat", packets=2000, framing="u32len", seed=22)
    return folder


def test_ctrl_c_exits_130_and_the_json_line_says_so(tmp_path, two_captures, monkeypatch, capsys):
    sent = []
    cancelled = threading.Event()
    cancel = IngestJob.cancel

    def recording_cancel(self):
        cancel(self)
        cancelled.set()

    monkeypatch.setattr(IngestJob, "cancel", recording_cancel)

    class InterruptingProgress(ingest_command.PlainProgress):
        def __call__(self, update):
            super().__call__(update)
            if update.stage == "decoding" and not sent:
                sent.append(update.path)
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; the handler runs in the main thread
                # This file's decoder goes on once the handler has cancelled the job.
                assert cancelled.wait(60), "the Ctrl-C handler did not cancel the job"

    monkeypatch.setattr(ingest_command, "PlainProgress", InterruptingProgress)
    target = tmp_path / "t.duckdb"
    code = main(["ingest", str(two_captures), "--target", str(target), "--workers", "1", "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert sent and "cancelling" in captured.err
    assert code == 130
    assert summary["exit_code"] == 130
    assert [f["status"] for f in summary["files"]] == ["cancelled", "cancelled"]
    assert summary["counts"]["cancelled"] == 2
    with open_target(target) as t:
        assert t.counts() == {"captures": 0, "ticks": 0, "bad_packets": 0}


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["ingest", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text
    assert re.search(r"^\s+130\s+interrupted with Ctrl-C", text, re.M)
    assert '"exit_code": 130' in text


def test_a_dataset_inside_an_input_folder_and_a_fake_parquet(tmp_path, two_captures, capsys):
    nest = tmp_path / "nest"
    nest.mkdir()
    assert main(["ingest", str(two_captures / "a.dat"), "--target", str(nest / "rp")]) == 0
    (nest / "x.parquet").write_bytes(b"garbage\n")
    capsys.readouterr()
    code = main(["ingest", str(nest), "--target", str(tmp_path / "nest.duckdb"), "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Only the fake Parquet file was read (and failed); none of the dataset rp/.
    assert [(os.path.basename(f["path"]), f["status"]) for f in summary["files"]] == [("x.parquet", "failed")]
    assert "is not a Parquet file" in summary["files"][0]["error"]
    assert code == summary["exit_code"] == 4

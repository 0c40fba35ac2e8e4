"""The window queues a dropped path exactly when `tickscope ingest` reads it (one intake rule)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.store.checks import MARKER
from tests.support import encode


def _capture(framing: str) -> bytes:
    message = encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265, "last_price": 1234500})])
    return encode.frame([message] if framing == "single" else [message, message], framing)


def _files(folder):
    """One file of every kind a user might drop: captures, tick dumps, and things that are not."""
    made = {}

    def put(name, data):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        made[name] = path

    for framing in encode.FRAMINGS:  # every framing the decoder knows, as the encoder writes it
        put(f"cap_{framing}.dat", _capture(framing))
        put(f"noext_{framing}", _capture(framing))  # no telling extension: sniffed
    put("kite.har", _capture("har"))
    put("session.txt", b'{"a":"mode","v":["full",[1]]}' + _capture("base64"))  # a websocat log
    put("ticks.json", json.dumps([{"instrument_token": 256265, "last_price": 12.5}]))
    put("ticks.jsonl", '{"instrument_token": 256265, "last_price": 12.5}\n')
    put("ticks.ndjson", '{"instrument_token": 256265, "last_price": 12.5}\n')
    table = pa.table({"instrument_token": [256265], "last_price": [12.5]})
    pq.write_table(table, folder / "ticks.parquet")
    made["ticks.parquet"] = folder / "ticks.parquet"
    put("instruments.csv", "instrument_token,tradingsymbol\n256265,NIFTY\n")
    put("notes.txt", "hello")
    put("garbage.bin", bytes(range(256)) * 4)
    put("random_noext", b"\x89\xfe\x13" * 50)
    put("empty.dat", b"")
    put(".hidden.dat", _capture("raw"))
    put("ds/" + MARKER, "{}")
    put("ds/ticks/part-0.parquet", b"PAR1")
    return made


def _cli_reads(paths, target, capsys) -> set[str]:
    """The files `tickscope ingest` took as inputs (every file its --json report lists, those
    it skipped as already in ``target`` included: the cases share one target, ~40% cheaper
    than a new DuckDB file per case).

    The command line's own entry point (app.cli.main: argument parsing, intake, ingest, the
    --json report) run in this process: the same code path as `python -m app ingest`,
    without a Python start and imports per case (30 subprocesses cost ~15 CPU-s)."""
    from app import logs
    from app.cli import main

    try:
        code = main(["ingest", *map(str, paths), "--target", str(target), "--json"])
    finally:
        logs.shutdown_cli_logging()
    out, err = capsys.readouterr()
    if code == 2 and "no capture or tick files found" in err:
        return set()
    assert code in (0, 4), err
    report = json.loads(out.strip().splitlines()[-1])
    return {str(f["path"]) for f in report["files"]}


def _drop(window, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)


@pytest.mark.slow
def test_every_dropped_path_is_queued_exactly_when_the_cli_reads_it(make_window, tmp_path, capsys):
    folder = tmp_path / "inputs"
    made = _files(folder)
    # The folder as a whole, then every file named on its own.
    cases = [[folder]] + [[path] for name, path in sorted(made.items()) if not name.startswith("ds/")]
    cases.append([folder / "ds"])
    # One window for every case (a main window costs ~3 CPU-s to build): each drop lands on an
    # empty queue, and what it queued is taken out again before the next.
    window = make_window(interactive=False)
    read = {}
    for n, paths in enumerate(cases):
        assert not window.session.rows
        _drop(window, paths)
        queued = {r.path for r in window.session.rows}
        cli = _cli_reads(paths, tmp_path / "t.duckdb", capsys)
        assert queued == cli, (paths, queued, cli)
        assert window.session.remove(queued) == len(queued)
        read[n] = cli
    window.close()
    # The folder case is not vacuous: captures of every framing and every dump kind are in it,
    # and what is not an input is not.
    names = {p.split("/")[-1] for p in read[0]}
    assert {"cap_raw.dat", "noext_u32len", "kite.har", "session.txt", "ticks.ndjson", "ticks.parquet"} <= names
    assert not names & {"instruments.csv", "notes.txt", ".hidden.dat", "part-0.parquet"}
    # Cases that queue nothing exist too (the drop is refused like the command line refuses).
    assert any(not files for files in read.values()) and sum(map(bool, read.values())) > len(cases) // 2

"""`tickscope decode` as a user runs it: Parquet output, summaries, exit codes, enrichment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.core import protocol, schema
from tests.conftest import REPO
from tests.support import encode


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path, monkeypatch):
    """The command line logs to the user's data folder: keep tests (and their subprocesses) out of the real one."""
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(tmp_path / "tickscope-data"))
    yield
    from app import logs

    logs.shutdown_cli_logging()


def _capture(tmp_path: Path, framing: str = "raw", faults: bool = False, name: str = "capture.bin") -> Path:
    msgs = []
    for i in range(50):
        packets = [encode.encode_packet(184, {"instrument_token": (408065), "last_price": 150000 + i,
                                              "exchange_timestamp": 1_700_000_000 + i}),
                   encode.encode_packet(8, {"instrument_token": 256265, "last_price": 2_000_000 + i})]
        msgs.append(encode.encode_message(packets))
        if i % 10 == 0:
            msgs.append(protocol.HEARTBEAT)
    data = bytearray(encode.frame(msgs, framing))
    if faults:
        data[300:300] = b'{"type":"order","data":{}}'
        data += b"\x00\x05\x00\xb8\x01\x02"  # a truncated tail
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_decode_writes_parquet_and_json_summary(tmp_path, capsys):
    capture = _capture(tmp_path)
    out = tmp_path / "ticks.parquet"
    assert main(["decode", str(capture), "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr().out
    doc = _last_json(printed)
    assert "raw framing (detected)" in printed and "all accounted" in printed
    for key in ("framing", "messages", "packets", "heartbeats", "bad_packets", "bytes", "bytes_accounted",
                "file_id", "packets_by_length"):
        assert key in doc
    assert (doc["framing"], doc["messages"], doc["packets"], doc["heartbeats"], doc["bad_packets"]) == (
        "raw", 50, 100, 5, 0)
    assert doc["bytes"] == doc["bytes_accounted"] == capture.stat().st_size
    assert doc["packets_by_length"] == {"8": 50, "184": 50}
    table = pq.read_table(out)
    assert table.schema.equals(schema.TICK_SCHEMA, check_metadata=False)
    assert table.num_rows == doc["ticks"] == 100
    assert table.column("resolved").to_pylist() == [False] * 100
    assert table.column("last_price").to_pylist()[:2] == [1500.0, 20000.0]
    assert not out.with_name(out.name + ".part").exists()


def test_decode_of_a_faulty_capture_exits_zero_and_reports_the_faults(tmp_path, capsys):
    capture = _capture(tmp_path, faults=True)
    out = tmp_path / "ticks.parquet"
    assert main(["decode", str(capture), "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr().out
    doc = _last_json(printed)
    assert doc["bad_packets"] == 2 and doc["bytes_accounted"] == doc["bytes"]
    assert "JSON text frame" in printed and "truncated" in printed
    assert pq.read_table(out).num_rows == doc["packets"] > 90


def test_framing_override_and_other_framings(tmp_path, capsys):
    capture = _capture(tmp_path, framing="ts-u32len")
    out = tmp_path / "t.parquet"
    assert main(["decode", str(capture), "--out", str(out), "--json"]) == 0
    doc = _last_json(capsys.readouterr().out)
    assert doc["framing"] == "ts-u32len" and doc["bad_packets"] == 0
    assert pq.read_table(out, columns=["recv_ts"]).column(0).null_count == 0
    assert main(["decode", str(capture), "--out", str(out), "--framing", "raw", "--json"]) == 0
    doc = _last_json(capsys.readouterr().out)
    assert doc["framing"] == "raw" and doc["framing_detected"] is False and doc["bad_packets"] > 0
    assert doc["bytes_accounted"] == doc["bytes"]


@pytest.mark.parametrize("compression", ["lz4", "zstd", "snappy", "none"])
def test_compressions(tmp_path, capsys, compression):
    out = tmp_path / "t.parquet"
    assert main(["decode", str(_capture(tmp_path)), "--out", str(out), "--compression", compression]) == 0
    assert pq.read_table(out).num_rows == 100


def test_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    capture = _capture(tmp_path)
    cases = [
        ["decode", str(tmp_path / "missing.bin"), "--out", str(tmp_path / "o.parquet")],
        ["decode", str(capture), "--out", str(tmp_path / "no" / "such" / "o.parquet")],
        ["decode", str(tmp_path), "--out", str(tmp_path / "o.parquet")],
        ["decode", str(capture), "--out", str(tmp_path)],
        ["decode", str(capture), "--out", str(capture)],
        ["decode", str(capture), "--out", str(tmp_path / "o.parquet"), "--instruments", str(tmp_path / "none.csv")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("tickscope: error:") and len(err.splitlines()) == 1, err
        assert "Traceback" not in err
    assert capture.read_bytes()  # never overwritten
    assert not (tmp_path / "o.parquet").exists()


def test_bad_framing_argument_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(_capture(tmp_path)), "--out", str(tmp_path / "o.parquet"), "--framing", "zip"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_instruments_name_the_ticks(tmp_path, capsys):
    master = tmp_path / "instruments_20231115.csv"
    master.write_text(
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
        "instrument_type,segment,exchange\n"
        "408065,1594,INFY,INFOSYS,1500.0,,0,0.05,1,EQ,NSE,NSE\n"
    )
    out = tmp_path / "t.parquet"
    assert main(["decode", str(_capture(tmp_path)), "--out", str(out), "--instruments", str(master), "--json"]) == 0
    doc = _last_json(capsys.readouterr().out)
    assert doc["enrichment"]["resolved"] == 50
    table = pq.read_table(out)
    assert table.schema.equals(schema.TICK_SCHEMA, check_metadata=False)
    symbols = table.column("tradingsymbol").to_pylist()
    tokens = table.column("instrument_token").to_pylist()
    assert {s for s, t in zip(symbols, tokens, strict=True) if t == 408065} == {"INFY"}
    assert {s for s, t in zip(symbols, tokens, strict=True) if t == 256265} == {None}


def test_decode_as_a_subprocess(tmp_path):
    capture = _capture(tmp_path, name="binary_data_20231115_091500.dat")
    out = tmp_path / "t.parquet"
    result = subprocess.run([sys.executable, "-m", "app", "decode", str(capture), "--out", str(out), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    doc = _last_json(result.stdout)
    assert doc["packets"] == 100
    sources = pq.read_table(out, columns=["tick_time_source"]).column(0).to_pylist()
    assert set(sources) == {"exchange", "message"}
    missing = subprocess.run([sys.executable, "-m", "app", "decode", str(tmp_path / "nope"), "--out", str(out)],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def test_decode_a_har_reports_framing_har_and_its_frames(tmp_path, capsys):
    msgs = [encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265, "last_price": 2_000_000 + i})])
            for i in range(20)]
    t0 = 1_654_760_849_357_339_000
    frames = [encode.HarFrame("send", t0, '{"a":"subscribe","v":[256265]}')]
    frames += [encode.HarFrame("receive", t0 + i * 10**9, m) for i, m in enumerate(msgs)]
    frames.append(encode.HarFrame("receive", t0 + 30 * 10**9, b"\x00"))
    har = tmp_path / "kite.har"
    har.write_bytes(encode.har([encode.HarConnection("wss://ws.kite.trade/?api_key=x", frames)]))
    out = tmp_path / "T.parquet"
    assert main(["decode", str(har), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["framing"] == "har" and doc["framing_detected"] is True and doc["framing_evidence"]
    assert (doc["messages"], doc["packets"], doc["heartbeats"], doc["bad_packets"]) == (20, 20, 1, 0)
    assert doc["sent_frames"] == 1 and doc["connections"] == [
        {"url": "wss://ws.kite.trade/?api_key=x", "messages": 20, "heartbeats": 1, "text_frames": 0, "sent_frames": 1}]
    table = pq.read_table(out)
    assert table.column("recv_ts").cast("int64").to_pylist() == [(t0 + i * 10**9) // 1000 for i in range(20)]


def test_ingest_reads_har_and_websocat_logs_named_or_in_folders(tmp_path):
    from app.pipeline.inputs import expand_inputs, read_as

    msgs = [encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265, "last_price": 1})])] * 3
    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "kite.har").write_bytes(encode.frame(msgs, "har"))
    (folder / "session.txt").write_bytes(b'{"a":"mode","v":["full",[1]]}' + encode.frame(msgs, "base64"))
    (folder / "frames.json").write_bytes(encode.har([encode.HarConnection("", [encode.HarFrame("receive", 1, m)
                                                                               for m in msgs])], "list"))
    (folder / "notes.txt").write_text("a note, not a capture\n")
    found = [p.name for p in expand_inputs([folder])]
    assert found == ["frames.json", "kite.har", "session.txt"]
    assert {read_as(folder / name) for name in found} == {"capture"}


def test_decode_output_round_trips_with_the_chosen_encodings(tmp_path, capsys):
    """The Parquet file holds exactly the in-memory decode of the capture (every packet kind,
    faults included), stamped with the capture's sha256 by the writer thread, written with the
    per-column encodings of app.core.tick_parquet."""
    import hashlib

    from app.core.decode import decode_bytes
    from app.core.tick_parquet import write_options
    from tests.support import synthetic

    capture = tmp_path / "mixed_20251013_091500.bin"
    synthetic.generate_capture(capture, packets=3_000, seed=3, faults=True)
    out = tmp_path / "ticks.parquet"
    assert main(["decode", str(capture), "--out", str(out), "--json"]) == 0
    doc = _last_json(capsys.readouterr().out)
    data = capture.read_bytes()
    expected, _, summary = decode_bytes(data, name=str(capture))
    expected = schema.unenriched(expected)
    got = pq.read_table(out)
    assert got.schema.equals(schema.TICK_SCHEMA, check_metadata=False)
    assert got.num_rows == summary.packets == doc["packets"] > 2_900
    assert doc["file_id"] == hashlib.sha256(data).hexdigest()
    assert set(got.column("file_id").to_pylist()) == {doc["file_id"]}
    assert got.drop_columns(["file_id"]).equals(expected.drop_columns(["file_id"]))
    assert len({n for n, c in summary.packets_by_length.items() if c}) >= 4  # a mix of kinds, not one

    options = write_options(schema.TICK_SCHEMA)
    meta = pq.ParquetFile(out).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
               for i in range(meta.num_columns)}
    for path, encoding in options["column_encoding"].items():
        assert encoding in columns[path].encodings, path
    for path in ("bid_quantity.list.element", "instrument_token", "mode"):
        assert path in options["use_dictionary"] and "RLE_DICTIONARY" in columns[path].encodings, path
    assert columns["offset"].encodings.count("RLE_DICTIONARY") == 0
    assert columns["tick_time"].statistics.has_min_max  # readers prune row groups with them

    import duckdb  # the other reader users point at these files: same values from those encodings

    names = ["offset", "msg_seq", "total_buy_quantity", "bid_quantity", "bid_orders", "ask_price", "file_id"]
    con = duckdb.connect()
    read = con.sql("SELECT " + ", ".join(f'"{n}"' for n in names) + f" FROM read_parquet('{out}')").to_arrow_table()
    for name in names:
        assert read.column(name).to_pylist() == got.column(name).to_pylist(), name


def test_a_capture_that_cannot_be_hashed_is_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """The sha256 runs on its own thread: its read error is still the one-line exit-2 answer."""
    from app.core import digest
    from app.errors import EXIT_USAGE

    def unreadable(path, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(digest, "file_sha256", unreadable)
    capture = _capture(tmp_path)
    out = tmp_path / "ticks.parquet"
    assert main(["decode", str(capture), "--out", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot read capture" in err and "Input/output error" in err and "Traceback" not in err
    assert not out.exists() and not out.with_name(out.name + ".part").exists()


def test_ctrl_c_stops_the_hash_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """Interrupted mid-decode: exit 130, no output, and the sha256 thread is told to stop
    (a big capture is not read to its end after Ctrl-C)."""
    import threading

    from app.core import digest
    from app.core.decode import CaptureReader
    from app.errors import EXIT_INTERRUPTED

    told = threading.Event()

    def slow_hash(path, cancel=None, on_bytes=None):
        if cancel is not None and cancel.wait(timeout=60):
            told.set()
            raise digest.HashCancelled()
        return "f" * 64

    def interrupted(self, cancel=None):
        raise KeyboardInterrupt
        yield  # a generator, as the real one

    monkeypatch.setattr(digest, "file_sha256", slow_hash)
    monkeypatch.setattr(CaptureReader, "batches", interrupted)
    out = tmp_path / "ticks.parquet"
    assert main(["decode", str(_capture(tmp_path)), "--out", str(out)]) == EXIT_INTERRUPTED
    assert told.wait(timeout=30)  # the hash thread saw the cancel (it is not joined on the way out)
    assert not out.exists() and not out.with_name(out.name + ".part").exists()

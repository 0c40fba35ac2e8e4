"""What the queue takes from drops and pickers: extensions, sniffed captures, folders."""

from __future__ import annotations

import struct

import pytest

from app.core import encode
from app.ui import intake


def _messages(n=3):
    ltp = encode.encode_packet(8, {"instrument_token": 408065, "last_price": 150000})
    quote = encode.encode_packet(44, {"instrument_token": 256265, "last_price": 2500000})
    return [encode.encode_message([ltp, quote]) for _ in range(n)]


@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len", "base64", "single"])
def test_sniff_recognises_every_framing(framing):
    messages = _messages(1 if framing == "single" else 3)
    data = encode.frame(messages, framing)
    assert intake.sniff_framing(data) == framing


def test_sniff_refuses_text_and_random_bytes():
    assert intake.sniff_framing(b"hello world, this is a text file\n") is None
    assert intake.sniff_framing(bytes(range(256)) * 4) is None
    assert intake.sniff_framing(b"") is None


def test_gather_takes_supported_and_sniffed_files_and_refuses_the_rest(tmp_path):
    capture = encode.frame(_messages(), "raw")
    (tmp_path / "a.dat").write_bytes(capture)
    (tmp_path / "b.jsonl").write_text('{"instrument_token": 1}\n')
    (tmp_path / "capture_no_ext").write_bytes(encode.frame(_messages(), "u32len"))
    (tmp_path / "notes.txt").write_text("not a capture")
    (tmp_path / "instruments.csv").write_text("instrument_token,tradingsymbol\n1,X\n")
    (tmp_path / ".hidden.dat").write_bytes(capture)
    sub = tmp_path / "day2"
    sub.mkdir()
    (sub / "c.bin").write_bytes(capture)
    found = intake.gather([tmp_path])
    names = sorted(p.rsplit("/", 1)[-1] for p, _, _ in found.accepted)
    assert names == ["a.dat", "b.jsonl", "c.bin", "capture_no_ext"]
    refused = {p.rsplit("/", 1)[-1]: reason for p, reason in found.refused}
    assert set(refused) == {"notes.txt", "instruments.csv"}
    assert "not a Kite capture" in refused["notes.txt"]
    framings = {p.rsplit("/", 1)[-1]: f for p, _, f in found.accepted}
    assert framings["a.dat"] == "raw"
    assert framings["capture_no_ext"] == "u32len"
    assert framings["b.jsonl"] == "jsonl"


def test_gather_reports_missing_and_empty_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    found = intake.gather([tmp_path / "nope.dat", tmp_path / "empty"])
    assert not found.accepted
    reasons = dict((p.rsplit("/", 1)[-1], r) for p, r in found.refused)
    assert reasons == {"nope.dat": "no such file", "empty": "empty file"}
    assert found.summary().startswith("Not queued: nope.dat — no such file (and 1 more)")


def test_supported_extension_is_queued_even_if_content_is_odd(tmp_path):
    # The pipeline decides and the row shows why it failed: never silently dropped.
    odd = tmp_path / "odd.parquet"
    odd.write_bytes(struct.pack(">I", 7) + b"garbage")
    found = intake.gather([odd])
    assert [p for p, _, _ in found.accepted] == [str(odd)]


def test_special_files_are_refused_without_reading_them(tmp_path):
    import os

    fifo = tmp_path / "pipe.dat"
    os.mkfifo(fifo)
    found = intake.gather([tmp_path])  # would block forever if it opened the FIFO
    assert found.refused == [(str(fifo), "not a regular file")]


def test_a_parquet_dataset_in_a_dropped_folder_is_left_alone(tmp_path):
    # Before: its part files and tickscope-dataset.json were queued as tick dumps.
    from app.pipeline import run_ingest

    capture = tmp_path / "src" / "a.dat"
    capture.parent.mkdir()
    capture.write_bytes(encode.frame(_messages(), "raw"))
    nest = tmp_path / "nest"
    nest.mkdir()
    (nest / "a.dat").write_bytes(capture.read_bytes())
    dataset = nest / "rp"
    assert run_ingest([capture], dataset).exit_code == 0
    assert list(dataset.rglob("*.parquet"))
    found = intake.gather([nest])
    assert [p for p, _, _ in found.accepted] == [str(nest / "a.dat")]
    assert found.refused == []  # a nested dataset is skipped quietly, as `tickscope ingest` does
    dropped = intake.gather([dataset])  # the dataset itself: say why nothing was queued
    assert dropped.accepted == []
    assert dropped.refused == [(str(dataset), "a Tickscope Parquet dataset (ticks already stored), not captures")]

"""The ingestion job end to end on synthetic captures: idempotency, force, cancel, failures,
progress, and tick dumps (JSON/JSONL/Parquet) matching the binary capture they came from."""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from app.core.capture import FINISHED
from app.errors import InputError, UsageError
from app.pipeline import IngestJob, expand_inputs, run_ingest
from app.pipeline import ingest as ingest_module
from app.pipeline.ingest import PROGRESS_INTERVAL
from app.store import open_target
from tests.support import synthetic

KINDS = ["duckdb", "parquet"]


def target_path(tmp_path: Path, kind: str) -> Path:
    return tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """Three small captures in three framings, one with faults, and the day's master."""
    folder = tmp_path_factory.mktemp("captures")
    (folder / "sub").mkdir()
    infos = {
        "a": synthetic.generate_capture(folder / "a.dat", packets=2000, framing="raw", seed=1),
        "b": synthetic.generate_capture(folder / "sub" / "b.bin", packets=1300, framing="u32len", seed=2),
        "c": synthetic.generate_capture(folder / "c.dat", packets=1700, framing="ts-u32len", seed=3, faults=True),
    }
    master = folder / "masters" / "instruments_20251013.csv"
    master.parent.mkdir()
    synthetic.write_instruments_csv(master, synthetic.make_instruments(0), synthetic.SESSION_DATE)
    return folder, infos, master


class _Clock:
    """``time`` as the ingest module sees it: ``monotonic()`` moves ``step`` seconds a call."""

    def __init__(self, step: float):
        self.now, self.step, self.lock = 1000.0, step, threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            self.now += self.step
            return self.now

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def ingest_clock(monkeypatch):
    """Set the clock the ingest's progress throttle reads: progress no longer depends on how
    fast this machine decodes (a step of 1 s lets every update through, 0 none but the forced)."""

    def install(step: float) -> _Clock:
        clock = _Clock(step)
        monkeypatch.setattr(ingest_module, "time", clock)
        return clock

    return install


@pytest.fixture
def every_update(ingest_clock):
    """Every progress update is sent: a test acting on an update mid-decode gets one at every
    batch, however fast the small files decode."""
    return ingest_clock(1.0)


def counts(path: Path) -> dict:
    with open_target(path) as target:
        return target.counts()


@pytest.mark.parametrize("kind", KINDS)
def test_ingest_twice_gives_the_same_rows_and_reports_skips(tmp_path, captures, kind):
    folder, infos, master = captures
    target = target_path(tmp_path, kind)
    inputs = [folder / "a.dat", folder / "sub", folder / "c.dat"]
    first = run_ingest(inputs, target, instruments=[master], workers=2)
    assert [f.status for f in first.files] == ["done"] * 3, [f.error for f in first.files]
    assert first.exit_code == 0
    by_name = {Path(f.path).name: f for f in first.files}
    for name, info in (("a.dat", infos["a"]), ("b.bin", infos["b"]), ("c.dat", infos["c"])):
        assert by_name[name].packets >= info.packets
        assert by_name[name].ticks == by_name[name].packets
    assert by_name["c.dat"].bad_packets > 0
    expected = {"captures": 3, "ticks": sum(f.ticks for f in first.files),
                "bad_packets": sum(f.bad_packets for f in first.files)}
    assert counts(target) == expected

    second = run_ingest(inputs, target, instruments=[master], workers=2)
    assert [f.status for f in second.files] == ["skipped"] * 3
    assert all(f.error == "already in the target" for f in second.files)
    assert second.exit_code == 0
    assert counts(target) == expected
    with open_target(target) as t:
        assert t.instruments().num_rows > 0
        unknown = t.unknown_tokens()
        assert unknown.num_rows > 0
        assert sum(unknown["ticks"].to_pylist()) == sum(f.unresolved_ticks for f in first.files)


@pytest.mark.parametrize("kind", KINDS)
def test_force_replaces_a_capture_in_place(tmp_path, captures, kind):
    folder, infos, master = captures
    target = target_path(tmp_path, kind)
    run_ingest([folder / "a.dat"], target)
    before = counts(target)
    report = run_ingest([folder / "a.dat"], target, instruments=[master], force=True)
    assert report.files[0].status == "done"
    assert counts(target) == before
    with open_target(target) as t:
        assert t.captures()["status"].to_pylist() == ["replaced"]
        # Replaced with the master at hand: ticks are named now.
        assert pc.sum(t.ticks(["resolved"])["resolved"]).as_py() > 0


def test_same_content_twice_in_one_job_is_ingested_once(tmp_path, captures):
    folder, infos, _ = captures
    copy = tmp_path / "copy_of_a.dat"
    shutil.copyfile(folder / "a.dat", copy)
    report = run_ingest([folder / "a.dat", copy], tmp_path / "t.duckdb")
    assert sorted(f.status for f in report.files) == ["done", "skipped"]
    skipped = report.by_status("skipped")[0]
    assert skipped.error.startswith("same content as")
    assert counts(tmp_path / "t.duckdb")["captures"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_one_file_mid_decode_leaves_nothing_of_it(tmp_path, captures, kind, every_update):
    folder, infos, _ = captures
    target = target_path(tmp_path, kind)
    job_box = {}
    cancelled_at = {}

    def progress(update):
        # Cancel a.dat once some of its batches have reached the writer.
        if update.path.endswith("a.dat") and update.stage == "decoding" and update.packets > 1000 and not cancelled_at:
            cancelled_at["packets"] = update.packets
            job_box["job"].cancel_file(update.path)

    job = IngestJob([folder / "a.dat", folder / "c.dat"], target, workers=2, progress=progress,
                    chunk_bytes=64 << 10)
    job_box["job"] = job
    report = job.run()
    status = {Path(f.path).name: f.status for f in report.files}
    assert status == {"a.dat": "cancelled", "c.dat": "done"}
    assert cancelled_at["packets"] > 1000
    assert (report.files[0].packets, report.files[0].bad_packets) == (0, 0)  # nothing of it is stored
    assert report.exit_code == 4
    with open_target(target) as t:
        a_id = report.files[0].file_id
        assert a_id not in t.file_ids()
        assert not pc.any(pc.equal(t.ticks(["file_id"])["file_id"], a_id)).as_py()
        assert t.counts()["ticks"] == report.files[1].ticks
    if kind == "parquet":
        assert not any(a_id[:16] in p.name for p in target.rglob("*"))


def test_cancel_event_stops_everything_and_writes_nothing(tmp_path, captures, every_update):
    folder, _, _ = captures
    cancel = threading.Event()

    def progress(update):
        if update.stage == "decoding" and update.packets > 0:
            cancel.set()

    report = run_ingest([folder], tmp_path / "t.duckdb", workers=1, progress=progress, cancel=cancel,
                        chunk_bytes=64 << 10)
    assert {f.status for f in report.files} == {"cancelled"}
    assert counts(tmp_path / "t.duckdb") == {"captures": 0, "ticks": 0, "bad_packets": 0}


def test_a_failing_file_does_not_stop_the_others(tmp_path, captures):
    folder, _, _ = captures
    doomed = tmp_path / "gone.dat"
    shutil.copyfile(folder / "a.dat", doomed)
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('[{"instrument_token": "not a number", "last_price": "x"}, 17]\n')
    job = IngestJob([doomed, bad_json, folder / "c.dat"], tmp_path / "t.duckdb", workers=2)
    doomed.unlink()  # vanished between listing and reading
    report = job.run()
    status = {Path(f.path).name: f.status for f in report.files}
    assert status == {"gone.dat": "failed", "broken.json": "failed", "c.dat": "done"}
    assert all(f.error and "\n" not in f.error for f in report.by_status("failed"))
    assert report.exit_code == 4
    assert counts(tmp_path / "t.duckdb")["captures"] == 1


def _progress_of_an_ingest(target_folder, folder) -> dict:
    target_folder.mkdir()
    updates = []
    lock = threading.Lock()
    active = []

    def progress(update):
        with lock:
            active.append(1)
            assert len(active) == 1  # never called twice at once
        updates.append(update)
        time.sleep(0.001)  # widens the window in which a second, concurrent call would be caught
        active.pop()

    report = run_ingest([folder], target_folder / "t.duckdb", workers=2, progress=progress, chunk_bytes=16 << 10)
    by_path = {f.path: [u for u in updates if u.path == f.path] for f in report.files}
    assert len(by_path) == 3
    for path, mine in by_path.items():
        stages = [u.stage for u in mine]
        assert stages[0] == "queued" and stages[-1] == "done"
        assert [s for s in stages if s in FINISHED] == ["done"]
        result = next(f for f in report.files if f.path == path)
        assert (mine[-1].packets, mine[-1].bytes_done, mine[-1].size_bytes) == (
            result.packets, result.size_bytes, result.size_bytes)
    return by_path


def test_progress_is_throttled_and_ends_with_every_files_final_state(tmp_path, captures, ingest_clock):
    folder, _, _ = captures
    # Clock stopped: less than PROGRESS_INTERVAL ever passes, so only stage changes (forced)
    # get through, each once, and every file's final state still arrives.
    ingest_clock(0.0)
    for mine in _progress_of_an_ingest(tmp_path / "stopped", folder).values():
        stages = [u.stage for u in mine]
        assert all(a != b for a, b in pairwise(stages)), stages
    # A clock that moves more than PROGRESS_INTERVAL between updates lets each batch's through:
    # the same ingest sends many decoding updates per file (16 KB batches).
    ingest_clock(PROGRESS_INTERVAL * 2)
    for mine in _progress_of_an_ingest(tmp_path / "moving", folder).values():
        decoding = [u for u in mine if u.stage == "decoding"]
        assert len(decoding) > 5
        assert [u.bytes_done for u in decoding] == sorted(u.bytes_done for u in decoding)


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        IngestJob([tmp_path / "nope.dat"], tmp_path / "t.duckdb")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "instruments.csv").write_text("instrument_token\n1\n")
    with pytest.raises(UsageError, match="no capture or tick files"):
        IngestJob([tmp_path / "empty"], tmp_path / "t.duckdb")
    (tmp_path / "x.dat").write_bytes(b"\x00")
    with pytest.raises(UsageError, match="workers"):
        IngestJob([tmp_path / "x.dat"], tmp_path / "t.duckdb", workers=0)


def test_the_target_inside_an_input_folder_is_not_read(tmp_path, captures):
    folder, _, _ = captures
    work = tmp_path / "work"
    shutil.copytree(folder, work)
    report = run_ingest([work], work / "dataset")
    again = run_ingest([work], work / "dataset")
    assert len(again.files) == len(report.files) == 3
    assert {f.status for f in again.files} == {"skipped"}


def test_parquet_dataset_has_the_same_ticks_as_the_duckdb_target(tmp_path, captures):
    folder, _, master = captures
    run_ingest([folder], tmp_path / "t.duckdb", instruments=[master])
    run_ingest([folder], tmp_path / "dataset", instruments=[master])
    with open_target(tmp_path / "t.duckdb") as d, open_target(tmp_path / "dataset") as p:
        assert d.ticks().equals(p.ticks())
        assert d.bad_packets().equals(p.bad_packets())
        assert d.unknown_tokens().sort_by("instrument_token").equals(p.unknown_tokens().sort_by("instrument_token"))
    glob = str(tmp_path / "dataset" / "ticks" / "**" / "*.parquet")
    raw = duckdb.execute(
        "SELECT count(*), count(DISTINCT file_id), min(trading_date) FROM read_parquet(?, hive_partitioning=true)",
                         [glob]
    ).fetchall()[0]
    with open_target(tmp_path / "t.duckdb") as d:
        expected = d.con.execute("SELECT count(*), count(DISTINCT file_id), min(trading_date) FROM ticks").fetchall()[0]
    assert raw == expected


# --- tick dumps give the same ticks as the binary capture they came from --------------------

COMPARED = ["instrument_token", "mode", "last_price", "last_traded_quantity", "average_traded_price",
            "volume_traded", "open", "high", "low", "close", "change", "oi", "exchange_timestamp",
            "last_trade_time", "bid_price", "ask_quantity", "trading_date", "tradingsymbol", "resolved"]


def _official_ticks(capture_b64: Path) -> list[list[dict]]:
    """Each message decoded by the official client, as its on_ticks receives it."""
    import kiteconnect

    client = kiteconnect.KiteTicker.__new__(kiteconnect.KiteTicker)
    messages = []
    for line in capture_b64.read_bytes().splitlines():
        message = base64.b64decode(line)
        if message != b"\x00":
            messages.append(client._parse_binary(message))
    return messages


@pytest.fixture
def ist_local_time():
    """The official client makes naive local times; dumps are read as IST, so make them there."""
    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset to set the local zone")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_json_jsonl_and_parquet_dumps_match_the_binary_capture(tmp_path, captures, ist_local_time):
    _, _, master = captures
    capture = tmp_path / "session.b64"
    synthetic.generate_capture(capture, packets=3000, framing="base64", seed=7)
    messages = _official_ticks(capture)
    jsonl = tmp_path / "dump.jsonl"
    jsonl.write_text("".join(json.dumps(m, default=str) + "\n" for m in messages))
    as_json = tmp_path / "dump.json"
    as_json.write_text(json.dumps(messages, default=str, indent=1))

    def ingested(path: Path, name: str) -> pa.Table:
        report = run_ingest([path], tmp_path / f"{name}.duckdb", instruments=[master])
        assert report.files[0].status == "done", report.files[0].error
        with open_target(tmp_path / f"{name}.duckdb") as t:
            return t.ticks()

    binary = ingested(capture, "binary")
    export = tmp_path / "export.parquet"
    pq.write_table(binary, export)
    assert binary.num_rows == sum(len(m) for m in messages)
    for path, name in ((jsonl, "jsonl"), (as_json, "json"), (export, "parquet")):
        other = ingested(path, name)
        assert other.num_rows == binary.num_rows, name
        for column in COMPARED:
            assert other[column].equals(binary[column]), (name, column)


# --- regressions ------------------------------------------------------------------------


def _u32len_capture(path: Path, price: int) -> Path:
    from tests.support.encode import encode_message, encode_packet, frame

    packet = encode_packet(184, {"instrument_token": 408065, "last_price": price, "close": 120000,
                                 "exchange_timestamp": 1700000000})
    path.write_bytes(frame([encode_message([packet])], "u32len"))
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrected_master_names_new_ticks_not_its_stored_copy(tmp_path, kind):
    target = target_path(tmp_path, kind)
    master = tmp_path / "inst_20231115.csv"
    master.write_text("instrument_token,tradingsymbol,exchange\n408065,WRONG,NSE\n")
    run_ingest([_u32len_capture(tmp_path / "a.bin", 1)], target, instruments=[master], workers=1)
    # A stored master of another source for the same day is searched after the given one.
    other = tmp_path / "other_20231115.csv"
    other.write_text("instrument_token,tradingsymbol,exchange\n408065,OTHER,NSE\n")
    run_ingest([_u32len_capture(tmp_path / "x.bin", 3)], target, instruments=[other], workers=1)
    master.write_text("instrument_token,tradingsymbol,exchange\n408065,INFY,NSE\n")
    report = run_ingest([_u32len_capture(tmp_path / "b.bin", 2)], target, instruments=[master], workers=1)
    assert [f.status for f in report.files] == ["done"]
    with open_target(target) as t:
        names = {row["last_price"]: row["tradingsymbol"] for row in t.ticks(["last_price",
                                                                             "tradingsymbol"]).to_pylist()}
        stored = sorted((r["source"].rsplit("/", 1)[-1], r["tradingsymbol"])
                        for r in t.instruments().select(["source", "tradingsymbol"]).to_pylist())
    assert names == {0.01: "WRONG", 0.03: "OTHER", 0.02: "INFY"}
    assert stored == [("inst_20231115.csv", "INFY"), ("other_20231115.csv", "OTHER")]


def _nothing_stored(target: Path, file_ids) -> None:
    assert counts(target) == {"captures": 0, "ticks": 0, "bad_packets": 0}
    if target.is_dir():  # a Parquet dataset: not one part file of these files either
        leftovers = [p for p in target.rglob("*") if any(i[:16] in p.name for i in file_ids)]
        assert leftovers == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_capture_without_one_kite_packet_fails_and_stores_nothing(tmp_path, kind):
    # Before: random bytes and a lone JSON text frame were "ingested" with 0 packets.
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(5).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    frame = tmp_path / "json_frame.bin"
    frame.write_bytes(b'{"type":"order","data":{"order_id":"1"}}')
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    target = target_path(tmp_path, kind)
    report = run_ingest([noise, frame, empty], target, workers=2)
    by_name = {Path(f.path).name: f for f in report.files}
    assert {n: f.status for n, f in by_name.items()} == {
        "noise.bin": "failed", "json_frame.bin": "failed", "empty.dat": "failed"}
    assert by_name["noise.bin"].error.startswith("no Kite packets found (1,000 bytes, all bad: ")
    assert by_name["json_frame.bin"].error == (
        "no Kite packets found (40 bytes, all bad: JSON text frame in a binary capture (40 bytes))")
    assert by_name["empty.dat"].error == "no Kite packets found (empty file)"
    assert report.exit_code == 4
    _nothing_stored(target, [f.file_id for f in report.files])


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_named_as_a_dump_that_is_not_one_fails_and_is_not_decoded_as_binary(tmp_path, kind):
    # Before: "garbage\n" named a.parquet was decoded as one 8-byte LTP packet: one tick.
    names = ["a.parquet", "b.json", "c.jsonl"]
    for name in names:
        (tmp_path / name).write_bytes(b"garbage\n" if name == "a.parquet" else f"garbage {name}\n".encode())
    target = target_path(tmp_path, kind)
    report = run_ingest([tmp_path / n for n in names], target, workers=2)
    errors = {Path(f.path).name: (f.status, f.error) for f in report.files}
    assert errors["a.parquet"] == ("failed", "a.parquet is named .parquet but is not a Parquet file "
                                             "(no PAR1 header and footer); not read as a binary capture")
    for name in ("b.json", "c.jsonl"):
        status, error = errors[name]
        assert status == "failed" and error.startswith(f"{name} is named .{name.split('.')[1]} but is not a JSON")
    assert all(f.packets == 0 for f in report.files)
    _nothing_stored(target, [f.file_id for f in report.files])


def test_a_copy_of_a_file_that_failed_fails_with_it(tmp_path):
    # Before: the copy read "skipped" (same content as the first) though nothing was stored.
    first = tmp_path / "a.bin"
    first.write_bytes(np.random.default_rng(6).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    copy = tmp_path / "b.bin"
    shutil.copyfile(first, copy)
    report = run_ingest([first, copy], tmp_path / "t.duckdb", workers=2)
    # Whichever hashed first is read; the other ends as it did.
    [read] = [f for f in report.files if f.error.startswith("no Kite packets found")]
    [other] = [f for f in report.files if f is not read]
    assert read.status == "failed"
    assert (other.status, other.error) == ("failed", f"same content as {read.path}, which failed")
    assert report.exit_code == 4


def test_a_copy_of_a_cancelled_file_is_cancelled_with_it(tmp_path, captures):
    folder, _, _ = captures
    copy = tmp_path / "copy_of_a.dat"
    shutil.copyfile(folder / "a.dat", copy)
    box = {}

    def progress(update):
        # Whichever copy hashed first is the one decoded; the other waits on its outcome.
        # Cancelled when its decoding starts (this update is sent from its decoder thread
        # before the first batch): later updates may never come, decoding is fast.
        if update.stage == "decoding" and "cancelled" not in box:
            box["cancelled"] = update.path
            box["job"].cancel_file(update.path)

    job = IngestJob([folder / "a.dat", copy], tmp_path / "t.duckdb", workers=2, progress=progress,
                    chunk_bytes=64 << 10)
    box["job"] = job
    report = job.run()
    [decoded] = [f for f in report.files if f.path == box["cancelled"]]
    [other] = [f for f in report.files if f is not decoded]
    assert decoded.status == "cancelled"
    assert (other.status, other.error) == ("cancelled", f"same content as {decoded.path}, which was cancelled")
    assert counts(tmp_path / "t.duckdb")["captures"] == 0


def test_a_parquet_dataset_inside_an_input_folder_is_not_read(tmp_path, captures):
    # Before: `ingest nest --target nest.duckdb` read nest/rp's parts and marker as tick files.
    folder, _, _ = captures
    nest = tmp_path / "nest"
    nest.mkdir()
    shutil.copyfile(folder / "a.dat", nest / "a.dat")
    dataset = nest / "rp"
    assert run_ingest([folder / "c.dat"], dataset).exit_code == 0
    assert (dataset / "tickscope-dataset.json").is_file() and list(dataset.rglob("*.parquet"))
    assert expand_inputs([nest]) == [nest / "a.dat"]
    report = run_ingest([nest], tmp_path / "nest.duckdb")
    assert [(Path(f.path).name, f.status) for f in report.files] == [("a.dat", "done")]
    assert report.exit_code == 0
    with pytest.raises(UsageError, match="no capture or tick files"):
        expand_inputs([dataset])  # named itself, a dataset is still not an input

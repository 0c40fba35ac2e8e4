"""The synthetic capture generator: determinism, realism checked by the official client, faults,
the instruments dumps and the bundled sample."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from app.core import protocol
from tests.conftest import REPO
from tests.support import synthetic

kiteconnect = pytest.importorskip("kiteconnect")

SAMPLES = REPO / "resources" / "samples"
SEGMENT_BYTES = {
    "NSE": 1, "NFO-FUT": 2, "NFO-OPT": 2, "CDS-FUT": 3, "CDS-OPT": 3, "BSE": 4, "BFO-FUT": 5,
    "BFO-OPT": 5, "BCD-FUT": 6, "MCX-FUT": 7, "NCO-FUT": 12, "INDICES": 9,
}


def _client():
    return kiteconnect.KiteTicker.__new__(kiteconnect.KiteTicker)


def walk(data: bytes, framing: str, faults: list[synthetic.Fault]):
    """Independent reader of a generated capture: yields ('message', bytes) and ('heartbeat', b'')
    records, skipping the recorded fault regions (which it checks start where a record does)."""
    skip = {f.offset: f for f in faults if f.kind in ("garbage", "text_frame", "count_mismatch")}
    tail = next((f.offset for f in faults if f.kind == "truncated_tail"), len(data))
    prefix = {"raw": 0, "u32len": 4, "ts-u32len": 12}[framing]
    at = 0
    while at < tail:
        if framing == "raw":
            if at in skip:
                at += skip.pop(at).length
                continue
            # Counts are 1..50, so a message starts 0x00 0x01..0x32; a heartbeat is a lone
            # 0x00 followed by another record (a message, a heartbeat, a fault, the tail).
            assert data[at] == 0, f"unexpected byte {data[at]:#x} at {at}"
            count = int.from_bytes(data[at:at + 2], "big")
            if count == 0 or count > 50:
                yield "heartbeat", b""
                at += 1
                continue
            end = at + 2
            for _ in range(count):
                end += 2 + int.from_bytes(data[end:end + 2], "big")
            assert end <= tail
            yield "message", data[at:end]
            at = end
            continue
        size = int.from_bytes(data[at + prefix - 4:at + prefix], "big")
        body_at = at + prefix
        at = body_at + size
        if body_at in skip:
            assert skip.pop(body_at).length == size
            continue
        yield ("heartbeat", b"") if size == 1 and data[body_at] == 0 else ("message", data[body_at:at])
    assert not skip, f"fault regions not met on a record boundary: {skip}"
    assert at == tail


def parse_capture(path: Path, framing: str, info: synthetic.CaptureInfo):
    data = path.read_bytes()
    client = _client()
    messages, heartbeats = [], 0
    for kind, message in walk(data, framing, info.faults):
        if kind == "heartbeat":
            heartbeats += 1
        else:
            messages.append((message, client._parse_binary(message)))
    return data, messages, heartbeats


@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len"])
def test_official_client_reads_every_counted_packet(tmp_path, framing):
    path = tmp_path / "cap.dat"
    info = synthetic.generate_capture(path, packets=6000, framing=framing, seed=3, faults=True)
    data, messages, heartbeats = parse_capture(path, framing, info)
    assert info.bytes == len(data)
    assert len(messages) == info.messages
    assert heartbeats == info.heartbeats > 0
    ticks = [t for _, parsed in messages for t in parsed]
    assert len(ticks) == info.packets == 6000
    lengths = Counter()
    for message, _ in messages:
        count, at = int.from_bytes(message[:2], "big"), 2
        assert 1 <= count <= 50
        for _ in range(count):
            size = int.from_bytes(message[at:at + 2], "big")
            if size != 77:
                lengths[size] += 1
            at += 2 + size
        assert at == len(message)
    assert dict(lengths) == info.packets_by_length
    assert Counter(t["instrument_token"] for t in ticks) == info.ticks_by_token
    assert {8, 28, 32, 44, 184} <= set(info.packets_by_length)
    assert info.packets_by_length[184] > info.packets / 2  # mostly full packets


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.dat", "b.dat", "c.dat"))
    info_a = synthetic.generate_capture(a, packets=2500, seed=7, faults=True)
    info_b = synthetic.generate_capture(b, packets=2500, seed=7, faults=True)
    synthetic.generate_capture(c, packets=2500, seed=8, faults=True)
    assert a.read_bytes() == b.read_bytes()
    assert info_a.faults == info_b.faults and info_a.packets_by_length == info_b.packets_by_length
    assert a.read_bytes() != c.read_bytes()


def test_faults_are_where_recorded(tmp_path):
    path = tmp_path / "cap.dat"
    info = synthetic.generate_capture(path, packets=3000, seed=5, faults=True)
    data = path.read_bytes()
    faults = {f.kind: f for f in info.faults}
    assert list(faults) == ["unknown_length", "garbage", "text_frame", "count_mismatch", "truncated_tail"]
    offsets = [f.offset for f in info.faults]
    assert offsets == sorted(offsets)

    unknown = faults["unknown_length"]
    assert unknown.length == 77 and data[unknown.offset - 2:unknown.offset] == (77).to_bytes(2, "big")
    assert data[faults["garbage"].offset] == 0xFF

    text = faults["text_frame"]
    order = json.loads(data[text.offset:text.offset + text.length])
    assert order["type"] == "order" and order["data"]["status"] == "COMPLETE"

    mismatch = faults["count_mismatch"]
    message = data[mismatch.offset:mismatch.offset + mismatch.length]
    count, at, held = int.from_bytes(message[:2], "big"), 2, 0
    while at < len(message):
        at += 2 + int.from_bytes(message[at:at + 2], "big")
        held += 1
    assert at == len(message) and count == held + 2 == info.salvageable_packets + 2

    tail = faults["truncated_tail"]
    assert tail.offset + tail.length == len(data)
    count, at = int.from_bytes(data[tail.offset:tail.offset + 2], "big"), tail.offset + 2
    for _ in range(count):
        at += 2 + int.from_bytes(data[at:at + 2], "big")
    assert at > len(data)  # the message claims more bytes than the file has


def test_ticks_are_realistic(tmp_path):
    path = tmp_path / "cap.dat"
    instruments = synthetic.make_instruments(11)
    by_token = {i.instrument_token: i for i in instruments if i.ticking}
    start = dt.datetime(2025, 10, 13, 9, 15, tzinfo=synthetic.IST)
    info = synthetic.generate_capture(path, packets=8000, seed=11, instruments=instruments)
    _, messages, _ = parse_capture(path, "raw", info)
    last_volume: dict[int, int] = {}
    segments_seen = Counter()
    session_end = start + dt.timedelta(seconds=synthetic.SESSION_SECONDS)
    for _message, ticks in messages:
        tokens = [t["instrument_token"] for t in ticks]
        assert len(set(tokens)) == len(tokens), "an instrument ticks once per message"
        for t in ticks:
            inst = by_token[t["instrument_token"]]
            segments_seen[inst.segment_byte] += 1
            price = t["last_price"]
            if inst.price >= 50:
                assert abs(price / inst.price - 1) < 0.1, (inst.tradingsymbol, price)
            raw_tick = round(inst.tick_size * inst.divisor)
            assert round(price * inst.divisor) % raw_tick == 0, (inst.tradingsymbol, price)
            assert t["mode"] == {8: "ltp", 28: "quote", 32: "full", 44: "quote", 184: "full"}[inst.packet_length]
            assert t["tradable"] == (inst.segment_byte != 9)
            if "ohlc" in t:
                ohlc = t["ohlc"]
                assert ohlc["low"] <= price <= ohlc["high"] and ohlc["low"] <= ohlc["open"] <= ohlc["high"]
            if "volume_traded" in t:
                assert t["volume_traded"] >= last_volume.get(inst.instrument_token, 0)
                last_volume[inst.instrument_token] = t["volume_traded"]
            if t["mode"] == "full" and t["tradable"]:
                when = t["exchange_timestamp"]  # naive local time of this machine
                stamp = dt.datetime.fromtimestamp(when.timestamp(), dt.UTC)
                assert start <= stamp <= session_end
                assert t["last_trade_time"] <= when
                assert t["oi_day_low"] <= t["oi"] <= t["oi_day_high"]
                bids = [lvl["price"] for lvl in t["depth"]["buy"] if lvl["quantity"]]
                asks = [lvl["price"] for lvl in t["depth"]["sell"] if lvl["quantity"]]
                assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
                assert bids and asks and bids[0] < asks[0]
                assert all(0 < lvl["orders"] <= lvl["quantity"] for lvl in t["depth"]["buy"] if lvl["quantity"])
    assert set(segments_seen) >= {1, 2, 3, 4, 5, 6, 7, 9, 12, 153, 0}


def test_cds_bcd_nco_prices_scale_by_their_divisors(tmp_path):
    instruments = synthetic.make_instruments(0)
    by_token = {i.instrument_token: i for i in instruments}
    path = tmp_path / "cap.dat"
    info = synthetic.generate_capture(path, packets=3000, seed=0, instruments=instruments)
    data = path.read_bytes()
    _, messages, _ = parse_capture(path, "raw", info)
    checked = Counter()
    for message, ticks in messages:
        at = 2
        for t in ticks:
            raw_price = int.from_bytes(message[at + 2 + 4:at + 2 + 8], "big")
            at += 2 + int.from_bytes(message[at:at + 2], "big")
            inst = by_token[t["instrument_token"]]
            if inst.segment_byte in (3, 6, 12):
                expected = {3: 1e7, 6: 1e4, 12: 1e4}[inst.segment_byte]
                assert raw_price / expected == t["last_price"]
                assert abs(t["last_price"] / inst.price - 1) < 0.2
                checked[inst.segment_byte] += 1
    assert set(checked) == {3, 6, 12}
    assert data  # the file was read whole


def test_base64_and_single_framings(tmp_path):
    path = tmp_path / "cap.b64"
    info = synthetic.generate_capture(path, packets=4000, framing="base64", seed=2)
    lines = path.read_bytes().splitlines()
    assert lines.count(b"AA==") == info.heartbeats > 0
    client = _client()
    ticks = [t for line in lines if line != b"AA==" for t in client._parse_binary(base64.b64decode(line))]
    assert len(ticks) == info.packets == 4000
    assert len(lines) == info.messages + info.heartbeats

    single = tmp_path / "one.bin"
    info = synthetic.generate_capture(single, packets=40, framing="single", seed=2)
    data = single.read_bytes()
    assert int.from_bytes(data[:2], "big") == 40 and info.messages == 1 and info.heartbeats == 0
    assert len(client._parse_binary(data)) == 40
    with pytest.raises(ValueError):
        synthetic.generate_capture(tmp_path / "x", packets=200, framing="base64", faults=True)


def test_chunked_generation_keeps_streams_consistent(tmp_path, monkeypatch):
    """Chunk boundaries change the layout of the random draws, not the file's validity:
    a capture spanning several chunks still has monotonic volumes per token."""
    monkeypatch.setattr(synthetic, "CHUNK_PACKETS", 700)
    path = tmp_path / "cap.dat"
    info = synthetic.generate_capture(path, packets=5000, seed=4, framing="u32len")
    _, messages, _ = parse_capture(path, "u32len", info)
    volumes: dict[int, list[int]] = {}
    exchange_times = []
    for _, ticks in messages:
        for t in ticks:
            if "volume_traded" in t:
                volumes.setdefault(t["instrument_token"], []).append(t["volume_traded"])
            if t.get("exchange_timestamp"):
                exchange_times.append(t["exchange_timestamp"])
    assert len(volumes) > 10 and all(v == sorted(v) for v in volumes.values())
    assert max(exchange_times) - min(exchange_times) > dt.timedelta(seconds=30)
    assert exchange_times == sorted(exchange_times) or \
        sum(a > b for a, b in pairwise(exchange_times)) < len(exchange_times) * 0.2


# --- instruments ----------------------------------------------------------------


def _read_dump(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == synthetic.MASTER_COLUMNS
        return list(reader)


def test_instruments_dumps(tmp_path):
    instruments = synthetic.make_instruments(1)
    today, earlier = tmp_path / "today.csv", tmp_path / "earlier.csv"
    n_today = synthetic.write_instruments_csv(today, instruments, dt.date(2025, 10, 13))
    n_earlier = synthetic.write_instruments_csv(earlier, instruments, dt.date(2025, 10, 10))
    rows_today, rows_earlier = _read_dump(today), _read_dump(earlier)
    assert len(rows_today) == n_today > 150 and len(rows_earlier) == n_earlier
    for rows in (rows_today, rows_earlier):
        tokens = [int(r["instrument_token"]) for r in rows]
        assert len(set(tokens)) == len(tokens)
        for r in rows:
            token = int(r["instrument_token"])
            assert token >> 8 == int(r["exchange_token"])
            assert token & 0xFF == SEGMENT_BYTES[r["segment"]], r
            assert r["instrument_type"] in ("EQ", "FUT", "CE", "PE")
            if r["segment"] == "INDICES":
                assert r["exchange"] in ("NSE", "BSE")
            else:
                assert r["segment"].split("-")[0] == r["exchange"]
            if r["instrument_type"] == "EQ":
                assert r["expiry"] == ""
            else:
                assert dt.date.fromisoformat(r["expiry"]) >= dt.date(2025, 10, 10)
            if r["instrument_type"] in ("CE", "PE"):
                assert float(r["strike"]) > 0 and r["tradingsymbol"].endswith(r["strike"] + r["instrument_type"])
    assert {r["segment"] for r in rows_today} == set(SEGMENT_BYTES)

    listed_today = {int(r["instrument_token"]) for r in rows_today}
    named_earlier = {int(r["instrument_token"]): r for r in rows_earlier}
    unknown = {i.unknown: i for i in instruments if i.unknown}
    assert set(unknown) == {synthetic.UNKNOWN_MISSING, synthetic.UNKNOWN_BAD_SEGMENT,
                            synthetic.UNKNOWN_BYTESWAPPED, synthetic.UNKNOWN_RECYCLED}
    for inst in unknown.values():
        assert inst.ticking and inst.instrument_token not in listed_today
    assert unknown[synthetic.UNKNOWN_BAD_SEGMENT].instrument_token == 409
    assert 409 & 0xFF == 153 and 153 not in protocol.SEGMENTS
    swapped = unknown[synthetic.UNKNOWN_BYTESWAPPED].instrument_token
    assert int.from_bytes(swapped.to_bytes(4, "big"), "little") in listed_today
    assert unknown[synthetic.UNKNOWN_MISSING].instrument_token not in named_earlier
    recycled = named_earlier[unknown[synthetic.UNKNOWN_RECYCLED].instrument_token]
    assert dt.date.fromisoformat(recycled["expiry"]) < dt.date(2025, 10, 13)
    assert recycled["segment"].endswith("-OPT")
    # The dumps differ both ways: expired contracts leave, new listings arrive.
    assert set(named_earlier) - listed_today and listed_today - set(named_earlier)


def test_make_instruments_is_deterministic():
    assert synthetic.make_instruments(3) == synthetic.make_instruments(3)
    assert synthetic.make_instruments(3) != synthetic.make_instruments(4)
    assert not any(i.unknown for i in synthetic.make_instruments(3, unknown=False))


# --- the bundled sample ---------------------------------------------------------


def test_bundled_sample_is_what_make_sample_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sample", REPO / "scripts" / "make_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    written = make_sample.make_sample(tmp_path)
    assert {p.name for p in written.values()} == {
        "binary_data_20251013_091500.dat", "instruments_20251013.csv", "instruments_20251010.csv", "README.md"}
    total = 0
    for path in written.values():
        bundled = SAMPLES / path.name
        assert bundled.is_file(), f"{bundled} missing: run scripts/make_sample.py"
        assert bundled.read_bytes() == path.read_bytes(), f"{bundled} is stale: run scripts/make_sample.py"
        total += bundled.stat().st_size
    assert total < 8 << 20


def test_bundled_sample_decodes_as_recorded():
    """The sample against the project's own decoder."""
    from app.core import decode
    instruments = synthetic.make_instruments(20251013)
    capture = SAMPLES / "binary_data_20251013_091500.dat"
    info = synthetic.generate_capture(
        "/dev/null", packets=30_000, seed=20251013, faults=True, instruments=instruments,
        start=dt.datetime(2025, 10, 13, 9, 15, tzinfo=synthetic.IST))
    table, bad, summary = decode.decode_bytes(capture.read_bytes(), "raw")
    assert summary.bytes_accounted == summary.bytes == capture.stat().st_size
    # In raw framing the 0x00 that starts the broken count_mismatch message may pass for a
    # heartbeat while resynchronising; nothing else may.
    assert info.heartbeats <= summary.heartbeats <= info.heartbeats + 1
    assert summary.messages >= info.messages
    assert info.packets <= summary.packets <= info.packets + info.salvageable_packets
    for length, count in info.packets_by_length.items():
        assert count <= summary.packets_by_length.get(length, 0) <= count + info.salvageable_packets
    regions = [(b.offset, b.offset + b.length) for b in bad]
    assert info.faults
    for fault in info.faults:
        assert any(lo < fault.offset + fault.length and fault.offset < hi for lo, hi in regions), fault
    tokens = set(np.unique(table.column("instrument_token").to_numpy()).tolist())
    assert set(info.tokens) <= tokens

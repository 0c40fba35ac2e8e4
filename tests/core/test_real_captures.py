"""Public real-world captures (../shared/fixtures/real-captures, README there): each decodes
with 0 bad bytes, and every value a peer decode in that folder states equals Tickscope's,
field by field. Skipped with a reason when ../shared is absent.

``TICKSCOPE_SHARED`` may point at the shared folder when the repo is not beside it.
"""

from __future__ import annotations

import binascii
import json
import os
import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from app.core.decode import CaptureReader, decode_bytes

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TICKSCOPE_SHARED") or REPO.parent / "shared")
REAL = SHARED / "fixtures" / "real-captures"
MOCKS = SHARED / "fixtures" / "kite-mocks"
SPEED = REAL / "shabbirhasan1-kiteconnect-mocks-speed"


@pytest.fixture(scope="module")
def real() -> Path:
    if not (REAL / "README.md").is_file() or not (MOCKS / "expected.json").is_file():
        pytest.skip(f"real captures not found at {REAL} (../shared is not beside the repo)")
    return REAL


def decode_file(path, framing=None):
    reader = CaptureReader(path, framing)
    table = pa.concat_tables([b.ticks for b in reader.batches()])
    return table, reader.summary


def json_documents(path):
    """Concatenated JSON documents (the peers' dumps), parsed independently of Tickscope."""
    text, decoder, at, out = Path(path).read_text(), json.JSONDecoder(), 0, []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return out
        value, at = decoder.raw_decode(text, at)
        out.append(value)


def ist(text):
    return datetime.fromisoformat(text).astimezone(UTC)


# --- the HAR fragment ----------------------------------------------------------------------


def test_har_fragment_decodes_like_the_same_messages_in_ws_packet(real):
    table, s = decode_file(SPEED / "ws_message.txt")
    assert s.framing == "har" and s.bad_packets == 0 and s.accounted["bad"] == 0
    assert s.bytes_accounted == s.bytes == 548_333
    assert (s.messages, s.packets, s.heartbeats, s.text_frames, s.sent_frames) == (960, 4183, 193, 6, 34)
    same, bad, _ = decode_bytes((MOCKS / "third-party-kite-web" / "ws.packet").read_bytes(), "base64")
    assert bad == []
    keep = [c for c in table.column_names if c not in ("file_id", "offset", "recv_ts", "tick_time", "tick_time_source",
                                                       "trading_date")]
    assert table.select(keep).equals(same.select(keep))
    # recv_ts is each frame's HAR time (µs), read independently here
    text = (SPEED / "ws_message.txt").read_text()
    frames = json.loads("{" + text.strip().rstrip(",") + "}", parse_float=Decimal)["_webSocketMessages"]
    times = []
    for f in frames:
        if f["type"] == "receive" and f["opcode"] == 2 and f["data"] != "AA==":
            n = struct.unpack(">H", binascii.a2b_base64(f["data"])[:2])[0]
            times += [int(f["time"] * 1_000_000)] * n  # µs, the sub-µs digits dropped
    assert table.column("recv_ts").cast(pa.int64()).to_pylist() == times


def test_har_message_16_equals_the_rust_peer_decode_field_by_field(real):
    table, _ = decode_file(SPEED / "ws_message.txt")
    rows = table.filter(pa.compute.equal(table.column("msg_seq"), 16)).to_pylist()
    peer = json.loads((SPEED / "kite_ticker.json").read_text())
    assert [r["instrument_token"] for r in rows] == [p["instrument_token"] for p in peer]
    compared = 0
    for row, p in zip(rows, peer, strict=True):
        assert row["last_price"] == p["last_price"]
        assert row["tradable"] == p["tradable"]
        for name in ("last_traded_quantity", "average_traded_price", "volume_traded", "total_buy_quantity",
                     "total_sell_quantity", "oi", "oi_day_high", "oi_day_low"):
            if name in p:
                assert row[name] == p[name], name
                compared += 1
        for name in ("open", "high", "low", "close"):
            if name in p.get("ohlc", {}):
                assert row[name] == p["ohlc"][name], name
                compared += 1
        if "close_price" in p:  # the peer's name for an ltpc packet's close
            assert row["packet_length"] == 12 and row["close"] == p["close_price"]
            compared += 1
        for name in ("last_trade_time", "exchange_timestamp"):
            if name in p:
                assert row[name] == ist(p[name]), name
                compared += 1
        if "depth" in p:
            for side, ours in (("buy", "bid"), ("sell", "ask")):
                for part in ("price", "quantity", "orders"):
                    assert row[f"{ours}_{part}"] == [lvl[part] for lvl in p["depth"][side]]
                    compared += 5
    assert compared >= 60


# --- the websocat session and Kite web's 44-byte heads ----------------------------------


def test_websocat_session_decodes_every_message_with_no_bad_bytes(real):
    table, s = decode_file(SPEED / "ws492.sanitized.txt")
    assert s.framing == "base64" and s.bad_packets == 0 and s.bytes_accounted == s.bytes
    assert s.packets_by_length == {492: 1067, 44: 12}  # 1,060 + 7 glued; 10 + 2 glued
    assert s.heartbeats == 253  # 250 + 3 glued
    assert s.text_frames == 3 and s.sent_frames == 24 and s.text_lines == 1
    heads = table.filter(pa.compute.equal(table.column("packet_length"), 44))
    assert set(heads.column("mode").to_pylist()) == {"depth20_head"}


def test_web_heads_are_the_packets_the_peer_misdecoded_as_quotes(real):
    """kite_ticker_extended_depth.json's 12 `quote` entries are these 12 packets read as API
    quotes: each of the peer's values is one of our fields (a u32 word, scaled or not)."""
    table, _ = decode_file(SPEED / "ws492.sanitized.txt")
    heads = table.filter(pa.compute.equal(table.column("packet_length"), 44)).to_pylist()
    peer = [t for doc in json_documents(SPEED / "kite_ticker_extended_depth.json") for t in doc
            if t.get("mode") == "quote"]
    assert len(peer) == len(heads) == 12
    for ours, p in zip(heads, peer, strict=True):
        assert ours["instrument_token"] == p["instrument_token"] and ours["last_price"] == p["last_price"]
        # bytes 8-11: the peer's "last traded quantity" is our exchange time
        assert ours["exchange_timestamp"] == datetime.fromtimestamp(p["last_traded_quantity"], UTC)
        assert round(ours["bid_quantity"][0] / 100, 2) == p["average_traded_price"]  # bytes 12-15
        assert round(ours["bid_price"][0] * 100) == p["volume_traded"]  # bytes 16-19
        assert ours["bid_orders"][0] == p["total_buy_quantity"]  # bytes 20-23
        assert ours["bid_quantity"][1] == p["total_sell_quantity"]  # bytes 24-27
        assert ours["bid_price"][1] == p["ohlc"]["open"]  # bytes 28-31
        assert round(ours["bid_orders"][1] / 100, 2) == p["ohlc"]["high"]  # bytes 32-35
        assert round(ours["bid_quantity"][2] / 100, 2) == p["ohlc"]["low"]  # bytes 36-39
        assert ours["bid_price"][2] == p["ohlc"]["close"]  # bytes 40-43
        assert ours["bid_orders"][2] is None and ours["ask_price"] is None
        assert ours["last_traded_quantity"] is None and ours["close"] is None


def test_three_web_heads_are_byte_identical_to_the_head_of_a_492_packet(real):
    table, _ = decode_file(SPEED / "ws492.sanitized.txt")
    rows = table.to_pylist()
    full = {(r["instrument_token"], r["exchange_timestamp"]): r for r in rows if r["packet_length"] == 492}
    matched = 0
    for r in rows:
        if r["packet_length"] != 44:
            continue
        f = full.get((r["instrument_token"], r["exchange_timestamp"]))
        if f and f["last_price"] == r["last_price"]:
            assert f["bid_quantity"][:3] == r["bid_quantity"] and f["bid_price"][:3] == r["bid_price"]
            assert f["bid_orders"][:2] == r["bid_orders"][:2]
            matched += 1
    assert matched == 3


def test_extended_depth_peer_decode_equals_ours(real):
    table, s = decode_file(MOCKS / "third-party-kite-web" / "ws_extended_depth_20.packet")
    assert s.bad_packets == 0 and s.packets == 379
    ours = table.to_pylist()
    peer = [t["tickerTypeData"] for doc in json_documents(SPEED / "kite_ticker_extended_depth_one.json")
            for t in doc["tickersData"]]
    assert len(peer) == len(ours) == 379
    for row, p in zip(ours, peer, strict=True):
        assert row["instrument_token"] == p["token"] and row["last_price"] == p["lastPrice"]
        assert row["exchange_timestamp"] == ist(p["lastTradedTime"])  # the peer's name for bytes 8-11
        for side, name in (("buy", "bid"), ("sell", "ask")):
            for part in ("price", "quantity", "orders"):
                assert row[f"{name}_{part}"] == [lvl[part] for lvl in p["extendedDepth"][side]]


def test_kite_web_app_state_books_occur_in_our_decodes(real):
    """a.json is the web app's own decoder state: 13 of its 19 20-level books are, value
    for value, books Tickscope decodes from ws492 and ws_extended_depth_20."""
    books = set()
    for path, framing in ((SPEED / "ws492.sanitized.txt", None),
                          (MOCKS / "third-party-kite-web" / "ws_extended_depth_20.packet", None)):
        table, _ = decode_file(path, framing)
        for r in table.filter(pa.compute.equal(table.column("packet_length"), 492)).to_pylist():
            books.add((r["instrument_token"], tuple(r["bid_price"]), tuple(r["bid_quantity"]), tuple(r["bid_orders"]),
                       tuple(r["ask_price"]), tuple(r["ask_quantity"]), tuple(r["ask_orders"])))
    found = total = 0
    for doc in json_documents(SPEED / "a.json"):
        states = doc.values() if "token" not in doc else [doc]
        for st in states:
            if "extendedDepth" not in st:
                continue
            total += 1
            d = st["extendedDepth"]
            key = (st["token"],) + tuple(tuple(level[p] for level in d[side]) for side in ("buy", "sell")
                                         for p in ("price", "quantity", "orders"))
            key = (key[0], key[1], key[2], key[3], key[4], key[5], key[6])
            found += key in books
    assert (found, total) == (13, 19)


# --- the zig peer's vectors ------------------------------------------------------------------


def test_zig_peer_vectors(real):
    zig = REAL / "rhnvrm-kiteconnect-zig"
    expected = json.loads((zig / "expected.json").read_text())
    table, s = decode_file(zig / "split_two_ltp.msg.bin")
    assert s.bad_packets == 0 and table.column("packet_length").to_pylist() == [8, 8]
    a = expected["ltp_408065.body.bin"]["asserted"]
    row = decode_file(zig / "ltp_408065.body.bin")[0].to_pylist()[0]
    assert (row["mode"], row["instrument_token"], row["last_price"]) == (a["mode"], a["instrument_token"],
                                                                         a["last_price"])
    a = expected["index_full_token9.body.bin"]["asserted"]
    row = decode_file(zig / "index_full_token9.body.bin")[0].to_pylist()[0]
    assert row["mode"] == a["mode"] and row["tradable"] is (not a["is_index"]) and row["last_price"] == a["last_price"]
    assert row["exchange_timestamp"] == datetime.fromtimestamp(a["timestamp_unix"], UTC)
    a = expected["full_408065.body.bin"]["asserted"]
    row = decode_file(zig / "full_408065.body.bin")[0].to_pylist()[0]
    assert (row["mode"], row["oi"], row["last_price"]) == (a["mode"], a["oi"], a["last_price"])
    assert row["ask_price"][0] == a["sell[0].price"] and row["bid_quantity"][0] == a["buy[0].quantity"]

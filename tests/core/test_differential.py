"""Differential test against the official Kite Python client (kiteconnect, test-only).

Generated messages holding every API packet kind (8, 28, 32, 44, 184) for every segment
byte in ``protocol.SEGMENTS`` go through ``KiteTicker._parse_binary`` and through
Tickscope; every field the client returns must match. The client returns naive *local*
datetimes (``datetime.fromtimestamp``), so the test runs in IST and converts them back
with ``.timestamp()``; its ``change`` is our ``change_percent``; it drops unknown
lengths (we keep them as bad packets).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from app.core import protocol
from app.core.decode import decode_bytes
from tests.support import encode

kiteconnect = pytest.importorskip("kiteconnect", reason="the official client (kiteconnect) is a test dependency")
from kiteconnect import KiteTicker  # noqa: E402

QUOTE_FIELDS = (
    "last_traded_quantity", "volume_traded", "total_buy_quantity", "total_sell_quantity",
)
OHLC = ("open", "high", "low", "close")


@pytest.fixture
def ist_timezone():
    """The client's local times are those of the process: make them IST, like a trader's box."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _client():
    return KiteTicker.__new__(KiteTicker)  # no network, no api key: only the parser is used


def _random_packet(rng, length: int, segment: int, zero_times: bool) -> bytes:
    layout = protocol.LAYOUTS[length]
    token = int(rng.integers(1, 1 << 24)) << 8 | segment
    values = {"instrument_token": token}
    for f in layout.fields[1:]:
        if f.timestamp:
            values[f.name] = 0 if zero_times else int(rng.integers(1_500_000_000, 1_900_000_000))
        elif f.signed:
            values[f.name] = int(rng.integers(-(1 << 31), 1 << 31))
        elif f.price:
            values[f.name] = int(rng.choice([0, 5, int(rng.integers(1, 1 << 32))]))
        else:
            values[f.name] = int(rng.integers(0, 1 << 32))
    bids = asks = None
    if layout.depth is not None:
        def side():
            return [(int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 32)), int(rng.integers(0, 1 << 16)))
                    for _ in range(layout.depth.levels)]
        bids, asks = side(), side()
        values["_padding"] = int(rng.integers(1, 1 << 16))  # non-zero padding must be ignored
    return encode.encode_packet(length, values, bids, asks)


def _messages(seed: int):
    rng = np.random.default_rng(seed)
    packets = [
        _random_packet(rng, length, segment, zero_times=(i == 0))
        for length in protocol.API_LENGTHS
        for segment in protocol.SEGMENTS
        for i in range(6)
    ]
    order = rng.permutation(len(packets))
    packets = [packets[i] for i in order]
    messages, at = [], 0
    while at < len(packets):
        n = int(rng.integers(1, 12))
        messages.append(encode.encode_message(packets[at : at + n]))
        at += n
    return messages


def _epoch(local_naive):
    return None if local_naive is None else int(local_naive.timestamp())


def _ours_epoch(value):
    return None if value is None else int(value.timestamp())


def _compare(client_tick: dict, row: dict) -> int:
    compared = 0

    def same(key, ours):
        nonlocal compared
        assert ours == client_tick[key], (key, ours, client_tick[key], row["instrument_token"], row["packet_length"])
        compared += 1

    for key in ("tradable", "mode", "instrument_token", "last_price"):
        same(key, row[key])
    length = row["packet_length"]
    if length == 8:
        return compared
    for key in OHLC:
        assert row[key] == client_tick["ohlc"][key], key
        compared += 1
    same("change", row["change_percent"])
    if length in (28, 32):
        if length == 32:
            # The client turns 0 into 1970-01-01 local; Tickscope into null (absent).
            assert (_ours_epoch(row["exchange_timestamp"]) or 0) == _epoch(client_tick["exchange_timestamp"])
            compared += 1
        return compared
    for key in QUOTE_FIELDS:
        same(key, row[key])
    same("average_traded_price", row["average_traded_price"])
    if length == 184:
        for key in ("oi", "oi_day_high", "oi_day_low"):
            same(key, row[key])
        for key in ("last_trade_time", "exchange_timestamp"):
            assert (_ours_epoch(row[key]) or 0) == _epoch(client_tick[key]), key
            compared += 1
        for side, ours in (("buy", "bid"), ("sell", "ask")):
            levels = client_tick["depth"][side]
            assert [lv["price"] for lv in levels] == row[f"{ours}_price"]
            assert [lv["quantity"] for lv in levels] == row[f"{ours}_quantity"]
            assert [lv["orders"] for lv in levels] == row[f"{ours}_orders"]
            compared += 3
    return compared


@pytest.mark.parametrize("framing", ["raw", "u32len", "base64"])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_kind_and_segment_matches_the_official_client(ist_timezone, framing, seed):
    messages = _messages(seed)
    client = _client()
    expected = [tick for message in messages for tick in client._parse_binary(message)]
    table, bad, summary = decode_bytes(encode.frame(messages, framing), framing=framing)
    rows = table.to_pylist()
    assert bad == []
    assert len(rows) == len(expected) == len(protocol.API_LENGTHS) * len(protocol.SEGMENTS) * 6
    compared = sum(_compare(tick, row) for tick, row in zip(expected, rows, strict=True))
    kinds = {(r["packet_length"], r["segment"]) for r in rows}
    assert kinds == {(length, seg) for length in protocol.API_LENGTHS for seg in protocol.SEGMENTS}
    assert compared > 10 * len(rows)
    assert summary.bytes_accounted == summary.bytes


def test_unknown_lengths_the_client_drops_are_bad_packets_here(ist_timezone):
    rng = np.random.default_rng(7)
    good = [_random_packet(rng, length, 1, False) for length in (184, 44, 8)]
    unknown = bytes(rng.integers(0, 256, 77, dtype=np.uint8))
    message = encode.encode_message([good[0], unknown, good[1], good[2]])
    client_ticks = _client()._parse_binary(message)
    table, bad, summary = decode_bytes(encode.frame([message], "u32len"), framing="u32len")
    assert len(client_ticks) == table.num_rows == 3
    for tick, row in zip(client_ticks, table.to_pylist(), strict=True):
        _compare(tick, row)
    assert [(b.length, b.reason) for b in bad] == [(77, "unknown packet length 77")]
    assert bad[0].offset == 4 + 2 + 2 + 184 + 2 and bad[0].raw == unknown and bad[0].msg_seq == 0
    assert table.column("pkt_seq").to_pylist() == [0, 2, 3]


def test_the_client_would_misread_a_fixture_that_is_not_a_message(kite_mocks, ist_timezone):
    """The kiteconnect-mocks .packet files are bare bodies: the client needs a header."""
    import base64

    body = base64.b64decode((kite_mocks / "zerodha-kiteconnect-mocks/ticker_quote.packet").read_bytes())
    assert len(body) == 44
    ours, _, _ = decode_bytes(body)
    theirs = _client()._parse_binary(encode.encode_message([body]))
    assert ours.num_rows == 1
    _compare(theirs[0], ours.to_pylist()[0])

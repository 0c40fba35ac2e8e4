"""Every real Kite fixture in ../shared decodes to the values in its expected.json."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from app.core import schema
from app.core.decode import CaptureReader, decode_bytes

API_FILES = (
    "zerodha-kiteconnect-mocks/ticker_quote.packet",
    "zerodha-kiteconnect-mocks/ticker_full.packet",
    "zerodha-kiteconnectjs/ltpMode_binary.packet",
    "zerodha-kiteconnectjs/quoteMode_binary.packet",
    "zerodha-kiteconnectjs/fullMode_binary.packet",
    "zerodha-cppkiteconnect/websocket_ticks.bin",
)
WEB_FILES = ("third-party-kite-web/ws.packet", "third-party-kite-web/ws_extended_depth_20.packet")
EXPECTED_FRAMING = {
    "zerodha-kiteconnect-mocks/ticker_quote.packet": "base64",  # base64 text of one bare body
    "zerodha-kiteconnect-mocks/ticker_full.packet": "base64",
    "zerodha-kiteconnectjs/ltpMode_binary.packet": "single",
    "zerodha-kiteconnectjs/quoteMode_binary.packet": "single",
    "zerodha-kiteconnectjs/fullMode_binary.packet": "single",
    "zerodha-cppkiteconnect/websocket_ticks.bin": "single",
    "third-party-kite-web/ws.packet": "base64",
    "third-party-kite-web/ws_extended_depth_20.packet": "base64",
}


def _decode(path):
    reader = CaptureReader(path)
    batches = list(reader.batches())
    import pyarrow as pa

    table = pa.concat_tables([b.ticks for b in batches])
    bad = [bad for b in batches for bad in b.bad]
    return table, bad, reader.summary


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.replace(tzinfo=value.tzinfo or UTC).timestamp())


def _close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("name", API_FILES)
def test_api_fixture_decodes_to_expected_values(kite_mocks, kite_expected, name):
    table, bad, summary = _decode(kite_mocks / name)
    expected = kite_expected[name]["packets"]
    assert summary.framing == EXPECTED_FRAMING[name]
    assert bad == []
    assert summary.bytes_accounted == summary.bytes == (kite_mocks / name).stat().st_size
    assert table.schema == schema.DECODED_SCHEMA
    assert table.num_rows == len(expected)
    rows = table.to_pylist()
    checked = 0
    for row, want in zip(rows, expected, strict=True):
        for key, value in want.items():
            if key.endswith("_epoch"):
                column = key[: -len("_epoch")]
                assert _epoch(row[column]) == value, (name, column)
            elif isinstance(value, float):
                assert _close(row[key], value), (name, key, row[key], value)
            elif isinstance(value, list):
                assert len(row[key]) == len(value), (name, key)
                for got, exp in zip(row[key], value, strict=True):
                    assert _close(got, exp) if isinstance(exp, float) else got == exp, (name, key)
            else:
                assert row[key] == value, (name, key, row[key], value)
            checked += 1
        # Fields the expected values leave out are null (the kind lacks them).
        if want["mode"] != "full":
            assert row["exchange_timestamp"] is None and row["bid_price"] is None
        if want["mode"] == "ltp":
            assert row["close"] is None and row["change"] is None and row["change_percent"] is None
    assert checked >= len(expected) * 4


@pytest.mark.parametrize("name", API_FILES)
def test_full_fixture_times_are_the_exchange_times(kite_mocks, kite_expected, name):
    table, _, _ = _decode(kite_mocks / name)
    expected = kite_expected[name]["packets"]
    assert table.num_rows == len(expected) > 0
    for row, want in zip(table.to_pylist(), expected, strict=True):
        if "exchange_timestamp_epoch" in want:
            assert row["tick_time_source"] == schema.TIME_SOURCE_EXCHANGE
            assert _epoch(row["tick_time"]) == want["exchange_timestamp_epoch"]
            assert row["trading_date"] == row["tick_time"].astimezone(
                __import__("datetime").timezone(__import__("datetime").timedelta(hours=5, minutes=30))
            ).date()
        else:
            assert row["tick_time"] is None and row["tick_time_source"] is None


@pytest.mark.parametrize("name", WEB_FILES)
def test_kite_web_capture_counts(kite_mocks, kite_expected, name):
    table, bad, summary = _decode(kite_mocks / name)
    expected = kite_expected[name]
    assert summary.framing == "base64"
    assert summary.messages == expected["messages"]
    assert summary.heartbeats == expected["heartbeats"]
    assert {str(k): v for k, v in summary.packets_by_length.items()} == expected["packets_by_length"]
    assert summary.packets == table.num_rows == sum(expected["packets_by_length"].values())
    assert len(set(table.column("instrument_token").to_pylist())) == expected["distinct_tokens"]
    assert summary.distinct_tokens == expected["distinct_tokens"]
    assert bad == [] and summary.bad_packets == 0
    assert summary.bytes_accounted == summary.bytes
    assert summary.invalid_segments == 0


def test_kite_web_depth20_has_twenty_levels_and_sane_prices(kite_mocks):
    table, _, _ = _decode(kite_mocks / "third-party-kite-web/ws_extended_depth_20.packet")
    rows = table.to_pylist()
    assert rows
    assert all(len(r["bid_price"]) == 20 and len(r["ask_orders"]) == 20 for r in rows)
    assert all(r["mode"] == "full" and r["segment"] == 2 for r in rows)
    for r in rows:
        bids = [p for p in r["bid_price"] if p]
        asks = [p for p in r["ask_price"] if p]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        if bids and asks:
            assert bids[0] <= asks[0]
        assert r["tick_time_source"] == schema.TIME_SOURCE_EXCHANGE
        # 2022-06-15 12:30-12:34 IST
        assert datetime(2022, 6, 15, 7, 0, tzinfo=UTC) <= r["tick_time"] <= datetime(
            2022, 6, 15, 7, 5, tzinfo=UTC
        )


def test_kite_web_ltp_packets_take_their_message_time(kite_mocks):
    table, _, _ = _decode(kite_mocks / "third-party-kite-web/ws.packet")
    rows = table.to_pylist()
    sources = {r["tick_time_source"] for r in rows if r["packet_length"] == 184}
    assert sources == {schema.TIME_SOURCE_EXCHANGE}
    by_message = {}
    for r in rows:
        by_message.setdefault(r["msg_seq"], []).append(r)
    checked = 0
    for packets in by_message.values():
        full_times = [r["exchange_timestamp"] for r in packets if r["exchange_timestamp"] is not None]
        for r in packets:
            if r["exchange_timestamp"] is None and full_times:
                assert r["tick_time_source"] == schema.TIME_SOURCE_MESSAGE
                assert r["tick_time"] == max(full_times)
                checked += 1
    assert checked > 100
    indices = {r["instrument_token"] for r in rows if r["segment"] == 9}
    assert {256265, 265, 260105} <= indices
    assert all(not r["tradable"] for r in rows if r["segment"] == 9)


def test_fixture_bytes_decode_the_same_in_memory(kite_mocks):
    for name in API_FILES + WEB_FILES:
        data = (kite_mocks / name).read_bytes()
        table, bad, summary = decode_bytes(data, name=name)
        streamed, _, streamed_summary = _decode(kite_mocks / name)
        assert table.equals(streamed), name
        assert summary.file_id == streamed_summary.file_id


def test_small_chunks_give_the_same_ticks(kite_mocks):
    name = "third-party-kite-web/ws.packet"
    whole, _, summary = _decode(kite_mocks / name)
    reader = CaptureReader(kite_mocks / name, chunk_bytes=4096)
    import pyarrow as pa

    chunked = pa.concat_tables([b.ticks for b in reader.batches()])
    assert chunked.equals(whole)
    assert reader.summary.to_dict() == summary.to_dict()

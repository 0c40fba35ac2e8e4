"""Field decoding from the layout table, derived columns, tick times and the reader API."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from app.core import protocol, schema
from app.core.decode import CaptureReader, decode_bytes, filename_time
from app.errors import InputError
from tests.support import encode

IST = timezone(timedelta(hours=5, minutes=30))
EXCHANGE_TS = 1_700_000_000  # 2023-11-14 22:13:20 UTC = 2023-11-15 03:43:20 IST
LTT = 1_699_999_990


def values_for(layout, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    values = {}
    for f in layout.fields:
        if f.timestamp:
            values[f.name] = EXCHANGE_TS if f.name == "exchange_timestamp" else LTT
        elif f.signed:
            values[f.name] = -int(rng.integers(1, 1 << 30))
        else:
            values[f.name] = int(rng.integers(1, 1 << 31))
    return values


def depth_for(layout, seed: int):
    if layout.depth is None:
        return None, None
    rng = np.random.default_rng(seed + 1)
    levels = layout.depth.levels
    max_orders = 1 << (8 * layout.depth.entry_fields[2].size)
    def side():
        return [(int(rng.integers(0, 1 << 31)), int(rng.integers(0, 1 << 31)), int(rng.integers(0, max_orders)))
                for _ in range(levels)]

    return side(), side()


@pytest.mark.parametrize("length", protocol.KNOWN_LENGTHS)
@pytest.mark.parametrize("segment", [1, 3, 6, 9, 12, 77])
def test_every_layout_field_decodes_from_the_table(length, segment):
    layout = protocol.LAYOUTS[length]
    values = values_for(layout, length * 100 + segment)
    values["instrument_token"] = (123456 << 8) | segment
    bids, asks = depth_for(layout, length)
    values["_padding"] = 0xBEEF  # never read
    data = encode.encode_message([encode.encode_packet(length, values, bids, asks)])
    table, bad, summary = decode_bytes(data, "single")
    assert bad == [] and table.schema == schema.DECODED_SCHEMA
    row = table.to_pylist()[0]
    divisor = protocol.divisor_of(segment)
    assert row["mode"] == layout.mode and row["packet_length"] == length
    assert row["segment"] == segment and row["exchange_token"] == 123456
    assert row["tradable"] is (segment != 9)
    stored = set()
    for f in layout.fields:
        if f.column is None:
            continue
        stored.add(f.column)
        if f.price:
            assert row[f.column] == values[f.name] / divisor, f.name
        elif f.timestamp:
            assert row[f.column] == datetime.fromtimestamp(values[f.name], UTC), f.name
        else:
            assert row[f.column] == values[f.name], f.name
    for column in protocol.WIRE_COLUMNS:
        if column not in stored:
            assert row[column] is None, column  # the kind lacks it
    if layout.depth is None:
        assert all(row[c] is None for c in protocol.DEPTH_COLUMNS)
    else:
        for side, levels in (("bid", bids), ("ask", asks)):
            assert row[f"{side}_quantity"] == [q for q, _, _ in levels]
            assert row[f"{side}_price"] == [p / divisor for _, p, _ in levels]
            assert row[f"{side}_orders"] == [o for _, _, o in levels]
    if "close" in stored:
        change = row["last_price"] - row["close"]
        assert row["change"] == change
        assert row["change_percent"] == change * 100 / row["close"]
    else:
        assert row["change"] is None and row["change_percent"] is None
    assert summary.invalid_segments == (0 if segment in protocol.SEGMENTS else 1)


def test_padding_bytes_are_never_read():
    layout = protocol.LAYOUTS[184]
    values = values_for(layout, 1)
    bids, asks = depth_for(layout, 1)
    plain = encode.encode_packet(184, values, bids, asks)
    padded = encode.encode_packet(184, dict(values, _padding=0xFFFF), bids, asks)
    assert plain != padded
    a, _, _ = decode_bytes(plain, "single")
    b, _, _ = decode_bytes(padded, "single")
    assert a.drop_columns(["file_id"]).equals(b.drop_columns(["file_id"]))


def test_close_zero_gives_zero_change_percent_and_zero_times_are_null():
    body = encode.encode_packet(184, {"instrument_token": 256265, "last_price": 1000, "close": 0})
    row = decode_bytes(body, "single")[0].to_pylist()[0]
    assert row["change"] == 10.0 and row["change_percent"] == 0.0
    assert row["last_trade_time"] is None and row["exchange_timestamp"] is None
    assert row["tick_time"] is None and row["tick_time_source"] is None and row["trading_date"] is None
    assert row["bid_price"] == [0.0] * 5  # empty levels are zeros, not nulls


def test_index_packets_keep_their_own_field_order():
    values = {"instrument_token": 256265, "last_price": 2_000_000, "high": 2_010_000, "low": 1_990_000,
              "open": 1_995_000, "close": 1_980_000, "price_change": -5000, "exchange_timestamp": EXCHANGE_TS}
    row = decode_bytes(encode.encode_packet(32, values), "single")[0].to_pylist()[0]
    assert (row["open"], row["high"], row["low"], row["close"]) == (19950.0, 20100.0, 19900.0, 19800.0)
    assert row["change"] == 200.0 and not row["tradable"] and row["mode"] == "full"


def _message(*packets):
    return encode.encode_message(list(packets))


def test_tick_time_sources_by_decreasing_trust():
    # exchange_timestamp -> recv_ts -> the message's exchange_timestamp -> own
    # last_trade_time (a last *trade*, possibly hours stale) -> the file name.
    full = encode.encode_packet(184, {"instrument_token": (1 << 8) | 1, "exchange_timestamp": EXCHANGE_TS,
                                      "last_trade_time": LTT})
    ltt_only = encode.encode_packet(184, {"instrument_token": (2 << 8) | 1, "last_trade_time": LTT})
    ltp = encode.encode_packet(8, {"instrument_token": (3 << 8) | 1, "last_price": 100})
    quote = encode.encode_packet(44, {"instrument_token": (4 << 8) | 1})
    msgs = [_message(full, ltt_only, ltp), _message(quote), _message(ltt_only)]
    table, _, _ = decode_bytes(encode.frame(msgs, "raw"), "raw", name="capture.bin")
    rows = table.to_pylist()
    assert [r["tick_time_source"] for r in rows] == ["exchange", "message", "message", None, "exchange"]
    exchange = datetime.fromtimestamp(EXCHANGE_TS, UTC)
    ltt = datetime.fromtimestamp(LTT, UTC)
    assert [r["tick_time"] for r in rows] == [exchange, exchange, exchange, None, ltt]
    assert rows[0]["trading_date"] == date(2023, 11, 15)  # IST date, not the UTC 14th

    # A file name with a capture time names what nothing else does, in IST.
    table, _, _ = decode_bytes(encode.frame(msgs, "raw"), "raw", name="/x/binary_data_20240102_091500.dat")
    rows = table.to_pylist()
    assert rows[3]["tick_time_source"] == "filename"
    assert rows[3]["tick_time"] == datetime(2024, 1, 2, 3, 45, tzinfo=UTC)
    assert rows[3]["trading_date"] == date(2024, 1, 2)
    assert rows[4]["tick_time_source"] == "exchange"  # its own last_trade_time beats the file name

    # The container's receive time beats the message, a stale last_trade_time and the file name.
    recv = [1_710_000_000_500_000_000, 1_710_000_001_000_000_000, 1_710_000_002_000_000_000]
    table, _, _ = decode_bytes(encode.frame(msgs, "ts-u32len", recv_ns=recv), name="binary_data_20240102_091500.dat")
    rows = table.to_pylist()
    assert [r["tick_time_source"] for r in rows] == ["exchange", "receive", "receive", "receive", "receive"]
    assert rows[1]["tick_time"] == datetime(2024, 3, 9, 16, 0, 0, 500000, tzinfo=UTC)
    assert rows[3]["recv_ts"] == datetime.fromtimestamp(1_710_000_001, UTC)
    assert rows[4]["tick_time"] == datetime.fromtimestamp(1_710_000_002, UTC)


def test_filename_time_forms():
    assert filename_time("binary_data_20220609_131700.dat") == datetime(2022, 6, 9, 7, 47, tzinfo=UTC)
    assert filename_time("ticks-20220609-131700.bin") == datetime(2022, 6, 9, 7, 47, tzinfo=UTC)
    assert filename_time("capture.bin") is None
    assert filename_time("x_20221399_250000.bin") is None  # not a date


def test_rows_are_in_file_order_with_message_and_packet_numbers():
    rng = np.random.default_rng(5)
    msgs = []
    for i in range(30):
        lengths = rng.choice(protocol.KNOWN_LENGTHS, size=int(rng.integers(1, 7)))
        msgs.append(_message(*(encode.encode_packet(int(n), {"instrument_token": (i << 8) | 2}) for n in lengths)))
    table, _, summary = decode_bytes(encode.frame(msgs, "raw"), "raw")
    seq = list(zip(table.column("msg_seq").to_pylist(), table.column("pkt_seq").to_pylist(), strict=True))
    assert seq == [(m, k) for m, msg in enumerate(msgs) for k in range(int.from_bytes(msg[:2], "big"))]
    offsets = table.column("offset").to_numpy()
    assert (np.diff(offsets) > 0).all()
    assert table.column("exchange_token").to_pylist() == [m for m, _ in seq]
    assert set(summary.packets_by_length) <= set(protocol.KNOWN_LENGTHS)


def test_reader_file_id_errors_and_cancel(tmp_path):
    data = encode.frame([_message(encode.encode_packet(8, {"instrument_token": 265}))] * 2000, "raw")
    path = tmp_path / "c.bin"
    path.write_bytes(data)
    reader = CaptureReader(path, chunk_bytes=1000)
    assert reader.file_id == hashlib.sha256(data).hexdigest() and reader.size == len(data)
    assert CaptureReader(path, file_id="abc").file_id == "abc"
    cancel = threading.Event()
    batches = []
    for batch in reader.batches(cancel):
        batches.append(batch)
        if len(batches) == 3:
            cancel.set()
    assert len(batches) == 3 and not reader.summary.complete
    assert reader.summary.bytes_accounted == batches[-1].bytes_done < len(data)
    with pytest.raises(InputError, match="not found"):
        CaptureReader(tmp_path / "missing.bin")
    with pytest.raises(InputError, match="not a capture file"):
        CaptureReader(tmp_path)


def test_summary_dict_is_json_ready():
    import json

    table, _, summary = decode_bytes(encode.frame([_message(encode.encode_packet(
        184, {"instrument_token": 265, "exchange_timestamp": EXCHANGE_TS}))], "u32len"))
    doc = json.loads(json.dumps(summary.to_dict()))
    for key in ("framing", "messages", "packets", "heartbeats", "bad_packets", "bytes", "bytes_accounted",
                "file_id", "packets_by_length", "accounted", "first_tick_time", "invalid_segments"):
        assert key in doc
    assert doc["packets_by_length"] == {"184": 1}
    assert doc["first_tick_time"] == datetime.fromtimestamp(EXCHANGE_TS, UTC).isoformat()
    assert summary.first_tick_time == summary.last_tick_time


def test_unenriched_output_has_the_tick_schema():
    table, _, _ = decode_bytes(encode.encode_packet(44, {"instrument_token": 265}), "single")
    wide = schema.unenriched(table)
    assert wide.schema == schema.TICK_SCHEMA
    assert wide.column("resolved").to_pylist() == [False]


def test_many_packets_decode_vectorised_consistently():
    """Mixed lengths in one chunk go through the per-length groups and come back in order."""
    rng = np.random.default_rng(11)
    packets = []
    for i in range(3000):
        length = int(rng.choice(protocol.KNOWN_LENGTHS))
        packets.append((length, encode.encode_packet(length, {"instrument_token": (i << 8) | 7, "last_price": i})))
    msgs = [_message(*(p for _, p in packets[i : i + 50])) for i in range(0, 3000, 50)]
    table, _, _ = decode_bytes(encode.frame(msgs, "u32len"))
    assert table.column("exchange_token").to_pylist() == list(range(3000))
    assert table.column("last_price").to_pylist() == [i / 100 for i in range(3000)]
    assert table.column("packet_length").to_pylist() == [n for n, _ in packets]
    depth = table.column("bid_price").to_pylist()
    assert [len(d) if d is not None else 0 for d in depth] == [
        protocol.LAYOUTS[n].depth.levels if protocol.LAYOUTS[n].depth else 0 for n, _ in packets
    ]
    assert isinstance(table.column("bid_price").chunk(0), pa.ListArray)

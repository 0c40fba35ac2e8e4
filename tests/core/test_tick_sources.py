"""JSON/JSONL dumps of the official client's ticks and Parquet exports read back as DECODED_SCHEMA.

The dumps are made the way users make them: the official client's own parser
(``KiteTicker._parse_binary``) turns generated binary messages into tick dicts on a machine
whose local time zone is IST (or UTC, for the override), and ``json.dumps`` writes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import struct
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.core import schema, tick_sources
from app.errors import InputError
from tests.support import encode, synthetic

kiteconnect = pytest.importorskip("kiteconnect")

COMPARED = [n for n in schema.DECODED_SCHEMA.names if n not in ("file_id", "offset", "recv_ts")]
OLD_NAMES = {
    "last_traded_quantity": "last_quantity", "average_traded_price": "average_price",
    "volume_traded": "volume", "total_buy_quantity": "buy_quantity",
    "total_sell_quantity": "sell_quantity", "exchange_timestamp": "timestamp",
}
IST_TOKEN, CDS_TOKEN, NIFTY = 408065, (1234 << 8) | 3, 256265
T0 = 1760326800  # 2025-10-13 09:10:00 IST


@contextlib.contextmanager
def local_timezone(name: str):
    """The machine's local zone, which the client's datetime.fromtimestamp uses."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def _handmade_messages() -> list[bytes]:
    """Edge cases the generator does not make: absent times, negative index change,
    close 0, a message with no time at all, LTP beside a timed CDS packet."""
    full_no_times = encode.encode_packet(184, {
        "instrument_token": IST_TOKEN, "last_price": 152130, "last_traded_quantity": 3,
        "average_traded_price": 152100, "volume_traded": 91000, "total_buy_quantity": 500,
        "total_sell_quantity": 700, "open": 151000, "high": 153000, "low": 150500, "close": 150000,
        "last_trade_time": 0, "exchange_timestamp": 0, "oi": 0,
    }, bids=[(10, 152125, 2)], asks=[(4, 152135, 1), (9, 152140, 3)])
    index_full = encode.encode_packet(32, {
        "instrument_token": NIFTY, "last_price": 2510000, "high": 2530000, "low": 2500000,
        "open": 2525000, "close": 2522735, "price_change": 2510000 - 2522735, "exchange_timestamp": T0 + 5,
    })
    index_quote = encode.encode_packet(28, {
        "instrument_token": (1035 << 8) | 9, "last_price": 1100, "high": 1150, "low": 1050, "open": 1120,
        "close": 0,
    })
    quote_close_zero = encode.encode_packet(44, {"instrument_token": (1594 << 8) | 4, "last_price": 152140})
    cds_full = encode.encode_packet(184, {
        "instrument_token": CDS_TOKEN, "last_price": 887125000, "close": 887425000, "open": 887000000,
        "high": 887500000, "low": 886900000, "last_trade_time": T0 + 3, "exchange_timestamp": T0 + 4,
    }, bids=[(5, 887100000, 1)], asks=[(7, 887150000, 2)])
    ltp = encode.encode_packet(8, {"instrument_token": 409, "last_price": 12345})
    return [
        encode.encode_message([full_no_times, index_full, index_quote]),
        encode.encode_message([ltp, quote_close_zero]),  # nothing in it carries a time
        encode.encode_message([ltp, cds_full, quote_close_zero]),
    ]


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[bytes, list[bytes]]:
    path = tmp_path_factory.mktemp("cap") / "cap.dat"
    info = synthetic.generate_capture(path, packets=1200, seed=9, heartbeats=False)
    data = path.read_bytes()
    messages, at = [], 0
    while at < len(data):
        count, end = int.from_bytes(data[at:at + 2], "big"), at + 2
        for _ in range(count):
            end += 2 + int.from_bytes(data[end:end + 2], "big")
        messages.append(data[at:end])
        at = end
    assert len(messages) == info.messages
    messages += _handmade_messages()
    return b"".join(messages), messages


def client_ticks(messages: list[bytes], zone: str = "Asia/Kolkata") -> list[list[dict]]:
    client = kiteconnect.KiteTicker.__new__(kiteconnect.KiteTicker)
    with local_timezone(zone):
        return [client._parse_binary(m) for m in messages]


def _isoformat(value):
    return value.isoformat()


def write_jsonl(path, per_message, default=_isoformat, per_tick=False):
    with open(path, "w") as fh:
        for ticks in per_message:
            for value in (ticks if per_tick else [ticks]):
                fh.write(json.dumps(value, default=default) + "\n")
    return path


def read(path, **kw) -> pa.Table:
    tables = list(tick_sources.read_tick_file(path, **kw))
    for table in tables:
        assert table.schema == schema.DECODED_SCHEMA
    return pa.concat_tables(tables) if tables else schema.DECODED_SCHEMA.empty_table()


@pytest.fixture(scope="module")
def decoded(capture) -> pa.Table:
    from app.core import decode

    table, bad, summary = decode.decode_bytes(capture[0], "raw")
    assert not bad
    return table


def assert_same_ticks(actual: pa.Table, expected: pa.Table, columns=COMPARED):
    assert actual.num_rows == expected.num_rows
    for name in columns:
        a, e = actual.column(name).to_pylist(), expected.column(name).to_pylist()
        if a != e:
            bad = next(i for i, (x, y) in enumerate(zip(a, e, strict=True)) if x != y)
            raise AssertionError(f"{name} differs first at row {bad}: {a[bad]!r} != {e[bad]!r}")


# --- against the binary decoder ------------------------------------------------


def test_jsonl_of_client_messages_equals_binary_decoder(tmp_path, capture, decoded):
    path = write_jsonl(tmp_path / "ticks.jsonl", client_ticks(capture[1]))
    assert tick_sources.sniff_tick_file(path) == "jsonl"
    table = read(path, file_id="f" * 64)
    assert_same_ticks(table, decoded)
    assert set(table.column("file_id").to_pylist()) == {"f" * 64}
    # offset = byte offset of the message's line
    lines = path.read_bytes().splitlines(keepends=True)
    line_starts = np.cumsum([0] + [len(line) for line in lines])[:-1]
    assert table.column("offset").to_pylist() == line_starts[table.column("msg_seq").to_numpy()].tolist()


def test_json_array_with_str_datetimes_equals_binary_decoder(tmp_path, capture, decoded):
    flat = [t for ticks in client_ticks(capture[1]) for t in ticks]
    path = tmp_path / "ticks.json"
    path.write_text(json.dumps(flat, default=str, indent=2))  # "2025-10-13 09:15:00"
    assert tick_sources.sniff_tick_file(path) == "json"
    table = read(path)
    # One element per tick: msg_seq is the element index, so the message fallback for
    # tick_time has nothing to fall back on.
    assert table.column("msg_seq").to_pylist() == list(range(len(flat)))
    assert table.column("offset").null_count == table.num_rows
    same = [c for c in COMPARED if c not in ("msg_seq", "pkt_seq", "tick_time", "tick_time_source", "trading_date")]
    assert_same_ticks(table, decoded, same)
    own = decoded.column("tick_time_source").to_pylist()
    expected_time = [t if s == "exchange" else None for t, s in zip(decoded.column("tick_time").to_pylist(), own,
                                                                    strict=True)]
    assert table.column("tick_time").to_pylist() == expected_time
    assert table.column("file_id").to_pylist()[0] == tick_sources.file_sha256(path)


def test_pre_2021_field_names(tmp_path, capture, decoded):
    old = [[{OLD_NAMES.get(k, k): v for k, v in t.items()} for t in ticks] for ticks in client_ticks(capture[1])]
    assert any("timestamp" in t and "buy_quantity" in t for ticks in old for t in ticks)
    assert_same_ticks(read(write_jsonl(tmp_path / "old.jsonl", old)), decoded)


def test_epoch_number_timestamps(tmp_path, capture, decoded):
    def epoch(value):
        return value.timestamp()  # naive local (IST here) -> epoch seconds

    with local_timezone("Asia/Kolkata"):
        path = write_jsonl(tmp_path / "epoch.jsonl", client_ticks(capture[1]), default=epoch)
    assert_same_ticks(read(path), decoded)


def test_hand_edited_dumps_take_the_per_tick_path_with_the_same_values(tmp_path, capture, decoded):
    """Numbers written as strings defeat Arrow's bulk conversion; the result must not change."""
    edited = [[dict(t, instrument_token=str(t["instrument_token"]), last_price=str(t["last_price"]))
               for t in ticks] for ticks in client_ticks(capture[1])]
    assert_same_ticks(read(write_jsonl(tmp_path / "edited.jsonl", edited)), decoded)


def test_mode_and_tradable_inferred_when_missing(tmp_path, capture, decoded):
    bare = [[{k: v for k, v in t.items() if k not in ("mode", "tradable")} for t in ticks]
            for ticks in client_ticks(capture[1])]
    table = read(write_jsonl(tmp_path / "bare.jsonl", bare))
    assert table.column("tradable").to_pylist() == decoded.column("tradable").to_pylist()
    tradable = decoded.column("tradable").to_numpy(zero_copy_only=False)
    assert tradable.any() and not tradable.all()  # both kinds are there to check
    # Index (untradable) full and quote packets need their mode to tell them apart: only the
    # tradable ticks' mode and packet length can be inferred.
    for name in ("mode", "packet_length"):
        got = np.array(table.column(name).to_pylist(), dtype=object)[tradable]
        want = np.array(decoded.column(name).to_pylist(), dtype=object)[tradable]
        assert got.tolist() == want.tolist(), name


# --- independent of the decoder ------------------------------------------------


def _raw_exchange_times(messages: list[bytes]) -> list[int | None]:
    """exchange_timestamp straight from the wire (epoch seconds, None when 0 or absent)."""
    out = []
    for message in messages:
        count, at = int.from_bytes(message[:2], "big"), 2
        for _ in range(count):
            size = int.from_bytes(message[at:at + 2], "big")
            body = message[at + 2:at + 2 + size]
            field = {184: 60, 32: 28}.get(size)
            value = struct.unpack_from(">I", body, field)[0] if field is not None else 0
            out.append(value or None)
            at += 2 + size
    return out


def test_times_are_utc_instants_not_shifted_by_5h30(tmp_path, capture):
    path = write_jsonl(tmp_path / "ticks.jsonl", client_ticks(capture[1], "Asia/Kolkata"))
    table = read(path)
    wire = _raw_exchange_times(capture[1])
    got = [None if t is None else int(t.timestamp()) for t in table.column("exchange_timestamp").to_pylist()]
    assert got == wire and any(wire)
    dates = set(table.column("trading_date").drop_null().to_pylist())
    assert dates == {dt.date(2025, 10, 13)}


def test_dump_from_a_utc_machine_needs_the_override(tmp_path, capture):
    path = write_jsonl(tmp_path / "utc.jsonl", client_ticks(capture[1], "UTC"))
    wire = _raw_exchange_times(capture[1])
    right = read(path, naive_timezone="UTC")
    got = [None if t is None else int(t.timestamp()) for t in right.column("exchange_timestamp").to_pylist()]
    assert got == wire
    wrong = read(path)  # the IST default reads UTC wall times 5h30m too early
    shift = {
        int(w.timestamp()) - int(r.timestamp())
        for w, r in zip(wrong.column("exchange_timestamp").to_pylist(), right.column("exchange_timestamp").to_pylist(),
                        strict=True)
        if r is not None
    }
    assert shift == {-19800}


def test_offset_aware_strings_are_exact(tmp_path):
    base = {"instrument_token": IST_TOKEN, "mode": "full", "tradable": True, "last_price": 1.0}
    ticks = [
        dict(base, exchange_timestamp="2025-10-13T03:45:00Z"),
        dict(base, exchange_timestamp="2025-10-13T09:15:00+05:30"),
        dict(base, exchange_timestamp="2025-10-13T09:15:00"),  # naive: IST by default
        dict(base, exchange_timestamp=1760327100),  # seconds
        dict(base, exchange_timestamp=1760327100000),  # milliseconds
        dict(base, exchange_timestamp="1970-01-01T05:30:00"),  # the client's rendering of Kite's 0
        dict(base, exchange_timestamp=0),
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(ticks))
    table = read(path)
    expected = dt.datetime(2025, 10, 13, 3, 45, tzinfo=dt.UTC)
    got = table.column("exchange_timestamp").to_pylist()
    assert got[:5] == [expected] * 5 and got[5:] == [None, None]
    assert table.column("tick_time_source").to_pylist() == ["exchange"] * 5 + [None, None]


def test_message_time_fallback_and_derived_columns(tmp_path, capture):
    handmade = client_ticks(_handmade_messages())
    table = read(write_jsonl(tmp_path / "h.jsonl", handmade))
    rows = table.to_pylist()
    first, index_full, index_quote = rows[0:3]
    assert first["packet_length"] == 184 and first["exchange_timestamp"] is None
    assert first["last_trade_time"] is None
    # The index full packet's time is the message's; the 184 packet without times takes it.
    assert first["tick_time_source"] == "message" and first["tick_time"] == index_full["exchange_timestamp"]
    assert first["bid_quantity"] == [10, 0, 0, 0, 0] and first["ask_price"][:2] == [1521.35, 1521.4]
    assert first["change"] == pytest.approx(21.3) and first["change_percent"] == pytest.approx(1.42)
    assert (index_full["packet_length"], index_full["mode"], index_full["tradable"]) == (32, "full", False)
    assert index_full["change"] == pytest.approx(-127.35)
    assert (index_quote["packet_length"], index_quote["close"], index_quote["change_percent"]) == (28, 0.0, 0.0)
    assert index_quote["change"] == 11.0
    no_time = rows[3:5]
    assert [r["packet_length"] for r in no_time] == [8, 44]
    assert all(r["tick_time"] is None and r["trading_date"] is None for r in no_time)
    assert no_time[0]["change"] is None and no_time[0]["segment"] == 153 and no_time[0]["exchange_token"] == 1
    ltp, cds, quote = rows[5:8]
    assert cds["last_price"] == 88.7125 and cds["bid_price"][0] == 88.71
    assert ltp["tick_time_source"] == quote["tick_time_source"] == "message"
    assert ltp["tick_time"] == cds["exchange_timestamp"]
    assert [r["msg_seq"] for r in rows] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert [r["pkt_seq"] for r in rows] == [0, 1, 2, 0, 1, 0, 1, 2]


def test_one_tick_per_line(tmp_path, capture):
    per_message = client_ticks(capture[1])
    path = write_jsonl(tmp_path / "flat.jsonl", per_message, per_tick=True)
    table = read(path)
    n = sum(len(t) for t in per_message)
    assert table.num_rows == n
    assert table.column("msg_seq").to_pylist() == list(range(n))
    assert set(table.column("pkt_seq").to_pylist()) == {0}
    by_message = read(write_jsonl(tmp_path / "m.jsonl", per_message))
    assert_same_ticks(table, by_message, ["instrument_token", "last_price", "exchange_timestamp", "bid_price"])


def test_batches_never_split_a_message(tmp_path, capture):
    path = write_jsonl(tmp_path / "ticks.jsonl", client_ticks(capture[1]))
    whole = read(path)
    batches = list(tick_sources.read_tick_file(path, batch_rows=100))
    assert len(batches) > 5
    for batch in batches:
        seq = batch.column("msg_seq").to_pylist()
        assert batch.num_rows >= 100 or batch is batches[-1]
        assert batch.column("pkt_seq").to_pylist()[0] == 0, "a batch starts with a message's first tick"
        assert seq == sorted(seq)
    assert_same_ticks(pa.concat_tables(batches), whole, schema.DECODED_SCHEMA.names)


# --- Parquet exports -------------------------------------------------------------


def test_parquet_exports_read_back(tmp_path, capture):
    ticks = read(write_jsonl(tmp_path / "ticks.jsonl", client_ticks(capture[1])), file_id="a" * 64)
    decoded_file = tmp_path / "decoded.parquet"
    pq.write_table(ticks, decoded_file)
    enriched_file = tmp_path / "ticks.parquet"
    pq.write_table(schema.unenriched(ticks), enriched_file)
    for path in (decoded_file, enriched_file):
        assert tick_sources.sniff_tick_file(path) == "parquet"
        back = read(path, batch_rows=500)
        assert_same_ticks(back, ticks, [n for n in schema.DECODED_SCHEMA.names if n != "file_id"])
        assert set(back.column("file_id").to_pylist()) == {tick_sources.file_sha256(path)}

    # Two captures in one export: msg_seq would collide, so rows are renumbered.
    other = ticks.set_column(0, "file_id", pa.array(["b" * 64] * ticks.num_rows))
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(pa.concat_tables([ticks, other]), mixed)
    back = read(mixed, batch_rows=700)
    assert back.column("msg_seq").to_pylist() == list(range(2 * ticks.num_rows))
    assert back.column("offset").null_count == back.num_rows

    partial = tmp_path / "partial.parquet"
    pq.write_table(ticks.drop_columns(["bid_price", "tick_time"]), partial)
    with pytest.raises(InputError, match="bid_price"):
        read(partial)


# --- sniffing and bad input ----------------------------------------------------


def test_sniff(tmp_path, capture):
    cases = {
        "raw.dat": capture[0],
        "b64.txt": b"AAEACA==\nAA==\n",
        "empty.json": b"",
        "prose.txt": b"hello world\n",
        "one.jsonl": b'{"instrument_token": 409, "last_price": 1.0}\n',
        "pretty.json": b'[\n  {"instrument_token": 409}\n]\n',
        "lines.jsonl": b'[{"instrument_token": 409}]\n[{"instrument_token": 409}]\n',
        "bom.jsonl": b'\xef\xbb\xbf{"instrument_token": 409}\n{"instrument_token": 265}\n',
        "bin_brace.dat": b"{\x00\x01\x00\x08" + bytes(8),
    }
    expected = {"raw.dat": None, "b64.txt": None, "empty.json": None, "prose.txt": None,
                "one.jsonl": "json", "pretty.json": "json", "lines.jsonl": "jsonl", "bom.jsonl": "jsonl",
                "bin_brace.dat": None}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert tick_sources.sniff_tick_file(tmp_path / name) == expected[name], name
    assert tick_sources.sniff_tick_file(tmp_path / "missing.json") is None
    assert read(tmp_path / "bom.jsonl").column("instrument_token").to_pylist() == [409, 265]
    assert read(tmp_path / "one.jsonl").column("mode").to_pylist() == ["ltp"]
    with pytest.raises(InputError, match="binary capture"):
        read(tmp_path / "raw.dat")


def test_bad_input_says_where(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instrument_token": 409, "last_price": 1}\n\n{"instrument_token": 409, "last_pri\n'
                    '{"instrument_token": 409}\n')
    with pytest.raises(InputError, match="line 3"):
        read(path)
    path.write_text('[{"last_price": 1}]\n[{"instrument_token": 265}]\n')
    with pytest.raises(InputError, match="instrument_token"):
        read(path)
    with pytest.raises(InputError, match="time zone"):
        read(tmp_path / "bad.jsonl", naive_timezone="Mars/Olympus")


def test_a_long_dump_reads_in_bounded_batches(tmp_path, capture):
    """A dump of many messages reads in one pass, in batches of bounded size (no timing here)."""
    # ~4,800 ticks in batches of 512: as many batches as 24,000 ticks in batches of 4,096 gave,
    # at a fifth of the JSON written and read.
    per_message = client_ticks(capture[1]) * 4
    path = write_jsonl(tmp_path / "big.jsonl", per_message)
    sizes = [t.num_rows for t in tick_sources.read_tick_file(path, batch_rows=512)]
    assert sum(sizes) == sum(len(t) for t in per_message)
    assert len(sizes) > 5 and max(sizes) < 512 + 50


def test_kite_text_frames_are_not_a_tick_dump(tmp_path):
    """{"type": "order", "data": {...}} is a WebSocket text frame: the binary path reports it."""
    cases = {
        "order.bin": b'{"type":"order","data":{"order_id":"1"}}',
        "frames.json": b'[{"type":"error","data":"x"},{"type":"message","data":"hi"}]',
        "frames.jsonl": b'{"type":"order","data":{}}\n{"type":"error","data":"x"}\n',
        "pretty.json": b'{\n  "type": "order",\n  "data": {"order_id": "1"}\n}\n',
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert tick_sources.sniff_tick_file(tmp_path / name) is None, name
    # A tick that happens to have a "type" key, or ticks around a frame, are still ticks.
    (tmp_path / "mixed.jsonl").write_bytes(b'{"instrument_token": 409}\n{"type":"order","data":{}}\n')
    assert tick_sources.sniff_tick_file(tmp_path / "mixed.jsonl") == "jsonl"
    (tmp_path / "typed.json").write_bytes(b'[{"instrument_token": 409, "type": "tick"}]')
    assert tick_sources.sniff_tick_file(tmp_path / "typed.json") == "json"


def test_tick_time_priority_matches_the_decoder(tmp_path):
    """Own exchange_timestamp, then the message's, then (stale) own last_trade_time."""
    ets, ltt = 1_700_000_000, 1_699_990_000
    message = [
        {"instrument_token": 1 << 8 | 1, "mode": "full", "last_price": 1.0,
         "exchange_timestamp": ets, "last_trade_time": ltt},
        {"instrument_token": 2 << 8 | 1, "mode": "full", "last_price": 1.0, "last_trade_time": ltt},
    ]
    lone = [{"instrument_token": 3 << 8 | 1, "mode": "full", "last_price": 1.0, "last_trade_time": ltt}]
    path = tmp_path / "dump.jsonl"
    path.write_text(json.dumps(message) + "\n" + json.dumps(lone) + "\n")
    table = read(path)
    assert table.column("tick_time_source").to_pylist() == ["exchange", "message", "exchange"]
    utc = dt.UTC
    assert table.column("tick_time").to_pylist() == [
        dt.datetime.fromtimestamp(ets, utc), dt.datetime.fromtimestamp(ets, utc), dt.datetime.fromtimestamp(ltt, utc)]


def test_a_price_that_is_no_number_is_named_wherever_it_stands(tmp_path):
    # Top-level prices, the OHLC block and depth levels: each rejected tick says which price.
    ticks = [
        {"instrument_token": 409, "last_price": "12,5"},
        {"instrument_token": 409, "last_price": 1.5, "ohlc": {"open": 1, "high": "Infinity", "low": 1, "close": 1}},
        {"instrument_token": 409, "last_price": 1.5,
         "depth": {"buy": [{"price": 1.5}], "sell": [{"price": 1.5}, {"price": True}]}},
        {"instrument_token": 409, "last_price": 1.5, "ohlc": {"open": 1, "high": 2, "low": 1, "close": 1}},
    ]
    path = tmp_path / "ticks.jsonl"
    path.write_text("\n".join(json.dumps([t]) for t in ticks) + "\n")
    rejected = []
    table = pa.concat_tables(tick_sources.read_tick_file(path, file_id="a" * 64, rejected=rejected))
    assert table.num_rows == 1
    reasons = [b.reason for b in rejected]
    assert len(reasons) == 3
    assert "last_price '12,5' is not a number" in reasons[0]
    assert "ohlc.high 'Infinity' is not a price" in reasons[1]
    assert "depth.sell price True is not a number" in reasons[2]

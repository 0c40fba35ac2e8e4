"""Real-world containers (issue 13): HAR exports, websocat sessions with glued lines,
little-endian recorder containers, and Kite web's 44-byte depth heads.

Every capture is built from the project's encoder and must decode to exactly the ticks
of the same messages in ``raw`` framing, with ``recv_ts`` equal to the recorded times.
"""

from __future__ import annotations

import base64
import struct

import numpy as np
import pyarrow as pa
import pytest

from app.core import protocol
from app.core.decode import CaptureReader, decode_bytes
from app.core.framing import detect_framing, detect_framing_evidence
from tests.support import encode

T0 = 1_654_760_849_357_339_000  # 2022-06-09 07:47:29.357339 UTC, µs precision as Chrome writes


def sample_messages(n=40, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 6))
        packets = []
        for _j in range(k):
            length = int(rng.choice([8, 12, 28, 32, 44, 184, 492]))
            layout = protocol.LAYOUTS[length]
            values = {"instrument_token": (int(rng.integers(1, 1 << 20)) << 8) | int(rng.choice([1, 2, 3, 9]))}
            for f in layout.fields[1:]:
                values[f.name] = 1_654_760_000 + i if f.timestamp else int(rng.integers(1, 1 << 20))
            bids = [(int(rng.integers(1, 500)), int(rng.integers(1, 1 << 20)), int(rng.integers(1, 9)))] * 3
            packets.append(encode.encode_packet(length, values, bids, bids))
        out.append(encode.encode_message(packets))
    return out


def ticks_without_position(table: pa.Table) -> pa.Table:
    """The tick values, without where they sat in the file (offsets differ by container)."""
    return table.drop_columns(["file_id", "offset", "recv_ts", "tick_time", "tick_time_source", "trading_date"])


def raw_ticks(messages):
    table, bad, _ = decode_bytes(b"".join(messages), "raw")
    assert bad == []
    return table


def recv_times(n, step_us=1234):
    return [T0 + i * step_us * 1000 for i in range(n)]


def recv_us_column(table):
    return table.column("recv_ts").cast(pa.int64()).to_pylist()


# --- HAR -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["chrome", "firefox", "fragment", "list"])
@pytest.mark.parametrize("indent", [2, None])
def test_har_shapes_decode_like_raw_with_receive_times(tmp_path, shape, indent):
    msgs = sample_messages()
    times = recv_times(len(msgs))
    frames = [encode.HarFrame("send", T0 - 10**9, '{"a":"subscribe","v":[256265]}')]
    for i, (t, m) in enumerate(zip(times, msgs, strict=True)):
        frames.append(encode.HarFrame("receive", t, m))
        if i % 7 == 0:
            frames.append(encode.HarFrame("receive", t + 1000, b"\x00"))  # heartbeat
        if i % 11 == 0:
            frames.append(encode.HarFrame("receive", t + 2000, '{"type":"order","data":{"order_id":"1"}}'))
    data = encode.har([encode.HarConnection("wss://ws.kite.trade/?api_key=k", frames)], shape, indent)
    path = tmp_path / "kite.har"
    path.write_bytes(data)
    reader = CaptureReader(path)
    table = pa.concat_tables([b.ticks for b in reader.batches()])
    s = reader.summary
    assert reader.framing == "har" and s.framing_detected and "WebSocket" in s.framing_evidence
    assert s.bad_packets == 0 and s.bytes_accounted == s.bytes == len(data)
    assert s.messages == len(msgs) and s.heartbeats == 6 and s.text_frames == 4 and s.sent_frames == 1
    expected = raw_ticks(msgs)
    assert ticks_without_position(table).equals(ticks_without_position(expected))
    per_packet = [t // 1000 for t, m in zip(times, msgs, strict=True) for _ in range(struct.unpack(">H", m[:2])[0])]
    assert recv_us_column(table) == per_packet
    # packet offsets point at the base64 text of their message in the file
    first = table.column("offset")[0].as_py()
    assert data[first - 4 : first - 3] == b'"' or base64.b64decode(data[first - 4 : first + 8] + b"==")


def test_har_with_several_connections_decodes_all_in_time_order(tmp_path):
    msgs = sample_messages(30, seed=9)
    # two sockets whose messages interleave in time; each entry lists its own frames
    times = recv_times(len(msgs), step_us=500)
    conn_a = [encode.HarFrame("receive", t, m) for i, (t, m) in enumerate(zip(times, msgs, strict=True)) if i % 3 != 1]
    conn_b = [encode.HarFrame("receive", t, m) for i, (t, m) in enumerate(zip(times, msgs, strict=True)) if i % 3 == 1]
    data = encode.har([encode.HarConnection("wss://ws.kite.trade/a", conn_a),
                       encode.HarConnection("wss://ws.zerodha.com/b", conn_b)])
    table, bad, summary = decode_bytes(data)
    assert summary.framing == "har" and bad == []
    assert ticks_without_position(table).equals(ticks_without_position(raw_ticks(msgs)))
    assert table.column("msg_seq").to_pylist() == sorted(table.column("msg_seq").to_pylist())
    per_packet = [t // 1000 for t, m in zip(times, msgs, strict=True) for _ in range(struct.unpack(">H", m[:2])[0])]
    assert recv_us_column(table) == per_packet
    assert [(c["url"], c["messages"]) for c in summary.connections] == [
        ("wss://ws.kite.trade/a", len(conn_a)), ("wss://ws.zerodha.com/b", len(conn_b))]
    assert summary.to_dict()["connections"][1]["url"] == "wss://ws.zerodha.com/b"


def test_har_chunk_size_does_not_matter(tmp_path):
    msgs = sample_messages(25, seed=4)
    data = encode.frame(msgs, "har", recv_ns=recv_times(len(msgs)))
    path = tmp_path / "x.har"
    path.write_bytes(data)
    whole, _, summary = decode_bytes(data)
    for chunk in (64, 4096):
        reader = CaptureReader(path, chunk_bytes=chunk)
        got = pa.concat_tables([b.ticks for b in reader.batches()])
        assert got.drop_columns(["file_id"]).equals(whole.drop_columns(["file_id"]))


def test_har_damaged_message_is_a_bad_region_and_the_rest_decodes():
    msgs = sample_messages(5, seed=2)
    broken = msgs[2][:-3]  # a message cut short inside the frame
    data = encode.frame(msgs[:2] + [broken] + msgs[3:], "har", recv_ns=recv_times(5))
    table, bad, summary = decode_bytes(data)
    assert len(bad) == 1 and summary.bytes_accounted == len(data)
    ok = raw_ticks(msgs[:2] + msgs[3:])
    cut = raw_ticks([msgs[2]])
    # the whole packets before the cut still decode; nothing after the damage is lost
    assert ok.num_rows <= table.num_rows < ok.num_rows + cut.num_rows
    assert bad[0].msg_seq == 2


def test_a_har_without_websocket_frames_is_not_a_capture():
    data = b'{"log": {"version": "1.2", "entries": [{"request": {"url": "https://kite.zerodha.com/"}}]}}'
    table, bad, summary = decode_bytes(data)
    assert summary.framing == "har" and table.num_rows == 0
    assert len(bad) == 1 and "without WebSocket frames" in bad[0].reason


# --- websocat sessions --------------------------------------------------------------------


def test_websocat_message_glued_after_a_typed_command_is_recovered():
    msgs = sample_messages(6, seed=21)
    b64 = [base64.b64encode(m) for m in msgs]
    lines = [
        b64[0],
        b'{"a":"subscribe","v":[14523650,14523906]}',  # typed command on its own line
        b'{"a":"mode","v":["full",[14523650]]}' + b64[1],  # glued message
        b'{"a":"mode","v":["full",[14523906]]}AA==',  # glued heartbeat
        b'{"type":"error","id":"","data":"Invalid JSON message."}',  # echoed text frame
        b"=" * 100,  # websocat's separator
        b"",
        b'{"a":"mode","v":["full",[1]]}' + b64[2],
        b64[3], b64[4], b64[5],
    ]
    data = b"\n".join(lines) + b"\n"
    assert detect_framing(data, len(data)) == "base64"
    table, bad, summary = decode_bytes(data)
    assert bad == [] and summary.bytes_accounted == len(data)
    assert ticks_without_position(table).equals(ticks_without_position(raw_ticks(msgs)))
    assert summary.messages == 6 and summary.heartbeats == 1
    assert summary.sent_frames == 4 and summary.text_frames == 1 and summary.text_lines == 1
    # the glued message's packets point into its own base64 text
    glued_line_at = data.index(lines[2])
    glued = table.filter(pa.compute.equal(table.column("msg_seq"), 1)).column("offset").to_pylist()
    assert all(glued_line_at + len(b'{"a":"mode","v":["full",[14523650]]}') <= o < glued_line_at + len(lines[2])
               for o in glued)


def test_text_after_a_command_that_is_not_base64_is_bad_not_lost():
    data = base64.b64encode(sample_messages(1)[0]) + b'\n{"a":"mode"}not base64!\n'
    table, bad, summary = decode_bytes(data, "base64")
    assert len(bad) == 1 and bad[0].length == len(b"not base64!") and summary.sent_frames == 1
    assert summary.bytes_accounted == len(data)


# --- little-endian containers -------------------------------------------------------------


@pytest.mark.parametrize("framing", ["u32len-le", "ts-u32len-le"])
def test_little_endian_containers_are_detected_and_decode_like_raw(tmp_path, framing):
    msgs = sample_messages(50, seed=3)
    with_hb = []
    for i, m in enumerate(msgs):
        with_hb.append(m)
        if i % 9 == 0:
            with_hb.append(protocol.HEARTBEAT)
    times = recv_times(len(with_hb))
    data = encode.frame(with_hb, framing, recv_ns=times)
    framing_found, evidence = detect_framing_evidence(data, len(data))
    assert framing_found == framing and f"as {framing}" in evidence
    path = tmp_path / "rec.bin"
    path.write_bytes(data)
    for chunk in (97, 1 << 20):
        reader = CaptureReader(path, chunk_bytes=chunk)
        table = pa.concat_tables([b.ticks for b in reader.batches()])
        s = reader.summary
        assert s.framing == framing and s.bad_packets == 0 and s.bytes_accounted == len(data)
        assert s.heartbeats == 6 and s.messages == len(msgs)
        assert ticks_without_position(table).equals(ticks_without_position(raw_ticks(msgs)))
        if framing == "ts-u32len-le":
            msg_times = [t for t, m in zip(times, with_hb, strict=True) if m != protocol.HEARTBEAT]
            per_packet = [t // 1000 for t, m in zip(msg_times, msgs, strict=True) for _ in range(struct.unpack(">H",
                                                                                                               m[:2])[0])]
            assert recv_us_column(table) == per_packet
        else:
            assert table.column("recv_ts").null_count == table.num_rows
        bodies = [data[o : o + 4] for o in table.column("offset").to_pylist()]
        assert [int.from_bytes(b, "big") for b in bodies] == table.column("instrument_token").to_pylist()


def test_little_endian_container_with_damage_resynchronises():
    msgs = sample_messages(30, seed=8)
    data = bytearray(encode.frame(msgs, "ts-u32len-le", recv_ns=recv_times(len(msgs))))
    first = 12 + struct.unpack_from("<I", data, 8)[0]
    data[first + 8 : first + 12] = b"\xff\xff\xff\x7f"  # the second record's length is broken
    table, bad, summary = decode_bytes(bytes(data), "ts-u32len-le")
    assert bad and bad[0].offset == first and summary.bytes_accounted == len(data)
    lost = struct.unpack(">H", msgs[1][:2])[0]
    assert table.num_rows == raw_ticks(msgs).num_rows - lost


def test_le_container_detects_from_a_head_cut_inside_a_record():
    msgs = sample_messages(200, seed=30)
    data = encode.frame(msgs, "ts-u32len-le", recv_ns=recv_times(len(msgs)))
    head = data[: len(data) // 3]
    assert detect_framing(head, len(data)) == "ts-u32len-le"


# --- Kite web 44-byte heads of the 20-depth packet ---------------------------------------


def web_head(token=14523906, ltp=1576840, when=1655276443, bids=((50, 1576840, 1), (50, 1576780, 1), (150, 1576770,
                                                                                                      9))):
    return encode.encode_packet(44, {"instrument_token": token, "last_price": ltp, "exchange_timestamp": when},
                                bids, kind="depth20_head")


def test_web_head_decodes_as_its_own_mode_with_unsettled_fields_null():
    head = web_head()
    full = encode.encode_packet(
        492, {"instrument_token": 14523906, "last_price": 1576840, "exchange_timestamp": 1655276443},
        [(50, 1576840, 1), (50, 1576780, 1), (150, 1576770, 9)] + [(1, 2, 3)] * 17, [(4, 5, 6)] * 20)
    assert full[:44] == head  # the 44-byte packet is the head of the 492-byte layout
    table, bad, _ = decode_bytes(encode.encode_message([head, full]), "single")
    assert bad == []
    row, row492 = table.to_pylist()
    assert row["mode"] == "depth20_head" and row["packet_length"] == 44
    assert row["last_price"] == 15768.4 and row["exchange_timestamp"] == row492["exchange_timestamp"]
    assert row["bid_quantity"] == [50, 50, 150] and row["bid_price"] == [15768.4, 15767.8, 15767.7]
    assert row["bid_orders"] == [1, 1, None]  # bid 3's orders are past the packet's end
    assert row["bid_quantity"] == row492["bid_quantity"][:3] and row["bid_price"] == row492["bid_price"][:3]
    for column in ("ask_price", "ask_quantity", "ask_orders", "last_traded_quantity", "average_traded_price",
                   "volume_traded", "open", "high", "low", "close", "change", "oi"):
        assert row[column] is None, column
    assert row["tick_time_source"] == "exchange"


def test_api_quote_stays_a_quote():
    quote = encode.encode_packet(44, {"instrument_token": 408065, "last_price": 153682, "last_traded_quantity": 25,
                                      "average_traded_price": 153000, "volume_traded": 1_000_000,
                                      "total_buy_quantity": 5000, "high": 160000, "close": 150000})
    table, _, _ = decode_bytes(encode.encode_message([quote]), "single")
    row = table.to_pylist()[0]
    assert row["mode"] == "quote" and row["last_traded_quantity"] == 25 and row["close"] == 1500.0


def test_a_quote_with_an_epoch_like_quantity_but_no_order_counts_stays_a_quote():
    # only bytes 8-11 look like a time: bytes 20-23 / 32-35 are not order counts
    quote = encode.encode_packet(44, {"instrument_token": 408065, "last_price": 1,
                                      "last_traded_quantity": 1_655_276_443,
                                      "total_buy_quantity": 1 << 20, "high": 1 << 20})
    table, _, _ = decode_bytes(encode.encode_message([quote]), "single")
    assert table.column("mode").to_pylist() == ["quote"]


def test_web_heads_and_quotes_mixed_in_one_message_keep_their_order():
    packets = [web_head(), encode.encode_packet(44, {"instrument_token": 408065, "last_price": 1,
                                                     "last_traded_quantity": 3}),
               web_head(token=13483778, ltp=26695)]
    table, bad, _ = decode_bytes(encode.encode_message(packets), "single")
    assert bad == [] and table.column("mode").to_pylist() == ["depth20_head", "quote", "depth20_head"]
    assert table.column("instrument_token").to_pylist() == [14523906, 408065, 13483778]
    assert table.column("bid_orders").to_pylist() == [[1, 1, None], None, [1, 1, None]]


def test_inspector_dissects_a_web_head_with_its_own_layout():
    from app.core.dissect import dissect_packet

    d = dissect_packet(web_head(), 100)
    assert d.kind == "depth20_head"
    names = [f.name for f in d.fields]
    assert "exchange_timestamp" in names and "bid[2].price" in names and "bid[2].orders" not in names
    assert not any(n.startswith("ask[") for n in names)
    assert any("not as quote" in e.message for e in d.experts)


# --- the packet inspector's index ---------------------------------------------------------


def test_packet_index_shows_har_frames_with_receive_times_and_text_frames_as_rows(tmp_path):
    from app.core.packet_index import KIND_CODES, PacketIndex, RowFilter

    msgs = sample_messages(8, seed=12)
    times = recv_times(len(msgs))
    frames = [encode.HarFrame("send", T0 - 10**9, '{"a":"subscribe","v":[14523906]}')]
    frames += [encode.HarFrame("receive", t, m) for t, m in zip(times, msgs, strict=True)]
    frames.insert(4, encode.HarFrame("receive", times[2] + 5000, '{"type":"error","data":"Invalid JSON message."}'))
    frames.append(encode.HarFrame("receive", times[-1] + 10**6, encode.encode_message([web_head()])))
    path = tmp_path / "kite.har"
    path.write_bytes(encode.har([encode.HarConnection("wss://ws.kite.trade/", frames)]))
    index = PacketIndex(path)
    index.build()
    assert index.framing == "har" and "WebSocket" in index.framing_evidence
    kinds = [index.kind_name(r) for r in range(index.rows)]
    assert kinds.count("text frame") == 2 and kinds[0] == "text frame" and kinds[-1] == "depth20_head"
    offsets = index.column("offset")
    assert list(offsets) == sorted(offsets)  # file order
    text_rows = [r for r in range(index.rows) if kinds[r] == "text frame"]
    sent = index.view(text_rows[0])
    assert sent.kind == "text frame" and sent.data.startswith(b'{\\"a\\":\\"subscribe')
    assert [f.value for f in sent.dissection.fields if f.name == "direction"] == ["send"]
    packets = [r for r in range(index.rows) if kinds[r] not in ("text frame", "bad")]
    table, _, _ = decode_bytes(path.read_bytes())
    assert list(index.column("recv_time")[packets]) == table.column("recv_ts").cast(pa.int64()).to_pylist()
    view = index.view(packets[0])
    assert view.dissection.kind == kinds[packets[0]] and view.note.startswith("decoded from the base64 text")
    assert index.mask(RowFilter(kinds=["text frame"])).sum() == 2
    assert KIND_CODES["depth20_head"] != KIND_CODES["quote"]


def test_packet_index_of_a_websocat_session_with_glued_lines(tmp_path):
    from app.core.packet_index import PacketIndex

    msgs = sample_messages(3, seed=40)
    data = (b'{"a":"mode","v":["full",[1]]}' + base64.b64encode(msgs[0]) + b"\n"
            + base64.b64encode(msgs[1]) + b"\n" + b"=" * 40 + b"\n" + base64.b64encode(msgs[2]) + b"\n")
    path = tmp_path / "session.txt"
    path.write_bytes(data)
    index = PacketIndex(path)
    index.build()
    kinds = [index.kind_name(r) for r in range(index.rows)]
    assert kinds[0] == "text frame" and "bad" not in kinds
    first_packet = index.view(1)
    table, _, _ = decode_bytes(data)
    assert first_packet.dissection.fields[0].value == table.column("instrument_token")[0].as_py()


def test_a_big_har_is_handed_out_in_several_batches(tmp_path):
    """A HAR is read whole (one JSON document) but its ticks go out part by part."""
    # full packets: a batch is decode.SUB_BATCH_PACKETS of them (small ones come 4x as many)
    packet = encode.encode_packet(184, {"instrument_token": 256265, "last_price": 1})
    msgs = [encode.encode_message([packet] * 30)] * 1000  # 30,000 packets
    path = tmp_path / "big.har"
    path.write_bytes(encode.frame(msgs, "har", recv_ns=recv_times(len(msgs))))
    reader = CaptureReader(path)
    batches = list(reader.batches())
    assert len(batches) >= 2 and sum(b.ticks.num_rows for b in batches) == 30_000
    assert all(not b.bad for b in batches) and batches[-1].bytes_done == path.stat().st_size
    seqs = pa.concat_tables([b.ticks for b in batches]).column("msg_seq").to_pylist()
    assert seqs == sorted(seqs) and reader.summary.packets == 30_000 and reader.summary.complete

"""Framing: detection from content, chunked walking, faults, resync and byte accounting."""

from __future__ import annotations

import base64
import struct
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest

from app.core import protocol
from app.core.decode import CaptureReader, decode_bytes
from app.core.framing import BAD_RAW_CAP, FRAMINGS, Framer, detect_framing, split_messages
from app.core.framing import split as split_module
from tests.support import encode


def packet(length: int, token: int = (408065), price: int = 157315, **values) -> bytes:
    layout = protocol.LAYOUTS[length]
    fields = {"instrument_token": token, "last_price": price}
    for f in layout.fields:
        if f.timestamp:
            fields[f.name] = 1_700_000_000
    fields.update(values)
    levels = layout.depth.levels if layout.depth else 0
    depth = [(10 + i, price - i, 1 + i) for i in range(levels)] if levels else None
    return encode.encode_packet(length, fields, depth, depth)


def messages(count: int = 12, seed: int = 0, heartbeats: bool = False) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        lengths = rng.choice([8, 28, 32, 44, 184], size=int(rng.integers(1, 9)))
        out.append(encode.encode_message([packet(int(length), token=(1000 + i) << 8 | 1) for length in lengths]))
        if heartbeats and i % 3 == 1:
            out.append(protocol.HEARTBEAT)
    return out


def accounted(summary) -> None:
    assert summary.bytes_accounted == summary.bytes == sum(summary.accounted.values())


def decode(data: bytes, framing=None, **kw):
    table, bad, summary = decode_bytes(data, framing, **kw)
    accounted(summary)
    return table, bad, summary


# --- detection ----------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len", "base64"])
@pytest.mark.parametrize("heartbeats", [False, True])
def test_detects_every_framing_from_content(framing, heartbeats):
    msgs = messages(20, heartbeats=heartbeats)
    data = encode.frame(msgs, framing)
    assert detect_framing(data, len(data)) == framing
    assert detect_framing(data[:300], len(data)) == framing  # a head that ends mid-message
    table, bad, summary = decode(data)
    assert summary.framing == framing and summary.framing_detected
    assert bad == []
    assert summary.messages == 20
    assert summary.heartbeats == (sum(m == protocol.HEARTBEAT for m in msgs))
    assert table.num_rows == sum(struct.unpack(">H", m[:2])[0] for m in msgs if len(m) > 1)


def test_single_message_and_bare_bodies_are_single():
    msg = encode.encode_message([packet(184), packet(8)])
    assert detect_framing(msg, len(msg)) == "single"
    for length in protocol.KNOWN_LENGTHS:
        body = packet(length, token=(7 << 8) | 2)
        assert detect_framing(body, len(body)) == "single", length
        table, bad, summary = decode(body)
        assert (table.num_rows, bad, summary.messages) == (1, [], 1), length
        assert table.column("instrument_token").to_pylist() == [(7 << 8) | 2]
        assert summary.accounted["packet"] == length and summary.accounted["header"] == 0


def test_base64_lines_of_bare_bodies_decode_as_packets():
    bodies = [packet(44, token=(5 << 8) | 1), packet(184, token=(6 << 8) | 1)]
    data = b"".join(base64.b64encode(b) + b"\n" for b in bodies)
    table, bad, summary = decode(data)
    assert summary.framing == "base64"
    assert table.column("packet_length").to_pylist() == [44, 184]
    assert bad == []


def test_framing_override_beats_detection():
    data = encode.frame(messages(5), "u32len")
    _, bad, summary = decode(data, "raw")
    assert summary.framing == "raw" and not summary.framing_detected
    assert bad  # read as raw, the u32 prefixes are faults
    table, bad, summary = decode(data, "u32len")
    assert bad == [] and table.num_rows > 0


def test_empty_and_heartbeat_only_files():
    for data in (b"", b"\x00", b"\x00" * 10):
        table, bad, summary = decode(data)
        assert table.num_rows == 0 and bad == []
        assert summary.heartbeats == len(data)


def test_zero_filled_regions_are_heartbeats_around_messages():
    msgs = messages(3, seed=15)
    data = b"\x00" * 100_000 + msgs[0] + b"\x00" * 70_000 + msgs[1] + msgs[2] + b"\x00" * 5
    table, bad, summary = decode(data, "raw")
    assert bad == [] and summary.messages == 3
    assert summary.heartbeats == 170_005
    reader_table, _, _ = decode(data)
    assert reader_table.equals(table)


def test_leading_garbage_still_detects_the_framing():
    rng = np.random.default_rng(3)
    garbage = b"\xff" + bytes(rng.integers(1, 256, 300, dtype=np.uint8))
    for framing in ("raw", "u32len", "ts-u32len"):
        data = garbage + encode.frame(messages(30), framing)
        assert detect_framing(data, len(data)) == framing
        table, bad, summary = decode(data)
        assert table.num_rows > 30 and bad[0].offset == 0


def test_unknown_framing_is_a_usage_error(tmp_path):
    from app.errors import UsageError

    with pytest.raises(UsageError):
        decode_bytes(b"\x00", "zip")
    path = tmp_path / "c.bin"
    path.write_bytes(b"\x00")
    with pytest.raises(UsageError):
        CaptureReader(path, "zip")
    with pytest.raises(ValueError):
        Framer("zip")
    assert FRAMINGS == encode.FRAMINGS


# --- raw ------------------------------------------------------------------------------


def test_raw_messages_with_small_counts_are_not_heartbeats():
    # count 1..255 starts with 0x00, like a heartbeat
    msgs = [encode.encode_message([packet(8)] * n) for n in (1, 2, 255)]
    data = b"\x00" + b"\x00".join(msgs) + b"\x00"
    table, bad, summary = decode(data, "raw")
    assert (summary.messages, summary.heartbeats, table.num_rows) == (3, 4, 258)
    assert summary.accounted["heartbeat"] == 4


def test_raw_message_with_unknown_length_packet_keeps_the_others():
    unknown = bytes(range(1, 78))
    bad_msg = encode.encode_message([packet(8), unknown, packet(44)])
    data = encode.frame([messages(1)[0], bad_msg, messages(2, seed=4)[1]], "raw")
    table, bad, summary = decode(data, "raw")
    assert [(b.length, b.reason) for b in bad] == [(77, "unknown packet length 77")]
    assert data[bad[0].offset : bad[0].offset + 77] == unknown
    assert summary.messages == 3
    assert 44 in table.column("packet_length").to_pylist()


def test_raw_resyncs_after_garbage_and_json_frames():
    msgs = messages(10, seed=5)
    json_frame = b'{"type":"order","data":{"order_id":"1","status":"COMPLETE"}}'
    garbage = b"\xfe\xed" + bytes(range(200, 256)) * 3
    data = msgs[0] + msgs[1] + json_frame + msgs[2] + msgs[3] + garbage + b"".join(msgs[4:])
    table, bad, summary = decode(data, "raw")
    assert [(b.offset, b.length) for b in bad] == [
        (len(msgs[0]) + len(msgs[1]), len(json_frame)),
        (len(msgs[0]) + len(msgs[1]) + len(json_frame) + len(msgs[2]) + len(msgs[3]), len(garbage)),
    ]
    assert "JSON text frame" in bad[0].reason and bad[0].raw == json_frame
    clean, _, _ = decode(b"".join(msgs), "raw")
    assert table.drop_columns(["offset", "file_id"]).equals(clean.drop_columns(["offset", "file_id"]))
    # One message alone between two faults: it validates completely and ends before the
    # next resync point, so damage costs only the bytes it touches (issue 14).
    data = msgs[0] + json_frame + msgs[2] + garbage + b"".join(msgs[4:])
    table, bad, _ = decode(data, "raw")
    assert [(b.offset, b.length) for b in bad] == [
        (len(msgs[0]), len(json_frame)),
        (len(msgs[0]) + len(json_frame) + len(msgs[2]), len(garbage)),
    ]
    alone, _, _ = decode(msgs[2], "raw")
    assert alone.num_rows and set(alone.column("instrument_token").to_pylist()) <= set(
        table.column("instrument_token").to_pylist())


def test_raw_truncated_tail_is_one_bad_region():
    msgs = messages(4, seed=6)
    data = b"".join(msgs)
    cut = data[: len(data) - 50]
    table, bad, summary = decode(cut, "raw")
    assert len(bad) == 1 and bad[0].offset == len(data) - len(msgs[-1])
    assert bad[0].length == len(msgs[-1]) - 50 and "truncated" in bad[0].reason
    assert summary.messages == 3


def test_bad_raw_bytes_are_capped():
    data = messages(1)[0] + b"\xff" * 5000 + messages(2, seed=9)[1]
    _, bad, summary = decode(data, "raw")
    assert len(bad) == 1 and bad[0].length == 5000 and len(bad[0].raw) == BAD_RAW_CAP


# --- length-prefixed ---------------------------------------------------------------


@pytest.mark.parametrize("framing", ["u32len", "ts-u32len"])
def test_length_prefixed_faults(framing):
    hdr = 12 if framing == "ts-u32len" else 4
    good = messages(6, seed=8)
    unknown = bytes(range(1, 78))
    with_unknown = encode.encode_message([packet(8), unknown, packet(44)])
    extra = encode.encode_message([packet(8)]) + b"\x01\x02\x03"  # 3 bytes after its packets
    overrun = bytearray(encode.encode_message([packet(8), packet(44)]))
    overrun[2 + 2 + 8 : 2 + 2 + 8 + 2] = struct.pack(">H", 60)  # 60 > the 44 bytes left
    short_count = bytearray(encode.encode_message([packet(8), packet(8)]))
    short_count[0:2] = struct.pack(">H", 4)
    json_frame = b'{"type":"error","data":"bad token"}'
    msgs = [good[0], with_unknown, good[1], extra, good[2], bytes(overrun), bytes(short_count), json_frame, good[3]]
    data = encode.frame(msgs, framing)
    table, bad, summary = decode(data, framing)
    reasons = [b.reason for b in bad]
    assert reasons[0] == "unknown packet length 77"
    assert "3 bytes after the last" in reasons[1]
    assert "length 60 overruns the message" in reasons[2]
    assert reasons[3] == "message announces 4 packets but holds only 2"
    assert reasons[4].startswith("JSON text frame")
    assert len(bad) == 5
    starts = np.cumsum([0] + [hdr + len(m) for m in msgs])
    assert bad[0].offset == starts[1] + hdr + 2 + 2 + 8 + 2 and bad[0].raw == unknown
    assert bad[1].offset == starts[3] + hdr + len(extra) - 3 and bad[1].length == 3
    assert bad[4].offset == starts[7] + hdr and bad[4].length == len(json_frame)
    assert [b.msg_seq for b in bad] == [1, 3, 5, 6, 7]
    # every good packet survives, including the good ones inside faulty messages
    expected = sum(struct.unpack(">H", m[:2])[0] for m in good[:4]) + 2 + 1 + 1 + 2
    assert table.num_rows == expected
    assert summary.messages == len(msgs)


@pytest.mark.parametrize("framing", ["u32len", "ts-u32len"])
def test_length_prefixed_resync_after_broken_container(framing):
    msgs = messages(8, seed=10)
    data = bytearray(encode.frame(msgs, framing))
    hdr = 12 if framing == "ts-u32len" else 4
    second = hdr + len(msgs[0])
    data[second + hdr - 4 : second + hdr] = b"\xff\xff\xff\xff"  # a length no message has
    table, bad, summary = decode(bytes(data), framing)
    assert len(bad) == 1 and bad[0].offset == second and bad[0].length == hdr + len(msgs[1])
    assert summary.messages == 7


def test_ts_u32len_gives_receive_times():
    msgs = messages(3, seed=11)
    recv = [1_700_000_000_123_456_789, 1_700_000_001_000_000_000, 1_700_000_002_999_999_999]
    table, _, _ = decode(encode.frame(msgs, "ts-u32len", recv_ns=recv))
    per_message = {}
    for seq, ts in zip(table.column("msg_seq").to_pylist(), table.column("recv_ts").cast(pa.int64()).to_pylist(),
                       strict=True):
        per_message.setdefault(seq, set()).add(ts)
    assert per_message == {i: {recv[i] // 1000} for i in range(3)}


# --- base64 ---------------------------------------------------------------------------


def test_base64_bad_lines_and_crlf():
    msgs = messages(3, seed=12)
    lines = [base64.b64encode(msgs[0]), b"not base64 at all!", b'{"type":"message","data":"hi"}',
             b"", base64.b64encode(msgs[1]) + b"\r", b"AA==", base64.b64encode(msgs[2])]
    data = b"\n".join(lines)  # no newline at the end
    table, bad, summary = decode(data, "base64")
    # a text frame is counted as one, never as bad bytes (issue 13)
    assert [b.reason for b in bad] == ["line is not base64"]
    assert bad[0].offset == len(lines[0]) + 1 and bad[0].length == len(lines[1])
    assert summary.heartbeats == 1 and summary.messages == 3 and summary.text_frames == 1


# --- vectorised splitting ---------------------------------------------------------------


def test_split_messages_walks_packet_k_of_all_messages():
    msgs = [encode.encode_message([packet(8)] * k + [packet(184)]) for k in range(5)]
    payload = np.frombuffer(b"".join(msgs), dtype=np.uint8)
    sizes = np.array([len(m) for m in msgs])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    split = split_messages(payload, starts, sizes)
    assert split.valid.all() and split.faults == []
    assert split.pkt_msg.tolist() == [m for m in range(5) for _ in range(m + 1)]
    assert split.pkt_seq.tolist() == [k for m in range(5) for k in range(m + 1)]
    assert split.header_bytes + split.packet_bytes == payload.size


# --- streaming ------------------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_chunked_reading_matches_whole_decoding(tmp_path, framing):
    msgs = messages(40, seed=13, heartbeats=framing != "single")
    if framing == "single":
        msgs = [encode.encode_message([packet(184)] * 30 + [packet(8)] * 5)]
    data = encode.frame(msgs, framing)
    path = tmp_path / f"capture.{framing}"
    path.write_bytes(data)
    whole, bad, summary = decode(data, name=str(path))
    for chunk in (64, 257, 1000, 1 << 20):
        reader = CaptureReader(path, chunk_bytes=chunk)
        batches = list(reader.batches())
        assert reader.framing == framing
        assert pa.concat_tables([b.ticks for b in batches]).equals(whole), chunk
        assert reader.summary.to_dict() | {"path": None} == summary.to_dict() | {"path": None}
        assert batches[-1].bytes_done == len(data)
        assert [b.bytes_done for b in batches] == sorted(b.bytes_done for b in batches)
    offsets = whole.column("offset").to_numpy()
    lengths = whole.column("packet_length").to_numpy()
    if framing not in ("base64", "har"):
        # the offset column points at each packet body in the file
        bodies = [data[o : o + n] for o, n in zip(offsets, lengths, strict=True)]
        tokens = [int.from_bytes(b[:4], "big") for b in bodies]
        assert tokens == whole.column("instrument_token").to_pylist()


def test_chunked_faulty_raw_capture_is_accounted(tmp_path):
    msgs = messages(30, seed=14, heartbeats=True)
    data = bytearray(encode.frame(msgs, "raw"))
    data[500:540] = b"\xff" * 40
    data[1500:1500] = b'{"type":"order","data":{}}'
    path = tmp_path / "faulty.bin"
    path.write_bytes(bytes(data))
    for chunk in (64, 333, 1 << 20):
        reader = CaptureReader(path, "raw", chunk_bytes=chunk)
        bad = [b for batch in reader.batches() for b in batch.bad]
        accounted(reader.summary)
        assert sum(b.length for b in bad) == reader.summary.accounted["bad"]
        regions = sorted((b.offset, b.offset + b.length) for b in bad)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(regions))
        assert any(s <= 500 < e for s, e in regions) and any(s <= 1500 < e for s, e in regions)


# --- regressions ------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["u32len", "ts-u32len"])
def test_length_prefixed_capture_of_only_heartbeats_is_detected(tmp_path, framing):
    data = encode.frame([protocol.HEARTBEAT] * 4, framing)
    assert detect_framing(data, len(data)) == framing
    # A head cut inside a record (not the whole file) still detects it.
    assert detect_framing(data[:-2], len(data)) == framing
    table, bad, summary = decode(data)
    assert summary.framing == framing and bad == [] and table.num_rows == 0
    assert summary.heartbeats == 4 and summary.accounted["bad"] == 0
    assert detect_framing(b"\x00" * 5, 5) == "raw"


def test_zero_length_packets_are_never_empty_bad_regions():
    ltp = packet(8)
    # Packets 0 and 1 announce length 0: their 2-byte prefixes are the bad bytes.
    faulty = struct.pack(">HHH", 3, 0, 0) + struct.pack(">H", 8) + ltp
    for framing in ("u32len", "ts-u32len", "base64"):
        data = encode.frame([faulty, encode.encode_message([ltp])], framing)
        table, bad, summary = decode(data, framing)
        assert table.num_rows == 2, framing
        assert all(b.length > 0 for b in bad), framing
        assert [b.length for b in bad] == [4], framing
        assert summary.accounted["bad"] == 4 and summary.accounted["header"] == 2 + 2 + 2 + 2
    # A lone zero-length packet in a message of known size.
    one = struct.pack(">HH", 2, 0) + struct.pack(">H", 8) + ltp
    table, bad, summary = decode(encode.frame([one], "u32len"), "u32len")
    assert [(b.length, b.reason) for b in bad] == [(2, "unknown packet length 0")]
    assert summary.accounted["header"] == 4 and table.num_rows == 1
    # A count larger than the packets a record holds: the count is the bad region.
    over = struct.pack(">H", 5) + encode.encode_message([ltp, ltp])[2:]
    table, bad, summary = decode(encode.frame([over], "u32len"), "u32len")
    assert [(b.offset, b.length, b.reason) for b in bad] == [(4, 2, "message announces 5 packets but holds only 2")]
    assert summary.accounted["header"] == 4 and table.num_rows == 2


def _merged(regions):
    out = []
    for offset, length in sorted(regions):
        if out and out[-1][0] + out[-1][1] == offset:
            out[-1][1] += length
        else:
            out.append([offset, length])
    return [tuple(r) for r in out]


def _chunked(path, framing, chunk):
    reader = CaptureReader(path, framing, chunk_bytes=chunk)
    batches = list(reader.batches())
    ticks = pa.concat_tables([b.ticks for b in batches])
    bad = [b for batch in batches for b in batch.bad]
    accounted(reader.summary)
    assert sum(b.length for b in bad) == reader.summary.accounted["bad"]
    return ticks, bad


def test_a_valid_message_outrunning_an_undecided_resync_is_carried(tmp_path):
    """Found by hypothesis: after damage, a whole valid ts-u32len record that is not followed
    by another one and ends past the chunk's undecided resync point was swallowed into the
    bad region with 64-byte chunks, though the whole-file decode keeps its two ticks."""
    data = bytes.fromhex(
        "00979cfe362a0000000000010017979cfe363942400000002a000200080003e8"
        "0100026683001c02668300000000000000000000000000000000000000001797"
        "9cfe36488480000000200001001c7b2274797065223a226572726f72222c2264"
        "617461223a2278227d0003e90100026683000000000000000000000000000000"
        "0000000000"
    )
    whole, bad, _ = decode(data, "ts-u32len")
    assert whole.column("offset").to_pylist() == [29, 39]
    path = tmp_path / "capture.bin"
    path.write_bytes(data)
    for chunk in (64, 97, 150):
        ticks, cbad = _chunked(path, "ts-u32len", chunk)
        assert ticks.equals(whole), chunk
        assert _merged((b.offset, b.length) for b in cbad) == _merged((b.offset, b.length) for b in bad)


def test_a_record_cut_by_the_chunk_end_is_carried_not_trusted(tmp_path):
    """The reviewer's fz48: a broken ts-u32len record whose neighbour was cut by a 64-byte
    chunk was trusted, giving a phantom tick and zero-length regions."""
    import random

    rng = random.Random(7)

    def rnd_msg():
        pk = []
        for _ in range(rng.randint(1, 4)):
            length = rng.choice([8, 12, 28, 32, 44, 164, 184, 492])
            pk.append(encode.encode_packet(length, {
                "instrument_token": rng.randint(1, 1 << 24) << 8 | rng.choice([1, 2, 3, 9]),
                "last_price": rng.randint(0, 10**6),
                "exchange_timestamp": rng.choice([0, 1700000000 + rng.randint(0, 10**5)])}))
        return encode.encode_message(pk)

    for _trial in range(49):
        framing = rng.choice(["raw", "u32len", "ts-u32len", "base64"])
        msgs = [b"\x00" if rng.random() < 0.1 else rnd_msg() for _ in range(rng.randint(1, 40))]
        data = bytearray(encode.frame(msgs, framing))
        for _ in range(rng.randint(0, 4)):
            op = rng.random()
            i = rng.randrange(len(data) + 1)
            if op < 0.4 and len(data) > 1:
                data[min(i, len(data) - 1)] = rng.randrange(256)
            elif op < 0.7:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
            elif op < 0.85:
                del data[i : i + rng.randint(1, 50)]
            else:
                data[i:i] = b'{"type":"error","data":"x"}' + (b"\n" if framing == "base64" else b"")
    data = bytes(data)
    assert framing == "ts-u32len" and len(data) == 917
    path = tmp_path / "fz48.bin"
    path.write_bytes(data)
    whole, bad, _ = decode(data, framing)
    assert [(b.offset, b.length) for b in bad] == [(214, 259)]
    for chunk in (64, 100, 333):
        ticks, cbad = _chunked(path, framing, chunk)
        assert ticks.equals(whole), chunk
        assert all(b.length > 0 for b in cbad)
        assert _merged((b.offset, b.length) for b in cbad) == [(214, 259)], chunk


_hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PACKETS = [packet(n, token=(1000 + i) << 8 | 1) for i, n in enumerate([8, 28, 32, 44, 164, 184, 492, 12])]


@st.composite
def _corrupted_capture(draw):
    framing = draw(st.sampled_from(["raw", "u32len", "ts-u32len", "base64"]))
    msgs = []
    for _ in range(draw(st.integers(1, 14))):
        if draw(st.integers(0, 9)) == 0:
            msgs.append(protocol.HEARTBEAT)
        else:
            picks = draw(st.lists(st.integers(0, len(_PACKETS) - 1), min_size=1, max_size=4))
            msgs.append(encode.encode_message([_PACKETS[k] for k in picks]))
    data = bytearray(encode.frame(msgs, framing))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "insert", "delete", "json", "zero"]))
        i = draw(st.integers(0, len(data)))
        if op == "set" and data:
            data[min(i, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=30))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 50))]
        elif op == "json":
            data[i:i] = b'{"type":"error","data":"x"}' + (b"\n" if framing == "base64" else b"")
        else:
            data[i:i] = b"\x00\x00"
    return framing, bytes(data), draw(st.sampled_from([64, 97, 150, 333]))


# Found by hypothesis: a damaged message that still holds together as one of plausible
# unknown-length packets (lenient) was taken when the chunk ended before the resync had
# decided whether a message that validates starts inside it (the whole-file decode finds
# one at 534, so rejects it); with the decision pending, the walker now carries instead.
_RAW_CHUNK_CASE = bytes.fromhex(
    "00030008e80100026683001c0003e90100026683000000000000000000000000000000000000000001ec0003"
    "ee01000266836553f1000000000a00026683000000010000000b00026682000000020000000c000266810000"
    "00030000000d00026680000000040000000e0002667f000000050000000f0002667e00000006000000100002"
    "667d00000007000000110002667c00000008000000120002667b00000009000000130002667a0000000a0000"
    "0014000266790000000b00000015000266780000000c00000016000266770000000d00000017000266760000"
    "000e00000018000266750000000f0000001900026674000000100000001a00026673000000110000001b0002"
    "6672000000120000001c00026671000000130000001d00026670000000140000000a00026683000000010000"
    "000b00026682000000020000000c00026681000000030000000d00026680000000040000000e0002667f0000"
    "00050000000f0002667e00000006000000100002667d00000007000000110002667c00000008000000120002"
    "667b00000009000000130002667a0000000a00000014000266790000000b00000015000266780000000c0000"
    "0016000266770000000d00000017000266760000000e00000018000266750000000f00000019000266740000"
    "00100000001a00026673000000110000001b00026672000000120000001c00026671000000130000001d0002"
    "6670000000140003001c0003e90100026683000000000000000000000000000000000000000000200003ea01"
    "0002668300000000000000000000000000000000000000006553f10000a40003ec0100026683000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000a00026683000100000000"
    "000b00026682000200000000000c00026681000300000000000d00026680000400000000000e0002667f0005"
    "00000000000a00026683000100000000000b00026682000200000000000c00026681000300000000000d0002"
    "6680000400000000000e0002667f00050000"
)


def test_raw_resync_undecided_anchor_inside_a_lenient_message(tmp_path):
    whole, bad, _ = decode(_RAW_CHUNK_CASE, "raw")
    assert whole.num_rows == 3
    assert [(b.offset, b.length) for b in bad] == [(0, 534)]
    path = tmp_path / "capture.bin"
    path.write_bytes(_RAW_CHUNK_CASE)
    for chunk in (64, 97, 150, 333):
        ticks, cbad = _chunked(path, "raw", chunk)
        assert ticks.equals(whole), chunk
        assert _merged((b.offset, b.length) for b in cbad) == [(0, 534)], chunk


# derandomize: CI must not flip on a rare input; FRAMING_SEARCH=1 explores new ones.
@settings(
    max_examples=int(__import__("os").environ.get("FRAMING_EXAMPLES", "150")),
    deadline=None,
    derandomize=not __import__("os").environ.get("FRAMING_SEARCH"),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=_corrupted_capture())
def test_decoding_does_not_depend_on_the_chunk_size(tmp_path, case):
    framing, data, chunk = case
    whole, bad, summary = decode(data, framing)
    assert all(b.length > 0 for b in bad)
    path = tmp_path / "capture.bin"
    path.write_bytes(data)
    ticks, cbad = _chunked(path, framing, chunk)
    assert ticks.equals(whole)
    # A bad region may be closed at a chunk end and continued in the next chunk.
    assert _merged((b.offset, b.length) for b in cbad) == _merged((b.offset, b.length) for b in bad)
    assert all(b.length > 0 for b in cbad)


def _long_message(rng, packets: int, tail: str) -> bytes:
    """A message of ``packets`` prefixes: runs of equal lengths (some longer than the
    run look's threshold), unknown lengths, then ``tail``: exact, a cut prefix, a body
    overrunning the message, or bytes left over."""
    body = bytearray()
    k = 0
    while k < packets:
        length = int(rng.choice([8, 12, 28, 5, 0, 300]))
        for _ in range(min(packets - k, int(rng.choice([1, 3, 12, 40, 200])))):
            body += struct.pack(">H", length) + bytes(rng.integers(0, 256, length, dtype=np.uint8))
            k += 1
    count = packets
    if tail == "cut":
        body += b"\x00"  # one byte of a prefix: packet `packets` is cut off
        count += 1
    elif tail == "overrun":
        body += struct.pack(">H", 60) + bytes(10)
        count += 1
    elif tail == "left over":
        body += b"\x01\x02\x03"
    return struct.pack(">H", count) + bytes(body)


@pytest.mark.parametrize("tail", ["exact", "cut", "overrun", "left over"])
@pytest.mark.parametrize("packets", [300, 5000])
def test_long_message_walked_one_by_one_splits_as_the_vectorised_steps(packets, tail, monkeypatch):
    """A message split alone is walked by ``_walk_long`` (re-engine anchors, a lockstep
    walk between them, strided runs); nine copies of it are split by the vectorised
    per-packet steps (more than ``_FEW_MESSAGES`` stay active, and the hand-over of up to
    ``_SOME_MESSAGES`` long ones is off): both give the same packets, faults and validity."""
    monkeypatch.setattr(split_module, "_SOME_MESSAGES", 0)
    rng = np.random.default_rng(packets)
    msg = _long_message(rng, packets, tail)
    payload = np.frombuffer(b"\x00" * 3 + msg * 9, dtype=np.uint8)
    starts = np.arange(9, dtype=np.int64) * len(msg) + 3
    sizes = np.full(9, len(msg), dtype=np.int64)
    alone = split_messages(payload, starts[:1], sizes[:1])
    many = split_messages(payload, starts, sizes)
    first = many.pkt_msg == 0
    assert alone.pkt_pos.tolist() == many.pkt_pos[first].tolist()
    assert alone.pkt_len.tolist() == many.pkt_len[first].tolist()
    assert alone.pkt_seq.tolist() == many.pkt_seq[first].tolist()
    assert alone.valid[0] == many.valid[0] == (tail == "exact" and not alone.faults)
    assert alone.faults == [f for f in many.faults if f[0] == 0]
    assert alone.pkt_pos.size >= 50 and (alone.valid[0] or alone.faults)

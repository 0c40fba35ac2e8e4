"""Property tests: captures round-trip through every framing; corruption never breaks decoding.

Random corruption (byte flips, truncation, inserted garbage, inserted JSON text frames,
deleted runs) must never raise, never hang, and must keep every byte of the file
accounted for exactly once, with bad regions that do not overlap.
"""

from __future__ import annotations

import struct
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import protocol
from app.core.decode import CaptureReader, decode_bytes
from tests.support import encode, synthetic

# Generous per-example deadline: it catches a hang or a quadratic blow-up, not speed.
PROPERTY = settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow])

segments = st.sampled_from(sorted(protocol.SEGMENTS) + [0, 77, 255])
u32 = st.integers(0, (1 << 32) - 1)


@st.composite
def packets(draw):
    length = draw(st.sampled_from(protocol.KNOWN_LENGTHS))
    layout = protocol.LAYOUTS[length]
    values = {"instrument_token": draw(st.integers(0, (1 << 24) - 1)) << 8 | draw(segments)}
    for f in layout.fields[1:]:
        values[f.name] = draw(st.integers(-(1 << 31), (1 << 31) - 1) if f.signed else u32)
    return length, encode.encode_packet(length, values)


@st.composite
def captures(draw, framing=None):
    framing = framing or draw(st.sampled_from(encode.FRAMINGS))
    count = 1 if framing == "single" else draw(st.integers(1, 12))
    messages, expected = [], []
    for _ in range(count):
        if framing != "single" and draw(st.booleans()) and draw(st.booleans()):
            messages.append(protocol.HEARTBEAT)
        body = draw(st.lists(packets(), min_size=1, max_size=6))
        messages.append(encode.encode_message([p for _, p in body]))
        expected.extend(body)
    recv = [draw(st.integers(1_600_000_000 * 10**9, 1_900_000_000 * 10**9)) for _ in messages]
    if framing == "har":
        recv.sort()  # a HAR is decoded in receive-time order: keep it the file order here
    return framing, messages, expected, encode.frame(messages, framing, recv_ns=recv)


def check_accounting(data: bytes, table, bad, summary) -> None:
    assert summary.bytes == len(data)
    assert summary.bytes_accounted == len(data) == sum(summary.accounted.values())
    assert all(v >= 0 for v in summary.accounted.values())
    assert sum(b.length for b in bad) == summary.accounted["bad"]
    assert summary.bad_packets == len(bad)
    assert table.num_rows == summary.packets
    assert summary.accounted["packet"] == sum(n * c for n, c in summary.packets_by_length.items())
    if summary.framing not in ("base64", "har"):  # offsets there point into base64 text
        regions = sorted((b.offset, b.offset + b.length) for b in bad)
        assert all(0 <= s <= e <= len(data) for s, e in regions)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(regions))
        # every decoded packet is the bytes at its offset
        offsets = table.column("offset").to_pylist()
        tokens = table.column("instrument_token").to_pylist()
        for offset, token in zip(offsets, tokens, strict=True):
            assert struct.unpack_from(">I", data, offset)[0] == token
    assert all(length in protocol.LAYOUTS for length in summary.packets_by_length)


@PROPERTY
@given(captures())
def test_random_captures_round_trip_through_every_framing(capture):
    framing, messages, expected, data = capture
    for forced in (None, framing):
        table, bad, summary = decode_bytes(data, forced)
        if summary.framing != framing:
            # One raw message with no heartbeat is, byte for byte, a one-message file.
            assert {summary.framing, framing} == {"raw", "single"} and len(messages) == 1
        assert bad == []
        check_accounting(data, table, bad, summary)
        assert table.column("packet_length").to_pylist() == [n for n, _ in expected]
        tokens = [struct.unpack(">I", body[:4])[0] for _, body in expected]
        assert table.column("instrument_token").to_pylist() == tokens
        prices = [struct.unpack(">I", body[4:8])[0] / protocol.divisor_of(t & 0xFF)
                  for (_, body), t in zip(expected, tokens, strict=True)]
        assert table.column("last_price").to_pylist() == prices
        assert summary.messages == sum(m != protocol.HEARTBEAT for m in messages)
        assert summary.heartbeats == sum(m == protocol.HEARTBEAT for m in messages)


@st.composite
def corruptions(draw, data: bytes):
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "garbage", "json", "delete", "zeros"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "garbage":
            data[at:at] = draw(st.binary(min_size=1, max_size=300))
        elif kind == "json":
            data[at:at] = b'{"type":"order","data":{"status":"COMPLETE","price":1521.3}}'
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 50))]
        else:
            data[at:at] = b"\x00" * draw(st.integers(1, 20))
    return bytes(data)


@PROPERTY
@given(st.data(), captures())
def test_random_corruption_never_raises_and_keeps_every_byte_accounted(data, capture):
    framing, _, _, clean = capture
    corrupt = data.draw(corruptions(clean))
    for forced in (None, framing):
        table, bad, summary = decode_bytes(corrupt, forced)
        check_accounting(corrupt, table, bad, summary)


@settings(max_examples=25, deadline=10000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), captures(), st.integers(16, 400))
def test_chunked_reading_of_corrupt_files_keeps_every_byte_accounted(tmp_path_factory, data, capture, chunk):
    framing, _, _, clean = capture
    corrupt = data.draw(corruptions(clean))
    path = tmp_path_factory.mktemp("faults") / "capture.bin"
    path.write_bytes(corrupt)
    reader = CaptureReader(path, framing, chunk_bytes=chunk)
    batches = list(reader.batches())
    import pyarrow as pa

    table = pa.concat_tables([b.ticks for b in batches])
    bad = [b for batch in batches for b in batch.bad]
    check_accounting(corrupt, table, bad, reader.summary)
    assert reader.summary.complete and batches[-1].bytes_done == len(corrupt)


@PROPERTY
@given(st.binary(max_size=2000), st.sampled_from((None,) + encode.FRAMINGS))
def test_arbitrary_bytes_never_raise(blob, framing):
    table, bad, summary = decode_bytes(blob, framing)
    check_accounting(blob, table, bad, summary)


@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len"])
def test_synthetic_capture_faults_are_found_where_they_were_written(tmp_path, framing):
    path = tmp_path / f"faults_{framing}.bin"
    info = synthetic.generate_capture(path, packets=3000, framing=framing, seed=5, faults=True)
    assert info.faults
    reader = CaptureReader(path)
    batches = list(reader.batches())
    bad = [b for batch in batches for b in batch.bad]
    summary = reader.summary
    assert summary.framing == framing
    assert summary.bytes_accounted == summary.bytes == info.bytes
    salvaged = info.salvageable_packets if framing != "raw" else 0  # raw cannot trust a miscounted message
    assert summary.packets == info.packets + salvaged
    if not salvaged:
        assert summary.packets_by_length == info.packets_by_length
    for fault in info.faults:
        # (a miscounted message in a sized record is a 0-byte fault at the message's end)
        covering = [b for b in bad if b.offset <= fault.offset < b.offset + b.length
                    or (fault.offset <= b.offset <= fault.offset + fault.length)]
        assert covering, fault
    assert len(bad) == len(info.faults)

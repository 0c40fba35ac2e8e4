"""Dissection comes from the layout table: every byte of a packet belongs to exactly one field."""

import pytest

from app.core import dissect, protocol
from tests.support import encode


@pytest.mark.parametrize("length", protocol.KNOWN_LENGTHS)
def test_wire_fields_tile_the_packet_exactly(length):
    body = encode.encode_packet(length, {"instrument_token": (1594 << 8) | 1, "last_price": 157315})
    d = dissect.dissect_packet(body, offset=1000)
    wire = sorted((f for f in d.fields if not f.generated), key=lambda f: f.offset)
    covered = [b for f in wire for b in range(f.offset, f.end)]
    assert covered == list(range(1000, 1000 + length))
    for f in wire:
        assert f.raw == body[f.offset - 1000:f.end - 1000]
        assert d.field_at(f.offset) is f and d.field_at(f.end - 1) is f


def test_values_big_and_little_endian_and_scaling():
    token = (1594 << 8) | 3  # CDS: divisor 1e7
    body = encode.encode_packet(
        184, {"instrument_token": token, "last_price": 823_456_789, "close": 820_000_000,
              "exchange_timestamp": 1625461887},
        bids=[(5, 823_400_000, 2)],
    )
    d = dissect.dissect_packet(body)
    by_name = {f.name: f for f in d.fields}
    assert by_name["instrument_token"].big_endian == token
    assert by_name["instrument_token"].little_endian == int.from_bytes(token.to_bytes(4, "big"), "little")
    assert by_name["last_price"].value == pytest.approx(82.3456789)
    assert by_name["last_price"].divisor == 1e7
    assert by_name["bid[0].orders"].value == 2 and by_name["bid[0].orders"].length == 2
    assert by_name["exchange_timestamp"].value == "2021-07-05T05:11:27Z"
    assert "10:41:27 IST" in by_name["exchange_timestamp"].meaning
    assert by_name["segment"].generated and by_name["segment"].value == 3
    assert by_name["change_percent"].value == pytest.approx((82.3456789 - 82.0) * 100 / 82.0)
    assert d.experts == []


def test_invalid_segment_and_unknown_length_are_expert_entries():
    d = dissect.dissect_packet(encode.encode_packet(8, {"instrument_token": 409, "last_price": 1}))
    assert any(e.severity == dissect.SEVERITY_WARNING and "153" in e.message for e in d.experts)
    bad = dissect.dissect_packet(bytes(77), offset=50)
    assert bad.kind == "unknown"
    assert bad.experts[0].severity == dissect.SEVERITY_ERROR and "77" in bad.experts[0].message
    assert bad.field_at(50).name == "raw" and bad.field_at(126).name == "raw"


def test_padding_is_shown_but_never_decoded_into_values():
    body = encode.encode_packet(184, {"instrument_token": 256265, "_padding": 0xBEEF}, bids=[(1, 2, 3)])
    d = dissect.dissect_packet(body)
    pad = next(f for f in d.fields if f.name == "bid[0].padding")
    assert pad.raw == b"\xbe\xef" and pad.value is None
    assert any("padding" in e.message for e in d.experts)

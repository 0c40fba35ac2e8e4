"""Writing Kite packets, messages and capture files from the layout table.

The inverse of decoding, used by the sample generator, the benchmarks and the tests
(round trips, differential tests against the official client, fault injection).
Values are raw wire integers (prices already multiplied by the segment divisor).
"""

from __future__ import annotations

import base64
import struct
from typing import Iterable, Mapping, Optional, Sequence

from app.core import protocol

FRAMINGS = ("raw", "u32len", "ts-u32len", "base64", "single")

DepthLevels = Sequence[tuple[int, int, int]]  # (quantity, raw price, orders) per level


def encode_packet(
    length: int,
    values: Mapping[str, int],
    bids: Optional[DepthLevels] = None,
    asks: Optional[DepthLevels] = None,
) -> bytes:
    """One packet body of a known ``length``; fields missing from ``values`` are 0.

    Depth levels beyond those given are zero, as Kite sends empty levels. Padding bytes
    are zero unless ``values['_padding']`` is set (to test that decoders ignore them).
    """
    layout = protocol.LAYOUTS[length]
    buf = bytearray(length)
    for f in layout.fields:
        value = int(values.get(f.name, 0))
        struct.pack_into(">" + ("i" if f.signed else "I" if f.size == 4 else "H"), buf, f.offset, value)
    depth = layout.depth
    if depth is not None:
        padding = int(values.get("_padding", 0))
        for side, levels in (("bid", bids or ()), ("ask", asks or ())):
            for level in range(depth.levels):
                at = depth.entry_offset(side, level)
                entry = levels[level] if level < len(levels) else (0, 0, 0)
                for ef, value in zip(depth.entry_fields, entry):
                    fmt = ">I" if ef.size == 4 else ">H"
                    struct.pack_into(fmt, buf, at + ef.offset, int(value))
                if depth.entry_size > depth.entry_fields[-1].offset + depth.entry_fields[-1].size:
                    pad_at = at + depth.entry_fields[-1].offset + depth.entry_fields[-1].size
                    struct.pack_into(">H", buf, pad_at, padding & 0xFFFF)
    return bytes(buf)


def encode_message(packets: Sequence[bytes]) -> bytes:
    """One binary WebSocket message: u16 count, then (u16 length, packet) for each."""
    parts = [struct.pack(">H", len(packets))]
    for packet in packets:
        parts.append(struct.pack(">H", len(packet)))
        parts.append(packet)
    return b"".join(parts)


def frame(
    messages: Iterable[bytes],
    framing: str,
    recv_ns: Optional[Sequence[int]] = None,
) -> bytes:
    """A whole capture in ``framing``; heartbeats are messages equal to ``HEARTBEAT``."""
    messages = list(messages)
    if framing == "raw":
        return b"".join(messages)
    if framing == "u32len":
        return b"".join(struct.pack(">I", len(m)) + m for m in messages)
    if framing == "ts-u32len":
        if recv_ns is None:
            recv_ns = [1_700_000_000_000_000_000 + i * 1_000_000 for i in range(len(messages))]
        return b"".join(struct.pack(">QI", t, len(m)) + m for t, m in zip(recv_ns, messages))
    if framing == "base64":
        return b"".join(base64.b64encode(m) + b"\n" for m in messages)
    if framing == "single":
        if len(messages) != 1:
            raise ValueError("the single framing holds exactly one message")
        return messages[0]
    raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}")

"""Writing Kite packets, messages and capture files from the layout table.

The inverse of decoding, used by the sample generator, the benchmarks and the tests
(round trips, differential tests against the official client, fault injection).
Values are raw wire integers (prices already multiplied by the segment divisor).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.core import protocol

FRAMINGS = ("raw", "u32len", "ts-u32len", "u32len-le", "ts-u32len-le", "base64", "har", "single")

DepthLevels = Sequence[tuple[int, int, int]]  # (quantity, raw price, orders) per level


def encode_packet(
    length: int,
    values: Mapping[str, int],
    bids: DepthLevels | None = None,
    asks: DepthLevels | None = None,
    *,
    kind: str | None = None,
) -> bytes:
    """One packet body of a known ``length``; fields missing from ``values`` are 0.

    ``kind`` names a variant layout of that length (``protocol.VARIANTS``). Depth levels
    beyond those given are zero, as Kite sends empty levels; fields a layout cuts off
    are not written. Padding bytes are zero unless ``values['_padding']`` is set (to
    test that decoders ignore them).
    """
    layout = protocol.layout_by_kind(kind) if kind else protocol.LAYOUTS[length]
    assert layout is not None and layout.length == length, (kind, length)
    buf = bytearray(length)
    for f in layout.fields:
        value = int(values.get(f.name, 0))
        struct.pack_into(">" + ("i" if f.signed else "I" if f.size == 4 else "H"), buf, f.offset, value)
    depth = layout.depth
    if depth is not None:
        padding = int(values.get("_padding", 0))
        for side, levels in (("bid", bids or ()), ("ask", asks or ())):
            if side not in depth.sides:
                continue
            for level in range(depth.levels):
                at = depth.entry_offset(side, level)
                entry = levels[level] if level < len(levels) else (0, 0, 0)
                for ef, value in zip(depth.entry_fields, entry, strict=True):
                    if not depth.present(side, level, ef):
                        continue
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
    recv_ns: Sequence[int] | None = None,
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
        return b"".join(struct.pack(">QI", t, len(m)) + m for t, m in zip(recv_ns, messages, strict=True))
    if framing == "u32len-le":
        return b"".join(struct.pack("<I", len(m)) + m for m in messages)
    if framing == "ts-u32len-le":
        if recv_ns is None:
            recv_ns = [1_700_000_000_000_000_000 + i * 1_000_000 for i in range(len(messages))]
        return b"".join(struct.pack("<QI", t, len(m)) + m for t, m in zip(recv_ns, messages, strict=True))
    if framing == "base64":
        return b"".join(base64.b64encode(m) + b"\n" for m in messages)
    if framing == "har":
        if recv_ns is None:
            recv_ns = [1_700_000_000_000_000_000 + i * 1_000_000 for i in range(len(messages))]
        return har([HarConnection("wss://ws.kite.trade/", [HarFrame("receive", t, m) for t, m in zip(recv_ns, messages,
                                                                                                     strict=True)])])
    if framing == "single":
        if len(messages) != 1:
            raise ValueError("the single framing holds exactly one message")
        return messages[0]
    raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}")


# --- browser HAR exports ------------------------------------------------------------


@dataclass
class HarFrame:
    """One WebSocket frame: ``data`` bytes are a binary message (opcode 2, base64),
    a ``str`` is a text frame (opcode 1). ``time_ns`` is written as epoch seconds with
    µs digits, as Chrome does (Firefox shape: milliseconds)."""

    direction: str  # "receive" | "send"
    time_ns: int
    data: object


@dataclass
class HarConnection:
    url: str
    frames: list


def _har_time(time_ns: int, shape: str) -> str:
    if shape == "firefox":
        return f"{time_ns // 1_000_000}.{(time_ns // 1000) % 1000:03d}"  # ms with µs digits
    return f"{time_ns // 10**9}.{(time_ns // 1000) % 10**6:06d}"


def _har_frames(frames, shape: str, indent) -> list:
    out = []
    for f in frames:
        binary = isinstance(f.data, (bytes, bytearray))
        item = {
            "type": f.direction,
            "time": "@T@" + _har_time(f.time_ns, shape),
            "opcode": 2 if binary else 1,
            "data": base64.b64encode(f.data).decode() if binary else f.data,
        }
        if shape == "firefox":  # Firefox writes the keys in another order
            item = {"data": item["data"], "opcode": item["opcode"], "time": item["time"], "type": item["type"]}
        out.append(item)
    return out


def har(connections: Sequence[HarConnection], shape: str = "chrome", indent: int | None = 2) -> bytes:
    """A HAR file as browsers write it, with each connection's WebSocket frames.

    ``shape``: ``chrome`` (DevTools "Save all as HAR with content"), ``firefox`` (its HAR
    export's structure: creator Firefox, pages, times in ms), ``fragment`` (only the
    ``"_webSocketMessages": [...]`` text of the first connection, no braces) or ``list``
    (a bare JSON list of the first connection's frames).
    """
    import re

    # times are decimal text, exact (json would print a float with binary rounding)
    def fix_times(text: bytes) -> bytes:
        return re.sub(rb'"@T@([0-9.]+)"', rb"\1", text)

    if shape in ("fragment", "list"):
        frames = _har_frames(connections[0].frames, shape, indent)
        body = fix_times(json.dumps(frames, indent=indent).encode())
        return body if shape == "list" else b'"_webSocketMessages": ' + body
    entries = []
    for conn in connections:
        entry = {
            "startedDateTime": "2022-06-09T07:47:29.000Z",
            "time": 0,
            "request": {"method": "GET", "url": conn.url, "httpVersion": "HTTP/1.1", "headers": [],
                        "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1",
                         "headers": [], "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                         "redirectURL": "", "headersSize": -1, "bodySize": 0},
            "cache": {},
            "timings": {"send": 0, "wait": 0, "receive": 0},
        }
        if shape == "chrome":
            entry["_resourceType"] = "websocket"
        else:
            entry["pageref"] = "page_1"
        entry["_webSocketMessages"] = _har_frames(conn.frames, shape, indent)
        entries.append(entry)
    creator = {"name": "WebInspector", "version": "537.36"} if shape == "chrome" else {"name": "Firefox",
                                                                                       "version": "120.0"}
    log = {"version": "1.2", "creator": creator, "pages": [], "entries": entries}
    if shape == "firefox":
        log["browser"] = creator
        log["pages"] = [{"startedDateTime": "2022-06-09T07:47:29.000Z", "id": "page_1", "title": "Kite",
                         "pageTimings": {"onContentLoad": -1, "onLoad": -1}}]
    return fix_times(json.dumps({"log": log}, indent=indent).encode())

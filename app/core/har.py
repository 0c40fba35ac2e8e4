"""Browser HAR exports of the Kite WebSocket: the frames, their receive times and connections.

This module owns reading a HAR (HTTP Archive) as a capture container: which of its
WebSocket frames are Kite binary messages (received, opcode 2, base64 ``data``), when
each arrived (``time``), and what else the socket carried (received text frames, sent
commands), per connection. ``app.core.framing`` turns the messages into packets.

Accepted shapes, all produced by real tools:
- a whole HAR (``{"log": {"entries": [...]}}``) as Chrome/Edge DevTools "Save all as HAR
  with content" writes it (each WebSocket entry has ``_webSocketMessages``: ``type``
  send/receive, ``time`` epoch seconds, ``opcode`` 1 text / 2 binary, ``data``), and the
  same structure as Firefox's HAR export, mitmproxy and HTTP Toolkit write it;
- a fragment: the ``"_webSocketMessages": [...]`` text without enclosing braces (what
  people paste from a HAR, e.g. ShabbirHasan1's ``ws_message.txt``);
- a bare JSON list of such frames.
Several WebSocket entries are all read; their messages are decoded in time order.

Parsing uses the stdlib ``json`` (C scanner); times are kept exact (a float of epoch
seconds with µs digits does not survive ``* 1e9`` in binary floating point), so they are
parsed from their decimal text. Each binary frame's base64 text is located in the file
(in file order, from the previous frame on) so packets and faults have file offsets.
"""

from __future__ import annotations

import binascii
import itertools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

FRAGMENT_KEY = b'"_webSocketMessages"'
HEARTBEAT = b"\x00"
_BOM = b"\xef\xbb\xbf"
_HEAD_RE = re.compile(rb'\A\s*(\{\s*"log"|"_webSocketMessages"\s*:|\[\s*\{\s*"(type|time|opcode|data)"\s*:)')


def looks_like_har(head: bytes) -> bool:
    """Whether a file's first bytes are a HAR, a ``_webSocketMessages`` fragment or a frame list."""
    head = bytes(head[:1 << 16])
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    m = _HEAD_RE.match(head)
    if not m:
        return False
    if m.group(0).lstrip().startswith(b"{"):
        # A whole HAR: worth reading as a capture only when it carries WebSocket frames;
        # the key may come late in a big file, so a HAR head is enough here and a HAR
        # without frames is reported by the reader ("no WebSocket frames").
        return True
    if m.group(0).lstrip().startswith(b"["):
        return b'"opcode"' in head and b'"data"' in head
    return True


class HarError(ValueError):
    """The file is not a HAR the reader understands (one line, for the user)."""


@dataclass
class HarTextFrame:
    """A frame that is not a binary Kite message: a received text frame or a sent one."""

    direction: str  # "receive" | "send"
    opcode: int
    recv_ns: int | None
    text: str
    connection: int
    text_at: int  # file offset of its data text (-1 when not found verbatim)


@dataclass
class HarCapture:
    """The binary messages of a HAR, concatenated in receive-time order, and the rest."""

    payload: bytes = b""  # every message, back to back
    starts: list[int] = field(default_factory=list)  # of each message in payload
    sizes: list[int] = field(default_factory=list)
    text_at: list[int] = field(default_factory=list)  # file offset of each message's base64 text
    recv_ns: list[int] = field(default_factory=list)  # receive time, ns since the epoch (UTC)
    heartbeats: int = 0
    text_frames: list[HarTextFrame] = field(default_factory=list)  # received text frames
    sent_frames: list[HarTextFrame] = field(default_factory=list)
    connections: list[dict] = field(default_factory=list)  # url, messages, heartbeats, text_frames, sent_frames
    undecodable: list[tuple[int, int, str]] = field(default_factory=list)  # (file offset, length, reason)


def _time_ns(value) -> int | None:
    """Epoch time as ns, exactly: seconds (Chrome), ms or µs by magnitude."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(value) if isinstance(value, str) else Decimal(repr(value)) if isinstance(value,
                                                                                             float) else Decimal(value)
    except Exception:  # noqa: BLE001 - a time we cannot read is no time
        return None
    if not d.is_finite():
        return None
    magnitude = abs(d)
    scale = 10**9 if magnitude < 10**11 else 10**6 if magnitude < 10**14 else 10**3 if magnitude < 10**17 else 1
    return int((d * scale).to_integral_value())


def _loads(data: bytes):
    text = data[len(_BOM):] if data[:3] == _BOM else data
    stripped = text.lstrip()
    if stripped.startswith(FRAGMENT_KEY):
        # A fragment: `"_webSocketMessages": [...]` (maybe with a trailing comma).
        text = b"{" + stripped.rstrip().rstrip(b",") + b"}"
    try:
        # decoded here: json.loads(bytes) decodes with "surrogatepass", several times slower
        return json.loads(text.decode("utf-8"), parse_float=str)
    except (ValueError, UnicodeDecodeError) as err:
        raise HarError(f"not valid HAR JSON ({err})") from None


def _entries(doc) -> list[tuple[str, list]]:
    """(url, frames) of every WebSocket entry, in file order."""
    if isinstance(doc, list):
        return [("", doc)]
    if not isinstance(doc, dict):
        raise HarError(f"expected a HAR object or a list of frames, found {type(doc).__name__}")
    if "_webSocketMessages" in doc and "log" not in doc:
        return [("", doc["_webSocketMessages"] or [])]
    log = doc.get("log")
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise HarError("a JSON object without log.entries or _webSocketMessages: not a HAR")
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        frames = entry.get("_webSocketMessages")
        if frames is None:
            continue
        request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
        out.append((str(request.get("url") or ""), frames if isinstance(frames, list) else []))
    return out


_NEEDLE = 32  # base64 characters searched for: enough to be unique, cheap to find

def _locate(data: bytes, text: str, cursor: int) -> int:
    """File offset of a frame's ``data`` string (its first character) at or after ``cursor``,
    or -1. Frames are located in file order, so the search starts where the last ended;
    inside a JSON string every quote is escaped, so ``"`` + text cannot match inside one."""
    head = text[:_NEEDLE]
    needle = b'"' + head.encode("utf-8", "replace") + (b'"' if len(text) <= _NEEDLE else b"")
    at = data.find(needle, cursor)
    return at + 1 if at >= 0 else -1


def read_har(data) -> HarCapture:
    """Every WebSocket frame of a HAR held in memory, messages in receive-time order."""
    doc = _loads(data)
    entries = _entries(doc)
    del doc  # the frames are referenced from entries; the rest of the tree goes
    if not entries:
        raise HarError("a HAR without WebSocket frames (export it with the WS connection selected, "
                       "'Save all as HAR with content')")
    capture = HarCapture()
    starts, sizes, text_at, recv = capture.starts, capture.sizes, capture.text_at, capture.recv_ns
    cursor = 0  # file search position: frames are located in file order
    binary: list[tuple[str, int, object, dict]] = []  # (base64 text, file offset, time, counts)
    for connection, (url, frames) in enumerate(entries):
        counts = {"url": url, "messages": 0, "heartbeats": 0, "text_frames": 0, "sent_frames": 0}
        for frame in frames:
            if not isinstance(frame, dict):
                continue
            text = frame.get("data")
            text = "" if text is None else text if isinstance(text, str) else str(text)
            direction = frame.get("type") or "receive"
            opcode = frame.get("opcode", 1)
            if opcode != 2 and opcode != 1:
                try:
                    opcode = int(opcode)
                except (TypeError, ValueError):
                    opcode = 1
            if direction == "receive" and opcode == 2:
                at = _locate(data, text, cursor)
                if at >= 0:
                    cursor = at + len(text)
                binary.append((text, at if at >= 0 else cursor, frame.get("time"), counts))
            else:
                # Text frames are JSON-escaped in the file: located when written verbatim.
                escaped = json.dumps(text)[1:-1]
                at = _locate(data, escaped, cursor)
                if at >= 0:
                    cursor = at + len(escaped)
                frame_ = HarTextFrame(str(direction), opcode, _time_ns(frame.get("time")), text, connection, at)
                if direction == "send":
                    capture.sent_frames.append(frame_)
                    counts["sent_frames"] += 1
                else:
                    capture.text_frames.append(frame_)
                    counts["text_frames"] += 1
        capture.connections.append(counts)
    del entries
    # binascii in C, one call per frame (a vectorised numpy decoder measured 5x slower)
    decoded, decoded_sizes, invalid = _b64decode_each([b[0] for b in binary])
    texts_done = [(at, len(text), when, counts) for text, at, when, counts in binary]
    del binary  # the base64 strings go before the packets are decoded
    invalid_set = set(invalid)
    at_byte = 0
    for k, ((at, text_len, when_raw, counts), size) in enumerate(zip(texts_done, decoded_sizes, strict=True)):
        if k in invalid_set:
            capture.undecodable.append((max(at, 0), max(text_len, 1), "binary frame whose data is not base64"))
            continue
        if size == 1 and decoded[at_byte] == 0:
            capture.heartbeats += 1
            counts["heartbeats"] += 1
        elif size:
            counts["messages"] += 1
            starts.append(at_byte)
            sizes.append(size)
            text_at.append(at)
            when = _time_ns(when_raw)
            recv.append(-1 if when is None else when)
        at_byte += size
    payload = decoded
    # Receive-time order across connections (a stable sort: a connection's own order
    # breaks ties); one HAR entry whose times never go back needs no reordering.
    order = sorted(range(len(recv)), key=recv.__getitem__)
    if any(i != j for i, j in enumerate(order)):
        reordered = bytearray()
        new_starts = []
        for i in order:
            new_starts.append(len(reordered))
            reordered += payload[starts[i] : starts[i] + sizes[i]]
        payload = reordered
        capture.starts = new_starts
        capture.sizes = [sizes[i] for i in order]
        capture.text_at = [text_at[i] for i in order]
        capture.recv_ns = [recv[i] for i in order]
    if len(capture.starts) and (sum(capture.sizes) != len(payload)):
        # heartbeats' bytes sit between messages in the decoded buffer: keep messages only
        payload = b"".join(payload[a : a + n] for a, n in zip(capture.starts, capture.sizes, strict=True))
        capture.starts = [0] + list(itertools.accumulate(capture.sizes))[:-1]
    capture.payload = payload if isinstance(payload, bytes) else bytes(payload)
    return capture


def _b64decode_each(texts: list[str]) -> tuple[bytes, list[int], list[int]]:
    parts, sizes, invalid = [], [], []
    a2b = binascii.a2b_base64
    for k, text in enumerate(texts):
        try:
            message = a2b(text, strict_mode=True)
        except (binascii.Error, ValueError):
            invalid.append(k)
            sizes.append(0)
            continue
        parts.append(message)
        sizes.append(len(message))
    return b"".join(parts), sizes, invalid

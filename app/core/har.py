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
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

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
class HarMessage:
    """One received binary frame, decoded."""

    data: bytes  # the WebSocket message
    text_at: int  # file offset of its base64 text
    recv_ns: int  # receive time, ns since the epoch (UTC)
    connection: int


@dataclass
class HarTextFrame:
    """A frame that is not a binary Kite message: a received text frame or a sent one."""

    direction: str  # "receive" | "send"
    opcode: int
    recv_ns: Optional[int]
    text: str
    connection: int
    text_at: int  # file offset of its data text (best effort: -1 when not located)


@dataclass
class HarCapture:
    messages: list[HarMessage] = field(default_factory=list)  # time order
    heartbeats: int = 0
    heartbeat_ns: list[int] = field(default_factory=list)
    text_frames: list[HarTextFrame] = field(default_factory=list)  # received text frames
    sent_frames: list[HarTextFrame] = field(default_factory=list)
    connections: list[dict] = field(default_factory=list)  # url, messages, heartbeats, text_frames, sent_frames
    undecodable: list[tuple[int, int, str]] = field(default_factory=list)  # (file offset, length, reason)


def _time_ns(value) -> Optional[int]:
    """Epoch time as ns, exactly: seconds (Chrome), ms or µs by magnitude."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(value) if isinstance(value, str) else Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except Exception:  # noqa: BLE001 - a time we cannot read is no time
        return None
    if not d.is_finite():
        return None
    magnitude = abs(d)
    scale = 10**9 if magnitude < 10**11 else 10**6 if magnitude < 10**14 else 10**3 if magnitude < 10**17 else 1
    return int((d * scale).to_integral_value())


def _loads(data: bytes):
    text = data[len(_BOM):] if data.startswith(_BOM) else data
    stripped = text.lstrip()
    if stripped.startswith(FRAGMENT_KEY):
        # A fragment: `"_webSocketMessages": [...]` (maybe with a trailing comma).
        text = b"{" + stripped.rstrip().rstrip(b",") + b"}"
    try:
        return json.loads(text, parse_float=str)
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


def read_har(data: bytes) -> HarCapture:
    """Every WebSocket frame of a HAR held in memory, messages in receive-time order."""
    doc = _loads(data)
    entries = _entries(doc)
    if not entries:
        raise HarError("a HAR without WebSocket frames (export it with the WS connection selected, "
                       "'Save all as HAR with content')")
    capture = HarCapture()
    staged: list[tuple[int, int, int, HarMessage]] = []  # (time, connection, order, message)
    cursor = 0  # file search position: frames are located in file order
    order = 0
    for connection, (url, frames) in enumerate(entries):
        counts = {"url": url, "messages": 0, "heartbeats": 0, "text_frames": 0, "sent_frames": 0}
        for frame in frames:
            if not isinstance(frame, dict):
                continue
            payload = frame.get("data")
            payload = "" if payload is None else str(payload)
            direction = str(frame.get("type") or "receive")
            opcode = frame.get("opcode", 1)
            try:
                opcode = int(opcode)
            except (TypeError, ValueError):
                opcode = 1
            when = _time_ns(frame.get("time"))
            if direction == "receive" and opcode == 2:
                encoded = payload.encode("ascii", "replace")
                at = data.find(b'"' + encoded + b'"', cursor)
                if at < 0:
                    at = cursor  # not found verbatim (escaped): keep the order, offset approximate
                else:
                    at += 1
                    cursor = at + len(encoded)
                try:
                    message = binascii.a2b_base64(encoded, strict_mode=True)
                except (binascii.Error, ValueError):
                    capture.undecodable.append((at, len(encoded), "binary frame whose data is not base64"))
                    continue
                if message == HEARTBEAT:
                    capture.heartbeats += 1
                    counts["heartbeats"] += 1
                    if when is not None:
                        capture.heartbeat_ns.append(when)
                    continue
                if not message:
                    continue
                counts["messages"] += 1
                staged.append((when if when is not None else -1, connection, order, HarMessage(message, at, when or 0, connection)))
                order += 1
            else:
                text = HarTextFrame(direction, opcode, when, payload, connection, -1)
                if direction == "send":
                    capture.sent_frames.append(text)
                    counts["sent_frames"] += 1
                else:
                    capture.text_frames.append(text)
                    counts["text_frames"] += 1
        capture.connections.append(counts)
    # Time order across connections; a connection's own order breaks ties.
    staged.sort(key=lambda item: (item[0], item[2]))
    capture.messages = [item[3] for item in staged]
    return capture

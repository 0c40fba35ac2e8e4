"""The text readers: base64 lines (and a websocat session's JSON lines) and HAR files."""

from __future__ import annotations

import binascii
import json

import numpy as np

from app.core.framing.common import MAX_BASE64_LINE, ChunkSplit, _Walk
from app.core.framing.messages import _bad


def _b64(text: bytes) -> bytes | None:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


_JSON_DECODER = json.JSONDecoder()


def _json_line_prefix(text: bytes) -> tuple[int, str]:
    """(bytes of the JSON object that starts ``text``, "send" | "receive"); (0, "") if none.

    Kite's commands (``{"a": "subscribe"|"mode"|..., "v": ...}``) are what a websocat user
    types: "send"; any other object (``{"type": "error", ...}``) is a received text frame.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        decoded = text.decode("utf-8", "replace")
    try:
        value, end = _JSON_DECODER.raw_decode(decoded)
    except ValueError:
        return 0, ""
    if not isinstance(value, dict):
        return 0, ""
    direction = "send" if "a" in value and "type" not in value else "receive"
    return len(decoded[:end].encode("utf-8")), direction


def _is_decoration(text: bytes) -> bool:
    """A separator line a terminal session holds (``=====``, ``-----``): one repeated
    punctuation character, at least 8 of them (never a base64 message: those decode)."""
    return len(text) >= 8 and text.count(text[:1]) == len(text) and text[:1] in b"=-*#_~+"


class TextReader:
    """``Framer``'s base64 and HAR readers (one of its bases)."""

    # -- base64: one base64 message per text line --------------------------------------

    def _split_base64(self, buf, base: int, final: bool) -> ChunkSplit:
        walk = _Walk()
        payload = bytearray()
        data = bytes(buf)
        lines = data.split(b"\n")
        tail = b""
        if not final:
            tail = lines.pop()  # no newline yet: the next chunk completes it
        elif lines and lines[-1] == b"":
            lines.pop()
        counts = {"text_frames": 0, "sent_frames": 0, "text_lines": 0}
        frames: list[dict] = []
        p = 0
        for i, line in enumerate(lines):
            has_newline = not (final and i == len(lines) - 1 and not data.endswith(b"\n"))
            text_len = len(line) + has_newline
            text = line.strip()
            if not text:
                walk.framing_bytes += text_len
                p += text_len
                continue
            lead = len(line) - len(line.lstrip())
            decoded = _b64(text)
            glued_at = 0
            if decoded is None and text[:1] == b"{":
                # A websocat session: a typed JSON command (or an echoed text frame),
                # maybe with the next base64 message glued right after it.
                end, direction = _json_line_prefix(text)
                if end:
                    counts["sent_frames" if direction == "send" else "text_frames"] += 1
                    frames.append({"offset": base + p + lead, "length": end, "direction": direction,
                                   "recv_ns": None, "text": text[:end].decode("utf-8", "replace")})
                    rest = text[end:]
                    if not rest:
                        walk.framing_bytes += text_len
                        p += text_len
                        continue
                    decoded = _b64(rest)
                    glued_at = end
                    if decoded is None:
                        walk.regions.append(_bad(data, base, p + lead + end, p + lead + len(text),
                                                 "text after a JSON command is not base64"))
                        walk.framing_bytes += text_len - len(text) + end
                        p += text_len
                        continue
            if decoded is None and _is_decoration(text):
                counts["text_lines"] += 1  # a terminal session's separator line (====...)
                walk.framing_bytes += text_len
                p += text_len
                continue
            if not decoded:
                if text[:1] == b"{":
                    reason = "JSON text frame in a base64 capture"
                else:
                    reason = "line is not base64"
                walk.regions.append(_bad(data, base, p, p + len(line), reason))
                walk.framing_bytes += has_newline
            elif decoded == b"\x00":
                walk.heartbeats += 1
                walk.framing_bytes += text_len - 1
            else:
                walk.start.append(len(payload))
                walk.size.append(len(decoded))
                walk.file_start.append(base + p + lead + glued_at)
                walk.framing_bytes += text_len - len(decoded)
                payload += decoded
            p += text_len
        if not final and len(tail) > MAX_BASE64_LINE:
            walk.regions.append(_bad(data, base, p, p + len(tail), "text line too long to be a base64 message"))
            p += len(tail)
        self.work += len(lines) + 1  # one decode per line (the split itself is C)
        arr = np.frombuffer(bytes(payload), dtype=np.uint8) if payload else np.zeros(0, np.uint8)
        container = dict(counts, frames=frames) if frames or counts["text_lines"] else None
        return self._finish(arr, walk, p, scale="base64", container=container)

    # -- har: a browser's HTTP Archive with WebSocket frames ----------------------------

    def _split_har(self, buf, base: int, final: bool) -> ChunkSplit:
        from app.core.har import HarError, read_har

        walk = _Walk()
        if not final:
            # One JSON document: read it whole (the reader hands the whole file at once).
            return self._finish(np.zeros(0, np.uint8), walk, 0, scale="har")
        data = buf  # bytes or the reader's bytearray: searched and parsed in place, not copied
        try:
            har = read_har(data)
        except HarError as err:
            walk.regions.append(_bad(data, base, 0, len(data), f"not a HAR capture: {err}"))
            return self._finish(np.zeros(0, np.uint8), walk, len(data), scale="har")
        payload = har.payload
        walk.start = har.starts
        walk.size = har.sizes
        walk.file_start = [base + at for at in har.text_at]
        # A frame without a time gets 0 (no receive time): the decoder keeps recv_ts null.
        walk.recv_ns = [t if t >= 0 else 0 for t in har.recv_ns]
        walk.heartbeats = har.heartbeats
        for offset, length, reason in har.undecodable:
            walk.regions.append(_bad(data, base, offset, offset + length, reason))
        walk.framing_bytes = len(data) - len(payload) - har.heartbeats - sum(r.length for r in walk.regions)
        self.work += len(data) // 64 + len(har.starts)
        frames = [
            {"offset": base + f.text_at if f.text_at >= 0 else None, "length": len(f.text.encode("utf-8", "replace")),
             "direction": f.direction, "recv_ns": f.recv_ns, "text": f.text, "connection": f.connection}
            for f in sorted(har.text_frames + har.sent_frames, key=lambda f: (f.recv_ns or 0))
        ]
        container = {
            "text_frames": len(har.text_frames),
            "sent_frames": len(har.sent_frames),
            "connections": har.connections,
            "frames": frames,
        }
        arr = np.frombuffer(payload, dtype=np.uint8) if payload else np.zeros(0, np.uint8)
        return self._finish(arr, walk, len(data), scale="har", container=container)

"""Detecting a capture's framing from its first bytes (never its name)."""

from __future__ import annotations

import numpy as np

from app.core.framing.common import _INVALID, _NEED_MORE, KNOWN_SET
from app.core.framing.framer import Framer
from app.core.framing.messages import _strict_end
from app.core.framing.record_formats import RECORD_FORMATS, RecordFormat
from app.core.framing.text import _b64, _is_decoration, _json_line_prefix

# --- detection ----------------------------------------------------------------------

_BASE64_TEXT = np.zeros(256, dtype=bool)
_BASE64_TEXT[list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n \t")] = True

DETECT_MESSAGES = 64  # validated messages that settle the question
DETECT_HEAD = 1 << 20  # bytes of the file that detection reads


def _score_raw(buf, final: bool):
    limit, p, msgs, hb = len(buf), 0, 0, 0
    while p < limit and msgs < DETECT_MESSAGES:
        e = _strict_end(buf, p, limit)
        if e >= 0:
            msgs += 1
            p = e
        elif buf[p] == 0 and (e == _INVALID or (final and p + 1 == limit)):
            hb += 1
            p += 1
        else:
            break
    return msgs, hb, p


def _score_length_prefixed(buf, final: bool, fmt: RecordFormat):
    hdr = fmt.header
    limit, p, msgs, hb = len(buf), 0, 0, 0
    while p < limit and msgs < DETECT_MESSAGES:
        status, n = fmt.record(buf, p, limit)
        if status < 0:
            break
        s, e = p + hdr, p + hdr + n
        if n == 1 and buf[s] == 0:
            hb += 1
        elif _strict_end(buf, s, e) == e:
            msgs += 1
        else:
            break
        p = e
    return msgs, hb, p


_TEXT_BYTES = _BASE64_TEXT.copy()
_TEXT_BYTES[0x20:0x7F] = True  # printable ASCII: a websocat session's commands and separators


def _score_base64(buf, final: bool):
    a = np.frombuffer(buf, dtype=np.uint8)
    if not a.size or not _TEXT_BYTES[a[: 1 << 16]].all():
        return 0, 0, 0
    lines = bytes(buf).split(b"\n")
    if not final and len(lines) > 1:
        lines.pop()
    msgs = hb = p = 0
    for line in lines[: DETECT_MESSAGES * 4]:
        text = line.strip()
        if text:
            decoded = _b64(text)
            if decoded is None and text[:1] == b"{":
                # a websocat session's typed command or text frame, maybe with a message glued
                end, _ = _json_line_prefix(text)
                if not end:
                    break
                decoded = _b64(text[end:]) if end < len(text) else b""
            elif decoded is None and _is_decoration(text):
                decoded = b""
            if decoded is None:
                break
            if decoded == b"\x00":
                hb += 1
            elif not decoded:
                pass
            elif _strict_end(decoded, 0, len(decoded)) == len(decoded) or len(decoded) in KNOWN_SET:
                msgs += 1
            else:
                break
        p += len(line) + 1
        if msgs >= DETECT_MESSAGES:
            break
    return msgs, hb, min(p, len(buf))


def _explains_head(framing: str, head: bytes, parsed: int, final: bool) -> bool:
    """Whether parsing ``head`` up to ``parsed`` covers all of it (bar a cut-off record)."""
    if parsed >= len(head):
        return True
    if final or framing not in RECORD_FORMATS:
        return False
    # A head that is not the whole file may end inside a record.
    status, _ = RECORD_FORMATS[framing].record(head, parsed, len(head))
    return status == _NEED_MORE


def detect_framing(head: bytes, size: int) -> str:
    """The capture container of a file, from its first bytes (never its name)."""
    return detect_framing_evidence(head, size)[0]


def _scores_text(scores: dict, best: str) -> str:
    others = ", ".join(f"{f} {scores[f][0]}" for f in scores if f != best)
    return f"(messages validated by the others: {others})"


def detect_framing_evidence(head: bytes, size: int) -> tuple[str, str]:
    """(framing, evidence): the capture container of a file and why, in one line.

    Each framing parses messages from the start of ``head`` (fully: count, every packet
    length known, sizes adding up); the one that validates the most wins. ``size`` is
    the whole file's size, so a head holding the whole file can be one message. A HAR
    (or a fragment of one) is recognised by its JSON structure first.
    """
    from app.core.har import looks_like_har

    head = bytes(head)
    final = len(head) >= size
    if not head:
        return "raw", "empty file"
    if looks_like_har(head):
        return "har", "JSON with WebSocket frames (a HAR, a _webSocketMessages fragment or a frame list)"
    n = len(head)
    if final and _strict_end(head, 0, n) == n:
        # exactly one message (a raw capture of one message is the same bytes)
        return "single", f"the whole file ({n} bytes) is one valid message"
    scores = {name: _score_length_prefixed(head, final, fmt) for name, fmt in RECORD_FORMATS.items()}
    scores["base64"] = _score_base64(head, final)
    scores["raw"] = _score_raw(head, final)
    best = max(scores, key=lambda f: (scores[f][0], scores[f][1], scores[f][2]))
    if final and n in KNOWN_SET and not (scores[best][0] and scores[best][2] == n):
        return "single", f"the whole file is one {n}-byte packet body"
    if scores[best][0] > 0:
        msgs, hb, parsed = scores[best]
        return best, (f"{msgs} messages{f' and {hb} heartbeats' if hb else ''} validate in a row from byte 0 "
                      f"as {best} (first {parsed:,} bytes) {_scores_text(scores, best)}")
    # No message at all, but one framing's heartbeats explain every byte of the head
    # (an idle u32len capture is 00000001 00 records, which raw would call garbage).
    explained = [f for f in scores if scores[f][1] > 0 and _explains_head(f, head, scores[f][2], final)]
    if explained:
        best = max(explained, key=lambda f: scores[f][1])
        return best, f"{scores[best][1]} heartbeats and nothing else as {best}"
    # Nothing parses from the first byte (leading garbage): walk the whole head with
    # resynchronisation and keep the framing that finds the most packet bytes.
    packet_bytes = {}
    # ts-u32len first: on a tie its records are also u32len records with junk before them
    for framing in ("ts-u32len", "ts-u32len-le", "u32len", "u32len-le", "base64", "raw"):
        split = Framer(framing).split(head, 0, final)
        packet_bytes[framing] = split.accounted["packet"]
    best = max(packet_bytes, key=packet_bytes.get)
    if packet_bytes[best] > 0:
        return best, (f"nothing validates from byte 0; after resynchronising, {best} finds the most packet bytes "
                      f"({packet_bytes[best]:,} of the first {n:,})")
    if scores["base64"][1] > 0:
        return "base64", "only base64 heartbeats"
    return "raw", "no framing finds a message (default)"

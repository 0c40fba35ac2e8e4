"""Capture containers: detecting the framing and splitting a capture into packets.

This module owns everything between the file's bytes and a list of packet positions:
which container a capture uses (``detect_framing``), walking that container chunk by
chunk on message boundaries, validating each message, resynchronising after faults
and accounting for every byte of the file exactly once (packet body, message header,
container framing, heartbeat or bad). Field decoding lives in ``app.core.decode``.

Walking a container is sequential by nature (each length says where the next record
starts), so it is a Python loop over *messages*, kept cheap: a message whose packets
all share one length is validated with two C-level byte-slice counts. Splitting the
accepted messages into packets is vectorised (``split_messages`` walks packet k of all
messages at once with numpy).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from app.core import protocol

FRAMINGS = ("raw", "u32len", "ts-u32len", "base64", "single")

BAD_RAW_CAP = 512  # bytes of a bad region kept in its BadPacket

KNOWN_SET = frozenset(protocol.KNOWN_LENGTHS)
KNOWN_MASK = np.zeros(1 << 16, dtype=bool)
KNOWN_MASK[list(protocol.KNOWN_LENGTHS)] = True

# The largest message made of known packets; container records claiming more are broken.
MAX_MESSAGE_BYTES = 2 + 0xFFFF * (2 + protocol.MAX_PACKET_LENGTH)
# Raw framing cannot check a message's size, so a message holding unknown-length
# packets is only believed when those packets are of a plausible size.
LENIENT_MAX_PACKET = 4096
LENIENT_MAX_COUNT = 4096
# ts-u32len receive times must fall in 2000-01-01 .. 2100-01-01 (ns since epoch).
TS_MIN_NS = 946_684_800 * 10**9
TS_MAX_NS = 4_102_444_800 * 10**9
MAX_BASE64_LINE = (MAX_MESSAGE_BYTES * 4) // 3 + 8
RESYNC_WINDOW = 1 << 16

_NEED_MORE = -1
_INVALID = -2
_U32 = struct.Struct(">I")
_TS_U32 = struct.Struct(">QI")


@dataclass
class BadPacket:
    """One bad region of a capture; every byte of it is accounted as ``bad``."""

    offset: int  # file offset where the region starts
    length: int  # bytes in the region
    reason: str  # one line
    raw: bytes  # the region's first bytes, capped at BAD_RAW_CAP
    msg_seq: Optional[int] = None

    def to_dict(self) -> dict:
        return {
            "offset": self.offset,
            "length": self.length,
            "reason": self.reason,
            "raw": self.raw.hex(),
            "msg_seq": self.msg_seq,
        }


def _new_accounted() -> dict[str, int]:
    return {"packet": 0, "header": 0, "framing": 0, "heartbeat": 0, "bad": 0}


@dataclass
class ChunkSplit:
    """What walking one buffer of a capture found; packet arrays are in file order."""

    payload: np.ndarray  # uint8 bytes that pkt_pos indexes (the chunk, or decoded base64)
    pkt_pos: np.ndarray  # int64 position of each packet body in payload
    pkt_len: np.ndarray  # int64, always a known length
    pkt_msg: np.ndarray  # int64 global message number
    pkt_seq: np.ndarray  # int32 packet number inside its message
    pkt_offset: np.ndarray  # int64 file offset of the packet body
    pkt_recv_ns: Optional[np.ndarray]  # int64 receive time (ts-u32len only)
    bad: list[BadPacket]
    accounted: dict[str, int]
    messages: int
    heartbeats: int
    consumed: int  # bytes of the buffer walked; the rest is carried to the next chunk


# --- low-level message checks (Python, per message) -----------------------------


def _strict_end(buf, p: int, limit: int) -> int:
    """End of a message at ``p`` made only of known-length packets, or a negative code.

    Bytes past ``limit`` may be read (they are inside ``buf``) but never accepted: a
    read past the end of ``buf`` means the message needs more data.
    """
    known = KNOWN_SET
    try:
        n = buf[p] << 8 | buf[p + 1]
        if n == 0:
            return _INVALID
        j = p + 2
        length = buf[j] << 8 | buf[j + 1]
        if length not in known:
            return _INVALID
        step = length + 2
        end = j + n * step
        # Fast path: Kite usually batches packets of one mode, so every prefix is equal;
        # two strided byte-slice counts check all of them in C.
        if end <= limit and (
            n == 1
            or (
                buf[j:end:step].count(length >> 8) == n
                and buf[j + 1 : end : step].count(length & 0xFF) == n
            )
        ):
            return end
        for _ in range(n):
            length = buf[j] << 8 | buf[j + 1]
            if length not in known:
                return _INVALID
            j += 2 + length
    except IndexError:
        return _NEED_MORE
    return j if j <= limit else _NEED_MORE


def _lenient_end(buf, p: int, limit: int) -> int:
    """End of a raw message whose packets may have unknown (but plausible) lengths."""
    if p + 2 > limit:
        return _NEED_MORE
    n = buf[p] << 8 | buf[p + 1]
    if n == 0 or n > LENIENT_MAX_COUNT:
        return _INVALID
    j = p + 2
    for _ in range(n):
        if j + 2 > limit:
            return _NEED_MORE
        length = buf[j] << 8 | buf[j + 1]
        if length == 0 or (length > LENIENT_MAX_PACKET and length not in KNOWN_SET):
            return _INVALID
        j += 2 + length
        if j > limit:
            return _NEED_MORE
    return j


def _adds_up(buf, start: int, end: int) -> bool:
    """Whether a message of known size is exactly its packets (any lengths that fit)."""
    if end - start < 4:
        return False
    n = buf[start] << 8 | buf[start + 1]
    if n == 0:
        return False
    j = start + 2
    for _ in range(n):
        if j + 2 > end:
            return False
        j += 2 + (buf[j] << 8 | buf[j + 1])
        if j > end:
            return False
    return j == end


def _describe_message_fault(buf, p: int, limit: int) -> str:
    """One line saying why no message starts at ``p`` (for the bad region's reason)."""
    if buf[p : p + 2] == b'{"' or buf[p : p + 1] == b"{":
        return "JSON text frame in a binary capture"
    skipped = 0
    while p + 3 < limit and buf[p] == 0 and buf[p + 1] == 0 and skipped < 16:
        p += 1  # heartbeat bytes before a broken message: describe the message
        skipped += 1
    if p + 2 > limit:
        return "truncated message"
    n = buf[p] << 8 | buf[p + 1]
    if n == 0:
        return "message with 0 packets"
    j = p + 2
    for k in range(n):
        if j + 2 > limit:
            return f"truncated message ({n} packets announced)"
        length = buf[j] << 8 | buf[j + 1]
        if length not in KNOWN_SET:
            return f"unknown packet length {length} (packet {k} of {n})"
        j += 2 + length
    return "unparseable bytes"


def _bad(buf, base: int, start: int, end: int, reason: str, msg_seq=None) -> BadPacket:
    return BadPacket(base + start, end - start, reason, bytes(buf[start : min(end, start + BAD_RAW_CAP)]), msg_seq)


def _region_reason(buf, start: int, end: int, first_reason: str) -> str:
    if buf[start : start + 1] == b"{":
        return f"JSON text frame in a binary capture ({end - start} bytes skipped)"
    if buf.find(b'{"type"', start, min(end, start + (1 << 16))) >= 0:
        # A text frame written into the middle of a message breaks that message too.
        return f"JSON text frame in a binary capture; {end - start} bytes skipped to the next valid message"
    return f"{first_reason}; {end - start} bytes skipped to the next valid message"


def _merge_touching(faults: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """One region for faults of one message that touch (e.g. a run of 0-length packets)."""
    if len(faults) < 2:
        return faults
    out: list[list] = []  # [msg, pos, length, reason, faults merged]
    for msg, pos, length, reason in faults:
        last = out[-1] if out else None
        if last is not None and last[0] == msg and last[1] + last[2] == pos:
            last[2] += length
            last[4] += 1
        else:
            out.append([msg, pos, length, reason, 1])
    return [
        (msg, pos, length, reason if k == 1 else f"{reason} and {k - 1} more faults ({length} bytes)")
        for msg, pos, length, reason, k in out
    ]


# --- vectorised message splitting ----------------------------------------------


def _u16(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (a[at].astype(np.int64) << 8) | a[at + 1]


def _u16_or(a: np.ndarray, at: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """u16 at ``at`` where ``ok``, else 0 (``at`` may be past the end there)."""
    out = np.zeros(at.size, dtype=np.int64)
    out[ok] = _u16(a, at[ok])
    return out


@dataclass
class MessageSplit:
    """Packets of a batch of messages (indexes are into the batch's message arrays)."""

    pkt_msg: np.ndarray  # int64 index of the message in the batch
    pkt_seq: np.ndarray  # int32
    pkt_pos: np.ndarray  # int64 (known lengths only)
    pkt_len: np.ndarray
    valid: np.ndarray  # bool per message: every packet known and they add up exactly
    faults: list[tuple[int, int, int, str]]  # (message index, payload pos, length, reason)
    header_bytes: int
    packet_bytes: int
    bad_bytes: int


def split_messages(
    payload: np.ndarray,
    start: np.ndarray,
    size: np.ndarray,
    bare: Optional[np.ndarray] = None,
) -> MessageSplit:
    """Split messages of known position and size into packets, packet k of all at once.

    ``bare`` marks messages that are one packet body without a message header (the
    base64 fixtures of single bodies). Unknown-length packets that fit are skipped by
    their prefix and reported as faults; whatever does not fit becomes one fault
    region running to the end of its message.
    """
    start = np.asarray(start, dtype=np.int64)
    size = np.asarray(size, dtype=np.int64)
    m = len(start)
    end = start + size
    if bare is None:
        bare = np.zeros(m, dtype=bool)
    framed_mask = ~bare & (size >= 2)
    # A JSON text frame ({"type": ...}) written into a binary capture: all of it is bad.
    text = np.zeros(m, dtype=bool)
    candidates = np.flatnonzero(framed_mask)
    if candidates.size:
        text[candidates] = (payload[start[candidates]] == 0x7B) & (payload[start[candidates] + 1] == 0x22)
        framed_mask &= ~text
    framed = np.flatnonzero(framed_mask)
    count = np.zeros(m, dtype=np.int64)
    count[framed] = _u16(payload, start[framed])
    cursor = start + 2
    fail_pos = np.full(m, -1, dtype=np.int64)
    fail_len = np.zeros(m, dtype=np.int64)
    done = np.zeros(m, dtype=np.int64)  # packets walked per message

    msgs, seqs, poss, lens = [], [], [], []
    active = framed[count[framed] > 0]
    k = 0
    while active.size:
        c = cursor[active]
        e = end[active]
        has_prefix = c + 2 <= e
        if has_prefix.all():
            length = _u16(payload, c)
        else:
            length = np.zeros(active.size, dtype=np.int64)
            hp = np.flatnonzero(has_prefix)
            length[hp] = _u16(payload, c[hp])
        after = c + 2 + length
        fits = after <= e
        if fits.all():  # the usual case: nothing failed at packet k
            good = active
        else:
            good = active[fits]
            c, length, after = c[fits], length[fits], after[fits]
            failed = active[~fits]
            fail_pos[failed] = cursor[failed]
            fail_len[failed] = np.where(has_prefix[~fits], _u16_or(payload, cursor[failed], has_prefix[~fits]), -1)
            done[failed] = k
        msgs.append(good)
        seqs.append(k)
        poss.append(c + 2)
        lens.append(length)
        cursor[good] = after
        k += 1
        active = good[count[good] > k]
    walked = np.zeros(m, dtype=np.int64)
    for k, good in enumerate(msgs):
        walked[good] = k + 1
    done = np.where(fail_pos >= 0, done, walked)

    bare_idx = np.flatnonzero(bare)
    if msgs or bare_idx.size:
        # File order is (message, packet number): place each packet without sorting.
        per_message = walked.copy()
        per_message[bare_idx] = 1
        first = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(per_message, out=first[1:])
        total = int(first[-1])
        pkt_msg = np.empty(total, dtype=np.int64)
        pkt_seq = np.empty(total, dtype=np.int32)
        pkt_pos = np.empty(total, dtype=np.int64)
        pkt_len = np.empty(total, dtype=np.int64)
        for k, (good, pos_k, len_k) in enumerate(zip(msgs, poss, lens)):
            at = first[good] + k
            pkt_msg[at] = good
            pkt_seq[at] = k
            pkt_pos[at] = pos_k
            pkt_len[at] = len_k
        if bare_idx.size:
            at = first[bare_idx]
            pkt_msg[at] = bare_idx
            pkt_seq[at] = 0
            pkt_pos[at] = start[bare_idx]
            pkt_len[at] = size[bare_idx]
    else:
        pkt_msg = np.zeros(0, np.int64)
        pkt_seq = np.zeros(0, np.int32)
        pkt_pos = np.zeros(0, np.int64)
        pkt_len = np.zeros(0, np.int64)

    header_bytes = 2 * framed.size + 2 * int(np.count_nonzero(~bare[pkt_msg])) if pkt_msg.size else 2 * framed.size
    known = KNOWN_MASK[pkt_len]
    valid = np.zeros(m, dtype=bool)
    valid[framed] = (fail_pos[framed] < 0) & (cursor[framed] == end[framed]) & (count[framed] > 0)
    valid[bare_idx] = True

    faults: list[tuple[int, int, int, str]] = []
    unknown = np.flatnonzero(~known)
    if unknown.size:
        valid[pkt_msg[unknown]] = False
        for i in unknown.tolist():
            length = int(pkt_len[i])
            if length == 0:
                # A packet of length 0 has no body: its 2-byte prefix is the bad region
                # (a region is never empty), so that prefix is not counted as header.
                faults.append((int(pkt_msg[i]), int(pkt_pos[i]) - 2, 2, "unknown packet length 0"))
                header_bytes -= 2
            else:
                faults.append((int(pkt_msg[i]), int(pkt_pos[i]), length, f"unknown packet length {length}"))
    # Message-level faults: rare, so a Python loop over them only.
    broken = framed[~valid[framed] & ((fail_pos[framed] >= 0) | (cursor[framed] != end[framed]))]
    short = np.flatnonzero(~bare & (size < 2) & (size > 0))
    for i in broken.tolist():
        n, e = int(count[i]), int(end[i])
        if fail_pos[i] >= 0:
            at = int(fail_pos[i])
            walked = int(done[i])
            if at == e:
                # Every byte is a whole packet: the wrong count is the bad part, and a
                # region is never empty, so the 2-byte count is the region (not header).
                faults.append((i, int(start[i]), 2, f"message announces {n} packets but holds only {walked}"))
                header_bytes -= 2
                continue
            elif fail_len[i] < 0:
                reason = f"message announces {n} packets but packet {walked}'s length prefix is cut off"
            else:
                reason = (
                    f"packet {walked} of {n}: length {int(fail_len[i])} overruns the message "
                    f"(size {int(size[i])}) by {at + 2 + int(fail_len[i]) - e} bytes"
                )
        else:
            at = int(cursor[i])
            if n == 0:
                reason = f"message with 0 packets and {e - at} more bytes"
            else:
                reason = f"{e - at} bytes after the last of the message's {n} packets: sizes do not add up"
        faults.append((i, at, e - at, reason))
    for i in np.flatnonzero(text).tolist():
        faults.append((i, int(start[i]), int(size[i]), f"JSON text frame in a binary capture ({int(size[i])} bytes)"))
    for i in short.tolist():
        faults.append((i, int(start[i]), int(size[i]), f"{int(size[i])}-byte message is not a heartbeat"))
    faults.sort(key=lambda f: f[1])
    faults = _merge_touching(faults)

    good = known
    packet_bytes = int(pkt_len[good].sum())
    bad_bytes = sum(f[2] for f in faults)
    return MessageSplit(
        pkt_msg=pkt_msg[good],
        pkt_seq=pkt_seq[good],
        pkt_pos=pkt_pos[good],
        pkt_len=pkt_len[good],
        valid=valid,
        faults=faults,
        header_bytes=header_bytes,
        packet_bytes=packet_bytes,
        bad_bytes=bad_bytes,
    )


# --- container walkers ------------------------------------------------------------


@dataclass
class _Walk:
    """Messages found in one buffer, before they are split into packets."""

    start: list = field(default_factory=list)  # payload positions
    size: list = field(default_factory=list)
    file_start: list = field(default_factory=list)
    recv_ns: list = field(default_factory=list)
    bare: list = field(default_factory=list)
    regions: list = field(default_factory=list)  # BadPacket of container-level faults
    heartbeats: int = 0
    framing_bytes: int = 0


class Framer:
    """Walks one capture's container, chunk by chunk, carrying state between chunks."""

    def __init__(self, framing: str):
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}")
        self.framing = framing
        self.msg_seq = 0  # messages seen so far: the next message's number
        self.resync = False  # the carried bytes start inside a bad region

    def split(self, buf, base: int, final: bool) -> ChunkSplit:
        """Walk ``buf`` (starting at file offset ``base``); stop at the last whole message."""
        if self.framing == "raw":
            walk, consumed = self._walk_raw(buf, base, final)
        elif self.framing in ("u32len", "ts-u32len"):
            walk, consumed = self._walk_length_prefixed(buf, base, final, self.framing == "ts-u32len")
        elif self.framing == "base64":
            return self._split_base64(buf, base, final)
        else:
            walk, consumed = self._walk_single(buf, base, final)
        payload = np.frombuffer(buf, dtype=np.uint8) if len(buf) else np.zeros(0, np.uint8)
        return self._finish(payload, walk, consumed, scale=None)

    # Packets of the walked messages, their file offsets and the byte accounting.
    def _finish(self, payload: np.ndarray, walk: _Walk, consumed: int, scale) -> ChunkSplit:
        start = np.asarray(walk.start, dtype=np.int64)
        size = np.asarray(walk.size, dtype=np.int64)
        bare = np.asarray(walk.bare, dtype=bool) if walk.bare else np.zeros(len(start), bool)
        ms = split_messages(payload, start, size, bare)
        if scale == "base64":
            # A single body without a header decodes as that packet; only when the
            # bytes are not a valid message (checked by the split above).
            retry = ~ms.valid & KNOWN_MASK[np.minimum(size, 0xFFFF)] & ~bare
            if retry.any():
                ms = split_messages(payload, start, size, bare | retry)
        file_start = np.asarray(walk.file_start, dtype=np.int64)
        seq0 = self.msg_seq
        self.msg_seq += len(start)

        def file_offset(msg_idx, pos):
            delta = pos - start[msg_idx]
            if scale == "base64":
                delta = delta * 4 // 3  # the text position where the decoded byte starts
            return file_start[msg_idx] + delta

        pkt_offset = file_offset(ms.pkt_msg, ms.pkt_pos)
        recv = None
        if walk.recv_ns:
            recv = np.asarray(walk.recv_ns, dtype=np.int64)[ms.pkt_msg]
        bad = list(walk.regions)
        for i, pos, length, reason in ms.faults:
            at = int(file_offset(np.int64(i), np.int64(pos)))
            raw = bytes(payload[pos : pos + min(length, BAD_RAW_CAP)])
            bad.append(BadPacket(at, length, reason, raw, seq0 + i))
        bad.sort(key=lambda b: b.offset)
        accounted = _new_accounted()
        accounted["packet"] = ms.packet_bytes
        accounted["header"] = ms.header_bytes
        accounted["framing"] = walk.framing_bytes
        accounted["heartbeat"] = walk.heartbeats
        accounted["bad"] = ms.bad_bytes + sum(r.length for r in walk.regions)
        return ChunkSplit(
            payload=payload,
            pkt_pos=ms.pkt_pos,
            pkt_len=ms.pkt_len,
            pkt_msg=ms.pkt_msg + seq0,
            pkt_seq=ms.pkt_seq,
            pkt_offset=pkt_offset,
            pkt_recv_ns=recv,
            bad=bad,
            accounted=accounted,
            messages=len(start),
            heartbeats=walk.heartbeats,
            consumed=consumed,
        )

    # -- raw: messages back to back, 1-byte heartbeats between them -----------------

    def _follows_ok(self, buf, e: int, limit: int, final: bool):
        """Whether the bytes after a candidate message also parse (heartbeats, a message).

        True/False, or ``_NEED_MORE`` when the answer depends on bytes past the end of a
        chunk that is not the last: the caller carries and asks again with more data,
        so the answer (and the decoding) never depends on where a chunk ends.
        """
        for _ in range(16):
            if e >= limit:
                return True if final else _NEED_MORE
            r = _strict_end(buf, e, limit)
            if r >= 0:
                return True
            if r == _NEED_MORE:
                return True if final else _NEED_MORE  # the capture ends inside a message
            if buf[e] != 0:
                return False
            e += 1  # a heartbeat
        return True

    def _walk_raw(self, buf, base: int, final: bool):
        walk = _Walk()
        limit = len(buf)
        p = 0
        while p < limit:
            if self.resync:
                p, stop = self._resync_raw(buf, base, p, limit, final, walk, "bytes before the next valid message")
                if stop:
                    break
                continue
            if buf[p] == 0 and p + 1 < limit and buf[p + 1] == 0:
                # A run of zero bytes (idle heartbeats, a zero-filled tail): a count of 0
                # is no message, so all but the last zero are heartbeats.
                window = buf[p : p + (1 << 16)]
                run = len(window) - len(window.lstrip(b"\x00"))
                walk.heartbeats += run - 1
                p += run - 1
                continue
            e = _strict_end(buf, p, limit)
            if e >= 0:
                walk.start.append(p)
                walk.size.append(e - p)
                p = e
                continue
            if e == _NEED_MORE:
                if not final:
                    break
                if buf[p] == 0 and p + 1 == limit:
                    walk.heartbeats += 1
                    p += 1
                    continue
                walk.regions.append(_bad(buf, base, p, limit, f"truncated message at the end of the capture ({limit - p} bytes)"))
                p = limit
                break
            e = _lenient_end(buf, p, limit)
            if e == _NEED_MORE and not final:
                break
            lenient_ok = e >= 0 and self._follows_ok(buf, e, limit, final)
            if lenient_ok is _NEED_MORE:
                break
            if not lenient_ok and buf[p] == 0:
                hb_ok = self._follows_ok(buf, p + 1, limit, final)
                if hb_ok is _NEED_MORE:
                    break
                if hb_ok:
                    walk.heartbeats += 1
                    p += 1
                    continue
            if lenient_ok:
                # Unknown-length packets inside: split_messages skips and records them.
                walk.start.append(p)
                walk.size.append(e - p)
                p = e
                continue
            self.resync = True
            reason = _describe_message_fault(buf, p, limit)
            p, stop = self._resync_raw(buf, base, p, limit, final, walk, reason, skip_first=True)
            if stop:
                break
        walk.file_start = [base + s for s in walk.start]
        return walk, p

    def _resync_raw(self, buf, base, p, limit, final, walk, reason, skip_first=False):
        """Scan from ``p`` for a message that validates fully and is followed by one.

        Returns (new position, stop). Bytes skipped become one bad region.
        """
        a = np.frombuffer(buf, dtype=np.uint8)
        q0 = p + 1 if skip_first else p
        while True:
            hi = min(q0 + RESYNC_WINDOW, limit - 3)
            if q0 < hi:
                window = np.arange(q0, hi, dtype=np.int64)
                count = _u16(a, window)
                first = _u16(a, window + 2)
                candidates = window[(count > 0) & KNOWN_MASK[first]].tolist()
            else:
                candidates = []
            for q in candidates:
                e = _strict_end(buf, q, limit)
                if e == _NEED_MORE and not final:
                    return self._close_region(buf, base, p, q, walk, reason), True
                if e >= 0:
                    follows = self._follows_ok(buf, e, limit, final)
                    if follows is _NEED_MORE:
                        # Decide at q once the next chunk is here (q is re-examined).
                        return self._close_region(buf, base, p, q, walk, reason), True
                    if follows:
                        self.resync = False
                        return self._close_region(buf, base, p, q, walk, reason), False
            if hi >= limit - 3:
                break
            q0 = hi
        if final:
            self.resync = False
            return self._close_region(buf, base, p, limit, walk, reason), False
        # Keep the last bytes: a message header may start there.
        return self._close_region(buf, base, p, max(p, limit - 3), walk, reason), True

    @staticmethod
    def _close_region(buf, base, start, end, walk, reason) -> int:
        if end > start:
            walk.regions.append(_bad(buf, base, start, end, _region_reason(buf, start, end, reason)))
        return end

    # -- u32len / ts-u32len: [u64 receive ns][u32 length][message] ---------------------

    def _walk_length_prefixed(self, buf, base: int, final: bool, ts: bool):
        hdr = 12 if ts else 4
        limit = len(buf)
        # Fast pass: trust the container, then check all messages at once (vectorised).
        walk = _Walk()
        p = 0
        if not self.resync:
            p = self._fast_records(buf, limit, ts, walk)
            if walk.start:
                ms = split_messages(np.frombuffer(buf, dtype=np.uint8), np.asarray(walk.start), np.asarray(walk.size))
                heartbeat = (np.asarray(walk.size) == 1) & (np.frombuffer(buf, dtype=np.uint8)[np.asarray(walk.start)] == 0)
                ok = ms.valid | heartbeat
                if not ok.all():
                    first = int(np.argmin(ok))
                    p = walk.start[first] - hdr
                    del walk.start[first:], walk.size[first:], walk.recv_ns[first:]
            # heartbeats came back as 1-byte messages: pull them out of the message list
            walk = self._drop_heartbeat_records(buf, walk)
            walk.framing_bytes = hdr * (len(walk.start) + walk.heartbeats)
        # Careful pass: validate every record, resynchronise after broken ones.
        while p < limit:
            if self.resync:
                p, stop = self._resync_records(buf, base, p, limit, final, ts, walk)
                if stop:
                    break
                continue
            status, n = self._record(buf, p, limit, ts)
            if status == _NEED_MORE:
                if not final:
                    break
                walk.regions.append(_bad(buf, base, p, limit, f"truncated record at the end of the capture ({limit - p} bytes)"))
                p = limit
                break
            s, e = p + hdr, p + hdr + n
            if status >= 0:
                if n == 1 and buf[s] == 0:
                    walk.heartbeats += 1
                    walk.framing_bytes += hdr
                    p = e
                    continue
                trusted = _adds_up(buf, s, e) or self._record_plausible(buf, e, limit, ts, final)
                if trusted is _NEED_MORE:
                    break  # carry the record: whether to trust it depends on the next one
                if trusted:
                    # A record whose message is faulty but whose neighbour is a record:
                    # trust the container, split_messages records the faults.
                    self._take_record(buf, p, s, e, ts, walk)
                    walk.framing_bytes += hdr
                    p = e
                    continue
            self.resync = True
            p, stop = self._resync_records(buf, base, p, limit, final, ts, walk, skip_first=True)
            if stop:
                break
        walk.file_start = [base + s for s in walk.start]
        return walk, p

    @staticmethod
    def _take_record(buf, p, s, e, ts, walk):
        walk.start.append(s)
        walk.size.append(e - s)
        if ts:
            walk.recv_ns.append(int.from_bytes(buf[p : p + 8], "big"))

    def _fast_records(self, buf, limit: int, ts: bool, walk: _Walk) -> int:
        p = 0
        starts, sizes, recvs = walk.start, walk.size, walk.recv_ns
        if ts:
            unpack = _TS_U32.unpack_from
            while p + 12 <= limit:
                t, n = unpack(buf, p)
                e = p + 12 + n
                if n == 0 or n > MAX_MESSAGE_BYTES or not TS_MIN_NS <= t < TS_MAX_NS or e > limit:
                    break
                recvs.append(t)
                starts.append(p + 12)
                sizes.append(n)
                p = e
        else:
            unpack = _U32.unpack_from
            while p + 4 <= limit:
                (n,) = unpack(buf, p)
                e = p + 4 + n
                if n == 0 or n > MAX_MESSAGE_BYTES or e > limit:
                    break
                starts.append(p + 4)
                sizes.append(n)
                p = e
        return p

    @staticmethod
    def _drop_heartbeat_records(buf, walk: _Walk) -> _Walk:
        if 1 not in walk.size:
            return walk
        out = _Walk()
        for i, (s, n) in enumerate(zip(walk.start, walk.size)):
            if n == 1 and buf[s] == 0:
                out.heartbeats += 1
                continue
            out.start.append(s)
            out.size.append(n)
            if walk.recv_ns:
                out.recv_ns.append(walk.recv_ns[i])
        return out

    @staticmethod
    def _record(buf, p: int, limit: int, ts: bool):
        """(status, message size) of a container record at ``p``; status >= 0 when sane."""
        hdr = 12 if ts else 4
        if p + hdr > limit:
            return _NEED_MORE, 0
        if ts:
            t, n = _TS_U32.unpack_from(buf, p)
            if not TS_MIN_NS <= t < TS_MAX_NS:
                return _INVALID, 0
        else:
            (n,) = _U32.unpack_from(buf, p)
        if n == 0 or n > MAX_MESSAGE_BYTES:
            return _INVALID, 0
        if p + hdr + n > limit:
            return _NEED_MORE, n
        return 0, n

    def _record_plausible(self, buf, p: int, limit: int, ts: bool, final: bool):
        """Whether a container record starts at ``p`` (its message may still be faulty).

        Used to trust the container around a faulty message: the next record's length
        is sane and its message starts like one (a packet count and a first length
        that fits), or it is a heartbeat or a JSON text frame. Only the record's header
        and first 4 message bytes are read, so the answer is the same however the file
        is chunked; when they are past the end of a chunk that is not the last, the
        answer is ``_NEED_MORE``. At the true end of the file a cut-off record is
        trusted (the capture was cut while writing it).
        """
        hdr = 12 if ts else 4
        if p + hdr > limit:
            return True if final else _NEED_MORE
        if ts:
            t, n = _TS_U32.unpack_from(buf, p)
            if not TS_MIN_NS <= t < TS_MAX_NS:
                return False
        else:
            (n,) = _U32.unpack_from(buf, p)
        if n == 0 or n > MAX_MESSAGE_BYTES:
            return False
        s = p + hdr
        if s + min(n, 4) > limit:
            return True if final else _NEED_MORE
        if n == 1:
            return buf[s] == 0
        if buf[s : s + 2] == b'{"':
            return True
        if n < 4:
            return False
        count = buf[s] << 8 | buf[s + 1]
        first = buf[s + 2] << 8 | buf[s + 3]
        return count > 0 and 4 + first <= n

    def _record_validates(self, buf, p, limit, ts, final) -> int:
        """End of a record at ``p`` that is a heartbeat or a valid message, else a code."""
        hdr = 12 if ts else 4
        status, n = self._record(buf, p, limit, ts)
        if status < 0:
            return status
        s, e = p + hdr, p + hdr + n
        if n == 1:
            return e if buf[s] == 0 else _INVALID
        return e if _strict_end(buf, s, e) == e else _INVALID

    def _resync_records(self, buf, base, p, limit, final, ts, walk, skip_first=False):
        hdr = 12 if ts else 4
        a = np.frombuffer(buf, dtype=np.uint8)
        if buf[p : p + 1] == b"{":
            reason = "JSON text frame"
        elif skip_first:
            status, n = self._record(buf, p, limit, ts)
            reason = "broken container record" + (f" (length {n})" if n else "")
        else:
            reason = "bytes before the next valid record"
        q0 = p + 1 if skip_first else p
        while True:
            hi = min(q0 + RESYNC_WINDOW, limit - hdr - 3)
            candidates = []
            if q0 < hi:
                window = np.arange(q0, hi, dtype=np.int64)
                ln = (_u16(a, window + hdr - 4) << 16) | _u16(a, window + hdr - 2)
                count = _u16(a, window + hdr)
                first = _u16(a, window + hdr + 2)
                ok = (ln >= 4) & (ln <= MAX_MESSAGE_BYTES) & (count > 0) & KNOWN_MASK[first]
                if ts:  # the top byte of a 2000..2100 nanosecond time
                    ok &= (a[window] >= TS_MIN_NS >> 56) & (a[window] <= TS_MAX_NS >> 56)
                candidates = window[ok].tolist()
            for q in candidates:
                e = self._record_validates(buf, q, limit, ts, final)
                if e == _NEED_MORE and not final:
                    return self._close_region(buf, base, p, q, walk, reason), True
                if e >= 0:
                    if e >= limit:
                        nxt = 0 if final else _NEED_MORE
                    else:
                        nxt = self._record_validates(buf, e, limit, ts, final)
                    if nxt == _NEED_MORE and not final:
                        # Decide at q once the next chunk is here (q is re-examined).
                        return self._close_region(buf, base, p, q, walk, reason), True
                    if nxt >= 0 or nxt == _NEED_MORE:
                        self.resync = False
                        return self._close_region(buf, base, p, q, walk, reason), False
            if hi >= limit - hdr - 3:
                break
            q0 = hi
        if final:
            self.resync = False
            return self._close_region(buf, base, p, limit, walk, reason), False
        return self._close_region(buf, base, p, max(p, limit - hdr - 3), walk, reason), True

    # -- single: the whole file is one message (or one bare packet body) -------------

    def _walk_single(self, buf, base: int, final: bool):
        walk = _Walk()
        if not final:
            return walk, 0  # keep reading: the message is the whole file
        n = len(buf)
        if n == 1 and buf[0] == 0:
            walk.heartbeats = 1
        elif n:
            walk.start.append(0)
            walk.size.append(n)
            walk.bare.append(n in KNOWN_SET and _strict_end(buf, 0, n) != n)
        walk.file_start = [base + s for s in walk.start]
        return walk, n

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
        p = 0
        for i, line in enumerate(lines):
            has_newline = not (final and i == len(lines) - 1 and not data.endswith(b"\n"))
            text_len = len(line) + has_newline
            text = line.strip()
            if not text:
                walk.framing_bytes += text_len
                p += text_len
                continue
            try:
                decoded = binascii.a2b_base64(text, strict_mode=True)
            except (binascii.Error, ValueError):
                decoded = None
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
                walk.file_start.append(base + p + (len(line) - len(line.lstrip())))
                walk.framing_bytes += text_len - len(decoded)
                payload += decoded
            p += text_len
        if not final and len(tail) > MAX_BASE64_LINE:
            walk.regions.append(_bad(data, base, p, p + len(tail), "text line too long to be a base64 message"))
            p += len(tail)
        arr = np.frombuffer(bytes(payload), dtype=np.uint8) if payload else np.zeros(0, np.uint8)
        return self._finish(arr, walk, p, scale="base64")


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


def _score_length_prefixed(buf, final: bool, ts: bool):
    hdr = 12 if ts else 4
    limit, p, msgs, hb = len(buf), 0, 0, 0
    while p < limit and msgs < DETECT_MESSAGES:
        status, n = Framer._record(buf, p, limit, ts)
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


def _score_base64(buf, final: bool):
    a = np.frombuffer(buf, dtype=np.uint8)
    if not a.size or not _BASE64_TEXT[a[: 1 << 16]].all():
        return 0, 0, 0
    lines = bytes(buf).split(b"\n")
    if not final and len(lines) > 1:
        lines.pop()
    msgs = hb = p = 0
    for line in lines[: DETECT_MESSAGES * 4]:
        text = line.strip()
        if text:
            try:
                decoded = binascii.a2b_base64(text, strict_mode=True)
            except (binascii.Error, ValueError):
                break
            if decoded == b"\x00":
                hb += 1
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
    if final or framing not in ("u32len", "ts-u32len"):
        return False
    # A head that is not the whole file may end inside a record.
    status, _ = Framer._record(head, parsed, len(head), framing == "ts-u32len")
    return status == _NEED_MORE


def detect_framing(head: bytes, size: int) -> str:
    """The capture container of a file, from its first bytes (never its name).

    Each framing parses messages from the start of ``head`` (fully: count, every packet
    length known, sizes adding up); the one that validates the most wins. ``size`` is
    the whole file's size, so a head holding the whole file can be one message.
    """
    head = bytes(head)
    final = len(head) >= size
    if not head:
        return "raw"
    n = len(head)
    if final and _strict_end(head, 0, n) == n:
        return "single"  # exactly one message (a raw capture of one message is the same bytes)
    scores = {
        "ts-u32len": _score_length_prefixed(head, final, True),
        "u32len": _score_length_prefixed(head, final, False),
        "base64": _score_base64(head, final),
        "raw": _score_raw(head, final),
    }
    best = max(scores, key=lambda f: (scores[f][0], scores[f][1], scores[f][2]))
    if final and n in KNOWN_SET and not (scores[best][0] and scores[best][2] == n):
        return "single"  # one bare packet body, unless another framing explains every byte
    if scores[best][0] > 0:
        return best
    # No message at all, but one framing's heartbeats explain every byte of the head
    # (an idle u32len capture is 00000001 00 records, which raw would call garbage).
    explained = [f for f in scores if scores[f][1] > 0 and _explains_head(f, head, scores[f][2], final)]
    if explained:
        return max(explained, key=lambda f: scores[f][1])
    # Nothing parses from the first byte (leading garbage): walk the whole head with
    # resynchronisation and keep the framing that finds the most packet bytes.
    packet_bytes = {}
    for framing in ("ts-u32len", "u32len", "base64", "raw"):
        split = Framer(framing).split(head, 0, final)
        packet_bytes[framing] = split.accounted["packet"]
    best = max(packet_bytes, key=packet_bytes.get)
    if packet_bytes[best] > 0:
        return best
    if scores["base64"][1] > 0:
        return "base64"
    return "raw"

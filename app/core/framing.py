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
import bisect
import json
import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from app.core import protocol

FRAMINGS = ("raw", "u32len", "ts-u32len", "u32len-le", "ts-u32len-le", "base64", "har", "single")

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
    # What a text container (base64 lines, HAR) held besides binary messages: counts
    # ``text_frames`` / ``sent_frames`` / ``text_lines``, HAR ``connections`` and the
    # frames themselves (``frames``: dicts with offset, length, direction, recv_ns, text).
    container: Optional[dict] = None


# --- the message walker -----------------------------------------------------------
#
# A Kite message is ``[u16 count]`` then ``count`` packets, each ``[u16 length][body]``.
# Every walk over those prefixes goes through ``message_packets`` (a scalar walk of one
# message, any lengths) or ``PacketChains`` (the same walk memoised over a whole buffer,
# for resynchronisation and for checks that must stay linear on hostile input).
# ``split_messages`` is the vectorised form for messages whose size is already known.


def message_packets(buf, p: int, end: int, count: Optional[int] = None):
    """(k, prefix position, length) of each packet of the message at ``p``.

    Reads only below ``end``; stops after the announced count (or ``count`` when given)
    or when a length prefix would cross ``end``. A body may run past ``end``: callers
    compare ``prefix + 2 + length`` with their own bounds.
    """
    if count is None:
        if p + 2 > end:
            return
        count = buf[p] << 8 | buf[p + 1]
    j = p + 2
    for k in range(count):
        if j + 2 > end:
            return
        length = buf[j] << 8 | buf[j + 1]
        yield k, j, length
        j += 2 + length


STRICT_LENGTHS = KNOWN_SET
LENIENT_LENGTHS = frozenset(range(1, LENIENT_MAX_PACKET + 1)) | KNOWN_SET


class PacketChains:
    """Memoised packet-prefix chains of one buffer: the linear-time message walker.

    A length prefix at ``x`` says where the next one is (``x + 2 + length``), whatever
    message ``x`` belongs to; so the prefixes of a buffer form chains that candidate
    message starts share. Each prefix position is read once (it joins one path);
    ``run(x)`` is how many accepted lengths follow in a row from ``x`` and ``jump(x, n)``
    the position after ``n`` of them, both without re-reading bytes. Whether a message
    at ``q`` validates is then ``run(q + 2) >= count(q)``: constant work per candidate,
    however far ahead it would have failed. ``steps`` counts prefixes read plus path
    hops (the decoder's work counter).
    """

    def __init__(self, buf, accept=STRICT_LENGTHS, limit: Optional[int] = None):
        self.buf = buf
        self.accept = accept
        self.limit = len(buf) if limit is None else limit
        self._at: dict[int, tuple[int, int]] = {}
        self._nodes: list[list[int]] = []
        self._next: list[Optional[tuple[int, int]]] = []
        self._run0: list[int] = []
        self._stop: list[int] = []
        self.steps = 0

    def _where(self, x: int) -> tuple[int, int]:
        got = self._at.get(x)
        if got is not None:
            return got
        buf, limit, accept, at = self.buf, self.limit, self.accept, self._at
        pid = len(self._nodes)
        nodes: list[int] = []
        cont = None
        stop = _INVALID
        y = x
        while True:
            hit = at.get(y)
            if hit is not None:
                cont = hit
                break
            at[y] = (pid, len(nodes))
            nodes.append(y)
            if y + 2 > limit:
                stop = _NEED_MORE
                break
            length = buf[y] << 8 | buf[y + 1]
            if length not in accept:
                break
            y += 2 + length
        self.steps += len(nodes)
        if cont is None:
            run0 = len(nodes) - 1
        else:
            cp, ci = cont
            run0 = len(nodes) + self._run0[cp] - ci
            stop = self._stop[cp]
        self._nodes.append(nodes)
        self._next.append(cont)
        self._run0.append(run0)
        self._stop.append(stop)
        return pid, 0

    def run(self, x: int) -> int:
        """Accepted length prefixes in a row from ``x``."""
        pid, i = self._where(x)
        return self._run0[pid] - i

    def stop(self, x: int) -> int:
        """Why the chain from ``x`` stops: ``_INVALID`` (a length not accepted) or ``_NEED_MORE``."""
        return self._stop[self._where(x)[0]]

    def jump(self, x: int, n: int) -> int:
        """Position after ``n`` packets from the prefix at ``x`` (``n <= run(x)``)."""
        pid, i = self._where(x)
        while True:
            nodes = self._nodes[pid]
            if i + n < len(nodes):
                return nodes[i + n]
            n -= len(nodes) - i
            pid, i = self._next[pid]
            self.steps += 1

    def message_end(self, q: int, limit: Optional[int] = None, max_count: int = 0xFFFF) -> int:
        """End of the message at ``q`` whose packets all have accepted lengths, or a code."""
        limit = self.limit if limit is None else limit
        if q + 2 > self.limit:
            return _NEED_MORE
        buf = self.buf
        n = buf[q] << 8 | buf[q + 1]
        if n == 0 or n > max_count:
            return _INVALID
        j = q + 2
        pid, i = self._where(j)
        if self._run0[pid] - i >= n:
            e = self.jump(j, n)
            return e if e <= limit else _NEED_MORE
        return self._stop[pid]

    def describe(self, q: int) -> str:
        """One line saying why the message at ``q`` does not validate."""
        buf, limit = self.buf, self.limit
        if q + 2 > limit:
            return "truncated message"
        n = buf[q] << 8 | buf[q + 1]
        if n == 0:
            return "message with 0 packets"
        j = q + 2
        # Most faults show within a few packets: walk those directly (the same answer
        # as the chains give), the memoised chains only for longer ones.
        for good in range(min(n, 16)):
            if j + 2 > limit:
                return f"truncated message ({n} packets announced)"
            length = buf[j] << 8 | buf[j + 1]
            if length not in self.accept:
                return f"unknown packet length {length} (packet {good} of {n})"
            j += 2 + length
        else:
            if n <= 16:
                return f"truncated message ({n} packets announced)"
        j = q + 2
        good = self.run(j)
        if good >= n:
            return f"truncated message ({n} packets announced)"
        at = self.jump(j, good)
        if self.stop(j) == _NEED_MORE or at + 2 > limit:
            return f"truncated message ({n} packets announced)"
        return f"unknown packet length {buf[at] << 8 | buf[at + 1]} (packet {good} of {n})"


UNIFORM_MAX_COUNT = 4096  # above Kite's 3,000 instruments per connection, so one message of each


def _uniform_end(buf, p: int, limit: int):
    """Fast path: end of a message at ``p`` whose packets all share one known length.

    Kite usually batches packets of one mode, so every prefix is equal; two strided
    byte-slice counts check all of them in C. Returns the end, ``_INVALID`` when the
    count or first length already fail, or None (undecided: walk it with the chains).
    A count above ``UNIFORM_MAX_COUNT`` is undecided too: a junk count of 65,535 would
    make every failed check cost a 655 KB strided count (crafted inputs can ask one
    per bad region), so such messages go to the memoised chains.
    """
    if p + 4 > limit:
        return None
    n = buf[p] << 8 | buf[p + 1]
    if n == 0:
        return _INVALID
    j = p + 2
    length = buf[j] << 8 | buf[j + 1]
    if length not in KNOWN_SET:
        return _INVALID
    if n > UNIFORM_MAX_COUNT:
        return None
    step = length + 2
    end = j + n * step
    if end > limit:
        return None
    if n == 1 or (
        buf[j:end:step].count(length >> 8) == n and buf[j + 1 : end : step].count(length & 0xFF) == n
    ):
        return end
    return None


def _plain_end(scan: "_Scan", p: int) -> Optional[int]:
    """Fast path: end of the message at ``p`` walked packet by packet with plain ints, or
    None (undecided: ask the chains).

    A message of mixed packet lengths (the usual full/quote/LTP mix) is walked once, with
    no memo: recording every prefix in the chains costs twice the whole decode on clean
    captures. Linear whatever the input: only a success returns (it consumes the bytes
    it walked), and a failure raises ``scan.frontier`` to where it stopped; a start
    before the frontier goes to the chains, so no byte is walked here twice after a
    failure. The steps count in ``scan.work``.
    """
    buf, limit = scan.buf, scan.limit
    if p < scan.frontier or p + 2 > limit:
        return None
    n = buf[p] << 8 | buf[p + 1]
    known = KNOWN_SET
    j = p + 2
    walked = 0
    while walked < n and j + 2 <= limit:
        length = buf[j] << 8 | buf[j + 1]
        if length not in known:
            break
        j += 2 + length
        walked += 1
    scan.plain += walked
    if walked == n and n and j <= limit:
        return j
    scan.frontier = max(scan.frontier, j)
    return None


def _strict_end(buf, p: int, limit: int) -> int:
    """End of a message at ``p`` made only of known-length packets, or a negative code.

    A one-off check (detection, a single-message file); walkers use ``PacketChains``.
    Bytes past ``limit`` may be read (they are inside ``buf``) but never accepted.
    """
    e = _uniform_end(buf, p, limit)
    if e is not None:
        return e
    if p + 2 > len(buf):
        return _NEED_MORE
    j = p + 2
    walked = 0
    n = buf[p] << 8 | buf[p + 1]
    if n == 0:
        return _INVALID
    for walked, j, length in message_packets(buf, p, len(buf)):
        if length not in KNOWN_SET:
            return _INVALID
        walked += 1
        j += 2 + length
    if walked < n:
        return _NEED_MORE  # a length prefix past the end of the buffer
    return j if j <= limit else _NEED_MORE


def _adds_up(buf, start: int, end: int) -> bool:
    """Whether a message of known size is exactly its packets (any lengths that fit)."""
    if end - start < 4:
        return False
    n = buf[start] << 8 | buf[start + 1]
    if n == 0:
        return False
    j, walked = start + 2, 0
    for walked, at, length in message_packets(buf, start, end):
        j = at + 2 + length
        walked += 1
        if j > end:
            return False
    return walked == n and j == end


def _first_length_known(buf, p: int, limit: int) -> bool:
    return p + 4 <= limit and (buf[p + 2] << 8 | buf[p + 3]) in KNOWN_SET


def _describe_fault(scan, p: int) -> str:
    """One line saying why no message starts at ``p`` (for the bad region's reason)."""
    buf, limit = scan.buf, scan.limit
    if buf[p : p + 2] == b'{"' or buf[p : p + 1] == b"{":
        return "JSON text frame in a binary capture"
    skipped = 0
    while p + 3 < limit and buf[p] == 0 and buf[p + 1] == 0 and skipped < 16:
        p += 1  # heartbeat bytes before a broken message: describe the message
        skipped += 1
    return scan.strict.describe(p)


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


_FEW_MESSAGES = 8  # split_messages walks fewer long messages than this one by one


def _walk_one(payload: np.ndarray, c: int, e: int, count: int, k: int):
    """Packets ``k..count-1`` of one message whose packet ``k`` prefix is at ``c``, as
    ``split_messages``' vectorised step would find them: (packets walked, cursor, fault
    position or -1, fault length or -1 when its prefix is cut off, body positions, lengths)."""
    buf = payload[c:e].tobytes()
    base, limit = c, len(buf)
    j = 0
    at: list[int] = []
    ln: list[int] = []
    while k < count:
        if j + 2 > limit:
            return k, base + j, base + j, -1, at, ln
        length = buf[j] << 8 | buf[j + 1]
        if j + 2 + length > limit:
            return k, base + j, base + j, length, at, ln
        at.append(base + j + 2)
        ln.append(length)
        j += 2 + length
        k += 1
    return k, base + j, -1, 0, at, ln


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
    tail = []  # (message, first k, positions, lengths): messages walked one by one
    active = framed[count[framed] > 0]
    k = 0
    while active.size:
        if active.size <= _FEW_MESSAGES and k >= _FEW_MESSAGES:
            # A few long messages left (one of 65,535 tiny packets, say): a numpy step
            # per packet would cost far more than a scalar walk of their prefixes.
            for i in active.tolist():
                k_end, c, fail, flen, at, ln = _walk_one(payload, int(cursor[i]), int(end[i]), int(count[i]), k)
                cursor[i] = c
                if fail >= 0:
                    fail_pos[i], fail_len[i], done[i] = fail, flen, k_end
                if at:
                    tail.append((i, k, at, ln))
            break
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
    for i, k0, at, _ in tail:
        walked[i] = k0 + len(at)
    done = np.where(fail_pos >= 0, done, walked)

    bare_idx = np.flatnonzero(bare)
    if msgs or tail or bare_idx.size:
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
        for k, (good, pos_k, len_k) in enumerate(zip(msgs, poss, lens, strict=True)):
            at = first[good] + k
            pkt_msg[at] = good
            pkt_seq[at] = k
            pkt_pos[at] = pos_k
            pkt_len[at] = len_k
        for i, k0, pos_t, len_t in tail:
            at = int(first[i]) + k0
            pkt_msg[at : at + len(pos_t)] = i
            pkt_seq[at : at + len(pos_t)] = np.arange(k0, k0 + len(pos_t), dtype=np.int32)
            pkt_pos[at : at + len(pos_t)] = pos_t
            pkt_len[at : at + len(pos_t)] = len_t
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


# --- container record formats -------------------------------------------------------


@dataclass(frozen=True)
class RecordFormat:
    """A length-prefixed container: every message follows a fixed-size record header
    holding its u32 length (and, in some, a u64 receive time in ns). New containers of
    this shape are one entry in ``RECORD_FORMATS``; they share the walker and resync."""

    name: str
    header: int  # header bytes before each message
    length_at: int  # offset of the u32 message length in the header
    order: str = ">"  # byte order of the header fields
    time_at: Optional[int] = None  # offset of the u64 receive time (ns), if any

    def parse(self, buf, p: int) -> tuple[Optional[int], int]:
        """(receive time or None, message length) of the header at ``p`` (it must fit)."""
        n = int.from_bytes(buf[p + self.length_at : p + self.length_at + 4], "big" if self.order == ">" else "little")
        if self.time_at is None:
            return None, n
        t = int.from_bytes(buf[p + self.time_at : p + self.time_at + 8], "big" if self.order == ">" else "little")
        return t, n

    def record(self, buf, p: int, limit: int) -> tuple[int, int]:
        """(status, message size) of a record at ``p``; status >= 0 when sane."""
        if p + self.header > limit:
            return _NEED_MORE, 0
        t, n = self.parse(buf, p)
        if t is not None and not TS_MIN_NS <= t < TS_MAX_NS:
            return _INVALID, 0
        if n == 0 or n > MAX_MESSAGE_BYTES:
            return _INVALID, 0
        if p + self.header + n > limit:
            return _NEED_MORE, n
        return 0, n

    def candidates(self, a: np.ndarray, window: np.ndarray) -> np.ndarray:
        """Vectorised pre-filter: positions where a record with a message could start."""
        hdr, at = self.header, self.length_at
        if self.order == ">":
            ln = (_u16(a, window + at) << 16) | _u16(a, window + at + 2)
        else:
            ln = (_u16le(a, window + at + 2) << 16) | _u16le(a, window + at)
        count = _u16(a, window + hdr)
        first = _u16(a, window + hdr + 2)
        ok = (ln >= 4) & (ln <= MAX_MESSAGE_BYTES) & (count > 0) & KNOWN_MASK[first]
        if self.time_at is not None:  # the top byte of a 2000..2100 nanosecond time
            top = a[window + self.time_at + (0 if self.order == ">" else 7)]
            ok &= (top >= TS_MIN_NS >> 56) & (top <= TS_MAX_NS >> 56)
        return ok


RECORD_FORMATS: dict[str, RecordFormat] = {
    "u32len": RecordFormat("u32len", 4, 0),
    "ts-u32len": RecordFormat("ts-u32len", 12, 8, time_at=0),
    # Little-endian containers of other projects' recorders (e.g. manja's test fixtures:
    # u64 LE receive ns + u32 LE length + message); the message itself stays big-endian.
    "u32len-le": RecordFormat("u32len-le", 4, 0, order="<"),
    "ts-u32len-le": RecordFormat("ts-u32len-le", 12, 8, order="<", time_at=0),
}

FOLLOW_WINDOW = 16  # a resync point must be followed by a message within this many bytes
CANDIDATE_BLOCK = 4096  # candidate starts are pre-filtered (numpy) in blocks of this size
_FOUND, _MORE, _NONE = "found", "more", "none"


def _u16le(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (a[at + 1].astype(np.int64) << 8) | a[at]


class _Scan:
    """What walking one buffer has learnt, shared by its walker and its resync.

    Packet chains (strict and lenient), candidate blocks and the last resync answer
    are memoised, so every byte is read a bounded number of times whatever the input:
    ``work`` counts candidate checks, pre-filtered bytes and chain steps.
    """

    def __init__(self, buf):
        self.buf = buf
        self.limit = len(buf)
        self.a = np.frombuffer(buf, dtype=np.uint8) if len(buf) else np.zeros(0, np.uint8)
        self.strict = PacketChains(buf, STRICT_LENGTHS)
        self.lenient = PacketChains(buf, LENIENT_LENGTHS)
        self._blocks: dict = {}
        self.scanned = 0
        self.checks = 0
        self.plain = 0  # packet steps of the plain fast path (_plain_end)
        self.frontier = 0  # where the plain fast path last stopped on a failure
        self.hint: Optional[tuple[int, str, int]] = None  # (from, kind, position)
        self.valid_hint: Optional[tuple[int, int, int]] = None  # (from, anchor, position)

    @property
    def work(self) -> int:
        return self.scanned + self.checks + self.plain + self.strict.steps + self.lenient.steps

    def candidates(self, start: int, end: int, key, mask, reach: int):
        """Positions in [start, end) that pass ``mask`` (a vectorised pre-filter), in order.

        ``mask`` reads ``reach`` bytes from each position, so positions stop there; blocks
        are computed once per buffer and key.
        """
        block = CANDIDATE_BLOCK
        stop = self.limit - reach + 1  # the first position whose bytes do not all fit
        end = min(end, stop)
        b = max(start, 0) // block
        while b * block < end:
            got = self._blocks.get((key, b))
            if got is None:
                got = self._block(key, b, mask, stop)
            if got:
                first = bisect.bisect_left(got, start) if got[0] < start else 0
                last = bisect.bisect_left(got, end) if got[-1] >= end else len(got)
                yield from got[first:last]
            b += 1

    def _block(self, key, b: int, mask, stop: int) -> list:
        block = CANDIDATE_BLOCK
        lo, hi = b * block, min(b * block + block, stop)
        window = np.arange(lo, hi, dtype=np.int64)
        if hi > lo:
            ok = mask(self.a, window)
            if isinstance(ok, tuple):  # (mask, chain steps it walked)
                ok, steps = ok
                self.scanned += steps
            got = window[ok].tolist()
        else:
            got = []
        self._blocks[(key, b)] = got
        self.scanned += max(hi - lo, 0)
        return got

    def remembered(self, start: int):
        h = self.hint
        if h is not None and h[0] <= start <= h[2]:
            return h[1], h[2]
        return None


QUICK_ANCHOR = 8  # positions the quick resync probe tries before the general search


def _quick_anchor(scan: "_Scan", start: int) -> Optional[int]:
    """The resync anchor of raw framing when it is within a few bytes and plain, else None.

    Damage is usually short (a junk byte between two messages): the first candidate
    start whose message validates with one repeated packet length (``_uniform_end``)
    and is followed within ``FOLLOW_WINDOW`` bytes by another such message is the same
    anchor the general search (``Framer._find_anchor``) finds, without its
    per-candidate machinery.
    Positions before it are no candidate at all (count 0 or first length unknown), so
    no earlier message can validate. Any undecided case answers None.
    """
    buf, limit = scan.buf, scan.limit
    for q in range(start, min(start + QUICK_ANCHOR, limit - 3)):
        scan.checks += 1
        e = _uniform_end(buf, q, limit)
        if e is None:
            return None
        if e < 0:
            continue
        # followed by a message within the window, junk allowed between (``_followed``)
        for f in range(e, e + FOLLOW_WINDOW):
            scan.checks += 1
            r = _uniform_end(buf, f, limit)
            if r is None:
                return None
            if r >= 0:
                return q
        return None
    return None


def _raw_candidates(a: np.ndarray, window: np.ndarray) -> np.ndarray:
    return (_u16(a, window) > 0) & KNOWN_MASK[_u16(a, window + 2)]


PRECHECK_STEPS = 16  # packets of every candidate message walked at once (numpy) before Python sees it


def _raw_plausible(a: np.ndarray, window: np.ndarray):
    """Candidate raw message starts in ``window`` that may validate, and the chain steps
    walked to know it: (mask, steps).

    Packet ``k`` of every candidate is checked at once for ``k < PRECHECK_STEPS``; a
    candidate with a length prefix inside the buffer that is not a known length is
    rejected here, so the resync's Python loop never sees it. The rest (whole, longer
    or running past the buffer) go on to the exact checks (``PacketChains``). Work is at
    most ``PRECHECK_STEPS`` steps per candidate: linear.
    """
    ok = _raw_candidates(a, window)
    c = window[ok]
    if not c.size:
        return ok, 0
    limit = a.size
    count = _u16(a, c)
    x = c + 2 + 2 + _u16(a, c + 2)  # packet 0's length is known (the candidate filter)
    alive = np.flatnonzero(count > 1)
    invalid = np.zeros(c.size, dtype=bool)
    steps = c.size
    for k in range(1, PRECHECK_STEPS):
        if not alive.size:
            break
        xs = x[alive]
        inside = xs + 2 <= limit  # else the prefix is past the buffer: undecided here
        if not inside.all():
            alive, xs = alive[inside], xs[inside]
        length = _u16(a, xs)
        known = KNOWN_MASK[length]
        steps += xs.size
        invalid[alive[~known]] = True
        alive, xs, length = alive[known], xs[known], length[known]
        x[alive] = xs + 2 + length
        alive = alive[count[alive] > k + 1]
    ok[np.flatnonzero(ok)[invalid]] = False
    return ok, steps


class Framer:
    """Walks one capture's container, chunk by chunk, carrying state between chunks.

    One reader per framing (``_READERS``); the length-prefixed ones differ only by their
    ``RecordFormat``. All of them share the message walker (``PacketChains``) and the
    resynchronisation, which finds the next message that validates completely in one
    forward pass over candidate starts. ``work`` counts what the walk examined.
    """

    _READERS = {"raw": "_walk_raw", "base64": "_split_base64", "har": "_split_har", "single": "_walk_single"}

    def __init__(self, framing: str):
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}")
        self.framing = framing
        self.msg_seq = 0  # messages seen so far: the next message's number
        self.resync = False  # the carried bytes start inside a bad region
        self.work = 0  # candidate checks + pre-filtered bytes + chain steps, all chunks

    def split(self, buf, base: int, final: bool) -> ChunkSplit:
        """Walk ``buf`` (starting at file offset ``base``); stop at the last whole message."""
        fmt = RECORD_FORMATS.get(self.framing)
        if fmt is not None:
            walk, consumed = self._walk_records(buf, base, final, fmt)
        else:
            reader = getattr(self, self._READERS[self.framing])
            if self.framing in ("base64", "har"):
                return reader(buf, base, final)
            walk, consumed = reader(buf, base, final)
        payload = np.frombuffer(buf, dtype=np.uint8) if len(buf) else np.zeros(0, np.uint8)
        return self._finish(payload, walk, consumed, scale=None)

    # Packets of the walked messages, their file offsets and the byte accounting.
    def _finish(self, payload: np.ndarray, walk: _Walk, consumed: int, scale, container=None) -> ChunkSplit:
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
            if scale in ("base64", "har"):
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
            container=container,
        )

    # -- raw: messages back to back, 1-byte heartbeats between them -----------------

    @staticmethod
    def _followed(scan: _Scan, e: int, final: bool, junk: bool):
        """Whether a message (or the end) follows ``e`` within ``FOLLOW_WINDOW`` bytes.

        Zero bytes between are heartbeats; with ``junk`` any bytes may be (a recorder
        writing a newline after each message). True/False, or ``_NEED_MORE`` when the
        answer depends on bytes past the end of a chunk that is not the last: the caller
        carries and asks again with more data, so the decoding never depends on where
        a chunk ends.
        """
        buf, limit = scan.buf, scan.limit
        if e >= limit:
            return True if final else _NEED_MORE
        w_end = min(e + FOLLOW_WINDOW, limit)
        stop = limit - 3  # positions from here cannot be pre-checked (a count and a length)
        # Only candidate starts the vectorised pre-check keeps can hold a message (the
        # rest are no message at all), so only they are asked, in order.
        positions = list(scan.candidates(e, min(w_end, stop), "raw", _raw_plausible, 4))
        positions.extend(range(max(e, stop), w_end))
        for c in positions:
            scan.checks += 1
            if not junk and c > e and buf[e:c].count(0) != c - e:
                return False  # a byte before it is neither a heartbeat nor a message
            r = scan.strict.message_end(c)
            if r >= 0:
                return True
            if r == _NEED_MORE:
                return True if final else _NEED_MORE  # the capture ends inside a message
        nonzero = buf[e:w_end].count(0) != w_end - e
        if not junk and nonzero:
            return False
        if e + FOLLOW_WINDOW > limit:
            return True if final else _NEED_MORE
        return not nonzero

    @staticmethod
    def _candidate_filter(fmt: Optional[RecordFormat]):
        """(key, vectorised pre-filter, bytes it reads) of candidate starts: raw messages,
        or records of ``fmt``."""
        return ("raw", _raw_plausible, 4) if fmt is None else (fmt.name, fmt.candidates, fmt.header + 4)

    def _validates(self, scan: _Scan, c: int, fmt: Optional[RecordFormat]) -> int:
        """End of a message (raw) or record (``fmt``) at ``c`` that validates completely, else a code."""
        return scan.strict.message_end(c) if fmt is None else self._record_validates(scan, c, fmt)

    def _find_anchor(self, scan: _Scan, start: int, final: bool, fmt: Optional[RecordFormat] = None):
        """The first position >= ``start`` where a message (raw) or a record holding one
        (``fmt``; a corrupt length prefix costs only its own record) validates completely
        and is followed by another (or the end): (``_FOUND``, q); (``_MORE``, q) when the
        answer needs the next chunk (carry from q); (``_NONE``, end of the buffer)."""
        got = scan.remembered(start)
        if got is not None:
            return got
        key, mask, reach = self._candidate_filter(fmt)
        end = scan.limit - reach + 1  # the first start whose pre-filtered bytes do not all fit
        answer = None
        for q in scan.candidates(start, end, key, mask, reach):
            scan.checks += 1
            e = self._validates(scan, q, fmt)
            if e == _NEED_MORE:
                if not final:
                    answer = (_MORE, q)
                    break
                continue
            if e < 0:
                continue
            if fmt is None:
                follows = self._followed(scan, e, final, junk=True)
            else:
                follows = self._record_followed(scan, e, final, fmt)
            if follows is _NEED_MORE:
                answer = (_MORE, q)  # decide at q once the next chunk is here
                break
            if follows:
                answer = (_FOUND, q)
                break
        if answer is None:
            # Keep the last bytes of a chunk: a message or record header may start there.
            answer = (_NONE, scan.limit) if final else (_MORE, max(start, end))
        scan.hint = (start, answer[0], answer[1])
        return answer

    def _next_start(self, scan: _Scan, start: int, final: bool, fmt: Optional[RecordFormat] = None):
        """Where walking resumes after damage at ``start - 1``: the resync anchor (the
        first message that validates and is followed by another), or an earlier message
        that validates completely and ends by the anchor (its neighbour was damaged too)."""
        if fmt is None:
            q = _quick_anchor(scan, start)
            if q is not None:
                return _FOUND, q
        kind, anchor = self._find_anchor(scan, start, final, fmt)
        h = scan.valid_hint
        if h is not None and h[0] <= start <= h[2] and h[1] == anchor:
            q = h[2]
        else:
            q = anchor
            key, mask, reach = self._candidate_filter(fmt)
            for c in scan.candidates(start, anchor, key, mask, reach):
                scan.checks += 1
                e = self._validates(scan, c, fmt)
                if 0 <= e <= anchor:
                    q = c
                    break
                if e > anchor and kind == _MORE:
                    # A whole valid message that outruns the undecided anchor: whether it
                    # is taken depends on bytes past this chunk, so carry it rather than
                    # close the bad region over it (decoding must not depend on chunking).
                    q = c
                    break
            scan.valid_hint = (start, anchor, q)
        if q < anchor and kind == _MORE and not 0 <= self._validates(scan, q, fmt) <= anchor:
            return _MORE, q
        return (_FOUND, q) if q < anchor else (kind, anchor)

    def _walk_raw(self, buf, base: int, final: bool):
        walk = _Walk()
        limit = len(buf)
        scan = _Scan(buf)
        p = 0
        while p < limit:
            if self.resync:
                kind, q = self._next_start(scan, p, final)
                self._close_region(buf, base, p, q, walk, "bytes before the next valid message")
                p = q
                if kind == _MORE:
                    break
                self.resync = False
                continue
            if buf[p] == 0 and p + 1 < limit and buf[p + 1] == 0:
                # A run of zero bytes (idle heartbeats, a zero-filled tail): a count of 0
                # is no message, so all but the last zero are heartbeats.
                window = buf[p : p + (1 << 16)]
                run = len(window) - len(window.lstrip(b"\x00"))
                walk.heartbeats += run - 1
                p += run - 1
                continue
            scan.checks += 1
            e = _uniform_end(buf, p, limit)
            if e is None:
                e = _plain_end(scan, p)
            if e is None:
                e = scan.strict.message_end(p)
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
                kind, q = self._next_start(scan, p + 1, final)
                if kind == _FOUND:  # a broken count, not a capture cut while writing
                    self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
                    p = q
                    continue
                walk.regions.append(_bad(buf, base, p, limit, f"truncated message at the end of the capture ({limit - p} bytes)"))
                p = limit
                break
            if buf[p] == 0:
                hb_ok = self._followed(scan, p + 1, final, junk=False)
                if hb_ok is _NEED_MORE:
                    break
                if hb_ok:
                    walk.heartbeats += 1
                    p += 1
                    continue
            # No valid message here: the next resync point, unless a message with
            # unknown-length packets (split_messages skips and records them) starts here.
            kind, q = self._next_start(scan, p + 1, final)
            if kind == _FOUND and q < p + 5:
                # A message with unknown lengths is at least 5 bytes: the one found
                # inside it would hide it anyway, so it is not walked.
                self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
                p = q
                continue
            e = scan.lenient.message_end(p, max_count=LENIENT_MAX_COUNT)
            if e >= 0 and q < e:
                if kind == _MORE:
                    # Whether a message that validates starts inside this one (and so
                    # hides it) is decided by bytes past this chunk: carry, ask again.
                    break
                if kind == _FOUND:
                    e = _INVALID  # a message with unknown lengths never hides one that validates
            if e == _NEED_MORE and not final:
                break
            if e >= 0:
                ok = self._followed(scan, e, final, junk=False)
                if ok is _NEED_MORE:
                    break
                if ok:
                    walk.start.append(p)
                    walk.size.append(e - p)
                    p = e
                    continue
            self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
            p = q
            if kind == _MORE:
                self.resync = True
                break
        walk.file_start = [base + s for s in walk.start]
        self.work += scan.work
        return walk, p

    @staticmethod
    def _close_region(buf, base, start, end, walk, reason) -> int:
        if end > start:
            walk.regions.append(_bad(buf, base, start, end, _region_reason(buf, start, end, reason)))
        return end

    # -- length-prefixed: [header with the u32 length (and receive time)][message] -----

    def _walk_records(self, buf, base: int, final: bool, fmt: RecordFormat):
        hdr = fmt.header
        limit = len(buf)
        scan = _Scan(buf)
        # Fast pass: trust the container, then check all messages at once (vectorised).
        walk = _Walk()
        p = 0
        if not self.resync:
            p = self._fast_records(buf, limit, fmt, walk)
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
            scan.checks += len(walk.start) + walk.heartbeats
        # Careful pass: validate every record, resynchronise after broken ones.
        while p < limit:
            if self.resync:
                reason = "JSON text frame" if buf[p : p + 1] == b"{" else "bytes before the next valid record"
                kind, q = self._next_start(scan, p, final, fmt)
                self._close_region(buf, base, p, q, walk, reason)
                p = q
                if kind == _MORE:
                    break
                self.resync = False
                continue
            scan.checks += 1
            status, n = fmt.record(buf, p, limit)
            if status == _NEED_MORE:
                if not final:
                    break
                kind, q = self._next_start(scan, p + 1, final, fmt)
                if kind == _FOUND:  # a broken length, not a capture cut while writing
                    self._close_region(buf, base, p, q, walk, f"broken container record (length {n})")
                    p = q
                    continue
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
                if self._record_validates(scan, p, fmt) == e:
                    trusted = True
                else:
                    trusted = _adds_up(buf, s, e) or self._record_plausible(buf, e, limit, fmt, final)
                    if trusted is True:
                        # Never trust a faulty record over a valid one that starts inside it
                        # (a damaged length that happens to look sane).
                        kind, q = self._next_start(scan, p + 1, final, fmt)
                        if q < e and (kind == _FOUND or not final):
                            trusted = False if kind == _FOUND else _NEED_MORE
                if trusted is _NEED_MORE:
                    break  # carry the record: whether to trust it depends on the next one
                if trusted:
                    # A record whose message is faulty but whose neighbour is a record:
                    # trust the container, split_messages records the faults.
                    self._take_record(buf, p, s, e, fmt, walk)
                    walk.framing_bytes += hdr
                    p = e
                    continue
            if buf[p : p + 1] == b"{":
                reason = "JSON text frame"
            else:
                reason = "broken container record" + (f" (length {n})" if n else "")
            kind, q = self._next_start(scan, p + 1, final, fmt)
            self._close_region(buf, base, p, q, walk, reason)
            p = q
            if kind == _MORE:
                self.resync = True
                break
        walk.file_start = [base + s for s in walk.start]
        self.work += scan.work
        return walk, p

    @staticmethod
    def _take_record(buf, p, s, e, fmt: RecordFormat, walk):
        walk.start.append(s)
        walk.size.append(e - s)
        if fmt.time_at is not None:
            walk.recv_ns.append(fmt.parse(buf, p)[0])

    def _fast_records(self, buf, limit: int, fmt: RecordFormat, walk: _Walk) -> int:
        p = 0
        hdr = fmt.header
        starts, sizes, recvs = walk.start, walk.size, walk.recv_ns
        if fmt.order == ">" and fmt.time_at == 0 and fmt.length_at == 8:
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
        elif fmt.order == ">" and fmt.time_at is None and fmt.length_at == 0 and hdr == 4:
            unpack = _U32.unpack_from
            while p + 4 <= limit:
                (n,) = unpack(buf, p)
                e = p + 4 + n
                if n == 0 or n > MAX_MESSAGE_BYTES or e > limit:
                    break
                starts.append(p + 4)
                sizes.append(n)
                p = e
        else:
            while True:
                status, n = fmt.record(buf, p, limit)
                if status < 0:
                    break
                if fmt.time_at is not None:
                    recvs.append(fmt.parse(buf, p)[0])
                starts.append(p + hdr)
                sizes.append(n)
                p += hdr + n
        return p

    @staticmethod
    def _drop_heartbeat_records(buf, walk: _Walk) -> _Walk:
        if 1 not in walk.size:
            return walk
        out = _Walk()
        for i, (s, n) in enumerate(zip(walk.start, walk.size, strict=True)):
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
        """(status, message size) of a u32len (``ts``: ts-u32len) record at ``p``."""
        return RECORD_FORMATS["ts-u32len" if ts else "u32len"].record(buf, p, limit)

    @staticmethod
    def _record_plausible(buf, p: int, limit: int, fmt: RecordFormat, final: bool):
        """Whether a container record starts at ``p`` (its message may still be faulty).

        Used to trust the container around a faulty message: the next record's length
        is sane and its message starts like one (a packet count and a first length
        that fits), or it is a heartbeat or a JSON text frame. Only the record's header
        and first 4 message bytes are read, so the answer is the same however the file
        is chunked; when they are past the end of a chunk that is not the last, the
        answer is ``_NEED_MORE``. At the true end of the file a cut-off record is
        trusted (the capture was cut while writing it).
        """
        hdr = fmt.header
        if p + hdr > limit:
            return True if final else _NEED_MORE
        t, n = fmt.parse(buf, p)
        if t is not None and not TS_MIN_NS <= t < TS_MAX_NS:
            return False
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

    @staticmethod
    def _record_validates(scan: _Scan, p: int, fmt: RecordFormat) -> int:
        """End of a record at ``p`` that is a heartbeat or a valid message, else a code."""
        buf = scan.buf
        status, n = fmt.record(buf, p, scan.limit)
        if status < 0:
            return status
        s, e = p + fmt.header, p + fmt.header + n
        if n == 1:
            return e if buf[s] == 0 else _INVALID
        return e if scan.strict.message_end(s) == e else _INVALID

    def _record_followed(self, scan: _Scan, e: int, final: bool, fmt: RecordFormat):
        for k in range(FOLLOW_WINDOW):
            if e + k >= scan.limit:
                return True if final else _NEED_MORE
            scan.checks += 1
            r = self._record_validates(scan, e + k, fmt)
            if r >= 0:
                return True
            if r == _NEED_MORE:
                return True if final else _NEED_MORE
        return False

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


def _b64(text: bytes) -> Optional[bytes]:
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

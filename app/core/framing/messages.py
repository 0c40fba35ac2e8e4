"""The message walker: a Kite message is ``[u16 count]`` then ``count`` packets, each
``[u16 length][body]``; walking, validating and describing one, and the bad regions
around them."""

from __future__ import annotations

from app.core.framing.common import (
    _INVALID,
    _NEED_MORE,
    BAD_RAW_CAP,
    KNOWN_SET,
    LENIENT_MAX_PACKET,
    BadPacket,
)

# --- the message walker -----------------------------------------------------------
#
# A Kite message is ``[u16 count]`` then ``count`` packets, each ``[u16 length][body]``.
# Every walk over those prefixes goes through ``message_packets`` (a scalar walk of one
# message, any lengths) or ``PacketChains`` (the same walk memoised over a whole buffer,
# for resynchronisation and for checks that must stay linear on hostile input).
# ``split_messages`` is the vectorised form for messages whose size is already known.


def message_packets(buf, p: int, end: int, count: int | None = None):
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


def _record(at: dict, nodes: list, pid: int) -> None:
    """``at[nodes[i]] = pid << 32 | i`` for every prefix of a path, in one C loop."""
    if nodes:
        first = pid << 32
        at.update(zip(nodes, range(first, first + len(nodes)), strict=True))


class PacketChains:
    """Memoised packet-prefix chains of one buffer, walked one prefix at a time: the
    reference the walks' ``KnownChains`` (``app.core.framing.chains``) is tested against,
    and the chains of the walks with their shortcuts off.

    A length prefix at ``x`` says where the next one is (``x + 2 + length``), whatever
    message ``x`` belongs to; so the prefixes of a buffer form chains that candidate
    message starts share. Each prefix position is read once (it joins one path);
    ``run(x)`` is how many accepted lengths follow in a row from ``x`` and ``jump(x, n)``
    the position after ``n`` of them, both without re-reading bytes. Whether a message
    at ``q`` validates is then ``run(q + 2) >= count(q)``: constant work per candidate,
    however far ahead it would have failed. ``steps`` counts prefixes read plus path
    hops (the decoder's work counter).
    """

    def __init__(self, buf, accept=STRICT_LENGTHS, limit: int | None = None):
        self.buf = buf
        self.accept = accept
        self.limit = len(buf) if limit is None else limit
        self._at: dict[int, int] = {}  # prefix position -> path << 32 | index on it
        self._nodes: list[list[int]] = []
        self._next: list[tuple[int, int] | None] = []
        self._run0: list[int] = []
        self._stop: list[int] = []
        self.steps = 0

    def known(self, y: int) -> bool:
        """Whether the chain from the prefix at ``y`` is already walked (``run``, ``jump``
        and ``message_end`` there cost no step)."""
        return y in self._at

    def joined(self, y: int) -> bool:
        """Whether a pass told that the chain from ``y`` joins a walked one
        (``KnownChains``); here nothing is told."""
        return False

    def _where(self, x: int) -> tuple[int, int]:
        got = self._at.get(x)
        if got is not None:
            return got >> 32, got & 0xFFFFFFFF
        buf, limit, accept, at = self.buf, self.limit, self.accept, self._at
        pid = len(self._nodes)
        nodes: list[int] = []
        cont = None
        stop = _INVALID
        y = x
        at_get, append = at.get, nodes.append
        # A walk's positions only grow, so it never meets its own prefixes: they are
        # recorded at once when it ends (``_record``), not one dict store a step.
        while True:
            hit = at_get(y)
            if hit is not None:
                cont = hit >> 32, hit & 0xFFFFFFFF
                break
            append(y)
            if y + 2 > limit:
                stop = _NEED_MORE
                break
            length = buf[y] << 8 | buf[y + 1]
            if length not in accept:
                break
            y += 2 + length
        _record(at, nodes, pid)
        self.steps += len(nodes)
        self._add_path(nodes, cont, stop)
        return pid, 0

    def _add_path(self, nodes, cont: tuple[int, int] | None, stop: int) -> tuple[int, int]:
        """Keep a walk's path (its positions; the path and index it continues on, or None
        and why it stops there): its run from the first position and its stop."""
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
        return run0, stop

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
            nodes = self._nodes[pid]  # a list, or a memoryview of numbered positions (KnownChains)
            if i + n < len(nodes):
                return int(nodes[i + n])
            n -= len(nodes) - i
            pid, i = self._next[pid]
            self.steps += 1

    def message_end(self, q: int, limit: int | None = None, max_count: int = 0xFFFF) -> int:
        """End of the message at ``q`` whose packets all have accepted lengths, or a code."""
        limit = self.limit if limit is None else limit
        if q + 2 > self.limit:
            return _NEED_MORE
        buf = self.buf
        n = buf[q] << 8 | buf[q + 1]
        if n == 0 or n > max_count:
            return _INVALID
        j = q + 2
        told = self._told(j, n)
        if type(told) is int:
            return told
        j, n = told
        pid, i = self._where(j)
        if self._run0[pid] - i >= n:
            e = self.jump(j, n)
            return e if e <= limit else _NEED_MORE
        return self._stop[pid]

    def _told(self, j: int, n: int):
        """What vectorised passes told of the chain from ``j`` (``KnownChains``): (the
        prefix and count to ask instead), or the answer (a code); here nothing."""
        return j, n

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

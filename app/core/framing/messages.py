"""The message walker: a Kite message is ``[u16 count]`` then ``count`` packets, each
``[u16 length][body]``; walking, validating and describing one, and the bad regions
around them."""

from __future__ import annotations

import bisect

import numpy as np

from app.core.framing.common import (
    _INVALID,
    _NEED_MORE,
    BAD_RAW_CAP,
    KNOWN_SET,
    LENIENT_MAX_PACKET,
    RUN_AFTER,
    BadPacket,
    same_length_run,
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


RUN_BLOCK_BITS = 12  # PacketChains keeps its joined runs per block of 4 KiB


def _record(at: dict, nodes: list, pid: int) -> None:
    """``at[nodes[i]] = pid << 32 | i`` for every prefix of a path, in one C loop."""
    if nodes:
        first = pid << 32
        at.update(zip(nodes, range(first, first + len(nodes)), strict=True))


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

    def __init__(self, buf, accept=STRICT_LENGTHS, limit: int | None = None, strided: bool = True):
        self.buf = buf
        self.strided = strided  # a run of equal lengths joined at once (off: one step per prefix)
        self.accept = accept
        self.limit = len(buf) if limit is None else limit
        self._at: dict[int, int] = {}  # prefix position -> path << 32 | index on it
        # Runs of equal lengths joined at once are paths of their own, kept as ranges (not a
        # dict entry per prefix): (step, first position % step, block) -> sorted starts, and
        # the (end, path) of each, for the runs holding a prefix in that RUN_BLOCK-byte
        # block. A prefix is in the dict or in one run, never both, so the runs of one key
        # are disjoint and one list holds at most RUN_BLOCK / step + 1 of them: recording a
        # run costs a bounded insertion per block it crosses (counted in ``steps``), in
        # whatever order runs are found. (One sorted list per (step, phase) cost O(runs) a
        # run found before others already kept: quadratic bookkeeping on crafted input.)
        self._runs: dict[tuple[int, int, int], tuple[list[int], list[tuple[int, int]]]] = {}
        self._nodes: list[list[int] | range] = []
        self._next: list[tuple[int, int] | None] = []
        self._run0: list[int] = []
        self._stop: list[int] = []
        # The pieces of one walk that joined runs are consecutive paths; each holds (its
        # first path, the pieces' cumulative lengths), so ``jump`` crosses a walk in one
        # bisection however many runs it joined (one hop per walk, as without runs).
        self._group: list[tuple[int, list[int]] | None] = []
        self._a: np.ndarray | None = None  # the buffer as uint8, once a run of equal lengths is walked
        self.steps = 0

    def _in_run(self, y: int) -> int | None:
        """``path << 32 | index`` of the prefix at ``y`` when a joined run holds it, else None."""
        if y + 2 > self.limit:
            return None
        step = 2 + (self.buf[y] << 8 | self.buf[y + 1])
        got = self._runs.get((step, y % step, y >> RUN_BLOCK_BITS))
        if got is None:
            return None
        starts, runs = got
        k = bisect.bisect_right(starts, y) - 1
        if k < 0:
            return None
        end, pid = runs[k]
        return pid << 32 | (y - starts[k]) // step if y < end else None

    def known(self, y: int) -> bool:
        """Whether the chain from the prefix at ``y`` is already walked (``run``, ``jump``
        and ``message_end`` there cost no step): a scalar walk of a message whose first
        prefix is on a path would only repeat the walk that put it there."""
        return y in self._at or (bool(self._runs) and self._in_run(y) is not None)

    _seen = known  # (the chains' own name for it)

    def _where(self, x: int) -> tuple[int, int]:
        got = self._at.get(x)
        if got is None and self._runs:
            got = self._in_run(x)
        if got is not None:
            return got >> 32, got & 0xFFFFFFFF
        buf, limit, accept, at, strided = self.buf, self.limit, self.accept, self._at, self.strided
        pid0 = pid = len(self._nodes)
        pieces: list[list[int] | range] = []  # the walk's paths in order: prefixes walked one by one, runs
        nodes: list[int] = []
        cont = None
        stop = _INVALID
        y = x
        same = last = 0
        walked = 0
        runs = self._runs
        at_get, append = at.get, nodes.append
        # A walk's positions only grow, so it never meets its own prefixes: each piece's
        # are recorded at once when it closes (``_record``), not one dict store a step.
        while True:
            hit = at_get(y)
            if hit is None and runs:
                hit = self._in_run(y)
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
            if length != last:
                last, same = length, 0
                continue
            same += 1
            if same >= RUN_AFTER and strided:
                run = self._same_run(y, length)
                same = 0
                if run:
                    # the run is a path of its own (a range), between this walk's pieces
                    _record(at, nodes, pid)
                    pieces.append(nodes)
                    self._add_run(run, pid + 1)
                    pieces.append(run)
                    walked += len(nodes) + len(run)
                    nodes, pid = [], pid + 2
                    append = nodes.append
                    y = run.stop
        _record(at, nodes, pid)
        self.steps += walked + len(nodes)
        if not pieces:  # no run joined (the usual walk): one path
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
            self._group.append(None)
            return pid0, 0
        if nodes:
            pieces.append(nodes)
        if cont is None:
            run0, stop_ = len(pieces[-1]) - 1, stop
        else:
            cp, ci = cont
            run0, stop_ = len(pieces[-1]) + self._run0[cp] - ci, self._stop[cp]
        # the walk's pieces are consecutive paths pid0, pid0 + 1, …: each continues at the next
        run0s = [run0]
        for piece in reversed(pieces[:-1]):
            run0s.append(len(piece) + run0s[-1])
        run0s.reverse()
        offsets = [0]
        for piece in pieces:
            offsets.append(offsets[-1] + len(piece))
        group = (pid0, offsets)
        for k, piece in enumerate(pieces):
            self._nodes.append(piece)
            self._next.append(cont if k == len(pieces) - 1 else (pid0 + k + 1, 0))
            self._run0.append(run0s[k])
            self._stop.append(stop_)
            self._group.append(group)
        return pid0, 0

    def _same_run(self, y: int, length: int) -> range:
        """The run of prefixes of ``length`` from ``y`` (each accepted, so each leads to
        the next), found by strided compares, up to the first prefix already on a path
        (the walk loop joins that one); empty when shorter than 2."""
        if self._a is None:
            self._a = np.frombuffer(self.buf, dtype=np.uint8)
        step = 2 + length
        k = same_length_run(self._a, y, step, length, self.limit, 1 << 30)
        if k < 2:
            return range(y, y)
        # Prefixes of this run already on a path are a tail of it: an earlier walk that
        # entered the run went on to its end (or to a path that did), so the first one
        # is found by bisection.
        lo, hi = 0, k  # prefix lo is not seen; the first seen one is at most hi
        if self._seen(y):
            return range(y, y)
        if not self._seen(y + (k - 1) * step):
            return range(y, y + k * step, step)
        hi = k - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._seen(y + mid * step):
                hi = mid
            else:
                lo = mid
        return range(y, y + hi * step, step)

    def _add_run(self, run: range, pid: int) -> None:
        step, phase = run.step, run.start % run.step
        for block in range(run.start >> RUN_BLOCK_BITS, (run[-1] >> RUN_BLOCK_BITS) + 1):
            starts, runs = self._runs.setdefault((step, phase, block), ([], []))
            k = bisect.bisect_left(starts, run.start)
            starts.insert(k, run.start)
            runs.insert(k, (run.stop, pid))
            self.steps += 1

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
            group = self._group[pid]
            if group is None:
                n -= len(nodes) - i
                pid, i = self._next[pid]
            else:  # the rest of a walk with runs: its piece by bisection, else past its end
                g0, offsets = group
                at = offsets[pid - g0] + i + n
                if at < offsets[-1]:
                    k = bisect.bisect_right(offsets, at) - 1
                    return self._nodes[g0 + k][at - offsets[k]]
                n = at - offsets[-1]
                pid, i = self._next[g0 + len(offsets) - 2]
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

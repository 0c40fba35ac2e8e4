"""Chains of known-length packets followed by the standard library's regular-expression
engine: C speed instead of a Python step per packet, with no compiled code of our own.

A packet of a known length ``L`` is its big-endian u16 prefix then ``L`` bytes. The
pattern has one alternative per known length, grouped by the prefix's first byte, so at
any position at most one alternative matches and the engine never tries another after
one has matched; repetitions are possessive (``*+``, ``{n}+``), so a failed repetition
gives nothing back. Following a chain this way costs ~20-25 ns a packet (a Python loop
over the same prefixes costs 150-400 ns).

A match is bounded by ``end`` (the ``endpos`` of ``re``): a packet whose body would
cross it is not matched, as a walk that accepts only whole packets below ``end``.
"""

from __future__ import annotations

import re
from itertools import islice

import numpy as np

from app.core import protocol
from app.core.framing.common import known_lengths, same_length_run, u16_every


def _packet_pattern(lengths) -> bytes:
    """One packet of any of ``lengths``: ``prefix high byte (prefix low byte body | ...) | ...``."""
    by_high: dict[int, list[int]] = {}
    for length in sorted(lengths):
        by_high.setdefault(length >> 8, []).append(length)
    alternatives = []
    for high, group in by_high.items():
        inner = b"|".join(re.escape(bytes([length & 0xFF])) + b".{%d}" % length for length in group)
        alternatives.append(re.escape(bytes([high])) + b"(?:" + inner + b")")
    return b"(?:" + b"|".join(alternatives) + b")"


_PACKET = _packet_pattern(protocol.KNOWN_LENGTHS)
CHAIN = re.compile(_PACKET + b"*+", re.DOTALL)  # the longest run of whole known packets
# The same packet with its prefix captured (a lookahead: one group whatever the length),
# so ``findall`` returns the prefixes only, never copies of the bodies.
_PREFIXED = re.compile(b"(?=(..))" + _PACKET, re.DOTALL)
_EXACT: dict[int, re.Pattern] = {}  # 2**k -> exactly that many packets


def _exact(k: int) -> re.Pattern:
    got = _EXACT.get(k)
    if got is None:
        got = _EXACT[k] = re.compile(_PACKET + b"{%d}+" % (1 << k), re.DOTALL)
    return got


def exact(k: int) -> re.Pattern:
    """The compiled pattern of exactly ``2**k`` whole known-length packets in a row
    (possessive: ``match(buf, x, end)`` is None when the run from ``x`` is shorter)."""
    return _exact(k)


def chain_end(buf, x: int, end: int) -> int:
    """The end of the longest run of whole known-length packets from ``x`` below ``end``
    (``x`` itself when the prefix there is not one)."""
    return CHAIN.match(buf, x, end).end()


def chain_lengths(buf, x: int, end: int) -> np.ndarray:
    """The lengths (int64) of the run of whole known-length packets from ``x`` below
    ``end``, in order (the run ``chain_end`` measures)."""
    stop = CHAIN.match(buf, x, end).end()
    if stop == x:
        return np.zeros(0, dtype=np.int64)
    # Inside [x, stop) the packets follow one another, so each search matches where the
    # last one ended: the matches are exactly the run's packets.
    prefixes = b"".join(_PREFIXED.findall(buf, x, stop))
    return np.frombuffer(prefixes, dtype=">u2").astype(np.int64)


def run_lengths(buf, x: int, stop: int) -> np.ndarray:
    """The lengths (int64) of the packets in ``[x, stop)``, which must be a run of whole
    known-length packets (as ``chain_end`` or ``jump`` measure one), in order."""
    if stop <= x:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(b"".join(_PREFIXED.findall(buf, x, stop)), dtype=">u2").astype(np.int64)


def jump(buf, x: int, n: int, end: int) -> int:
    """The position after exactly ``n`` whole known-length packets from ``x`` below
    ``end``, or -1 when the run stops before that (at most 16 matches, each in C)."""
    k = 0
    while n:
        if n & 1:
            m = _exact(k).match(buf, x, end)
            if m is None:
                return -1
            x = m.end()
        n >>= 1
        k += 1
    return x


RUN_MATCHED = 256  # packets of a run of equal ones run_prefixes matches before strided compares
_RUNS: dict[int, re.Pattern] = {}  # length -> any number of packets of that length


def same_run_end(buf, x: int, end: int, length: int) -> int:
    """The end of the run of whole packets of ``length`` (a known one) from ``x`` below
    ``end`` (``x`` itself when the packet there is not one of them)."""
    got = _RUNS.get(length)
    if got is None:
        pattern = b"(?:" + re.escape(length.to_bytes(2, "big")) + b".{%d})*+" % length
        got = _RUNS[length] = re.compile(pattern, re.DOTALL)
    return got.match(buf, x, end).end()


LANE_K = 6
LANE = 1 << LANE_K  # packets per lane of the lockstep reads (run_prefixes, split's _walk_long)
# a lane's span when its LANE packets are all of one length: (length, their prefixes' high, low bytes)
EQUAL_SPAN = {LANE * (2 + n): (n, bytes([n >> 8]) * LANE, bytes([n & 0xFF]) * LANE) for n in protocol.KNOWN_LENGTHS}


def equal_lane(buf: bytes, j: int, stop: int) -> int | None:
    """The packet length when the lane ``buf[j:stop]`` (``LANE`` whole known packets, as
    ``block`` matched them) is ``LANE`` packets of one length, else None. Its span tells
    which length it can be (other lengths may span as much: the strided compares of the
    prefixes decide); a lane of mixed lengths (most lanes, where runs are short) costs one
    dict look-up."""
    equal = EQUAL_SPAN.get(stop - j)
    if equal is None:
        return None
    length, high, low = equal
    step = 2 + length
    if buf[j:stop:step] == high and buf[j + 1 : stop : step] == low:
        return length
    return None


SWAPPED_LANES = 2048  # lanes up to which lane_prefixes reads whole u16s (measured: even at ~3000)


def lane_prefixes(a: np.ndarray, lanes) -> np.ndarray:
    """The ``LANE + 1`` prefix positions (int64, row s: every lane's prefix s; the last
    row: where each lane ends) of lanes each known to hold ``LANE`` whole packets from
    its prefix position (``a``: the buffer as uint8), all lanes one packet a numpy step."""
    grid = np.empty((LANE + 1, len(lanes)), dtype=np.int64)
    grid[0] = lanes
    if len(lanes) <= SWAPPED_LANES:
        # Each prefix read whole from a big-endian u16 view of the bytes (no copy): two
        # numpy calls a step instead of four, ~30% less for a few hundred lanes; a
        # byte-swapping gather costs more per element, so many lanes read bytes.
        u16 = np.ndarray((a.size - 1,), dtype=">u2", buffer=a, strides=(1,))
        for s in range(LANE):
            cur, nxt = grid[s], grid[s + 1]
            np.add(cur, u16[cur], out=nxt)
            nxt += 2
        return grid
    for s in range(LANE):
        cur, nxt = grid[s], grid[s + 1]
        np.multiply(a[cur], 256, out=nxt, dtype=np.int64)
        nxt += a[cur + 1]
        nxt += cur
        nxt += 2
    return grid


# Where a run's packets are small, its prefixes are read off the positions that hold a
# known length instead of matched: one u16, known-length and nonzero pass over the bytes
# (~3 ns a byte) and one compare per position found, against the engine's ~45 ns and
# the lanes' ~12 ns a packet. Taken once a batch of lanes spans at most DENSE_SPAN bytes
# a packet (packets of 8 and 12 bytes, as Kite's LTP and index ones), a window at a time.
DENSE_SPAN = 12
# bytes of a window of known-length positions: the first one, doubled while the run goes
# on up to the last (wider ones share a window's fixed cost; a run stopping early in its
# first one reads at most a few times the bytes taken before it)
DENSE_WINDOWS = (1 << 15, 1 << 18)
# A known-length position off the run between two of its prefixes (a count, a body's
# bytes) costs a Python step (~5 us, ~100 packets matched); past one per DENSE_BREAK
# packets taken (and DENSE_SLACK steps) the window stops and the engine goes on.
DENSE_BREAK = 64
DENSE_SLACK = 16
STOPS, GOES_ON, GIVEN_UP = 0, 1, 2  # known_steps: how its run ends


def known_steps(a: np.ndarray, j: int, end: int, window: int):
    """The run of whole known-length packets from ``j`` below ``end`` (``a``: the buffer
    as uint8) over at most ``window`` bytes, read off the positions there that hold
    a known length: (their prefix positions (int64), where the run goes on, ``STOPS``
    (it stops there), ``GOES_ON`` (its next prefix lies past the window) or ``GIVEN_UP``
    (the window met too many known lengths off the run, ``DENSE_BREAK``)).

    A prefix's next one is the next known-length position in a run of small packets
    with plain bodies, so one compare of every position's next prefix with the next
    position found checks them all; where they differ (a count or body bytes reading
    as a known length), the next prefix is looked up among the positions and the run
    goes on from it."""
    top = min(j + window, end - 1)  # a prefix at a position below top is whole (2 bytes)
    if top <= j:
        return np.zeros(0, dtype=np.int64), j, GIVEN_UP
    u = u16_every(a, j, top)
    at = np.flatnonzero(known_lengths(u))  # relative to j, ascending
    nxt = at + 2
    nxt += u[at]  # each one's next prefix
    fits = nxt <= end - j  # its body whole below end
    # where a run does not simply go on to the next position found (a packet cut by end
    # does not: its next prefix lies past every position read)
    off = np.flatnonzero(nxt[:-1] != at[1:])
    off = np.append(off, at.size - 1)
    parts = []
    i = 0 if at.size and at[0] == 0 else -1  # (j holds no known length: no packet)
    breaks = taken = 0
    while i >= 0:
        b = int(off[np.searchsorted(off, i)])
        if not fits[b]:  # the packet at b is cut by end: the run stops before it
            parts.append(at[i:b])
            return _absolute(parts, j), j + int(at[b]), STOPS
        parts.append(at[i : b + 1])
        taken += b + 1 - i
        t = int(nxt[b])
        if t >= top - j:  # past the positions read: the caller goes on there
            return _absolute(parts, j), j + t, GOES_ON
        k = int(np.searchsorted(at, t))
        if k == at.size or at[k] != t:  # no known length there: the run stops
            return _absolute(parts, j), j + t, STOPS
        breaks += 1
        if breaks > DENSE_SLACK + taken // DENSE_BREAK:
            return _absolute(parts, j), j + t, GIVEN_UP
        i = k
    return np.zeros(0, dtype=np.int64), j, GIVEN_UP


def _absolute(parts: list, j: int) -> np.ndarray:
    got = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return got + j


def _positions(buf, j: int, stop: int) -> np.ndarray:
    """The prefix positions (int64) of the run of whole known packets ``[j, stop)``."""
    lengths = run_lengths(buf, j, stop)
    at = np.empty(lengths.size, dtype=np.int64)
    if lengths.size:
        at[0] = j
        np.cumsum(lengths[:-1] + 2, out=at[1:])
        at[1:] += j
    return at


# Lanes below which run_prefixes lists their packets with findall (~100 ns a packet)
# rather than reads them in lockstep (128 numpy calls, ~0.3 ms whatever the lanes: a
# walk's first segments, and every one that turns to known_steps after a batch).
FEW_LANES = 16
# A lane (``LANE`` whole known packets), or, where no lane starts, all the rest (``.+`` in
# DOTALL takes it in one step; group 1 tells it apart): every position matches, so
# ``finditer`` lists a run's lanes back to back, in C, and never searches past its end.
_LANES = re.compile(_PACKET + b"{%d}+|(.+)" % LANE, re.DOTALL)
_END = re.Match.end
FIRST_BATCH = 4  # lanes asked of ``finditer`` at first and after a run of equal packets ...
MAX_BATCH = 4096  # ... doubled up to this while none of its lanes is one of equal packets
# a lane's span -> the length its packets have if they are all equal (0: no length spans it)
_EQUAL_BY_SPAN = np.zeros(LANE * (2 + protocol.MAX_PACKET_LENGTH) + 1, dtype=np.int32)
for _span, (_length, _high, _low) in EQUAL_SPAN.items():
    _EQUAL_BY_SPAN[_span] = _length


def run_prefixes(a: np.ndarray, buf, x: int, end: int) -> np.ndarray:
    """The prefix positions (int64) of the longest run of whole known-length packets from
    ``x`` below ``end`` (``a``: the buffer as uint8), in order.

    The engine lists the run's lanes (``LANE`` packets each) a batch at a time
    (``finditer``: no Python step per lane); the prefixes inside the lanes are read in
    lockstep, one numpy step per packet index over all lanes at once; the last few
    packets are listed by ``findall``. A lane of ``LANE`` equal packets starts a run of
    them, a strided range (its end matched by the engine, then strided compares); the
    lanes matched after it in its batch are dropped, and batches start small again
    after one (they double while none comes, so the lanes dropped are at most about as
    many as the lanes kept). Once a batch's packets are small (``DENSE_SPAN``), the rest
    of the run is read off the known-length positions (``known_steps``), unless they
    hold too many off the run.
    About 40 ns a packet (small ones ~30), against ~100 ns listing them all with ``findall``.
    """
    parts: list = []  # in order: arrays of positions, or [first lane, end lane]
    lanes: list[np.ndarray] = []  # the lanes' first prefixes, a batch an array
    taken = 0  # lanes in ``lanes``
    j = x
    batch = FIRST_BATCH
    dense = 0  # 1: small packets, taken by known_steps; -1: it gave up in this run
    window = DENSE_WINDOWS[0]
    while j + 2 <= end:
        if dense > 0:
            at, j, how = known_steps(a, j, end, window)
            if at.size:
                parts.append(at)
            if how == STOPS:
                break
            if how == GIVEN_UP:  # the engine goes on (and takes the rest of this run)
                dense = -1
                batch = FIRST_BATCH
            window = min(2 * window, DENSE_WINDOWS[1])
            continue
        found = list(islice(_LANES.finditer(buf, j, end), batch))
        rest = found[-1].lastindex is not None  # no lane from its start: the run's last packets
        if rest:
            found.pop()
        k = len(found)
        if k:
            stops = np.fromiter(map(_END, found), dtype=np.int64, count=k)
            starts = np.empty(k, dtype=np.int64)
            starts[0] = j
            starts[1:] = stops[:-1]
            equal = None
            for i in np.flatnonzero(_EQUAL_BY_SPAN[stops - starts]).tolist():
                length = equal_lane(buf, int(starts[i]), int(stops[i]))
                if length is not None:
                    equal = i
                    break
            keep = k if equal is None else equal
            if keep:
                if parts and type(parts[-1]) is list:
                    parts[-1][1] += keep
                    parts[-1][3] = int(stops[keep - 1])
                else:
                    parts.append([taken, taken + keep, j, int(stops[keep - 1])])
                lanes.append(starts[:keep])
                taken += keep
            if equal is not None:
                # LANE packets of one length: the run of them goes on past the lane
                step = 2 + length
                stop = int(stops[equal])
                # the engine takes a run's first RUN_MATCHED packets; a longer run's end
                # is found by strided compares (~3 ns a packet, the engine ~30)
                run_end = same_run_end(buf, stop, min(end, stop + RUN_MATCHED * step), length)
                if run_end - stop == RUN_MATCHED * step:
                    run_end += step * same_length_run(a, run_end, step, length, end - length, end)
                parts.append(np.arange(int(starts[equal]), run_end, step, dtype=np.int64))
                j = run_end
                batch = FIRST_BATCH
                continue
            j = int(stops[-1])
            if not dense and j - int(starts[0]) <= DENSE_SPAN * LANE * k:  # small packets
                dense = 1
        if rest or k < batch:
            break
        batch = min(2 * batch, MAX_BATCH)
    tail = _positions(buf, j, CHAIN.match(buf, j, end).end())
    if tail.size:
        parts.append(tail)
    if not parts:
        return np.zeros(0, dtype=np.int64)
    if taken < FEW_LANES:  # (the lanes' byte spans: [first lane, end lane, start, stop])
        parts = [_positions(buf, p[2], p[3]) if type(p) is list else p for p in parts]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    grid = lane_prefixes(a, lanes[0] if len(lanes) == 1 else np.concatenate(lanes))
    sizes = [LANE * (p[1] - p[0]) if type(p) is list else p.size for p in parts]
    out = np.empty(sum(sizes), dtype=np.int64)
    at = 0
    for p, size in zip(parts, sizes, strict=True):
        if type(p) is list:  # lane by lane: each lane's LANE prefixes (a column of the grid)
            out[at : at + size].reshape(-1, LANE)[:] = grid[:LANE, p[0] : p[1]].T
        else:
            out[at : at + size] = p
        at += size
    return out

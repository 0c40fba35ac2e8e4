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
from app.core.framing.common import same_length_run


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
PACKET = re.compile(_PACKET, re.DOTALL)
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
    many as the lanes kept).
    About 40 ns a packet, against ~100 ns listing them all with ``findall``.
    """
    parts: list = []  # in order: arrays of positions, or [first lane, end lane]
    lanes: list[np.ndarray] = []  # the lanes' first prefixes, a batch an array
    taken = 0  # lanes in ``lanes``
    j = x
    batch = FIRST_BATCH
    while j + 2 <= end:
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
                else:
                    parts.append([taken, taken + keep])
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
        if rest or k < batch:
            break
        batch = min(2 * batch, MAX_BATCH)
    tail = run_lengths(buf, j, CHAIN.match(buf, j, end).end())
    if tail.size:
        at = np.empty(tail.size, dtype=np.int64)
        at[0] = j
        np.cumsum(tail[:-1] + 2, out=at[1:])
        at[1:] += j
        parts.append(at)
    if not parts:
        return np.zeros(0, dtype=np.int64)
    if not lanes:
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

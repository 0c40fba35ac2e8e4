"""``split_messages``' long-message walk as it was before ``_walk_long`` (one Python step
per packet, strided runs of equal packets above 4,096): the differential tests' oracle.
Test support, not product (app/ never imports it)."""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import numpy as np

from app.core.framing import split
from app.core.framing.common import RUN_AFTER, same_length_run
from app.core.framing.split import _u16

_MANY = 4096  # packets in a message above which _walk_one looks for runs of equal ones
_LONG_RUN = 32  # packets still to walk before _walk_one looks for a run of equal ones


def _walk_one(payload: np.ndarray, c: int, e: int, count: int, k: int):
    """Packets ``k..count-1`` of one message whose packet ``k`` prefix is at ``c``, as
    ``split_messages``' vectorised step would find them: (packets walked, cursor, fault
    position or -1, fault length or -1 when its prefix is cut off, body positions, lengths
    as int64 arrays)."""
    buf = payload[c:e].tobytes()
    base, limit = c, len(buf)
    j = 0
    at: list[int] = []  # prefixes walked one by one since the last run (relative; lengths read after, numpy)
    append = at.append
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (positions, lengths): walked ones and runs, in order

    def walked():
        prefix = np.asarray(at, dtype=np.int64)
        return prefix + (base + 2), _u16(payload, prefix + base)

    def done(*state):
        if at:
            parts.append(walked())
        if not parts:
            return (*state, np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(parts) == 1:
            return (*state, *parts[0])
        return (*state, np.concatenate([p for p, _ in parts]), np.concatenate([q for _, q in parts]))

    runs = count > _MANY  # runs are looked for in messages longer than Kite's
    same = last = 0
    while k < count:
        if j + 2 > limit:
            return done(k, base + j, base + j, -1)
        length = buf[j] << 8 | buf[j + 1]
        after = j + 2 + length
        if after > limit:
            return done(k, base + j, base + j, length)
        append(j)
        j = after
        k += 1
        if length != last:
            last, same = length, 0
            continue
        same += 1
        if same >= RUN_AFTER and runs and count - k > _LONG_RUN:
            # a run of equal packets (one of 65,535 tiny ones, say): strided compares, whole bodies only
            step = 2 + length
            r = same_length_run(payload, c + j, step, length, c + limit, min(count - k, (limit - j) // step))
            if r:
                if at:
                    parts.append(walked())
                    at = []
                    append = at.append
                parts.append((np.arange(base + j + 2, base + j + 2 + r * step, step, dtype=np.int64),
                              np.full(r, length, dtype=np.int64)))
            j += r * step
            k += r
            same = 0
    return done(k, base + j, -1, 0)


def _walk_each(payload: np.ndarray, items):
    """``_walk_long``'s answers, one ``_walk_one`` per message."""
    out = []
    for c, e, count, k in items:
        k_end, cursor, fail, flen, pos, lengths = _walk_one(payload, c, e, count, k)
        out.append((k_end, cursor, fail, flen, [(pos, lengths)] if pos.size else []))
    return out


@contextmanager
def old_long_walk():
    """``split_messages`` walks its long messages one by one, packet by packet, as before."""
    with mock.patch.object(split, "_walk_long", _walk_each):
        yield

"""Array passes of the raw walker: message boundaries and short resyncs decided for a
window of positions at once (numpy) instead of one Python step per message.

For every position of a window the strict status of a message starting there (its end,
``_NEED_MORE`` or ``_INVALID``) is found in one vectorised sweep over the candidate
starts (``strict_status``); from it each place the walk can be (a message start or a
message end) gets its next step exactly as ``RawReader._walk_raw`` would take it: a
message that validates is accepted, and a byte where none does starts a bad region up
to the next message when that message is a few bytes on and is followed by another
(the usual damage: a junk byte between messages); zero bytes before a message are
heartbeats. The walk's path through those steps is taken a run at a time (a step that
lands on the next place needs no look-up). Anything else (long resyncs, lenient
messages, text frames, decisions that need bytes past the window or the chunk) is
*undecided*: the walk stops there and ``_walk_raw`` takes that one step itself.
"""

from __future__ import annotations

import functools

import numpy as np

from app.core.framing.common import (
    _INVALID,
    _NEED_MORE,
    BAD_RAW_CAP,
    KNOWN_MASK,
    KNOWN_SET,
    LENIENT_MASK,
    LENIENT_MAX_COUNT,
    RawSlices,
    byte_spans,
    join_spans,
    known_lengths,
    reason_kind,
    u16_every,
    write_texts,
)
from app.core.framing.messages import _describe_fault, _region_reason
from app.core.framing.resync import FOLLOW_WINDOW, AnchorSearch
from app.core.framing.split import _u16

WINDOW = 1 << 18  # positions decided per array pass, at most ...
SPARSE_WINDOW = 1 << 20  # ... unless its places (message starts and ends) were sparse:
SPARSE = 32  # fewer than one per this many bytes (the pass's fixed cost dominates, not its arrays)
MIN_WINDOW = 1 << 12  # ... at least (a pass that decided most of its window doubles the next)
CAP = 16  # packets of every candidate walked by numpy; longer messages ask PacketChains
SHORT_RESYNC = 5  # a bad region is decided here when the next message starts this close (as _walk_raw)
_JSON = 0x7B  # "{": a text frame; its reason is left to _describe_fault
ZERO_RUN = 1 << 16  # _walk_raw's look-ahead over a run of zero bytes
PLACE_ROUNDS = 4  # rounds of places added where decided steps land
FEW_CHAINS = 16  # chains of a batch walked one by one once no more are left
LENIENT_BATCH = 8  # lenient checks of a pass pre-walked together (numpy) rather than one by one
_UNDECIDED = -9
LATE_ENDS = 32  # bytes of a pass per message end out of order (inside other messages) sorted apart, at least
NEAR = 4  # positions after a message's end looked at before the window's valid starts are searched
U16_PAST = 1 << 12  # bytes past a window whose u16 strict_status reads at once (candidates' next prefixes)
PROBE = 16  # bytes looked at for the end of a run of zeros before a pass over the window
_BIG = int(np.iinfo(np.int64).max)  # "none" in position arrays (np.iinfo per call costs ~10 us)
_I32 = 1 << 31  # buffers shorter than this keep a pass's strict status as int32


_KNOWN = tuple(sorted(KNOWN_SET))  # compared one by one: cheaper than a 64 KiB table's gather per position
assert len({n & 0xFF for n in _KNOWN}) == len(_KNOWN)  # (strict_status tells them by their low byte)


def strict_status(scan, lo: int, hi: int):
    """(status, valid, need, faults, u16): the status of a message starting at each position
    of [lo, hi), where it validates (``valid``, in order), where it may (``need``) and
    what the candidates found invalid showed.

    status is the end of a message whose packets all have known lengths (as
    ``PacketChains.message_end``), ``_NEED_MORE`` or ``_INVALID``. Only candidate starts
    (count > 0, first length known) and the buffer's last 3 bytes can be other than
    ``_INVALID``. ``faults`` (None when there is none) is (the candidates walked: their
    places in the window, in order; None when none was found invalid, else at each
    candidate found invalid here ``good << 17 | bad length`` (the packets before its
    first unknown length, that length), else -1: ask ``_describe_fault``): per
    candidate, not per position (a window's array of the candidates is a fraction of
    its bytes). Where the first round is taken at the byte level (dense junk), a
    candidate whose second prefix is an unknown length is not walked: its fault is
    ``1 << 17 | that length``. Work: the window's bytes
    plus one step per candidate and packet walked, at most ``CAP`` per candidate;
    longer candidates go to the memoised chains (linear whatever the input). ``u16``
    is the u16 at each position from ``lo`` (None when the window is the buffer's last
    3 bytes): where a candidate's count and first length are inside the buffer.
    """
    a, limit = scan.a, scan.limit
    n = hi - lo
    # int32 where every end fits (a chunk of less than 2 GiB): a window-wide array written
    # once per pass, and read only at places; what leaves the plan is read as int64
    status = np.full(n, _INVALID, dtype=np.int32 if limit < _I32 else np.int64)
    faults = u = None
    dropped = False  # candidates found invalid at the byte level (not walked)
    cand = cst = np.zeros(0, dtype=np.int64)
    top = min(hi, limit - 3)  # a candidate's count and first length are inside the buffer
    if top > lo:
        w = top - lo
        # the u16 at each position (w + 2 of them), and a little past: the candidates'
        # next prefixes are read from it while they lie there (one gather, not two)
        u = u16_every(a, lo, min(top + 2 + U16_PAST, limit - 1))
        first = u[2 : w + 2]
        dropped = _first_round_pays(u, w)
        if dropped:
            # The first round at the byte level: a candidate whose second prefix is an
            # unknown length is invalid, and is no candidate here (not walked; reasons()
            # reads its fault, packet 1's length, itself). Kept: one-packet messages,
            # second prefixes known, and those whose may lie past u (or the buffer).
            # Whether the u16 at each position is a known length, as far as a second
            # prefix can lie (past u: not known; those candidates are kept below):
            k = _known_to(u, w + 4 + _KNOWN[-1])
            known = k[2 : w + 2] & (u[:w] != 0)
            go = u[:w] == 1
            step0 = np.empty(w, dtype=bool)
            low = a[lo + 3 : top + 3]  # each first length's low byte: the known lengths' differ, and
            for length in _KNOWN:  # go keeps known first lengths only (a compare of bytes, not u16)
                np.equal(low, length & 0xFF, out=step0)
                step0 &= k[4 + length : 4 + length + w]
                go |= step0
            go &= known
            edge = max(u.size - 4 - _KNOWN[-1], 0)
            if edge < w:
                go[edge:] = known[edge:]
        else:
            go = known_lengths(first)
            go &= u[:w] != 0
        scan.scanned += w
        cand = np.flatnonzero(go)
        count = u.take(cand).astype(np.int64)
        cst = np.full(cand.size, _INVALID, dtype=np.int64)  # each candidate's status
        # the candidates still walked (their index in cand), their next prefix, packets left
        ci = np.arange(cand.size)
        xs = cand + (lo + 4) + first.take(cand)
        ls = count - 1
        u_end = lo + u.size  # prefixes before this are read from u
        for step in range(CAP):
            if ci.size <= FEW_CHAINS:
                # a few left (the longest): a plain walk of each is cheaper than numpy calls
                if faults is None and ci.size:
                    faults = np.full(cand.size, -1, dtype=np.int64)
                _finish_strict(scan, lo, cst, faults, cand[ci].tolist(), ci.tolist(), count[ci].tolist(),
                               xs.tolist(), ls.tolist(), CAP - step)
                ci = ci[:0]
                break
            done = ls == 0
            if done.any():
                if done.all():  # (one-packet messages: every candidate at the first round)
                    cst[ci] = np.where(xs <= limit, xs, _NEED_MORE)
                    ci = ci[:0]
                    break
                d = np.flatnonzero(done)
                e = xs[d]
                cst[ci[d]] = np.where(e <= limit, e, _NEED_MORE)
                r = np.flatnonzero(~done)
                ci, xs, ls = ci[r], xs[r], ls[r]
            cut = xs + 2 > limit
            if cut.any():
                cst[ci[cut]] = _NEED_MORE
                r = np.flatnonzero(~cut)
                ci, xs, ls = ci[r], xs[r], ls[r]
            if not ci.size:
                break
            length = u[xs - lo] if int(xs.max()) < u_end else _u16(a, xs)
            scan.plain += xs.size
            ok = KNOWN_MASK[length]
            if not ok.all():
                bad = np.flatnonzero(~ok)
                if faults is None:
                    faults = np.full(cand.size, -1, dtype=np.int64)
                # every candidate still walked has its first step + 1 packets good
                faults[ci[bad]] = length[bad].astype(np.int64) | (step + 1) << 17
                r = np.flatnonzero(ok)
                ci, xs, ls, length = ci[r], xs[r], ls[r], length[r]
            xs = xs + 2 + length
            ls = ls - 1
        chains = scan.strict
        for i in ci.tolist():  # longer than CAP packets: the memoised chains decide
            cst[i] = chains.message_end(lo + int(cand[i]))
        status[cand] = cst
    ok = cst >= 0
    if ok.all():  # (a window of messages: no candidate fails)
        valid, need = cand, cand[:0]
    else:
        valid, need = cand.take(np.flatnonzero(ok)), cand.take(np.flatnonzero(cst == _NEED_MORE))
    tail = range(max(lo, top), hi)  # the last 3 bytes of the buffer
    if tail:
        for c in tail:
            status[c - lo] = scan.strict.message_end(c)
            scan.checks += 1
        ts = status[tail.start - lo :]
        t = np.arange(tail.start - lo, n)
        valid, need = np.concatenate([valid, t[ts >= 0]]), np.concatenate([need, t[ts == _NEED_MORE]])
    return status, valid + lo, need + lo, None if faults is None and not dropped else (cand, faults), u


def _followed(scan, lo: int, hi: int, status, valid, need, ends, final: bool):
    """For each message end in ``ends``: 1 when a message (or the end) follows within
    ``FOLLOW_WINDOW`` bytes, junk allowed between (``AnchorSearch._followed`` with
    junk), 0 when not, -1 when that needs bytes past the window or past the chunk."""
    a, limit = scan.a, scan.limit
    out = np.full(ends.size, -1, dtype=np.int8)
    w_end = ends + FOLLOW_WINDOW
    past = w_end > limit
    if final:
        out[past] = 1
    inside = ~past & (w_end <= hi)
    if inside.any():
        e = ends[inside]
        # the first position at or after e where a message validates or may: looked at
        # right after e first (a message, a junk byte or two, a message), then searched
        nxt = e.copy()  # (where the first look hits: most ends are followed at once)
        pending = np.flatnonzero(status[e - lo] < _NEED_MORE)
        if pending.size:
            nxt[pending] = _BIG
            at = e[pending] - lo
        for _ in range(NEAR - 1):  # the next bytes
            if not pending.size:
                break
            at += 1
            hit = status[at] >= _NEED_MORE
            nxt[pending[hit]] = at[hit] + lo
            pending, at = pending[~hit], at[~hit]
        if pending.size:
            some = np.union1d(valid, need) if need.size else valid
            nxt[pending] = np.append(some, _BIG)[np.searchsorted(some, e[pending] + NEAR)]
        hit = nxt < e + FOLLOW_WINDOW
        res = hit.astype(np.int8)
        if not final and need.size:
            # the first position that may hold a message must validate, not need more bytes
            res[hit & (status[np.where(hit, nxt, lo) - lo] == _NEED_MORE)] = -1
        miss = np.flatnonzero(~hit)
        if miss.size:
            res[miss[_all_zero(a, e[miss], FOLLOW_WINDOW)]] = 1  # heartbeats only
            scan.scanned += miss.size * FOLLOW_WINDOW
        out[inside] = res
    return out


def _words(a: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte word at each position of ``a`` (but its last 7): an
    unaligned view, read by gathers (one per 8 bytes, not one per byte)."""
    return np.ndarray((a.size - 7,), dtype="<u8", buffer=a, strides=(1,))


def _first_nonzero(a: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """The offset of the first nonzero byte among the ``n`` (a multiple of 8) from each
    of ``at`` (inside ``a``), ``n`` where all are zero: per word, its lowest set bit's
    byte (little-endian: the first in memory)."""
    words = _words(a)
    out = np.full(at.size, n, dtype=np.int64)
    for k in range(n - 8, -1, -8):  # (the last word first: an earlier hit overwrites)
        w = words[at + k]
        some = w != 0
        low = w & (~w + np.uint64(1))  # the lowest set bit alone
        low -= np.uint64(1)  # ... and the bits below it
        off = np.bitwise_count(low).astype(np.int64) >> 3
        out = np.where(some, off + k, out)
    return out


def _all_zero(a: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """Whether the ``n`` bytes (a multiple of 8) from each of ``at`` (inside ``a``) are
    all zero: read 8 at a time through an unaligned 8-byte view of ``a`` (a gather per 8
    bytes: about 5x cheaper than an ``n``-wide gather of bytes and its reduction)."""
    words = _words(a)
    acc = words[at]
    for k in range(8, n, 8):
        acc |= words[at + k]
    return acc == 0


def _next_true(mask: np.ndarray) -> np.ndarray:
    """For each index i of ``mask`` (and one past its end): the first index >= i where
    ``mask`` holds, ``mask.size`` where none does."""
    m = mask.size
    out = np.empty(m + 1, dtype=np.int64)
    out[m] = m
    out[:m] = np.minimum.accumulate(np.where(mask, np.arange(m), m)[::-1])[::-1]
    return out


_LENIENT_OK = LENIENT_MASK.tolist()


SAMPLE = 1 << 12  # positions of a window looked at to tell whether ...
DROPS = 16  # ... its first round pays at the byte level: it drops a candidate at one position in this many


def _known_to(u: np.ndarray, n: int) -> np.ndarray:
    """``known_lengths`` of the first ``n`` of ``u``, False past its end."""
    k = known_lengths(u[:n])
    return k if k.size == n else np.concatenate([k, np.zeros(n - k.size, dtype=bool)])


def _first_round_pays(u: np.ndarray, w: int) -> bool:
    """Whether ``strict_status``' first round is worth taking at the byte level for a
    window (its u16 ``u`` from its first position; ``w`` positions):
    when it would drop many of them (dense junk: about 9% of the positions in random
    bytes of counts and lengths). Its compares and shifts cost about 3 ns a position and
    each candidate dropped saves about 60 (its place found and a round walked), so
    where few fail there (messages, sparse junk) it would only add work. Told from the
    window's first ``SAMPLE`` positions (a guess: either way gives the same answer)."""
    s = min(w, SAMPLE)
    k = _known_to(u, s + 4 + _KNOWN[-1])
    c = np.flatnonzero(k[2 : s + 2] & (u[:s] != 0))
    fails = (u[c] != 1) & ~k[c + 4 + u[c + 2]]
    return DROPS * int(np.count_nonzero(fails)) > s


def _finish_strict(scan, lo: int, status: np.ndarray, faults, cand: list, index: list, count: list, xs: list,
                   ls: list, steps: int):
    """``strict_status``' walk of a few candidates, one by one (their place in the
    window, index among the window's candidates, count, next prefix and packets left):
    at most ``steps`` more rounds, then the chains. Their status goes to ``status`` and
    what the invalid ones showed to ``faults`` (both per candidate)."""
    buf, limit, known = scan.buf, scan.limit, KNOWN_SET
    for c, i, n, p, left in zip(cand, index, count, xs, ls, strict=True):
        for _ in range(steps):
            if left == 0:
                status[i] = p if p <= limit else _NEED_MORE
                break
            if p + 2 > limit:
                status[i] = _NEED_MORE
                break
            length = buf[p] << 8 | buf[p + 1]
            scan.plain += 1
            if length not in known:
                faults[i] = (n - left) << 17 | length
                break
            p += 2 + length
            left -= 1
        else:  # longer than CAP packets: the memoised chains decide
            status[i] = scan.strict.message_end(lo + c)


def _finish_lenient(scan, out: np.ndarray, alive: list, ps: list, left: list, steps: int) -> None:
    """``_lenient_status``'s walk of a few chains, one by one: at most ``steps`` more
    packets each (their index in ``out``, next prefix, packets left)."""
    buf, limit, ok = scan.buf, scan.limit, _LENIENT_OK
    for i, p, n in zip(alive, ps, left, strict=True):
        answer = _UNDECIDED
        for _ in range(steps):
            if p + 2 > limit:
                answer = _NEED_MORE
                break
            length = buf[p] << 8 | buf[p + 1]
            scan.plain += 1
            if not ok[length]:
                answer = _INVALID
                break
            p += 2 + length
            n -= 1
            if n == 0:
                answer = p if p <= limit else _NEED_MORE
                break
        out[i] = answer


def _lenient_status(scan, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``PacketChains.message_end``'s answer for a lenient message (count ``n``) at ``x``
    (its end, ``_INVALID`` or ``_NEED_MORE``) where its first ``CAP`` packets show it;
    ``_UNDECIDED`` where they do not (more packets: those are asked one by one)."""
    a, limit = scan.a, scan.limit
    out = np.full(x.size, _UNDECIDED, dtype=np.int64)
    cut = x + 2 > limit
    out[cut] = _NEED_MORE
    out[~cut & (n == 0)] = _INVALID
    # the chains still walked: their index, next prefix and packets left
    alive = np.flatnonzero(~cut & (n > 0))
    ps, left = x[alive] + 2, n[alive].astype(np.int64)
    for step in range(CAP):
        if alive.size <= FEW_CHAINS:
            # a few left (the longest): a plain walk of each is cheaper than numpy calls
            _finish_lenient(scan, out, alive.tolist(), ps.tolist(), left.tolist(), CAP - step)
            break
        over = ps + 2 > limit  # the chain stops past the buffer before the count
        if over.any():
            out[alive[over]] = _NEED_MORE
            r = np.flatnonzero(~over)
            alive, ps, left = alive[r], ps[r], left[r]
        length = _u16(a, ps)
        scan.plain += ps.size
        ok = LENIENT_MASK[length]
        if not ok.all():
            out[alive[~ok]] = _INVALID
            r = np.flatnonzero(ok)
            alive, ps, left, length = alive[r], ps[r], left[r], length[r]
        ps = ps + 2 + length
        left = left - 1
        whole = left == 0  # a message, or its end past the buffer
        if whole.any():
            w = np.flatnonzero(whole)
            end = ps[w]
            out[alive[w]] = np.where(end <= limit, end, _NEED_MORE)
            r = np.flatnonzero(~whole)
            alive, ps, left = alive[r], ps[r], left[r]
    return out


class _Plan:
    """Each place of the window where the walk can stand, with its next step."""

    def __init__(self, scan, lo: int, hi: int, final: bool, entry: int):
        self.scan = scan
        status, valid, need, self.faults, self.u16 = strict_status(scan, lo, hi)
        self.lo, self.hi, self.status, self.final = lo, hi, status, final
        ends = status.take(valid - lo).astype(np.int64)
        self.valid, self.ends, self.need = valid, ends, need
        self._follows = None  # each valid start's follow check, once a bad region asks
        self._anchors = None  # _regions' look-ups over the valid starts, once asked
        inner = ends[ends < hi]
        mark = np.zeros(hi - lo, dtype=bool)  # (the places so far: rounds below add some)
        mark[valid - lo] = True
        # Each end once and in order (the usual): those where no valid start is are the
        # places it adds, read off the marks (not a pass over all the places merged).
        ascending = inner.size < 2 or bool((inner[1:] > inner[:-1]).all())
        if ascending:
            fresh = ~mark.take(inner - lo)
            runs = [valid, inner if fresh.all() else inner[fresh]]
        else:
            runs = [valid, inner]
        mark[inner - lo] = True
        if not mark[entry - lo]:  # (the usual: it starts a message)
            mark[entry - lo] = True
            runs.append([entry])
        if not ascending and not (inner[1:] >= inner[:-1]).all():
            # Ends out of order (messages inside messages): those below an earlier end are
            # sorted apart, a third run, when sparse (one per LATE_ENDS bytes of the window
            # at most: their sort, k log k, stays below a pass over the window's marks);
            # else every byte's mark is searched.
            late = inner < np.maximum.accumulate(inner)
            n_late = int(np.count_nonzero(late))
            runs = [valid, inner[~late], np.sort(inner[late]), *runs[2:]] if LATE_ENDS * n_late <= hi - lo else None
        if runs is not None:
            # The places in order: the valid starts and their ends (the usual: in order too)
            # merged (a stable sort of sorted runs is a merge), not a search of every
            # byte's mark (a pass costing more than the runs where places are sparse).
            nodes = np.concatenate(runs)
            nodes.sort(kind="stable")
            if not ascending:
                once = np.diff(nodes, prepend=-1) != 0  # (an end where a valid start is: twice)
                if not once.all():
                    nodes = nodes[once]
        else:
            nodes = np.flatnonzero(mark) + lo
        self._nonzero = None  # positions of the window's nonzero bytes, once asked
        # each place's status and the places where no message starts (nor may), read
        # once for the zero runs and _decide
        known = self._place_status(nodes)
        st, _, xi = known
        nodes, runs = self._zero_run_places(nodes, xi, mark)
        known = known if nodes.size == st.size else None  # (None: places added)
        kind, succ, beats = self._decide(nodes, runs, known=known)
        # A step that lands on the next place is tight (most are); only the others' landing
        # places are searched. Where one lands on no place yet (the end of a message of
        # unknown-length packets, ...), that place is decided too, a few rounds deep.
        for rounds in range(PLACE_ROUNDS + 1):
            m = nodes.size
            tight = np.zeros(m, dtype=bool)
            tight[:-1] = (kind[:-1] >= 0) & (succ[:-1] == nodes[1:])
            loose = np.flatnonzero(~tight)
            to = succ[loose]
            steps = (kind[loose] >= 0) & (to < hi)
            more = to[steps]
            more = more[~mark[more - lo]]
            if not more.size or rounds == PLACE_ROUNDS:
                break
            more = np.unique(more)
            mark[more - lo] = True
            k2, s2, b2 = self._decide(more, every=False)
            nodes = np.concatenate([nodes, more])
            order = np.argsort(nodes, kind="stable")
            nodes = nodes[order]
            kind = np.concatenate([kind, k2])[order]
            succ = np.concatenate([succ, s2])[order]
            beats = np.concatenate([beats, b2])[order]
        self.beats = beats
        j = np.minimum(np.searchsorted(nodes, to), m - 1)
        # where each loose node's step lands among the nodes (m: it leaves the decided places)
        jump = np.where(steps & (nodes.take(j) == to), j, m)
        self.nodes, self.kind, self.succ, self.jump, self.loose = nodes, kind, succ, jump, loose
        scan.scanned += m

    def _zero_run_places(self, nodes: np.ndarray, xi: np.ndarray, mark: np.ndarray):
        """The places plus the last zero of each run of zeros that starts at one (its
        heartbeats land there), so that they are decided in the same round; and those
        runs (their starts, lengths). ``xi``: the places where no message starts (nor may)."""
        a, lo, hi = self.scan.a, self.lo, self.hi
        x = xi[: np.searchsorted(xi, hi - 1)]  # (sorted: those before the window's last byte)
        if self.u16 is not None:  # (it holds the u16 at each of them: both bytes zero)
            heads = x[self.u16.take(x - lo) == 0]
        else:
            heads = x[(a.take(x) == 0) & (a.take(x + 1) == 0)]
        if not heads.size:
            return nodes, None
        length = self._zero_runs(heads)
        last = (heads + length - 1)[length > 0]
        last = last[~mark[last - lo]]
        if last.size:
            # two places in one run share its last zero (in order: the runs are)
            last = last[np.flatnonzero(np.diff(last, prepend=-1))]
            mark[last - lo] = True
            nodes = np.concatenate([nodes, last])
            nodes.sort(kind="stable")  # two sorted runs: merged (a pass over the window costs more)
        return nodes, (heads, length)

    @property
    def follows(self) -> np.ndarray:
        """``_followed`` of every valid start's end (computed when first asked)."""
        if self._follows is None:
            self._follows = self._followed_at(self.ends)
        return self._follows

    def _followed_at(self, ends: np.ndarray) -> np.ndarray:
        return _followed(self.scan, self.lo, self.hi, self.status, self.valid, self.need, ends, self.final)

    def _first_valid(self, start: np.ndarray) -> np.ndarray:
        """Index in ``valid`` of the first valid start at or after each of ``start`` (its
        size where none): read off the window's status where that is ``start`` itself
        (the usual: one junk byte), searched for the rest."""
        lo, hi, valid = self.lo, self.hi, self.valid
        if 16 * start.size < valid.size:  # a few: searched (a table of the window costs more)
            return np.searchsorted(valid, start)
        at = np.minimum(start, hi - 1) - lo
        here = np.flatnonzero((self.status[at] >= 0) & (start < hi))
        if here.size == start.size:
            where = np.empty(hi - lo, dtype=np.int64)
            where[valid - lo] = np.arange(valid.size)
            return where[at]
        return np.searchsorted(valid, start)

    def _anchor_index(self):
        """Over the valid starts (index i, one past the last: none): the first anchor (a
        start followed by another) at or after i, its position (int64 max: none), the first
        start at or after i that is no anchor but ends by the next anchor, and the first
        whose follow check needs bytes past the window."""
        if self._anchors is None:
            follows, v = self.follows, self.valid.size
            pos = np.append(self.valid, _BIG)
            anchor = _next_true(follows == 1)
            anchor_at = pos[anchor]
            early = _next_true((self.ends <= anchor_at[:v]) & (follows != 1))
            self._anchors = (pos, anchor, anchor_at, early, _next_true(follows == -1))
            self.scan.scanned += v
        return self._anchors

    def _place_status(self, nodes: np.ndarray):
        """(status, indexes, positions): each place's status, and the places where no
        message starts (nor may), as indexes in ``nodes`` and as positions."""
        st = self.status.take(nodes - self.lo).astype(np.int64)
        inv = np.flatnonzero(st == _INVALID)
        return st, inv, nodes.take(inv)

    def _decide(self, nodes: np.ndarray, runs=None, every: bool = True, known=None):
        """(kind, next place, heartbeats) of each place in ``nodes`` (``runs``: its runs of
        zeros, as ``_zero_run_places`` found them; ``every``: ``nodes`` are all the
        window's places, not only some added; ``known``: their status, the indexes and
        positions of those where no message starts nor may, when read already)."""
        a, lo, hi, status = self.scan.a, self.lo, self.hi, self.status
        m = nodes.size
        st, inv, xi = self._place_status(nodes) if known is None else known
        msg = st >= 0
        kind = msg.view(np.int8) - 1  # 0 message, 1 bad region, 2 heartbeat, -1 undecided
        succ = np.where(msg, st, 0)
        beats = np.zeros(m, dtype=np.int64)
        if not inv.size:
            return kind, succ, beats
        ax = a.take(xi)
        # A bad region: no message validates here (and the byte is no heartbeat nor the
        # start of a text frame): it runs to _next_start's answer, and when that is 5 or
        # more bytes on, a message of unknown-length packets may start here instead.
        # (A zero byte is such a place too when the byte after it starts no message and
        # may not: then it is no heartbeat, _walk_raw's next question.)
        no_beat = ax != 0
        z = np.flatnonzero(~no_beat)
        if z.size:
            xz = xi[z] + 1
            after = np.minimum(xz, hi - 1)
            no_beat[z] = (xz < hi) & (a[after] != 0) & (status[after - lo] == _INVALID)
        keep = no_beat & (ax != _JSON)
        cand = inv if keep.all() else inv[keep]  # (all: junk bytes between messages)
        if cand.size and every and (self.final or not self.need.size):
            # the usual damage, read off the places (at the capture's end too, where the
            # last messages' starts may need bytes past it: _regions reads those only
            # when more bytes may come)
            tight, to = self._tight_regions(cand, nodes, st)
            head = cand[: tight.size]
            kind[head], succ[head] = 1, to
            if not tight.all():  # those left to _regions: undecided again (as before)
                head = head[~tight]
                kind[head], succ[head] = -1, 0
                cand = np.concatenate([head, cand[tight.size :]])
            else:
                cand = cand[tight.size :]
        if cand.size:
            self._regions(cand, nodes, kind, succ)
        # Heartbeats: a run of zero bytes (all but its last; _walk_raw looks 64 KiB ahead
        # at most), or one zero byte where no message validates and then one that does.
        zero = ax == 0
        zero &= xi + 1 < hi
        zero = inv[zero] if zero.any() else inv[:0]  # (none: no zero byte among them)
        if zero.size:
            x = nodes[zero]
            pair = a[x + 1] == 0
            one = np.flatnonzero(~pair)
            ok = status[x[one] + 1 - lo] >= 0
            kind[zero[one[ok]]] = 2
            succ[zero[one[ok]]] = x[one[ok]] + 1
            beats[zero[one[ok]]] = 1
            run = np.flatnonzero(pair)
            if run.size:
                xr = x[run]
                if runs is not None and runs[0].size == xr.size:  # found before (__init__)
                    length = runs[1]
                else:
                    length = self._zero_runs(xr)
                decided = length > 0
                length = length[decided]
                at = zero[run[decided]]
                kind[at] = 2
                succ[at] = nodes[at] + length - 1
                beats[at] = length - 1
        return kind, succ, beats

    def _zero_runs(self, xr: np.ndarray) -> np.ndarray:
        """The bytes of the run of zeros at each of ``xr`` (two zeros at least) that
        ``_walk_raw`` takes at once (up to ``ZERO_RUN``), 0 where bytes past the window
        decide."""
        scan, a, lo, hi = self.scan, self.scan.a, self.lo, self.hi
        # the first nonzero byte: probed among the next PROBE bytes (those in the window),
        # the window's pass if further
        stop = np.full(xr.size, hi, dtype=np.int64)
        hit = np.zeros(xr.size, dtype=bool)
        inner = np.flatnonzero(xr + 2 + PROBE <= hi)
        if inner.size:  # (all but those at the window's end) two unaligned 8-byte words each
            at = xr[inner] + 2
            off = _first_nonzero(a, at, PROBE)
            hit[inner] = off < PROBE
            stop[inner] = at + off
        edge = np.flatnonzero(xr + 2 + PROBE > hi)
        if edge.size:
            probe = xr[edge][:, None] + np.arange(2, 2 + PROBE)
            seen = a[np.minimum(probe, hi - 1)] != 0
            seen &= probe < hi
            hit[edge] = seen.any(axis=1)
            stop[edge] = np.where(hit[edge], xr[edge] + 2 + seen.argmax(axis=1), hi)
        scan.scanned += xr.size * PROBE
        if not hit.all():
            if self._nonzero is None:
                self._nonzero = np.flatnonzero(a[lo:hi]) + lo
                scan.scanned += hi - lo
            far = ~hit
            stop[far] = np.append(self._nonzero, hi)[np.searchsorted(self._nonzero, xr[far])]
        decided = (stop < hi) | (hi == scan.limit) | (stop - xr >= ZERO_RUN)
        return np.where(decided, np.minimum(stop - xr, ZERO_RUN), 0)

    def _tight_regions(self, cand: np.ndarray, nodes: np.ndarray, st: np.ndarray) -> np.ndarray:
        """Which of the bad-region places ``cand`` (indexes in ``nodes``, all the window's
        places in order; ``st`` their status; no start in the window needs more bytes,
        or the window ends the capture) are the usual damage, decided from the places
        alone: the next place is a message 1-4 bytes on whose end is the place after it,
        and that end starts a message, or is junk and the place after it starts one within
        ``FOLLOW_WINDOW``. Every valid start is a place, so that message is the first after
        the junk and is followed (``_followed``: 1): the region runs to it, as ``_regions``
        decides. Returns (for the first of ``cand``: all but those among the window's last
        2 places) whether each is such a region, and where it runs to."""
        m = nodes.size
        c = cand[: np.searchsorted(cand, m - 2)]  # (each has a next place and one after it)
        if 3 * c.size < m:  # a few among many places: gathered at them
            return self._tight_at(c + 1, nodes, st)
        # Dense (junk between most messages): told for every place i but the last 2 at
        # once, from the places after it (slices: a gather costs ~5x a pass), then read at
        # the regions: the next place's message (its end e) ...
        e = st[1 : m - 1]
        ok = e >= 0
        ok &= nodes[1 : m - 1] <= nodes[: m - 2] + (SHORT_RESYNC - 1)
        ok &= nodes[2:] == e
        ok &= e <= self.hi - FOLLOW_WINDOW
        # ... and what follows its end: a message, or junk and a message within FOLLOW_WINDOW
        nxt = st[2:]
        then = nxt >= 0
        if not then.all():
            junk = nxt[:-1] == _INVALID
            junk &= nodes[3:] < e[:-1] + FOLLOW_WINDOW
            junk &= st[3:] >= 0
            then[:-1] |= junk
        ok &= then
        return ok.take(c), nodes.take(c + 1)

    def _tight_at(self, c1: np.ndarray, nodes: np.ndarray, st: np.ndarray):
        """``_tight_regions`` of the regions whose next place is each of ``c1``, gathered there."""
        m = nodes.size
        e = st.take(c1)  # the end of the message there
        to = nodes.take(c1)
        ok = e >= 0
        ok &= to <= nodes.take(c1 - 1) + (SHORT_RESYNC - 1)
        ok &= nodes.take(c1 + 1) == e
        ok &= e <= self.hi - FOLLOW_WINDOW
        nxt = st.take(c1 + 1)
        if not (nxt >= 0).all():
            c2 = np.minimum(c1 + 2, m - 1)
            ok &= (nxt >= 0) | ((nxt == _INVALID) & (c1 + 2 < m) & (nodes[c2] < e + FOLLOW_WINDOW) & (st[c2] >= 0))
        return ok, to

    def _regions(self, cand, nodes, kind, succ) -> None:
        """Decide the bad regions (and messages of unknown-length packets) at ``cand``,
        as ``_walk_raw`` does after ``_next_start(x + 1)``; the rest stay undecided."""
        scan, a, hi, limit, final = self.scan, self.scan.a, self.hi, self.scan.limit, self.final
        big = _BIG
        x = nodes[cand]
        start = x + 1
        valid, need, v = self.valid, self.need, self.valid.size
        k = self._first_valid(start)  # the first valid start from there
        # Mostly (damage between messages) that start is followed by another: it is the
        # anchor, and no valid start lies before it. Where its follow check needs bytes
        # past the window, the anchor is undecided. Only the rest ask the tables.
        f = np.zeros(x.size, dtype=np.int8)
        some = k < v
        if some.any():
            if self._follows is None and 3 * x.size < 2 * v:  # fewer regions than starts: only their starts' checks
                f[some] = self._followed_at(self.ends[k[some]])
            else:
                f[some] = self.follows[k[some]]
        decided = f == 1
        q = np.where(decided, np.append(valid, limit)[k], 0)
        found, anchor_all = decided.copy(), q.copy()
        hard = np.flatnonzero(~some | (f == 0))
        if hard.size:
            # the anchor: the first valid start followed by another (_find_anchor)
            kh = k[hard]
            if (kh == v).all():  # no valid start after them (the window's last bytes): the index's answers there
                ai = unsure = kh
                anchor = g = np.full(kh.size, big)
            else:
                pos, anchor_of, anchor_at, early_of, unsure_of = self._anchor_index()
                # and an earlier valid message that ends by the anchor (_next_start's second look)
                ai, anchor, unsure, g = anchor_of[kh], anchor_at[kh], unsure_of[kh], pos[early_of[kh]]
            none = anchor == big  # none in the window: none at all at the capture's end, else undecided
            dh = ~none | (final and hi == limit)
            anchor = np.where(none, limit, anchor)
            # every start before the anchor had its follow check decided here
            dh &= unsure >= ai
            decided[hard], q[hard], found[hard] = dh, np.minimum(g, anchor), (g < anchor) | ~none
            anchor_all[hard] = anchor
        if not final and need.size:  # a start needing more bytes before the anchor: _MORE, carried
            decided &= np.append(need, big)[np.searchsorted(need, start)] > anchor_all
        short = decided & found & (q < x + SHORT_RESYNC)
        i = np.flatnonzero(short)
        kind[cand[i]], succ[cand[i]] = 1, q[i]
        # Otherwise the lenient check: a count above LENIENT_MAX_COUNT never holds one; a
        # count of 256+ spans 770+ bytes, past an anchor closer than that.
        rest = decided & ~short
        if not rest.any():
            return
        n = _u16(a, x)
        sure = rest & ((n > LENIENT_MAX_COUNT) | (final & found & (n >= 256) & (q < x + 2 + 3 * 256)))
        kind[cand[sure]], succ[cand[sure]] = 1, q[sure]
        ask = np.flatnonzero(rest & ~sure)
        small = n[ask] < 256  # a count the one-by-one check below may ask (few packets)
        ends = []  # (i, end) of lenient messages whose follow check the window can answer
        if ask.size > LENIENT_BATCH or not small.all():
            # Many (a shower of small counts): their first CAP lenient packets walked at
            # once (``PacketChains.message_end``'s answers) decide those that hold no
            # message, and those whose message hides a valid start found after it (no
            # message either) or is followed inside the window (asked below, at once).
            status = _lenient_status(scan, x[ask], n[ask])
            scan.checks += int(np.count_nonzero(status != _UNDECIDED))
            qa = q[ask]
            hides = (status >= 0) & (qa < status)
            no = (status == _INVALID) | ((status == _NEED_MORE) & final) | (hides & found[ask])
            kind[cand[ask[no]]], succ[cand[ask[no]]] = 1, qa[no]
            whole = (status >= 0) & ~hides
            near = whole & (status < limit) & ((status + FOLLOW_WINDOW <= hi) | (hi == limit))
            if near.any():
                ends.append((ask[near], status[near]))
            ask = ask[((status == _UNDECIDED) & small) | (whole & ~near)]
        for i in ask.tolist():  # few: a zero byte, a small count
            xi, qi = int(x[i]), int(q[i])
            scan.checks += 1
            e = scan.lenient.message_end(xi, max_count=LENIENT_MAX_COUNT)
            if e >= 0 and qi < e:
                if not found[i]:
                    continue
                e = _INVALID
            if e >= 0 and (e + FOLLOW_WINDOW <= hi or hi == limit) and e < limit:
                ends.append((np.array([i]), np.array([e])))
                continue
            e = AnchorSearch._lenient_outcome(scan, e, final)
            if e == _NEED_MORE:
                continue
            kind[cand[i]], succ[cand[i]] = (0, e) if e >= 0 else (1, qi)
        if ends:
            i, e = (np.concatenate(v).astype(np.int64) for v in zip(*ends, strict=True))
            ok = self._heartbeats_then_message(e, final)
            take = ok == 1
            kind[cand[i[take]]], succ[cand[i[take]]] = 0, e[take]
            drop = ok == 0
            kind[cand[i[drop]]], succ[cand[i[drop]]] = 1, q[i[drop]]

    def _heartbeats_then_message(self, e: np.ndarray, final: bool) -> np.ndarray:
        """``AnchorSearch._followed(…, junk=False)`` of each end ``e`` (inside the buffer,
        its ``FOLLOW_WINDOW`` bytes inside the window or the buffer's end), read from the
        window's strict status: 1 when only zero bytes come before a message that
        validates (or the end), 0 when a nonzero byte does, -1 when bytes past the chunk
        decide (``_NEED_MORE``)."""
        scan, a, lo, limit = self.scan, self.scan.a, self.lo, self.scan.limit
        span = np.arange(FOLLOW_WINDOW)
        at = e[:, None] + span
        inside = at < np.minimum(e + FOLLOW_WINDOW, limit)[:, None]
        at = np.minimum(at, limit - 1)
        nonzero = (a[at] != 0) & inside
        first_nonzero = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), FOLLOW_WINDOW)
        # positions asked in order: all zero bytes before them (up to the first nonzero one)
        st = self.status[at - lo]
        asked = (st != _INVALID) & inside & (span <= first_nonzero[:, None])
        scan.checks += int(np.count_nonzero(asked))
        hit = asked.any(axis=1)
        r = st[np.arange(e.size), asked.argmax(axis=1)]
        out = np.where(nonzero.any(axis=1), 0, np.where(e + FOLLOW_WINDOW > limit, 1 if final else -1, 1))
        out[hit] = np.where(r[hit] >= 0, 1, 1 if final else -1)
        return out.astype(np.int8)

    def path(self, p: int) -> np.ndarray | slice:
        """Indexes of the nodes the walk visits from ``p`` (a node) until it leaves the
        decided ones (a slice when they follow each other); only the last may be
        undecided. Where each step lands on the next node (a run of messages and short
        bad regions with nothing between) the run is taken whole; only a step over a node
        (a message holding a start that also validates) is followed one at a time.
        Linear: one pass over the nodes plus one step per node jumped over."""
        nodes, loose, to = self.nodes, self.loose, self.jump
        m = nodes.size
        self.scan.scanned += m
        i = int(np.searchsorted(nodes, p))
        # The nodes whose step does not land on the next node (the last one's never does:
        # it leaves the window); from each, the next such node after its step's landing
        # place (none past the last: their count), followed in plain ints.
        t = int(np.searchsorted(loose, i))
        after = np.searchsorted(loose, to).tolist()
        runs, last = [t], loose.size
        t = after[t]
        while t < last:
            runs.append(t)
            t = after[t]
        self.scan.checks += len(runs) - 1
        if len(runs) == 1:
            return slice(i, int(loose[runs[0]]) + 1)  # one run: views, not gathers
        runs = np.array(runs)
        ends = loose[runs]
        # the runs are disjoint and in order: the nodes between each start and end
        starts = np.concatenate([[i], to[runs[:-1]]])
        inside = np.bincount(starts, minlength=m + 1) - np.bincount(ends + 1, minlength=m + 1)
        return np.flatnonzero(np.cumsum(inside[:m]) > 0)

    def reasons(self, buf, x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``_region_reason(…, _describe_fault(…))`` of the bad regions [x, q) (places of
        this plan: no message, heartbeat or text frame starts at x), as (a code per
        region, the reasons): each distinct reason is written once (damage repeats a
        few); faults the window's walks did not show are asked one by one."""
        a, limit, lo = self.scan.a, self.scan.limit, self.lo
        # (x in order) the usual: none in the buffer's last bytes, and the window's u16
        # (strict_status) holds each region's count and first length
        every = self.u16 is not None and int(x[-1]) + 4 <= limit
        if every:
            n = self.u16.take(x - lo).astype(np.int64)  # a region's place holds a count (no message validates there)
            first = self.u16.take(x + (2 - lo)).astype(np.int64)
            known = KNOWN_MASK.take(first)
            counted = n > 0
        else:
            inside = x + 4 <= limit
            n = _u16(a, x)
            first = np.where(inside, _u16(a, np.minimum(x + 2, limit - 2)), -1)
            known = KNOWN_MASK[np.maximum(first, 0)]
            counted = inside & (n > 0)
        # one key per distinct (count, good packets, bad length, text frame inside, region
        # size): its fault is (good << 17 | bad length) + (1 << 17) + 1, or 0 when none
        # (good -1, bad length -1). A count and an unknown first length: "unknown packet
        # length L (packet 0 of n)"
        unknown = ~known
        unknown &= counted
        fault = np.where(unknown, first + ((1 << 17) + 1), 0)
        known &= counted
        seen = np.flatnonzero(known)  # candidates (count > 0, first length known, inside)
        if self.faults is not None and seen.size:
            # what its walk showed (strict_status)
            places, shown = self.faults
            xs = x[seen]
            at = np.minimum(np.searchsorted(places, xs - lo), max(places.size - 1, 0))
            walked = places[at] == xs - lo if places.size else np.zeros(xs.size, dtype=bool)
            f = np.full(xs.size, -1, dtype=np.int64) if shown is None else shown[at]
            if not walked.all():
                # not walked (found at the byte level): the second prefix is an unknown length
                d = np.flatnonzero(~walked)
                f[d] = _u16(a, xs[d] + 4 + first[seen[d]]) | 1 << 17
            fault[seen] = np.where(f >= 0, f + ((1 << 17) + 1), 0)
        if not every:
            n[~inside & (n > 0)] = -1  # the last bytes of the buffer: ask _describe_fault
        size = q - x
        assert size.max() < 1 << _SIZE_BITS  # a region of a pass lies in its window
        key = n  # ((n + 1) << 23 | fault) << 1 | text frame inside) << _SIZE_BITS | size, in place
        key += 1
        key <<= 23
        key |= fault
        key <<= 1
        text = _text_inside(a, x, q)
        if text.any():
            key |= text
        key <<= _SIZE_BITS
        key |= size
        keys, _, codes = _factor(key)
        # each key's kind (reason_kind of its text): one per sort of reason _reason_text writes
        sort = _reason_sort(keys)
        names: list[str] = []
        kind = np.full(keys.size, -1, dtype=np.int64)
        for k in range(3):  # (in order: as np.unique of the sorts found, without its sort)
            of = np.flatnonzero(sort == k)
            if not of.size:
                continue
            kind[of] = len(names)
            names.append(reason_kind(_reason_text(int(keys[of[0]]))))
        kind_code = kind.take(codes)
        asked = []
        if (sort < 0).any():  # faults not seen here (truncated, >16 packets): ask _describe_fault
            for i in np.flatnonzero((sort < 0)[codes]).tolist():
                xi, qi = int(x[i]), int(q[i])
                codes[i] = keys.size + len(asked)
                asked.append(_region_reason(buf, xi, qi, _describe_fault(self.scan, xi)))
        return codes, _Reasons(keys, asked), (kind_code, names)


def _factor(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct values in order, index of a place of each, code of each key) of a
    non-empty int64 array: ``np.unique``'s, without its sort when all keys are one (a
    capture damaged the same way all along). Any place of each value will do for the
    callers: an unstable sort (about 30% cheaper than ``np.unique``'s stable one)."""
    if (key == key[0]).all():
        return key[:1], np.zeros(1, dtype=np.int64), np.zeros(key.size, dtype=np.int64)
    order = key.argsort()
    ordered = key[order]
    new = np.empty(key.size, dtype=bool)  # where each distinct value starts among the ordered keys
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    codes = np.empty(key.size, dtype=np.int64)
    codes[order] = np.cumsum(new) - 1
    return ordered[new], order[new], codes


class _Reasons:
    """A pass's reasons of bad regions, written when first read (``BadRegions`` reads
    them when its regions are read one by one or counted by reason): one per distinct
    key (``_reason_text``: None for a key no region's code points at), then those asked
    one by one."""

    __slots__ = ("keys", "asked")

    def __init__(self, keys: np.ndarray, asked: list[str]):
        self.keys, self.asked = keys, asked

    def __len__(self) -> int:
        return int(self.keys.size) + len(self.asked)

    def tolist(self) -> list[str | None]:
        return [*map(_reason_text, self.keys.tolist()), *self.asked]

    def item(self, i: int) -> str | None:
        n = int(self.keys.size)
        return _reason_text(int(self.keys[i])) if i < n else self.asked[i - n]

    def spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``tolist()`` as ``byte_spans`` (None as empty), the keys' texts written
        together (``write_texts``: ``_reason_text``'s, a region's numbers in decimal), in
        blocks of ``TEXT_ROWS`` keys (write_texts' Arrow columns, a column a piece, take ~200 bytes a key)."""
        keys = self.keys
        texts = [self._texts(keys[i : i + TEXT_ROWS]) for i in range(0, keys.size, TEXT_ROWS)]
        return join_spans([*texts, byte_spans(self.asked)])

    @staticmethod
    def _texts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sort = _reason_sort(keys)
        size, fault = keys & ((1 << _SIZE_BITS) - 1), keys >> (_SIZE_BITS + 1) & ((1 << 23) - 1)
        n, good, bad_len = (keys >> (_SIZE_BITS + 24)) - 1, (fault - 1) >> 17, (fault - 1) & 0x1FFFF
        text, unknown, empty = (np.flatnonzero(sort == k) for k in (0, 1, 2))
        told = np.flatnonzero(sort >= 0)  # (a key of sort -1 is no region's: written empty)
        return write_texts(keys.size, [
            (text, b"JSON text frame in a binary capture"),
            (unknown, b"unknown packet length "), (unknown, bad_len[unknown]), (unknown, b" (packet "),
            (unknown, good[unknown] - 1), (unknown, b" of "), (unknown, n[unknown]), (unknown, b")"),
            (empty, b"message with 0 packets"),
            (told, b"; "), (told, size[told]), (told, b" bytes skipped to the next valid message"),
        ])


_SIZE_BITS = 22  # of a bad region's size in reasons()' keys (a pass's window is smaller)
TEXT_ROWS = 1 << 15  # reasons written together at most (_Reasons.spans): columns of a few MB


def _reason_sort(keys: np.ndarray) -> np.ndarray:
    """Which sort of reason ``_reason_text`` writes for each key: 0 a text frame, 1 an
    unknown packet length, 2 a message of 0 packets, -1 none (asked)."""
    text = keys >> _SIZE_BITS & 1
    fault, n = keys >> (_SIZE_BITS + 1) & ((1 << 23) - 1), (keys >> (_SIZE_BITS + 24)) - 1
    return np.where(text == 1, 0, np.where(fault > 0, 1, np.where(n == 0, 2, -1)))


@functools.lru_cache(maxsize=1 << 14)
def _reason_text(key: int) -> str | None:
    """The reason of a bad region keyed as ``_Plan.reasons`` keys them, None when its
    fault must be asked (``_describe_fault``)."""
    size, text = key & ((1 << _SIZE_BITS) - 1), key >> _SIZE_BITS & 1
    fault, n = key >> (_SIZE_BITS + 1) & ((1 << 23) - 1), (key >> (_SIZE_BITS + 24)) - 1
    if text:
        why = "JSON text frame in a binary capture"
    elif fault:
        good, bad_len = (fault - 1) >> 17, (fault - 1) & 0x1FFFF
        why = f"unknown packet length {bad_len} (packet {good - 1} of {n})"
    elif n == 0:
        why = "message with 0 packets"
    else:
        return None
    return f"{why}; {size} bytes skipped to the next valid message"


_TEXT = np.frombuffer(b'{"type"', dtype=np.uint8)  # _region_reason's sign of a text frame inside a region
TEXT_LOOK = 1 << 16  # ... looked for this far into a region


def _text_inside(a: np.ndarray, x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Whether ``{"type"`` lies whole in [x, min(q, x + TEXT_LOOK)) of each region (as
    ``_region_reason`` looks); the regions are disjoint and in order."""
    out = np.zeros(x.size, dtype=bool)
    long = q - x >= _TEXT.size
    if not long.any():
        return out
    lo, hi = int(x[long][0]), int(q[long].max())
    at = np.flatnonzero(a[lo : hi - _TEXT.size + 1] == _TEXT[0]) + lo
    for k in range(1, _TEXT.size):
        at = at[a[at + k] == _TEXT[k]]
    if at.size:
        nxt = np.append(at, _BIG)[np.searchsorted(at, x)]
        out = nxt <= np.minimum(q, x + TEXT_LOOK) - _TEXT.size
    return out


def walk_window(scan, buf, base: int, p: int, final: bool, walk, size: int = WINDOW) -> tuple[int, int, int]:
    """Walk from ``p`` (not resynchronising) through the decided steps of the ``size``
    bytes from there; append its messages and bad regions to ``walk``; return where
    ``_walk_raw`` goes on (the first undecided place, or past the window), the
    window's end and how many places it had."""
    hi = min(scan.limit, p + size)
    plan = _Plan(scan, p, hi, final, p)
    idx = plan.path(p)
    last = idx.stop - 1 if isinstance(idx, slice) else int(idx[-1])
    if plan.kind[last] >= 0:
        nxt = int(plan.succ[last])
    else:  # the place where the walk goes on itself
        nxt = int(plan.nodes[last])
        idx = slice(idx.start, last) if isinstance(idx, slice) else idx[:-1]
    kinds, at, to = plan.kind[idx], plan.nodes[idx], plan.succ[idx]
    # (index arrays and takes: cheaper than boolean indexing for these sizes)
    msg = np.flatnonzero(kinds == 0)
    start = at.take(msg)
    walk.add(start, to.take(msg) - start)
    walk.heartbeats += int(plan.beats[idx].sum())
    reg = np.flatnonzero(kinds == 1)
    if reg.size:
        x, q = at.take(reg), to.take(reg)
        reason_codes, reasons, kinds = plan.reasons(buf, x, q)
        # The region's first bytes: those of short ones (1-4 bytes) made once per
        # distinct value, longer ones one by one (capped at BAD_RAW_CAP).
        length = q - x
        short = length < SHORT_RESYNC
        raw_codes = np.empty(x.size, dtype=np.int64)
        raws = []
        if short.all():
            raws, raw_codes = _short_raws(scan, buf, x, length)
        elif short.any():
            s = np.flatnonzero(short)
            raws, raw_codes[s] = _short_raws(scan, buf, x.take(s), length.take(s))
        if not short.all():
            lg = np.flatnonzero(~short)
            xl = x.take(lg)
            ql = np.minimum(q.take(lg), xl + BAD_RAW_CAP)
            raw_codes[lg] = np.arange(len(raws), len(raws) + xl.size)
            first, last = int(xl[0]), int(ql[-1])  # (the regions are disjoint and in order)
            if 2 * int((ql - xl).sum()) >= last - first:
                # Most of the bytes they span: one copy of those, sliced when the regions are
                # read one by one (a bytes object per region costs more than the copy).
                raws = RawSlices(raws, bytes(buf[first:last]), xl - first, ql - first)
            else:
                # (a comprehension's slices: about 40% cheaper than mapping __getitem__ over slice objects)
                spans = zip(xl.tolist(), ql.tolist(), strict=True)
                if type(buf) is bytes:
                    raws.extend([buf[i:j] for i, j in spans])
                else:
                    raws.extend([bytes(buf[i:j]) for i, j in spans])
        # kept as columns (BadRegions): a damaged capture has one every few bytes
        walk.region_batches.append((x + base, length, reason_codes, reasons, raw_codes, raws, kinds))
    return nxt, hi, int(plan.nodes.size)


def _short_raws(scan, buf, x: np.ndarray, length: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """The bytes of regions of 1-4 bytes at ``x``, each distinct value made once: (the
    values, a code per region). Keyed by the length and the bytes (one gather per byte
    of the longest; bytes past a region zeroed)."""
    a, limit = scan.a, scan.limit
    shortest, longest = int(length.min()), int(length.max())
    key = length.copy()
    for i in range(longest):
        key <<= 8
        key |= a.take(x + i) if i < shortest else np.where(i < length, a[np.minimum(x + i, limit - 1)], 0)
    _, first, codes = _factor(key)
    raws = [bytes(buf[xi : xi + li]) for xi, li in zip(x[first].tolist(), length[first].tolist(), strict=True)]
    return raws, codes


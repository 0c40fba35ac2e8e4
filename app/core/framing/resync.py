"""Resynchronisation: after damage, the next place a message (raw) or a record holding one
validates completely and is followed by another, found in one forward pass over
candidate starts pre-filtered with numpy; memoised per buffer (``_Scan``) so the work is
linear whatever the input."""

from __future__ import annotations

import bisect

import numpy as np

from app.core import protocol
from app.core.framing.chains import UNDECIDED, KnownChains
from app.core.framing.common import _INVALID, _NEED_MORE, KNOWN_MASK, known_lengths, u16_every
from app.core.framing.messages import LENIENT_LENGTHS, STRICT_LENGTHS, PacketChains, _uniform_end
from app.core.framing.record_formats import RecordFormat, _u16le
from app.core.framing.split import _u16

FOLLOW_WINDOW = 16  # a resync point must be followed by a message within this many bytes
CANDIDATE_BLOCK = 4096  # candidate starts are pre-filtered (numpy) in blocks of this size
STREAMS = 4  # streams of blocks asked in a row whose widening a pre-filter keeps
_FOUND, _MORE, _NONE = "found", "more", "none"


class _Scan:
    """What walking one buffer has learnt, shared by its walker and its resync.

    Packet chains (strict and lenient), candidate blocks and the last resync answer
    are memoised, so every byte is read a bounded number of times whatever the input:
    ``work`` counts candidate checks, pre-filtered bytes and chain steps.
    """

    def __init__(self, buf, shortcuts: bool = True, spares=None):
        self.buf = buf
        self.limit = len(buf)
        self.a = np.frombuffer(buf, dtype=np.uint8) if len(buf) else np.zeros(0, np.uint8)
        self.shortcuts = shortcuts  # runs of equal packets by strided compares (off: one step each)
        # the chains walk a segment at a time in C (``KnownChains``); off, one Python
        # step per prefix (``PacketChains``, the differential tests' oracle)
        # (``spares``: their position arrays handed on from the walk of the chunk before)
        if shortcuts:
            self.strict = KnownChains(buf, STRICT_LENGTHS, spares=spares)
            self.lenient = KnownChains(buf, LENIENT_LENGTHS, spares=spares)
            self.lenient.known_chains = self.strict
        else:
            self.strict = PacketChains(buf, STRICT_LENGTHS)
            self.lenient = PacketChains(buf, LENIENT_LENGTHS)
        self._blocks: dict = {}
        # pre-filter -> {the block after a recent pass: blocks in that pass}, one entry per
        # stream of blocks asked in a row (the resync's and the follow checks' interleave)
        self._streak: dict = {}
        self.scanned = 0
        self.checks = 0
        self.plain = 0  # packet steps of the plain fast path (_plain_end)
        self.frontier = 0  # where the plain fast path last stopped on a failure
        self.hint: tuple[int, str, int] | None = None  # (from, kind, position)
        self.follows: dict = {}  # (end, final, junk) -> AnchorSearch._followed's answer
        self.valid_hint: tuple[int, int, int] | None = None  # (from, anchor, position)

    def release(self) -> None:
        """The walk of the buffer is done: the chains hand their arrays to the spares."""
        for chains in (self.strict, self.lenient):
            if isinstance(chains, KnownChains):
                chains.release()

    @property
    def work(self) -> int:
        return self.scanned + self.checks + self.plain + self.strict.steps + self.lenient.steps

    def candidates(self, start: int, end: int, key, mask, reach: int):
        """Positions in [start, end) that pass ``mask`` (a vectorised pre-filter), in order.

        ``mask`` reads ``reach`` bytes from each position, so positions stop there; blocks
        are computed once per buffer and key.
        """
        for got in self.candidate_blocks(start, end, key, mask, reach):
            yield from got

    def block_candidates(self, key, b: int, mask, reach: int) -> list:
        """Block ``b``'s candidates under ``key`` (computed when first asked)."""
        got = self._blocks.get((key, b))
        return got if got is not None else self._block(key, b, mask, self.limit - reach + 1)

    def candidate_blocks(self, start: int, end: int, key, mask, reach: int):
        """``candidates``, a block's (a list) at a time."""
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
                if last > first:
                    yield got if first == 0 and last == len(got) else got[first:last]
            b += 1

    def _block(self, key, b: int, mask, stop: int) -> list:
        """Block ``b``'s candidates under ``key``. A pre-filter may decide ``mask.blocks``
        blocks at once (one numpy pass over a longer window) and several keys at once
        (``{key: mask}``): all of them are kept."""
        block = CANDIDATE_BLOCK
        # Blocks asked one after another get wider passes (up to ``mask.blocks``); a
        # lone block (a follow check, a resync that ends soon) is decided alone. Each
        # stream of blocks asked in a row keeps its own widening, so two callers asking
        # in turn (a resync's candidates here, its follow checks far ahead) do not reset
        # each other's (each block then decided alone, with a look-ahead as large).
        most = getattr(mask, "blocks", 1)
        streams = self._streak.setdefault(mask, {})
        span = streams.pop(b, 0)
        span = min(2 * span, most) if span else 1
        if len(streams) >= STREAMS:
            del streams[next(iter(streams))]  # the oldest stream
        b0 = b
        streams[b0 + span] = span
        lo, hi = b0 * block, min((b0 + span) * block, stop)
        if hi <= lo:
            self._blocks[(key, b)] = []
            return []
        # A pre-filter that reads only the window's ends (``span``) gets a range: no array
        # of a pass's 256 Ki positions to make.
        window = range(lo, hi) if getattr(mask, "span", False) else np.arange(lo, hi, dtype=np.int64)
        ok = mask(self.a, window, self) if getattr(mask, "with_scan", False) else mask(self.a, window)
        masks = {key: ok}
        if isinstance(ok, tuple):  # (mask, chain steps it walked[, {key: mask} of keys made together])
            ok, steps, *more = ok
            self.scanned += steps
            masks = more[0] if more else {key: ok}
        self.scanned += hi - lo
        listed: dict = {}  # id of a mask -> its blocks' candidates (keys given one mask share them)
        for k, m in masks.items():
            lists = listed.get(id(m))
            if lists is None:
                got = np.flatnonzero(m)
                got += lo
                cuts = np.searchsorted(got, np.arange(b0, b0 + span + 1, dtype=np.int64) * block).tolist()
                lists = listed[id(m)] = [got[cuts[i] : cuts[i + 1]].tolist() for i in range(span)]
            for i in range(span):
                self._blocks.setdefault((k, b0 + i), lists[i])
        return self._blocks[(key, b)]

    def remembered(self, start: int):
        h = self.hint
        if h is not None and h[0] <= start <= h[2]:
            return h[1], h[2]
        return None


QUICK_ANCHOR = 8  # positions the quick resync probe tries before the general search


def _quick_anchor(scan: _Scan, start: int) -> int | None:
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


PRECHECK_STEPS = 16  # packets of every candidate record's message walked at once (numpy) before Python sees it
# Candidate blocks pre-filtered together (raw): one window of 256 KiB, so a pass's fixed
# numpy calls (a round of candidate_runs per packet followed) are shared by 4x the
# candidates of 64 KiB ones; 1 MiB ones cost more in cache than they save.
RAW_SPAN = 64
RAW_MARGIN = 8192  # bytes past that window whose prefixes the chains may still read
CHAIN_BUDGET = 64  # chain_runs steps per candidate start a raw pre-filter pass spends at most
_EXIT = -3  # a chain leaving the pre-filter's window: undecided there
_LIVE = -4  # a chain that holds at least as many packets as asked: not followed further


def chain_runs(length: np.ndarray, r0: int, n: int, limit: int, enough: int, budget: int | None = None,
               memo=None, memo_reached: list | None = None, known: np.ndarray | None = None):
    """For each prefix position of [r0, r0 + n): how many known-length prefixes follow
    in a row from it (``PacketChains.run``) and why that chain stops: ``_INVALID``,
    ``_NEED_MORE`` (past the buffer), ``_EXIT`` (past the window: undecided) or
    ``_LIVE`` (at least ``enough`` follow, or the work reached ``budget`` first: not
    looked further; ``run`` then counts the prefixes looked at); and the work done.
    ``length[i]`` is the u16 at ``r0 + i`` (given below ``limit - 1`` only).

    Every position's chain at once, by pointer jumping over the positions that hold a
    known length: each round doubles how far every node has looked ahead, so
    log2(``enough``) rounds decide them all, whatever the chains share. ``memo`` (a
    function of prefix positions giving their (run, stop), run -1 where unknown:
    ``KnownChains.memo_at``) gives the chains already walked: a chain reaching one of
    them is decided there, and
    ``memo_reached`` (a list, when given) gets, per prefix position, the position (relative
    to ``r0``) of the first prefix on an already walked chain its chain reaches (-1: none).
    ``known``: ``KNOWN_MASK[length]`` when the caller has it.
    """
    run = np.zeros(n, dtype=np.int32)
    stop = np.full(n, _INVALID, dtype=np.int8)
    stop[length.size :] = _NEED_MORE  # no whole prefix there
    node = np.flatnonzero(KNOWN_MASK[length] if known is None else known).astype(np.int32)
    y = node + 2 + length[node]  # the next prefix, relative to r0
    index = np.full(n + 1, -1, dtype=np.int32)
    index[node] = np.arange(node.size, dtype=np.int32)
    jump = index[np.minimum(y, n)]
    jump[jump < 0] = _INVALID  # the next prefix holds no known length
    jump[y >= n] = _EXIT
    jump[y + (r0 + 2) > limit] = _NEED_MORE
    steps = np.ones(node.size, dtype=np.int32)
    reach = None
    if memo is not None:
        known_run, known_stop = memo(node + r0)
        on = np.flatnonzero(known_run >= 0)
        steps[on] = known_run[on]
        jump[on] = known_stop[on]
        if memo_reached is not None:
            reach = np.full(node.size, -1, dtype=np.int32)
            reach[on] = on
    live = np.flatnonzero(jump >= 0)
    work = node.size
    spent = 0  # the rounds' work, which ``budget`` bounds
    ahead = 1  # prefixes every live node has looked ahead
    while live.size and ahead < enough and (budget is None or spent < budget):
        j = jump[live]
        steps[live] += steps[j]
        jump[live] = jump[j]
        if reach is not None:  # a live node has reached none yet (one that has is no longer live)
            reach[live] = reach[j]
        live = live[jump[live] >= 0]
        ahead *= 2
        work += live.size
        spent += live.size
    jump[live] = _LIVE
    run[node] = steps
    stop[node] = jump
    if reach is not None:
        reached = np.full(n, -1, dtype=np.int32)
        hit = reach >= 0
        reached[node[hit]] = node[reach[hit]]
        memo_reached.append(reached)
    return run, stop, work


FRONTIER_STEPS = 24  # prefixes a pre-filter pass follows from each candidate before pointer jumping
FRONTIER_SPARSE = 4  # ... where a window holds at least this many known prefixes per candidate


# candidate_runs' codes of what a chain meets at a position, and the stop each one reports
_C_GO, _C_INVALID, _C_EXIT, _C_PAST, _C_JOIN = 0, 1, 2, 3, 4
_STOP_OF = np.array([_LIVE, _INVALID, _EXIT, _NEED_MORE], dtype=np.int8)


def candidate_runs(length: np.ndarray, known: np.ndarray, x: np.ndarray, r0: int, limit: int, count: np.ndarray,
                   chains=None, most: int = FRONTIER_STEPS):
    """``chain_runs``' answers for the candidates' first prefixes ``x`` only (relative to
    ``r0``; ``length`` and ``known`` over the positions the pass reads), found by following
    every candidate's chain at once, one prefix a round, for at most ``most`` rounds:
    (run, stop, joined, joined_k, work). ``joined`` is, per candidate, the position
    (relative) of the first prefix on a chain ``chains`` (a ``KnownChains``) has walked
    that its chain reaches (-1: none), ``joined_k`` the packets to it; ``run`` then adds
    that chain's run there.
    A chain holding ``count`` packets is ``_LIVE`` (looked no further), one still going
    after ``most`` rounds ``_LIVE`` too, with ``run`` the prefixes looked at (a pass keeps
    such candidates: the chains decide them). Cost per candidate and round, not per byte
    of the window: cheaper than pointer jumping over every prefix position of a window
    where candidates are few and their chains reach walked ones soon
    (``runs_found_out_of_order``)."""
    m, n = x.size, known.size
    run = np.zeros(m, dtype=np.int64)
    stop = np.full(m, _LIVE, dtype=np.int8)
    joined = np.full(m, -1, dtype=np.int64)
    joined_k = np.zeros(m, dtype=np.int64)
    # What a chain meets at each position it can reach (the pass's positions, and one
    # packet past them), as one code, so that a round reads one array whatever stops a
    # chain there (a round's numpy calls, not its few candidates, are its cost): a walked
    # prefix (joined), no whole prefix left in the buffer, past the positions the pass
    # reads (undecided here), an unknown length; checked in that order.
    size = max(n + 2 + _LONGEST, int(x.max()) + 1 if m else 0)
    code = np.empty(size, dtype=np.int8)
    # a walked prefix: _C_JOIN added to whatever else is there (4 passes over the
    # window's positions, not 6: the pass's fixed cost where candidates are few)
    if chains is not None:
        chains.walked_span(r0, code)
        code *= _C_JOIN
    else:
        code[:] = 0
    code[:n] -= known.view(np.int8)
    code[:n] += _C_INVALID  # _C_GO (0) or _C_INVALID (1), plus the join
    code[n:] += _C_EXIT
    last = limit - r0 - 2  # a prefix past this position is not whole in the buffer
    if last + 1 < size:
        tail = code[max(last + 1, 0) :]
        np.bitwise_and(tail, _C_JOIN, out=tail)
        tail += _C_PAST
    # The chains still followed, and their prefixes less 2 per packet taken: every chain
    # followed has taken as many packets as the rounds done (``k``), so its prefix is
    # q + 2k, read through views of code and length 2k on (one numpy call a round less).
    live, q = np.arange(m), x.astype(np.int64)
    want = int(count.min()) if m else 0  # the fewest packets a live chain needs
    work = 0
    k = 0
    for k in range(most):
        if not live.size:
            break
        work += live.size
        c = code[2 * k :][q]
        if np.count_nonzero(c):
            ends = np.flatnonzero(c)
            ce, pe, cl = c[ends], q[ends] + 2 * k, live[ends]
            join = ce >= _C_JOIN
            if join.any():
                got_run, got_stop = chains.memo_at(pe[join] + r0)
                cj = cl[join]
                joined_k[cj] = k
                run[cj] = k + got_run
                stop[cj] = got_stop
                joined[cj] = pe[join]
            other = ~join
            run[cl[other]] = k
            stop[cl[other]] = _STOP_OF[ce[other]]
            keep = c == _C_GO
            live, q = live[keep], q[keep]
            if not live.size:
                break
        q += length[2 * k :][q]  # (a chain still followed is at a known length, below n)
        if k + 1 >= want:  # holds as many packets as it needs: _LIVE, looked no further
            need = count[live]
            enough = need <= k + 1
            if enough.any():
                run[live[enough]] = k + 1
                keep = ~enough
                live, q = live[keep], q[keep]
                if live.size:
                    want = int(need[keep].min())
    else:
        k = most
    run[live] = k  # still going when the rounds ended: _LIVE
    return run, stop, joined, joined_k, work


def _raw_plausible(a: np.ndarray, window: np.ndarray, scan: _Scan | None = None):
    """Candidate raw message starts in ``window`` (count > 0, first length known) whose
    message may validate, and the work done: (mask, work, {"raw": mask, "raw-final":
    mask at the capture's end}).

    Every candidate's chain of known lengths is known at once (``candidate_runs`` where
    candidates are few among the prefixes, else ``chain_runs`` over the window and as far
    again past it, at most ``RAW_MARGIN``): a candidate whose chain
    stops at an unknown length before its count is no message, and the resync's Python
    loop never sees it; at the capture's end neither is one whose chain runs past the
    buffer. Chains leaving the margin stay candidates (``PacketChains`` decides them),
    unless they reach a chain the strict walk has already walked (``scan``'s memo).
    """
    limit = a.size
    w0, w1 = int(window[0]), int(window[-1]) + 1
    r1 = min(limit, w1 + 2 + min(RAW_MARGIN, w1 - w0))
    top = min(r1, limit - 1)  # positions holding a whole prefix
    length = u16_every(a, w0, top)
    m = w1 - w0
    known = known_lengths(length)  # once: the candidates' first lengths and chain_runs' prefixes
    count = length[:m]  # window positions have 4 bytes (the candidate filter's reach)
    ok = (count > 0) & known[2 : m + 2]
    at = np.flatnonzero(ok)
    if not at.size:
        return ok, 0, {"raw": ok, "raw-final": ok}
    count = count[at].astype(np.int64)
    # Rounds stop once they cost CHAIN_BUDGET steps per candidate (about what asking it
    # in Python costs): where a few candidates sit among many long chains (one per 35
    # prefixes in runs_found_out_of_order, whose chains all leave the margin), the
    # rounds decided nothing and cost 7 us per candidate; undecided ones stay candidates.
    chains = scan.strict if scan is not None and isinstance(scan.strict, KnownChains) else None
    x = at + 2
    # Where candidates are few among the prefixes, each candidate's chain is followed on
    # its own first (cost per candidate and prefix); where they are many, or some are
    # still going after FRONTIER_STEPS prefixes, every prefix position's chain at once by
    # pointer jumping (cost per prefix of the window) decides them all.
    if at.size * FRONTIER_SPARSE <= np.count_nonzero(known):
        run, why, to, k, work = candidate_runs(length, known, x, w0, limit, count, chains)
    else:  # every candidate is left to chain_runs below (none is decided: run 0 < count)
        run, why, work = np.zeros(at.size, np.int64), np.full(at.size, _LIVE, np.int8), 0
        to, k = np.full(at.size, -1, np.int64), np.zeros(at.size, np.int64)
    if ((why == _LIVE) & (run < count)).any():
        reached: list = []
        runs, stops, more = chain_runs(length, w0, r1 - w0, limit, int(count.max()), CHAIN_BUDGET * at.size,
                                       chains.memo_at if chains is not None else None,
                                       reached if chains is not None else None, known)
        work += more
        run, why = runs[x].astype(np.int64), stops[x]
        if chains is not None:
            to = reached[0][x].astype(np.int64)
            k = run - runs[np.maximum(to, 0)]
    short = run < count
    ok[at[short & (why == _INVALID)]] = False
    if chains is not None:
        # What the pass learnt of the candidates it keeps is told to the chains, so asking
        # one (a follow check, the resync) walks nothing: a chain that runs past the buffer
        # before its count (``_NEED_MORE`` unless the buffer ends the capture), and one that
        # reaches a chain already walked (``runs_found_out_of_order``: each candidate's 17
        # new prefixes, then the chain the first walk took). A join after 0 packets is a
        # first prefix walked itself: nothing to tell (``validate_across_many_runs``: every
        # candidate's; telling them cost two position arrays zeroed, 17 MB each at 4 MB).
        cut = short & (why == _NEED_MORE)
        chains.note_runs_past_end(w0 + x[cut], run[cut])
        joins = ok[at] & (to >= 0) & (k > 0)
        chains.note_joins(w0 + x[joins], k[joins], w0 + to[joins])
    # At the capture's end a message whose chain runs past the buffer never validates,
    # nor one longer than the bytes left (each packet is at least 2 + the shortest length).
    drop = at[(short & (why == _NEED_MORE)) | (w0 + at + 2 + count * (2 + _SHORTEST) > limit)]
    final = ok
    if drop.size:  # (else the same mask: _Scan._block lists its candidates once for both keys)
        final = ok.copy()
        final[drop] = False
    return ok, work + r1 - w1, {"raw": ok, "raw-final": final}


_raw_plausible.blocks = RAW_SPAN
_raw_plausible.with_scan = True  # _Scan._block passes itself: the chains walked so far decide more
_raw_plausible.span = True  # reads window[0] and window[-1] only (a range will do)


def _record_length(fmt: RecordFormat, a: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The u32 message length of the records at ``at`` (their headers fit)."""
    x = at + fmt.length_at
    if fmt.order == ">":
        return (_u16(a, x) << 16) | _u16(a, x + 2)
    return (_u16le(a, x + 2) << 16) | _u16le(a, x)


def _record_plausible(fmt: RecordFormat, final: bool):
    """The vectorised pre-filter of ``fmt``'s candidate record starts: ``fmt.candidates``,
    then the first ``PRECHECK_STEPS`` packets of each record's message checked at once
    (numpy). A record whose message has an unknown length, or cannot end exactly where
    the record does, can never validate (``_record_validates``), so the resync's Python
    loop never sees it; records running past the buffer are left to the exact checks,
    unless the buffer is the capture's end (``final``: the resync skips them).
    Returns (mask, chain steps walked); work is at most ``PRECHECK_STEPS`` per candidate."""

    def mask(a: np.ndarray, window: np.ndarray):
        ok = fmt.candidates_span(a, int(window[0]), int(window[-1]) + 1)  # a window is contiguous
        c = window[ok]
        if not c.size:
            return ok, 0
        s = c + fmt.header
        e = s + _record_length(fmt, a, c)
        count = _u16(a, s)
        x = s + 4 + _u16(a, s + 2)  # the first length is known (fmt.candidates)
        left = count - 1
        # count packets of known lengths fill between count x the shortest and count x
        # the longest (prefixes included): a record of another size can never hold them
        # (a record running past the buffer needs more bytes whatever it holds: undecided)
        size = e - s - 2
        fits = e <= a.size
        invalid = (size < count * (2 + _SHORTEST)) | (size > count * (2 + _LONGEST))
        invalid = invalid | ~fits if final else invalid & fits
        alive = np.flatnonzero(fits & ~invalid)
        steps = c.size
        for _ in range(PRECHECK_STEPS):
            if not alive.size:
                break
            xs, ls, es = x[alive], left[alive], e[alive]
            done = ls == 0
            invalid[alive[done & (xs != es)]] = True  # all packets, but not the record's end
            # a packet still to come whose prefix is not inside the record: it cannot end there
            short = ~done & (xs + 2 > es)
            invalid[alive[short]] = True
            go = ~done & ~short
            alive, xs, ls = alive[go], xs[go], ls[go]
            length = _u16(a, xs)
            steps += xs.size
            known = KNOWN_MASK[length]
            invalid[alive[~known]] = True
            alive, xs, ls, length = alive[known], xs[known], ls[known], length[known]
            x[alive] = xs + 2 + length
            left[alive] = ls - 1
        ok[np.flatnonzero(ok)[invalid]] = False
        return ok, steps

    mask.blocks = RAW_SPAN  # blocks asked in a row: one wider pass (each position is decided alone)
    return mask


_RECORD_MASKS: dict[tuple[str, bool], object] = {}
_SHORTEST, _LONGEST = min(protocol.KNOWN_LENGTHS), max(protocol.KNOWN_LENGTHS)


ANCHOR_BATCH = 16  # candidates the raw anchor search decides at once, at first (then doubled)
VALID_HEAD = 4  # candidates the look before the anchor asks one by one before its batches
MAX_ANCHOR_BATCH = 4096


def _batches(blocks):
    """The candidates of successive blocks (lists) as int64 arrays of growing size: the
    first ones alone (an anchor is usually found at once), then more at a time (a block
    of a crafted input may hold a few candidates each, and a vectorised step costs the
    same for one as for thousands)."""
    want, held, size = ANCHOR_BATCH, [], 0
    for got in blocks:
        held.append(got)
        size += len(got)
        if size >= want:
            yield np.asarray(held[0] if len(held) == 1 else [q for part in held for q in part], dtype=np.int64)
            held, size, want = [], 0, min(2 * want, MAX_ANCHOR_BATCH)
    if held:
        yield np.asarray([q for part in held for q in part], dtype=np.int64)


class AnchorSearch:
    """``Framer``'s resynchronisation (one of its bases)."""

    @staticmethod
    def _lenient_outcome(scan: _Scan, e: int, final: bool) -> int:
        """What a lenient ``message_end`` result ``e`` (already discarded, as ``_INVALID``,
        where a message that validates hides it) decides at a start that holds no strict
        message: ``e`` itself when a message of unknown-length packets ends there and
        something follows it, ``_NEED_MORE`` when that depends on bytes past this chunk
        (carry, ask again), else ``_INVALID`` (a bad region up to the next start). One rule
        for the per-message walk and the array pass."""
        if e == _NEED_MORE:
            return _INVALID if final else _NEED_MORE
        if e < 0:
            return _INVALID
        ok = AnchorSearch._followed(scan, e, final, junk=False)
        if ok is _NEED_MORE:
            return _NEED_MORE
        return e if ok else _INVALID

    @staticmethod
    def _followed(scan: _Scan, e: int, final: bool, junk: bool):
        """Whether a message (or the end) follows ``e`` within ``FOLLOW_WINDOW`` bytes.

        Zero bytes between are heartbeats; with ``junk`` any bytes may be (a recorder
        writing a newline after each message). True/False, or ``_NEED_MORE`` when the
        answer depends on bytes past the end of a chunk that is not the last: the caller
        carries and asks again with more data, so the decoding never depends on where
        a chunk ends.
        """
        key = (e, final, junk)
        got = scan.follows.get(key)
        if got is None:
            got = scan.follows[key] = AnchorSearch._follow_check(scan, e, final, junk)
        return got

    @staticmethod
    def _follow_check(scan: _Scan, e: int, final: bool, junk: bool):
        """``_followed`` itself (memoised per buffer: candidates whose messages all end at
        one place, e.g. the end of one long chain, ask the same question each)."""
        buf, limit = scan.buf, scan.limit
        if e >= limit:
            return True if final else _NEED_MORE
        w_end = min(e + FOLLOW_WINDOW, limit)
        stop = limit - 3  # positions from here cannot be pre-checked (a count and a length)
        # Only candidate starts the vectorised pre-check keeps can hold a message (the
        # rest are no message at all), so only they are asked, in order.
        key, mask = ("raw", _raw_plausible) if scan.shortcuts else ("raw-plain", _raw_candidates)
        positions = list(scan.candidates(e, min(w_end, stop), key, mask, 4))
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

    # Off, the raw resync asks every candidate the 16-packet pre-check keeps, also those
    # longer than the bytes left at the capture's end (the differential tests' oracle).
    shortcuts = True

    def _candidate_filter(self, fmt: RecordFormat | None, final: bool = False):
        """(key, vectorised pre-filter, bytes it reads) of candidate starts: raw messages,
        or records of ``fmt`` (``final``: the buffer ends the capture)."""
        if fmt is None:
            return "raw-final" if final and self.shortcuts else "raw", _raw_plausible, 4
        key = (fmt.name, final)
        mask = _RECORD_MASKS.get(key)
        if mask is None:
            mask = _RECORD_MASKS[key] = _record_plausible(fmt, final)
        return key, mask, fmt.header + 4

    def _validates(self, scan: _Scan, c: int, fmt: RecordFormat | None) -> int:
        """End of a message (raw) or record (``fmt``) at ``c`` that validates completely, else a code."""
        return scan.strict.message_end(c) if fmt is None else self._record_validates(scan, c, fmt)

    def _find_anchor(self, scan: _Scan, start: int, final: bool, fmt: RecordFormat | None = None):
        """The first position >= ``start`` where a message (raw) or a record holding one
        (``fmt``; a corrupt length prefix costs only its own record) validates completely
        and is followed by another (or the end): (``_FOUND``, q); (``_MORE``, q) when the
        answer needs the next chunk (carry from q); (``_NONE``, end of the buffer)."""
        got = scan.remembered(start)
        if got is not None:
            return got
        key, mask, reach = self._candidate_filter(fmt, final)
        end = scan.limit - reach + 1  # the first start whose pre-filtered bytes do not all fit
        if fmt is None and isinstance(scan.strict, KnownChains):
            answer = self._raw_anchor(scan, start, end, final, key, mask, reach)
        else:
            answer = None
            for q in scan.candidates(start, end, key, mask, reach):
                answer = self._anchor_at(scan, q, final, fmt)
                if answer is not None:
                    break
        if answer is None:
            # Keep the last bytes of a chunk: a message or record header may start there.
            answer = (_NONE, scan.limit) if final else (_MORE, max(start, end))
        scan.hint = (start, answer[0], answer[1])
        return answer

    def _anchor_at(self, scan: _Scan, q: int, final: bool, fmt: RecordFormat | None):
        """``_find_anchor``'s question at one candidate ``q``: its answer, or None (go on)."""
        scan.checks += 1
        e = self._validates(scan, q, fmt)
        if e == _NEED_MORE:
            return None if final else (_MORE, q)
        if e < 0:
            return None
        if fmt is None:
            follows = self._followed(scan, e, final, junk=True)
        else:
            follows = self._record_followed(scan, e, final, fmt)
        if follows is _NEED_MORE:
            return _MORE, q  # decide at q once the next chunk is here
        return (_FOUND, q) if follows else None

    def _raw_anchor(self, scan: _Scan, start: int, end: int, final: bool, key, mask, reach: int):
        """``_find_anchor`` for raw messages, a block of candidates at a time: their message
        ends read from the chains' paths at once (``KnownChains.message_ends``) and the
        follow checks of those ends made at once (``_follows_many``); a candidate neither
        decides is asked alone (``_anchor_at``), in order. Same answers, same checks."""
        for qs in _batches(scan.candidate_blocks(start, end, key, mask, reach)):
            ends = scan.strict.message_ends(qs)
            follows = np.zeros(qs.size, dtype=np.int8)
            valid = np.flatnonzero(ends >= 0)
            if valid.size:
                follows[valid] = self._follows_many(scan, ends[valid], final)
            alone = (ends == UNDECIDED) | (follows == UNDECIDED)
            decisive = alone | (ends >= 0) & (follows != 0)
            if not final:
                decisive |= ends == _NEED_MORE
            at = 0
            for k in np.flatnonzero(decisive).tolist():
                scan.checks += k - at  # the candidates before it, each asked and passed over
                at = k + 1
                q = int(qs[k])
                if alone[k]:
                    answer = self._anchor_at(scan, q, final, None)
                    if answer is not None:
                        return answer
                    continue
                scan.checks += 1
                return (_FOUND, q) if ends[k] >= 0 and follows[k] == 1 else (_MORE, q)
            scan.checks += qs.size - at
        return None

    def _follows_many(self, scan: _Scan, ends: np.ndarray, final: bool) -> np.ndarray:
        """``_followed(…, junk=True)`` of each message end in ``ends`` at once: 1 (True),
        0 (False), -1 (``_NEED_MORE``), or ``UNDECIDED`` (a candidate after it the chains
        cannot answer without a walk, or an end near the buffer's end: asked alone)."""
        out = np.full(ends.size, UNDECIDED, dtype=np.int8)
        limit = scan.limit
        past = ends >= limit
        out[past] = 1 if final else -1
        inside = np.flatnonzero(~past & (ends + FOLLOW_WINDOW <= limit - 3))
        if not inside.size:
            return out
        e = ends[inside]
        # the candidates in each [e, e + FOLLOW_WINDOW), as _follow_check asks them
        key, mask = ("raw", _raw_plausible) if scan.shortcuts else ("raw-plain", _raw_candidates)
        blocks = np.unique(np.concatenate([e // CANDIDATE_BLOCK, (e + FOLLOW_WINDOW - 1) // CANDIDATE_BLOCK]))
        c = np.concatenate([np.asarray(scan.block_candidates(key, b, mask, 4), dtype=np.int64)
                            for b in blocks.tolist()])
        lo, hi = np.searchsorted(c, e), np.searchsorted(c, e + FOLLOW_WINDOW)
        r = scan.strict.message_ends(c)
        scan.checks += c.size
        # the first candidate in the window that decides: a message, or one that needs
        # bytes past the buffer, or one the chains cannot answer
        decides = np.flatnonzero((r >= 0) | (r == _NEED_MORE) | (r == UNDECIDED))
        k = np.append(decides, c.size)[np.searchsorted(decides, lo)]
        hit = k < hi
        rk = r[k[hit]]
        got = np.full(e.size, 0, dtype=np.int8)
        got[hit] = np.where(rk >= 0, 1, np.where(rk == _NEED_MORE, 1 if final else -1, UNDECIDED))
        # none: only zero bytes (heartbeats) may fill the window (junk is allowed before a
        # message, not in place of one)
        none = np.flatnonzero(~hit)
        if none.size:
            window = scan.a[e[none][:, None] + np.arange(FOLLOW_WINDOW)]
            scan.scanned += window.size
            got[none] = np.where(window.any(axis=1), 0, 1)
        out[inside] = got
        return out

    def _valid_before(self, scan: _Scan, c: int, anchor: int, kind: str, fmt: RecordFormat | None) -> bool:
        """Whether ``_next_start`` resumes at ``c`` rather than at ``anchor``."""
        scan.checks += 1
        e = self._validates(scan, c, fmt)
        # A whole valid message that outruns an undecided anchor: whether it is taken
        # depends on bytes past this chunk, so it is carried rather than the bad region
        # closed over it (decoding must not depend on chunking).
        return 0 <= e <= anchor or (e > anchor and kind == _MORE)

    def _raw_valid_before(self, scan: _Scan, start: int, anchor: int, kind: str, key, mask, reach: int) -> int:
        """``_next_start``'s look before the anchor for raw messages, candidates in batches
        (their ends read at once, ``KnownChains.message_ends``; undecided ones alone).
        The first ``VALID_HEAD`` candidates are asked one by one (``memo_end``, plain
        ints): after a short bad region the first one usually decides, and a batch's
        read costs a fixed ~25 numpy calls (``interleaved_chains``: 300 regions, one
        batch each). The same blocks are made as before (work counts them)."""
        head = VALID_HEAD
        for qs in _batches(scan.candidate_blocks(start, anchor, key, mask, reach)):
            if head:
                for c in qs[:head].tolist():
                    e = scan.strict.memo_end(c)
                    if e == UNDECIDED:
                        if self._valid_before(scan, c, anchor, kind, None):
                            return c
                        continue
                    scan.checks += 1
                    if 0 <= e <= anchor or (e > anchor and kind == _MORE):
                        return c
                qs, head = qs[head:], 0
                if not qs.size:
                    continue
            ends = scan.strict.message_ends(qs)
            undecided = ends == UNDECIDED
            decisive = undecided | (ends >= 0) & (ends <= anchor)
            if kind == _MORE:
                decisive |= ends > anchor
            at = 0
            for k in np.flatnonzero(decisive).tolist():
                scan.checks += k - at
                at = k + 1
                c = int(qs[k])
                if not undecided[k]:
                    scan.checks += 1
                    return c
                if self._valid_before(scan, c, anchor, kind, None):
                    return c
            scan.checks += qs.size - at
        return anchor

    def _next_start(self, scan: _Scan, start: int, final: bool, fmt: RecordFormat | None = None):
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
            key, mask, reach = self._candidate_filter(fmt, final)
            if fmt is None and isinstance(scan.strict, KnownChains):
                q = self._raw_valid_before(scan, start, anchor, kind, key, mask, reach)
            else:
                q = anchor
                for c in scan.candidates(start, anchor, key, mask, reach):
                    if self._valid_before(scan, c, anchor, kind, fmt):
                        q = c
                        break
            scan.valid_hint = (start, anchor, q)
        if q < anchor and kind == _MORE and not 0 <= self._validates(scan, q, fmt) <= anchor:
            return _MORE, q
        return (_FOUND, q) if q < anchor else (kind, anchor)

"""``KnownChains``: the memoised packet chains the walks use (strict and lenient), their
runs of known-length packets taken a segment at a time by the regular-expression engine
(``packet_re``) and remembered in position-indexed arrays, instead of a Python step and
a dict entry per prefix (``PacketChains``: the reference the tests compare against, and
the chains of the walks with their shortcuts off)."""

from __future__ import annotations

import mmap

import numpy as np

from app.core.framing import packet_re
from app.core.framing.common import _INVALID, _NEED_MORE, KNOWN_SET, RUN_AFTER, same_length_run
from app.core.framing.messages import PacketChains

SCALAR_STEPS = 24  # prefixes a walk takes one by one before it goes a segment at a time
MIN_SEGMENT = 512  # bytes of the first segment (a whole packet of any known length fits)
MAX_SEGMENT = 1 << 20
UNDECIDED = -9  # message_ends: not decided without a walk
_JOIN_STEPS = 255  # note_joins keeps joins of at most this many packets (8 bits) ...
_JOIN_REACH = 1 << 23  # ... and fewer bytes on than this (23 bits: an int32 with them)
MAX_DUE = 1024  # known lengths taken one by one at most between two tries of a stretch
DENSE_NUMBERS = 1 << 17  # positions numbered past which the numbered arrays get huge pages


def _fresh_array(size: int, dtype) -> np.ndarray:
    """A zeroed array of ``size`` on memory mapped for it alone (anonymous ``mmap``), not
    from the heap: the system backs (and zeroes) a page only when it is first written,
    and freeing the array unmaps it.

    For the chains' arrays sized for every position of the buffer of which walks often
    write a few pages (the numbered arrays: one entry per position numbered; the lenient
    chains' position map: ``runs_found_out_of_order`` writes 4 of its 4,100 pages). From
    the heap, a 4 MB buffer's chains took ~100 MB of it that they freed at once after the
    resync, and the allocator gave the heap's top back to the system: the decoded rows
    made next (17 MB in ``runs_found_out_of_order``) took a page fault per 4 kB again,
    ~4,400 faults and 7-10 ms of system time a decode."""
    nbytes = max(1, size * np.dtype(dtype).itemsize)
    if hasattr(mmap, "MAP_PRIVATE"):  # (a shared anonymous mapping is shared memory: no huge pages)
        pages = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    else:  # Windows: anonymous memory, zeroed likewise
        pages = mmap.mmap(-1, nbytes)
    return np.frombuffer(pages, dtype=dtype, count=size)


def _huge_pages(array: np.ndarray) -> None:
    """Ask for huge pages for the pages of a ``_fresh_array`` not touched yet: a fault per
    2 MB (the kernel zeroes it whole) instead of one per 4 kB (~3 us each here); a no-op
    where the system has none, and for a heap array (numpy asks for them itself for its
    arrays of 4 MB or more)."""
    while isinstance(array.base, np.ndarray):  # (a view of a spare: ``ChainSpares``)
        array = array.base
    pages = getattr(array.base, "obj", None)  # (numpy holds a memoryview of the mapping)
    if isinstance(pages, mmap.mmap) and hasattr(mmap, "MADV_HUGEPAGE"):
        pages.madvise(mmap.MADV_HUGEPAGE)


def _numbered_array(size: int, dtype) -> np.ndarray:
    """An array of one value per number (path, position), allocated for as many numbers
    as positions but written only up to the numbers given (the first ``_numbered``; none
    is read before a walk writes it): ``_fresh_array``, whose pages past those are never
    backed (from the heap, calloc cleared reused memory for nothing, ~1 ms for each 16 MB
    array of a 4 MB chunk). Written in order: in 4 kB pages until the walks number
    ``DENSE_NUMBERS`` positions (128 pages of each: about where faulting 4 kB pages costs
    what zeroing a huge one does), then in huge ones."""
    return _fresh_array(size, dtype)


class ChainSpares:
    """The chains' position-sized arrays kept from one buffer's walk for the next buffer's
    chains (a reader's chunks of one capture: ``Framer`` holds one), zeroed where they
    were written when taken again (never, after a capture's last chunk).

    At a reader's 16 MB chunks each of them is 64 MB: past the 32 MB above which the C
    allocator always maps a block anew and unmaps it when freed, so every chunk's strict
    map (written all over a damaged buffer) and numbered arrays came on fresh pages,
    zeroed by the system as the walks first wrote them (``runs_found_out_of_order`` read
    in 16 MB chunks: ~30 ms of system time a chunk; a memset of the map's 64 MB, pages
    already backed, ~12 ms). Handed on, their pages stay backed; an array is allocated
    anew only for a buffer longer than it (with room for a longer carry: the chunks
    differ by the bytes carried)."""

    def __init__(self):
        self._free: dict = {}  # key -> (whole array, size used, where written: see give)

    def take(self, key, size: int, make) -> np.ndarray:
        """A zeroed array of ``size`` for ``key`` (the chains' kind and the array's name):
        the one handed back under it if long enough, zeroed where written, else
        ``make(n)`` for a bit more."""
        spare = self._free.pop(key, None)
        if spare is None or spare[0].size < size:
            return make(size + size // 8)[:size]
        full, used, written = spare
        if written is None:
            full[:used].fill(0)
        for at in written or ():
            full[at] = 0
        return full[:size]

    def give(self, key, array: np.ndarray, written=()) -> None:
        """Keep ``array`` (a view ``take`` gave: its whole array is kept) for ``key``;
        ``written``: index arrays of the places to zero before it is taken again (None:
        all of it; none: it is read only where written)."""
        full = array.base if isinstance(array.base, np.ndarray) else array
        self._free[key] = (full, array.size, written)


class KnownChains(PacketChains):
    """Memoised chains of length prefixes over one buffer: a ``PacketChains`` (``run``,
    ``stop``, ``jump``, ``message_end``, ``describe``, ``known``, ``steps``, the same
    answers) that walks and remembers its paths faster.

    A walk from a prefix not yet on a path goes ``SCALAR_STEPS`` prefixes one by one
    (most walks end there), then a segment at a time: the regular-expression engine
    finds the segment's whole known packets (``packet_re.run_prefixes``), and
    numpy checks them against the paths walked before (the walk stops at the first
    prefix already on one and continues there). Segments double from a size on the order
    of what the walk already took, so the prefixes a walk reads past the one where it
    joins an earlier path are at most about as many as it took: every prefix is read a
    bounded number of times whatever the input, and ``steps`` counts every one read.

    The positions on paths are numbered in the order the paths are made (a path's are
    consecutive): one int32 array over the buffer maps a position to its number + 1 (0:
    on no path), one per number gives its path and one its position (a path's positions
    are kept once, there: ``_nodes`` holds views of it); all are allocated at the first
    walk, the last two (and the lenient chains' map) on fresh pages backed only where
    written (``_fresh_array``).
    """

    def __init__(self, buf, accept=KNOWN_SET, limit: int | None = None, spares: ChainSpares | None = None):
        self.buf = buf
        self._spares = spares  # arrays handed on from an earlier buffer's chains, and back
        self.accept = accept  # the lengths a chain takes: the known ones, and more (lenient)
        self.limit = len(buf) if limit is None else limit
        self._size = self.limit + 4 + max(accept)  # a chain's last position may lie past the limit
        self._a: np.ndarray | None = None  # the buffer as uint8, once a run of lenient lengths is walked
        self._where_at: np.ndarray | None = None  # position -> its number + 1 (0: on no path)
        self._mv = None  # the same, as a memoryview (scalar reads and writes at dict speed)
        self._path_of: np.ndarray | None = None  # number -> path
        self._pv = None  # the same, as a memoryview
        self._pos_of: np.ndarray | None = None  # number -> position
        self._numbered = 0  # positions numbered so far
        self._dense = False  # DENSE_NUMBERS positions numbered (huge pages asked)
        self._first: list[int] = []  # per path: the number of its first position
        self._nodes: list = []
        self._next: list[tuple[int, int] | None] = []
        self._run0: list[int] = []
        self._stop: list[int] = []
        # per path as arrays (capacity doubled as paths are added): memo_at, message_ends
        self._run0_np = np.zeros(64, dtype=np.int64)
        self._stop_np = np.zeros(64, dtype=np.int8)
        self._first_np = np.zeros(64, dtype=np.int64)
        self._len_np = np.zeros(64, dtype=np.int64)
        # What vectorised passes told (``note_*``), per prefix position (allocated when first
        # told): the run + 1 of a chain that runs past the buffer before as many packets
        # as a candidate needed (such a candidate is _NEED_MORE). The packets to, and the
        # distance to, the prefix on a path a chain joins (``note_joins``) are kept in
        # ``_where_at`` itself, negated: such a position is on no path, and a walk taking
        # it later numbers it over.
        self._past: np.ndarray | None = None
        self._told_at: list[np.ndarray] = []  # where note_joins wrote (with spares: zeroed at release)
        # Chains of exactly the known lengths over the same buffer and limit (the strict
        # ones, for the lenient): a stretch from a prefix they have walked reads its
        # packets off their paths instead of matching them again.
        self.known_chains: KnownChains | None = None
        self.steps = 0

    def note_runs_past_end(self, at: np.ndarray, run: np.ndarray) -> None:
        """Remember that the chain from each of ``at`` holds ``run`` packets and then runs
        past the buffer (found by a vectorised pass): ``message_end`` asks no walk there
        for a count above that."""
        if at.size:
            if self._past is None:
                self._past = np.zeros(self._size, dtype=np.int32)
            self._past[at] = run + 1

    def note_joins(self, at: np.ndarray, steps: np.ndarray, to: np.ndarray) -> None:
        """Remember that the chain from each of ``at`` reaches the prefix ``to`` (already
        on a path) after ``steps`` known packets (found by a vectorised pass):
        ``message_end`` there walks nothing.

        Kept as ``-(distance << 8 | steps)`` at the position in ``_where_at`` (an int32
        with it; its pages are the walked paths', already touched: an array of its own,
        written at ~11,000 places spread over 4 MB, cost ~2 ms of page faults a decode
        in ``runs_found_out_of_order``); a join of more than 255 packets or 8 MiB on is
        not kept (a memo only: ``message_end`` walks there instead), nor one at a
        position walked since. A pre-filter pass's own rounds tell at most
        ``FRONTIER_STEPS`` packets."""
        distance = to - at
        fit = (steps > 0) & (steps <= _JOIN_STEPS) & (distance < _JOIN_REACH)
        if not fit.all():
            at, steps, distance = at[fit], steps[fit], distance[fit]
        if at.size:
            where = self._arrays()
            free = where[at] <= 0
            if not free.all():
                at, steps, distance = at[free], steps[free], distance[free]
            where[at] = -((distance << 8) | steps)
            if self._spares is not None:
                self._told_at.append(at)

    def prefixes(self, j: int, n: int) -> np.ndarray:
        """The positions of the ``n`` prefixes in a row from ``j`` (``n <= run(j)``), read
        off the paths (int64): what a walk of them would find, one slice per path."""
        pid, i = self._where(j)
        parts = []
        while n > 0:
            first, size = self._first[pid], len(self._nodes[pid])
            take = min(n, size - i)
            parts.append(self._pos_of[first + i : first + i + take])
            n -= take
            if n:
                pid, i = self._next[pid]
                self.steps += 1
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def walked_span(self, lo: int, out: np.ndarray) -> None:
        """Whether a path holds each position of [lo, lo + out.size), as 1 or 0 into the
        int8 array ``out`` (0 past the positions a path may hold): one slice, not a gather."""
        top = min(lo + out.size, self._size)
        if self._where_at is None or top <= lo:
            out[:] = 0
            return
        np.greater(self._where_at[lo:top], 0, out=out[: top - lo].view(np.bool_))
        out[top - lo :] = 0

    def memo_at(self, at: np.ndarray):
        """(run, stop) of each prefix position of ``at`` already on a path (run -1 at the
        others), as ``run`` and ``stop`` answer there."""
        if self._where_at is None or not at.size:
            return np.full(at.size, -1, dtype=np.int64), np.zeros(at.size, dtype=np.int8)
        number = np.maximum(self._where_at[at], 0).astype(np.int64)  # (a told join: on no path)
        number -= 1
        # Every position read at once, on a path or not (-1 reads the last number's path,
        # any path: its answers are replaced below); int64 indices (int32 ones cost numpy
        # a conversion per gather).
        pid = self._path_of[number].astype(np.int64)
        run = self._run0_np[pid] - number + self._first_np[pid]
        stop = self._stop_np[pid]
        off = number < 0
        if off.any():
            run[off] = -1
            stop[off] = 0
        return run, stop

    def message_ends(self, q: np.ndarray) -> np.ndarray:
        """``message_end`` of each start in ``q`` (int64; a count and a first prefix inside
        the buffer each) where the paths walked so far decide it without a step: its end
        or a code, else ``UNDECIDED`` (a first prefix not walked yet, an end on another path
        than the first prefix's). Vectorised: the resync asks thousands at once."""
        out = np.full(q.size, UNDECIDED, dtype=np.int64)
        if self._where_at is None or not q.size:
            return out
        if self._a is None:
            self._a = np.frombuffer(self.buf, dtype=np.uint8)
        a = self._a
        n = (a[q].astype(np.int64) << 8) | a[q + 1]
        out[n == 0] = _INVALID
        x = q + 2
        where = self._where_at[x].astype(np.int64)
        number = where - 1  # (below -1: a told join)
        if self._past is not None:  # told: runs past the buffer before the count
            run = self._past[x].astype(np.int64) - 1
            cut = (number < 0) & (run >= 0) & (run < n)
            out[cut] = _NEED_MORE
            n = np.where(cut, 0, n)
        if where.min() < 0:  # told: joins a walked path after k packets
            told = -np.minimum(where, 0)
            k = told & _JOIN_STEPS
            join = (number < 0) & (k > 0) & (n > k)
            at = np.flatnonzero(join)
            number[at] = self._where_at[x[at] + (told[at] >> 8)].astype(np.int64) - 1
            n = np.where(join, n - k, n)
        on = np.flatnonzero((number >= 0) & (n > 0))
        number, n = number[on], n[on]
        pid = self._path_of[number]
        idx = number - self._first_np[pid]
        short = self._run0_np[pid] - idx < n
        out[on[short]] = self._stop_np[pid[short]]
        fit = ~short & (idx + n < self._len_np[pid])  # the end is on the same path
        e = self._pos_of[number[fit] + n[fit]]
        out[on[fit]] = np.where(e <= self.limit, e, _NEED_MORE)
        return out

    def memo_end(self, q: int) -> int:
        """``message_ends`` of the one start ``q``, read with plain ints: the same answer
        without its ~25 numpy calls (~80 us), for the resync's first candidates, where
        one usually decides (after a short bad region: ``interleaved_chains``' 300)."""
        mv = self._mv
        if mv is None:
            return UNDECIDED
        buf = self.buf
        n = buf[q] << 8 | buf[q + 1]
        if n == 0:
            return _INVALID
        told = self._told(q + 2, n)
        if type(told) is int:
            return told
        x, n = told
        number = mv[x] - 1
        if number < 0:
            return UNDECIDED
        pid = self._pv[number]
        idx = number - self._first[pid]
        if self._run0[pid] - idx < n:
            return self._stop[pid]
        if idx + n < len(self._nodes[pid]):  # the end is on the same path
            e = self._posv[number + n]
            return e if e <= self.limit else _NEED_MORE
        return UNDECIDED

    def known(self, y: int) -> bool:
        """Whether the chain from ``y`` is already walked (``run``, ``jump`` and
        ``message_end`` there cost no step)."""
        return self._mv is not None and 0 <= y < self._size and self._mv[y] > 0

    def joined(self, y: int) -> bool:
        """Whether a vectorised pass told that the chain from ``y`` joins a walked path
        (``note_joins``): ``message_end`` there walks at most the packets to it."""
        return self._mv is not None and 0 <= y < self._size and self._mv[y] < 0

    def _where(self, x: int) -> tuple[int, int]:
        mv = self._mv
        if mv is not None and x < self._size:
            got = mv[x]
            if got > 0:
                return self._path_index(got - 1)
        return self._walk(x)

    def _path_index(self, number: int) -> tuple[int, int]:
        pid = self._pv[number]
        return pid, number - self._first[pid]

    def _arrays(self) -> np.ndarray:
        """``_where_at``, with the arrays of the numbered positions, allocated at first use."""
        if self._mv is None:
            # The strict chains' map, written all over a damaged capture's buffer by its
            # resyncs' walks (every page in runs_found_out_of_order), from the heap (mapped
            # fresh too, measured: the allocator, no longer holding one heap block that
            # large, gave the decoded rows' pages back at the end of every decode instead,
            # ~4,300 faults again in runs_found_out_of_order at 4 MB). Other
            # chains' (lenient: they walk where a strict chain stops at an unknown length) is
            # often written at a few places (4 pages in runs_found_out_of_order), else over
            # the buffer: a ``_fresh_array`` in huge pages (a walk reads the map before it
            # writes its path there: a page read untouched is a fault too, so huge pages
            # asked only once a walk proves long come too late; validate_across_many_runs'
            # lenient walk of 5,000 packets reads and writes ~3,800 pages of 4 kB).
            if self.accept == KNOWN_SET:
                self._where_at = self._array("map", lambda n: np.zeros(n, dtype=np.int32))
            else:
                self._where_at = self._array("map", lambda n: _fresh_array(n, np.int32))
                _huge_pages(self._where_at)
            self._mv = memoryview(self._where_at)
            # a position is numbered once, on the one path that holds it: at most size numbers
            self._path_of = self._array("path", lambda n: _numbered_array(n, np.int32))
            self._path_of[-1] = 0  # memo_at reads number -1 (a position on no path): any path
            self._pv = memoryview(self._path_of)
            # positions fit int32 in any buffer a reader hands the chains (chunks of MBs)
            wide = np.int32 if self._size < 1 << 31 else np.int64
            self._pos_of = self._array("pos", lambda n: _numbered_array(n, wide))
            self._posv = memoryview(self._pos_of)
        return self._where_at

    def _array(self, name: str, make) -> np.ndarray:
        """The array ``name`` of ``_size`` (zeroed where read before written): a spare's
        when the chains have spares, else ``make(_size)``."""
        if self._spares is None:
            return make(self._size)
        return self._spares.take((self.accept == KNOWN_SET, name), self._size, make)

    def release(self) -> None:
        """Hand the position arrays to the spares (if any) for the next buffer's chains,
        with where the walks and ``note_joins`` wrote the map (zeroed if taken again; the
        numbered arrays are read only where written): the chains answer nothing after.

        Zeroing a place of the numbered ones costs ~15 ns, a memset ~0.6 ns a position:
        past one position in 24 written, the whole map is zeroed."""
        spares, where = self._spares, self._where_at
        if spares is None or where is None:
            return
        written = [self._pos_of[: self._numbered].copy(), *self._told_at]
        if sum(at.size for at in written) * 24 >= where.size:
            written = None
        kind = self.accept == KNOWN_SET
        spares.give((kind, "map"), where, written)
        spares.give((kind, "path"), self._path_of)
        spares.give((kind, "pos"), self._pos_of)
        self._where_at = self._mv = self._path_of = self._pv = self._pos_of = self._posv = None
        self._nodes, self._told_at = [], []

    def _walk(self, x: int) -> tuple[int, int]:
        buf, limit, accept = self.buf, self.limit, self.accept
        self._arrays()
        mv, size = self._mv, self._size
        pid = len(self._nodes)
        pieces: list = []  # the path's positions in order: lists (one by one), arrays (stretches)
        nodes: list[int] = []
        append = nodes.append
        cont = None
        stop = _INVALID
        y = x
        # Known lengths in a row taken one by one, and how many before a stretch is tried
        # (doubled after a stretch that took few: a walk of mixed lenient lengths then
        # pays a bounded share for the tries).
        row, due = 0, SCALAR_STEPS
        last = same = 0  # the last lenient length and how many times in a row it came
        while True:
            got = mv[y] if y < size else 0
            if got > 0:
                cont = self._path_index(got - 1)
                break
            append(y)
            if y + 2 > limit:
                stop = _NEED_MORE
                break
            length = buf[y] << 8 | buf[y + 1]
            if length not in accept:
                break
            y += 2 + length
            if length not in KNOWN_SET:  # a lenient length: taken one by one, unless a run of equal ones
                row = 0
                if length != last:
                    last, same = length, 0
                    continue
                same += 1
                if same < RUN_AFTER:
                    continue
                same = 0
                at, y, cont = self._equal_run(y, length)
                if at is not None:
                    pieces.append(nodes)
                    pieces.append(at)
                    nodes = []
                    append = nodes.append
                if cont is not None:
                    break
                continue
            row += 1
            if row < due:
                continue
            row = 0
            at, y, cont = self._stretch(y, y - x)
            if at is not None:
                pieces.append(nodes)
                pieces.append(at)
                nodes = []
                append = nodes.append
                due = SCALAR_STEPS if at.size >= SCALAR_STEPS else min(2 * due, MAX_DUE)
            if cont is not None:
                break
        self.steps += sum(len(p) for p in pieces[::2]) + len(nodes)  # the stretches count their own
        if pieces:
            pieces.append(nodes)
            path = np.concatenate([np.asarray(p, dtype=np.int64) for p in pieces if len(p)])
        else:
            path = nodes
        first = self._numbered
        k = len(path)
        self._numbered += k
        if self._numbered >= DENSE_NUMBERS and not self._dense:  # (before this walk's are written)
            self._dense = True
            _huge_pages(self._path_of)
            _huge_pages(self._pos_of)
        if k > 16:
            self._where_at[path] = np.arange(first + 1, first + 1 + k, dtype=np.int32)
            self._pos_of[first : first + k] = path
        else:
            pv = self._posv
            for i, at in enumerate(path, first + 1):
                mv[at] = i
                pv[i - 1] = at
        self._path_of[first : first + k] = pid
        self._first.append(first)
        # the path's positions are kept once: a view of the numbered positions
        run0, stop = self._add_path(self._posv[first : first + k], cont, stop)
        if pid >= self._run0_np.size:  # the per-path arrays, capacity doubled
            self._run0_np, self._stop_np, self._first_np, self._len_np = (
                np.concatenate([v, np.zeros_like(v)])
                for v in (self._run0_np, self._stop_np, self._first_np, self._len_np))
        self._run0_np[pid] = run0
        self._stop_np[pid] = stop
        self._first_np[pid] = first
        self._len_np[pid] = len(path)
        return pid, 0

    def _equal_run(self, y: int, length: int):
        """The run of packets of ``length`` (a lenient one) in a row from ``y``, by strided
        compares (``same_length_run``), up to the first prefix already on a path: as
        ``_stretch`` answers."""
        if self._a is None:
            self._a = np.frombuffer(self.buf, dtype=np.uint8)
        step = 2 + length
        k = same_length_run(self._a, y, step, length, self.limit, 1 << 30)
        self.steps += k + 1
        if not k:
            return None, y, None
        at = np.arange(y, y + k * step, step, dtype=np.int64)
        return self._cut_at_walked(at) or (at, y + k * step, None)

    def _cut_at_walked(self, at: np.ndarray):
        """Positions ``at`` cut at the first prefix already on a path: (those before it,
        it, its (path, index)), or None when no prefix of ``at`` is on one."""
        if not self._numbered:  # no path yet (a buffer's first walk: in validate_across_many_runs
            return None  # 400,000 prefixes, ~2.5 ms of gather for nothing; told joins are < 0)
        seen = np.flatnonzero(self._where_at[at] > 0)
        if not seen.size:
            return None
        first = int(seen[0])
        y = int(at[first])
        return at[:first], y, self._path_index(self._mv[y] - 1)

    def _stretch(self, y: int, taken: int):
        """The whole known packets in a row from ``y`` (below the limit), a segment at a
        time by the regular-expression engine, up to the first prefix already on a path:
        (their positions or None, the position after them, that path's (path, index) or
        None). Segments start at about twice the bytes the walk ``taken`` so far and
        double; every prefix a segment reads counts in ``steps``."""
        buf, limit = self.buf, self.limit
        known = self.known_chains
        if known is not None and known.known(y):
            return self._stretch_known(y, known)
        parts: list[np.ndarray] = []
        seg = min(max(MIN_SEGMENT, 2 * taken), MAX_SEGMENT)
        cont = None
        while y + 2 <= limit:
            length = buf[y] << 8 | buf[y + 1]
            if length not in KNOWN_SET or y + 2 + length > limit:
                break
            hi = min(limit, y + seg)
            if self._a is None:
                self._a = np.frombuffer(buf, dtype=np.uint8)
            at = packet_re.run_prefixes(self._a, buf, y, hi)  # at least the packet at y: it fits
            last = int(at[-1])
            end = last + 2 + (buf[last] << 8 | buf[last + 1])
            self.steps += at.size
            cut = self._cut_at_walked(at)
            if cut is not None:
                before, y, cont = cut
                parts.append(before)
                break
            parts.append(at)
            y = end
            seg = min(2 * seg, MAX_SEGMENT)
        if not parts:
            return None, y, cont
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), y, cont

    def _stretch_known(self, y: int, known: KnownChains):
        """``_stretch`` from ``y``, a prefix ``known`` (chains of exactly the known lengths)
        has walked: the run of known packets from ``y`` is read off its paths (a lenient
        walk that meets a long chain of known packets the strict walk took, in
        ``validate_across_many_runs`` 144,000 of them, matches none again)."""
        buf, limit = self.buf, self.limit
        n = known.run(y)
        if n and known.jump(y, n) > limit:  # the last packet runs past the limit: not whole
            n -= 1
        if not n:
            return None, y, None
        at = known.prefixes(y, n)
        self.steps += at.size
        cut = self._cut_at_walked(at)
        if cut is not None:
            return cut
        last = int(at[-1])
        return at, last + 2 + (buf[last] << 8 | buf[last + 1]), None

    def _told(self, j: int, n: int):
        """What the pre-filter told of the chain from ``j`` (``note_*``), when no walk has
        taken it: ``_NEED_MORE`` (it runs past the buffer first), or the walked prefix it
        joins and the packets left from there."""
        if self.known(j):
            return j, n
        if self._past is not None and 0 < self._past[j] <= n:  # runs past the buffer first
            return _NEED_MORE
        if self._mv is not None and 0 <= j < self._size and self._mv[j] < 0:
            told = -self._mv[j]
            k = told & _JOIN_STEPS
            if 0 < k < n:  # joins a walked path after k packets
                return j + (told >> 8), n - k
        return j, n


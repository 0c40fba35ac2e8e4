"""``KnownChains`` (the strict and lenient walks' memoised chains, walked a segment at a
time by the regular-expression engine) answers exactly as ``PacketChains`` walked one
prefix at a time, in any order of questions, within the work bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.framing import PacketChains, packet_re
from app.core.framing.chains import KnownChains
from app.core.framing.common import _INVALID, _NEED_MORE, KNOWN_MASK, known_lengths, u16_every
from app.core.framing.messages import LENIENT_LENGTHS, STRICT_LENGTHS
from app.core.framing.packet_re import run_prefixes
from app.core.framing.resync import _EXIT, _LIVE, _raw_plausible, _Scan, candidate_runs
from tests.core.test_resync import CRAFTED, WORK_PER_BYTE, runs_found_out_of_order

LENIENT_MAX_COUNT = 4096


def _pair(buf: bytes, lenient: bool):
    if lenient:
        return PacketChains(buf, LENIENT_LENGTHS), KnownChains(buf, LENIENT_LENGTHS)
    return PacketChains(buf, STRICT_LENGTHS), KnownChains(buf)


def _agree(buf: bytes, positions, lenient: bool, chains: KnownChains | None = None) -> KnownChains:
    plain, made = _pair(buf, lenient)
    chains = made if chains is None else chains
    most = LENIENT_MAX_COUNT if lenient else 0xFFFF
    for q in positions:
        assert chains.message_end(q, max_count=most) == plain.message_end(q, max_count=most), q
        if q + 2 <= len(buf):
            assert (chains.run(q), chains.stop(q)) == (plain.run(q), plain.stop(q)), q
            assert chains.describe(q) == plain.describe(q), q
            n = chains.run(q)
            assert chains.jump(q, n) == plain.jump(q, n), q
    return chains


def _packet(length: int, fill: int = 1) -> bytes:
    return length.to_bytes(2, "big") + bytes([fill]) * length


# Long chains of known packets (segments, runs of equal ones), lenient lengths between,
# junk, counts: the paths meet one another in every order.
_PIECES = st.one_of(
    st.sampled_from([8, 12, 28, 32, 44, 164, 184, 492]).map(_packet),
    st.tuples(st.sampled_from([8, 28]), st.integers(1, 60)).map(lambda t: _packet(t[0]) * t[1]),
    st.integers(1, 40).map(lambda n: _packet(3, 0x61) * n),  # lenient, unknown length 3
    st.binary(max_size=5),
    st.sampled_from([b"\x00\x08", b"\x00\x40", b"\xff\xff", b"\x00", b"\x01\xec"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=120), st.booleans(), st.randoms(use_true_random=False))
def test_known_chains_answer_as_a_walk_one_prefix_at_a_time(pieces, lenient, rnd):
    buf = b"".join(pieces)
    order = list(range(len(buf)))
    rnd.shuffle(order)
    _agree(buf, order, lenient)


@pytest.mark.parametrize("lenient", [False, True], ids=["strict", "lenient"])
@pytest.mark.parametrize("shape", CRAFTED, ids=lambda f: f.__name__)
def test_known_chains_on_crafted_shapes_agree_and_stay_linear(shape, lenient):
    buf = shape(40_000)
    chains = _agree(buf, range(0, len(buf), 3), lenient)  # in file order, as the resync asks
    assert chains.steps <= WORK_PER_BYTE * len(buf)
    _agree(buf, range(len(buf) - 1, 0, -5), lenient)  # backwards: paths joined the other way


def _lenient_reading_strict(buf: bytes, rnd, walked: int) -> KnownChains:
    """Lenient chains whose stretches read the paths of strict chains (as ``_Scan`` sets
    them), the strict chains having walked from ``walked`` random places first."""
    strict = KnownChains(buf)
    for q in rnd.sample(range(len(buf)), min(walked, len(buf))):
        strict.run(q)
    chains = KnownChains(buf, LENIENT_LENGTHS)
    chains.known_chains = strict
    return chains


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=120), st.randoms(use_true_random=False), st.integers(0, 12))
def test_lenient_chains_reading_the_strict_paths_answer_as_a_walk(pieces, rnd, walked):
    buf = b"".join(pieces)
    order = list(range(len(buf)))
    rnd.shuffle(order)
    _agree(buf, order, True, _lenient_reading_strict(buf, rnd, walked))


@pytest.mark.parametrize("shape", CRAFTED, ids=lambda f: f.__name__)
def test_lenient_chains_reading_the_strict_paths_on_crafted_shapes(shape, monkeypatch):
    """Every crafted shape, the strict chains walked first from every 7th byte: the
    lenient answers are a plain walk's, and where a lenient walk meets a chain of known
    packets it reads the strict paths (at least on the shapes made of such chains)."""
    import random

    buf = shape(40_000)
    read = []
    stretch_known = KnownChains._stretch_known
    monkeypatch.setattr(KnownChains, "_stretch_known", lambda self, y, k: read.append(y) or stretch_known(self, y, k))
    chains = _lenient_reading_strict(buf, random.Random(5), 0)
    for q in range(0, len(buf), 7):
        chains.known_chains.run(q)
    _agree(buf, range(0, len(buf), 3), True, chains)
    if shape.__name__ in ("validate_across_many_runs", "runs_found_out_of_order", "many_long_messages"):
        assert read, shape.__name__


def test_a_long_walk_goes_by_segments_and_numbers_every_prefix_once(monkeypatch):
    rng = np.random.default_rng(11)
    lengths = rng.choice([8, 28, 44, 184], 20_000).tolist()
    buf = b"\x00\x09" + b"".join(_packet(n) for n in lengths) + b"\x00\x09"
    segments = []
    monkeypatch.setattr(packet_re, "run_prefixes", lambda *a: segments.append(a[2:]) or run_prefixes(*a))
    chains = KnownChains(buf)
    assert chains.run(2) == len(lengths)
    assert chains.steps <= 2 * len(lengths)
    assert len(chains._nodes) == 1 and len(chains._nodes[0]) == len(lengths) + 1  # one walk
    assert 1 < len(segments) < 40  # taken in segments (doubling), not prefix by prefix
    # a start inside it is on the path already: no walk
    inner = 2 + sum(2 + n for n in lengths[:777])
    assert chains.known(inner) and chains.run(inner) == len(lengths) - 777
    assert len(chains._nodes) == 1
    assert chains._numbered == len(lengths) + 1  # the prefixes and the stop, each numbered once


def _candidates(a: np.ndarray, window: np.ndarray) -> np.ndarray:
    count = (a[window].astype(np.int64) << 8) | a[window + 1]
    first = (a[window + 2].astype(np.int64) << 8) | a[window + 3]
    return window[(count > 0) & np.isin(first, sorted(STRICT_LENGTHS))]


@pytest.mark.parametrize("count", [None, 40], ids=["counts-above-the-chain", "counts-that-validate"])
def test_a_prefilter_pass_decides_candidates_by_the_chains_already_walked(count):
    """``runs_found_out_of_order``: once the first walk has taken the chain across the file,
    each later candidate's chain holds 17 new prefixes and then joins that walked chain.
    The raw pre-filter's pass sees the join (``chain_runs`` with the chains' memo): a
    candidate whose count is above what its chain holds is dropped, and one whose count
    fits is kept and its join told to the chains, so asking it walks nothing. Without the
    memo every such chain leaves the pass's window and stays undecided (a Python walk
    of 17 prefixes per candidate). The answers stay exactly a plain walk's."""
    data = bytearray(runs_found_out_of_order(1 << 18))
    if count is not None:
        for u in range(0, len(data) - 300 + 1, 300):
            data[u + 128 : u + 130] = count.to_bytes(2, "big")
    data = bytes(data)
    scan = _Scan(data)
    plain = PacketChains(data)
    assert scan.strict.message_end(128) == plain.message_end(128)  # the first walk, across the file
    window = np.arange(1 << 16, 1 << 17, dtype=np.int64)
    asked = _candidates(scan.a, window)
    assert len(asked) > 200
    ok, _, _ = _raw_plausible(scan.a, window, scan)
    without, _, _ = _raw_plausible(scan.a, window)  # no memo: the chains leave the window
    kept = window[ok].tolist()
    if count is None:
        assert kept == [] and all(plain.message_end(int(q)) < 0 for q in asked)
        assert len(window[without]) >= len(asked) // 2  # undecided there
        return
    assert len(kept) >= len(asked) // 2
    walks = len(scan.strict._nodes)
    for q in kept:
        assert scan.strict.message_end(q) == plain.message_end(q) >= 0, q
    assert len(scan.strict._nodes) == walks  # no walk: each was decided by its join


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=120), st.randoms(use_true_random=False), st.integers(1, 30), st.booleans())
def test_candidate_runs_tell_only_what_a_walk_one_prefix_at_a_time_finds(pieces, rnd, most, memo):
    """The raw pre-filter's per-candidate rounds (``candidate_runs``): every run, stop and
    join they report is what ``PacketChains`` finds (a chain reported stopping stops
    there, one reported past the window or still going runs at least as far, one
    reported joining a walked prefix reaches it after the packets reported), with the
    chains' memo or without, whatever the rounds allowed."""
    buf = b"".join(pieces)
    if len(buf) < 8:
        return
    plain = PacketChains(buf)
    chains = KnownChains(buf) if memo else None
    if chains is not None:
        for q in rnd.sample(range(len(buf) - 1), min(5, len(buf) - 1)):
            chains.run(q)  # some paths walked: the rounds may join them
    a = np.frombuffer(buf, dtype=np.uint8)
    w0 = rnd.randrange(0, len(buf) - 4)
    tops = [rnd.randrange(w0 + 2, len(buf))]  # the pass reads prefixes below top
    lengths = [(p, buf[p] << 8 | buf[p + 1]) for p in range(w0, len(buf) - 1)]
    ahead = [p + 2 + n for p, n in lengths if KNOWN_MASK[n] and w0 + 2 <= p + 2 + n < len(buf)]
    tops += rnd.sample(ahead, min(2, len(ahead)))  # and tops a chain lands on exactly
    for top in tops:
        _check_candidate_runs(buf, plain, chains, a, w0, top, rnd, most)


def _check_candidate_runs(buf, plain, chains, a, w0, top, rnd, most):
    length = u16_every(a, w0, top)
    known = known_lengths(length)
    x = np.flatnonzero(known)
    count = np.array([rnd.randrange(1, 40) for _ in range(x.size)], dtype=np.int64)
    run, stop, joined, joined_k, _ = candidate_runs(length, known, x, w0, len(buf), count, chains, most)
    for i, rel in enumerate(x.tolist()):
        q, r, why = w0 + rel, int(run[i]), int(stop[i])
        if joined[i] >= 0:
            to = w0 + int(joined[i])
            assert chains.known(to) and plain.jump(q, int(joined_k[i])) == to, q
            assert plain.run(to) == r - joined_k[i], q
        if why in (_INVALID, _NEED_MORE):
            assert (plain.run(q), plain.stop(q)) == (r, why), q
        elif why == _LIVE and r >= count[i]:
            assert plain.run(q) >= count[i], q
        else:  # past the window, or still going when the rounds ended
            assert why in (_EXIT, _LIVE) and plain.run(q) >= r, q


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=120), st.randoms(use_true_random=False), st.booleans())
def test_message_ends_and_follow_checks_at_once_answer_as_one_by_one(pieces, rnd, final):
    """The resync's vectorised questions (``KnownChains.message_ends``, then
    ``AnchorSearch._follows_many`` of the ends) answer as ``message_end`` and
    ``_followed`` asked one by one, wherever they decide; the rest stays undecided."""
    from app.core.framing import Framer
    from app.core.framing.chains import UNDECIDED

    buf = b"".join(pieces) + bytes(rnd.choice([0, 20]))
    if len(buf) < 8:
        return
    scan = _Scan(buf)
    for q in rnd.sample(range(len(buf) - 3), min(12, len(buf) - 3)):  # some paths walked first
        scan.strict.message_end(q)
    qs = np.arange(len(buf) - 3, dtype=np.int64)
    ends = scan.strict.message_ends(qs)
    decided = ends != UNDECIDED
    for q, e in zip(qs[decided].tolist(), ends[decided].tolist(), strict=True):
        assert e == scan.strict.message_end(q), q
    valid = np.unique(ends[ends >= 0])
    framer = Framer("raw")
    got = framer._follows_many(scan, valid, final)
    for e, f in zip(valid.tolist(), got.tolist(), strict=True):
        if f != UNDECIDED:
            want = framer._followed(scan, e, final, junk=True)
            assert {True: 1, False: 0}.get(want, -1) == f, e


def test_one_message_end_read_with_plain_ints_answers_as_the_vectorised_read():
    """``KnownChains.memo_end`` (one start, plain ints: the resync's first candidates)
    answers as ``message_ends`` at every position of every crafted shape, with paths
    walked and what the raw pre-filter passes told (joins, runs past the buffer)."""
    from app.core.framing.chains import UNDECIDED

    told = set()
    for shape in CRAFTED:
        buf = shape(40_000)
        scan = _Scan(buf)
        assert scan.strict.memo_end(0) == UNDECIDED  # nothing walked yet
        for q in range(0, len(buf) - 3, 997):  # some paths walked first
            scan.strict.message_end(q)
        list(scan.candidates(0, len(buf), "raw", _raw_plausible, 4))  # the passes tell
        chains = scan.strict
        if chains._where_at is not None and (chains._where_at < 0).any():
            told.add("joins")
        if chains._past is not None:
            told.add("past")
        qs = np.arange(len(buf) - 3, dtype=np.int64)
        assert [chains.memo_end(q) for q in qs.tolist()] == chains.message_ends(qs).tolist(), shape.__name__
    assert told == {"joins", "past"}


def _counted_chain(count_at) -> bytes:
    """200 packets of length 8 whose bodies end with a count: the message whose first
    prefix is packet i + 1 announces ``count_at(i + 1)`` packets."""
    return b"".join(b"\x00\x08" + bytes(6) + max(1, count_at(i + 1)).to_bytes(2, "big") for i in range(200))


@pytest.mark.parametrize("off", [-1, 0, 1, 2])
def test_one_message_end_read_with_plain_ints_where_passes_told(off):
    """``memo_end`` and ``message_ends`` where a pass told a join after k packets or a
    run past the buffer of r packets, at counts about k and r (the boundaries), answer
    alike, and as ``message_end`` wherever they decide."""
    from app.core.framing.chains import UNDECIDED

    # joins: the chain from packet 100 walked; each earlier prefix told it joins it there
    buf = _counted_chain(lambda i: 100 - i + off)
    chains = KnownChains(buf)
    chains.run(1000)
    at = np.arange(10, 1000, 10, dtype=np.int64)
    chains.note_joins(at, (1000 - at) // 10, np.full(at.size, 1000, dtype=np.int64))
    # runs past the buffer: its last packet cut; each prefix told its run (a chain
    # elsewhere walked, so the chains answer at all)
    cut_buf = _counted_chain(lambda i: 200 - i + off)[:-5]
    cut, plain = KnownChains(cut_buf), PacketChains(cut_buf)
    cut.run(3)
    at = np.arange(10, len(cut_buf) - 10, 10, dtype=np.int64)
    cut.note_runs_past_end(at, np.array([plain.run(x) for x in at.tolist()], dtype=np.int64))
    for made in (chains, cut):
        qs = np.arange(len(made.buf) - 3, dtype=np.int64)
        ends = made.message_ends(qs).tolist()
        assert [made.memo_end(q) for q in qs.tolist()] == ends
        decided = [(q, e) for q, e in zip(qs.tolist(), ends, strict=True) if e != UNDECIDED]
        assert len(decided) > 150
        fresh = PacketChains(made.buf)
        assert all(fresh.message_end(q) == e for q, e in decided)


def test_message_ends_of_messages_ending_at_the_buffers_end_and_past_it():
    msg = b"\x00\x03" + _packet(8) + _packet(28) + _packet(8)
    buf = b"\xff" + msg * 40
    starts = np.arange(1, len(buf), len(msg), dtype=np.int64)
    chains = KnownChains(buf)
    for q in starts.tolist():  # each message's chain walked (a count's bytes end each)
        chains.message_end(q)
    assert chains.message_ends(starts).tolist() == [s + len(msg) for s in starts.tolist()]
    cut = KnownChains(buf[:-3])  # the last message's last body runs past the buffer
    for q in starts.tolist():
        cut.message_end(q)
    assert cut.message_ends(starts[-2:]).tolist() == [starts[-1], -1]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=120), st.randoms(use_true_random=False))
def test_prefixes_read_off_the_paths_are_a_walks(pieces, rnd):
    """``KnownChains.prefixes``: the positions of n prefixes in a row, across the paths they
    lie on, are those a walk one prefix at a time passes (whatever order paths were made)."""
    buf = b"".join(pieces)
    if len(buf) < 4:
        return
    plain, chains = _pair(buf, False)
    for q in rnd.sample(range(len(buf) - 1), min(12, len(buf) - 1)):
        n = rnd.randint(0, chains.run(q))
        assert chains.prefixes(q, n).tolist() == [plain.jump(q, i) for i in range(n)], q


def test_a_pass_tells_no_join_at_a_prefix_already_walked():
    """``validate_across_many_runs``: every candidate's first prefix is on the chain the
    first walk took, so a pre-filter pass has no join to tell (a join after 0 packets
    is the walked prefix itself, which ``message_end`` reads anyway): the chains keep no
    join for it."""
    from tests.core.test_resync import validate_across_many_runs

    data = validate_across_many_runs(1 << 18)
    scan = _Scan(data)
    plain = PacketChains(data)
    q = 8  # the first candidate: its walk takes the chain across the file
    assert scan.strict.message_end(q) == plain.message_end(q)
    window = np.arange(1 << 16, 1 << 17, dtype=np.int64)
    ok, _, _ = _raw_plausible(scan.a, window, scan)
    kept = window[ok].tolist()
    assert len(kept) > 1000
    assert not (scan.strict._where_at < 0).any()  # (a told join: negated in the position array)
    for c in kept[::50]:
        assert scan.strict.message_end(c) == plain.message_end(c), c


def test_joins_told_live_in_the_position_array_until_walked():
    """A join told at a prefix (``note_joins``: kept negated where walked prefixes keep
    their number) is read by ``message_end`` there, not kept at a prefix already walked,
    and replaced by the number when a walk later takes the prefix: every answer as the
    plain chains'."""
    buf = _counted_chain(lambda i: 150 - i)
    chains, plain = KnownChains(buf), PacketChains(buf)
    chains.run(1000)  # the chain from packet 100 walked
    at = np.arange(10, 1000, 10, dtype=np.int64)
    chains.note_joins(at, (1000 - at) // 10, np.full(at.size, 1000, dtype=np.int64))
    chains.note_joins(np.array([1010]), np.array([50]), np.array([1510]))  # walked: not kept
    assert chains.known(1010) and not chains.joined(1010) and chains.joined(500) and not chains.known(500)
    assert chains.run(1000) == plain.run(1000)
    for q in (8, 498, 988):
        assert chains.message_end(q) == plain.message_end(q), q
    assert not chains.known(500)  # message_end read the join: no walk there
    assert chains.run(500) == plain.run(500)  # a walk from it numbers it over the join
    assert chains.known(500) and not chains.joined(500)
    qs = np.arange(len(buf) - 3, dtype=np.int64)
    assert chains.message_ends(qs).tolist() == [chains.memo_end(q) for q in qs.tolist()]
    for q in range(0, len(buf) - 3, 7):
        assert chains.message_end(q) == plain.message_end(q), q


@pytest.mark.parametrize("shape", CRAFTED, ids=lambda f: f.__name__)
def test_chains_read_no_number_a_walk_has_not_written(shape, monkeypatch):
    """The per-number arrays (path, position) are allocated uninitialised: filled with
    junk instead, every answer (``message_end``, ``run``, ``memo_at``, ``message_ends``,
    ``memo_end``) is still a plain walk's, so none reads a number no walk has written."""
    from app.core.framing import chains as chains_mod
    from app.core.framing.chains import UNDECIDED

    monkeypatch.setattr(chains_mod, "_numbered_array", lambda size, dtype: np.full(size, 1 << 30, dtype=dtype))
    buf = shape(12_000)
    for lenient in (False, True):
        chains = _agree(buf, range(0, len(buf), 7), lenient)
        plain = _pair(buf, lenient)[0]
        at = np.arange(len(buf) - 1, dtype=np.int64)
        run, stop = chains.memo_at(at)
        walked = [q for q in at.tolist() if chains.known(q)]
        assert walked and (run[chains._where_at[at] <= 0] == -1).all()
        assert [(run[q], stop[q]) for q in walked] == [(plain.run(q), plain.stop(q)) for q in walked]
        qs = np.arange(len(buf) - 3, dtype=np.int64)
        ends = chains.message_ends(qs)
        assert ends.tolist() == [chains.memo_end(q) for q in qs.tolist()]
        for q in qs[ends != UNDECIDED].tolist()[::5]:  # (message_ends: any count up to 0xFFFF)
            assert ends[q] == plain.message_end(q, max_count=0xFFFF), q


def test_fresh_arrays_read_zero_until_written_each_its_own():
    """``_fresh_array``: zeroed, writable memory mapped for the array alone (what the chains
    rely on for their maps: a position no walk wrote reads 0), also after another one was
    written and freed; ``_huge_pages`` is a no-op on a heap array."""
    from app.core.framing.chains import _fresh_array, _huge_pages

    for dtype in (np.int32, np.int64):
        a = _fresh_array(50_000, dtype)
        assert a.dtype == dtype and a.size == 50_000 and a.flags.writeable and not a.any()
        a[::97] = -5
        _huge_pages(a)
        b = _fresh_array(50_000, dtype)
        assert not b.any() and (a[::97] == -5).all()
        del a
        assert not _fresh_array(50_000, dtype).any()
    _huge_pages(np.zeros(10))


@pytest.mark.parametrize("lenient", [False, True])
def test_chains_arrays_on_fresh_pages_huge_once_many_positions_are_numbered(lenient, monkeypatch):
    """The numbered arrays and the lenient chains' position map are ``_fresh_array``s (pages
    never written are never backed, and freeing them leaves the heap alone); the strict
    chains' map, written all over a damaged buffer, stays a heap array. The lenient map
    asks huge pages at once; the numbered arrays once ``DENSE_NUMBERS`` positions are
    numbered (once, before the walk that crosses it writes them). Answers stay a plain
    walk's."""
    import mmap

    from app.core.framing import chains as chains_mod

    asked = []
    original = chains_mod._huge_pages
    monkeypatch.setattr(chains_mod, "_huge_pages", lambda array: (asked.append(array), original(array)))
    monkeypatch.setattr(chains_mod, "DENSE_NUMBERS", 2500)
    buf = _packet(8) * 2000 + _packet(3, 0x61) * 9 + b"\xff" * 9 + _packet(28) * 1500 + b"\xff" * 9
    chains = _pair(buf, lenient)[1]
    assert chains.run(0) == 2000 + 9 * lenient  # (lenient: the 3-byte packets too)
    assert 2000 <= chains._numbered < 2500 and not chains._dense
    assert [id(x) for x in asked] == ([id(chains._where_at)] if lenient else [])
    assert chains.run(20_054) == 1500
    assert chains._numbered >= 2500 and chains._dense
    assert [id(x) for x in asked[-2:]] == [id(chains._path_of), id(chains._pos_of)]
    _agree(buf, range(0, len(buf), 37), lenient, chains)  # more walks: asked once per chains
    assert len(asked) == 2 + lenient

    def mapped(array):
        return isinstance(getattr(array.base, "obj", None), mmap.mmap)

    assert mapped(chains._path_of) and mapped(chains._pos_of)
    assert mapped(chains._where_at) == lenient


def test_a_first_walk_looks_up_no_walked_prefix():
    """Before any path is numbered no prefix can be on one (a told join is negative):
    ``_cut_at_walked`` answers None without gathering the position map (the strict
    chains' first walk across validate_across_many_runs' 400,000 prefixes), and
    afterwards still finds the first walked prefix."""
    buf = _packet(8) * 50
    chains = KnownChains(buf)
    chains._arrays()
    where = chains._where_at
    chains._where_at = None  # a gather would fail
    assert chains._cut_at_walked(np.arange(0, 500, 10, dtype=np.int64)) is None
    chains._where_at = where
    assert chains.run(200) == 30
    before, y, cont = chains._cut_at_walked(np.arange(0, 500, 10, dtype=np.int64))
    assert before.tolist() == list(range(0, 200, 10)) and y == 200 and cont == (0, 0)


@pytest.mark.parametrize("lenient", [False, True])
def test_chains_handed_spare_arrays_answer_as_fresh_ones(lenient):
    """``ChainSpares``: the arrays one buffer's chains hand back (``release``) are the next
    buffer's, zeroed where the walks and the passes' told joins wrote them: the next
    chains answer as a plain walk (fails if a number or a told join of the buffer before
    is left in the map), reuse the same memory (fails if nothing is handed on), and a
    longer buffer than a spare gets arrays of its own."""
    from app.core.framing.chains import ChainSpares

    spares = ChainSpares()
    kind = LENIENT_LENGTHS if lenient else STRICT_LENGTHS
    a = runs_found_out_of_order(40_000)
    b = bytes(reversed(a[:30_000]))  # other chains over fewer bytes
    first = KnownChains(a, kind, spares=spares)
    for q in range(0, len(a) - 2, 23):
        first.message_end(q)
    first.note_joins(np.array([5, 7001]), np.array([3, 4]), np.array([900, 8000]))
    assert (first._where_at < 0).any() and first._numbered > 1000
    maps = [first._where_at]
    first.release()
    for buf in (b, a[:20_000], bytes(a[:1000]) * 50):  # (walked sparsely, densely, the last longer)
        chains = KnownChains(buf, kind, spares=spares)
        assert chains._where_at is None
        _agree(buf, range(0, len(buf), 7), lenient, chains)
        maps.append(chains._where_at)
        chains.release()
        assert chains._where_at is None
    assert all(np.shares_memory(maps[0], m) for m in maps[1:3]) and not np.shares_memory(maps[0], maps[3])
    # a written position left in a spare map would make the next walk's answers differ
    other = KnownChains(b, kind, spares=spares)
    _agree(b, range(1, len(b), 5), lenient, other)
    other.release()
    # a map written at few places is zeroed there (else all of it): both ways
    key = (not lenient, "map")
    assert spares._free[key][2] is None
    few = (_packet(8) * 40 + b"\xff" * 3) * 300
    sparse = KnownChains(few, kind, spares=spares)
    sparse.message_end(0)
    sparse.note_joins(np.array([11]), np.array([3]), np.array([2000]))
    sparse.release()
    assert 0 < sum(at.size for at in spares._free[key][2]) * 24 < len(few)
    _agree(few, range(0, len(few), 3), lenient, KnownChains(few, kind, spares=spares))


def test_a_reader_hands_the_chains_arrays_from_chunk_to_chunk(tmp_path, monkeypatch):
    """A capture read in chunks decodes as with fresh arrays every chunk (rows and bad
    regions), its chains' arrays handed from one chunk's walk to the next's (the same
    map every chunk: fails if they are not handed on)."""
    from app.core.decode import CaptureReader
    from app.core.framing import chains as chains_mod

    path = tmp_path / "capture.bin"
    path.write_bytes(runs_found_out_of_order(1 << 21) * 3)  # (as read at scale: a unit a chunk)
    release = chains_mod.KnownChains.release

    def read(seen):
        def spy(self):
            if self._where_at is not None and self.accept == STRICT_LENGTHS:
                seen.append(self._where_at.base)  # (kept alive: fresh ones are other arrays)
            release(self)

        monkeypatch.setattr(chains_mod.KnownChains, "release", spy)
        batches = list(CaptureReader(str(path), "raw", file_id="x", chunk_bytes=1 << 21).batches())
        return [b.ticks for b in batches], [b.bad for b in batches]

    seen, fresh = [], []
    handed = read(seen)
    monkeypatch.setattr(chains_mod.ChainSpares, "give", lambda self, key, array, written=(): None)
    assert read(fresh) == handed and sum(t.num_rows for t in handed[0]) > 100_000
    assert len(seen) == 3 and all(m is seen[0] for m in seen)
    assert len(fresh) == 3 and not any(m is fresh[0] for m in fresh[1:])

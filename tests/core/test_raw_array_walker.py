"""The array-pass raw walker (``app.core.framing.rawarray``) against the per-message
walker it replaced (``tests.support.raw_oracle``): the same packets, bad regions, byte
accounting and chunk carries on any bytes, read whole or in chunks (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import protocol
from app.core.framing import Framer, PacketChains, rawarray, split_messages
from app.core.framing.chains import KnownChains
from app.core.framing.common import (
    BAD_RAW_CAP,
    LENIENT_MAX_COUNT,
    MAX_MESSAGE_BYTES,
    TS_MAX_NS,
    TS_MIN_NS,
    BadRegions,
    RawSlices,
    _Parts,
    _Walk,
)
from app.core.framing.rawarray import _UNDECIDED, WINDOW, _lenient_status
from app.core.framing.resync import _EXIT, _LIVE, _raw_plausible, _Scan, chain_runs
from app.core.framing.split import _u16
from tests.core import test_resync as shapes
from tests.support.raw_oracle import OracleFramer


def _splits(framer, data: bytes, chunk: int | None):
    """Split ``data`` as ``CaptureReader`` does (carrying what a chunk leaves unconsumed)."""
    base, carry, read_to = 0, b"", 0
    chunk = len(data) if chunk is None else chunk
    while True:
        want = min(chunk, len(data) - read_to)
        buf = bytearray(carry + data[read_to : read_to + want])
        read_to += want
        final = read_to >= len(data) or want == 0
        split = framer.split(buf, base, final)
        yield split
        base += split.consumed
        carry = bytes(buf[split.consumed :])
        if final:
            return


def _run(framer_cls, data: bytes, chunk: int | None = None):
    """Everything each chunk's raw split says, file-positioned, and the walk's work."""
    framer = framer_cls("raw")
    out = [(
        split.pkt_offset.tolist(), split.pkt_len.tolist(), split.pkt_msg.tolist(), split.pkt_seq.tolist(),
        [b.to_dict() for b in split.bad], dict(split.accounted), split.messages, split.heartbeats, split.consumed,
    ) for split in _splits(framer, data, chunk)]
    return out, framer.work


def _same(data: bytes, chunk: int | None = None):
    new, work = _run(Framer, data, chunk)
    old, _ = _run(OracleFramer, data, chunk)
    assert new == old
    return work


# Windows these tests narrow the passes to (the widths before they grew): the walk is the
# oracle's whatever a pass's width, and narrow passes make small inputs cross several
# window edges (the oracle's per-message walk of each input stays quick).
NARROW, NARROW_SPARSE = 1 << 16, 1 << 18


@pytest.fixture
def narrow_windows(monkeypatch):
    from app.core.framing import raw

    monkeypatch.setattr(raw, "WINDOW", NARROW)
    monkeypatch.setattr(raw, "SPARSE_WINDOW", NARROW_SPARSE)


def _tiny_units(draw_units: list[tuple[int, bytes]]) -> bytes:
    """One-packet messages (the array walker's ground) with junk/zeros between them."""
    msg8 = shapes.encode.encode_message([shapes._packet(8, 1)])
    msg28 = shapes.encode.encode_message([shapes._packet(28, 2), shapes._packet(8, 3)])
    out = bytearray()
    for kind, junk in draw_units:
        out += msg8 if kind % 3 else msg28
        out += junk
    return bytes(out)


def _mutate(data: bytes, edits: list[tuple[int, int, int, bytes]]) -> bytes:
    """The fuzz campaign's mutations: insert, delete or overwrite bytes at places."""
    out = bytearray(data)
    for kind, where, n, blob in edits:
        if not out:
            break
        at = where % len(out)
        if kind == 0:
            out[at:at] = blob
        elif kind == 1:
            del out[at : at + n]
        else:
            out[at : at + len(blob)] = blob
    return bytes(out)


DIFF = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Junk between messages: stray bytes, heartbeats, junk counts, text, and messages of
# unknown-length packets (5-7 bytes: the lenient check right after a short resync).
_JUNK = st.sampled_from([b"", b"", b"", b"\xff", b"\n", b"\x00", b"\x00\x00", b"\x01", b"{", b"\x00\x08",
                         b"\xff\xf0", b"\x0f\xf0", b"\x00\x01\x00", b"\x00\x01\x00\x01z", b"\x00\x01\x00\x02zz",
                         b"\x01\x00\x01z", b"\xff\x00\x01\x00\x01z", b'{"type"']) | st.binary(max_size=7)
_UNITS = st.lists(st.tuples(st.integers(0, 8), _JUNK), min_size=0, max_size=400)
_EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 30), st.integers(1, 64), st.binary(max_size=64)),
                  max_size=12)
_CHUNK = st.sampled_from([None, 64, 97, 500, 4096])


@DIFF
@given(_UNITS, _EDITS, _CHUNK)
def test_tiny_messages_with_junk_and_mutations_walk_alike(units, edits, chunk):
    _same(_mutate(_tiny_units(units), edits), chunk)


@DIFF
@given(st.binary(max_size=3000), _CHUNK)
def test_any_bytes_walk_alike(blob, chunk):
    _same(blob, chunk)


@DIFF
@given(st.lists(st.sampled_from(shapes._ATOMS) | st.binary(max_size=12), max_size=800), _CHUNK)
def test_structured_garbage_walks_alike(atoms, chunk):
    _same(b"".join(atoms), chunk)


# Random bytes of counts and known lengths (zero_runs_and_counts' and 492's): a candidate
# at about every tenth position, most invalid at their second prefix (long enough for
# the walk to take passes of them).
_DENSE_BYTES = np.frombuffer(bytes([0, 0, 0, 8, 1, 0xB8, 0xFF, 0xEC, 0x1C]), dtype=np.uint8)
_DENSE = st.builds(lambda seed, n: np.random.default_rng(seed).choice(_DENSE_BYTES, n).tobytes(),
                   st.integers(0, 1 << 32), st.integers(0, 40_000))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DENSE, _CHUNK, st.booleans())
def test_dense_candidates_walk_alike_whether_the_first_round_is_taken_by_bytes(blob, chunk, by_bytes):
    """strict_status' first round at the byte level (candidates invalid at their second
    prefix not walked, their faults read by reasons()) or not: the oracle's walk."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rawarray, "_first_round_pays", lambda *args: by_bytes)
        _same(blob, chunk)


@pytest.mark.parametrize("shape", shapes.CRAFTED, ids=lambda f: f.__name__)
@pytest.mark.parametrize("chunk", [None, 5000, NARROW + 123])
def test_crafted_shapes_walk_alike(narrow_windows, shape, chunk):
    data = shape(3 * NARROW // 2)
    work = _same(data, chunk)
    assert work <= shapes.WORK_PER_BYTE * len(data) * (2 if chunk else 1)


def test_damaged_tiny_capture_walks_alike_across_windows(narrow_windows):
    """Longer than a window, damaged at 300 places, read whole and in chunks."""
    rng = np.random.default_rng(14)
    units = [(int(k), b"\xff" if k % 5 == 0 else b"") for k in rng.integers(0, 9, 30_000)]
    data = _tiny_units(units)
    edits = [(int(rng.integers(3)), int(rng.integers(1 << 30)), int(rng.integers(1, 65)),
              rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()) for _ in range(300)]
    data = _mutate(data, edits)
    assert len(data) > 3 * NARROW
    for chunk in (None, 40_000, NARROW):
        _same(data, chunk)


@pytest.mark.parametrize("shape, widest", [
    (shapes.mixed_lengths_junk_between, NARROW_SPARSE),  # a place every ~80 bytes
    (shapes.tiny_messages_junk_between, NARROW),  # a place every ~6 bytes
])
def test_a_pass_that_decided_most_of_its_window_is_followed_by_the_next_at_once(narrow_windows, monkeypatch, shape,
                                                                                 widest):
    """A pass stops where bytes past its window decide (a junk count of 4,080 that a
    per-message step walks far to refuse, a junk byte): the next, wider pass starts right
    there, with no per-message steps between them, and the walk is the oracle's. Passes
    grow GROWTH-fold to WINDOW, and further (SPARSE_WINDOW) where places are sparse (here
    narrowed)."""
    from app.core.framing import raw

    calls = []

    def spy(scan, buf, base, p, final, walk, size=WINDOW):
        q, hi, places = rawarray.walk_window(scan, buf, base, p, final, walk, size)
        calls.append((p, q, hi, size))
        return q, hi, places

    monkeypatch.setattr(raw, "walk_window", spy)
    data = shape(10 << 16)
    _same(data)
    assert len(calls) >= 5
    for (_, q, hi, _), (p, _, _, _) in zip(calls, calls[1:], strict=False):
        assert hi - 2 * rawarray.FOLLOW_WINDOW - 200 < q < hi  # stopped just before its end
        assert p == q  # ... and the next pass went on from there
    assert [c[3] for c in calls[:5]] == [min(rawarray.MIN_WINDOW * raw.GROWTH**k, widest) for k in range(5)]


@pytest.mark.parametrize("shape, widest", [
    (shapes.mixed_lengths_junk_between, rawarray.SPARSE_WINDOW),
    (shapes.tiny_messages_junk_between, WINDOW),
])
def test_passes_grow_to_their_full_width_and_walk_as_narrow_ones(monkeypatch, shape, widest):
    """At their full widths (too wide for the oracle's walk of an input that reaches
    them), passes grow GROWTH-fold up to WINDOW, or SPARSE_WINDOW where places are sparse,
    and the walk is the same as with the narrow passes the oracle tests above check."""
    from app.core.framing import raw

    calls = []

    def spy(scan, buf, base, p, final, walk, size=WINDOW):
        calls.append(size)
        return rawarray.walk_window(scan, buf, base, p, final, walk, size)

    data = shape(3 * widest)
    monkeypatch.setattr(raw, "walk_window", spy)
    wide, _ = _run(Framer, data)
    ramp = [rawarray.MIN_WINDOW]
    while ramp[-1] < widest:
        ramp.append(min(ramp[-1] * raw.GROWTH, widest))
    assert calls[: len(ramp)] == ramp and max(calls) == widest
    monkeypatch.setattr(raw, "WINDOW", NARROW)
    monkeypatch.setattr(raw, "SPARSE_WINDOW", NARROW_SPARSE)
    calls.clear()
    narrow, _ = _run(Framer, data)
    assert max(calls) < widest
    assert wide == narrow


# --- the record resync's vectorised pre-filter -------------------------------------------


class _PlainRecordFilter(Framer):
    """``Framer`` whose record resync asks every candidate ``RecordFormat.candidates``
    keeps (the pre-filter before records' first packets were checked with numpy)."""

    @staticmethod
    def _candidate_filter(fmt, final=False):
        return ("raw", _raw_plausible, 4) if fmt is None else (fmt.name, fmt.candidates, fmt.header + 4)


def _run_framing(framer_cls, data: bytes, framing: str, chunk: int | None):
    return [(split.pkt_offset.tolist(), [b.to_dict() for b in split.bad], dict(split.accounted), split.consumed)
            for split in _splits(framer_cls(framing), data, chunk)]


@DIFF
@given(st.lists(st.integers(1, 6), max_size=40), _EDITS, st.sampled_from(["u32len", "ts-u32len", "u32len-le"]),
       _CHUNK, st.booleans())
def test_record_resync_prefilter_changes_nothing(sizes, edits, framing, chunk, junk):
    msgs = [[shapes._packet(shapes.LENGTHS[(k + i) % 5], k) for k in range(n)] for i, n in enumerate(sizes)]
    fmt = "u32len" if framing == "u32len-le" else framing
    data = b"".join(shapes._record(fmt, shapes.encode.encode_message(m), i) + (b"\xff" if junk else b"")
                    for i, m in enumerate(msgs))
    data = _mutate(data, edits)
    assert _run_framing(Framer, data, framing, chunk) == _run_framing(_PlainRecordFilter, data, framing, chunk)


@pytest.mark.parametrize("shape", shapes.CRAFTED, ids=lambda f: f.__name__)
def test_record_resync_prefilter_changes_nothing_on_crafted_shapes(shape):
    data = shape(20_000)
    for framing in ("u32len", "ts-u32len"):
        assert _run_framing(Framer, data, framing, 3000) == _run_framing(_PlainRecordFilter, data, framing, 3000)


# --- runs of equal packets (strided compares) against one step per prefix -----------------

# Runs of equal-length prefixes with breaks: another known length, an unknown one, a
# body cut short, junk; long enough for the strided looks (16, then 4x more each time).
_RUN = st.tuples(st.sampled_from([8, 28, 12, 4, 184]), st.integers(1, 150), st.binary(max_size=3))
_RUNS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _runs(runs) -> bytes:
    out = bytearray()
    for length, n, junk in runs:
        out += (length.to_bytes(2, "big") + bytes(range(length % 7, length % 7 + length))) * n + junk
    return bytes(out)


@_RUNS
@given(st.lists(_RUN, max_size=6), st.integers(0, 40), st.lists(st.integers(0, 1 << 20), max_size=200))
def test_known_chains_take_equal_runs_as_a_walk_would(runs, cut, asked):
    """Every start's answer (message end or code, run, stop, jump) is the same with runs
    taken a segment at a time (``KnownChains``: strided ranges, the ``re`` engine) as
    with one step per prefix, asked in any order (a start inside a run already taken, a
    run reaching a walked path), below a limit that may cut the last packets."""
    buf = _runs(runs)
    limit = max(len(buf) - cut, 0)
    fast = KnownChains(buf, limit=limit)
    plain = PacketChains(buf, limit=limit)
    if limit < 2:
        return
    for q in [a % (limit - 1) for a in asked] + list(range(0, limit - 1, 5)):
        assert fast.message_end(q) == plain.message_end(q), q
        assert fast.run(q) == plain.run(q) and fast.stop(q) == plain.stop(q), q
        n = plain.run(q)
        assert fast.jump(q, n) == plain.jump(q, n) and fast.jump(q, n // 2) == plain.jump(q, n // 2), q
    # each prefix is memoised once: numbered on one path, never twice
    held = [int(y) for path in fast._nodes for y in path]
    assert len(held) == len(set(held)) == fast._numbered


def _split_plain(buf: bytes, count: int):
    """The packets of one message (after its count) walked one prefix at a time."""
    j, pos, lens = 2, [], []
    for _ in range(count):
        if j + 2 > len(buf):
            return pos, lens, "cut prefix"
        length = buf[j] << 8 | buf[j + 1]
        if j + 2 + length > len(buf):
            return pos, lens, "overrun"
        pos.append(j + 2)
        lens.append(length)
        j += 2 + length
    return pos, lens, None if j == len(buf) else "left over"


_LONG = st.tuples(st.sampled_from([8, 12, 28]), st.integers(4097, 4400), st.just(b""))  # more than Kite sends


@_RUNS
@given(_LONG, st.lists(_RUN, min_size=1, max_size=6), st.integers(-3, 3), st.integers(0, 5))
def test_split_messages_walks_long_runs_as_one_step_each(first, runs, miscount, trim):
    """A message of thousands of equal packets (split one by one past the first few, with
    strided runs) splits as a plain walk of its prefixes does, whatever breaks it."""
    runs = [first, *runs]
    body = _runs(runs)
    body = body[: max(len(body) - trim, 0)]
    packets = sum(n for _, n, _ in runs)
    count = max(1, min(0xFFFF, packets + miscount))
    msg = count.to_bytes(2, "big") + body
    ms = split_messages(np.frombuffer(msg, np.uint8), np.array([0]), np.array([len(msg)]))
    pos, lens, fault = _split_plain(msg, count)
    known = [i for i, length in enumerate(lens) if length in protocol.KNOWN_LENGTHS]
    assert ms.pkt_pos.tolist() == [pos[i] for i in known]
    assert ms.pkt_len.tolist() == [lens[i] for i in known]
    assert bool(ms.valid[0]) == (fault is None and len(known) == len(lens))
    assert ms.packet_bytes + ms.header_bytes + ms.bad_bytes == len(msg)


@_RUNS
@given(st.lists(_RUN | st.tuples(st.just(0), st.just(0), st.binary(max_size=40)), max_size=8),
       st.integers(0, 30), st.integers(0, 3000), st.integers(1, 300))
def test_chain_runs_answer_as_packet_chains(runs, cut, window, enough):
    """The raw resync pre-filter's pointer jumping over every prefix position of a
    window gives each chain's run and stop as ``PacketChains`` walks them; a chain that
    leaves the window or holds ``enough`` is left undecided, never misjudged."""
    buf = _runs(runs)
    limit = max(len(buf) - cut, 0)
    if limit < 4:
        return
    n = min(window, limit)
    a = np.frombuffer(buf, np.uint8)[:limit]
    b = a[: min(n, limit - 1) + 1].astype(np.int32)
    run, stop, work = chain_runs((b[:-1] << 8) | b[1:], 0, n, limit, enough)
    chains = PacketChains(buf, limit=limit)
    for x in range(n):
        r = chains.run(x)
        if stop[x] == _EXIT:
            assert run[x] <= r and chains.jump(x, int(run[x])) >= n, x
        elif stop[x] == _LIVE:
            assert enough <= run[x] <= r, x
        else:
            assert (run[x], stop[x]) == (r, chains.stop(x)), x
    assert work <= 2 * n * max(1, enough.bit_length())


@DIFF
@given(_UNITS, _EDITS)
def test_bad_regions_as_columns_read_as_the_objects_would(units, edits):
    """The array walker keeps its bad regions as columns (``BadRegions``): read one by
    one they are the oracle's objects, and their byte totals per reason (in the order
    the reasons first appear) are what summing the objects in file order gives."""
    data = _mutate(_tiny_units(units), edits)
    new = Framer("raw").split(bytearray(data), 0, True).bad
    old = OracleFramer("raw").split(bytearray(data), 0, True).bad
    assert new == list(old) and len(new) == len(old)
    by_reason: dict[str, int] = {}
    for b in old:
        by_reason[b.reason] = by_reason.get(b.reason, 0) + b.length
    assert list(new.bytes_by_reason().items()) == list(by_reason.items())
    assert new.total() == sum(b.length for b in old)


@DIFF
@given(st.lists(st.sampled_from(shapes._ATOMS) | st.binary(max_size=12) | st.sampled_from(
    [b"\x00\x01\x00\x01z", b"\x00\x03\x00\x02zz", b"\x01\x00", b"\x08\x00", b"\x00\xb8", b"\xff"]), max_size=300))
def test_lenient_batch_answers_as_the_lenient_chains(atoms):
    """The array pass's batch of lenient checks (a shower of small counts) answers as
    ``PacketChains.message_end`` does (a message's end, or its code) wherever the first
    16 packets decide, and leaves only longer messages to the one-by-one check."""
    buf = b"".join(atoms)
    if len(buf) < 2:
        return
    scan = _Scan(buf)
    x = np.arange(len(buf) - 1, dtype=np.int64)
    n = np.minimum(_u16(scan.a, x), 255)
    status = _lenient_status(scan, x, n)
    for xi, ni, si in zip(x.tolist(), n.tolist(), status.tolist(), strict=True):
        want = scan.lenient.message_end(xi, max_count=LENIENT_MAX_COUNT) if ni < 255 else None
        if want is None:
            continue
        if si == _UNDECIDED:
            assert ni > rawarray.CAP, xi
        else:
            assert si == want, (xi, si, want)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LONG, st.lists(_RUN, max_size=4), st.integers(-2, 2), st.binary(max_size=6), st.sampled_from([None, 40_000]))
def test_messages_of_thousands_of_equal_packets_walk_alike(first, runs, miscount, junk, chunk):
    """A message longer than the one-length fast path takes (its runs of equal packets
    validated by strided compares) walks as the oracle's one step per prefix does,
    valid or broken, followed by junk and another message."""
    runs = [first, *runs]
    count = max(1, sum(n for _, n, _ in runs) + miscount)
    msg = count.to_bytes(2, "big") + _runs(runs)
    tail = shapes.encode.encode_message([shapes._packet(8, 1)])
    _same(msg + junk + tail + msg + tail, chunk)


# Long junk: a text frame's start at any place of a region (or just past its end), and
# regions longer than the bytes a BadPacket keeps.
_LONG_JUNK = st.builds(lambda head, cut, tail: (b"\xff" + head + b'{"type"' + tail)[: len(head) + 8 - cut],
                       st.binary(max_size=10), st.integers(0, 3), st.binary(max_size=6)) | st.builds(
    lambda n, tail: b"\xff" * n + tail, st.integers(5, 700), st.binary(max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 8), _LONG_JUNK | _JUNK), max_size=60), _CHUNK)
def test_long_bad_regions_are_described_as_the_oracle_does(units, chunk):
    """Bad regions of 5+ bytes found by an array pass are described in a batch (reasons,
    a text frame inside, the first bytes kept): as the oracle's one by one."""
    _same(_tiny_units(units), chunk)


# the pre-filter's edges: record lengths around 4 and the largest message, receive times' top bytes
_EDGES = [v.to_bytes(4, "big") for v in (3, 4, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1)] + [
    v.to_bytes(4, "little") for v in (3, 4, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1)] + [
    bytes([(t >> 56) + d]) for t in (TS_MIN_NS, TS_MAX_NS) for d in (-1, 0, 1)] + [
    # whole ts-u32len(-le) record headers with a message's count and first length
    h for t in (TS_MIN_NS, TS_MAX_NS) for d in (-1, 0, 1) for h in (
        bytes([(t >> 56) + d]) + bytes(7) + (12).to_bytes(4, "big") + b"\x00\x01\x00\x08",
        bytes(7) + bytes([(t >> 56) + d]) + (12).to_bytes(4, "little") + b"\x00\x01\x00\x08")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=16, max_size=400) | st.builds(
    lambda parts: b"".join(parts), st.lists(st.sampled_from(
        [b"\x00", b"\x00\x00\x00\x0c", b"\x00\x01\x00\x08", b"\x16", b"\x17\xa0", b"\xff\xff", b"\x00\xb8", b"\x08\x00",
         b"\x00\xb9\x84\x02"] + _EDGES), min_size=16, max_size=200)), st.integers(0, 20), st.integers(0, 20))
def test_record_candidates_by_slices_answer_as_by_gathers(data, cut_lo, cut_hi):
    """The record resync's pre-filter over a span (slices, 16/32-bit lanes) keeps the
    positions the per-position gathers keep, in every record format."""
    from app.core.framing.record_formats import RECORD_FORMATS

    a = np.frombuffer(data, dtype=np.uint8)
    for fmt in RECORD_FORMATS.values():
        stop = a.size - fmt.header - 3
        lo, hi = min(cut_lo, max(stop, 0)), max(stop - cut_hi, 0)
        if hi <= lo:
            continue
        got = fmt.candidates_span(a, lo, hi)
        assert got.tolist() == fmt.candidates(a, np.arange(lo, hi, dtype=np.int64)).tolist(), fmt.name


_MSG8 = shapes.encode.encode_message([shapes._packet(8, 1)])
# A message whose count's first byte is not zero (256 packets): a start right at the
# first nonzero byte after heartbeats.
_MSG256 = shapes.encode.encode_message([shapes._packet(8, k) for k in range(256)])
@pytest.mark.parametrize("tail", [_MSG256, _MSG8, b"\xff", b""], ids=["msg256", "msg8", "junk", "end"])
@pytest.mark.parametrize("lenient", [b"\x00\x01\x00\x01z", b"\x00\x02\x00\x01z\x00\x02zz"])
def test_lenient_messages_then_heartbeats_walk_alike(tail, lenient):
    """A message of unknown-length packets is taken when only heartbeats come before the
    next message (or the end): the array pass reads that from its window. Zero runs
    around the 16-byte follow window, the next message right at the first nonzero byte
    (a count of 256), junk, the capture's end, and chunks cut inside what follows."""
    head = _MSG8 * 40
    for zeros in (0, 1, 3, 15, 16, 17):
        data = head + lenient + bytes(zeros) + tail + (_MSG8 * 3 if tail else b"")
        cut = len(head) + len(lenient) + zeros
        for chunk in (None, 97, cut - 2, cut, cut + 3, cut + 7):
            _same(data, chunk)


_BATCH_MSG = st.one_of(
    st.just(_MSG8),  # one packet: most of a batch of tiny messages
    st.lists(st.sampled_from([8, 28, 12]), min_size=1, max_size=4).map(
        lambda ls: shapes.encode.encode_message([shapes._packet(n, k) for k, n in enumerate(ls)])),
    st.tuples(st.just(_MSG8), st.integers(-2, 2), st.integers(0, 3)).map(  # miscounted or cut
        lambda t: max(0, 1 + t[1]).to_bytes(2, "big") + t[0][2 : len(t[0]) - t[2]]),
    st.sampled_from([b'{"type":1}', b"\x00", b"\x00\x01\x00\x05abcde"]),  # text, too short, unknown length
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BATCH_MSG, min_size=1, max_size=40), st.integers(0, 3))
def test_split_messages_of_a_batch_answer_as_a_plain_walk_of_each(msgs, gap):
    """A batch of messages (all framed, or some text or too short) splits into each
    message's packets, in order, as a plain walk of its prefixes finds them."""
    payload, starts = bytearray(), []
    for m in msgs:
        payload += bytes(gap)
        starts.append(len(payload))
        payload += m
    sizes = [len(m) for m in msgs]
    ms = split_messages(np.frombuffer(bytes(payload), np.uint8), np.array(starts), np.array(sizes))
    want = []
    for i, (m, s) in enumerate(zip(msgs, starts, strict=True)):
        if len(m) < 2 or m[:2] == b'{"':
            assert not ms.valid[i]
            continue
        pos, lens, fault = _split_plain(m, m[0] << 8 | m[1])
        known = protocol.KNOWN_LENGTHS
        want += [(i, k, s + p, n) for k, (p, n) in enumerate(zip(pos, lens, strict=True)) if n in known]
        assert bool(ms.valid[i]) == (fault is None and bool(lens) and all(n in known for n in lens))
    got = list(zip(ms.pkt_msg.tolist(), ms.pkt_seq.tolist(), ms.pkt_pos.tolist(), ms.pkt_len.tolist(), strict=True))
    assert got == want
    assert ms.packet_bytes + ms.header_bytes + ms.bad_bytes == sum(sizes)


_LENIENT_UNITS = [
    b"\x00\x01\x00\x01z",  # a lenient message of one 1-byte packet
    b"\x00\x02\x00\x01z\x00\x03abc",  # two packets
    b"\x00\x01\x00\x0e" + _MSG8 + b"zz",  # one whose packet holds a message that validates
    b"\x00\x01\x00\x02z",  # one that runs a byte into what follows
    b"\x00\x01\x01\x00",  # one whose packet runs far (256 bytes)
    b"\x01\x00\x00\x01z\x00\x00",  # a count of 256 whose second packet has no length
    b"\x08\x00" + b"\x00\x01z" * 20,  # a count of 2,048 whose first 16 packets are plausible
]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_LENIENT_UNITS), st.sampled_from([b"", b"\x00", b"\x00" * 17, b"\xff"]),
                          st.booleans()), min_size=40, max_size=120), _CHUNK)
def test_showers_of_lenient_messages_walk_alike(units, chunk):
    """More than LENIENT_BATCH lenient checks in a window (decided at once by their first
    packets): messages followed by heartbeats and a message, by junk, by nothing; one
    hiding a message that validates; ones cut by the window's or the chunk's end."""
    data = b"".join(u + gap + (_MSG8 if msg else b"") for u, gap, msg in units)
    _same(_MSG8 * 40 + data, chunk)  # (40 messages first: a pass starts before them)


def _pass_agrees_with_oracle(data: bytes, size: int, final: bool) -> int:
    """One array pass from 0 over ``size`` bytes decides a prefix of the oracle's walk:
    the same messages and bad regions before where it stops. Returns where it stopped."""
    scan, walk = _Scan(data), _Walk()
    q, _, _ = rawarray.walk_window(scan, data, 0, 0, final, walk, size)
    starts, sizes = walk.columns()
    regions = [b.to_dict() for b in BadRegions.build([], walk.region_batches)]
    old, consumed = OracleFramer("raw")._walk_raw(data, 0, final)
    o_starts, o_sizes = old.columns()
    before = o_starts < q
    assert starts.tolist() == o_starts[before].tolist() and sizes.tolist() == o_sizes[before].tolist()
    assert regions == [b.to_dict() for b in old.regions if b.offset < q]
    assert q <= consumed
    return q


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_LENIENT_UNITS), st.sampled_from([b"", b"\x00", b"\x00" * 17, b"\xff"]),
                          st.booleans()), min_size=40, max_size=120), st.integers(0, 400), st.booleans())
def test_a_pass_decides_a_prefix_of_the_oracles_walk_wherever_its_window_ends(units, cut, final):
    """The window's end (not the buffer's) at any byte of a shower of lenient messages,
    bad regions and messages: what a pass decides before it stops is what the
    per-message walk does, and it stops before anything the bytes past its end decide."""
    data = b"".join(u + gap + (_MSG8 if msg else b"") for u, gap, msg in units)
    size = max(1, len(data) - cut)
    _pass_agrees_with_oracle(data, size, final)


@DIFF
@given(st.lists(st.sampled_from([b"\xff", b"\x0f\xf0", b"\x01\x02\x03", b"\xff" * 4]), min_size=30, max_size=80),
       st.integers(1, 11), st.sampled_from([b"", b"\xff"]))
def test_junk_at_the_captures_end_is_decided_off_the_places_as_by_the_look_ups(junk, cut, last):
    """At the capture's end a pass whose last message is cut off (a start needing bytes
    past the buffer) still reads the usual damage (junk between messages) off its places:
    those regions are decided as ``_regions`` decides them, and the walk is the oracle's."""
    data = b"".join(_MSG8 + j for j in junk) + _MSG8[:-cut] + last
    tight = rawarray._Plan._tight_regions
    asked = []

    def spy(self, *args):
        asked.append(self.need.size)
        return tight(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rawarray._Plan, "_tight_regions", spy)
        plan = rawarray._Plan(_Scan(data), 0, len(data), True, 0)
    assert asked and asked[0] > 0  # (the cut message's start needs more bytes)
    with pytest.MonkeyPatch.context() as mp:  # every region left to _regions
        mp.setattr(rawarray._Plan, "_tight_regions", lambda self, cand, nodes, st: (np.zeros(0, bool), nodes[:0]))
        slow = rawarray._Plan(_Scan(data), 0, len(data), True, 0)
    assert plan.nodes.tolist() == slow.nodes.tolist()
    assert plan.kind.tolist() == slow.kind.tolist() and plan.succ.tolist() == slow.succ.tolist()
    _pass_agrees_with_oracle(data, len(data), True)


@DIFF
@given(st.binary(min_size=1, max_size=40),
       st.lists(st.tuples(st.integers(0, 39), st.integers(1, 4)), min_size=1, max_size=30))
def test_short_regions_first_bytes_are_their_own(buf, regions):
    """The first bytes of short bad regions, made once per distinct value (keyed by their
    bytes, those past a shorter region zeroed), are each region's own bytes."""
    regions = [(x % len(buf), n) for x, n in regions]
    regions = [(x, min(n, len(buf) - x)) for x, n in regions]
    x = np.array([r[0] for r in regions], dtype=np.int64)
    length = np.array([r[1] for r in regions], dtype=np.int64)
    raws, codes = rawarray._short_raws(_Scan(buf), buf, x, length)
    assert [raws[c] for c in codes.tolist()] == [buf[x0 : x0 + n] for x0, n in regions]
    assert len(raws) == len(set(raws))


def test_reasons_and_first_bytes_read_from_their_parts_are_the_joined_ones():
    """``BadRegions`` joins its batches' reasons and first bytes (written lazily by the
    array passes) only when first read: a few reasons read from the parts (as
    ``bytes_by_kind`` reads those of untold kinds) are those of the joined list, and
    every region's first bytes are its own."""
    rng = np.random.default_rng(5)
    data = rng.choice(np.frombuffer(b"\x00\x00\x00\x08\x01\xb8\x00\xff", np.uint8), 1 << 17).tobytes()
    walk, _ = Framer("raw")._walk_raw(data, 0, True)
    assert walk.region_batches
    bad = BadRegions.build(walk.regions, walk.region_batches)
    parts = bad._reasons
    assert type(parts) is _Parts and any(type(p) is not list for p in parts)
    some = sorted(rng.choice(len(bad.reasons), 64, replace=False).tolist())
    assert parts.at(some) == [bad.reasons[k] for k in some]
    assert type(bad._raws) is _Parts and any(type(p) is RawSlices for p in bad._raws)
    assert bad._raws.at(some[:8]) == [bad.raws[k] for k in some[:8]]
    for b in bad:
        assert b.raw == data[b.offset : b.offset + min(b.length, BAD_RAW_CAP)]


def test_the_last_zero_of_each_run_is_decided_with_the_places(monkeypatch):
    """Heartbeat runs land on their last zero: a pass decides those places in its first
    round (not a second round of all its look-ups), and walks as the oracle does."""
    rng = np.random.default_rng(9)
    data = rng.choice(np.frombuffer(b"\x00\x00\x00\x08\x01\xb8\x00\xff", np.uint8), 3 * NARROW).tobytes()
    rounds = []
    decide = rawarray._Plan._decide

    def spy(self, nodes, runs=None, **kw):
        rounds.append(nodes.size)
        return decide(self, nodes, runs, **kw)

    monkeypatch.setattr(rawarray._Plan, "_decide", spy)
    rawarray._Plan(_Scan(data), 0, NARROW, True, 0)
    assert len(rounds) == 1 and rounds[0] > 1000
    monkeypatch.undo()
    _same(data)
    _same(data, 40_000)


@pytest.mark.parametrize("seed", [9, 10])
def test_places_merged_with_ends_out_of_order_are_the_marked_ones(monkeypatch, seed):
    """Message ends inside other messages (out of order) are sorted apart and merged with
    the valid starts and the ends in order: the places are those every byte's mark gives
    (the pass's other way, taken when such ends are dense)."""
    rng = np.random.default_rng(seed)
    data = rng.choice(np.frombuffer(b"\x00\x00\x00\x08\x01\xb8\x00\xff", np.uint8), 2 * NARROW).tobytes()
    for lo, entry in ((0, 0), (1000, 1001), (5, 5)):
        merged = rawarray._Plan(_Scan(data), lo, lo + NARROW, True, entry)
        ends = merged.ends[merged.ends < lo + NARROW]
        assert (ends[1:] < ends[:-1]).any()  # (some out of order: the case merged)
        with monkeypatch.context() as m:
            m.setattr(rawarray, "LATE_ENDS", 1 << 40)  # (never merged: the marks searched)
            marked = rawarray._Plan(_Scan(data), lo, lo + NARROW, True, entry)
        assert merged.nodes.tolist() == marked.nodes.tolist()
        assert merged.kind.tolist() == marked.kind.tolist() and merged.succ.tolist() == marked.succ.tolist()


@DIFF
@given(st.lists(st.sampled_from([b"", b"", b"\xff", b"\x0f\xf0", b"\x00", b"\x00" * 3]), min_size=20, max_size=200),
       st.integers(0, 30))
def test_places_of_ends_in_order_are_the_starts_and_ends_each_once(gaps, lo):
    """Messages one after another (ends in order, most of them where the next message
    starts, some at junk or heartbeats): the places are the valid starts, their ends in
    the window and the entry, each once and in order."""
    data = b"".join(_MSG8 + g for g in gaps)
    hi = min(len(data), lo + 1000)
    plan = rawarray._Plan(_Scan(data), lo, hi, True, lo)
    nodes = plan.nodes.tolist()
    assert nodes == sorted(set(nodes))
    want = {*plan.valid.tolist(), *plan.ends[plan.ends < hi].tolist(), lo}
    assert want <= set(nodes)
    assert set(nodes) - want <= set(plan.succ.tolist())  # (added: where a step lands, a run of zeros' last)


@DIFF
@given(st.lists(st.tuples(st.sampled_from([b"", b"\xff", b"\x0f\xf0", b"\x00", b"\x01\x02\x03\x04\x05", b"\xff" * 5]),
                          st.sampled_from([_MSG8, _MSG8[:7], b"\x00\x02" + _MSG8[2:] * 2])), min_size=10, max_size=150),
       st.integers(0, 40))
def test_dense_junk_is_told_by_slices_as_gathered_at_the_regions(units, cut):
    """The usual damage told for every place at once (slices, where junk lies between most
    messages) is what the look-ups gathered at each region tell, whatever follows."""
    data = b"".join(gap + msg for gap, msg in units)
    data = data[: max(len(data) - cut, 1)]
    tight = rawarray._Plan._tight_regions

    def spy(self, cand, nodes, st):
        got = tight(self, cand, nodes, st)
        c = cand[: np.searchsorted(cand, nodes.size - 2)]
        want = self._tight_at(c + 1, nodes, st)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
        return got

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rawarray._Plan, "_tight_regions", spy)
        for final in (True, False):
            rawarray._Plan(_Scan(data), 0, len(data), final, 0)


def test_dense_junk_is_told_by_slices():
    """Junk between every two messages: the regions are told by slices over the places."""
    data = (_MSG8 + b"\xff") * 400
    seen = []
    gathered = rawarray._Plan._tight_at
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rawarray._Plan, "_tight_at", lambda *a: seen.append(1) or gathered(*a))
        plan = rawarray._Plan(_Scan(data), 0, len(data), True, 0)
    assert not seen
    assert (plan.kind[1:-2:2] == 1).all() and (plan.succ[1:-2:2] == plan.nodes[2:-1:2]).all()


@DIFF
@given(st.binary(min_size=16, max_size=80), st.lists(st.integers(0, 80), min_size=1, max_size=20),
       st.sampled_from([8, 16, 24]))
def test_all_zero_reads_the_bytes_it_is_asked(buf, at, n):
    """``_all_zero`` (8 bytes at a time through an unaligned view) tells whether the ``n``
    bytes from each place are all zero, as the bytes themselves do."""
    buf = bytes(b if i % 3 else 0 for i, b in enumerate(buf)) + bytes(n)  # (runs of zeros too)
    at = np.array([x % (len(buf) - n + 1) for x in at], dtype=np.int64)
    a = np.frombuffer(buf, dtype=np.uint8)
    want = [not any(buf[x : x + n]) for x in at.tolist()]
    assert rawarray._all_zero(a, at, n).tolist() == want


@DIFF
@given(st.binary(min_size=16, max_size=80), st.lists(st.integers(0, 80), min_size=1, max_size=20),
       st.sampled_from([8, 16, 24]))
def test_first_nonzero_reads_the_bytes_it_is_asked(buf, at, n):
    """``_first_nonzero`` (a word's lowest set bit's byte) is the offset of the first
    nonzero byte among the ``n`` from each place, ``n`` where all are zero."""
    buf = bytes(b if i % 4 == 3 else 0 for i, b in enumerate(buf)) + bytes(n)  # (mostly zeros)
    at = np.array([x % (len(buf) - n + 1) for x in at], dtype=np.int64)
    a = np.frombuffer(buf, dtype=np.uint8)
    want = [next((i for i in range(n) if buf[x + i]), n) for x in at.tolist()]
    assert rawarray._first_nonzero(a, at, n).tolist() == want


@pytest.mark.parametrize("zeros", [3, 17, 40])
@pytest.mark.parametrize("copies", [1, 300])
def test_two_message_ends_in_one_run_of_zeros_walk_alike(zeros, copies):
    """A message whose body holds another that ends one byte after it (both validate), then
    a run of zeros: the run's last zero is where the heartbeats of both ends land (one
    place of the pass, not two)."""
    inner = b"\x00\x01\x00\x08" + bytes(8)  # ends one byte past the outer one
    outer = b"\x00\x01\x00\x0c" + b"\x07" + inner[:11]
    assert len(outer) == 16
    msg8 = shapes.encode.encode_message([shapes._packet(8, 1)])
    unit = outer + bytes(zeros) + msg8 + b"\xff" + msg8
    _same(unit * copies)
    _same(unit * copies, 997)


_SHORT_JUNK = [b"\xff", b"\xff\xf0", b"\x0f\xf0", b"\x00\x01\x00", b"\xff\xff\xff\xff", b"\x00\x01\x00\x01z",
               b"\x00\x01\x00\x02zz", b"\xff\x00\x01\x00\x01z", b"\xff" * 15, b"\xff" * 16, b"\x00" * 3]


@pytest.mark.parametrize("second", [None, b"\xff", b"\x00\x01\x00\x01z", b"\xff" * 16],
                         ids=lambda j: "one" if j is None else j.hex())
@pytest.mark.parametrize("first", _SHORT_JUNK, ids=lambda j: j.hex())
@pytest.mark.parametrize("chunk", [None, 4000])
def test_junk_between_tiny_messages_all_along_walks_alike(first, second, chunk):
    """Junk between every two one-packet messages, many windows long, one kind or two in
    turn: the regions a pass reads off its places (a message 1-4 bytes on, followed)
    and those it asks the tables for (longer junk, a lenient message in the junk, junk
    too long for the follow check) decide as the per-message walk does."""
    units = [(1, first), (2, first if second is None else second)] * 700
    _same(_tiny_units(units), chunk)


@pytest.mark.parametrize("chunk", [None, 70_000])
def test_messages_whose_chains_a_pass_joined_are_read_off_the_chains(monkeypatch, chunk):
    """``runs_found_out_of_order`` with counts of 191 (17 new packets, then 174 on the
    first walk's path, ending 9 units on where that unit's candidate is a few bytes
    ahead): the later candidates' chains were told to join the walked path by the
    resync's pre-filter passes (``KnownChains.note_joins``), so the walker takes their
    messages off the chains and walks none itself (``_plain_end``: 82 of them before);
    the same packets, messages and regions as the oracle's walk."""
    from app.core.framing import raw

    data = bytearray(shapes.runs_found_out_of_order(1 << 18))
    for u in range(0, len(data) - 300 + 1, 300):
        data[u + 128 : u + 130] = (17 + 12 + 18 * 9).to_bytes(2, "big")
    data = bytes(data)
    plain = []
    walk = raw._plain_end
    monkeypatch.setattr(raw, "_plain_end", lambda scan, p: plain.append(p) or walk(scan, p))
    _same(data, chunk)
    messages = sum(split.messages for split in _splits(Framer("raw"), data, chunk))
    assert messages > 80 and len(plain) < 10, (messages, len(plain))

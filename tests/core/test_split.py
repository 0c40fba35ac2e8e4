"""``split_messages``' long-message walk (``_walk_long``: the re engine's anchors, a
lockstep numpy walk between them or the re engine's prefixes when lanes are few, strided
runs of equal packets, Python steps for the rest) against the walk it replaced
(``tests.support.split_oracle``: one Python step a packet): the same ``MessageSplit``,
field for field, on messages built to reach every branch (issue 14)."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import protocol
from app.core.framing import packet_re, split
from app.core.framing.split import split_messages
from tests.support.split_oracle import _walk_one, old_long_walk

KNOWN = sorted(protocol.KNOWN_LENGTHS)
UNKNOWN = [0, 1, 5, 9, 300]  # lengths Kite does not send: taken when they fit, then faults


def _split_both(payload: bytes, starts, sizes, bare=None):
    """The split as it is and as it was; as it is also with every lane in the lockstep
    walk (few lanes are read by the re engine) and with no message handed to
    ``_walk_long`` (the vectorised steps only), which must agree."""
    a = np.frombuffer(payload, np.uint8)
    args = (a, np.asarray(starts, np.int64), np.asarray(sizes, np.int64), None if bare is None else np.asarray(bare))
    new = split_messages(*args)
    with mock.patch.object(split, "_LOCKSTEP_LANES", 1):
        _assert_same(split_messages(*args), new)
    with mock.patch.object(split, "_FEW_MESSAGES", 0), mock.patch.object(split, "_SOME_MESSAGES", 0):
        _assert_same(split_messages(*args), new)  # vectorised steps only, packet k of all at once
    with old_long_walk():
        old = split_messages(*args)
    return new, old


def _assert_same(new, old):
    for name in ("pkt_msg", "pkt_seq", "pkt_pos", "pkt_len", "valid"):
        got, want = getattr(new, name), getattr(old, name)
        assert got.dtype == want.dtype, name
        assert got.tolist() == want.tolist(), name
    assert new.faults == old.faults
    assert (new.header_bytes, new.packet_bytes, new.bad_bytes) == (old.header_bytes, old.packet_bytes, old.bad_bytes)


def _packet(length: int, fill: int) -> bytes:
    return length.to_bytes(2, "big") + bytes([fill]) * length


def _body(draw_runs) -> bytes:
    """Runs of packets: (length, how many, alternate length or None, body byte)."""
    out = bytearray()
    for length, n, other, fill in draw_runs:
        for i in range(n):
            out += _packet(other if other is not None and i % 2 else length, fill)
    return bytes(out)


# Long runs of one known length (equal runs, lanes of 64), alternations of two (lanes),
# short runs and unknown lengths alone or alternating with known ones (the Python steps
# where fewer than 64 whole known packets follow); bodies of bytes that read as prefixes.
_RUN = st.tuples(
    st.sampled_from(KNOWN + UNKNOWN),
    st.one_of(st.integers(1, 8), st.integers(30, 200)),
    st.none() | st.sampled_from(KNOWN + UNKNOWN),
    st.sampled_from([0, 8, 0xEC, 0x1C, 0xFF]),
)
_MESSAGE = st.tuples(
    st.lists(_RUN, min_size=1, max_size=12),
    st.integers(-70, 70),  # count minus the packets held (a count larger or smaller)
    st.integers(0, 12),  # bytes cut off the end (a packet or its prefix cut by the message end)
    st.binary(max_size=3),  # bytes after the last packet
)
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _message(runs, miscount, trim, extra) -> bytes:
    body = _body(runs)
    held = sum(n for _, n, _, _ in runs)
    body = body[: max(len(body) - trim, 0)] + extra
    return max(0, min(0xFFFF, held + miscount)).to_bytes(2, "big") + body


@SETTINGS
@given(st.lists(_MESSAGE, min_size=1, max_size=10), st.lists(st.integers(1, 6), max_size=30), st.integers(0, 2))
def test_long_messages_split_as_the_per_packet_walk(messages, short_counts, gap):
    """A batch of long messages (with short ones that leave the vectorised steps early)
    splits into the same packets, faults, validity and byte counts as before."""
    payload, starts, sizes = bytearray(), [], []
    msgs = [_message(*m) for m in messages]
    msgs += [n.to_bytes(2, "big") + b"".join(_packet(8, 1) for _ in range(n)) for n in short_counts]
    for m in msgs:
        payload += bytes(gap)
        starts.append(len(payload))
        payload += m
    sizes = [len(m) for m in msgs]
    new, old = _split_both(bytes(payload), starts, sizes)
    _assert_same(new, old)
    assert new.packet_bytes + new.header_bytes + new.bad_bytes == sum(sizes)


@SETTINGS
@given(_MESSAGE, st.integers(0, 20))
def test_a_message_walked_from_packet_k_answers_as_the_per_packet_walk(message, k):
    """``_walk_long`` from any packet of any message (its cursor at that packet's
    prefix) gives the old walk's packets, cursor and fault."""
    msg = _message(*message)
    buf = b"\x05" + msg  # one byte before: positions are absolute
    a = np.frombuffer(buf, np.uint8)
    count = msg[0] << 8 | msg[1]
    c, e = 3, len(buf)
    k = min(k, count)
    for _ in range(k):  # the prefix of packet k, as the vectorised steps leave it
        if c + 2 > e or c + 2 + (buf[c] << 8 | buf[c + 1]) > e:
            return
        c += 2 + (buf[c] << 8 | buf[c + 1])
    want = _walk_one(a, c, e, count, k)
    for lockstep in (1, split._LOCKSTEP_LANES):
        with mock.patch.object(split, "_LOCKSTEP_LANES", lockstep):
            (got,) = split._walk_long(a, [(c, e, count, k)])
        assert got[:4] == want[:4]
        parts = [p.arrays() if type(p) is split.EqualRun else p for p in got[4]]
        pos = np.concatenate([p.ravel() for p, _ in parts]) if parts else np.zeros(0, np.int64)
        lengths = np.concatenate([q.ravel() for _, q in parts]) if parts else np.zeros(0, np.int64)
        assert pos.tolist() == want[4].tolist()
        assert lengths.tolist() == want[5].tolist()


def test_full_messages_of_mixed_lengths_split_as_the_per_packet_walk():
    """Messages of 65,535 packets of mixed known lengths (the crafted shapes' kind: many
    lanes of the lockstep walk), one with an unknown length in its middle and one cut
    short, split as before."""
    rng = np.random.default_rng(14)
    msgs = []
    for variant in range(3):
        lengths = rng.choice([8, 12, 28, 44], 0xFFFF).tolist()
        if variant == 1:
            lengths[40_000] = 7
        body = b"".join(_packet(n, n) for n in lengths)
        if variant == 2:
            body = body[:-5]
        msgs.append(b"\xff\xff" + body)
    payload = b"".join(msgs)
    starts = np.cumsum([0] + [len(m) for m in msgs[:-1]])
    new, old = _split_both(payload, starts, [len(m) for m in msgs])
    _assert_same(new, old)
    assert new.pkt_msg.size == 3 * 0xFFFF - 2
    assert new.valid.tolist() == [True, False, False]


def test_runs_between_anchors_are_read_in_lockstep():
    """The lockstep walk reads each lane's 64 packets from its prefix position."""
    lengths = [8, 12, 28, 44, 164, 184, 492, 32] * 24
    buf = b"".join(_packet(n, 0) for n in lengths)
    a = np.frombuffer(buf, np.uint8)
    lanes = [0, sum(2 + n for n in lengths[:64]), sum(2 + n for n in lengths[:128])]
    pos, got = split._lockstep(a, lanes)
    assert got.T.ravel().tolist() == lengths
    assert (pos.T.ravel() - 2).tolist() == np.cumsum([0] + [2 + n for n in lengths[:-1]]).tolist()


def test_run_lengths_reads_a_known_run():
    buf = b"\x00" + b"".join(_packet(n, 8) for n in KNOWN) + b"\x00\x09"
    stop = packet_re.chain_end(buf, 1, len(buf))
    assert packet_re.run_lengths(buf, 1, stop).tolist() == KNOWN
    assert packet_re.run_lengths(buf, 1, 1).tolist() == []
    assert packet_re.exact(3).match(buf, 1).end() == 1 + sum(2 + n for n in KNOWN)
    assert packet_re.exact(4).match(buf, 1) is None


def test_lanes_that_only_look_like_equal_runs_split_as_the_per_packet_walk():
    """64 packets spanning 64 times the first one's size (28, then 12 and 44 in turn,
    then 28) with equal high bytes are no run of equal packets (the long walk starts at
    packet 8: the vectorised steps take the first 8)."""
    lanes = [28] + [12, 44] * 31 + [28]
    assert sum(2 + n for n in lanes) == 64 * (2 + 28)
    lengths = [8] * 8 + lanes * 5 + [28] * 100 + lanes
    msg = len(lengths).to_bytes(2, "big") + b"".join(_packet(n, 0) for n in lengths)
    new, old = _split_both(msg, [0], [len(msg)])
    _assert_same(new, old)
    assert new.pkt_len.tolist() == lengths


_ANY_MESSAGE = st.one_of(
    _MESSAGE.map(lambda m: (_message(*m), False)),
    st.sampled_from([b'{"type":1}', b"\x00", b"", b"\x00\x00", b"\x00\x01\x00\x05abcde", _packet(8, 3)[2:]]).map(
        lambda m: (m, False)
    ),
    st.sampled_from(KNOWN).map(lambda n: (bytes([n & 0xFF]) * n, True)),  # a bare body
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ANY_MESSAGE, min_size=1, max_size=12), st.integers(1, 3))
def test_a_batch_splits_as_each_of_its_messages_alone(msgs, gap):
    """Framed, text, too short, empty and bare messages in one batch (the general path)
    split as each does alone (a batch of one framed message takes the whole-array path)."""
    payload, starts = bytearray(), []
    for m, _ in msgs:
        payload += bytes(gap)  # faults of neighbours never touch (no merging across messages)
        starts.append(len(payload))
        payload += m
    sizes = [len(m) for m, _ in msgs]
    bare = [b for _, b in msgs]
    a = np.frombuffer(bytes(payload), np.uint8)
    batch = split_messages(a, np.array(starts), np.array(sizes), np.array(bare))
    totals = [0, 0, 0]
    for i, (s, n, b) in enumerate(zip(starts, sizes, bare, strict=True)):
        alone = split_messages(a, np.array([s]), np.array([n]), np.array([b]) if b else None)
        mine = batch.pkt_msg == i
        assert batch.pkt_seq[mine].tolist() == alone.pkt_seq.tolist()
        assert batch.pkt_pos[mine].tolist() == alone.pkt_pos.tolist()
        assert batch.pkt_len[mine].tolist() == alone.pkt_len.tolist()
        assert bool(batch.valid[i]) == bool(alone.valid[0])
        assert [f[1:] for f in batch.faults if f[0] == i] == [f[1:] for f in alone.faults]
        totals = [t + x for t, x in zip(totals, (alone.header_bytes, alone.packet_bytes, alone.bad_bytes), strict=True)]
    assert totals == [batch.header_bytes, batch.packet_bytes, batch.bad_bytes]


def test_a_count_whose_first_byte_is_a_brace_is_no_text_frame():
    """Only ``{"`` starts a JSON text frame; a count of 0x7B01 packets is a count."""
    text, braced = b'{"type":1}', b"\x7b\x01" + _packet(8, 0)
    payload = text + b"\x00" + braced
    starts, sizes = np.array([0, len(text) + 1]), np.array([len(text), len(braced)])
    ms = split_messages(np.frombuffer(payload, np.uint8), starts, sizes)
    reasons = [f[3] for f in ms.faults]
    assert reasons[0].startswith("JSON text frame") and len(reasons) == 2
    assert reasons[1] == "message announces 31489 packets but holds only 1"
    assert ms.pkt_len.tolist() == [8]


def test_a_strided_payload_splits_as_a_contiguous_one():
    """The re engine needs a contiguous buffer: a strided view of the bytes splits alike."""
    lengths = [8, 12, 28] * 60
    msg = len(lengths).to_bytes(2, "big") + b"".join(_packet(n, 1) for n in lengths)
    wide = np.zeros(2 * len(msg), np.uint8)
    wide[::2] = np.frombuffer(msg, np.uint8)
    strided = split_messages(wide[::2], np.array([0]), np.array([len(msg)]))
    plain = split_messages(np.frombuffer(msg, np.uint8), np.array([0]), np.array([len(msg)]))
    _assert_same(strided, plain)
    assert strided.pkt_len.tolist() == lengths


_ONE = st.tuples(st.sampled_from(KNOWN + UNKNOWN), st.integers(0, 0xFF))  # a packet's length, body byte
# a message unlike the rest: its count, its size (bytes cut off or added) or its packet's length off
_ODD = st.tuples(st.integers(0, 40), st.sampled_from(["count", "size", "length"]),
                 st.sampled_from([-5, -2, -1, 1, 2, 3]))


@SETTINGS
@given(st.lists(_ONE, min_size=1, max_size=40), st.none() | _ODD, st.integers(0, 2), st.booleans())
def test_one_packet_messages_split_as_the_walk(packets, odd, gap, bare):
    """A batch of one-packet messages (tiny messages), each filling its message, splits
    as the general walk splits it (the batch is read a word a message when every one is
    such a message); with one message unlike the rest (a count of 0 or 2, its size off,
    its packet overrunning it or leaving bytes after it) the batch takes the walk."""
    msgs = [b"\x00\x01" + _packet(n, fill) for n, fill in packets]
    if odd is not None:
        at, what, by = odd
        at %= len(msgs)
        m = msgs[at]
        if what == "count":
            m = max(0, 1 + by).to_bytes(2, "big") + m[2:]
        elif what == "size":
            m = m[: len(m) + by] if by < 0 else m + bytes([7] * by)
        else:
            m = m[:2] + max(0, len(m) - 4 + by).to_bytes(2, "big") + m[4:]
        msgs[at] = m
    payload, starts = bytearray(), []
    for m in msgs:
        payload += bytes(gap)
        starts.append(len(payload))
        payload += m
    a = np.frombuffer(bytes(payload), np.uint8)
    args = (a, np.asarray(starts, np.int64), np.asarray([len(m) for m in msgs], np.int64))
    args += (np.zeros(len(msgs), bool),) if bare else ()
    exact = all(len(m) >= 4 and m[:2] == b"\x00\x01" and int.from_bytes(m[2:4], "big") == len(m) - 4 for m in msgs)
    assert split._one_packet_each(*args[:3]) == exact
    new = split_messages(*args)
    with mock.patch.object(split, "_one_packet_each", lambda *_: False):
        old = split_messages(*args)
    _assert_same(new, old)
    assert new.packet_bytes + new.header_bytes + new.bad_bytes == sum(len(m) for m in msgs)


def test_a_message_past_64_kib_is_not_read_as_one_packet():
    """A count of 2 and a first length of 8 read as one u32 equal the size of a message
    65,536 bytes longer than a packet of 8 (the u32 of a 1 and its length, carried): no
    one-packet message is that long, and the walk splits it."""
    msg = b"\x00\x02" + _packet(8, 1) + _packet(0xFFFE, 2)
    assert int.from_bytes(msg[:4], "big") == len(msg) + (1 << 16) - 4
    args = (np.frombuffer(msg, np.uint8), np.array([0]), np.array([len(msg)]))
    assert not split._one_packet_each(*args)
    ms = split_messages(*args)
    assert ms.pkt_len.tolist() == [8] and [f[2:] for f in ms.faults] == [(0xFFFE, "unknown packet length 65534")]


def _same_split(a, b) -> None:
    for name in ("pkt_msg", "pkt_seq", "pkt_pos", "pkt_len", "valid"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.faults, a.header_bytes, a.packet_bytes, a.bad_bytes) == (b.faults, b.header_bytes, b.packet_bytes,
                                                                        b.bad_bytes)


def test_long_messages_the_chains_validated_split_as_walked_again():
    """The raw walk hands the prefix positions of the long messages its chains validated
    to ``split_messages`` (``_Walk.prefixes``): the split reads them instead of walking the
    packets again, and finds exactly the packets it finds walking them."""
    from app.core.framing import Framer
    from tests.core.test_resync import runs_found_out_of_order, validate_across_many_runs

    for shape in (validate_across_many_runs, runs_found_out_of_order):
        data = shape(1 << 22)  # its long messages are accepted ones at this size
        walk, _ = Framer("raw")._walk_raw(data, 0, True)
        assert walk.prefixes  # long messages the chains validated
        payload = np.frombuffer(data, dtype=np.uint8)
        start, size = walk.columns()
        with mock.patch.object(split, "_plan", wraps=split._plan) as walked:
            told = split_messages(payload, start, size, None, walk.prefixes)
        spans = [(s, s + z) for s, z in zip(start.tolist(), size.tolist(), strict=True) if s in walk.prefixes]
        cursors = [call.args[1] for call in walked.call_args_list]
        assert not [c for c in cursors for s, e in spans if s <= c < e]  # none of them walked again
        _same_split(told, split_messages(payload, start, size))

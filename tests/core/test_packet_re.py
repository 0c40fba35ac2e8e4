"""The regular-expression chain follower (``packet_re``) against a plain Python walk of
the same prefixes, on bytes built to hold long chains of known-length packets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import protocol
from app.core.framing import packet_re
from app.core.framing.common import KNOWN_MASK, known_lengths, u16_every

KNOWN = sorted(protocol.KNOWN_LENGTHS)


def _walk(buf: bytes, x: int, end: int, most: int | None = None) -> list[int]:
    """Lengths of the whole known-length packets in a row from ``x`` below ``end``."""
    out = []
    while (most is None or len(out) < most) and x + 2 <= end:
        length = buf[x] << 8 | buf[x + 1]
        if length not in protocol.KNOWN_LENGTHS or x + 2 + length > end:
            break
        out.append(length)
        x += 2 + length
    return out


def _packet(length: int, fill: int) -> bytes:
    return length.to_bytes(2, "big") + bytes([fill]) * length


_PIECES = st.one_of(
    st.tuples(st.sampled_from(KNOWN), st.sampled_from([0, 1, 8, 0xEC, 0xFF])).map(lambda t: _packet(*t)),
    st.binary(max_size=6),
    st.sampled_from([b"\x00\x08", b"\x01\xec", b"\x00", b"\x00\x09", b"\x00\x0c\x00\x08"]),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(_PIECES, max_size=300), st.data())
def test_chain_end_lengths_prefixes_and_jump_agree_with_a_python_walk(pieces, data):
    buf = b"".join(pieces)
    x = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(x, len(buf)))
    lengths = _walk(buf, x, end)
    assert packet_re.chain_end(buf, x, end) == x + sum(2 + n for n in lengths)
    assert packet_re.chain_lengths(buf, x, end).tolist() == lengths
    prefixes = (x + np.cumsum([0] + [2 + n for n in lengths[:-1]])).tolist() if lengths else []
    assert packet_re.run_prefixes(np.frombuffer(buf, dtype=np.uint8), buf, x, end).tolist() == prefixes
    n = data.draw(st.integers(0, len(lengths) + 3))
    want = x + sum(2 + k for k in lengths[:n]) if n <= len(lengths) else -1
    assert packet_re.jump(buf, x, n, end) == want


def test_a_long_chain_of_mixed_lengths_is_followed_whole():
    rng = np.random.default_rng(3)
    lengths = rng.choice(KNOWN, 70_000).tolist()
    buf = b"\x07" + b"".join(_packet(n, 0) for n in lengths) + b"\x00\x09"
    end = len(buf)
    assert packet_re.chain_lengths(buf, 1, end).tolist() == lengths
    assert packet_re.jump(buf, 1, 65_535, end) == 1 + sum(2 + n for n in lengths[:65_535])
    assert packet_re.jump(buf, 1, 70_001, end) == -1
    # a body cut by ``end`` is not a whole packet
    assert packet_re.chain_end(buf, 1, end - 3) == 1 + sum(2 + n for n in lengths[:-1])


def test_run_prefixes_of_a_long_chain_of_lanes_runs_and_a_tail():
    rng = np.random.default_rng(8)
    lengths = rng.choice(KNOWN, 5_000).tolist() + [28] * 700 + rng.choice(KNOWN, 333).tolist()
    buf = b"\x07" + b"".join(_packet(n, 0) for n in lengths) + b"\x00\x09"
    a = np.frombuffer(buf, dtype=np.uint8)
    want = 1 + np.concatenate([[0], np.cumsum(np.asarray(lengths) + 2)])[:-1]
    assert packet_re.run_prefixes(a, buf, 1, len(buf)).tolist() == want.tolist()


@pytest.mark.parametrize("length", [8, 28, 492])
@pytest.mark.parametrize("extra", [-1, 0, 1, 2, 3000])
def test_run_prefixes_of_long_runs_of_equal_packets_end_as_a_walk(length, extra):
    """A run of equal packets about as long as the engine matches of it (a lane and
    ``RUN_MATCHED`` packets) or far longer (strided compares past that), then another
    length, junk or nothing; every ``end`` about the run's last packets and inside a
    body: the prefixes are a walk's."""
    n = packet_re.LANE + packet_re.RUN_MATCHED + extra
    step = 2 + length
    for after in (_packet(8 if length != 8 else 28, 0), b"\x00\x09", b""):
        buf = b"\x07" + _packet(length, 0x1C) * n + after
        a = np.frombuffer(buf, dtype=np.uint8)
        stop = 1 + n * step
        for end in {len(buf), stop, stop - 1, stop - step, stop - step + 2, stop + 1, 1 + 300 * step}:
            end = min(end, len(buf))
            want = 1 + step * np.arange(len(_walk(buf, 1, end)))
            got = packet_re.run_prefixes(a, buf, 1, end)
            assert got.tolist() == want.tolist(), (after, end)


@pytest.mark.parametrize("swapped", [0, 1 << 30], ids=["bytes", "whole-u16"])
def test_lane_prefixes_read_each_lane_as_a_walk(monkeypatch, swapped):
    """Both ways of reading the lanes (a big-endian u16 view's gather for a few lanes,
    two byte gathers for many): every lane's prefixes are a walk's, up to its end."""
    monkeypatch.setattr(packet_re, "SWAPPED_LANES", swapped)
    rng = np.random.default_rng(9)
    lengths = rng.choice(KNOWN, 40 * packet_re.LANE + 7).tolist()
    buf = b"\x07\x00" + b"".join(_packet(n, 0xAB) for n in lengths) + b"\x00"
    at = 2 + np.concatenate([[0], np.cumsum(np.asarray(lengths) + 2)])
    lanes = at[: 40 * packet_re.LANE : packet_re.LANE][::-3].tolist()  # any order, any subset
    grid = packet_re.lane_prefixes(np.frombuffer(buf, dtype=np.uint8), lanes)
    for i, x in enumerate(lanes):
        k = int(np.searchsorted(at, x))
        assert grid[:, i].tolist() == at[k : k + packet_re.LANE + 1].tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([n.to_bytes(2, "big") for n in KNOWN] + [b"\x00", b"\x01"]),
                          st.binary(max_size=3)), max_size=200).map(b"".join), st.data())
def test_u16_every_and_known_lengths_read_like_shifts_and_the_mask(blob, data):
    a = np.frombuffer(blob, dtype=np.uint8)
    lo = data.draw(st.integers(0, max(len(blob) - 1, 0)))
    hi = data.draw(st.integers(lo, max(len(blob) - 1, lo)))
    got = u16_every(a, lo, hi)
    b = a.astype(np.int64)
    want = (b[lo:hi] << 8) | b[lo + 1 : hi + 1] if hi > lo else np.zeros(0, np.int64)
    assert got.dtype == np.uint16 and got.tolist() == want.tolist()
    assert known_lengths(got).tolist() == KNOWN_MASK[want].tolist()


# Small packets whose bodies hold bytes that read as known lengths (a run's prefixes are
# then not the only known-length positions), and junk between runs.
_BODY = st.sampled_from([0, 1, 8, 12, 28, 0xEC])
_DENSE_PIECES = st.one_of(
    st.sampled_from([8, 8, 12, 28]).flatmap(
        lambda n: st.lists(_BODY, min_size=n, max_size=n).map(lambda body: n.to_bytes(2, "big") + bytes(body))),
    st.binary(max_size=3),
)


@SETTINGS
@given(st.lists(_DENSE_PIECES, max_size=300), st.data())
def test_known_steps_take_a_walks_prefixes_up_to_where_they_stop(pieces, data):
    """``known_steps`` from any position, in any window, with any few known lengths off
    the run allowed: a walk's first prefixes, then the walk's next prefix or its end (at
    its end when it says STOPS)."""
    buf = b"".join(pieces)
    x = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(x, len(buf)))
    window = data.draw(st.sampled_from([1, 3, 16, 100, 5000]))
    lengths = _walk(buf, x, end)
    at = (x + np.cumsum([0] + [2 + n for n in lengths])).tolist()  # the walk's prefixes and its end
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(packet_re, "DENSE_SLACK", data.draw(st.sampled_from([0, 2, 16])))
        got, goes, how = packet_re.known_steps(np.frombuffer(buf, dtype=np.uint8), x, end, window)
    k = got.size
    assert got.tolist() == at[:k]
    assert goes == at[k]
    if how == packet_re.STOPS:
        assert k == len(lengths)
    if how == packet_re.GOES_ON:
        assert goes >= min(x + window, end - 1)


@SETTINGS
@given(st.lists(_DENSE_PIECES, max_size=400), st.data())
def test_run_prefixes_read_off_known_length_positions_are_a_walks(pieces, data):
    """``known_steps`` taken after every lane (small windows, few known lengths off the
    run allowed): the prefixes are a walk's, however the windows, the packets cut by
    ``end`` and the known lengths inside bodies fall."""
    buf = b"".join(pieces)
    x = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(x, len(buf)))
    lengths = _walk(buf, x, end)
    prefixes = (x + np.cumsum([0] + [2 + n for n in lengths[:-1]])).tolist() if lengths else []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(packet_re, "FIRST_BATCH", 1)
        mp.setattr(packet_re, "DENSE_SPAN", 1 << 20)
        mp.setattr(packet_re, "DENSE_WINDOWS", (data.draw(st.sampled_from([3, 16, 100])), 400))
        mp.setattr(packet_re, "DENSE_SLACK", data.draw(st.sampled_from([0, 2, 16])))
        got = packet_re.run_prefixes(np.frombuffer(buf, dtype=np.uint8), buf, x, end)
    assert got.tolist() == prefixes


def test_run_prefixes_of_small_packets_read_known_length_positions(monkeypatch):
    """A long run of 8- and 12-byte packets (``validate_across_many_runs``' shape), a few
    of whose bodies read as known lengths, then junk: the prefixes are read off the
    known-length positions (``known_steps``, not a lane per 64 packets) and are a walk's,
    for ends inside the run, at its end and past it."""
    rng = np.random.default_rng(12)
    lengths = rng.choice([8, 8, 8, 12], 30_000).tolist()
    bodies = [bytearray(n) for n in lengths]
    for k in rng.choice(len(bodies), 300, replace=False).tolist():  # a known length inside a body
        body = bodies[k]
        at = int(rng.integers(0, len(body) - 1))
        body[at : at + 2] = rng.choice([8, 12, 492]).item().to_bytes(2, "big")
    buf = b"\x07" + b"".join(n.to_bytes(2, "big") + bytes(b) for n, b in zip(lengths, bodies, strict=True))
    buf += b"\x00\x09" + bytes(40) + b"\x00\x08" + bytes(8)  # no run after the 9, a known length past it
    a = np.frombuffer(buf, dtype=np.uint8)
    calls = []
    steps = packet_re.known_steps
    monkeypatch.setattr(packet_re, "known_steps", lambda *args: calls.append(args) or steps(*args))
    run_end = len(buf) - 52
    for end in (len(buf), run_end, run_end - 5, 200_000, 70_001):
        want = 1 + np.concatenate([[0], np.cumsum(np.asarray(_walk(buf, 1, end)) + 2)])[:-1]
        assert packet_re.run_prefixes(a, buf, 1, end).tolist() == want.tolist(), end
    assert len(calls) >= 5
    # a window ending at a prefix: the run goes on there; one ending inside a body: at the next
    eights = np.frombuffer(b"\x07" + (b"\x00\x08" + bytes(8)) * 9, np.uint8)
    for window, goes in [(20, 21), (19, 21), (21, 31)]:
        got, at, how = packet_re.known_steps(eights, 1, 91, window)
        assert (at, how) == (goes, packet_re.GOES_ON) and got.tolist() == list(range(1, goes, 10)), window


@pytest.mark.parametrize("lanes", [1, 4, 5, 12, 13, 15, 16, 17, 40])
def test_run_prefixes_of_a_few_lanes_to_many_are_a_walks(lanes):
    """Runs of mixed lengths over 1 to 40 lanes (several batches of them), then a few
    packets: listed by findall below FEW_LANES lanes, read in lockstep from there on,
    both a walk's prefixes."""
    rng = np.random.default_rng(lanes)
    lengths = rng.choice([8, 12, 28, 44, 184], packet_re.LANE * lanes + 5).tolist()
    buf = b"\x07" + b"".join(_packet(n, 0) for n in lengths) + b"\x00\x09"
    want = 1 + np.concatenate([[0], np.cumsum(np.asarray(lengths) + 2)])[:-1]
    got = packet_re.run_prefixes(np.frombuffer(buf, dtype=np.uint8), buf, 1, len(buf))
    assert got.tolist() == want.tolist()

"""Resynchronisation on damage and the linear-work guarantee (issue 14).

Work is the decoder's own counter (``DecodeSummary.work``: candidate checks, bytes
pre-filtered and packet-chain steps), never wall-clock time.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import protocol
from app.core.decode import CaptureReader, decode_bytes
from app.core.framing import PacketChains, resync
from app.core.framing.chains import KnownChains
from app.core.framing.common import reason_kind as _reason_kind
from app.core.framing.common import reason_kinds as _reason_kinds
from app.core.framing.resync import CANDIDATE_BLOCK, RAW_SPAN, _raw_candidates, _raw_plausible, _Scan
from tests.support import encode

WORK_PER_BYTE = 4  # measured ~1.0-1.4 on every shape below; the bound leaves room, not slack for O(n^2)
LENGTHS = [8, 28, 32, 44, 184]


def _packet(length: int, serial: int) -> bytes:
    layout = protocol.LAYOUTS[length]
    values = {"instrument_token": (serial << 8) | 1, "last_price": 100_000 + serial % 5000}
    for f in layout.fields:
        if f.timestamp:
            values[f.name] = 1_700_000_000
    levels = layout.depth.levels if layout.depth else 0
    depth = [(10 + i, 100_000 - i, 1 + i) for i in range(levels)] if levels else None
    return encode.encode_packet(length, values, depth, depth)


def _messages(count: int, seed: int) -> list[list[bytes]]:
    """Messages of 1-6 packets; packet serials (tokens) are unique and in file order."""
    rng = np.random.default_rng(seed)
    out, serial = [], 0
    for _ in range(count):
        packets = []
        for length in rng.choice(LENGTHS, size=int(rng.integers(1, 7))):
            packets.append(_packet(int(length), serial))
            serial += 1
        out.append(packets)
    return out


def _record(framing: str, message: bytes, i: int) -> bytes:
    if framing == "u32len":
        return struct.pack(">I", len(message)) + message
    if framing == "ts-u32len":
        return struct.pack(">QI", 1_700_000_000 * 10**9 + i, len(message)) + message
    return message


def _tokens(table) -> list[int]:
    return [t >> 8 for t in table.column("instrument_token").to_pylist()]


def _check_accounting(data, table, bad, summary):
    assert summary.bytes == len(data) == summary.bytes_accounted == sum(summary.accounted.values())
    assert sum(b.length for b in bad) == summary.accounted["bad"]
    assert table.num_rows == summary.packets


@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len"])
@pytest.mark.parametrize("junk", [b"\n", b"\r", b"\xff", b"\x01"])
def test_one_junk_byte_after_every_message_recovers_99_percent(framing, junk):
    msgs = _messages(3000, seed=1)
    data = b"".join(_record(framing, encode.encode_message(m), i) + junk for i, m in enumerate(msgs))
    table, bad, summary = decode_bytes(data, framing)
    _check_accounting(data, table, bad, summary)
    sent = sum(len(m) for m in msgs)
    assert summary.packets >= 0.99 * sent, (summary.packets, sent)
    # and nothing decoded is invented: every packet is one that was written, in order
    tokens = _tokens(table)
    assert tokens == sorted(set(tokens)) and max(tokens) < sent
    assert summary.work <= WORK_PER_BYTE * len(data)


def _damage(data: bytes, spans: list[tuple[int, int]], places: int, seed: int):
    """Insert, delete or overwrite up to 64 bytes at ``places`` places; returns the new
    bytes and the indexes of the spans (messages/records) the damage touches: those its
    bytes overlap, and for a deletion inside a message also those within n bytes after
    that message (its unchanged lengths now claim them)."""
    rng = np.random.default_rng(seed)
    at = np.sort(rng.choice(np.arange(1, len(data) - 1), size=places, replace=False))
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    out = bytearray()
    touched: set[int] = set()
    prev = 0
    for x in at.tolist():
        if x < prev:
            continue
        kind = rng.integers(3)
        n = int(rng.integers(1, 65))
        out += data[prev:x]
        if kind == 0:  # insertion: touches the span it lands inside (not a boundary)
            out += rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            hit = np.flatnonzero((starts < x) & (ends > x))
            prev = x
        else:
            n = min(n, len(data) - x)
            if kind == 1:  # overwrite
                out += rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            hit = np.flatnonzero((starts < x + n) & (ends > x))
            if kind == 2 and hit.size:
                # A deletion leaves the message's own lengths intact, so they now claim
                # the n bytes after it: those belong to the damage too.
                reach = int(ends[hit[0]]) + n
                hit = np.flatnonzero((starts < reach) & (ends > x))
            prev = x + n  # deletion: the bytes are simply not copied
        touched.update(hit.tolist())
    out += data[prev:]
    return bytes(out), touched


@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len"])
@pytest.mark.parametrize("seed", [3, 4])
def test_random_damage_at_200_places_loses_only_the_messages_it_touches(framing, seed):
    msgs = _messages(2500, seed=seed)
    parts, spans, pos = [], [], 0
    for i, m in enumerate(msgs):
        rec = _record(framing, encode.encode_message(m), i)
        parts.append(rec)
        spans.append((pos, pos + len(rec)))
        pos += len(rec)
    data = b"".join(parts)
    damaged, touched = _damage(data, spans, 200, seed)
    table, bad, summary = decode_bytes(damaged, framing)
    _check_accounting(damaged, table, bad, summary)
    got = set(_tokens(table))
    serial, lost = 0, []
    for i, m in enumerate(msgs):
        serials = range(serial, serial + len(m))
        serial += len(m)
        if i not in touched and not all(s in got for s in serials):
            lost.append(i)
    assert lost == [], f"untouched messages lost: {lost[:10]} ({len(lost)}) of {len(msgs)}; touched {len(touched)}"
    assert summary.work <= WORK_PER_BYTE * len(damaged)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=6000), st.sampled_from([None, "raw", "u32len", "ts-u32len", "base64", "single"]))
def test_any_bytes_every_byte_accounted_and_work_linear(blob, framing):
    table, bad, summary = decode_bytes(blob, framing)
    _check_accounting(blob, table, bad, summary)
    assert summary.work <= WORK_PER_BYTE * len(blob) + 64


# Structured bytes reach the deep paths (chains that validate far ahead) far more often
# than uniform random bytes do.
_ATOMS = [b"\x00", b"\x00\x00", b"\x00\x08", b"\x00\x01", b"\xff\xff", b"\x00\xb8", b"\x00\x2c",
          b"\x00\x1c", b"\x00\x20", b"\x01\xec", b"\n", b"{\"", b"\x10\x00"]


@PROPERTY
@given(st.lists(st.sampled_from(_ATOMS) | st.binary(max_size=12), max_size=2500),
       st.sampled_from([None, "raw", "u32len", "ts-u32len"]))
def test_structured_garbage_every_byte_accounted_and_work_linear(atoms, framing):
    blob = b"".join(atoms)
    table, bad, summary = decode_bytes(blob, framing)
    _check_accounting(blob, table, bad, summary)
    assert summary.work <= WORK_PER_BYTE * len(blob) + 64


# --- crafted worst cases --------------------------------------------------------------


def _repeat(unit: bytes, size: int) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


def late_failing_counts(size):
    """Every 10 bytes a prefix of a known length (8) preceded by a count of 65535:
    each candidate chains to the end of the file and fails there (the issue's shape)."""
    return _repeat(b"\x00\x08" + b"\x01\x02\x03\x04\x05\x06" + b"\xff\xff", size)


def validate_then_not_followed(size):
    """Candidates whose messages validate to just before the end, not followed by one."""
    units = size // 10
    out = bytearray()
    for i in range(units):
        out += b"\x00\x08\x01\x02\x03\x04\x05\x06" + struct.pack(">H", max(1, min(0xFFFF, units - i - 2)))
    return bytes(out) + b"\x07" * (size - len(out))


def interleaved_chains(size):
    """Two chains of 28-byte packets offset by one byte, both failing at the end."""
    unit = bytearray(b"\x00\x1c" + bytes(28))
    unit[2:4] = b"\x00\x1c"
    unit[-2:] = b"\xff\xfe"
    return _repeat(bytes(unit), size - 3) + b"\x99\x98\x97"


def junk_before_big_counts(size):
    """A valid message, then junk that reads as a huge count whose first length is known."""
    msg = encode.encode_message([_packet(8, 1)])
    return _repeat(msg + b"\xff\xf0" + msg, size)


def lenient_traps(size):
    """Counts of 4096 packets of plausible unknown lengths that run past the end."""
    return _repeat(b"\x10\x00" + b"\x00\x03abc" * 3, size)


def zero_runs_and_counts(size):
    rng = np.random.default_rng(9)
    return rng.choice(np.frombuffer(b"\x00\x00\x00\x08\x01\xb8\x00\xff", np.uint8), size).tobytes()


def huge_records(size):
    """u32len records claiming most of the file whose messages fail at their last byte."""
    body = _repeat(b"\x00\x08" + bytes(8), size)
    out = bytearray()
    for at in range(0, size, 7):
        out += struct.pack(">I", max(4, size - at - 8))
    return bytes(out[:size // 2]) + body[: size - size // 2]


def tiny_messages_junk_between(size):
    """The smallest message (one 8-byte packet) and one junk byte, again and again: a bad
    region every 13 bytes, each found by the quick resync probe."""
    return _repeat(encode.encode_message([_packet(8, 1)]) + b"\xff", size)


def mixed_lengths_junk_between(size):
    """Messages of 8 alternating 8- and 28-byte packets (no uniform fast path) with a junk
    count before each (4,080: just under the uniform check's cap, so each junk count
    costs that check a long strided count): every resync goes through the general search."""
    msg = encode.encode_message([_packet(8 if k % 2 else 28, k) for k in range(8)])
    return _repeat(b"\x0f\xf0" + msg, size)


def deep_candidates(size):
    """Candidates whose chains of 8-byte packets pass the 16-deep vectorised pre-check and
    then fail (17 known lengths, then an unknown one), one starting every 10 bytes."""
    unit = b"\x00\x08" + bytes(6) + b"\x00\x11"
    chain = unit * 17 + b"\x00\x07" + bytes(8)
    return _repeat(chain, size)


def clean_tiny_messages(size):
    """Not damaged at all: one 8-byte packet per message (12 bytes each), the per-message
    floor of the walker that any crafted input of small messages also pays."""
    msg = encode.encode_message([_packet(8, 1)])
    return _repeat(msg, size - size % len(msg)) + b"\x00" * (size % len(msg))


def validate_across_many_runs(size):
    """Candidates whose messages validate to the end of the file, not followed, over one
    chain of 12 8-byte packets then one 12-byte packet, again and again: the walk joins
    a run of equal packets (strided compares) every 13 packets, so a message crosses
    thousands of joined runs (a jump across them must not cost one step per run)."""
    lengths = ([8] * 12 + [12]) * (max(size - 64, 0) // 134)  # 134 bytes each; junk after
    out = bytearray()
    for i, length in enumerate(lengths):
        out += struct.pack(">H", length) + b"\x01" * (length - 2)
        out += struct.pack(">H", max(1, min(0xFFFF, len(lengths) - i - 1)))  # the count before the next
    return bytes(out) + b"\x07" * (size - len(out))


def runs_found_out_of_order(size):
    """Units of 300 bytes on a lattice of 8-byte packets (step 10): 12 of them (A), a
    12-byte packet, 17 more (G), and inside G's bodies a path of 28- and 44-byte packets
    from that 12-byte packet back onto the lattice at the next unit's A; before each G a
    count just above the packets its chain holds. The first candidate's walk crosses the
    whole file over every A (a run of equal packets, joined at once) and around every G;
    each later candidate walks into one G, whose run is found after all the As beyond
    it: runs of one (step, phase) recorded out of position order, every one."""
    units = size // 300
    out = bytearray(size)
    for i in range(units):
        u = 300 * i
        for k in list(range(12)) + list(range(13, 30)):
            out[u + 10 * k : u + 10 * k + 2] = b"\x00\x08"
        out[u + 120 : u + 122] = b"\x00\x0c"
        out[u + 128 : u + 130] = struct.pack(">H", min(0xFFFF, 18 * (units - i) + 17))
        for x in (134, 164, 194, 224):
            out[u + x : u + x + 2] = b"\x00\x1c"
        out[u + 254 : u + 256] = b"\x00\x2c"
    return bytes(out)


def many_long_messages(size):
    """Undamaged: nine messages of up to 65,535 packets of alternating 8 and 12 bytes, back
    to back (a batch of nine or more long messages made the split take one numpy step
    per packet index for all of them: ~360 ms of split at 4 MB before bd26cbd)."""
    count = max(1, min(0xFFFF, (size // 9 - 2) // 12))
    body = (b"\x00\x08" + bytes(8) + b"\x00\x0c" + bytes(12)) * (count // 2) + (b"\x00\x08" + bytes(8)) * (count % 2)
    msg = struct.pack(">H", count) + body
    out = msg * (size // len(msg))
    return out + b"\x00" * (size - len(out))


CRAFTED = [late_failing_counts, validate_then_not_followed, interleaved_chains, junk_before_big_counts,
           lenient_traps, zero_runs_and_counts, huge_records, tiny_messages_junk_between,
           mixed_lengths_junk_between, deep_candidates, validate_across_many_runs, runs_found_out_of_order,
           many_long_messages, clean_tiny_messages]


@pytest.mark.parametrize("shape", CRAFTED, ids=lambda f: f.__name__)
@pytest.mark.parametrize("framing", ["raw", "u32len", "ts-u32len"])
def test_crafted_worst_inputs_take_linear_work(shape, framing):
    works = []
    for size in (4_000, 32_000, 256_000):
        data = shape(size)
        table, bad, summary = decode_bytes(data, framing)
        _check_accounting(data, table, bad, summary)
        assert summary.work <= WORK_PER_BYTE * size, (size, summary.work)
        works.append(summary.work / size)
    # work per byte does not grow with the size (64x larger input, same cost per byte)
    assert works[-1] <= works[0] * 1.5 + 0.5, works


@pytest.mark.parametrize("framing", ["raw", "u32len"])
def test_chunked_reading_keeps_the_work_linear(tmp_path, framing):
    """A candidate whose message runs past a chunk's end is decided when the next chunk
    is there, so its bytes are walked again: work stays within
    c x size x (1 + longest candidate message / chunk size)."""
    data = late_failing_counts(150_000) + validate_then_not_followed(100_000) + junk_before_big_counts(50_000)
    path = tmp_path / "crafted.bin"
    path.write_bytes(data)
    chunk = 1 << 16
    reader = CaptureReader(path, framing, chunk_bytes=chunk)
    for _ in reader.batches():
        pass
    assert reader.summary.bytes_accounted == len(data)
    assert reader.summary.work <= WORK_PER_BYTE * len(data) * (1 + 150_000 / chunk)


def test_packet_chains_answer_like_a_plain_walk():
    rng = np.random.default_rng(5)
    buf = rng.choice(np.frombuffer(b"\x00\x08\x00\x1c\x01\x02\xff", np.uint8), 5000).tobytes()
    chains = PacketChains(buf)
    for q in range(0, len(buf) - 2):
        n = buf[q] << 8 | buf[q + 1]
        j, status = q + 2, None
        for _ in range(n):
            if j + 2 > len(buf):
                status = -1
                break
            length = buf[j] << 8 | buf[j + 1]
            if length not in protocol.KNOWN_LENGTHS:
                status = -2
                break
            j += 2 + length
        expected = (-2 if n == 0 else status) if status is not None or n == 0 else (j if j <= len(buf) else -1)
        assert chains.message_end(q) == expected, q


def test_two_callers_asking_blocks_in_turn_each_get_wider_prefilter_passes():
    """The raw resync asks candidate blocks in order (``_find_anchor``) while its follow
    checks ask blocks in order far ahead (``_followed``, each message ending there): each
    stream of blocks asked in a row widens its own pre-filter passes (up to
    ``RAW_SPAN`` blocks, one look-ahead margin each), so turns taken do not reset them to
    one block each, every block then paying a margin as large as itself
    (``runs_found_out_of_order`` reached 4.17 work/byte at 2 MB that way)."""
    data = runs_found_out_of_order(64 * CANDIDATE_BLOCK)
    passes = []

    def mask(a, window):
        passes.append(window.size)
        return _raw_plausible(a, window)

    mask.blocks = RAW_SPAN
    scan = _Scan(data)
    for b in range(32):  # two streams of 32 blocks each, one block of each in turn
        for first in (b, 32 + b):
            list(scan.candidates(first * CANDIDATE_BLOCK, (first + 1) * CANDIDATE_BLOCK, "raw", mask, 4))
    assert sum(passes) >= len(data) - 3  # every block decided
    assert len(passes) <= 2 * 6, passes  # 1 + 2 + 4 + 8 + 16 + 1 blocks per stream (was 64: one block each)
    assert scan.scanned <= 3.6 * len(data)  # 3.39 per byte (was 3.83: a margin of 4 kB per 4 kB block)


def test_raw_prefilter_rounds_stop_at_their_budget(monkeypatch):
    """Where a few candidate starts sit among many long chains (``runs_found_out_of_order``:
    one per 35 prefixes, every chain leaving the margin), the pre-filter's pointer-jumping
    rounds stop at ``CHAIN_BUDGET`` steps per candidate instead of running until every
    chain left the window: the chains decided nothing there. It keeps a superset of what
    unbounded rounds keep, and drops only starts whose message cannot validate."""
    data = runs_found_out_of_order(1 << 18)
    a = np.frombuffer(data, dtype=np.uint8)
    window = np.arange(1 << 16, 1 << 17, dtype=np.int64)
    monkeypatch.setattr(resync, "FRONTIER_SPARSE", 1 << 40)  # the pointer-jumping rounds alone
    ok, work, _ = _raw_plausible(a, window)
    monkeypatch.setattr(resync, "CHAIN_BUDGET", 1 << 40)
    full_ok, full_work, _ = _raw_plausible(a, window)
    candidates = int(np.count_nonzero(_raw_candidates(a, window)))
    assert candidates > 100
    assert work <= full_work / 3, (work, full_work)
    assert (ok | ~full_ok).all()  # every start the unbounded rounds keep is kept
    chains = PacketChains(data)
    assert all(chains.message_end(int(q)) == -2 for q in window[_raw_candidates(a, window) & ~ok])


def test_a_jump_across_a_long_walk_costs_at_most_one_step():
    """A message crossing a long walk (``validate_across_many_runs``: a run of 12 equal
    packets, then another length, again and again) is jumped in one hop at most, not one
    per run or per prefix (one hop per run made the work grow with the file, 370 per
    byte at 256 kB)."""
    data = validate_across_many_runs(40_000)
    chains = KnownChains(data)
    prefixes = [0]
    while data[prefixes[-1] : prefixes[-1] + 2] != b"\x07\x07":
        prefixes.append(prefixes[-1] + 2 + (data[prefixes[-1]] << 8 | data[prefixes[-1] + 1]))
    assert chains.run(0) == len(prefixes) - 1  # the first walk: the whole chain
    walked = chains.steps
    ends = {chains.message_end(x - 2) for x in prefixes[1:-1]}  # the count before each prefix
    assert ends == {prefixes[-1]}  # every one validates, to the same end
    assert chains.steps - walked <= len(prefixes)  # at most one hop each


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab (;)0123456789\n\t", max_size=30), max_size=40))
def test_reason_kinds_of_many_reasons_are_each_reasons_kind(reasons):
    """The summary's bad bytes per kind: the batch of a capture's distinct reasons gives
    each reason's kind as the one-by-one rule does (numbers, text after ';' or '(')."""
    assert _reason_kinds(reasons) == [_reason_kind(r) for r in reasons]


def test_the_plain_walk_of_a_long_message_jumps_it_as_the_loop_walks_it():
    """``_plain_end`` takes a long message's packets with the re engine (``packet_re.jump``)
    when every one is whole below the limit; otherwise the loop finds where it stops (the
    frontier). Same end, same frontier as the loop alone (shortcuts off)."""
    from app.core.framing.raw import _plain_end

    rng = np.random.default_rng(4)
    lengths = rng.choice([8, 28, 44, 184], 3000).tolist()
    body = b"".join(struct.pack(">H", n) + bytes(n) for n in lengths)
    msg = struct.pack(">H", len(lengths)) + body
    broken = bytearray(msg)
    broken[2 + sum(2 + n for n in lengths[:1500])] = 0x7F  # packet 1500's length: unknown
    for data in (msg + b"\x00\x01", bytes(broken) + b"\x00\x01", msg[:-5]):
        fast, plain = _Scan(data), _Scan(data, shortcuts=False)
        assert _plain_end(fast, 0) == _plain_end(plain, 0)
        assert fast.frontier == plain.frontier
    fast = _Scan(msg)
    assert _plain_end(fast, 0) == len(msg) and fast.plain == len(lengths)


@pytest.mark.parametrize("shape", [zero_runs_and_counts, tiny_messages_junk_between, junk_before_big_counts,
                                   mixed_lengths_junk_between], ids=lambda f: f.__name__)
def test_bad_bytes_by_kind_as_read_off_every_reason(shape):
    """The walker's array passes tell each bad region's reason kind (``BadRegions.kinds``):
    the bytes per kind, in the order kinds first appear, are those read off every
    region's reason text (``reason_kinds``), the kinds it did not tell included."""
    from app.core.framing import Framer

    data = bytearray(shape(1 << 19))
    data[5000:5003] = b'{"t'  # a region with a text frame's first bytes, and one cut at the end
    split = Framer("raw").split(bytes(data[:-7]), 0, True)
    bad = split.bad
    assert bad.kind_code is not None and (bad.kind_code >= 0).any()
    by_reason = bad.bytes_by_reason()
    want: dict[str, int] = {}
    for kind, n in zip(_reason_kinds(list(by_reason)), by_reason.values(), strict=True):
        want[kind] = want.get(kind, 0) + n
    assert list(bad.bytes_by_kind().items()) == list(want.items())
    # the kinds told are each once, and every told code names its region's reason's kind
    assert len(set(bad.kinds)) == len(bad.kinds)
    told = np.flatnonzero(bad.kind_code >= 0)
    assert [bad.kinds[k] for k in bad.kind_code[told].tolist()] == \
        [_reason_kind(bad[i].reason) for i in told.tolist()]


def test_regions_built_from_batches_tell_each_kind_once():
    """``BadRegions.build`` keeps each kind the batches told once (codes remapped where a
    batch's kinds differ from those before), -1 (not told) as it is."""
    from app.core.framing.common import BadPacket, BadRegions

    def batch(offsets, kind_codes, names):
        off = np.asarray(offsets, dtype=np.int64)
        codes = np.arange(off.size, dtype=np.int64)
        reasons = [f"{names[k]} {o}" if k >= 0 else f"other {o}" for k, o in zip(kind_codes, offsets, strict=True)]
        return (off, np.ones(off.size, dtype=np.int64), codes, reasons, codes, [b"x"] * off.size,
                (np.asarray(kind_codes, dtype=np.int64), names))

    bad = BadRegions.build([BadPacket(0, 1, "first", b"y")], [
        batch([10, 20], [0, 0], ["alpha"]),
        batch([30, 40, 50], [0, -1, 1], ["beta", "alpha"]),
        batch([60], [0], ["beta"]),
    ])
    assert bad.kinds == ["alpha", "beta"]
    assert bad.kind_code.tolist() == [-1, 0, 0, 1, -1, 0, 1]
    assert [r.reason for r in bad][1:] == ["alpha 10", "alpha 20", "beta 30", "other 40", "alpha 50", "beta 60"]
    assert bad.bytes_by_kind() == {"first": 1, "alpha": 3, "beta": 2, "other N": 1}
    assert list(bad.bytes_by_kind()) == ["first", "alpha", "beta", "other N"]
    one = BadRegions.build([], [batch([10, 20, 30], [0, 0, 0], ["alpha"])])
    one.length[:] = [3, 4, 5]
    assert one.bytes_by_kind() == {"alpha": 12}


def test_final_candidates_are_listed_apart_where_the_capture_end_drops_some():
    """The raw pre-filter's two answers ("raw", and "raw-final" at the capture's end)
    share their blocks' lists where its masks are one, and are listed apart where the
    end drops candidates (messages running past it, longer than the bytes left): the
    final ones then a strict subset, else the same."""
    for shape, drops in ((late_failing_counts, True), (interleaved_chains, True), (zero_runs_and_counts, True),
                         (validate_then_not_followed, False), (runs_found_out_of_order, False)):
        data = shape(20_000)
        scan = _Scan(data)
        raw = list(scan.candidates(0, len(data), "raw", _raw_plausible, 4))
        final = list(scan.candidates(0, len(data), "raw-final", _raw_plausible, 4))
        assert set(final) <= set(raw), shape.__name__
        assert (len(final) < len(raw)) == drops, shape.__name__

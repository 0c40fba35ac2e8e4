"""The decoder's Arrow builders (buffers instead of pa.array with masks, kept repeated
strings and nulls) give exactly the arrays the plain pyarrow calls give."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from app.core import decode, schema
from app.core.decode import SUB_BATCH_PACKETS, _distinct, _names, _repeated_string, _with_mask

NAMES = schema.TIME_SOURCES
NAME_ARRAY = pa.array(NAMES, pa.string())


def reference_names(code: np.ndarray) -> pa.Array:
    return pa.array([None if c < 0 else NAMES[c] for c in code.tolist()], pa.string())


@pytest.mark.parametrize("named_share", [0.0, 0.001, 0.05, 0.2, 0.9, 1.0])
def test_names_match_a_plain_build_at_every_density(named_share):
    rng = np.random.default_rng(int(named_share * 1000))
    n = 5000
    code = rng.integers(0, len(NAMES), n).astype(np.int8)
    code[rng.random(n) >= named_share] = -1
    got = _names(NAMES, NAME_ARRAY, code)
    got.validate(full=True)
    assert got.equals(reference_names(code))
    assert got.null_count == int(np.count_nonzero(code < 0))


def test_names_of_one_repeated_name_and_of_none():
    for code in (np.full(300, 2, np.int8), np.full(300, -1, np.int8), np.zeros(0, np.int8)):
        got = _names(NAMES, NAME_ARRAY, code)
        got.validate(full=True)
        assert got.equals(reference_names(code))


@pytest.mark.parametrize(
    ("type_", "dtype"),
    [(pa.float64(), np.float64), (pa.int64(), np.int64), (schema.UTC_TIME, np.int64), (pa.date32(), np.int32)],
)
def test_with_mask_matches_pa_array_with_a_mask(type_, dtype):
    rng = np.random.default_rng(7)
    n = 1003  # not a multiple of 8: the bitmap's last byte is partial
    values = rng.integers(0, 1 << 30, n).astype(dtype)
    for valid in (rng.random(n) > 0.3, np.ones(n, bool), np.zeros(n, bool), None):
        got = _with_mask(values, valid, type_)
        got.validate(full=True)
        want = pa.array(values, type=type_, mask=None if valid is None else ~valid)
        assert got.type == type_ and got.equals(want)
    # a strided view or another dtype goes the plain way, same answer
    strided = np.repeat(values, 2)[::2]
    valid = rng.random(n) > 0.5
    assert _with_mask(strided, valid, type_).equals(pa.array(strided, type=type_, mask=~valid))


def test_repeated_strings_are_the_text_in_every_row_whatever_was_built_before():
    texts = ["ab" * 32, "ltp", "x" * 40]
    sizes = [5, SUB_BATCH_PACKETS * 3, 17, 9 * SUB_BATCH_PACKETS, 0, 1000]
    for size in sizes:
        for text in texts:
            got = _repeated_string(text, size)
            got.validate(full=True)
            assert len(got) == size and got.null_count == 0
            assert got.equals(pa.array([text] * size, pa.string()))
    for k in range(20):  # many file ids in turn: each still right
        text = f"{k:064d}"
        assert _repeated_string(text, 10).to_pylist() == [text] * 10


def _split_of(lengths: list[int], per_message: int):
    from app.core.framing import ChunkSplit

    n = len(lengths)
    lens = np.array(lengths, dtype=np.int64)
    pos = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
    return ChunkSplit(
        payload=np.zeros(int(lens.sum()), np.uint8), pkt_pos=pos, pkt_len=lens,
        pkt_msg=np.arange(n, dtype=np.int64) // per_message,
        pkt_seq=(np.arange(n) % per_message).astype(np.int32), pkt_offset=pos.copy(), pkt_recv_ns=None,
        bad=[], accounted={}, messages=0, heartbeats=0, consumed=0,
    )


@pytest.mark.parametrize(("length", "scale"), [(8, 4), (28, 64 / 28), (44, 64 / 44), (184, 1), (492, 1)])
def test_small_packets_come_in_bigger_batches_cut_on_message_boundaries(length, scale):
    from app.core.decode import _batch_packets, _sub_splits

    split = _split_of([length] * 300_000, per_message=7)
    assert _batch_packets(split, SUB_BATCH_PACKETS) == int(SUB_BATCH_PACKETS * scale)
    parts = list(_sub_splits(split, SUB_BATCH_PACKETS))
    sizes = [p.pkt_pos.size for p in parts]
    assert sum(sizes) == 300_000 and len(parts) == pytest.approx(300_000 / (SUB_BATCH_PACKETS * scale), abs=1)
    assert np.array_equal(np.concatenate([p.pkt_pos for p in parts]), split.pkt_pos)
    for a, b in zip(parts, parts[1:], strict=False):  # no message is cut in two
        assert a.pkt_msg[-1] != b.pkt_msg[0] and b.pkt_seq[0] == 0


# the columns a packet's own bytes decide (not its place, its message mates or the file)
PER_PACKET = [n for n in schema.DECODED_SCHEMA.names if n not in
              ("file_id", "msg_seq", "pkt_seq", "offset", "tick_time", "tick_time_source", "trading_date")]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_of_many_layouts_decodes_each_packet_as_a_batch_of_its_own_length(seed):
    """Batches of several lengths take token and price of all packets at once and skip
    LTP groups; one length takes its own path: the rows must not depend on it."""
    from app.core import protocol
    from app.core.decode import decode_bytes
    from tests.support import encode

    rng = np.random.default_rng(seed)
    packets = []
    for _ in range(3000):
        length = int(rng.choice(list(protocol.LAYOUTS)))
        body = bytearray(rng.integers(0, 256, length, dtype=np.uint8).tobytes())
        body[3] = int(rng.choice([1, 2, 3, 7, 9, 200]))  # segments, one not a Kite segment
        if length == 44 and rng.random() < 0.5:  # a depth-20 head (the variant layout)
            body[8:12] = int(rng.integers(1_300_000_000, 1_800_000_000)).to_bytes(4, "big")
            body[20:24] = int(rng.integers(0, 9)).to_bytes(4, "big")
            body[32:36] = int(rng.integers(0, 9)).to_bytes(4, "big")
        packets.append(bytes(body))
    lengths = np.array([len(p) for p in packets])

    def decoded(chosen):
        messages = [encode.encode_message(chosen[i : i + 7]) for i in range(0, len(chosen), 7)]
        return decode_bytes(encode.frame(messages, "raw"), "raw")[0].select(PER_PACKET)

    mixed = decoded(packets)
    assert mixed.num_rows == len(packets)
    # (44-byte packets take the batch-of-layouts path alone as well: their mode says which layout)
    modes = [protocol.layout_of(p).mode for p in packets]
    assert mixed.column("mode").to_pylist() == modes and "depth20_head" in modes
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        alone = decoded([packets[i] for i in rows])
        assert mixed.take(pa.array(rows)).equals(alone), length


@pytest.mark.parametrize("mean_run", [1, 2, 3, 10, 1000])
@pytest.mark.parametrize("n", [0, 1, 64, 65, 66, 5000])
def test_distinct_tokens_are_every_token_once_in_first_seen_order(monkeypatch, mean_run, n):
    """Runs of equal tokens (the first neighbours mostly equal) hash each run's first
    token only; the answer is the hash table's of every token, order included."""
    rng = np.random.default_rng(mean_run * 10_000 + n)
    runs = rng.geometric(1 / mean_run, n)
    token = np.repeat(rng.integers(0, 40, n) * 256 + 3, runs)[:n].astype(np.int64)
    want = pc.unique(token).to_numpy()
    hashed = []  # the sizes _distinct hands the hash table
    unique = pc.unique
    monkeypatch.setattr(decode.pc, "unique", lambda values: hashed.append(len(values)) or unique(values))
    got = _distinct(token)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
    sample = token[: decode._RUN_SAMPLE + 1]
    if n > decode._RUN_SAMPLE and hashed and np.count_nonzero(sample[1:] != sample[:-1]) * 2 < decode._RUN_SAMPLE:
        assert hashed[0] == 1 + np.count_nonzero(token[1:] != token[:-1]) < n  # the runs' firsts alone

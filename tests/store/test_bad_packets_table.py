"""A decoder's BadRegions become bad_packets rows from their columns: exactly the rows
(schema, values, order) the regions read one by one give."""

import numpy as np
import pyarrow as pa
import pytest

from app.core.decode import decode_bytes
from app.core.framing import rawarray
from app.core.framing.common import BadPacket, BadRegions, byte_spans
from app.core.framing.rawarray import _SIZE_BITS, _reason_text, _Reasons
from app.store.base import bad_packets_table
from tests.core import test_resync as R

FILE_ID = "ab" * 32
SHAPES = [R.zero_runs_and_counts, R.tiny_messages_junk_between, R.mixed_lengths_junk_between,
          R.late_failing_counts, R.interleaved_chains, R.junk_before_big_counts, R.huge_records,
          R.lenient_traps, R.deep_candidates]


def _one_by_one(bad) -> pa.Table:
    return bad_packets_table(FILE_ID, [BadPacket(b.offset, b.length, b.reason, b.raw, b.msg_seq) for b in bad])


@pytest.mark.parametrize("framing", ["raw", "u32len"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
def test_regions_table_is_the_one_by_one_table(shape, framing):
    data = shape(300_000)
    _, bad, _ = decode_bytes(data, framing)
    assert isinstance(bad, BadRegions) and len(bad)
    table = bad_packets_table(FILE_ID, bad)  # from the parts, nothing read yet
    expected = _one_by_one(bad)
    assert table.schema.equals(expected.schema)
    assert table.equals(expected)
    assert bad_packets_table(FILE_ID, bad).equals(expected)  # once read one by one, too


def test_no_regions_and_plain_lists():
    empty = BadRegions.build([], [])
    assert bad_packets_table(FILE_ID, empty).equals(bad_packets_table(FILE_ID, []))
    assert bad_packets_table(FILE_ID, empty).num_rows == 0
    rows = [BadPacket(3, 5, "why", b"\x00\x01"), BadPacket(9, 1, "é", b"")]
    table = bad_packets_table(FILE_ID, rows)
    assert table.to_pylist() == [
        {"file_id": FILE_ID, "offset": 3, "length": 5, "reason": "why", "raw": b"\x00\x01"},
        {"file_id": FILE_ID, "offset": 9, "length": 1, "reason": "é", "raw": b""},
    ]
    mixed = BadRegions.build(rows, [])
    assert bad_packets_table(FILE_ID, mixed).equals(table)


@pytest.mark.parametrize("rows", [rawarray.TEXT_ROWS, 1000])
def test_reasons_written_together_are_each_keys_text(rows, monkeypatch):
    monkeypatch.setattr(rawarray, "TEXT_ROWS", rows)  # (1000: the keys written in blocks)
    rng = np.random.default_rng(3)
    size = rng.integers(0, 1 << _SIZE_BITS, 4000)
    text = rng.random(4000) < 0.1
    good, bad_len = rng.integers(0, 70, 4000), rng.integers(0, 0x1FFFF, 4000)
    fault = np.where(rng.random(4000) < 0.7, (good << 17 | bad_len) + (1 << 17) + 1, 0)
    fault[:3] = [1, (1 << 17) + 1, 0]  # (the smallest numbers: 0 and -1 written)
    n = rng.choice([-1, 0, 1, 9, 10, 99, 100, 65535], 4000)
    keys = np.unique((((n + 1) << 23 | fault) << 1 | text) << _SIZE_BITS | size)
    reasons = _Reasons(keys, ["asked one", "asked two"])
    texts = reasons.tolist()
    assert None in texts and any("(packet -1 of" in t for t in texts if t)
    data, start, end = reasons.spans()
    assert [data[i:j].tobytes() for i, j in zip(start, end, strict=True)] == \
        [b"" if t is None else t.encode() for t in texts]
    assert [_reason_text(int(k)) for k in keys[:5]] == texts[:5]
    data, start, end = byte_spans(["a", None, "bc"])
    assert (data.tobytes(), start.tolist(), end.tolist()) == (b"abc", [0, 1, 1], [1, 1, 3])

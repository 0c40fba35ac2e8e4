"""The inspector's packet index: the decoder's packets and faults, one row each, in file order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.core import packet_index as pi
from app.core import protocol
from app.core.decode import CaptureReader
from app.errors import InputError
from tests.support.synthetic import generate_capture


@pytest.fixture(scope="module", params=["raw", "u32len", "ts-u32len"])
def damaged(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("idx") / f"damaged-{request.param}.dat"
    info = generate_capture(path, packets=3000, faults=True, framing=request.param, seed=7)
    return path, info


def _decoded(path):
    reader = CaptureReader(path)
    ticks, bad = [], []
    for batch in reader.batches():
        ticks.append(batch.ticks)
        bad.extend(batch.bad)
    import pyarrow as pa

    return pa.concat_tables(ticks), bad


def test_rows_are_the_decoders_packets_and_faults_in_file_order(damaged):
    path, info = damaged
    index = pi.build_index(path)
    ticks, bad = _decoded(path)
    assert index.complete and index.rows == ticks.num_rows + len(bad)
    offsets = index.column("offset")
    assert np.all(np.diff(offsets) >= 0)
    is_bad = (index.column("flags") & pi.FLAG_BAD) != 0
    packets = ~is_bad
    assert np.array_equal(offsets[packets], ticks.column("offset").to_numpy())
    assert np.array_equal(index.column("token")[packets], ticks.column("instrument_token").to_numpy())
    assert np.allclose(index.column("last_price")[packets], ticks.column("last_price").to_numpy(zero_copy_only=False))
    assert np.array_equal(index.column("length")[packets], ticks.column("packet_length").to_numpy())
    assert np.array_equal(index.column("msg")[packets], ticks.column("msg_seq").to_numpy())
    kinds = [pi.KIND_NAMES[k] for k in index.column("kind")[packets][:50]]
    assert kinds == [protocol.LAYOUTS[n].kind for n in ticks.column("packet_length").to_pylist()[:50]]
    # bad regions are rows too, with their reasons, and the bad-row list points at them
    assert [int(o) for o in offsets[is_bad]] == [b.offset for b in bad]
    assert [index.reasons[int(r)] for r in index.bad_rows()] == [b.reason for b in bad]
    assert np.array_equal(index.bad_rows(), np.flatnonzero(is_bad))
    # every injected fault is a bad row starting inside it (or at its end for a short count)
    assert info.faults
    for fault in info.faults:
        assert any(fault.offset <= b.offset <= fault.offset + fault.length for b in bad), fault


def test_exchange_times_and_time_going_backwards(damaged):
    path, _ = damaged
    index = pi.build_index(path)
    ticks, _ = _decoded(path)
    packets = (index.column("flags") & pi.FLAG_BAD) == 0
    ets = ticks.column("exchange_timestamp").to_numpy(zero_copy_only=False)
    has = ~np.isnat(ets)
    got = index.column("exchange_time")[packets].astype(np.int64)
    assert np.array_equal(got[has], ets[has].astype("datetime64[s]").astype(np.int64))
    assert np.all(got[~has] == 0)
    back = (index.column("flags")[packets] & pi.FLAG_TIME_BACK) != 0
    running = np.maximum.accumulate(got)
    expected = (got > 0) & (got < np.concatenate([[0], running[:-1]]))
    assert np.array_equal(back, expected)


def test_building_in_small_chunks_gives_the_same_rows_and_reports_progress(damaged):
    path, _ = damaged
    whole = pi.build_index(path)
    small = pi.PacketIndex(path, chunk_bytes=4096, first_chunk_bytes=1024)
    seen = []
    small.build(progress=lambda p: seen.append(p))
    # Packets are identical; a bad region crossing a chunk boundary may be cut in two by
    # the framer's resync (every byte still accounted), so compare bad bytes in total.
    small_packets = (small.column("flags") & pi.FLAG_BAD) == 0
    whole_packets = (whole.column("flags") & pi.FLAG_BAD) == 0
    for name in pi.COLUMNS:
        assert np.array_equal(small.column(name)[small_packets], whole.column(name)[whole_packets]), name
    assert small.column("length")[~small_packets].sum() == whole.column("length")[~whole_packets].sum()
    assert seen[-1].done and seen[-1].rows == small.rows and seen[-1].bytes_done == whole.size
    assert len(seen) >= 2  # throttled to ~20 a second, the first and the final always sent
    assert [p.rows for p in seen] == sorted(p.rows for p in seen)


def test_cancel_stops_between_chunks(tmp_path):
    path = tmp_path / "c.dat"
    generate_capture(path, packets=20_000)
    index = pi.PacketIndex(path, chunk_bytes=4096, first_chunk_bytes=4096)
    cancel = threading.Event()

    def progress(p):
        cancel.set()

    index.build(progress=progress, cancel=cancel)
    assert index.cancelled and not index.complete
    assert 0 < index.rows < 20_000


def test_filters_are_numpy_masks(damaged):
    path, _ = damaged
    index = pi.build_index(path)
    token = index.column("token")
    flags = index.column("flags")
    some = int(token[3])
    mask = index.mask(pi.RowFilter(tokens=[some]))
    assert np.array_equal(mask, (token == some) & ((flags & pi.FLAG_BAD) == 0)) and mask.sum() > 1
    assert np.array_equal(np.flatnonzero(index.mask(pi.RowFilter(bad_only=True))), index.bad_rows())
    full = index.mask(pi.RowFilter(kinds=["full"]))
    assert np.array_equal(full, index.column("length") == 184)
    nse = index.mask(pi.RowFilter(segments=[1]))
    assert np.array_equal(nse, (index.column("segment") == 1) & ((flags & pi.FLAG_BAD) == 0))
    lo, hi = int(index.column("offset")[10]), int(index.column("offset")[20])
    assert np.flatnonzero(index.mask(pi.RowFilter(offset_range=(lo, hi)))).tolist() == list(range(10, 21))
    t = index.column("exchange_time")
    a = int(t[t > 0].min())
    in_range = index.mask(pi.RowFilter(time_range=(a, a + 1)))
    assert np.array_equal(in_range, (t >= a) & (t <= a + 1))
    # a filter over a slice is the same as the slice of the whole mask (batches while indexing)
    spec = pi.RowFilter(tokens=[some], kinds=["full", "quote"])
    assert np.array_equal(index.mask(spec, 100, 900), index.mask(spec)[100:900])


def test_unresolved_tokens_are_flagged_with_instruments(damaged):
    path, _ = damaged
    plain = pi.build_index(path)
    tokens = np.unique(plain.column("token")[(plain.column("flags") & pi.FLAG_BAD) == 0])
    named = {int(t): f"SYM{int(t)}" for t in tokens[::2]}
    asked = []

    def symbol_of(token):
        asked.append(token)
        return named.get(token)

    index = pi.build_index(path, symbol_of=symbol_of)
    assert sorted(asked) == sorted(set(asked))  # once per distinct token
    packets = (index.column("flags") & pi.FLAG_BAD) == 0
    unresolved = (index.column("flags") & pi.FLAG_UNRESOLVED) != 0
    expect = packets & ~np.isin(index.column("token"), list(named))
    assert np.array_equal(unresolved, expect) and expect.any()
    t = int(tokens[0])
    assert index.symbol(t) == f"SYM{t}" and index.tokens_named([f"sym{t}"]) == [t]
    assert np.array_equal(np.flatnonzero(index.mask(pi.RowFilter(unresolved_only=True))), np.flatnonzero(expect))


def test_row_at_offset_and_next_bad(damaged):
    path, _ = damaged
    index = pi.build_index(path)
    for row in (0, 1, 57, index.rows - 1):
        start, length = int(index.column("offset")[row]), int(index.column("length")[row])
        assert index.row_at_offset(start) == row
        assert index.row_at_offset(start + max(length, 1) - 1) == row
    if index.framing == "raw":
        assert index.row_at_offset(0) is None  # the first message's header
    bad = index.bad_rows().tolist()
    assert index.next_bad(-1) == bad[0]
    assert index.next_bad(bad[0]) == bad[1]
    assert index.next_bad(bad[1], backwards=True) == bad[0]
    assert index.next_bad(bad[0], backwards=True) is None
    assert index.next_bad(bad[-1]) is None


def test_view_marks_framing_header_and_prefixes(damaged):
    path, _ = damaged
    index = pi.build_index(path)
    data = path.read_bytes()
    row = 4
    view = index.view(row)
    assert view.number == 5 and not view.is_bad
    body = data[view.offset:view.offset + view.length]
    assert view.data[view.offset - view.base: view.offset - view.base + view.length] == body
    assert data[view.base:view.base + len(view.data)] == view.data
    roles = {r.role for r in view.regions}
    assert {"header", "prefix", "current"} <= roles
    if index.framing != "raw":
        framing = [r for r in view.regions if r.role == "framing"]
        assert framing and framing[0].end - framing[0].start == (12 if index.framing == "ts-u32len" else 4)
    prefix = [r for r in view.regions if r.role == "prefix" and r.end == view.offset]
    assert prefix and int.from_bytes(data[prefix[0].start:prefix[0].end], "big") == view.length
    header = next(r for r in view.regions if r.role == "header")
    count = int.from_bytes(data[header.start:header.end], "big")
    assert count == np.count_nonzero(index.column("msg") == index.column("msg")[row])
    # the dissection is dissect_packet's on the same bytes and offsets
    assert view.dissection.fields[0].name == "instrument_token" and view.dissection.fields[0].offset == view.offset
    assert view.role_at(view.offset).role == "current"


def test_view_of_each_bad_region_gives_its_reason(damaged):
    path, info = damaged
    index = pi.build_index(path)
    assert len(index.bad_rows()) >= len(info.faults) > 0
    for row in index.bad_rows().tolist():
        view = index.view(row)
        assert view.is_bad and view.reason == index.reasons[row]
        assert any(e.message == view.reason for e in view.dissection.experts)
        marked = [r for r in view.regions if r.role == "bad"]
        assert marked and marked[-1].start == view.offset and marked[-1].label == view.reason
        doc = view.to_dict()
        assert doc["reason"] == view.reason and doc["kind"] == "bad" and doc["packet"] == row + 1


def test_unknown_length_bad_packet_is_dissected_raw(tmp_path):
    from tests.support import encode

    good = encode.encode_packet(8, {"instrument_token": 408065, "last_price": 157315})
    odd = bytes(range(1, 78))
    path = tmp_path / "odd.dat"
    path.write_bytes(encode.frame([encode.encode_message([good, odd, good])] * 3, "u32len"))
    index = pi.build_index(path, "u32len")
    assert index.bad_count == 3 and index.rows == 9
    view = index.view(int(index.bad_rows()[0]))
    assert view.reason == "unknown packet length 77"
    assert view.offset == 4 + 2 + 2 + 8 + 2
    assert any(f.name == "exchange_token" and f.generated for f in view.dissection.fields)
    assert [r.role for r in view.regions if r.role in ("framing", "header", "prefix")] == [
        "framing", "header", "prefix", "prefix", "prefix"]


def test_base64_fixture_views_decode_the_line(kite_mocks, kite_expected):
    name = "third-party-kite-web/ws.packet"
    index = pi.build_index(kite_mocks / name)
    assert index.framing == "base64" and index.bad_count == 0
    ticks, _ = _decoded(kite_mocks / name)
    assert index.rows == ticks.num_rows == 4183
    for row in (0, 1, 2, 500, index.rows - 1):
        view = index.view(row)
        fields = {f.name: f for f in view.dissection.fields}
        assert fields["instrument_token"].value == ticks.column("instrument_token")[row].as_py()
        assert fields["last_price"].value == pytest.approx(ticks.column("last_price")[row].as_py())
        assert view.note and view.data[view.offset - view.base:][:4] == fields["instrument_token"].raw


def test_parse_offset_and_errors(tmp_path):
    assert pi.parse_offset("0x10") == 16 and pi.parse_offset(" 1_000 ") == 1000
    for bad in ("", "-1", "zz", "0xg"):
        with pytest.raises(ValueError):
            pi.parse_offset(bad)
    with pytest.raises(InputError):
        pi.PacketIndex(tmp_path / "missing.dat")
    with pytest.raises(InputError):
        pi.PacketIndex(tmp_path)

"""The window's breakdown, instrument list and price preview, now on app.store.query:
the same answers as plain Python over the target's ticks, for both targets."""

from __future__ import annotations

import math

import pytest

from app.core import protocol
from app.model import target_queries as tq
from app.store import open_target
from tests.store import query_data as qd


@pytest.fixture(params=["duckdb", "parquet"])
def target(request, tmp_path, query_target_template):
    return qd.copy_target(query_target_template(request.param), tmp_path / qd.target_name(request.param))


def _ticks(path):
    with open_target(path, read_only=True) as t:
        return t.ticks().to_pylist()


def test_breakdown_counts_kinds_and_segments(target):
    ticks = _ticks(target)
    fid = qd.file_id("day1.bin")
    mine = [t for t in ticks if t["file_id"] == fid]
    b = tq.breakdown(str(target), fid)
    assert b.name == "day1.bin" and b.bad_packets == 0
    kinds: dict = {}
    segments: dict = {}
    for t in mine:
        kind = protocol.layout_of_tick(t["packet_length"], t["mode"]).kind
        kinds[kind] = kinds.get(kind, 0) + 1
        seg = protocol.SEGMENTS.get(t["segment"])
        name = seg.name if seg else f"invalid {t['segment']}"
        segments[name] = segments.get(name, 0) + 1
    assert b.kinds == kinds and b.segments == segments and sum(b.kinds.values()) == len(mine)


def test_instrument_choices_and_search(target):
    choices = tq.instrument_choices(str(target))
    assert choices[0][1] == "NSE:INFY" and choices[-1][1] == f"token {qd.UNKNOWN} (unresolved)"
    found = tq.instrument_choices(str(target), text="infy")
    assert [label for _, label, _ in found] == ["NSE:INFY", "NFO:INFY25OCTFUT"]


def test_price_series_breaks_between_days(target):
    ticks = sorted((t for t in _ticks(target) if t["instrument_token"] == qd.INFY),
                   key=lambda t: (t["tick_time"], t["file_id"], t["msg_seq"]))
    series = tq.price_series(str(target), qd.INFY)
    prices = [p for p in series.prices if not math.isnan(p)]
    assert prices == [t["last_price"] for t in ticks]
    # Three days: two NaN breaks, so the line is not drawn from one day to the next.
    assert sum(1 for p in series.prices if math.isnan(p)) == 2
    assert len(series.times) == len(ticks) + 2


def test_breakdown_tells_web_depth_heads_from_quotes(tmp_path):
    """Issue 13: a 44-byte length holds two kinds; the breakdown counts each by its own."""
    from app.pipeline.ingest import run_ingest
    from tests.support import encode

    head = encode.encode_packet(44, {"instrument_token": 14523906, "last_price": 1576840,
                                     "exchange_timestamp": 1655276443}, [(50, 1576840, 1)] * 3, kind="depth20_head")
    quote = encode.encode_packet(44, {"instrument_token": 408065, "last_price": 153682, "last_traded_quantity": 2})
    capture = tmp_path / "web_20220615_123000.bin"
    capture.write_bytes(encode.encode_message([head, quote, head]) + encode.encode_message([quote]))
    target = tmp_path / "t.duckdb"
    report = run_ingest([capture], target)
    b = tq.breakdown(str(target), report.files[0].file_id)
    assert b.kinds == {"quote": 2, "depth20_head": 2}

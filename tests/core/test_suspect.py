"""Suspect ticks (issue 14): values that cannot be real are flagged, stored, counted."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from app.core import protocol, schema, suspect, tick_sources
from app.core.decode import CaptureReader, decode_bytes
from tests.conftest import REPO
from tests.support import encode, synthetic

TOKEN = 408065  # NSE equity (segment 1)
T0 = 1_760_326_800  # 2025-10-13 09:10:00 IST


def quote(**values) -> bytes:
    base = {"instrument_token": TOKEN, "last_price": 152_130, "last_traded_quantity": 3,
            "average_traded_price": 152_100, "volume_traded": 91_000, "total_buy_quantity": 500,
            "total_sell_quantity": 700, "open": 151_000, "high": 153_000, "low": 150_500, "close": 150_000}
    base.update(values)
    return encode.encode_packet(44, base)


def full(bids=None, asks=None, **values) -> bytes:
    base = {"instrument_token": TOKEN, "last_price": 152_130, "last_traded_quantity": 3,
            "average_traded_price": 152_100, "volume_traded": 91_000, "open": 151_000, "high": 153_000,
            "low": 150_500, "close": 150_000, "last_trade_time": T0, "exchange_timestamp": T0}
    base.update(values)
    bids = bids or [(10, 152_100 - 5 * i, 1) for i in range(5)]
    asks = asks or [(10, 152_150 + 5 * i, 1) for i in range(5)]
    return encode.encode_packet(184, base, bids, asks)


def reasons_of(packets: list[bytes], framing="raw", recv_ns=None) -> list:
    data = encode.frame([encode.encode_message([p]) for p in packets], framing, recv_ns=recv_ns)
    table, _, summary = decode_bytes(data, framing)
    got = table.column("suspect_reason").to_pylist()
    assert summary.suspect == sum(r is not None for r in got)
    assert summary.suspect_by_reason == {r: got.count(r) for r in set(got) if r}
    return got


def test_clean_ticks_have_no_suspect_reason():
    assert reasons_of([quote(), full()]) == [None, None]


@pytest.mark.parametrize("packet, reason", [
    (quote(last_traded_quantity=T0), "ltq_epoch"),  # an API quote with an epoch where the LTQ is
    (quote(last_price=0), "price_nonpositive"),  # zero price while volume traded
    (quote(last_price=2_000_000_000), "price_out_of_range"),  # 2 crore rupees
    (quote(low=154_000, high=153_000), "ohlc_inverted"),
    (full(bids=[(10, 152_100, 1), (10, 152_200, 1)]), "depth_unordered"),  # bids rising
    (full(asks=[(10, 152_150, 1), (10, 152_100, 1)]), "depth_unordered"),  # asks falling
])
def test_each_rule_flags_its_case(packet, reason):
    assert reason in suspect.REASONS
    assert reasons_of([quote(), packet, full()]) == [None, reason, None]


def test_zero_price_without_volume_is_not_suspect():
    # Kite sends 0 for an instrument that has not traded today
    assert reasons_of([quote(last_price=0, volume_traded=0, last_traded_quantity=0)]) == [None]


def test_empty_depth_levels_are_not_unordered():
    bids = [(10, 152_100, 1), (0, 0, 0), (0, 0, 0)]
    asks = [(10, 152_150, 1), (5, 152_160, 1)]
    assert reasons_of([full(bids=bids, asks=asks)]) == [None]


def test_exchange_time_days_from_the_receive_time():
    far = T0 - 10 * 86_400
    got = reasons_of([full(exchange_timestamp=far), full()], "ts-u32len",
                     recv_ns=[T0 * 10**9, (T0 + 1) * 10**9])
    assert got == ["time_far_from_day", None]


def test_exchange_time_far_from_the_file_name_time(tmp_path):
    path = tmp_path / "ticks_20251013_091000.bin"  # the file name's IST time is T0
    path.write_bytes(encode.encode_message([full(exchange_timestamp=T0 + 30 * 86_400), full()]))
    reader = CaptureReader(path)
    table = pa.concat_tables([b.ticks for b in reader.batches()])
    assert table.column("suspect_reason").to_pylist() == ["time_far_from_day", None]
    assert reader.summary.to_dict()["suspect"] == 1
    assert reader.summary.to_dict()["suspect_by_reason"] == {"time_far_from_day": 1}


def test_nan_and_infinity_from_json_are_suspect(tmp_path):
    ticks = [
        {"instrument_token": TOKEN, "last_price": 1521.3, "exchange_timestamp": "2025-10-13 09:10:00"},
        {"instrument_token": TOKEN, "last_price": float("nan"), "exchange_timestamp": "2025-10-13 09:10:01"},
        {"instrument_token": TOKEN, "last_price": 1521.3, "ohlc": {"open": 1, "high": float("inf"), "low": 1,
                                                                    "close": 1}},
    ]
    path = tmp_path / "ticks.jsonl"
    path.write_text("\n".join(json.dumps([t]) for t in ticks) + "\n")  # json writes NaN / Infinity
    rejected = []
    tables = list(tick_sources.read_tick_file(path, file_id="a" * 64, rejected=rejected))
    table = pa.concat_tables(tables)
    assert table.schema == schema.DECODED_SCHEMA
    # issue 13: a JSON price that is no number is an error for that tick: never stored
    # (not even flagged), reported as a bad record instead
    assert table.column("suspect_reason").to_pylist() == [None]
    assert [b.msg_seq for b in rejected] == [1, 2] and "not a price" in rejected[0].reason
    # the suspect rule still flags NaN prices of sources that store them (a Parquet import)
    nan = table.set_column(table.schema.get_field_index("last_price"), "last_price", pa.array([float("nan")]))
    assert suspect.suspect_reasons(nan.drop_columns(["suspect_reason"])).to_pylist() == ["nan_price"]


def test_first_rule_wins_and_codes_are_documented():
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    for reason in suspect.REASONS:
        assert f"`{reason}`" in text, f"{reason} is not documented in README"
    got = reasons_of([quote(last_traded_quantity=T0, last_price=2_000_000_000)])
    assert got == ["ltq_epoch"]  # checked in REASONS order


def test_a_realistic_synthetic_capture_is_clean(tmp_path):
    path = tmp_path / "ticks_20251013_091500.bin"
    synthetic.generate_capture(path, packets=20_000, framing="ts-u32len", seed=11)
    reader = CaptureReader(path)
    for _ in reader.batches():
        pass
    assert reader.summary.packets == 20_000
    assert reader.summary.suspect == 0, reader.summary.suspect_by_reason


def test_the_inspector_index_flags_and_filters_suspect_packets(tmp_path):
    from app.core import packet_index as pi

    path = tmp_path / "capture.bin"
    packets = [quote(), quote(last_traded_quantity=T0), full(), quote(low=160_000)]
    path.write_bytes(b"".join(encode.encode_message([p]) for p in packets) + b"\xff\xfe\xfd")
    index = pi.build_index(path, "raw")
    assert index.rows == 5
    rows = np.flatnonzero(index.mask(pi.RowFilter(suspect_only=True))).tolist()
    assert rows == [1, 3] and index.suspect == {1: "ltq_epoch", 3: "ohlc_inverted"}
    assert not pi.RowFilter(suspect_only=True).is_empty()
    view = index.view(1)
    assert view.dissection.experts[0].severity == "warning" and "ltq_epoch" in view.dissection.experts[0].message
    assert not any("suspect" in e.message for e in index.view(0).dissection.experts)


def test_packet_fields_rules_answer_like_the_tick_table():
    """The decoder and the packet index flag from packet fields (``suspect_codes_of``);
    the same rules over the decoded tick table (``suspect_reasons``, as for JSON and
    Parquet inputs) give the same answer, row by row, on every kind of packet."""
    from app.core.decode import decode_packets, suspect_codes_of
    from app.core.framing import Framer

    rng = np.random.default_rng(14)
    packets = []
    for _i in range(400):
        pick = int(rng.integers(8))
        price = int(rng.choice([152_130, 0, 2_000_000_000]))
        if pick == 0:
            packets.append(quote(last_price=price, last_traded_quantity=int(rng.choice([3, T0]))))
        elif pick == 1:
            packets.append(quote(low=int(rng.choice([150_500, 154_000])), volume_traded=int(rng.choice([0, 9]))))
        elif pick == 2:
            bids = [(10, int(rng.choice([152_100 - 5 * k, 152_200, 0, 3_000_000_000])), 1) for k in range(5)]
            packets.append(full(bids=bids, exchange_timestamp=int(rng.choice([T0, T0 + 9 * 86_400]))))
        elif pick == 3:
            asks = [(10, int(rng.choice([152_150 + 5 * k, 152_100, 0])), 1) for k in range(5)]
            packets.append(full(asks=asks, last_price=price))
        else:
            length = int(rng.choice([8, 28, 32, 164, 492, 12]))
            layout = protocol.LAYOUTS[length]
            values = {"instrument_token": TOKEN if pick % 2 else (TOKEN & ~0xFF) | 7, "last_price": price}
            for f in layout.fields:
                if f.timestamp:
                    values[f.name] = int(rng.choice([T0, T0 - 30 * 86_400]))
            levels = layout.depth.levels if layout.depth else 0
            depth = [(1, int(rng.choice([100_000 - k, 100_000 + k])), 1) for k in range(levels)] if levels else None
            packets.append(encode.encode_packet(length, values, depth, depth))
    for framing, recv_ns in (("raw", None), ("ts-u32len", [T0 * 10**9 + i for i in range(len(packets))])):
        data = encode.frame([encode.encode_message([p]) for p in packets], framing, recv_ns=recv_ns)
        split = Framer(framing).split(data, 0, True)
        for reference in (None, T0 * 1_000_000):
            table, _ = decode_packets(split, file_id="", fallback_time_us=reference)
            expected = suspect.suspect_reasons(table.drop_columns(["suspect_reason"]), reference).to_pylist()
            got = suspect.reasons_of_codes(suspect_codes_of(split, reference)).to_pylist()
            assert got == expected == table.column("suspect_reason").to_pylist()
            assert len(set(expected)) >= 5, set(expected)  # the cases reach most rules


@pytest.mark.parametrize("seed", range(4))
def test_rules_for_nonnegative_prices_answer_as_the_full_rules(seed):
    """TickValues.nonnegative (binary packets) skips minimums and the negative-price test:
    on values with no price below 0 the codes are the same (zeros, volumes, prices out
    of range, NaN, inverted OHLC and depth all drawn)."""
    rng = np.random.default_rng(seed)
    n = 2000

    def prices(size=n):
        values = rng.choice([0.0, 1.5, 250.0, 2e7, 4e7], size) * rng.random(size)
        values[rng.random(size) < 0.2] = 0.0
        values[rng.random(size) < 0.01] = np.nan
        return values

    rows = np.sort(rng.integers(0, n, 3 * n))
    values = suspect.TickValues(
        n=n,
        prices={name: prices() for name in suspect.PRICE_COLUMNS},
        depth={name: (rows, prices(rows.size)) for name in suspect.DEPTH_PRICE_COLUMNS},
        segment=rng.choice([1, 2, 7, 9], n),
        last_traded_quantity=rng.integers(0, 2_000_000_000, n),
        volume_traded=rng.integers(0, 3, n),
    )
    full = suspect.suspect_codes(values)
    values.nonnegative = True
    assert np.array_equal(suspect.suspect_codes(values), full)
    assert len(set(full.tolist())) >= 4  # several rules fired

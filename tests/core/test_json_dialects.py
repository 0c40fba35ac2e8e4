"""JSON tick inputs beyond the official client's JSON/JSONL (issue 13): streams of
concatenated documents, the Kite web app's camelCase, the Rust peer's ``close_price``/``ltpc``
and ``tickersData`` wrappers, prices that cannot be prices."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from app.core import tick_sources
from app.core.decode import decode_bytes
from app.errors import InputError
from tests.core.test_tick_sources import (  # noqa: F401 - fixtures
    COMPARED,
    _isoformat,
    assert_same_ticks,
    capture,
    client_ticks,
    decoded,
    read,
)

REPO = Path(__file__).resolve().parents[2]
SPEED = Path(os.environ.get("TICKSCOPE_SHARED") or REPO.parent / "shared") / "fixtures" / "real-captures" / \
    "shabbirhasan1-kiteconnect-mocks-speed"
MOCKS = SPEED.parents[1] / "kite-mocks"


def dumps(value, indent=2):
    return json.dumps(value, default=_isoformat, indent=indent)


@pytest.mark.parametrize("indent, separator", [(2, "\n"), (None, ""), (4, "\n\n")])
def test_concatenated_documents_equal_the_binary_decoder(tmp_path, capture, decoded, indent, separator):
    per_message = client_ticks(capture[1])
    path = tmp_path / "stream.json"
    path.write_text(separator.join(dumps(ticks, indent) for ticks in per_message))
    table = read(path)
    assert_same_ticks(table, decoded)
    assert table.column("msg_seq").to_pylist() == decoded.column("msg_seq").to_pylist()
    # offsets point at each document
    text = path.read_bytes()
    first = table.column("offset").to_pylist()[0]
    assert text[first:first + 1] == b"["


def test_stream_of_single_tick_objects(tmp_path, capture, decoded):
    per_message = client_ticks(capture[1][:50])
    path = tmp_path / "objects.json"
    path.write_text("\n".join(dumps(t) for ticks in per_message for t in ticks))
    table = read(path)
    expected, _, _ = decode_bytes(b"".join(capture[1][:50]), "raw")
    cols = [c for c in COMPARED if c not in ("msg_seq", "pkt_seq", "tick_time", "tick_time_source", "trading_date")]
    assert_same_ticks(table, expected, cols)


def to_web(tick: dict) -> dict:
    """The Kite web app's camelCase names for an official-client tick."""
    out = {"mode": tick["mode"], "isTradeable": tick["tradable"], "token": tick["instrument_token"],
           "lastPrice": tick["last_price"]}
    names = {"last_traded_quantity": "lastQuantity", "average_traded_price": "averagePrice",
             "volume_traded": "volume", "total_buy_quantity": "totalBuyQuantity",
             "total_sell_quantity": "totalSellQuantity", "oi": "oi", "oi_day_high": "oiDayHigh",
             "oi_day_low": "oiDayLow"}
    for ours, web in names.items():
        if ours in tick:
            out[web] = tick[ours]
    ohlc = tick.get("ohlc") or {}
    for ours, web in (("open", "openPrice"), ("high", "highPrice"), ("low", "lowPrice"), ("close", "closePrice")):
        if ours in ohlc:
            out[web] = ohlc[ours]
    if "depth" in tick:
        out["depth"] = tick["depth"]
    if "change" in tick:
        out["change"], out["absoluteChange"] = tick["change"], 0.0  # derived: recomputed, never read
    return out


WEB_COLUMNS = ("instrument_token", "last_price", "last_traded_quantity", "average_traded_price", "volume_traded",
               "total_buy_quantity", "total_sell_quantity", "open", "high", "low", "close", "change",
               "change_percent", "oi", "oi_day_high", "oi_day_low", "bid_price", "bid_quantity", "bid_orders",
               "ask_price", "ask_quantity", "ask_orders", "tradable")


def test_kite_web_camelcase_state_keyed_by_token(tmp_path, capture, decoded):
    per_message = client_ticks(capture[1][:200])
    expected, _, _ = decode_bytes(b"".join(capture[1][:200]), "raw")
    path = tmp_path / "web.json"
    # one document per message: the web app's state object keyed by token (string keys)
    docs = []
    for ticks in per_message:
        docs.append({str(t["instrument_token"]) + ("" if i == 0 else f"{i:0>3}"): to_web(t) for i,
                     t in enumerate(ticks)})
    path.write_text("\n".join(dumps(d) for d in docs))
    table = read(path)
    assert_same_ticks(table, expected, WEB_COLUMNS)
    lengths = table.column("packet_length").to_pylist()
    assert set(lengths) <= {8, 12, 28, 32, 44, 184, 492}


def test_rust_peer_ltpc_close_price_is_a_12_byte_ltp_packet(tmp_path):
    ticks = [{"tradable": False, "mode": "ltpc", "instrument_token": 3612417, "last_price": 80.6, "close_price": 80.05}]
    path = tmp_path / "ltpc.json"
    path.write_text(dumps(ticks))
    row = read(path).to_pylist()[0]
    assert row["mode"] == "ltp" and row["packet_length"] == 12
    assert row["close"] == 80.05 and math.isclose(row["change"], 80.6 - 80.05)


def test_tickersdata_wrappers_of_extended_depth(tmp_path):
    level = lambda p: {"price": p, "orders": 1, "quantity": 50}  # noqa: E731
    doc = {"tickers": 1, "tickersData": [{"tickerType": "ExtendedDepth", "tickerTypeData": {
        "mode": "full", "isTradable": True, "token": 14523906, "lastPrice": 15769.85,
        "lastTradedTime": "2022-06-15T12:30:48+05:30",
        "extendedDepth": {"buy": [level(15769.2 - i) for i in range(20)], "sell": [level(15770 + i)
                                                                                   for i in range(20)]}}}]}
    path = tmp_path / "x.json"
    path.write_text(dumps(doc) + "\n" + dumps(doc))
    rows = read(path).to_pylist()
    assert len(rows) == 2 and rows[0]["packet_length"] == 492 and rows[0]["mode"] == "full"
    assert rows[0]["exchange_timestamp"].isoformat() == "2022-06-15T07:00:48+00:00"
    assert rows[0]["bid_price"][0] == 15769.2 and len(rows[0]["ask_quantity"]) == 20


def test_unknown_dialect_is_a_clear_per_file_error(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(dumps([{"symbol": "INFY", "ltp": 1500.0}]))
    with pytest.raises(InputError, match="unknown JSON tick dialect.*ltp, symbol"):
        read(path)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", '"N/A"', '"NaN"'])
def test_a_price_that_is_no_number_rejects_that_tick_only(tmp_path, bad):
    good = {"tradable": True, "mode": "ltp", "instrument_token": 408065, "last_price": 1573.15}
    text = "[" + json.dumps(good) + "," + json.dumps(good).replace("1573.15", bad) + "," + json.dumps(good) + "]"
    path = tmp_path / "nan.json"
    path.write_text(text)
    rejected = []
    table = pa.concat_tables(list(tick_sources.read_tick_file(path, rejected=rejected)))
    assert table.num_rows == 2 and table.column("last_price").to_pylist() == [1573.15, 1573.15]
    assert len(rejected) == 1 and "last_price" in rejected[0].reason and rejected[0].msg_seq == 1
    assert not pc.any(pc.is_nan(table.column("last_price"))).as_py()


def test_depth_price_that_is_nan_rejects_the_tick(tmp_path):
    tick = {"instrument_token": 408065, "last_price": 1.0, "mode": "full",
            "depth": {"buy": [{"price": float("nan"), "quantity": 1, "orders": 1}], "sell": []}}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(tick) + "\n" + json.dumps(dict(tick, depth=None)) + "\n")
    rejected = []
    table = pa.concat_tables(list(tick_sources.read_tick_file(path, rejected=rejected)))
    assert table.num_rows == 1 and len(rejected) == 1 and rejected[0].offset == 0


def test_ingest_counts_rejected_ticks_as_bad(tmp_path):
    from app.pipeline.ingest import run_ingest

    good = {"tradable": True, "mode": "ltp", "instrument_token": 408065, "last_price": 1573.15}
    path = tmp_path / "dump.json"
    path.write_text("[" + json.dumps(good) + ', {"instrument_token": 408065, "last_price": NaN}]')
    report = run_ingest([path], tmp_path / "t.duckdb")
    f = report.files[0]
    assert f.status == "done" and f.ticks == 1 and f.bad_packets == 1


# --- the public peers' dumps --------------------------------------------------------------------


@pytest.fixture(scope="module")
def speed():
    if not (SPEED / "kite_ticker.json").is_file() or not (MOCKS / "expected.json").is_file():
        pytest.skip(f"real captures not found at {SPEED} (../shared is not beside the repo)")
    return SPEED


def test_rust_peer_dump_of_message_16_equals_the_binary_decode(speed):
    rows = read(speed / "kite_ticker.json")
    table, _, _ = decode_bytes((MOCKS / "third-party-kite-web" / "ws.packet").read_bytes(), "base64")
    binary = table.filter(pc.equal(table.column("msg_seq"), 16))
    # one array of the message's 4 ticks: each element reads as its own message (pkt_seq 0)
    columns = [c for c in COMPARED if c not in ("msg_seq", "pkt_seq", "offset", "tick_time", "tick_time_source",
                                                "trading_date")]
    assert_same_ticks(rows, binary, columns + ["packet_length", "mode"])


def test_rust_peer_extended_depth_stream_equals_the_binary_decode(speed):
    rows = read(speed / "kite_ticker_extended_depth_one.json")
    binary, bad, _ = decode_bytes((MOCKS / "third-party-kite-web" / "ws_extended_depth_20.packet").read_bytes())
    assert not bad
    assert_same_ticks(rows, binary, ["instrument_token", "last_price", "exchange_timestamp", "mode", "packet_length",
                                     "bid_price", "bid_quantity", "bid_orders", "ask_price", "ask_quantity",
                                     "ask_orders"])


def test_every_json_file_of_the_real_captures_reads(speed):
    for name, ticks in (("a.json", 48), ("kite_ticker.json", 4), ("kite_ticker_extended_depth.json", 392),
                        ("kite_ticker_extended_depth_one.json", 379)):
        rejected = []
        table = pa.concat_tables(list(tick_sources.read_tick_file(speed / name, rejected=rejected)))
        assert table.num_rows == ticks and rejected == [], name


def test_quotes_the_older_peer_misread_from_web_heads_read_as_the_heads_they_are(speed):
    """kite_ticker_extended_depth.json's 12 `quote` entries are ws492's 44-byte heads read as
    API quotes; read back, they equal Tickscope's binary decode of those packets."""
    old = read(speed / "kite_ticker_extended_depth.json")
    heads = old.filter(pc.equal(old.column("packet_length"), 44))
    binary, _, _ = decode_bytes((speed / "ws492.sanitized.txt").read_bytes())
    binary_heads = binary.filter(pc.equal(binary.column("packet_length"), 44))
    assert heads.num_rows == 12 and set(heads.column("mode").to_pylist()) == {"depth20_head"}
    assert_same_ticks(heads, binary_heads, [
        "instrument_token", "mode", "tradable", "last_price", "exchange_timestamp", "bid_price", "bid_quantity",
        "bid_orders", "ask_price", "ask_quantity", "ask_orders", "last_traded_quantity", "average_traded_price",
        "volume_traded", "open", "high", "low", "close", "change", "tick_time", "suspect_reason"])


def test_a_real_quote_with_an_epoch_like_quantity_is_not_taken_for_a_head(tmp_path):
    tick = {"tradable": True, "mode": "quote", "instrument_token": 408065, "last_price": 1573.15,
            "last_traded_quantity": 1_655_276_443, "average_traded_price": 1570.33, "volume_traded": 1175986,
            "total_buy_quantity": 256511, "total_sell_quantity": 360503,
            "ohlc": {"open": 1569.15, "high": 1575.0, "low": 1561.05, "close": 1567.8}}
    path = tmp_path / "q.json"
    path.write_text(dumps([tick]))
    row = read(path).to_pylist()[0]
    assert row["mode"] == "quote" and row["suspect_reason"] == "ltq_epoch"


def test_manja_qdx_expectations_equal_our_decode_of_the_same_packets(speed, tmp_path):
    """The qdx-decoder's expectation JSON (raw wire integers) read as a dialect equals, field
    by field, Tickscope's decode of those packets rebuilt by our encoder and written in
    manja's container (u64 LE receive ns + u32 LE length); the .bin files are not public."""
    from tests.support import encode

    manja = speed.parent / "saxena-dev-manja-qdx"
    doc = json.loads((manja / "multi_packet.json").read_text())
    bodies = []
    for p in doc["packets"]:
        values = {"instrument_token": p["instrument_token"], "last_price": p["last_traded_price"],
                  "last_traded_quantity": p.get("last_traded_quantity", 0),
                  "average_traded_price": p.get("average_traded_price", 0),
                  "volume_traded": p.get("volume_traded_for_day", 0), "total_buy_quantity": p.get("total_buy_quantity",
                                                                                                  0),
                  "total_sell_quantity": p.get("total_sell_quantity", 0), "open": p["open_price"],
                  "high": p["high_price"],
                  "low": p["low_price"], "close": p["close_price"], "last_trade_time": p.get("last_traded_timestamp",
                                                                                             0),
                  "oi": p.get("open_interest", 0), "oi_day_high": p.get("open_interest_day_high", 0),
                  "oi_day_low": p.get("open_interest_day_low", 0), "exchange_timestamp": p["exchange_timestamp"],
                  "price_change": p.get("change", 0)}
        depth = [[(lvl["quantity"], lvl["price"], lvl["orders"]) for lvl in p.get(k, [])] for k in ("bid_depth",
                                                                                                    "ask_depth")]
        bodies.append(encode.encode_packet(p["raw_len"], values, *depth))
    capture = tmp_path / "tick_set.bin"
    capture.write_bytes(encode.frame([encode.encode_message(bodies)], "ts-u32len-le",
                                     recv_ns=[1_769_006_805_123_456_000]))
    binary, bad, summary = decode_bytes(capture.read_bytes())
    assert summary.framing == "ts-u32len-le" and not bad
    rows = read(manja / "multi_packet.json")
    columns = ["instrument_token", "mode", "packet_length", "tradable", "last_price", "last_traded_quantity",
               "average_traded_price", "volume_traded", "total_buy_quantity", "total_sell_quantity", "open", "high",
               "low", "close", "change", "change_percent", "last_trade_time", "exchange_timestamp", "oi", "oi_day_high",
               "oi_day_low", "bid_price", "bid_quantity", "bid_orders", "ask_price", "ask_quantity", "ask_orders"]
    assert_same_ticks(rows, binary, columns)
    single = read(manja / "single_full.json").to_pylist()[0]
    assert (single["last_price"], single["ask_quantity"][0], single["ask_orders"][0]) == (1576.1, 358, 6)
    assert read(manja / "single_index_full.json").to_pylist()[0]["change"] == pytest.approx(-29.17)

"""`tickscope inspect` as a user runs it: the same rows and dissection as the inspector window."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.core import packet_index as pi
from tests.support import encode
from tests.support.synthetic import generate_capture

API_FIXTURES = (
    "zerodha-kiteconnect-mocks/ticker_quote.packet",
    "zerodha-kiteconnect-mocks/ticker_full.packet",
    "zerodha-kiteconnectjs/ltpMode_binary.packet",
    "zerodha-kiteconnectjs/quoteMode_binary.packet",
    "zerodha-kiteconnectjs/fullMode_binary.packet",
    "zerodha-cppkiteconnect/websocket_ticks.bin",
)


def _json(capsys, *argv) -> dict:
    assert main(["inspect", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", API_FIXTURES)
def test_fixture_packets_match_the_official_values(kite_mocks, kite_expected, capsys, name):
    expected = kite_expected[name]["packets"]
    for number, packet in enumerate(expected, start=1):
        doc = _json(capsys, kite_mocks / name, "--packet", number)
        assert doc["packet"] == number and doc["kind"] == packet["mode"]  # ltp, quote and full kinds
        fields = {f["name"]: f for f in doc["fields"]}
        for key in ("instrument_token", "last_price", "close", "volume_traded", "oi"):
            if key in packet and key in fields:
                assert fields[key]["value"] == pytest.approx(packet[key]), key
        if "bid_price" in packet:
            assert [fields[f"bid[{k}].price"]["value"] for k in range(5)] == pytest.approx(packet["bid_price"])
            assert [fields[f"ask[{k}].orders"]["value"] for k in range(5)] == packet["ask_orders"]
        for f in doc["fields"]:
            assert set(f) >= {"name", "offset", "length", "raw", "value"}
            assert len(bytes.fromhex(f["raw"])) == f["length"]


@pytest.mark.parametrize("name", API_FIXTURES + ("third-party-kite-web/ws.packet",
                                                 "third-party-kite-web/ws_extended_depth_20.packet"))
def test_cli_is_the_index_view_and_offsets_find_the_same_packet(kite_mocks, capsys, name):
    path = kite_mocks / name
    index = pi.build_index(path)
    rows = sorted({0, 1, index.rows // 2, index.rows - 1} & set(range(index.rows)))
    for row in rows:
        view = index.view(row)
        doc = _json(capsys, path, "--packet", row + 1)
        assert doc == json.loads(json.dumps({**view.to_dict(), "framing": index.framing,
                                             "framing_evidence": index.framing_evidence, "row": row + 1,
                                             "bad_region": None}, default=str))
        if index.framing != "base64":
            wire = [f for f in view.dissection.fields if not f.generated]
            for f in (wire[0], wire[-1]):
                assert _json(capsys, path, "--offset", hex(f.end - 1))["packet"] == row + 1
                assert (bytes.fromhex(doc["fields"][view.dissection.fields.index(f)]["raw"])
                        == path.read_bytes()[f.offset:f.end])


def test_bad_regions_print_their_reason(tmp_path, capsys):
    path = tmp_path / "damaged.dat"
    info = generate_capture(path, packets=500, faults=True, framing="u32len")
    index = pi.build_index(path)
    assert len(index.bad_rows()) >= len(info.faults) > 0
    for row in index.bad_rows().tolist():
        doc = _json(capsys, path, "--offset", index.column("offset")[row] + (1 if index.column("length")[row] > 1
                                                                             else 0))
        assert doc["row"] == row + 1 and doc["kind"] == "bad" and doc["packet"] is None
        assert doc["bad_region"] == index.bad_rows().tolist().index(row) + 1
        assert doc["reason"] == index.reasons[row]
        assert doc["experts"][0]["severity"] == "error"
    unknown = next(f for f in info.faults if f.kind == "unknown_length")
    assert main(["inspect", str(path), "--offset", str(unknown.offset)]) == 0
    out = capsys.readouterr().out
    assert "bad region: unknown packet length 77" in out and f"at offset {unknown.offset}" in out


def test_text_output_lists_fields_with_offsets_and_raw_bytes(tmp_path, capsys):
    body = encode.encode_packet(44, {"instrument_token": 408065, "last_price": 157315, "close": 156780})
    path = tmp_path / "one.bin"
    path.write_bytes(encode.encode_message([body, body]))
    assert main(["inspect", str(path), "--packet", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("packet 2: quote, 44 bytes at offset 50 (0x32)")
    last_price = next(line for line in out if line.strip().startswith("last_price"))
    assert "54" in last_price.split() and "00 02 66 83" in last_price and "1573.15" in last_price
    assert any(line.strip().startswith("[change]") for line in out)


@pytest.mark.parametrize("argv, message", [
    (["--packet", "0"], "counts from 1"),
    (["--packet", "99"], "packet 99 does not exist"),
    (["--packet", "x"], "whole number"),
    (["--offset", "0x10000"], "beyond the end"),
    (["--offset", "ten"], "decimal or 0x hex"),
    (["--offset", "0"], "not in a packet"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    path = tmp_path / "one.bin"
    path.write_bytes(encode.encode_message([encode.encode_packet(8, {"instrument_token": 408065})]))
    assert main(["inspect", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("tickscope: error:")


def test_unreadable_or_missing_capture_is_exit_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.bin"), "--packet", "1"]) == 2
    assert "capture not found" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path), "--packet", "1"]) == 2
    assert "not a capture file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # argparse: --packet or --offset, not both
        main(["inspect", str(tmp_path / "x"), "--packet", "1", "--offset", "3"])
    assert exited.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_packet_numbers_count_packets_only_and_bad_regions_have_their_own(tmp_path, capsys):
    """issue 14: --packet N is the N-th packet whatever bad regions come before it."""
    body = encode.encode_packet(8, {"instrument_token": 408065, "last_price": 157315})
    good = encode.encode_message([body])
    path = tmp_path / "gaps.bin"
    path.write_bytes(good + b"\xff\xee\xdd" + good + b"\x99" * 5 + good)
    index = pi.build_index(path, "raw")
    assert index.rows == 5 and len(index.bad_rows()) == 2
    docs = [_json(capsys, path, "--framing", "raw", "--packet", n) for n in (1, 2, 3)]
    assert [d["packet"] for d in docs] == [1, 2, 3] and [d["row"] for d in docs] == [1, 3, 5]
    assert all(d["kind"] == "ltp" for d in docs)
    bad = [_json(capsys, path, "--framing", "raw", "--bad", n) for n in (1, 2)]
    assert [d["bad_region"] for d in bad] == [1, 2] and [d["kind"] for d in bad] == ["bad", "bad"]
    assert main(["inspect", str(path), "--framing", "raw", "--packet", "4"]) == 2
    assert "packet 4 does not exist" in capsys.readouterr().err
    assert main(["inspect", str(path), "--framing", "raw", "--packet", "3"]) == 0
    assert capsys.readouterr().out.startswith("packet 3: ltp, 8 bytes at offset")

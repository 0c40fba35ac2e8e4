"""`tickscope inspect` as a user runs it: the same rows and dissection as the inspector window."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.core import encode, packet_index as pi
from app.core.synthetic import generate_capture

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
        assert doc == json.loads(json.dumps({**view.to_dict(), "framing": index.framing}, default=str))
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
    for row in index.bad_rows().tolist():
        doc = _json(capsys, path, "--offset", index.column("offset")[row] + (1 if index.column("length")[row] > 1 else 0))
        assert doc["packet"] == row + 1 and doc["kind"] == "bad"
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

"""`tickscope selftest` from the source tree: the OK line, and one FAIL line per broken thing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import app.ui.paths
from app.cli import main
from app.commands import selftest
from app.store import open_target

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["selftest", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def sample_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the bundled sample that selftest reads instead of resources/samples."""
    folder = tmp_path / "samples"
    shutil.copytree(SAMPLES, folder)
    monkeypatch.setattr(app.ui.paths, "samples_dir", lambda: folder)
    return folder


def _fail_line(code: int, out: str, err: str) -> str:
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tickscope selftest FAIL: "), err
    return lines[0]


def test_ok_line_and_exit_0(capsys):
    code, out, err = _run(capsys)
    assert code == 0, err
    assert re.fullmatch(r"tickscope selftest OK: 30,000 packets, 5 bad, 4 unknown tokens, "
                        r"target rows match \(duckdb, parquet\) in [\d.]+ s\n", out)


def test_keep_leaves_targets_with_the_sample(capsys, tmp_path):
    keep = tmp_path / "kept"
    code, out, err = _run(capsys, "--keep", str(keep), "--targets", "duckdb", "--no-gui")
    assert code == 0, err
    assert "(duckdb)" in out
    with open_target(keep / "selftest.duckdb", read_only=True) as target:
        assert target.counts() == {"captures": 1, "ticks": 30_000, "bad_packets": 5}
        assert sorted(target.unknown_tokens().column("instrument_token").to_pylist()) == [
            409, 5632003, 10194946, 20579840]
    assert not (keep / "selftest-parquet").exists()
    # A second run into the same folder would mix results: refused.
    assert "not empty" in _fail_line(*_run(capsys, "--keep", str(keep)))


def test_wrong_expectation_fails_with_the_numbers(capsys, sample_copy):
    expected = json.loads((sample_copy / "expected.json").read_text())
    expected["packets"] = 29_999
    (sample_copy / "expected.json").write_text(json.dumps(expected))
    line = _fail_line(*_run(capsys, "--no-gui"))
    assert "decode found 30,000 packets, expected 29,999" in line


def test_unknown_token_mismatch_fails(capsys, sample_copy):
    expected = json.loads((sample_copy / "expected.json").read_text())
    expected["unknown_tokens"]["409"] = 999
    (sample_copy / "expected.json").write_text(json.dumps(expected))
    line = _fail_line(*_run(capsys, "--no-gui", "--targets", "parquet"))
    assert line.startswith("tickscope selftest FAIL: parquet: ingest counted 890 unresolved ticks, expected 1,675")


def test_damaged_capture_fails_before_decoding(capsys, sample_copy):
    capture = sample_copy / "binary_data_20251013_091500.dat"
    data = bytearray(capture.read_bytes())
    data[1000] ^= 0xFF
    capture.write_bytes(bytes(data))
    assert "sha256" in _fail_line(*_run(capsys, "--no-gui"))
    capture.write_bytes(bytes(data[:-10]))
    assert "4,596,403 bytes, expected 4,596,413" in _fail_line(*_run(capsys, "--no-gui"))


def test_missing_sample_fails(capsys, sample_copy):
    (sample_copy / "instruments_20251010.csv").unlink()
    assert "instruments_20251010.csv" in _fail_line(*_run(capsys, "--no-gui"))
    (sample_copy / "expected.json").unlink()
    assert "expected.json is missing" in _fail_line(*_run(capsys, "--no-gui"))


def test_missing_gui_module_fails(capsys, monkeypatch):
    monkeypatch.setattr(selftest, "GUI_MODULES", ("PySide6.QtWidgets", "app.ui.no_such_module"))
    line = _fail_line(*_run(capsys, "--targets", "duckdb"))
    assert "cannot import app.ui.no_such_module: ModuleNotFoundError" in line


def test_unexpected_error_is_one_line(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr("app.pipeline.run_ingest", broken)
    line = _fail_line(*_run(capsys, "--no-gui", "--targets", "duckdb"))
    assert line == "tickscope selftest FAIL: RuntimeError: disk on fire second line"


def test_bad_targets_option(capsys):
    assert "--targets takes duckdb and/or parquet" in _fail_line(*_run(capsys, "--targets", "csv"))


def _readme_number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, pattern
    return int(match.group(1).replace(",", ""))


def test_expected_json_matches_the_sample_readme():
    """expected.json restates the sample README's figures; they must not drift apart."""
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    expected = json.loads((SAMPLES / "expected.json").read_text())
    assert expected["bytes"] == _readme_number(r"`binary_data_20251013_091500\.dat` \| ([\d,]+) \|", readme)
    assert readme.count(expected["sha256_prefix"]) == 1
    assert expected["messages"] == _readme_number(r"([\d,]+) well-formed messages", readme)
    assert expected["packets"] == _readme_number(r"([\d,]+) good packets", readme)
    assert expected["packets_by_length"]
    for length, count in expected["packets_by_length"].items():
        assert count == _readme_number(rf"([\d,]+) × {length} B", readme)
    assert expected["distinct_tokens"] == _readme_number(r"([\d,]+) distinct tokens", readme)
    faults = re.findall(r"^\| (unknown_length|garbage|text_frame|count_mismatch|truncated_tail) \|", readme, re.M)
    assert expected["bad_packets"] == len(faults) == 5
    unknown = dict(re.findall(r"^\| (\d+) \| \d+ \| \d+ B \| ([\d,]+) \|", readme, re.M))
    assert expected["unknown_tokens"] == {token: int(ticks.replace(",", "")) for token, ticks in unknown.items()}

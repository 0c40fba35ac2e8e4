"""What a path is (the command line's rule, for the app too) and whether it can be a target."""

from __future__ import annotations

import os

import pytest

from app.model import intake
from app.model.targets import TargetProblem, state_from_tables, validate_target
from app.pipeline.inputs import expand_inputs
from app.store.checks import MARKER, check_target
from tests.support import encode


def _capture() -> bytes:
    return encode.frame([encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265})])], "raw")


def test_the_app_takes_exactly_what_the_cli_reads(tmp_path):
    (tmp_path / "day" / "deep").mkdir(parents=True)
    (tmp_path / "day" / "a.dat").write_bytes(_capture())
    (tmp_path / "day" / "deep" / "b.ndjson").write_text('{"instrument_token": 1, "last_price": 2}\n')
    (tmp_path / "day" / "masters.csv").write_text("a,b\n")
    (tmp_path / "named.txt").write_text("a named file is always an input")
    paths = [tmp_path / "day", tmp_path / "named.txt"]
    found = intake.gather(paths)
    assert [e.path for e in found.accepted] == [str(p) for p in expand_inputs(paths)]
    assert {os.path.basename(e.path) for e in found.accepted} == {"a.dat", "b.ndjson", "named.txt"}
    assert [os.path.basename(p) for p, _ in found.refused] == ["masters.csv"]
    assert found.accepted[0].framing == "single" and found.accepted[1].framing == "ndjson"


def test_missing_paths_and_datasets_are_refused_with_reasons(tmp_path):
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / MARKER).write_text("{}")
    found = intake.gather([tmp_path / "gone.dat", dataset])
    assert not found.accepted
    reasons = dict(found.refused)
    assert reasons[str(tmp_path / "gone.dat")] == "no such file or folder"
    assert "Parquet dataset" in reasons[str(dataset)]
    assert found.summary().startswith("Not queued: gone.dat: no such file or folder (and 1 more)")


def test_the_target_itself_is_never_an_input(tmp_path):
    (tmp_path / "a.dat").write_bytes(_capture())
    (tmp_path / "t.duckdb").write_bytes(b"")
    assert [os.path.basename(e.path) for e in intake.gather([tmp_path], exclude=[tmp_path / "t.duckdb"]).accepted] \
        == ["a.dat"]


def _made(path, data=None, folder=False):
    if folder:
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: _made(p / "x.duckdb", folder=True), "is a folder, not a DuckDB file"),
    (lambda p: _made(p / "x.duckdb", b"0" * 64), "not a DuckDB database"),
    (lambda p: _made(p / "f", b"x"), "is a file"),
    (lambda p: _made(_made(p / "d", folder=True) / "mine.txt", b"x").parent, "not a Tickscope dataset"),
    (lambda p: p / "no" / "such" / "t.duckdb", "does not exist"),
])
def test_unusable_targets_say_why(tmp_path, make, message):
    with pytest.raises(TargetProblem, match=message):
        validate_target(str(make(tmp_path)))


def test_usable_targets_new_and_ours(tmp_path):
    assert validate_target(str(tmp_path / "new.duckdb")) == str(tmp_path / "new.duckdb")
    ours = tmp_path / "ds"
    ours.mkdir()
    (ours / MARKER).write_text("{}")
    check = check_target(ours, must_exist=True)
    assert check.exists and check.kind == "parquet"
    with pytest.raises(TargetProblem, match="no Tickscope target"):
        check_target(tmp_path / "new.duckdb", must_exist=True)


def test_target_state_totals_come_from_the_captures_table():
    import pyarrow as pa

    captures = pa.table({"file_id": ["a" * 64, "b" * 64], "packets": [10, 5], "bad_packets": [1, 0],
                         "unresolved_ticks": [3, 4]})
    state = state_from_tables("/t", captures, pa.table({"instrument_token": [1, 2]}))
    assert (state.packets, state.bad_packets, state.unresolved_ticks, state.unknown_tokens) == (15, 1, 7, 2)
    assert state.captures["b" * 64].unresolved_ticks == 4
    assert state.summary() == "2 captures · 15 packets · 7 unresolved ticks"

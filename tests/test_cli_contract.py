"""Issue 14's error contract: exact exit code, one line naming the file, nothing outside
the target touched.

Each way a command ends (exit 2 for a bad input or a damaged target, 4, 5, 6 on a really full
disk, 130 on a closed stdout) is run at least once as a real `python -m app` process; the
other cases of the same path run the command in this process (tests/support/cli.py: same
exit code, stdout and stderr, without an interpreter start each)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest

from app import logs
from tests.conftest import REPO
from tests.support import synthetic
from tests.support.cli import run_cli


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("data")  # its log file is outside the folders compared
    monkeypatch.setenv("TICKSCOPE_DATA_DIR", str(folder))
    yield folder
    logs.shutdown_cli_logging()


def tickscope(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **kw.get("env", {})})


def one_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    synthetic.generate_capture(folder / "a.dat", packets=300, framing="raw", seed=3)
    return folder / "a.dat"


def snapshot(folder):
    return {p: (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_decode_out_refuses_a_symlink_and_touches_nothing(tmp_path, capture):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("precious")
    link = tmp_path / "out" / "ticks.parquet"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    before = snapshot(tmp_path)
    result = run_cli("decode", capture, "--out", link)
    assert result.returncode == 2
    assert "symbolic link" in one_line(result) and str(link) in one_line(result)
    assert snapshot(tmp_path) == before and elsewhere.read_text() == "precious"


def test_decode_out_refuses_a_device(tmp_path, capture):
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    st = os.stat("/dev/null")
    result = run_cli("decode", capture, "--out", "/dev/null")
    assert result.returncode == 2
    assert "not a regular file" in one_line(result) and "/dev/null" in one_line(result)
    after = os.stat("/dev/null")
    assert (after.st_mode, after.st_rdev, after.st_ino) == (st.st_mode, st.st_rdev, st.st_ino)


def test_decode_out_refuses_a_folder(tmp_path, capture):
    folder = tmp_path / "ticks.parquet"
    folder.mkdir()
    before = snapshot(tmp_path)
    result = run_cli("decode", capture, "--out", folder)
    assert result.returncode == 2 and "folder" in one_line(result)
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_decode_out_in_a_read_only_folder_is_exit_2(tmp_path, capture):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = tickscope("decode", capture, "--out", folder / "t.parquet")
        assert result.returncode == 2
        assert "cannot write to the output folder" in one_line(result)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_decode_out_read_only_check_without_root(tmp_path, capture, monkeypatch):
    """The same check in-process (the suite may run as root, where chmod cannot refuse)."""
    from app.commands import decode as decode_cmd
    from app.errors import UsageError

    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(decode_cmd.os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match="cannot write to the output folder"):
        decode_cmd._check_paths(capture, folder / "t.parquet")
    assert list(folder.iterdir()) == []


def test_closed_stdout_ends_quietly(tmp_path, capture):
    out = tmp_path / "t.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "app", "decode", str(capture), "--out", str(out), "--json"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the first write gets EPIPE
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr


def test_no_space_is_exit_6_one_line(tmp_path, capture, monkeypatch, capsys):
    """ENOSPC from the write layer (injected) -> 'no space left on ...', exit 6."""
    import errno

    from app import cli
    from app.commands import decode as decode_cmd

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "t.parquet"))

    monkeypatch.setattr(decode_cmd, "run", full)
    monkeypatch.setattr(cli.logs, "setup_cli_logging", lambda: None)
    code = cli.main(["decode", str(capture), "--out", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 6 and len(err) == 1
    assert err[0].startswith("tickscope: error: no space left on ") and "t.parquet" in err[0]


def test_deeply_nested_json_master_is_exit_2(tmp_path, capture):
    master = tmp_path / "master.json"
    master.write_text("[" * 100_000 + "]" * 100_000)
    result = run_cli("decode", capture, "--out", tmp_path / "t.parquet", "--instruments", master)
    assert result.returncode == 2
    line = one_line(result)
    assert "master.json" in line and "nested too deeply" in line
    assert not (tmp_path / "t.parquet").exists()


def test_corrupt_gzip_master_is_exit_2(tmp_path, capture):
    master = tmp_path / "instruments.csv.gz"
    whole = gzip.compress(b"instrument_token,tradingsymbol\n" + b"".join(b"%d,S%d\n" % (i, i) for i in range(5000)))
    master.write_bytes(whole[: len(whole) // 2])
    result = run_cli("decode", capture, "--out", tmp_path / "t.parquet", "--instruments", master)
    assert result.returncode == 2
    line = one_line(result)
    assert "instruments.csv.gz" in line
    assert not (tmp_path / "t.parquet").exists()


# --- same condition, same code, in every command; --json ends with a JSON line ----------

import json  # noqa: E402

SAMPLES = REPO / "resources" / "samples"


def json_line(result) -> dict:
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc.get("exit_code", 0) == result.returncode
    return doc


def test_an_empty_capture_is_exit_4_for_decode_and_ingest(tmp_path):
    empty = tmp_path / "in" / "empty.bin"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    decoded = tickscope("decode", empty, "--out", out / "t.parquet", "--json")
    ingested = run_cli("ingest", empty, "--target", out / "t.duckdb", "--json")
    assert decoded.returncode == ingested.returncode == 4
    assert "no Kite packets found (empty file)" in one_line(decoded) and "empty.bin" in one_line(decoded)
    assert json_line(decoded)["error"].startswith("empty.bin: no Kite packets found (empty file)")
    assert json_line(ingested)["files"][0]["error"] == "no Kite packets found (empty file)"
    assert not (out / "t.parquet").exists()  # nothing written for nothing decoded


def test_a_missing_input_is_exit_2_with_a_json_line_in_every_command(tmp_path):
    missing = tmp_path / "missing.bin"
    runs = {
        "decode": tickscope("decode", missing, "--out", tmp_path / "t.parquet", "--json"),
        "inspect": run_cli("inspect", missing, "--packet", "1", "--json"),
        "unknown": run_cli("unknown", tmp_path / "none.duckdb", "--json"),
        "resolve": run_cli("resolve", tmp_path / "none.duckdb", "--instruments",
                             SAMPLES / "instruments_20251013.csv", "--json"),
    }
    for command, result in runs.items():
        assert result.returncode == 2, (command, result.stderr)
        line = one_line(result)
        assert ("missing.bin" in line or "none.duckdb" in line), (command, line)
        doc = json_line(result)
        assert doc["command"] == command and doc["error"] in line
    assert list(tmp_path.iterdir()) == []  # nothing created anywhere


def test_every_command_help_points_to_the_exit_code_table():
    from app.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        assert "Exit codes (README" in command.format_help().replace("\n", " "), name


@pytest.mark.parametrize("content, name", [(b"", "empty.csv"), (b"instrument_token,tradingsymbol\n", "header.csv"),
                                           (b"[]", "empty.json"), (b"{}", "empty-object.json")])
def test_masters_with_no_instruments_are_exit_2_the_same_way(tmp_path, capture, content, name):
    master = tmp_path / name
    master.write_bytes(content)
    result = run_cli("decode", capture, "--out", tmp_path / "t.parquet", "--instruments", master)
    assert result.returncode == 2
    line = one_line(result)
    assert name in line and ("holds no instruments" in line or "no instrument token column" in line)
    assert not (tmp_path / "t.parquet").exists()


def test_the_master_load_report_names_rejected_rows(tmp_path, capture):
    master = tmp_path / "instruments_20251013.csv"
    master.write_text("instrument_token,tradingsymbol,expiry,strike,lot_size\n"
                      "408065,INFY,,0,1\nabc,BAD,,0,1\n12345602,OPT,9999-99-99,25000,75\n"
                      "12345603,OPT2,2025-10-28,1e30,75\n")
    target = tmp_path / "t.duckdb"
    assert run_cli("ingest", capture, "--target", target).returncode in (0, 4)
    result = run_cli("resolve", target, "--instruments", master, "--json")
    assert result.returncode == 0, result.stderr
    report = json_line(result)["masters"][0]
    assert "1 instruments" in report and "3 rows rejected" in report
    assert "line 3: non-numeric instrument_token 'abc'" in report
    assert "line 4: impossible expiry '9999-99-99'" in report and "line 5: impossible strike" in report


def test_a_truncated_duckdb_target_is_one_line_exit_2_and_5_for_verify(tmp_path, capture):
    target = tmp_path / "t.duckdb"
    assert run_cli("ingest", capture, "--target", target).returncode == 0
    # grow it past a few blocks so a truncation cuts stored data
    size = target.stat().st_size
    os.truncate(target, size // 2)
    before = target.stat().st_size
    for run, args, code in ((run_cli, ("unknown", target, "--json"), 2), (tickscope, ("verify", target), 5)):
        result = run(*args)
        assert result.returncode == code, result.stderr
        line = one_line(result)
        assert "t.duckdb" in line and "truncated or corrupt" in line
    assert target.stat().st_size == before


# --- a full disk: exit 6, one line, the target keeps its last committed state ---------------

import contextlib  # noqa: E402
import errno  # noqa: E402
import shutil  # noqa: E402


@contextlib.contextmanager
def small_disk(folder, size_kb: int):
    """A tmpfs of ``size_kb`` at ``folder`` (needs root; skips otherwise)."""
    folder.mkdir()
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount")):
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_a_disk_filling_up_during_ingest_is_exit_6_and_keeps_the_target(tmp_path, kind):
    small = tmp_path / "in" / "small.bin"
    big = tmp_path / "in" / "big.bin"
    small.parent.mkdir()
    synthetic.generate_capture(small, packets=500, framing="raw", seed=1)
    # Parquet: ~60 B a packet stored, 80,000 packets ~4.8 MB for the 3 MB disk (150,000 were ~9 MB).
    synthetic.generate_capture(big, packets=80_000 if kind == "parquet" else 40_000, framing="raw", seed=2)
    with small_disk(tmp_path / "disk", 3072) as disk:
        target = disk / ("t.duckdb" if kind == "duckdb" else "dataset")
        first = run_cli("ingest", small, "--target", target, "--json")
        assert first.returncode == 0, first.stderr
        result = tickscope("ingest", big, "--target", target, "--json")
        assert result.returncode == 6, result.stdout[-500:]
        doc = json.loads(result.stdout.strip().splitlines()[-1])
        assert doc["exit_code"] == 6 and doc["files"][0]["fault"] == "no_space"
        error = doc["files"][0]["error"]
        assert error.startswith(f"no space left on {target} (needed about ") and "MB free" in error
        assert "Traceback" not in result.stderr
        # the target keeps its last committed state: the small capture, whole
        from app.store import open_target

        with open_target(target, read_only=True) as t:
            captures = t.captures()
            assert captures.column("path").to_pylist() == [str(small)]
            assert t.ticks(["file_id"]).num_rows == captures.column("packets").to_pylist()[0]


def test_a_disk_filling_up_during_decode_is_exit_6_and_writes_nothing(tmp_path):
    big = tmp_path / "big.bin"
    synthetic.generate_capture(big, packets=60_000, framing="raw", seed=2)
    with small_disk(tmp_path / "disk", 1024) as disk:
        result = tickscope("decode", big, "--out", disk / "t.parquet", "--json")
        assert result.returncode == 6
        line = one_line(result)
        assert line.startswith(f"tickscope: error: no space left on {disk} (needed about ")
        assert "nothing was written" in line and json_line(result)["exit_code"] == 6
        assert list(disk.iterdir()) == []


def test_an_injected_enospc_at_the_write_layer_is_exit_6_in_process(tmp_path, monkeypatch):
    """The same contract without root: ENOSPC raised where the DuckDB target inserts ticks."""
    from app.pipeline import run_ingest
    from app.store import duck, open_target

    small = tmp_path / "small.bin"
    big = tmp_path / "big.bin"
    synthetic.generate_capture(small, packets=300, framing="raw", seed=1)
    synthetic.generate_capture(big, packets=3000, framing="raw", seed=2)
    target = tmp_path / "t.duckdb"
    assert run_ingest([small], target).exit_code == 0

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(duck._DuckCaptureWrite, "add_ticks", full)
    report = run_ingest([big], target)
    assert report.exit_code == 6
    assert report.files[0].fault == "no_space" and report.files[0].error.startswith(f"no space left on {target}")
    with open_target(target, read_only=True) as t:
        assert t.captures().column("path").to_pylist() == [str(small)]

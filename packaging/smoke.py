"""Smoke test of a built bundle: the checks CI runs on every platform after PyInstaller.

    python packaging/smoke.py dist/tickscope          # or dist/Tickscope.app on macOS

1. `tickscope --version` prints the version of app/__init__.py.
2. `tickscope selftest` prints its OK line (decode + ingest of the bundled sample into
   DuckDB and Parquet, every count checked, the GUI modules importable).
3. `tickscope gui --quit-when-done --screenshot X.png <sample>` opens the real window
   offscreen, ingests the sample, saves a PNG and exits 0.

Each check runs with QT_QPA_PLATFORM=offscreen and a throwaway TICKSCOPE_DATA_DIR, so it
needs no display and never touches the user's settings. Exit 0 when all pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "tickscope"
SAMPLE_CAPTURE = "binary_data_20251013_091500.dat"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def executables(bundle: Path) -> tuple[Path, Path]:
    """(console executable for subcommands, executable the GUI is launched with)."""
    bundle = Path(bundle)
    if bundle.suffix == ".app":
        exe = bundle / "Contents" / "MacOS" / NAME
        return exe, exe
    if sys.platform == "win32":
        return bundle / f"{NAME}-cli.exe", bundle / f"{NAME}.exe"
    return bundle / NAME, bundle / NAME


def resources_of(bundle: Path) -> Path:
    bundle = Path(bundle)
    if bundle.suffix == ".app":
        # PyInstaller's .app keeps data under Contents/Resources (linked from Frameworks).
        return bundle / "Contents" / "Resources" / "resources"
    return bundle / "_internal" / "resources"


def smoke_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["TICKSCOPE_DATA_DIR"] = str(data_dir)
    # A bundle must not lean on the build machine's Python: drop anything that could
    # point it at the source tree or a virtualenv.
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(var, None)
    return env


def _run(cmd: list[str], env: dict, timeout: float) -> tuple[int, str, str, float]:
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=env["TICKSCOPE_DATA_DIR"])
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        errtxt = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        return -1, out, errtxt + f"\n(timed out after {timeout:.0f} s)", time.monotonic() - started
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_version(bundle: Path, workdir: Path, expected_version: str) -> Check:
    cli, _ = executables(bundle)
    code, out, err, secs = _run([str(cli), "--version"], smoke_env(workdir), 120)
    ok = code == 0 and out.strip() == f"{NAME} {expected_version}"
    return Check("version", ok, out.strip() if ok else f"exit {code}: {_tail(out + err)}", secs)


def check_selftest(bundle: Path, workdir: Path) -> Check:
    cli, _ = executables(bundle)
    code, out, err, secs = _run([str(cli), "selftest"], smoke_env(workdir), 300)
    lines = out.strip().splitlines()
    ok = code == 0 and len(lines) == 1 and lines[0].startswith("tickscope selftest OK:")
    return Check("selftest", ok, lines[0] if ok else f"exit {code}: {_tail(out + err)}", secs)


def check_gui(bundle: Path, workdir: Path) -> Check:
    _, gui = executables(bundle)
    sample = resources_of(bundle) / "samples" / SAMPLE_CAPTURE
    png = workdir / "smoke-screenshot.png"
    target = workdir / "smoke-gui.duckdb"
    cmd = [str(gui), "gui", "--quit-when-done", "--screenshot", str(png), "--target", str(target), str(sample)]
    code, out, err, secs = _run(cmd, smoke_env(workdir), 300)
    has_png = png.is_file() and png.read_bytes()[:8] == PNG_SIGNATURE
    ok = code == 0 and has_png
    detail = (f"window ingested the sample, {png.stat().st_size:,}-byte screenshot" if ok else
              f"exit {code}, screenshot {'ok' if has_png else 'missing'}: {_tail(out + err)}")
    return Check("gui", ok, detail, secs)


def bundle_version() -> str:
    sys.path.insert(0, str(ROOT))
    from app import __version__

    return __version__


def run_checks(bundle: Path, workdir: Path | None = None) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="tickscope-smoke-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        return [check_version(bundle, work, bundle_version()), check_selftest(bundle, work),
                check_gui(bundle, work)]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bundle = Path(argv[0]).resolve()
    checks = run_checks(bundle)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"smoke {mark} {check.name:8} {check.seconds:5.1f} s  {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

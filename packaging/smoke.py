"""Smoke test of a built bundle: the checks CI runs on every platform after PyInstaller.

    python packaging/smoke.py dist/tickscope          # or dist/Tickscope.app on macOS

1. `tickscope --version` prints the version of app/__init__.py.
2. `tickscope selftest` prints its OK line (decode + ingest of the bundled sample into
   DuckDB and Parquet, every count checked, the GUI modules importable).
3. `tickscope gui --quit-when-done --screenshot X.png <sample>` opens the real window
   offscreen, ingests the sample, saves a PNG and exits 0.
4. Linux: Qt's ICU services (collation, locale case mapping, legacy encodings, time-zone
   names) answer the same from the bundle's reduced ICU data as from the full data
   (packaging/icu_probe.py, run with this Python's PySide6 on the bundle's ICU libraries).

Each check runs with QT_QPA_PLATFORM=offscreen and a throwaway TICKSCOPE_DATA_DIR, so it
needs no display and never touches the user's settings. Exit 0 when all pass.
"""

from __future__ import annotations

import importlib.util
import json
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
ICU_PROBE = Path(__file__).resolve().parent / "icu_probe.py"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float
    skipped: bool = False


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


def qt_library_dir(bundle: Path) -> Path:
    return Path(bundle) / "_internal" / "PySide6" / "Qt" / "lib"


def _icu_probe(library_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    if library_dir is not None:
        env["LD_LIBRARY_PATH"] = str(library_dir)
    proc = subprocess.run([sys.executable, str(ICU_PROBE)], env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"icu_probe.py exit {proc.returncode}: {_tail(proc.stderr)}")
    return json.loads(proc.stdout)


def icu_differences(library_dir: Path) -> tuple[list[str], dict]:
    """Where Qt's ICU services answer differently with the ICU libraries in ``library_dir``
    than with the full data of this Python's PySide6; [] when all kept behaviour holds."""
    full = _icu_probe(None)
    slim = _icu_probe(library_dir)
    problems = []
    loaded = Path(slim["loaded"].get("libicudata", "?")).resolve()
    if loaded.parent != Path(library_dir).resolve():
        problems.append(f"libicudata came from {loaded}, not {library_dir}")
    if slim["qt"] != full["qt"]:
        problems.append(f"Qt {slim['qt']} vs {full['qt']}")
    for section in ("collation", "case"):
        problems += [f"{section} {key}: {slim[section].get(key)} != {want}"
                     for key, want in full[section].items() if slim[section].get(key) != want]
    for label, name in full["converters"]["by_label"].items():
        if name and slim["converters"]["by_label"].get(label) != name:
            problems.append(f"encoding {label}: {slim['converters']['by_label'].get(label)} != {name}")
    extra = set(slim["converters"]["available"]) - set(full["converters"]["available"])
    if extra:
        problems.append(f"encodings not in the full data: {sorted(extra)}")
    for key, want in full["zones"].items():
        got = slim["zones"].get(key)
        # Non-English zone names are left out on purpose and fall back to English.
        if (got != want) if key.split()[-1].startswith("en") else not got:
            problems.append(f"zone name {key}: {got!r} != {want!r}")
    # Known answers, so that two equally broken runs cannot agree: Swedish sorts å after z,
    # English does not; Turkish uppercases dotted i; file names sort numerically.
    if slim["collation"].get("sv_SE", []).index("Ångström") < slim["collation"]["sv_SE"].index("zebra"):
        problems.append("Swedish collation tailoring not in effect")
    if slim["collation"].get("en_US", []).index("Ångström") > slim["collation"]["en_US"].index("zebra"):
        problems.append("root collation not in effect")
    if not slim["case"].get("tr_TR istanbul ıi", [""])[0].startswith("İSTANBUL"):
        problems.append("Turkish case mapping not in effect")
    return problems, slim


def check_icu(bundle: Path, workdir: Path) -> Check:
    started = time.monotonic()
    library_dir = qt_library_dir(bundle)
    if not sys.platform.startswith("linux") or not (library_dir / "libicudata.so.73").exists():
        return Check("icu", True, "skipped: the bundle has no ICU data of its own (not Linux)", 0.0,
                     skipped=True)
    if importlib.util.find_spec("PySide6") is None:
        return Check("icu", True, f"skipped: {sys.executable} has no PySide6 to probe with", 0.0,
                     skipped=True)
    try:
        problems, slim = icu_differences(library_dir)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as err:
        return Check("icu", False, str(err), time.monotonic() - started)
    size = (library_dir / "libicudata.so.73").stat().st_size
    detail = (f"collation in {len(slim['collation']) // 2} locales, case mapping, "
              f"{sum(1 for v in slim['converters']['by_label'].values() if v)} encodings, zone names "
              f"as with the full data ({size / 1e6:.1f} MB libicudata)" if not problems
              else f"{len(problems)} differences: " + "; ".join(problems[:5]))
    return Check("icu", not problems, detail, time.monotonic() - started)


def bundle_version() -> str:
    sys.path.insert(0, str(ROOT))
    from app import __version__

    return __version__


def run_checks(bundle: Path, workdir: Path | None = None) -> list[Check]:
    with tempfile.TemporaryDirectory(prefix="tickscope-smoke-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        return [check_version(bundle, work, bundle_version()), check_selftest(bundle, work),
                check_gui(bundle, work), check_icu(bundle, work)]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bundle = Path(argv[0]).resolve()
    checks = run_checks(bundle)
    for check in checks:
        mark = "skip" if check.skipped else "ok  " if check.ok else "FAIL"
        print(f"smoke {mark} {check.name:8} {check.seconds:5.1f} s  {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`'s scale section: memory and time as captures, days and stored masters grow.

Measures, with whole ``tickscope ingest`` processes (peak RSS = the process's VmHWM):

1. peak RSS and time of ingest into both targets on captures of 100 MB, 400 MB, 1.6 GB
   (one trading day) and 1.6 GB spanning 16 trading days;
2. time and peak RSS of a skipping re-ingest (the capture is already stored) after 1, 4
   and 8 stored daily masters of 358,784 rows, the day's dump given with --instruments
   as a user ingesting every day would;
3. same-size ingest time over 8 rounds of a growing target (one new day and its dump a
   round);
4. the stored masters' size after 8 near-identical daily dumps against one.

Daily dumps are generated near-identical: each day ~2% of rows change (recycled tokens
re-assigned to new contracts, a few listed or expired). Everything generated goes into a
temporary folder under /tmp (``--tmp`` to change) that is deleted at the end; nothing in
the repo. It prints numbers and ratios and returns them; it never asserts timings.

Run alone: ``python scripts/bench_scale.py [--quick] [--sizes 100,400,1600] [--days 16]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import synthetic  # noqa: E402

MASTER_ROWS = 358_784
BYTES_PER_PACKET = 153  # tests.support.synthetic's mix, measured
FIRST_DAY = dt.date(2025, 10, 1)
KINDS = {"duckdb": "t.duckdb", "parquet": "dataset"}
SKIP_RUNS = 5

# ``python -m app`` that writes its peak RSS (VmHWM, kB) and CPU seconds to argv[1] on exit.
_MEASURED = """
import atexit, os, runpy, sys
out = sys.argv.pop(1)
def report():
    t = os.times()
    with open("/proc/self/status") as status, open(out, "w") as f:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM"))
        f.write(f"{hwm} {t.user + t.system}")
atexit.register(report)
sys.argv[0] = "tickscope"
runpy.run_module("app", run_name="__main__", alter_sys=True)
"""


def trading_days(n: int, start: dt.date = FIRST_DAY) -> list[dt.date]:
    days, d = [], start
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def tickscope(args: list, tmp: Path) -> dict:
    """Run one tickscope command; seconds, peak RSS (MB), CPU seconds and its --json output."""
    report = tmp / "measured.txt"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-c", _MEASURED, str(report), *map(str, args), "--json"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 4):
        raise RuntimeError(f"tickscope {' '.join(map(str, args[:2]))} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-400:]}")
    hwm, cpu = report.read_text().split()
    doc = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    return {"seconds": seconds, "rss_mb": int(hwm) / 1024, "cpu_s": float(cpu), "doc": doc}


def make_capture(path: Path, megabytes: float, days: list[dt.date], seed: int = 7) -> Path:
    """A raw capture of about ``megabytes``, its ticks spread evenly over ``days``."""
    packets = int(megabytes * 1e6 / BYTES_PER_PACKET / len(days))
    with open(path, "wb") as out:
        for i, day in enumerate(days):
            part = path.with_name(f"{path.name}.{i}.part")
            synthetic.generate_capture(part, packets=packets, framing="raw", seed=seed + i,
                                       start=dt.datetime.combine(day, dt.time(9, 15)))
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 16 << 20)
            part.unlink()
    return path


# --- daily dumps ---------------------------------------------------------------------


def make_dumps(folder: Path, days: list[dt.date], rows: int = MASTER_ROWS, change: float = 0.02,
               seed: int = 11) -> list[Path]:
    """Near-identical daily dumps of ``rows`` rows; ``change`` of them differ day to day.

    The capture generator's instruments are in every dump (ticks get names); the rest are
    F&O filler. Each day some tokens are recycled (same token, a new contract), some
    contracts expire and new ones list (new tokens)."""
    rng = np.random.default_rng(seed)
    base = synthetic.make_instruments(7, date=days[0])
    own = [(i.instrument_token, i.exchange_token, i.tradingsymbol, i.name, i.expiry.isoformat() if i.expiry else "",
            i.strike or 0, i.tick_size, i.lot_size, i.instrument_type, i.segment, i.exchange) for i in base]
    taken = {r[0] for r in own}
    n_fill = rows - len(own)
    fill_tokens = np.setdiff1d(np.arange(1_000_000, 1_000_000 + 2 * rows) * 256 + 2, list(taken))[:n_fill]
    strikes = rng.integers(100, 600, n_fill) * 50
    kinds = np.where(rng.random(n_fill) < 0.5, "CE", "PE")
    version = np.zeros(n_fill, dtype=np.int64)
    tokens = fill_tokens.copy()
    next_token = int(fill_tokens.max()) + 256
    paths = []
    for d_i, day in enumerate(days):
        if d_i:
            k = int(n_fill * change)
            pick = rng.choice(n_fill, k, replace=False)
            recycled, relisted = pick[: k // 2], pick[k // 2:]
            version[recycled] += 1  # same token, another contract
            new = np.arange(next_token, next_token + 256 * len(relisted), 256)
            tokens[relisted] = new  # expired; a new token listed
            next_token += 256 * len(relisted)
        path = folder / f"instruments_{day:%Y%m%d}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(synthetic.MASTER_COLUMNS)
            for r in own:
                w.writerow((r[0], r[1], r[2], r[3], "0.0", r[4], r[5], r[6], r[7], r[8], r[9], r[10]))
            for t, s, kind, v in zip(tokens.tolist(), strikes.tolist(), kinds.tolist(), version.tolist(), strict=True):
                symbol = f"FILL{v}X{s}{kind}"
                expiry = (days[0] + dt.timedelta(days=28 + 7 * v)).isoformat()  # a recycled token: a later contract
                w.writerow((t, t >> 8, symbol, "FILL", "0.0", expiry, s, 0.05, 75, kind, "NFO-OPT", "NFO"))
        paths.append(path)
    return paths


# --- sections ------------------------------------------------------------------------


def ingest_rss(tmp: Path, sizes: list[int], days16: int, memory_limit: str | None) -> list[dict]:
    rows = []
    extra = ["--memory-limit", memory_limit] if memory_limit else []
    cases = [(f"{mb} MB, 1 day", mb, 1) for mb in sizes]
    if days16 and sizes:
        cases.append((f"{sizes[-1]} MB, {days16} days", sizes[-1], days16))
    for label, mb, n_days in cases:
        capture = make_capture(tmp / f"cap_{mb}_{n_days}.bin", mb, trading_days(n_days))
        for kind, name in KINDS.items():
            target = tmp / name
            run = tickscope(["ingest", capture, "--target", target, *extra], tmp)
            packets = sum(f.get("packets", 0) for f in run["doc"].get("files", []))
            rows.append({"case": label, "target": kind, "seconds": run["seconds"], "rss_mb": run["rss_mb"],
                         "cpu_pct": 100 * run["cpu_s"] / run["seconds"], "packets": packets})
            print(f"  ingest {label:>18} -> {kind:7}: {run['seconds']:6.1f} s, peak RSS {run['rss_mb']:5.0f} MB, "
                  f"CPU {100 * run['cpu_s'] / run['seconds']:3.0f}%, {packets:,} packets", flush=True)
            _remove(target)
        capture.unlink()
    return rows


def skips_and_rounds(tmp: Path, rounds: int, capture_mb: float, memory_limit: str | None) -> dict:
    extra = ["--memory-limit", memory_limit] if memory_limit else []
    days = trading_days(rounds)
    dumps = make_dumps(tmp, days)
    dump_mb = dumps[0].stat().st_size / 1e6
    print(f"  {len(dumps)} daily dumps of {MASTER_ROWS:,} rows ({dump_mb:.0f} MB CSV each), ~2% changed a day")
    captures = [make_capture(tmp / f"day{i}.bin", capture_mb, [d]) for i, d in enumerate(days)]
    out: dict = {}
    for kind, name in KINDS.items():
        target = tmp / name
        rounds_s, rounds_cpu, skips, sizes = [], [], {}, {}
        for i, (capture, dump) in enumerate(zip(captures, dumps, strict=True)):
            run = tickscope(["ingest", capture, "--target", target, "--instruments", dump, *extra], tmp)
            rounds_s.append(run["seconds"])
            rounds_cpu.append(run["cpu_s"])
            print(f"  {kind:7} round {i + 1}: ingest {capture_mb:.0f} MB + dump of {days[i]}: {run['seconds']:5.1f} s, "
                  f"{run['cpu_s']:.1f} CPU-s, peak RSS {run['rss_mb']:5.0f} MB", flush=True)
            n = i + 1
            if n in (1, 4, 8) or n == rounds:
                # The user's daily command again: the capture and its dump are stored already.
                # Median of SKIP_RUNS: one short process is at the mercy of the machine's load.
                runs = [tickscope(["ingest", capture, "--target", target, "--instruments", dump, *extra], tmp)
                        for _ in range(SKIP_RUNS)]
                status = sorted({f["status"] for run_ in runs for f in run_["doc"].get("files", [])})
                skips[n] = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "cpu_s", "rss_mb")}
                sizes[n] = _masters_size(target, kind)
                print(f"  {kind:7} skip after {n} stored masters: {skips[n]['seconds']:5.2f} s "
                      f"({skips[n]['cpu_s']:.2f} CPU-s; median of {SKIP_RUNS}), peak RSS {skips[n]['rss_mb']:5.0f} MB "
                      f"({', '.join(status)}); stored masters {sizes[n]}", flush=True)
        out[kind] = {"rounds": rounds_s, "rounds_cpu": rounds_cpu, "skips": skips, "sizes": sizes}
        _remove(target)
    out["dump_mb"] = dump_mb
    for c in captures:
        c.unlink()
    for d in dumps:
        d.unlink()
    return out


def _masters_size(target: Path, kind: str) -> dict:
    from app.store import open_target

    with open_target(target, read_only=True) as t:
        rows = t.master_rows().num_rows
        masters = t.master_catalog().num_rows
    size = {"masters": masters, "rows": rows}
    if kind == "parquet":
        size["mb"] = round((target / "instruments" / "instruments.parquet").stat().st_size / 1e6, 2)
    return size


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
        Path(str(path) + ".wal").unlink(missing_ok=True)


def bench_scale(sizes=(100, 400, 1600), days16: int = 16, rounds: int = 8, capture_mb: float = 100,
                memory_limit: str | None = None, tmp_root: str | None = None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tickscope-scale-", dir=tmp_root))
    try:
        print(f"scale (generated under {tmp}, deleted afterwards; memory limit "
              f"{memory_limit or 'the default'}):")
        rss = ingest_rss(tmp, list(sizes), days16, memory_limit)
        masters = skips_and_rounds(tmp, rounds, capture_mb, memory_limit) if rounds else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| ingest case | target | seconds | peak RSS MB | CPU % |")
    print("|---|---|---:|---:|---:|")
    for r in rss:
        print(f"| {r['case']} | {r['target']} | {r['seconds']:.1f} | {r['rss_mb']:.0f} | {r['cpu_pct']:.0f} |")
    print()
    print("| target | skip after 1 / 4 / 8 masters (s) | skip CPU-s | skip RSS MB | 8 vs 1 (s, CPU-s) | "
          "round 1 / round 8 ingest (s; CPU-s) | 8 vs 1 (s, CPU-s) | stored rows after 1 / 8 dumps | size 8 vs 1 |")
    print("|---|---|---|---|---:|---|---:|---|---:|")
    for kind in KINDS if masters else ():
        m = masters[kind]
        ks = sorted(m["skips"])
        skip_text = " / ".join(f"{m['skips'][k]['seconds']:.2f}" for k in ks)
        rss_text = " / ".join(f"{m['skips'][k]['rss_mb']:.0f}" for k in ks)
        cpu_text = " / ".join(f"{m['skips'][k]['cpu_s']:.2f}" for k in ks)
        first, last = m["skips"][ks[0]], m["skips"][ks[-1]]
        size_1, size_n = m["sizes"][ks[0]], m["sizes"][ks[-1]]
        ratio = (size_n.get("mb", size_n["rows"]) / size_1.get("mb", size_1["rows"]))
        size_text = f"{size_1['rows']:,} / {size_n['rows']:,}" + (
            f" ({size_1['mb']} / {size_n['mb']} MB)" if "mb" in size_1 else "")
        print(f"| {kind} | {skip_text} | {cpu_text} | {rss_text} | {last['seconds'] / first['seconds']:.2f}x, "
              f"{last['cpu_s'] / first['cpu_s']:.2f}x | "
              f"{m['rounds'][0]:.1f} / {m['rounds'][-1]:.1f}; {m['rounds_cpu'][0]:.1f} / {m['rounds_cpu'][-1]:.1f} | "
              f"{m['rounds'][-1] / m['rounds'][0]:.2f}x, {m['rounds_cpu'][-1] / m['rounds_cpu'][0]:.2f}x | "
              f"{size_text} | {ratio:.2f}x |")
    print()
    print("targets: peak RSS < 600 MB in every ingest case, flat across sizes and days; skip after 8 masters "
          "within 1.5x of after 1; round 8 within 1.3x of round 1; stored masters after 8 dumps < 2x one")
    return {"ingest": rss, "masters": masters}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (20, 40, 80 MB; 4 days, 4 rounds)")
    parser.add_argument("--sizes", default="100,400,1600", help="capture sizes in MB (one trading day each)")
    parser.add_argument("--days", type=int, default=16, help="trading days of the last size's multi-day capture")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the growing target (daily dumps)")
    parser.add_argument("--round-mb", type=float, default=100, help="capture size of each round")
    parser.add_argument("--memory-limit", default=None, help="passed to every ingest (default: ingest's own)")
    parser.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"), help="where to generate")
    args = parser.parse_args(argv)
    if args.quick:
        bench_scale((20, 40, 80), 4, 4, 20, args.memory_limit, args.tmp)
    else:
        sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
        bench_scale(sizes, args.days, args.rounds, args.round_mb, args.memory_limit, args.tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

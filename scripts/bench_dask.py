"""The Dask engine against the local engine: N capture files, same Parquet target layout.

``bench_dask(paths, official_rate)`` (called by scripts/bench.py) measures, each as the
whole ``tickscope ingest`` command in a subprocess (cluster start and stop included):

* the local engine (one process, decoder threads, one writer);
* ``--engine dask --local-cluster W`` (W worker processes on this machine);
* the same on a cluster of 1 worker (how the time scales with workers);
* the fixed cost of a local cluster (start + connect + close, nothing ingested),

checks that both targets hold the same rows, and prints packets/s, the speed-up and how
cost grows with files and workers. It never asserts timings (the machine may be shared).
Run alone: ``python scripts/bench_dask.py [CAPTURE...] [--files 4 --packets 500000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BENCH_DIR = REPO / ".bench"

COST_NOTE = """\
how cost grows (one task per file; the client reads no capture: it checks part footers and commits):
  time ~= cluster start (local: the figure above; an existing cluster: ~0)
          + max(total decode work / workers, the largest single file)   <- a file is never split
          + per-file commit on the client (rewrites captures.parquet: ~ms, grows with files committed)
  so files >> workers keeps every worker busy; fewer files than workers leaves workers idle;
  on shared storage (NFS) read + write bandwidth is the ceiling long before CPU on many workers."""


def _cli(paths: list[Path], target: Path, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "app", "ingest", *map(str, paths), "--target", str(target), "--json", *extra],
        cwd=REPO, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"tickscope ingest {' '.join(extra)} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-500:]}")
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1])


def _cluster_overhead(workers: int) -> float:
    code = (
        "import time, distributed\n"
        "from app.pipeline.dask_engine import LOCAL_CLUSTER_OPTIONS\n"
        "t = time.perf_counter()\n"
        f"c = distributed.LocalCluster(n_workers={workers}, **LOCAL_CLUSTER_OPTIONS)\n"
        "cl = distributed.Client(c); cl.wait_for_workers(%d); cl.close(); c.close()\n"
        "print(time.perf_counter() - t)\n" % workers
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def _ticks(target: Path):
    from app.store.parquet import ParquetTarget

    with ParquetTarget(target, read_only=True) as t:
        return t.ticks(["file_id", "msg_seq", "pkt_seq", "instrument_token", "last_price"])


def bench_dask(paths, official_rate: float | None = None, *, workers: int = 2) -> dict:
    """Time the local engine vs a local Dask cluster of ``workers`` processes on ``paths``."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("dask bench: skipped, Dask is not installed (pip install tickscope[cluster])")
        return {}
    paths = [Path(p) for p in paths]
    r: dict = {"files": len(paths), "bytes": sum(p.stat().st_size for p in paths), "workers": workers,
               "cpu_count": os.cpu_count(), "official_rate": official_rate,
               "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    with tempfile.TemporaryDirectory(prefix="tickscope-bench-dask-") as tmp:
        tmp = Path(tmp)
        local_s, local = _cli(paths, tmp / "local", "--engine", "local", "--workers", str(workers))
        dask_s, remote = _cli(paths, tmp / "dask", "--engine", "dask", "--local-cluster", str(workers))
        dask1_s, _ = _cli(paths, tmp / "dask-1", "--engine", "dask", "--local-cluster", "1")
        one_s, _ = _cli(paths[:1], tmp / "dask-one", "--engine", "dask", "--local-cluster", str(workers))
        local_one_s, _ = _cli(paths[:1], tmp / "local-one", "--engine", "local", "--workers", str(workers))
        packets = sum(f["packets"] for f in local["files"])
        r["packets"] = packets
        r["same_rows"] = _ticks(tmp / "local").equals(_ticks(tmp / "dask"))
        shutil.rmtree(tmp / "local", ignore_errors=True)
    r["cluster_start_stop_s"] = _cluster_overhead(workers)
    r["local_s"], r["dask_s"] = local_s, dask_s
    r["local_pps"], r["dask_pps"] = packets / local_s, packets / dask_s
    r["speedup"] = local_s / dask_s
    r["dask_1_worker_s"] = dask1_s
    r["worker_scaling"] = dask1_s / dask_s
    r["speedup_without_startup"] = local_s / max(1e-9, dask_s - r["cluster_start_stop_s"])
    r["dask_one_file_s"], r["local_one_file_s"] = one_s, local_one_s
    r["dask_packets_counted"] = sum(f["packets"] for f in remote["files"])
    _print(r)
    return r


def _print(r: dict) -> None:
    load = f", load average {r['load_average']:.1f}" if r.get("load_average") is not None else ""
    print(f"dask bench: {r['files']} files, {r['packets']:,} packets, {r['bytes'] / 1e6:.0f} MB, "
          f"{r['cpu_count']} cores{load}")
    def vs(pps):
        if not r.get("official_rate"):
            return ""
        return f"  = {pps / r['official_rate']:.1f}x the official client's parse-only rate"

    print(f"  local engine (1 process, {r['workers']} decoder threads) {r['local_s']:7.2f} s "
          f"{r['local_pps']:>12,.0f} packets/s{vs(r['local_pps'])}")
    print(f"  dask, --local-cluster {r['workers']}                    {r['dask_s']:7.2f} s "
          f"{r['dask_pps']:>12,.0f} packets/s{vs(r['dask_pps'])}")
    print(f"  speed-up dask / local: x{r['speedup']:.2f} "
          f"(x{r['speedup_without_startup']:.2f} without the cluster's start/stop of "
          f"{r['cluster_start_stop_s']:.1f} s)")
    print(f"  dask, --local-cluster 1                    {r['dask_1_worker_s']:7.2f} s; "
          f"1 -> {r['workers']} workers: x{r['worker_scaling']:.2f} faster")
    print(f"  one file: local {r['local_one_file_s']:.2f} s, dask {r['dask_one_file_s']:.2f} s "
          "(one file is one task: no gain below one file per worker)")
    print(f"  same rows in both targets: {r['same_rows']}; packets counted by dask: {r['dask_packets_counted']:,}")
    print(COST_NOTE)


def ensure_captures(files: int, packets: int) -> list[Path]:
    """``files`` different raw captures of ``packets`` packets under .bench/ (kept between runs)."""
    from tests.support.synthetic import generate_capture

    BENCH_DIR.mkdir(exist_ok=True)
    out = []
    for seed in range(11, 11 + files):
        path = BENCH_DIR / f"capture_raw_{packets}_s{seed}.bin"
        if not (path.exists() and path.stat().st_size):
            tmp = path.with_suffix(".part")
            generate_capture(tmp, packets=packets, framing="raw", seed=seed)
            os.replace(tmp, path)
        out.append(path)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*", help="capture files (default: --files synthetic captures)")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--packets", type=int, default=500_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--official-rate", type=float, default=None, help="official client parse-only packets/s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paths = args.captures or ensure_captures(args.files, args.packets)
    results = bench_dask(paths, args.official_rate, workers=args.workers)
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

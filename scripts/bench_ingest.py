"""Ingest throughput: capture -> DuckDB and capture -> Parquet, end to end and split.

``bench_ingest(capture_path, official_rate)`` (called by scripts/bench.py) measures

* end to end: the whole ``tickscope ingest`` command in a subprocess (packets/s);
* in process: decode+enrich alone, write alone, and the pipelined job (decoding
  overlapped with the single writer), so the split shows which side bounds it;
* linearity: one file vs two different files of the same size (time ratio, ~2 is linear).

The command-line runs are repeated (``RUNS`` pairs of one file then two files, back to
back) and medians are reported: the time of one file and the median of the pairs' time
ratios, as this shared 2-core machine's speed varies by +-20% from run to run. Every run
is printed.

It prints numbers and ratios and returns them as a dict; it never asserts timings.
Run alone: ``python scripts/bench_ingest.py [CAPTURE] [--official-rate PPS]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.core import schema  # noqa: E402
from app.core.decode import CaptureReader  # noqa: E402
from app.pipeline import run_ingest  # noqa: E402
from app.pipeline.ingest import DEFAULT_CHUNK_BYTES  # noqa: E402
from app.store import CaptureRecord, open_target  # noqa: E402

TARGETS = {"duckdb": "bench.duckdb", "parquet": "bench-dataset"}
RUNS = 3  # pairs of command-line runs (one file, two files); medians are reported


def _fresh(path: Path) -> Path:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.unlink()
    return path


# ``python -m app`` that writes its peak RSS (VmHWM) to argv[1] on exit. Not the rusage of
# the child: Linux counts the forked image of this (large) bench process in it.
_WITH_PEAK_RSS = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status, open(out, "w") as f:
        f.write(next(line.split()[1] for line in status if line.startswith("VmHWM")))
atexit.register(peak)
sys.argv[0] = "tickscope"
runpy.run_module("app", run_name="__main__", alter_sys=True)
"""


def _cli_ingest(paths: list[Path], target: Path) -> tuple[float, dict, float | None]:
    """(seconds, the --json summary, peak RSS in MB) of one ``tickscope ingest`` process."""
    with tempfile.TemporaryDirectory(prefix="tickscope-rss-") as tmp:
        hwm = Path(tmp) / "vmhwm"
        command = [sys.executable, "-m", "app"]
        if Path("/proc/self/status").exists():
            command = [sys.executable, "-c", _WITH_PEAK_RSS, str(hwm)]
        started = time.perf_counter()
        result = subprocess.run(
            [*command, "ingest", *map(str, paths), "--target", str(target), "--json"],
            cwd=REPO, capture_output=True, text=True,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"tickscope ingest failed ({result.returncode}): {result.stderr.strip()}")
        peak_mb = int(hwm.read_text()) / 1024 if hwm.exists() else None  # VmHWM is in kB
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1]), peak_mb


def _decode_only(capture: Path) -> tuple[float, list, str, int]:
    started = time.perf_counter()
    reader = CaptureReader(capture, chunk_bytes=DEFAULT_CHUNK_BYTES)
    tables = [schema.unenriched(b.ticks) for b in reader.batches()]
    elapsed = time.perf_counter() - started
    return elapsed, tables, reader.file_id, sum(t.num_rows for t in tables)


def _write_only(tables: list, file_id: str, target: Path) -> float:
    with open_target(_fresh(target)) as t:
        t.tune_for_ingest(1)  # as an ingest of one file sets the target up
        started = time.perf_counter()
        write = t.begin(file_id)
        for table in tables:
            write.add_ticks(table)
        write.commit(CaptureRecord(file_id=file_id, path="bench", size_bytes=0, framing="raw"))
        elapsed = time.perf_counter() - started
        t.tune_for_ingest(None)
        return elapsed


def bench_ingest(capture_path, official_rate: float | None = None, *, workers: int = 2) -> dict:
    """Measure ingest throughput of ``capture_path``; ``official_rate`` is the official
    client's parse-only packets/s on the same machine (for the ratio)."""
    capture = Path(capture_path)
    results: dict = {"capture": str(capture), "bytes": capture.stat().st_size, "official_rate": official_rate,
                     "cpu_count": os.cpu_count(), "load_average": os.getloadavg() if hasattr(os, "getloadavg")
                     else None}
    with tempfile.TemporaryDirectory(prefix="tickscope-bench-") as tmp:
        tmp = Path(tmp)
        # A second, different file of the same size: the capture plus one heartbeat byte.
        twin = tmp / f"twin{capture.suffix}"
        shutil.copyfile(capture, twin)
        with open(twin, "ab") as f:
            f.write(b"\x00")

        decode_s, tables, file_id, packets = _decode_only(capture)
        results["packets"] = packets
        results["decode_enrich_pps"] = packets / decode_s
        for kind, name in TARGETS.items():
            row: dict = {}
            write_s = _write_only(tables, file_id, tmp / f"write-{name}")
            row["write_only_pps"] = packets / write_s
            started = time.perf_counter()
            report = run_ingest([capture], _fresh(tmp / f"job-{name}"), workers=workers)
            job_s = time.perf_counter() - started
            row["in_process_pps"] = report.packets / job_s
            row["in_process_split"] = {"decode_s": round(decode_s, 3), "write_s": round(write_s, 3),
                                       "pipelined_s": round(job_s, 3),
                                       "overlap": round((decode_s + write_s) / job_s, 2)}
            ones, twos, rss_one, rss_two = [], [], [], []
            for _ in range(RUNS):
                seconds, _, peak = _cli_ingest([capture], _fresh(tmp / f"cli1-{name}"))
                ones.append(seconds)
                rss_one.append(peak)
                seconds, summary, peak = _cli_ingest([capture, twin], _fresh(tmp / f"cli2-{name}"))
                twos.append(seconds)
                rss_two.append(peak)
            row["peak_rss_mb"] = max(rss_one) if None not in rss_one else None
            row["peak_rss_two_files_mb"] = max(rss_two) if None not in rss_two else None
            one_s, two_s = statistics.median(ones), statistics.median(twos)
            row["cli_runs_s"] = {"one_file": [round(x, 2) for x in ones], "two_files": [round(x, 2) for x in twos]}
            row["end_to_end_pps"] = packets / one_s
            row["end_to_end_two_files_pps"] = sum(f["packets"] for f in summary["files"]) / two_s
            row["linearity_two_over_one"] = statistics.median(b / a for a, b in zip(ones, twos, strict=True))
            if official_rate:
                row["end_to_end_vs_official"] = row["end_to_end_pps"] / official_rate
            results[kind] = row
        del tables
    _print(results)
    return results


def _print(r: dict) -> None:
    load = f", load average {r['load_average'][0]:.1f}" if r.get("load_average") else ""
    print(f"ingest bench: {r['packets']:,} packets, {r['bytes'] / 1e6:.0f} MB, {r['cpu_count']} cores{load}")
    print(f"  decode+enrich alone          {r['decode_enrich_pps']:>12,.0f} packets/s")
    for kind in TARGETS:
        row = r[kind]
        s = row["in_process_split"]
        print(f"  {kind}: write alone            {row['write_only_pps']:>12,.0f} rows/s")
        print(f"  {kind}: in-process pipelined   {row['in_process_pps']:>12,.0f} packets/s "
              f"(decode {s['decode_s']}s + write {s['write_s']}s -> {s['pipelined_s']}s, overlap x{s['overlap']})")
        line = f"  {kind}: tickscope ingest (CLI)  {row['end_to_end_pps']:>12,.0f} packets/s"
        if "end_to_end_vs_official" in row:
            line += f"  = {row['end_to_end_vs_official']:.1f}x the official client's parse-only rate"
        print(line + (f"; peak RSS {row['peak_rss_mb']:,.0f} MB" if row["peak_rss_mb"] else ""))
        print(f"  {kind}: two files              {row['end_to_end_two_files_pps']:>12,.0f} packets/s, "
              f"time ratio 2 files / 1 file = {row['linearity_two_over_one']:.2f} (median of pairs; 2.0 is linear)")
        runs = row["cli_runs_s"]
        print(f"  {kind}: runs (s): 1 file {runs['one_file']}, 2 files {runs['two_files']} (medians above)"
              + (f"; peak RSS with 2 files {row['peak_rss_two_files_mb']:,.0f} MB" if row["peak_rss_two_files_mb"]
                 else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", help="a capture file (default: a synthetic 1M-packet capture)")
    parser.add_argument("--official-rate", type=float, default=None, help="official client parse-only packets/s")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tickscope-capture-") as tmp:
        capture = args.capture
        if capture is None:
            from tests.support import synthetic

            capture = Path(tmp) / "bench.dat"
            synthetic.generate_capture(capture, packets=args.packets, framing="raw", seed=1)
        results = bench_ingest(capture, args.official_rate)
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

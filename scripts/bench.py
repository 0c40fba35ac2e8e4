"""`make bench`: Tickscope decoding against the official Kite client, in packets/s.

Generates (once, under ``.bench/``) a realistic raw capture - mostly 184-byte full
packets, some 44-byte quotes, 8-byte LTPs and 28/32-byte index packets, 1-50 packets a
message, every segment, heartbeats - with ``tests.support.synthetic.generate_capture``
(a vectorised local generator is the fallback), then prints:

1. the official client (``KiteTicker._parse_binary``) over a sample of the same messages;
2. Tickscope in-process: capture -> Arrow tables, nothing written;
3. ``tickscope decode`` as a whole subprocess writing Parquet, with its peak RSS;

with ratios against (1) and where the time goes. Wall-clock numbers are the best of
``--repeat`` runs (the machine may be shared). Size: ``--packets`` or
``BENCH_PACKETS`` (default 2,700,000 packets, about 410 MB); ``--quick`` is 200,000.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import encode  # noqa: E402

BENCH_DIR = REPO / ".bench"
DEFAULT_PACKETS = 2_700_000
CLIENT_SAMPLE_PACKETS = 200_000
CLIENT_RUNS = 3  # the official client's rate on the mix is the median of this many runs


# --- capture ------------------------------------------------------------------------------


def ensure_capture(packets: int, seed: int = 7) -> tuple[Path, str]:
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"capture_raw_{packets}_s{seed}.bin"
    if path.exists() and path.stat().st_size > 0:
        return path, "reused"
    started = time.perf_counter()
    from tests.support.synthetic import generate_capture

    tmp = path.with_suffix(".part")
    generate_capture(tmp, packets=packets, framing="raw", seed=seed)
    os.replace(tmp, path)
    return path, f"generated with tests.support.synthetic in {time.perf_counter() - started:.1f} s"


def sample_messages(path: Path, packets: int) -> list[bytes]:
    """Whole messages from the start of the capture holding about ``packets`` packets."""
    from app.core.framing import Framer

    framer = Framer("raw")
    out, got = [], 0
    with open(path, "rb") as fh:
        buf = bytearray(fh.read(64 << 20))
    split = framer.split(buf, 0, False)
    # message boundaries from the packets: the count sits 2 bytes before the first length prefix
    msg = split.pkt_msg
    first = [i for i in range(len(msg)) if i == 0 or msg[i] != msg[i - 1]]
    first.append(len(msg))
    for a, b in pairwise(first):
        start = int(split.pkt_pos[a]) - 4
        end = int(split.pkt_pos[b - 1] + split.pkt_len[b - 1])
        out.append(bytes(buf[start:end]))
        got += b - a
        if got >= packets:
            break
    return out


# --- measurements ---------------------------------------------------------------------------


def client_rate(messages: list[bytes]) -> tuple[float, int]:
    from kiteconnect import KiteTicker

    ticker = KiteTicker.__new__(KiteTicker)
    parse = ticker._parse_binary
    started = time.perf_counter()
    count = 0
    for message in messages:
        count += len(parse(message))
    return count / (time.perf_counter() - started), count


def client_rate_of_kind(length: int, packets: int = 50_000) -> float:
    body = encode.encode_packet(length, {"instrument_token": 408065, "last_price": 150000,
                                         "exchange_timestamp": 1_700_000_000, "last_trade_time": 1_700_000_000})
    message = encode.encode_message([body] * 25)
    rate, _ = client_rate([message] * (packets // 25))
    return rate


def tickscope_in_process(path: Path, file_id: str, repeat: int) -> dict:
    from app.core.decode import CaptureReader

    best = None
    for _ in range(repeat):
        reader = CaptureReader(path, "raw", file_id=file_id)
        started = time.perf_counter()
        rows = 0
        for batch in reader.batches():
            rows += batch.ticks.num_rows
        seconds = time.perf_counter() - started
        result = {"seconds": seconds, "rows": rows, "timings": dict(reader.timings), "summary": reader.summary}
        if best is None or seconds < best["seconds"]:
            best = result
    return best


def tickscope_split(path: Path, file_id: str, compression: str) -> dict:
    """Decode and Parquet encoding one after the other on one thread, each stage timed
    (wall and CPU): what each costs alone, with the writer options of ``tickscope decode``."""
    import pyarrow.parquet as pq

    from app.commands.decode import ZSTD_LEVEL
    from app.core import schema
    from app.core.decode import CaptureReader
    from app.core.tick_parquet import write_options

    out = BENCH_DIR / f"split_{compression}.parquet"
    reader = CaptureReader(path, "raw", file_id=file_id)
    spent = {"decode": 0.0, "encode": 0.0, "decode_cpu": 0.0, "encode_cpu": 0.0}
    rows = 0
    with pq.ParquetWriter(out, schema.TICK_SCHEMA, compression=None if compression == "none" else compression,
                          compression_level=ZSTD_LEVEL if compression == "zstd" else None,
                          **write_options(schema.TICK_SCHEMA)) as writer:
        batches = reader.batches()
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            batch = next(batches, None)
            table = None if batch is None else schema.unenriched(batch.ticks)
            t1, c1 = time.perf_counter(), time.thread_time()
            spent["decode"] += t1 - t0
            spent["decode_cpu"] += c1 - c0
            if table is None:
                break
            writer.write_table(table)
            rows += table.num_rows
            spent["encode"] += time.perf_counter() - t1
            spent["encode_cpu"] += time.thread_time() - c1
    spent["rows"] = rows
    spent["out_mb"] = out.stat().st_size / 1e6
    out.unlink()
    return spent


def tickscope_subprocess(path: Path, out: Path, compression: str, repeat: int) -> dict:
    """``tickscope decode`` run ``repeat`` times: every run, and the median run by wall time."""
    runs = []
    for _ in range(repeat):
        cmd = [sys.executable, "-m", "app", "decode", str(path), "--out", str(out), "--json",
               "--compression", compression]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout = proc.stdout.read()
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"tickscope decode failed ({proc.returncode}): {stderr.decode()[-500:]}")
        doc = json.loads(stdout.decode().strip().splitlines()[-1])
        runs.append({"seconds": seconds, "doc": doc, "peak_rss_mb": usage.ru_maxrss / 1024,
                     "out_mb": out.stat().st_size / 1e6,
                     "cpu_pct": 100 * (usage.ru_utime + usage.ru_stime) / seconds})
    runs.sort(key=lambda r: r["seconds"])
    median = dict(runs[(len(runs) - 1) // 2])
    median["runs"] = runs
    return median


# --- report -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=int(os.environ.get("BENCH_PACKETS", DEFAULT_PACKETS)))
    parser.add_argument("--quick", action="store_true", help="200,000 packets (a few seconds)")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 2)))
    parser.add_argument("--decode-runs", type=int, default=int(os.environ.get("BENCH_DECODE_RUNS", 3)),
                        help="whole-process `tickscope decode` runs per compression (the median is reported)")
    parser.add_argument("--compressions", default=os.environ.get("BENCH_COMPRESSIONS", "zstd,lz4"),
                        help="comma-separated Parquet compressions to time (lz4,zstd,snappy,none)")
    parser.add_argument("--decode-only", action="store_true",
                        help="only the decode section (official client, in-process, split, whole process)")
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the scale section (scripts/bench_scale.py: memory and time as captures, "
                             "days and stored masters grow; run it alone with python scripts/bench_scale.py)")
    parser.add_argument("--dask", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the Dask engine on 4 files against the local engine (scripts/bench_dask.py)")
    args = parser.parse_args(argv)
    packets = 200_000 if args.quick else args.packets

    from app.core.decode import file_sha256

    path, how = ensure_capture(packets)
    size = path.stat().st_size
    print(f"capture: {path.relative_to(REPO)} ({size / 1e6:,.0f} MB, {packets:,} packets; {how})")
    load = os.getloadavg()
    print(f"machine load (1/5/15 min) at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
          f"{os.cpu_count()} cores")

    t0 = time.perf_counter()
    file_id = file_sha256(path)
    hash_seconds = time.perf_counter() - t0

    messages = sample_messages(path, CLIENT_SAMPLE_PACKETS)
    # Its speed varies most of all (37k-73k packets/s seen on one machine): a median.
    client_runs = [client_rate(messages) for _ in range(CLIENT_RUNS)]
    client_packets = client_runs[0][1]
    client = statistics.median(rate for rate, _ in client_runs)
    client_full = client_rate_of_kind(184)
    client_ltp = client_rate_of_kind(8)

    ours = tickscope_in_process(path, file_id, args.repeat)
    summary = ours["summary"]
    assert summary.bytes_accounted == summary.bytes, "bytes not accounted"
    ours_rate = ours["rows"] / ours["seconds"]

    runs = {}
    splits = {}
    for compression in [c.strip() for c in args.compressions.split(",") if c.strip()]:
        out = BENCH_DIR / f"ticks_{compression}.parquet"
        runs[compression] = tickscope_subprocess(path, out, compression, args.decode_runs)
        out.unlink(missing_ok=True)
        splits[compression] = tickscope_split(path, file_id, compression)

    mix = ", ".join(f"{n} B {c / summary.packets:.0%}" for n, c in sorted(summary.packets_by_length.items()))
    print(f"packet mix: {mix}; {summary.messages:,} messages, {summary.heartbeats:,} heartbeats")
    print()
    print("| measurement | packets/s | vs official client |")
    print("|---|---:|---:|")
    print(f"| official client `_parse_binary`, this mix ({client_packets:,}-packet sample, median of "
          f"{', '.join(f'{rate:,.0f}' for rate, _ in client_runs)}) | {client:,.0f} | 1.0x |")
    print(f"| official client, 184-byte full only | {client_full:,.0f} | |")
    print(f"| official client, 8-byte LTP only | {client_ltp:,.0f} | |")
    print(f"| Tickscope in-process decode (capture -> Arrow, {ours['rows']:,} packets) | {ours_rate:,.0f} "
          f"| **{ours_rate / client:.1f}x** |")
    for compression, run in runs.items():
        rate = run["doc"]["packets"] / run["seconds"]
        print(f"| `tickscope decode` whole process -> Parquet ({compression}, {run['out_mb']:,.0f} MB), median of "
              f"{len(run['runs'])} at {run['cpu_pct']:.0f}% CPU | {rate:,.0f} | **{rate / client:.1f}x** |")
    print()
    t = ours["timings"]
    decode_total = t["split"] + t["fields"] + t["arrow"]
    print(f"in-process time ({ours['seconds']:.2f} s wall, best of {args.repeat}):")
    for label, key in (("framing + splitting", "split"), ("field decode (numpy)", "fields"),
                       ("Arrow building", "arrow")):
        print(f"  {label:24s} {t[key]:6.2f} s  {t[key] / decode_total:4.0%}  "
              f"({t[key] / ours['rows'] * 1e9:,.0f} ns/packet)")
    print(f"  {'file sha256 (file_id)':24s} {hash_seconds:6.2f} s  (not in the in-process figure)")
    print()
    print("`tickscope decode` split (the same decode and encoding, one stage after the other on one thread,")
    print("then the whole process, where they overlap on two threads; CPU % of one core, 200% = both busy):")
    print()
    print("| Parquet | decode only | encode only | sum | whole process (median) | whole-process packets/s "
          "| vs official client | CPU | CPU s | file |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for compression, run in runs.items():
        sp = splits[compression]
        rate = run["doc"]["packets"] / run["seconds"]
        walls = ", ".join(f"{r['seconds']:.2f}" for r in run["runs"])
        cpus = ", ".join(f"{r['cpu_pct']:.0f}%" for r in run["runs"])
        print(f"| {compression} | {sp['decode']:.2f} s ({sp['decode_cpu']:.2f} CPU) | {sp['encode']:.2f} s "
              f"({sp['encode_cpu']:.2f} CPU) | {sp['decode'] + sp['encode']:.2f} s | {run['seconds']:.2f} s "
              f"(runs {walls}) | {rate:,.0f} | **{rate / client:.1f}x** | {run['cpu_pct']:.0f}% ({cpus}) "
              f"| {run['cpu_pct'] * run['seconds'] / 100:.2f} | {run['out_mb']:,.0f} MB |")
    print()
    for compression, run in runs.items():
        rt = run["doc"]["timings"]
        print(f"subprocess ({compression}): {run['seconds']:.2f} s wall; hash {rt['hash']:.2f} s, "
              f"split {rt['split']:.2f} s, fields {rt['fields']:.2f} s, arrow {rt['arrow']:.2f} s, "
              f"widen {rt['enrich']:.2f} s, Parquet encode+write {rt['parquet']:.2f} s (writer thread, "
              f"overlaps decoding; the hash runs beside the first chunks); "
              f"CPU {run['cpu_pct']:.0f}% (of 100% per core); "
              f"peak RSS {run['peak_rss_mb']:,.0f} MB for a {size / 1e6:,.0f} MB capture")
    print()
    print("`tickscope decode`'s critical path, per whole-process run (the writer thread cannot encode a row")
    print("group before the capture's sha256 is known, then encodes one row group after another; the decoder")
    print("runs beside it and ends earlier). start-up + exit = the process's wall minus its own `seconds`:")
    print()
    print("The last column is the most that run's CPU seconds allow on 2 cores: packets / (CPU s / 2), the rate if")
    print(f"both cores were busy from start to exit; 850k packets/s needs a run of at most {2 * packets / 850_000:.2f} "
          "CPU s.")
    print()
    print("| Parquet | run | wall | start-up + exit | writer waits for sha256 | writer encodes "
          "| decoder (split+fields+arrow+widen) | CPU s | CPU | packets/s at 200% CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for compression, run in runs.items():
        for i, r in enumerate(run["runs"], 1):
            rt = r["doc"]["timings"]
            decoder = rt["split"] + rt["fields"] + rt["arrow"] + rt["enrich"]
            cpu_seconds = r["cpu_pct"] * r["seconds"] / 100
            print(f"| {compression} | {i} | {r['seconds']:.2f} s | {r['seconds'] - r['doc']['seconds']:.2f} s "
                  f"| {rt.get('parquet_wait', float('nan')):.2f} s | {rt['parquet']:.2f} s | {decoder:.2f} s "
                  f"| {cpu_seconds:.2f} | {r['cpu_pct']:.0f}% | {r['doc']['packets'] / (cpu_seconds / 2):,.0f} |")
    print()
    print("targets: decode >= 20x the official client; whole process >= 10x and >= 850k packets/s (1.6x the issue's "
          "520-541k) with both cores busy; peak RSS < 500 MB on >= 400 MB")
    load = os.getloadavg()
    print(f"machine load (1/5/15 min) after the decode runs: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    if args.decode_only:
        return 0
    print()
    from bench_hostile import bench_hostile

    bench_hostile(path)
    print()
    from bench_har import bench_har

    bench_har(path, min(packets, 1_000_000), repeat=args.repeat)
    print()
    from bench_enrich import bench_enrich
    from bench_ingest import bench_ingest

    bench_enrich(path, seed=7)  # ensure_capture's seed
    print()
    bench_ingest(path, client)
    print("target: end to end >= 5x the official client's parse-only rate; 2 files <= ~2.1x the time of 1")
    if args.dask:
        from bench_dask import bench_dask, ensure_captures

        print()
        bench_dask(ensure_captures(4, min(packets, 500_000)), client)
    if args.scale:
        from bench_scale import bench_scale

        print()
        if args.quick:
            bench_scale((20, 40, 80), 4, 4, 20)
        else:
            bench_scale()
    return 0


if __name__ == "__main__":
    sys.exit(main())

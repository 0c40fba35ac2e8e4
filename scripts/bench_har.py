"""`make bench`, HAR section: decoding a browser HAR export (base64 + JSON parsing) next to
``raw`` framing of the very same messages, in packets/s, and the peak RSS of
``tickscope decode`` on the HAR (a HAR is one JSON document, read whole).

Target: HAR at least half the ``raw`` rate. Run alone: ``python scripts/bench_har.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

HAR_PACKETS = int(os.environ.get("BENCH_HAR_PACKETS", 1_000_000))
T0_NS = 1_654_760_849_357_339_000


def _best_decode(path: Path, framing: str, repeat: int) -> tuple[float, int]:
    from app.core.decode import CaptureReader

    best, rows = None, 0
    for _ in range(repeat):
        reader = CaptureReader(path, framing, file_id="0" * 64)
        started = time.perf_counter()
        rows = sum(batch.ticks.num_rows for batch in reader.batches())
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return best, rows


def _peak_rss_decode(path: Path, out: Path) -> tuple[float, float, dict]:
    cmd = [sys.executable, "-m", "app", "decode", str(path), "--out", str(out), "--json"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"tickscope decode failed: {stderr.decode()[-500:]}")
    return seconds, usage.ru_maxrss / 1024, json.loads(stdout.decode().strip().splitlines()[-1])


def bench_har(capture: Path, packets: int = HAR_PACKETS, repeat: int = 2) -> None:
    from bench import sample_messages

    from tests.support import encode

    messages = sample_messages(capture, packets)
    times = [T0_NS + i * 1_000_000 for i in range(len(messages))]
    work = capture.parent
    raw = work / "har_bench_raw.bin"
    har = work / "har_bench.har"
    raw.write_bytes(b"".join(messages))
    frames = [encode.HarFrame("receive", t, m) for t, m in zip(times, messages, strict=True)]
    har.write_bytes(encode.har([encode.HarConnection("wss://ws.kite.trade/", frames)], "chrome", indent=2))
    try:
        raw_s, raw_rows = _best_decode(raw, "raw", repeat)
        har_s, har_rows = _best_decode(har, "har", repeat)
        assert raw_rows == har_rows, (raw_rows, har_rows)
        out = work / "har_bench.parquet"
        whole_s, rss, doc = _peak_rss_decode(har, out)
        out.unlink(missing_ok=True)
    finally:
        raw.unlink(missing_ok=True)
        har.unlink(missing_ok=True)
    raw_rate, har_rate = raw_rows / raw_s, har_rows / har_s
    print(f"HAR vs raw, the same {len(messages):,} messages / {raw_rows:,} packets "
          f"(raw {sum(map(len, messages)) / 1e6:,.0f} MB, "
          f"Chrome HAR {doc['bytes'] / 1e6:,.0f} MB), in-process decode, best of {repeat}:")
    print("| framing | packets/s | vs raw |")
    print("|---|---:|---:|")
    print(f"| raw | {raw_rate:,.0f} | 1.00x |")
    print(f"| har (JSON + base64) | {har_rate:,.0f} | **{har_rate / raw_rate:.2f}x** |")
    print(f"`tickscope decode` of the HAR -> Parquet: {whole_s:.2f} s, peak RSS {rss:,.0f} MB "
          f"for a {doc['bytes'] / 1e6:,.0f} MB HAR (read whole: one JSON document)")
    print("target: HAR >= 0.5x the raw rate in packets/s")


if __name__ == "__main__":
    from bench import ensure_capture

    path, _ = ensure_capture(int(os.environ.get("BENCH_PACKETS", 2_700_000)))
    bench_har(path)

"""`make bench` section: decode rate of the worst crafted inputs next to a clean capture
of the same size (issue 14's target: within 3x). Rates are bytes/s of in-process
decoding (capture -> Arrow), best of ``repeat``; the decoder's work counter is printed
per byte so the linear-time guarantee is visible next to the time."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rate(data: bytes, framing: str, repeat: int) -> tuple[float, int, int]:
    from app.core.decode import decode_bytes

    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        _, _, summary = decode_bytes(data, framing)
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return len(data) / best, summary.work, summary.packets


def bench_hostile(clean_path: Path, size: int = 4 << 20, repeat: int = 2) -> None:
    from tests.core.test_resync import CRAFTED

    with open(clean_path, "rb") as fh:
        clean = fh.read(size)
    size = len(clean)
    clean_rate, clean_work, clean_packets = _rate(clean, "raw", repeat)
    print(f"hostile input ({size / 1e6:.1f} MB each, in-process decode, best of {repeat}):")
    print("| input | framing | MB/s | clean / this | work per byte | packets |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| clean capture (head of the bench capture) | raw | {clean_rate / 1e6:,.1f} | 1.0x "
          f"| {clean_work / size:.2f} | {clean_packets:,} |")
    worst = None
    for shape in CRAFTED:
        data = shape(size)
        for framing in ("raw", "u32len", "ts-u32len"):
            rate, work, packets = _rate(data, framing, repeat)
            ratio = clean_rate / rate
            if worst is None or ratio > worst[0]:
                worst = (ratio, shape.__name__, framing, rate)
            print(f"| {shape.__name__} | {framing} | {rate / 1e6:,.1f} | {ratio:.1f}x | {work / size:.2f} | {packets:,} |")
    ratio, name, framing, rate = worst
    print(f"worst crafted input: {name} ({framing}) at {rate / 1e6:,.1f} MB/s, {ratio:.1f}x slower than the clean "
          f"capture's {clean_rate / 1e6:,.1f} MB/s (target: within 3x)")


if __name__ == "__main__":
    from bench import ensure_capture

    bench_hostile(ensure_capture(200_000)[0])

"""`make bench` section: decode rate of the worst crafted inputs next to a clean capture
of the same size (issue 14's target: within 3x). Rates are bytes per CPU-second of
in-process decoding (capture -> Arrow), best of ``repeat`` after one untimed decode of
each input; each crafted input is timed alternately with the clean capture (paired), so
a shared, loaded machine skews both alike. The decoder's work counter is printed per
byte so the linear-time guarantee is visible next to the time."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _cpu_seconds(data: bytes, framing: str):
    from app.core.decode import decode_bytes

    started = time.process_time()
    _, _, summary = decode_bytes(data, framing)
    return time.process_time() - started, summary


def _paired(clean: bytes, data: bytes, framing: str, repeat: int):
    """(best clean CPU s, best CPU s of ``data``, its summary), timed alternately, after
    one untimed decode of each: a process's first decode of an input faults in fresh
    memory for its arrays (numpy asks the kernel for transparent huge pages, each zeroed
    when first touched), which on this shared machine has cost 0.2-0.9 s of system time
    on its own, varying with the machine's memory state, not with the decoder's work."""
    _cpu_seconds(clean, "raw")
    _cpu_seconds(data, framing)
    best_clean = best = None
    summary = None
    for _ in range(repeat):
        c, _ = _cpu_seconds(clean, "raw")
        s, summary = _cpu_seconds(data, framing)
        best_clean = c if best_clean is None else min(best_clean, c)
        best = s if best is None else min(best, s)
    return best_clean, best, summary


def bench_hostile(clean_path: Path, size: int = 4 << 20, repeat: int = 2, framings=("raw", "u32len", "ts-u32len")):
    from tests.core.test_resync import CRAFTED

    with open(clean_path, "rb") as fh:
        clean = fh.read(size)
    size = len(clean)
    print(f"hostile input ({size / 1e6:.1f} MB each, in-process decode, MB per CPU-second, best of {repeat}, "
          f"each paired with the clean capture):")
    print("| input | framing | MB/s | clean MB/s (paired) | slower than clean | work per byte | packets |")
    print("|---|---|---:|---:|---:|---:|---:|")
    worst = None
    for shape in CRAFTED:
        data = shape(size)
        for framing in framings:
            clean_s, s, summary = _paired(clean, data, framing, repeat)
            ratio = s / clean_s
            rate, clean_rate = size / s, size / clean_s
            if shape.__name__ != "clean_tiny_messages" and (worst is None or ratio > worst[0]):
                worst = (ratio, shape.__name__, framing, rate, clean_rate)
            print(f"| {shape.__name__} | {framing} | {rate / 1e6:,.1f} | {clean_rate / 1e6:,.1f} | {ratio:.1f}x "
                  f"| {summary.work / size:.2f} | {summary.packets:,} |")
    ratio, name, framing, rate, clean_rate = worst
    print(f"worst crafted input: {name} ({framing}) at {rate / 1e6:,.1f} MB/s, {ratio:.1f}x slower than the clean "
          f"capture's {clean_rate / 1e6:,.1f} MB/s in the same pair (target: within 3x)")


if __name__ == "__main__":
    import argparse

    from bench import ensure_capture

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4 << 20)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--framings", default="raw,u32len,ts-u32len")
    args = parser.parse_args()
    bench_hostile(ensure_capture(200_000)[0], args.size, args.repeat, tuple(args.framings.split(",")))

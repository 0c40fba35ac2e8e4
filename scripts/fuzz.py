"""`make fuzz`: a repeatable fuzz campaign over the decoder (not part of `make test`).

Builds N captures from a seed (random messages of every known packet length, in every
framing, heartbeats included), mutates each (bit flips, overwrites, insertions and
deletions of up to 64 bytes, junk after messages, JSON text frames, truncation,
zero runs), decodes it in-process and reports:

- crashes: any exception out of the decoder;
- hangs: a capture that takes more than ``--timeout`` seconds;
- accounting errors: bytes not accounted exactly once, overlapping or out-of-file bad
  regions, rows not matching the packet count, or decoder work above
  ``WORK_PER_BYTE`` x size (the linear-time guarantee).

Exit code 0 when nothing was found, 1 otherwise. Same seed, same captures.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core import protocol  # noqa: E402
from app.core.decode import decode_bytes  # noqa: E402
from tests.support import encode  # noqa: E402

WORK_PER_BYTE = 4
FRAMINGS = ("raw", "u32len", "ts-u32len", "base64", "single")


def capture(rng: np.random.Generator) -> tuple[str, bytes]:
    framing = FRAMINGS[int(rng.integers(len(FRAMINGS)))]
    count = 1 if framing == "single" else int(rng.integers(1, 200))
    messages = []
    for _ in range(count):
        if framing != "single" and rng.random() < 0.1:
            messages.append(protocol.HEARTBEAT)
        packets = []
        for length in rng.choice(protocol.KNOWN_LENGTHS, size=int(rng.integers(1, 8))):
            body = bytearray(rng.integers(0, 256, int(length), dtype=np.uint8).tobytes())
            body[3] = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 9]))  # a Kite segment
            packets.append(bytes(body))
        messages.append(encode.encode_message(packets))
    recv = [1_700_000_000 * 10**9 + i for i in range(len(messages))]
    return framing, encode.frame(messages, framing, recv_ns=recv)


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 12))):
        if not out:
            break
        kind = int(rng.integers(8))
        at = int(rng.integers(0, len(out)))
        n = int(rng.integers(1, 65))
        if kind == 0:
            out[at] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            out[at : at + n] = rng.integers(0, 256, min(n, len(out) - at), dtype=np.uint8).tobytes()
        elif kind == 2:
            out[at:at] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        elif kind == 3:
            del out[at : at + n]
        elif kind == 4:
            out[at:at] = b'{"type":"order","data":{"status":"COMPLETE"}}'
        elif kind == 5:
            del out[at:]
        elif kind == 6:
            out[at:at] = bytes(n)
        else:  # a junk byte every few hundred bytes (a recorder writing newlines)
            step = int(rng.integers(50, 400))
            for p in range(len(out) - 1, at, -step):
                out[p:p] = b"\n"
    return bytes(out)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def check(data: bytes, framing) -> str | None:
    table, bad, s = decode_bytes(data, framing)
    if not (s.bytes == len(data) == s.bytes_accounted == sum(s.accounted.values())):
        return f"bytes {len(data)} accounted {s.bytes_accounted} {s.accounted}"
    if any(v < 0 for v in s.accounted.values()):
        return f"negative accounting {s.accounted}"
    if sum(b.length for b in bad) != s.accounted["bad"]:
        return "bad regions do not add up to the bad bytes"
    regions = sorted((b.offset, b.offset + b.length) for b in bad)
    if any(not (0 <= a < e <= len(data)) for a, e in regions) and s.framing != "base64":
        return "a bad region outside the file or empty"
    if any(e1 > a2 for (_, e1), (a2, _) in pairwise(regions)):
        return "overlapping bad regions"
    if table.num_rows != s.packets:
        return f"rows {table.num_rows} != packets {s.packets}"
    if s.work > WORK_PER_BYTE * len(data) + 64:
        return f"work {s.work} > {WORK_PER_BYTE} x {len(data)} bytes"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--captures", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a capture counts as a hang")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    crashes, hangs, errors = [], [], []
    total_bytes = 0
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    for i in range(args.captures):
        framing, clean = capture(rng)
        data = mutate(rng, clean)
        total_bytes += len(data)
        for forced in (None, framing):
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            try:
                problem = check(data, forced)
            except _Hang:
                hangs.append((i, forced))
                continue
            except Exception:  # noqa: BLE001 - a crash is what we are looking for
                crashes.append((i, forced, traceback.format_exc(limit=3)))
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if problem:
                errors.append((i, forced, problem))
        if (i + 1) % 250 == 0:
            print(f"  {i + 1}/{args.captures} captures", flush=True)
    took = time.perf_counter() - started
    print(f"fuzz: {args.captures} mutated captures from seed {args.seed} ({total_bytes / 1e6:.1f} MB, "
          f"each decoded detected and forced) in {took:.0f} s")
    print(f"  crashes: {len(crashes)}   hangs (> {args.timeout:g} s): {len(hangs)}   accounting errors: {len(errors)}")
    for i, forced, tb in crashes[:10]:
        print(f"  crash: capture {i} framing={forced}\n{tb}")
    for i, forced in hangs[:10]:
        print(f"  hang: capture {i} framing={forced}")
    for i, forced, problem in errors[:10]:
        print(f"  accounting: capture {i} framing={forced}: {problem}")
    return 1 if crashes or hangs or errors else 0


if __name__ == "__main__":
    sys.exit(main())

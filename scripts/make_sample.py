"""Write the bundled sample: a raw capture, two instruments dumps and their README.

    python scripts/make_sample.py [--out resources/samples]

Deterministic: running it twice gives byte-identical files (tests.support.synthetic, seed 20251013).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from app.core import protocol  # noqa: E402
from tests.support import synthetic  # noqa: E402

SEED = 20251013
PACKETS = 30_000
SESSION_DATE = dt.date(2025, 10, 13)
EARLIER_DATE = dt.date(2025, 10, 10)
CAPTURE_NAME = "binary_data_20251013_091500.dat"

_DIAGNOSES = {
    synthetic.UNKNOWN_MISSING: (
        "Not named by either dump (nor by any dump of an earlier day). Diagnosis: token not in the "
        "instruments master; load the dump that lists it, or the subscription used a stale token list."
    ),
    synthetic.UNKNOWN_BAD_SEGMENT: (
        "Segment byte 153 is no Kite segment (409 = 256 × 1 + 153). Diagnosis: invalid segment, "
        "almost always mis-framed bytes; prices shown divided by 100 for display only."
    ),
    synthetic.UNKNOWN_BYTESWAPPED: (
        "Its byte-swapped value 408065 is NSE INFY in the dump (segment byte 0 is no segment). "
        "Diagnosis: the token was read little-endian somewhere upstream (endianness bug)."
    ),
    synthetic.UNKNOWN_RECYCLED: (
        "Not in the 2025-10-13 dump; the 2025-10-10 dump names it as {old}, which expired on "
        "{expiry}. Diagnosis: recycled F&O token; name it only with the dump of the tick's own "
        "trading day (never with the earlier day's, which would name the wrong contract)."
    ),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_sample(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    instruments = synthetic.make_instruments(SEED, date=SESSION_DATE)
    capture = out / CAPTURE_NAME
    today_csv = out / f"instruments_{SESSION_DATE:%Y%m%d}.csv"
    earlier_csv = out / f"instruments_{EARLIER_DATE:%Y%m%d}.csv"
    info = synthetic.generate_capture(
        capture, packets=PACKETS, framing="raw", seed=SEED,
        start=dt.datetime(2025, 10, 13, 9, 15, tzinfo=synthetic.IST),
        faults=True, heartbeats=True, instruments=instruments,
    )
    today_rows = synthetic.write_instruments_csv(today_csv, instruments, SESSION_DATE)
    earlier_rows = synthetic.write_instruments_csv(earlier_csv, instruments, EARLIER_DATE)
    readme = out / "README.md"
    readme.write_text(_readme(info, instruments, today_rows, earlier_rows, capture, today_csv, earlier_csv))
    return {"capture": capture, "instruments": today_csv, "earlier_instruments": earlier_csv, "readme": readme}


def _readme(info, instruments, today_rows, earlier_rows, capture, today_csv, earlier_csv) -> str:
    ticking = [i for i in instruments if i.ticking]
    listed_today = {i.instrument_token for i in instruments if i.listed_on(SESSION_DATE)}
    by_segment: dict[str, int] = {}
    for token, ticks in info.ticks_by_token.items():
        name = protocol.SEGMENTS.get(token & 0xFF)
        key = name.name if name else f"invalid ({token & 0xFF})"
        by_segment[key] = by_segment.get(key, 0) + ticks
    ist = synthetic.IST
    lines = [
        "# Bundled sample",
        "",
        "Synthetic, deterministic data written by `scripts/make_sample.py` (seed "
        f"{SEED}, `tests.support.synthetic`); regenerate with `python scripts/make_sample.py`, which "
        "gives byte-identical files. Nothing here is real market data.",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    for path in (capture, today_csv, earlier_csv):
        lines.append(f"| `{path.name}` | {path.stat().st_size:,} | `{_sha256(path)[:16]}…` |")
    lines += [
        "",
        f"## `{capture.name}`",
        "",
        "Raw framing (binary WebSocket messages back to back) with 1-byte heartbeats between "
        "messages, as a recorder writes them. Session 2025-10-13 from 09:15 IST (the file name's "
        "time); exchange times "
        f"{info.first_exchange_time.astimezone(ist):%H:%M:%S}–{info.last_exchange_time.astimezone(ist):%H:%M:%S} IST.",
        "",
        f"- {info.messages:,} well-formed messages of 1–50 packets, {info.heartbeats:,} heartbeats",
        f"- {info.packets:,} good packets: "
        + ", ".join(f"{n:,} × {length} B" for length, n in info.packets_by_length.items()),
        f"- {len(info.tokens)} distinct tokens ({len(ticking)} ticking instruments); ticks by segment: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(by_segment.items())),
        f"- {info.salvageable_packets} more well-formed packets sit inside the count-mismatch message "
        "(not counted above: keeping them is the decoder's policy)",
        "",
        "Injected faults (offset = file offset where the bad bytes start):",
        "",
        "| kind | offset | bytes | what it is |",
        "|---|---|---|---|",
    ]
    what = {
        "unknown_length": "a packet with length prefix 77 inside an otherwise good message (offset = its body)",
        "garbage": "lost-sync bytes between messages (first byte 0xFF)",
        "text_frame": 'a JSON text frame `{"type":"order","data":{...}}` written into the binary stream',
        "count_mismatch": "a message whose header promises 2 more packets than it holds",
        "truncated_tail": "the last message, cut inside its last packet (the file ends there)",
    }
    for fault in info.faults:
        lines.append(f"| {fault.kind} | {fault.offset:,} | {fault.length} | {what[fault.kind]} |")
    lines += [
        "",
        "## Deliberately unknown tokens",
        "",
        "Ticks of these tokens cannot be named by the dumps; each shows one diagnosis of the "
        "unknown-token report.",
        "",
        "| token | segment byte | packet | ticks | diagnosis |",
        "|---|---|---|---|---|",
    ]
    earlier = {i.instrument_token: i for i in instruments if not i.ticking and i.listed_on(EARLIER_DATE)}
    for inst in (i for i in instruments if i.unknown):
        text = _DIAGNOSES[inst.unknown]
        if inst.unknown == synthetic.UNKNOWN_RECYCLED:
            old = earlier[inst.instrument_token]
            text = text.format(old=f"`{old.tradingsymbol}` ({old.segment})", expiry=old.expiry)
        assert inst.instrument_token not in listed_today
        lines.append(
            f"| {inst.instrument_token} | {inst.segment_byte} | {inst.packet_length} B | "
            f"{info.ticks_by_token.get(inst.instrument_token, 0):,} | {text} |"
        )
    lines += [
        "",
        "## Instruments dumps",
        "",
        f"- `{today_csv.name}`: the 2025-10-13 dump, {today_rows} rows, the official 12 columns "
        "(`instrument_token, exchange_token, tradingsymbol, name, last_price, expiry, strike, "
        "tick_size, lot_size, instrument_type, segment, exchange`). Segments NSE, BSE, NFO-FUT, "
        "NFO-OPT, BFO-FUT, BFO-OPT, CDS-FUT, CDS-OPT, BCD-FUT, MCX-FUT, NCO-FUT and INDICES "
        "(exchange NSE or BSE). Some rows never tick (further strikes, other indices), as in a real dump.",
        f"- `{earlier_csv.name}`: the 2025-10-10 dump, {earlier_rows} rows: it still names the "
        "USDINR weekly options that expired that day (one of them under the token recycled above) "
        "and not the contract listed on 2025-10-13.",
        "",
        "Price scaling on the wire: CDS ÷ 10,000,000; BCD and NCO ÷ 10,000; everything else ÷ 100.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "samples")
    args = parser.parse_args(argv)
    for name, path in make_sample(args.out).items():
        print(f"{name}: {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

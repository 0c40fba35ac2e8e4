"""Deterministic, realistic Kite captures: the instrument universe, its daily dumps and ticks.

This module owns the synthetic data used by the bundled sample (``scripts/make_sample.py``),
the benchmarks and the tests: ``make_instruments`` builds a universe of instruments across
every segment (with realistic tokens, symbols, tick sizes and price levels),
``write_instruments_csv`` writes the official 12-column daily dump as it stood on a given
day, and ``generate_capture`` writes a capture of binary WebSocket messages whose ticks are
random walks of that universe over an IST trading session.

The same arguments always give byte-identical output (one numpy ``Generator`` seeded by
``seed``). Packets are built vectorised: per chunk of messages, the field values of all
packets are numpy arrays, each packet length fills a big-endian structured array laid out
from ``protocol.LAYOUTS``, and the records are scattered into one byte buffer that is
streamed to the file, so memory stays bounded and millions of packets take seconds.
The few fault records (``faults=True``) are assembled with ``tests.support.encode``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from app.core import protocol
from app.core.market_time import IST
from tests.support import encode

SESSION_DATE = dt.date(2025, 10, 13)
DEFAULT_START = dt.datetime(2025, 10, 13, 9, 15, tzinfo=IST)
SESSION_SECONDS = (15 * 60 + 30 - (9 * 60 + 15)) * 60  # 09:15 to 15:30 IST

MASTER_COLUMNS = (
    "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry",
    "strike", "tick_size", "lot_size", "instrument_type", "segment", "exchange",
)

# Why a ticking instrument is deliberately missing from every dump (the enrichment demo).
UNKNOWN_MISSING = "missing"  # a real-looking F&O token that no dump names
UNKNOWN_BAD_SEGMENT = "bad_segment"  # segment byte that is no Kite segment (mis-framed bytes)
UNKNOWN_BYTESWAPPED = "byteswapped"  # a listed token written little-endian
UNKNOWN_RECYCLED = "recycled"  # named only by an earlier day's dump, as an expired contract


@dataclass(frozen=True)
class SyntheticInstrument:
    instrument_token: int
    tradingsymbol: str
    name: str
    exchange: str  # NSE, NFO, CDS, BSE, BFO, BCD, MCX, NCO
    segment: str  # the dump's segment: NSE, NFO-OPT, CDS-FUT, INDICES, ...
    instrument_type: str  # EQ, FUT, CE, PE
    expiry: dt.date | None
    strike: float
    tick_size: float
    lot_size: int
    price: float  # price level at the open of the session
    packet_length: int  # subscription mode: 8 ltp, 28/32 index, 44 quote, 184 full
    listed: bool = True  # named by the dumps (False: deliberately unknown)
    ticking: bool = True  # appears in captures (False: a dump-only row)
    listed_from: dt.date | None = None  # first day a dump names it
    unknown: str | None = None  # UNKNOWN_* reason for a deliberately unknown token
    note: str = ""

    @property
    def exchange_token(self) -> int:
        return protocol.exchange_token_of(self.instrument_token)

    @property
    def segment_byte(self) -> int:
        return protocol.segment_of(self.instrument_token)

    @property
    def divisor(self) -> float:
        return protocol.divisor_of(self.segment_byte)

    def listed_on(self, day: dt.date) -> bool:
        """Whether the dump published on ``day`` names this instrument."""
        if not self.listed:
            return False
        if self.listed_from is not None and day < self.listed_from:
            return False
        return self.expiry is None or self.expiry >= day


class Fault(NamedTuple):
    """One injected fault: ``offset``/``length`` locate its bytes in the file.

    unknown_length: the body of a packet with an unknown length prefix (after the u16 prefix);
    garbage / text_frame / count_mismatch: the bytes of that message (after any framing prefix);
    truncated_tail: the last record, from its first byte (framing prefix included) to the end.
    """

    kind: str
    offset: int
    length: int


@dataclass
class CaptureInfo:
    path: Path
    framing: str
    seed: int
    start: dt.datetime
    bytes: int = 0
    messages: int = 0  # well-formed binary messages (heartbeats and fault records excluded)
    packets: int = 0  # well-formed packets of known length in well-formed messages
    heartbeats: int = 0
    packets_by_length: dict[int, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    # Well-formed packets inside the count_mismatch message: not in ``packets``, because
    # whether a decoder keeps them is its own policy.
    salvageable_packets: int = 0
    tokens: list[int] = field(default_factory=list)  # distinct tokens of the good packets
    ticks_by_token: dict[int, int] = field(default_factory=dict)
    first_exchange_time: dt.datetime | None = None
    last_exchange_time: dt.datetime | None = None


# --- the instrument universe ----------------------------------------------------

_MONTH_CODES = "123456789OND"  # weekly option symbols: YY + month code + DD


def _token(exchange_token: int, segment: int) -> int:
    return (exchange_token << 8) | segment


def _monthly_symbol(name: str, expiry: dt.date, suffix: str) -> str:
    return f"{name}{expiry:%y}{expiry.strftime('%b').upper()}{suffix}"


def _weekly_symbol(name: str, expiry: dt.date, suffix: str) -> str:
    return f"{name}{expiry:%y}{_MONTH_CODES[expiry.month - 1]}{expiry:%d}{suffix}"


def _strike_text(strike: float) -> str:
    return f"{strike:g}"


def _round_to_tick(price: float, tick: float) -> float:
    return max(tick, round(round(price / tick) * tick, 6))


def _option_price(spot: float, strike: float, kind: str, days: float, tick: float) -> float:
    """A plausible premium: intrinsic value plus a time value that decays with moneyness."""
    intrinsic = max(0.0, spot - strike) if kind == "CE" else max(0.0, strike - spot)
    time_value = spot * 0.0045 * math.sqrt(max(days, 0.5) / 7) * math.exp(-abs(spot - strike) / (spot * 0.012))
    return _round_to_tick(intrinsic + time_value, tick)


# (exchange_token, tradingsymbol, name, price, packet_length)
_NSE_EQUITIES = (
    (2885, "RELIANCE", "RELIANCE INDUSTRIES", 1375.6, 184),
    (1594, "INFY", "INFOSYS", 1521.3, 184),
    (11536, "TCS", "TATA CONSULTANCY SERV LT", 3027.9, 184),
    (1333, "HDFCBANK", "HDFC BANK", 982.45, 184),
    (4963, "ICICIBANK", "ICICI BANK.", 1370.2, 184),
    (3045, "SBIN", "STATE BANK OF INDIA", 868.35, 184),
    (1660, "ITC", "ITC", 402.1, 184),
    (11483, "LT", "LARSEN & TOUBRO.", 3710.0, 184),
    (5900, "AXISBANK", "AXIS BANK", 1165.4, 184),
    (10604, "BHARTIARTL", "BHARTI AIRTEL", 1969.8, 184),
    (1394, "HINDUNILVR", "HINDUSTAN UNILEVER.", 2530.5, 44),
    (1922, "KOTAKBANK", "KOTAK MAHINDRA BANK", 2190.0, 44),
    (10999, "MARUTI", "MARUTI SUZUKI INDIA.", 16200.0, 44),
    (3787, "WIPRO", "WIPRO", 245.2, 44),
    (3351, "SUNPHARMA", "SUN PHARMACEUTICAL IND L", 1650.6, 44),
    (3506, "TITAN", "TITAN COMPANY", 3500.1, 184),
    (25, "ADANIENT", "ADANI ENTERPRISES", 2480.0, 184),
    (317, "BAJFINANCE", "BAJAJ FINANCE", 1010.25, 184),
    (11630, "NTPC", "NTPC", 340.55, 8),
    (14366, "IDEA", "VODAFONE IDEA", 8.52, 8),
)
_BSE_EQUITIES = (
    (500325, "RELIANCE", "RELIANCE INDUSTRIES", 1375.55, 44),
    (500209, "INFY", "INFOSYS", 1521.4, 44),
    (532540, "TCS", "TATA CONSULTANCY SERV LT", 3027.85, 8),
    (500180, "HDFCBANK", "HDFC BANK", 982.5, 44),
    (500112, "SBIN", "STATE BANK OF INDIA", 868.3, 8),
)
# (exchange_token, tradingsymbol, exchange, price, packet_length)
_INDICES = (
    (1001, "NIFTY 50", "NSE", 25227.35, 32),
    (1016, "NIFTY BANK", "NSE", 56625.0, 32),
    (1007, "NIFTY FIN SERVICE", "NSE", 26700.45, 32),
    (1035, "INDIA VIX", "NSE", 11.0, 28),
    (1, "SENSEX", "BSE", 82327.05, 32),
    (1072, "BANKEX", "BSE", 63010.2, 28),
)
_DUMP_ONLY_INDICES = ((1019, "NIFTY IT", "NSE", 35120.0), (1030, "NIFTY MIDCAP 100", "NSE", 57800.0))


def make_instruments(
    seed: int = 0,
    *,
    date: dt.date = SESSION_DATE,
    unknown: bool = True,
) -> list[SyntheticInstrument]:
    """The instrument universe of one session (``date``): ticking and dump-only rows.

    Every segment is present with its own price scaling; F&O exchange tokens are drawn
    from ``seed``. With ``unknown`` the universe also holds four ticking instruments that
    the dumps deliberately do not name (see the ``UNKNOWN_*`` reasons), plus the
    expired contract that an earlier day's dump names under the recycled token.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    used: set[int] = set()
    out: list[SyntheticInstrument] = []

    def fresh_exchange_token(low: int, high: int) -> int:
        while True:
            value = int(rng.integers(low, high))
            if value not in used:
                used.add(value)
                return value

    def add(**kw) -> SyntheticInstrument:
        kw.setdefault("listed_from", date - dt.timedelta(days=45))
        inst = SyntheticInstrument(**kw)
        out.append(inst)
        return inst

    for et, symbol, exchange, price, length in _INDICES:
        add(instrument_token=_token(et, 9), tradingsymbol=symbol, name=symbol, exchange=exchange,
            segment="INDICES", instrument_type="EQ", expiry=None, strike=0.0, tick_size=0.05,
            lot_size=0, price=price, packet_length=length)
    for et, symbol, exchange, price in _DUMP_ONLY_INDICES:
        add(instrument_token=_token(et, 9), tradingsymbol=symbol, name=symbol, exchange=exchange,
            segment="INDICES", instrument_type="EQ", expiry=None, strike=0.0, tick_size=0.05,
            lot_size=0, price=price, packet_length=32, ticking=False)
    for et, symbol, name, price, length in _NSE_EQUITIES:
        used.add(et)
        add(instrument_token=_token(et, 1), tradingsymbol=symbol, name=name, exchange="NSE",
            segment="NSE", instrument_type="EQ", expiry=None, strike=0.0,
            tick_size=0.01 if price < 250 else 0.05, lot_size=1, price=price, packet_length=length)
    for et, symbol, name, price, length in _BSE_EQUITIES:
        add(instrument_token=_token(et, 4), tradingsymbol=symbol, name=name, exchange="BSE",
            segment="BSE", instrument_type="EQ", expiry=None, strike=0.0, tick_size=0.05,
            lot_size=1, price=price, packet_length=length)

    # NSE F&O: NIFTY weeklies expire on Tuesdays, monthlies on the month's last Tuesday.
    nifty, banknifty = 25227.35, 56625.0
    oct_monthly, nov_monthly = dt.date(2025, 10, 28), dt.date(2025, 11, 25)
    weekly = dt.date(2025, 10, 14)
    for name, spot, expiry, lot in (
        ("NIFTY", nifty, oct_monthly, 75), ("NIFTY", nifty, nov_monthly, 75),
        ("BANKNIFTY", banknifty, oct_monthly, 35), ("RELIANCE", 1375.6, oct_monthly, 500),
        ("INFY", 1521.3, oct_monthly, 400), ("SBIN", 868.35, oct_monthly, 750),
    ):
        carry = spot * (1 + 0.0055 * (expiry - date).days / 30)
        add(instrument_token=_token(fresh_exchange_token(35000, 70000), 2),
            tradingsymbol=_monthly_symbol(name, expiry, "FUT"), name=name, exchange="NFO",
            segment="NFO-FUT", instrument_type="FUT", expiry=expiry, strike=0.0, tick_size=0.1 if "NIFTY" in name
            else 0.05,
            lot_size=lot, price=_round_to_tick(carry, 0.05), packet_length=184)

    def options(name, spot, step, strikes, expiry, lot, exchange, segment_byte, symbol, ticking_strikes,
                listed_from=None, ltp_only_beyond=None):
        atm = round(spot / step) * step
        for i in range(-strikes, strikes + 1):
            strike = atm + i * step
            for kind in ("CE", "PE"):
                ticking = abs(i) <= ticking_strikes
                length = 8 if ltp_only_beyond is not None and abs(i) > ltp_only_beyond else 184
                add(instrument_token=_token(fresh_exchange_token(30000, 120000), segment_byte),
                    tradingsymbol=symbol(name, expiry, f"{_strike_text(strike)}{kind}"), name=name,
                    exchange=exchange, segment=f"{exchange}-OPT", instrument_type=kind, expiry=expiry,
                    strike=float(strike), tick_size=0.05, lot_size=lot,
                    price=_option_price(spot, strike, kind, (expiry - date).days, 0.05),
                    packet_length=length, ticking=ticking,
                    listed_from=listed_from or date - dt.timedelta(days=30))

    options("NIFTY", nifty, 50, 12, weekly, 75, "NFO", 2, _weekly_symbol, 7, ltp_only_beyond=5)
    options("NIFTY", nifty, 100, 4, oct_monthly, 75, "NFO", 2, _monthly_symbol, 2)
    options("BANKNIFTY", banknifty, 100, 6, oct_monthly, 35, "NFO", 2, _monthly_symbol, 4)
    # BSE F&O: SENSEX weeklies expire on Thursdays.
    options("SENSEX", 82327.05, 100, 5, dt.date(2025, 10, 16), 20, "BFO", 5, _weekly_symbol, 3)
    add(instrument_token=_token(fresh_exchange_token(800000, 900000), 5),
        tradingsymbol=_monthly_symbol("SENSEX", dt.date(2025, 10, 30), "FUT"), name="SENSEX",
        exchange="BFO", segment="BFO-FUT", instrument_type="FUT", expiry=dt.date(2025, 10, 30),
        strike=0.0, tick_size=0.05, lot_size=20, price=82610.0, packet_length=184)

    # Currency: prices are scaled by 1e7 on NSE (CDS) and 1e4 on BSE (BCD).
    for name, price, expiry in (
        ("USDINR", 88.7125, dt.date(2025, 10, 29)), ("USDINR", 88.8450, dt.date(2025, 11, 26)),
        ("EURINR", 103.1175, dt.date(2025, 10, 29)), ("GBPINR", 118.4025, dt.date(2025, 10, 29)),
        ("JPYINR", 58.6350, dt.date(2025, 10, 29)),
    ):
        add(instrument_token=_token(fresh_exchange_token(1000, 30000), 3),
            tradingsymbol=_monthly_symbol(name, expiry, "FUT"), name=name, exchange="CDS",
            segment="CDS-FUT", instrument_type="FUT", expiry=expiry, strike=0.0, tick_size=0.0025,
            lot_size=1, price=price, packet_length=184)
    # USDINR weekly options expire on Fridays.
    cds_weekly = dt.date(2025, 10, 17)
    for strike in (88.5, 88.75, 89.0):
        for kind in ("CE", "PE"):
            add(instrument_token=_token(fresh_exchange_token(1000, 30000), 3),
                tradingsymbol=_weekly_symbol("USDINR", cds_weekly, f"{_strike_text(strike)}{kind}"),
                name="USDINR", exchange="CDS", segment="CDS-OPT", instrument_type=kind,
                expiry=cds_weekly, strike=strike, tick_size=0.0025, lot_size=1,
                price=_option_price(88.7125, strike, kind, 4, 0.0025), packet_length=184,
                listed_from=dt.date(2025, 10, 3))
    # Listed after the earlier day's dump: only today's dump names it.
    next_weekly = dt.date(2025, 10, 24)
    add(instrument_token=_token(fresh_exchange_token(1000, 30000), 3),
        tradingsymbol=_weekly_symbol("USDINR", next_weekly, "88.75CE"), name="USDINR", exchange="CDS",
        segment="CDS-OPT", instrument_type="CE", expiry=next_weekly, strike=88.75, tick_size=0.0025,
        lot_size=1, price=0.2350, packet_length=184, listed_from=dt.date(2025, 10, 13))
    for name, price, expiry in (("USDINR", 88.7150, dt.date(2025, 10, 29)), ("EURINR", 103.1200, dt.date(2025, 10,
                                                                                                         29))):
        add(instrument_token=_token(fresh_exchange_token(1000, 30000), 6),
            tradingsymbol=_monthly_symbol(name, expiry, "FUT"), name=name, exchange="BCD",
            segment="BCD-FUT", instrument_type="FUT", expiry=expiry, strike=0.0, tick_size=0.0025,
            lot_size=1, price=price, packet_length=184)

    # Commodities: MCX (1e2) and NSE commodity (1e4).
    for name, price, expiry, tick, lot in (
        ("CRUDEOIL", 5312.0, dt.date(2025, 10, 20), 1.0, 100), ("CRUDEOILM", 5313.0, dt.date(2025, 10, 20), 1.0, 10),
        ("GOLD", 122350.0, dt.date(2025, 12, 5), 1.0, 1), ("GOLDM", 121980.0, dt.date(2025, 11, 5), 1.0, 10),
        ("SILVER", 146200.0, dt.date(2025, 12, 5), 1.0, 1), ("NATURALGAS", 276.4, dt.date(2025, 10, 28), 0.1, 1250),
        ("COPPER", 991.35, dt.date(2025, 10, 31), 0.05, 2500),
    ):
        add(instrument_token=_token(fresh_exchange_token(400000, 480000), 7),
            tradingsymbol=_monthly_symbol(name, expiry, "FUT"), name=name, exchange="MCX",
            segment="MCX-FUT", instrument_type="FUT", expiry=expiry, strike=0.0, tick_size=tick,
            lot_size=lot, price=price, packet_length=184)
    for name, price, expiry, tick, lot in (
        ("CRUDEOIL", 5310.0, dt.date(2025, 10, 20), 1.0, 100), ("GOLDM", 121950.0, dt.date(2025, 11, 5), 1.0, 10),
    ):
        add(instrument_token=_token(fresh_exchange_token(200, 1000), 12),
            tradingsymbol=_monthly_symbol(name, expiry, "FUT"), name=name, exchange="NCO",
            segment="NCO-FUT", instrument_type="FUT", expiry=expiry, strike=0.0, tick_size=tick,
            lot_size=lot, price=price, packet_length=184)

    if unknown:
        out.extend(_unknown_instruments(rng, fresh_exchange_token, date))
    return out


def _unknown_instruments(rng, fresh_exchange_token, date: dt.date) -> list[SyntheticInstrument]:
    infy = _token(1594, 1)
    swapped = int.from_bytes(infy.to_bytes(4, "big"), "little")
    recycled_token = _token(fresh_exchange_token(1000, 30000), 3)
    expired = dt.date(2025, 10, 10)  # a Friday: that week's USDINR options expired
    common = dict(listed=False, ticking=True, listed_from=None)
    return [
        SyntheticInstrument(
            instrument_token=_token(fresh_exchange_token(30000, 120000), 2),
            tradingsymbol=_weekly_symbol("NIFTY", dt.date(2025, 10, 14), "25900CE"), name="NIFTY",
            exchange="NFO", segment="NFO-OPT", instrument_type="CE", expiry=dt.date(2025, 10, 14),
            strike=25900.0, tick_size=0.05, lot_size=75, price=2.35, packet_length=184,
            unknown=UNKNOWN_MISSING, note="a plausible NFO option token that no instruments dump names",
            **common),
        SyntheticInstrument(
            instrument_token=409, tradingsymbol="", name="", exchange="", segment="", instrument_type="",
            expiry=None, strike=0.0, tick_size=0.05, lot_size=0, price=123.45, packet_length=8,
            unknown=UNKNOWN_BAD_SEGMENT,
            note="token 409: segment byte 153 is no Kite segment, as mis-framed bytes give", **common),
        SyntheticInstrument(
            instrument_token=swapped, tradingsymbol="", name="", exchange="", segment="", instrument_type="",
            expiry=None, strike=0.0, tick_size=0.05, lot_size=0, price=1521.3, packet_length=44,
            unknown=UNKNOWN_BYTESWAPPED,
            note=f"token {swapped} is INFY {infy} read little-endian (segment byte 0)", **common),
        SyntheticInstrument(
            instrument_token=recycled_token, tradingsymbol="", name="USDINR", exchange="CDS", segment="CDS-OPT",
            instrument_type="CE", expiry=None, strike=0.0, tick_size=0.0025, lot_size=1, price=0.1850,
            packet_length=184, unknown=UNKNOWN_RECYCLED,
            note=f"today's dump does not name it; the {expired} dump names it as an option that expired that day",
            **common),
        # What the recycled token named before (dump-only, expired on ``expired``), beside
        # other contracts of that expiry so the earlier dump looks like one.
        *(
            SyntheticInstrument(
                instrument_token=_token(fresh_exchange_token(1000, 30000), 3),
                tradingsymbol=_weekly_symbol("USDINR", expired, f"{strike}{kind}"), name="USDINR",
                exchange="CDS", segment="CDS-OPT", instrument_type=kind, expiry=expired,
                strike=float(strike), tick_size=0.0025, lot_size=1, price=price, packet_length=184,
                ticking=False, listed_from=dt.date(2025, 9, 26))
            for strike, kind, price in (("88.5", "PE", 0.0425), ("88.75", "CE", 0.0650), ("88.75", "PE", 0.1675))
        ),
        SyntheticInstrument(
            instrument_token=recycled_token,
            tradingsymbol=_weekly_symbol("USDINR", expired, "88.5CE"), name="USDINR", exchange="CDS",
            segment="CDS-OPT", instrument_type="CE", expiry=expired, strike=88.5, tick_size=0.0025,
            lot_size=1, price=0.2150, packet_length=184, listed=True, ticking=False,
            listed_from=dt.date(2025, 9, 26),
            note="the expired contract the recycled token used to name"),
    ]


def write_instruments_csv(path, instruments: Iterable[SyntheticInstrument], date: dt.date) -> int:
    """Write the daily instruments dump as published on ``date``; returns the number of rows.

    The dump names every listed instrument live on that day (listed and not yet expired),
    in the official 12-column layout. ``last_price`` is the level at the open.
    """
    rows = [i for i in instruments if i.listed_on(date)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MASTER_COLUMNS)
        for i in rows:
            writer.writerow((
                i.instrument_token, i.exchange_token, i.tradingsymbol, i.name, repr(round(i.price, 4)),
                i.expiry.isoformat() if i.expiry else "", _strike_text(i.strike),
                f"{i.tick_size:g}", i.lot_size, i.instrument_type, i.segment, i.exchange,
            ))
    return len(rows)


# --- packet records -------------------------------------------------------------


def _packet_record_dtype(length: int) -> np.dtype:
    """The u16 length prefix plus one packet, laid out from the layout table (big-endian)."""
    layout = protocol.LAYOUTS[length]
    names, formats, offsets = ["length_prefix"], [">u2"], [0]
    for f in layout.fields:
        names.append(f.name)
        formats.append(f.dtype)
        offsets.append(protocol.PACKET_LENGTH_SIZE + f.offset)
    depth = layout.depth
    if depth is not None:
        entry = np.dtype({
            "names": [ef.name for ef in depth.entry_fields],
            "formats": [">u4" if ef.size == 4 else ">u2" for ef in depth.entry_fields],
            "offsets": [ef.offset for ef in depth.entry_fields],
            "itemsize": depth.entry_size,  # padding bytes stay zero
        })
        names.append("depth")
        formats.append((entry, (2 * depth.levels,)))
        offsets.append(protocol.PACKET_LENGTH_SIZE + depth.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": protocol.PACKET_LENGTH_SIZE + length})


def _header_dtype(framing: str, body: str) -> np.dtype:
    """A message's framing prefix plus ``body`` (``count`` u16 or a heartbeat byte)."""
    fields = []
    if framing == "ts-u32len":
        fields.append(("recv_ns", ">u8"))
    if framing in ("u32len", "ts-u32len"):
        fields.append(("frame_length", ">u4"))
    fields.append(("count", ">u2") if body == "count" else ("heartbeat", "u1"))
    return np.dtype(fields)


_PREFIX_SIZE = {"raw": 0, "base64": 0, "single": 0, "u32len": 4, "ts-u32len": 12}
_GENERATED_LENGTHS = (8, 28, 32, 44, 184)


def _scatter(buf: np.ndarray, offsets: np.ndarray, records: np.ndarray) -> None:
    """Copy fixed-size ``records`` to ``buf`` at ``offsets`` (one vectorised scatter)."""
    if len(records) == 0:
        return
    rows = records.view(np.uint8).reshape(len(records), records.dtype.itemsize)
    index = offsets[:, None] + np.arange(records.dtype.itemsize, dtype=np.int64)
    buf[index] = rows


def _grouped_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group (rows sorted by group; ``starts`` = first rows)."""
    total = np.cumsum(values)
    before = total[starts] - values[starts]
    return total - np.repeat(before, np.diff(np.append(starts, len(values))))


def _grouped_cummax(group_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running maximum restarting at each group; ``values`` in [0, 2**40), ids sorted."""
    shift = group_ids.astype(np.int64) << 41
    return np.maximum.accumulate(values + shift) - shift


class _Session:
    """Per-instrument market state carried from chunk to chunk, as raw wire integers."""

    def __init__(self, instruments: Sequence[SyntheticInstrument], rng: np.random.Generator):
        n = len(instruments)
        self.token = np.array([i.instrument_token for i in instruments], dtype=np.int64)
        self.length = np.array([i.packet_length for i in instruments], dtype=np.int64)
        divisor = np.array([i.divisor for i in instruments])
        self.raw_tick = np.maximum(1, np.rint([i.tick_size * d for i, d in zip(instruments, divisor,
                                                                               strict=True)])).astype(np.int64)
        price_ticks = np.maximum(1, np.rint([i.price / i.tick_size for i in instruments])).astype(np.int64)
        # Yesterday's close, today's open: a gap of a few tenths of a percent.
        self.close = np.maximum(1, np.rint(price_ticks * (1 + rng.normal(0, 0.004,
                                                                         n)))).astype(np.int64) * self.raw_tick
        self.ticks = price_ticks.copy()  # the last price, in ticks
        self.open = self.ticks * self.raw_tick
        self.high = self.open.copy()
        self.low = self.open.copy()
        self.vol_ticks = np.maximum(0.6, price_ticks * 0.00025)
        self.is_fo = np.array([i.instrument_type in ("FUT", "CE", "PE") for i in instruments])
        self.lot = np.array([max(1, i.lot_size) for i in instruments], dtype=np.int64)
        self.volume = np.where(self.is_fo, self.lot * rng.integers(10, 400, n), rng.integers(100, 5000,
                                                                                             n)).astype(np.int64)
        self.oi = np.where(self.is_fo, self.lot * rng.integers(1000, 60000, n), 0).astype(np.int64)
        self.oi_high = self.oi.copy()
        self.oi_low = self.oi.copy()
        self.depth_qty = np.where(self.is_fo, self.lot, rng.integers(1, 40, n)).astype(np.int64)
        self.thin = np.array([i.instrument_type in ("CE", "PE") and abs(i.price) < 5 for i in instruments])


class _Generator:
    def __init__(self, instruments, framing, seed, start, heartbeats, expected_messages):
        self.instruments = [i for i in instruments if i.ticking]
        if not self.instruments:
            raise ValueError("no ticking instruments to generate ticks for")
        self.n = len(self.instruments)
        self.framing = framing
        self.rng = np.random.default_rng(seed)
        self.state = _Session(self.instruments, self.rng)
        self.heartbeat_rate = 0.01 if heartbeats else 0.0
        # Spread the capture over the session (denser when it holds more messages).
        self.mean_gap = min(0.25, SESSION_SECONDS * 0.98 / max(1, expected_messages))
        self.clock = start.timestamp()
        self.start_epoch = int(math.floor(self.clock))
        self.dtypes = {length: _packet_record_dtype(length) for length in _GENERATED_LENGTHS}
        self.ticks_by_inst = np.zeros(self.n, dtype=np.int64)
        self.packets_by_length: dict[int, int] = {}
        self.first_time: int | None = None
        self.last_time: int | None = None

    def message_sizes(self, packets: int) -> np.ndarray:
        """Packets per message (1..50) adding up to ``packets``."""
        rng, cap = self.rng, min(50, self.n)
        draws = max(8, packets // 12)
        sizes = np.empty(0, dtype=np.int64)
        while sizes.sum() < packets:
            small = rng.random(draws) < 0.25
            more = np.where(small, rng.integers(1, 5, draws), rng.integers(5, 51, draws))
            sizes = np.concatenate([sizes, np.minimum(more, cap)])
        total = np.cumsum(sizes)
        m = int(np.searchsorted(total, packets)) + 1
        sizes = sizes[:m]
        sizes[-1] -= int(total[m - 1] - packets)
        return sizes

    def messages(self, sizes: np.ndarray, *, count: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Framed messages (heartbeats between them) as one byte array, and each message's
        (start offset, end offset) rows; ``count`` adds them to the capture's tallies."""
        rng, st, n = self.rng, self.state, self.n
        sizes = np.asarray(sizes, dtype=np.int64)
        n_msgs, n_pkts = len(sizes), int(sizes.sum())
        msg_of_pkt = np.repeat(np.arange(n_msgs), sizes)
        first_of_msg = np.cumsum(sizes) - sizes
        within = np.arange(n_pkts) - first_of_msg[msg_of_pkt]

        # Distinct instruments inside a message: consecutive slots of a shuffled universe.
        perm = rng.permutation(n)
        inst = perm[(rng.integers(0, n, n_msgs)[msg_of_pkt] + within) % n]
        length = st.length[inst]

        gaps = rng.exponential(self.mean_gap, n_msgs)
        msg_time = self.clock + np.cumsum(gaps)
        self.clock = float(msg_time[-1])
        # A tenth of the snapshots are a second old; never older than the session start.
        exch = np.maximum(np.floor(msg_time[msg_of_pkt]).astype(np.int64) - (rng.random(n_pkts) < 0.1),
                          self.start_epoch)
        ltt = exch - rng.integers(0, 4, n_pkts)

        # Random walks, grouped by instrument in time order.
        order = np.argsort(inst, kind="stable")
        s_inst = inst[order]
        starts = np.flatnonzero(np.r_[True, s_inst[1:] != s_inst[:-1]])
        ends = np.r_[starts[1:] - 1, n_pkts - 1]
        group_id = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n_pkts]))
        steps = np.rint(rng.standard_normal(n_pkts) * st.vol_ticks[s_inst]).astype(np.int64)
        s_ticks = np.maximum(1, st.ticks[s_inst] + _grouped_cumsum(steps, starts))
        raw_tick = st.raw_tick[s_inst]
        s_price = s_ticks * raw_tick
        s_high = np.maximum(_grouped_cummax(group_id, s_price), st.high[s_inst])
        ceiling = np.int64(1) << 40
        s_low = np.minimum(ceiling - _grouped_cummax(group_id, ceiling - s_price), st.low[s_inst])
        lot = st.lot[s_inst]
        s_ltq = np.where(st.is_fo[s_inst], lot * rng.integers(1, 12, n_pkts), rng.geometric(0.02, n_pkts))
        s_volume = st.volume[s_inst] + _grouped_cumsum(s_ltq, starts)
        oi_step = np.where(st.is_fo[s_inst], lot * rng.integers(-20, 21, n_pkts), 0)
        s_oi = np.maximum(0, st.oi[s_inst] + _grouped_cumsum(oi_step, starts))
        s_oi_high = np.maximum(_grouped_cummax(group_id, s_oi), st.oi_high[s_inst])
        s_oi_low = np.minimum(ceiling - _grouped_cummax(group_id, ceiling - s_oi), st.oi_low[s_inst])
        last = s_inst[ends]
        st.ticks[last] = s_ticks[ends]
        st.high[last], st.low[last] = s_high[ends], s_low[ends]
        st.volume[last] = s_volume[ends]
        st.oi[last], st.oi_high[last], st.oi_low[last] = s_oi[ends], s_oi_high[ends], s_oi_low[ends]

        def unsort(values):
            out = np.empty_like(values)
            out[order] = values
            return out

        price, high, low = unsort(s_price), unsort(s_high), unsort(s_low)
        ltq, volume = unsort(s_ltq), unsort(s_volume)
        oi, oi_high, oi_low = unsort(s_oi), unsort(s_oi_high), unsort(s_oi_low)
        open_, close = st.open[inst], st.close[inst]
        tick = st.raw_tick[inst]

        # Byte layout: [heartbeat] header packets... per message.
        prefix = _PREFIX_SIZE[self.framing]
        heartbeat = rng.random(n_msgs) < self.heartbeat_rate
        heartbeat[0] = False
        body_sizes = protocol.MESSAGE_COUNT_SIZE + np.bincount(
            msg_of_pkt, weights=length + protocol.PACKET_LENGTH_SIZE, minlength=n_msgs).astype(np.int64)
        heartbeat_size = np.where(heartbeat, prefix + 1, 0)
        record_sizes = heartbeat_size + prefix + body_sizes
        msg_start = np.cumsum(record_sizes) - record_sizes + heartbeat_size  # framing prefix
        pkt_sizes = length + protocol.PACKET_LENGTH_SIZE
        pkt_offset = (msg_start[msg_of_pkt] + prefix + protocol.MESSAGE_COUNT_SIZE
                      + np.cumsum(pkt_sizes) - pkt_sizes
                      - (np.cumsum(pkt_sizes) - pkt_sizes)[first_of_msg][msg_of_pkt])
        buf = np.zeros(int(record_sizes.sum()), dtype=np.uint8)
        recv_ns = (msg_time * 1e9).astype(np.int64) + rng.integers(0, 40_000_000, n_msgs)

        header = np.zeros(n_msgs, dtype=_header_dtype(self.framing, "count"))
        header["count"] = sizes
        if prefix:
            header["frame_length"] = body_sizes
        if self.framing == "ts-u32len":
            header["recv_ns"] = recv_ns
        _scatter(buf, msg_start, header)
        if heartbeat.any():
            beats = np.zeros(int(heartbeat.sum()), dtype=_header_dtype(self.framing, "heartbeat"))
            if prefix:
                beats["frame_length"] = 1
            if self.framing == "ts-u32len":
                beats["recv_ns"] = recv_ns[heartbeat] - 700_000_000
            _scatter(buf, msg_start[heartbeat] - heartbeat_size[heartbeat], beats)

        for plen in _GENERATED_LENGTHS:
            sel = np.flatnonzero(length == plen)
            if len(sel) == 0:
                continue
            rec = np.zeros(len(sel), dtype=self.dtypes[plen])
            rec["length_prefix"] = plen
            rec["instrument_token"] = st.token[inst[sel]]
            rec["last_price"] = price[sel]
            if plen in (28, 32):
                rec["high"], rec["low"], rec["open"], rec["close"] = high[sel], low[sel], open_[sel], close[sel]
                rec["price_change"] = price[sel] - close[sel]
                if plen == 32:
                    rec["exchange_timestamp"] = exch[sel]
            elif plen in (44, 184):
                rec["last_traded_quantity"] = ltq[sel]
                rec["average_traded_price"] = (open_[sel] + high[sel] + low[sel] + 2 * price[sel]) // 5
                rec["volume_traded"] = volume[sel]
                lots = st.lot[inst[sel]]
                rec["total_buy_quantity"] = lots * rng.integers(200, 20000, len(sel))
                rec["total_sell_quantity"] = lots * rng.integers(200, 20000, len(sel))
                rec["open"], rec["high"], rec["low"], rec["close"] = open_[sel], high[sel], low[sel], close[sel]
                if plen == 184:
                    rec["last_trade_time"] = ltt[sel]
                    rec["exchange_timestamp"] = exch[sel]
                    rec["oi"], rec["oi_day_high"], rec["oi_day_low"] = oi[sel], oi_high[sel], oi_low[sel]
                    self._fill_depth(rec["depth"], price[sel], tick[sel], st.depth_qty[inst[sel]],
                                     st.thin[inst[sel]])
            _scatter(buf, pkt_offset[sel], rec)

        if count:
            self.ticks_by_inst += np.bincount(inst, minlength=n)
            for plen, k in zip(*np.unique(length, return_counts=True), strict=True):
                self.packets_by_length[int(plen)] = self.packets_by_length.get(int(plen), 0) + int(k)
            timed = np.isin(length, (32, 184))
            if timed.any():
                lo, hi = int(exch[timed].min()), int(exch[timed].max())
                self.first_time = lo if self.first_time is None else min(self.first_time, lo)
                self.last_time = hi if self.last_time is None else max(self.last_time, hi)
        bounds = np.stack([msg_start, msg_start + prefix + body_sizes], axis=1)
        self.heartbeats_written = int(heartbeat.sum())
        return buf, bounds

    def _fill_depth(self, depth, price, tick, qty_unit, thin):
        """Five bids below and five offers above the last price, a tick or two apart."""
        rng, m = self.rng, len(price)
        bid0 = price - tick * (rng.random(m) < 0.5)
        ask0 = bid0 + tick * (1 + (rng.random(m) < 0.3))
        gaps = tick[:, None] * rng.integers(1, 3, (m, 5))
        gaps[:, 0] = 0
        bids = bid0[:, None] - np.cumsum(gaps, axis=1)
        ask_gaps = tick[:, None] * rng.integers(1, 3, (m, 5))
        ask_gaps[:, 0] = 0
        asks = ask0[:, None] + np.cumsum(ask_gaps, axis=1)
        qty = qty_unit[:, None] * rng.integers(1, 60, (m, 10))
        orders = np.minimum(qty, rng.integers(1, 25, (m, 10)))
        prices = np.concatenate([bids, asks], axis=1)
        # Thin books (far options) leave their deeper levels empty; so does a bid below zero.
        empty = (prices <= 0) | (thin[:, None] & (np.arange(10) % 5 >= 3) & (rng.random((m, 10)) < 0.6))
        depth["price"] = np.where(empty, 0, prices)
        depth["quantity"] = np.where(empty, 0, qty)
        depth["orders"] = np.where(empty, 0, orders)


# --- faults ---------------------------------------------------------------------


def _frame_prefix(framing: str, length: int, recv_ns: int) -> bytes:
    if framing == "u32len":
        return length.to_bytes(4, "big")
    if framing == "ts-u32len":
        return recv_ns.to_bytes(8, "big") + length.to_bytes(4, "big")
    return b""


def _split_packets(message: bytes) -> list[bytes]:
    count = int.from_bytes(message[:2], "big")
    packets, at = [], 2
    for _ in range(count):
        size = int.from_bytes(message[at:at + 2], "big")
        packets.append(message[at + 2:at + 2 + size])
        at += 2 + size
    return packets


def _order_update_json(rng: np.random.Generator, when: dt.datetime) -> bytes:
    stamp = when.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")
    order = {
        "type": "order",
        "data": {
            "account_id": "AB1234", "order_id": str(251013000000000 + int(rng.integers(1, 999999))),
            "status": "COMPLETE", "tradingsymbol": "INFY", "exchange": "NSE", "instrument_token": 408065,
            "transaction_type": "BUY", "order_type": "LIMIT", "product": "CNC", "quantity": 10,
            "filled_quantity": 10, "pending_quantity": 0, "price": 1521.3, "average_price": 1521.25,
            "order_timestamp": stamp, "exchange_timestamp": stamp, "variety": "regular", "validity": "DAY",
        },
    }
    return json.dumps(order, separators=(",", ":")).encode()


# --- the capture ----------------------------------------------------------------

CHUNK_PACKETS = 32_768


def generate_capture(
    path,
    *,
    packets: int,
    framing: str = "raw",
    seed: int = 0,
    start: dt.datetime | None = None,
    faults: bool = False,
    heartbeats: bool = True,
    instruments: list[SyntheticInstrument] | None = None,
) -> CaptureInfo:
    """Write a capture of ``packets`` good packets to ``path``; the same arguments give
    the same bytes.

    ``start`` is the session time of the first message (naive = IST; default 09:15 IST on
    2025-10-13). ``faults`` injects one fault of each kind (see ``Fault``) at recorded
    offsets, spread over the file, ending with a truncated tail; it needs a binary framing
    (raw, u32len, ts-u32len). ``instruments`` defaults to ``make_instruments(seed)``.
    """
    if framing not in encode.FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(encode.FRAMINGS)}")
    if packets < 1:
        raise ValueError("packets must be at least 1")
    if faults and packets < 100:
        raise ValueError("faults need at least 100 packets to spread over")
    if faults and framing not in ("raw", "u32len", "ts-u32len"):
        raise ValueError("faults need a binary framing: raw, u32len or ts-u32len")
    if framing == "single" and packets > 0xFFFF:
        raise ValueError("the single framing holds one message of at most 65535 packets")
    start = start or DEFAULT_START
    if start.tzinfo is None:
        start = start.replace(tzinfo=IST)
    instruments = instruments if instruments is not None else make_instruments(seed)
    path = Path(path)
    info = CaptureInfo(path=path, framing=framing, seed=seed, start=start)
    gen = _Generator(instruments, framing, seed, start,
                     heartbeats and framing != "single", expected_messages=packets // 20)
    rng = gen.rng

    # Faults go before the messages that reach these fractions of the good packets.
    fault_kinds = ("unknown_length", "garbage", "text_frame", "count_mismatch") if faults else ()
    slots = [max(1, int(packets * f)) for f in (0.17, 0.39, 0.61, 0.83)][:len(fault_kinds)]
    offset = 0

    with open(path, "wb") as fh:

        def write(data: bytes | np.ndarray) -> int:
            nonlocal offset
            at = offset
            fh.write(memoryview(data))
            offset += len(data)
            return at

        def write_messages(sizes, *, count=True):
            buf, bounds = gen.messages(sizes, count=count)
            if framing == "base64":
                lines = [base64.b64encode(buf[a:b].tobytes()) + b"\n" for a, b in bounds]
                # Heartbeats sit between messages as single 0x00 bytes: one ``AA==`` line each.
                beats = np.zeros(len(bounds), dtype=bool)
                beats[1:] = bounds[1:, 0] > bounds[:-1, 1]
                out = []
                for line, beat in zip(lines, beats, strict=True):
                    if beat:
                        out.append(b"AA==\n")
                    out.append(line)
                at = write(b"".join(out))
            else:
                at = write(buf)
            if count:
                info.messages += len(sizes)
                info.heartbeats += gen.heartbeats_written
            return at, buf, bounds

        done = 0
        if framing == "single":
            write_messages(np.array([packets]))
            done = packets
        for kind, slot in zip(fault_kinds, slots, strict=True):
            while done < slot:
                step = min(CHUNK_PACKETS, slot - done)
                write_messages(gen.message_sizes(step))
                done += step
            done += _write_fault(kind, info, gen, framing, write, rng)
        while done < packets:
            step = min(CHUNK_PACKETS, packets - done)
            write_messages(gen.message_sizes(step))
            done += step
        if faults:
            buf, bounds = gen.messages([5], count=False)
            record = buf[bounds[0, 0]:].tobytes()
            cut = len(record) - 97  # ends inside the last packet
            info.faults.append(Fault("truncated_tail", write(record[:cut]), cut))

    info.bytes = offset
    info.packets = int(gen.ticks_by_inst.sum())
    info.packets_by_length = dict(sorted(gen.packets_by_length.items()))
    info.ticks_by_token = {}
    for i, k in zip(gen.instruments, gen.ticks_by_inst, strict=True):
        if k:
            info.ticks_by_token[i.instrument_token] = info.ticks_by_token.get(i.instrument_token, 0) + int(k)
    info.tokens = sorted(info.ticks_by_token)
    if gen.first_time is not None:
        info.first_exchange_time = dt.datetime.fromtimestamp(gen.first_time, dt.UTC)
        info.last_exchange_time = dt.datetime.fromtimestamp(gen.last_time, dt.UTC)
    return info


def _write_fault(kind, info: CaptureInfo, gen: _Generator, framing, write, rng) -> int:
    """Write one fault record; returns the good packets it holds (part of the budget)."""
    recv_ns = int(gen.clock * 1e9)
    prefix = _PREFIX_SIZE[framing]
    if kind == "unknown_length":
        # A good message with one packet of an unknown length in the middle: the good
        # packets count, the unknown one is skipped by its length prefix.
        buf, bounds = gen.messages([4], count=True)
        message = buf[bounds[0, 0] + prefix:bounds[0, 1]].tobytes()
        good = _split_packets(message)
        unknown = rng.integers(1, 256, 77, dtype=np.uint8).tobytes()
        packed = encode.encode_message(good[:2] + [unknown] + good[2:])
        head = _frame_prefix(framing, len(packed), recv_ns)
        body_at = len(head) + protocol.MESSAGE_COUNT_SIZE + sum(protocol.PACKET_LENGTH_SIZE + len(p) for p in good[:2])
        at = write(head + packed)
        info.messages += 1
        info.heartbeats += gen.heartbeats_written
        info.faults.append(Fault(kind, at + body_at + protocol.PACKET_LENGTH_SIZE, len(unknown)))
        return len(good)
    elif kind == "garbage":
        # Lost-sync bytes; the first is never 0x00 so it cannot pass for a heartbeat.
        garbage = b"\xff" + rng.integers(0, 256, 52, dtype=np.uint8).tobytes()
        at = write(_frame_prefix(framing, len(garbage), recv_ns) + garbage)
        info.faults.append(Fault(kind, at + prefix, len(garbage)))
    elif kind == "text_frame":
        text = _order_update_json(rng, dt.datetime.fromtimestamp(gen.clock, dt.UTC))
        at = write(_frame_prefix(framing, len(text), recv_ns) + text)
        info.faults.append(Fault(kind, at + prefix, len(text)))
    elif kind == "count_mismatch":
        # The header promises two more packets than the message holds.
        buf, bounds = gen.messages([4], count=False)
        message = bytearray(buf[bounds[0, 0] + prefix:bounds[0, 1]].tobytes())
        message[0:2] = (int.from_bytes(message[0:2], "big") + 2).to_bytes(2, "big")
        at = write(_frame_prefix(framing, len(message), recv_ns) + bytes(message))
        info.salvageable_packets += 4
        info.faults.append(Fault(kind, at + prefix, len(message)))
    else:  # pragma: no cover - the kinds are fixed above
        raise ValueError(kind)
    return 0

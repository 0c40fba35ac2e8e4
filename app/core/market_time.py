"""Tick time and trading date: India Standard Time, named once.

Kite stamps ticks in epoch seconds; the exchange's day is the IST calendar day (UTC+05:30,
no daylight saving, so a fixed offset needs no time-zone database). Every module that
turns a time into a trading date, or shows a time to a person, uses this one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
UTC = dt.UTC
IST_OFFSET_US = 19_800 * 1_000_000
DAY_US = 86_400 * 1_000_000
IST_NAMES = ("Asia/Kolkata", "Asia/Calcutta", "IST")
ZONES = {"IST": IST, "UTC": UTC}  # the zones the app can show times in (a setting; IST by default)
DEFAULT_ZONE = "IST"


def trading_days(epoch_us: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of the IST calendar day of each epoch-microsecond time (int32)."""
    return ((np.asarray(epoch_us, dtype=np.int64) + IST_OFFSET_US) // DAY_US).astype(np.int32)


def trading_dates(times: pa.Array) -> pa.Array:
    """The IST calendar date (date32) of each timestamp in ``times`` (nulls stay null)."""
    micros = times.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    days = pc.floor(pc.divide(pc.add(micros, IST_OFFSET_US).cast(pa.float64()), float(DAY_US)))
    return days.cast(pa.int32()).cast(pa.date32())


def trading_date(when: dt.datetime | float | int) -> dt.date:
    """The IST calendar date of one time (an aware datetime or epoch seconds)."""
    if not isinstance(when, dt.datetime):
        when = dt.datetime.fromtimestamp(float(when), UTC)
    return when.astimezone(IST).date()


def zone(name: str | None = None) -> dt.tzinfo:
    return ZONES.get((name or DEFAULT_ZONE).upper(), IST)


def to_zone(when: dt.datetime | float | int, name: str | None = None) -> dt.datetime:
    """An aware datetime (naive = UTC) or epoch seconds, in the named zone."""
    if not isinstance(when, dt.datetime):
        return dt.datetime.fromtimestamp(float(when), zone(name))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone(name))


def format_time(when, name: str | None = None, *, with_zone: bool = False) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the named zone (IST by default); "" for None."""
    if when is None:
        return ""
    text = to_zone(when, name).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {(name or DEFAULT_ZONE).upper()}" if with_zone else text


def parse_time(text: str) -> dt.datetime:
    """A time a person typed: ISO 8601 date or date-time; without a zone it is IST (a date
    alone is its midnight IST). Raises ValueError naming the accepted forms."""
    value = text.strip()
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (give YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] in IST, "
                         "or a time with its zone such as 2025-10-13T03:45:00+00:00)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=IST)

"""How numbers, sizes, rates, durations and times read in the app (no Qt: views and text alike).

Times are shown in ONE zone at a time, named beside them: IST by default (Kite's and the
exchange's clock), UTC when View → Time zone says so (``set_time_zone``).
"""

from __future__ import annotations

import math

from app.core import market_time

_display = {"zone": market_time.DEFAULT_ZONE}


def set_time_zone(name: str) -> str:
    _display["zone"] = name.upper() if name and name.upper() in market_time.ZONES else market_time.DEFAULT_ZONE
    return _display["zone"]


def time_zone() -> str:
    """The zone times are shown in ("IST" or "UTC")."""
    return _display["zone"]


def time_text(value) -> str:
    """A datetime (naive = UTC) or epoch seconds as ``YYYY-MM-DD HH:MM:SS`` in the display zone."""
    if value is None or value == 0:
        return ""
    return market_time.format_time(value, _display["zone"])


def with_zone(label: str) -> str:
    """A column or axis label naming the display zone: "First seen (IST)"."""
    return f"{label} ({_display['zone']})"


def human_count(n: float | None) -> str:
    if n is None:
        return ""
    return f"{int(n):,}"


def human_rate(per_second: float | None, unit: str = "pkt/s") -> str:
    if not per_second or per_second <= 0 or math.isnan(per_second):
        return ""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f}M {unit}"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k {unit}"
    return f"{per_second:.0f} {unit}"


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or math.isinf(seconds) or math.isnan(seconds):
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"

"""How numbers, sizes, rates and durations read in the app."""

from __future__ import annotations

import math
from typing import Optional


def human_bytes(n: Optional[float]) -> str:
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_count(n: Optional[float]) -> str:
    if n is None:
        return ""
    return f"{int(n):,}"


def human_rate(per_second: Optional[float], unit: str = "pkt/s") -> str:
    if not per_second or per_second <= 0 or math.isnan(per_second):
        return ""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f}M {unit}"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k {unit}"
    return f"{per_second:.0f} {unit}"


def human_duration(seconds: Optional[float]) -> str:
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

"""The length-prefixed containers: each a ``RecordFormat`` (header size, where the u32
length and the receive time sit, byte order)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.framing.common import _INVALID, _NEED_MORE, KNOWN_MASK, MAX_MESSAGE_BYTES, TS_MAX_NS, TS_MIN_NS
from app.core.framing.split import _u16

# --- container record formats -------------------------------------------------------


@dataclass(frozen=True)
class RecordFormat:
    """A length-prefixed container: every message follows a fixed-size record header
    holding its u32 length (and, in some, a u64 receive time in ns). New containers of
    this shape are one entry in ``RECORD_FORMATS``; they share the walker and resync."""

    name: str
    header: int  # header bytes before each message
    length_at: int  # offset of the u32 message length in the header
    order: str = ">"  # byte order of the header fields
    time_at: int | None = None  # offset of the u64 receive time (ns), if any

    def parse(self, buf, p: int) -> tuple[int | None, int]:
        """(receive time or None, message length) of the header at ``p`` (it must fit)."""
        n = int.from_bytes(buf[p + self.length_at : p + self.length_at + 4], "big" if self.order == ">" else "little")
        if self.time_at is None:
            return None, n
        t = int.from_bytes(buf[p + self.time_at : p + self.time_at + 8], "big" if self.order == ">" else "little")
        return t, n

    def record(self, buf, p: int, limit: int) -> tuple[int, int]:
        """(status, message size) of a record at ``p``; status >= 0 when sane."""
        if p + self.header > limit:
            return _NEED_MORE, 0
        t, n = self.parse(buf, p)
        if t is not None and not TS_MIN_NS <= t < TS_MAX_NS:
            return _INVALID, 0
        if n == 0 or n > MAX_MESSAGE_BYTES:
            return _INVALID, 0
        if p + self.header + n > limit:
            return _NEED_MORE, n
        return 0, n

    def candidates(self, a: np.ndarray, window: np.ndarray) -> np.ndarray:
        """Vectorised pre-filter: positions where a record with a message could start."""
        hdr, at = self.header, self.length_at
        if self.order == ">":
            ln = (_u16(a, window + at) << 16) | _u16(a, window + at + 2)
        else:
            ln = (_u16le(a, window + at + 2) << 16) | _u16le(a, window + at)
        count = _u16(a, window + hdr)
        first = _u16(a, window + hdr + 2)
        ok = (ln >= 4) & (ln <= MAX_MESSAGE_BYTES) & (count > 0) & KNOWN_MASK[first]
        if self.time_at is not None:  # the top byte of a 2000..2100 nanosecond time
            top = a[window + self.time_at + (0 if self.order == ">" else 7)]
            ok &= (top >= TS_MIN_NS >> 56) & (top <= TS_MAX_NS >> 56)
        return ok

    def candidates_span(self, a: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """``candidates`` of the positions [lo, hi) (each with ``header + 4`` bytes in
        ``a``), read with slices in 16/32-bit lanes instead of gathers: the resync's
        pre-filter, which sees every position of a damaged container."""
        w, hdr, at = hi - lo, self.header, self.length_at
        b = a[lo : hi + hdr + 3]

        def u16(k: int, big: bool = True) -> np.ndarray:
            hi8, lo8 = (b[k : k + w], b[k + 1 : k + 1 + w]) if big else (b[k + 1 : k + 1 + w], b[k : k + w])
            return (hi8.astype(np.uint16) << 8) | lo8

        big = self.order == ">"
        high, low = (u16(at), u16(at + 2)) if big else (u16(at + 2, False), u16(at, False))
        ln = (high.astype(np.uint32) << 16) | low
        ok = (u16(hdr) > 0) & KNOWN_MASK[u16(hdr + 2)]
        ok &= (ln >= 4) & (ln <= MAX_MESSAGE_BYTES)
        if self.time_at is not None:  # the top byte of a 2000..2100 nanosecond time
            k = self.time_at + (0 if big else 7)
            top = b[k : k + w]
            ok &= (top >= TS_MIN_NS >> 56) & (top <= TS_MAX_NS >> 56)
        return ok


RECORD_FORMATS: dict[str, RecordFormat] = {
    "u32len": RecordFormat("u32len", 4, 0),
    "ts-u32len": RecordFormat("ts-u32len", 12, 8, time_at=0),
    # Little-endian containers of other projects' recorders (e.g. manja's test fixtures:
    # u64 LE receive ns + u32 LE length + message); the message itself stays big-endian.
    "u32len-le": RecordFormat("u32len-le", 4, 0, order="<"),
    "ts-u32len-le": RecordFormat("ts-u32len-le", 12, 8, order="<", time_at=0),
}


def _u16le(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (a[at + 1].astype(np.int64) << 8) | a[at]

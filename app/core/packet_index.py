"""A row index of every packet and bad region of a capture, for the packet inspector.

This module owns the inspector's view of a capture: ``PacketIndex`` walks the file chunk
by chunk with ``app.core.framing.Framer`` (so its packets and faults are exactly the
decoder's) and keeps one row per packet body *and* per bad region, in file order, as
columnar numpy arrays (file offset, length, message number, packet number in its
message, kind code, token, segment, scaled last price, exchange time, flags). Rows are
readable while the index fills (``rows`` only ever grows, arrays are replaced, never
shrunk), so a GUI can show the first packets of a 10M-packet capture at once.
``mask`` filters rows with numpy, and ``view(row)`` returns the bytes, byte roles and
dissection of one row, which both the inspector window and ``tickscope inspect`` show.

Row numbers are 0-based here; the GUI and the CLI show them 1-based ("No.").
"""

from __future__ import annotations

import binascii
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from app.core import protocol
from app.core.decode import _gather_rows, filename_time, suspect_codes_of
from app.core.dissect import (
    SEVERITY_ERROR,
    SEVERITY_NOTE,
    SEVERITY_WARNING,
    DissectedField,
    Dissection,
    Expert,
    dissect_packet,
)
from app.core.framing import DETECT_HEAD, FRAMINGS, RECORD_FORMATS, Framer, detect_framing_evidence, message_packets
from app.core.suspect import REASONS
from app.errors import InputError, UsageError

# --- row codes ------------------------------------------------------------------------

KIND_BAD = 255
KIND_TEXT = 254  # a text frame or sent command of a text container (base64 session, HAR)
KIND_NAMES: dict[int, str] = {i: layout.kind for i, layout in enumerate(protocol.ALL_LAYOUTS)}
KIND_NAMES[KIND_TEXT] = "text frame"
KIND_NAMES[KIND_BAD] = "bad"
KIND_CODES: dict[str, int] = {name: code for code, name in KIND_NAMES.items()}
_KIND_OF_LENGTH = np.full(1 << 16, KIND_BAD, dtype=np.uint8)
for _length, _layout in protocol.LAYOUTS.items():
    _KIND_OF_LENGTH[_length] = KIND_CODES[_layout.kind]
# Where each kind keeps its exchange timestamp (None: the packet carries no time).
_TIME_OFFSET_OF_KIND = {
    KIND_CODES[layout.kind]: next((f.offset for f in layout.fields if f.name == "exchange_timestamp"), None)
    for layout in protocol.ALL_LAYOUTS
}

FLAG_BAD = 1  # the row is a bad region, not a packet
FLAG_UNRESOLVED = 2  # no loaded instrument master names the token (only with masters)
FLAG_ODD_SEGMENT = 4  # segment byte is no Kite segment: usually mis-framed bytes
FLAG_TIME_BACK = 8  # exchange time earlier than an earlier packet's
FLAG_SUSPECT = 16  # the decoder stores it with a suspect_reason (app.core.suspect)

_DIVISORS = np.full(256, protocol.DEFAULT_DIVISOR, dtype=np.float64)
_REAL_SEGMENT = np.zeros(256, dtype=bool)
for _code, _segment in protocol.SEGMENTS.items():
    _DIVISORS[_code] = _segment.divisor
    _REAL_SEGMENT[_code] = True

_TOKEN_FIELD = protocol.LAYOUTS[8].field("instrument_token")
_PRICE_FIELD = protocol.LAYOUTS[8].field("last_price")
assert all(layout.field("instrument_token").offset == 0 and layout.field("last_price").offset == 4
           for layout in protocol.LAYOUTS.values())

# Column name -> dtype. Offsets are file offsets; message numbers are -1 for bad
# regions outside any message.
COLUMNS: dict[str, np.dtype] = {
    "offset": np.dtype(np.int64),
    "length": np.dtype(np.int32),
    "msg": np.dtype(np.int32),
    "seq": np.dtype(np.int32),
    "kind": np.dtype(np.uint8),
    "token": np.dtype(np.uint32),
    "segment": np.dtype(np.uint8),
    "last_price": np.dtype(np.float64),
    "exchange_time": np.dtype(np.uint32),  # epoch seconds, 0 = absent
    "recv_time": np.dtype(np.int64),  # the container's receive time, epoch µs, 0 = absent
    "flags": np.dtype(np.uint8),
}

FIRST_CHUNK = 256 << 10  # a small first chunk: the first rows show at once
CHUNK = 8 << 20
PROGRESS_INTERVAL = 0.05  # seconds between progress calls (the final one is always sent)
HEX_WINDOW_CAP = 256 << 10  # larger messages show only the row's own bytes
BAD_VIEW_CAP = 64 << 10


def parse_offset(text: str) -> int:
    """A file offset typed by a user: decimal or 0x hex (ValueError otherwise)."""
    text = str(text).strip().replace("_", "").replace(",", "")
    if not text:
        raise ValueError("empty offset")
    value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    if value < 0:
        raise ValueError("negative offset")
    return value


# --- what one row looks like ------------------------------------------------------------


@dataclass(frozen=True)
class ByteRegion:
    """A run of bytes in the hex pane with its role (how it is coloured)."""

    start: int  # address (file offset, or a base64 capture's virtual address)
    end: int
    role: str  # framing | header | prefix | packet | current | bad
    label: str


@dataclass
class PacketView:
    """One row as the inspector shows it: its bytes, their roles and its dissection."""

    row: int
    offset: int
    length: int
    kind: str
    msg: int | None
    data: bytes  # the hex pane's bytes: the row's message (or the bad region)
    base: int  # address of data[0]
    regions: list[ByteRegion]
    dissection: Dissection
    reason: str | None = None  # bad regions only
    note: str = ""  # e.g. how base64 addresses map to the file

    @property
    def number(self) -> int:
        return self.row + 1

    @property
    def is_bad(self) -> bool:
        return self.reason is not None

    def role_at(self, address: int) -> ByteRegion | None:
        """The innermost region holding ``address`` (current packet / bad win over the rest)."""
        found = None
        for r in self.regions:
            if r.start <= address < r.end:
                if found is None or r.role in ("current", "bad"):
                    found = r
        return found

    def to_dict(self) -> dict:
        d = self.dissection
        doc = {
            "packet": self.number,
            "offset": self.offset,
            "length": self.length,
            "kind": self.kind,
            "message": self.msg,
            "fields": [
                {"name": f.name, "offset": f.offset, "length": f.length, "raw": f.raw.hex(),
                 "value": f.value, "generated": f.generated, "meaning": f.meaning}
                for f in d.fields
            ],
            "experts": [{"severity": e.severity, "message": e.message, "offset": e.offset} for e in d.experts],
        }
        if self.reason is not None:
            doc["reason"] = self.reason
        if self.note:
            doc["note"] = self.note
        return doc


@dataclass
class Progress:
    rows: int
    bad: int
    bytes_done: int
    bytes_total: int
    done: bool


@dataclass
class RowFilter:
    """What the filter bar asks for; every part is optional (None: no condition)."""

    tokens: Iterable[int] | None = None
    kinds: Iterable[str] | None = None
    segments: Iterable[int] | None = None
    bad_only: bool = False
    unresolved_only: bool = False
    suspect_only: bool = False  # packets the decoder flags with a suspect_reason
    offset_range: tuple[int, int] | None = None  # [lo, hi] inclusive: rows overlapping it
    time_range: tuple[int, int] | None = None  # [lo, hi] epoch seconds inclusive

    def is_empty(self) -> bool:
        return (self.tokens is None and self.kinds is None and self.segments is None and not self.bad_only
                and not self.unresolved_only and not self.suspect_only and self.offset_range is None
                and self.time_range is None)


# --- the index ----------------------------------------------------------------------------


class PacketIndex:
    """The rows of one capture; ``build()`` fills them (call it on one worker thread)."""

    def __init__(
        self,
        path,
        framing: str | None = None,
        *,
        symbol_of: Callable[[int], str | None] | None = None,
        chunk_bytes: int = CHUNK,
        first_chunk_bytes: int = FIRST_CHUNK,
    ):
        self.path = os.fspath(path)
        if framing is not None and framing not in FRAMINGS:
            raise UsageError(f"unknown framing {framing!r}: use one of {', '.join(FRAMINGS)}")
        try:
            if not os.path.isfile(self.path):
                if os.path.exists(self.path):
                    raise InputError(f"not a capture file: {self.path} (a folder or a device)")
                raise InputError(f"capture not found: {self.path}")
            self.size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                head = f.read(DETECT_HEAD)
        except OSError as err:
            raise InputError(f"cannot read capture {self.path}: {err.strerror or err}") from None
        self.framing_detected = framing is None
        if framing is None:
            self.framing, self.framing_evidence = detect_framing_evidence(head, self.size)
        else:
            self.framing, self.framing_evidence = framing, "given"
        self.symbol_of = symbol_of
        self.chunk_bytes = max(64, int(chunk_bytes))
        self.first_chunk_bytes = max(64, int(first_chunk_bytes))
        self._cols: dict[str, np.ndarray] = {name: np.zeros(0, dt) for name, dt in COLUMNS.items()}
        self._rows = 0  # published row count: rows below it are complete
        self._bad_rows = np.zeros(0, np.int64)
        self._bad_count = 0
        self.reasons: dict[int, str] = {}  # row -> reason, bad regions only
        self.suspect: dict[int, str] = {}  # row -> suspect_reason, suspect packets only
        when = filename_time(os.path.basename(self.path))
        self._fallback_us = int(when.timestamp() * 1_000_000) if when else None
        self.texts: dict[int, dict] = {}  # row -> text frame (direction, text, recv_ns), text rows only
        self.symbols: dict[int, str | None] = {}  # token -> symbol (None: unresolved)
        self._named = np.zeros(0, np.int64)  # sorted tokens a master names
        self.bytes_done = 0
        self.complete = False
        self.cancelled = False
        self.error: str | None = None
        self._time_max = 0
        self._lock = threading.Lock()  # the builder and view() both read the file

    # -- reading ----------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def bad_count(self) -> int:
        return self._bad_count

    @property
    def has_instruments(self) -> bool:
        return self.symbol_of is not None

    def column(self, name: str) -> np.ndarray:
        """The first ``rows`` values of a column (a view; safe while the index fills)."""
        n = self._rows
        return self._cols[name][:n]

    def bad_rows(self) -> np.ndarray:
        n = self._bad_count
        return self._bad_rows[:n]

    def kind_name(self, row: int) -> str:
        return KIND_NAMES[int(self._cols["kind"][row])]

    def symbol(self, token: int) -> str | None:
        return self.symbols.get(int(token))

    def row_at_offset(self, offset: int, rows: int | None = None) -> int | None:
        """The row whose bytes hold file ``offset`` (or, between rows, the next row's header: None).

        ``rows``: look only at the first ``rows`` rows (what a view has shown so far; the
        index may have grown on its worker since)."""
        n = self._rows if rows is None else min(rows, self._rows)
        starts = self._cols["offset"][:n]
        i = int(np.searchsorted(starts, offset, side="right")) - 1
        # Zero-length bad regions share an offset with the next row; walk back over them.
        while i >= 0:
            start = int(starts[i])
            length = int(self._cols["length"][i])
            if start <= offset < start + max(length, 1):
                return i
            if start < offset:
                break
            i -= 1
        return None

    def row_near_offset(self, offset: int, rows: int | None = None) -> int | None:
        """The row holding ``offset`` or else the first row after it (go to offset); ``rows``
        as in ``row_at_offset``."""
        found = self.row_at_offset(offset, rows)
        if found is not None:
            return found
        n = self._rows if rows is None else min(rows, self._rows)
        i = int(np.searchsorted(self._cols["offset"][:n], offset, side="left"))
        return i if i < n else (n - 1 if n else None)

    def next_bad(self, row: int, backwards: bool = False, rows: int | None = None) -> int | None:
        bad = self.bad_rows()
        if rows is not None:
            bad = bad[: int(np.searchsorted(bad, rows))]
        if not bad.size:
            return None
        if backwards:
            i = int(np.searchsorted(bad, row, side="left")) - 1
            return int(bad[i]) if i >= 0 else None
        i = int(np.searchsorted(bad, row, side="right"))
        return int(bad[i]) if i < bad.size else None

    def mask(self, spec: RowFilter, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Boolean mask of rows ``lo:hi`` matching ``spec`` (numpy, no per-row Python)."""
        hi = self._rows if hi is None else min(hi, self._rows)
        sl = slice(lo, hi)
        c = self._cols
        keep = np.ones(max(0, hi - lo), dtype=bool)
        flags = c["flags"][sl]
        if spec.bad_only:
            keep &= (flags & FLAG_BAD) != 0
        if spec.unresolved_only:
            keep &= (flags & FLAG_UNRESOLVED) != 0
        if spec.suspect_only:
            keep &= (flags & FLAG_SUSPECT) != 0
        if spec.tokens is not None:
            keep &= np.isin(c["token"][sl], np.fromiter(spec.tokens, np.int64).astype(np.uint32)) & ((flags
                                                                                                      & FLAG_BAD) == 0)
        if spec.kinds is not None:
            codes = np.array([KIND_CODES[k] for k in spec.kinds if k in KIND_CODES], dtype=np.uint8)
            keep &= np.isin(c["kind"][sl], codes)
        if spec.segments is not None:
            keep &= np.isin(c["segment"][sl], np.fromiter(spec.segments, np.int64)) & ((flags & FLAG_BAD) == 0)
        if spec.offset_range is not None:
            a, b = spec.offset_range
            start = c["offset"][sl]
            keep &= (start <= b) & (start + np.maximum(c["length"][sl], 1) > a)
        if spec.time_range is not None:
            a, b = spec.time_range
            t = c["exchange_time"][sl]
            keep &= (t >= a) & (t <= b) & (t > 0)
        return keep

    def tokens_named(self, symbols: Iterable[str]) -> list[int]:
        """Tokens seen so far whose symbol matches any of ``symbols`` (case-insensitive)."""
        wanted = {s.strip().upper() for s in symbols if s.strip()}
        return [t for t, s in list(self.symbols.items()) if s and s.upper() in wanted]

    # -- building -----------------------------------------------------------------------------

    def build(self, progress: Callable[[Progress], None] | None = None,
              cancel: threading.Event | None = None) -> None:
        """Walk the whole capture, appending rows chunk by chunk; progress is throttled."""
        framer = Framer(self.framing)
        base = 0
        carry = b""
        read_to = 0
        chunk = self.size if self.framing == "single" else self.first_chunk_bytes
        last_report = 0.0
        try:
            with open(self.path, "rb") as f:
                while True:
                    if cancel is not None and cancel.is_set():
                        self.cancelled = True
                        break
                    want = min(chunk, self.size - read_to)
                    data = f.read(want)
                    read_to += len(data)
                    buf = carry + data if carry else data
                    final = read_to >= self.size or not data
                    split = framer.split(buf, base, final)
                    self._append(split)
                    base += split.consumed
                    carry = bytes(buf[split.consumed:]) if split.consumed < len(buf) else b""
                    self.bytes_done = base
                    now = time.perf_counter()
                    if progress is not None and (final or now - last_report >= PROGRESS_INTERVAL or last_report == 0.0):
                        last_report = now
                        progress(Progress(self._rows, self._bad_count, base, self.size, final))
                    if final:
                        self.complete = True
                        break
                    if len(carry) >= chunk and split.consumed == 0:
                        chunk *= 2  # one message longer than a chunk
                    else:
                        chunk = self.chunk_bytes
        except OSError as err:
            self.error = f"cannot read capture {self.path}: {err.strerror or err}"
        if progress is not None and not self.complete:
            progress(Progress(self._rows, self._bad_count, base, self.size, True))

    def _reserve(self, extra: int, walked: int) -> None:
        need = self._rows + extra
        have = self._cols["offset"].size
        if need <= have:
            return
        # Estimate the whole capture's rows from the bytes walked so far: usually one
        # allocation for the whole file instead of repeated doubling (np.zeros pages
        # are only touched as rows arrive).
        estimate = int(need * self.size / max(walked, 1) * 1.05) + 1024
        capacity = max(need, 2 * have, estimate)
        for name, dt in COLUMNS.items():
            grown = np.zeros(capacity, dt)
            grown[: self._rows] = self._cols[name][: self._rows]
            self._cols[name] = grown

    def _append(self, split) -> None:
        n_p = int(split.pkt_pos.size)
        bad = split.bad
        n_b = len(bad)
        n = n_p + n_b
        if n == 0:
            return
        payload, pos, lens = split.payload, split.pkt_pos, split.pkt_len

        token = np.zeros(n_p, np.int64)
        price_raw = np.zeros(n_p, np.int64)
        ets = np.zeros(n_p, np.int64)
        kinds = _KIND_OF_LENGTH[lens] if n_p else np.zeros(0, np.uint8)
        if n_p:
            head = _gather_rows(payload, pos, 8).view(">u4")
            token = head[:, 0].astype(np.int64)
            price_raw = head[:, 1].astype(np.int64)
            for length, variants in protocol.VARIANTS.items():
                rows = np.flatnonzero(lens == length)
                if not rows.size:
                    continue
                matrix = _gather_rows(payload, pos[rows], length)
                for variant in variants:
                    hit = np.ones(rows.size, dtype=bool)
                    for offset, low, high in variant.evidence.checks:
                        value = matrix[:, offset : offset + 4].view(">u4")[:, 0]
                        hit &= (value >= low) & (value < high)
                    kinds[rows[hit]] = KIND_CODES[variant.kind]
            for code in np.unique(kinds).tolist():
                at = _TIME_OFFSET_OF_KIND.get(code)
                if at is None:
                    continue
                rows = np.flatnonzero(kinds == code)
                ets[rows] = _gather_rows(payload, pos[rows] + at, 4).view(">u4")[:, 0]
        recv_p = (split.pkt_recv_ns // 1000) if split.pkt_recv_ns is not None else np.zeros(n_p, np.int64)
        texts = [t for t in ((split.container or {}).get("frames") or ()) if t.get("offset") is not None
                 and t["offset"] >= 0]
        n_t = len(texts)
        n += n_t
        segment = (token & 0xFF).astype(np.uint8)

        b_off = np.array([b.offset for b in bad] + [t["offset"] for t in texts], np.int64)
        order = np.argsort(np.concatenate([split.pkt_offset, b_off]), kind="stable")
        first = self._rows

        def merged(packet_values, bad_values, dtype, text_values=None):
            other = np.asarray(bad_values, dtype)
            if n_t:
                tv = np.zeros(n_t, dtype) if text_values is None else np.asarray(text_values, dtype)
                other = np.concatenate([other[:n_b], tv])
            out = np.concatenate([np.asarray(packet_values, dtype), other])
            return out[order]

        zeros_b = np.zeros(n_b, np.int64)
        flags_p = np.where(_REAL_SEGMENT[segment], 0, FLAG_ODD_SEGMENT).astype(np.uint8)
        # Time going backwards: against the running maximum of every earlier packet time.
        has_t = np.flatnonzero(ets > 0)
        if has_t.size:
            t = ets[has_t]
            running = np.maximum.accumulate(np.concatenate([[self._time_max], t]))
            back = t < running[:-1]
            flags_p[has_t[back]] |= FLAG_TIME_BACK
            self._time_max = int(running[-1])
        if self.symbol_of is not None and n_p:
            flags_p |= np.where(self._resolved(token), 0, FLAG_UNRESOLVED).astype(np.uint8)
        suspect_at = np.zeros(0, np.int64)
        suspect_why: list = []
        if n_p:
            # The decoder's own rules (the same as decode/ingest store), over only the
            # fields they read: no tick rows are built for the index.
            code = suspect_codes_of(split, self._fallback_us)
            suspect_at = np.flatnonzero(code)
            if suspect_at.size:
                suspect_why = [REASONS[c - 1] for c in code[suspect_at].tolist()]
                flags_p[suspect_at] |= FLAG_SUSPECT

        text_recv = [(t.get("recv_ns") or 0) // 1000 for t in texts]
        columns = {
            "offset": merged(split.pkt_offset, b_off, np.int64, [t["offset"] for t in texts]),
            "length": merged(lens, [b.length for b in bad], np.int64, [t["length"] for t in texts]),
            "msg": merged(split.pkt_msg, [-1 if b.msg_seq is None else b.msg_seq for b in bad], np.int64,
                          np.full(n_t, -1)),
            "seq": merged(split.pkt_seq, np.full(n_b, -1), np.int32, np.full(n_t, -1)),
            "kind": merged(kinds, np.full(n_b, KIND_BAD), np.uint8, np.full(n_t, KIND_TEXT)),
            "token": merged(token, zeros_b, np.int64),
            "segment": merged(segment, zeros_b, np.uint8),
            "last_price": merged(price_raw / _DIVISORS[segment], np.zeros(n_b), np.float64),
            "exchange_time": merged(ets, zeros_b, np.int64),
            "recv_time": merged(recv_p, zeros_b, np.int64, text_recv),
            "flags": merged(flags_p, np.full(n_b, FLAG_BAD), np.uint8, np.zeros(n_t)),
        }
        self._reserve(n, self.bytes_done + split.consumed)
        for name, values in columns.items():
            self._cols[name][first:first + n] = values
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        for row, why in zip((rank[suspect_at] + first).tolist(), suspect_why, strict=True):
            self.suspect[row] = why
        for row, t in zip((rank[n_p + n_b:] + first).tolist(), texts, strict=True):
            self.texts[row] = t
        if n_b:
            bad_at = rank[n_p:n_p + n_b] + first  # row of each bad region (bad list is in file order)
            for row, b in zip(bad_at.tolist(), bad, strict=True):
                self.reasons[row] = b.reason
            grown = np.zeros(max(self._bad_rows.size * 2, self._bad_count + n_b, 64), np.int64)
            grown[: self._bad_count] = self._bad_rows[: self._bad_count]
            grown[self._bad_count: self._bad_count + n_b] = np.sort(bad_at)
            self._bad_rows = grown
            self._bad_count += n_b
        self._rows = first + n  # publish last: readers never see half-written rows

    def _resolved(self, token: np.ndarray) -> np.ndarray:
        """Whether a master names each token; asks ``symbol_of`` once per new distinct token."""
        distinct = np.unique(token)
        for t in distinct[~np.isin(distinct, np.fromiter(self.symbols, np.int64, len(self.symbols)))].tolist():
            try:
                self.symbols[t] = self.symbol_of(t)
            except Exception:  # a lookup problem must not stop indexing: the token stays unnamed
                self.symbols[t] = None
        self._named = np.array(sorted(t for t, s in self.symbols.items() if s), np.int64)
        return np.isin(token, self._named)

    # -- one row -------------------------------------------------------------------------------

    def _read(self, start: int, length: int) -> bytes:
        with self._lock, open(self.path, "rb") as f:
            f.seek(max(0, start))
            return f.read(max(0, length))

    def view(self, row: int, *, instrument_name: Callable[[int], str | None] | None = None) -> PacketView:
        """The bytes, byte roles and dissection of ``row`` (0-based)."""
        if not 0 <= row < self._rows:
            raise IndexError(row)
        c = self._cols
        offset, length = int(c["offset"][row]), int(c["length"][row])
        msg = int(c["msg"][row])
        msg = None if msg < 0 else msg
        name_of = instrument_name or self.symbol_of
        if int(c["kind"][row]) == KIND_TEXT:
            return self._view_text(row, offset, length)
        if self.framing in ("base64", "har"):
            return self._view_base64(row, offset, length, msg, name_of)
        bad = bool(c["flags"][row] & FLAG_BAD)
        located = self._locate_message(row) if msg is not None else None
        if bad:
            reason = self.reasons.get(row, "bad region")
            raw = self._read(offset, min(length, BAD_VIEW_CAP))
            dissection = _bad_dissection(offset, length, raw, reason)
            if reason == f"unknown packet length {length}" and len(raw) == length:
                # A whole packet skipped by its length prefix: show what its token would be.
                dissection = dissect_packet(raw, offset, instrument_name=name_of)
                dissection.kind = "bad"
            if located is not None and located[0] <= offset and offset + length <= located[1]:
                data, base, regions = self._message_bytes(row, located)
            else:
                data, base, regions = raw, offset, []
            regions.append(ByteRegion(offset, offset + length, "bad", reason))
            return PacketView(row, offset, length, "bad", msg, data, base, regions, dissection, reason)
        body = self._read(offset, length)
        dissection = dissect_packet(body, offset, instrument_name=name_of)
        if row in self.suspect:
            dissection.experts.insert(0, Expert(SEVERITY_WARNING, f"suspect value: {self.suspect[row]} "
                                                "(stored with this suspect_reason; README, Suspect ticks)", offset))
        if located is not None:
            data, base, regions = self._message_bytes(row, located)
        else:
            data, base, regions = body, offset, []
        regions.append(ByteRegion(offset, offset + length, "current", f"packet {row + 1}: {length} bytes"))
        return PacketView(row, offset, length, dissection.kind, msg, data, base, regions, dissection)

    def _view_text(self, row: int, offset: int, length: int) -> PacketView:
        frame = self.texts.get(row, {})
        raw = self._read(offset, min(length, BAD_VIEW_CAP))
        dissection = _text_dissection(offset, length, frame)
        regions = [ByteRegion(offset, offset + length, "current", f"{dissection.fields[0].meaning}: {length} bytes")]
        return PacketView(row, offset, length, "text frame", None, raw, offset, regions, dissection, None,
                          "a text frame of the socket, as it is in the file")

    def _message_rows(self, row: int) -> tuple[int, int]:
        """First and last row of the message holding ``row`` (rows of a message are adjacent)."""
        c = self._cols
        n = self._rows
        m = int(c["msg"][row])
        lo = max(0, row - 70_000)
        before = c["msg"][lo:row + 1]
        diff = np.flatnonzero(before != m)
        first = lo + (int(diff[-1]) + 1 if diff.size else 0)
        hi = min(n, row + 70_000)
        after = c["msg"][row:hi]
        diff = np.flatnonzero(after != m)
        last = row + (int(diff[0]) - 1 if diff.size else after.size - 1)
        return first, last

    def _locate_message(self, row: int) -> tuple[int, int, int, bool] | None:
        """(message start, message end, framing prefix start, has a header) of the row's
        message, from its first row and its own packet count and length prefixes; None
        when the bytes do not say (a bare packet body, a message broken at its start)."""
        c = self._cols
        first, last = self._message_rows(row)
        first_offset = int(c["offset"][first])
        fmt = RECORD_FORMATS.get(self.framing)
        prefix = fmt.header if fmt is not None else 0
        if c["flags"][first] & FLAG_BAD:
            reason = self.reasons.get(first, "")
            if reason.startswith("JSON text frame") or "message is not a heartbeat" in reason:
                # The whole message is the bad region: there is no header to show.
                return first_offset, first_offset + int(c["length"][first]), max(0, first_offset - prefix), False
            if not reason.startswith("unknown packet length"):
                # Message-level faults start at the failing packet's length prefix.
                if not (reason.startswith("packet 0 ") or "packet 0's" in reason
                        or reason.startswith("message with 0")):
                    return None
                first_offset += protocol.PACKET_LENGTH_SIZE
        elif int(c["seq"][first]) != 0:
            return None
        start = first_offset - protocol.MESSAGE_COUNT_SIZE - protocol.PACKET_LENGTH_SIZE
        if start < 0:
            return None
        last_end = int(c["offset"][last]) + int(c["length"][last])
        if last_end - start > HEX_WINDOW_CAP:
            return None
        head = self._read(start, last_end - start + 2)
        if len(head) < 4:
            return None
        j = 2
        for _, at, length in message_packets(head, 0, len(head)):
            j = at + 2 + length
            if j >= last_end - start:
                break
        end = start + min(j, len(head))
        end = max(end, last_end)
        return start, end, max(0, start - prefix), True

    def _message_bytes(self, row: int, located) -> tuple[bytes, int, list[ByteRegion]]:
        start, end, frame, has_header = located
        data = self._read(frame, end - frame)
        regions: list[ByteRegion] = []
        if frame < start:
            fmt = RECORD_FORMATS[self.framing]
            endian = ", little-endian" if fmt.order == "<" else ""
            label = (f"receive time (u64 ns) + record length (u32){endian}" if fmt.time_at is not None
                     else f"record length (u32){endian}")
            regions.append(ByteRegion(frame, start, "framing", label))
        if not has_header:
            return data, frame, regions
        msg = data[start - frame:]
        count = int.from_bytes(msg[:2], "big") if len(msg) >= 2 else 0
        regions.append(ByteRegion(start, start + 2, "header", f"message header: {count} packets"))
        for k, j, length in message_packets(msg, 0, len(msg)):
            regions.append(ByteRegion(start + j, start + j + 2, "prefix", f"packet {k} length prefix: {length}"))
            body_end = min(start + j + 2 + length, end)
            regions.append(ByteRegion(start + j + 2, body_end, "packet", f"packet {k} of the message ({length} bytes)"))
        return data, frame, regions

    def _view_base64(self, row, offset, length, msg, name_of) -> PacketView:
        """A text capture's bytes (base64 lines, a HAR's frames) are text: show the decoded
        message whose base64 text holds the row.

        Framing reports decoded byte ``d`` of a message at text offset ``start + 4d//3``;
        the message's base64 text is the run of base64 characters around the row's offset
        (after a line break, a glued JSON command's ``}`` or a HAR string's quote). The hex
        pane shows the decoded bytes at virtual addresses laid out so the packet body
        starts at the row's offset, and fields keep the CLI's offsets."""
        bad = bool(self._cols["flags"][row] & FLAG_BAD)
        with self._lock, open(self.path, "rb") as f:
            lo = max(0, offset - (HEX_WINDOW_CAP * 4) // 3)
            f.seek(lo)
            window = f.read(offset - lo + (HEX_WINDOW_CAP * 4) // 3)
        at = offset - lo
        begin = at
        while begin > 0 and window[begin - 1] in _BASE64_CHARS:
            begin -= 1
        end = at
        while end < len(window) and window[end] in _BASE64_CHARS:
            end += 1
        text = window[begin:end]
        text_start = lo + begin
        note = f"decoded from the base64 text at file offset {text_start:#x}; addresses are virtual"
        if bad:
            reason = self.reasons.get(row, "bad region")
            raw = self._read(offset, min(length, BAD_VIEW_CAP))
            dissection = _bad_dissection(offset, length, raw, reason)
            return PacketView(row, offset, length, "bad", msg, raw, offset,
                              [ByteRegion(offset, offset + length, "bad", reason)], dissection, reason,
                              "the bad bytes as they are in the file (text)")
        try:
            decoded = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            decoded = b""
        within = -((-3 * (offset - text_start)) // 4)  # inverse of 4d//3
        body = decoded[within:within + length]
        dissection = dissect_packet(body, offset, instrument_name=name_of)
        base = offset - within
        regions: list[ByteRegion] = []
        if within >= 4 and len(decoded) >= 4:
            count = int.from_bytes(decoded[:2], "big")
            regions.append(ByteRegion(base, base + 2, "header", f"message header: {count} packets"))
            for k, j, n in message_packets(decoded, 0, len(decoded)):
                regions.append(ByteRegion(base + j, base + j + 2, "prefix", f"packet {k} length prefix: {n}"))
                regions.append(ByteRegion(base + j + 2, base + min(j + 2 + n, len(decoded)), "packet",
                                          f"packet {k} of the message ({n} bytes)"))
        regions.append(ByteRegion(offset, offset + length, "current", f"packet {row + 1}: {length} bytes"))
        return PacketView(row, offset, length, dissection.kind, msg, decoded, base, regions, dissection, None, note)


def _text_dissection(offset: int, length: int, frame: dict) -> Dissection:
    direction = frame.get("direction") or "receive"
    kind = "sent command" if direction == "send" else "received text frame"
    d = Dissection(offset, length, "text frame", None)
    text = frame.get("text") or ""
    d.fields.append(DissectedField("direction", offset, 0, b"", direction, meaning=kind, generated=True))
    recv = frame.get("recv_ns")
    if recv:
        when = _epoch_text(recv // 10**9) + f".{(recv // 1000) % 10**6:06d}"
        d.fields.append(DissectedField("time", offset, 0, b"", when, meaning="when the browser saw the frame (UTC)",
                                       generated=True))
    d.fields.append(DissectedField("text", offset, length, text.encode("utf-8", "replace")[:BAD_VIEW_CAP],
                                   text[:200] + ("…" if len(text) > 200 else ""),
                                   meaning="JSON text: not a binary market-data message, never a tick"))
    d.experts.append(Expert(SEVERITY_NOTE, f"{kind}: counted in the summary, not decoded as ticks", offset))
    return d


def _epoch_text(seconds: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(int(seconds), _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _bad_dissection(offset: int, length: int, raw: bytes, reason: str) -> Dissection:
    d = Dissection(offset, length, "bad", None)
    shown = raw[:64].hex() + ("…" if length > 64 else "")
    d.fields.append(DissectedField("raw", offset, length, raw, shown, meaning=reason))
    d.experts.append(Expert(SEVERITY_ERROR, reason, offset))
    return d


def symbol_lookup(book) -> Callable[[int], str | None] | None:
    """``token -> tradingsymbol`` from an InstrumentBook (the latest master naming it)."""
    if book is None or not len(book):
        return None

    def lookup(token: int) -> str | None:
        hits = book.lookup(int(token))
        if not hits:
            return None
        dated = [h for h in hits if h[0].date is not None] or hits
        row = dated[-1][1]
        return row.get("tradingsymbol") or row.get("name") or str(token)

    return lookup


def build_index(path, framing: str | None = None, *, symbol_of=None) -> PacketIndex:
    """A complete index, built on the calling thread (the CLI)."""
    index = PacketIndex(path, framing, symbol_of=symbol_of)
    index.build()
    if index.error:
        raise InputError(index.error)
    return index

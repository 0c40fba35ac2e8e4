"""Decoding captures into tick tables: packets -> Arrow, vectorised, driven by LAYOUTS.

This module owns turning the packets found by ``app.core.framing`` into
``schema.DECODED_SCHEMA`` rows, and the two entry points everyone else uses:
``CaptureReader`` (stream a capture of any size chunk by chunk, in bounded memory) and
``decode_bytes`` (a whole capture held in memory).

There is no per-packet Python: packets are grouped by length, each group is gathered
into one uint8 matrix with a single fancy index over a sliding-window view of the
chunk, every ``Field`` of the layout is read as a big-endian view of its columns, and
Arrow arrays are built straight from the resulting numpy arrays.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core import market_time, protocol, schema
from app.core.digest import bytes_sha256, file_sha256
from app.core.framing import (
    BAD_RAW_CAP,
    DETECT_HEAD,
    FRAMINGS,
    BadPacket,
    ChunkSplit,
    Framer,
    detect_framing,
    detect_framing_evidence,
)
from app.core.market_time import IST
from app.core.suspect import PRICE_COLUMNS, TickValues, count_suspect, reasons_of_codes, suspect_codes
from app.errors import InputError, UsageError

__all__ = [
    "BAD_RAW_CAP",
    "FRAMINGS",
    "BadPacket",
    "CaptureReader",
    "DecodeSummary",
    "DecodedBatch",
    "decode_bytes",
    "decode_packets",
    "detect_framing",
    "file_sha256",
    "filename_time",
]


_DIVISORS = np.full(256, protocol.DEFAULT_DIVISOR, dtype=np.float64)
_REAL_SEGMENT = np.zeros(256, dtype=bool)
for _code, _segment in protocol.SEGMENTS.items():
    _DIVISORS[_code] = _segment.divisor
    _REAL_SEGMENT[_code] = True

# Prices are unsigned fields over positive divisors: never below 0 (TickValues.nonnegative).
assert (_DIVISORS > 0).all()
assert not any(f.signed for layout in protocol.ALL_LAYOUTS for f in layout.fields if f.column and f.price)

_MODES = protocol.MODES
_MODE_NAMES = pa.array(_MODES, pa.string())
_SOURCE_NAMES = pa.array(schema.TIME_SOURCES, pa.string())
_SOURCE_INDEX = {name: i for i, name in enumerate(schema.TIME_SOURCES)}

_TIME_COLUMNS = {f.column for layout in protocol.ALL_LAYOUTS for f in layout.fields if f.column and f.timestamp}
_COLUMN_TYPES = {f.name: f.type for f in schema.DECODED_SCHEMA}
# list columns' value types, read once: pyarrow hands out a new object per ``.value_type``
# read, and ``_nulls`` caches by identity
_VALUE_TYPES = {name: t.value_type for name, t in _COLUMN_TYPES.items() if pa.types.is_list(t)}

_FILENAME_TIME = re.compile(r"(?<!\d)(\d{8})[_-]?(\d{6})(?!\d)")


def filename_time(name: str) -> datetime | None:
    """The capture start time a file name carries (``..._YYYYMMDD_HHMMSS...``, IST), as UTC."""
    match = _FILENAME_TIME.search(os.path.basename(name))
    if not match:
        return None
    try:
        local = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return local.replace(tzinfo=IST).astimezone(UTC)


# --- results --------------------------------------------------------------------------


def _epoch_us_to_datetime(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


@dataclass
class DecodeSummary:
    """What decoding a capture found; ``to_dict()`` is the ``decode --json`` summary."""

    path: str
    file_id: str
    framing: str
    bytes: int
    messages: int = 0
    packets: int = 0
    heartbeats: int = 0
    bad_packets: int = 0
    bytes_accounted: int = 0
    accounted: dict[str, int] = field(
        default_factory=lambda: {"packet": 0, "header": 0, "framing": 0, "heartbeat": 0, "bad": 0}
    )
    packets_by_length: dict[int, int] = field(default_factory=dict)
    first_tick_time: datetime | None = None
    last_tick_time: datetime | None = None
    invalid_segments: int = 0  # packets whose segment byte is not a Kite segment
    distinct_tokens: int = 0
    bad_bytes_by_reason: dict[str, int] = field(default_factory=dict)  # reason kind -> bytes
    suspect: int = 0  # ticks stored with a suspect_reason (values that cannot be real)
    suspect_by_reason: dict[str, int] = field(default_factory=dict)
    framing_detected: bool = True
    framing_evidence: str = ""  # why the detector chose ``framing`` (or "given")
    # Text containers (base64 sessions, HAR): what the socket carried besides binary
    # messages, never counted as bad bytes or ticks.
    text_frames: int = 0  # received text frames (JSON quotes, order updates, errors)
    sent_frames: int = 0  # frames the client sent (subscribe/mode commands)
    text_lines: int = 0  # a terminal session's separator lines
    connections: list = field(default_factory=list)  # HAR: url, messages, heartbeats, ... per WebSocket
    complete: bool = False  # False until every byte was walked (cancelled, or still running)
    # Decoder work (candidate checks + pre-filtered bytes + packet-chain steps): linear in
    # ``bytes`` on any input; tests assert it, it is not part of the JSON summary.
    work: int = 0

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "file_id": self.file_id,
            "framing": self.framing,
            "framing_detected": self.framing_detected,
            "framing_evidence": self.framing_evidence,
            "bytes": self.bytes,
            "messages": self.messages,
            "packets": self.packets,
            "heartbeats": self.heartbeats,
            "bad_packets": self.bad_packets,
            "bytes_accounted": self.bytes_accounted,
            "accounted": dict(self.accounted),
            "packets_by_length": {str(k): v for k, v in sorted(self.packets_by_length.items())},
            "invalid_segments": self.invalid_segments,
            "distinct_tokens": self.distinct_tokens,
            "bad_bytes_by_reason": dict(self.bad_bytes_by_reason),
            "suspect": self.suspect,
            "suspect_by_reason": dict(sorted(self.suspect_by_reason.items())),
            "text_frames": self.text_frames,
            "sent_frames": self.sent_frames,
            "text_lines": self.text_lines,
            "connections": [dict(c) for c in self.connections],
            "first_tick_time": self.first_tick_time.isoformat() if self.first_tick_time else None,
            "last_tick_time": self.last_tick_time.isoformat() if self.last_tick_time else None,
            "complete": self.complete,
        }


@dataclass
class DecodedBatch:
    ticks: pa.Table  # DECODED_SCHEMA, rows in file order
    bad: list[BadPacket]
    bytes_done: int  # file bytes consumed so far (for progress)


# --- packets -> Arrow --------------------------------------------------------------------


def _field_values(matrix: np.ndarray, f) -> np.ndarray:
    """A big-endian integer field of every row of a packet matrix, as int64."""
    return matrix[:, f.offset : f.end].view(f.dtype)[:, 0].astype(np.int64)


def _gather_rows(payload: np.ndarray, pos: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` bytes at each of ``pos``, as a contiguous (len(pos), length) matrix.

    The payload is viewed as overlapping ``length``-byte void items (stride 1), so one
    fancy index copies whole rows with memcpy instead of byte by byte.
    """
    if payload.size < length:
        return np.zeros((0, length), dtype=np.uint8)
    rows = np.ndarray(
        shape=(payload.size - length + 1,), dtype=np.dtype((np.void, length)), buffer=payload, strides=(1,)
    )
    return rows[pos].view(np.uint8).reshape(-1, length)


# Which layouts carry each column (indexed by position in ALL_LAYOUTS): validity is one
# lookup per row, not a scatter.
_LAYOUT_ID = {id(layout): i for i, layout in enumerate(protocol.ALL_LAYOUTS)}
_HAS_COLUMN: dict[str, np.ndarray] = {}
for _i, _layout in enumerate(protocol.ALL_LAYOUTS):
    for _f in _layout.fields:
        if _f.column:
            _HAS_COLUMN.setdefault(_f.column, np.zeros(len(protocol.ALL_LAYOUTS), dtype=bool))[_i] = True


# Every layout starts with the same head: instrument_token (bytes 0-3), last_price (4-7).
# A batch of several lengths reads the head of all its packets at once, and a length
# whose packets are the head alone (LTP, 8 bytes) needs no group of its own.
HEAD_BYTES = 8
_TOKEN_FIELD = protocol.LAYOUTS[HEAD_BYTES].field("instrument_token")
_LTP_FIELD = protocol.LAYOUTS[HEAD_BYTES].field("last_price")
assert all(
    layout.fields[:2] == (_TOKEN_FIELD, _LTP_FIELD) and _LTP_FIELD.end == HEAD_BYTES for layout in protocol.ALL_LAYOUTS
)
_HEAD_ONLY = frozenset(
    layout.length
    for layout in protocol.LAYOUTS.values()
    if layout.depth is None
    and layout.length not in protocol.VARIANTS
    and all(f.end <= HEAD_BYTES for f in layout.fields)
)
assert _HEAD_ONLY == {HEAD_BYTES}
# default layout id and mode code of each packet length; the mode code of each layout id
_LENGTH_LAYOUT = np.zeros(protocol.MAX_PACKET_LENGTH + 1, dtype=np.int16)
for _length, _layout in protocol.LAYOUTS.items():
    _LENGTH_LAYOUT[_length] = _LAYOUT_ID[id(_layout)]
_LAYOUT_MODE = np.array([_MODES.index(layout.mode) for layout in protocol.ALL_LAYOUTS], dtype=np.int8)
_LENGTH_MODE = _LAYOUT_MODE[_LENGTH_LAYOUT]  # (indexed by an int64 length: ~4x a lookup by int16 layout id)


def layout_groups(payload: np.ndarray, pos: np.ndarray, lens: np.ndarray, skip: frozenset = frozenset()):
    """(rows, layout, matrix) for each layout present among packets, vectorised.

    Packets of a length with variants (``protocol.VARIANTS``) go to the variant whose
    evidence their bytes show, else to the length's default layout. Lengths in ``skip``
    (without variants) are left out, unless they are the only length.
    """
    n = int(pos.size)
    kept, kept_lens = None, lens  # the packets not skipped (None: all) and their lengths
    if n and lens.min() == lens.max():  # one length (two reductions; a bincount costs ~15x)
        lengths, counts = [int(lens[0])], [n]
    else:
        if skip and n:
            other = np.ones(n, dtype=bool)
            for length in skip:
                other &= lens != length
            kept = np.flatnonzero(other)
            kept_lens = lens[kept]
        # O(n), no sort (lengths are < 2^16); ~2.4 ns a packet: skipped packets are not counted
        per_length = np.bincount(kept_lens) if kept_lens.size else np.zeros(0, np.int64)
        lengths = np.flatnonzero(per_length)
        lengths, counts = lengths.tolist(), per_length[lengths].tolist()
    for length, count in zip(lengths, counts, strict=True):
        every = count == n
        if length in skip and not every:
            continue
        if every:
            rows = None
        elif kept is None:
            rows = np.flatnonzero(lens == length)
        else:
            rows = kept if count == kept.size else kept[np.flatnonzero(kept_lens == length)]
        matrix = _gather_rows(payload, pos if every else pos[rows], length)
        rest = None
        for variant in protocol.VARIANTS.get(length, ()):
            hit = np.ones(len(matrix), dtype=bool)
            for offset, low, high in variant.evidence.checks:
                value = matrix[:, offset : offset + 4].view(">u4")[:, 0]
                hit &= (value >= low) & (value < high)
            if rest is not None:
                hit &= rest
            if hit.any():
                yield (np.flatnonzero(hit) if every else rows[hit]), variant, matrix[hit]
                rest = ~hit if rest is None else rest & ~hit
        if rest is None:
            yield (slice(None) if every else rows), protocol.LAYOUTS[length], matrix
        elif rest.any():
            yield (np.flatnonzero(rest) if every else rows[rest]), protocol.LAYOUTS[length], matrix[rest]


_REPEATED: dict[str, pa.Array] = {}  # text -> that text repeated, sliced for a batch
_REPEATED_KEEP = 8  # texts kept (a file id, the mode and time-source names)


def _repeated_string(text: str, n: int) -> pa.Array:
    """``text`` in each of ``n`` rows, as a string array built from its buffers (a take
    of a one-element array copies row by row, ~4x slower). Batches of up to a few sub-batches
    are slices (zero-copy) of one kept array per text: a 64-character file id is ~1 MB of
    string data per 16k rows, else built again for every batch."""
    got = _REPEATED.get(text)
    if got is not None and len(got) >= n:
        return got.slice(0, n)
    data = text.encode()
    keep = n <= 8 * SUB_BATCH_PACKETS and len(data) <= 256
    rows = max(n, 2 * SUB_BATCH_PACKETS) if keep else n
    if rows == 0 or len(data) * rows >= 1 << 31:  # empty, or past 32-bit string offsets
        return pa.array([text], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))
    offsets = np.arange(rows + 1, dtype=np.int32) * np.int32(len(data))
    array = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data * rows))
    if keep:
        if len(_REPEATED) >= _REPEATED_KEEP and text not in _REPEATED:
            _REPEATED.clear()
        _REPEATED[text] = array
    return array.slice(0, n) if rows != n else array


def _names(names: tuple, array: pa.Array, code: np.ndarray) -> pa.Array:
    """The string column of ``code`` (indexes into ``names``; negative: null): one name
    repeated built from its buffers when every row has it (a batch of one mode, one time
    source: the usual case), nulls when no row has one, else a take (of the named rows
    only when they are few)."""
    n = code.size
    if n and (code == code[0]).all():
        if code[0] >= 0:
            return _repeated_string(names[int(code[0])], n)
        return _nulls(n, pa.string())
    named = code >= 0
    count = int(np.count_nonzero(named))
    if count == 0:
        return _nulls(n, pa.string())
    if count == n:  # several names, no null: indexes without a mask (~40% of the take's time)
        return array.take(pa.array(code))
    if count * 8 >= n:
        return array.take(pa.array(code, mask=~named))
    # Few named rows (a damaged capture's odd timed packet among ~1000 untimed ones):
    # offsets from the name lengths, the data taken for the named rows alone.
    lengths = np.array([len(name.encode()) for name in names] + [0], dtype=np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths[np.where(named, code, len(names))], out=offsets[1:])
    data = array.take(pa.array(code[named])).buffers()[2]
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), data, pa.py_buffer(np.packbits(named, bitorder="little")), n - count
    )


# id of an Arrow type -> (that type, an all-null array of it), sliced (zero-copy) for a
# batch's absent columns. Keyed by identity: hashing a DataType costs ~0.3-1.3 us (a list
# type the most), a dozen times per batch; the entry holds the type so its id stays its own.
_NULLS: dict[int, tuple[pa.DataType, pa.Array]] = {}


def _nulls(n: int, type_: pa.DataType) -> pa.Array:
    """``n`` nulls of ``type_``: a slice of one kept all-null array (a batch's absent
    columns, ~15 of them for quote-only packets, each a zeroed buffer to allocate else)."""
    got = _NULLS.get(id(type_))
    if got is None or got[0] is not type_ or len(got[1]) < n:
        if len(_NULLS) >= 64:  # types made per call by some caller: keep the cache small
            _NULLS.clear()
        got = _NULLS[id(type_)] = (type_, pa.nulls(max(n, 2 * SUB_BATCH_PACKETS), type_))
    return got[1].slice(0, n)


def _all_true(mask: np.ndarray | None, n: int) -> np.ndarray | None:
    return np.ones(n, dtype=bool) if mask is None else mask


# numpy dtype of the values buffer of the Arrow types a decoded column has, by type id
# (an int: a DataType's own hash costs ~0.3-1 us); every timestamp is 64-bit.
_BUFFER_DTYPES = {
    pa.float64().id: np.dtype(np.float64),
    pa.int64().id: np.dtype(np.int64),
    pa.int32().id: np.dtype(np.int32),
    schema.UTC_TIME.id: np.dtype(np.int64),
    pa.date32().id: np.dtype(np.int32),
}


def _with_mask(values: np.ndarray, valid: np.ndarray | None, type_: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array, null where ``valid`` is False (None: all valid).

    Built from buffers, the values zero-copy and the validity one ``packbits``:
    ``pa.array(values, mask=~valid)`` costs ~10x more per row. All-null: a slice of kept
    nulls."""
    if valid is None:
        return pa.array(values, type=type_)
    n = values.size
    count = int(np.count_nonzero(valid))
    if count == n:
        return pa.array(values, type=type_)
    if count == 0:
        return _nulls(n, type_)
    expected = _BUFFER_DTYPES.get(type_.id)  # (a dtype compares equal to None: test it apart)
    if expected is None or values.dtype != expected or not values.flags.c_contiguous:
        return pa.array(values, type=type_, mask=~valid)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type_, n, [bitmap, pa.py_buffer(values)], null_count=n - count)


@dataclass
class PacketStats:
    packets_by_length: dict[int, int]
    invalid_segments: int
    tokens: np.ndarray  # the distinct tokens, in no order
    min_tick_us: int | None
    max_tick_us: int | None
    suspect: dict[str, int] = field(default_factory=dict)  # suspect ticks by reason code


def _packet_fields(split: ChunkSplit, wanted: frozenset | None = None):
    """Field values of every packet of a chunk, numpy only (``wanted``: only those columns).

    Returns (values, valid, token, mode_code, layout_id, depth_groups, packets_by_length):
    ``values[column]`` holds 0 where a packet has no such field and ``valid[column]``
    says which do (None: all).
    """
    n = int(split.pkt_pos.size)
    payload = split.payload
    pos, lens = split.pkt_pos, split.pkt_len

    values: dict[str, np.ndarray] = {}
    token = mode_code = layout_id = None
    divisor_all = None
    depth_groups = []  # (row indexes, layout, matrix, divisors)
    packets_by_length: dict[int, int] = {}
    present_ids: set[int] = set()
    group_rows: dict[int, np.ndarray | slice] = {}  # layout id -> its group's rows
    skip: frozenset = frozenset()
    if n and (lens.min() != lens.max() or int(lens[0]) in protocol.VARIANTS):
        # Several lengths (or layouts): token, last price, layout and mode of every packet
        # at once (no scatter per group); groups read the rest, LTP packets need no group.
        head = _gather_rows(payload, pos, HEAD_BYTES)
        token = _field_values(head, _TOKEN_FIELD)
        divisor_all = _DIVISORS[token & 0xFF]
        if wanted is None or _LTP_FIELD.column in wanted:
            values[_LTP_FIELD.column] = _field_values(head, _LTP_FIELD) / divisor_all
        layout_id = _LENGTH_LAYOUT[lens]
        mode_code = _LENGTH_MODE[lens]
        skip = _HEAD_ONLY
    head_done = (_TOKEN_FIELD.column, _LTP_FIELD.column) if skip else (_TOKEN_FIELD.column,)
    grouped = 0

    for rows, layout, matrix in layout_groups(payload, pos, lens, skip):
        packets_by_length[layout.length] = packets_by_length.get(layout.length, 0) + len(matrix)
        grouped += len(matrix)
        lid = _LAYOUT_ID[id(layout)]
        present_ids.add(lid)
        group_rows[lid] = rows if lid not in group_rows else None  # (None: two groups, ask the look-up)
        # One layout holding every packet (rows is a slice): its arrays are the columns.
        every = isinstance(rows, slice)
        if every:
            if divisor_all is None:  # (else the head pass read every packet's token)
                token = _field_values(matrix, _TOKEN_FIELD)
                divisor = _DIVISORS[token & 0xFF]
            else:
                divisor = divisor_all
            mode_code = np.full(n, _LAYOUT_MODE[lid], dtype=np.int8)
            layout_id = np.full(n, lid, dtype=np.int16)
        else:
            divisor = divisor_all[rows]
            if layout.evidence is not None:  # a variant: not its length's default layout
                layout_id[rows] = lid
                mode_code[rows] = _LAYOUT_MODE[lid]
        for f in layout.fields:
            if f.column is None or f.column in head_done:
                continue
            if wanted is not None and f.column not in wanted:
                continue
            raw = _field_values(matrix, f)
            if f.price:
                raw = raw / divisor
            elif f.timestamp:
                raw *= 1_000_000
            if every:
                values[f.column] = raw
                continue
            column = values.get(f.column)
            if column is None:
                column = values[f.column] = np.zeros(n, dtype=np.float64 if f.price else np.int64)
            column[rows] = raw
        if layout.depth is not None:
            depth_groups.append((rows, layout, matrix, divisor))
    if skip:
        if grouped < n:  # the head-only (LTP) packets
            (length,) = _HEAD_ONLY
            packets_by_length[length] = n - grouped
            present_ids.add(_LAYOUT_ID[id(protocol.LAYOUTS[length])])
    if token is None:  # no packets
        token = np.zeros(n, dtype=np.int64)
        mode_code = np.zeros(n, dtype=np.int8)
        layout_id = np.zeros(n, dtype=np.int16)

    # Columns carried by the same layouts of this chunk share one validity mask (a chunk
    # has a few layouts, so a few masks serve ~20 columns). Masks are shared: never
    # modify one in place.
    valid: dict[str, np.ndarray | None] = {}
    present = sorted(present_ids)
    by_layouts: dict[tuple, np.ndarray | None] = {}
    layout_index = None
    for column in values:
        key = tuple(_HAS_COLUMN[column][present].tolist())
        if key not in by_layouts:
            carriers = [lid for lid, carries in zip(present, key, strict=True) if carries]
            if all(key):
                by_layouts[key] = None
            elif all(isinstance(group_rows.get(lid), np.ndarray) for lid in carriers):
                # The rows of the groups carrying it (a column a layout outside the
                # groups, LTP, carries is one every layout does): a scatter of those rows
                # alone, not a look-up of every packet's layout.
                has = np.zeros(n, dtype=bool)
                for lid in carriers:
                    has[group_rows[lid]] = True
                by_layouts[key] = has
            else:
                if layout_index is None:
                    layout_index = layout_id.astype(np.intp)
                has = _HAS_COLUMN[column][layout_index]
                by_layouts[key] = None if has.all() else has
        has = by_layouts[key]
        if column in _TIME_COLUMNS:
            nonzero = values[column] != 0  # Kite's 0 means absent
            has = nonzero if has is None else has & nonzero
            has = None if has.all() else has
        valid[column] = has
    return values, valid, token, mode_code, layout_id, depth_groups, packets_by_length


_SUSPECT_FIELDS = frozenset(PRICE_COLUMNS) | {"last_traded_quantity", "volume_traded", "exchange_timestamp"}


def _depth_prices(n: int, depth_groups: list, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(row, price) of every depth level of one side, rows ascending, levels in order;
    a level the packet cuts off reads as 0 (as a null level does for the rules)."""
    parts = []  # (row ids, (rows, levels) prices)
    for rows, layout, matrix, divisor in depth_groups:
        depth = layout.depth
        if side not in depth.sides:
            continue
        ef = next(f for f in depth.entry_fields if f.price)
        levels = depth.levels
        start = depth.entry_offset(side, 0)
        stop = start + levels * depth.entry_size
        present = np.array([depth.present(side, level, ef) for level in range(levels)])
        if present.all() and stop <= matrix.shape[1]:
            entries = matrix[:, start:stop].reshape(len(matrix), levels, depth.entry_size)
            raw = entries[:, :, ef.offset : ef.offset + ef.size].view(">u" + str(ef.size))[:, :, 0]
            price = raw.astype("=u" + str(ef.size)).astype(np.float64)  # byte order, then width: faster
        else:
            price = np.zeros((len(matrix), levels), dtype=np.float64)
            for level in np.flatnonzero(present).tolist():
                a = depth.entry_offset(side, level) + ef.offset
                price[:, level] = matrix[:, a : a + ef.size].view(">u" + str(ef.size))[:, 0]
        price /= divisor[:, None]
        row_ids = np.arange(n)[rows] if isinstance(rows, slice) else np.asarray(rows)
        parts.append((row_ids, price))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if len(parts) == 1:
        row_ids, price = parts[0]
        return np.repeat(row_ids, price.shape[1]), price.reshape(-1)
    # Layouts split the rows between them: place each one's levels by row offsets.
    levels_per_row = np.zeros(n, dtype=np.int64)
    for row_ids, price in parts:
        levels_per_row[row_ids] = price.shape[1]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(levels_per_row, out=offsets[1:])
    values_all = np.zeros(int(offsets[-1]), dtype=np.float64)
    for row_ids, price in parts:
        values_all[offsets[:-1][row_ids][:, None] + np.arange(price.shape[1])] = price
    return np.repeat(np.arange(n, dtype=np.int64), levels_per_row), values_all


def _tick_values(
    split: ChunkSplit, values: dict, valid: dict, token: np.ndarray, depth_groups: list, depth: dict | None = None
) -> TickValues:
    """The rules' inputs from packet fields; ``depth``: the depth prices when the caller
    already has them (``_depth_arrays``), else they are read from ``depth_groups``."""
    n = int(split.pkt_pos.size)

    def timed(column):
        if column not in values:
            return None
        ok = valid.get(column)
        return values[column], (np.ones(n, dtype=bool) if ok is None else ok)

    recv = None
    if split.pkt_recv_ns is not None:
        recv_us = split.pkt_recv_ns // 1000
        recv = (recv_us, recv_us > 0)
    return TickValues(
        n=n,
        prices={name: values[name] for name in PRICE_COLUMNS if name in values},
        depth=depth
        if depth is not None
        else {f"{side}_price": _depth_prices(n, depth_groups, side) for side in protocol.DEPTH_SIDES},
        segment=token & 0xFF,
        last_traded_quantity=values.get("last_traded_quantity"),
        volume_traded=values.get("volume_traded"),
        exchange_us=timed("exchange_timestamp"),
        recv_us=recv,
        nonnegative=True,  # unsigned fields over positive divisors (asserted at import)
    )


def suspect_codes_of(split: ChunkSplit, fallback_time_us: int | None = None) -> np.ndarray:
    """``suspect_codes`` of a chunk's packets, reading only the fields the rules need
    (the packet index flags suspect packets this way, without building tick rows)."""
    values, valid, token, _, _, depth_groups, _ = _packet_fields(split, _SUSPECT_FIELDS)
    return suspect_codes(_tick_values(split, values, valid, token, depth_groups), fallback_time_us)


def decode_packets(
    split: ChunkSplit,
    *,
    file_id: str,
    fallback_time_us: int | None = None,
    timings: dict | None = None,
) -> tuple[pa.Table, PacketStats]:
    """Rows of ``DECODED_SCHEMA`` for the packets of one chunk, in file order.

    ``fallback_time_us`` is the file name's time (epoch µs, UTC), the last resort for
    ``tick_time``.
    """
    t0 = time.perf_counter()
    n = int(split.pkt_pos.size)
    lens = split.pkt_len
    values, valid, token, mode_code, layout_id, depth_groups, packets_by_length = _packet_fields(split)
    segment = token & 0xFF
    depth_arrays, rule_depth = _depth_arrays(n, depth_groups)
    t1 = time.perf_counter()

    columns: dict[str, pa.Array] = {}
    columns["file_id"] = _repeated_string(file_id, n)
    columns["msg_seq"] = pa.array(split.pkt_msg, pa.int64())
    columns["pkt_seq"] = pa.array(split.pkt_seq, pa.int32())
    columns["offset"] = pa.array(split.pkt_offset, pa.int64())
    columns["packet_length"] = pa.array(lens.astype(np.int32, copy=False), pa.int32())
    columns["mode"] = _names(_MODES, _MODE_NAMES, mode_code)
    columns["tradable"] = pa.array(segment != protocol.INDICES_SEGMENT, pa.bool_())
    columns["instrument_token"] = pa.array(token, pa.int64())
    columns["segment"] = pa.array(segment.astype(np.int16), pa.int16())
    columns["exchange_token"] = pa.array(token >> 8, pa.int64())

    for column in protocol.WIRE_COLUMNS:
        if column == "instrument_token":
            continue
        type_ = _COLUMN_TYPES[column]
        if column not in values:
            columns[column] = _nulls(n, type_)
            continue
        columns[column] = _with_mask(values[column], valid[column], type_)

    # change = last_price - close; change_percent as the official client's `change`.
    if "close" in values:
        close, has_close = values["close"], valid["close"]
        last = values["last_price"]
        rows = None if has_close is None else np.flatnonzero(has_close)
        if rows is not None and rows.size * 4 < n:  # few packets with a close: those alone
            change, percent = np.zeros(n), np.zeros(n)
            change[rows], percent[rows] = _change(last[rows], close[rows])
        else:
            change, percent = _change(last, close)
        columns["change"] = _with_mask(change, has_close, pa.float64())
        columns["change_percent"] = _with_mask(percent, has_close, pa.float64())
    else:
        columns["change"] = _nulls(n, pa.float64())
        columns["change_percent"] = _nulls(n, pa.float64())
    columns.update(depth_arrays)

    # Best-known time of each tick, by decreasing trust: the packet's own exchange
    # timestamp, then when the capture received it, then another packet of the same
    # message with an exchange timestamp (sent together, so stamped together), and only
    # then its own last_trade_time -- the last *trade*, which may be hours stale for an
    # illiquid instrument -- and last the date in the file name.
    tick = np.zeros(n, dtype=np.int64)
    source = np.full(n, -1, dtype=np.int8)
    ets = values.get("exchange_timestamp")
    ets_ok = valid.get("exchange_timestamp")
    ltt = values.get("last_trade_time")
    ltt_ok = valid.get("last_trade_time")
    ets_ok = _all_true(ets_ok, n)
    ltt_ok = _all_true(ltt_ok, n)
    if ets is not None:
        tick[ets_ok] = ets[ets_ok]
        source[ets_ok] = _SOURCE_INDEX[schema.TIME_SOURCE_EXCHANGE]
    recv_us = None
    if split.pkt_recv_ns is not None:
        recv_us = split.pkt_recv_ns // 1000
        has_recv = recv_us > 0  # 0: this message has no receive time (a HAR frame without one)
        unset = (source < 0) & has_recv
        tick[unset] = recv_us[unset]
        source[unset] = _SOURCE_INDEX[schema.TIME_SOURCE_RECEIVE]
        columns["recv_ts"] = _with_mask(recv_us, has_recv, schema.UTC_TIME)
    else:
        columns["recv_ts"] = _nulls(n, schema.UTC_TIME)
    unset = source < 0
    if ets is not None and n and unset.any():
        # Packets are sorted by message, so each message is a contiguous run.
        msg = split.pkt_msg
        starts = np.flatnonzero(np.concatenate(([True], msg[1:] != msg[:-1])))
        latest = np.maximum.reduceat(np.where(ets_ok, ets, -1), starts)
        per_packet = np.repeat(latest, np.diff(np.append(starts, n)))
        take = unset & (per_packet > 0)
        tick[take] = per_packet[take]
        source[take] = _SOURCE_INDEX[schema.TIME_SOURCE_MESSAGE]
    if ltt is not None:
        take = (source < 0) & ltt_ok
        tick[take] = ltt[take]
        source[take] = _SOURCE_INDEX[schema.TIME_SOURCE_EXCHANGE]
    if fallback_time_us is not None:
        unset = source < 0
        tick[unset] = fallback_time_us
        source[unset] = _SOURCE_INDEX[schema.TIME_SOURCE_FILENAME]
    known = source >= 0
    any_known = bool(known.any())
    columns["tick_time"] = _with_mask(tick, known, schema.UTC_TIME)
    columns["tick_time_source"] = _names(schema.TIME_SOURCES, _SOURCE_NAMES, source)
    if any_known:
        columns["trading_date"] = _with_mask(market_time.trading_days(tick), known, pa.date32())
    else:
        columns["trading_date"] = _nulls(n, pa.date32())

    # The suspect rules read the numpy fields directly (no Arrow round trip).
    reasons = reasons_of_codes(
        suspect_codes(_tick_values(split, values, valid, token, depth_groups, rule_depth), fallback_time_us)
    )
    table = pa.Table.from_arrays([columns[name] for name in schema.DECODED_VALUE_NAMES] + [reasons],
                                 schema=schema.DECODED_SCHEMA)
    t2 = time.perf_counter()
    if timings is not None:
        timings["fields"] = timings.get("fields", 0.0) + (t1 - t0)
        timings["arrow"] = timings.get("arrow", 0.0) + (t2 - t1)

    stats = PacketStats(
        packets_by_length=packets_by_length,
        invalid_segments=int(np.count_nonzero(~_REAL_SEGMENT[segment])),
        tokens=_distinct(token),
        min_tick_us=int(tick[known].min()) if any_known else None,
        max_tick_us=int(tick[known].max()) if any_known else None,
        suspect=count_suspect(reasons),
    )
    return table, stats


def _change(last: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """change = last - close, and change * 100 / close (0 where close is 0)."""
    change = last - close
    percent = np.zeros(close.size)
    np.divide(change * 100, close, out=percent, where=close != 0)
    return change, percent


_RUN_SAMPLE = 64  # neighbours _distinct compares to tell runs of equal tokens


def _distinct(token: np.ndarray) -> np.ndarray:
    """The distinct values of ``token``, in no order: a hash table (Arrow, 3-10x
    np.unique's sort) of every token or of each run's first, or just the one value when a
    min and a max say so."""
    if token.size and token.min() == token.max():
        return token[:1].copy()
    sample = token[: _RUN_SAMPLE + 1]
    if token.size > _RUN_SAMPLE and np.count_nonzero(sample[1:] != sample[:-1]) * 2 < _RUN_SAMPLE:
        # Runs of one instrument's packets (the first neighbours mostly equal; a live
        # capture interleaves instruments and goes on below): the first token of each run
        # alone goes to the hash table, ~1 ns a packet instead of ~5. Same values, in the
        # same first-seen order.
        first = np.empty(token.size, dtype=bool)
        first[0] = True
        np.not_equal(token[1:], token[:-1], out=first[1:])
        token = token[first]
    return pc.unique(token).to_numpy()


def _depth_arrays(n: int, depth_groups: list) -> tuple[dict[str, pa.Array], dict]:
    """The six depth list columns, null rows for packets without that side's depth, and
    the depth prices as the suspect rules read them (``TickValues.depth``).

    Each side has its own offsets (a layout may carry bids only). An entry field the
    packet cuts off (``Depth.limit``) is a null element, never a number; the rules read
    it as 0, as ``_depth_prices`` does.
    """
    out = {}
    rule_depth = {}
    for side in protocol.DEPTH_SIDES:
        groups = [g for g in depth_groups if side in g[1].depth.sides]
        names = [f"{side}_{part}" for part in ("price", "quantity", "orders")]
        if not groups:
            out.update({name: _nulls(n, _COLUMN_TYPES[name]) for name in names})
            rule_depth[f"{side}_price"] = (np.zeros(0, np.int64), np.zeros(0, np.float64))
            continue
        # With one depth layout on this side its levels fill the value arrays in order
        # (rows without depth add no levels), whatever other packets the chunk holds.
        single = len(groups) == 1
        if single and isinstance(groups[0][0], slice):  # every packet has this depth
            levels_per_row = None
            offsets = np.arange(n + 1, dtype=np.int32) * np.int32(groups[0][1].depth.levels)
        else:
            levels_per_row = np.zeros(n, dtype=np.int32)
            for rows, layout, _matrix, _divisor in groups:
                levels_per_row[rows] = layout.depth.levels
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(levels_per_row, out=offsets[1:])
        total = int(offsets[-1])
        flat: dict[str, np.ndarray] = {}
        flat_valid: dict[str, np.ndarray] = {}
        for rows, layout, matrix, divisor in groups:
            depth = layout.depth
            levels = depth.levels
            start = depth.entry_offset(side, 0)
            stop = start + levels * depth.entry_size
            block = matrix[:, start:stop]
            if block.shape[1] < stop - start:  # cut short: pad; the cut fields are nulled below
                padded = np.zeros((len(matrix), stop - start), dtype=np.uint8)
                padded[:, : block.shape[1]] = block
                block = padded
            entries = block.reshape(len(matrix), levels, depth.entry_size)
            where = slice(None) if single else offsets[:-1][rows][:, None] + np.arange(levels, dtype=np.int32)
            for ef in depth.entry_fields:
                name = f"{side}_{ef.name}"
                raw = entries[:, :, ef.offset : ef.offset + ef.size].view(">u" + str(ef.size))[:, :, 0]
                # Byte order first, then width: numpy casts a strided big-endian 2-D view
                # ~2.5x slower in one step than in these two.
                native = raw.astype("=u" + str(ef.size))
                if ef.price:
                    side_values = native.astype(np.float64)
                    side_values /= divisor[:, None]
                else:
                    side_values = native.astype(np.int64)
                if single:
                    flat[name] = side_values.reshape(-1)
                else:
                    if name not in flat:
                        flat[name] = np.zeros(total, dtype=np.float64 if ef.price else np.int64)
                    flat[name][where] = side_values
                present = np.array([depth.present(side, level, ef) for level in range(levels)])
                if not present.all():
                    if name not in flat_valid:
                        flat_valid[name] = np.ones(total, dtype=bool)
                    missing = np.broadcast_to(~present, (len(matrix), levels))
                    if single:
                        flat_valid[name][missing.reshape(-1)] = False
                    else:
                        flat_valid[name][where[missing]] = False
        mask = None
        if levels_per_row is not None:
            no_depth = levels_per_row == 0
            if no_depth.any():
                bits = pa.py_buffer(np.packbits(no_depth, bitorder="little"))
                mask = pa.Array.from_buffers(pa.bool_(), n, [None, bits])
        offsets_array = pa.array(offsets)
        for name in names:
            type_ = _COLUMN_TYPES[name]
            values = _with_mask(flat[name], flat_valid.get(name), _VALUE_TYPES[name])
            out[name] = pa.ListArray.from_arrays(offsets_array, values, type=type_, mask=mask)
        price, valid = flat[f"{side}_price"], flat_valid.get(f"{side}_price")
        # the row of each level, ascending (levels in order)
        if single:
            group_rows, group_layout = groups[0][0], groups[0][1]
            ids = np.arange(n, dtype=np.int64)[group_rows] if isinstance(group_rows, slice) else group_rows
            rows = np.repeat(ids.astype(np.int64, copy=False), group_layout.depth.levels)
        else:
            ids = np.flatnonzero(levels_per_row)
            rows = np.repeat(ids, levels_per_row[ids])
        rule_depth[f"{side}_price"] = (rows, price if valid is None else np.where(valid, price, 0.0))
    return {name: out[name] for name in protocol.DEPTH_COLUMNS}, rule_depth


# --- capture decoding ---------------------------------------------------------------------


# Packets decoded at once: a few MB of packet bytes keeps the gathered matrices and
# column arrays in cache (measured ~2x faster field decoding than 16 MB at a time),
# while the framing walk still runs over whole chunks.
SUB_BATCH_PACKETS = 16_384
# Batches of small packets (LTP: 8 bytes) hold more of them, up to SMALL_PACKET_BATCHES x
# as many, in proportion to SMALL_PACKET_BYTES / their mean length: their rows are a
# fraction of a full packet's bytes, and the per-batch cost (~40 columns built, the
# table, the rules: ~0.1 ms) was a third of a 16k-row batch of 8-byte packets. Measured
# (user CPU, 4.2 MB of 8-byte packets): 8.0 ms at 16k rows, 5.9 ms at 64k; full packets
# (clean capture) keep 16k.
SMALL_PACKET_BYTES = 64
SMALL_PACKET_BATCHES = 4


def _batch_packets(split: ChunkSplit, target: int) -> int:
    """Packets per sub-batch of ``split``: ``target``, more for small packets (above)."""
    n = int(split.pkt_pos.size)
    if not n:
        return target
    mean = int(split.pkt_len.sum()) / n
    return min(SMALL_PACKET_BATCHES * target, max(target, int(target * SMALL_PACKET_BYTES / mean)))


def _sub_splits(split: ChunkSplit, target: int) -> Iterator[ChunkSplit]:
    """``split`` in pieces of about ``target`` packets (more when they are small:
    ``_batch_packets``), cut on message boundaries."""
    n = int(split.pkt_pos.size)
    target = _batch_packets(split, target)
    if n <= target * 1.5:
        yield split
        return
    msg = split.pkt_msg
    at = 0
    while at < n:
        cut = min(n, at + target)
        if cut < n:
            # back to the first packet of the message at `cut` (tick times use whole messages)
            first = int(np.searchsorted(msg, msg[cut], side="left"))
            cut = first if first > at else int(np.searchsorted(msg, msg[cut], side="right"))
        if n - cut < target // 2:
            cut = n
        yield ChunkSplit(
            payload=split.payload,
            pkt_pos=split.pkt_pos[at:cut],
            pkt_len=split.pkt_len[at:cut],
            pkt_msg=split.pkt_msg[at:cut],
            pkt_seq=split.pkt_seq[at:cut],
            pkt_offset=split.pkt_offset[at:cut],
            pkt_recv_ns=None if split.pkt_recv_ns is None else split.pkt_recv_ns[at:cut],
            bad=[],
            accounted={},
            messages=0,
            heartbeats=0,
            consumed=0,
        )
        at = cut


class _ChunkDecoder:
    """Framer + field decoding + summary bookkeeping for one capture."""

    def __init__(self, summary: DecodeSummary, name: str):
        self.summary = summary
        self.framer = Framer(summary.framing)
        when = filename_time(name)
        self.fallback_time_us = (
            int((when - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) if when else None
        )
        self.timings: dict[str, float] = {"split": 0.0, "fields": 0.0, "arrow": 0.0}
        self._tokens: set[int] = set()
        self._min_us: int | None = None
        self._max_us: int | None = None

    def feed(self, buf, base: int, final: bool) -> tuple[pa.Table, list[BadPacket], int]:
        tables, bad, consumed = [], [], 0
        # bad regions and consumed come with the last part: the loop keeps the last ones
        for table, bad, consumed in self.feed_parts(buf, base, final):  # noqa: B007
            tables.append(table)
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return table, bad, consumed

    def feed_parts(self, buf, base: int, final: bool):
        """``feed`` as (ticks, bad, consumed) per sub-batch, decoded as they are asked for;
        bad regions and ``consumed`` come with the last part. A buffer read whole (a HAR)
        is then written out part by part instead of held decoded at once."""
        t0 = time.perf_counter()
        split = self.framer.split(buf, base, final)
        self.timings["split"] += time.perf_counter() - t0
        s = self.summary
        s.messages += split.messages
        s.heartbeats += split.heartbeats
        s.packets += int(split.pkt_pos.size)
        s.bad_packets += len(split.bad)
        for key, value in split.accounted.items():
            s.accounted[key] += value
        s.bytes_accounted = sum(s.accounted.values())
        s.work = self.framer.work
        if split.container:
            c = split.container
            s.text_frames += c.get("text_frames", 0)
            s.sent_frames += c.get("sent_frames", 0)
            s.text_lines += c.get("text_lines", 0)
            s.connections.extend(c.get("connections", ()))
        # per kind from the columns (BadRegions): the walker's kinds, else read off the reasons
        for kind, length in split.bad.bytes_by_kind().items():
            s.bad_bytes_by_reason[kind] = s.bad_bytes_by_reason.get(kind, 0) + length
        parts = list(_sub_splits(split, SUB_BATCH_PACKETS))
        for k, part in enumerate(parts):
            table, stats = decode_packets(
                part, file_id=self.summary.file_id, fallback_time_us=self.fallback_time_us, timings=self.timings
            )
            for length, count in stats.packets_by_length.items():
                s.packets_by_length[length] = s.packets_by_length.get(length, 0) + count
            s.invalid_segments += stats.invalid_segments
            for reason, count in stats.suspect.items():
                s.suspect_by_reason[reason] = s.suspect_by_reason.get(reason, 0) + count
                s.suspect += count
            self._tokens.update(stats.tokens.tolist())
            if stats.min_tick_us is not None:
                self._min_us = stats.min_tick_us if self._min_us is None else min(self._min_us, stats.min_tick_us)
                self._max_us = stats.max_tick_us if self._max_us is None else max(self._max_us, stats.max_tick_us)
            s.distinct_tokens = len(self._tokens)
            s.first_tick_time = _epoch_us_to_datetime(self._min_us)
            s.last_tick_time = _epoch_us_to_datetime(self._max_us)
            last = k == len(parts) - 1
            yield table, (split.bad if last else []), (split.consumed if last else 0)


def no_packets_message(size: int, bad_by_reason: dict) -> str:
    """Why a capture yielded nothing (decode and ingest say it alike; exit 4)."""
    if not size:
        return "no Kite packets found (empty file)"
    top = sorted(bad_by_reason.items(), key=lambda kv: -kv[1])[:3]
    reasons = "; ".join(f"{reason} ({n:,} bytes)" for reason, n in top) or "unrecognised bytes"
    return f"no Kite packets found ({size:,} bytes, all bad: {reasons})"


def _check_framing(framing: str | None) -> str | None:
    if framing is not None and framing not in FRAMINGS:
        raise UsageError(f"unknown framing {framing!r}: use one of {', '.join(FRAMINGS)}")
    return framing


class CaptureReader:
    """Streams one capture file as ``DecodedBatch``es, chunk by chunk on message boundaries.

    Memory stays bounded by ``chunk_bytes`` (plus one message when a message is
    longer than a chunk); ``summary`` is complete once ``batches()`` is exhausted.
    """

    def __init__(
        self,
        path,
        framing: str | None = None,
        *,
        chunk_bytes: int = 16 << 20,
        file_id: str | None = None,
    ):
        self.path = os.fspath(path)
        self.chunk_bytes = max(64, int(chunk_bytes))
        _check_framing(framing)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise InputError(f"capture not found: {self.path}") from None
        except OSError as err:
            raise InputError(f"cannot read capture {self.path}: {err.strerror or err}") from None
        if not os.path.isfile(self.path):
            raise InputError(f"not a capture file: {self.path} (a folder or a device)")
        self.size = st.st_size
        self.timings: dict[str, float] = {"hash": 0.0, "detect": 0.0}
        detected = framing is None
        try:
            t0 = time.perf_counter()
            self.file_id = file_id or file_sha256(self.path)
            t1 = time.perf_counter()
            evidence = "given"
            if framing is None:
                with open(self.path, "rb") as f:
                    head = f.read(DETECT_HEAD)
                framing, evidence = detect_framing_evidence(head, self.size)
            t2 = time.perf_counter()
        except OSError as err:
            raise InputError(f"cannot read capture {self.path}: {err.strerror or err}") from None
        self.timings["hash"] = t1 - t0 if not file_id else 0.0
        self.timings["detect"] = t2 - t1
        self.framing = framing
        self.summary = DecodeSummary(
            path=self.path,
            file_id=self.file_id,
            framing=framing,
            bytes=self.size,
            framing_detected=detected,
            framing_evidence=evidence,
        )

    def batches(self, cancel: threading.Event | None = None) -> Iterator[DecodedBatch]:
        decoder = _ChunkDecoder(self.summary, self.path)
        self.timings.update(decoder.timings)
        base = 0  # file offset of the first carried byte
        carry = b""
        read_to = 0  # file offset read so far
        # The single framing is one message, a HAR one JSON document: read it whole
        # rather than re-copying a carry.
        chunk = self.size if self.framing in ("single", "har") else self.chunk_bytes
        try:
            with open(self.path, "rb") as f:
                while True:
                    if cancel is not None and cancel.is_set():
                        return
                    want = min(chunk, self.size - read_to)
                    buf = bytearray(len(carry) + want)
                    buf[: len(carry)] = carry
                    view = memoryview(buf)
                    got = len(carry)
                    while got < len(buf):
                        n = f.readinto(view[got:])
                        if not n:
                            break
                        got += n
                    view.release()
                    if got < len(buf):  # the file shrank while we read it
                        del buf[got:]
                    read_to += got - len(carry)
                    final = read_to >= self.size or got == len(carry)
                    if self.framing == "har":
                        # One JSON document read whole: hand its ticks out part by part.
                        parts = decoder.feed_parts(buf, base, final)
                        table, bad, consumed = next(parts)
                        for later in parts:
                            yield DecodedBatch(table, bad, base)
                            table, bad, consumed = later
                    else:
                        table, bad, consumed = decoder.feed(buf, base, final)
                    base += consumed
                    carry = bytes(buf[consumed:]) if consumed < len(buf) else b""
                    del buf
                    self.timings.update(decoder.timings)
                    if final:
                        self.summary.complete = True
                    yield DecodedBatch(table, bad, base)
                    if final:
                        return
        except OSError as err:
            raise InputError(f"cannot read capture {self.path}: {err.strerror or err}") from None


def decode_bytes(data: bytes, framing: str | None = None, *, name: str = "capture"):
    """Decode a whole capture held in memory: (ticks, bad packets, summary)."""
    _check_framing(framing)
    data = bytes(data)
    detected = framing is None
    evidence = "given"
    if framing is None:
        framing, evidence = detect_framing_evidence(data[:DETECT_HEAD], len(data))
    summary = DecodeSummary(
        path=name,
        file_id=bytes_sha256(data),
        framing=framing,
        bytes=len(data),
        framing_detected=detected,
        framing_evidence=evidence,
    )
    decoder = _ChunkDecoder(summary, name)
    table, bad, consumed = decoder.feed(data, 0, True)
    summary.complete = True
    return table, bad, summary

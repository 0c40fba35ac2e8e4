"""What every framing shares: the framings, the limits a message must keep, a bad region
(``BadPacket``), what walking a buffer returns (``ChunkSplit``) and the messages a reader
found before they are split into packets (``_Walk``)."""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core import protocol

FRAMINGS = ("raw", "u32len", "ts-u32len", "u32len-le", "ts-u32len-le", "base64", "har", "single")

BAD_RAW_CAP = 512  # bytes of a bad region kept in its BadPacket

KNOWN_SET = frozenset(protocol.KNOWN_LENGTHS)
KNOWN_MASK = np.zeros(1 << 16, dtype=bool)
KNOWN_MASK[list(protocol.KNOWN_LENGTHS)] = True
_KNOWN_SORTED = sorted(protocol.KNOWN_LENGTHS)


def u16_every(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The big-endian u16 at every position of [lo, hi) of the uint8 array ``a`` (bytes up
    to ``hi`` inclusive), as uint16: one strided, byte-swapping copy (about 4x cheaper than
    shifting and or-ing two byte arrays)."""
    n = max(hi - lo, 0)
    if not n:
        return np.zeros(0, dtype=np.uint16)
    return np.ndarray((n,), dtype=">u2", buffer=a, offset=lo, strides=(1,)).astype(np.uint16)


def known_lengths(u: np.ndarray) -> np.ndarray:
    """``KNOWN_MASK[u]`` by one compare per known length (a gather from the 64 KiB mask
    costs about 6x as much on large arrays)."""
    out = u == _KNOWN_SORTED[0]
    for n in _KNOWN_SORTED[1:]:
        out |= u == n
    return out

# The largest message made of known packets; container records claiming more are broken.
MAX_MESSAGE_BYTES = 2 + 0xFFFF * (2 + protocol.MAX_PACKET_LENGTH)
# Raw framing cannot check a message's size, so a message holding unknown-length
# packets is only believed when those packets are of a plausible size.
LENIENT_MAX_PACKET = 4096
LENIENT_MAX_COUNT = 4096
LENIENT_MASK = KNOWN_MASK.copy()  # the lenient walk's lengths (messages.LENIENT_LENGTHS) as a mask
LENIENT_MASK[1 : LENIENT_MAX_PACKET + 1] = True
# ts-u32len receive times must fall in 2000-01-01 .. 2100-01-01 (ns since epoch).
TS_MIN_NS = 946_684_800 * 10**9
TS_MAX_NS = 4_102_444_800 * 10**9
MAX_BASE64_LINE = (MAX_MESSAGE_BYTES * 4) // 3 + 8

_NEED_MORE = -1
_INVALID = -2
_U32 = struct.Struct(">I")
_TS_U32 = struct.Struct(">QI")


@dataclass(slots=True)
class BadPacket:
    """One bad region of a capture; every byte of it is accounted as ``bad`` (slots: a
    damaged capture makes one per few bytes)."""

    offset: int  # file offset where the region starts
    length: int  # bytes in the region
    reason: str  # one line
    raw: bytes  # the region's first bytes, capped at BAD_RAW_CAP
    msg_seq: int | None = None

    def to_dict(self) -> dict:
        return {
            "offset": self.offset,
            "length": self.length,
            "reason": self.reason,
            "raw": self.raw.hex(),
            "msg_seq": self.msg_seq,
        }


@functools.lru_cache(maxsize=4096)
def reason_kind(reason: str) -> str:
    """A bad region's reason without its numbers, to count bad bytes by kind (cached:
    damaged captures repeat a few reasons many times)."""
    return _DIGITS.sub("N", reason.split(";")[0].split("(")[0]).strip()


_DIGITS = re.compile(r"\d+")


def reason_kinds(reasons: list[str]) -> list[str]:
    """``reason_kind`` of many reasons (a damaged capture's regions can give thousands of
    distinct ones, each with its own numbers): one substitution over them all."""
    heads = [r.split(";", 1)[0].split("(", 1)[0] for r in reasons]
    joined = "\n".join(heads)
    if len(reasons) < 8 or joined.count("\n") != len(heads) - 1:  # few, or a reason holding a newline
        return [reason_kind(r) for r in reasons]
    return [kind.strip() for kind in _DIGITS.sub("N", joined).split("\n")]


class RawSlices:
    """First bytes of a batch of bad regions: ``head`` (made already) then slices
    [start, end) of ``block`` (one copy of the bytes they lie in), made only when read:
    ``BadRegions`` reads them when its regions are read one by one, so a decode that
    only counts them makes no bytes object per region."""

    __slots__ = ("head", "block", "start", "end")

    def __init__(self, head: list, block: bytes, start: np.ndarray, end: np.ndarray):
        self.head, self.block, self.start, self.end = head, block, start, end

    def __len__(self) -> int:
        return len(self.head) + int(self.start.size)

    def tolist(self) -> list[bytes]:
        block = self.block
        # (a comprehension's slices: about 40% cheaper than mapping __getitem__ over slice objects)
        return self.head + [block[i:j] for i, j in zip(self.start.tolist(), self.end.tolist(), strict=True)]

    def item(self, i: int) -> bytes:
        h = len(self.head)
        return self.head[i] if i < h else self.block[int(self.start[i - h]) : int(self.end[i - h])]

    def spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``byte_spans`` of ``tolist()`` without a bytes object per slice: the slices
        of the block (the regions' are disjoint and in order) after the head's bytes."""
        data, start, end = byte_spans(self.head)
        shift = int(data.size)
        block = np.frombuffer(self.block, dtype=np.uint8)
        return np.concatenate([data, block]), np.concatenate([start, self.start + shift]), \
            np.concatenate([end, self.end + shift])


def byte_spans(values: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``values`` (bytes, or str as UTF-8; None as empty) as (bytes, start, end): value
    i is ``bytes[start[i]:end[i]]``, the spans in order and disjoint (each start at or
    past the previous end), so a store can make them a column without an object per
    value."""
    if any(type(v) is not bytes for v in values):
        values = [b"" if v is None else v.encode() if type(v) is str else v for v in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), np.int64, len(values)), out=offsets[1:])
    return np.frombuffer(b"".join(values), dtype=np.uint8), offsets[:-1], offsets[1:]


class _Parts(list):
    """``BadRegions.build``'s reasons or first bytes: its batches' lists and parts made
    when read (``RawSlices``, the array passes' reasons: each has ``tolist``), joined
    when first read."""

    def joined(self) -> list:
        out: list = []
        for part in self:
            out.extend(part if type(part) is list else part.tolist())
        return out

    def spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``byte_spans`` of ``joined()``, the parts read as they are (``spans``: no
        object per item)."""
        return join_spans([byte_spans(part) if type(part) is list else part.spans() for part in self])

    def at(self, index: list[int]) -> list:
        """The items at ``index`` (ascending), the parts left as they are (the regions'
        kinds read off a few reasons need not write all the others)."""
        out: list = []
        parts, part, start, end = iter(self), None, 0, 0
        for k in index:
            while k >= end:
                part = next(parts)
                start, end = end, end + len(part)
            out.append(part[k - start] if type(part) is list else part.item(k - start))
        return out


class BadRegions(Sequence):
    """A chunk's bad regions, in file order, as columns: file offset, length, message
    number (-1: none), and codes into the distinct reasons and first bytes. A damaged
    capture has one every few bytes, so ``BadPacket`` objects are made only when the
    regions are read one by one (then once); counts and byte totals come from the
    columns. A sequence of ``BadPacket``: equal to a list of the same regions."""

    __hash__ = None

    def __init__(self, offset, length, msg_seq, reason_code, reasons: list, raw_code, raws: list,
                 kind_code=None, kinds: list | None = None):
        self.offset, self.length, self.msg_seq = offset, length, msg_seq  # int64 arrays
        # reasons and raws: the distinct reasons and first bytes (reason_code's and
        # raw_code's values), or parts of them joined when first read (``_Parts``: a
        # decode that only counts the regions writes no text nor bytes object per region)
        self.reason_code, self._reasons = reason_code, reasons
        self.raw_code, self._raws = raw_code, raws
        # per region, a code into ``kinds`` (its reason's ``reason_kind``) where the walker
        # knew it, else -1 (the reason's text is read): None when no walker told any
        self.kind_code, self.kinds = kind_code, kinds or []
        self._objects: list[BadPacket] | None = None

    @classmethod
    def build(cls, objects: list, batches: list) -> BadRegions:
        """``objects`` (``BadPacket``) and ``batches`` (``(offsets, lengths, reason codes,
        reasons, raw codes, raws)``, file offsets already), sorted by offset."""
        offsets = [np.fromiter((b.offset for b in objects), np.int64, len(objects))]
        lengths = [np.fromiter((b.length for b in objects), np.int64, len(objects))]
        reasons = _Parts([[b.reason for b in objects]])
        raws = _Parts([[b.raw for b in objects]])
        n_reasons = n_raws = len(objects)
        reason_codes = [np.arange(len(objects), dtype=np.int64)]
        raw_codes = [reason_codes[0]]
        kind_codes = [np.full(len(objects), -1, dtype=np.int64)]
        kinds: dict[str, int] = {}  # each distinct kind once (the batches' are mostly the same few)
        told = False
        for off, length, rc, rs, wc, ws, *kc in batches:  # (..., (kind codes, kinds)) when the walker knew them
            offsets.append(off)
            lengths.append(length)
            reason_codes.append(rc + n_reasons if n_reasons else rc)
            raw_codes.append(wc + n_raws if n_raws else wc)
            reasons.append(rs)
            raws.append(ws)
            n_reasons += len(rs)
            n_raws += len(ws)
            if kc:
                code, names = kc[0]
                to = [kinds.setdefault(name, len(kinds)) for name in names]
                if to != list(range(len(to))):  # (the same kinds as the first batch's: codes as they are)
                    code = np.asarray(to + [-1], dtype=np.int64)[code]  # (-1, none told, stays -1)
                kind_codes.append(code)
                told = True
            else:
                kind_codes.append(np.full(off.size, -1, dtype=np.int64))
        offset = np.concatenate(offsets)
        seq = np.full(offset.size, -1, dtype=np.int64)  # the batches' regions have no message number
        seq[: len(objects)] = [-1 if b.msg_seq is None else b.msg_seq for b in objects]
        cols = [offset, np.concatenate(lengths), seq, np.concatenate(reason_codes), np.concatenate(raw_codes)]
        if told:
            cols.append(np.concatenate(kind_codes))
        if offset.size > 1 and not (offset[1:] > offset[:-1]).all():
            order = np.argsort(offset, kind="stable")
            cols = [c[order] for c in cols]
        offset, length, seq, rc, wc, *kc = cols
        return cls(offset, length, seq, rc, reasons, wc, raws, kc[0] if kc else None, list(kinds))

    def __len__(self) -> int:
        return int(self.offset.size)

    @property
    def reasons(self) -> list[str]:
        """The distinct reasons of the regions (``reason_code`` indexes them)."""
        if type(self._reasons) is _Parts:
            self._reasons = self._reasons.joined()
        return self._reasons

    @property
    def raws(self) -> list[bytes]:
        """The distinct first bytes of the regions (``raw_code`` indexes them)."""
        if type(self._raws) is _Parts:
            self._raws = self._raws.joined()
        return self._raws

    def raw_spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct first bytes (``raws``) as ``byte_spans``: parts not yet joined
        are read as they are (a store writes the regions as columns without a bytes
        object per region)."""
        return self._raws.spans() if type(self._raws) is _Parts else byte_spans(self._raws)

    def reason_spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct reasons (``reasons``, UTF-8) as ``byte_spans``, as ``raw_spans``
        (the array passes' reasons written together, not a str object each)."""
        return self._reasons.spans() if type(self._reasons) is _Parts else byte_spans(self._reasons)

    def _list(self) -> list[BadPacket]:
        if self._objects is None:
            reasons, raws = self.reasons, self.raws
            self._objects = list(map(
                BadPacket, self.offset.tolist(), self.length.tolist(),
                map(reasons.__getitem__, self.reason_code.tolist()), map(raws.__getitem__, self.raw_code.tolist()),
                [None if m < 0 else m for m in self.msg_seq.tolist()],
            ))
        return self._objects

    def __getitem__(self, i):
        return self._list()[i]

    def __iter__(self):
        return iter(self._list())

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple, BadRegions)):
            return self._list() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"BadRegions({self._list()!r})"

    def total(self) -> int:
        """Bytes in all the regions."""
        return int(self.length.sum())

    def bytes_by_kind(self) -> dict[str, int]:
        """Bytes per reason kind (``reason_kind``), in the order the kinds first appear
        in the file. Kinds the walker told are not read off the reasons' text."""
        if not self.offset.size:
            return {}
        if self.kind_code is None:
            by_reason = self.bytes_by_reason()
            out: dict[str, int] = {}
            for kind, n in zip(reason_kinds(list(by_reason)), by_reason.values(), strict=True):
                out[kind] = out.get(kind, 0) + n
            return out
        names = list(self.kinds)
        code = self.kind_code
        if code.min() < 0:  # (one reduction: most often every kind was told)
            untold = np.flatnonzero(code < 0)
            code = code.copy()
            rc, inv = np.unique(self.reason_code[untold], return_inverse=True)
            code[untold] = np.arange(len(names), len(names) + rc.size)[inv]
            reasons = self._reasons
            at = rc.tolist()
            names += reason_kinds(reasons.at(at) if type(reasons) is _Parts else [reasons[k] for k in at])
        index: dict[str, int] = {}
        same = [index.setdefault(name, len(index)) for name in names]
        if len(index) < len(names):  # (names told distinct, and untold ones new: codes as they are)
            code = np.asarray(same, dtype=np.int64)[code]  # one code per distinct kind
        kinds = list(index)
        if len(kinds) == 1:  # one kind (a run of the same damage): all the bytes
            return {kinds[0]: self.total()}
        sums = np.bincount(code, weights=self.length, minlength=len(index)).tolist()
        if len(kinds) <= 8:  # a few kinds (the usual): where each first appears, one compare each
            first = []
            for k in range(len(kinds)):
                hit = code == k
                if hit.any():
                    first.append((int(hit.argmax()), k))
            return {kinds[k]: int(sums[k]) for _, k in sorted(first)}
        ids, first = np.unique(code, return_index=True)
        return {kinds[k]: int(sums[k]) for k in ids[np.argsort(first)].tolist()}

    def bytes_by_reason(self) -> dict[str, int]:
        """Bytes per distinct reason, in the order the reasons first appear in the file."""
        if not self.offset.size:
            return {}
        sums = np.bincount(self.reason_code, weights=self.length, minlength=len(self.reasons)).tolist()
        codes, first = np.unique(self.reason_code, return_index=True)
        out: dict[str, int] = {}
        for k in codes[np.argsort(first)].tolist():
            reason = self.reasons[k]
            out[reason] = out.get(reason, 0) + int(sums[k])
        return out


def write_texts(n: int, pieces: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` texts put together from ``pieces``, as ``byte_spans``. A piece is (rows,
    value): the rows having it (an index array) and an ASCII bytes value the same for
    them all or an int64 array (one per row, written in decimal as ``str`` writes it);
    each row's pieces follow one another in the list's order. A damaged capture's
    reasons (one every few bytes) are written so, by Arrow's kernels over whole columns
    (numbers cast to text, the pieces joined row by row), not a str object each."""
    columns = []
    for rows, value in pieces:
        has = np.zeros(n, dtype=bool)
        has[rows] = True
        if type(value) is bytes:
            piece = pa.scalar(value.decode("ascii"))
        else:
            numbers = np.zeros(n, dtype=np.int64)
            numbers[rows] = value
            piece = pc.cast(pa.array(numbers), pa.string())
        columns.append(pc.if_else(has, piece, ""))
    texts = pc.binary_join_element_wise(*columns, "") if columns else pa.array([""] * n, pa.string())
    return string_spans(texts)


def string_spans(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A string or binary Arrow array (no nulls) as ``byte_spans``, read off its buffers."""
    _, offsets, data = texts.buffers()
    at = np.frombuffer(offsets, dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return data, at[:-1], at[1:]


def join_spans(spans: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``byte_spans`` of several, one after the other."""
    if not spans:
        return byte_spans([])
    datas, starts, ends, at = [], [], [], 0
    for data, start, end in spans:
        datas.append(data)
        starts.append(start + at)
        ends.append(end + at)
        at += int(data.size)
    return np.concatenate(datas), np.concatenate(starts), np.concatenate(ends)


def _new_accounted() -> dict[str, int]:
    return {"packet": 0, "header": 0, "framing": 0, "heartbeat": 0, "bad": 0}


@dataclass
class ChunkSplit:
    """What walking one buffer of a capture found; packet arrays are in file order."""

    payload: np.ndarray  # uint8 bytes that pkt_pos indexes (the chunk, or decoded base64)
    pkt_pos: np.ndarray  # int64 position of each packet body in payload
    pkt_len: np.ndarray  # int64, always a known length
    pkt_msg: np.ndarray  # int64 global message number
    pkt_seq: np.ndarray  # int32 packet number inside its message
    pkt_offset: np.ndarray  # int64 file offset of the packet body
    pkt_recv_ns: np.ndarray | None  # int64 receive time (ts-u32len only)
    bad: Sequence[BadPacket]  # BadRegions from the walkers (a list where a split is cut up)
    accounted: dict[str, int]
    messages: int
    heartbeats: int
    consumed: int  # bytes of the buffer walked; the rest is carried to the next chunk
    # What a text container (base64 lines, HAR) held besides binary messages: counts
    # ``text_frames`` / ``sent_frames`` / ``text_lines``, HAR ``connections`` and the
    # frames themselves (``frames``: dicts with offset, length, direction, recv_ns, text).
    container: dict | None = None


# --- container walkers ------------------------------------------------------------


@dataclass
class _Walk:
    """Messages found in one buffer, before they are split into packets."""

    start: list = field(default_factory=list)  # payload positions (found one by one)
    size: list = field(default_factory=list)
    file_start: list = field(default_factory=list)  # unless ``base`` is set: then base + start
    recv_ns: list = field(default_factory=list)
    bare: list = field(default_factory=list)
    regions: list = field(default_factory=list)  # BadPacket of container-level faults
    region_batches: list = field(default_factory=list)  # many at once: BadRegions.build's batches
    heartbeats: int = 0
    framing_bytes: int = 0
    batches: list = field(default_factory=list)  # (start, size) arrays of messages found at once, in order
    base: int | None = None  # the file offset of payload position 0, when file positions are base + start
    prefixes: dict = field(default_factory=dict)  # a long message's start -> its packets' prefix positions

    def add(self, start: np.ndarray, size: np.ndarray) -> None:
        """Messages found at once (an array pass), after those found so far."""
        self._flush()
        self.batches.append((start, size))

    def _flush(self) -> None:
        if self.start:
            self.batches.append((np.asarray(self.start, dtype=np.int64), np.asarray(self.size, dtype=np.int64)))
            self.start, self.size = [], []

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, size) of every message found, in order, as int64 arrays."""
        if not self.batches:
            return np.asarray(self.start, dtype=np.int64), np.asarray(self.size, dtype=np.int64)
        self._flush()
        if len(self.batches) > 1:
            starts, sizes = zip(*self.batches, strict=True)
            self.batches = [(np.concatenate(starts), np.concatenate(sizes))]
        return self.batches[0]


RUN_PROBE = 16  # prefixes compared in the first strided look of ``same_length_run``
RUN_AFTER = 32  # equal lengths in a row a scalar walk sees before it asks same_length_run. A join
# (a numpy call plus the memo's bookkeeping) costs ~10 us, ~30 scalar steps: asked after 8, runs of 12
# (validate_across_many_runs) made every join a loss (the chain walk 4x slower than without joins);
# after 32, a join costs at most about as much as the steps before it, and long runs still join


def same_length_run(a: np.ndarray, y: int, step: int, length: int, stop: int, most: int) -> int:
    """How many length prefixes in a row, at ``y``, ``y + step``, ``y + 2 * step``, …,
    read ``length`` and lie whole below ``stop`` (at most ``most``).

    A long run of equal packets (Kite batches one mode) is checked with strided numpy
    compares instead of one Python step per packet; the looks grow 4x each time, so
    the bytes compared are at most ~4x the run found plus ``RUN_PROBE``: linear.
    """
    hi, lo = length >> 8, length & 0xFF
    fit = (stop - 1 - y + step - 1) // step  # positions y + i * step with y + i * step + 2 <= stop
    most = min(most, max(fit, 0))
    n, want = 0, RUN_PROBE
    while n < most:
        take = min(want, most - n)
        at = y + n * step
        end = at + take * step
        ok = (a[at:end:step] == hi) & (a[at + 1 : end + 1 : step] == lo)
        if not ok.all():
            return n + int(ok.argmin())
        n += take
        want *= 4
    return n

"""Tick inputs that are not binary captures: JSON/JSONL dumps of decoded ticks, Parquet exports.

This module owns turning those files into ``DECODED_SCHEMA`` tables with the values the
binary decoder gives for the same packets, so the rest of the pipeline (enrichment,
targets, the UI) never knows where ticks came from.

JSON dumps are what the official Python client hands to ``on_ticks``, written out by a
user: a JSON array of tick dicts (or of lists of ticks), or JSON Lines with one tick or
one list of ticks (one WebSocket message) per line. Both the current field names and the
pre-2021 ones (``last_quantity``, ``average_price``, ``volume``, ``buy_quantity``,
``sell_quantity``, ``timestamp``) are read. The client's ``change`` is a percentage;
``change``/``change_percent`` are recomputed from last_price and close as the decoder does.

Timestamps may be ISO strings or epoch numbers (s, ms, us or ns by magnitude). The client
builds them with ``datetime.fromtimestamp`` -- naive *local* times of the machine that ran
it -- so a naive string is read as local time in ``naive_timezone`` (default Asia/Kolkata,
the usual machine of a Kite user). Reading an IST dump as UTC shifts every tick by 5h30m;
pass ``naive_timezone="UTC"`` for dumps made on a UTC machine. Strings with an offset
are exact. The client turns Kite's 0 ("absent") into 1970-01-01 local time, so any time
within a day of the epoch reads as absent (null), as 0 does in the decoder.

Parquet files written by ``tickscope decode`` (``DECODED_SCHEMA`` or ``TICK_SCHEMA``) are
read back without enrichment (the pipeline enriches again with the masters at hand).

Per-tick Python is confined to JSON parsing (``json.loads`` is per object anyway); the
Arrow columns and every derived column are built in bulk per batch.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.core import market_time, protocol, schema
from app.core.digest import file_sha256
from app.core.market_time import IST
from app.core.suspect import suspect_reasons
from app.errors import InputError

SOURCES = ("json", "jsonl", "parquet")

_SNIFF_BYTES = 64 << 10
_FIRST_LINE_CAP = 16 << 20  # longest first line looked at when telling JSON from JSONL
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"
_EPOCH_SLACK_US = 86_400 * 1_000_000  # any time this close to the epoch is Kite's "absent"

# Schema column -> names the official Python client has used for it (current first).
_ALIASES: dict[str, tuple[str, ...]] = {
    "last_traded_quantity": ("last_traded_quantity", "last_quantity"),
    "average_traded_price": ("average_traded_price", "average_price"),
    "volume_traded": ("volume_traded", "volume"),
    "total_buy_quantity": ("total_buy_quantity", "buy_quantity"),
    "total_sell_quantity": ("total_sell_quantity", "sell_quantity"),
    "oi": ("oi",),
    "oi_day_high": ("oi_day_high",),
    "oi_day_low": ("oi_day_low",),
}
_TIME_ALIASES: dict[str, tuple[str, ...]] = {
    "exchange_timestamp": ("exchange_timestamp", "timestamp"),
    "last_trade_time": ("last_trade_time",),
}
_OHLC = ("open", "high", "low", "close")
_DEPTH_COLUMNS = {
    ("buy", "price"): "bid_price", ("buy", "quantity"): "bid_quantity", ("buy", "orders"): "bid_orders",
    ("sell", "price"): "ask_price", ("sell", "quantity"): "ask_quantity", ("sell", "orders"): "ask_orders",
}
# Columns filled from each tick; everything else is derived per batch.
_ROW_COLUMNS = (
    ("msg_seq", "pkt_seq", "offset", "instrument_token", "mode", "tradable", "packet_length", "last_price")
    + tuple(_ALIASES) + _OHLC + tuple(_TIME_ALIASES) + tuple(_DEPTH_COLUMNS.values())
)

TimeZoneLike = str | dt.tzinfo


# --- sniffing -------------------------------------------------------------------


def sniff_tick_file(path) -> str | None:
    """'json', 'jsonl' or 'parquet' from the file's content; None means a binary capture.

    A JSON dump is UTF-8 text without NUL bytes starting with ``[`` or ``{``; binary
    captures are full of NUL bytes and base64 captures start with letters. A file that
    is one JSON value is 'json'; one JSON value per line is 'jsonl'.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
        if head[:4] == _PARQUET_MAGIC:
            fh.seek(-4, 2)
            return "parquet" if fh.read(4) == _PARQUET_MAGIC else None
        text = head[len(_BOM):] if head.startswith(_BOM) else head
        if b"\x00" in text:
            return None
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as err:
            if err.start < len(text) - 4:  # not just a character cut by the head's end
                return None
        stripped = text.lstrip()
        if stripped[:1] not in (b"[", b"{"):
            return None
        from app.core.har import looks_like_har

        if looks_like_har(stripped):
            return None  # a browser's HAR of the WebSocket: a capture (framing "har")
        if _holds_base64_messages(stripped):
            return None  # a websocat session: typed JSON commands between base64 messages
        # Read the first non-blank line, then see whether anything follows it.
        fh.seek(len(head) - len(stripped))
        first = fh.readline(_FIRST_LINE_CAP)
        rest = fh.read(_SNIFF_BYTES)
    if not first.endswith(b"\n") or not rest.strip():
        # A single JSON value (one line, possibly huge) or a pretty one.
        return None if _starts_with_text_frames(stripped, whole=len(head) < _SNIFF_BYTES) else "json"
    try:
        value = json.loads(first)
    except ValueError:
        # The first line is not a whole value: a pretty-printed document.
        return None if _starts_with_text_frames(stripped, whole=len(head) < _SNIFF_BYTES) else "json"
    if _is_text_frames(value) and all(_is_text_frames(v) for v in _whole_lines(stripped)):
        return None
    return "jsonl"


def _holds_base64_messages(text: bytes) -> bool:
    """Whether a whole line of the head is (or ends with, glued after a JSON command) a
    base64 Kite message or heartbeat: then the file is a websocat session, not a dump."""
    import binascii

    from app.core.framing.messages import _strict_end
    from app.core.framing.text import _json_line_prefix

    for line in text.split(b"\n")[:-1][:4096]:
        line = line.strip()
        if not line:
            continue
        if line[:1] == b"{":
            end, _ = _json_line_prefix(line)
            if not end or end == len(line):
                continue
            line = line[end:]
        try:
            decoded = binascii.a2b_base64(line, strict_mode=True)
        except (binascii.Error, ValueError):
            continue
        if decoded == b"\x00" or (len(decoded) >= 4 and _strict_end(decoded, 0, len(decoded)) == len(decoded)):
            return True
    return False


# Kite's WebSocket text frames (order updates, errors, messages) are not ticks: a file
# of them is a capture of text frames, which the binary path reports as a bad region.
_TEXT_FRAME_TYPES = frozenset(("order", "error", "message"))


def _is_text_frame(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in _TEXT_FRAME_TYPES and "data" in value


def _is_text_frames(value: Any) -> bool:
    """A text frame, or a non-empty list holding only text frames."""
    if isinstance(value, list):
        return bool(value) and all(_is_text_frame(v) for v in value)
    return _is_text_frame(value)


def _starts_with_text_frames(text: bytes, whole: bool) -> bool:
    """Whether a JSON document is text frames: all of it when ``whole``, else its first value.

    A dump bigger than the sniffed head is judged by its first value (or first element),
    which is never a text frame in a dump of ``on_ticks`` ticks.
    """
    try:
        decoded = text.decode("utf-8", errors="ignore")
        if whole:
            return _is_text_frames(json.loads(decoded))
        decoder = json.JSONDecoder()
        at = 1 if decoded.startswith("[") else 0
        while at < len(decoded) and decoded[at].isspace():
            at += 1
        first, _ = decoder.raw_decode(decoded, at)
    except ValueError:
        return False
    return _is_text_frame(first)


def _whole_lines(text: bytes) -> Iterator[Any]:
    """Parsed non-blank lines of the sniffed head that are whole (the last may be cut)."""
    lines = text.split(b"\n")[:-1]
    for line in lines:
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                yield None


# --- reading --------------------------------------------------------------------


def read_tick_file(
    path,
    *,
    file_id: str | None = None,
    batch_rows: int = 65536,
    naive_timezone: TimeZoneLike = market_time.IST_NAMES[0],
    rejected: list | None = None,
) -> Iterator[pa.Table]:
    """``DECODED_SCHEMA`` tables (about ``batch_rows`` rows each) of a JSON/JSONL/Parquet file.

    A tick whose price cannot be one (NaN, Infinity, a string) is not stored: it is
    appended to ``rejected`` (``BadPacket``: its message's offset, the reason, the tick's
    JSON) when given, so callers count it like a bad packet.

    ``file_id`` (sha256 hex of the file, computed when None) fills the ``file_id`` column.
    msg_seq/pkt_seq/offset come from row order: msg_seq is the element (JSON) or line
    (JSONL) number, pkt_seq the index inside that element's or line's list, offset the
    line's byte offset for JSONL (null for JSON). A batch never splits a line's list.
    Raises ``InputError`` for a file that is not a tick file or holds a bad tick.
    """
    path = Path(path)
    kind = sniff_tick_file(path)
    if kind is None:
        raise InputError(f"{path}: not a JSON, JSONL or Parquet tick file; decode it as a binary capture")
    file_id = file_id or file_sha256(path)
    if kind == "parquet":
        yield from _read_parquet(path, file_id, batch_rows)
        return
    tz = _timezone(naive_timezone)
    messages = _json_messages(path) if kind == "json" else _jsonl_messages(path)
    builder = _Builder(file_id, tz, path, rejected)
    for msg_seq, offset, value in messages:
        builder.add_message(msg_seq, offset, value)
        if builder.rows >= batch_rows:
            yield builder.flush()
    if builder.rows:
        yield builder.flush()


def _timezone(value: TimeZoneLike) -> dt.tzinfo:
    if isinstance(value, dt.tzinfo):
        return value
    if value in market_time.IST_NAMES:
        return IST  # no DST: a fixed offset needs no tz database
    if value.upper() == "UTC":
        return dt.UTC
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(value)
    except Exception as err:  # ZoneInfoNotFoundError, ValueError
        raise InputError(f"unknown time zone {value!r}; use an IANA name such as Asia/Kolkata or UTC") from err


def _json_documents(path: Path) -> Iterator[tuple[int | None, Any]]:
    """(byte offset or None, value) of each JSON document in the file: one document, or a
    stream of concatenated documents (objects or arrays, pretty-printed or not)."""
    try:
        raw = path.read_bytes()
        text = raw[len(_BOM):].decode("utf-8") if raw.startswith(_BOM) else raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err}); fix or re-export the dump") from err
    ascii_only = text.isascii()  # then a character index is a byte offset
    bom = len(raw) - len(raw.lstrip(_BOM)) if raw.startswith(_BOM) else 0
    decoder = json.JSONDecoder()
    at, n, count = 0, len(text), 0
    while True:
        while at < n and text[at] in " \t\r\n":
            at += 1
        if at >= n:
            break
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError as err:
            raise InputError(f"{path}: not valid JSON ({err}); fix or re-export the dump") from err
        yield (at + bom if ascii_only else None), value
        count += 1
        at = end
    if not count:
        raise InputError(f"{path}: not valid JSON (empty); fix or re-export the dump")


def _json_messages(path: Path) -> Iterator[tuple[int, int | None, Any]]:
    """Messages of a JSON dump. One document: its elements (a list of ticks or of
    messages, or an object wrapping them). Several concatenated documents: each is one
    message (a list of ticks, a wrapper, or one tick)."""
    documents = _json_documents(path)
    first = next(documents)
    second = next(documents, None)
    if second is None:
        offset, document = first
        if isinstance(document, dict):
            document = _unwrap(document)
        if not isinstance(document, list):
            raise InputError(f"{path}: expected a JSON array of ticks, found {type(document).__name__}")
        for index, value in enumerate(document):
            yield index, None, value
        return
    for index, (offset, document) in enumerate(itertools.chain((first, second), documents)):
        yield index, offset, _unwrap(document) if isinstance(document, dict) else document


def _unwrap(document: dict) -> Any:
    """The ticks an object holds: ``{"ticks": [...]}``, the Rust peer's ``{"tickers": N,
    "tickersData": [{"tickerType": ..., "tickerTypeData": {...}}]}``, the Kite web app's
    state keyed by token (``{"265": {...}, ...}``), else the object as one tick."""
    if "ticks" in document and isinstance(document["ticks"], list):
        return document["ticks"]
    if "tickersData" in document and isinstance(document["tickersData"], list):
        out = []
        for item in document["tickersData"]:
            data = item.get("tickerTypeData") if isinstance(item, dict) else None
            if not isinstance(data, dict):
                out.append(item)
                continue
            data = dict(data)
            data[_TICKER_TYPE] = item.get("tickerType")
            out.append(data)
        return out
    # qdx-decoder expectations (the manja project): {"packet": {...}} / {"packets": [...]},
    # each packet with its wire length "raw_len"
    for key in ("packet", "packets"):
        inner = document.get(key)
        items = [inner] if isinstance(inner, dict) else inner if isinstance(inner, list) else None
        if items and all(isinstance(i, dict) and "raw_len" in i for i in items):
            return items
    if document and all(isinstance(k, str) and k.isdigit() for k in document) and all(
            isinstance(v, dict) for v in document.values()):
        return list(document.values())
    return [document]


def _jsonl_messages(path: Path) -> Iterator[tuple[int, int | None, Any]]:
    msg_seq, offset = 0, 0
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, 1):
            at, offset = offset, offset + len(line)
            if line_no == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as err:
                raise InputError(f"{path}: line {line_no} is not JSON ({err}); fix or remove that line") from err
            yield msg_seq, at, value
            msg_seq += 1


_LEVEL = pa.struct([("quantity", pa.int64()), ("price", pa.float64()), ("orders", pa.int64())])
_PRICE = pa.float64()
_QTY = pa.int64()
# What the fast path asks Arrow to convert each tick dict into (extra keys are ignored).
_TICK_STRUCT = pa.struct(
    [("instrument_token", pa.int64()), ("mode", pa.string()), ("tradable", pa.bool_()),
     ("last_price", _PRICE)]
    + [(name, _PRICE if column == "average_traded_price" else _QTY)
       for column, names in _ALIASES.items() for name in names]
    + [(name, _PRICE) for name in _OHLC]
    + [("ohlc", pa.struct([(name, _PRICE) for name in _OHLC])),
       ("depth", pa.struct([("buy", pa.list_(_LEVEL)), ("sell", pa.list_(_LEVEL))]))]
)
_TIME_KEYS = {column: names + tuple(n + "_epoch" for n in names) for column, names in _TIME_ALIASES.items()}


class _Builder:
    """The ticks of one batch; ``flush`` turns them into Arrow columns in bulk.

    Arrow converts the tick dicts in C (``pa.array`` with a struct type). Dumps it cannot
    convert that way (strings for numbers, mixed timestamp types, offsets in ISO strings)
    take a per-tick Python path with the same results.
    """

    def __init__(self, file_id: str, tz: dt.tzinfo, path: Path, rejected: list | None = None):
        self.file_id, self.tz, self.path = file_id, tz, path
        self.rejected = rejected
        self._time_cache: dict[Any, int | None] = {}
        self._reset()

    def _reset(self) -> None:
        self.ticks: list[dict] = []
        self.msg_seq: list[int] = []
        self.pkt_seq: list[int] = []
        self.offset: list[int | None] = []
        self.rows = 0

    def add_message(self, msg_seq: int, offset: int | None, value: Any) -> None:
        ticks = value if isinstance(value, list) else [value]
        for tick in ticks:
            if not isinstance(tick, dict):
                raise InputError(
                    f"{self.path}: message {msg_seq} holds a {type(tick).__name__}, not a tick object")
            if "instrument_token" not in tick or "close_price" in tick or _misread_web_head(tick):
                ticks = [_normalise(t, self.path, msg_seq, j) for j, t in enumerate(ticks)]
                break
        n = len(ticks)
        self.ticks.extend(ticks)
        self.msg_seq.extend([msg_seq] * n)
        self.pkt_seq.extend(range(n))
        self.offset.extend([offset] * n)
        self.rows += n

    def flush(self) -> pa.Table:
        n = self.rows
        arrays: dict[str, pa.Array] = {
            "msg_seq": pa.array(self.msg_seq, pa.int64()),
            "pkt_seq": pa.array(self.pkt_seq, pa.int32()),
            "offset": pa.array(self.offset, pa.int64()),
        }
        bad_price: dict[int, str] = {}  # row -> why its price cannot be one
        try:
            arrays.update(self._bulk_columns())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arrays.update(self._row_columns(bad_price))
        for row, reason in _non_finite_prices(arrays).items():
            bad_price.setdefault(row, reason)
        missing = arrays["instrument_token"].null_count
        if missing:
            row = pc.index(pc.is_null(arrays["instrument_token"]), True).as_py()
            raise InputError(f"{self.path}: tick {self.pkt_seq[row]} of message {self.msg_seq[row]} "
                             "has no usable instrument_token")
        token = arrays["instrument_token"].to_numpy()
        segment = token & 0xFF
        arrays["file_id"] = pa.array([self.file_id], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))
        arrays["segment"] = pa.array(segment.astype(np.int16))
        arrays["exchange_token"] = pa.array(token >> 8)
        arrays["recv_ts"] = pa.nulls(n, schema.UTC_TIME)
        tradable = pc.coalesce(arrays["tradable"], pa.array(segment != protocol.INDICES_SEGMENT))
        levels = pc.max_element_wise(pc.list_value_length(arrays["bid_price"]),
                                     pc.list_value_length(arrays["ask_price"]))
        has_depth = pc.is_valid(levels)
        mode = pc.coalesce(arrays["mode"], pc.if_else(
            has_depth, "full", pc.if_else(pc.is_valid(arrays["close"]), "quote", "ltp")))
        arrays["tradable"], arrays["mode"] = tradable, mode
        arrays["packet_length"] = _packet_lengths(mode, tradable, levels)
        # Kite web's / the Rust peer's "ltpc" is the 12-byte LTP + close packet: mode ltp.
        arrays["mode"] = pc.if_else(pc.equal(mode, "ltpc"), "ltp", mode)
        arrays.update(_derived(arrays, n))
        if bad_price:
            self._reject(bad_price)
            keep = np.ones(n, dtype=bool)
            keep[list(bad_price)] = False
            keep_array = pa.array(keep)
            arrays = {name: pc.filter(array, keep_array) for name, array in arrays.items()}
        self._reset()
        values = pa.Table.from_arrays([arrays[name] for name in schema.DECODED_VALUE_NAMES],
                                      schema=pa.schema([schema.DECODED_SCHEMA.field(n)
                                                        for n in schema.DECODED_VALUE_NAMES]))
        return pa.Table.from_arrays(values.columns + [suspect_reasons(values)], schema=schema.DECODED_SCHEMA)

    def _reject(self, bad_price: dict[int, str]) -> None:
        """Ticks whose price cannot be one: never stored; reported as bad records."""
        if self.rejected is None:
            return
        from app.core.framing import BAD_RAW_CAP, BadPacket

        for row, reason in sorted(bad_price.items()):
            try:
                raw = json.dumps(self.ticks[row], default=str).encode()
            except (TypeError, ValueError):
                raw = repr(self.ticks[row]).encode()
            offset = self.offset[row]
            self.rejected.append(BadPacket(
                offset if offset is not None else 0, len(raw),
                f"tick {self.pkt_seq[row]} of message {self.msg_seq[row]}: {reason}; not stored",
                raw[:BAD_RAW_CAP], self.msg_seq[row]))

    def _bulk_columns(self) -> dict[str, pa.Array]:
        ticks = pa.array(self.ticks, _TICK_STRUCT)
        field = lambda name: pc.struct_field(ticks, name)  # noqa: E731 - parent nulls respected
        out = {name: field(name) for name in ("instrument_token", "mode", "tradable", "last_price")}
        for column, names in _ALIASES.items():
            out[column] = pc.coalesce(*[field(name) for name in names]) if len(names) > 1 else field(names[0])
        ohlc = field("ohlc")
        for name in _OHLC:
            out[name] = pc.coalesce(pc.struct_field(ohlc, name), field(name))
        depth = field("depth")
        for (side, part), column in _DEPTH_COLUMNS.items():
            levels = pc.struct_field(depth, side)
            out[column] = pa.ListArray.from_arrays(
                levels.offsets, pc.struct_field(levels.values, part), mask=levels.is_null())
        for column, names in _TIME_KEYS.items():
            out[column] = self._bulk_times([_first(t, names) for t in self.ticks])
        return out

    def _bulk_times(self, values: list) -> pa.Array:
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if not kinds:
            return pa.nulls(len(values), schema.UTC_TIME)
        if kinds == {str}:
            naive = pa.array(values, pa.string()).cast(pa.timestamp("us"))  # raises on offsets
            fixed = self.tz.utcoffset(None)
            if fixed is not None:
                micros = pc.subtract(naive.cast(pa.int64()), int(fixed.total_seconds()) * 1_000_000)
            else:
                micros = pc.assume_timezone(naive, timezone=str(self.tz), ambiguous="earliest",
                                            nonexistent="earliest").cast(pa.int64())
        elif kinds <= {int, float}:
            numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            magnitude = np.abs(numbers)
            scale = np.select([magnitude >= 1e17, magnitude >= 1e14, magnitude >= 1e11], [1e-3, 1.0, 1e3], 1e6)
            micros = pa.array(np.rint(numbers * scale), pa.float64(), from_pandas=True).cast(pa.int64())
        else:
            raise TypeError("mixed timestamp types")
        absent = pc.less_equal(pc.abs(micros), _EPOCH_SLACK_US)
        return pc.if_else(absent, pa.scalar(None, pa.int64()), micros).cast(schema.UTC_TIME)

    def _row_columns(self, bad_price: dict[int, str]) -> dict[str, pa.Array]:
        """The per-tick path, for dumps Arrow cannot convert in bulk. A tick with a price
        that is no number is noted in ``bad_price`` and filled with nulls (then dropped)."""
        c: dict[str, list] = {name: [] for name in _ROW_COLUMNS[3:] if name != "packet_length"}
        for row, (tick, msg_seq, pkt_seq) in enumerate(zip(self.ticks, self.msg_seq, self.pkt_seq, strict=True)):
            problem = _price_problem(tick)
            if problem is not None:
                bad_price[row] = problem
                tick = {"instrument_token": tick.get("instrument_token")}
            try:
                self._add_tick(c, tick)
            except (TypeError, ValueError) as err:
                raise InputError(f"{self.path}: tick {pkt_seq} of message {msg_seq}: {err}") from err
        types = schema.DECODED_SCHEMA
        return {name: pa.array(values, types.field(name).type) for name, values in c.items()}

    def _add_tick(self, c: dict[str, list], tick: dict) -> None:
        token = tick.get("instrument_token")
        c["instrument_token"].append(None if token is None else int(token))
        ohlc = tick.get("ohlc") or {}
        depth = tick.get("depth")
        tradable = tick.get("tradable")
        c["mode"].append(tick.get("mode"))
        c["tradable"].append(None if tradable is None else bool(tradable))
        c["last_price"].append(_number(tick.get("last_price")))
        for column, names in _ALIASES.items():
            convert = _number if column == "average_traded_price" else _integer
            c[column].append(convert(_first(tick, names)))
        for column in _OHLC:
            value = ohlc.get(column)
            c[column].append(_number(tick.get(column) if value is None else value))
        for column, names in _TIME_KEYS.items():
            c[column].append(self._epoch_us(_first(tick, names)))
        for (side, part), column in _DEPTH_COLUMNS.items():
            if depth is None:
                c[column].append(None)
                continue
            convert = _number if part == "price" else _integer
            c[column].append([convert(level.get(part)) for level in depth.get(side) or ()])

    def _epoch_us(self, value: Any) -> int | None:
        """Microseconds since the epoch; None for absent (and for the epoch itself)."""
        if value is None:
            return None
        try:
            return self._time_cache[value]
        except (KeyError, TypeError):
            pass
        if isinstance(value, bool):
            raise InputError(f"{self.path}: {value!r} is not a timestamp")
        if isinstance(value, (int, float)):
            magnitude = abs(value)
            scale = 1e-3 if magnitude >= 1e17 else 1 if magnitude >= 1e14 else 1e3 if magnitude >= 1e11 else 1e6
            micros = round(value * scale)
        elif isinstance(value, str):
            try:
                when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError as err:
                raise InputError(f"{self.path}: timestamp {value!r} is neither ISO 8601 nor epoch") from err
            if when.tzinfo is None:
                when = when.replace(tzinfo=self.tz)
            delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        else:
            raise InputError(f"{self.path}: {value!r} is not a timestamp")
        # Kite's 0 arrives as 1970-01-01 in the client's local time zone, whatever that was.
        result = None if abs(micros) <= _EPOCH_SLACK_US else micros
        self._time_cache[value] = result
        return result


_TICKER_TYPE = "\x00ticker_type"  # the Rust peer's tickerType, kept on its unwrapped ticks

# Kite web app / Rust peer camelCase -> the official client's names, where the meaning is
# certain (README "Tick dumps: dialects"). Not mapped: change/absoluteChange/openChange*
# (derived; recomputed), tickChange, and lastTradedTime of the web app's own state (it
# merges 184- and 492-byte packets, whose time fields differ: not certain).
_WEB_FIELDS = {
    "token": "instrument_token", "lastPrice": "last_price", "lastQuantity": "last_traded_quantity",
    "averagePrice": "average_traded_price", "volume": "volume_traded",
    "totalBuyQuantity": "total_buy_quantity", "totalSellQuantity": "total_sell_quantity",
    "oi": "oi", "oiDayHigh": "oi_day_high", "oiDayLow": "oi_day_low",
    "isTradeable": "tradable", "isTradable": "tradable", "exchangeTimestamp": "exchange_timestamp",
    "openPrice": "open", "highPrice": "high", "lowPrice": "low", "closePrice": "close",
}
_OFFICIAL_KEYS = frozenset(("instrument_token",))


def _normalise(tick: dict, path, msg_seq: int, pkt_seq: int) -> dict:
    """A tick of a known dialect in the official client's names, or a per-file error."""
    if "instrument_token" in tick and "raw_len" in tick:
        return _from_qdx(tick, path, msg_seq, pkt_seq)
    if _misread_web_head(tick):
        return _web_head_from_quote(tick)
    if "instrument_token" in tick:
        if "close_price" in tick:  # the Rust peer's ltpc: close_price is the close
            tick = dict(tick)
            close = tick.pop("close_price")
            tick.setdefault("close", close)
        return tick
    if "token" in tick and ("lastPrice" in tick or "mode" in tick):
        out: dict = {}
        for key, value in tick.items():
            name = _WEB_FIELDS.get(key)
            if name is not None and value is not None:
                out[name] = value
        book = tick.get("extendedDepth") or tick.get("depth")
        if isinstance(book, dict):
            out["depth"] = {"buy": book.get("buy") or [], "sell": book.get("sell") or []}
        if tick.get(_TICKER_TYPE) == "ExtendedDepth" and tick.get("lastTradedTime") is not None:
            # The peer decodes the 492-byte packet's bytes 8-11 into lastTradedTime
            # (checked value for value against ws_extended_depth_20.packet).
            out["exchange_timestamp"] = tick["lastTradedTime"]
        # Its mode labels a subscription, and the web app's state merges packets: the
        # kind is what the tick carries.
        if "depth" in out:
            out["mode"] = "full"
        elif any(k in out for k in ("volume_traded", "open", "high", "low", "average_traded_price")):
            out["mode"] = "quote"
        elif "close" in out:
            out["mode"] = "ltpc"
        else:
            out["mode"] = "ltp"
        return out
    keys = ", ".join(sorted(str(k) for k in tick)[:8]) or "none"
    raise InputError(
        f"{path}: unknown JSON tick dialect (tick {pkt_seq} of message {msg_seq} has keys {keys}); "
        "known: the official client's (instrument_token, last_price, ...), Kite web's (token, lastPrice, ...)"
        " and their wrappers (ticks, tickersData, keyed by token)")


# qdx-decoder (manja) names -> the official client's; its values are raw wire integers
# (prices in the segment's units, e.g. paise), so prices are divided as the decoder does.
_QDX_PRICES = {"last_traded_price": "last_price", "average_traded_price": "average_traded_price"}
_QDX_OHLC = {"open_price": "open", "high_price": "high", "low_price": "low", "close_price": "close"}
_QDX_VALUES = {
    "last_traded_quantity": "last_traded_quantity", "volume_traded_for_day": "volume_traded",
    "total_buy_quantity": "total_buy_quantity", "total_sell_quantity": "total_sell_quantity",
    "open_interest": "oi", "open_interest_day_high": "oi_day_high", "open_interest_day_low": "oi_day_low",
    "last_traded_timestamp": "last_trade_time", "exchange_timestamp": "exchange_timestamp",
}


def _from_qdx(tick: dict, path, msg_seq: int, pkt_seq: int) -> dict:
    layout = protocol.LAYOUTS.get(tick.get("raw_len"))
    token = tick.get("instrument_token")
    if layout is None or not isinstance(token, int):
        raise InputError(f"{path}: tick {pkt_seq} of message {msg_seq}: qdx packet of unknown length "
                         f"{tick.get('raw_len')!r}")
    divisor = protocol.divisor_of(protocol.segment_of(token))

    def price(value):
        return value / divisor if isinstance(value, int) and not isinstance(value, bool) else value

    out: dict = {"instrument_token": token, "mode": layout.mode,
                 "tradable": protocol.segment_of(token) != protocol.INDICES_SEGMENT}
    for key, name in _QDX_PRICES.items():
        if tick.get(key) is not None:
            out[name] = price(tick[key])
    ohlc = {name: price(tick[key]) for key, name in _QDX_OHLC.items() if tick.get(key) is not None}
    if ohlc:
        out["ohlc"] = ohlc
    for key, name in _QDX_VALUES.items():
        if tick.get(key) is not None:
            out[name] = tick[key]
    if isinstance(tick.get("bid_depth"), list) or isinstance(tick.get("ask_depth"), list):
        out["depth"] = {
            side: [dict(level, price=price(level.get("price"))) for level in tick.get(key) or ()]
            for side, key in (("buy", "bid_depth"), ("sell", "ask_depth"))
        }
    return out


def _misread_web_head(tick: dict) -> bool:
    """A Kite web 44-byte depth head that a decoder wrote out as an API quote: the same
    evidence the binary decoder uses (``protocol.DEPTH20_HEAD``): bytes 8-11 (the quote's
    last_traded_quantity) an epoch second, bytes 20-23 and 32-35 (total_buy_quantity and
    high x divisor) order counts."""
    if tick.get("mode") != "quote" or "instrument_token" not in tick:
        return False
    ltq = tick.get("last_traded_quantity", tick.get("last_quantity"))
    if not isinstance(ltq, int) or not protocol.EPOCH_MIN_S <= ltq < protocol.EPOCH_MAX_S:
        return False
    token = tick["instrument_token"]
    if not isinstance(token, int):
        return False
    divisor = protocol.divisor_of(protocol.segment_of(token))
    high = (tick.get("ohlc") or {}).get("high", tick.get("high"))
    tbq = tick.get("total_buy_quantity", tick.get("buy_quantity"))
    return (isinstance(tbq, int) and 0 <= tbq < 1 << 16 and isinstance(high, (int, float))
            and 0 <= round(high * divisor) < 1 << 16)


def _web_head_from_quote(tick: dict) -> dict:
    """The depth head's own fields, from the quote names its 32-bit words were given
    (the meaning of each word is the binary layout's; prices are re-scaled exactly)."""
    token = tick["instrument_token"]
    divisor = protocol.divisor_of(protocol.segment_of(token))
    ohlc = tick.get("ohlc") or {}

    def word(value, price=False):
        return int(round(value * divisor)) if price else int(value)

    get = lambda *names: next((tick[n] for n in names if tick.get(n) is not None), 0)  # noqa: E731
    bids = [
        {"quantity": word(get("average_traded_price", "average_price"), True),
         "price": get("volume_traded", "volume") / divisor, "orders": word(get("total_buy_quantity", "buy_quantity"))},
        {"quantity": word(get("total_sell_quantity", "sell_quantity")), "price": ohlc.get("open", tick.get("open", 0)),
         "orders": word(ohlc.get("high", tick.get("high", 0)), True)},
        {"quantity": word(ohlc.get("low", tick.get("low", 0)), True), "price": ohlc.get("close", tick.get("close", 0)),
         "orders": None},
    ]
    return {"instrument_token": token, "tradable": tick.get("tradable"), "mode": "depth20_head",
            "last_price": tick.get("last_price"),
            "exchange_timestamp": get("last_traded_quantity", "last_quantity"),
            "depth": {"buy": bids, "sell": None}}


_PRICE_KEYS = ("last_price", "average_traded_price", "average_price") + _OHLC


def _bad_number(value: Any) -> str | None:
    """Why a JSON value cannot be a price: NaN, an infinity, a string that is no finite
    number ("N/A", "NaN"), a bool or anything else. A number written as a string by a
    hand-edited dump ("1573.15") is one."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        return None if math.isfinite(number) else f"{value!r} is not a price"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a price"
    return None


def _first_bad_number(values, keys, prefix: str = "") -> str | None:
    """The first of ``keys`` in the dict ``values`` that is no number, said as ``prefix key why``."""
    if isinstance(values, dict):
        for key in keys:
            why = _bad_number(values.get(key))
            if why:
                return f"{prefix}{key} {why}"
    return None


def _price_problem(tick: dict) -> str | None:
    """Why a tick's price cannot be one (NaN, Infinity, a string), else None."""
    why = _first_bad_number(tick, _PRICE_KEYS) or _first_bad_number(tick.get("ohlc"), _OHLC, "ohlc.")
    if why:
        return why
    depth = tick.get("depth")
    if isinstance(depth, dict):
        for side in ("buy", "sell"):
            for level in depth.get(side) or ():
                why = _first_bad_number(level, ("price",), f"depth.{side} ")
                if why:
                    return why
    return None


def _non_finite_prices(arrays: dict[str, pa.Array]) -> dict[int, str]:
    """Rows whose price columns hold NaN or an infinity (JSON NaN/Infinity parse as floats)."""
    out: dict[int, str] = {}
    for name in ("last_price", "average_traded_price") + _OHLC:
        values = arrays[name].to_numpy(zero_copy_only=False).astype(np.float64)
        for row in np.flatnonzero(~np.isfinite(values) & ~np.isnan(values) | _is_nan_not_null(arrays[name])).tolist():
            out.setdefault(row, f"{name} {values[row]!r} is not a price")
    for name in ("bid_price", "ask_price"):
        array = arrays[name]
        flat = pc.list_flatten(array)
        if len(flat) and not pc.all(pc.is_finite(pc.fill_null(flat, 0.0))).as_py():
            rows = pc.list_parent_indices(array).to_numpy()
            bad = ~np.isfinite(pc.fill_null(flat, 0.0).to_numpy(zero_copy_only=False))
            for row in np.unique(rows[bad]).tolist():
                out.setdefault(int(row), f"{name} is not a price")
    return out


def _is_nan_not_null(array: pa.Array) -> np.ndarray:
    if not len(array):
        return np.zeros(0, dtype=bool)
    return pc.fill_null(pc.is_nan(array), False).to_numpy(zero_copy_only=False)


def _first(tick: dict, names: Iterable[str]) -> Any:
    for name in names:
        value = tick.get(name)
        if value is not None:
            return value
    return None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _integer(value: Any) -> int | None:
    if value is None:
        return None
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, float):
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{number!r} is not a whole number of units")
        number = int(number)
    return int(number)


def _packet_lengths(mode: pa.Array, tradable: pa.Array, levels: pa.Array) -> pa.Array:
    """The wire length of the packet the client decoded each tick from."""
    mode = mode.to_numpy(zero_copy_only=False).astype(str)
    tradable = tradable.to_numpy(zero_copy_only=False).astype(bool)
    levels = levels.fill_null(0).to_numpy(zero_copy_only=False)
    length = np.select(
        [mode == "ltp", mode == "ltpc", mode == "depth20_head", ~tradable & (mode == "quote"), ~tradable,
         mode == "quote", levels > 5],
        [8, 12, 44, 28, 32, 44, 492], 184)
    return pa.array(length.astype(np.int32))


def _derived(arrays: dict[str, pa.Array], n: int) -> dict[str, pa.Array]:
    """change, change_percent and the best-known tick time, as the binary decoder defines them."""
    last = arrays["last_price"]
    close = arrays["close"]
    change = pc.subtract(last, close)
    change_percent = pc.if_else(
        pc.equal(close, 0.0), 0.0, pc.divide(pc.multiply(change, 100.0), close))
    tick_time, source = _with_message_fallback(
        arrays["exchange_timestamp"], arrays["last_trade_time"], arrays["msg_seq"], arrays.get("recv_ts"))
    return {
        "change": change,
        "change_percent": change_percent,
        "tick_time": tick_time,
        "tick_time_source": source,
        "trading_date": market_time.trading_dates(tick_time),
    }


def _with_message_fallback(
    exchange_timestamp: pa.Array, last_trade_time: pa.Array, msg_seq: pa.Array,
    recv_ts: pa.Array | None = None,
) -> tuple[pa.Array, pa.Array]:
    """The best-known time of each tick, by the decoder's priority: its own exchange_timestamp
    ('exchange'), the receive time ('receive'; dumps have none), the latest exchange_timestamp
    of its message ('message'), its own last_trade_time ('exchange', possibly a stale trade)."""
    n = len(msg_seq)
    absent = np.iinfo(np.int64).min

    def micros(array: pa.Array | None) -> np.ndarray:
        if array is None:
            return np.full(n, absent, dtype=np.int64)
        return array.cast(schema.UTC_TIME).cast(pa.int64()).fill_null(absent).to_numpy(zero_copy_only=False)

    ets, recv, ltt = micros(exchange_timestamp), micros(recv_ts), micros(last_trade_time)
    tick = np.full(n, absent, dtype=np.int64)
    source = np.full(n, None, dtype=object)

    def fill(values: np.ndarray, name: str) -> None:
        take = (tick == absent) & (values != absent)
        tick[take] = values[take]
        source[take] = name

    fill(ets, schema.TIME_SOURCE_EXCHANGE)
    fill(recv, schema.TIME_SOURCE_RECEIVE)
    if n and (tick == absent).any() and (ets != absent).any():
        seq = msg_seq.to_numpy(zero_copy_only=False)
        # Messages are contiguous runs of msg_seq: a per-run maximum via reduceat.
        starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
        latest = np.maximum.reduceat(ets, starts)
        fill(np.repeat(latest, np.diff(np.r_[starts, n])), schema.TIME_SOURCE_MESSAGE)
    fill(ltt, schema.TIME_SOURCE_EXCHANGE)
    valid = tick != absent
    tick_time = pa.array(np.where(valid, tick, 0), pa.int64(), mask=~valid).cast(schema.UTC_TIME)
    return tick_time, pa.array(source, pa.string())


# --- Parquet --------------------------------------------------------------------


def _read_parquet(path: Path, file_id: str, batch_rows: int) -> Iterator[pa.Table]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: unreadable Parquet file ({err})") from err
    names = set(parquet.schema_arrow.names)
    missing = [name for name in schema.DECODED_VALUE_NAMES if name not in names]
    if missing:
        raise InputError(
            f"{path}: Parquet file is not a tick export (missing columns: {', '.join(missing[:6])}"
            f"{', ...' if len(missing) > 6 else ''}); export it with `tickscope decode`")
    # Several captures in one export: their msg_seq values collide under one file_id,
    # so such files are renumbered in row order (one message per row).
    original_ids = pc.unique(parquet.read(columns=["file_id"]).column("file_id"))
    renumber = len(original_ids) > 1
    row = 0
    value_schema = pa.schema([schema.DECODED_SCHEMA.field(n) for n in schema.DECODED_VALUE_NAMES])
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=schema.DECODED_VALUE_NAMES):
        table = pa.Table.from_batches([batch])
        try:
            table = table.cast(value_schema)
            # suspect_reason is recomputed (older exports have none; the rules may be newer)
            table = pa.Table.from_arrays(table.columns + [suspect_reasons(table)], schema=schema.DECODED_SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise InputError(f"{path}: Parquet columns do not match the tick schema ({err})") from err
        n = table.num_rows
        table = table.set_column(0, "file_id", pa.array(np.full(n, file_id, dtype=object), pa.string()))
        if renumber:
            table = table.set_column(1, "msg_seq", pa.array(np.arange(row, row + n, dtype=np.int64)))
            table = table.set_column(2, "pkt_seq", pa.array(np.zeros(n, dtype=np.int32)))
            table = table.set_column(3, "offset", pa.nulls(n, pa.int64()))
        row += n
        yield table

"""Instrument masters: reading one day's instruments file into ``MASTER_SCHEMA``.

This module owns loading and normalising instrument masters: the official daily dump
(CSV, also gzipped), hand-made token lookups (a JSON object keyed by token, or a JSON
array of records, with varied field names) and Parquet (including the ``instruments``
table Tickscope itself writes). Tokens become int64 on load, whatever they were in the
file ("409", 409, 409.0, " 409 "): the classic failure this prevents is a JSON object
keyed by the string "409" looked up with the integer 409, which finds nothing.

Every row that cannot be used is counted with its reason in ``InstrumentMaster.rejected``;
nothing is dropped silently. A token listed twice with different data is rejected in
every row (either could be the wrong contract, and a wrong name is worse than none);
those rows are kept in ``InstrumentMaster.conflicts`` so the unknown-token report can
say why. Each master carries the trading date it describes (tokens are recycled, so a
master is only right for its own day); which master names which tick is
``app.core.enrich``'s business.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.errors import InputError

MASTER_SCHEMA = pa.schema(
    [
        ("instrument_token", pa.int64()),
        ("exchange_token", pa.int64()),
        ("tradingsymbol", pa.string()),
        ("name", pa.string()),
        ("exchange", pa.string()),
        ("instrument_segment", pa.string()),  # the dump's `segment`, e.g. NFO-OPT
        ("instrument_type", pa.string()),
        ("expiry", pa.date32()),
        ("strike", pa.float64()),
        ("lot_size", pa.int64()),
        ("tick_size", pa.float64()),
    ]
)

# The `instruments` target table: every loaded master's rows, with the day each describes.
INSTRUMENTS_SCHEMA = pa.schema(
    list(MASTER_SCHEMA) + [("instruments_date", pa.date32()), ("source", pa.string())]
)

# Reasons a row is not usable (keys of InstrumentMaster.rejected).
REJECT_MISSING_TOKEN = "missing instrument_token"
REJECT_NON_NUMERIC_TOKEN = "non-numeric instrument_token"
REJECT_TOKEN_NOT_POSITIVE = "instrument_token <= 0"
REJECT_TOKEN_TOO_LARGE = "instrument_token does not fit in 32 bits"
REJECT_CONFLICT = "duplicate instrument_token with conflicting data"
REJECT_REPEAT = "duplicate instrument_token, identical row"
REJECT_NOT_RECORD = "record is not a JSON object"
REJECT_KEY_MISMATCH = "JSON key disagrees with the record's instrument_token"
REJECT_BAD_STRIKE = "impossible strike"
REJECT_BAD_LOT_SIZE = "impossible lot_size"
REJECT_BAD_TICK_SIZE = "impossible tick_size"
REJECT_BAD_EXPIRY = "impossible expiry"
REJECT_BAD_PRICE = "impossible last_price"

# Bounds of a real instrument (README "Instrument masters" gives the evidence).
MAX_MASTER_PRICE = 10_000_000.0  # rupees, as app.core.suspect.MAX_PRICE
MAX_LOT_SIZE = 10_000_000  # the largest Kite lot sizes are ~10^5 (currency, MCX mini contracts)
MAX_TICK_SIZE = 10_000.0
EXPIRY_YEARS = (1990, 2100)
REJECT_EXAMPLES = 5  # rejected rows named (with their line) in the load report

MAX_TOKEN = 0xFFFF_FFFF  # tokens are u32 on the wire

# Field names seen in instrument files, compared after lower-casing and dropping
# everything but letters and digits ("tradingSymbol", "trading_symbol" -> "tradingsymbol").
_ALIASES: dict[str, tuple[str, ...]] = {
    "instrument_token": ("instrumenttoken", "token", "insttoken", "instrumentid"),
    "exchange_token": ("exchangetoken", "exchtoken"),
    "tradingsymbol": ("tradingsymbol", "symbol", "tsym", "ticker"),
    "name": ("name", "companyname", "instrumentname"),
    "exchange": ("exchange", "exch"),
    "instrument_segment": ("segment", "instrumentsegment"),
    "instrument_type": ("instrumenttype", "type", "insttype"),
    "expiry": ("expiry", "expirydate", "expiration"),
    "strike": ("strike", "strikeprice"),
    "lot_size": ("lotsize", "lot", "marketlot"),
    "tick_size": ("ticksize",),
}
_DATE_ALIASES = ("instrumentsdate", "date", "asof", "asofdate", "dumpdate", "tradingdate")

_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})(-?)(\d{2})\2(\d{2})(?!\d)")
_EXPIRY_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d-%b-%Y", "%d-%m-%Y", "%d/%m/%Y", "%d%b%Y", "%Y%m%d")
_CSV_BLOCK_SIZE = 8 << 20
_INT_TEXT = r"^[+-]?\d+(\.0*)?$"
_FLOAT_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


@dataclass
class InstrumentMaster:
    """One instruments file as a table: the instruments of ``date`` (None: any day)."""

    source: str
    date: dt.date | None
    table: pa.Table  # MASTER_SCHEMA, one row per token
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows not usable
    date_source: str | None = None  # "argument" | "column" | "file name" | None
    unreadable: dict[str, int] = field(default_factory=dict)  # column -> values left null
    conflicts: pa.Table = field(default_factory=lambda: MASTER_SCHEMA.empty_table())
    rejected_examples: list[str] = field(default_factory=list)  # "line 7: impossible strike '1e30'"

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    def describe(self) -> str:
        name = Path(self.source).name
        if self.date is None:
            when = "undated (any day)"
        else:
            when = self.date.isoformat() + (f" (from {self.date_source})" if self.date_source else "")
        text = f"{name}: {when}, {self.num_rows:,} instruments"
        if self.rejected:
            reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(self.rejected.items(), key=lambda i: -i[1]))
            text += f", {self.rejected_rows:,} rows rejected ({reasons})"
        else:
            text += ", 0 rows rejected"
        if self.rejected_examples:
            text += " - " + "; ".join(self.rejected_examples)
        return text


# --- public entry points -----------------------------------------------------------


def load_master(path, date: dt.date | None = None) -> InstrumentMaster:
    """Load one instruments file (CSV, CSV.gz, JSON object/array, Parquet).

    The master's date is ``date`` if given, else the file's single-valued date column,
    else a YYYYMMDD / YYYY-MM-DD in the file name, else None (a fallback for every day).
    A file whose date column holds several days needs ``date`` (its rows of that day are
    used) or :func:`load_masters`.
    """
    masters = _load(path, date, split=False)
    return masters[0]


def load_masters(path) -> list[InstrumentMaster]:
    """Like :func:`load_master`, one master per day of a file that holds several days."""
    return _load(path, None, split=True)


def date_from_name(name: str) -> dt.date | None:
    """The first real calendar date written YYYYMMDD or YYYY-MM-DD in a file name."""
    for m in _DATE_IN_NAME.finditer(name):
        try:
            return dt.date(int(m.group(1)), int(m.group(3)), int(m.group(4)))
        except ValueError:
            continue
    return None


# --- reading files -----------------------------------------------------------------


def _load(path, date: dt.date | None, split: bool) -> list[InstrumentMaster]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"instrument master not found: {path} (give the path of the instruments CSV/JSON/Parquet)")
    try:
        raw, rejected, kind = _read_raw(path)
    except InputError:
        raise
    except RecursionError:
        raise InputError(f"cannot read instrument master {path.name}: JSON nested too deeply to be a master "
                         "(give the Kite instruments dump or a token lookup)") from None
    except (EOFError, zlib.error) as err:
        raise InputError(f"cannot read instrument master {path.name}: the compressed file is cut short or "
                         f"corrupt ({_one_line(err)}); download it again") from None
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError) as err:
        raise InputError(f"cannot read instrument master {path.name}: {_one_line(err)}") from err

    columns = _canonical_columns(raw)
    if "instrument_token" not in columns:
        raise InputError(
            f"{path.name} has no instrument token column (columns: {', '.join(raw.column_names[:15])}); "
            "expected the Kite instruments dump or a token lookup"
        )
    table, unreadable, rejected, keep, examples = _normalise(raw, columns, rejected, kind)

    groups = _split_by_date_column(raw, keep, path, date, split)
    masters = []
    # Rows rejected before the split have no reliable day: they are reported on the first.
    for i, (day, rows, day_source) in enumerate(groups):
        if date is not None:
            day, day_source = date, "argument"
        elif day is None:
            day = date_from_name(path.name)
            day_source = "file name" if day else None
        sub_rejected = dict(rejected) if i == 0 else {}
        sub_table = table if rows is None else table.filter(rows)
        kept, conflicts, dup_rejected = _drop_duplicates(sub_table)
        for reason, n in dup_rejected.items():
            sub_rejected[reason] = sub_rejected.get(reason, 0) + n
        masters.append(
            InstrumentMaster(
                source=str(path), date=day, table=kept, rejected=sub_rejected,
                date_source=day_source, unreadable=unreadable if i == 0 else {},
                conflicts=conflicts, rejected_examples=examples if i == 0 else [],
            )
        )
    usable = sum(m.num_rows for m in masters)
    rejected_rows = sum(m.rejected_rows for m in masters)
    if usable == 0 and rejected_rows:
        # Loading "0 instruments" would silently leave every tick unnamed.
        totals: dict[str, int] = {}
        for m in masters:
            for reason, n in m.rejected.items():
                totals[reason] = totals.get(reason, 0) + n
        reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(totals.items(), key=lambda i: -i[1]))
        raise InputError(f"no usable instruments in {path.name}: {rejected_rows:,} rows rejected ({reasons})")
    if usable == 0:
        # An empty or header-only file names nothing: the same answer for CSV and JSON.
        raise InputError(f"{path.name} holds no instruments (an empty or header-only file): "
                         "give the Kite instruments dump or a token lookup")
    return masters


def _read_raw(path: Path) -> tuple[pa.Table, dict[str, int], str]:
    """The file's own columns, untyped as far as possible; plus rows rejected on reading."""
    with open(path, "rb") as f:
        head = f.read(4)
    gz = head[:2] == b"\x1f\x8b"
    if head == b"PAR1":
        return pq.read_table(path), {}, "parquet"
    opener = (lambda: gzip.open(path, "rb")) if gz else (lambda: open(path, "rb"))
    with opener() as f:
        start = f.read(4096)
    first = start.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first in (b"{", b"["):
        with opener() as f, io.TextIOWrapper(f, encoding="utf-8-sig") as text:
            return (*_read_json(json.load(text)), "json")
    return _read_csv(path, gz, opener), {}, "csv"


def _read_csv(path: Path, gz: bool, opener) -> pa.Table:
    # Every column is read as text: type inference from the first block fails on a later
    # block that disagrees (a token "409.0" after "409"), and we normalise text ourselves.
    with opener() as f, io.TextIOWrapper(f, encoding="utf-8-sig", newline="") as text:
        header_line = text.readline()
    names = next(csv.reader([header_line]), [])
    if not names:
        raise InputError(f"{path.name} holds no instruments (an empty or header-only file): "
                         "give the Kite instruments dump or a token lookup")
    names = _unique_names([n.strip() for n in names])
    with pa.input_stream(str(path), compression="gzip" if gz else None) as source:
        return pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=_CSV_BLOCK_SIZE),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True,
            ),
        )


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        n = n or "column"
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
        out.append(n)
    return out


def _read_json(doc: Any) -> tuple[pa.Table, dict[str, int]]:
    """A JSON object keyed by token (or by anything, with the token inside) or an array."""
    rejected: dict[str, int] = {}
    keys: list | None = None
    doc = _unwrap(doc)
    if isinstance(doc, dict):
        keys = list(doc.keys())
        records = list(doc.values())
    elif isinstance(doc, list):
        records = doc
    else:
        raise InputError("the JSON holds neither an object keyed by token nor an array of instruments")

    if not all(type(r) is dict for r in records):
        # A bare string value is the common hand-made {"409": "RELIANCE"}.
        records = [{"tradingsymbol": r} if isinstance(r, str) else r for r in records]
        usable = [isinstance(r, dict) for r in records]
        if not all(usable):
            rejected[REJECT_NOT_RECORD] = usable.count(False)
            if keys is not None:
                keys = [k for k, ok in zip(keys, usable, strict=True) if ok]
            records = [r for r, ok in zip(records, usable, strict=True) if ok]

    field_names: dict[str, None] = {}
    for r in records:
        field_names.update(dict.fromkeys(r))
    columns = {name: _json_column([r.get(name) for r in records]) for name in field_names}
    if keys is not None:
        columns["__key__"] = pa.array(keys, pa.string())
    table = pa.table(columns) if columns else pa.table({"__key__": pa.array([], pa.string())})
    return table, rejected


# Keys of an API envelope around the payload: {"status": "success", "data": [...]}.
_ENVELOPE_KEYS = frozenset(("status", "message", "error_type", "error", "code", "success", "meta"))
_TOKEN_KEYS = frozenset(_ALIASES["instrument_token"])


def _unwrap(doc: Any) -> Any:
    """The payload inside wrappers: {"instruments": [...]}, {"data": {token: ...}} or a
    Kite API response {"status": "success", "data": [...]}; a bare record is left alone."""
    for _ in range(4):  # a few levels at most: {"data": {"instruments": [...]}}
        if not isinstance(doc, dict):
            return doc
        if len(doc) == 1:
            key, value = next(iter(doc.items()))
            # A lone key is a wrapper unless it is a token (a one-row lookup) or the value
            # is itself one record (a one-row lookup keyed by symbol).
            if _looks_numeric(key) or not isinstance(value, (dict, list)) or _is_record(value):
                return doc
            doc = value
        elif "data" in doc and isinstance(doc["data"], (dict, list)) and all(
            k == "data" or _squash(str(k)) in _ENVELOPE_KEYS for k in doc
        ):
            doc = doc["data"]
        else:
            return doc
    return doc


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and any(_squash(str(k)) in _TOKEN_KEYS for k in value)


def _json_column(values: list) -> pa.Array:
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = None
    if arr is None or pa.types.is_nested(arr.type) or pa.types.is_boolean(arr.type):
        arr = pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
                       pa.string())
    return arr


def _looks_numeric(key: str) -> bool:
    return re.match(_FLOAT_TEXT, str(key).strip()) is not None


# --- normalising -------------------------------------------------------------------


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _canonical_columns(raw: pa.Table) -> dict[str, list[str]]:
    """Canonical column -> the file's columns that can fill it, in order of preference."""
    squashed = {}
    for name in raw.column_names:
        squashed.setdefault(_squash(name), []).append(name)
    out: dict[str, list[str]] = {}
    for canonical, aliases in _ALIASES.items():
        found = [n for a in aliases for n in squashed.get(a, [])]
        if found:
            out[canonical] = found
    if "__key__" in raw.column_names:
        out.setdefault("instrument_token", [])
    return out


def _where(kind: str, row: int) -> str:
    """Where a raw row is in its file, as a person looks for it."""
    if kind == "csv":
        return f"line {row + 2}"  # line 1 is the header
    return f"{'record' if kind == 'json' else 'row'} {row + 1}"


def _normalise(
    raw: pa.Table, columns: dict[str, list[str]], rejected: dict[str, int], kind: str = "csv"
) -> tuple[pa.Table, dict[str, int], dict[str, int], np.ndarray, list[str]]:
    """MASTER_SCHEMA rows, unreadable counts, rejections, which raw rows were kept, and the
    first rejected rows named with their line."""
    n = raw.num_rows
    rejected = dict(rejected)
    unreadable: dict[str, int] = {}

    def coalesced(canonical: str, convert) -> pa.Array:
        result = None
        for name in columns.get(canonical, []):
            values, bad = convert(_as_array(raw.column(name)))
            if bad:
                unreadable[canonical] = unreadable.get(canonical, 0) + bad
            result = values if result is None else pc.coalesce(result, values)
        return result

    # The token: from the record's own token field, else from the JSON object key.
    token = None
    present_mask = np.zeros(n, dtype=bool)
    for name in columns["instrument_token"]:
        arr = _as_array(raw.column(name))
        values, _ = _int64_values(arr)
        present_mask |= _present(arr)
        token = values if token is None else pc.coalesce(token, values)
    key_mismatch = np.zeros(n, dtype=bool)
    if "__key__" in raw.column_names:
        # A non-numeric key ("NSE:INFY") is fine when the record names its token.
        key = _as_array(raw.column("__key__"))
        key_values, _ = _int64_values(key)
        present_mask |= _present(key)
        if token is None:
            token = key_values
        else:
            both = _valid(token) & _valid(key_values)
            key_mismatch = both & (
                np.asarray(pc.fill_null(token, 0)) != np.asarray(pc.fill_null(key_values, 0))
            )
            token = pc.coalesce(token, key_values)
    if token is None:
        token = pa.nulls(n, pa.int64())

    tok = np.asarray(pc.fill_null(token, 0))
    valid_tok = _valid(token)
    reasons = [
        (REJECT_MISSING_TOKEN, ~present_mask),
        (REJECT_NON_NUMERIC_TOKEN, present_mask & ~valid_tok),
        (REJECT_KEY_MISMATCH, key_mismatch),
        (REJECT_TOKEN_NOT_POSITIVE, valid_tok & (tok <= 0)),
        (REJECT_TOKEN_TOO_LARGE, valid_tok & (tok > MAX_TOKEN)),
    ]
    token_reasons = reasons

    exchange_token = coalesced("exchange_token", _int64_values_counted)
    derived_exchange_token = pa.array(tok >> 8, pa.int64())
    exchange_token = derived_exchange_token if exchange_token is None else pc.coalesce(
        exchange_token, derived_exchange_token
    )

    def text(canonical: str) -> pa.Array:
        values = coalesced(canonical, lambda a: (_text(a), 0))
        return pa.nulls(n, pa.string()) if values is None else values

    def typed(canonical: str, convert, type_: pa.DataType) -> pa.Array:
        values = coalesced(canonical, convert)
        return pa.nulls(n, type_) if values is None else values

    arrays = [
        token,
        exchange_token,
        text("tradingsymbol"),
        text("name"),
        pc.utf8_upper(text("exchange")),
        pc.utf8_upper(text("instrument_segment")),
        pc.utf8_upper(text("instrument_type")),
        typed("expiry", _date32_values, pa.date32()),
        typed("strike", _float64_values, pa.float64()),
        typed("lot_size", _int64_values_counted, pa.int64()),
        typed("tick_size", _float64_values, pa.float64()),
    ]
    table = pa.Table.from_arrays(arrays, schema=MASTER_SCHEMA)

    # Row by row: a value that is there but impossible rejects its whole row (never a
    # half-loaded instrument with the field silently null).
    def present(canonical: str) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        for name in columns.get(canonical, []):
            mask |= _present(_as_array(raw.column(name)))
        return mask

    def numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        valid = _valid(arr)
        return np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), 0.0)), valid

    strike, strike_ok = numbers(table.column("strike").combine_chunks())
    lot, lot_ok = numbers(table.column("lot_size").combine_chunks())
    tick, tick_ok = numbers(table.column("tick_size").combine_chunks())
    expiry = table.column("expiry").combine_chunks()
    expiry_ok = _valid(expiry)
    years = np.asarray(pc.fill_null(pc.year(expiry), EXPIRY_YEARS[0])) if n else np.zeros(0, np.int64)
    with np.errstate(invalid="ignore"):
        reasons = token_reasons + [
            (REJECT_BAD_STRIKE, present("strike") & (~strike_ok | ~np.isfinite(strike) | (strike < 0)
                                                     | (strike > MAX_MASTER_PRICE))),
            # 0 is real: the Kite dump gives indices lot_size 0 (and tick_size 0)
            (REJECT_BAD_LOT_SIZE, present("lot_size") & (~lot_ok | (lot < 0) | (lot > MAX_LOT_SIZE)
                                                         | (lot != np.floor(lot)))),
            (REJECT_BAD_TICK_SIZE, present("tick_size") & (~tick_ok | ~np.isfinite(tick) | (tick < 0)
                                                           | (tick > MAX_TICK_SIZE))),
            (REJECT_BAD_EXPIRY, present("expiry") & (~expiry_ok | (years < EXPIRY_YEARS[0])
                                                     | (years > EXPIRY_YEARS[1]))),
        ]
        price_col = next((name for name in raw.column_names if _squash(name) in ("lastprice", "ltp")), None)
        if price_col is not None:
            arr = _as_array(raw.column(price_col))
            price, bad = _float64_values(arr)
            p, ok = numbers(price)
            reasons.append((REJECT_BAD_PRICE, _present(arr) & (~ok | ~np.isfinite(p) | (p < 0)
                                                               | (p > MAX_MASTER_PRICE))))
    keep = np.ones(n, dtype=bool)
    examples: list[tuple[int, str]] = []
    for reason, mask in reasons:
        hit = mask & keep
        if hit.any():
            rejected[reason] = rejected.get(reason, 0) + int(hit.sum())
            keep &= ~hit
            examples += [(int(i), reason) for i in np.flatnonzero(hit)[:REJECT_EXAMPLES]]
    named = []
    for row, reason in sorted(examples)[:REJECT_EXAMPLES]:
        field_name = {REJECT_BAD_STRIKE: "strike", REJECT_BAD_LOT_SIZE: "lot_size",
                      REJECT_BAD_TICK_SIZE: "tick_size", REJECT_BAD_EXPIRY: "expiry"}.get(reason, "instrument_token")
        source = (columns.get(field_name) or [price_col if reason == REJECT_BAD_PRICE else None])[0]
        value = raw.column(source)[row].as_py() if source in raw.column_names else None
        named.append(f"{_where(kind, row)}: {reason}" + (f" {value!r}" if value is not None else ""))
    if not keep.all():
        table = table.filter(pa.array(keep))
    return table, unreadable, rejected, keep, named


def _split_by_date_column(raw, keep, path, date, split):
    """[(day, row mask over the kept rows or None, date source)] from the file's date column."""
    date_col = None
    squashed = {_squash(n): n for n in raw.column_names}
    for alias in _DATE_ALIASES:
        if alias in squashed:
            date_col = squashed[alias]
            break
    if date_col is None:
        return [(None, None, None)]
    days, _ = _date32_values(_as_array(raw.column(date_col)))
    days = days.filter(pa.array(keep))
    distinct = [d for d in pc.unique(days).to_pylist() if d is not None]
    if len(distinct) <= 1:
        return [(distinct[0] if distinct else None, None, "column" if distinct else None)]
    if date is not None:
        rows = pc.fill_null(pc.equal(days, pa.scalar(date, pa.date32())), False)
        if not pc.any(rows).as_py():
            raise InputError(
                f"{path.name} holds instruments of {len(distinct)} days, none of them {date.isoformat()}"
            )
        return [(date, rows, "argument")]
    if not split:
        raise InputError(
            f"{path.name} holds instruments of {len(distinct)} days "
            f"({min(distinct).isoformat()} to {max(distinct).isoformat()}): give the day to use, "
            "or load it as several masters"
        )
    return [
        (d, pc.fill_null(pc.equal(days, pa.scalar(d, pa.date32())), False), "column")
        for d in sorted(distinct)
    ]


def _drop_duplicates(table: pa.Table) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """One row per token: identical repeats are dropped, conflicting tokens dropped whole."""
    if table.num_rows == 0:
        return table, MASTER_SCHEMA.empty_table(), {}
    tokens = np.asarray(table.column("instrument_token").combine_chunks())
    order = np.argsort(tokens, kind="stable")
    sorted_tokens = tokens[order]
    repeat = np.zeros(len(tokens), dtype=bool)
    repeat[1:] = sorted_tokens[1:] == sorted_tokens[:-1]
    if not repeat.any():
        return table, MASTER_SCHEMA.empty_table(), {}

    # Compare each repeat with the first row of its token, column by column.
    group_first = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(tokens))))
    rep_rows = order[repeat]
    first_rows = order[group_first[repeat]]
    same = np.ones(len(rep_rows), dtype=bool)
    for name in MASTER_SCHEMA.names:
        col = table.column(name)
        a, b = col.take(pa.array(rep_rows)), col.take(pa.array(first_rows))
        eq = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        same &= np.asarray(pc.or_(eq, both_null))
    conflicting_tokens = np.unique(tokens[rep_rows[~same]])
    drop = np.zeros(len(tokens), dtype=bool)
    drop[rep_rows[same]] = True
    in_conflict = np.isin(tokens, conflicting_tokens)
    rejected: dict[str, int] = {}
    n_conflict = int(in_conflict.sum())
    n_repeat = int((drop & ~in_conflict).sum())
    if n_conflict:
        rejected[REJECT_CONFLICT] = n_conflict
    if n_repeat:
        rejected[REJECT_REPEAT] = n_repeat
    conflicts = table.filter(pa.array(in_conflict & ~drop))
    kept = table.filter(pa.array(~(drop | in_conflict)))
    return kept, conflicts, rejected


# --- column converters: (values, count of non-empty values that could not be read) ---


def _as_array(col) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _valid(arr: pa.Array | None) -> np.ndarray:
    if arr is None:
        return np.zeros(0, dtype=bool)
    return np.asarray(pc.is_valid(arr))


def _present(arr: pa.Array) -> np.ndarray:
    """Values that are there at all: not null and not blank text."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return np.asarray(pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(arr), ""), False))
    return np.asarray(pc.is_valid(arr))


def _text(arr: pa.Array) -> pa.Array:
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _int64_values(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """int64 values and a mask of present values that are not whole numbers."""
    t = arr.type
    if pa.types.is_integer(t):
        return pc.cast(arr, pa.int64(), safe=False), np.zeros(len(arr), dtype=bool)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = pc.cast(arr, pa.float64())
        whole = pc.and_(pc.is_finite(f), pc.equal(pc.floor(f), f))
        whole = pc.and_(whole, pc.less(pc.abs(f), 2.0**62))
        ints = pc.cast(pc.if_else(whole, f, pa.scalar(None, pa.float64())), pa.int64())
        return ints, np.asarray(pc.fill_null(pc.invert(whole), False))
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return pa.nulls(len(arr), pa.int64()), _present(arr)
    s = pc.utf8_trim_whitespace(arr)
    fast = _try_cast(pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s), pa.int64())
    if fast is not None:  # the usual clean column: regexes cost 10x more than a cast
        return fast, np.zeros(len(arr), dtype=bool)
    is_int = pc.fill_null(pc.match_substring_regex(s, _INT_TEXT), False)
    digits = pc.replace_substring_regex(s, r"\.0*$", "")
    digits = pc.if_else(pc.and_(is_int, pc.less_equal(pc.utf8_length(digits), 18)), digits,
                        pa.scalar(None, pa.string()))
    ints = pc.cast(digits, pa.int64())
    is_float = pc.and_(pc.invert(is_int), pc.fill_null(pc.match_substring_regex(s, _FLOAT_TEXT), False))
    if pc.any(is_float).as_py():
        floats, _ = _int64_values(
            pc.cast(pc.if_else(is_float, s, pa.scalar(None, pa.string())), pa.float64())
        )
        ints = pc.coalesce(ints, floats)
    bad = _present(arr) & ~np.asarray(pc.is_valid(ints))
    return ints, bad


def _int64_values_counted(arr: pa.Array) -> tuple[pa.Array, int]:
    values, bad = _int64_values(arr)
    return values, int(bad.sum())


def _float64_values(arr: pa.Array) -> tuple[pa.Array, int]:
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64()), 0
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return pa.nulls(len(arr), pa.float64()), int(_present(arr).sum())
    s = pc.utf8_trim_whitespace(arr)
    fast = _try_cast(pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s), pa.float64())
    if fast is not None and not pc.any(pc.invert(pc.is_finite(fast))).as_py():
        return fast, 0
    ok = pc.fill_null(pc.match_substring_regex(s, _FLOAT_TEXT), False)
    values = pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64())
    return values, int((_present(arr) & ~np.asarray(ok)).sum())


def _date32_values(arr: pa.Array) -> tuple[pa.Array, int]:
    t = arr.type
    if pa.types.is_date(t):
        return pc.cast(arr, pa.date32()), 0
    if pa.types.is_timestamp(t):
        return pc.cast(pc.cast(arr, pa.timestamp(t.unit)), pa.date32()), 0
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        arr = pc.cast(arr, pa.string())  # 20251028 as a number
    s = pc.utf8_trim_whitespace(arr)
    s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
    fast = _try_cast(s, pa.date32())
    if fast is not None:  # plain YYYY-MM-DD, as the Kite dump writes it
        return fast, 0
    # "2025-10-28 00:00:00" / "2025-10-28T00:00:00+05:30": the day is the first 10 characters.
    iso = pc.fill_null(pc.match_substring_regex(s, r"^\d{4}[-/]\d{2}[-/]\d{2}([ T].*)?$"), False)
    s = pc.if_else(iso, pc.utf8_slice_codeunits(s, 0, 10), s)
    result = pa.nulls(len(s), pa.timestamp("s"))
    for fmt in _EXPIRY_FORMATS:
        todo = pc.and_(pc.is_valid(s), pc.is_null(result))
        if not pc.any(todo).as_py():
            break
        parsed = pc.strptime(pc.if_else(todo, s, pa.scalar(None, pa.string())), format=fmt, unit="s",
                             error_is_null=True)
        result = pc.coalesce(result, parsed)
    days = pc.cast(result, pa.date32())
    bad = int((_present(arr) & ~np.asarray(pc.is_valid(days))).sum())
    return days, bad


def _try_cast(arr: pa.Array, type_: pa.DataType) -> pa.Array | None:
    try:
        return pc.cast(arr, type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__

"""Naming ticks: the instrument book and vectorised enrichment to ``TICK_SCHEMA``.

This module owns which instrument master names which tick. Kite recycles instrument
tokens (F&O tokens after expiry, equities that change segment), so a tick is named only
with the master of its own trading day:

* For a tick of trading date D the book builds a chain of masters: the masters dated D,
  else those of the closest earlier date; then the undated masters (a fallback for every
  day); and only when no dated master is on or before D, the masters of the closest later
  date (counted in ``EnrichStats.named_by_later_master``).
* A token is looked up along that chain and named by the first master that has it. The
  chain never reaches another *dated* day when one on or before D exists: a token
  missing from its day's master stays unresolved (and ``app.core.unknown`` explains that
  it is in other days' masters) rather than being named with a contract that may since
  have been re-assigned.
* Ticks without a trading date (no timestamp of any kind) cannot pick their day: they
  are looked up in the undated masters first (made for any day), then in the masters of
  the newest dated day. Every tick named this way is counted in
  ``EnrichStats.named_without_date`` so the CLI/UI can warn that its name is a guess
  (a recycled token may have meant another contract on the tick's unknown day).
* Several masters of the same date (say one per exchange) are searched in the order
  they were added.

Unresolved ticks keep null in every enrichment column and ``resolved`` false: never a
placeholder symbol. The work is per distinct (trading date, token) pair, then one
gather over the rows, so cost is a hash of the tokens plus an Arrow ``take``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core import protocol
from app.core.instruments import INSTRUMENTS_SCHEMA, MASTER_SCHEMA, InstrumentMaster
from app.core.schema import DECODED_SCHEMA, ENRICHMENT_SCHEMA, TICK_SCHEMA

# The segment byte a master row's token must carry, from the master's exchange.
EXCHANGE_SEGMENTS: dict[str, int] = {
    "NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "BFO": 5, "BCD": 6, "MCX": 7, "MCXSX": 8, "NCO": 12,
}
INDICES_NAME = "INDICES"  # the dump's segment for indices of any exchange: byte 9

_EPOCH = dt.date(1970, 1, 1)
_NO_DAY = np.iinfo(np.int32).max  # ticks without a trading date sort after every master

# How a tick got its name (per (day, token) pair), for EnrichStats.
_UNRESOLVED, _OWN_OR_EARLIER, _UNDATED, _LATER = 0, 1, 2, 3


@dataclass
class EnrichStats:
    rows: int = 0
    resolved: int = 0
    unresolved: int = 0
    segment_mismatches: int = 0  # named, but the master's exchange implies another segment byte
    named_by_later_master: int = 0  # no master on or before the tick's day had a date
    named_by_undated_master: int = 0
    named_without_date: int = 0  # ticks with a null trading_date that still got a name

    def __iadd__(self, other: EnrichStats) -> EnrichStats:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _MasterIndex:
    """One master's place in the book; its token index and values are built on first use
    (a stored master's rows are not even read until a tick of its day needs naming)."""

    def __init__(self, master: InstrumentMaster, day: int | None, offset: int, lock: threading.RLock):
        self.master = master
        self.day = day  # days since epoch, None for undated
        self.offset = offset  # first row of this master in the book's row numbering
        self._lock = lock
        self._built = None

    @property
    def built(self) -> bool:
        return self._built is not None

    def data(self):
        """(sorted tokens, their book rows, value table, expected segment per row)."""
        built = self._built
        if built is None:
            with self._lock:
                built = self._built
                if built is None:
                    m = self.master
                    tokens = m.table.column("instrument_token").to_numpy()
                    order = np.argsort(tokens, kind="stable")
                    t = m.table.select([n for n in _VALUE_COLUMNS if n in MASTER_SCHEMA.names])
                    values = t.append_column("instruments_date", pa.array([m.date] * m.table.num_rows, pa.date32()))
                    values = values.cast(_VALUE_SCHEMA).combine_chunks()
                    built = (tokens[order], order.astype(np.int64) + self.offset, values, expected_segments(m.table))
                    self._built = built
                    release = getattr(m, "release", None)
                    if release is not None:  # a stored master reads its rows again if ever needed
                        release()
        return built

    def find(self, tokens: np.ndarray) -> np.ndarray:
        """Book rows of ``tokens`` in this master, -1 where absent."""
        sorted_tokens, order = self.data()[:2]
        if len(sorted_tokens) == 0:
            return np.full(len(tokens), -1, dtype=np.int64)
        pos = np.searchsorted(sorted_tokens, tokens)
        pos_clipped = np.minimum(pos, len(sorted_tokens) - 1)
        hit = sorted_tokens[pos_clipped] == tokens
        return np.where(hit, order[pos_clipped], -1)


@dataclass(frozen=True)
class _Snapshot:
    """Everything enrichment reads, rebuilt on add() so enrich() never needs a lock
    (except to build a master's index the first time it is needed)."""

    indexes: tuple[_MasterIndex, ...]
    offsets: np.ndarray  # first book row of each master
    dated_days: np.ndarray  # sorted distinct master days
    by_day: dict[int, tuple[int, ...]]  # day -> master indexes in add order
    undated: tuple[int, ...]
    _by_exchange_token: dict = field(default_factory=dict)  # built on first diagnosis

    def _split(self, book_rows: np.ndarray):
        """(master index, local rows) for sorted non-negative book rows."""
        which = np.searchsorted(self.offsets, book_rows, side="right") - 1
        for i in np.unique(which):
            sel = which == i
            yield int(i), book_rows[sel] - self.offsets[i]

    def gather(self, book_rows: np.ndarray) -> pa.Table:
        """The value rows of sorted ``book_rows``."""
        parts = [self.indexes[i].data()[2].take(pa.array(local)) for i, local in self._split(book_rows)]
        return pa.concat_tables(parts).combine_chunks() if parts else _VALUE_SCHEMA.empty_table()

    def expected(self, book_rows: np.ndarray) -> np.ndarray:
        """The expected segment byte of each book row (-1 for rows < 0 or unknown)."""
        flat = book_rows.ravel()
        out = np.full(flat.shape, -1, dtype=np.int16)
        valid = np.flatnonzero(flat >= 0)
        if valid.size:
            order = valid[np.argsort(flat[valid], kind="stable")]
            rows = flat[order]
            which = np.searchsorted(self.offsets, rows, side="right") - 1
            for i in np.unique(which):
                sel = which == i
                out[order[sel]] = self.indexes[i].data()[3][rows[sel] - self.offsets[i]]
        return out.reshape(book_rows.shape)

    def exchange_token_index(self, idx: _MasterIndex) -> tuple[np.ndarray, np.ndarray]:
        """(sorted exchange tokens, their book rows) of one master."""
        cached = self._by_exchange_token.get(id(idx))
        if cached is None:
            keys = np.asarray(pc.fill_null(idx.master.table.column("exchange_token"), -1).to_numpy())
            order = np.argsort(keys, kind="stable")
            cached = (keys[order], order.astype(np.int64) + idx.offset)
            self._by_exchange_token[id(idx)] = cached
        return cached

    def chain(self, day: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(masters to search in order, those of them that are later than ``day``)."""
        days = self.dated_days
        if day == _NO_DAY:
            # No day to pick a master by: the any-day masters first, then the newest day.
            return self.undated + (self.by_day[int(days[-1])] if len(days) else ()), ()
        at = int(np.searchsorted(days, day, side="right"))
        if at > 0:
            return self.by_day[int(days[at - 1])] + self.undated, ()
        if len(days):
            later = self.by_day[int(days[0])]
            return self.undated + later, later
        return self.undated, ()


_VALUE_COLUMNS = [f.name for f in ENRICHMENT_SCHEMA if f.name != "resolved"]
_VALUE_SCHEMA = pa.schema([ENRICHMENT_SCHEMA.field(n) for n in _VALUE_COLUMNS])


class InstrumentBook:
    """Several instrument masters; picks the master of each tick's trading date."""

    def __init__(self, masters: Iterable[InstrumentMaster] = ()):
        self._lock = threading.Lock()
        self._masters: list[InstrumentMaster] = []
        self._snapshot = _build_snapshot([])
        self.last_stats = EnrichStats()
        for m in masters:
            self.add(m)

    @property
    def masters(self) -> tuple[InstrumentMaster, ...]:
        return tuple(self._masters)

    def add(self, master: InstrumentMaster) -> None:
        with self._lock:
            self._masters.append(master)
            self._snapshot = _build_snapshot(self._masters)

    def __len__(self) -> int:
        return len(self._masters)

    # --- naming ticks --------------------------------------------------------------

    def enrich(self, ticks: pa.Table) -> pa.Table:
        """DECODED_SCHEMA (or TICK_SCHEMA: enrichment is redone) in, TICK_SCHEMA out."""
        table, stats = self.enrich_with_stats(ticks)
        self.last_stats = stats
        return table

    def enrich_with_stats(self, ticks: pa.Table) -> tuple[pa.Table, EnrichStats]:
        """Like :meth:`enrich`, also returning the counts (safe to call from several threads)."""
        missing = [n for n in DECODED_SCHEMA.names if n not in ticks.column_names]
        if missing:
            raise ValueError(f"ticks lack decoded columns: {', '.join(missing)}")
        decoded = ticks.select(DECODED_SCHEMA.names)
        if decoded.schema != DECODED_SCHEMA:
            decoded = decoded.cast(DECODED_SCHEMA)
        snap = self._snapshot
        n = decoded.num_rows
        stats = EnrichStats(rows=n)

        flat, pair_rows, pair_category, pair_counts, days = self._resolve_table(
            snap, decoded.column("instrument_token"), decoded.column("trading_date")
        )
        if flat is not None:
            # Gather the few master rows this batch names into a small table, then fan out
            # from it: random access into the whole book is cache-hostile.
            named = pair_rows >= 0
            used = np.unique(pair_rows[named])
            local_pair = np.where(named, np.searchsorted(used, pair_rows), -1).ravel()
            local = local_pair[flat]
            resolved = local >= 0
            by_category = np.bincount(pair_category.ravel(), weights=pair_counts, minlength=4)
            stats.named_by_undated_master = int(by_category[_UNDATED])
            stats.named_by_later_master = int(by_category[_LATER])
            no_day = np.flatnonzero(days == _NO_DAY)
            if no_day.size:
                stats.named_without_date = int(pair_counts.reshape(pair_rows.shape)[no_day][named[no_day]].sum())
        else:
            resolved = np.zeros(n, dtype=bool)
        stats.resolved = int(resolved.sum())
        stats.unresolved = n - stats.resolved

        if stats.resolved:
            values = snap.gather(used).take(pa.array(local, mask=~resolved))
            enrichment = [values.column(name) for name in _VALUE_COLUMNS]
            expected_pair = snap.expected(pair_rows).ravel()
            stats.segment_mismatches = _segment_mismatches(decoded, expected_pair[flat])
        else:
            enrichment = [pa.nulls(n, ENRICHMENT_SCHEMA.field(name).type) for name in _VALUE_COLUMNS]
        enrichment.insert(ENRICHMENT_SCHEMA.get_field_index("resolved"), pa.array(resolved, pa.bool_()))
        out = pa.Table.from_arrays(list(decoded.columns) + enrichment, schema=TICK_SCHEMA)
        return out, stats

    @staticmethod
    def _resolve_table(snap: _Snapshot, token_col, day_col):
        """Per tick its (day, token) pair number; per pair the book row (-1 none), how it
        was named, and how many ticks it has; the distinct days (rows of the pair arrays).
        All None when nothing can be named."""
        n = len(token_col)
        if n == 0 or not snap.indexes:
            return None, None, None, None, None
        # Hashing collapses millions of rows to the few distinct tokens and days they hold.
        tok_enc = pc.dictionary_encode(pc.fill_null(token_col, -1).combine_chunks())
        tok_codes = tok_enc.indices.to_numpy(zero_copy_only=False)
        tokens = tok_enc.dictionary.to_numpy(zero_copy_only=False)
        days_i32 = pc.fill_null(pc.cast(day_col, pa.int32()), _NO_DAY).combine_chunks()
        day_enc = pc.dictionary_encode(days_i32)
        days = day_enc.dictionary.to_numpy(zero_copy_only=False)

        pair_rows, pair_category = InstrumentBook._resolve_pairs(snap, tokens, days)
        if len(days) == 1:  # the usual batch: one trading day, no pair arithmetic needed
            flat = tok_codes
        else:
            day_codes = day_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            flat = day_codes * len(tokens) + tok_codes
        counts = np.bincount(flat, minlength=pair_rows.size).astype(np.float64)
        return flat, pair_rows, pair_category, counts, days

    @staticmethod
    def _resolve_pairs(snap: _Snapshot, tokens: np.ndarray, days: np.ndarray):
        """(len(days), len(tokens)) arrays: book row (-1 none) and how it was named."""
        found: dict[int, np.ndarray] = {}
        rows = np.full((len(days), len(tokens)), -1, dtype=np.int64)
        category = np.zeros((len(days), len(tokens)), dtype=np.int64)
        for d_i, day in enumerate(days):
            chain, later = snap.chain(int(day))
            day_rows, day_cat = rows[d_i], category[d_i]
            for m_i in chain:
                if m_i not in found:
                    found[m_i] = snap.indexes[m_i].find(tokens)
                take = (day_rows < 0) & (found[m_i] >= 0)
                day_rows[take] = found[m_i][take]
                if m_i in later:
                    day_cat[take] = _LATER
                elif snap.indexes[m_i].day is None:
                    day_cat[take] = _UNDATED
                else:
                    day_cat[take] = _OWN_OR_EARLIER
        return rows, category

    def resolve(self, instrument_tokens, trading_dates) -> list[tuple[InstrumentMaster, dict] | None]:
        """For each (token, trading date or None): (master, row) that names it, or None."""
        snap = self._snapshot
        tokens = np.asarray(instrument_tokens, dtype=np.int64)
        days = np.array([_NO_DAY if d is None else _day_number(d) for d in trading_dates], dtype=np.int64)
        if len(tokens) == 0 or not snap.indexes:
            return [None] * len(tokens)
        if any(getattr(idx.master, "store", None) is not None and not idx.built for idx in snap.indexes):
            # Stored masters not loaded: ask the store token by token (diagnosis asks about a
            # few tokens, and loading every day's master for them would cost a master a day).
            return [self._resolve_one(snap, int(t), int(d)) for t, d in zip(tokens, days, strict=True)]
        uniq_days, day_codes = np.unique(days, return_inverse=True)
        pair_rows, _ = self._resolve_pairs(snap, tokens, uniq_days)
        rows = pair_rows[day_codes, np.arange(len(tokens))]
        return [None if r < 0 else self._row(snap, int(r)) for r in rows]

    def _resolve_one(self, snap: _Snapshot, token: int, day: int) -> tuple[InstrumentMaster, dict] | None:
        """The chain of ``day`` searched for one token, without loading stored masters."""
        chain, _ = snap.chain(day)
        query = np.array([token], dtype=np.int64)
        for m_i in chain:
            idx = snap.indexes[m_i]
            store = getattr(idx.master, "store", None)
            if store is not None and not idx.built:
                found = store.find(idx.master, "instrument_token", token)
                if found:
                    return idx.master, found[0]
                continue
            r = int(idx.find(query)[0])
            if r >= 0:
                return self._row(snap, r)
        return None

    # --- lookups for diagnosis and display -------------------------------------------

    def lookup(self, instrument_token: int) -> list[tuple[InstrumentMaster, dict]]:
        """Every master that lists the token, with its row, in date order (undated last)."""
        snap = self._snapshot
        hits = []
        query = np.array([instrument_token], dtype=np.int64)
        for idx in self._date_ordered(snap):
            store = getattr(idx.master, "store", None)
            if store is not None and not idx.built:  # a stored master: ask the store, load nothing
                hits.extend((idx.master, row) for row in store.find(idx.master, "instrument_token", instrument_token))
                continue
            r = int(idx.find(query)[0])
            if r >= 0:
                hits.append(self._row(snap, r))
        return hits

    def lookup_exchange_token(self, exchange_token: int) -> list[tuple[InstrumentMaster, dict]]:
        """Every (master, row) whose exchange token is ``exchange_token``, any segment."""
        snap = self._snapshot
        hits = []
        for idx in self._date_ordered(snap):
            store = getattr(idx.master, "store", None)
            if store is not None and not idx.built:
                hits.extend((idx.master, row) for row in store.find(idx.master, "exchange_token", exchange_token))
                continue
            keys, order = snap.exchange_token_index(idx)
            lo, hi = np.searchsorted(keys, [exchange_token, exchange_token + 1])
            for r in order[lo:hi]:
                hits.append(self._row(snap, int(r)))
        return hits

    def masters_for_day(self, day: dt.date | None) -> list[InstrumentMaster]:
        """The masters searched, in order, for ticks of trading date ``day`` (None: undated ticks)."""
        snap = self._snapshot
        chain, _ = snap.chain(_NO_DAY if day is None else _day_number(day))
        return [snap.indexes[i].master for i in chain]

    @property
    def total_rows(self) -> int:
        return sum(m.num_rows for m in self._masters)

    @staticmethod
    def _date_ordered(snap: _Snapshot) -> list[_MasterIndex]:
        return sorted(snap.indexes, key=lambda i: (i.day is None, i.day or 0))

    @staticmethod
    def _row(snap: _Snapshot, book_row: int) -> tuple[InstrumentMaster, dict]:
        for idx in snap.indexes:
            if idx.offset <= book_row < idx.offset + idx.master.num_rows:
                return idx.master, idx.master.table.slice(book_row - idx.offset, 1).to_pylist()[0]
        raise IndexError(book_row)

    # --- display and storage ---------------------------------------------------------

    def describe(self) -> str:
        if not self._masters:
            return "no instrument masters loaded: ticks stay unnamed (resolved = false)"
        dated = sorted({m.date for m in self._masters if m.date})
        head = f"{len(self._masters)} instrument master(s), {self.total_rows:,} instruments"
        if dated:
            head += f", days {dated[0].isoformat()}" + (f" to {dated[-1].isoformat()}" if len(dated) > 1 else "")
        ordered = sorted(self._masters, key=lambda m: (m.date is None, m.date or _EPOCH))
        return "\n".join([head] + ["  " + m.describe() for m in ordered])

    def to_table(self) -> pa.Table:
        """The ``instruments`` target table: every master's rows with its date and source."""
        parts = []
        for m in self._masters:
            t = m.table
            parts.append(
                t.append_column("instruments_date", pa.array([m.date] * t.num_rows, pa.date32()))
                .append_column("source", pa.array([m.source] * t.num_rows, pa.string()))
            )
        if not parts:
            return INSTRUMENTS_SCHEMA.empty_table()
        return pa.concat_tables(parts).cast(INSTRUMENTS_SCHEMA)


def expected_segments(table: pa.Table) -> np.ndarray:
    """The segment byte each master row's exchange implies (int16, -1 when unknown)."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    exchange = table.column("exchange").combine_chunks()
    segment = table.column("instrument_segment").combine_chunks()
    # Lookup files without `exchange` often still carry `segment` like "NFO-OPT".
    prefix = pc.list_element(pc.split_pattern(pc.fill_null(segment, ""), "-", max_splits=1), 0)
    exchange = pc.coalesce(exchange, pc.if_else(pc.equal(prefix, ""), pa.scalar(None, pa.string()), prefix))
    enc = pc.dictionary_encode(pc.fill_null(exchange, ""))
    codes = np.array([EXCHANGE_SEGMENTS.get(name, -1) for name in enc.dictionary.to_pylist()], dtype=np.int16)
    out = codes[enc.indices.to_numpy(zero_copy_only=False)] if len(codes) else np.full(n, -1, np.int16)
    indices = np.asarray(pc.fill_null(pc.equal(segment, INDICES_NAME), False))
    out[indices] = protocol.INDICES_SEGMENT
    return out.astype(np.int16)


def _segment_mismatches(decoded: pa.Table, expected: np.ndarray) -> int:
    """Named ticks whose segment byte is not the one their master's exchange implies."""
    token = decoded.column("instrument_token").combine_chunks()
    segment = decoded.column("segment").combine_chunks()
    from_token = pc.cast(pc.bit_wise_and(token, 0xFF), pa.int16())
    actual = np.asarray(pc.fill_null(pc.coalesce(segment, from_token), -1))
    return int(((expected >= 0) & (expected != actual)).sum())


def _build_snapshot(masters: Sequence[InstrumentMaster]) -> _Snapshot:
    lock = threading.RLock()
    indexes = []
    offset = 0
    offsets = []
    for m in masters:
        day = _day_number(m.date) if m.date else None
        indexes.append(_MasterIndex(m, day, offset, lock))
        offsets.append(offset)
        offset += m.num_rows
    by_day: dict[int, tuple[int, ...]] = {}
    for i, idx in enumerate(indexes):
        if idx.day is not None:
            by_day[idx.day] = by_day.get(idx.day, ()) + (i,)
    return _Snapshot(
        indexes=tuple(indexes),
        offsets=np.array(offsets, dtype=np.int64),
        dated_days=np.array(sorted(by_day), dtype=np.int64),
        by_day=by_day,
        undated=tuple(i for i, idx in enumerate(indexes) if idx.day is None),
    )


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH).days

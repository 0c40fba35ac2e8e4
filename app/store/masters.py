"""Instrument masters stored once per distinct content, as validity intervals.

A user who stores the instruments dump of every trading day would otherwise store the
same ~360K rows every day, and every run would rebuild every stored master. Instead a
target keeps two tables:

``instrument_masters`` (``CATALOG_SCHEMA``)
    one row per stored master: the sha256 of its content, its source, the trading day it
    describes (null: an undated lookup for any day), its ``lane`` and row count.
``instrument_rows`` (``ROWS_SCHEMA``)
    each distinct instrument row once per run of consecutive master days it appears in
    (SCD type 2): ``valid_from`` / ``valid_to`` are the first and last *master days*
    (days a stored master describes) of the run; undated masters' rows have null dates.
    A row that is in the dumps of Mon, Tue and Wed is stored once as [Mon, Wed]; a row
    changed on Tue is stored as [Mon, Mon] and its new version as [Tue, Wed].

Lanes order the masters of one day (several files of one day, say one per exchange, are
searched in order; lane ascending). A day's first master takes lane 0, so daily dumps
all live in lane 0 and their intervals continue from day to day; a master added to a day
that already has masters goes first (lane = the day's lowest - 1): the master the user
passes now names the ticks, never an older copy. Undated masters follow the same rule
among themselves. An interval never crosses a master day on which its lane has no
master: the master of day D is exactly the rows of its lane valid on D.

A master whose content (sha256) is already stored for the same day is not stored again:
``is_stored`` lets the pipeline skip reading and parsing such a file at all.

``add_master`` is the one place the intervals change (pure Arrow/numpy over the two
tables, shared by the DuckDB and Parquet targets); ``StoredMasters`` reads them back
lazily: a master's rows are only materialised when a tick of its day needs naming.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core.instruments import INSTRUMENTS_SCHEMA, MASTER_SCHEMA, InstrumentMaster

CATALOG_SCHEMA = pa.schema(
    [
        ("master_id", pa.int64()),  # in storing order
        ("sha256", pa.string()),  # of the master file's bytes (or of its table, for in-memory masters)
        ("source", pa.string()),
        ("instruments_date", pa.date32()),  # the trading day it describes; null: any day
        ("lane", pa.int64()),  # search order among the masters of its day (ascending)
        ("rows", pa.int64()),
        ("name_date", pa.date32()),  # the date written in its file name (part of its identity)
        ("stored_at", pa.timestamp("us", tz="UTC")),
    ]
)

ROWS_SCHEMA = pa.schema(
    list(MASTER_SCHEMA)
    + [("lane", pa.int64()), ("valid_from", pa.date32()), ("valid_to", pa.date32())]
)

_EPOCH = dt.date(1970, 1, 1)
_NONE = np.iinfo(np.int64).min  # a null date as a day number


def table_sha256(master: InstrumentMaster) -> str:
    """A content hash for a master that has no file (built in memory)."""
    digest = hashlib.sha256()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, MASTER_SCHEMA) as writer:
        writer.write_table(master.table.cast(MASTER_SCHEMA))
    digest.update(sink.getvalue().to_pybytes())
    digest.update(str(master.date).encode())
    return digest.hexdigest()


def _days(column) -> np.ndarray:
    """date32 values as int64 day numbers, _NONE where null."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.asarray(pc.fill_null(pc.cast(pc.cast(arr, pa.int32()), pa.int64()), _NONE))


def _dates(days: np.ndarray) -> pa.Array:
    mask = days == _NONE
    return pc.cast(pa.array(np.where(mask, 0, days).astype(np.int32), mask=mask), pa.date32())


def _day(date: dt.date | None) -> int:
    return _NONE if date is None else (date - _EPOCH).days


def _same_rows(a: pa.Table, b: pa.Table) -> np.ndarray:
    """Row i of ``a`` equals row i of ``b`` in every master column (null equals null)."""
    same = np.ones(a.num_rows, dtype=bool)
    for name in MASTER_SCHEMA.names:
        x, y = a.column(name), b.column(name)
        eq = pc.fill_null(pc.equal(x, y), False)
        both_null = pc.and_(pc.is_null(x), pc.is_null(y))
        same &= np.asarray(pc.or_(eq, both_null))
    return same


def _with_intervals(content: pa.Table, lane: np.ndarray, start: np.ndarray, end: np.ndarray) -> pa.Table:
    content = content.select(MASTER_SCHEMA.names).cast(MASTER_SCHEMA)
    return pa.Table.from_arrays(
        list(content.columns) + [pa.array(lane, pa.int64()), _dates(start), _dates(end)], schema=ROWS_SCHEMA
    )


def is_stored(catalog: pa.Table, sha256: str, date: dt.date | None) -> bool:
    """A master of this content for this day (None: undated) is already stored."""
    if catalog.num_rows == 0:
        return False
    same = np.asarray(pc.fill_null(pc.equal(catalog["sha256"], sha256), False))
    days = _days(catalog["instruments_date"])
    return bool((same & (days == _day(date))).any())


def stored_under_name(catalog: pa.Table, sha256: str, name_date: dt.date | None) -> bool:
    """A file of this content whose name carries ``name_date`` is stored (no need to read it)."""
    if catalog.num_rows == 0:
        return False
    same = np.asarray(pc.fill_null(pc.equal(catalog["sha256"], sha256), False))
    return bool((same & (_days(catalog["name_date"]) == _day(name_date))).any())


def add_master(
    catalog: pa.Table, rows: pa.Table, master: InstrumentMaster, sha256: str,
    name_date: dt.date | None = None, stored_at: dt.datetime | None = None, *, first: bool = True,
) -> tuple[pa.Table, pa.Table] | None:
    """(catalog, rows) with ``master`` stored; None when its content is already stored.

    A stored master of the same (source, date) is replaced: its rows leave its lane on
    that day (intervals through the day are split), then the new rows go in, extending
    identical rows of the neighbouring master days instead of adding copies. It is searched
    first among the masters of its day (``first=False``: last).
    """
    catalog = catalog.cast(CATALOG_SCHEMA)
    rows = rows.cast(ROWS_SCHEMA)
    X = _day(master.date)
    if is_stored(catalog, sha256, master.date):
        return None
    cat_days = _days(catalog["instruments_date"])
    lanes = np.asarray(catalog["lane"].combine_chunks().to_numpy(zero_copy_only=False), dtype=np.int64) \
        if catalog.num_rows else np.zeros(0, np.int64)
    same_source = np.asarray(pc.fill_null(pc.equal(catalog["source"], master.source), False)) \
        if catalog.num_rows else np.zeros(0, bool)
    replaced = same_source & (cat_days == X)

    lane_of = rows["lane"].combine_chunks().to_numpy(zero_copy_only=False).astype(np.int64) \
        if rows.num_rows else np.zeros(0, np.int64)
    start, end = _days(rows["valid_from"]), _days(rows["valid_to"])
    content = rows.select(MASTER_SCHEMA.names)

    # Master days after removing the replaced master (X stays a day: the new master is on it).
    keep_cat = ~replaced
    days_left = np.unique(cat_days[keep_cat & (cat_days != _NONE)])
    if X == _NONE:
        prev_day = next_day = _NONE
    else:
        i = int(np.searchsorted(days_left, X))
        prev_day = int(days_left[i - 1]) if i > 0 else _NONE
        nxt = days_left[i + 1:] if i < len(days_left) and days_left[i] == X else days_left[i:]
        next_day = int(nxt[0]) if len(nxt) else _NONE
    x_was_day = X != _NONE and bool(np.isin(X, days_left))

    # 1. Split intervals that go through X in lanes that have no master on X any more: the
    #    replaced master's lane, and every lane when X is a new master day.
    pieces_content, pieces_lane, pieces_start, pieces_end = [], [], [], []
    if X == _NONE:
        drop = np.zeros(rows.num_rows, dtype=bool)
        for lane in lanes[replaced]:
            drop |= (lane_of == lane) & (start == _NONE)
        survivors = ~drop
    else:
        through = (start != _NONE) & (start <= X) & (end >= X)
        if x_was_day:
            split_lanes = lanes[replaced]
            through &= np.isin(lane_of, split_lanes)
        survivors = ~through
        hit = np.flatnonzero(through)
        if hit.size:
            left = hit[start[hit] < X]
            right = hit[end[hit] > X]
            if left.size:
                pieces_content.append(content.take(pa.array(left)))
                pieces_lane.append(lane_of[left])
                pieces_start.append(start[left])
                pieces_end.append(np.full(left.size, prev_day, np.int64))
            if right.size:
                pieces_content.append(content.take(pa.array(right)))
                pieces_lane.append(lane_of[right])
                pieces_start.append(np.full(right.size, next_day, np.int64))
                pieces_end.append(end[right])
    if survivors.all():  # the usual case, a new latest day: nothing to split, nothing copied
        base_rows = [rows]
    else:
        base_rows = [_with_intervals(content.filter(pa.array(survivors)), lane_of[survivors],
                                     start[survivors], end[survivors])]
    base_rows += [_with_intervals(c, lane, s, e) for c, lane, s, e in
                  zip(pieces_content, pieces_lane, pieces_start, pieces_end, strict=True)]
    rows = pa.concat_tables(base_rows) if len(base_rows) > 1 else base_rows[0]
    del content, base_rows, pieces_content
    catalog = catalog.filter(pa.array(keep_cat))

    # 2. The new master's lane: first (or last) on its day.
    day_lanes = lanes[keep_cat & (cat_days == X)]
    if not day_lanes.size:
        lane = 0
    else:
        lane = int(day_lanes.min()) - 1 if first else int(day_lanes.max()) + 1

    # 3. Its rows: extend identical rows of its lane on the neighbouring master days.
    new = master.table.select(MASTER_SCHEMA.names).cast(MASTER_SCHEMA).combine_chunks()
    n = new.num_rows
    lane_of = np.asarray(pc.fill_null(rows["lane"], 0)).astype(np.int64) if rows.num_rows else np.zeros(0, np.int64)
    start, end = _days(rows["valid_from"]), _days(rows["valid_to"])
    new_start = np.full(n, X, np.int64)
    new_end = np.full(n, X, np.int64)
    drop = np.zeros(rows.num_rows, dtype=bool)
    if X != _NONE and rows.num_rows and n:
        tokens = new["instrument_token"].to_numpy()
        row_tokens = np.asarray(pc.fill_null(rows["instrument_token"], -1))
        for neighbour, side in ((prev_day, "left"), (next_day, "right")):
            if neighbour == _NONE:
                continue
            cand = np.flatnonzero((lane_of == lane) & ((end if side == "left" else start) == neighbour)
                                  & ~drop)
            if not cand.size:
                continue
            order = np.argsort(row_tokens[cand], kind="stable")
            cand_sorted = cand[order]
            cand_tokens = row_tokens[cand_sorted]
            pos = np.minimum(np.searchsorted(cand_tokens, tokens), len(cand_tokens) - 1)
            match = cand_tokens[pos] == tokens
            new_i = np.flatnonzero(match)
            old_i = cand_sorted[pos[match]]
            if new_i.size:
                same = _same_rows(new.take(pa.array(new_i)), rows.take(pa.array(old_i)))
                new_i, old_i = new_i[same], old_i[same]
            # The stored interval absorbs the new day: the new row takes its span, the old goes.
            if side == "left":
                new_start[new_i] = start[old_i]
            else:
                new_end[new_i] = end[old_i]
            drop[old_i] = True
    if drop.any():
        rows = rows.filter(pa.array(~drop))
    added = _with_intervals(new, np.full(n, lane, np.int64), new_start, new_end)
    rows = pa.concat_tables([rows, added])  # chunked: the target writes it out, no copy here

    next_id = int(pc.max(catalog["master_id"]).as_py() or 0) + 1 if catalog.num_rows else 1
    entry = pa.Table.from_pylist([{
        "master_id": next_id, "sha256": sha256, "source": master.source, "instruments_date": master.date,
        "lane": lane, "rows": n, "name_date": name_date,
        "stored_at": stored_at or dt.datetime.now(dt.UTC),
    }], schema=CATALOG_SCHEMA)
    catalog = pa.concat_tables([catalog, entry])
    return catalog, rows


def master_table(rows: pa.Table, lane: int, date: dt.date | None) -> pa.Table:
    """The rows of the stored master of ``lane`` on ``date`` (None: the undated one)."""
    if rows.num_rows == 0:
        return MASTER_SCHEMA.empty_table()
    lane_ok = pc.equal(rows["lane"], lane)
    if date is None:
        mask = pc.and_(lane_ok, pc.is_null(rows["valid_from"]))
    else:
        d = pa.scalar(date, pa.date32())
        mask = pc.and_(lane_ok, pc.and_(pc.less_equal(rows["valid_from"], d), pc.greater_equal(rows["valid_to"], d)))
    return rows.filter(pc.fill_null(mask, False)).select(MASTER_SCHEMA.names)


def expand(catalog: pa.Table, rows: pa.Table) -> pa.Table:
    """Every stored master's rows as ``INSTRUMENTS_SCHEMA`` (the layout before intervals)."""
    parts = []
    for entry in ordered(catalog).to_pylist():
        t = master_table(rows, entry["lane"], entry["instruments_date"])
        parts.append(t.append_column("instruments_date", pa.array([entry["instruments_date"]] * t.num_rows,
                                                                  pa.date32()))
                     .append_column("source", pa.array([entry["source"]] * t.num_rows, pa.string())))
    return pa.concat_tables(parts).cast(INSTRUMENTS_SCHEMA) if parts else INSTRUMENTS_SCHEMA.empty_table()


def ordered(catalog: pa.Table) -> pa.Table:
    """The catalog in book order: by day (undated last), then lane."""
    if catalog.num_rows == 0:
        return catalog
    days = _days(catalog["instruments_date"])
    days = np.where(days == _NONE, np.iinfo(np.int64).max, days)
    lanes = catalog["lane"].combine_chunks().to_numpy(zero_copy_only=False)
    return catalog.take(pa.array(np.lexsort((lanes, days))))


def empty() -> tuple[pa.Table, pa.Table]:
    return CATALOG_SCHEMA.empty_table(), ROWS_SCHEMA.empty_table()


def from_legacy(old: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(catalog, rows) from an ``instruments`` table of the layout before intervals."""
    from app.store.base import masters_from_table

    catalog, rows = empty()
    # Stored order was search order: a later master of a day goes after the earlier ones.
    for m in masters_from_table(old):
        result = add_master(catalog, rows, m, table_sha256(m), first=False)
        if result is not None:
            catalog, rows = result
    return catalog, rows


class StoredMaster(InstrumentMaster):
    """A stored master whose rows are read only when something needs them."""

    def __init__(self, store: StoredMasters, source: str, date: dt.date | None, lane: int, rows: int):
        self.store = store
        self.source = source
        self.date = date
        self.lane = lane
        self._rows = rows
        self._table: pa.Table | None = None
        self.rejected = {}
        self.date_source = "stored"
        self.unreadable = {}
        self.conflicts = MASTER_SCHEMA.empty_table()

    @property
    def table(self) -> pa.Table:  # type: ignore[override]
        if self._table is None:
            with self.store.lock:
                if self._table is None:
                    self._table = self.store.master_rows(self.lane, self.date)
                    self.store.loaded += 1
        return self._table

    @property
    def num_rows(self) -> int:
        return self._rows

    def release(self) -> None:
        """Forget the rows (the book keeps what it needs of them); read again on next use."""
        with self.store.lock:
            self._table = None

    def __reduce__(self):
        # Sent to another process (Dask workers): as a plain master with its rows.
        return (InstrumentMaster, (self.source, self.date, self.table, {}, "stored"))

    def __repr__(self) -> str:
        return f"StoredMaster({self.source!r}, {self.date}, lane={self.lane}, rows={self._rows})"


class StoredMasters:
    """A target's stored masters: the catalog at once, the rows only when first needed.

    ``rows_loader`` returns ``ROWS_SCHEMA`` (every interval row); it runs at most once, for
    lookups across masters (diagnosis). ``day_loader(lane, date)``, when the target has one,
    returns one master's rows without reading the others (naming ticks needs only the
    masters of their days).
    """

    def __init__(self, catalog: pa.Table, rows_loader, day_loader=None):
        self.catalog = ordered(catalog.cast(CATALOG_SCHEMA))
        self._loader = rows_loader
        self._day_loader = day_loader
        self._rows: pa.Table | None = None
        self.lock = threading.RLock()
        self.loaded = 0  # masters materialised (for tests and the bench)
        self.masters: list[StoredMaster] = [
            StoredMaster(self, e["source"] or "", e["instruments_date"], e["lane"], e["rows"])
            for e in self.catalog.to_pylist()
        ]
        self._by_token = None
        self._by_exchange_token = None

    def rows(self) -> pa.Table:
        with self.lock:
            if self._rows is None:
                self._rows = self._loader().cast(ROWS_SCHEMA).combine_chunks()
            return self._rows

    def master_rows(self, lane: int, date: dt.date | None) -> pa.Table:
        """The rows (MASTER_SCHEMA) of the master of ``lane`` on ``date``."""
        if self._rows is None and self._day_loader is not None:
            return self._day_loader(lane, date).select(MASTER_SCHEMA.names).cast(MASTER_SCHEMA)
        return master_table(self.rows(), lane, date)

    @property
    def rows_read(self) -> bool:
        return self._rows is not None

    def _index(self, column: str):
        with self.lock:
            cache = self._by_token if column == "instrument_token" else self._by_exchange_token
            if cache is None:
                rows = self.rows()
                keys = np.asarray(pc.fill_null(rows[column], -1))
                order = np.argsort(keys, kind="stable")
                cache = (keys[order], order)
                if column == "instrument_token":
                    self._by_token = cache
                else:
                    self._by_exchange_token = cache
            return cache

    def find(self, master: StoredMaster, column: str, value: int) -> list[dict]:
        """The rows of ``master`` whose ``column`` is ``value`` (without materialising it)."""
        keys, order = self._index(column)
        lo, hi = np.searchsorted(keys, [value, value + 1])
        if lo == hi:
            return []
        rows = self.rows().take(pa.array(order[lo:hi]))
        out = []
        for r in rows.to_pylist():
            if r["lane"] != master.lane:
                continue
            if master.date is None:
                if r["valid_from"] is not None:
                    continue
            elif r["valid_from"] is None or not r["valid_from"] <= master.date <= r["valid_to"]:
                continue
            out.append({k: r[k] for k in MASTER_SCHEMA.names})
        return out


def book_masters(masters: Sequence) -> list:
    """Helper for callers that want plain masters (materialises stored ones)."""
    return [InstrumentMaster(m.source, m.date, m.table, {}, m.date_source) if isinstance(m, StoredMaster) else m
            for m in masters]

"""Ticks whose structure validates but whose values cannot be real: ``suspect_reason``.

Every decoded tick carries ``suspect_reason``: null when clean, else the code of the
first rule below that it breaks (rules are checked in this order). Suspect ticks are
stored as decoded -- the bytes are what they are -- and counted per capture
(``suspect`` in the decode summary, the ``captures`` table and the app), never silently.
The bounds and the evidence for each are in README ("Suspect ticks"); all rules are
vectorised (numpy over whole columns), one pass per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Codes, in the order they are checked (a tick gets the first that applies).
NAN_PRICE = "nan_price"  # a price is NaN or infinite (JSON inputs: NaN, Infinity)
LTQ_EPOCH = "ltq_epoch"  # last_traded_quantity holds an epoch time (an API quote read wrongly)
PRICE_NONPOSITIVE = "price_nonpositive"  # last_price < 0 (outside MCX), or 0 with volume traded
PRICE_OUT_OF_RANGE = "price_out_of_range"  # a price above MAX_PRICE rupees
TIME_FAR_FROM_DAY = "time_far_from_day"  # exchange_timestamp days away from the capture's time
OHLC_INVERTED = "ohlc_inverted"  # day low above day high
DEPTH_UNORDERED = "depth_unordered"  # bids not falling or asks not rising level by level
REASONS = (NAN_PRICE, LTQ_EPOCH, PRICE_NONPOSITIVE, PRICE_OUT_OF_RANGE, TIME_FAR_FROM_DAY,
           OHLC_INVERTED, DEPTH_UNORDERED)

# Bounds (README "Suspect ticks" gives the evidence for each).
MAX_PRICE = 10_000_000.0  # rupees: ~60x the dearest Indian instrument (MRF ~1.5 lakh; MCX silver/kg ~1-2 lakh)
EPOCH_MAX = 4_102_444_800  # 2100-01-01 UTC
LTQ_EPOCH_MIN = 1_000_000_000  # a single trade of >= 1e9 units has never printed on NSE/BSE/MCX
MAX_TIME_SKEW_US = 3 * 86_400 * 1_000_000  # 3 days either side of the capture's own time
MCX_SEGMENT = 7  # MCX futures have settled below zero (CRUDEOIL, 20 Apr 2020: -2884)

PRICE_COLUMNS = ("last_price", "average_traded_price", "open", "high", "low", "close")
DEPTH_PRICE_COLUMNS = ("bid_price", "ask_price")


def _floats(table: pa.Table, name: str, fill: float = 0.0) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        col = pc.fill_null(col, fill)
    return col.to_numpy().astype(np.float64, copy=False)


def _ints(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        col = pc.fill_null(col, 0)
    return col.to_numpy().astype(np.int64, copy=False)


def _times_us(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    col = table.column(name)
    valid = np.asarray(pc.is_valid(col)) if col.null_count else np.ones(len(col), dtype=bool)
    values = pc.fill_null(col.cast(pa.int64()), 0).to_numpy() if len(col) else np.zeros(0, np.int64)
    return values.astype(np.int64, copy=False), valid


def _list_parts(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(row of each value, value) of a list<float> column, nulls dropped."""
    arr = table.column(name).combine_chunks()
    if isinstance(arr, pa.ChunkedArray):  # an empty table
        arr = pa.concat_arrays(arr.chunks) if arr.num_chunks else pa.array([], arr.type)
    if len(arr) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    rows = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
    values = pc.fill_null(pc.list_flatten(arr), 0.0).to_numpy().astype(np.float64)
    return rows, values


@dataclass
class TickValues:
    """The columns the rules read, as numpy (nulls as 0, absent columns as None).

    Built from a decoded tick table (``from_table``) or straight from packet fields
    (``app.core.decode.suspect_codes_of``: the decoder and the packet index), so one
    set of rules serves both without an Arrow round trip.
    """

    n: int
    prices: dict[str, np.ndarray]  # PRICE_COLUMNS present, float64
    depth: dict[str, tuple[np.ndarray, np.ndarray]]  # bid_price / ask_price: (row, value) per level
    segment: np.ndarray
    last_traded_quantity: np.ndarray | None = None
    volume_traded: np.ndarray | None = None
    exchange_us: tuple[np.ndarray, np.ndarray] | None = None  # (value, valid)
    recv_us: tuple[np.ndarray, np.ndarray] | None = None  # (value, valid)
    # No price below 0 (binary packets: unsigned fields over positive divisors): the
    # rules skip the minimum and the negative-price test, same answers.
    nonnegative: bool = False

    @classmethod
    def from_table(cls, table: pa.Table) -> TickValues:
        return cls(
            n=table.num_rows,
            prices={name: _floats(table, name) for name in PRICE_COLUMNS},
            depth={name: _list_parts(table, name) for name in DEPTH_PRICE_COLUMNS},
            segment=_ints(table, "segment"),
            last_traded_quantity=_ints(table, "last_traded_quantity"),
            volume_traded=_ints(table, "volume_traded"),
            exchange_us=_times_us(table, "exchange_timestamp"),
            recv_us=_times_us(table, "recv_ts"),
        )


def _in_bounds(values: np.ndarray, nonnegative: bool = False) -> bool:
    """Whether every value is finite and within +-MAX_PRICE (two reductions, one when no
    value is below 0; NaN fails): such a column cannot trip nan_price or
    price_out_of_range, so the per-row masks are skipped for it."""
    return (nonnegative or bool(values.min() >= -MAX_PRICE)) and bool(values.max() <= MAX_PRICE)


def suspect_codes(v: TickValues, reference_us: int | None = None) -> np.ndarray:
    """int8 per row: 0 clean, else 1 + the index in ``REASONS`` of the first rule broken.

    ``reference_us`` is the capture's own time when known (the file name's), used for
    ticks without a container receive time (``recv_us``).

    Almost every tick is clean, so each rule first asks a cheap whole-column question
    (a min/max, an ``any``) and builds per-row masks only when some row may break it;
    the answer is the same as evaluating every mask.
    """
    n = v.n
    code = np.zeros(n, dtype=np.int8)

    def flag(mask: np.ndarray, reason: str) -> None:
        if mask.any():
            code[(code == 0) & mask] = REASONS.index(reason) + 1

    if n == 0:
        return code
    # Columns (and depth sides) with a value that is not finite or beyond MAX_PRICE;
    # the others cannot trip nan_price or price_out_of_range.
    prices = [values for values in v.prices.values() if values.size and not _in_bounds(values, v.nonnegative)]
    depth = [parts for parts in v.depth.values() if parts[0].size and not _in_bounds(parts[1], v.nonnegative)]
    # nan_price: NaN / Infinity in any price (binary captures cannot hold one; JSON can).
    if prices or depth:
        bad = np.zeros(n, dtype=bool)
        for values in prices:
            bad |= ~np.isfinite(values)
        for rows, values in depth:
            bad[rows[~np.isfinite(values)]] = True
        flag(bad, NAN_PRICE)

    # ltq_epoch: a quantity in the range of an epoch time (2001..2100 in seconds).
    ltq = v.last_traded_quantity
    if ltq is not None and ltq.size and ltq.max() >= LTQ_EPOCH_MIN:
        flag((ltq >= LTQ_EPOCH_MIN) & (ltq < EPOCH_MAX), LTQ_EPOCH)

    last = v.prices.get("last_price")
    if last is not None and last.size and not last.min() > 0:  # NaN: ask the rows
        if v.nonnegative:  # only 0 with volume traded can be wrong
            if v.volume_traded is not None:
                flag((last == 0) & (v.volume_traded > 0), PRICE_NONPOSITIVE)
        else:
            wrong = (last < 0) & (v.segment != MCX_SEGMENT)
            if v.volume_traded is not None:
                wrong |= (last == 0) & (v.volume_traded > 0)
            flag(wrong, PRICE_NONPOSITIVE)

    if prices or depth:
        high_price = np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):
            for values in prices:
                high_price |= np.abs(values) > MAX_PRICE
            for rows, values in depth:
                high_price[rows[np.abs(values) > MAX_PRICE]] = True
        flag(high_price, PRICE_OUT_OF_RANGE)

    # time_far_from_day: the exchange's stamp days away from when the capture got it.
    # No receive times and no capture time: nothing to compare with.
    if v.exchange_us is not None and (v.recv_us is not None or reference_us is not None):
        ets, ets_ok = v.exchange_us
        if v.recv_us is not None:
            recv, recv_ok = v.recv_us
            ref = np.where(recv_ok, recv, reference_us if reference_us is not None else 0)
            ok = ets_ok & recv_ok if reference_us is None else ets_ok
        else:
            ref, ok = reference_us, ets_ok
        far = np.abs(ets - ref) > MAX_TIME_SKEW_US
        far &= ok
        flag(far, TIME_FAR_FROM_DAY)

    low, high = v.prices.get("low"), v.prices.get("high")
    if low is not None and high is not None:
        inverted = low > high
        if inverted.any():
            flag(inverted & (low > 0) & (high > 0), OHLC_INVERTED)

    unordered = None
    for name, falling in (("bid_price", True), ("ask_price", False)):
        rows, values = v.depth.get(name, (np.zeros(0, np.int64), None))
        if rows.size < 2:
            continue
        step = np.diff(values)
        # Only steps the wrong way can be wrong; then both levels set and in one row.
        at = np.flatnonzero(step > 0 if falling else step < 0)
        if not at.size:
            continue
        after = at + 1
        at = at[(rows[after] == rows[at]) & (values[after] > 0) & (values[at] > 0)]
        if at.size:
            if unordered is None:
                unordered = np.zeros(n, dtype=bool)
            unordered[rows[at + 1]] = True
    if unordered is not None:
        flag(unordered, DEPTH_UNORDERED)
    return code


_REASON_NAMES = pa.array([None, *REASONS], pa.string())


def reasons_of_codes(code: np.ndarray) -> pa.Array:
    """The ``suspect_reason`` column of ``suspect_codes``' answer."""
    if not code.any():
        return pa.nulls(len(code), pa.string())
    return _REASON_NAMES.take(pa.array(code.astype(np.int32)))


def suspect_reasons(table: pa.Table, reference_us: int | None = None) -> pa.Array:
    """``suspect_reason`` for every row of a decoded tick table (null when clean).

    ``reference_us`` is the capture's own time when known (the file name's), used for
    ticks without a container receive time (``recv_ts``).
    """
    if table.num_rows == 0:
        return pa.array([], pa.string())
    return reasons_of_codes(suspect_codes(TickValues.from_table(table), reference_us))


def count_suspect(reasons: pa.Array) -> dict[str, int]:
    """Suspect ticks by reason code (clean rows not counted)."""
    if reasons.null_count == len(reasons):
        return {}
    counts = pc.value_counts(reasons.drop_null() if hasattr(reasons, "drop_null") else pc.drop_null(reasons))
    return {str(v): int(c) for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                                           strict=True)}


"""Unknown tokens: gathering the ticks no master named, and saying why, with evidence.

This module owns the unknown-token report. ``aggregate_unresolved`` turns one batch of
enriched ticks into one row per unresolved token; ``merge_aggregates`` folds batches and
files together; ``explain_unknown`` diagnoses each token against the loaded masters.

Diagnoses, strongest evidence first (``DIAGNOSES``):

``named_now``            the book names it now (a master was added after enrichment).
``conflicting_rows``     a master lists it several times with different data, so none
                         of those rows was used.
``byte_swapped``         its 4 bytes reversed are a listed token: an endianness bug
                         upstream. Checked before ``invalid_segment`` because a reversed
                         real token nearly always has an invalid low byte, and a chance
                         hit among ~10^5 tokens out of 2^32 is about 1 in 10^4.
``invalid_segment``      the low byte is not a Kite segment: mis-framed bytes, not a
                         missing instrument.
``other_days_only``      only masters of other days list it: expired or recycled.
``exchange_token_other_segment``  its exchange token exists in another segment.
``absent``               in no loaded master at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core import protocol
from app.core.enrich import InstrumentBook
from app.core.instruments import InstrumentMaster
from app.core.schema import UNRESOLVED_AGGREGATE_SCHEMA, UTC_TIME

AGGREGATE_SCHEMA = UNRESOLVED_AGGREGATE_SCHEMA  # what explain_unknown() takes

UNKNOWN_SCHEMA = pa.schema(
    [
        ("instrument_token", pa.int64()),
        ("segment", pa.int16()),  # the token's low byte
        ("segment_meaning", pa.string()),  # protocol.segment_meaning(segment)
        ("exchange_token", pa.int64()),
        ("ticks", pa.int64()),
        ("first_tick_time", UTC_TIME),
        ("last_tick_time", UTC_TIME),
        ("files", pa.list_(pa.string())),
        ("diagnosis", pa.string()),  # one of DIAGNOSES
        ("explanation", pa.string()),  # one sentence with the evidence
    ]
)

NAMED_NOW = "named_now"
BYTE_SWAPPED = "byte_swapped"
INVALID_SEGMENT = "invalid_segment"
CONFLICTING_ROWS = "conflicting_rows"
OTHER_DAYS_ONLY = "other_days_only"
EXCHANGE_TOKEN_OTHER_SEGMENT = "exchange_token_other_segment"
ABSENT = "absent"
DIAGNOSES = (
    NAMED_NOW, CONFLICTING_ROWS, BYTE_SWAPPED, INVALID_SEGMENT, OTHER_DAYS_ONLY,
    EXCHANGE_TOKEN_OTHER_SEGMENT, ABSENT,
)

_MAX_LISTED = 3  # evidence items quoted per explanation


# --- aggregating -----------------------------------------------------------------


def aggregate_unresolved(ticks: pa.Table, file_label: str) -> pa.Table:
    """One AGGREGATE_SCHEMA row per unresolved token of an enriched (TICK_SCHEMA) table."""
    unresolved = pc.invert(pc.fill_null(ticks.column("resolved"), False))
    has_token = pc.is_valid(ticks.column("instrument_token"))
    rows = ticks.filter(pc.and_(unresolved, has_token)).select(
        ["instrument_token", "tick_time", "trading_date"]
    )
    if rows.num_rows == 0:
        return AGGREGATE_SCHEMA.empty_table()
    # Sorted by date and grouped on one thread, so each token's distinct dates come out sorted.
    rows = rows.sort_by([("trading_date", "ascending")])
    grouped = rows.group_by("instrument_token", use_threads=False).aggregate(
        [([], "count_all"), ("tick_time", "min"), ("tick_time", "max"), ("trading_date", "distinct")]
    )
    n = grouped.num_rows
    files = pa.array([[file_label]] * n, pa.list_(pa.string()))
    out = pa.Table.from_arrays(
        [
            grouped.column("instrument_token"),
            grouped.column("count_all"),
            grouped.column("tick_time_min"),
            grouped.column("tick_time_max"),
            files,
            grouped.column("trading_date_distinct"),
        ],
        schema=AGGREGATE_SCHEMA,
    )
    return out.sort_by("instrument_token")


def merge_aggregates(tables: Iterable[pa.Table]) -> pa.Table:
    """Fold aggregates (batches, files) into one row per token: counts add up, lists union."""
    parts = [t.select(AGGREGATE_SCHEMA.names).cast(AGGREGATE_SCHEMA) for t in tables if t.num_rows]
    if not parts:
        return AGGREGATE_SCHEMA.empty_table()
    table = pa.concat_tables(parts).combine_chunks()
    grouped = table.group_by("instrument_token", use_threads=False).aggregate(
        [("ticks", "sum"), ("first_tick_time", "min"), ("last_tick_time", "max")]
    ).sort_by("instrument_token")
    files = _union_lists(table, "files", sort=False)
    dates = _union_lists(table, "trading_dates", sort=True)
    tokens = grouped.column("instrument_token").to_pylist()
    return pa.Table.from_arrays(
        [
            grouped.column("instrument_token"),
            grouped.column("ticks_sum"),
            grouped.column("first_tick_time_min"),
            grouped.column("last_tick_time_max"),
            pa.array([files.get(t, []) for t in tokens], pa.list_(pa.string())),
            pa.array([dates.get(t, []) for t in tokens], pa.list_(pa.date32())),
        ],
        schema=AGGREGATE_SCHEMA,
    )


def _union_lists(table: pa.Table, column: str, sort: bool) -> dict[int, list]:
    """token -> distinct values of a list column over all its rows (first-seen order or sorted)."""
    lists = table.column(column).combine_chunks()
    values = pc.list_flatten(lists)
    if len(values) == 0:
        return {}
    parents = pc.list_parent_indices(lists)
    exploded = pa.table({"instrument_token": table.column("instrument_token").take(parents), "value": values})
    if sort:
        exploded = exploded.sort_by([("value", "ascending")])
    grouped = exploded.group_by("instrument_token", use_threads=False).aggregate([("value", "distinct")])
    return dict(zip(grouped.column("instrument_token").to_pylist(), grouped.column("value_distinct").to_pylist(),
                    strict=True))


# --- explaining ------------------------------------------------------------------


def explain_unknown(aggregate: pa.Table, book: InstrumentBook) -> pa.Table:
    """UNKNOWN_SCHEMA: each unresolved token with a diagnosis and a one-sentence explanation.

    Rows come out most ticks first. Per-token Python is fine here: unknown tokens are few.
    """
    if aggregate.num_rows == 0:
        return UNKNOWN_SCHEMA.empty_table()
    aggregate = aggregate.sort_by([("ticks", "descending"), ("instrument_token", "ascending")])
    tokens = np.asarray(aggregate.column("instrument_token").to_numpy(zero_copy_only=False), dtype=np.int64)
    segments = (tokens & 0xFF).astype(np.int16)
    exchange_tokens = tokens >> 8
    explainer = _Explainer(book)
    diagnoses, explanations = [], []
    for token, ticks, dates, files in zip(
        tokens.tolist(),
        aggregate.column("ticks").to_pylist(),
        aggregate.column("trading_dates").to_pylist(),
        aggregate.column("files").to_pylist(), strict=True,
    ):
        code, sentence = explainer.explain(token, dates or [], ticks, files or [])
        diagnoses.append(code)
        explanations.append(sentence)
    return pa.Table.from_arrays(
        [
            pa.array(tokens, pa.int64()),
            pa.array(segments, pa.int16()),
            pa.array([protocol.segment_meaning(int(s)) for s in segments], pa.string()),
            pa.array(exchange_tokens, pa.int64()),
            aggregate.column("ticks"),
            aggregate.column("first_tick_time"),
            aggregate.column("last_tick_time"),
            aggregate.column("files"),
            pa.array(diagnoses, pa.string()),
            pa.array(explanations, pa.string()),
        ],
        schema=UNKNOWN_SCHEMA,
    )


def byte_swapped(token: int) -> int | None:
    """The token with its 4 bytes reversed (None if it does not fit in 4 bytes)."""
    if not 0 <= token <= 0xFFFF_FFFF:
        return None
    return int.from_bytes(token.to_bytes(4, "big"), "little")


class _Explainer:
    def __init__(self, book: InstrumentBook):
        self.book = book
        self.masters = book.masters
        self.conflicts = [(m, m.conflicts) for m in self.masters if m.conflicts.num_rows]

    def explain(self, token: int, dates: list[dt.date], ticks: int, files: list[str]) -> tuple[str, str]:
        segment = token & 0xFF
        days = dates or [None]
        if not self.masters:
            return ABSENT, (
                f"no instrument master is loaded, so nothing could name it; load the instruments "
                f"dump of {_days_text(dates)} (kite.instruments() saved as CSV)."
            )

        named = self.book.resolve([token] * len(days), days)
        if not all(named):
            # Speak only about the days still without a name.
            dates = [d for d, hit in zip(dates, named, strict=True) if hit is None] if dates else dates
            days = dates or [None]
        else:
            master, row = named[0]
            return NAMED_NOW, (
                f"the loaded masters name it now ({_instrument_text(row)} in the {_master_text(master)}): "
                "these ticks were enriched before that master was added; ingest them again."
            )

        for master, conflicts in self.conflicts:
            rows = conflicts.filter(pc.equal(conflicts.column("instrument_token"), token)).to_pylist()
            if rows:
                listed = ", ".join(_instrument_text(r) for r in rows[:_MAX_LISTED])
                return CONFLICTING_ROWS, (
                    f"{Path(master.source).name} (the {_master_text(master)}) lists it {len(rows)} times with "
                    f"different data ({listed}), so none of those rows was used; fix that file."
                )

        swapped = byte_swapped(token)
        swapped_hits = self.book.lookup(swapped) if swapped and swapped != token else []
        segment_invalid = segment not in protocol.SEGMENTS
        if swapped_hits and (segment_invalid or not self.book.lookup(token)):
            # Prefer the master that would have named the swapped token on these days.
            own_day = [hit for hit in self.book.resolve([swapped] * len(days), days) if hit]
            master, row = (own_day or swapped_hits)[0]
            read_as = f"segment byte {segment} is not a Kite segment" if segment_invalid else \
                f"it is read as segment {segment}"
            return BYTE_SWAPPED, (
                f"with its 4 bytes reversed it is token {swapped} = {_instrument_text(row)} in the "
                f"{_master_text(master)}, and {read_as}: something upstream wrote the token "
                "little-endian (Kite sends big-endian)."
            )

        if segment_invalid:
            return INVALID_SEGMENT, (
                f"segment byte {segment} (token & 0xFF) is not a Kite segment, so these 4 bytes were "
                f"most likely read at the wrong offset (mis-framed packets), not a missing instrument; "
                f"{ticks:,} tick(s) in {_files_text(files)}."
            )

        hits = self.book.lookup(token)
        dated_hits = [(m, r) for m, r in hits if m.date is not None]
        if dated_hits:
            used = sorted({m.date for d in days for m in self.book.masters_for_day(d) if m.date})
            used_text = ("the master of " + ", ".join(d.isoformat() for d in used)) if used \
                else "the masters used for its days"
            listed = "; ".join(
                f"{m.date.isoformat()} as {_instrument_text(r)}" for m, r in dated_hits[:_MAX_LISTED]
            )
            more = f" and {len(dated_hits) - _MAX_LISTED} more" if len(dated_hits) > _MAX_LISTED else ""
            return OTHER_DAYS_ONLY, (
                f"ticks of {_days_text(dates)} are named with {used_text}, which lacks it; only masters of "
                f"other days list it ({listed}{more}): an expired or recycled token; load the "
                f"instruments dump of {_days_text(dates)}."
            )

        exchange_token = token >> 8
        elsewhere = [(m, r) for m, r in self.book.lookup_exchange_token(exchange_token)
                     if r["instrument_token"] != token]
        if elsewhere:
            master, row = elsewhere[0]
            other = row["instrument_token"]
            return EXCHANGE_TOKEN_OTHER_SEGMENT, (
                f"exchange token {exchange_token} exists in segment {other & 0xFF} "
                f"({_segment_name(other & 0xFF)}) as {_instrument_text(row)}, token {other} in the "
                f"{_master_text(master)}, while this token carries segment {segment} "
                f"({_segment_name(segment)}): a token built from that exchange token with the wrong "
                "segment byte (exchange tokens repeat across segments, so check it is the same instrument)."
            )

        dated = sorted({m.date for m in self.masters if m.date})
        span = ""
        if dated:
            span = f", days {dated[0].isoformat()}" + (f" to {dated[-1].isoformat()}" if len(dated) > 1 else "")
        undated = sum(1 for m in self.masters if m.date is None)
        if undated:
            span += f", {undated} undated"
        return ABSENT, (
            f"not in any of the {len(self.masters)} loaded master(s) ({self.book.total_rows:,} instruments "
            f"searched{span}); load the instruments dump of {_days_text(dates)}."
        )


def _instrument_text(row: dict) -> str:
    symbol = row.get("tradingsymbol") or row.get("name") or f"token {row['instrument_token']}"
    where = row.get("exchange") or row.get("instrument_segment")
    return f"{symbol} ({where})" if where else str(symbol)


def _master_text(master: InstrumentMaster) -> str:
    return f"master of {master.date.isoformat()}" if master.date else f"undated master {Path(master.source).name}"


def _segment_name(segment: int) -> str:
    seg = protocol.SEGMENTS.get(segment)
    return seg.name if seg else "invalid"


def _days_text(dates: list[dt.date]) -> str:
    if not dates:
        return "its trading day (its ticks have no date)"
    if len(dates) <= _MAX_LISTED:
        return ", ".join(d.isoformat() for d in dates)
    return f"{dates[0].isoformat()} to {dates[-1].isoformat()} ({len(dates)} days)"


def _files_text(files: list[str]) -> str:
    if not files:
        return "unnamed input"
    if len(files) <= _MAX_LISTED:
        return ", ".join(files)
    return ", ".join(files[:_MAX_LISTED]) + f" and {len(files) - _MAX_LISTED} more files"

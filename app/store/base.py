"""What every target shares: the Target contract, table schemas, locks and capture records.

A target holds committed captures only. Writing a capture goes through a
``CaptureWrite`` (``target.begin(file_id)``): ticks and bad packets are added in
batches and become visible all at once on ``commit(record)``, together with the
capture's row in ``captures``; ``abort()`` leaves nothing of it. Exactly one thread
writes to a target; several captures may be open for writing at once (their
batches interleave) because files decode in parallel.

Locks: a target is opened by one process at a time, and by one open handle inside
a process (``_claim``), so two writers can never meet on one file.
"""

from __future__ import annotations

import abc
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.core import protocol, schema
from app.core.capture import CaptureRecord
from app.core.framing.common import BadRegions
from app.errors import InputError, TargetLockedError

UTC_TIME = schema.UTC_TIME
UNRESOLVED_AGGREGATE_SCHEMA = schema.UNRESOLVED_AGGREGATE_SCHEMA  # (app.core.schema: one definition)

CAPTURES_SCHEMA = pa.schema(
    [
        ("file_id", pa.string()),  # sha256 hex of the capture file's bytes
        ("path", pa.string()),  # where it was read from (last ingest)
        ("size_bytes", pa.int64()),
        ("framing", pa.string()),  # raw | u32len | ts-u32len | base64 | single | json | jsonl | parquet
        ("messages", pa.int64()),
        ("packets", pa.int64()),
        ("heartbeats", pa.int64()),
        ("bad_packets", pa.int64()),
        ("unresolved_ticks", pa.int64()),
        ("first_tick_time", UTC_TIME),
        ("last_tick_time", UTC_TIME),
        ("status", pa.string()),  # ingested | replaced (re-ingested with --force)
        ("tool_version", pa.string()),
        ("ingested_at", UTC_TIME),
        # ticks stored with a suspect_reason; null in captures ingested before it was counted
        ("suspect", pa.int64()),
    ]
)

BAD_PACKETS_SCHEMA = pa.schema(
    [
        ("file_id", pa.string()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.binary()),
    ]
)

_FILE_ID = re.compile(r"^[0-9a-f]{64}$")


def with_columns_of(table: pa.Table, target: pa.Schema) -> pa.Table:
    """``table`` (of an older Tickscope) with the columns of ``target`` it lacks added as
    nulls, in ``target``'s order: older targets open; their missing counts read as null."""
    for f in target:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(target.names)


def check_file_id(file_id: str) -> str:
    """File ids name files inside a target, so they must be exactly sha256 hex."""
    if not isinstance(file_id, str) or not _FILE_ID.match(file_id):
        raise ValueError(f"file_id must be 64 lowercase hex characters, got {file_id!r}")
    return file_id


def captures_table(record: CaptureRecord) -> pa.Table:
    """A capture's ``captures`` row: written last, in the same commit as its ticks."""
    row = {name: getattr(record, name) for name in CAPTURES_SCHEMA.names}
    row["status"] = "replaced" if record.replaced else "ingested"  # how it was committed
    return pa.Table.from_pylist([row], schema=CAPTURES_SCHEMA)


class AlreadyIngested(Exception):
    """The capture's content is already in the target (and --force was not given)."""


def bad_packets_table(file_id: str, bad: Sequence) -> pa.Table:
    """``BadPacket`` objects as ``BAD_PACKETS_SCHEMA`` rows; a decoder's ``BadRegions``
    from its columns (a damaged capture has one region every few bytes)."""
    if isinstance(bad, BadRegions):
        return _bad_regions_table(file_id, bad)
    return pa.table(
        {
            "file_id": pa.array([file_id] * len(bad), pa.string()),
            "offset": pa.array([b.offset for b in bad], pa.int64()),
            "length": pa.array([b.length for b in bad], pa.int64()),
            "reason": pa.array([b.reason for b in bad], pa.string()),
            "raw": pa.array([bytes(b.raw) for b in bad], pa.binary()),
        },
        schema=BAD_PACKETS_SCHEMA,
    )


def _bad_regions_table(file_id: str, bad: BadRegions) -> pa.Table:
    """``bad_packets_table`` of ``BadRegions`` without reading them one by one: the
    distinct reasons and first bytes as Arrow columns (from the decoder's parts, not
    an object each), taken by each region's codes."""
    return pa.table(
        {
            "file_id": pa.repeat(pa.scalar(file_id, pa.string()), len(bad)),
            "offset": pa.array(bad.offset, pa.int64()),
            "length": pa.array(bad.length, pa.int64()),
            "reason": _take_spans(pa.string(), *bad.reason_spans(), bad.reason_code),
            "raw": _take_spans(pa.binary(), *bad.raw_spans(), bad.raw_code),
        },
        schema=BAD_PACKETS_SCHEMA,
    )


def _take_spans(kind: pa.DataType, data: np.ndarray, start: np.ndarray, end: np.ndarray,
                index: np.ndarray) -> pa.Array:
    """A ``kind`` (binary or string) column of the spans (``byte_spans``) at ``index``.
    The spans are in order and disjoint, so their starts and ends, interleaved, are the
    offsets of an array over ``data`` whose even values are the spans (the odd ones the
    gaps between): one take copies those asked, without an object each."""
    bounds = np.empty(2 * start.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = start, end
    if not start.size or data.size >= 1 << 31 or (bounds[1:] < bounds[:-1]).any():
        # (none; past 32-bit offsets, or spans out of order: never so from one chunk's regions)
        values = [data[i:j].tobytes() for i, j in zip(start.tolist(), end.tolist(), strict=True)]
        if kind == pa.string():
            values = [v.decode() for v in values]
        return pa.array(values, kind).take(pa.array(index, pa.int64()))
    spans = pa.Array.from_buffers(kind, bounds.size - 1, [None, pa.py_buffer(bounds.astype(np.int32)),
                                                          pa.py_buffer(data)])
    return spans.take(pa.array(2 * index))


def conform_ticks(table: pa.Table) -> pa.Table:
    """``table`` in exactly ``TICK_SCHEMA`` (column order and types), or a clear error."""
    if table.schema.equals(schema.TICK_SCHEMA):
        return table
    missing = [n for n in schema.TICK_SCHEMA.names if n not in table.schema.names]
    if missing:
        raise ValueError(f"tick table lacks columns {missing}")
    return table.select(schema.TICK_SCHEMA.names).cast(schema.TICK_SCHEMA)


# --- enrichment of stored ticks ------------------------------------------------

def token_date_pairs_table(pairs: pa.Table) -> pa.Table:
    """A DECODED_SCHEMA table with one row per (instrument_token, trading_date) pair.

    Enrichment depends only on the token and the tick's trading date, so resolving
    stored ticks enriches these few pairs and applies the result to every matching
    tick instead of reading whole ticks back.
    """
    n = pairs.num_rows
    tokens = pairs["instrument_token"].combine_chunks().cast(pa.int64())
    token_np = tokens.to_numpy(zero_copy_only=False)
    segment = (token_np & 0xFF).astype(np.int16)
    arrays = []
    for f in schema.DECODED_SCHEMA:
        if f.name == "instrument_token":
            arrays.append(tokens)
        elif f.name == "trading_date":
            arrays.append(pairs["trading_date"].combine_chunks().cast(pa.date32()))
        elif f.name == "segment":
            arrays.append(pa.array(segment))
        elif f.name == "exchange_token":
            arrays.append(pa.array(token_np >> 8))
        elif f.name == "tradable":
            arrays.append(pa.array(segment != protocol.INDICES_SEGMENT))
        elif f.name in ("msg_seq", "offset"):
            arrays.append(pa.array(np.arange(n, dtype=np.int64)))
        elif f.name == "pkt_seq":
            arrays.append(pa.array(np.zeros(n, dtype=np.int32)))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema.DECODED_SCHEMA)


def resolution_map(book, pairs: pa.Table) -> pa.Table:
    """Enrichment for each unresolved (token, date) pair the book can now name.

    Returns ``instrument_token``, ``trading_date`` and the enrichment columns, only
    for pairs that resolve.
    """
    if pairs.num_rows == 0:
        return pa.table(
            [pa.array([], pa.int64()), pa.array([], pa.date32())]
            + [pa.array([], f.type) for f in schema.ENRICHMENT_SCHEMA],
            names=["instrument_token", "trading_date"] + schema.ENRICHMENT_SCHEMA.names,
        )
    enriched = book.enrich(token_date_pairs_table(pairs))
    enriched = enriched.filter(pc.fill_null(enriched["resolved"], False))
    return enriched.select(["instrument_token", "trading_date"] + schema.ENRICHMENT_SCHEMA.names)


# --- locks -----------------------------------------------------------------------

_claimed: dict[str, str] = {}
_claimed_lock = threading.Lock()


def _claim(path: Path) -> str:
    """Claim ``path`` for this handle inside this process (DuckDB would share it silently)."""
    key = os.path.normcase(os.path.realpath(path))
    with _claimed_lock:
        if key in _claimed:
            raise TargetLockedError(
                f"target {path} is already open in this process ({_claimed[key]}); "
                "wait for that job to finish, then retry"
            )
        _claimed[key] = threading.current_thread().name
    return key


def _release(key: str | None) -> None:
    if key is None:
        return
    with _claimed_lock:
        _claimed.pop(key, None)


def locked_message(path: Path, pid: int | None) -> str:
    holder = f"another process (PID {pid})" if pid else "another process"
    return (
        f"target {path} is locked by {holder}; wait for it to finish or close it "
        "(or choose another --target), then retry"
    )


# --- the contract ------------------------------------------------------------------


class CaptureWrite(abc.ABC):
    """One capture being written; nothing of it is visible until ``commit``."""

    file_id: str

    @abc.abstractmethod
    def add_ticks(self, ticks: pa.Table) -> None: ...

    @abc.abstractmethod
    def add_bad(self, bad: Sequence) -> None: ...

    @abc.abstractmethod
    def commit(self, record: CaptureRecord) -> None:
        """Make the capture visible with its ``captures`` row; AlreadyIngested if it is there."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Forget everything written for this capture (safe to call twice)."""


class Target(abc.ABC):
    """A place ticks go: a DuckDB file or a Parquet dataset folder."""

    kind: str
    path: Path
    read_only: bool

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def file_ids(self) -> set[str]:
        """The file_ids of every committed capture."""

    @abc.abstractmethod
    def begin(self, file_id: str, *, force: bool = False) -> CaptureWrite: ...

    @abc.abstractmethod
    def captures(self) -> pa.Table: ...

    @abc.abstractmethod
    def ticks(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Committed ticks (TICK_SCHEMA, or the given columns)."""

    @abc.abstractmethod
    def bad_packets(self) -> pa.Table: ...

    # -- stored instrument masters (``app.store.masters``: catalog + validity intervals) --

    @abc.abstractmethod
    def master_catalog(self) -> pa.Table:
        """``instrument_masters`` (``masters.CATALOG_SCHEMA``): one row per stored master; cheap."""

    @abc.abstractmethod
    def master_rows(self) -> pa.Table:
        """``instrument_rows`` (``masters.ROWS_SCHEMA``): every stored row with its validity."""

    @abc.abstractmethod
    def _replace_masters(self, catalog: pa.Table, rows: pa.Table) -> None:
        """Store the new catalog and rows together (all or nothing)."""

    def instruments(self) -> pa.Table:
        """Every stored master's rows (``InstrumentBook.to_table()`` layout), possibly empty.

        Expands the intervals: for display and tests; the pipeline never calls it."""
        from app.store import masters as store

        catalog = self.master_catalog()
        if catalog.num_rows == 0:
            return pa.table({})
        return store.expand(catalog, self.master_rows())

    def master_is_stored(self, sha256: str, name_date) -> bool:
        """A master file of this content and file-name date is stored: no need to read it."""
        from app.store import masters as store

        return store.stored_under_name(self.master_catalog(), sha256, name_date)

    def record_masters(self, masters: Sequence, shas: Sequence[str | None] | None = None,
                       name_dates: Sequence | None = None) -> list[bool]:
        """Store masters (``shas``: their files' sha256, else a hash of their table); a master
        whose content is stored for its day already is a no-op (nothing is rewritten), one of
        a stored (source, date) replaces it. Returns, per master, whether it was stored."""
        from app.store import masters as store

        self._writable()
        masters = list(masters)
        if not masters:
            return []
        shas = list(shas) if shas is not None else [None] * len(masters)
        name_dates = list(name_dates) if name_dates is not None else [None] * len(masters)
        catalog = self.master_catalog()
        rows = None
        stored = [False] * len(masters)
        # Last to first: each goes first on its day, so same-day masters keep the given order.
        for i in reversed(range(len(masters))):
            m, sha, name_date = masters[i], shas[i], name_dates[i]
            sha = sha or store.table_sha256(m)
            if store.is_stored(catalog, sha, m.date):
                continue
            if rows is None:
                rows = self.master_rows()  # read only once something new is to be stored
            catalog, rows = store.add_master(catalog, rows, m, sha, name_date)
            stored[i] = True
        if rows is not None:
            self._replace_masters(catalog, rows)
        return stored

    def record_instruments(self, table: pa.Table) -> None:
        """Store masters given as ``book.to_table()`` rows (see ``record_masters``)."""
        if table.num_rows:
            self.record_masters(masters_from_table(table))

    @abc.abstractmethod
    def unresolved_aggregate(self) -> pa.Table:
        """UNRESOLVED_AGGREGATE_SCHEMA over every unresolved tick."""

    @abc.abstractmethod
    def _store_unknown(self, table: pa.Table) -> None: ...

    @abc.abstractmethod
    def unknown_tokens(self) -> pa.Table:
        """The explained unknown-token table as last rebuilt."""

    @abc.abstractmethod
    def resolve(self, book) -> int:
        """Name ticks still unresolved with ``book``; returns how many got resolved."""

    # -- integrity (app.store.base.Finding; used by the CLI and the app alike) ------

    @abc.abstractmethod
    def verify(self) -> list[Finding]:
        """Everything wrong with the target, one Finding each (empty: clean)."""

    @abc.abstractmethod
    def damaged_captures(self) -> dict[str, str]:
        """file_id -> what is wrong, for committed captures whose stored rows are damaged
        (cheap enough to run before every ingest: those are re-ingested, not skipped)."""

    @abc.abstractmethod
    def remove(self, file_ids: Sequence[str]) -> list[RemovedCapture]:
        """Remove captures and everything derived from them in one commit; NotInTarget
        (nothing removed) if one of them is not there. Rebuilds ``unknown_tokens``."""

    # The ingest's memory budget (``app.core.memory.MemoryBudget``) while one runs, else None.
    memory = None

    def tune_for_ingest(self, decoder_threads: int | None, memory=None) -> None:
        """Settings for an ingest with ``decoder_threads`` decoding within ``memory`` (a
        ``MemoryBudget``); ``decoder_threads`` None: back to defaults."""
        self.memory = memory if decoder_threads is not None else None

    def counts(self) -> dict[str, int]:
        return {
            "captures": self.captures().num_rows,
            "ticks": self.ticks(["file_id"]).num_rows,
            "bad_packets": self.bad_packets().num_rows,
        }

    # -- masters and unknown tokens, the same for every target --------------------

    def stored_masters(self):
        """The stored masters, lazily: only the catalog is read now (``masters.StoredMasters``)."""
        from app.store.masters import StoredMasters

        return StoredMasters(self.master_catalog(), self.master_rows, self.master_rows_of)

    def master_rows_of(self, lane: int, date) -> pa.Table:
        """The rows of one stored master (``lane`` on ``date``; None: undated); targets
        override it to read only those rows."""
        from app.store import masters as store

        return store.master_table(self.master_rows(), lane, date)

    def stored_book(self, extra: Iterable = ()):
        """An InstrumentBook of ``extra`` masters (given on this run, not stored) and the stored ones.

        A given master replaces the stored master of the same (source, date) -- it is the
        file as it is now, say a corrected copy -- and is searched before any other stored
        master of its day: the book searches same-day masters in the order added, so the
        master the user passes now names the ticks, never a stale stored copy. Stored
        masters are read only when a tick of their day needs naming.
        """
        from app.core.enrich import InstrumentBook

        given = list(extra)
        keys = {(m.source, m.date) for m in given}
        stored = [m for m in self.stored_masters().masters if (m.source, m.date) not in keys]
        return InstrumentBook(given + stored)

    def resolve_with_masters(self, masters: Iterable) -> tuple[int, pa.Table]:
        """Store ``masters``, name the unresolved ticks the stored masters can, rebuild
        ``unknown_tokens``; returns (ticks named, the unknown-token table).

        One change as far as the target allows: DuckDB does it in one transaction. Here
        (Parquet) the steps run in the order that keeps every stop consistent: masters
        first (storing them again is harmless), then the captures switch that makes the
        named ticks count, then ``unknown_tokens``, which the target rebuilds when it
        finds it older than the captures or masters it describes.
        """
        self.record_masters(list(masters))
        book = self.stored_book()
        resolved = self.resolve(book)
        return resolved, self.rebuild_unknown_tokens(book)

    def rebuild_unknown_tokens(self, book=None) -> pa.Table:
        """Recompute ``unknown_tokens`` from every unresolved tick of the target."""
        from app.core.unknown import explain_unknown

        if book is None:
            book = self.stored_book()
        table = explain_unknown(self.unresolved_aggregate(), book)
        self._store_unknown(table)
        return table


MASTER_KEY = ("source", "instruments_date")  # one stored master = its rows with one key


def master_keys(table: pa.Table) -> pa.Table:
    """The distinct (source, instruments_date) of ``book.to_table()`` rows."""
    return table.select(list(MASTER_KEY)).group_by(list(MASTER_KEY)).aggregate([])


def masters_from_table(table: pa.Table) -> list:
    """Rebuild InstrumentMaster objects from stored ``book.to_table()`` rows, in stored order."""
    from app.core.instruments import MASTER_SCHEMA, InstrumentMaster

    if table.num_rows == 0 or not set(MASTER_KEY) <= set(table.column_names):
        return []
    sources = table["source"].combine_chunks()
    dates = table["instruments_date"].combine_chunks()
    # Masters in the order their first row was stored: the book searches same-day masters in order.
    keyed = pa.table({"source": sources, "instruments_date": dates, "row": pa.array(np.arange(table.num_rows))})
    firsts = keyed.group_by(list(MASTER_KEY), use_threads=False).aggregate([("row", "min")])
    firsts = firsts.take(pc.sort_indices(firsts["row_min"]))
    masters = []
    for source, date in zip(firsts["source"].to_pylist(), firsts["instruments_date"].to_pylist(), strict=True):
        same_source = pc.equal(sources, pa.scalar(source, pa.string())) if source is not None else pc.is_null(sources)
        same_date = pc.equal(dates, pa.scalar(date, pa.date32())) if date is not None else pc.is_null(dates)
        rows = table.filter(pc.fill_null(pc.and_(same_source, same_date), False))
        masters.append(
            InstrumentMaster(
                source=source or "", date=date,
                table=rows.select(MASTER_SCHEMA.names).cast(MASTER_SCHEMA),
                date_source="stored",
            )
        )
    return masters


# --- integrity: verify and remove (one implementation per target) -------------------


@dataclass
class Finding:
    """One thing ``verify`` found wrong, said in one line: what it concerns, what is wrong,
    what to do. ``code`` is stable for scripts; ``file_id`` is set when a capture is concerned."""

    code: str  # missing_part | changed_part | tick_count | bad_count | foreign_rows | orphan_part
    #            | stray_file | orphan_rows | unknown_orphan | journal | summary | staged_part
    #            | temporary_part
    subject: str  # the capture's file name, or the file/table the finding is about
    what: str
    action: str
    file_id: str | None = None
    # False for a note that is not damage (``staged_part``, ``temporary_part``): ``tickscope verify`` lists it
    # but exits 5 only when some finding is damage.
    damage: bool = True

    def line(self) -> str:
        return f"{self.subject}: {self.what}; {self.action}" + ("" if self.damage else " (not damage)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RemovedCapture:
    """What ``remove`` took out of the target for one capture."""

    file_id: str
    path: str
    ticks: int
    bad_packets: int

    def to_dict(self) -> dict:
        return asdict(self)


class UnreadableTarget(InputError):
    """The target's own bookkeeping (a Parquet manifest or journal) cannot be read: exit 2
    for the commands that need it, damage (exit 5) for ``verify``."""


class NotInTarget(Exception):
    """``remove`` was given file ids no committed capture has; nothing was removed."""

    def __init__(self, file_ids: Sequence[str]):
        self.file_ids = list(file_ids)
        super().__init__(", ".join(self.file_ids))


REINGEST = ("re-ingest the capture (`tickscope ingest CAPTURE --target TARGET`: a damaged capture is re-ingested, "
            "not skipped)")


def capture_name(path: str | None) -> str:
    """How findings name a capture: its file name (as last ingested)."""
    return Path(path).name if path else "(unknown capture)"


def count_findings(captures: pa.Table, counted: dict[str, tuple[int, int]]) -> list[Finding]:
    """Findings for captures whose stored tick/bad-packet rows differ from their ``captures``
    row (``counted``: file_id -> (ticks, bad packets) found in storage)."""
    findings = []
    for row in captures.select(["file_id", "path", "packets", "bad_packets"]).to_pylist():
        ticks, bad = counted.get(row["file_id"], (0, 0))
        name = capture_name(row["path"])
        if ticks != (row["packets"] or 0):
            findings.append(Finding("tick_count", name, f"{ticks:,} tick rows stored, its captures row says "
                                    f"{row['packets'] or 0:,}", REINGEST, row["file_id"]))
        if bad != (row["bad_packets"] or 0):
            findings.append(Finding("bad_count", name, f"{bad:,} bad-packet rows stored, its captures row says "
                                    f"{row['bad_packets'] or 0:,}", REINGEST, row["file_id"]))
    return findings


def unknown_orphan_findings(unknown: pa.Table, captures: pa.Table) -> list[Finding]:
    """Unknown-token rows naming a capture path the target does not hold."""
    if unknown.num_rows == 0 or "files" not in unknown.column_names:
        return []
    paths = set(captures["path"].to_pylist())
    findings = []
    for token, files in zip(unknown["instrument_token"].to_pylist(), unknown["files"].to_pylist(), strict=True):
        strangers = [f for f in files or [] if f not in paths]
        if strangers:
            findings.append(Finding(
                "unknown_orphan", "unknown_tokens",
                f"the row of token {token} names {capture_name(strangers[0])}, which is not a capture of the target",
                "it is rebuilt by the next ingest, resolve or remove",
            ))
    return findings

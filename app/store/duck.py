"""The DuckDB file target: tables ticks, captures, bad_packets, instruments, unknown_tokens.

Each capture is one DuckDB transaction on its own cursor (connection to the same
database), holding its ticks, bad packets and ``captures`` row; DuckDB's WAL makes a
crash, kill -9 or cancel leave the whole capture or none of it. Several capture
transactions may be open at once (the single writer thread interleaves their
batches); they only append, so they never conflict. ``ticks`` has no key: the
``captures`` row is what makes a capture count, and a capture already there is
skipped inside the same transaction.

Paths and names from inputs only ever reach SQL as parameters. Small Arrow tables
reach SQL as views registered under random names (``_arrow_view``), never by Python
variable name: DuckDB resolves a name to a table of the database first, so a user's
table called ``batch`` would otherwise be read instead.

Bulk rows (ticks, bad packets) go in through relations (``from_arrow(...).insert_into``),
not registered views: DuckDB keeps a registered view's Arrow data referenced until the
transaction ends, so a capture's whole decoded data stayed in memory until its commit
(2.2 GB for a 414 MB capture, measured). A capture's ticks are buffered into inserts of
whole row groups per DuckDB thread, so DuckDB converts and compresses them on every core
and writes them to the file as they fill (optimistic writes); whole row groups leave the
checkpoint at close only each capture's last, short one to merge (merging ragged ones
cost 2-4 s per 2.7M rows).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from app.core import schema
from app.errors import InputError, TargetLockedError
from app.store import base
from app.store import summary as tick_summary
from app.store.base import (
    BAD_PACKETS_SCHEMA,
    CAPTURES_SCHEMA,
    AlreadyIngested,
    CaptureRecord,
    CaptureWrite,
    Target,
)

log = logging.getLogger(__name__)

# DuckDB's row group size (rows); ticks are inserted in whole row groups per thread.
ROW_GROUP_ROWS = 122_880
# Row groups per insert, at most: bounds what one open capture buffers (~75 MB each).
MAX_INSERT_ROW_GROUPS = 4
# DuckDB's buffer pool while ingesting, per capture written at once: what it caches of the
# blocks it writes stays this small whatever the capture's size (its default is 80% of
# the machine's memory). Measured, peak RSS: 1.0 GB for 2.7M packets, 1.5 GB for 8.1M or
# for two files at once; half these limits cost 10-15% in time (two files 14-16 s, not 13).
INGEST_MEMORY_MB_PER_CAPTURE = 512
INGEST_MEMORY_MB_MIN = 1024

_PID = re.compile(r"\(PID (\d+)\)")

_CAPTURES_DDL = """
CREATE TABLE IF NOT EXISTS captures (
    file_id VARCHAR PRIMARY KEY,
    path VARCHAR,
    size_bytes BIGINT,
    framing VARCHAR,
    messages BIGINT,
    packets BIGINT,
    heartbeats BIGINT,
    bad_packets BIGINT,
    unresolved_ticks BIGINT,
    first_tick_time TIMESTAMPTZ,
    last_tick_time TIMESTAMPTZ,
    status VARCHAR,
    tool_version VARCHAR,
    ingested_at TIMESTAMPTZ,
    suspect BIGINT
)"""

_BAD_DDL = """
CREATE TABLE IF NOT EXISTS bad_packets (
    file_id VARCHAR, "offset" BIGINT, length BIGINT, reason VARCHAR, raw BLOB
)"""

# Unresolved ticks per token, with the capture paths they came from.
_UNRESOLVED_SQL = """
SELECT t.instrument_token,
       count(*) AS ticks,
       min(t.tick_time) AS first_tick_time,
       max(t.tick_time) AS last_tick_time,
       list(DISTINCT c.path ORDER BY c.path) AS files,
       list(DISTINCT t.trading_date ORDER BY t.trading_date)
           FILTER (WHERE t.trading_date IS NOT NULL) AS trading_dates
FROM ticks t JOIN captures c USING (file_id)
WHERE NOT t.resolved
GROUP BY t.instrument_token
ORDER BY ticks DESC, t.instrument_token
"""


# Columns added since a table's first layout: (name, DuckDB type), added on open.
_ADDED_COLUMNS = {"ticks": ("suspect_reason", "VARCHAR"), "captures": ("suspect", "BIGINT")}


# Our tables and what an existing one must look like to be ours (an older Tickscope's
# instruments/unknown_tokens may differ in detail; their key columns may not).
def _expected_columns() -> dict[str, tuple[str, list[str]]]:
    return {
        "ticks": ("exact", schema.TICK_SCHEMA.names),
        "captures": ("exact", CAPTURES_SCHEMA.names),
        "bad_packets": ("exact", BAD_PACKETS_SCHEMA.names),
        "instruments": ("has", ["instrument_token", *base.MASTER_KEY]),  # before intervals: migrated
        "instrument_masters": ("has", ["sha256", "lane", "instruments_date"]),
        "instrument_rows": ("has", ["instrument_token", "lane", "valid_from", "valid_to"]),
        "unknown_tokens": ("has", ["instrument_token", "diagnosis"]),
        tick_summary.TABLE: ("exact", tick_summary.SUMMARY_SCHEMA.names),
    }


@contextlib.contextmanager
def _arrow_view(con: duckdb.DuckDBPyConnection, table: pa.Table):
    """``table`` visible to SQL on ``con`` under a fresh name no user table can have."""
    name = f"tickscope_arrow_{secrets.token_hex(8)}"
    con.register(name, table)
    try:
        yield name
    finally:
        try:
            con.unregister(name)
        except duckdb.Error:  # the connection is gone; so is the view
            pass


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection):
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as err:
        text = str(err)
        if "lock" in text.lower():
            match = _PID.search(text)
            raise TargetLockedError(base.locked_message(path, int(match.group(1)) if match else None)) from None
        raise InputError(f"cannot open DuckDB target {path}: {text.splitlines()[0]}") from None
    except duckdb.Error as err:
        raise InputError(
            f"{path} is not a usable DuckDB database ({str(err).splitlines()[0]}); "
            "choose another --target"
        ) from None
    # Timestamps come back as UTC instants whatever the machine's zone is.
    con.execute("SET TimeZone = 'UTC'")
    return con


class DuckDBTarget(Target):
    kind = "duckdb"

    def __init__(self, path: Path | str, *, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._claim = None
        if read_only and not self.path.is_file():
            raise InputError(f"no target at {self.path}; ingest into it first")
        self._claim = base._claim(self.path)
        try:
            self.con = _connect(self.path, read_only)
            self._check_layout()
            if not read_only:
                self._create_tables()
                self._migrate_instruments()
        except BaseException:
            base._release(self._claim)
            self._claim = None
            raise
        self._open_writes: list[_DuckCaptureWrite] = []
        self._threads = self._setting_threads()

    def _create_tables(self) -> None:
        con = self.con
        with _transaction(con), _arrow_view(con, schema.TICK_SCHEMA.empty_table()) as empty:
            con.execute(f"CREATE TABLE IF NOT EXISTS ticks AS SELECT * FROM {empty}")
            con.execute(_CAPTURES_DDL)
            con.execute(_BAD_DDL)
            self._create_summary()

    def _create_summary(self) -> None:
        """The tick summary table; a target written before it gets it built from its ticks
        (inside the caller's transaction: the table and its rows come together)."""
        if self._has_table(tick_summary.TABLE):
            return
        self.con.execute(tick_summary.ddl())
        self.con.execute(f"INSERT INTO {tick_summary.TABLE} {tick_summary.summary_sql('ticks')}")
        log.info("built the tick summary of %s", self.path)

    def has_summary(self) -> bool:
        """Whether the target keeps a tick summary (a read-only target of an older Tickscope may not)."""
        return self._has_table(tick_summary.TABLE)

    def _check_layout(self) -> None:
        """Refuse a database whose tables of our names are not ours, before creating anything."""
        rows = self.con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
        found: dict[str, list[str]] = {}
        for table, column in rows:
            found.setdefault(table, []).append(column)
        for table, (rule, expected) in _expected_columns().items():
            columns = found.get(table)
            if columns is None:
                continue
            added = _ADDED_COLUMNS.get(table)
            if rule == "exact" and added and added[0] not in columns and columns == [c for c in expected
                                                                                     if c != added[0]]:
                # An older Tickscope's table: the column is added (writable) or read as null.
                if not self.read_only:
                    self.con.execute(f'ALTER TABLE {table} ADD COLUMN "{added[0]}" {added[1]}')
                    columns = columns + [added[0]]
                else:
                    continue
            ok = (sorted(columns) == sorted(expected)) if rule == "exact" else set(expected) <= set(columns)
            if not ok:
                raise InputError(
                    f"{self.path} holds a {table} table of another layout ({len(columns)} columns); "
                    "choose another --target"
                )
        self._tick_order = found.get("ticks", schema.TICK_SCHEMA.names)
        if "ticks" in found and "suspect_reason" not in self._tick_order and not self.read_only:
            self._tick_order = self._tick_order + ["suspect_reason"]
        if self.read_only and not {"ticks", "captures"} <= set(found):
            raise InputError(f"{self.path} is not a Tickscope target (no ticks or captures table); "
                             "ingest into it first")

    def close(self) -> None:
        for write in list(self._open_writes):
            write.abort()
        con = getattr(self, "con", None)
        if con is not None:
            try:
                con.close()
            finally:
                self.con = None
                base._release(self._claim)
                self._claim = None

    def tune_for_ingest(self, decoder_threads: int | None, memory=None) -> None:
        # DuckDB converts and compresses on every core beside the decoders (measured on 2
        # cores: 2.7M packets in 7-9 s instead of 10.5 s with one DuckDB thread); row order
        # in ``ticks`` means nothing (readers order by file_id, msg_seq, pkt_seq), and not
        # keeping it is what lets DuckDB insert in parallel.
        super().tune_for_ingest(decoder_threads, memory)
        con = self.con
        if decoder_threads is None:
            for setting in ("threads", "preserve_insertion_order", "memory_limit"):
                try:
                    con.execute(f"RESET {setting}")
                except duckdb.Error:  # the connection broke: what broke it is the error to see
                    log.debug("RESET %s failed", setting, exc_info=True)
                    return
        else:
            con.execute("SET preserve_insertion_order = false")
            if memory is not None:  # the ingest's --memory-limit: DuckDB's share of it
                limit = memory.engine_bytes // (1 << 20)
            else:
                limit = max(INGEST_MEMORY_MB_MIN, INGEST_MEMORY_MB_PER_CAPTURE * decoder_threads)
            con.execute(f"SET memory_limit = '{int(limit)}MB'")
        self._threads = self._setting_threads()

    def _setting_threads(self) -> int:
        """DuckDB's threads setting: inserts are sized to give each thread whole row groups."""
        return int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])

    def _columns_of(self, table: str) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
            "AND table_catalog = current_database() AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()]

    def _has_table(self, name: str) -> bool:
        return bool(
            self.con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
                [name],
            ).fetchall()[0][0]
        )

    # -- reading ----------------------------------------------------------------

    def file_ids(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT file_id FROM captures").fetchall()}

    def captures(self) -> pa.Table:
        table = self.con.sql("SELECT * FROM captures ORDER BY ingested_at, file_id").to_arrow_table()
        return base.with_columns_of(table, CAPTURES_SCHEMA).cast(CAPTURES_SCHEMA)

    def ticks(self, columns: Sequence[str] | None = None) -> pa.Table:
        names = list(columns) if columns else schema.TICK_SCHEMA.names
        unknown = set(names) - set(schema.TICK_SCHEMA.names)
        if unknown:
            raise ValueError(f"no such tick columns: {sorted(unknown)}")
        have = set(self._columns_of("ticks"))
        # names checked against the schema above; columns an older target lacks read as null
        select = ", ".join(f'"{n}"' if n in have else f'NULL::VARCHAR AS "{n}"' for n in names)
        table = self.con.sql(f"SELECT {select} FROM ticks ORDER BY file_id, msg_seq, pkt_seq").to_arrow_table()
        return table.cast(pa.schema([schema.TICK_SCHEMA.field(n) for n in names]))

    def bad_packets(self) -> pa.Table:
        table = self.con.sql('SELECT * FROM bad_packets ORDER BY file_id, "offset"').to_arrow_table()
        return table.cast(BAD_PACKETS_SCHEMA)

    def master_catalog(self) -> pa.Table:
        from app.store import masters as store

        if self._has_table("instrument_masters"):
            return self.con.sql("SELECT * FROM instrument_masters ORDER BY master_id").to_arrow_table().cast(
                store.CATALOG_SCHEMA)
        if self._has_table("instruments"):  # a read-only target of the layout before intervals
            return self._legacy_masters()[0]
        return store.CATALOG_SCHEMA.empty_table()

    def master_rows(self) -> pa.Table:
        from app.store import masters as store

        cur = self.con.cursor()  # enrichment threads may read while the writer writes
        try:
            if self._has_table("instrument_rows"):
                return cur.sql("SELECT * FROM instrument_rows").to_arrow_table().cast(store.ROWS_SCHEMA)
            if self._has_table("instruments"):
                return self._legacy_masters()[1]
            return store.ROWS_SCHEMA.empty_table()
        finally:
            cur.close()

    def master_rows_of(self, lane: int, date) -> pa.Table:
        from app.store import masters as store

        if not self._has_table("instrument_rows"):
            return super().master_rows_of(lane, date)
        cur = self.con.cursor()  # called from decoder threads
        try:
            if date is None:
                rel = cur.sql("SELECT * FROM instrument_rows WHERE lane = $lane AND valid_from IS NULL",
                              params={"lane": lane})
            else:
                rel = cur.sql("SELECT * FROM instrument_rows WHERE lane = $lane AND valid_from <= $day "
                              "AND valid_to >= $day", params={"lane": lane, "day": date})
            return rel.to_arrow_table().cast(store.ROWS_SCHEMA)
        finally:
            cur.close()

    def _legacy_masters(self):
        from app.store import masters as store

        return store.from_legacy(self.con.sql("SELECT * FROM instruments").to_arrow_table())

    def _migrate_instruments(self) -> None:
        """An ``instruments`` table of the layout before intervals becomes the two new tables."""
        if not self._has_table("instruments") or self._has_table("instrument_masters"):
            return
        catalog, rows = self._legacy_masters()
        with _transaction(self.con):
            self._replace_masters_in_transaction(catalog, rows)
            self.con.execute("DROP TABLE main.instruments")
        log.info("migrated %d stored masters of %s to validity intervals", catalog.num_rows, self.path)

    def unresolved_aggregate(self) -> pa.Table:
        table = self.con.sql(_UNRESOLVED_SQL).to_arrow_table()
        return table.cast(base.UNRESOLVED_AGGREGATE_SCHEMA)

    def unknown_tokens(self) -> pa.Table:
        if not self._has_table("unknown_tokens"):
            from app.core.unknown import UNKNOWN_SCHEMA

            return UNKNOWN_SCHEMA.empty_table()
        return self.con.sql("SELECT * FROM unknown_tokens").to_arrow_table()

    # -- writing ----------------------------------------------------------------

    def begin(self, file_id: str, *, force: bool = False) -> _DuckCaptureWrite:
        self._writable()
        write = _DuckCaptureWrite(self, base.check_file_id(file_id), force)
        self._open_writes.append(write)
        return write

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("target opened read-only")

    def _replace_masters(self, catalog: pa.Table, rows: pa.Table) -> None:
        self._writable()
        with _transaction(self.con):
            self._replace_masters_in_transaction(catalog, rows)

    def _replace_masters_in_transaction(self, catalog: pa.Table, rows: pa.Table) -> None:
        from app.store import masters as store

        con = self.con
        for name, table, schema_ in (("instrument_masters", catalog, store.CATALOG_SCHEMA),
                                     ("instrument_rows", rows, store.ROWS_SCHEMA)):
            with _arrow_view(con, table.cast(schema_)) as view:
                con.execute(f"CREATE OR REPLACE TABLE main.{name} AS SELECT * FROM {view}")

    def _store_unknown(self, table: pa.Table) -> None:
        self._writable()
        with _transaction(self.con):
            self._store_unknown_in_transaction(table)

    def _store_unknown_in_transaction(self, table: pa.Table) -> None:
        with _arrow_view(self.con, table) as explained:
            self.con.execute(f"CREATE OR REPLACE TABLE main.unknown_tokens AS SELECT * FROM {explained}")

    def resolve(self, book) -> int:
        self._writable()
        with _transaction(self.con):
            return self._resolve_in_transaction(book)

    def _resolve_in_transaction(self, book) -> int:
        con = self.con
        pairs = con.sql(
            "SELECT DISTINCT instrument_token, trading_date FROM ticks WHERE NOT resolved"
        ).to_arrow_table()
        mapping = base.resolution_map(book, pairs)
        if mapping.num_rows == 0:
            return 0
        # The captures whose ticks may be named now: their summary rows are rebuilt below.
        touched = [r[0] for r in con.execute(
            f"SELECT DISTINCT file_id FROM {tick_summary.TABLE} WHERE NOT resolved").fetchall()]
        sets = ", ".join(f'"{n}" = m."{n}"' for n in schema.ENRICHMENT_SCHEMA.names)
        with _arrow_view(con, mapping) as view:
            updated = con.execute(
                f"""UPDATE ticks SET {sets} FROM {view} m
                    WHERE NOT ticks.resolved
                      AND ticks.instrument_token = m.instrument_token
                      AND ticks.trading_date IS NOT DISTINCT FROM m.trading_date"""
            ).fetchall()[0][0]
        con.execute(
            """UPDATE captures SET unresolved_ticks = coalesce(u.n, 0)
               FROM (SELECT c.file_id, u.n FROM captures c LEFT JOIN
                       (SELECT file_id, count(*) AS n FROM ticks WHERE NOT resolved GROUP BY file_id) u
                     USING (file_id)) u
               WHERE captures.file_id = u.file_id"""
        )
        self._rebuild_summary(touched)
        return int(updated)

    def _rebuild_summary(self, file_ids: Sequence[str]) -> None:
        """Recompute these captures' summary rows from their ticks (inside the caller's transaction)."""
        if not file_ids:
            return
        con = self.con
        where = "list_contains($ids, file_id)"
        con.execute(f"DELETE FROM {tick_summary.TABLE} WHERE {where}", {"ids": list(file_ids)})
        con.execute(f"INSERT INTO {tick_summary.TABLE} {tick_summary.summary_sql('ticks', where=where)}",
                    {"ids": list(file_ids)})

    def resolve_with_masters(self, masters) -> tuple[int, pa.Table]:
        """Store masters, name ticks and rebuild unknown_tokens in one transaction."""
        from app.core.enrich import InstrumentBook
        from app.core.unknown import explain_unknown
        from app.store import masters as store

        self._writable()
        with _transaction(self.con):
            catalog, rows = self.master_catalog(), None
            for m in reversed(list(masters)):  # same-day masters keep the given order (record_masters)
                sha = store.table_sha256(m)
                if store.is_stored(catalog, sha, m.date):
                    continue
                rows = self.master_rows() if rows is None else rows
                catalog, rows = store.add_master(catalog, rows, m, sha)
            if rows is not None:
                self._replace_masters_in_transaction(catalog, rows)
                # The masters just stored (a cursor would not see them before the commit).
                book = InstrumentBook(store.StoredMasters(catalog, lambda: rows).masters)
            else:
                book = self.stored_book()
            resolved = self._resolve_in_transaction(book)
            unknown = explain_unknown(self.unresolved_aggregate(), book)
            self._store_unknown_in_transaction(unknown)
        return resolved, unknown


    # -- integrity: verify, damaged captures, remove ------------------------------

    def _rows_by_file_id(self, table: str) -> dict[str | None, int]:
        """file_id -> rows of ``table`` (one scan of its file_id column)."""
        return {fid: int(n) for fid, n in self.con.execute(
            f"SELECT file_id, count(*) FROM {table} GROUP BY file_id").fetchall()}

    def _stored_counts(self, per_table: dict | None = None) -> dict[str, tuple[int, int]]:
        """file_id of every captures row -> (tick rows, bad-packet rows) stored."""
        per_table = per_table or {t: self._rows_by_file_id(t) for t in ("ticks", "bad_packets")}
        return {fid: (per_table["ticks"].get(fid, 0), per_table["bad_packets"].get(fid, 0))
                for fid in self.file_ids()}

    def _summary_findings(self, captures: pa.Table, counts: dict[str, tuple[int, int]]) -> list[base.Finding]:
        if not self.has_summary():  # read-only, written by an older Tickscope: readers scan the ticks
            return []
        summed = {fid: int(n) for fid, n in self.con.execute(
            f"SELECT file_id, sum(ticks) FROM {tick_summary.TABLE} GROUP BY file_id").fetchall()}
        reported = {f.file_id for f in base.count_findings(captures, counts)}
        return tick_summary.findings(captures, {fid: t for fid, (t, _) in counts.items()}, summed, reported)

    def damaged_captures(self) -> dict[str, str]:
        captures, counts = self.captures(), self._stored_counts()
        findings = base.count_findings(captures, counts) + self._summary_findings(captures, counts)
        damaged: dict[str, str] = {}
        for finding in findings:
            damaged.setdefault(finding.file_id, finding.what)
        return damaged

    def verify(self) -> list[base.Finding]:
        captures = self.captures()
        tables = ("ticks", "bad_packets", tick_summary.TABLE) if self.has_summary() else ("ticks", "bad_packets")
        # One scan of each table's file_id column: counts per capture and rows of no capture.
        per_table = {table: self._rows_by_file_id(table) for table in tables}
        counts = self._stored_counts(per_table)
        findings = base.count_findings(captures, counts) + self._summary_findings(captures, counts)
        for table in tables:
            orphans = sorted(((fid, n) for fid, n in per_table[table].items() if fid not in counts),
                             key=lambda item: (item[0] is None, item[0] or ""))
            for fid, n in orphans:
                findings.append(base.Finding(
                    "orphan_rows", table, f"{n:,} rows of file_id {(fid or 'NULL')[:16]}, which no captures row has",
                    f"delete them (DELETE FROM {table} WHERE file_id = '…') or re-ingest that capture", fid,
                ))
        findings += base.unknown_orphan_findings(self.unknown_tokens(), captures)
        return findings

    def remove(self, file_ids: Sequence[str]) -> list[base.RemovedCapture]:
        """Captures, their ticks and bad packets go, and unknown_tokens is rebuilt, in one transaction."""
        from app.core.unknown import explain_unknown

        self._writable()
        wanted = pa.table({"file_id": pa.array(list(dict.fromkeys(file_ids)), pa.string())})
        con = self.con
        with _transaction(con), _arrow_view(con, wanted) as ids:
            rows = con.execute(
                f"""SELECT w.file_id, c.path, c.file_id IS NOT NULL,
                           (SELECT count(*) FROM ticks t WHERE t.file_id = w.file_id),
                           (SELECT count(*) FROM bad_packets b WHERE b.file_id = w.file_id)
                    FROM {ids} w LEFT JOIN captures c USING (file_id)"""
            ).fetchall()
            missing = [fid for fid, _, there, _, _ in rows if not there]
            if missing:
                raise base.NotInTarget(missing)
            for table in ("ticks", "bad_packets", tick_summary.TABLE, "captures"):
                con.execute(f"DELETE FROM {table} WHERE file_id IN (SELECT file_id FROM {ids})")
            unknown = explain_unknown(self.unresolved_aggregate(), self.stored_book())
            self._store_unknown_in_transaction(unknown)
        order = {fid: i for i, fid in enumerate(wanted["file_id"].to_pylist())}
        removed = [base.RemovedCapture(fid, path, int(t), int(b)) for fid, path, _, t, b in rows]
        return sorted(removed, key=lambda r: order[r.file_id])


class _DuckCaptureWrite(CaptureWrite):
    def __init__(self, target: DuckDBTarget, file_id: str, force: bool):
        self.target = target
        self.file_id = file_id
        self.force = force
        self.cur = target.con.cursor()
        self.cur.execute("SET TimeZone = 'UTC'")
        self.cur.execute("BEGIN")
        self.done = False
        # Ticks waiting for a whole row group per DuckDB thread (bounded: under one insert).
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._insert_rows = ROW_GROUP_ROWS * min(max(1, target._threads), MAX_INSERT_ROW_GROUPS)
        # Within the ingest's memory: the writer's share, split between the captures open at once.
        memory = target.memory
        self._insert_bytes = memory.writer_bytes // 2 if memory is not None else None
        if force:
            # Inside this transaction, so the old rows go only if the new ones arrive.
            for table in ("ticks", "bad_packets", tick_summary.TABLE, "captures"):
                self.cur.execute(f"DELETE FROM {table} WHERE file_id = ?", [file_id])

    def add_ticks(self, ticks: pa.Table) -> None:
        if not ticks.num_rows:
            return
        table = base.conform_ticks(ticks)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_rows >= self._insert_rows or (
            self._insert_bytes is not None and self._pending_bytes >= self._insert_bytes
        ):
            self._insert_pending(final=False)

    def _insert_pending(self, *, final: bool) -> None:
        """Insert the buffered ticks: whole row groups, or everything when ``final``."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        keep = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        if keep == 0:  # over the byte budget before a whole row group: insert what there is
            keep = table.num_rows
        rest = table.slice(keep)
        self._pending, self._pending_rows = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
        self._pending_bytes = rest.nbytes if rest.num_rows else 0
        # One record batch per row group: each DuckDB thread takes whole row groups.
        batches = table.slice(0, keep).combine_chunks().to_batches(max_chunksize=ROW_GROUP_ROWS)
        del table  # the buffered batches go now (``rest`` keeps only the last one)
        table = pa.Table.from_batches(batches, schema.TICK_SCHEMA)
        if self.target._tick_order != schema.TICK_SCHEMA.names:  # a migrated older table
            table = table.select(self.target._tick_order)
        self.cur.from_arrow(table).insert_into("ticks")

    def add_bad(self, bad: Sequence) -> None:
        if not bad:
            return
        self.cur.from_arrow(base.bad_packets_table(self.file_id, bad)).insert_into("bad_packets")

    def commit(self, record: CaptureRecord) -> None:
        if record.file_id != self.file_id:
            raise ValueError("capture record of another file")
        cur = self.cur
        try:
            self._insert_pending(final=True)
            there = cur.execute("SELECT count(*) FROM captures WHERE file_id = ?", [self.file_id]).fetchall()[0][0]
            if there:
                raise AlreadyIngested(self.file_id)
            with _arrow_view(cur, base.captures_table(record)) as row:
                cur.execute(f"INSERT INTO captures SELECT * FROM {row}")
            # The capture's summary, from its ticks as this transaction sees them.
            cur.execute(f"INSERT INTO {tick_summary.TABLE} "
                        f"{tick_summary.summary_sql('ticks', where='file_id = $file_id')}", {"file_id": self.file_id})
            cur.execute("COMMIT")
        except BaseException:
            self.abort()
            raise
        self._finish()

    def abort(self) -> None:
        if self.done:
            return
        try:
            self.cur.execute("ROLLBACK")
        except duckdb.Error:
            log.debug("rollback of %s failed (transaction already gone)", self.file_id, exc_info=True)
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        try:
            self.cur.close()
        except duckdb.Error:
            pass
        if self in self.target._open_writes:
            self.target._open_writes.remove(self)

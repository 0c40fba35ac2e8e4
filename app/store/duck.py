"""The DuckDB file target: tables ticks, captures, bad_packets, instruments, unknown_tokens.

Each capture is one DuckDB transaction on its own cursor (connection to the same
database), holding its ticks, bad packets and ``captures`` row; DuckDB's WAL makes a
crash, kill -9 or cancel leave the whole capture or none of it. Several capture
transactions may be open at once (the single writer thread interleaves their
batches); they only append, so they never conflict. ``ticks`` has no key: the
``captures`` row is what makes a capture count, and a capture already there is
skipped inside the same transaction.

Paths and names from inputs only ever reach SQL as parameters.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import duckdb
import pyarrow as pa

from app.core import schema
from app.errors import InputError, TargetLockedError
from app.store import base
from app.store.base import (
    BAD_PACKETS_SCHEMA,
    CAPTURES_SCHEMA,
    AlreadyIngested,
    CaptureRecord,
    CaptureWrite,
    Target,
)

log = logging.getLogger(__name__)

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
    ingested_at TIMESTAMPTZ
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
            if not read_only:
                self._create_tables()
        except BaseException:
            base._release(self._claim)
            self._claim = None
            raise
        self._open_writes: list[_DuckCaptureWrite] = []

    def _create_tables(self) -> None:
        con = self.con
        con.execute("BEGIN")
        empty_ticks = schema.TICK_SCHEMA.empty_table()  # noqa: F841 - read by DuckDB
        con.execute("CREATE TABLE IF NOT EXISTS ticks AS SELECT * FROM empty_ticks")
        con.execute(_CAPTURES_DDL)
        con.execute(_BAD_DDL)
        con.execute("COMMIT")
        self._check_ticks_schema()

    def _check_ticks_schema(self) -> None:
        columns = [r[0] for r in self.con.execute("DESCRIBE ticks").fetchall()]
        if columns != schema.TICK_SCHEMA.names:
            raise InputError(
                f"{self.path} holds a ticks table of another layout ({len(columns)} columns); "
                "choose another --target"
            )

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

    def tune_for_ingest(self, decoder_threads: Optional[int]) -> None:
        # DuckDB's own insert threads compete with the decoder threads for the same cores
        # (measured on 2 cores: one DuckDB thread beside 2 decoders was faster than two).
        if decoder_threads is None:
            self.con.execute("RESET threads")
        else:
            threads = max(1, (os.cpu_count() or 2) - decoder_threads)
            self.con.execute(f"SET threads = {int(threads)}")

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
        return self.con.sql("SELECT * FROM captures ORDER BY ingested_at, file_id").to_arrow_table().cast(CAPTURES_SCHEMA)

    def ticks(self, columns: Optional[Sequence[str]] = None) -> pa.Table:
        names = list(columns) if columns else schema.TICK_SCHEMA.names
        unknown = set(names) - set(schema.TICK_SCHEMA.names)
        if unknown:
            raise ValueError(f"no such tick columns: {sorted(unknown)}")
        select = ", ".join(f'"{n}"' for n in names)  # names checked against the schema above
        table = self.con.sql(f"SELECT {select} FROM ticks ORDER BY file_id, msg_seq, pkt_seq").to_arrow_table()
        return table.cast(pa.schema([schema.TICK_SCHEMA.field(n) for n in names]))

    def bad_packets(self) -> pa.Table:
        return self.con.sql('SELECT * FROM bad_packets ORDER BY file_id, "offset"').to_arrow_table().cast(BAD_PACKETS_SCHEMA)

    def instruments(self) -> pa.Table:
        if not self._has_table("instruments"):
            return pa.table({})
        return self.con.sql("SELECT * FROM instruments").to_arrow_table()

    def unresolved_aggregate(self) -> pa.Table:
        table = self.con.sql(_UNRESOLVED_SQL).to_arrow_table()
        return table.cast(base.UNRESOLVED_AGGREGATE_SCHEMA)

    def unknown_tokens(self) -> pa.Table:
        if not self._has_table("unknown_tokens"):
            from app.core.unknown import UNKNOWN_SCHEMA

            return UNKNOWN_SCHEMA.empty_table()
        return self.con.sql("SELECT * FROM unknown_tokens").to_arrow_table()

    # -- writing ----------------------------------------------------------------

    def begin(self, file_id: str, *, force: bool = False) -> "_DuckCaptureWrite":
        self._writable()
        write = _DuckCaptureWrite(self, base.check_file_id(file_id), force)
        self._open_writes.append(write)
        return write

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("target opened read-only")

    def record_instruments(self, table: pa.Table) -> None:
        self._writable()
        if table.num_rows == 0:
            return
        stored_masters = table  # noqa: F841 - read by DuckDB
        keys = base.master_keys(table)  # noqa: F841 - read by DuckDB
        con = self.con
        con.execute("BEGIN")
        try:
            if not self._has_table("instruments"):
                con.execute("CREATE TABLE instruments AS SELECT * FROM stored_masters LIMIT 0")
            key_cols = keys.column_names
            join = " AND ".join(f'i."{c}" IS NOT DISTINCT FROM k."{c}"' for c in key_cols)
            con.execute(f"DELETE FROM instruments i WHERE EXISTS (SELECT 1 FROM keys k WHERE {join})")
            con.execute("INSERT INTO instruments BY NAME SELECT * FROM stored_masters")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _store_unknown(self, table: pa.Table) -> None:
        self._writable()
        con = self.con
        explained = table  # noqa: F841 - read by DuckDB
        con.execute("BEGIN")
        try:
            con.execute("CREATE OR REPLACE TABLE unknown_tokens AS SELECT * FROM explained")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def resolve(self, book) -> int:
        self._writable()
        con = self.con
        pairs = con.sql(
            "SELECT DISTINCT instrument_token, trading_date FROM ticks WHERE NOT resolved"
        ).to_arrow_table()
        mapping = base.resolution_map(book, pairs)  # noqa: F841 - read by DuckDB
        updated = 0
        con.execute("BEGIN")
        try:
            if mapping.num_rows:
                sets = ", ".join(f'"{n}" = m."{n}"' for n in schema.ENRICHMENT_SCHEMA.names)
                updated = con.execute(
                    f"""UPDATE ticks SET {sets} FROM mapping m
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
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return int(updated)


class _DuckCaptureWrite(CaptureWrite):
    def __init__(self, target: DuckDBTarget, file_id: str, force: bool):
        self.target = target
        self.file_id = file_id
        self.force = force
        self.cur = target.con.cursor()
        self.cur.execute("SET TimeZone = 'UTC'")
        self.cur.execute("BEGIN")
        self.done = False
        if force:
            # Inside this transaction, so the old rows go only if the new ones arrive.
            for table in ("ticks", "bad_packets", "captures"):
                self.cur.execute(f"DELETE FROM {table} WHERE file_id = ?", [file_id])

    def add_ticks(self, ticks: pa.Table) -> None:
        batch = base.conform_ticks(ticks)  # noqa: F841 - read by DuckDB
        self.cur.execute("INSERT INTO ticks SELECT * FROM batch")

    def add_bad(self, bad: Sequence) -> None:
        if not bad:
            return
        bad_rows = base.bad_packets_table(self.file_id, bad)  # noqa: F841 - read by DuckDB
        self.cur.execute("INSERT INTO bad_packets SELECT * FROM bad_rows")

    def commit(self, record: CaptureRecord) -> None:
        if record.file_id != self.file_id:
            raise ValueError("capture record of another file")
        cur = self.cur
        try:
            there = cur.execute("SELECT count(*) FROM captures WHERE file_id = ?", [self.file_id]).fetchall()[0][0]
            if there:
                raise AlreadyIngested(self.file_id)
            capture_row = record.to_table()  # noqa: F841 - read by DuckDB
            cur.execute("INSERT INTO captures SELECT * FROM capture_row")
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
        try:
            self.cur.close()
        except duckdb.Error:
            pass
        if self in self.target._open_writes:
            self.target._open_writes.remove(self)

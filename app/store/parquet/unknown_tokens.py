"""The unknown tokens of a Parquet dataset: the unresolved aggregate, and the explained
table ``unknown_tokens/unknown_tokens.parquet``, rebuilt when its generations show it stale."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq

from app.store import base
from app.store.parquet.layout import (
    UNKNOWN_FROM_CAPTURES,
    UNKNOWN_FROM_INSTRUMENTS,
    _replace_atomically,
    _with_metadata,
)

log = logging.getLogger(__name__)


class UnknownTokensFile:
    """``ParquetTarget``'s unknown tokens (one of its bases)."""

    def unresolved_aggregate(self) -> pa.Table:
        from app.store.duck import _UNRESOLVED_SQL

        files = self._tick_files()
        if not files:
            return base.UNRESOLVED_AGGREGATE_SCHEMA.empty_table()
        con = self._sql()
        try:
            # A private in-memory database: these names cannot meet a user's tables. DuckDB
            # reads the parts itself (only the columns the query needs, within its
            # memory_limit), not through a pyarrow dataset whose read-ahead it cannot bound.
            con.sql("SELECT * FROM read_parquet($files, hive_partitioning = true, hive_types = {'trading_date': DATE})",
                    params={"files": files}).create_view("ticks")
            con.register("captures", self.captures())
            table = con.sql(_UNRESOLVED_SQL).to_arrow_table()
        finally:
            con.close()
        return table.cast(base.UNRESOLVED_AGGREGATE_SCHEMA)

    def unknown_tokens(self) -> pa.Table:
        """The stored table, or rebuilt (and stored, when writable) if it is stale."""
        path = self.path / "unknown_tokens" / "unknown_tokens.parquet"
        stored = None
        try:
            stored = pq.read_table(path) if path.is_file() else None
        except (OSError, pa.ArrowException) as err:
            log.warning("rebuilding unreadable %s: %s", path, err)
        if stored is not None and self._unknown_is_current(stored.schema):
            return stored.replace_schema_metadata(None)
        if stored is None and self._captures.num_rows == 0:
            from app.core.unknown import UNKNOWN_SCHEMA

            return UNKNOWN_SCHEMA.empty_table()
        log.info("unknown_tokens of %s is stale (an interrupted run); rebuilding it", self.path)
        if self.read_only:
            from app.core.unknown import explain_unknown

            return explain_unknown(self.unresolved_aggregate(), self.stored_book())
        return self.rebuild_unknown_tokens()

    def _unknown_is_current(self, stored_schema: pa.Schema) -> bool:
        meta = stored_schema.metadata or {}
        built_from = (meta.get(UNKNOWN_FROM_CAPTURES, b"").decode(), meta.get(UNKNOWN_FROM_INSTRUMENTS, b"").decode())
        return built_from == (self._captures_generation or "", self._instruments_generation() or "")

    def _store_unknown(self, table: pa.Table) -> None:
        self._writable()
        built_from = {
            UNKNOWN_FROM_CAPTURES: (self._captures_generation or "").encode(),
            UNKNOWN_FROM_INSTRUMENTS: (self._instruments_generation() or "").encode(),
        }
        _replace_atomically(_with_metadata(table, built_from), self.path / "unknown_tokens" / "unknown_tokens.parquet",
                            self.session)

    def _stored_unknown(self) -> pa.Table | None:
        path = self.path / "unknown_tokens" / "unknown_tokens.parquet"
        try:
            return pq.read_table(path) if path.is_file() else None
        except (OSError, pa.ArrowException):
            return None

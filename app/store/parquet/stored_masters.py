"""The stored instrument masters of a Parquet dataset: ``instruments/instruments.parquet``."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.store.parquet.layout import (
    MASTER_CATALOG_KEY,
    _generation,
    _replace_atomically,
    _with_generation,
    _with_metadata,
)

log = logging.getLogger(__name__)


class StoredMastersFile:
    """``ParquetTarget``'s stored masters (one of its bases)."""

    # -- stored masters: instruments/instruments.parquet holds the rows with their validity
    #    (masters.ROWS_SCHEMA) and, in its metadata, the catalog: one file replaced atomically.
    #    Before intervals it held every master's rows (INSTRUMENTS_SCHEMA): migrated at open.

    def _masters_path(self) -> Path:
        return self.path / "instruments" / "instruments.parquet"

    def _masters_schema(self) -> pa.Schema | None:
        path = self._masters_path()
        return pq.read_schema(path) if path.is_file() else None

    def _is_legacy(self, schema_: pa.Schema | None) -> bool:
        return schema_ is not None and MASTER_CATALOG_KEY not in (schema_.metadata or {})

    def master_catalog(self) -> pa.Table:
        from app.store import masters as store

        schema_ = self._masters_schema()
        if schema_ is None:
            return store.CATALOG_SCHEMA.empty_table()
        if self._is_legacy(schema_):  # a read-only target of the layout before intervals
            return self._legacy_masters()[0]
        # The footer only: the rows are not read.
        return pa.ipc.open_stream(schema_.metadata[MASTER_CATALOG_KEY]).read_all().cast(store.CATALOG_SCHEMA)

    def master_rows(self) -> pa.Table:
        from app.store import masters as store

        schema_ = self._masters_schema()
        if schema_ is None:
            return store.ROWS_SCHEMA.empty_table()
        if self._is_legacy(schema_):
            return self._legacy_masters()[1]
        return pq.read_table(self._masters_path()).replace_schema_metadata(None).cast(store.ROWS_SCHEMA)

    def master_rows_of(self, lane: int, date) -> pa.Table:
        from app.store import masters as store

        if self._is_legacy(self._masters_schema()) or self._masters_schema() is None:
            return super().master_rows_of(lane, date)
        if date is None:
            table = pq.read_table(self._masters_path(), filters=pc.and_(pc.field("lane") == lane,
                                                                         pc.field("valid_from").is_null()))
        else:
            d = pa.scalar(date, pa.date32())
            table = pq.read_table(self._masters_path(), filters=(pc.field("lane") == lane)
                                  & (pc.field("valid_from") <= d) & (pc.field("valid_to") >= d))
        return table.replace_schema_metadata(None).cast(store.ROWS_SCHEMA)

    def _legacy_masters(self):
        from app.store import masters as store

        return store.from_legacy(pq.read_table(self._masters_path()).replace_schema_metadata(None))

    def _migrate_instruments(self) -> None:
        if self._is_legacy(self._masters_schema()):
            catalog, rows = self._legacy_masters()
            self._replace_masters(catalog, rows)
            log.info("migrated %d stored masters of %s to validity intervals", catalog.num_rows, self.path)

    def _instruments_generation(self) -> str | None:
        schema_ = self._masters_schema()
        return _generation(schema_) if schema_ is not None else None

    def _replace_masters(self, catalog: pa.Table, rows: pa.Table) -> None:
        from app.store import masters as store

        self._writable()
        # One file, replaced atomically: the rows, with the catalog in its metadata.
        rows = rows.cast(store.ROWS_SCHEMA)
        if rows.num_rows:
            # Sorted by token: a lookup of a few tokens reads few pages (statistics).
            rows = rows.take(pc.sort_indices(rows, [("instrument_token", "ascending"), ("lane", "ascending")]))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, store.CATALOG_SCHEMA) as writer:
            writer.write_table(catalog.cast(store.CATALOG_SCHEMA))
        table = _with_metadata(_with_generation(rows, secrets.token_hex(8)),
                               {MASTER_CATALOG_KEY: sink.getvalue().to_pybytes()})
        _replace_atomically(table, self._masters_path(), self.session)

"""The tick summary parts of a Parquet dataset (``app.store.summary``): one per capture,
listed among its parts and committed with them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from app.store import journal
from app.store import summary as tick_summary
from app.store.parquet.layout import MANIFEST_PART_FIELDS, _write_through

log = logging.getLogger(__name__)


class TickSummaries:
    """``ParquetTarget``'s tick summary parts (one of its bases)."""

    def summary_parts(self) -> tuple[list[str], set[str]]:
        """The committed captures' summary part files, and the captures that have none
        (a dataset an older Tickscope wrote, not opened for writing since)."""
        files, lacking = [], set()
        for fid, parts in zip(self._captures["file_id"].to_pylist(), self._captures["parts"].to_pylist(), strict=True):
            mine = [rel for rel in parts or [] if rel.startswith(f"{tick_summary.FOLDER}/")]
            if mine:
                files += [str(self.path / rel) for rel in mine]
            else:
                lacking.add(fid)
        return sorted(files), lacking

    def _summarize(self, files: Sequence[Path]) -> pa.Table:
        """The tick summary of these tick part files (DuckDB reads only the columns it needs)."""
        if not files:
            return tick_summary.SUMMARY_SCHEMA.empty_table()
        con = self._sql()
        try:
            rel = con.sql("SELECT * FROM read_parquet($files, hive_partitioning = true, "
                          "hive_types = {'trading_date': DATE}, union_by_name = true)",
                          params={"files": [str(f) for f in files]})
            rel.create_view("ticks")
            sql = tick_summary.summary_sql("ticks", has_suspect="suspect_reason" in rel.columns)
            return tick_summary.conform(con.sql(sql).to_arrow_table())
        finally:
            con.close()

    def _stage_summary(self, file_id: str, tick_files: Sequence[Path], write_id: str) -> tuple[str, int]:
        """Summarize a capture's tick parts into a staged summary part (``write_id``
        recorded): its published name (relative) and rows. A commit publishes it."""
        rel = _summary_name(file_id[:16], write_id)
        table = self._summarize(tick_files)
        staged = self.path / journal.staged_name(rel)
        staged.parent.mkdir(parents=True, exist_ok=True)
        _write_through(table, journal.temporary_part(staged.parent, Path(rel).name), staged)
        return rel, table.num_rows

    def _add_missing_summaries(self) -> None:
        """Give every capture without a summary part one, from its ticks, in one commit
        (a dataset written before summaries). A capture whose parts are damaged is left
        as it is: verify reports it, and re-ingesting it writes its summary."""
        _, lacking = self.summary_parts()
        if not lacking:
            return
        damaged = self.damaged_captures()  # app.store.parquet.integrity
        write_id = journal.new_id()
        self.record_write_id(write_id, elsewhere=False)
        rows, staged = [], []
        try:
            for i in range(self._captures.num_rows):
                record = self._captures.slice(i, 1)
                fid = record["file_id"][0].as_py()
                if fid in lacking and fid not in damaged:
                    lists = {f.name: record[f.name][0].as_py() or [] for f in MANIFEST_PART_FIELDS}
                    ticks = [self.path / rel for rel in lists["parts"] if rel.startswith("ticks/")]
                    rel, _ = self._stage_summary(fid, ticks, write_id)
                    staged.append(rel)
                    _set_summary_entry(lists, rel, journal.part_fingerprint(self.path / journal.staged_name(rel)))
                    for f in MANIFEST_PART_FIELDS:
                        record = record.set_column(record.schema.get_field_index(f.name), f.name,
                                                   pa.array([lists[f.name]], f.type))
                rows.append(record)
            if staged:
                self._commit(pa.concat_tables(rows), publish=[(journal.staged_name(r), r) for r in staged],
                             unpublish=[])
                log.info("wrote the tick summary of %d captures of %s", len(staged), self.path)
        except BaseException:
            pending = self._pending_staged()
            for rel in staged:
                if journal.staged_name(rel) not in pending:
                    (self.path / journal.staged_name(rel)).unlink(missing_ok=True)
            raise


def _summary_name(fid16: str, write_id: str) -> str:
    return f"{tick_summary.FOLDER}/summary-{fid16}-{write_id}.parquet"


def _set_summary_entry(lists: dict, rel: str, fingerprint: tuple[int, int, str]) -> None:
    """Put summary part ``rel`` in a manifest row's part lists, in place of its old one."""
    size, rows, footer = fingerprint
    at = next((i for i, p in enumerate(lists["parts"]) if p.startswith(f"{tick_summary.FOLDER}/")), None)
    if at is None:
        for name in ("parts", "part_rows", "part_bytes", "part_footers"):
            lists[name].append(None)
        at = len(lists["parts"]) - 1
    for name, value in zip(("parts", "part_rows", "part_bytes", "part_footers"), (rel, rows, size, footer),
                           strict=True):
        lists[name][at] = value

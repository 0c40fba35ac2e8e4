"""Resolve on a Parquet dataset: tick parts naming newly resolvable instruments are
rewritten under new names and switched in by one commit; a part is never replaced."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.core import schema
from app.store import base, journal
from app.store import summary as tick_summary
from app.store.journal import fsync_file
from app.store.parquet.layout import (
    MANIFEST_PART_FIELDS,
    NULL_PARTITION,
    PART_OPTIONS,
    PART_SCHEMA,
    ROW_GROUP_ROWS,
)
from app.store.parquet.summaries import _set_summary_entry, _summary_name


class ResolveRewrite:
    """``ParquetTarget.resolve`` (one of its bases)."""

    def resolve(self, book) -> int:
        self._writable()
        con = self._sql()
        try:
            con.register("ticks", self.tick_dataset())
            pairs = con.sql(
                "SELECT DISTINCT instrument_token, trading_date FROM ticks WHERE NOT resolved"
            ).to_arrow_table()
        finally:
            con.close()
        mapping = base.resolution_map(book, pairs)
        if mapping.num_rows == 0:
            return 0
        write_id = self._resolve_write_id()
        self.record_write_id(write_id, elsewhere=False)
        resolved_total = 0
        new_rows, staged = [], []
        try:
            for i in range(self._captures.num_rows):
                record = self._captures.slice(i, 1)
                if record["unresolved_ticks"][0].as_py() == 0:
                    continue
                lists = {f.name: record[f.name][0].as_py() for f in MANIFEST_PART_FIELDS}
                changed_any, still_unresolved = False, 0
                for at, rel in enumerate(list(lists["parts"])):
                    if not rel.startswith("ticks/"):
                        continue
                    new_rel = _resolved_name(rel, write_id, at)
                    result = _rewrite_part(self.path, rel, mapping, new_rel)
                    if result is None:
                        still_unresolved += _count_unresolved(self.path / rel)
                        continue
                    named, unresolved = result
                    staged.append(new_rel)
                    size, rows, footer = journal.part_fingerprint(self.path / journal.staged_name(new_rel))
                    for name, value in zip(("parts", "part_rows", "part_bytes", "part_footers"),
                                           (new_rel, rows, size, footer), strict=True):
                        lists[name][at] = value
                    changed_any = True
                    resolved_total += named
                    still_unresolved += unresolved
                if changed_any:
                    # Its summary again, from its tick parts as this commit leaves them.
                    fid = record["file_id"][0].as_py()
                    ticks = [self.path / (journal.staged_name(rel) if rel in staged else rel)
                             for rel in lists["parts"] if rel.startswith("ticks/")]
                    summary_rel, _ = self._stage_summary(fid, ticks, write_id)
                    staged.append(summary_rel)
                    _set_summary_entry(lists, summary_rel, journal.part_fingerprint(
                        self.path / journal.staged_name(summary_rel)))
                    for f in MANIFEST_PART_FIELDS:
                        record = record.set_column(record.schema.get_field_index(f.name), f.name,
                                                   pa.array([lists[f.name]], f.type))
                    record = record.set_column(
                        record.schema.get_field_index("unresolved_ticks"),
                        "unresolved_ticks",
                        pa.array([still_unresolved], pa.int64()),
                    )
                    new_rows.append(record)
            if new_rows:
                changed = pa.concat_tables(new_rows)
                old = self._captures.filter(pc.is_in(self._captures["file_id"], changed["file_id"]))
                old_parts = set(old["parts"].combine_chunks().flatten().to_pylist())
                new_parts = set(changed["parts"].combine_chunks().flatten().to_pylist())
                others = self._captures.filter(pc.invert(pc.is_in(self._captures["file_id"], changed["file_id"])))
                # One commit for every capture touched: resolve is all or nothing.
                self._commit(
                    pa.concat_tables([others, changed]),
                    publish=[(journal.staged_name(rel), rel) for rel in staged],
                    unpublish=sorted(old_parts - new_parts),
                )
        except BaseException:
            for rel in staged:
                (self.path / journal.staged_name(rel)).unlink(missing_ok=True)
            raise
        return resolved_total

    def _resolve_write_id(self) -> str:
        """A write id whose rewritten names meet no part listed or on disk: a part is never
        replaced (that could destroy a file a capture still lists)."""
        listed = self._referenced()
        for _ in range(16):
            write_id = _new_write_id()
            taken = False
            for parts in self._captures["parts"].to_pylist():
                for at, rel in enumerate(parts or []):
                    if rel.startswith(("ticks/", f"{tick_summary.FOLDER}/")):
                        new_rel = (_resolved_name(rel, write_id, at) if rel.startswith("ticks/")
                                   else _summary_name(rel.split("-")[1], write_id))
                        if new_rel in listed or (self.path / new_rel).exists():
                            taken = True
                            break
                if taken:
                    break
            if not taken:
                return write_id
        raise RuntimeError("no free write id for resolved parts")


def _new_write_id() -> str:
    return secrets.token_hex(4)


def _resolved_name(rel: str, write_id: str, position: int) -> str:
    """The name a rewritten part gets: the capture's rule, a new write id, its position."""
    folder, _, name = rel.rpartition("/")
    fid16 = name.split("-")[1]
    return f"{folder}/part-{fid16}-{write_id}-{position}.parquet"


def _count_unresolved(path: Path) -> int:
    column = pq.read_table(path, columns=["resolved"])["resolved"]
    return int(pc.sum(pc.invert(pc.fill_null(column, False))).as_py() or 0)


def _partition_date(rel: str) -> dt.date | None:
    folder = rel.split("/")[1]  # trading_date=...
    value = folder.split("=", 1)[1]
    return None if value == NULL_PARTITION else dt.date.fromisoformat(value)


def _rewrite_part(root: Path, rel: str, mapping: pa.Table, new_rel: str):
    """Rewrite one part with ticks the mapping names, staged for ``new_rel``; None if it
    names none of them.

    Returns (ticks named, ticks still unresolved). The new part is complete and staged
    when this returns; the caller's commit publishes it.
    """
    date = _partition_date(rel)
    date_mask = (
        pc.is_null(mapping["trading_date"]) if date is None else pc.equal(mapping["trading_date"], pa.scalar(date,
                                                                                                             pa.date32()))
    )
    date_map = mapping.filter(pc.fill_null(date_mask, False))
    if date_map.num_rows == 0:
        return None
    tokens = date_map["instrument_token"].combine_chunks()
    source = pq.ParquetFile(root / rel)
    folder = root / Path(new_rel).parent
    tmp = journal.temporary_part(folder, Path(new_rel).name)
    named = unresolved = 0
    writer = None
    try:
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            index = pc.index_in(table["instrument_token"], value_set=tokens)
            update = pc.and_(pc.invert(pc.fill_null(table["resolved"], False)), pc.is_valid(index))
            hits = int(pc.sum(update).as_py() or 0)
            if hits:
                take = pc.fill_null(index, 0)
                for column in schema.ENRICHMENT_SCHEMA.names:
                    fresh = date_map[column].combine_chunks().take(take)
                    at = table.schema.get_field_index(column)
                    table = table.set_column(at, column, pc.if_else(update, fresh, table[column]))
            named += hits
            unresolved += int(pc.sum(pc.invert(pc.fill_null(table["resolved"], False))).as_py() or 0)
            if writer is None:
                writer = pq.ParquetWriter(tmp, PART_SCHEMA, **PART_OPTIONS)
            writer.write_table(table.cast(PART_SCHEMA), row_group_size=ROW_GROUP_ROWS)
        if writer is not None:
            writer.close()
            writer = None
        if named == 0:
            tmp.unlink(missing_ok=True)
            return None
        fsync_file(tmp)
        os.replace(tmp, root / journal.staged_name(new_rel))
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return named, unresolved

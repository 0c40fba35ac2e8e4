"""The manifest and its commits: how captures become, and stop being, part of the dataset.

Commit protocol (``app.store.journal``): parts are written under private names
(``.part-….parquet.staged``, which README's glob ``ticks/*/part-*.parquet`` never
matches) and published by rename only inside a commit, whose journal record is the commit
point; ``captures/captures.parquet`` (the manifest) lists every committed capture with
its parts, their row counts, sizes and footer fingerprints. A --force replacement
unpublishes the old parts before publishing the new ones, so a reader globbing the folder
may miss a capture for a moment but never sees it twice. Recovery at the next open for
writing finishes an interrupted commit from the journal and deletes only private files
whose names carry a session or write id the journal recorded; anything else in the
folders stays (``verify`` reports it). File names come only from file ids (sha256 hex),
random write ids and dates, never from input paths.
"""

from __future__ import annotations

import errno
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.store import base, journal
from app.store.base import AlreadyIngested, CaptureRecord
from app.store.journal import JournalError
from app.store.parquet.layout import (
    MANIFEST_PART_FIELDS,
    PARQUET_CAPTURES_SCHEMA,
    WRITE_OPTIONS,
    _generation,
    _with_generation,
)

log = logging.getLogger(__name__)


class ManifestCommits:
    """``ParquetTarget``'s manifest (``captures/captures.parquet``, held as ``_captures``) and
    its commits through the target's journal (one of ParquetTarget's bases)."""

    def _read_captures(self) -> pa.Table:
        path = self.path / "captures" / "captures.parquet"
        if not path.is_file():
            self._captures_generation = None
            return PARQUET_CAPTURES_SCHEMA.empty_table()
        try:
            table = pq.read_table(path)
            self._captures_generation = _generation(table.schema)
            if "part_footers" not in table.column_names:
                table = self._fingerprint_legacy(table)
            return base.with_columns_of(table, PARQUET_CAPTURES_SCHEMA).cast(PARQUET_CAPTURES_SCHEMA)
        except (OSError, pa.ArrowException, ValueError, KeyError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise base.UnreadableTarget(
                f"{self.path} is not a readable Tickscope dataset: captures/captures.parquet: {reason}"
            ) from None

    def _fingerprint_legacy(self, table: pa.Table) -> pa.Table:
        """A version-1 manifest lists parts only: fingerprint them as they are now.

        Parts missing or unreadable get null entries, which ``verify`` reports (and which
        make the next ingest of that capture re-ingest it).
        """
        rows, sizes, footers = [], [], []
        for parts in table["parts"].to_pylist():
            r, b, f = [], [], []
            for rel in parts or []:
                try:
                    size, n, footer = journal.part_fingerprint(self.path / rel)
                except (OSError, ValueError):
                    size = n = footer = None
                r.append(n)
                b.append(size)
                f.append(footer)
            rows.append(r)
            sizes.append(b)
            footers.append(f)
        table = table.append_column("part_rows", pa.array(rows, pa.list_(pa.int64())))
        table = table.append_column("part_bytes", pa.array(sizes, pa.list_(pa.int64())))
        return table.append_column("part_footers", pa.array(footers, pa.list_(pa.string())))

    def _commit(self, table: pa.Table, *, publish: Sequence[tuple[str, str]], unpublish: Sequence[str]) -> None:
        """One commit: ``table`` becomes the manifest, ``publish`` (staged, published) parts
        appear and ``unpublish`` parts go, all or nothing (see ``app.store.journal``).

        Everything before the journal record can fail and leaves the dataset as it was
        (the caller deletes its staged files); after it, the commit stands: a failure to
        apply it is finished by the next commit or the next open.
        """
        self._writable()
        with self._mutex:
            pending = self._journal.pending()
            if pending is not None:  # an earlier commit this session could not finish
                self._journal.apply(pending)
            for _, published in publish:
                if published not in unpublish and (self.path / published).exists():
                    raise FileExistsError(errno.EEXIST, "a part of that name exists; not replaced", published)
            generation = secrets.token_hex(8)
            manifest = self.path / "captures" / f".captures.parquet.{self.session}-{secrets.token_hex(4)}.staged"
            manifest.parent.mkdir(parents=True, exist_ok=True)
            try:
                pq.write_table(_with_generation(table.cast(PARQUET_CAPTURES_SCHEMA), generation), manifest,
                               **WRITE_OPTIONS)
                journal.fsync_file(manifest)
                record = self._journal.commit(
                    manifest_staged=manifest.relative_to(self.path).as_posix(),
                    publish=publish, unpublish=unpublish,
                )
            except BaseException:
                manifest.unlink(missing_ok=True)
                raise
            # The commit point has passed.
            self._captures = table.cast(PARQUET_CAPTURES_SCHEMA)
            self._captures_generation = generation
            try:
                self._journal.apply(record)
            except OSError:
                log.warning("a commit to %s is finished at its next commit or open", self.path, exc_info=True)

    def _pending_staged(self) -> set[str]:
        """Staged files a commit record still needs (never deleted by an abort)."""
        try:
            record = self._journal.pending() if self._journal is not None else None
        except JournalError:
            return set()
        return {staged for staged, _ in record.get("publish", [])} if record else set()

    def _staged_fingerprints(self, part_rows: dict[str, int]) -> tuple[list, list, list]:
        """(rows, bytes, footers) of staged parts, checking each holds the rows reported."""
        rows, sizes, footers = [], [], []
        for rel, expected in part_rows.items():
            staged = self.path / journal.staged_name(rel)
            try:
                size, found, footer = journal.part_fingerprint(staged)
            except (OSError, ValueError) as err:
                raise ValueError(f"part {rel} is missing or unreadable in {self.path}: {err}") from None
            if found != expected:
                raise ValueError(f"part {rel} holds {found:,} rows, its writer reported {expected:,}")
            rows.append(found)
            sizes.append(size)
            footers.append(footer)
        return rows, sizes, footers

    def _commit_capture(self, record: CaptureRecord, part_rows: dict[str, int], *, force: bool) -> None:
        """Commit one capture whose parts are staged (``part_rows``: published name -> rows)."""
        file_id = record.file_id
        existing = self._captures.filter(pc.equal(self._captures["file_id"], file_id))
        if existing.num_rows and not force:
            raise AlreadyIngested(file_id)
        rows, sizes, footers = self._staged_fingerprints(part_rows)
        # The capture's tick summary, from its staged tick parts: committed with them,
        # named with their write id (recorded already), or a new one when there are none.
        write_id = next((m.group("wid") for m in (journal.PART_NAME.match(Path(rel).name) or
                                                  journal.BAD_NAME.match(Path(rel).name) for rel in part_rows) if m),
                        None)
        if write_id is None:
            write_id = journal.new_id()
            self.record_write_id(write_id, elsewhere=False)
        ticks = [self.path / journal.staged_name(rel) for rel in part_rows if rel.startswith("ticks/")]
        summary_rel, _ = self._stage_summary(file_id, ticks, write_id)
        try:
            size, found, footer = journal.part_fingerprint(self.path / journal.staged_name(summary_rel))
            part_rows = {**part_rows, summary_rel: found}
            rows, sizes, footers = rows + [found], sizes + [size], footers + [footer]
            row = base.captures_table(record)
            for field, values in zip(MANIFEST_PART_FIELDS, (list(part_rows), rows, sizes, footers), strict=True):
                row = row.append_column(field, pa.array([values], field.type))
            old = existing["parts"].combine_chunks().flatten().to_pylist() if existing.num_rows else []
            others = self._captures.filter(pc.invert(pc.is_in(self._captures["file_id"], row["file_id"])))
            self._commit(
                pa.concat_tables([others, row.cast(PARQUET_CAPTURES_SCHEMA)]),
                publish=[(journal.staged_name(rel), rel) for rel in part_rows],
                unpublish=old,
            )
        except BaseException:
            staged = journal.staged_name(summary_rel)
            if staged not in self._pending_staged():
                (self.path / staged).unlink(missing_ok=True)
            raise

    def commit_parts(self, record: CaptureRecord, part_rows: dict[str, int], *, force: bool = False) -> None:
        """Commit a capture whose parts another process staged (``CapturePartsWriter.finish``).

        Each part must be one of this capture's part files, be staged, and hold the rows
        its writer reported: a part lost or cut short (a worker dying mid-write, storage
        not shared) raises ValueError and commits nothing, so the capture is retried whole
        instead of being stored with rows missing.
        """
        self._writable()
        file_id = base.check_file_id(record.file_id)
        if self._captures.filter(pc.equal(self._captures["file_id"], file_id)).num_rows and not force:
            raise AlreadyIngested(file_id)
        for rel in part_rows:
            name = Path(rel).name
            folder = Path(rel).parent.as_posix()
            ours = (
                (folder.startswith("ticks/trading_date=") and folder.count("/") == 1
                 and journal.PART_NAME.match(name) and name.startswith(f"part-{file_id[:16]}-"))
                or (folder == "bad_packets" and journal.BAD_NAME.match(name)
                    and name.startswith(f"bad-{file_id[:16]}-"))
            )
            if not ours or ".." in Path(rel).parts:
                raise ValueError(f"{rel} is not a part file of capture {file_id[:16]}")
        self._commit_capture(record, part_rows, force=force)

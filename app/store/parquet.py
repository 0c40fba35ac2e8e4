"""The Parquet dataset target: a folder other tools can read as it is.

Layout::

    T/tickscope-dataset.json                   marks the folder as ours (format version)
    T/.tickscope-lock                          held (flock) by the one process writing
    T/ticks/trading_date=YYYY-MM-DD/part-<file_id[:16]>-<write_id>-<n>.parquet
    T/ticks/trading_date=__HIVE_DEFAULT_PARTITION__/...   ticks without a trading date
    T/bad_packets/bad-<file_id[:16]>-<write_id>.parquet
    T/captures/captures.parquet                one row per committed capture (+ its parts)
    T/instruments/instruments.parquet          the masters used
    T/unknown_tokens/unknown_tokens.parquet    the explained unknown tokens

Tick files leave out ``trading_date``: hive partitioning supplies it, so
``duckdb.read_parquet('T/ticks/**/*.parquet', hive_partitioning=true)`` and
``pyarrow.dataset(..., partitioning='hive')`` read the folder as it is (zstd, row
groups of ~512K-1M rows, at most 128 MB, for scans).

Encoding Parquet is most of an ingest's work, so the target encodes on every core: each
capture's ticks go out in parts of one row group (~512K rows or 128 MB of data, ~35 MB
on disk), each part encoded by a pool thread while the writer buffers the next one; a bounded number of parts in
flight keeps memory bounded. The single writer still decides what counts: parts are
private temporary files until the capture's commit lists them. (The Dask engine's
workers write parts of up to four 1M-row groups in sequence: their cluster supplies the
parallelism.)

Crash safety: every file is written under a temporary name (``.*.tmp``, which
``*.parquet`` globs do not match) and renamed when complete. A capture counts only
once ``captures/captures.parquet`` (replaced atomically, written last) lists its
part files; readers through this API read exactly those. Leftovers of an
interrupted run (temporary files, parts no capture lists) are removed at the next
open for writing. File names come only from file ids (sha256 hex), random write
ids and dates, never from input paths.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Optional, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

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

MARKER = "tickscope-dataset.json"
LOCK = ".tickscope-lock"
FORMAT_VERSION = 1
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# Parquet captures carry the exact list of files that make up each capture.
PARQUET_CAPTURES_SCHEMA = CAPTURES_SCHEMA.append(pa.field("parts", pa.list_(pa.string())))
# What a tick part file holds: the tick schema without the partition column.
PART_SCHEMA = pa.schema([f for f in schema.TICK_SCHEMA if f.name != "trading_date"])
PARTITIONING = pads.partitioning(pa.schema([("trading_date", pa.date32())]), flavor="hive")

ROW_GROUP_ROWS = 1_000_000
ROW_GROUP_BYTES = 128 << 20
PART_ROW_GROUPS = 4  # row groups per part file before a new part starts
# Encoded in parallel (``PartEncoders``): one row group per part, so parts are independent.
PARALLEL_PART_ROWS = 512 << 10
MAX_ENCODER_THREADS = 4  # parts in flight (threads + 1) are what the pool holds in memory
# Dictionaries only for the repetitive text columns: on prices, sizes and depth lists they
# cost up to half the write time for little space (measured: +15% size, 1.1-1.8x faster).
DICTIONARY_COLUMNS = ["file_id", "mode", "tick_time_source", "tradingsymbol", "name", "exchange",
                      "instrument_segment", "instrument_type"]
WRITE_OPTIONS = dict(compression="zstd", compression_level=1, write_statistics=True)
PART_OPTIONS = dict(WRITE_OPTIONS, use_dictionary=DICTIONARY_COLUMNS)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # directory entries cannot be fsynced on Windows; rename is still atomic
    try:
        _fsync(path)
    except OSError:
        pass


def _replace_atomically(table: pa.Table, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}.tmp"
    try:
        pq.write_table(table, tmp, **WRITE_OPTIONS)
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _os_reason(err: OSError) -> str:
    reason = err.strerror or str(err) or type(err).__name__
    return f"{reason}: {err.filename}" if err.filename else reason


# Generations tie derived files to what they were computed from: captures.parquet and
# instruments.parquet get a fresh one whenever they are replaced, and unknown_tokens.parquet
# records the two it was built from. A run interrupted between those writes (resolve,
# ingest) leaves unknown_tokens stale, which a mismatch reveals; it is then rebuilt.
GENERATION_KEY = b"tickscope.generation"
UNKNOWN_FROM_CAPTURES = b"tickscope.captures_generation"
UNKNOWN_FROM_INSTRUMENTS = b"tickscope.instruments_generation"


def _generation(schema_: pa.Schema) -> Optional[str]:
    value = (schema_.metadata or {}).get(GENERATION_KEY)
    return value.decode() if value else None


def _with_metadata(table: pa.Table, extra: dict[bytes, bytes]) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})


def _with_generation(table: pa.Table, generation: str) -> pa.Table:
    return _with_metadata(table, {GENERATION_KEY: generation.encode()})


def _new_write_id() -> str:
    return secrets.token_hex(4)


def _publish_new(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final`` unless ``final`` exists (FileExistsError): never replaces a part."""
    try:
        os.link(tmp, final)  # fails if final exists, atomically
    except FileExistsError:
        raise
    except OSError:
        # No hard links on this filesystem (FAT, some shares): one writer per target, so
        # checking first is enough here.
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "part file exists", str(final)) from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


class _FileLock:
    """An exclusive, non-blocking lock on ``path`` for this open file (released on close/exit)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock()
        except BlockingIOError:
            pid = self._holder()
            os.close(self.fd)
            raise TargetLockedError(base.locked_message(path.parent, pid)) from None
        except BaseException:
            os.close(self.fd)
            raise
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def _lock(self) -> None:
        if os.name == "nt":
            import msvcrt

            try:
                msvcrt.locking(self.fd, msvcrt.LK_NBLCK, 1)
            except OSError as err:
                raise BlockingIOError(errno.EAGAIN, str(err)) from None
        else:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _holder(self) -> Optional[int]:
        try:
            text = self.path.read_text().strip()
            return int(text) if text.isdigit() else None
        except OSError:
            return None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class ParquetTarget(Target):
    kind = "parquet"

    def __init__(self, path: Path | str, *, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._lock: Optional[_FileLock] = None
        self._claim = None
        self._open_writes: list[_ParquetCaptureWrite] = []
        self._mutex = threading.Lock()
        self._encoders: Optional[PartEncoders] = None
        try:
            self._check_folder()
        except OSError as err:
            raise InputError(f"cannot use {self.path} as a Parquet dataset: {_os_reason(err)}") from None
        if not read_only:
            self._claim = base._claim(self.path)
        # Whatever fails from here releases the claim and the lock (close), so a retry in
        # this process is not told the target is "already open".
        try:
            if not read_only:
                try:
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._lock = _FileLock(self.path / LOCK)
                    marker = self.path / MARKER
                    if not marker.exists():
                        marker.write_text(json.dumps({"format": "tickscope-parquet", "version": FORMAT_VERSION}) + "\n")
                except OSError as err:
                    raise InputError(f"cannot use {self.path} as a Parquet dataset: {_os_reason(err)}") from None
            self._captures = self._read_captures()
            if not read_only:
                try:
                    self.cleanup()
                except OSError as err:
                    raise InputError(f"cannot tidy the Parquet dataset {self.path}: {_os_reason(err)}") from None
        except BaseException:
            self.close()
            raise

    def _check_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"target {self.path} is a file, not a dataset folder; use a .duckdb name or a folder")
        if self.read_only and not (self.path / MARKER).is_file():
            raise InputError(f"no Tickscope dataset at {self.path}; ingest into it first")
        if self.path.is_dir() and not (self.path / MARKER).is_file() and any(self.path.iterdir()):
            raise InputError(
                f"{self.path} is a folder that is not a Tickscope dataset; choose an empty or new folder"
            )

    def close(self) -> None:
        for write in list(getattr(self, "_open_writes", ())):
            write.abort()
        if getattr(self, "_encoders", None) is not None:
            self._encoders.shutdown()
            self._encoders = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        base._release(self._claim)
        self._claim = None

    # -- files ------------------------------------------------------------------

    def _read_captures(self) -> pa.Table:
        path = self.path / "captures" / "captures.parquet"
        if not path.is_file():
            self._captures_generation = None
            return PARQUET_CAPTURES_SCHEMA.empty_table()
        try:
            table = pq.read_table(path)
            self._captures_generation = _generation(table.schema)
            return table.cast(PARQUET_CAPTURES_SCHEMA)
        except (OSError, pa.ArrowException, ValueError, KeyError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(
                f"{self.path} is not a readable Tickscope dataset: captures/captures.parquet: {reason}"
            ) from None

    def _referenced(self) -> set[str]:
        parts = self._captures["parts"].combine_chunks().flatten().to_pylist()
        return set(parts)

    def cleanup(self) -> list[str]:
        """Remove what interrupted runs left: temporary files and parts no capture lists."""
        referenced = self._referenced()
        removed = []
        for folder in ("ticks", "bad_packets", "captures", "instruments", "unknown_tokens"):
            root = self.path / folder
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root, topdown=False):
                for name in filenames:
                    full = Path(dirpath) / name
                    rel = full.relative_to(self.path).as_posix()
                    ours_part = folder in ("ticks", "bad_packets") and name.endswith(".parquet") and (
                        name.startswith("part-") or name.startswith("bad-")
                    )
                    if name.endswith(".tmp") or (ours_part and rel not in referenced):
                        full.unlink(missing_ok=True)
                        removed.append(rel)
                if Path(dirpath) != root and not os.listdir(dirpath):
                    os.rmdir(dirpath)
        if removed:
            log.info("removed %d leftovers of interrupted runs from %s", len(removed), self.path)
        return removed

    def _write_captures(self, table: pa.Table) -> None:
        generation = secrets.token_hex(8)
        _replace_atomically(_with_generation(table, generation), self.path / "captures" / "captures.parquet")
        self._captures = table
        self._captures_generation = generation

    # -- reading ----------------------------------------------------------------

    def file_ids(self) -> set[str]:
        return set(self._captures["file_id"].to_pylist())

    def captures(self) -> pa.Table:
        return self._captures.select(CAPTURES_SCHEMA.names)

    def committed_parts(self) -> dict[str, list[str]]:
        """file_id -> the part files (relative to the folder) its capture row lists."""
        return dict(zip(self._captures["file_id"].to_pylist(), self._captures["parts"].to_pylist()))

    def _tick_files(self) -> list[str]:
        return sorted(
            str(self.path / p) for p in self._referenced() if p.startswith("ticks/")
        )

    def tick_dataset(self) -> pads.Dataset:
        """The committed ticks as a pyarrow dataset (hive-partitioned by trading_date)."""
        files = self._tick_files()
        return pads.dataset(
            files,
            schema=pa.schema(list(PART_SCHEMA) + [schema.TICK_SCHEMA.field("trading_date")]),
            format="parquet",
            partitioning=PARTITIONING,
            partition_base_dir=str(self.path / "ticks"),
        )

    def ticks(self, columns: Optional[Sequence[str]] = None) -> pa.Table:
        names = list(columns) if columns else schema.TICK_SCHEMA.names
        unknown = set(names) - set(schema.TICK_SCHEMA.names)
        if unknown:
            raise ValueError(f"no such tick columns: {sorted(unknown)}")
        keys = ["file_id", "msg_seq", "pkt_seq"]
        table = self.tick_dataset().to_table(columns=list(dict.fromkeys(names + keys)))
        if table.num_rows:
            table = table.take(pc.sort_indices(table, [(k, "ascending") for k in keys]))
        return table.select(names)

    def bad_packets(self) -> pa.Table:
        files = sorted(str(self.path / p) for p in self._referenced() if p.startswith("bad_packets/"))
        if not files:
            return BAD_PACKETS_SCHEMA.empty_table()
        table = pads.dataset(files, schema=BAD_PACKETS_SCHEMA, format="parquet").to_table()
        return table.take(pc.sort_indices(table, [("file_id", "ascending"), ("offset", "ascending")]))

    def instruments(self) -> pa.Table:
        path = self.path / "instruments" / "instruments.parquet"
        return pq.read_table(path).replace_schema_metadata(None) if path.is_file() else pa.table({})

    def _instruments_generation(self) -> Optional[str]:
        path = self.path / "instruments" / "instruments.parquet"
        return _generation(pq.read_schema(path)) if path.is_file() else None

    def _sql(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        return con

    def unresolved_aggregate(self) -> pa.Table:
        from app.store.duck import _UNRESOLVED_SQL

        con = self._sql()
        try:
            # A private in-memory database: these names cannot meet a user's tables.
            con.register("ticks", self.tick_dataset())
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

    # -- writing ----------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("target opened read-only")

    def _part_encoders(self) -> PartEncoders:
        if self._encoders is None:
            self._encoders = PartEncoders()
        return self._encoders

    def begin(self, file_id: str, *, force: bool = False) -> "_ParquetCaptureWrite":
        self._writable()
        write = _ParquetCaptureWrite(self, base.check_file_id(file_id), force)
        self._open_writes.append(write)
        return write

    def record_instruments(self, table: pa.Table) -> None:
        self._writable()
        if table.num_rows == 0:
            return
        old = self.instruments()
        if old.num_rows:
            con = self._sql()
            try:
                keys = base.master_keys(table)
                con.register("old_masters", old)
                con.register("new_keys", keys)
                join = " AND ".join(f'o."{c}" IS NOT DISTINCT FROM k."{c}"' for c in keys.column_names)
                kept = con.sql(
                    f"SELECT * FROM old_masters o WHERE NOT EXISTS (SELECT 1 FROM new_keys k WHERE {join})"
                ).to_arrow_table()
            finally:
                con.close()
            table = pa.concat_tables([kept.cast(table.schema), table])
        _replace_atomically(_with_generation(table, secrets.token_hex(8)), self.path / "instruments" / "instruments.parquet")

    def _store_unknown(self, table: pa.Table) -> None:
        self._writable()
        built_from = {
            UNKNOWN_FROM_CAPTURES: (self._captures_generation or "").encode(),
            UNKNOWN_FROM_INSTRUMENTS: (self._instruments_generation() or "").encode(),
        }
        _replace_atomically(_with_metadata(table, built_from), self.path / "unknown_tokens" / "unknown_tokens.parquet")

    def _commit_record(self, row: pa.Table, replaced_parts: list[str]) -> None:
        with self._mutex:
            others = self._captures.filter(pc.invert(pc.is_in(self._captures["file_id"], row["file_id"])))
            self._write_captures(pa.concat_tables([others, row]))
        for rel in replaced_parts:
            (self.path / rel).unlink(missing_ok=True)

    def commit_parts(self, record: CaptureRecord, part_rows: dict[str, int], *, force: bool = False) -> None:
        """Commit a capture whose parts another process wrote (``CapturePartsWriter.finish``).

        Each part must be one of this capture's part files, exist, and hold the rows its
        writer reported: a part lost or cut short (a worker dying mid-rename, storage not
        shared) raises ValueError and commits nothing, so the capture is retried whole
        instead of being stored with rows missing.
        """
        self._writable()
        file_id = base.check_file_id(record.file_id)
        existing = self._captures.filter(pc.equal(self._captures["file_id"], file_id))
        if existing.num_rows and not force:
            raise AlreadyIngested(file_id)
        prefixes = ("ticks/trading_date=", "bad_packets/")
        for rel, rows in part_rows.items():
            name = Path(rel).name
            ours = rel.startswith(prefixes) and ".." not in Path(rel).parts and name.endswith(".parquet") and (
                name.startswith(f"part-{file_id[:16]}-") or name.startswith(f"bad-{file_id[:16]}-"))
            if not ours:
                raise ValueError(f"{rel} is not a part file of capture {file_id[:16]}")
            try:
                found = pq.ParquetFile(self.path / rel).metadata.num_rows
            except (OSError, pa.ArrowInvalid) as err:
                raise ValueError(f"part {rel} is missing or unreadable in {self.path}: {err}") from None
            if found != rows:
                raise ValueError(f"part {rel} holds {found:,} rows, its writer reported {rows:,}")
        row = record.to_table().append_column("parts", pa.array([list(part_rows)], pa.list_(pa.string())))
        old = existing["parts"].combine_chunks().flatten().to_pylist() if existing.num_rows else []
        self._commit_record(row, [rel for rel in old if rel not in part_rows])

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
        resolved_total = 0
        new_rows, new_parts, old_parts = [], [], []
        try:
            for i in range(self._captures.num_rows):
                record = self._captures.slice(i, 1)
                if record["unresolved_ticks"][0].as_py() == 0:
                    continue
                parts = record["parts"][0].as_py()
                kept, changed_any, still_unresolved = [], False, 0
                for rel in parts:
                    if not rel.startswith("ticks/"):
                        kept.append(rel)
                        continue
                    result = _rewrite_part(self.path, rel, mapping)
                    if result is None:
                        kept.append(rel)
                        still_unresolved += _count_unresolved(self.path / rel)
                        continue
                    new_rel, named, unresolved = result
                    changed_any = True
                    resolved_total += named
                    still_unresolved += unresolved
                    kept.append(new_rel)
                    new_parts.append(new_rel)
                    old_parts.append(rel)
                if changed_any:
                    record = record.set_column(
                        record.schema.get_field_index("parts"), "parts", pa.array([kept], pa.list_(pa.string()))
                    ).set_column(
                        record.schema.get_field_index("unresolved_ticks"),
                        "unresolved_ticks",
                        pa.array([still_unresolved], pa.int64()),
                    )
                    new_rows.append(record)
            if new_rows:
                changed = pa.concat_tables(new_rows)
                with self._mutex:
                    others = self._captures.filter(pc.invert(pc.is_in(self._captures["file_id"], changed["file_id"])))
                    # One atomic switch for every capture touched: resolve is all or nothing.
                    self._write_captures(pa.concat_tables([others, changed]))
        except BaseException:
            for rel in new_parts:
                (self.path / rel).unlink(missing_ok=True)
            raise
        for rel in old_parts:
            (self.path / rel).unlink(missing_ok=True)
        return resolved_total


def _count_unresolved(path: Path) -> int:
    column = pq.read_table(path, columns=["resolved"])["resolved"]
    return int(pc.sum(pc.invert(pc.fill_null(column, False))).as_py() or 0)


def _partition_date(rel: str) -> Optional[dt.date]:
    folder = rel.split("/")[1]  # trading_date=...
    value = folder.split("=", 1)[1]
    return None if value == NULL_PARTITION else dt.date.fromisoformat(value)


def _rewrite_part(root: Path, rel: str, mapping: pa.Table):
    """Rewrite one part with ticks the mapping names; None if it names none of them.

    Returns (new relative path, ticks named, ticks still unresolved). The new part is
    complete and renamed when this returns; the caller switches captures to it.
    """
    date = _partition_date(rel)
    date_mask = (
        pc.is_null(mapping["trading_date"]) if date is None else pc.equal(mapping["trading_date"], pa.scalar(date, pa.date32()))
    )
    date_map = mapping.filter(pc.fill_null(date_mask, False))
    if date_map.num_rows == 0:
        return None
    tokens = date_map["instrument_token"].combine_chunks()
    source = pq.ParquetFile(root / rel)
    name = Path(rel).name  # part-<fid16>-<write_id>-<n>.parquet
    _, fid16, _, n = name[: -len(".parquet")].split("-", 3)
    folder = root / Path(rel).parent
    tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
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
        _fsync(tmp)
        for attempt in range(8):
            # A fresh write id keeps the capture's name rule (commit_parts checks it); the
            # name must be new: replacing a file could destroy a part a capture still lists.
            final = folder / f"part-{fid16}-{_new_write_id()}-{n}.parquet"
            try:
                _publish_new(tmp, final)
                break
            except FileExistsError:
                if attempt == 7:
                    raise
        _fsync_dir(folder)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return (final.relative_to(root).as_posix(), named, unresolved)


class PartEncoders:
    """Threads that encode whole part files, at most ``threads + 1`` parts queued or running.

    ``submit`` blocks while that many are in flight: that is the writer's backpressure
    (it stalls, the pipeline's bounded queue fills, the decoders wait), so memory stays
    bounded whatever the capture's size. pyarrow encodes Parquet without the GIL.
    """

    def __init__(self, threads: Optional[int] = None):
        if threads is None:
            # The cores this process may use (a container's or taskset's, not the host's).
            usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            threads = min(usable or 2, MAX_ENCODER_THREADS)
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tickscope-encode")
        self._slots = threading.BoundedSemaphore(self.threads + 1)

    def submit(self, fn, *args) -> Future:
        self._slots.acquire()
        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _encode_part(table: pa.Table, tmp: Path) -> None:
    try:
        pq.write_table(table, tmp, row_group_size=max(1, table.num_rows), **PART_OPTIONS)
    except BaseException as err:
        # The failure waits in its Future until the writer looks: its traceback must not
        # keep the part's rows alive meanwhile (pyarrow's frames hold the table).
        del table
        tmp.unlink(missing_ok=True)
        raise err.with_traceback(None)


class _PartitionWriter:
    """Ticks of one capture and one trading date: row groups buffered, parts rolled over."""

    def __init__(self, owner: "CapturePartsWriter", date_key: str):
        self.owner = owner
        self.folder = owner.root / "ticks" / f"trading_date={date_key}"
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.writer: Optional[pq.ParquetWriter] = None
        self.tmp: Optional[Path] = None
        self.groups_in_part = 0

    def add(self, table: pa.Table, nbytes: int) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.pending_bytes += nbytes
        rows = PARALLEL_PART_ROWS if self.owner.encoders is not None else ROW_GROUP_ROWS
        if self.pending_rows >= rows or self.pending_bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending_rows:
            return
        table = pa.concat_tables(self.pending)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        if self.owner.encoders is not None:
            # A part of its own, encoded by a pool thread (see PartEncoders). A part that
            # failed (disk full) fails the capture now, not at its commit.
            self.owner.check_encoders()
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.owner.new_file(self.folder, self.owner.next_part_name())
            self.owner.rows[tmp] = table.num_rows
            self.owner.encoding.append(self.owner.encoders.submit(_encode_part, table, tmp))
            return
        table = table.combine_chunks()
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.tmp = self.owner.new_file(self.folder, self.owner.next_part_name())
            self.writer = pq.ParquetWriter(self.tmp, PART_SCHEMA, **PART_OPTIONS)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.owner.rows[self.tmp] += table.num_rows
        self.groups_in_part += 1
        if self.groups_in_part >= PART_ROW_GROUPS:
            self.close_part()

    def close_part(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.groups_in_part = 0

    def finish(self) -> None:
        self.flush()
        self.close_part()

    def discard(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # the file is deleted anyway
                pass
            self.writer = None


class CapturePartsWriter:
    """The part files of one capture under a dataset folder, written but not committed.

    The one place that lays out tick and bad-packet parts (names, partitions, row groups,
    temporary names then rename). ``ParquetTarget.begin`` uses it in the writing process;
    the Dask engine uses it on workers, which never open the target (the client holds its
    lock) and hand the parts to ``ParquetTarget.commit_parts``. ``write_id`` defaults to a
    random one; the Dask engine passes one derived from the file id so a retried task
    rewrites the same names instead of adding files.
    """

    def __init__(self, root: Path | str, file_id: str, write_id: Optional[str] = None,
                 encoders: Optional[PartEncoders] = None):
        self.root = Path(root)
        self.encoders = encoders
        self.encoding: list[Future] = []  # parts being encoded by ``encoders``
        self.file_id = base.check_file_id(file_id)
        if write_id is not None and not (len(write_id) == 8 and all(c in "0123456789abcdef" for c in write_id)):
            raise ValueError(f"write_id must be 8 lowercase hex characters, got {write_id!r}")
        self.write_id = write_id or secrets.token_hex(4)
        self.partitions: dict[str, _PartitionWriter] = {}
        self.tmp_files: list[tuple[Path, Path]] = []  # (temporary, final) in write order
        self.rows: dict[Path, int] = {}  # temporary file -> rows written to it
        self.bad_writer: Optional[pq.ParquetWriter] = None
        self.bad_tmp: Optional[Path] = None
        self.part_number = 0

    def next_part_name(self) -> str:
        name = f"part-{self.file_id[:16]}-{self.write_id}-{self.part_number}.parquet"
        self.part_number += 1
        return name

    def new_file(self, folder: Path, name: str) -> Path:
        # A random suffix per attempt: two attempts of one task (a worker presumed dead
        # still running) never write into the same temporary file.
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        self.tmp_files.append((tmp, folder / name))
        self.rows[tmp] = 0
        return tmp

    def add_ticks(self, ticks: pa.Table) -> None:
        table = base.conform_ticks(ticks)
        if table.num_rows == 0:
            return
        dates = table["trading_date"].combine_chunks()
        body = table.drop_columns(["trading_date"])
        # Ticks come in time order, so a batch is a few runs of one date (and the odd tick
        # without one): runs are zero-copy slices, where filtering copies every column.
        runs = pc.run_end_encode(dates)
        ends = runs.run_ends.to_numpy()
        row_bytes = body.nbytes / body.num_rows  # (nbytes of many slices costs more than this)
        if len(ends) == 1:
            self._partition(dates[0].as_py()).add(body, body.nbytes)
            return
        if len(ends) <= max(8, table.num_rows // 256):
            values = runs.values.to_pylist()
            starts = [0, *ends[:-1].tolist()]
            by_date: dict = {}
            for value, start, end in zip(values, starts, ends.tolist()):
                by_date.setdefault(value, []).append(body.slice(start, end - start))
            for value, pieces in by_date.items():
                part = pa.concat_tables(pieces)
                if part.num_rows < table.num_rows // 8:
                    # A slice keeps its whole batch in memory until its partition flushes,
                    # which a date with few ticks (say, the ticks without one) may never do:
                    # take copies the rows (combine_chunks keeps a lone slice as it is).
                    part = part.take(pa.array(np.arange(part.num_rows)))
                self._partition(value).add(part, int(part.num_rows * row_bytes))
            return
        for value in pc.unique(dates).to_pylist():
            mask = pc.is_null(dates) if value is None else pc.fill_null(pc.equal(dates, pa.scalar(value, pa.date32())), False)
            part = body.filter(mask)
            self._partition(value).add(part, int(part.num_rows * row_bytes))

    def _partition(self, date: Optional[dt.date]) -> _PartitionWriter:
        key = NULL_PARTITION if date is None else date.isoformat()
        writer = self.partitions.get(key)
        if writer is None:
            writer = self.partitions[key] = _PartitionWriter(self, key)
        return writer

    def add_bad(self, bad: Sequence) -> None:
        if not bad:
            return
        table = base.bad_packets_table(self.file_id, bad)
        if self.bad_writer is None:
            folder = self.root / "bad_packets"
            folder.mkdir(parents=True, exist_ok=True)
            self.bad_tmp = self.new_file(folder, f"bad-{self.file_id[:16]}-{self.write_id}.parquet")
            self.bad_writer = pq.ParquetWriter(self.bad_tmp, BAD_PACKETS_SCHEMA, **WRITE_OPTIONS)
        self.bad_writer.write_table(table)
        self.rows[self.bad_tmp] += table.num_rows

    def check_encoders(self) -> None:
        """Forget the parts encoded so far; raise the first failure among them."""
        done: list[Future] = []
        running: list[Future] = []
        for future in self.encoding:
            (done if future.done() else running).append(future)
        self.encoding = running
        for future in done:
            error = future.exception()
            if error is not None:
                raise error

    def _wait_for_encoders(self) -> None:
        """Wait for every part being encoded; raise the first failure."""
        wait(self.encoding)  # (interrupted here, discard still waits for them all)
        self.check_encoders()

    def finish(self) -> dict[str, int]:
        """Close, fsync and rename every part; {path relative to the root: rows}, in write order."""
        for partition in self.partitions.values():
            partition.finish()
        self._wait_for_encoders()
        if self.bad_writer is not None:
            self.bad_writer.close()
            self.bad_writer = None
        parts = {}
        for tmp, final in self.tmp_files:
            _fsync(tmp)
            os.replace(tmp, final)
            parts[final.relative_to(self.root).as_posix()] = self.rows[tmp]
        for folder in {final.parent for _, final in self.tmp_files}:
            _fsync_dir(folder)
        return parts

    def _close_writers(self) -> None:
        # A part still being encoded would write its temporary file after we delete it.
        wait(self.encoding)
        self.encoding = []
        for partition in self.partitions.values():
            partition.discard()
        if self.bad_writer is not None:
            try:
                self.bad_writer.close()
            except Exception:  # the file is deleted anyway
                pass
            self.bad_writer = None

    def discard(self, keep: frozenset | set = frozenset()) -> None:
        """Delete the temporary files and every renamed part not in ``keep`` (committed ones)."""
        self._close_writers()
        for tmp, final in self.tmp_files:
            tmp.unlink(missing_ok=True)
            if final.relative_to(self.root).as_posix() not in keep:
                final.unlink(missing_ok=True)

    def discard_temporary(self) -> None:
        """Delete only the temporary files: a renamed part may be a finished attempt's that
        the client is committing; uncommitted ones go at the target's next open."""
        self._close_writers()
        for tmp, _ in self.tmp_files:
            tmp.unlink(missing_ok=True)


class _ParquetCaptureWrite(CaptureWrite):
    def __init__(self, target: ParquetTarget, file_id: str, force: bool):
        self.target = target
        self.file_id = file_id
        self.force = force
        self.parts = CapturePartsWriter(target.path, file_id, encoders=target._part_encoders())
        self.done = False

    def add_ticks(self, ticks: pa.Table) -> None:
        self.parts.add_ticks(ticks)

    def add_bad(self, bad: Sequence) -> None:
        self.parts.add_bad(bad)

    def commit(self, record: CaptureRecord) -> None:
        if record.file_id != self.file_id:
            raise ValueError("capture record of another file")
        target = self.target
        try:
            existing = target._captures.filter(pc.equal(target._captures["file_id"], self.file_id))
            if existing.num_rows and not self.force:
                raise AlreadyIngested(self.file_id)
            parts = list(self.parts.finish())
            row = record.to_table().append_column("parts", pa.array([parts], pa.list_(pa.string())))
            replaced = existing["parts"].combine_chunks().flatten().to_pylist() if existing.num_rows else []
            # The captures file is the commit point: once it lists the parts, they count.
            target._commit_record(row, replaced)
        except BaseException:
            self.abort()
            raise
        self._finish()

    def abort(self) -> None:
        if self.done:
            return
        self.parts.discard(keep=self.target._referenced())
        self._finish()

    def _finish(self) -> None:
        self.done = True
        if self in self.target._open_writes:
            self.target._open_writes.remove(self)

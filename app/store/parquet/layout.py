"""The Parquet dataset's layout: which file lives where, what it holds, how it is encoded.

Layout::

    T/tickscope-dataset.json                   marks the folder as ours (format version)
    T/.tickscope-lock                          held (flock) by the one process writing
    T/journal/                                 the commit journal (app.store.journal)
    T/ticks/trading_date=YYYY-MM-DD/part-<file_id[:16]>-<write_id>-<n>.parquet
    T/ticks/trading_date=__HIVE_DEFAULT_PARTITION__/...   ticks without a trading date
    T/bad_packets/bad-<file_id[:16]>-<write_id>.parquet
    T/captures/captures.parquet                one row per committed capture (+ its parts)
    T/instruments/instruments.parquet          the stored masters: rows with validity intervals
                                               (app.store.masters), the catalog in its metadata
    T/unknown_tokens/unknown_tokens.parquet    the explained unknown tokens

Tick files leave out ``trading_date``: hive partitioning supplies it, so
``duckdb.read_parquet('T/ticks/*/part-*.parquet', hive_partitioning=true)`` reads the
folder as it is (zstd, row groups of ~512K-1M rows, at most 128 MB, for scans).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from app.core import schema
from app.core.tick_parquet import write_options
from app.store import journal
from app.store.base import CAPTURES_SCHEMA
from app.store.journal import fsync_dir, fsync_file

LOCK = ".tickscope-lock"
# 2: the commit journal, private part names, per-part rows/bytes/footer fingerprints in
# the manifest. 3: every capture lists a tick summary part (app.store.summary). An older
# dataset is migrated at its first open for writing.
FORMAT_VERSION = 3
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# Parquet captures carry the exact list of files that make up each capture.
# ``part_rows``/``part_bytes``/``part_footers`` line up with ``parts``: what each part held
# when committed (rows, size, sha256 of its Parquet footer), which ``verify`` checks.
MANIFEST_PART_FIELDS = [
    pa.field("parts", pa.list_(pa.string())),
    pa.field("part_rows", pa.list_(pa.int64())),
    pa.field("part_bytes", pa.list_(pa.int64())),
    pa.field("part_footers", pa.list_(pa.string())),
]
PARQUET_CAPTURES_SCHEMA = pa.schema(list(CAPTURES_SCHEMA) + MANIFEST_PART_FIELDS)
# What a tick part file holds: the tick schema without the partition column.
PART_SCHEMA = pa.schema([f for f in schema.TICK_SCHEMA if f.name != "trading_date"])
PARTITIONING = pads.partitioning(pa.schema([("trading_date", pa.date32())]), flavor="hive")

ROW_GROUP_ROWS = 1_000_000
ROW_GROUP_BYTES = 128 << 20
PART_ROW_GROUPS = 4  # row groups per part file before a new part starts
WRITE_OPTIONS = dict(compression="zstd", compression_level=1, write_statistics=True)
# Per-column encodings of tick files, shared with `tickscope decode` (app.core.tick_parquet:
# a dictionary only where values repeat, DELTA for offsets; measured on 875k bench ticks in
# one part: 1.34-1.45 -> 1.21 CPU-s and 60.0 -> 49.6 MB against text-only dictionaries).
PART_OPTIONS = dict(WRITE_OPTIONS, **write_options(PART_SCHEMA))


def _replace_atomically(table: pa.Table, final: Path, session: str | None = None) -> None:
    """Write ``table`` over ``final`` atomically; the temporary name carries ``session`` (the
    writer's recorded session id) so that recovery may delete it after a crash."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{session}-{secrets.token_hex(4)}" if session else secrets.token_hex(4)
    _write_through(table, final.parent / f".{final.name}.{tag}.tmp", final)


def _write_through(table: pa.Table, tmp: Path, final: Path) -> None:
    """Write ``table`` to ``tmp``, fsync it and rename it to ``final`` (then fsync the
    folder); ``tmp`` is deleted if any of it fails."""
    try:
        pq.write_table(table, tmp, **WRITE_OPTIONS)
        fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def _write_marker(marker: Path, session: str | None = None) -> None:
    """Write the marker: in place when creating the dataset (a kill mid-write leaves a marker
    that reads as version 1, migrated again at the next open); replaced atomically through
    a temporary file in the journal folder named with ``session`` when migrating."""
    text = json.dumps({"format": "tickscope-parquet", "version": FORMAT_VERSION}) + "\n"
    if session is None:
        marker.write_text(text)
        return
    tmp = marker.parent / journal.JOURNAL_DIR / f".{marker.name}.{session}-{secrets.token_hex(4)}.tmp"
    tmp.write_text(text)
    os.replace(tmp, marker)



# Generations tie derived files to what they were computed from: captures.parquet and
# instruments.parquet get a fresh one whenever they are replaced, and unknown_tokens.parquet
# records the two it was built from. A run interrupted between those writes (resolve,
# ingest) leaves unknown_tokens stale, which a mismatch reveals; it is then rebuilt.
GENERATION_KEY = b"tickscope.generation"
UNKNOWN_FROM_CAPTURES = b"tickscope.captures_generation"
UNKNOWN_FROM_INSTRUMENTS = b"tickscope.instruments_generation"
MASTER_CATALOG_KEY = b"tickscope.master_catalog"  # instruments.parquet: the catalog (Arrow IPC)


def _generation(schema_: pa.Schema) -> str | None:
    value = (schema_.metadata or {}).get(GENERATION_KEY)
    return value.decode() if value else None


def _with_metadata(table: pa.Table, extra: dict[bytes, bytes]) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})


def _with_generation(table: pa.Table, generation: str) -> pa.Table:
    return _with_metadata(table, {GENERATION_KEY: generation.encode()})

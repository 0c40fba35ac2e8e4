"""One memory setting for an ingest (``--memory-limit``) and what each stage gets of it.

The limit is what an ingest may use on top of the interpreter and its libraries (about
120 MB): every stage that holds data sizes itself from it, so peak memory stays flat
whatever the size of the captures, the number of trading days they span or of stored
masters:

* decoding: capture bytes per decoded batch, and batches queued between decoders and
  the writer (``decode_chunk_bytes``, ``queue_batches``);
* the target's writer: rows buffered before they are encoded or inserted, across every
  trading day and every capture open at once (``writer_bytes``; the Parquet target
  flushes its largest day buffer whenever the total would pass it);
* the database engine: DuckDB's ``memory_limit`` while inserting, and the in-memory
  DuckDB that aggregates unresolved ticks for the unknown-token table (``engine_bytes``;
  DuckDB spills to a temporary folder beyond it).

The default suits a 4 GB laptop: 400 MB (a whole ingest process peaks under 600 MB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import UsageError

MB = 1 << 20
DEFAULT_MEMORY_LIMIT = 400 * MB
MIN_MEMORY_LIMIT = 128 * MB

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": MB, "mb": MB, "mib": MB,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_memory_limit(text) -> int:
    """Bytes from ``512MB``, ``1.5GB``, ``800M``, ``2g`` or a plain number of bytes."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise UsageError(f"--memory-limit must be a size such as 512MB or 2GB, got {text!r}")
        value = int(float(match.group(1)) * _UNITS[unit])
    if value < MIN_MEMORY_LIMIT:
        raise UsageError(f"--memory-limit must be at least {MIN_MEMORY_LIMIT // MB} MB, got {text!r}")
    return value


@dataclass(frozen=True)
class MemoryBudget:
    """``total`` bytes, shared out between the stages of an ingest."""

    total: int = DEFAULT_MEMORY_LIMIT

    @classmethod
    def of(cls, limit) -> MemoryBudget:
        if isinstance(limit, MemoryBudget):
            return limit
        return cls(DEFAULT_MEMORY_LIMIT if limit is None else parse_memory_limit(limit))

    def without(self, reserved: int) -> MemoryBudget:
        """What the stages share once ``reserved`` bytes are set aside (never below the minimum)."""
        return MemoryBudget(max(MIN_MEMORY_LIMIT, self.total - int(reserved)))

    @property
    def decode_chunk_bytes(self) -> int:
        """Capture bytes per decoded batch (a batch is ~3x that in Arrow)."""
        return max(1 * MB, min(8 * MB, self.total // 64))

    def queue_batches(self, workers: int) -> int:
        """Decoded batches waiting for the writer: ~15% of the budget, at least 2."""
        batch = 3 * self.decode_chunk_bytes
        return max(2, min(workers + 2, int(0.15 * self.total) // batch))

    @property
    def writer_bytes(self) -> int:
        """Rows the target's writer holds: buffered for every day, and being encoded."""
        return int(0.35 * self.total)

    @property
    def engine_bytes(self) -> int:
        """DuckDB's memory_limit (inserting; aggregating unresolved ticks): a quarter."""
        return max(64 * MB, int(0.25 * self.total))

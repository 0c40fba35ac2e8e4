"""One capture file's record, from the queue to the target: its counters and its status.

``CaptureRecord`` is the one per-capture record type. The ingest pipeline fills it while
it hashes, decodes and writes a file (a progress update is a copy of it); the store
commits it as the capture's ``captures`` row (``app.store.base.captures_table``); the
command line prints it (``to_dict`` is the shape of ``tickscope ingest --json``'s files);
the desktop app's queue rows are these records (``app.model.session.QueueRow``) and the
counts it reads back from the target are these records too (``from_captures_row``).

One status vocabulary: queued, decoding, writing, done, skipped, failed, cancelled.
Naming the file (its sha256) is part of decoding; ``hashing`` says that step is under way,
so the command line's progress can still print it (``stage``).

The decoder's own accounting (``app.core.decode.DecodeSummary``: bytes by kind, packet
lengths, containers) is another thing: what decoding found, not a capture's life.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from app import __version__

# The one status vocabulary.
QUEUED = "queued"
DECODING = "decoding"
WRITING = "writing"
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, DECODING, WRITING, DONE, SKIPPED, FAILED, CANCELLED)
ACTIVE = frozenset({DECODING, WRITING})
FINISHED = frozenset({DONE, SKIPPED, FAILED, CANCELLED})
# Progress words of the command line: the statuses, with decoding's first step named.
HASHING = "hashing"
STAGES = (QUEUED, HASHING, DECODING, WRITING, DONE, SKIPPED, FAILED, CANCELLED)

# What ``tickscope ingest`` reports (its --json ``status`` and ``counts``): a stored file is
# "ingested" there, as other tools expect.
REPORTED = {DONE: "ingested", SKIPPED: "skipped", FAILED: "failed", CANCELLED: "cancelled"}
REPORT_STATUSES = tuple(REPORTED.values())

# What decoding and enrichment count (the record's counters).
COUNTERS = ("messages", "packets", "heartbeats", "bad_packets", "ticks", "unresolved_ticks", "suspect",
            "first_tick_time", "last_tick_time")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class CaptureRecord:
    """Everything Tickscope knows of one capture file: where it is, what it holds, how far."""

    path: str
    file_id: str | None = None  # sha256 of its bytes, once read
    size_bytes: int = 0
    framing: str = ""
    status: str = QUEUED  # one of STATUSES
    hashing: bool = False  # with DECODING: still naming the file (reading it for its sha256)
    bytes_done: int = 0
    messages: int = 0
    packets: int = 0
    heartbeats: int = 0
    bad_packets: int = 0
    ticks: int = 0  # ticks stored (0 unless done)
    unresolved_ticks: int = 0
    suspect: int | None = 0  # ticks stored with a suspect_reason; None: not counted (older targets)
    first_tick_time: dt.datetime | None = None
    last_tick_time: dt.datetime | None = None
    rate_pps: float = 0.0  # packets decoded per second (while decoding)
    seconds: float = 0.0  # from start to the final status
    error: str | None = None  # one line: why it was skipped, failed or cancelled, or a note
    fault: str | None = None  # with FAILED: which kind (the pipeline's FAULT_* values)
    replaced: bool = False  # committed over a stored copy (--force, or damaged rows)
    tool_version: str = __version__
    ingested_at: dt.datetime = field(default_factory=_now)
    index: int = 0  # its position in the job

    @property
    def name(self) -> str:
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]

    @property
    def stage(self) -> str:
        """The command line's progress word: the status, or "hashing" while naming the file."""
        return HASHING if self.hashing and self.status == DECODING else self.status

    @property
    def final(self) -> bool:
        return self.status in FINISHED

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        if self.status in (DONE, SKIPPED):
            return 1.0
        if not self.size_bytes:
            return 1.0 if self.final else 0.0
        return min(1.0, self.bytes_done / self.size_bytes)

    @property
    def remaining_bytes(self) -> int:
        return 0 if self.final else max(0, self.size_bytes - self.bytes_done)

    @property
    def reported_status(self) -> str:
        """The status as ``tickscope ingest`` reports it ("ingested" for done)."""
        return REPORTED.get(self.status, FAILED)

    def take_counts(self, other) -> None:
        """Take the counters of ``other`` (a record, or the mapping a Dask task returns)."""
        get = other.get if isinstance(other, Mapping) else lambda name, default=None: getattr(other, name, default)
        for name in COUNTERS:
            setattr(self, name, get(name, getattr(self, name)))

    def copy(self) -> CaptureRecord:
        """A plain record of this one's fields (a progress update, a job's result)."""
        return CaptureRecord(**{f.name: getattr(self, f.name) for f in fields(CaptureRecord)})

    def to_dict(self) -> dict:
        """One file of ``tickscope ingest --json`` (keys and order are a contract)."""
        return {
            "path": self.path, "file_id": self.file_id, "status": self.reported_status,
            "messages": self.messages, "packets": self.packets, "heartbeats": self.heartbeats,
            "bad_packets": self.bad_packets, "ticks": self.ticks, "unresolved_ticks": self.unresolved_ticks,
            "error": self.error, "framing": self.framing or None, "suspect": self.suspect,
            "size_bytes": self.size_bytes, "seconds": self.seconds,
            "fault": self.fault if self.status == FAILED else None,
        }

    @classmethod
    def from_captures_row(cls, row: Mapping) -> CaptureRecord:
        """A committed capture as the target's ``captures`` table holds it."""
        record = cls(path=row.get("path") or "", file_id=row.get("file_id"), status=DONE)
        for name in ("size_bytes", "messages", "packets", "heartbeats", "bad_packets", "unresolved_ticks"):
            setattr(record, name, int(row.get(name) or 0))
        record.framing = row.get("framing") or ""
        record.suspect = row.get("suspect")
        record.first_tick_time, record.last_tick_time = row.get("first_tick_time"), row.get("last_tick_time")
        record.replaced = row.get("status") == "replaced"
        record.tool_version = row.get("tool_version") or ""
        record.ingested_at = row.get("ingested_at")
        return record

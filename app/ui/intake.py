"""Which dropped or opened files the queue takes, and what each one looks like.

Supported: capture extensions (.dat .bin .raw .b64 .packet), tick dumps (.json .jsonl
.parquet) and any other file whose first bytes parse as Kite messages in one of the
known framings (sniffed, never trusted from the name). Folders are walked by the
pipeline's rule (``app.pipeline.inputs.walk_folder``: hidden entries and Tickscope
Parquet datasets left out). Everything else is refused with a one-line reason for
the status bar.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from app.core import protocol
from app.pipeline.inputs import walk_folder

CAPTURE_EXTENSIONS = (".dat", ".bin", ".raw", ".b64", ".packet")
DUMP_EXTENSIONS = (".json", ".jsonl", ".parquet")
SUPPORTED_EXTENSIONS = CAPTURE_EXTENSIONS + DUMP_EXTENSIONS
HEAD_BYTES = 64 * 1024
MAX_FOLDER_FILES = 100_000

_EPOCH_NS_MIN = 1_262_304_000 * 10**9  # 2010
_EPOCH_NS_MAX = 2_524_608_000 * 10**9  # 2050


@dataclass
class Intake:
    accepted: list[tuple[str, int, str]] = field(default_factory=list)  # path, size, framing
    refused: list[tuple[str, str]] = field(default_factory=list)  # path, reason

    def summary(self) -> str:
        parts = []
        if self.accepted:
            parts.append(f"Queued {len(self.accepted)} file{'s' if len(self.accepted) != 1 else ''}")
        if self.refused:
            name, reason = self.refused[0]
            more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
            parts.append(f"not queued: {Path(name).name} — {reason}{more}")
        text = "; ".join(parts) or "Nothing to queue"
        return text[0].upper() + text[1:]


def _message_ok(data: bytes, at: int, end: int) -> Optional[int]:
    """End offset of one well-formed Kite message starting at ``at``, else None."""
    if at + 2 > end:
        return None
    (count,) = struct.unpack_from(">H", data, at)
    if count == 0 or count > 4096:
        return None
    pos = at + 2
    for _ in range(count):
        if pos + 2 > end:
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        if not protocol.is_known_length(length):
            return None
        pos += 2 + length
    return pos if pos <= end else None


def sniff_framing(head: bytes) -> Optional[str]:
    """The framing whose structure the head parses in, or None if it is not a capture."""
    if not head:
        return None
    n = len(head)
    # ts-u32len: u64 receive time (ns) + u32 length + message
    if n >= 14:
        ts, length = struct.unpack_from(">QI", head, 0)
        if _EPOCH_NS_MIN <= ts <= _EPOCH_NS_MAX and 0 < length <= n - 12:
            if length == 1 or _message_ok(head, 12, 12 + length) == 12 + length:
                return "ts-u32len"
    if n >= 6:
        (length,) = struct.unpack_from(">I", head, 0)
        if 0 < length <= n - 4 and _message_ok(head, 4, 4 + length) == 4 + length:
            return "u32len"
    first_line = head.split(b"\n", 1)[0].strip()
    if first_line and len(first_line) % 4 == 0:
        try:
            message = base64.b64decode(first_line, validate=True)
        except (binascii.Error, ValueError):
            message = b""
        if message == protocol.HEARTBEAT or (message and _message_ok(message, 0, len(message)) == len(message)):
            return "base64"
    for start in (0, 1):  # a leading heartbeat byte
        end = _message_ok(head, start, n)
        if end is not None:
            return "single" if end == n and start == 0 else "raw"
    return None


def detect(path: Path, head: bytes, size: int) -> Optional[str]:
    """The framing label shown in the queue: the core's detector when present."""
    suffix = path.suffix.lower()
    if suffix in DUMP_EXTENSIONS:
        return suffix.lstrip(".")
    try:
        from app.core.framing import detect_framing
    except ImportError:
        return sniff_framing(head)
    try:
        return detect_framing(head, size)
    except Exception:  # noqa: BLE001 - a label only; the pipeline reports the real problem
        return sniff_framing(head)


def classify(path: Path) -> tuple[Optional[tuple[str, int, str]], Optional[str]]:
    """(entry, None) if the queue takes the file, else (None, reason)."""
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as err:
        return None, f"can't read it ({err.strerror or err})"
    if not path.is_file():  # a FIFO or device would block the read below
        return None, "not a regular file"
    supported = suffix in SUPPORTED_EXTENSIONS
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as err:
        if supported:  # the row shows the reason when the pipeline fails to open it
            return (str(path.absolute()), size, "?"), None
        return None, f"can't read it ({err.strerror or err})"
    if supported:
        return (str(path.absolute()), size, detect(path, head, size) or "?"), None
    if size == 0:
        return None, "empty file"
    framing = sniff_framing(head)
    if framing is None:
        kind = f"{suffix} files are" if suffix else "it is"
        return None, f"{kind} not a Kite capture or tick dump"
    return (str(path.absolute()), size, detect(path, head, size) or framing), None


def gather(paths: Iterable[os.PathLike | str]) -> Intake:
    """Files and folders (walked, sorted, hidden entries skipped) -> what to queue."""
    intake = Intake()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            datasets: list[Path] = []
            for found, full in enumerate(walk_folder(path, datasets), 1):
                if found > MAX_FOLDER_FILES:
                    break
                _take(full, intake)
            if datasets and datasets[0] == path:  # nested datasets are skipped quietly, as by `ingest`
                intake.refused.append((str(path), "a Tickscope Parquet dataset (ticks already stored), not captures"))
            continue
        if not path.exists():
            intake.refused.append((str(path), "no such file"))
            continue
        _take(path, intake)
    return intake


def _take(path: Path, intake: Intake) -> None:
    entry, reason = classify(path)
    if entry is not None:
        intake.accepted.append(entry)
    else:
        intake.refused.append((str(path), reason or "not supported"))

"""sha256 of a capture (its ``file_id``) and of short texts: the one hashing helper.

Read in 8 MiB blocks (hashlib releases the GIL on big blocks, so other threads keep
decoding), with an optional ``cancel`` event checked between blocks and an ``on_bytes``
callback for progress.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

BLOCK_BYTES = 8 << 20


class HashCancelled(Exception):
    """``cancel`` was set while the file was being read."""


def file_sha256(path, cancel: threading.Event | None = None,
                on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 hex of a file's bytes."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while True:
            if cancel is not None and cancel.is_set():
                raise HashCancelled()
            block = f.read(BLOCK_BYTES)
            if not block:
                break
            digest.update(block)
            done += len(block)
            if on_bytes is not None:
                on_bytes(done)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

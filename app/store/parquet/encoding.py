"""The part encoding pool: threads that encode whole tick part files in parallel."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from app.store.parquet.layout import PART_OPTIONS

MAX_ENCODER_THREADS = 4  # parts in flight (threads + 1) are what the pool holds in memory


class PartEncoders:
    """Threads that encode whole part files, at most ``threads + 1`` parts queued or running.

    ``submit`` blocks while that many are in flight: that is the writer's backpressure
    (it stalls, the pipeline's bounded queue fills, the decoders wait), so memory stays
    bounded whatever the capture's size. pyarrow encodes Parquet without the GIL.
    """

    def __init__(self, threads: int | None = None):
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
        raise err.with_traceback(None)  # noqa: B904 - the same exception again, not a new one

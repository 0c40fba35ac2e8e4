"""A small stand-in honouring the IngestJob contract (docs/architecture.md), for
widget tests that must control timing: progress from a worker thread, per-file and
whole-job cancel, a report at the end."""

from __future__ import annotations

import os
import threading
import time

# The pipeline's own records: a fake job reports exactly what a real one does.
from app.core.capture import CANCELLED, DECODING, DONE, FAILED, CaptureRecord
from app.pipeline.ingest import IngestReport


class FakeJob:
    """Each file: ``steps`` progress updates ``step_s`` apart (every update sent:
    the JobManager must do the throttling); a file named fail* fails. With ``hold_at``
    the first file stops after that many updates, sets ``held`` and waits for ``release``:
    a test acts while the job is surely mid-file, whatever the machine's load."""

    instances: list[FakeJob] = []

    def __init__(self, paths, target, *, instruments=(), workers=2, force=False, progress=None,
                 steps=200, step_s=0.001, hold_at: int | None = None,
                 raise_on_run: BaseException | None = None):
        self.paths = [os.path.abspath(p) for p in paths]
        self.target = target
        self.instruments = list(instruments)
        self.progress = progress
        self.steps = steps
        self.step_s = step_s
        self.raise_on_run = raise_on_run
        self.hold_at = hold_at
        self.held = threading.Event()
        self.release = threading.Event()
        self._cancel_all = threading.Event()
        self._cancel = {p: threading.Event() for p in self.paths}
        self.sent = 0
        self.ran_in: str | None = None
        FakeJob.instances.append(self)

    def cancel(self):
        self._cancel_all.set()

    def cancel_file(self, path):
        self._cancel[os.path.abspath(path)].set()

    def _send(self, fp):
        self.sent += 1
        if self.progress:
            self.progress(fp)

    def run(self):
        self.ran_in = threading.current_thread().name
        if self.raise_on_run is not None:
            raise self.raise_on_run
        results = []
        for path in self.paths:
            size = 1000
            status, error = DONE, None
            for step in range(1, self.steps + 1):
                if self._cancel_all.is_set() or self._cancel[path].is_set():
                    status = CANCELLED
                    break
                if os.path.basename(path).startswith("fail") and step > self.steps // 2:
                    status, error = FAILED, "cannot decode: broken on purpose"
                    break
                self._send(CaptureRecord(path, "f" * 64, size, status=DECODING, bytes_done=size * step // self.steps,
                                         packets=step * 10, bad_packets=step // 50, unresolved_ticks=step // 20,
                                         rate_pps=1000.0))
                time.sleep(self.step_s)
                if step == self.hold_at and path == self.paths[0]:
                    self.held.set()
                    self.release.wait(60)
            packets = 10 * self.steps if status == DONE else 0
            self._send(CaptureRecord(path, "f" * 64, size, status=status, bytes_done=size, packets=packets,
                                     error=error))
            results.append(CaptureRecord(path, "f" * 64, size, status=status, packets=packets, ticks=packets,
                                         bad_packets=self.steps // 50 if packets else 0,
                                         unresolved_ticks=self.steps // 20 if packets else 0, error=error))
        return IngestReport(self.target, results)

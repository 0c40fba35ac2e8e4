"""The ingestion job: input files -> decode and enrich (thread pool) -> one writer -> target.

``IngestJob`` (per-file cancel, for the desktop app) and ``run_ingest`` (the same job,
cancelled by a ``threading.Event``) live in ``app.pipeline.ingest``; which files an
ingest reads is ``app.pipeline.inputs``. Progress updates and the report's files are
``CaptureRecord``s (``app.core.capture``), the one per-capture record.
"""

from app.core.capture import CaptureRecord
from app.pipeline.ingest import IngestJob, IngestReport, run_ingest
from app.pipeline.inputs import expand_inputs

__all__ = [
    "IngestJob",
    "run_ingest",
    "CaptureRecord",
    "IngestReport",
    "expand_inputs",
]

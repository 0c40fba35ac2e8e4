"""The ingestion job: input files -> decode and enrich (thread pool) -> one writer -> target.

``IngestJob`` (per-file cancel, for the desktop app) and ``run_ingest`` (the same job,
cancelled by a ``threading.Event``) live in ``app.pipeline.ingest``; which files an
ingest reads is ``app.pipeline.inputs``.
"""

from app.pipeline.ingest import (
    FINAL_STAGES,
    STAGES,
    FileProgress,
    FileResult,
    IngestJob,
    IngestReport,
    run_ingest,
)
from app.pipeline.inputs import expand_inputs

__all__ = [
    "IngestJob",
    "run_ingest",
    "FileProgress",
    "FileResult",
    "IngestReport",
    "expand_inputs",
    "STAGES",
    "FINAL_STAGES",
]

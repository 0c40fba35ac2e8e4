"""The Parquet dataset target: a folder other tools can read as it is.

One job per module:

- ``layout``: where each file lives, what it holds, how it is encoded (names, schemas,
  options, generations, atomic replacement of whole files);
- ``target``: ``ParquetTarget``, opening the folder (lock, recovery, migration), reading
  it, and the entry points that write; its other jobs are its bases:
- ``commit``: the manifest and its commits (the commit protocol over ``app.store.journal``);
- ``stored_masters``, ``unknown_tokens``: the two whole-file tables beside the ticks;
- ``summaries``: each capture's tick summary part;
- ``resolve``: resolve, rewriting tick parts under new names in one commit;
- ``parts``: a capture's part files, written but not committed (``CapturePartsWriter``,
  also used by the Dask engine's workers), within a ``WriteBudget``;
- ``encoding``: the pool of threads that encode part files (``PartEncoders``);
- ``integrity``: verify, damaged captures, remove.
"""

from app.store.checks import MARKER  # the one spelling and rule
from app.store.parquet.encoding import PartEncoders
from app.store.parquet.layout import FORMAT_VERSION, LOCK, NULL_PARTITION, PARQUET_CAPTURES_SCHEMA
from app.store.parquet.parts import CapturePartsWriter, WriteBudget
from app.store.parquet.target import ParquetTarget

__all__ = [
    "FORMAT_VERSION",
    "LOCK",
    "MARKER",
    "NULL_PARTITION",
    "PARQUET_CAPTURES_SCHEMA",
    "CapturePartsWriter",
    "ParquetTarget",
    "PartEncoders",
    "WriteBudget",
]

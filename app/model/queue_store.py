"""The queue saved with its target: restored when the app starts again on that target.

One small JSON file per target in the user's data folder (``queues/<digest>.json``, the
digest of the target's absolute path), rewritten atomically after every change the
window makes. Running rows are saved as they were; loading one back marks it cancelled
("interrupted when the app quit"): it never reached the target.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from app.core.digest import text_sha256
from app.model.session import QueueRow

log = logging.getLogger(__name__)

VERSION = 1


def queue_file(target: str, data_dir: Path | None = None) -> Path:
    from app.logs import data_dir as default_data_dir

    folder = (data_dir or default_data_dir()) / "queues"
    return folder / f"{text_sha256(os.path.abspath(target))[:24]}.json"


def save(target: str, rows: Iterable[QueueRow], data_dir: Path | None = None) -> Path:
    path = queue_file(target, data_dir)
    payload = {"version": VERSION, "target": os.path.abspath(target), "files": [r.to_json() for r in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)
    return path


def load(target: str, data_dir: Path | None = None) -> list[QueueRow]:
    """The saved queue of ``target``; empty when none was saved or it cannot be read."""
    path = queue_file(target, data_dir)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        log.warning("saved queue %s unreadable, starting empty: %s", path, err)
        return []
    if payload.get("target") != os.path.abspath(target) or payload.get("version") != VERSION:
        return []
    rows = []
    for item in payload.get("files", []):
        try:
            rows.append(QueueRow.from_json(item))
        except (TypeError, ValueError, KeyError) as err:
            log.warning("saved queue %s: a row is unreadable (%s); left out", path, err)
    return rows

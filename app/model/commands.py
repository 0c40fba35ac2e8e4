"""Which of the window's commands can run now: decided here, shown by the window.

The same facts the window has (the queue, the selected rows, whether a target is chosen,
how many unknown tokens it holds) give one ``Available``; every menu item, toolbar button
and context-menu entry is enabled from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.model.session import RETRYABLE, QueueRow, Session


@dataclass(frozen=True)
class Available:
    start: bool
    cancel: bool
    retry: bool
    cancel_all: bool
    clear: bool
    export: bool
    resolve: bool
    remove: bool


def removable(rows: Sequence[QueueRow], target: str | None) -> list[QueueRow]:
    """The rows whose capture is in the target (done, or skipped as already there)."""
    return [r for r in rows if r.stored] if target else []


def available(session: Session, selected: Sequence[QueueRow], *, target: str | None,
              unknown_tokens: int) -> Available:
    rows = session.rows
    return Available(
        start=bool(session.queued_unassigned()),
        cancel=any(not r.final for r in selected),
        retry=any(r.status in RETRYABLE for r in selected),
        cancel_all=any(not r.final for r in rows),
        clear=any(r.final for r in rows),
        export=unknown_tokens > 0,
        resolve=bool(target),
        remove=bool(removable(selected, target)),
    )

"""The status bar's words: queue counts by status, the ETA, and how bad things are.

Derived on every change from the session (the queue) and the last read of the target;
the window only shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.capture import ACTIVE, CANCELLED, DONE, FAILED, QUEUED, SKIPPED
from app.model.formatting import human_duration
from app.model.session import Session
from app.model.targets import TargetState

# Severity levels, most severe first.
ERROR, WARNING, OK, IDLE = "error", "warning", "ok", "idle"


@dataclass(frozen=True)
class StatusLine:
    counts: str  # "Running 1 · Queued 2 · Done 3 · Failed 0 · ETA 1m 20s"
    counts_tip: str
    level: str  # ERROR | WARNING | OK | IDLE
    text: str  # "1 failed · 5 bad packets · 890 unresolved ticks"
    tip: str


def finished_message(report) -> str:
    """The status bar's words when a job ends: "Finished: 1 ingested, 1 failed in 3.2 s"."""
    text = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n) or "nothing to do"
    return f"Finished: {text}" + (f" in {report.seconds:.1f} s" if report.seconds else "")


def status_line(session: Session, state: TargetState | None) -> StatusLine:
    counts = session.counts()
    parts = [f"Running {sum(counts[s] for s in ACTIVE)}", f"Queued {counts[QUEUED]}", f"Done {counts[DONE]}",
             f"Failed {counts[FAILED]}"]
    if counts[SKIPPED]:
        parts.append(f"Skipped {counts[SKIPPED]}")
    if counts[CANCELLED]:
        parts.append(f"Cancelled {counts[CANCELLED]}")
    eta = session.eta_seconds()
    counts_tip = ""
    if eta is not None:
        parts.append(f"ETA {human_duration(eta)}")
        counts_tip = (f"ETA: bytes still to read in running files over the rate of the last "
                      f"{int(session.rate.window)} s of all of them")
    bad = state.bad_packets if state else 0
    unresolved = state.unresolved_ticks if state else 0
    unknown_tokens = state.unknown_tokens if state else 0
    text = f"{bad:,} bad packets · {unresolved:,} unresolved ticks"
    tip = (f"In the target: {bad:,} bad packets, {unresolved:,} unresolved ticks, {unknown_tokens:,} unknown tokens"
           if state else "The target has not been read yet")
    if counts[FAILED]:
        level, text = ERROR, f"{counts[FAILED]} failed · {text}"
    elif bad or unresolved or unknown_tokens:
        level = WARNING
    elif counts[DONE] or counts[SKIPPED]:
        level = OK
    else:
        level = IDLE
        if not state or not state.captures:
            text = "Nothing ingested yet"
    return StatusLine("  ·  ".join(parts), counts_tip, level, text, tip)

"""``verify``, ``damaged_captures`` and ``remove`` for the Parquet dataset target.

The manifest (``captures/captures.parquet``) is the truth: each committed capture lists
its parts with the rows, bytes and footer fingerprint they had at commit. Verify checks
each part against that, counts each capture's rows in one scan of the ``file_id`` column
(DuckDB over exactly the listed parts), and walks the dataset's folders for files no
capture lists: part-named ones are orphans (a reader's glob sees their rows), a staged
or temporary part is a note, not damage (readers never see it; the next open for writing
sweeps it when the journal recorded its write as an ended one), anything else is a stray.
Verify's own checks delete nothing; a verify that opened the dataset for writing has
already had that open's recovery and sweep (app.store.journal).
Remove is one commit (app.store.journal) that drops the captures' rows from the manifest
and unpublishes their parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from app.store import journal
from app.store import summary as tick_summary
from app.store.base import (
    REINGEST,
    Finding,
    NotInTarget,
    RemovedCapture,
    capture_name,
    count_findings,
    unknown_orphan_findings,
)

if TYPE_CHECKING:
    from app.store.parquet.target import ParquetTarget


def _check_parts(target: ParquetTarget) -> tuple[list[Finding], dict[str, list[str]]]:
    """Findings about listed parts, and file_id -> the listed parts that are intact."""
    findings: list[Finding] = []
    intact: dict[str, list[str]] = {}
    columns = ["file_id", "path", "parts", "part_rows", "part_bytes", "part_footers"]
    for row in target._captures.select(columns).to_pylist():
        name, fid = capture_name(row["path"]), row["file_id"]
        good = intact.setdefault(fid, [])
        # (not strict: a damaged manifest's lists may differ in length; verify must not raise)
        for rel, rows, size, footer in zip(row["parts"] or [], row["part_rows"] or [], row["part_bytes"] or [],
                                           row["part_footers"] or [], strict=False):
            try:
                found = journal.part_fingerprint(target.path / rel)
            except FileNotFoundError:
                findings.append(Finding("missing_part", name, f"part {rel} is missing", REINGEST, fid))
                continue
            except (OSError, ValueError) as err:
                findings.append(Finding("changed_part", name, f"part {rel} is unreadable ({err})", REINGEST, fid))
                continue
            if footer is None:
                findings.append(Finding("missing_part", name, f"part {rel} was missing or unreadable when this "
                                        "dataset was migrated", REINGEST, fid))
                continue
            if found != (size, rows, footer):
                what = (f"part {rel} changed since its commit ({found[0]:,} bytes, {found[1]:,} rows; "
                        f"committed {size:,} bytes, {rows:,} rows, "
                        f"footer {'same' if found[2] == footer else 'different'})")
                findings.append(Finding("changed_part", name, what, REINGEST, fid))
                continue
            good.append(rel)
    return findings, intact


def damaged_captures(target: ParquetTarget) -> dict[str, str]:
    findings, _ = _check_parts(target)
    damaged: dict[str, str] = {}
    for finding in findings:
        damaged.setdefault(finding.file_id, finding.what)
    return damaged


def _counted_rows(target: ParquetTarget, intact: dict[str, list[str]]) -> tuple[dict, list[Finding]]:
    """file_id -> (tick rows, bad rows) in the intact parts, and findings for rows of
    another capture inside a capture's parts (one scan of the file_id column)."""
    owner = {rel: fid for fid, parts in intact.items() for rel in parts
             if rel.startswith(("ticks/", "bad_packets/"))}
    paths = {rel: capture_name(p) for fid, p in zip(target._captures["file_id"].to_pylist(),
                                                    target._captures["path"].to_pylist(), strict=True)
             for rel in intact.get(fid, [])}
    counted: dict[str, list[int]] = {fid: [0, 0] for fid in intact}
    findings: list[Finding] = []
    if not owner:
        return {k: tuple(v) for k, v in counted.items()}, findings
    con = target._sql()
    try:
        files = [str(target.path / rel) for rel in owner]
        rows = con.execute(
            "SELECT filename, file_id, count(*) FROM read_parquet(?, filename=true, hive_partitioning=false) "
            "GROUP BY ALL", [files],
        ).fetchall()
    finally:
        con.close()
    root = str(target.path) + "/"
    for filename, fid, n in rows:
        rel = Path(filename).as_posix()
        rel = rel[len(root):] if rel.startswith(root) else Path(filename).relative_to(target.path).as_posix()
        expected = owner[rel]
        if fid != expected:
            findings.append(Finding("foreign_rows", paths[rel], f"part {rel} holds {n:,} rows of another capture "
                                    f"({(fid or 'none')[:16]})", REINGEST, expected))
            continue
        counted[expected][0 if rel.startswith("ticks/") else 1] += n
    return {k: tuple(v) for k, v in counted.items()}, findings


def verify(target: ParquetTarget) -> list[Finding]:
    findings, intact = _check_parts(target)
    counted, foreign = _counted_rows(target, intact)
    findings += foreign
    damaged = {f.file_id for f in findings}
    captures = target._captures
    whole = captures.filter(pc.invert(pc.is_in(captures["file_id"], pa.array(sorted(damaged), pa.string()))))
    counts = count_findings(whole, counted)
    findings += counts
    findings += _summary_findings(target, whole, intact, counted, {f.file_id for f in counts})
    findings += _folder_findings(target)
    unknown = target._stored_unknown()
    if unknown is not None:
        findings += unknown_orphan_findings(unknown, captures)
    return findings


def _summary_findings(target: ParquetTarget, captures: pa.Table, intact: dict[str, list[str]],
                      counted: dict, reported: set) -> list[Finding]:
    """Each whole capture's summary part counts the ticks its tick parts hold (one read of
    the small summary parts' ``ticks`` column). A dataset an older Tickscope wrote (format
    2, not opened for writing since) has none: readers compute it, nothing to report."""
    files = {rel: fid for fid, parts in intact.items() for rel in parts if rel.startswith(f"{tick_summary.FOLDER}/")}
    summed = {fid: 0 for fid in files.values()}
    if files:
        con = target._sql()
        try:
            rows = con.execute("SELECT filename, sum(ticks) FROM read_parquet(?, filename = true) GROUP BY ALL",
                               [[str(target.path / rel) for rel in files]]).fetchall()
        finally:
            con.close()
        root = str(target.path) + "/"
        for filename, n in rows:
            rel = Path(filename).as_posix()
            rel = rel[len(root):] if rel.startswith(root) else Path(filename).relative_to(target.path).as_posix()
            summed[files[rel]] += int(n or 0)
    if target.format_version() < 3 and not files:
        return []
    whole = set(captures["file_id"].to_pylist())
    stored = {fid: ticks for fid, (ticks, _) in counted.items() if fid in whole}
    return tick_summary.findings(captures, stored, summed, reported)


def _folder_findings(target: ParquetTarget) -> list[Finding]:
    listed = target._referenced()
    own = target._journal
    fixed = {f"{folder}/{name}" for folder, name in journal.FIXED_FILES.items()}
    fixed.add(f"{journal.JOURNAL_DIR}/{journal.ENDED_FILE}")
    findings = []
    try:
        ended = journal.ended_write_ids(target.path)  # their parts: the next open for writing sweeps them
    except journal.JournalError as err:
        ended = set()
        findings.append(Finding("journal", f"{journal.JOURNAL_DIR}/{journal.ENDED_FILE}", str(err),
                                "move it out of the folder: the dataset then opens as its manifest lists it"))
    for path in sorted(journal.walk_files(target.path)):
        rel = path.relative_to(target.path).as_posix()
        if rel in listed or rel in fixed:
            continue
        if own is not None and (rel == f"{journal.JOURNAL_DIR}/{journal.SESSION_PREFIX}{own.session}.json"
                                or journal.is_private_of(path.name, {own.session}, set(own.write_ids))):
            continue  # this verify's own session
        staged_id = journal.staged_part_write_id(rel)
        if staged_id is not None and staged_id in ended:
            # Never visible, never committed (a commit record publishes staged parts, and
            # opening for writing -- this verify's own open included -- sweeps those of
            # ended writes): so not damage. It is here because a task of an ended run
            # (cancelled, or its worker dropped) staged it after that open.
            findings.append(Finding(
                "staged_part", rel, "Tickscope's own staged part of a write that was never committed (a task "
                "still running after its run ended); readers never see it",
                "nothing to do: the next ingest or open for writing deletes it", damage=False,
            ))
            continue
        if staged_id is not None:
            # Named exactly as Tickscope stages a part, but no journal record names its write:
            # a write in progress (another process's session), a part copied in, or one staged
            # later than the record of ended writes keeps its id. Not visible to readers, so
            # not damage; never deleted, since nothing proves Tickscope wrote it.
            findings.append(Finding(
                "staged_part", rel, "named as Tickscope stages a part, but no journal record names its write "
                "(a write in progress, a copy, or a task that staged it long after its run); readers never see it",
                "Tickscope does not delete it: if no ingest into this dataset is running, move it out of the folder",
                damage=False,
            ))
            continue
        temporary_id = journal.temporary_part_write_id(rel)
        if temporary_id is not None:
            # A part a writer was still encoding when it stopped (a worker killed mid-part, a
            # writer killed without a session record) or is encoding now. Never visible, never
            # committed, so not damage; swept at the next open for writing only when the
            # journal recorded its write id as an ended write's.
            swept = temporary_id in ended
            findings.append(Finding(
                "temporary_part", rel, "Tickscope's own unfinished temporary part (a writer stopped while "
                "encoding it, e.g. a Dask worker killed mid-part, or a write in progress); readers never "
                "see it and no capture lists it",
                "nothing to do: the next ingest or open for writing deletes it" if swept else
                "if no ingest into this dataset is running (no Dask task of an earlier run either), "
                "delete it: it holds no committed data", damage=False,
            ))
            continue
        folder = Path(rel).parent.as_posix()
        part_named = ((folder.startswith("ticks/trading_date=") and journal.PART_NAME.match(path.name))
                      or (folder == "bad_packets" and journal.BAD_NAME.match(path.name)))
        if folder == tick_summary.FOLDER and journal.SUMMARY_NAME.match(path.name):
            findings.append(Finding(
                "orphan_part", rel, "a tick summary part no committed capture lists (left by an older run)",
                "Tickscope never deletes it: move it out of the dataset folder if it is not yours",
            ))
        elif part_named:
            findings.append(Finding(
                "orphan_part", rel, "a part file no committed capture lists (copied in, or left by an older "
                "Tickscope); readers globbing ticks/*/part-*.parquet see its rows",
                "Tickscope never deletes it: move it out of the dataset folder if it is not yours",
            ))
        elif folder == journal.JOURNAL_DIR:
            findings.append(Finding("journal", rel, "a journal file of a run still in progress or not Tickscope's",
                                    "if no Tickscope is writing this dataset, move it out of the folder"))
        else:
            findings.append(Finding(
                "stray_file", rel, "not a file Tickscope wrote (left alone)",
                "move it out of the dataset folder: other tools reading these folders may trip on it",
            ))
    return findings


def remove(target: ParquetTarget, file_ids: Sequence[str]) -> list[RemovedCapture]:
    target._writable()
    wanted = list(dict.fromkeys(file_ids))
    captures = target._captures
    chosen = captures.filter(pc.is_in(captures["file_id"], pa.array(wanted, pa.string())))
    missing = [f for f in wanted if f not in set(chosen["file_id"].to_pylist())]
    if missing:
        raise NotInTarget(missing)
    removed, unpublish = [], []
    for row in chosen.select(["file_id", "path", "parts", "part_rows"]).to_pylist():
        ticks = bad = 0
        # (not strict: a damaged manifest must not stop its captures' removal)
        for rel, rows in zip(row["parts"] or [], row["part_rows"] or [], strict=False):
            unpublish.append(rel)
            if rel.startswith("ticks/"):
                ticks += rows or 0
            elif rel.startswith("bad_packets/"):
                bad += rows or 0
        removed.append(RemovedCapture(row["file_id"], row["path"], ticks, bad))
    kept = captures.filter(pc.invert(pc.is_in(captures["file_id"], chosen["file_id"])))
    target._commit(kept, publish=[], unpublish=unpublish)
    if not target._open_writes:
        journal.prune_partitions(target.path)
    target.rebuild_unknown_tokens()  # a crash before this leaves it stale: rebuilt when next read
    return removed

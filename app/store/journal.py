"""The Parquet dataset's commit protocol: file names, the journal, recovery.

Borrowed from Delta Lake / Iceberg: the dataset is the files its manifest
(``captures/captures.parquet``) lists, never whatever a folder holds; new files are
written first under private names and made visible by one atomic journal write; clean-up
deletes only files whose names Tickscope generated *and* recorded, and staged parts no
live writer owns (see Recovery).

Names (relative to the dataset folder ``T``)::

    published   ticks/trading_date=D/part-<fid16>-<wid>-<n>.parquet   (README's glob matches these)
                bad_packets/bad-<fid16>-<wid>.parquet
                summary/summary-<fid16>-<wid>.parquet                  (the capture's tick summary)
    staged      <same folder>/.<published name>.staged                 (complete, fsynced, not committed)
    temporary   <same folder>/.<published name>.<rand8>.tmp             (a part being encoded)
                <folder>/.<name>.<session>-<rand8>.tmp                  (manifests, journal files)

``<fid16>`` is the capture's sha256 prefix, ``<wid>`` a write id (8 hex), ``<session>`` the
id of one open-for-writing (8 hex). README's recipe globs ``ticks/*/part-*.parquet``:
staged and temporary names start with a dot and never match it, nor does a user's file.

The journal (``T/journal/``)::

    session-<session>.json  written when a writer opens the dataset, rewritten to add each
                            write id before that write creates any file
    ended.json              the write ids of ended sessions whose files another process
                            writes (a Dask task may outlive its run), with when each ended
    commit.json             one commit being applied: the staged manifest, the staged parts
                            to publish and the published parts to delete (unpublish)

A commit: stage the parts and the new manifest, fsync them; write ``commit.json``
atomically (the commit point); delete the unpublished parts (a --force replacement's
old ones, a removed capture's); rename the staged parts to their published names; rename
the staged manifest over ``captures.parquet``; delete ``commit.json``. A reader globbing
at any moment therefore never sees a capture twice (old parts go before new ones come)
and never sees a capture whose commit may still be undone; it may briefly miss one.

Recovery (at the next open for writing, the lock held): a ``commit.json`` is rolled
forward (every step is idempotent); then each recorded session of a dead writer is
swept: staged and temporary files carrying its session id or one of its write ids go,
and its session file with them. Then the parts of ended writes: a write id recorded as
written *elsewhere* (``record_write_id(..., elsewhere=True)``: a Dask task, which Dask
does not stop when its run is cancelled or its worker is dropped) is kept, when its
session ends cleanly or is found dead, in ``journal/ended.json`` (for ``ENDED_KEPT``),
since its writer may stage parts after the session file recording it is gone. Staged and
temporary parts (exactly as ``staged_name`` and ``temporary_part`` name them, in their
own folders) carrying one of those ids are swept: the lock makes this session the only
live writer, such parts are never visible and become data only through a commit record a
live session writes, so nothing committed is lost; one staged after this sweep goes at a
following open. Nothing else is ever deleted: a file Tickscope did not record -- a
user's file in these folders, even one named exactly like a staged or temporary part --
stays, and ``verify`` reports it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
COMMIT_FILE = "commit.json"
ENDED_FILE = "ended.json"  # the record of ended writes whose writer may outlive its session
# How long that record names a write id: a task of an ended run still staging parts a week
# later is not plausible; a part staged after that is reported by verify, never deleted.
ENDED_KEPT = dt.timedelta(days=7)
SESSION_PREFIX = "session-"
FOLDERS = ("ticks", "bad_packets", "summary", "captures", "instruments", "unknown_tokens", JOURNAL_DIR)
FIXED_FILES = {
    "captures": "captures.parquet",
    "instruments": "instruments.parquet",
    "unknown_tokens": "unknown_tokens.parquet",
}
PART_GLOB = "ticks/*/part-*.parquet"  # README's recipe

HEX8 = "[0-9a-f]{8}"
PART_NAME = re.compile(r"^part-(?P<fid>[0-9a-f]{16})-(?P<wid>[0-9a-f]{8})-(?P<n>\d+)\.parquet$")
BAD_NAME = re.compile(r"^bad-(?P<fid>[0-9a-f]{16})-(?P<wid>[0-9a-f]{8})\.parquet$")
SUMMARY_NAME = re.compile(r"^summary-(?P<fid>[0-9a-f]{16})-(?P<wid>[0-9a-f]{8})\.parquet$")  # app.store.summary
# A part's private names: staged, or temporary while being encoded.
PRIVATE_PART = re.compile(
    r"^\.(?P<name>(?:part-[0-9a-f]{16}-(?P<wid>[0-9a-f]{8})-\d+|bad-[0-9a-f]{16}-(?P<bwid>[0-9a-f]{8})"
    r"|summary-[0-9a-f]{16}-(?P<swid>[0-9a-f]{8}))\.parquet)"
    rf"\.(?:staged|{HEX8}\.tmp)$"
)
# A staged part exactly as ``staged_name`` makes it, in the folder its kind lives in
# (``staged_part_write_id``): with a recorded ended write id, what ``sweep_ended`` deletes.
STAGED_PART = re.compile(
    r"^\.(?:part-[0-9a-f]{16}-(?P<wid>[0-9a-f]{8})-\d+|bad-[0-9a-f]{16}-(?P<bwid>[0-9a-f]{8})"
    r"|summary-[0-9a-f]{16}-(?P<swid>[0-9a-f]{8}))\.parquet\.staged$"
)
# A part being encoded, exactly as ``temporary_part`` names one (``temporary_part_write_id``):
# with a recorded ended write id, what ``sweep_ended`` deletes (a task of that ended run
# still writing it then fails: its output could never be committed).
TEMPORARY_PART = re.compile(
    r"^\.(?:part-[0-9a-f]{16}-(?P<wid>[0-9a-f]{8})-\d+|bad-[0-9a-f]{16}-(?P<bwid>[0-9a-f]{8})"
    rf"|summary-[0-9a-f]{{16}}-(?P<swid>[0-9a-f]{{8}}))\.parquet\.{HEX8}\.tmp$"
)
# Manifests and journal files being replaced: tagged with the session that writes them.
PRIVATE_SESSION = re.compile(rf"^\..+\.(?P<session>{HEX8})-{HEX8}\.(?:tmp|staged)$")
SESSION_FILE = re.compile(rf"^{SESSION_PREFIX}(?P<session>{HEX8})\.json$")
PARTITION_DIR = re.compile(r"^trading_date=[^/]+$")


class JournalError(Exception):
    """The journal cannot be read (a hand edit): the dataset needs a look before writing."""


def new_id() -> str:
    return secrets.token_hex(4)


def staged_name(published_rel: str) -> str:
    """``ticks/D/part-x.parquet`` -> ``ticks/D/.part-x.parquet.staged``."""
    folder, _, name = published_rel.rpartition("/")
    return f"{folder}/.{name}.staged" if folder else f".{name}.staged"


def temporary_part(folder: Path, name: str) -> Path:
    return folder / f".{name}.{new_id()}.tmp"


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # directory entries cannot be fsynced on Windows; rename is still atomic
    try:
        fsync_file(path)
    except OSError:
        pass


def part_fingerprint(path: Path) -> tuple[int, int, str]:
    """(bytes, rows, sha256 of the Parquet footer) of one part file.

    The footer holds every row group's offsets, sizes and statistics, so a file cut short,
    rewritten or swapped for another shows a different fingerprint (or none: ValueError)
    without reading the data. Raises OSError when the file cannot be read.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 12:
            raise ValueError(f"{size} bytes, too short for Parquet")
        fh.seek(size - 8)
        tail = fh.read(8)
        if tail[4:] != b"PAR1":
            raise ValueError("no Parquet footer (cut short?)")
        footer_len = int.from_bytes(tail[:4], "little")
        if footer_len + 12 > size:
            raise ValueError("Parquet footer longer than the file (cut short?)")
        fh.seek(size - 8 - footer_len)
        footer = fh.read(footer_len)
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for a broken footer
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"unreadable Parquet footer ({reason})") from None
    return size, rows, hashlib.sha256(footer).hexdigest()


def write_json_atomically(path: Path, data: dict, session: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{session}-{new_id()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as err:
        raise JournalError(f"{path} is unreadable ({err}); it was edited by hand or damaged") from None


def _safe_rel(rel: str) -> str:
    """A journal entry must name a file inside the dataset's own folders."""
    parts = Path(rel).parts
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in parts or not parts or parts[0] not in FOLDERS:
        raise JournalError(f"journal entry {rel!r} does not name a file of the dataset")
    return rel


class Journal:
    """The journal of one dataset folder, opened by its one writer (the lock is held)."""

    def __init__(self, root: Path):
        self.root = root
        self.folder = root / JOURNAL_DIR
        self.session = new_id()
        self.write_ids: list[str] = []
        self.elsewhere: list[str] = []  # the write ids whose files another process writes
        self._session_file = self.folder / f"{SESSION_PREFIX}{self.session}.json"
        self._started = False

    # -- sessions -------------------------------------------------------------------

    def start(self) -> None:
        # Created in place, not through a temporary file: until this name exists nothing
        # records the session, so a temporary file of it could never be proven ours. A
        # kill mid-write leaves this file cut short; recovery then goes by its name alone
        # (no write id exists yet: later rewrites go through recorded temporary names).
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"session": self.session, "pid": os.getpid(), "write_ids": [], "elsewhere": []}).encode()
        fd = os.open(self._session_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.folder)
        self._started = True

    def _write_session(self) -> None:
        write_json_atomically(
            self._session_file, {"session": self.session, "pid": os.getpid(), "write_ids": self.write_ids,
                                 "elsewhere": self.elsewhere},
            self.session,
        )

    def record_write_id(self, write_id: str, *, elsewhere: bool = False) -> None:
        """Record ``write_id`` before any file carrying it is created (recovery's proof).

        ``elsewhere``: another process writes its files (a Dask task), and may go on writing
        after this session ends; the id then outlives the session in the record of ended
        writes (``ENDED_FILE``), which lets later opens sweep what that writer stages late.
        """
        if not re.fullmatch(HEX8, write_id or ""):
            raise ValueError(f"write id must be 8 lowercase hex characters, got {write_id!r}")
        changed = False
        if write_id not in self.write_ids:
            self.write_ids.append(write_id)
            changed = True
        if elsewhere and write_id not in self.elsewhere:
            self.elsewhere.append(write_id)
            changed = True
        if changed:
            self._write_session()

    def end(self) -> list[str]:
        """Sweep this session's private files and drop its session file (clean close)."""
        if not self._started:
            return []
        record = self.pending()
        if record is not None:
            self.apply(record)  # raises (leaving everything for the next open) if it cannot
        # Before the session file (this session's record of them) goes; ids kept long enough dropped.
        if self.elsewhere or _has_expired(self.root):
            self._remember_ended(self.elsewhere, self.session)
        removed = self._sweep({self.session}, set(self.write_ids))
        self._session_file.unlink(missing_ok=True)
        fsync_dir(self.folder)
        self._started = False
        return removed

    # -- commits --------------------------------------------------------------------

    def commit(self, *, manifest_staged: str | None, publish: Iterable[tuple[str, str]],
               unpublish: Iterable[str]) -> dict:
        """Write the commit record (the commit point); the caller then calls ``apply``."""
        record = {
            "session": self.session,
            "manifest": manifest_staged,
            "publish": [[s, p] for s, p in publish],
            "unpublish": list(unpublish),
        }
        write_json_atomically(self.folder / COMMIT_FILE, record, self.session)
        return record

    def pending(self) -> dict | None:
        path = self.folder / COMMIT_FILE
        return _read_json(path) if path.is_file() else None

    def apply(self, record: dict) -> None:
        """Finish a commit (idempotent: a crash in here is finished again at the next open)."""
        root = self.root
        touched: set[Path] = set()
        for rel in record.get("unpublish", []):
            path = root / _safe_rel(rel)
            path.unlink(missing_ok=True)
            touched.add(path.parent)
        for staged, published in record.get("publish", []):
            source, final = root / _safe_rel(staged), root / _safe_rel(published)
            if source.exists():
                os.replace(source, final)
            touched.add(final.parent)
        for folder in touched:
            fsync_dir(folder)
        manifest = record.get("manifest")
        if manifest:
            source = root / _safe_rel(manifest)
            if source.exists():
                os.replace(source, root / "captures" / FIXED_FILES["captures"])
                fsync_dir(root / "captures")
        (self.folder / COMMIT_FILE).unlink(missing_ok=True)
        fsync_dir(self.folder)

    # -- recovery -------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Roll a pending commit forward and sweep dead sessions; the files removed."""
        record = self.pending()
        if record is not None:
            log.info("finishing a commit an interrupted run left in %s", self.root)
            self.apply(record)
        sessions, write_ids, elsewhere, files = set(), set(), set(), []
        if self.folder.is_dir():
            for entry in sorted(self.folder.iterdir()):
                match = SESSION_FILE.match(entry.name)
                if not match or match.group("session") == self.session:
                    continue
                try:
                    data = _read_json(entry)
                except JournalError:
                    data = {}  # cut short while being created: the name is the record
                sessions.add(match.group("session"))
                write_ids.update(_write_ids(data.get("write_ids")))
                elsewhere.update(_write_ids(data.get("elsewhere")))
                files.append(entry)
        if elsewhere:  # a dead writer's tasks may still stage: their ids outlive its session file
            self._remember_ended(elsewhere, min(sessions))  # (written before this session's file exists)
        removed = self._sweep(sessions, write_ids) if sessions else []
        for entry in files:
            entry.unlink(missing_ok=True)
        if files:
            fsync_dir(self.folder)
        if removed:
            log.info("removed %d files interrupted runs left in %s", len(removed), self.root)
        orphans = self.sweep_ended()
        if orphans:
            temporary = sum(1 for rel in orphans if rel.endswith(".tmp"))
            log.info("removed %d staged parts of ended writes (tasks that outlived their run)%s in %s",
                     len(orphans) - temporary, f" and {temporary} of their temporary parts" if temporary else "",
                     self.root)
        return removed + orphans

    def _remember_ended(self, write_ids: Iterable[str], session: str) -> None:
        """Add ``write_ids`` to the record of ended writes, dropping the ids kept for
        ``ENDED_KEPT`` already (the file goes when none is left). Its temporary name carries
        ``session``, a session whose file exists now: a kill mid-write leaves a name the
        next recovery can prove ours."""
        now = _now()
        ended = {w: t for w, t in read_ended(self.root).items() if now - t <= ENDED_KEPT}
        ended.update(dict.fromkeys(write_ids, now))
        path = self.folder / ENDED_FILE
        if ended:
            write_json_atomically(path, {"write_ids": {w: t.isoformat() for w, t in sorted(ended.items())}}, session)
        elif path.exists():
            path.unlink()
            fsync_dir(self.folder)

    def sweep_ended(self) -> list[str]:
        """Delete the staged and temporary parts of the ended writes the journal recorded; the
        files removed.

        Called with the writer lock held, so this session is the only live writer. A write
        whose files another process writes (a Dask task: ``record_write_id(...,
        elsewhere=True)``) may go on after its session ended -- a task still running when its
        run was cancelled or its worker dropped stages its parts after the run closed -- so
        its write id is kept in ``ENDED_FILE`` (for ``ENDED_KEPT``) when that session ends
        or is found dead. A part named exactly as Tickscope stages (``STAGED_PART``) or
        encodes (``TEMPORARY_PART``) one, in its own folder, carrying one of those ids, is
        such a writer's: never visible to readers, published only by a commit record
        listing it, which only a live session writes (and a commit lists only the parts its
        own run's tasks reported), so deleting it loses nothing; a task still writing a
        temporary part then fails, and its output could never have been committed. A part
        that lands after this sweep goes at a following open. A name no record covers (a
        user's file, a part copied from elsewhere) is never deleted: verify reports it.
        """
        sweepable = ended_write_ids(self.root) - set(self.write_ids)
        removed = []
        if not sweepable:
            return removed
        real_root = self.root.resolve()
        for path in walk_files(self.root):
            rel = path.relative_to(self.root).as_posix()
            write_id = staged_part_write_id(rel) or temporary_part_write_id(rel)
            # (a dataset folder that is a link to another dataset: not this lock's to sweep)
            if write_id in sweepable and path.parent.resolve().is_relative_to(real_root):
                path.unlink(missing_ok=True)
                removed.append(rel)
        return removed

    def _sweep(self, sessions: set[str], write_ids: set[str]) -> list[str]:
        """Delete private files carrying one of ``sessions`` or ``write_ids``."""
        removed = []
        for path in walk_files(self.root):
            rel = path.relative_to(self.root).as_posix()
            if is_private_of(path.name, sessions, write_ids):
                path.unlink(missing_ok=True)
                removed.append(rel)
        return removed


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_ids(value) -> list[str]:
    return [w for w in value if isinstance(w, str) and re.fullmatch(HEX8, w)] if isinstance(value, list) else []


def read_ended(root: Path) -> dict[str, dt.datetime]:
    """The record of ended writes (``ENDED_FILE``): write id -> when its session ended."""
    path = root / JOURNAL_DIR / ENDED_FILE
    if not path.is_file():
        return {}
    ids = _read_json(path).get("write_ids")
    try:
        if not isinstance(ids, dict):
            raise ValueError("no write_ids object")
        ended = {}
        for write_id, when in ids.items():
            if not re.fullmatch(HEX8, write_id):
                raise ValueError(f"{write_id!r} is not a write id")
            ended[write_id] = dt.datetime.fromisoformat(when)
            if ended[write_id].tzinfo is None:
                raise ValueError(f"{when!r} has no time zone")
    except (TypeError, ValueError) as err:
        raise JournalError(f"{path} is unreadable ({err}); it was edited by hand or damaged") from None
    return ended


def _has_expired(root: Path) -> bool:
    now = _now()
    try:
        return any(now - t > ENDED_KEPT for t in read_ended(root).values())
    except JournalError:
        return False  # left as it is: verify reports it, the next open for writing refuses it


def ended_write_ids(root: Path) -> set[str]:
    """The write ids whose staged and temporary parts the next open for writing sweeps."""
    now = _now()
    return {w for w, t in read_ended(root).items() if now - t <= ENDED_KEPT}


def prune_partitions(root: Path) -> None:
    """Remove partition folders left empty (a capture replaced or removed). Only while no
    write is open: an encoder may be about to create a file in an empty one."""
    ticks = root / "ticks"
    if not ticks.is_dir():
        return
    for folder in ticks.iterdir():
        if folder.is_dir() and PARTITION_DIR.match(folder.name):
            try:
                folder.rmdir()  # removes only an empty folder
            except OSError:
                pass


def staged_part_write_id(rel: str) -> str | None:
    """The write id of a staged part named exactly as Tickscope stages one, in the folder
    of its kind (``ticks/trading_date=D/.part-…``, ``bad_packets/.bad-…``,
    ``summary/.summary-…``); None for any other name or place."""
    return _part_write_id(rel, STAGED_PART)


def temporary_part_write_id(rel: str) -> str | None:
    """The write id of a temporary part named exactly as ``temporary_part`` names one
    (``.<part name>.<8 hex>.tmp``), in the folder of its kind; None for any other."""
    return _part_write_id(rel, TEMPORARY_PART)


def _part_write_id(rel: str, pattern: re.Pattern) -> str | None:
    folder, _, name = rel.rpartition("/")
    match = pattern.match(name)
    if match is None:
        return None
    if match.group("wid"):
        ok = folder.startswith("ticks/") and folder.count("/") == 1 and PARTITION_DIR.match(folder[len("ticks/"):])
        return match.group("wid") if ok else None
    if match.group("bwid"):
        return match.group("bwid") if folder == "bad_packets" else None
    return match.group("swid") if folder == "summary" else None


def is_private_of(name: str, sessions: set[str], write_ids: set[str]) -> bool:
    part = PRIVATE_PART.match(name)
    if part:
        return (part.group("wid") or part.group("bwid") or part.group("swid")) in write_ids
    tagged = PRIVATE_SESSION.match(name)
    return bool(tagged) and tagged.group("session") in sessions


def walk_files(root: Path):
    """Every file under the dataset's own folders (not the user's elsewhere in ``root``)."""
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                yield Path(dirpath) / name

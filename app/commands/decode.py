"""`tickscope decode`: one capture file to a Parquet file of ticks.

Streams the capture chunk by chunk (``app.core.decode.CaptureReader``), names the ticks
when instrument masters are given, and writes ``TICK_SCHEMA`` rows with one
``pq.ParquetWriter``; Parquet encoding runs in a writer thread (it releases the GIL),
overlapping the decoding of the next chunk, with the per-column encodings of
``app.core.tick_parquet``; the capture's sha256 (``file_id``) is read on a third thread,
started first, while the decoder is imported and the first chunks decode (the writer
needs it before its first row group). The output is written to ``OUT.part`` and
renamed when complete. A short summary goes to stdout; with ``--json`` the last line
is the JSON summary. Faults inside the capture never fail the command (exit 0).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

from app.core.digest import HashCancelled
from app.errors import EXIT_OK, EXIT_PARTIAL, InputError, NoSpaceError, UsageError, is_no_space, no_space_message

DESCRIPTION = "Decode one Kite capture (any framing) into a Parquet file of ticks."
COMPRESSIONS = ("zstd", "lz4", "snappy", "none")
# scripts/bench.py on a 414 MB capture (two runs): zstd 7.7-8.6x the official client with a
# 184 MB file, lz4 8.3-10.8x with 331 MB. Encoding, not compression, dominates; zstd's
# file is 45% smaller for ~15% more time, and both clear the 6x target.
DEFAULT_COMPRESSION = "zstd"
# zstd's fast level -1 rather than Arrow's default 1: ~2% less encoding CPU on the writer
# thread (the whole process's critical path) for a ~1.7% larger file (bench capture, 2.7M ticks).
ZSTD_LEVEL = -1
ROW_GROUP_ROWS = 1 << 20


def add_parser(subparsers) -> None:
    from app.commands.choices import framings

    parser = subparsers.add_parser("decode", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("capture", metavar="CAPTURE", help="the capture file")
    parser.add_argument("--out", "-o", required=True, metavar="TICKS.parquet", help="the Parquet file to write")
    parser.add_argument("--framing", choices=framings(), default=None, metavar="FRAMING",
                        help="the capture container, one of %(choices)s (default: detected from the content)")
    parser.add_argument("--instruments", "-i", nargs="+", action="extend", default=[], metavar="FILE",
                        help="instrument masters to name the ticks (Kite instruments CSV, JSON, Parquet)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default=DEFAULT_COMPRESSION,
                        help=f"Parquet compression (default {DEFAULT_COMPRESSION})")
    parser.add_argument("--json", action="store_true", help="end the output with one JSON summary line")
    parser.set_defaults(run=run)


def _load_book(paths: list[str]):
    """An InstrumentBook of the given masters, or None without any."""
    if not paths:
        return None
    try:
        from app.core.enrich import InstrumentBook
        from app.core.instruments import load_master
    except ImportError as err:  # pragma: no cover - both ship with the app
        raise UsageError(f"instrument enrichment is not available in this build ({err})") from None
    return InstrumentBook([load_master(path) for path in paths])


class _ParquetSink:
    """One Parquet file written by a single thread; batches are queued to it.

    ``file_id`` is a future of the capture's sha256 (hashed on another thread while the
    first chunks decode): every table's ``file_id`` column is stamped with it before it is
    encoded, so the hash is off the critical path without a placeholder ever reaching disk.
    """

    def __init__(self, path: Path, schema, compression: str, file_id=None):
        import pyarrow.parquet as pq

        from app.core.tick_parquet import write_options

        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.writer = pq.ParquetWriter(
            self.part, schema, compression=None if compression == "none" else compression,
            compression_level=ZSTD_LEVEL if compression == "zstd" else None, **write_options(schema),
        )
        self.file_id = file_id
        self.seconds = 0.0
        self.waited = 0.0  # before the first table: the capture's sha256 is needed in every row group
        self._file_ids = None  # the file_id column, sliced for each table
        self.rows = 0
        self.needed_bytes: int | None = None  # for a "no space" message: about what the output needs
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)  # bounds memory: one batch waiting, one being written
        self._thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
        self._thread.start()

    def _stamp(self, table):
        """``table`` with the capture's ``file_id`` (waits for the hash the first time)."""
        if self.file_id is None:
            return table
        import pyarrow as pa

        index = table.schema.get_field_index("file_id")
        if self._file_ids is None or len(self._file_ids) < table.num_rows:
            t0 = time.perf_counter()
            file_id = self.file_id.result()  # an unreadable capture raises InputError here
            self.waited += time.perf_counter() - t0
            # Built once (chunks hold about the same number of rows) and sliced for each table.
            self._file_ids = pa.repeat(pa.scalar(file_id, pa.string()), max(table.num_rows, 1) * 5 // 4)
        return table.set_column(index, "file_id", self._file_ids.slice(0, table.num_rows))

    def _drain(self) -> None:
        while True:
            table = self._queue.get()
            if table is None:
                return
            if self.error is not None:
                continue
            try:
                try:
                    table = self._stamp(table)
                except HashCancelled:  # the run is being abandoned: nothing more is written
                    continue
                t0 = time.perf_counter()
                self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                self.seconds += time.perf_counter() - t0
                self.rows += table.num_rows
            except BaseException as err:  # reported by close()
                self.error = err

    def write(self, table) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(table)

    def close(self, keep: bool) -> None:
        self._queue.put(None)
        self._thread.join()
        t0 = time.perf_counter()
        try:
            self.writer.close()  # the footer: a full disk can fail it too
        except OSError as err:
            self.error = self.error or err
        finally:
            self.seconds += time.perf_counter() - t0
        if self.error is not None or not keep:
            self.part.unlink(missing_ok=True)  # never a half-written output
            if self.error is not None:
                if isinstance(self.error, InputError):  # the capture, not the output
                    raise self.error
                if is_no_space(self.error):
                    raise NoSpaceError(no_space_message(self.path.parent, self.needed_bytes,
                                                        "nothing was written")) from None
                raise InputError(f"cannot write {self.path}: {self.error}") from self.error
            return
        os.replace(self.part, self.path)


# Stands in for the file id while the capture is hashed (never written: _ParquetSink._stamp).
_HASHING = "0" * 64


class _CaptureHash:
    """The capture's sha256 (its ``file_id``), read on its own thread while decoding starts
    (hashlib releases the GIL on its 8 MiB blocks)."""

    def __init__(self, path: Path):
        self.path = path
        self.cancel = threading.Event()  # set when nothing will be written (Ctrl-C, an error)
        self.seconds = 0.0
        self._hex: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capture-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from app.core.digest import file_sha256

        t0 = time.perf_counter()
        try:
            self._hex = file_sha256(self.path, cancel=self.cancel)
        except OSError as err:
            self._error = InputError(f"cannot read capture {self.path}: {err.strerror or err}")
        except BaseException as err:  # pragma: no cover - re-raised by result()
            self._error = err
        self.seconds = time.perf_counter() - t0

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hex


def _check_paths(capture: Path, out: Path) -> None:
    """``--out`` must be a new name or a regular file, not the capture (``output.check_out``)."""
    from app.commands.output import check_out

    check_out(out, [capture])


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


def _human(summary, out: Path, rows: int, seconds: float, enrich_stats) -> str:
    d = summary
    lines = [
        f"{Path(d.path).name}: {d.framing} framing{' (detected)' if d.framing_detected else ''}, "
        f"{d.messages:,} messages, {d.packets:,} packets, {d.heartbeats:,} heartbeats, "
        f"{d.bad_packets:,} bad packets",
    ]
    if d.framing_detected and d.framing_evidence:
        lines.append(f"  framing evidence: {d.framing_evidence}")
    if d.text_frames or d.sent_frames or d.text_lines:
        lines.append(f"  not ticks: {d.text_frames:,} received text frames, {d.sent_frames:,} sent frames"
                     + (f", {d.text_lines:,} separator lines" if d.text_lines else ""))
    for c in d.connections:
        lines.append(f"  connection {c.get('url') or '(no URL)'}: {c.get('messages', 0):,} messages, "
                     f"{c.get('heartbeats', 0):,} heartbeats, {c.get('text_frames', 0):,} text frames, "
                     f"{c.get('sent_frames', 0):,} sent")
    acc = d.accounted
    state = "all accounted" if d.bytes_accounted == d.bytes else f"{d.bytes_accounted:,} accounted (MISMATCH)"
    lines.append(
        f"  {d.bytes:,} bytes, {state}: packets {_percent(acc['packet'], d.bytes)}, "
        f"headers {_percent(acc['header'], d.bytes)}, framing {_percent(acc['framing'], d.bytes)}, "
        f"heartbeats {acc['heartbeat']:,} B, bad {acc['bad']:,} B"
    )
    if d.packets_by_length:
        lengths = ", ".join(f"{length} B: {count:,}" for length, count in sorted(d.packets_by_length.items()))
        lines.append(f"  packets by length: {lengths}")
    if d.bad_bytes_by_reason:
        worst = sorted(d.bad_bytes_by_reason.items(), key=lambda kv: -kv[1])[:5]
        lines.append("  bad bytes: " + "; ".join(f"{reason} ({n:,} B)" for reason, n in worst))
    if d.suspect:
        why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(d.suspect_by_reason.items(), key=lambda kv: -kv[1]))
        lines.append(f"  {d.suspect:,} suspect ticks stored with a suspect_reason (values that cannot be real): {why}")
    if d.invalid_segments:
        lines.append(f"  {d.invalid_segments:,} packets have a segment byte that is no Kite segment (mis-framed?)")
    if enrich_stats is not None:
        lines.append(f"  named {enrich_stats.resolved:,} of {enrich_stats.rows:,} ticks; "
                     f"{enrich_stats.unresolved:,} unresolved")
        # Names that may be of the wrong contract (tokens are recycled): say so.
        for count, what in (
            (enrich_stats.segment_mismatches, "named by a master whose exchange implies another segment byte"),
            (enrich_stats.named_by_later_master, "named by a master of a LATER day (no master on or before their day)"),
            (enrich_stats.named_without_date, "without a known trading day, named by an undated or the newest master"),
        ):
            if count:
                lines.append(f"  warning: {count:,} ticks {what}")
    rate = f" ({d.packets / seconds:,.0f} packets/s)" if seconds > 0 else ""
    lines.append(f"wrote {rows:,} ticks to {out} in {seconds:.2f} s{rate}")
    return "\n".join(lines)


def run(args) -> int:
    capture = Path(args.capture)
    out = Path(args.out)
    _check_paths(capture, out)
    started = time.perf_counter()
    # The sha256 runs beside everything else; the writer stamps it on each table it encodes
    # and cannot encode the first before it is known, so it starts first: it reads the
    # capture while the decoder is imported and the masters load.
    hashing = _CaptureHash(capture)
    try:
        from app.core import schema
        from app.core.decode import CaptureReader

        book = _load_book(args.instruments)
        reader = CaptureReader(capture, args.framing, file_id=_HASHING)
        sink = _ParquetSink(out, schema.TICK_SCHEMA, args.compression, file_id=hashing)
    except BaseException:
        hashing.cancel.set()  # nothing will be written
        raise
    sink.needed_bytes = reader.size
    enrich_stats = None
    enrich_seconds = 0.0
    ok = False
    try:
        for batch in reader.batches():
            t0 = time.perf_counter()
            if book is not None:
                table, stats = book.enrich_with_stats(batch.ticks)
                if enrich_stats is None:
                    enrich_stats = stats
                else:
                    enrich_stats += stats
            else:
                table = schema.unenriched(batch.ticks)
            enrich_seconds += time.perf_counter() - t0
            sink.write(table)
        ok = True
    finally:
        if not ok:
            hashing.cancel.set()  # Ctrl-C or an error: do not finish reading the file
        # A capture that yields no packet writes nothing (as ingest fails it: exit 4).
        sink.close(keep=ok and reader.summary.packets > 0)
    reader.summary.file_id = hashing.result()
    reader.timings["hash"] = hashing.seconds
    seconds = time.perf_counter() - started
    summary = reader.summary
    failure = None
    if not summary.packets:
        from app.core.decode import no_packets_message

        failure = f"{capture.name}: {no_packets_message(summary.bytes, summary.bad_bytes_by_reason)}; nothing written"
        print(f"tickscope: error: {failure}", file=sys.stderr)
    else:
        print(_human(summary, out, sink.rows, seconds, enrich_stats))
    if args.json:
        doc = summary.to_dict()
        doc.update(
            out=str(out),
            ticks=sink.rows,
            seconds=round(seconds, 4),
            compression=args.compression,
            timings={
                **{k: round(v, 4) for k, v in reader.timings.items()},
                "enrich": round(enrich_seconds, 4),
                "parquet": round(sink.seconds, 4),
                "parquet_wait": round(sink.waited, 4),
            },
        )
        if enrich_stats is not None:
            doc["enrichment"] = enrich_stats.to_dict()
        doc["exit_code"] = EXIT_PARTIAL if failure else EXIT_OK
        if failure:
            doc["error"] = failure
            doc["out"] = None
        print(json.dumps(doc))
    sys.stdout.flush()
    return EXIT_PARTIAL if failure else EXIT_OK

"""Reading a target with SQL: the one query module behind the Data view and the CLI twins.

Both targets are read through DuckDB, read-only: the DuckDB file through a read-only
connection (``open_target(read_only=True)``: it takes no writer lock, and a process that
is writing the file makes it ``TargetLockedError``, exit 3), the Parquet dataset through
exactly the parts its manifest (``captures/captures.parquet``) lists as committed, never
a glob, in a private in-memory DuckDB database. Filters and aggregates run in SQL with
parameters; nothing here reads all ticks into Python.

Every query is built as SQL text over ``{ticks}`` (the tick relation) plus named
parameters. The app and ``tickscope candles``/``ticks``/``captures`` run that SQL;
``copy_sql`` renders the same text with the parameters as literals and the relation as
something any DuckDB can open (``ATTACH`` of the DuckDB file read-only, or
``read_parquet`` over the committed part list): the "Copy SQL" of the Data view.

Times: ticks are stored as UTC instants; candles are cut on the India Standard Time
clock (``app.core.market_time``) and their ``start`` is IST ISO 8601 text
(``2025-10-13T09:15:00+05:30``).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from app.core import schema
from app.core.intervals import INTERVALS
from app.core.market_time import IST_OFFSET_US
from app.errors import InputError, UsageError
from app.store import summary as tick_summary

CANDLE_COLUMNS = ["start", "open", "high", "low", "close", "volume", "ticks"]
# Ticks are ordered by their time, then where they were in their capture.
TICK_ORDER = ["tick_time", "file_id", "msg_seq", "pkt_seq"]
TIME_COLUMNS = [f.name for f in schema.TICK_SCHEMA if pa.types.is_timestamp(f.type)]
# What the Data view's ticks table shows first (columns the target lacks are left out).
DEFAULT_TICK_COLUMNS = ["tick_time", "tradingsymbol", "instrument_token", "mode", "last_price",
                        "last_traded_quantity", "volume_traded", "oi", "bid_price", "ask_price",
                        "tick_time_source", "suspect_reason", "file_id", "offset", "msg_seq", "pkt_seq"]
EXPORT_FORMATS = ("csv", "json", "parquet")
LATE_MATERIALIZATION_ROWS = 2000  # pages up to this many rows read only their rows' columns
IST_TEXT = "%Y-%m-%dT%H:%M:%S+05:30"  # strftime of an IST wall-clock timestamp
_IST_US = IST_OFFSET_US


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value) -> str:
    """``value`` as a DuckDB SQL literal (for Copy SQL: the app itself passes parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat()}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Query:
    """SQL over ``{ticks}``, ``{captures}`` and ``{summary}`` (the store's tick summary,
    ``app.store.summary``) with named ``$parameters``."""

    sql: str
    params: dict = field(default_factory=dict)


def render(query: Query, ticks: str, captures: str = "captures", summary: str | None = None) -> str:
    """The query's SQL with the relations named and every parameter as a literal.

    ``summary`` defaults to the summary computed from ``ticks``. Parameters are replaced
    longest name first, so ``$day`` never eats ``$day_to``."""
    summary = summary or f"({tick_summary.summary_sql(ticks)})"
    text = query.sql.replace("{ticks}", ticks).replace("{captures}", captures).replace("{summary}", summary)
    for name in sorted(query.params, key=len, reverse=True):
        text = text.replace(f"${name}", literal(query.params[name]))
    return text


@dataclass
class TickFilter:
    """Which ticks: all of them, or those of a token, days, time range, capture."""

    instrument_token: int | None = None
    day: dt.date | None = None
    time_from: dt.datetime | None = None  # inclusive
    time_to: dt.datetime | None = None  # exclusive
    file_id: str | None = None

    def where(self) -> tuple[str, dict]:
        clauses, params = [], {}
        if self.instrument_token is not None:
            clauses.append("instrument_token = $token")
            params["token"] = int(self.instrument_token)
        if self.day is not None:
            clauses.append("trading_date = $day")
            params["day"] = self.day
        if self.time_from is not None:
            clauses.append("tick_time >= $time_from")
            params["time_from"] = _utc(self.time_from)
        if self.time_to is not None:
            clauses.append("tick_time < $time_to")
            params["time_to"] = _utc(self.time_to)
        if self.file_id is not None:
            clauses.append("file_id = $file_id")
            params["file_id"] = self.file_id
        return (" AND ".join(clauses) if clauses else "true"), params


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("times given to queries must carry a zone")
    return when.astimezone(dt.UTC)


# --- the SQL ------------------------------------------------------------------------


def candles_query(token: int, first_day: dt.date, last_day: dt.date | None = None,
                  interval: str = "1m") -> Query:
    """Candles of one instrument over trading days ``first_day``..``last_day``.

    OHLC of ``last_price`` in time order (ties in capture order); ``ticks`` counts the
    priced ticks of the interval; ``volume`` is the rise of the cumulative
    ``volume_traded`` within the interval, per trading day: its last value in the
    interval minus its last value before the interval on the same day (the first
    interval with a volume of a day starts from its own first value: what traded before
    the first tick seen is not known). NULL when no tick of the interval carries a
    volume (LTP and index packets). Intervals without ticks are absent: gaps.
    """
    if interval not in INTERVALS:
        raise UsageError(f"unknown interval {interval!r}: choose one of {', '.join(INTERVALS)}")
    width = INTERVALS[interval] * 1_000_000
    order = "us, file_id, msg_seq, pkt_seq"
    sql = f"""
WITH t AS (
    SELECT epoch_us(tick_time) AS us, trading_date, last_price, volume_traded, file_id, msg_seq, pkt_seq
    FROM {{ticks}}
    WHERE instrument_token = $token AND trading_date BETWEEN $first_day AND $last_day
      AND tick_time IS NOT NULL AND last_price IS NOT NULL
), b AS (
    SELECT trading_date,
           (us + {_IST_US}) // {width} * {width} - {_IST_US} AS start_us,
           first(last_price ORDER BY {order}) AS open,
           max(last_price) AS high,
           min(last_price) AS low,
           last(last_price ORDER BY {order}) AS close,
           first(volume_traded ORDER BY {order}) FILTER (WHERE volume_traded IS NOT NULL) AS v_first,
           last(volume_traded ORDER BY {order}) FILTER (WHERE volume_traded IS NOT NULL) AS v_last,
           count(*) AS ticks
    FROM t
    GROUP BY ALL
)
SELECT strftime(make_timestamp(start_us + {_IST_US}), '{IST_TEXT}') AS start,
       open, high, low, close,
       v_last - coalesce(last_value(v_last IGNORE NULLS) OVER (
           PARTITION BY trading_date ORDER BY start_us
           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), v_first) AS volume,
       ticks
FROM b
ORDER BY start_us"""
    return Query(sql, {"token": int(token), "first_day": first_day, "last_day": last_day or first_day})


def quotes_query(token: int, day: dt.date, interval: str = "1m") -> Query:
    """Per candle interval: the last best bid, best ask and open interest (NULL where the
    interval's ticks carry none: no depth, no OI)."""
    width = INTERVALS[interval] * 1_000_000
    order = "tick_time, file_id, msg_seq, pkt_seq"
    sql = f"""
SELECT (epoch_us(tick_time) + {_IST_US}) // {width} * {width} - {_IST_US} AS start_us,
       last(bid_price[1] ORDER BY {order}) FILTER (WHERE bid_price[1] > 0) AS bid,
       last(ask_price[1] ORDER BY {order}) FILTER (WHERE ask_price[1] > 0) AS ask,
       last(oi ORDER BY {order}) FILTER (WHERE oi IS NOT NULL) AS oi
FROM {{ticks}}
WHERE instrument_token = $token AND trading_date = $day AND tick_time IS NOT NULL
GROUP BY ALL
ORDER BY start_us"""
    return Query(sql, {"token": int(token), "day": day})


def days_query(token: int) -> Query:
    """The trading days with ticks of one instrument, from the tick summary."""
    return Query("""
SELECT trading_date, sum(ticks)::BIGINT AS ticks, min(first_time) AS first_time, max(last_time) AS last_time
FROM {summary}
WHERE instrument_token = $token AND trading_date IS NOT NULL
GROUP BY trading_date
ORDER BY trading_date""", {"token": int(token)})


def instruments_query(text: str = "", limit: int = 200) -> Query:
    """Instruments whose symbol, name, token or exchange token contains ``text`` (any
    case): prefix matches first, then the busiest. Unresolved tokens are listed too
    (symbol NULL, ``resolved`` false), found by their token.

    Read from the store's tick summary (``app.store.summary``: a row per capture,
    instrument, day and naming), not the ticks: the tokens any of whose rows match, then
    their counts and times summed over all their rows. Tokens are matched as text only
    when ``text`` is digits."""
    text = (text or "").strip()
    params = {"limit": int(limit)}
    hit = rank = ""
    if text:
        # Plain substring tests (no LIKE patterns: "%" and "_" are text).
        params["text"] = text.lower()
        match = "contains(lower(tradingsymbol), $text) OR contains(lower(name), $text)"
        if text.isdigit():
            match += (" OR contains(CAST(instrument_token AS VARCHAR), $text)"
                      " OR contains(CAST(exchange_token AS VARCHAR), $text)")
        hit = f"JOIN (SELECT DISTINCT instrument_token FROM {{summary}} WHERE {match}) hit USING (instrument_token)"
        rank = ("(CASE WHEN starts_with(lower(symbol), $text) OR starts_with(CAST(instrument_token AS VARCHAR), "
                "$text) THEN 0 ELSE 1 END), ")
    sql = f"""
SELECT instrument_token,
       any_value(exchange_token) AS exchange_token,
       any_value(tradingsymbol) AS symbol,
       any_value(name) AS name,
       any_value(exchange) AS exchange,
       any_value(instrument_type) AS instrument_type,
       bool_or(coalesce(resolved, false)) AS resolved,
       sum(ticks)::BIGINT AS ticks,
       min(first_time) AS first_time,
       max(last_time) AS last_time
FROM {{summary}}
{hit}
GROUP BY instrument_token
ORDER BY {rank}ticks DESC, instrument_token
LIMIT $limit"""
    return Query(sql, params)


def ticks_query(flt: TickFilter, columns: Sequence[str], *, order_by: str | None = None,
                descending: bool = False, limit: int | None = None, offset: int = 0,
                ist_text: bool = False) -> Query:
    """The selection's ticks, ``columns`` (checked by the caller), sorted by ``order_by``
    then capture order; ``ist_text``: time columns as IST ISO 8601 text (CSV, JSON)."""
    where, params = flt.where()
    select = []
    for name in columns:
        column = _quote_ident(name)
        if ist_text and name in TIME_COLUMNS:
            select.append(f"strftime(make_timestamp(epoch_us({column}) + {_IST_US}), "
                          f"'%Y-%m-%dT%H:%M:%S.%f+05:30') AS {column}")
        else:
            select.append(column)
    keys = [k for k in TICK_ORDER if k != order_by]
    direction = " DESC" if descending else ""
    order = ([f"{_quote_ident(order_by)}{direction} NULLS LAST"] if order_by else []) + keys
    sql = f"SELECT {', '.join(select)}\nFROM {{ticks}}\nWHERE {where}\nORDER BY {', '.join(order)}"
    if limit is not None:
        sql += "\nLIMIT $limit OFFSET $offset"
        params = dict(params, limit=int(limit), offset=int(offset))
    return Query(sql, params)


def breakdown_query(file_id: str) -> Query:
    """A capture's ticks by packet length (and mode: one length can hold two kinds) and segment."""
    return Query("""
SELECT packet_length, mode, segment, count(*) AS ticks
FROM {ticks}
WHERE file_id = $file_id
GROUP BY ALL
ORDER BY ALL""", {"file_id": file_id})


def series_query(token: int) -> Query:
    """Every timed tick of one instrument: time (epoch microseconds), day, price, volume."""
    return Query("""
SELECT epoch_us(tick_time) AS us, trading_date, last_price, volume_traded
FROM {ticks}
WHERE instrument_token = $token AND tick_time IS NOT NULL
ORDER BY tick_time, file_id, msg_seq, pkt_seq""", {"token": int(token)})


def count_query(flt: TickFilter) -> Query:
    """How many ticks the filter selects: from the tick summary when it filters only on
    what the summary keeps (instrument, day, capture), else by counting the ticks."""
    where, params = flt.where()
    if flt.time_from is None and flt.time_to is None:
        return Query(f"SELECT coalesce(sum(ticks), 0)::BIGINT FROM {{summary}} WHERE {where}", params)
    return Query(f"SELECT count(*) FROM {{ticks}} WHERE {where}", params)


# --- a target open for reading --------------------------------------------------------


@dataclass
class CaptureRow:
    """One row of the captures list."""

    file_id: str
    file_name: str
    path: str
    trading_days: list
    ticks: int
    suspect: int | None  # None: the target does not count them (older captures)
    bad_packets: int
    unresolved: int
    framing: str
    ingested_at: dt.datetime | None
    integrity: str  # "ok", or what verify found for this capture

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["trading_days"] = [day.isoformat() for day in self.trading_days]
        d["ingested_at"] = self.ingested_at.isoformat() if self.ingested_at else None
        return d


class TargetReader:
    """A target open read-only for SQL: ``with TargetReader(path) as r: r.candles(...)``."""

    def __init__(self, path: Path | str):
        from app.store import check_target, open_target

        check = check_target(path, must_exist=True, writable=False)
        self.path = check.path
        self.kind = check.kind
        self.missing_parts: list[str] = []
        self.target = open_target(check.path, read_only=True)
        try:
            if self.kind == "duckdb":
                self.con = self.target.con
                self._own_con = False
                if self.target.has_summary():
                    self.summary = tick_summary.TABLE
                else:  # written by a Tickscope before the summary: computed from the ticks
                    self.summary = "(" + tick_summary.summary_sql(
                        "ticks", has_suspect="suspect_reason" in self.target._columns_of("ticks")) + ")"
            else:
                self.con = duckdb.connect()
                self._own_con = True
                self.con.execute("SET TimeZone = 'UTC'")
                # Exactly the committed parts; one missing is left out here (the captures
                # list shows it, from verify) so the rest of the dataset stays readable.
                listed = self.target._tick_files()
                self._files = [f for f in listed if os.path.isfile(f)]
                self.missing_parts = sorted(set(listed) - set(self._files))
                self.con.execute(f"CREATE VIEW ticks AS SELECT * FROM {self._parquet_source()}")
                self.con.register("captures", self.target.captures())
                self.con.execute(f"CREATE VIEW summary AS {self._parquet_summary('ticks')}")
                self.summary = "summary"
            # A page of ticks (ORDER BY ... LIMIT) is found reading only the filter and sort
            # columns, then only its rows' other columns are read (DuckDB's late
            # materialization; its default covers 50 rows, a page is 200): 4-8x faster at
            # 20M ticks, and no longer growing with the day's other instruments.
            self.con.execute(f"SET late_materialization_max_rows = {LATE_MATERIALIZATION_ROWS}")
            self.columns = [r[0] for r in self.con.execute("DESCRIBE SELECT * FROM ticks").fetchall()]
        except BaseException:
            self.close()
            raise

    def _parquet_source(self) -> str:
        if not self._files:
            # No committed part: an empty relation of the tick schema.
            name = f"tickscope_empty_{secrets.token_hex(6)}"
            self.con.register(name, schema.TICK_SCHEMA.empty_table())
            return name
        files = ", ".join(literal(f) for f in self._files)
        return (f"read_parquet([{files}], hive_partitioning = true, "
                "hive_types = {'trading_date': DATE}, union_by_name = true)")

    def _parquet_summary(self, ticks: str) -> str:
        """The dataset's summary parts, plus the summary of the captures without one (a
        dataset an older Tickscope wrote, not opened for writing since) from their ticks."""
        files, lacking = self.target.summary_parts()
        files = [f for f in files if os.path.isfile(f)]
        pieces = []
        if files:
            pieces.append(f"SELECT * FROM {tick_summary.parquet_source([literal(f) for f in files])}")
        if lacking and self._files:
            where = f"list_contains({literal(sorted(lacking))}, file_id)"
            pieces.append(tick_summary.summary_sql(ticks, where=where))
        if not pieces:
            name = f"tickscope_empty_{secrets.token_hex(6)}"
            self.con.register(name, tick_summary.SUMMARY_SCHEMA.empty_table())
            return f"SELECT * FROM {name}"
        return "\nUNION ALL BY NAME\n".join(pieces)

    def close(self) -> None:
        if getattr(self, "_own_con", False) and self.con is not None:
            self.con.close()
        self.con = None
        target = getattr(self, "target", None)
        if target is not None:
            target.close()
            self.target = None

    def __enter__(self) -> TargetReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running ---------------------------------------------------------------

    def run(self, query: Query) -> pa.Table:
        try:
            return self.con.sql(render_params(query, self.summary), params=query.params).to_arrow_table()
        except (duckdb.IOException, duckdb.InvalidInputException) as err:
            raise self._unreadable(err) from None

    def _unreadable(self, err: Exception) -> InputError:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return InputError(f"cannot read the target {self.path}: {first}; check it with `tickscope verify`")

    def copy_sql(self, query: Query) -> str:
        """SQL any DuckDB runs to get the same rows from this target (parameters inlined)."""
        if self.kind == "duckdb":
            head = f"ATTACH {literal(str(self.path))} AS tickscope (READ_ONLY);\n"
            summary = f"tickscope.{tick_summary.TABLE}" if self.summary == tick_summary.TABLE else None
            return head + render(query, "tickscope.ticks", "tickscope.captures", summary).strip() + ";\n"
        if not self._files:
            return "-- the dataset has no committed ticks yet\n"
        files = ", ".join(literal(f) for f in self._files)
        source = (f"read_parquet([{files}], hive_partitioning = true, "
                  "hive_types = {'trading_date': DATE}, union_by_name = true)")
        summary = f"({self._parquet_summary(source)})"
        return render(query, source, literal(str(self.path / "captures" / "captures.parquet")),
                      summary).strip() + ";\n"

    def export(self, query: Query, out: Path | str, fmt: str) -> int:
        """Write the query's rows to ``out`` (csv, json array or parquet) through a temporary
        file in the same folder, renamed when complete; returns the rows written."""
        if fmt not in EXPORT_FORMATS:
            raise UsageError(f"unknown format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
        out = Path(out)
        options = {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json, ARRAY true",
                   "parquet": "FORMAT parquet, COMPRESSION zstd"}[fmt]
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            rows = self.con.execute(
                f"COPY ({render_params(query, self.summary)}) TO {literal(tmp)} ({options})", query.params
            ).fetchall()
            os.replace(tmp, out)
        except (duckdb.IOException, duckdb.InvalidInputException) as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, duckdb.IOException) and "No space left" in str(err):
                raise OSError(28, "No space left on device", str(out)) from None
            raise self._unreadable(err) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return int(rows[0][0]) if rows and rows[0] else 0

    # -- the questions ------------------------------------------------------------

    def has_column(self, name: str) -> bool:
        return name in self.columns

    def tick_columns(self) -> list[str]:
        """The target's tick columns, in the tick schema's order."""
        order = {n: i for i, n in enumerate(schema.TICK_SCHEMA.names)}
        return sorted(self.columns, key=lambda n: order.get(n, len(order)))

    def check_columns(self, columns: Sequence[str]) -> list[str]:
        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise UsageError(f"no such tick column: {', '.join(unknown)} "
                             f"(the columns are: {', '.join(self.tick_columns())})")
        return list(columns)

    def default_tick_columns(self) -> list[str]:
        return [c for c in DEFAULT_TICK_COLUMNS if c in self.columns]

    def captures(self, *, verify: bool = True) -> list[CaptureRow]:
        """Every committed capture with its stored ticks, trading days and integrity state
        (the store's own ``verify``; ``verify=False`` leaves it "not checked")."""
        caps = self.target.captures()
        if self.kind == "duckdb":
            per_day = self.con.execute(
                f"SELECT file_id, trading_date, sum(ticks) FROM {self.summary} GROUP BY ALL ORDER BY ALL").fetchall()
        else:
            per_day = self._manifest_days()
        days: dict[str, list] = {}
        ticks: dict[str, int] = {}
        for fid, day, n in per_day:
            if day is not None and day not in days.setdefault(fid, []):
                days[fid].append(day)
            ticks[fid] = ticks.get(fid, 0) + int(n or 0)
        integrity: dict[str, str] = {}
        if verify:
            for finding in self.target.verify():
                if finding.file_id:
                    integrity.setdefault(finding.file_id, finding.what)
        has_suspect = "suspect" in caps.column_names
        rows = []
        for row in caps.to_pylist():
            fid = row["file_id"]
            rows.append(CaptureRow(
                file_id=fid, file_name=Path(row["path"] or "").name, path=row["path"] or "",
                trading_days=sorted(days.get(fid, [])), ticks=ticks.get(fid, 0),
                suspect=row.get("suspect") if has_suspect else None,
                bad_packets=int(row["bad_packets"] or 0), unresolved=int(row["unresolved_ticks"] or 0),
                framing=row["framing"] or "", ingested_at=row["ingested_at"],
                integrity=integrity.get(fid, "ok") if verify else "not checked",
            ))
        return rows

    def _manifest_days(self) -> list[tuple]:
        """(file_id, trading date, rows) from the manifest's part list: no tick is read."""
        out = []
        table = self.target._captures
        for fid, parts, part_rows in zip(table["file_id"].to_pylist(), table["parts"].to_pylist(),
                                         table["part_rows"].to_pylist(), strict=True):
            for rel, n in zip(parts or [], part_rows or [], strict=False):  # (a damaged manifest must not raise)
                if not rel.startswith("ticks/"):
                    continue
                value = rel.split("/")[1].split("=", 1)[1]
                day = None if value.startswith("__HIVE") else dt.date.fromisoformat(value)
                out.append((fid, day, n or 0))
        return out

    def instruments(self, text: str = "", limit: int = 200) -> pa.Table:
        return self.run(instruments_query(text, limit))

    def token_for(self, symbol: str) -> int:
        """The instrument token of a trading symbol (``NSE:INFY`` or ``INFY``, any case);
        UsageError when no tick or several instruments carry it."""
        exchange, _, name = symbol.rpartition(":")
        params = {"symbol": name.strip().upper()}
        where = "upper(tradingsymbol) = $symbol"
        if exchange:
            where += " AND upper(exchange) = $exchange"
            params["exchange"] = exchange.strip().upper()
        found = self.con.execute(
            f"SELECT instrument_token, any_value(exchange), any_value(tradingsymbol) FROM {self.summary} "
            f"WHERE {where} GROUP BY instrument_token ORDER BY instrument_token", params).fetchall()
        if not found:
            raise UsageError(f"no ticks of symbol {symbol} in {self.path} (try `--token N`, or search with "
                             "the Data view)")
        if len(found) > 1:
            names = ", ".join(f"{ex}:{sym} (token {tok})" for tok, ex, sym in found)
            raise UsageError(f"symbol {symbol} names several instruments: {names}; give EXCHANGE:SYMBOL or --token")
        return int(found[0][0])

    def days(self, token: int) -> pa.Table:
        return self.run(days_query(token))

    def candles(self, token: int, day: dt.date, interval: str = "1m", last_day: dt.date | None = None) -> pa.Table:
        return self.run(candles_query(token, day, last_day, interval))

    def quotes(self, token: int, day: dt.date, interval: str = "1m") -> pa.Table:
        return self.run(quotes_query(token, day, interval))

    def count(self, flt: TickFilter) -> int:
        return int(self.run(count_query(flt)).column(0)[0].as_py())

    def ticks_page(self, flt: TickFilter, columns: Sequence[str], *, order_by: str | None = None,
                   descending: bool = False, limit: int = 200, offset: int = 0) -> pa.Table:
        columns = self.check_columns(columns)
        if order_by is not None:
            self.check_columns([order_by])
        return self.run(ticks_query(flt, columns, order_by=order_by, descending=descending,
                                    limit=limit, offset=offset))

    def tick_at(self, flt: TickFilter, row: int, columns: Sequence[str], *, order_by=None,
                descending=False) -> dict:
        page = self.ticks_page(flt, columns, order_by=order_by, descending=descending, limit=1, offset=row)
        if page.num_rows == 0:
            raise InputError("that tick is no longer in the target")
        return page.to_pylist()[0]


def render_params(query: Query, summary: str = tick_summary.TABLE) -> str:
    """The query's SQL for this process: relations by their names in the reader's database."""
    return query.sql.replace("{ticks}", "ticks").replace("{captures}", "captures").replace("{summary}", summary)


def open_reader(path: Path | str) -> TargetReader:
    return TargetReader(path)

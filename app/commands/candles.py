"""`tickscope candles`: one instrument-day of candles from a target.

Columns ``start`` (IST, ISO 8601), ``open``, ``high``, ``low``, ``close``, ``volume``,
``ticks``: the query of the Data view's Instrument day chart
(``app.store.query.candles_query``): OHLC of ``last_price``; ``volume`` the rise of the
cumulative ``volume_traded`` within the interval, per trading day (empty where no tick
carries one); intervals without ticks are absent.
"""

from __future__ import annotations

import datetime as dt

from app.errors import UsageError

DESCRIPTION = "Candles (OHLC, volume, ticks) of one instrument on one trading day."


def add_instrument_args(parser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbol", metavar="S", help="trading symbol, e.g. INFY or NSE:INFY")
    which.add_argument("--token", metavar="N", type=int, help="instrument token")


def add_output_args(parser) -> None:
    parser.add_argument("--format", choices=("csv", "json", "parquet"), default="csv",
                        help="csv (default), json (one array) or parquet (needs --out)")
    parser.add_argument("--out", "-o", metavar="FILE", help="write here (a new name or a regular file) "
                        "instead of standard output")


def add_parser(subparsers) -> None:
    from app.core.intervals import INTERVALS

    parser = subparsers.add_parser("candles", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    add_instrument_args(parser)
    parser.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="the trading day (IST)")
    parser.add_argument("--interval", choices=list(INTERVALS), default="1m", help="candle width (default 1m)")
    add_output_args(parser)
    parser.set_defaults(run=run)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--day must be YYYY-MM-DD, got {text!r}") from None


def instrument_token(reader, args) -> int:
    return int(args.token) if args.token is not None else reader.token_for(args.symbol)


def run(args) -> int:
    from app.commands.output import write_result
    from app.store.query import TargetReader, candles_query

    day = parse_day(args.day)
    with TargetReader(args.target) as reader:
        query = candles_query(instrument_token(reader, args), day, None, args.interval)
        write_result(args.out, args.format, lambda path: reader.export(query, path, args.format))
    return 0

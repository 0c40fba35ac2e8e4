"""`tickscope ticks`: the ticks of one instrument from a target, optionally in a time range.

The query of the Data view's Ticks table (``app.store.query.ticks_query``), in time
order. ``--from`` is inclusive, ``--to`` exclusive; times without a zone are IST. In CSV
and JSON, time columns are IST ISO 8601 text; Parquet keeps them as UTC timestamps.
"""

from __future__ import annotations

from app.errors import UsageError

DESCRIPTION = "The ticks of one instrument (a time range, chosen columns) as CSV, JSON or Parquet."


def add_parser(subparsers) -> None:
    from app.commands.candles import add_instrument_args, add_output_args

    parser = subparsers.add_parser("ticks", help=DESCRIPTION, description=DESCRIPTION)
    parser.add_argument("target", metavar="TARGET", help="a .duckdb file or a Parquet dataset folder")
    add_instrument_args(parser)
    parser.add_argument("--from", dest="time_from", metavar="T",
                        help="first time (inclusive): YYYY-MM-DD[THH:MM[:SS]], IST unless a zone is given")
    parser.add_argument("--to", dest="time_to", metavar="T", help="end time (exclusive), same forms")
    parser.add_argument("--columns", nargs="+", action="extend", metavar="COLUMN",
                        help="tick columns to write (comma or space separated; default: a readable set)")
    add_output_args(parser)
    parser.set_defaults(run=run)


def _time(text, flag):
    from app.core.market_time import parse_time

    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as err:
        raise UsageError(f"{flag}: {err}") from None


def run(args) -> int:
    from app.commands.candles import instrument_token
    from app.commands.output import write_result
    from app.store.query import TargetReader, TickFilter, ticks_query

    time_from, time_to = _time(args.time_from, "--from"), _time(args.time_to, "--to")
    if time_from and time_to and time_to <= time_from:
        raise UsageError("--to must be after --from")
    with TargetReader(args.target) as reader:
        if args.columns:
            columns = [c.strip() for item in args.columns for c in item.split(",") if c.strip()]
            reader.check_columns(columns)
        else:
            columns = reader.default_tick_columns()
        flt = TickFilter(instrument_token=instrument_token(reader, args), time_from=time_from, time_to=time_to)
        query = ticks_query(flt, columns, ist_text=args.format != "parquet")
        write_result(args.out, args.format, lambda path: reader.export(query, path, args.format))
    return 0

"""The Data view: its candles equal candles computed in plain Python (both targets), its
ticks table pages lazily and sorts, Show packet leads from a tick to its packet in the
inspector, and removing a capture says how many ticks go."""

from __future__ import annotations

import shutil

import pytest

from app.model import data as dm
from app.store import open_target
from app.store.query import TickFilter
from tests.store import query_data as qd
from tests.ui.conftest import wait_idle
from tests.ui.test_main_window import _ingest


@pytest.fixture(params=["duckdb", "parquet"])
def small_target(request, tmp_path, query_target_template):
    return qd.copy_target(query_target_template(request.param), tmp_path / qd.target_name(request.param))


def _ticks(path):
    with open_target(path, read_only=True) as t:
        return t.ticks().to_pylist()


def test_instrument_day_model_matches_plain_python(small_target):
    """Every interval with every instrument and every day, and every instrument on every
    day (15 loads: the candle SQL itself is checked on all 45 combinations by
    tests/store/test_query.py, which runs the same ``candles_query``)."""
    ticks = _ticks(small_target)
    tokens, days = (qd.INFY, qd.INFY_FUT, qd.INDEX), (qd.DAY1, qd.DAY2, qd.DAY3)
    cases = [(interval, tokens[t], days[(t + i) % 3]) for i, interval in enumerate(qd.WIDTHS) for t in range(3)]
    assert {(token, day) for _, token, day in cases} == {(t, d) for t in tokens for d in days}
    assert {(interval, day) for interval, _, day in cases} == {(i, d) for i in qd.WIDTHS for d in days}
    for interval, token, day in cases:
        model = dm.load_instrument_day(str(small_target), token, day, interval)
        assert model.rows() == qd.reference_candles(ticks, token, day, interval), (interval, token, day)
    model = dm.load_instrument_day(str(small_target), qd.INFY, None, "1m")
    assert model.days == [qd.DAY1, qd.DAY2, qd.DAY3] and model.day == qd.DAY3  # the last day by default


def test_the_chart_shows_the_model_with_gaps_and_a_readout(qtbot, window, small_target):
    ticks = _ticks(small_target)  # before the window's tasks hold the target
    window.set_target(str(small_target))
    wait_idle(qtbot, window)
    window.show_data()
    view = window.data_view
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "day", timeout=30_000):
        view.show_instrument(qd.INFY, "NSE:INFY", qd.DAY1)
    expected = qd.reference_candles(ticks, qd.INFY, qd.DAY1, "1m")
    assert view.day.rows() == expected
    chart = view.chart
    # Crosshair readout: over a candle its OHLCV; in the gap (09:20-09:24 IST) none.
    first = expected[0]
    x = view.day.starts[0] + 30
    assert chart.readout_at(x).endswith(f"09:15 IST · O {first['open']:,.2f} · H {first['high']:,.2f} · "
                                        f"L {first['low']:,.2f} · C {first['close']:,.2f} · V {first['volume']:,} · "
                                        f"{first['ticks']} ticks")
    gap = view.day.starts[0] + 6 * 60
    assert "a gap" in chart.readout_at(gap)
    # The calendar marks the days with ticks; another interval reloads the same day.
    assert view.calendar.dateTextFormat().keys()
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "day", timeout=30_000):
        view.interval.setCurrentText("5m")
    assert view.day.rows() == qd.reference_candles(ticks, qd.INFY, qd.DAY1, "5m")


def test_search_then_ticks_page_lazily_and_sort(qtbot, window, small_target):
    ticks = _ticks(small_target)
    window.set_target(str(small_target))
    wait_idle(qtbot, window)
    window.show_data()
    view = window.data_view
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "instruments", timeout=30_000):
        view.search.setText("infy")
    assert [r["symbol"] for r in view.instruments_model.rows] == ["INFY", "INFY25OCTFUT"]
    view.ticks_model.page_rows = 10
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "ticks", timeout=30_000):
        view.show_ticks(dm.day_selection(qd.INFY, "NSE:INFY", qd.DAY1))
    model = view.ticks_model
    expected = sorted((t for t in ticks if t["instrument_token"] == qd.INFY
                       and t["trading_date"] == qd.DAY1), key=lambda t: (t["tick_time"], t["msg_seq"]))
    assert model.rowCount() == len(expected) and len(model.pages) == 1
    price = model.columns.index("last_price")
    # Row 35 is on a page not fetched yet: a placeholder, then the page arrives.
    assert model.data(model.index(35, price)) == "…"
    qtbot.waitUntil(lambda: model.row(35) is not None, timeout=30_000)
    assert 3 in model.requested and len(model.pages) < len(expected) // 10 + 1  # not every page
    assert model.row(35)["last_price"] == expected[35]["last_price"]
    # A header click sorts in SQL: descending price on the second click.
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "ticks", timeout=30_000):
        view._sort_clicked(price)
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "ticks", timeout=30_000):
        view._sort_clicked(price)
    assert view.selection.order_by == "last_price" and view.selection.descending
    assert model.row(0)["last_price"] == max(t["last_price"] for t in expected)


def test_a_failed_load_is_asked_again_when_the_view_is_shown_again(qtbot, window, small_target, monkeypatch):
    load = dm.load_captures
    calls = []

    def locked_once(target):
        calls.append(target)
        if len(calls) == 1:
            raise RuntimeError("target is locked by PID 9")
        return load(target)

    monkeypatch.setattr(dm, "load_captures", locked_once)
    window.set_target(str(small_target))
    window.show_data()
    view = window.data_view
    qtbot.waitUntil(lambda: "locked" in view.message.text(), timeout=30_000)
    assert not view.captures_model.rows
    window.top_tabs.setCurrentWidget(window.queue_stack)
    window.show_data()
    qtbot.waitUntil(lambda: len(view.captures_model.rows) == 3, timeout=30_000)
    assert len(calls) == 2
    wait_idle(qtbot, window)


def test_remove_confirms_with_the_tick_count(qtbot, window, small_target, monkeypatch):
    from app.ui import data_view

    asked = []
    monkeypatch.setattr(data_view.DataAsk, "confirm_remove",
                        classmethod(lambda cls, parent, names, ticks, bad, target: asked.append((names, ticks))
                                    or True))
    window.set_target(str(small_target))
    wait_idle(qtbot, window)
    view = window.data_view
    assert view.target == str(small_target) and not view.captures_model.rows  # hidden: nothing queried
    window.show_data()
    qtbot.waitUntil(lambda: len(view.captures_model.rows) == 3, timeout=30_000)
    row = [r.file_name for r in view.captures_model.rows].index("day2.bin")
    view.captures_view.selectRow(row)
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "captures", timeout=30_000):
        view.remove_selected_captures()
    assert asked == [(["day2.bin"], len(qd.make_ticks()["day2.bin"]))]
    assert [r.file_name for r in view.captures_model.rows] == ["day1.bin", "day3.bin"]


def _show_packet_of(qtbot, window, view, tick_row: int):
    view.ticks_view.selectRow(tick_row)
    tick = view.current_tick()
    with qtbot.waitSignal(window.data_view.open_packet, timeout=60_000):
        view.show_packet()
    qtbot.waitUntil(lambda: bool(getattr(window, "inspectors", [])), timeout=10_000)
    inspector = window.inspectors[-1]
    if inspector.current is None or inspector.current.offset > tick["offset"] or \
            inspector.current.offset + inspector.current.length <= tick["offset"]:
        with qtbot.waitSignal(inspector.packet_revealed, timeout=60_000):
            pass
    return tick, inspector


def _field(inspector, name):
    return next(f.value for f in inspector.current.dissection.fields if f.name == name)


@pytest.fixture(scope="module")
def named_capture(tmp_path_factory):
    """A 4,000-packet synthetic capture and the instrument master naming its instruments
    (generated once; tests copy the capture, which they move)."""
    from tests.support import synthetic

    folder = tmp_path_factory.mktemp("named")
    capture = folder / "binary_data_20251013_091500.dat"
    instruments = synthetic.make_instruments(5)
    synthetic.generate_capture(capture, packets=4000, seed=5, instruments=instruments)
    master = folder / "instruments_20251013.csv"
    synthetic.write_instruments_csv(master, instruments, synthetic.SESSION_DATE)
    return capture, master


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_show_packet_opens_the_inspector_on_the_ticks_packet(qtbot, window, named_capture, tmp_path, kind):
    source, master = named_capture
    capture = tmp_path / source.name
    shutil.copyfile(source, capture)
    target = tmp_path / ("t.duckdb" if kind == "duckdb" else "dataset")
    _ingest(qtbot, window, [capture], target, [master])
    window.show_data()
    view = window.data_view
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "instruments", timeout=30_000):
        view.search_instruments()
    busiest = next(r for r in view.instruments_model.rows if r["symbol"] and r["instrument_type"] != "INDEX")
    wait_idle(qtbot, window)
    day = dm.load_instrument_day(str(target), busiest["instrument_token"], None).day
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "ticks", timeout=30_000):
        view.show_ticks(dm.day_selection(busiest["instrument_token"], busiest["symbol"], day))
    for tick_row in (0, 7):
        tick, inspector = _show_packet_of(qtbot, window, view, tick_row)
        assert inspector.current.offset <= tick["offset"] < inspector.current.offset + inspector.current.length
        assert _field(inspector, "instrument_token") == tick["instrument_token"] == busiest["instrument_token"]
        assert _field(inspector, "last_price") == pytest.approx(tick["last_price"])
        inspector.close()

    # The capture moved: the view asks where it is and checks its sha256 before showing it.
    from app.ui import data_view

    moved = tmp_path / "moved" / capture.name
    moved.parent.mkdir()
    shutil.move(capture, moved)
    wrong = tmp_path / "other.dat"
    wrong.write_bytes(b"\0" * 1000)
    answers = [str(wrong), str(moved)]
    monkeypatch_locate = pytest.MonkeyPatch()
    monkeypatch_locate.setattr(data_view.DataAsk, "locate_capture",
                               classmethod(lambda cls, parent, name: answers.pop(0)))
    try:
        view.ticks_view.selectRow(3)
        with qtbot.waitSignal(view.failed, timeout=60_000) as failed:
            view.show_packet()
        assert "is not that capture" in failed.args[0]
        tick, inspector = _show_packet_of(qtbot, window, view, 3)
        assert inspector.index.path == str(moved)
        assert _field(inspector, "last_price") == pytest.approx(tick["last_price"])
        inspector.close()
    finally:
        monkeypatch_locate.undo()


def test_copy_sql_and_export_of_a_selection(qtbot, window, small_target, tmp_path, monkeypatch):
    from app.ui import data_view

    ticks = _ticks(small_target)
    copied = []
    monkeypatch.setattr(data_view.DataAsk, "copy_text", classmethod(lambda cls, text: copied.append(text)))
    out = tmp_path / "selection.parquet"
    monkeypatch.setattr(data_view.DataAsk, "export_path", classmethod(lambda cls, parent, suggested: str(out)))
    window.set_target(str(small_target))
    wait_idle(qtbot, window)
    view = window.data_view
    with qtbot.waitSignal(view.loaded, check_params_cb=lambda what: what == "ticks", timeout=30_000):
        view.show_ticks(dm.TickSelection("INFY", TickFilter(instrument_token=qd.INFY)))
    view._copy_ticks_sql()
    view._export_ticks()
    wait_idle(qtbot, window)
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect()
    *setup, select = [s for s in copied[0].split(";\n") if s.strip()]
    for statement in setup:
        con.execute(statement)
    rows = con.sql(select).to_arrow_table()
    con.close()
    exported = pq.read_table(out)
    assert rows.num_rows == exported.num_rows == sum(1 for t in ticks if t["instrument_token"] == qd.INFY)
    assert rows["last_price"].to_pylist() == exported["last_price"].to_pylist()

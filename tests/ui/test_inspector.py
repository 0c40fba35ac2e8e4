"""The packet inspector window: fields and bytes select each other, filters, bad-packet
stepping, a big capture that shows its first rows while indexing, and the CLI twin."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.cli import main
from app.core import packet_index as pi
from app.ui.inspector import InspectorWindow
from app.ui.inspector import window as inspector_window
from tests.conftest import REPO
from tests.support.synthetic import generate_capture, make_instruments

BIG_PACKETS = 200_000
BIG_CHUNK = 256 << 10  # indexing chunks of the big capture's tests: ~8 of them, as 2M packets made with 8 MB


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    path = tmp_path_factory.mktemp("insp") / "damaged_20251013_091500.dat"
    info = generate_capture(path, packets=3000, faults=True, framing="u32len", seed=3)
    return path, info


@pytest.fixture(scope="session")
def big_capture(tmp_path_factory):
    """200k packets, generated once; 8-byte LTP packets keep it ~2 MB, which the tests index in
    ``BIG_CHUNK`` chunks (``indexing_hook``): several chunks and reports, as the app's 8 MB chunks
    make of a 20 MB capture (the 10M-packet scale and its timings are `make bench`:
    scripts/bench_gui.py)."""
    path = tmp_path_factory.mktemp("big") / "ltp_200k.dat"
    instruments = [dataclasses.replace(i, packet_length=8) for i in make_instruments(0)]
    generate_capture(path, packets=BIG_PACKETS, instruments=instruments)
    return path


@pytest.fixture
def inspector(qtbot):
    windows = []

    def make(paths, wait=True, **kwargs):
        window = InspectorWindow([str(p) for p in paths], **kwargs)
        qtbot.addWidget(window)
        window.resize(1280, 820)
        window.show()
        windows.append(window)
        if wait:
            wait_indexed(qtbot, window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def indexing_hook(monkeypatch):
    """Set ``hook["after_report"](index, progress, cancel)``: it runs on the indexing thread
    after each progress report of ``PacketIndex.build``, mid-build (the index is not complete).
    Indexing walks the capture in ``BIG_CHUNK`` chunks after its first."""
    hook = {}
    build = pi.PacketIndex.build

    def hooked(self, progress=None, cancel=None):
        self.chunk_bytes = BIG_CHUNK
        def report(p):
            if progress is not None:
                progress(p)
            if "after_report" in hook:
                hook["after_report"](self, p, cancel)
        return build(self, report, cancel)

    monkeypatch.setattr(pi.PacketIndex, "build", hooked)
    return hook


def wait_indexed(qtbot, window, timeout=30_000):
    qtbot.waitUntil(lambda: window.index is not None and window._worker is None
                    and (window.index.complete or window.index.error), timeout=timeout)


def click_byte(qtbot, window, address):
    window.hex.scroll_to(address)
    rect = window.hex.byte_rect(address)
    qtbot.mouseClick(window.hex.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_each_field_highlights_exactly_its_bytes_and_each_byte_selects_its_field(qtbot, inspector, damaged):
    path, _ = damaged
    window = inspector([path])
    index = window.index
    full = int(np.flatnonzero(index.column("length") == 184)[0])
    assert window.go_to_packet(full + 1)
    view = window.current
    assert view.row == full and view.kind == "full"
    data = path.read_bytes()
    wire = window.details.wire_fields()
    assert sum(f.length for f in wire) == 184  # every byte of the packet is in some field
    for field in wire:
        window.details.setCurrentItem(window.details.item_for(field.name))
        assert window.hex.selection == (field.offset, field.end), field.name
        assert window.hex.selected_bytes() == data[field.offset:field.end] == field.raw
        # and back: a click on the field's first and last byte selects that field
        window.details.setCurrentItem(None)
        for address in (field.offset, field.end - 1):
            click_byte(qtbot, window, address)
            assert window.details.current_field() is not None
            assert window.details.current_field().name == field.name, (field.name, address)
            assert window.hex.selection == (field.offset, field.end)
    # a click on the message header selects no field but shows its bytes in the data strip
    header = next(r for r in view.regions if r.role == "prefix" and r.end == view.offset)
    click_byte(qtbot, window, header.start)
    assert window.details.current_field() is None
    assert window.strip.values["u16 BE"].text() == "184"


def test_filter_by_token_kind_and_bad_only(qtbot, inspector, damaged):
    path, info = damaged
    window = inspector([path])
    index = window.index
    assert window.counts.text().startswith(f"Packets: {index.rows:,} · Displayed: {index.rows:,}")
    token = int(index.column("token")[7])
    window.filter_bar.token.setText(str(token))
    window.filter_bar.apply()
    shown = window.model.displayed_rows()
    expected = np.flatnonzero((index.column("token") == token) & ((index.column("flags") & pi.FLAG_BAD) == 0))
    assert np.array_equal(shown, expected) and shown.size > 1
    assert window.counts.text().startswith(f"Packets: {index.rows:,} · Displayed: {shown.size:,}")
    # No. stays the file-order number under filtering
    assert [window.model.data(window.model.index(r, 0)) for r in range(3)] == [str(i + 1) for i in expected[:3]]
    assert window.current_row() == 7
    window.filter_bar.token.clear()
    window.filter_bar.bad_only.setChecked(True)  # applies at once
    assert np.array_equal(window.model.displayed_rows(), index.bad_rows())
    assert window.model.rowCount() == len(info.faults)
    window.filter_bar.bad_only.setChecked(False)
    window.filter_bar.kind.setCurrentIndex(window.filter_bar.kind.findData("ltp"))
    window.filter_bar.apply()
    assert np.array_equal(window.model.displayed_rows(), np.flatnonzero(index.column("length") == 8))


def test_invalid_filters_are_marked_and_not_applied(qtbot, inspector, damaged):
    path, _ = damaged
    window = inspector([path])
    bar = window.filter_bar
    before = window.model.rowCount()
    for widget, text in ((bar.token, "abc"), (bar.offsets, "0x200..0x100"), (bar.times, "25:99..x"),
                         (bar.segment, "300")):
        widget.setText(text)
        bar.apply()
        assert widget.property("invalid") is True and widget.toolTip(), text
        assert "#dc2626" in widget.styleSheet()
        assert window.model.rowCount() == before
        widget.clear()
        bar.apply()
        assert widget.property("invalid") is False and widget.toolTip() == widget.placeholderText()
    bar.times.setText("09:15..09:15:02")
    bar.apply()
    t = window.index.column("exchange_time")
    shown = window.model.displayed_rows()
    assert shown.size and np.all(t[shown] > 0)
    ist = [time.gmtime(int(x) + 19800) for x in t[shown]]
    assert all((g.tm_hour, g.tm_min) == (9, 15) and g.tm_sec <= 2 for g in ist)


def test_stepping_through_bad_packets_visits_every_fault_with_its_reason(qtbot, inspector, damaged):
    path, info = damaged
    window = inspector([path])
    window.table.setFocus()
    seen = []
    for _ in range(len(info.faults) + 1):
        qtbot.keyClick(window.table, Qt.Key.Key_F8)
        row = window.current_row()
        if seen and row == seen[-1][0]:
            break
        view = window.current
        assert view.is_bad
        assert window.banner.isVisible() and view.reason in window.banner.text()
        experts = window.details.topLevelItem(1)
        assert experts.text(0) == "Expert info" and experts.child(0).text(0) == f"Error: {view.reason}"
        seen.append((row, view.offset, view.length, view.reason))
    assert [s[0] for s in seen] == window.index.bad_rows().tolist()
    assert len(seen) == len(info.faults)
    for fault in info.faults:  # each injected fault is one of the visited regions
        assert any(fault.offset <= off <= fault.offset + fault.length for _, off, _, _ in seen), fault
    reasons = " | ".join(s[3] for s in seen)
    assert "unknown packet length 77" in reasons and "JSON text frame" in reasons and "truncated" in reasons
    qtbot.keyClick(window.table, Qt.Key.Key_F8, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_row() == seen[-2][0]


def test_symbols_and_unresolved_tokens_with_instrument_masters(qtbot, inspector, damaged):
    from tests.support.synthetic import write_instruments_csv

    path, info = damaged
    master = path.with_name("instruments_20251013.csv")
    write_instruments_csv(master, make_instruments(info.seed), info.start.date())
    window = inspector([path], instruments=[master])
    index = window.index
    assert window.filter_bar.symbol.isEnabled() and window.filter_bar.unresolved_only.isEnabled()
    packets = (index.column("flags") & pi.FLAG_BAD) == 0
    unresolved = (index.column("flags") & pi.FLAG_UNRESOLVED) != 0
    assert unresolved.any() and (packets & ~unresolved).any()
    named = int(np.flatnonzero(packets & ~unresolved)[0])
    symbol = index.symbol(int(index.column("token")[named]))
    assert symbol and window.model.data(window.model.index(named, 6)) == symbol
    window.filter_bar.symbol.setText(symbol.lower())
    window.filter_bar.apply()
    shown = window.model.displayed_rows()
    assert shown.size and all(index.symbol(int(t)) == symbol for t in index.column("token")[shown])
    window.filter_bar.symbol.setText("NO-SUCH-SYMBOL")
    window.filter_bar.apply()
    assert window.filter_bar.symbol.property("invalid") is True
    window.filter_bar.symbol.clear()
    window.filter_bar.unresolved_only.setChecked(True)
    assert np.array_equal(window.model.displayed_rows(), np.flatnonzero(unresolved))
    from app.ui.inspector.models import COL_EXPERT

    assert "instrument masters" in window.model.data(window.model.index(0, COL_EXPERT))


def test_go_to_offset_copy_and_save(qtbot, inspector, damaged, tmp_path, monkeypatch):
    path, info = damaged
    window = inspector([path])
    fault = next(f for f in info.faults if f.kind == "unknown_length")
    window.focus_goto("@")
    qtbot.keyClicks(window.goto, hex(fault.offset + 5))
    qtbot.keyClick(window.goto, Qt.Key.Key_Return)
    assert window.current.is_bad and window.current.offset == fault.offset
    window.copy_hex()
    assert QGuiApplication.clipboard().text() == path.read_bytes()[fault.offset:fault.offset + 77].hex(" ")
    assert window.go_to_packet(3) and window.current_row() == 2
    assert not window.go_to_packet(10**9) and "No packet" in window.state.text()
    window.details.setCurrentItem(window.details.item_for("last_price"))
    window.copy_value()
    assert float(QGuiApplication.clipboard().text()) == pytest.approx(window.details.current_field().value)
    target = tmp_path / "field.bin"
    monkeypatch.setattr(inspector_window.InspectorAsk, "save_path", classmethod(lambda cls, parent, s: str(target)))
    window.act_save.trigger()
    assert target.read_bytes() == window.details.current_field().raw and len(target.read_bytes()) == 4
    strip = window.strip.values
    raw = window.details.current_field().raw
    assert strip["u32 BE"].text() == str(int.from_bytes(raw, "big"))
    assert strip["u32 LE"].text() == str(int.from_bytes(raw, "little"))


def test_a_big_capture_shows_its_first_rows_while_indexing_and_stays_usable(qtbot, inspector, big_capture,
                                                                           indexing_hook, gui_round_trip,
                                                                           monkeypatch):
    """Indexing waits after its first report until the test has used the window: the first
    rows are on display and the user can scroll and jump while the rest is indexed; at every
    later report the GUI's event loop runs before indexing goes on. (Time to first rows and
    the longest event-loop gap on 10M packets: `make bench`, scripts/bench_gui.py.)"""
    monkeypatch.setattr(pi, "PROGRESS_INTERVAL", 0)  # a report after every chunk, whatever the speed
    used = threading.Event()
    first, trips = [], []

    def after_report(index, p, cancel):
        if not first:
            first.append((p.rows, index.complete))
            assert used.wait(60), "the window was not used while indexing waited"
        else:
            trips.append((p.done, gui_round_trip()))

    indexing_hook["after_report"] = after_report
    window = inspector([big_capture], wait=False)
    with qtbot.waitSignal(window.first_rows, timeout=60_000):
        pass
    # the user scrolls and selects while indexing waits
    assert not window.index.complete and 0 < window.model.rowCount() < BIG_PACKETS
    window.table.scrollToBottom()
    assert window.go_to_packet(1000) and window.current_row() == 999
    used.set()
    wait_indexed(qtbot, window, timeout=120_000)
    assert first and first[0][1] is False and 1000 <= first[0][0] < BIG_PACKETS
    # reports mid-build too (not only the final one), each with a round trip
    assert any(not done for done, _ in trips) and all(ok for _, ok in trips)
    assert window.index.rows == BIG_PACKETS and window.model.rowCount() == BIG_PACKETS
    # filtering every row is one numpy mask
    token = int(window.index.column("token")[0])
    window.filter_bar.set_tokens([token])
    assert window.model.rowCount() == int(np.count_nonzero(window.index.column("token") == token))


def test_closing_while_indexing_leaves_no_thread(qtbot, inspector, big_capture, indexing_hook):
    """Indexing waits after its first report until it is cancelled: closing the window must
    cancel it (the fixtures then check that no thread is left)."""
    indexing_hook["after_report"] = lambda index, p, cancel: cancel.wait(60)
    window = inspector([big_capture], wait=False)
    with qtbot.waitSignal(window.first_rows, timeout=60_000):
        pass
    index = window.index
    window.close()
    assert index.cancelled and not index.complete and index.rows < BIG_PACKETS


def test_reveal_waits_for_rows_the_list_has_not_taken_in_yet(qtbot, inspector, big_capture, indexing_hook,
                                                             monkeypatch):
    """Show packet's reveal while the index has grown on its worker past what the list has
    taken in (its progress report still queued for the GUI thread): the packet is not
    "hidden by the filter", it is revealed at the next report. (Once in 40 full runs this
    race cleared the reveal with no signal and the Data view's Show packet test waited in
    vain.) Indexing is held after its second report until the test has asked."""
    monkeypatch.setattr(pi, "PROGRESS_INTERVAL", 0)  # a report after every chunk
    held, go, grown, release = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    reports = []

    def after_report(index, p, cancel):
        reports.append(p.rows)
        if len(reports) == 1:
            held.set()
            assert go.wait(60), "the test did not let indexing go on"
        elif len(reports) == 2:
            grown.set()
            assert release.wait(60), "the test did not release indexing"

    indexing_hook["after_report"] = after_report
    window = inspector([big_capture], wait=False)
    try:
        with qtbot.waitSignal(window.first_rows, timeout=60_000):
            pass
        # The report's signal can reach the GUI before the worker is in this hook: wait for it.
        assert held.wait(60)
        taken_in = window.model.rowCount()  # no filter: every row taken in is listed
        assert taken_in == reports[0] > 0
        go.set()
        assert grown.wait(60)  # the worker appended a second chunk; its report waits in the GUI queue
        assert window.index.rows > taken_in == window.model.rowCount()
        row = taken_in + (window.index.rows - taken_in) // 2
        offset = int(window.index.column("offset")[row]) + 1  # a byte inside that packet
        window.reveal_offset(offset)
        assert "hidden" not in window.state.text() and window.current_row() != row
        assert not window.go_to_packet(row + 1) and "so far" in window.state.text()
        with qtbot.waitSignal(window.packet_revealed, timeout=60_000) as revealed:
            release.set()
        assert revealed.args == [row] and window.current_row() == row
        assert window.current.offset < offset < window.current.offset + window.current.length
    finally:
        go.set()
        release.set()
    wait_indexed(qtbot, window, timeout=120_000)


def test_cli_twin_matches_the_details_tree_on_the_real_fixtures(qtbot, inspector, kite_mocks, capsys):
    names = ["zerodha-cppkiteconnect/websocket_ticks.bin", "zerodha-kiteconnectjs/quoteMode_binary.packet",
             "zerodha-kiteconnect-mocks/ticker_full.packet", "third-party-kite-web/ws.packet"]
    window = inspector([kite_mocks / n for n in names])
    for i, name in enumerate(names):
        if i:
            window.capture_box.setCurrentIndex(i)
            wait_indexed(qtbot, window)
        for number in (1, window.index.rows):
            assert window.go_to_packet(number)
            assert main(["inspect", str(kite_mocks / name), "--packet", str(number), "--json"]) == 0
            doc = json.loads(capsys.readouterr().out)
            tree = window.details
            top = tree.topLevelItem(0)
            items = []
            stack = [top.child(k) for k in range(top.childCount())]
            while stack:
                item = stack.pop(0)
                if item.childCount():
                    stack[:0] = [item.child(k) for k in range(item.childCount())]
                    continue
                items.append(item)
            assert len(items) == len(doc["fields"])
            for item, field in zip(items, doc["fields"], strict=True):
                name_text = f"[{field['name']}]" if field["generated"] else field["name"]
                assert item.text(0) == name_text
                if not field["generated"]:
                    assert item.text(1) == str(field["offset"])
                    assert item.text(2).replace(" ", "").rstrip("…") == field["raw"][:32]
                value = field["value"]
                shown = item.text(3)
                if isinstance(value, float):
                    assert float(shown) == pytest.approx(value)
                elif value is None:
                    assert shown == "—"
                else:
                    assert shown == str(value)
            assert f"Packet {number}:" in top.text(0) and doc["kind"] in top.text(0)


def test_main_window_opens_the_inspector_from_the_queue_and_unknown_tokens(qtbot, window, dialogs, damaged):
    path, _ = damaged
    window.add_paths([str(path)])
    window.queue_view.selectRow(0)
    assert window.acts.inspect.shortcut().toString() == "Ctrl+I"
    assert window.acts.inspect in window.queue_view.actions()
    window.acts.inspect.trigger()
    inspector_ = window.inspectors[-1]  # deletes itself on close
    wait_indexed(qtbot, inspector_)
    assert inspector_.paths == [str(path)] and inspector_.model.rowCount() == inspector_.index.rows
    inspector_.close()
    # Unknown tokens: "Show packets" opens the inspector filtered to that token
    probe = pi.build_index(path)
    token = int(probe.column("token")[11])
    table = pa.table({"instrument_token": pa.array([token], pa.int64()), "ticks": pa.array([3], pa.int64()),
                      "files": pa.array([[str(path)]], pa.list_(pa.string())),
                      "diagnosis": ["missing"], "explanation": ["not in any master"]})
    window.unknown_pane.set_table(table)
    window.unknown_pane.view.setCurrentIndex(window.unknown_pane.proxy.index(0, 0))
    assert window.unknown_pane.packets_button.isEnabled()
    window.unknown_pane.packets_button.click()
    shown = window.inspectors[-1]
    wait_indexed(qtbot, shown)
    rows = shown.model.displayed_rows()
    assert rows.size == np.count_nonzero(probe.column("token") == token) and rows.size > 0
    assert np.all(shown.index.column("token")[rows] == token)
    assert shown.filter_bar.token.text() == str(token)
    shown.close()
    qtbot.waitUntil(lambda: window.inspectors == [], timeout=5000)


@pytest.mark.skipif(not os.environ.get("TICKSCOPE_SCREENSHOTS"),
                    reason="set TICKSCOPE_SCREENSHOTS=1 to refresh docs/screenshots")
def test_screenshots(qtbot, inspector, damaged):
    from app.ui import theme
    from tests.support.synthetic import write_instruments_csv

    path, info = damaged
    master = path.with_name("instruments_20251013.csv")
    write_instruments_csv(master, make_instruments(info.seed), info.start.date())
    out = REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("light", "dark"):
            theme.apply(name)
            window = inspector([path], instruments=[master])
            window.resize(1440, 900)
            window.refresh_style()
            window.step_bad()  # the unknown-length packet, in the message around it
            window.details.setCurrentItem(None)  # the bad bytes in their own colour
            QApplication.processEvents()
            window.grab().save(str(out / f"inspector-bad-{name}.png"))
            assert window.go_to_packet(5)
            window.details.setCurrentItem(window.details.item_for("last_price"))
            QApplication.processEvents()
            window.grab().save(str(out / f"inspector-field-{name}.png"))
            window.close()
    finally:
        theme.apply("light")


def test_suspect_only_filter_shows_the_packets_the_decoder_flags(qtbot, inspector, tmp_path):
    """issue 14: the inspector filters "suspect" packets (values that cannot be real)."""
    from tests.support import encode

    def quote(**values):
        base = {"instrument_token": 408065, "last_price": 152_130, "last_traded_quantity": 3,
                "volume_traded": 91_000, "open": 151_000, "high": 153_000, "low": 150_500, "close": 150_000}
        return encode.encode_packet(44, {**base, **values})

    path = tmp_path / "odd.bin"
    path.write_bytes(b"".join(encode.encode_message([p]) for p in
                              (quote(), quote(last_traded_quantity=1_760_000_000), quote(), quote(low=200_000))))
    window = inspector([path])
    window.filter_bar.suspect_only.setChecked(True)  # applies at once
    assert window.model.displayed_rows().tolist() == [1, 3]
    window.filter_bar.suspect_only.setChecked(False)
    assert window.model.rowCount() == 4


def test_har_capture_rows_show_receive_times_and_text_frames(inspector, tmp_path):
    """Issue 13: HAR frames with their receive times, text frames as their own rows."""
    from app.ui.inspector.models import COL_EXPERT, COL_KIND, COL_RECV
    from tests.support import encode

    t0 = 1_654_760_849_357_339_000
    msg = encode.encode_message([encode.encode_packet(8, {"instrument_token": 256265, "last_price": 1_500_000})])
    frames = [encode.HarFrame("send", t0, '{"a":"subscribe","v":[256265]}'),
              encode.HarFrame("receive", t0 + 1_234_000_000, msg)]
    path = tmp_path / "kite.har"
    path.write_bytes(encode.har([encode.HarConnection("wss://ws.kite.trade/", frames)]))
    window = inspector([path])
    model = window.model
    assert model.rowCount() == 2
    assert model.data(model.index(0, COL_KIND)) == "text frame"
    assert model.data(model.index(0, COL_EXPERT)).startswith("sent: {\"a\":\"subscribe\"")
    assert model.data(model.index(1, COL_KIND)) == "ltp"
    assert model.data(model.index(1, COL_RECV)).endswith(":17:30.591")  # 07:47:30.591 UTC, shown to the ms
    assert "har framing (detected)" in window.state.text()

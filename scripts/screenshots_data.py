"""Screenshots of the Data view at 1024x700, in both themes, for the README.

Three synthetic captures (tests.support.synthetic: the same instruments; 2025-10-13 from 09:15
and from 10:45 IST, so that day has a gap, and 2025-10-14) and their instrument masters
are ingested into a fresh DuckDB target with ``tickscope ingest``; then the app shows:

- ``data-search-<theme>.png``: Instruments, searching "INFY"-like text (the busiest
  future's underlying name);
- ``data-candles-<theme>.png``: Instrument day, 1m candles of that future on 2025-10-13
  with the gap between the two sessions;
- ``data-ticks-<theme>.png``: Ticks of that day with a tick selected, and the packet
  inspector that Show packet opened on it.

Usage: ``QT_QPA_PLATFORM=offscreen python scripts/screenshots_data.py [OUT_DIR]`` (default
docs/screenshots). Everything else lives in a temporary folder.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE = (1024, 700)
SEED = 17
DAY1, DAY2 = dt.date(2025, 10, 13), dt.date(2025, 10, 14)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import _settle, _wait  # noqa: E402  (the same waits as the window screenshots)


def build(folder: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.support import synthetic

    instruments = synthetic.make_instruments(SEED)
    captures = []
    for name, start in (("binary_data_20251013_091500.dat", dt.datetime(2025, 10, 13, 9, 15)),
                        ("binary_data_20251013_104500.dat", dt.datetime(2025, 10, 13, 10, 45)),
                        ("binary_data_20251014_091500.dat", dt.datetime(2025, 10, 14, 9, 15))):
        synthetic.generate_capture(folder / name, packets=40_000, seed=SEED, start=start, instruments=instruments)
        captures.append(folder / name)
    masters = []
    for day in (DAY1, DAY2):
        path = folder / f"instruments_{day:%Y%m%d}.csv"
        synthetic.write_instruments_csv(path, instruments, day)
        masters.append(path)
    target = folder / "ticks.duckdb"
    subprocess.run([sys.executable, "-m", "app", "ingest", *map(str, captures), "--target", str(target),
                    "--instruments", *map(str, masters)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return target


def shoot(target: Path, out: Path) -> list[Path]:
    from app.ui import dialogs
    from app.ui.app import ensure_application

    dialogs.ErrorDialog.report = classmethod(lambda cls, parent, *a, **k: (_ for _ in ()).throw(
        SystemExit(f"screenshots: a dialog would have opened: {a}")))
    app = ensure_application()
    import pyqtgraph as pg

    from app.model import data as dm
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    window = MainWindow(Settings(), interactive=False)
    window.resize(*SIZE)
    window.show()
    window.set_target(str(target))
    idle = lambda: _wait(app, lambda: not window.jobs.is_busy(), what="the window's tasks")  # noqa: E731
    idle()
    view = window.data_view
    future = next(r for r in dm.search_instruments(str(target), "FUT").to_pylist() if r["instrument_type"] == "FUT")
    query = (future["name"] or future["symbol"])[:4]
    label = f"{future['exchange']}:{future['symbol']}"
    saved = []
    for theme in ("light", "dark"):
        window.set_theme(theme)
        window.show_data()
        view.tabs.setCurrentIndex(1)
        view.search.setText(query.lower())
        idle()
        _settle(app)
        saved.append(out / f"data-search-{theme}.png")
        window.grab().save(str(saved[-1]))
        view.show_instrument(future["instrument_token"], label, DAY1)
        idle()
        _settle(app)
        chart = view.chart
        # The crosshair over a candle of the first session: its OHLCV readout.
        x = float(view.day.starts[len(view.day.starts) // 4]) + 20
        y = float(view.day.candles["close"][len(view.day.starts) // 4].as_py())
        chart._moved(chart.price_plot.vb.mapViewToScene(pg.Point(x, y)))
        _settle(app)
        saved.append(out / f"data-candles-{theme}.png")
        window.grab().save(str(saved[-1]))
        view.show_ticks(dm.day_selection(future["instrument_token"], label, DAY1))
        idle()
        view.ticks_view.selectRow(5)
        _settle(app)
        tick = view.current_tick()
        before = len(getattr(window, "inspectors", []))
        view.show_packet()  # the window opens the inspector and reveals the tick's offset
        _wait(app, lambda before=before: len(getattr(window, "inspectors", [])) > before, what="Show packet")
        inspector = window.inspectors[-1]
        _wait(app, lambda inspector=inspector, tick=tick: inspector.current is not None and getattr(inspector,
                                                                                                    "_reveal",
                                                                                                    None) is None
              and inspector.current.offset <= tick["offset"] < inspector.current.offset + inspector.current.length,
              what="the tick's packet in the inspector")
        inspector.resize(*SIZE)
        _settle(app, 1.0)
        saved.append(out / f"data-ticks-{theme}.png")
        window.grab().save(str(saved[-1]))
        saved.append(out / f"data-packet-{theme}.png")
        inspector.grab().save(str(saved[-1]))
        inspector.close()
        _settle(app)
    window._closing = True
    window.close()
    window.jobs.shutdown()
    return saved


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tickscope-shots-") as tmp:
        folder = Path(tmp)
        os.environ["TICKSCOPE_SETTINGS"] = str(folder / "settings.ini")
        os.environ["TICKSCOPE_DATA_DIR"] = str(folder / "data")
        target = build(folder)
        for path in shoot(target, out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

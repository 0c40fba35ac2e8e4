"""The main window's commands that ask the user first (a file dialog, a confirmation),
then hand the answer to the window. Dialogs themselves are ``app.ui.dialogs``."""

from __future__ import annotations

from pathlib import Path

from app import __version__
from app.model.commands import removable
from app.model.faults import one_line
from app.model.targets import duckdb_path
from app.ui import paths
from app.ui.dialogs import Ask, open_log_folder


class Prompts:
    def __init__(self, window):
        self.window = window

    def _start_dir(self) -> str:
        recent = self.window.settings.recent_files
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def add_files(self) -> None:
        files = Ask.capture_files(self.window, self._start_dir())
        if files:
            self.window.add_paths(files)

    def add_folder(self) -> None:
        folder = Ask.capture_folder(self.window, self._start_dir())
        if folder:
            self.window.add_paths([folder])

    def duckdb_target(self) -> None:
        w = self.window
        path = Ask.duckdb_target(w, w.target or str(paths.default_target()))
        if path:
            w.set_target(duckdb_path(path))

    def parquet_target(self) -> None:
        w = self.window
        path = Ask.parquet_target(w, str(Path(w.target).parent) if w.target else str(Path.home()))
        if path:
            w.set_target(path)

    def add_instruments(self) -> None:
        w = self.window
        last = w.masters.paths[-1] if w.masters.paths else None
        files = Ask.instrument_files(w, str(Path(last).parent) if last else str(Path.home()))
        if files:
            w.add_instruments(files)

    def inspect_packets(self) -> None:
        """The packet inspector on the selected captures (or on captures asked for)."""
        files = [r.path for r in self.window.selected_rows()]
        if not files:
            files = Ask.capture_files(self.window, self._start_dir())
        if files:
            self.window.open_inspector(files)

    def export_unknown(self) -> None:
        w = self.window
        if not w.unknown_pane.model.rowCount():
            w.statusBar().showMessage("No unknown tokens to export", 4000)
            return
        path = Ask.export_csv(w, str(Path.home() / "unknown_tokens.csv"))
        if not path:
            return
        try:
            n = w.unknown_pane.write_csv(path)
        except OSError as err:
            w.show_error("Export failed", f"Couldn't write {path}: {err.strerror or err}.",
                         "Choose another folder or file name.")
            return
        w.statusBar().showMessage(f"Exported {n:,} unknown tokens to {path}", 8000)

    def resolve_more(self) -> None:
        w = self.window
        if not w.target:
            w.statusBar().showMessage("Choose a target first", 4000)
            return
        files = Ask.instrument_files(w, str(Path.home()), "Resolve with more instrument masters")
        if files:
            w.resolve_with(files)

    def remove_from_target(self) -> None:
        """Confirm (saying how many ticks go), then remove the selected captures from the target
        (the store's own remove, as `tickscope remove`)."""
        from app.store import removal_preview, remove_captures

        w = self.window
        rows = removable(w.selected_rows(), w.target)
        if not rows:
            return
        target, file_ids = w.target, list(dict.fromkeys(r.file_id for r in rows))

        def confirm(preview) -> None:
            if not preview:
                w.statusBar().showMessage("Those captures are no longer in the target", 6000)
                return
            names = [Path(p.path or p.file_id).name for p in preview]
            if not Ask.confirm_remove(w, names, sum(p.ticks for p in preview),
                                      sum(p.bad_packets for p in preview), Path(target).name):
                return
            w.jobs.run_task(lambda: remove_captures(target, [p.file_id for p in preview]), removed,
                            failed, exclusive=True)

        def removed(gone) -> None:
            ticks = sum(r.ticks for r in gone)
            w.statusBar().showMessage(
                f"Removed {len(gone)} capture{'s' if len(gone) != 1 else ''} ({ticks:,} ticks) from "
                f"{Path(target).name}", 10000)
            w.refresh_target_views()

        def failed(exc, tb) -> None:
            w.show_error("Remove failed", f"Couldn't remove from the target: {one_line(exc)}",
                         "Check that no other program is using the target, then try again.", tb)

        w.jobs.run_task(lambda: removal_preview(target, file_ids), confirm, failed, exclusive=True)

    def open_logs(self) -> None:
        open_log_folder()

    def about(self) -> None:
        Ask.about(self.window, f"<b>Tickscope {__version__}</b><br>Ingest Zerodha Kite WebSocket captures into "
                               "DuckDB or Parquet, name every token with the instrument master of its day, and "
                               "see what didn't resolve.")

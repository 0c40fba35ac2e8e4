"""The main window: drop captures in, watch every file ingest live, see what didn't resolve.

The window binds widgets to state it does not compute: the queue model (rows), the
JobManager (background work), Settings (what is remembered) and the target itself
(read in workers through ``app.model.target_queries``). It never blocks: file reads, target
queries and ingests all run on the thread pool.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

from app.model import faults, formatting, intake, queue_store
from app.model import target_queries as tq
from app.model.commands import available
from app.model.faults import one_line as _one_line
from app.model.masters import MasterList
from app.model.session import Session
from app.model.status import finished_message, status_line
from app.model.targets import TargetProblem, TargetState, read_state, validate_target
from app.ui import paths, theme
from app.ui import queue_model as qm
from app.ui.charts import restyle
from app.ui.dialogs import Ask, ErrorDialog, open_log_folder
from app.ui.icons import icon
from app.ui.job_manager import JobManager
from app.ui.main_actions import MainActions, fill_instruments_menu, fill_recent_files, fill_recent_targets
from app.ui.main_layout import setup_main_window
from app.ui.prompts import Prompts
from app.ui.settings import Settings
from app.ui.widgets import guard_typing

log = logging.getLogger(__name__)

INGEST_WORKERS = 2
QUEUE_SAVE_DELAY_MS = 300


class MainWindow(QMainWindow):
    queue_done = Signal()  # a started queue has no work left (jobs, refreshes)
    unknown_refreshed = Signal()  # the unknown-token pane shows the target's table
    instruments_loaded = Signal()
    breakdown_shown = Signal()
    price_shown = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        interactive: bool = True,
        job_factory: Callable | None = None,
        theme_choice: str | None = None,
    ):
        super().__init__()
        self.settings = settings or Settings()
        self.interactive = interactive
        self.remember = interactive  # a scripted run leaves the remembered setup alone
        self.jobs = JobManager(self, job_factory=job_factory)
        self.session = Session()
        self.model = qm.QueueModel(self.session, self)
        self.target_state: TargetState | None = None  # what the target holds (read after each change)
        self.target: str | None = None
        self.masters = MasterList()  # the instrument masters ticks are named with
        self.session_active = False  # Start was pressed and the queue has not drained
        self._closing = False

        self.setWindowIcon(icon("tickscope"))
        self.setAcceptDrops(True)
        self.resize(1024, 700)  # a saved geometry replaces it; nothing else resizes the window
        # The palette and the time zone before any widget exists: charts take both when built.
        theme.apply(theme_choice or self.settings.theme)
        formatting.set_time_zone(self.settings.time_zone)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(QUEUE_SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_queue)
        self.prompts = Prompts(self)
        self.acts = MainActions(self, self.prompts)
        self.acts.build_menus(self)
        self.toolbar = self.acts.build_toolbar(self)
        setup_main_window(self)
        self._connect()
        self._restore(theme_choice)
        self._no_child_drops()
        self.typing_guard = guard_typing(self)
        self._update_actions()
        self._update_status()

    # ==== construction ==========================================================

    def _top_tab_changed(self, index: int) -> None:
        """The Data view takes the whole height; the queue shares it with its panes."""
        on_data = self.top_tabs.widget(index) is self.data_view
        self.tabs.setVisible(not on_data)
        if on_data and self.target and self.data_view.target != self.target:
            self.data_view.set_target(self.target)  # (a hidden view refreshes itself when shown)

    def show_data(self) -> None:
        self.top_tabs.setCurrentWidget(self.data_view)

    @property
    def instrument_paths(self) -> list[str]:
        return list(self.masters.paths)

    def _connect(self) -> None:
        self.top_tabs.currentChanged.connect(self._top_tab_changed)
        self.acts.recent_files_menu.aboutToShow.connect(
            lambda: fill_recent_files(self.acts.recent_files_menu, self.settings, self.add_paths))
        self.acts.recent_targets_menu.aboutToShow.connect(
            lambda: fill_recent_targets(self.acts.recent_targets_menu, self.settings, self.target, self.set_target))
        for menu in (self.acts.instruments_menu, self.instruments_card.menu):
            menu.aboutToShow.connect(lambda m=menu: fill_instruments_menu(
                m, self.masters, self.acts.add_instruments, self.remove_instrument))
        self.jobs.progress.connect(self._on_progress)
        self.data_view.open_packet.connect(self.open_packet)
        self.data_view.open_capture.connect(lambda path: self.open_inspector([path]))
        self.data_view.reingest.connect(lambda path: self.reingest_paths([path]))
        self.data_view.target_changed.connect(self.refresh_unknown)
        self.jobs.job_finished.connect(self._on_job_finished)
        self.jobs.job_failed.connect(self._on_job_failed)
        self.jobs.throughput.connect(self.throughput_chart.add_sample)
        self.jobs.busy_changed.connect(self._on_busy_changed)
        self.model.rowsInserted.connect(self._on_rows_changed)
        self.model.modelReset.connect(self._on_rows_changed)
        self.model.dataChanged.connect(lambda *_: self._on_rows_updated())
        self.model.rowsInserted.connect(lambda *_: self._queue_changed())
        self.model.modelReset.connect(lambda *_: self._queue_changed())
        self.details_pane.open_logs.connect(open_log_folder)
        self.queue_view.selectionModel().selectionChanged.connect(self._on_selection)
        self.action_delegate.clicked.connect(self._on_row_action)
        self.target_card.change.setMenu(self.target_card.menu)
        self.instruments_card.add.clicked.connect(self.prompts.add_instruments)
        self.unknown_pane.export_requested.connect(self.prompts.export_unknown)
        self.unknown_pane.resolve_requested.connect(self.prompts.resolve_more)
        self.unknown_pane.show_packets_requested.connect(
            lambda token, files: self.open_inspector(files, tokens=[token]))
        self.empty_panel.add_files.connect(self.prompts.add_files)
        self.empty_panel.add_folder.connect(self.prompts.add_folder)
        self.empty_panel.use_sample.connect(self.use_sample)
        self.empty_panel.dismiss_welcome.connect(self.dismiss_welcome)
        self.price_preview.instrument_chosen.connect(self.show_price)
        self.price_preview.refresh_requested.connect(self.refresh_price_choices)
        hints = QApplication.styleHints()
        if hints is not None:
            # A bound slot, not a lambda: the application's style hints outlive every window, and
            # Qt drops a slot's connection with its window (a lambda's would keep the window alive).
            hints.colorSchemeChanged.connect(self._on_color_scheme_changed)

    @Slot()
    def _on_color_scheme_changed(self) -> None:
        if self.settings.theme == "system":
            self.set_theme("system")

    def _restore(self, theme_choice: str | None) -> None:
        choice = theme_choice or self.settings.theme
        self.acts.theme[choice].setChecked(True)
        self._restyle_charts()
        self._refresh_icons()
        geometry = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        target = self.settings.target
        if target:
            try:
                self.target = validate_target(target)
            except TargetProblem as problem:
                log.warning("remembered target unusable: %s", problem)
                self.target = None
        if self.target and self.remember:  # its queue, as the app left it
            self.session.replace_rows(queue_store.load(self.target), self.target)
        self._show_target()
        self.masters.add(self.settings.instruments)
        self._load_master_infos(self.masters.paths)
        self._show_instruments()
        self._update_empty_panel()
        if self.target:
            self.refresh_target_views()

    def _no_child_drops(self) -> None:
        # Drops anywhere on the window go to the queue, never into a child (a line
        # edit would paste the file path, a chart would swallow it).
        for child in self.findChildren(QWidget):
            child.setAcceptDrops(False)

    # ==== drag and drop ===========================================================

    @staticmethod
    def _local_paths(event) -> list[str]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        local = self._local_paths(event)
        if local:
            event.acceptProposedAction()
            n = len(local)
            self.drop_overlay.show_over(f"Drop to queue {n} item{'s' if n != 1 else ''}")
        else:
            event.ignore()
            self.statusBar().showMessage("Only local files and folders can be dropped here", 4000)

    def dragMoveEvent(self, event) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self.drop_overlay.hide()
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_overlay.hide()
        local = self._local_paths(event)
        if not local:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_paths(local)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.drop_overlay.isVisible():
            self.drop_overlay.setGeometry(self.centralWidget().rect().adjusted(12, 12, -12, -12))

    # ==== the queue ===============================================================

    def add_paths(self, raw_paths: list[str]) -> intake.Intake:
        """Queue what ``tickscope ingest`` would read of ``raw_paths`` (the one intake rule)."""
        found = intake.gather(raw_paths, exclude=[self.target] if self.target else ())
        added = self.session.add(found.accepted)
        for path, reason in found.refused:
            log.info("not queued: %s (%s)", path, reason)
        if added and self.remember:
            self.settings.add_recent_files(added)
        self.statusBar().showMessage(found.summary(already_queued=len(found.accepted) - len(added)), 8000)
        if added and self.session_active:
            QTimer.singleShot(0, self._start_queued)
        self._update_actions()
        return found

    def start(self) -> int | None:
        """Ingest every queued file not yet in a job; returns the job id."""
        if not self.session.queued_unassigned():
            self.statusBar().showMessage("Nothing queued: add captures first", 5000)
            return None
        if not self.target:
            problem = "Choose a target first: a DuckDB file or a Parquet folder (File → Choose target)."
            if self.interactive:
                ErrorDialog.report(self, "No target", "There is nowhere to store the ticks yet.",
                                   "Choose a DuckDB file or a Parquet folder with File → Choose target, "
                                   "then press Start again.")
            else:
                log.warning("no target: %d queued files not started", len(self.session.queued_unassigned()))
                self.session_active = True
                self.session.fail(self.session.queued_unassigned(), faults.make(faults.NO_TARGET, problem))
            self.statusBar().showMessage(problem, 8000)
            self._maybe_done()
            return None
        self.session_active = True
        return self._start_queued()

    def _start_queued(self) -> int | None:
        queued = self.session.queued_unassigned()
        if not queued or not self.target or self._closing:
            self._maybe_done()
            return None
        queued = self.session.startable()  # a vanished file fails alone, never sinks the job
        if not queued:
            self._maybe_done()
            return None
        try:
            job_id = self.jobs.start_ingest(queued, self.target, instruments=self.masters.paths,
                                            workers=INGEST_WORKERS)
        except Exception as exc:  # noqa: BLE001 - building the job failed: rows say why
            log.exception("could not start ingest")
            self.session.fail(queued, faults.fault_from_exception(exc, traceback.format_exc()))
            self._maybe_done()
            return None
        self.session.assign_job(queued, job_id)
        if self.jobs.running_jobs() == 1:  # a new job: the chart shows this job only
            self.throughput_chart.reset()
        if self.tabs.currentWidget() is not self.unknown_pane or not self.unknown_pane.model.rowCount():
            self.tabs.setCurrentWidget(self.throughput_chart)
        self.statusBar().showMessage(f"Ingesting {len(queued)} file{'s' if len(queued) != 1 else ''} "
                                     f"into {Path(self.target).name}", 5000)
        self._update_actions()
        return job_id

    def selected_rows(self) -> list[qm.QueueRow]:
        selection = self.queue_view.selectionModel()
        if selection is None:
            return []
        rows = sorted({i.row() for i in selection.selectedRows()})
        return [self.model.row_at(r) for r in rows]

    def cancel_paths(self, row_paths: list[str]) -> int:
        cancelled = self.session.cancel(row_paths, self.jobs.cancel_file)
        self._update_actions()
        self._maybe_done()
        return cancelled

    def cancel_selected(self) -> None:
        n = self.cancel_paths([r.path for r in self.selected_rows()])
        if n:
            self.statusBar().showMessage(f"Cancelling {n} file{'s' if n != 1 else ''}", 4000)

    def retry_paths(self, row_paths: list[str]) -> list[str]:
        again = self.session.retry(row_paths)
        if again:
            self.statusBar().showMessage(f"Retrying {len(again)} file{'s' if len(again) != 1 else ''}", 4000)
            self.start()
        return again

    def retry_selected(self) -> None:
        self.retry_paths([r.path for r in self.selected_rows()])

    def cancel_all(self) -> None:
        n = self.cancel_paths([r.path for r in self.session.unfinished()])
        self.statusBar().showMessage(f"Cancelling {n} file{'s' if n != 1 else ''}", 4000)

    def clear_finished(self) -> None:
        n = self.session.remove_finished()
        self.statusBar().showMessage(f"Removed {n} finished file{'s' if n != 1 else ''}", 3000)

    def _show_selected_details(self, switch: bool = False) -> None:
        rows = self.selected_rows()
        self.details_pane.show_row(rows[0] if rows else None)
        if switch and rows and rows[0].failure is not None:
            self.tabs.setCurrentWidget(self.details_pane)

    def _on_row_action(self, row: int, action: str) -> None:
        path = self.model.row_at(row).path
        if action == "cancel":
            self.cancel_paths([path])
        elif action == "retry":
            self.retry_paths([path])

    def _on_progress(self, batch: list) -> None:
        self.session.apply_progress(batch)

    def _on_job_finished(self, job_id: int, report) -> None:
        files = list(getattr(report, "files", []))
        self.session.finish_job(job_id, files)
        log.info("job %d finished: %d files, %d failed", job_id, len(files),
                 sum(1 for r in files if r.status == qm.FAILED))
        self.statusBar().showMessage(finished_message(report), 15000)
        self._after_job()

    def _on_job_failed(self, job_id: int, exc: BaseException, tb: str) -> None:
        fault = faults.fault_from_exception(exc, tb)
        failed = self.session.fail_job(job_id, fault)
        self.statusBar().showMessage(fault.message, 10000)
        if failed and (fault.internal or not self.queue_view.selectionModel().hasSelection()):
            self.select_path(failed[0])  # the details pane shows what happened, where it happened
        self._after_job()

    def select_path(self, path: str) -> None:
        rows = self.session.rows
        for i, row in enumerate(rows):
            if row.path == path:
                self.queue_view.selectRow(i)
                return

    def _after_job(self) -> None:
        self._update_actions()
        if self.session.queued_unassigned() and self.session_active and not self._closing:
            self._start_queued()
        elif not self.jobs.running_jobs():
            self.refresh_target_views()
        self._maybe_done()

    def _on_busy_changed(self, busy: bool) -> None:
        self._update_actions()
        if not busy:
            self._maybe_done()

    def _maybe_done(self) -> None:
        """Emit queue_done once a started queue has no work left (refreshes included)."""
        if not self.session_active or self.jobs.is_busy():
            return
        if self.session.queued_unassigned() and not self._closing:
            return  # _after_job starts them
        self.session_active = False
        self.queue_done.emit()

    def exit_code(self) -> int:
        return self.session.exit_code()

    def failure_lines(self) -> list[str]:
        return self.session.failure_lines("tickscope gui")

    # ==== target and instruments =====================================================

    def set_target(self, path: str) -> bool:
        try:
            target = validate_target(path)
        except TargetProblem as problem:
            self.show_error("Target not usable", str(problem),
                            "Choose a .duckdb file (new or existing) or a folder for a Parquet dataset.")
            return False
        if self.jobs.running_jobs():
            self.show_error("Target in use", "Files are still being ingested into the current target.",
                            "Wait for the queue to finish (or cancel it), then change the target.")
            return False
        if target != self.target:
            self.save_queue()
            self.target_state = None
            self.session.replace_rows(queue_store.load(target) if self.remember else [], target)
        self.target = target
        if self.remember:
            self.settings.target = target
        self._show_target()
        self._update_empty_panel()
        self.statusBar().showMessage(f"Target: {target}", 5000)
        self.refresh_target_views()
        self._update_actions()
        return True

    def _show_target(self, detail: str = "") -> None:
        if self.target and not detail:
            detail = self.target_state.summary() if self.target_state else "reading…"
        self.target_card.show_target(self.target, detail)
        # The application display name ("Tickscope") is appended by Qt: never write it twice.
        self.setWindowTitle(Path(self.target).name if self.target else "")

    def add_instruments(self, new_paths: list[str]) -> list[str]:
        added = self.masters.add(new_paths)
        if added:
            if self.remember:
                self.settings.instruments = self.masters.paths
            self._load_master_infos(added)
            self._show_instruments()
            self._update_empty_panel()
        return added

    def remove_instrument(self, path: str) -> None:
        if self.masters.remove(path):
            if self.remember:
                self.settings.instruments = self.masters.paths
            self._show_instruments()

    def _load_master_infos(self, master_paths: list[str]) -> None:
        if not master_paths:
            return
        pending = list(master_paths)

        def done(infos) -> None:
            for info in infos:
                self.masters.loaded(info)
            self._show_instruments()
            self.instruments_loaded.emit()

        def failed(exc, tb) -> None:
            for p in pending:  # one at a time to find the unreadable one(s)
                self.jobs.run_task(lambda p=p: tq.load_master_infos([p]), done,
                                   lambda e, t, p=p: self._master_failed(p, e))

        self.jobs.run_task(lambda: tq.load_master_infos(pending), done, failed)

    def _master_failed(self, path: str, exc: BaseException) -> None:
        self.masters.unreadable(path, _one_line(exc))
        self._show_instruments()
        self.statusBar().showMessage(f"Instrument master unreadable: {Path(path).name}: {_one_line(exc)}", 8000)
        self.instruments_loaded.emit()

    def _show_instruments(self) -> None:
        self.instruments_card.show_masters(self.masters.summary())

    # ==== reading the target ============================================================

    def refresh_target_views(self) -> None:
        """Reload the unknown-token table, the instrument list, the selected breakdown and
        the Data view."""
        self.refresh_unknown()
        if self.target:
            self.data_view.set_target(self.target)
        self.refresh_price_choices()
        self._on_selection()

    def refresh_unknown(self) -> None:
        """Read what the target holds now; every view's counts come from this one snapshot."""
        target = self.target
        if not target:
            self.target_state = None
            self.unknown_pane.set_table(None)
            return

        def done(state: TargetState) -> None:
            if target != self.target:
                return
            self.target_state = state
            self.session.apply_target_counts(state.captures)
            self._show_target(state.summary())
            self.unknown_pane.set_table(state.unknown)
            self._update_status()
            if state.unknown_tokens and not self.jobs.running_jobs() and \
                    self.tabs.currentWidget() is not self.details_pane:
                self.tabs.setCurrentWidget(self.unknown_pane)
            self.unknown_refreshed.emit()

        def failed(exc, tb) -> None:
            self.unknown_pane.show_message(f"Couldn't read the target: {_one_line(exc)}")
            self.unknown_refreshed.emit()

        self.jobs.run_task(lambda: read_state(target), done, failed, exclusive=True)

    def refresh_price_choices(self) -> None:
        target = self.target
        if not target:
            return
        if not self.price_preview.isVisible():  # no queries for a hidden tab after every job
            self.price_preview.mark_stale()
            return
        self.jobs.run_task(lambda: tq.instrument_choices(target),
                           lambda choices: self.price_preview.set_choices(choices),
                           lambda exc, tb: self.price_preview.caption.setText(_one_line(exc)),
                           exclusive=True)

    def show_price(self, token: int, label: str) -> None:
        target = self.target
        if not target:
            return

        def done(series) -> None:
            self.price_preview.show_series(series)
            self.price_shown.emit()

        self.jobs.run_task(lambda: tq.price_series(target, token, label), done,
                           lambda exc, tb: self.price_preview.caption.setText(_one_line(exc)), exclusive=True)

    def _on_selection(self, *_) -> None:
        rows = self.selected_rows()
        self._update_actions()
        self._show_selected_details(switch=True)
        if not rows:
            return
        row = rows[0]
        if not row.stored or not self.target:
            self.breakdown_chart.show_message(
                f"{row.name}: {row.status}. The breakdown appears once the file is in the target.")
            return
        target, file_id, name = self.target, row.file_id, row.name

        def done(breakdown) -> None:
            self.breakdown_chart.show_breakdown(breakdown)
            self.breakdown_shown.emit()

        self.jobs.run_task(lambda: tq.breakdown(target, file_id, name), done,
                           lambda exc, tb: self.breakdown_chart.show_message(_one_line(exc)), exclusive=True)

    # ==== the packet inspector ===========================================================

    def open_inspector(self, files: list[str], tokens=()):
        from app.ui.inspector import InspectorWindow

        files = [f for f in files if f]
        if not files:
            return None
        window = InspectorWindow(files, instruments=self.masters.paths, tokens=list(tokens), parent=self)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.inspectors = getattr(self, "inspectors", []) + [window]
        window.destroyed.connect(lambda *_: setattr(self, "inspectors", [w for w in self.inspectors
                                                                         if w is not window]))
        window.show()
        return window

    def open_packet(self, path: str, offset: int, file_id: str = ""):
        """The inspector on a capture with the packet at ``offset`` selected (Show packet)."""
        window = self.open_inspector([path])
        if window is not None:
            window.reveal_offset(offset)
        return window

    def reingest_paths(self, paths: list[str]) -> int | None:
        """Ingest captures again with --force (a capture of the Data view)."""
        if not self.target:
            return None
        present, gone = intake.split_present(paths)
        for path in gone:
            self.statusBar().showMessage(f"{Path(path).name} is not at {path} any more", 8000)
        if not present:
            return None
        if self.jobs.running_jobs():
            self.statusBar().showMessage("Wait for the running ingest to finish, then re-ingest", 8000)
            return None
        added = self.session.requeue(intake.gather(present).accepted)
        if not added:
            return None
        job_id = self.jobs.start_ingest(added, self.target, instruments=self.masters.paths,
                                        workers=INGEST_WORKERS, force=True)
        self.session.assign_job(added, job_id)
        self.session_active = True
        self.top_tabs.setCurrentWidget(self.queue_stack)
        self._update_actions()
        return job_id

    def resolve_with(self, master_paths: list[str]) -> None:
        """Re-resolve the target's unresolved ticks with extra masters (in a worker)."""
        target = self.target
        self.add_instruments(master_paths)
        self.unknown_pane.resolve_button.setEnabled(False)
        self.statusBar().showMessage("Resolving unknown tokens…")

        def done(result) -> None:
            resolved, table = result
            self.unknown_pane.resolve_button.setEnabled(True)
            self.statusBar().showMessage(
                f"Resolved {resolved:,} tick{'s' if resolved != 1 else ''}; "
                f"{table.num_rows:,} token{'s' if table.num_rows != 1 else ''} still unknown", 10000)
            self.refresh_target_views()  # counts everywhere from the target, as it is now

        def failed(exc, tb) -> None:
            self.unknown_pane.resolve_button.setEnabled(True)
            self.show_error("Resolve failed", f"Couldn't re-resolve the target: {_one_line(exc)}",
                            "Check that the files are instrument masters and the target is not in use.", tb)
            self.unknown_refreshed.emit()

        self.jobs.run_task(lambda: tq.resolve_more(target, master_paths), done, failed, exclusive=True)

    def show_error(self, title: str, message: str, advice: str = "", details: str = "") -> None:
        log.warning("%s: %s", title, message)
        self.statusBar().showMessage(message, 10000)
        if self.interactive:
            ErrorDialog.report(self, title, message, advice, details)

    # ==== first start ===================================================================

    def _update_empty_panel(self) -> None:
        # An offer inside the window, never a dialog: a scripted run shows it and waits on nothing.
        welcome = self.settings.is_first_start and not self.target
        self.empty_panel.set_welcome(welcome, paths.sample_files() is not None)
        self.queue_stack.setCurrentWidget(self.queue_view if self.model.rowCount() else self.empty_panel)

    def use_sample(self) -> None:
        """The welcome offer: bundled sample capture + masters, default target, start."""
        sample = paths.sample_files()
        if sample is None:
            self.show_error("Sample missing", "The bundled sample is not part of this installation.",
                            "Drop your own captures onto the window instead.")
            return
        capture, masters = sample
        if not self.target and not self.set_target(str(paths.default_target())):
            return
        self.add_instruments([str(m) for m in masters])
        self.settings.welcome_dismissed = True
        self.add_paths([str(capture)])
        self.start()

    def dismiss_welcome(self) -> None:
        self.settings.welcome_dismissed = True
        self._update_empty_panel()

    # ==== view ===========================================================================

    def set_theme(self, choice: str) -> None:
        self.settings.theme = choice
        self.acts.theme[choice].setChecked(True)
        name = theme.apply(choice)
        self._restyle_charts()
        self._refresh_icons()
        self.statusBar().showMessage(f"Theme: {name}" + (" (following the system)" if choice == "system" else ""),
                                     3000)

    def set_time_zone(self, name: str) -> None:
        """Show every time in ``name`` ("IST" or "UTC"); the labels say which."""
        name = formatting.set_time_zone(name)
        self.acts.zone[name].setChecked(True)
        if self.remember:
            self.settings.time_zone = name
        model = self.unknown_pane.model
        model.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, model.columnCount() - 1)
        if model.rowCount():
            model.dataChanged.emit(model.index(0, 0), model.index(model.rowCount() - 1, model.columnCount() - 1))
        self.price_preview.set_time_zone()
        self.data_view.set_time_zone()
        self.statusBar().showMessage(f"Times are shown in {name}", 3000)

    def _restyle_charts(self) -> None:
        for chart in (self.throughput_chart, self.breakdown_chart.graphics, self.price_preview.graphics):
            restyle(chart)
        self.data_view.restyle()

    def _refresh_icons(self) -> None:
        self.acts.refresh_icons()
        self.target_card.set_icon(self.target_card.icon_name)
        self.instruments_card.set_icon("instruments")
        self.severity.level = ""
        self._update_status()

    def focus_pane(self, pane: str) -> None:
        if self.top_tabs.currentWidget() is self.data_view:
            self.top_tabs.setCurrentWidget(self.queue_stack)
        if pane == "queue":
            view = self.queue_view if self.model.rowCount() else self.empty_panel.files_button
            view.setFocus(Qt.FocusReason.ShortcutFocusReason)
            if self.model.rowCount() and not self.queue_view.currentIndex().isValid():
                self.queue_view.setCurrentIndex(self.model.index(0, 0))
            return
        widget = {"unknown": self.unknown_pane, "filter": self.unknown_pane, "throughput": self.throughput_chart,
                  "breakdown": self.breakdown_chart, "price": self.price_preview}[pane]
        self.tabs.setCurrentWidget(widget)
        focus = {"unknown": self.unknown_pane.view, "filter": self.unknown_pane.filter,
                 "price": self.price_preview.combo}.get(pane, self.tabs.tabBar())
        focus.setFocus(Qt.FocusReason.ShortcutFocusReason)
        if pane == "filter":
            self.unknown_pane.filter.selectAll()

    def toggle_fullscreen(self) -> None:
        self.setWindowState(self.windowState() ^ Qt.WindowState.WindowFullScreen)

    # ==== status =========================================================================

    def _on_rows_changed(self, *_) -> None:
        self.queue_stack.setCurrentWidget(self.queue_view if self.model.rowCount() else self.empty_panel)
        self._update_status()
        self._update_actions()

    def _update_actions(self) -> None:
        selected = self.selected_rows()
        can = available(self.session, selected, target=self.target,
                        unknown_tokens=self.unknown_pane.model.rowCount())
        self.acts.enable(can)
        self.unknown_pane.resolve_button.setEnabled(can.resolve)

    def _on_rows_updated(self) -> None:
        self._update_status()
        self._show_selected_details()
        self._queue_changed()

    def _queue_changed(self) -> None:
        if self.remember and self.target:
            self._save_timer.start()

    def save_queue(self) -> None:
        """The queue of the current target, saved beside the app's data (restored on restart)."""
        self._save_timer.stop()
        if not (self.remember and self.target and self.session.target == self.target):
            return
        try:
            queue_store.save(self.target, self.session.rows)
        except OSError as err:
            log.warning("could not save the queue: %s", err)

    def _update_status(self) -> None:
        line = status_line(self.session, self.target_state)
        self.counts_label.setText(line.counts)
        self.counts_label.setToolTip(line.counts_tip)
        self.severity.set_level(line.level, line.text, line.tip)

    # ==== closing ==========================================================================

    def closeEvent(self, event) -> None:
        unfinished = self.session.unfinished()
        if unfinished and self.interactive and not self._closing:
            if not Ask.cancel_running(self, len(unfinished)):
                event.ignore()
                return
        self._closing = True
        self.session_active = False
        # Cancel means cancelled: queued rows now, running ones when their job ends below.
        self.session.cancel([r.path for r in unfinished], self.jobs.cancel_file)
        if self.remember:
            self.settings.set_geometry(self.saveGeometry(), self.saveState())
        self.settings.sync()
        for inspector in getattr(self, "inspectors", []):
            inspector.shutdown()
        self.jobs.shutdown()
        for job_id in {r.job_id for r in self.session.unfinished() if r.job_id is not None}:
            self.session.finish_job(job_id)  # their reports will never be handled now
        self.save_queue()
        event.accept()


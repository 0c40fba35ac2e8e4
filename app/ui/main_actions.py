"""The main window's commands: its QActions, menus, toolbar and the queue's context menu.

Every command is one QAction (its shortcut works with the menu bar hidden and its tooltip
names the shortcut); what each does is a slot of the window or of its ``Prompts``; when
each is enabled is ``app.model.commands.available``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

from app.model import formatting
from app.model.commands import Available
from app.model.masters import MasterList
from app.ui.icons import icon
from app.ui.settings import Settings
from app.ui.widgets import make_action

THEMES = (("system", "Follow &system"), ("light", "&Light"), ("dark", "&Dark"))
ZONES = (("IST", "&IST (India, UTC+05:30)"), ("UTC", "&UTC"))


class MainActions:
    """The window's actions; ``window`` has the slots, ``prompts`` the ones that ask first."""

    def __init__(self, window: QMainWindow, prompts):
        self._icons: dict[QAction, str] = {}
        S = QKeySequence.StandardKey
        w, p = window, prompts

        def a(text, slot, shortcut=None, icon_name="", tip=""):
            action = make_action(window, text, slot, shortcut, icon_name, tip)
            if icon_name:
                self._icons[action] = icon_name
            return action

        self.add_files = a("&Add captures…", p.add_files, S.Open, "add-file", "Add capture files")
        self.add_folder = a("Add &folder…", p.add_folder, "Ctrl+Shift+O", "add-folder", "Add every capture in a folder")
        self.duck_target = a("Choose &DuckDB target…", p.duckdb_target, "Ctrl+T", "database")
        self.parquet_target = a("Choose &Parquet folder target…", p.parquet_target, "Ctrl+Shift+T", "parquet")
        self.add_instruments = a("Add &instrument masters…", p.add_instruments, "Ctrl+Shift+I", "instruments")
        self.inspect = a("Inspect &packets…", p.inspect_packets, "Ctrl+I", "",
                         "Inspect every packet of the selected capture")
        self.export = a("&Export unknown tokens…", p.export_unknown, "Ctrl+E", "export")
        self.resolve = a("&Resolve with more instruments…", p.resolve_more, "Ctrl+Shift+E", "resolve")
        self.remove_from_target = a("Re&move from target…", p.remove_from_target, None, "",
                                    "Remove the selected captures and everything derived from them from the target")
        self.quit = a("&Quit", w.close, "Ctrl+Q")
        self.start = a("&Start", w.start, ["F5", "Ctrl+Return"], "start", "Start ingesting the queue")
        self.cancel = a("&Cancel selected", w.cancel_selected, ["Ctrl+.", "Ctrl+Backspace"], "cancel",
                        "Cancel the selected files")
        self.retry = a("&Retry selected", w.retry_selected, "Ctrl+R", "retry", "Retry the selected files")
        self.cancel_all = a("Cancel &all", w.cancel_all, "Ctrl+Shift+.", "cancel-all",
                            "Cancel every queued and running file")
        self.clear = a("C&lear finished", w.clear_finished, "Ctrl+Shift+Backspace", "clear",
                       "Remove finished files from the queue")
        self.focus_queue = a("&Queue", lambda: w.focus_pane("queue"), "Ctrl+1")
        self.focus_unknown = a("&Unknown tokens", lambda: w.focus_pane("unknown"), "Ctrl+2")
        self.focus_throughput = a("&Throughput", lambda: w.focus_pane("throughput"), "Ctrl+3")
        self.focus_breakdown = a("File &breakdown", lambda: w.focus_pane("breakdown"), "Ctrl+4")
        self.focus_price = a("&Price preview", lambda: w.focus_pane("price"), "Ctrl+5")
        self.focus_data = a("&Data (what the target holds)", w.show_data, "Ctrl+6")
        self.find = a("&Filter unknown tokens", lambda: w.focus_pane("filter"), S.Find)
        self.fullscreen = a("&Full screen", w.toggle_fullscreen, "F11")
        self.logs = a("Open &log folder", p.open_logs, None)
        self.about = a("&About Tickscope", p.about, None)
        self.theme = self._choice(window, THEMES, w.set_theme)
        self.zone = self._choice(window, ZONES, w.set_time_zone)
        self.zone[formatting.time_zone()].setChecked(True)

    @staticmethod
    def _choice(window, choices, slot) -> dict[str, QAction]:
        group = QActionGroup(window)
        actions = {}
        for name, label in choices:
            action = QAction(label, window, checkable=True)
            action.triggered.connect(lambda _=False, n=name: slot(n))
            group.addAction(action)
            actions[name] = action
        return actions

    @property
    def queue_commands(self) -> list[QAction]:
        """What the queue's toolbar and context menu offer."""
        return [self.start, self.cancel, self.retry, self.cancel_all, self.clear]

    def build_menus(self, window: QMainWindow) -> None:
        bar = window.menuBar()
        file_menu = bar.addMenu("&File")
        for action in (self.add_files, self.add_folder, self.inspect):
            file_menu.addAction(action)
        self.recent_files_menu = file_menu.addMenu("Recent &captures")
        file_menu.addSeparator()
        file_menu.addAction(self.duck_target)
        file_menu.addAction(self.parquet_target)
        self.recent_targets_menu = file_menu.addMenu("Recent &targets")
        file_menu.addSeparator()
        file_menu.addAction(self.add_instruments)
        self.instruments_menu = file_menu.addMenu("Instrument &masters")
        file_menu.addSeparator()
        file_menu.addAction(self.export)
        file_menu.addSeparator()
        file_menu.addAction(self.quit)
        queue_menu = bar.addMenu("&Queue")
        for action in self.queue_commands[:4]:
            queue_menu.addAction(action)
        queue_menu.addSeparator()
        queue_menu.addAction(self.clear)
        queue_menu.addAction(self.remove_from_target)
        tokens_menu = bar.addMenu("&Tokens")
        for action in (self.find, self.resolve, self.export):
            tokens_menu.addAction(action)
        view_menu = bar.addMenu("&View")
        for action in (self.focus_queue, self.focus_unknown, self.focus_throughput, self.focus_breakdown,
                       self.focus_price, self.focus_data):
            view_menu.addAction(action)
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("T&heme")
        for action in self.theme.values():
            theme_menu.addAction(action)
        zone_menu = view_menu.addMenu("Time &zone")
        for action in self.zone.values():
            zone_menu.addAction(action)
        view_menu.addAction(self.fullscreen)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.logs)
        help_menu.addAction(self.about)

    def build_toolbar(self, window: QMainWindow) -> QToolBar:
        tb = QToolBar("Main", window)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.add_files)
        tb.addAction(self.add_folder)
        tb.addSeparator()
        for action in self.queue_commands:
            tb.addAction(action)
        window.addToolBar(tb)
        return tb

    def refresh_icons(self) -> None:
        """Icons drawn again in the theme's colours."""
        for action, name in self._icons.items():
            action.setIcon(icon(name))

    def enable(self, available: Available) -> None:
        for action, on in ((self.start, available.start), (self.cancel, available.cancel),
                           (self.retry, available.retry), (self.cancel_all, available.cancel_all),
                           (self.clear, available.clear), (self.export, available.export),
                           (self.resolve, available.resolve), (self.remove_from_target, available.remove)):
            action.setEnabled(on)


def fill_recent_files(menu: QMenu, settings: Settings, add) -> None:
    menu.clear()
    recent = settings.recent_files
    for path in recent:
        action = menu.addAction(Path(path).name)
        action.setToolTip(path)
        action.setEnabled(Path(path).exists())
        action.triggered.connect(lambda _=False, p=path: add([p]))
    if not recent:
        menu.addAction("No recent captures").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear list", settings.clear_recent_files)


def fill_recent_targets(menu: QMenu, settings: Settings, current, choose) -> None:
    menu.clear()
    for path in settings.recent_targets:
        action = menu.addAction(path)
        action.setCheckable(True)
        action.setChecked(path == current)
        action.triggered.connect(lambda _=False, p=path: choose(p))
    if not settings.recent_targets:
        menu.addAction("No recent targets").setEnabled(False)


def fill_instruments_menu(menu: QMenu, masters: MasterList, add_action: QAction, remove) -> None:
    menu.clear()
    menu.addAction(add_action)
    if masters.paths:
        menu.addSeparator()
    for path in masters.paths:
        action = menu.addAction(icon("cancel"), f"Remove {masters.menu_label(path)}")
        action.triggered.connect(lambda _=False, p=path: remove(p))

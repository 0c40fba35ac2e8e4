"""The window's small building blocks: target and instrument cards, the empty/welcome
panel, the drop overlay and the status bar's severity indicator."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.model.masters import MastersSummary
from app.ui.icons import icon, pixmap


class TypingGuard(QObject):
    """While a text field has the focus, Ctrl+letter keys edit the text: window shortcuts
    (Ctrl+E export, Ctrl+R retry, …) do not fire behind the user's back. Ctrl+Q still quits."""

    PASS_THROUGH = frozenset({Qt.Key.Key_Q})

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.ShortcutOverride:
            mods = event.modifiers()
            ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
            if ctrl and not mods & Qt.KeyboardModifier.AltModifier and event.key() not in self.PASS_THROUGH \
                    and (Qt.Key.Key_A <= event.key() <= Qt.Key.Key_Z or event.key() in _EDIT_KEYS) \
                    and not getattr(watched, "isReadOnly", lambda: False)():
                event.accept()  # the field gets the key press; no shortcut sees it
                return True
        return False


_EDIT_KEYS = frozenset({Qt.Key.Key_Backspace, Qt.Key.Key_Delete, Qt.Key.Key_Left, Qt.Key.Key_Right,
                        Qt.Key.Key_Home, Qt.Key.Key_End})


def guard_typing(root: QWidget) -> TypingGuard:
    """Install a ``TypingGuard`` on every text field under ``root``."""
    guard = TypingGuard(root)
    for field in root.findChildren(QLineEdit) + root.findChildren(QPlainTextEdit):
        field.installEventFilter(guard)
    return guard


def make_action(owner: QWidget, text: str, slot, shortcut=None, icon_name: str = "", tip: str = "") -> QAction:
    """An action of ``owner`` (its shortcut works with the menu bar hidden); the tooltip
    names the shortcut."""
    action = QAction(text, owner)
    if icon_name:
        action.setIcon(icon(icon_name))
    if shortcut:
        shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
    tip = tip or text.replace("&", "").replace("…", "")
    if action.shortcut().toString():
        tip += f" ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(slot)
    owner.addAction(action)
    return action


def row_table(object_name: str, accessible_name: str, model, *, multi: bool = False,
              row_height: int = 28, alternate: bool = True) -> QTableView:
    """A table of whole-row records (the queue, the packet list): one look, one place."""
    table = QTableView()
    table.setObjectName(object_name)
    table.setAccessibleName(accessible_name)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi
                           else QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(alternate)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(row_height)
    table.horizontalHeader().setHighlightSections(False)
    return table


class ElidedLabel(QLabel):
    """One line of text that never asks for width: drawn elided ("…") to the width it gets,
    the whole text in its tooltip (unless one is set), and in ``text()`` for anyone reading."""

    def __init__(self, text: str = "", mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight, parent=None):
        super().__init__(text, parent)
        self.mode = mode
        self._tip = ""
        self.setMinimumWidth(40)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def setToolTip(self, tip: str) -> None:  # noqa: N802 - Qt API
        self._tip = tip
        super().setToolTip(tip or (self.text() if self.is_elided() else ""))

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        super().setText(text)
        self.setToolTip(self._tip)

    def shown_text(self) -> str:
        return self.fontMetrics().elidedText(self.text(), self.mode, self.contentsRect().width())

    def is_elided(self) -> bool:
        return self.shown_text() != self.text()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.setToolTip(self._tip)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        self.style().drawItemText(painter, self.contentsRect(), int(self.alignment()), self.palette(),
                                  self.isEnabled(), self.shown_text(), self.foregroundRole())


class Card(QFrame):
    def __init__(self, title: str, icon_name: str, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 10, 8)
        layout.setSpacing(10)
        self.glyph = QLabel()
        self.glyph.setPixmap(pixmap(icon_name, 28))
        self.icon_name = icon_name
        layout.addWidget(self.glyph, 0, Qt.AlignmentFlag.AlignVCenter)
        text = QVBoxLayout()
        text.setSpacing(1)
        head = QHBoxLayout()
        head.setSpacing(6)
        self.title = QLabel(title.upper())
        self.title.setObjectName("cardTitle")
        self.badge = QLabel("")
        self.badge.setObjectName("badge")
        self.badge.hide()
        head.addWidget(self.title)
        head.addWidget(self.badge)
        head.addStretch(1)
        text.addLayout(head)
        # Long paths and lists are elided to the card's width (whole in the tooltip), never
        # clipped and never a reason for the window to grow.
        self.value = ElidedLabel("", Qt.TextElideMode.ElideMiddle)
        self.value.setObjectName("cardValue")
        self.detail = ElidedLabel("")
        self.detail.setObjectName("muted")
        text.addWidget(self.value)
        text.addWidget(self.detail)
        layout.addLayout(text, 1)
        self.buttons = QHBoxLayout()
        layout.addLayout(self.buttons)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_icon(self, name: str) -> None:
        self.icon_name = name
        self.glyph.setPixmap(pixmap(name, 28))


class TargetCard(Card):
    change_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Target", "database", parent)
        self.change = QPushButton("Change…")
        self.change.setToolTip("Choose a DuckDB file or a Parquet folder (Ctrl+T / Ctrl+Shift+T)")
        self.menu = QMenu(self)
        self.change.setMenu(self.menu)
        self.buttons.addWidget(self.change)
        self.show_target(None)

    def show_target(self, path: str | None, detail: str = "") -> None:
        if not path:
            self.set_icon("database")
            self.value.setText("No target chosen")
            self.value.setToolTip("")
            self.badge.hide()
            self.detail.setText(detail or "Ticks are stored in a DuckDB file or a Parquet dataset folder.")
            return
        is_duck = Path(path).suffix.lower() in (".duckdb", ".db")
        self.set_icon("database" if is_duck else "parquet")
        self.value.setText(path)
        self.value.setToolTip(path)
        self.badge.setText("DuckDB" if is_duck else "Parquet")
        self.badge.show()
        self.detail.setText(detail)
        self.detail.setToolTip(detail)


class InstrumentsCard(Card):
    def __init__(self, parent=None):
        super().__init__("Instrument masters", "instruments", parent)
        self.add = QPushButton("Add…")
        self.add.setToolTip("Add instrument masters (Ctrl+Shift+I)")
        self.manage = QPushButton("Manage")
        self.manage.setAccessibleName("Manage instrument masters")
        self.menu = QMenu(self)
        self.manage.setMenu(self.menu)
        self.buttons.addWidget(self.add)
        self.buttons.addWidget(self.manage)
        self.show_masters(MastersSummary("None added", "Without a master, ticks keep their token but no symbol.", ""))

    def show_masters(self, summary: MastersSummary) -> None:
        """What ``app.model.masters.MasterList.summary`` says of the masters."""
        self.value.setText(summary.value)
        self.detail.setText(summary.detail)
        self.value.setToolTip(summary.tip)
        self.detail.setToolTip(summary.tip)


class EmptyQueuePanel(QWidget):
    """What the queue shows when it is empty: a drop hint, or on first start the
    one-click offer of the bundled sample."""

    add_files = Signal()
    add_folder = Signal()
    use_sample = Signal()
    dismiss_welcome = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        self.glyph = QLabel()
        self.glyph.setPixmap(pixmap("drop", 64, "#94a3b8"))
        self.glyph.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.headline = QLabel("Drop capture files or folders here")
        self.headline.setObjectName("headline")
        self.headline.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel(".dat .bin .raw .b64 .packet captures, .json/.jsonl/.parquet tick dumps, "
                           "or any binary capture Tickscope recognises")
        self.text.setObjectName("muted")
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setWordWrap(True)
        outer.addWidget(self.glyph)
        outer.addWidget(self.headline)
        outer.addWidget(self.text)
        row = QHBoxLayout()
        row.addStretch(1)
        self.sample_button = QPushButton(icon("start", "#ffffff"), "Try the bundled sample")
        self.sample_button.setObjectName("primary")
        self.files_button = QPushButton(icon("add-file"), "Add files…")
        self.folder_button = QPushButton(icon("add-folder"), "Add folder…")
        self.dismiss_button = QPushButton("Not now")
        for b in (self.sample_button, self.files_button, self.folder_button, self.dismiss_button):
            row.addWidget(b)
        row.addStretch(1)
        outer.addSpacing(10)
        outer.addLayout(row)
        outer.addStretch(2)
        self.sample_button.clicked.connect(self.use_sample)
        self.files_button.clicked.connect(self.add_files)
        self.folder_button.clicked.connect(self.add_folder)
        self.dismiss_button.clicked.connect(self.dismiss_welcome)
        self.set_welcome(False)

    def set_welcome(self, welcome: bool, sample_available: bool = True) -> None:
        self.welcome = welcome
        if welcome:
            self.headline.setText("Welcome to Tickscope")
            self.text.setText(
                "Try it on the bundled sample: one Kite capture and two days of instrument masters, "
                "stored in a DuckDB file in your data folder. Or drop your own captures anywhere "
                "on this window."
                if sample_available else
                "Drop Kite captures anywhere on this window, then choose where to store them."
            )
        else:
            self.headline.setText("Drop capture files or folders here")
            self.text.setText(".dat .bin .raw .b64 .packet captures, .json/.jsonl/.parquet tick dumps, "
                              "or any binary capture Tickscope recognises")
        self.sample_button.setVisible(welcome and sample_available)
        self.dismiss_button.setVisible(welcome)


class DropOverlay(QFrame):
    """Shown over the window while files are dragged onto it."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("dropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.glyph = QLabel()
        self.glyph.setPixmap(pixmap("drop", 72, "#2563eb"))
        self.glyph.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label = QLabel("Drop to queue")
        self.label.setObjectName("dropOverlayText")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint = QLabel("Supported captures are queued; anything else is listed in the status bar")
        self.hint.setObjectName("muted")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.glyph)
        layout.addWidget(self.label)
        layout.addWidget(self.hint)
        layout.addStretch(1)
        self.hide()

    def show_over(self, text: str) -> None:
        self.label.setText(text)
        parent = self.parentWidget()
        self.setGeometry(parent.rect().adjusted(12, 12, -12, -12))
        self.raise_()
        self.show()


class SeverityIndicator(QWidget):
    """A coloured glyph and text: bad packets and unresolved ticks at a glance."""

    LEVELS = ("idle", "ok", "warning", "error")

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(4)
        self.glyph = QLabel()
        self.text = QLabel()
        layout.addWidget(self.glyph)
        layout.addWidget(self.text)
        self.level = ""
        self.set_level("idle", "Nothing ingested yet")

    def set_level(self, level: str, text: str, tooltip: str = "") -> None:
        if level != self.level:
            self.glyph.setPixmap(pixmap(f"status-{level}", 14))
            self.level = level
        self.text.setText(text)
        self.setToolTip(tooltip or text)
        self.setAccessibleName(f"Severity {level}: {text}")

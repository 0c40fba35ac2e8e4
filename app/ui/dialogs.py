"""Every modal dialog the window can open, as class methods tests can monkeypatch.

Errors get a short message, what to do about it, and the details (traceback) behind
a button; the same details go to the log file.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import logs
from app.ui.icons import pixmap

log = logging.getLogger(__name__)

CAPTURE_FILTER = (
    "Kite captures and tick dumps (*.dat *.bin *.raw *.b64 *.packet *.json *.jsonl *.parquet);;"
    "All files (*)"
)
INSTRUMENTS_FILTER = "Instrument masters (*.csv *.csv.gz *.json *.parquet);;All files (*)"
DUCKDB_FILTER = "DuckDB database (*.duckdb *.db)"


class ErrorDialog(QDialog):
    def __init__(self, parent: QWidget | None, title: str, message: str, advice: str, details: str):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        glyph = QLabel()
        glyph.setPixmap(pixmap("status-error", 32))
        glyph.setAlignment(Qt.AlignmentFlag.AlignTop)
        text = QVBoxLayout()
        headline = QLabel(message)
        headline.setWordWrap(True)
        headline.setObjectName("cardValue")
        text.addWidget(headline)
        if advice:
            what = QLabel(advice)
            what.setWordWrap(True)
            what.setObjectName("muted")
            text.addWidget(what)
        top.addWidget(glyph)
        top.addLayout(text, 1)
        layout.addLayout(top)
        self.details = QPlainTextEdit(details or "No further details.")
        self.details.setReadOnly(True)
        self.details.setMinimumHeight(180)
        self.details.hide()
        layout.addWidget(self.details)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.toggle = QPushButton("Show details")
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._toggle)
        logs_button = QPushButton("Open log folder")
        logs_button.clicked.connect(open_log_folder)
        buttons.addButton(self.toggle, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(logs_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    def _toggle(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.toggle.setText("Hide details" if shown else "Show details")
        self.adjustSize()

    @classmethod
    def report(cls, parent, title: str, message: str, advice: str = "", details: str = "") -> None:
        cls(parent, title, message, advice, details).exec()


def open_log_folder() -> None:
    log_file = logs.current_log_file()
    folder = log_file.parent if log_file else None
    if folder is not None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


class FolderTargetDialog(QFileDialog):
    """Pick a Parquet dataset folder that may not exist yet: a typed new name is accepted
    (Qt's folder picker refuses names that don't exist); an empty name takes the folder shown;
    a Tickscope dataset is chosen, not entered."""

    def __init__(self, parent, start: str = ""):
        super().__init__(parent, "Choose a Parquet dataset folder (new or existing)", start)
        self.setFileMode(QFileDialog.FileMode.AnyFile)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
        self.setLabelText(QFileDialog.DialogLabel.FileName, "Folder:")
        self.setLabelText(QFileDialog.DialogLabel.Accept, "Use folder")
        self.chosen = ""

    def name_edit(self) -> QLineEdit | None:
        return self.findChild(QLineEdit, "fileNameEdit")

    def accept(self) -> None:  # noqa: D401 - Qt API
        from pathlib import Path

        from app.store.checks import MARKER

        edit = self.name_edit()
        name = edit.text().strip() if edit is not None else ""
        here = Path(self.directory().absolutePath())
        target = here / name if name else here
        if name and target.is_dir() and not (target / MARKER).is_file():
            super().accept()  # an ordinary folder: go into it
            return
        self.chosen = str(target)
        QDialog.accept(self)


def _yes_no(parent, title: str, text: str) -> bool:
    """A question whose safe answer (No) is the default."""
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class Ask:
    """File pickers and questions; each returns what the user chose (empty when cancelled)."""

    @classmethod
    def capture_files(cls, parent, start: str = "") -> list[str]:
        files, _ = QFileDialog.getOpenFileNames(parent, "Add captures", start, CAPTURE_FILTER)
        return files

    @classmethod
    def capture_folder(cls, parent, start: str = "") -> str:
        return QFileDialog.getExistingDirectory(parent, "Add a folder of captures", start)

    @classmethod
    def instrument_files(cls, parent, start: str = "", title: str = "Add instrument masters") -> list[str]:
        files, _ = QFileDialog.getOpenFileNames(parent, title, start, INSTRUMENTS_FILTER)
        return files

    @classmethod
    def duckdb_target(cls, parent, start: str = "") -> str:
        path, _ = QFileDialog.getSaveFileName(
            parent, "Choose a DuckDB target (new or existing)", start, DUCKDB_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        return path

    @classmethod
    def parquet_target(cls, parent, start: str = "") -> str:
        dialog = FolderTargetDialog(parent, start)
        return dialog.chosen if dialog.exec() == QDialog.DialogCode.Accepted else ""

    @classmethod
    def export_csv(cls, parent, start: str = "") -> str:
        path, _ = QFileDialog.getSaveFileName(parent, "Export unknown tokens", start, "CSV (*.csv)")
        return path

    @classmethod
    def cancel_running(cls, parent, running: int) -> bool:
        return _yes_no(parent, "Quit Tickscope",
                       f"{running} file{'s are' if running != 1 else ' is'} queued or being ingested. "
                       "Cancel and quit? Cancelled files leave nothing in the target; the queue "
                       "comes back (as cancelled) when you open this target again.")

    @classmethod
    def confirm_remove(cls, parent, names: list[str], ticks: int, bad_packets: int, target: str) -> bool:
        what = names[0] if len(names) == 1 else f"{len(names)} captures"
        return _yes_no(parent, "Remove from target",
                       f"Remove {what} from {target}? {ticks:,} tick{'s' if ticks != 1 else ''} and "
                       f"{bad_packets:,} bad packet{'s' if bad_packets != 1 else ''} go, and the unknown "
                       "tokens are recomputed. The capture files themselves are not touched.")

    @classmethod
    def about(cls, parent, text: str) -> None:
        QMessageBox.about(parent, "About Tickscope", text)

"""The selected file's details: the full message, the file, what to do, and for a bug the
log file and traceback. It shows what a ``QueueRow``/``Fault`` says; it decides nothing."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from app.model.faults import Fault
from app.model.session import QueueRow

EMPTY = "Select a file in the queue to see its details here."


class DetailsPane(QWidget):
    open_logs = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        top = QHBoxLayout()
        self.headline = QLabel(EMPTY)
        self.headline.setObjectName("cardValue")
        self.headline.setWordWrap(True)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy these details to the clipboard")
        self.logs_button = QPushButton("Open log folder")
        top.addWidget(self.headline, 1)
        top.addWidget(self.copy_button)
        top.addWidget(self.logs_button)
        layout.addLayout(top)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName("File details")
        layout.addWidget(self.text, 1)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        self.logs_button.clicked.connect(self.open_logs)
        self.show_row(None)

    def show_row(self, row: QueueRow | None) -> None:
        if row is None:
            self._show(EMPTY, "", internal=False)
        elif row.failure is not None:
            self.show_fault(row.failure, row.name)
        else:
            lines = [f"Status: {row.status}" + (f" ({row.error})" if row.error else ""), f"File: {row.path}"]
            if row.file_id:
                lines.append(f"Content id (sha256): {row.file_id}")
            lines.append(f"Packets: {row.packets:,} · bad packets: {row.bad_packets:,} · "
                         f"unresolved ticks: {row.unresolved_ticks:,}")
            self._show(f"{row.name}: {row.status}", "\n".join(lines), internal=False)

    def show_fault(self, fault: Fault, name: str = "") -> None:
        title = "Internal error (a bug)" if fault.internal else "Failed"
        self._show(f"{name + ': ' if name else ''}{title}: {fault.message}", fault.details(), internal=fault.internal)

    def _show(self, headline: str, text: str, *, internal: bool) -> None:
        self.headline.setText(headline)
        self.text.setPlainText(text)
        self.text.setVisible(bool(text))
        self.copy_button.setEnabled(bool(text))
        self.logs_button.setVisible(internal)

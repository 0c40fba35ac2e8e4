"""The data-inspector strip: the bytes at the selection read every plausible way."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel

from app.model.formatting import time_text, time_zone
from app.ui.inspector.models import monospace_font

ROWS = (("u16", 2, False), ("u32", 4, False), ("i32", 4, True))


def interpretations(data: bytes) -> dict[str, str]:
    """Label -> text for the bytes at the cursor; '' where there are too few bytes."""
    out: dict[str, str] = {}
    for name, size, signed in ROWS:
        for order, tag in (("big", "BE"), ("little", "LE")):
            key = f"{name} {tag}"
            out[key] = str(int.from_bytes(data[:size], order, signed=signed)) if len(data) >= size else ""
    if len(data) >= 4:
        epoch = int.from_bytes(data[:4], "big")
        try:
            out["epoch BE"] = f"{time_text(epoch)} {time_zone()}"
        except (OverflowError, OSError, ValueError):
            out["epoch BE"] = "out of range"
    else:
        out["epoch BE"] = ""
    return out


class DataInspectorStrip(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        self.setAccessibleName("Data inspector")
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 8, 4)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(1)
        self.values: dict[str, QLabel] = {}
        mono = monospace_font()
        keys = list(interpretations(b"").keys())
        self.title = QLabel("DATA INSPECTOR")
        self.title.setObjectName("cardTitle")
        grid.addWidget(self.title, 0, 0, 1, 2)
        for k, key in enumerate(keys):
            row, col = 1 + k % 2, (k // 2) * 2
            label = QLabel(key)
            label.setObjectName("muted")
            value = QLabel("")
            value.setFont(mono)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setMinimumWidth(80)
            grid.addWidget(label, row, col)
            grid.addWidget(value, row, col + 1)
            self.values[key] = value
        self.values["epoch BE"].setMinimumWidth(170)
        grid.setColumnStretch(grid.columnCount(), 1)

    def show_bytes(self, address: int | None, data: bytes) -> None:
        self.title.setText("DATA INSPECTOR" + (f" · at {address:#x}" if address is not None else ""))
        for key, text in interpretations(data).items():
            self.values[key].setText(text or "—")

"""The hex pane: offset / hex / ASCII columns of one message, painted by hand.

Bytes are coloured by their role in the capture (container framing, message header,
length prefix, the selected packet, other packets of the message, bad bytes), the
selected field's bytes are highlighted, and a click on a byte reports its address so
the details tree can select the field that holds it.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QAbstractScrollArea, QToolTip

from app.core.packet_index import PacketView
from app.ui import theme
from app.ui.inspector.models import monospace_font

BYTES_PER_LINE = 16

# role -> (foreground, background) for light and dark themes; None keeps the default.
ROLE_COLORS = {
    "light": {
        "framing": ("#7c3aed", "#f1ebff"),
        "header": ("#0f766e", "#d9f5f0"),
        "prefix": ("#b45309", "#fdf0d8"),
        "packet": ("#6b7280", None),
        "current": ("#111827", "#e6eeff"),
        "bad": ("#991b1b", "#fbd5d5"),
        "selected": ("#ffffff", "#2563eb"),
        "address": ("#9ca3af", None),
    },
    "dark": {
        "framing": ("#c4b5fd", "#2e2545"),
        "header": ("#5eead4", "#133a36"),
        "prefix": ("#fbbf24", "#3b2d12"),
        "packet": ("#8b93a1", None),
        "current": ("#f3f4f6", "#1c2740"),
        "bad": ("#fecaca", "#5a1f25"),
        "selected": ("#ffffff", "#3b82f6"),
        "address": ("#6b7280", None),
    },
}
LEGEND = (("header", "message header"), ("prefix", "length prefix"), ("framing", "container framing"),
          ("current", "this packet"), ("bad", "bad bytes"), ("selected", "selected field"))


def role_colors() -> dict:
    return ROLE_COLORS["dark" if theme.current() == "dark" else "light"]


class HexView(QAbstractScrollArea):
    byte_clicked = Signal(int)  # address of the clicked byte

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAccessibleName("Packet bytes")
        self.setFont(monospace_font())
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.view: PacketView | None = None
        self.data = b""
        self.base = 0
        self.selection: tuple[int, int] | None = None  # [start, end) addresses
        self._roles: list[str | None] = []
        self._labels: list[str] = []
        self._metrics()

    # -- content ------------------------------------------------------------------------------

    def set_view(self, view: PacketView | None) -> None:
        self.view = view
        self.data = view.data if view else b""
        self.base = view.base if view else 0
        self.selection = None
        # Role per byte: painting then costs one list lookup per visible byte.
        roles: list[str | None] = [None] * len(self.data)
        labels = [""] * len(self.data)
        if view:
            order = {"packet": 0, "framing": 1, "header": 1, "prefix": 1, "current": 2, "bad": 3}
            for region in sorted(view.regions, key=lambda r: order.get(r.role, 0)):
                lo = max(region.start - self.base, 0)
                hi = min(region.end - self.base, len(self.data))
                for i in range(lo, hi):
                    roles[i] = region.role
                    labels[i] = region.label
        self._roles, self._labels = roles, labels
        self._update_scroll()
        self.viewport().update()
        if view:
            self.scroll_to(view.offset)

    def set_selection(self, start: int | None, end: int | None = None) -> None:
        self.selection = None if start is None else (start, max(end or start + 1, start + 1))
        if start is not None:
            self.scroll_to(start)
        self.viewport().update()

    def selected_bytes(self) -> bytes:
        if not self.selection:
            return b""
        a, b = self.selection
        return self.data[max(a - self.base, 0): max(b - self.base, 0)]

    def bytes_from(self, address: int, n: int) -> bytes:
        at = address - self.base
        return self.data[at: at + n] if at >= 0 else b""

    def scroll_to(self, address: int) -> None:
        line = max(0, (address - self._first_line_address()) // BYTES_PER_LINE)
        bar = self.verticalScrollBar()
        visible = max(1, self.viewport().height() // self.line_h - 1)
        if line < bar.value() or line >= bar.value() + visible:
            bar.setValue(max(0, line - 2))

    # -- geometry -------------------------------------------------------------------------------

    def _metrics(self) -> None:
        fm = QFontMetrics(self.font())
        self.char_w = fm.horizontalAdvance("0")
        self.line_h = fm.height() + 3
        self.ascent = fm.ascent()
        self.pad = 8
        self.addr_w = self.char_w * 9
        self.hex_x = self.pad + self.addr_w
        self.cell_w = self.char_w * 3
        self.group_gap = self.char_w
        self.ascii_x = self.hex_x + BYTES_PER_LINE * self.cell_w + self.group_gap + self.char_w

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        self._metrics()

    def sizeHint(self):
        from PySide6.QtCore import QSize

        return QSize(self.ascii_x + BYTES_PER_LINE * self.char_w + 2 * self.pad + 24, 320)

    def _first_line_address(self) -> int:
        return self.base - (self.base % BYTES_PER_LINE)

    def _line_count(self) -> int:
        if not self.data:
            return 0
        first = self._first_line_address()
        return (self.base + len(self.data) - first + BYTES_PER_LINE - 1) // BYTES_PER_LINE

    def _update_scroll(self) -> None:
        visible = max(1, self.viewport().height() // self.line_h)
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, self._line_count() - visible + 1))
        bar.setPageStep(visible)
        self.horizontalScrollBar().setRange(0, max(0, self.sizeHint().width() - self.viewport().width()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_scroll()

    def _hex_x(self, col: int) -> int:
        return self.hex_x + col * self.cell_w + (self.group_gap if col >= 8 else 0)

    def address_at(self, pos: QPoint) -> int | None:
        x = pos.x() + self.horizontalScrollBar().value()
        line = self.verticalScrollBar().value() + (pos.y() - self.pad) // self.line_h
        if pos.y() < self.pad or line < 0:
            return None
        col = None
        for c in range(BYTES_PER_LINE):
            x0 = self._hex_x(c) - self.char_w // 2
            if x0 <= x < x0 + self.cell_w:
                col = c
                break
        if col is None and self.ascii_x <= x < self.ascii_x + BYTES_PER_LINE * self.char_w:
            col = (x - self.ascii_x) // self.char_w
        if col is None:
            return None
        address = self._first_line_address() + line * BYTES_PER_LINE + col
        if not self.base <= address < self.base + len(self.data):
            return None
        return address

    def byte_rect(self, address: int) -> QRect:
        """Where the byte's hex cell is painted (viewport coordinates), for tests and tooltips."""
        rel = address - self._first_line_address()
        line, col = divmod(rel, BYTES_PER_LINE)
        y = self.pad + (line - self.verticalScrollBar().value()) * self.line_h
        x = self._hex_x(col) - self.horizontalScrollBar().value()
        return QRect(x, y, self.char_w * 2, self.line_h)

    # -- events ---------------------------------------------------------------------------------

    def mousePressEvent(self, event) -> None:
        address = self.address_at(event.position().toPoint())
        if address is not None:
            self.byte_clicked.emit(address)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position().toPoint()
        address = self.address_at(pos)
        if address is None:
            QToolTip.hideText()
        else:
            i = address - self.base
            label = self._labels[i] if i < len(self._labels) else ""
            QToolTip.showText(event.globalPosition().toPoint(),
                              f"{address:#x} ({address}): {self.data[i]:#04x}" + (f"\n{label}" if label else ""), self)
        super().mouseMoveEvent(event)

    def paintEvent(self, event) -> None:
        painter = QPainter(self.viewport())
        pal = self.palette()
        colors = role_colors()
        painter.fillRect(self.viewport().rect(), pal.color(QPalette.ColorRole.Base))
        painter.setFont(self.font())
        if not self.data:
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, "Select a packet to see its bytes")
            return
        painter.translate(-self.horizontalScrollBar().value(), 0)
        text = pal.color(QPalette.ColorRole.Text)
        first_line = self.verticalScrollBar().value()
        lines = self.viewport().height() // self.line_h + 2
        start_addr = self._first_line_address()
        sel = self.selection
        # column separators
        border = QColor(theme.colors()["border"])
        painter.setPen(border)
        sep1 = self.hex_x - self.char_w
        sep2 = self.ascii_x - self.char_w
        painter.drawLine(sep1, 0, sep1, self.viewport().height())
        painter.drawLine(sep2, 0, sep2, self.viewport().height())
        for k in range(lines):
            line = first_line + k
            if line >= self._line_count():
                break
            y = self.pad + k * self.line_h
            baseline = y + self.ascent + 1
            addr = start_addr + line * BYTES_PER_LINE
            painter.setPen(QColor(colors["address"][0]))
            painter.drawText(self.pad, baseline, f"{addr:08x}")
            for col in range(BYTES_PER_LINE):
                a = addr + col
                i = a - self.base
                if i < 0 or i >= len(self.data):
                    continue
                role = self._roles[i]
                selected = sel is not None and sel[0] <= a < sel[1]
                fg, bg = colors["selected"] if selected else colors.get(role, (None, None))
                hx = self._hex_x(col)
                ax = self.ascii_x + col * self.char_w
                if bg:
                    # extend the background over the gap to the next byte of the same run
                    nxt = i + 1 < len(self.data) and col < BYTES_PER_LINE - 1 and (
                        (sel is not None and sel[0] <= a + 1 < sel[1]) == selected
                        and (selected or self._roles[i + 1] == role))
                    width = (self._hex_x(col + 1) - hx) if nxt else self.char_w * 2
                    painter.fillRect(hx - 2, y, width + (0 if nxt else 4), self.line_h - 1, QColor(bg))
                    painter.fillRect(ax, y, self.char_w, self.line_h - 1, QColor(bg))
                painter.setPen(QColor(fg) if fg else text)
                byte = self.data[i]
                painter.drawText(hx, baseline, f"{byte:02x}")
                painter.drawText(ax, baseline, chr(byte) if 32 <= byte < 127 else "·")
        painter.end()

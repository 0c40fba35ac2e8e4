"""Painting for the queue's progress bars and per-row cancel/retry buttons."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.ui import queue_model as qm
from app.ui import theme
from app.ui.icons import icon


class ProgressDelegate(QStyledItemDelegate):
    """A slim rounded bar coloured by status, with the percentage beside it."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget else None
        if style is not None:  # selection/hover background, no text
            option.text = ""
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        fraction = float(index.data(qm.ProgressRole) or 0.0)
        status = index.data(qm.StatusRole) or qm.QUEUED
        rect: QRect = option.rect.adjusted(6, 0, -6, 0)
        text_width = 38
        bar = QRectF(rect.left(), rect.center().y() - 3, max(10, rect.width() - text_width - 6), 7)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        track = QColor(option.palette.color(QPalette.ColorRole.Mid))
        track.setAlpha(70)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(track)
        painter.drawRoundedRect(bar, 3.5, 3.5)
        if fraction > 0:
            fill = QRectF(bar)
            fill.setWidth(max(7.0, bar.width() * fraction))
            painter.setBrush(QColor(theme.status_color(status)))
            painter.drawRoundedRect(fill, 3.5, 3.5)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(option.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        text_rect = QRect(int(bar.right()) + 6, rect.top(), text_width, rect.height())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         f"{fraction * 100:.0f}%")
        painter.restore()

    def sizeHint(self, option, index) -> QSize:
        return QSize(150, super().sizeHint(option, index).height())


class ActionDelegate(QStyledItemDelegate):
    """A cancel button on queued/running rows and a retry button on failed/cancelled ones."""

    clicked = Signal(int, str)  # row, "cancel" | "retry"

    def __init__(self, parent=None):
        super().__init__(parent)
        self._icons = {"cancel": icon("cancel"), "retry": icon("retry")}

    @staticmethod
    def action_for(status: str) -> str:
        if status == qm.QUEUED or status in qm.ACTIVE:
            return "cancel"
        if status in (qm.FAILED, qm.CANCELLED):
            return "retry"
        return ""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        self.initStyleOption(option, index)
        option.text = ""
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        action = self.action_for(index.data(qm.StatusRole) or "")
        if not action:
            return
        size = 16
        target = QRect(0, 0, size, size)
        target.moveCenter(option.rect.center())
        mode = QIcon.Mode.Active if option.state & QStyle.StateFlag.State_MouseOver else QIcon.Mode.Normal
        self._icons[action].paint(painter, target, Qt.AlignmentFlag.AlignCenter, mode)

    def editorEvent(self, event, model, option, index) -> bool:
        if event.type() == QEvent.Type.MouseButtonRelease and option.rect.contains(event.position().toPoint()):
            action = self.action_for(index.data(qm.StatusRole) or "")
            if action:
                self.clicked.emit(index.row(), action)
                return True
        return False

    def helpEvent(self, event, view, option, index) -> bool:
        from PySide6.QtWidgets import QToolTip

        action = self.action_for(index.data(qm.StatusRole) or "")
        if action and event.type() == QEvent.Type.ToolTip:
            QToolTip.showText(event.globalPos(), "Cancel this file" if action == "cancel" else "Retry this file", view)
            return True
        return super().helpEvent(event, view, option, index)

    def sizeHint(self, option, index) -> QSize:
        return QSize(28, 22)

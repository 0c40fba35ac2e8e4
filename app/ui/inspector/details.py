"""The details tree: one packet's dissection, field by field, with its expert entries.

Every item of a wire field carries its byte range, so selecting a field highlights its
bytes in the hex pane and a clicked byte finds its field (``select_address``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem

from app.core.dissect import DissectedField
from app.core.packet_index import PacketView
from app.ui.icons import icon
from app.ui.inspector.models import SEVERITY_COLORS, SEVERITY_ICONS, monospace_font

COLUMNS = ("Field", "Offset", "Bytes", "Value", "BE", "LE", "Divisor", "Meaning")
FIELD_ROLE = Qt.ItemDataRole.UserRole + 1  # the DissectedField of an item
RANGE_ROLE = Qt.ItemDataRole.UserRole + 2  # (start, end) byte range of an item


class DetailsTree(QTreeWidget):
    range_selected = Signal(object)  # (start, end) or None
    field_selected = Signal(object)  # DissectedField or None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAccessibleName("Packet details")
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.header().setStretchLastSection(True)
        for col, width in enumerate((172, 60, 96, 150, 84, 84, 56)):
            self.setColumnWidth(col, width)
        self._mono = monospace_font()
        self.view: PacketView | None = None
        self._items: list[tuple[DissectedField, QTreeWidgetItem]] = []
        self.currentItemChanged.connect(self._on_current)

    def show_view(self, view: PacketView | None) -> None:
        self.blockSignals(True)
        self.clear()
        self._items = []
        self.view = view
        self.blockSignals(False)
        if view is None:
            return
        d = view.dissection
        title = (f"Packet {view.number}: {view.kind}, {view.length} bytes at offset {view.offset} "
                 f"({view.offset:#x})" + (f", message {view.msg}" if view.msg is not None else ""))
        top = QTreeWidgetItem([title])
        top.setData(0, RANGE_ROLE, (view.offset, view.offset + max(view.length, 1)))
        font = QFont(self.font())
        font.setBold(True)
        top.setFont(0, font)
        self.addTopLevelItem(top)
        top.setFirstColumnSpanned(True)  # only takes effect once the item is in the tree
        groups: dict[str, QTreeWidgetItem] = {}
        for f in d.fields:
            parent = top
            if f.group:
                parent = groups.get(f.group)
                if parent is None:
                    parent = groups[f.group] = QTreeWidgetItem([f.group])
                    top.addChild(parent)
                    parent.setFont(0, font)
            item = self._field_item(f, view)
            parent.addChild(item)
            self._items.append((f, item))
        for group in groups.values():
            fields = [i.data(0, FIELD_ROLE) for i in (group.child(k) for k in range(group.childCount()))]
            group.setData(0, RANGE_ROLE, (min(f.offset for f in fields), max(f.end for f in fields)))
            group.setText(3, f"{group.childCount()} fields")
        if d.experts or view.reason:
            experts = QTreeWidgetItem(["Expert info"])
            experts.setFont(0, font)
            self.addTopLevelItem(experts)
            experts.setFirstColumnSpanned(True)
            for e in d.experts:
                child = QTreeWidgetItem([f"{e.severity.capitalize()}: {e.message}"])
                child.setToolTip(0, e.message + ("" if e.offset is None else f" (at offset {e.offset})"))
                child.setIcon(0, icon(SEVERITY_ICONS.get(e.severity, "status-idle"),
                                      SEVERITY_COLORS.get(e.severity)))
                child.setForeground(0, QColor(SEVERITY_COLORS.get(e.severity, "#6b7280")))
                if e.offset is not None:
                    child.setData(0, RANGE_ROLE, (e.offset, e.offset + max(1, view.length if view.reason else 1)))
                experts.addChild(child)
                child.setFirstColumnSpanned(True)  # the message reads in full across the columns
            experts.setExpanded(True)
        top.setExpanded(True)

    def _field_item(self, f: DissectedField, view: PacketView) -> QTreeWidgetItem:
        name = f"[{f.name}]" if f.generated else f.name
        raw = f.raw[:16].hex(" ") + (" …" if len(f.raw) > 16 else "")
        value = f.value_text(none="—")
        item = QTreeWidgetItem([
            name,
            f"{f.offset}" if not f.generated else "",
            raw,
            value,
            "" if f.big_endian is None else str(f.big_endian),
            "" if f.little_endian is None else str(f.little_endian),
            "" if f.divisor is None else f"{f.divisor:g}",
            f.meaning,
        ])
        item.setData(0, FIELD_ROLE, f)
        if not f.generated:
            item.setData(0, RANGE_ROLE, (f.offset, f.end))
        for col in (1, 2, 4, 5):
            item.setFont(col, self._mono)
        if f.generated:
            font = QFont(self.font())
            font.setItalic(True)
            item.setFont(0, font)
            item.setForeground(0, self.palette().placeholderText())
        item.setToolTip(7, f.meaning)
        item.setToolTip(0, f"{f.name}: {f.length} bytes at {f.offset} ({f.offset:#x})" if not f.generated
                        else f"{f.name}: derived, not on the wire")
        return item

    # -- selection ------------------------------------------------------------------------------

    def item_for(self, name: str) -> QTreeWidgetItem | None:
        for f, item in self._items:
            if f.name == name:
                return item
        return None

    def wire_fields(self) -> list[DissectedField]:
        return [f for f, _ in self._items if not f.generated and f.length > 0]

    def select_address(self, address: int) -> DissectedField | None:
        """Select the field whose bytes hold ``address`` (a clicked byte)."""
        if self.view is None:
            return None
        f = self.view.dissection.field_at(address)
        if f is None:
            return None
        for field, item in self._items:
            if field is f:
                self.setCurrentItem(item)
                self.scrollToItem(item)
                return f
        return None

    def current_field(self) -> DissectedField | None:
        item = self.currentItem()
        return item.data(0, FIELD_ROLE) if item is not None else None

    def _on_current(self, current, previous=None) -> None:
        if current is None:
            self.range_selected.emit(None)
            self.field_selected.emit(None)
            return
        self.range_selected.emit(current.data(0, RANGE_ROLE))
        self.field_selected.emit(current.data(0, FIELD_ROLE))

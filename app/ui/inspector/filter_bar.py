"""The inspector's filter bar: what the user types, checked, turned into a RowFilter.

Each box is parsed on its own; a box that does not parse gets a red border and a
tooltip saying what is wrong, and the filter is not applied until every box parses.
"""

from __future__ import annotations

import datetime as dt
import re

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLineEdit, QWidget

from app.core import protocol
from app.core.market_time import IST
from app.core.packet_index import KIND_NAMES, RowFilter, parse_offset

_SPLIT = re.compile(r"[,\s]+")
_RANGE = re.compile(r"\s*(.+?)\s*(?:\.\.|–|—|\s-\s|-(?=\s*(?:0x|\d)))\s*(.+?)\s*$")
INVALID_STYLE = "border: 1px solid #dc2626; background: rgba(220, 38, 38, 0.08);"


class FilterError(ValueError):
    pass


def parse_tokens(text: str) -> list[int] | None:
    parts = [p for p in _SPLIT.split(text.strip()) if p]
    if not parts:
        return None
    tokens = []
    for p in parts:
        try:
            value = int(p, 16) if p.lower().startswith("0x") else int(p)
        except ValueError:
            raise FilterError(f"{p!r} is not a token: tokens are whole numbers, e.g. 408065") from None
        if not 0 <= value < 1 << 32:
            raise FilterError(f"{value} is not a token: tokens are 32-bit unsigned numbers")
        tokens.append(value)
    return tokens


def parse_segments(text: str) -> list[int] | None:
    parts = [p for p in _SPLIT.split(text.strip()) if p]
    if not parts:
        return None
    by_name = {s.name.upper(): s.code for s in protocol.SEGMENTS.values()}
    out = []
    for p in parts:
        if p.upper() in by_name:
            out.append(by_name[p.upper()])
            continue
        try:
            value = int(p)
        except ValueError:
            raise FilterError(f"{p!r} is not a segment: use a byte (0-255) or a name like NSE, NFO, INDICES") from None
        if not 0 <= value <= 255:
            raise FilterError(f"segment {value} is not a byte (0-255)")
        out.append(value)
    return out


def _split_range(text: str) -> tuple[str, str]:
    m = _RANGE.match(text)
    if not m:
        raise FilterError("give a range as FROM..TO (or FROM-TO)")
    return m.group(1), m.group(2)


def parse_offset_range(text: str) -> tuple[int, int] | None:
    text = text.strip()
    if not text:
        return None
    try:
        a, b = _split_range(text)
    except FilterError:
        try:
            at = parse_offset(text)
        except ValueError:
            raise FilterError("offsets are decimal or 0x hex: FROM..TO, e.g. 0x1000..0x2000") from None
        return at, at
    try:
        lo, hi = parse_offset(a), parse_offset(b)
    except ValueError:
        raise FilterError("offsets are decimal or 0x hex: FROM..TO, e.g. 0x1000..0x2000") from None
    if hi < lo:
        raise FilterError(f"the range ends ({hi}) before it starts ({lo})")
    return lo, hi


def _parse_time(text: str, day: dt.date | None) -> dt.datetime:
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=IST)
        except ValueError:
            pass
    for fmt in ("%H:%M:%S", "%H:%M"):
        try:
            t = dt.datetime.strptime(text, fmt).time()
        except ValueError:
            continue
        if day is None:
            raise FilterError("no packet with a time seen yet: give a date too (YYYY-MM-DD HH:MM)")
        return dt.datetime.combine(day, t, IST)
    raise FilterError(f"{text!r} is not a time: use HH:MM[:SS] or YYYY-MM-DD HH:MM[:SS] (IST)")


def parse_time_range(text: str, day: dt.date | None = None) -> tuple[int, int] | None:
    """``FROM..TO`` in IST, as inclusive epoch seconds; times alone are on ``day``."""
    text = text.strip()
    if not text:
        return None
    if ".." in text:
        a, b = text.split("..", 1)
    else:
        # "09:15-09:30": the dash between two times (dates also contain dashes)
        m = re.match(r"^(.*\d)\s*-\s*(\d{1,2}:\d{2}(?::\d{2})?|\d{4}-\d{2}-\d{2}.*)$", text)
        if not m:
            raise FilterError("give a time range as FROM..TO, e.g. 09:15..09:30 (IST)")
        a, b = m.group(1), m.group(2)
    lo, hi = _parse_time(a, day), _parse_time(b, day)
    if hi < lo:
        raise FilterError("the time range ends before it starts")
    end = int(hi.timestamp()) + (59 if len(b.strip().split(":")) == 2 else 0)
    return int(lo.timestamp()), end


class FilterBar(QWidget):
    """Token, symbol, kind, segment, bad/unresolved, offset and time range boxes."""

    changed = Signal(object)  # a valid RowFilter

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAccessibleName("Packet filter")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)

        def box(placeholder: str, name: str, width: int) -> QLineEdit:
            edit = QLineEdit()
            edit.setPlaceholderText(placeholder)
            edit.setAccessibleName(name)
            edit.setClearButtonEnabled(True)
            edit.setMinimumWidth(width)  # small enough that the inspector fits 1024 px;
            edit.setToolTip(placeholder)  # the whole hint is in the tooltip
            edit.textChanged.connect(self._schedule)
            edit.returnPressed.connect(self.apply)
            return edit

        self.token = box("Tokens, e.g. 408065 884737", "Token filter", 110)
        self.symbol = box("Symbols, e.g. INFY", "Symbol filter", 80)
        self.kind = QComboBox()
        self.kind.setAccessibleName("Kind filter")
        self.kind.addItem("Any kind", None)
        for code in sorted(KIND_NAMES):
            self.kind.addItem(KIND_NAMES[code], KIND_NAMES[code])
        self.kind.currentIndexChanged.connect(self._schedule)
        self.segment = box("Segments, e.g. NSE 2", "Segment filter", 80)
        self.offsets = box("Offsets 0x100..0x2000", "Offset range filter", 100)
        self.times = box("Time 09:15..09:30 IST", "Time range filter", 100)
        self.bad_only = QCheckBox("Bad only")
        self.unresolved_only = QCheckBox("Unresolved only")
        self.suspect_only = QCheckBox("Suspect only")
        self.suspect_only.setToolTip("Packets stored with a suspect_reason: values that cannot be real")
        for check in (self.bad_only, self.unresolved_only, self.suspect_only):
            check.toggled.connect(self.apply)
        self.set_instruments(False)
        for w in (self.token, self.symbol, self.kind, self.segment, self.offsets, self.times):
            row.addWidget(w, 1)
        row.addWidget(self.bad_only)
        row.addWidget(self.unresolved_only)
        row.addWidget(self.suspect_only)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.apply)
        self.day: dt.date | None = None  # the capture's first trading day (times without a date)
        self.resolve_symbols = lambda symbols: []  # set by the window: symbol -> tokens
        self.errors: dict[str, str] = {}

    def set_instruments(self, loaded: bool) -> None:
        for w in (self.symbol, self.unresolved_only):
            w.setEnabled(loaded)
        tip = "" if loaded else "Load instrument masters in the main window to filter by symbol"
        self.symbol.setToolTip(tip or self.symbol.placeholderText())
        self.unresolved_only.setToolTip(tip or "Packets whose token no instrument master names")

    def _schedule(self, *_) -> None:
        self._timer.start()

    def _mark(self, widget: QLineEdit, key: str, error: str | None) -> None:
        if error:
            self.errors[key] = error
            widget.setStyleSheet(f"QLineEdit {{ {INVALID_STYLE} }}")
            widget.setToolTip(error)
            widget.setProperty("invalid", True)
        else:
            self.errors.pop(key, None)
            widget.setStyleSheet("")
            widget.setToolTip(widget.placeholderText())
            widget.setProperty("invalid", False)

    def spec(self) -> RowFilter | None:
        """The filter as typed, or None (boxes marked) when some box does not parse."""
        out = RowFilter(bad_only=self.bad_only.isChecked(),
                        unresolved_only=self.unresolved_only.isChecked() and self.unresolved_only.isEnabled(),
                        suspect_only=self.suspect_only.isChecked())
        tokens: list[int] | None = None
        for widget, key, parse in ((self.token, "token", parse_tokens), (self.segment, "segment", parse_segments),
                                   (self.offsets, "offsets", parse_offset_range),
                                   (self.times, "times", lambda t: parse_time_range(t, self.day))):
            try:
                value = parse(widget.text())
            except FilterError as err:
                self._mark(widget, key, str(err))
                continue
            self._mark(widget, key, None)
            if key == "token":
                tokens = value
            elif key == "segment":
                out.segments = value
            elif key == "offsets":
                out.offset_range = value
            else:
                out.time_range = value
        symbols = [p for p in _SPLIT.split(self.symbol.text().strip()) if p]
        if symbols and self.symbol.isEnabled():
            named = self.resolve_symbols(symbols)
            if not named:
                self._mark(self.symbol, "symbol", f"no packet so far has the symbol {', '.join(symbols)}")
            else:
                self._mark(self.symbol, "symbol", None)
                tokens = sorted(set(tokens or []) | set(named)) if tokens else named
        else:
            self._mark(self.symbol, "symbol", None)
        out.tokens = tokens
        kind = self.kind.currentData()
        out.kinds = [kind] if kind else None
        if self.errors:
            return None
        return out

    def apply(self) -> None:
        self._timer.stop()
        spec = self.spec()
        if spec is not None:
            self.changed.emit(spec)

    def set_tokens(self, tokens: list[int]) -> None:
        self.token.setText(" ".join(str(t) for t in tokens))
        self.apply()

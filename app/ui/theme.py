"""Light and dark themes: follow the system unless View -> Theme forces one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

# Every text colour reaches 4.5:1 (WCAG AA) on every background it is drawn on
# (tests/ui/test_theme_contrast.py computes it): "highlight" is a background under
# "htext"; "accent" is the same hue as text on the window's own backgrounds.
LIGHT = {
    "window": "#f5f6f8", "base": "#ffffff", "alt": "#f8f9fb", "text": "#1f2937",
    "muted": "#5b6270", "button": "#eef0f3", "highlight": "#2563eb", "htext": "#ffffff",
    "mid": "#c9ced6", "border": "#dde1e7", "card": "#ffffff", "plot_bg": "#ffffff",
    "plot_fg": "#4b5563", "link": "#1d4ed8", "accent": "#1d4ed8", "warning": "#b45309",
    "overlay": "rgba(239, 244, 255, 235)",
    "status": {"queued": "#5b6270", "decoding": "#1d4ed8", "writing": "#6d28d9", "done": "#15803d",
               "skipped": "#475569", "failed": "#b91c1c", "cancelled": "#92400e"},
}
DARK = {
    "window": "#1e2127", "base": "#16181d", "alt": "#1b1e23", "text": "#e5e7eb",
    "muted": "#a3aab5", "button": "#2a2e36", "highlight": "#2563eb", "htext": "#ffffff",
    "mid": "#4b5160", "border": "#343944", "card": "#23272e", "plot_bg": "#16181d",
    "plot_fg": "#c2c7d0", "link": "#7cb3fb", "accent": "#7cb3fb", "warning": "#f59e0b",
    "overlay": "rgba(23, 30, 46, 235)",
    "status": {"queued": "#a3aab5", "decoding": "#7cb3fb", "writing": "#b9a3fb", "done": "#4ade80",
               "skipped": "#a3aab5", "failed": "#f87171", "cancelled": "#fbbf24"},
}
# Which text colours are drawn on which backgrounds (for the contrast check).
TEXT_ON = {
    "text": ("window", "base", "alt", "card", "button"),
    "muted": ("window", "base", "alt", "card", "button"),
    "accent": ("window", "base", "alt", "card"),
    "link": ("base", "card"),
    "warning": ("base", "alt"),
    "htext": ("highlight",),
    "plot_fg": ("plot_bg",),
}

_current = {"name": "light", "colors": LIGHT}


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints is not None and hints.colorScheme() == Qt.ColorScheme.Dark


def effective(choice: str) -> str:
    if choice in ("light", "dark"):
        return choice
    return "dark" if system_is_dark() else "light"


def colors() -> dict[str, str]:
    return _current["colors"]


def current() -> str:
    return _current["name"]


def _palette(c: dict[str, str]) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    for r, key in (
        (role.Window, "window"), (role.WindowText, "text"), (role.Base, "base"),
        (role.AlternateBase, "alt"), (role.Text, "text"), (role.Button, "button"),
        (role.ButtonText, "text"), (role.Highlight, "highlight"), (role.HighlightedText, "htext"),
        (role.ToolTipBase, "card"), (role.ToolTipText, "text"), (role.PlaceholderText, "muted"),
        (role.Mid, "mid"), (role.Midlight, "border"), (role.Link, "link"), (role.BrightText, "htext"),
    ):
        p.setColor(r, QColor(c[key]))
    disabled = QColor(c["muted"])
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, disabled)
    return p


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""
    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def status_color(status: str) -> str:
    return _current["colors"]["status"].get(status, _current["colors"]["text"])


def stylesheet(c: dict[str, str]) -> str:
    return f"""
    QMainWindow::separator {{ background: {c['border']}; width: 1px; height: 1px; }}
    QToolBar {{ border: none; spacing: 4px; padding: 4px 6px; background: {c['window']}; }}
    QToolBar QToolButton {{ padding: 4px 8px; border-radius: 6px; }}
    QToolBar QToolButton:hover {{ background: {c['button']}; }}
    QFrame#card {{ background: {c['card']}; border: 1px solid {c['border']}; border-radius: 8px; }}
    QLabel#cardTitle {{ color: {c['muted']}; font-size: 8pt; font-weight: 600; letter-spacing: 0.5px; }}
    QLabel#cardValue {{ font-weight: 600; }}
    QLabel#muted {{ color: {c['muted']}; }}
    QLabel#badge {{ color: {c['accent']}; border: 1px solid {c['accent']}; border-radius: 4px;
                    padding: 0px 5px; font-size: 8pt; font-weight: 600; }}
    QLabel#explanation {{ background: {c['card']}; border: 1px solid {c['border']}; border-radius: 6px;
                   padding: 6px 8px; }}
    QLabel#headline {{ font-size: 15pt; font-weight: 600; }}
    QTableView {{ gridline-color: {c['border']}; border: 1px solid {c['border']}; border-radius: 6px;
                  selection-background-color: {c['highlight']}; }}
    QHeaderView::section {{ background: {c['alt']}; color: {c['muted']}; border: none;
                  border-bottom: 1px solid {c['border']}; padding: 5px 6px; font-weight: 600; }}
    QTabWidget::pane {{ border: 1px solid {c['border']}; border-radius: 6px; top: -1px; }}
    QTabBar::tab {{ padding: 6px 14px; border: none; color: {c['muted']}; }}
    QTabBar::tab:selected {{ color: {c['text']}; border-bottom: 2px solid {c['highlight']}; }}
    QPushButton {{ padding: 5px 12px; border-radius: 6px; border: 1px solid {c['border']};
                   background: {c['button']}; }}
    QPushButton:hover {{ border-color: {c['highlight']}; }}
    QPushButton#primary {{ background: {c['highlight']}; color: {c['htext']}; border-color: {c['highlight']}; }}
    QLineEdit, QComboBox {{ padding: 4px 6px; border-radius: 5px; border: 1px solid {c['border']};
                   background: {c['base']}; }}
    QLineEdit:focus, QComboBox:focus {{ border-color: {c['highlight']}; }}
    QStatusBar {{ border-top: 1px solid {c['border']}; }}
    QStatusBar QLabel {{ padding: 0px 6px; }}
    QFrame#dropOverlay {{ background: {c['overlay']}; border: 3px dashed {c['highlight']};
                   border-radius: 14px; }}
    QLabel#dropOverlayText {{ color: {c['accent']}; font-size: 16pt; font-weight: 600; }}
    """


def apply(choice: str, app: QApplication | None = None) -> str:
    """Apply ``choice`` (system|light|dark); returns the theme actually in effect."""
    app = app or QApplication.instance()
    name = effective(choice)
    c = DARK if name == "dark" else LIGHT
    _current.update(name=name, colors=c)
    # Each of these restyles every widget of the application even when nothing changes (a new
    # Fusion style object, the same sheet again): ~0.3 CPU-s per window alive, so only changes.
    if app.property("tickscope_style") != "Fusion":
        app.setStyle("Fusion")
        app.setProperty("tickscope_style", "Fusion")
    palette = _palette(c)
    if app.palette() != palette:
        app.setPalette(palette)
    sheet = stylesheet(c)
    if app.styleSheet() != sheet:
        app.setStyleSheet(sheet)
    try:
        import pyqtgraph as pg

        pg.setConfigOptions(background=c["plot_bg"], foreground=c["plot_fg"], antialias=True)
    except ImportError:  # charts are optional for the rest of the window
        pass
    return name

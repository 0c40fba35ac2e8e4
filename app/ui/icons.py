"""The app's SVG icons, tinted for the current theme.

Icons in ``resources/icons`` draw with ``currentColor``; here it becomes the colour
asked for (the palette's text colour by default), so one file serves light and dark.
"""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from app.ui.paths import icon_path

ACCENTS = {"start": "#16a34a", "cancel-all": "#dc2626", "cancel": "#9ca3af", "retry": "#2563eb"}
_SIZES = (16, 20, 24, 32, 48, 64, 128)


def _text_color() -> str:
    app = QGuiApplication.instance()
    if app is None:
        return "#4b5563"
    return app.palette().color(QPalette.ColorRole.WindowText).name()


# Cached per colour, so each theme's icons are drawn once and a theme change (or another
# window) finds them ready.
@lru_cache(maxsize=256)
def _icon(name: str, color: str) -> QIcon:
    path = icon_path(name)
    if not path.is_file():
        return QIcon()
    svg = path.read_text(encoding="utf-8").replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for size in _SIZES:
        for scale in (1, 2):
            pixmap = QPixmap(QSize(size, size) * scale)
            pixmap.setDevicePixelRatio(scale)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            renderer.render(painter, QRectF(0, 0, size, size))
            painter.end()
            result.addPixmap(pixmap)
    return result


def icon(name: str, color: str | None = None) -> QIcon:
    return _icon(name, color or ACCENTS.get(name) or _text_color())


def pixmap(name: str, size: int, color: str | None = None) -> QPixmap:
    return icon(name, color).pixmap(size, size)

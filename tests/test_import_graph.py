"""No PySide6 (or pyqtgraph) import anywhere outside app/ui and app/commands/gui.py: read from
the source (every import statement, also inside functions), so a lazy import can't hide."""

from __future__ import annotations

import ast

from tests.conftest import REPO

QT_PACKAGES = {"PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6"}
ALLOWED = ("app/ui/", "app/commands/gui.py")


def _qt_imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in QT_PACKAGES:
                yield node.lineno, name


def test_only_the_ui_imports_qt():
    offenders, ui_files = [], 0
    for path in sorted((REPO / "app").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        found = list(_qt_imports(path))
        if rel.startswith(ALLOWED):
            ui_files += bool(found)
            continue
        offenders += [f"{rel}:{line}: {name}" for line, name in found]
    assert not offenders, "Qt imported outside app/ui:\n" + "\n".join(offenders)
    assert ui_files >= 10  # the scan does see the UI's imports

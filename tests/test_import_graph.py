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


def _imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_the_product_never_imports_test_support():
    """tests/support (encoder, synthetic captures) is not shipped: app/ must not import it."""
    offenders, scanned = [], 0
    for path in sorted((REPO / "app").rglob("*.py")):
        scanned += 1
        offenders += [f"{path.relative_to(REPO).as_posix()}:{line}: {name}"
                      for line, name in _imported_modules(path) if name.split(".")[0] == "tests"]
    assert not offenders, "app/ imports test support:\n" + "\n".join(offenders)
    assert scanned > 50
    assert not (REPO / "app" / "core" / "synthetic.py").exists()
    assert not (REPO / "app" / "core" / "encode.py").exists()


def test_the_wheel_packages_only_the_product():
    """The packages setuptools puts in the wheel (pyproject's packages.find), computed the way
    setuptools does: app and its subpackages, never tests/ (nor tests.support)."""
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = set(find_packages(str(REPO), include=find["include"], exclude=find.get("exclude", ())))
    assert {"app", "app.core", "app.ui", "app.commands"} <= packages
    assert not [p for p in packages if not p.startswith("app")], sorted(packages)

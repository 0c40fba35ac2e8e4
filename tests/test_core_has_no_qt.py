"""app.core, app.store and app.pipeline must import without Qt (napari-style split)."""

import subprocess
import sys
import textwrap

from tests.conftest import REPO


def test_core_store_pipeline_import_with_qt_blocked():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class BlockQt:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6"):
                    raise ImportError(f"Qt is blocked in core code: {name}")
                return None

        sys.meta_path.insert(0, BlockQt())
        import app
        count = 0
        for package in ("app.core", "app.store", "app.pipeline"):
            pkg = importlib.import_module(package)
            for info in pkgutil.walk_packages(pkg.__path__, package + "."):
                importlib.import_module(info.name)
                count += 1
        print(count)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 3  # protocol, schema, encode at least

"""PyInstaller runtime hook: stand in for PySide6.QtOpenGL, which the bundle leaves out.

pyqtgraph imports PySide6.QtOpenGL when its curve module loads, but only calls into it for
its optional OpenGL renderer (``useOpenGL``), which Tickscope never turns on. The binding
is 8.9 MB of the bundle; this placeholder lets the import succeed and makes any real use
fail with a message saying why. tests/test_packaging.py checks the app never enables it.
"""

import sys
import types


class _LeftOutOfBundle(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"PySide6.QtOpenGL.{name}: QtOpenGL is left out of the Tickscope bundle "
            "(pyqtgraph's OpenGL rendering is not used)"
        )


sys.modules.setdefault("PySide6.QtOpenGL", _LeftOutOfBundle("PySide6.QtOpenGL"))

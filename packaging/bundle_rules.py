"""What goes into the frozen bundle: the modules PyInstaller must not follow, and which
collected files (Qt plugins, translations, headers, optional Arrow components) to drop.

Read by ``tickscope.spec`` at build time and by ``tests/test_packaging.py``; kept free of
PyInstaller imports so the rules can be checked without building.
"""

from __future__ import annotations

import re

# Test-only and development dependencies (pyproject's `test`/`cluster` extras and their
# dependencies), Qt bindings we do not use and Python modules nothing in the app needs.
# PyInstaller only follows real imports, so these guard against optional imports in
# third-party code dragging them in.
EXCLUDED_MODULES = [
    # test oracle and its Twisted/Autobahn stack
    "kiteconnect", "twisted", "autobahn", "txaio", "zope", "automat", "constantly",
    "hyperlink", "incremental", "OpenSSL", "service_identity", "requests", "urllib3",
    # test runners and property testing
    "pytest", "_pytest", "pytestqt", "pytest_timeout", "xdist", "execnet", "hypothesis",
    "pluggy", "iniconfig",
    # the optional cluster engine
    "dask", "distributed",
    # build and packaging tools
    "PyInstaller", "setuptools", "pkg_resources", "pip", "wheel",
    # GUI toolkits and data stacks the app does not use
    "tkinter", "_tkinter", "PyQt5", "PyQt6", "PySide2", "matplotlib", "IPython", "scipy",
    "pandas", "OpenGL",
    # Qt modules outside QtCore/QtGui/QtWidgets/QtSvg/QtOpenGLWidgets. pyqtgraph imports
    # QtOpenGL for its optional GL renderer: packaging/rthook_no_qtopengl.py stands in for
    # it (8.9 MB); QtTest it imports optionally.
    "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets",
    "PySide6.QtQuickControls2", "PySide6.QtQuickTest", "PySide6.QtTest", "PySide6.QtOpenGL", "PySide6.QtDesigner", "PySide6.QtUiTools",
    "PySide6.QtHelp", "PySide6.QtSql", "PySide6.QtXml", "PySide6.QtDBus",
    "PySide6.QtPrintSupport", "PySide6.QtConcurrent", "PySide6.QtPdf", "PySide6.QtPdfWidgets",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick",
    "PySide6.Qt3DCore", "PySide6.Qt3DRender", "PySide6.QtMultimedia", "PySide6.QtCharts",
    "PySide6.QtSvgWidgets",
    # Arrow components the stores never touch (Flight RPC, Substrait, GPU, cloud filesystems,
    # ORC, the JVM bridge) and Arrow's own test suite.
    "pyarrow.flight", "pyarrow._flight", "pyarrow.substrait", "pyarrow._substrait",
    "pyarrow.cuda", "pyarrow._cuda", "pyarrow.gandiva", "pyarrow._gcsfs", "pyarrow._s3fs",
    "pyarrow._azurefs", "pyarrow._hdfs", "pyarrow.orc", "pyarrow._orc", "pyarrow._dataset_orc",
    "pyarrow.jvm", "pyarrow.tests", "pyarrow._pyarrow_cpp_tests", "pyarrow.benchmark", "pyarrow.interchange",
    "numpy.tests", "numpy.f2py", "numpy.distutils",
    "pyqtgraph.examples", "pyqtgraph.opengl", "pyqtgraph.jupyter",
]

# Qt plugin folders kept, and which plugins inside them. Everything else under plugins/
# (tls, networkinformation, sqldrivers, printsupport, generic input, eglfs, qml tooling,
# platform themes that would pull in GTK) is dropped.
KEPT_PLUGINS = {
    # offscreen: CI and `--screenshot`; xcb/wayland: Linux desktops; windows/cocoa: the
    # native platforms; minimal: headless fallback.
    "platforms": re.compile(r"(lib)?q(offscreen|minimal|xcb|wayland[-\w]*|windows|cocoa)\b"),
    "imageformats": re.compile(r"(lib)?q(svg|ico)\b"),
    "iconengines": re.compile(r"(lib)?qsvgicon\b"),
    "platforminputcontexts": re.compile(r".*"),   # compose key and IBus text input
    "xcbglintegrations": re.compile(r".*"),       # xcb loads one to decide on OpenGL
    "wayland-shell-integration": re.compile(r".*"),
    "wayland-decoration-client": re.compile(r".*"),
    "wayland-graphics-integration-client": re.compile(r".*"),
    "styles": re.compile(r".*"),                  # the Windows 11 style
}

# Shared libraries of the dropped Arrow components (collected by the pyarrow hook as
# plain files, whether or not anything imports them). Substrait stays: libarrow_python
# links it.
_DROPPED_LIBS = re.compile(
    r"(^|/)(lib)?(arrow_flight|arrow_python_flight|arrow_s3|gandiva|arrow_cuda)"
    r"[^/]*\.(so[.\d]*|dylib|dll|lib)$"
)
_PLUGIN_PATH = re.compile(r"(^|/)plugins/([^/]+)/([^/]+)$")
_EXTENSION_MODULE = re.compile(r"(\.cpython-[^/]+\.so|\.abi3\.so|\.pyd)$")
_SOURCE_ONLY = re.compile(r"\.(pxd|pyx|pxi|h|hpp|cc|cpp|c|cmake|pc|a|lib|pyi)$")


def keep(dest: str) -> bool:
    """Whether the collected file with bundle-relative path ``dest`` goes into the bundle."""
    dest = dest.replace("\\", "/")
    if "/translations/" in f"/{dest}" and dest.endswith(".qm"):
        return False  # the app is English only; Qt's .qm files are ~25 MB
    plugin = _PLUGIN_PATH.search(dest)
    if plugin and "PySide6" in dest:
        rule = KEPT_PLUGINS.get(plugin.group(2))
        return bool(rule and rule.match(plugin.group(3)))
    if _DROPPED_LIBS.search(dest):
        return False
    if re.search(r"(^|/)(include|src)/", dest) and dest.split("/")[0] in ("pyarrow", "numpy"):
        return False  # C/C++ headers and Cython sources for building extensions
    if _SOURCE_ONLY.search(dest):
        return False
    if re.search(r"(^|/)(tests?|examples)/", dest) and dest.split("/")[0] in ("pyarrow", "numpy", "pyqtgraph"):
        return False
    return True


def filter_toc(toc):
    """A PyInstaller TOC (list of ``(dest, src, typecode)``) without the dropped entries."""
    return [entry for entry in toc if keep(entry[0])]


def prune_unreachable(binaries):
    """Drop shared libraries that nothing kept links to any more.

    PyInstaller resolves each collected binary's dependencies during Analysis, so a plugin
    dropped by ``keep`` leaves its libraries behind (the GTK theme's cairo/pango/atk, the TLS
    backend's OpenSSL/Kerberos, eglfs). Roots are the Python extension modules, the Qt
    plugins that stay (Qt loads those by path) and libpython (the bootloader loads it); a
    library stays if a root needs it, directly or through another library.
    """
    import os

    from PyInstaller.depend import bindepend

    def real(path):
        return os.path.realpath(path)

    files = [entry for entry in binaries if entry[2] != "SYMLINK"]
    by_src = {real(entry[1]): entry for entry in files}
    # pyarrow's hook collects its extension modules as plain binaries (they match lib*.so),
    # so extension modules are recognised by name as well as by typecode.
    roots = [
        entry for entry in files
        if entry[2] == "EXTENSION"
        or _EXTENSION_MODULE.search(entry[0])
        or _PLUGIN_PATH.search(entry[0].replace("\\", "/"))
        or re.match(r"(lib)?python\d", os.path.basename(entry[0]))
    ]
    kept = {real(entry[1]) for entry in roots}
    todo = list(kept)
    while todo:
        src = todo.pop()
        for _name, resolved in bindepend.get_imports(src, search_paths=[os.path.dirname(src)]):
            if resolved and real(resolved) in by_src and real(resolved) not in kept:
                kept.add(real(resolved))
                todo.append(real(resolved))
    return [entry for entry in binaries if entry[2] == "SYMLINK" or real(entry[1]) in kept]


def drop_dangling_symlinks(binaries, datas):
    """``datas`` without the symlinks (PyInstaller puts them there) whose target was dropped."""
    import os

    present = {dest.replace("\\", "/") for dest, _, typecode in binaries + datas if typecode != "SYMLINK"}

    def target(dest, link):
        return os.path.normpath(os.path.join(os.path.dirname(dest), link)).replace("\\", "/")

    return [
        (dest, src, typecode) for dest, src, typecode in datas
        if typecode != "SYMLINK" or target(dest, src) in present
    ]

"""What goes into the frozen bundle: the modules PyInstaller must not follow, and which
collected files (Qt plugins, translations, headers, optional Arrow components, system
libraries) to drop.

Read by ``tickscope.spec`` at build time and by ``tests/test_packaging.py``; kept free of
PyInstaller imports so the rules can be checked without building. What happens to the
collected files after the build (ICU data, stub libraries) is in ``slim_linux.py``.
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
    # the linter (`make lint`)
    "ruff",
    # the project's own test support (tests/support: encoder, synthetic captures); nothing in
    # app/ imports it, and excluding it makes a stray import fail the bundle's selftest
    "tests",
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
    "PySide6.QtQuickControls2", "PySide6.QtQuickTest", "PySide6.QtTest", "PySide6.QtOpenGL", "PySide6.QtDesigner",
                    "PySide6.QtUiTools",
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
    # Arrow readers and features the app does not use (it reads Parquet, datasets and CSV):
    # Feather, the JSON reader's Python API (pyarrow._dataset needs its pyarrow._json),
    # Parquet modular encryption, the cffi bridge.
    "pyarrow.json", "pyarrow.feather", "pyarrow._feather",
    "pyarrow.parquet.encryption", "pyarrow._parquet_encryption", "pyarrow._dataset_parquet_encryption",
    "pyarrow.cffi",
    "numpy.tests", "numpy.f2py", "numpy.distutils",
    # numpy.testing drags in unittest, doctest, pdb and psutil; numpy.show_config YAML.
    "numpy.testing", "unittest", "doctest", "psutil", "yaml",
    "numpy._core._multiarray_tests",
    "pyqtgraph.examples", "pyqtgraph.opengl", "pyqtgraph.jupyter", "pyqtgraph.flowchart",
    "pyqtgraph.canvas", "pyqtgraph.console",
    # DuckDB's PySpark-compatible API; asyncio (only PySide6.QtAsyncio and the packages
    # excluded here use it).
    "duckdb.experimental", "asyncio", "PySide6.QtAsyncio",
    # Optional dependencies reached only by features the app never uses: fsspec filesystems
    # (duckdb.filesystem, pyarrow.fs's FSSpecHandler) and the jinja2 templates of one fsspec
    # backend; cffi (pyarrow.cffi) and the distutils shim it imports.
    "fsspec", "jinja2", "markupsafe", "cffi", "_cffi_backend", "pycparser", "distutils",
    # Standard library the app does not use: the interactive line editor, help() topics,
    # and Python's East Asian codecs (the app decodes UTF-8 only; Qt converts legacy
    # encodings through ICU). ssl stays: pyarrow._fs imports it at load.
    "readline", "pydoc_data", "_codecs_jp", "_codecs_kr", "_codecs_cn", "_codecs_tw",
    "_codecs_hk", "_codecs_iso2022", "_multibytecodec",
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
    # Desktop compositors (GNOME, KDE, wlroots, Weston) all speak xdg-shell; the others
    # are for in-vehicle (ivi), kiosk (fullscreen), Qt-based compositors (qt-shell) and
    # the retired wl_shell. The *-server graphics integrations serve Qt compositors'
    # server buffers; wayland-egl is what OpenGL in a client window uses.
    "wayland-shell-integration": re.compile(r"(lib)?xdg-shell\b"),
    "wayland-decoration-client": re.compile(r".*"),
    "wayland-graphics-integration-client": re.compile(r"(lib)?qt-plugin-wayland-egl\b"),
    "styles": re.compile(r".*"),                  # the Windows 11 style
}

# Shared libraries of the dropped Arrow components (collected by the pyarrow hook as
# plain files, whether or not anything imports them). Substrait is linked by every
# extension module: packaging/slim_linux.py swaps it for an empty stand-in after the build.
_DROPPED_LIBS = re.compile(
    r"(^|/)(lib)?(arrow_flight|arrow_python_flight|arrow_s3|gandiva|arrow_cuda)"
    r"[^/]*\.(so[.\d]*|dylib|dll|lib)$"
)
# System libraries taken from the system, like the libGL, libEGL and libxcb PyInstaller
# already leaves out: Qt's GUI libraries cannot load without libGL.so.1 and libEGL.so.1,
# and every distribution's GL/EGL packages depend on Xlib, libX11-xcb, expat and zlib
# (Debian: libgl1 -> libglx0 -> libx11-6; libegl1 -> libegl-mesa0 -> libexpat1, zlib1g,
# libx11-xcb1), so bundling them only duplicates what is there. All four are on the
# AppImage project's list of libraries never to bundle. The .deb's Depends: picks them up.
SYSTEM_LIBRARIES = frozenset({"libX11.so.6", "libX11-xcb.so.1", "libexpat.so.1", "libz.so.1"})
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
    if _DROPPED_LIBS.search(dest) or dest.rsplit("/", 1)[-1] in SYSTEM_LIBRARIES:
        return False
    if re.search(r"(^|/)(include|src)/", dest) and dest.split("/")[0] in ("pyarrow", "numpy"):
        return False  # C/C++ headers and Cython sources for building extensions
    if _SOURCE_ONLY.search(dest):
        return False
    if re.search(r"(^|/)(tests?|examples)/", dest) and dest.split("/")[0] in ("pyarrow", "numpy", "pyqtgraph"):
        return False
    if dest.startswith("pyqtgraph/icons/peegee/"):
        # pyqtgraph's own application icon (0.97 MB): only its mkQApp reads it, when
        # pyqtgraph creates the QApplication; Tickscope creates its own, with its own icon.
        return False
    return True


def filter_toc(toc):
    """A PyInstaller TOC (list of ``(dest, src, typecode)``) without the dropped entries."""
    return [entry for entry in toc if keep(entry[0])]


def prune_unreachable(binaries):
    """Drop shared libraries that nothing kept links to any more.

    PyInstaller resolves each collected binary's dependencies during Analysis (with ldd, so
    transitively through system libraries it leaves out), so a plugin dropped by ``keep``
    leaves its libraries behind (the GTK theme's cairo/pango/atk, the TLS backend's
    OpenSSL/Kerberos, eglfs), and so do libraries only a system library needs (libxcb's
    libXau/libXdmcp: the system that provides libxcb provides them). Roots are the Python
    extension modules, the Qt plugins that stay (Qt loads those by path) and libpython (the
    bootloader loads it); a library stays if a root names it in DT_NEEDED, directly or
    through another kept library.
    """
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from slim_linux import read_elf

    def real(path):
        return os.path.realpath(path)

    def name(dest):
        return dest.replace("\\", "/").rsplit("/", 1)[-1]

    files = [entry for entry in binaries if entry[2] != "SYMLINK"]
    # A DT_NEEDED soname is satisfied by any collected file or symlink of that name
    # (the bootloader puts _internal on the search path; Qt's libraries find each other
    # through their $ORIGIN run path).
    by_dest = {entry[0].replace("\\", "/"): entry for entry in files}
    providers: dict[str, set[str]] = {}
    by_soname: dict[str, set[str]] = {}  # fallback: a file collected under another name
    for dest, src, typecode in binaries:
        if typecode == "SYMLINK":
            target = os.path.normpath(os.path.join(os.path.dirname(dest), src)).replace("\\", "/")
            if target in by_dest:
                providers.setdefault(name(dest), set()).add(real(by_dest[target][1]))
        else:
            providers.setdefault(name(dest), set()).add(real(src))
            info = read_elf(src) if name(dest).startswith("lib") else None
            if info and info.soname:
                by_soname.setdefault(info.soname, set()).add(real(src))
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
        info = read_elf(todo.pop())
        for soname in info.needed if info else ():
            for src in providers.get(soname) or by_soname.get(soname, ()):
                if src not in kept:
                    kept.add(src)
                    todo.append(src)
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

"""The desktop installer: bundle rules, desktop integration files, and a real frozen build.

The build tests run packaging/build.py once per session into build/test-bundle/ (reused
while app/, resources/ and the recipe are unchanged: build.py keys it on a source hash),
then run the bundle's `selftest` and its GUI offscreen, and read the .tar.gz and .deb.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import plistlib
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app import __version__
from app.store import open_target

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
RESOURCES = REPO / "resources"
TEST_DIST = REPO / "build" / "test-bundle" / "dist"
TEST_WORK = REPO / "build" / "test-bundle" / "work"
MIME_TYPE = "application/x-kite-capture"
VENV_QT_LIB = Path(importlib.util.find_spec("PySide6").origin).parent / "Qt" / "lib"


def _load(name: str):
    """A module of packaging/ (not importable by name: `packaging` is also a PyPI package)."""
    spec = importlib.util.spec_from_file_location(f"tickscope_packaging_{name}", PACKAGING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rules = _load("bundle_rules")
build = _load("build")
smoke = _load("smoke")
slim = _load("slim_linux")


# --- what goes into the bundle -------------------------------------------------------------

@pytest.mark.parametrize("dest", [
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so",
    "PySide6/Qt/plugins/wayland-decoration-client/libadwaita.so",
    "PySide6/Qt/plugins/wayland-graphics-integration-client/libqt-plugin-wayland-egl.so",
    "PySide6/plugins/platforms/qwindows.dll",
    "PySide6/Qt/plugins/platforms/libqcocoa.dylib",
    "PySide6/Qt/plugins/imageformats/libqsvg.so",
    "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
    "PySide6/Qt/plugins/xcbglintegrations/libqxcb-glx-integration.so",
    "PySide6/Qt/lib/libQt6Core.so.6",
    "pyarrow/libarrow.so.2600",
    "pyarrow/libparquet.so.2600",
    "pyarrow/libarrow_substrait.so.2600",  # kept here, swapped for a stub after the build
    "libxcb-cursor.so.0",
    "libfontconfig.so.1",
    "libcrypto.so.3",
    "resources/samples/binary_data_20251013_091500.dat",
    "resources/icons/tickscope.svg",
    "pyqtgraph/icons/auto.png",  # the plots' auto-range button
])
def test_bundle_keeps(dest):
    assert rules.keep(dest)


@pytest.mark.parametrize("dest", [
    "PySide6/Qt/translations/qtbase_de.qm",
    "PySide6\\translations\\qt_fr.qm",
    "PySide6/Qt/plugins/tls/libqopensslbackend.so",
    "PySide6/Qt/plugins/networkinformation/libqnetworkmanager.so",
    "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
    "PySide6/Qt/plugins/sqldrivers/libqsqlite.so",
    "PySide6/Qt/plugins/egldeviceintegrations/libqeglfs-kms-integration.so",
    "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/imageformats/libqjpeg.so",
    "PySide6/Qt/plugins/qmltooling/libqmldbg_debugger.so",
    "PySide6/Qt/plugins/wayland-shell-integration/libivi-shell.so",
    "PySide6/Qt/plugins/wayland-shell-integration/libwl-shell-plugin.so",
    "PySide6/Qt/plugins/wayland-graphics-integration-client/libvulkan-server.so",
    "libX11.so.6",
    "libz.so.1",
    "libexpat.so.1",
    "pyarrow/libarrow_flight.so.2600",
    "pyarrow/libarrow_python_flight.so.2600",
    "pyarrow/libarrow_s3.so.2600",
    "pyarrow/include/arrow/api.h",
    "pyarrow/lib.pyx",
    "numpy/_core/include/numpy/ndarrayobject.h",
    "pyqtgraph/icons/peegee/peegee_512px@2x.png",
])
def test_bundle_drops(dest):
    assert not rules.keep(dest)


def test_test_only_dependencies_are_excluded():
    """Every test/cluster extra of pyproject.toml is kept out of the frozen app."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    module_of = {"pytest-qt": "pytestqt", "pytest-timeout": "pytest_timeout", "pytest-xdist": "xdist",
                 "dask[distributed]": "dask"}
    for extra in ("test", "cluster"):
        assert extras[extra], extra
        for requirement in extras[extra]:
            dist = re.split(r"[=<>!~ ;]", requirement, maxsplit=1)[0]
            module = module_of.get(dist, dist.replace("-", "_"))
            assert module in rules.EXCLUDED_MODULES, f"{requirement} (extra {extra}) is not excluded"
    for qt_module in ("QtNetwork", "QtQml", "QtQuick", "QtPdf", "QtWebEngineCore", "Qt3DCore"):
        assert f"PySide6.{qt_module}" in rules.EXCLUDED_MODULES


def test_app_never_turns_on_pyqtgraph_opengl():
    """The bundle replaces PySide6.QtOpenGL with a placeholder (rthook_no_qtopengl.py)."""
    offenders = [
        str(path.relative_to(REPO)) for path in (REPO / "app").rglob("*.py")
        if re.search(r"useOpenGL\s*[=:]\s*True|useOpenGL['\"]\s*[,:]\s*True|setUseOpenGL\("
                     r"|PySide6\.QtOpenGL\b|QtOpenGL import",
                     path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_qtopengl_placeholder_explains_itself():
    saved = sys.modules.pop("PySide6.QtOpenGL", None)
    try:
        runpy_globals: dict = {}
        exec(compile((PACKAGING / "rthook_no_qtopengl.py").read_text(), "rthook", "exec"), runpy_globals)
        placeholder = sys.modules["PySide6.QtOpenGL"]
        with pytest.raises(AttributeError, match="left out of the Tickscope bundle"):
            placeholder.QOpenGLFunctions  # noqa: B018
        assert not hasattr(placeholder, "__path__")
    finally:
        sys.modules.pop("PySide6.QtOpenGL", None)
        if saved is not None:
            sys.modules["PySide6.QtOpenGL"] = saved


def test_debian_package_naming_rule():
    assert build._debian_package_guess("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert build._debian_package_guess("libX11.so.6") == "libx11-6"
    assert build._debian_package_guess("libGL.so.1") == "libgl1"
    assert build._debian_package_guess("libgcc_s.so.1") == "libgcc-s1"


def test_version_has_one_source():
    assert build.version() == __version__
    info = plistlib.loads((PACKAGING / "macos" / "Info.plist").read_bytes())
    assert "CFBundleShortVersionString" not in info  # the spec fills it from app.__version__
    iss = (PACKAGING / "windows" / "tickscope.iss").read_text()
    assert "#ifndef AppVersion" in iss and __version__ not in iss


# --- Linux slimming: reduced ICU data, stub libraries -------------------------------------

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux-only slimming")
needs_binutils = pytest.mark.skipif(not (sys.platform.startswith("linux") and slim.binutils_available()),
                                    reason="binutils (as, ld) not installed")


@pytest.fixture(scope="module")
def icu_package():
    """The ICU common data package of the venv's PySide6 (what the bundle starts from)."""
    library = VENV_QT_LIB / "libicudata.so.73"
    offset, size, _ = slim.read_elf(library).defined["icudt73_dat"]
    raw = library.read_bytes()[offset:offset + size]
    return raw, slim.read_icu_package(raw)


@linux_only
def test_icu_package_writes_back_byte_for_byte(icu_package):
    raw, package = icu_package
    assert package.prefix == "icudt73l/" and len(package.items) > 3000
    assert slim.write_icu_package(package) == raw


@pytest.mark.parametrize("name", [
    "coll/root.res", "coll/ucadata.icu", "coll/sv.res", "coll/hi.res", "coll/zh.res", "coll/res_index.res",
    "root.res", "pool.res", "res_index.res", "en.res", "en_IN.res", "zone/en.res", "zone/root.res",
    "zone/pool.res", "zoneinfo64.res", "metaZones.res", "timezoneTypes.res", "likelySubtags.res",
    "supplementalData.res", "cnvalias.icu",
])
def test_icu_keeps(name):
    assert slim.keep_icu_item(name)


@pytest.mark.parametrize("name", [
    "brkitr/cjdict.dict", "brkitr/line.brk", "translit/root.res", "rbnf/en.res", "lang/de.res",
    "region/hi.res", "curr/en.res", "unit/en.res", "hi.res", "de_DE.res", "zone/hi.res",
    "unames.icu", "rfc3491.spp", "confusables.cfu", "uts46.nrm", "langInfo.res",
])
def test_icu_drops(name):
    assert not slim.keep_icu_item(name)


@linux_only
def test_icu_converters_are_kept_with_their_base_tables(icu_package):
    _, package = icu_package
    kept = slim.icu_items_to_keep(package)
    assert slim.converter_info(package.items["windows-936-2000.cnv"]) == (2, "ibm-1386_P100-2001")
    assert {"windows-936-2000.cnv", "ibm-1386_P100-2001.cnv", "windows-950-2000.cnv",
            "ibm-1373_P100-2002.cnv", "ibm-943_P15A-2003.cnv", "gb18030.cnv",
            "ibm-5348_P100-1997.cnv", "ibm-37_P100-1995.cnv"} <= kept  # GBK, Big5, SJIS, cp1252, EBCDIC
    assert not {"euc-tw-2014.cnv", "ibm-1390_P110-2003.cnv", "icu-internal-compound-t.cnv",
                "ibm-933_P110-1995.cnv"} & kept
    for name in kept:
        if name.endswith(".cnv"):
            base = slim.converter_info(package.items[name])[1]
            assert base is None or f"{base}.cnv" in kept, name
    assert sum(len(package.items[name]) for name in kept) < 7_000_000


@linux_only
@pytest.mark.skipif(not shutil.which("icupkg"), reason="icu-devtools not installed")
def test_reduced_icu_package_reads_back_with_icupkg(icu_package, tmp_path):
    _, package = icu_package
    kept = slim.icu_items_to_keep(package)
    reduced = slim.IcuPackage(package.header, package.prefix, {n: package.items[n] for n in kept})
    dat = tmp_path / f"{package.prefix[:-1]}.dat"  # icupkg wants the file named like the prefix
    dat.write_bytes(slim.write_icu_package(reduced))
    listed = subprocess.run(["icupkg", "-l", str(dat)], capture_output=True, text=True, check=True).stdout
    assert sorted(listed.split()) == sorted(kept)


def _copy_of_qt_icu(tmp_path: Path) -> Path:
    lib = tmp_path / "qtlib"
    lib.mkdir()
    for name in ("libicudata.so.73", "libicuuc.so.73", "libicui18n.so.73"):
        shutil.copy2(VENV_QT_LIB / name, lib / name)
    return lib


@needs_binutils
def test_reduced_icu_library_serves_qt_like_the_full_data(tmp_path):
    lib = _copy_of_qt_icu(tmp_path)
    step = slim.slim_icu_data(lib / "libicudata.so.73", tmp_path)
    assert step.before > 30_000_000 and step.after < 7_000_000
    info = slim.read_elf(lib / "libicudata.so.73")
    assert info.soname == "libicudata.so.73" and set(info.defined) == {"icudt73_dat"} and info.needed == []
    problems, probe = smoke.icu_differences(lib)
    assert problems == []
    assert Path(probe["loaded"]["libicudata"]).resolve() == (lib / "libicudata.so.73").resolve()
    assert probe["collation"]["en_IN files"][-3:] == ["file9.dat", "file10.dat", "file100.dat"]


@needs_binutils
def test_icu_comparison_notices_missing_data(tmp_path, monkeypatch):
    """Not vacuous: data Qt needs, left out, shows up as differences."""
    lib = _copy_of_qt_icu(tmp_path)
    keep = slim.keep_icu_item
    monkeypatch.setattr(slim, "keep_icu_item", lambda name: keep(name) and name not in ("coll/sv.res", "zone/en.res"))
    monkeypatch.setattr(slim, "ICU_KEPT_MULTIBYTE_CONVERTERS",
                        slim.ICU_KEPT_MULTIBYTE_CONVERTERS - {"ibm-943_P15A-2003"})
    slim.slim_icu_data(lib / "libicudata.so.73", tmp_path)
    problems = "\n".join(smoke.icu_differences(lib)[0])
    assert "collation sv_SE" in problems and "Swedish collation tailoring not in effect" in problems
    assert "encoding Shift_JIS" in problems
    assert "zone name Asia/Kolkata en_US" in problems


@needs_binutils
def test_only_libraries_nothing_imports_from_are_stubbed(tmp_path):
    bundle, work = tmp_path / "bundle", tmp_path / "work"
    bundle.mkdir()
    work.mkdir()
    for soname, body in (("libused.so.1", "used_fn: ret"), ("libunused.so.1", "unused_fn: ret"),
                         ("libuser.so.1", "user_fn: jmp used_fn@PLT")):
        symbol = body.split(":")[0]
        slim.link_shared(f"\t.text\n\t.globl {symbol}\n\t.type {symbol}, @function\n{body}\n",
                         soname, bundle / soname, work)
    assert "used_fn" in slim.read_elf(bundle / "libuser.so.1").undefined

    used = bundle / "libused.so.1"
    assert slim.stub_unused_library(used, bundle, work, slim.imported_symbols(bundle, used)) is None
    assert "used_fn" in slim.read_elf(used).defined

    unused = bundle / "libunused.so.1"
    step = slim.stub_unused_library(unused, bundle, work, slim.imported_symbols(bundle, unused))
    assert step is not None
    stub = slim.read_elf(unused)
    assert stub.soname == "libunused.so.1" and "unused_fn" not in stub.defined


# --- desktop integration files -------------------------------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_icons_exist_in_every_size():
    for size in build.ICON_SIZES:
        assert _png_size(RESOURCES / "icons" / f"tickscope-{size}.png") == (size, size)
    ico = (RESOURCES / "icons" / "tickscope.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1) and count >= 6
    entries = [struct.unpack("<BBBBHHII", ico[6 + 16 * i: 22 + 16 * i]) for i in range(count)]
    for _width, _h, _c, _r, _p, _bpp, length, offset in entries:
        assert ico[offset:offset + 8] == b"\x89PNG\r\n\x1a\n" and offset + length <= len(ico)
    assert {e[0] for e in entries} >= {16, 32, 48, 0}  # 0 is 256
    icns = (RESOURCES / "icons" / "tickscope.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    kinds, at = set(), 8
    while at < len(icns):
        kinds.add(icns[at:at + 4].decode())
        at += struct.unpack(">I", icns[at + 4:at + 8])[0]
    assert {"ic07", "ic08", "ic09", "ic10"} <= kinds and at == len(icns)


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None, strict=True)
    entry.optionxform = str
    entry.read(RESOURCES / "tickscope.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split() == ["tickscope", "gui", "%F"]  # bare paths are no subcommand
    assert desktop["Icon"] == "tickscope"
    assert desktop["MimeType"].rstrip(";").split(";") == [MIME_TYPE]
    assert desktop["Categories"].endswith(";") and "Office" in desktop["Categories"]


def test_mime_type_globs():
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    root = ET.parse(RESOURCES / "tickscope-mime.xml").getroot()
    mime = root.find("m:mime-type", ns)
    assert mime.get("type") == MIME_TYPE
    globs = {g.get("pattern") for g in mime.findall("m:glob", ns)}
    assert {"binary_data_*.dat", "*.kite"} <= globs
    assert "*.dat" not in globs and "*.bin" not in globs  # never claim every .dat on the desktop


@pytest.mark.skipif(not shutil.which("update-mime-database"), reason="shared-mime-info not installed")
def test_mime_database_accepts_the_package(tmp_path):
    packages = tmp_path / "mime" / "packages"
    packages.mkdir(parents=True)
    shutil.copy(RESOURCES / "tickscope-mime.xml", packages / "tickscope.xml")
    subprocess.run(["update-mime-database", str(tmp_path / "mime")], check=True, capture_output=True)
    globs = (tmp_path / "mime" / "globs2").read_text()
    assert f"{MIME_TYPE}:binary_data_*.dat" in globs
    assert (tmp_path / "mime" / "application" / "x-kite-capture.xml").is_file()


def test_macos_info_plist_declares_capture_documents():
    info = plistlib.loads((PACKAGING / "macos" / "Info.plist").read_bytes())
    assert info["CFBundleIdentifier"]
    doc = info["CFBundleDocumentTypes"][0]
    assert doc["CFBundleTypeRole"] == "Viewer"
    assert "com.tickscope.kite-capture" in doc["LSItemContentTypes"]
    exported = {t["UTTypeIdentifier"]: t for t in info["UTExportedTypeDeclarations"]}
    assert "kite" in exported["com.tickscope.kite-capture"]["UTTypeTagSpecification"]["public.filename-extension"]


def test_workflow_builds_and_smoke_tests_three_platforms():
    text = (REPO / ".github" / "workflows" / "build.yml").read_text()
    for runner in ("ubuntu-", "windows-", "macos-"):
        assert runner in text
    assert "packaging/build.py" in text and "packaging/smoke.py" in text
    assert "tickscope.iss" in text and "build_macos.sh" in text and "upload-artifact" in text


# --- a real build ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def packages():
    """The bundle and this platform's downloads, built (or reused) once per session."""
    if importlib.util.find_spec("PyInstaller") is None:
        message = "PyInstaller missing: the venv installs it with the `package` extra (make venv)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    TEST_DIST.mkdir(parents=True, exist_ok=True)
    formats = [f for f in build.default_formats().split(",") if f]
    lock = open(TEST_DIST.parent / ".lock", "w")
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers share one build
        bundle, _ = build.build(TEST_DIST, TEST_WORK, reuse=True)
        made = build.make_packages(bundle, TEST_DIST, TEST_WORK, formats, reuse=True)
    finally:
        lock.close()
    return bundle, {path.suffix if path.suffix != ".gz" else ".tar.gz": path for path in made}


@pytest.mark.slow
def test_bundled_selftest_passes(packages, tmp_path):
    bundle, _ = packages
    check = smoke.check_selftest(bundle, tmp_path)
    assert check.ok, check.detail
    assert re.fullmatch(r"tickscope selftest OK: 30,000 packets, 5 bad, 4 unknown tokens, "
                        r"target rows match \(duckdb, parquet\) in [\d.]+ s", check.detail)


@pytest.mark.slow
def test_bundled_gui_ingests_and_screenshots_offscreen(packages, tmp_path):
    bundle, _ = packages
    check = smoke.check_gui(bundle, tmp_path)
    assert check.ok, check.detail
    assert (tmp_path / "smoke-gui.duckdb").is_file()


@pytest.mark.slow
def test_bundle_opens_bare_capture_paths_in_the_gui(packages, tmp_path):
    """How file managers start it (desktop entry %F, Finder, Explorer): paths, no subcommand."""
    bundle, _ = packages
    sample = smoke.resources_of(bundle) / "samples" / smoke.SAMPLE_CAPTURE
    target = tmp_path / "opened.duckdb"
    _, gui = smoke.executables(bundle)
    proc = subprocess.run([str(gui), str(sample), "--quit-when-done", "--target", str(target)],
                          capture_output=True, text=True, env=smoke.smoke_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open_target(target, read_only=True) as stored:
        assert stored.counts()["ticks"] == 30_000


@pytest.mark.slow
def test_bundled_version_and_size(packages, tmp_path):
    bundle, _ = packages
    check = smoke.check_version(bundle, tmp_path, __version__)
    assert check.ok, check.detail
    names = {p.name for p in bundle.rglob("*")}
    for unwanted in ("libQt6Network.so.6", "libQt6Qml.so.6", "libQt6Quick.so.6", "libQt6Pdf.so.6",
                     "libarrow_flight.so.2600", "libgtk-3.so.0", "QtOpenGL.abi3.so",
                     "libarrow_python_parquet_encryption.so.2600", "libreadline.so.8", "libivi-shell.so",
                     "libX11.so.6", "libXau.so.6", "_cffi_backend.cpython-311-x86_64-linux-gnu.so"):
        assert unwanted not in names
    assert not [p for p in bundle.rglob("*.qm")], "Qt translations were bundled"
    assert (bundle / "_internal" / "resources" / "samples" / "expected.json").is_file()
    assert not (bundle / "_internal" / "pyqtgraph" / "icons" / "peegee").exists()
    assert (bundle / "_internal" / "pyqtgraph" / "icons" / "auto.png").is_file()
    assert list((bundle / "_internal").glob("numpy-*.dist-info/licenses/LICENSE.txt")), "numpy's licenses"


def _slimming_skipped_locally() -> str | None:
    """Why the Linux slimming did not run for the test bundle, when that is allowed (not CI)."""
    skipped = build.build_stamp(TEST_DIST).get("slim_skipped")
    return "; ".join(skipped) if skipped and not os.environ.get("CI") else None


@pytest.mark.slow
def test_bundle_is_under_300_mb(packages):
    """The issue's budget: the unpacked bundle under 300 MB, counted like `du -sb`."""
    bundle, _ = packages
    size = build.apparent_size(bundle)
    if size >= build.SIZE_BUDGET and _slimming_skipped_locally():
        pytest.skip(f"bundle is {size / 1e6:.1f} MB: {_slimming_skipped_locally()} (CI fails instead)")
    assert build.SIZE_BUDGET == 300_000_000
    assert size < build.SIZE_BUDGET, f"bundle is {size / 1e6:.1f} MB (du -sb), over the 300 MB budget"


@pytest.mark.slow
@linux_only
def test_bundle_has_reduced_icu_data_and_stubbed_substrait(packages, tmp_path):
    bundle, _ = packages
    if _slimming_skipped_locally():
        pytest.skip(_slimming_skipped_locally())
    qt_lib = smoke.qt_library_dir(bundle)
    icu = slim.read_elf(qt_lib / "libicudata.so.73")
    assert icu.soname == "libicudata.so.73" and icu.defined["icudt73_dat"][1] < 7_000_000
    substrait = bundle / "_internal" / "pyarrow" / "libarrow_substrait.so.2600"
    stub = slim.read_elf(substrait)
    assert stub.soname == "libarrow_substrait.so.2600" and not stub.defined and substrait.stat().st_size < 64_000
    check = smoke.check_icu(bundle, tmp_path)
    assert check.ok and not check.skipped, check.detail


@pytest.mark.slow
def test_bundle_leaves_out_test_only_packages(packages):
    from PyInstaller.archive.readers import CArchiveReader

    bundle, _ = packages
    archive = CArchiveReader(str(smoke.executables(bundle)[0]))
    pyz_name = next(name for name in archive.toc if name.endswith(".pyz"))
    modules = set(archive.open_embedded_archive(pyz_name).toc)
    assert "app.commands.selftest" in modules and "app.ui.main_window" in modules
    top_level = {name.split(".")[0] for name in modules}
    assert not top_level & {"kiteconnect", "twisted", "pytest", "_pytest", "hypothesis", "dask",
                            "autobahn", "PyInstaller", "tkinter", "fsspec", "jinja2", "cffi", "psutil",
                            "yaml", "asyncio", "unittest", "tests"}
    assert not {"duckdb.experimental", "numpy.testing", "pyarrow.feather", "app.core.synthetic",
                "app.core.encode"} & modules


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the .tar.gz is the Linux download")
def test_tarball_unpacks_to_a_versioned_folder(packages):
    _, made = packages
    with tarfile.open(made[".tar.gz"]) as tar:
        members = {m.name: m for m in tar.getmembers()}
    top = f"tickscope-{__version__}"
    assert made[".tar.gz"].name == f"tickscope-{__version__}-linux-{build.machine()}.tar.gz"
    assert members[f"{top}/tickscope"].mode & 0o111
    assert f"{top}/_internal/resources/samples/binary_data_20251013_091500.dat" in members
    assert all(name == top or name.startswith(top + "/") for name in members)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb not available")
def test_deb_installs_into_opt_with_desktop_integration(packages, tmp_path):
    _, made = packages
    deb = made[".deb"]
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line and not line.startswith(" "))
    assert fields["Package"] == "tickscope" and fields["Version"] == __version__
    assert fields["Architecture"] == build.DEB_ARCH.get(os.uname().machine, os.uname().machine)
    assert fields["Depends"].startswith("libc6 (>= 2.") and "libxcb1" in fields["Depends"]
    assert int(fields["Installed-Size"]) > 100_000

    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = {line.split()[5].removeprefix("./"): line for line in listing.splitlines()}
    assert paths["opt/tickscope/tickscope"].startswith("-rwxr-xr-x root/root")
    assert "-> ../../opt/tickscope/tickscope" in paths["usr/bin/tickscope"]
    for path in ("usr/share/applications/tickscope.desktop", "usr/share/mime/packages/tickscope.xml",
                 "usr/share/icons/hicolor/scalable/apps/tickscope.svg",
                 "usr/share/icons/hicolor/48x48/apps/tickscope.png",
                 "usr/share/icons/hicolor/256x256/apps/tickscope.png"):
        assert path in paths, path

    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    for script in ("postinst", "postrm"):
        assert os.access(control / script, os.X_OK)
        assert "update-mime-database" in (control / script).read_text()
        subprocess.run(["sh", "-n", str(control / script)], check=True)

    # The unpacked tree runs through /usr/bin/tickscope's relative link.
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    out = subprocess.run([str(root / "usr" / "bin" / "tickscope"), "--version"], capture_output=True,
                         text=True, env=smoke.smoke_env(tmp_path), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"tickscope {__version__}", out.stderr

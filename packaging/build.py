"""Build the one-folder Tickscope bundle and its downloads (`make package`).

    python packaging/build.py [--dist DIR] [--work DIR] [--formats tar,deb] [--reuse] [--smoke]

Runs PyInstaller on packaging/tickscope.spec, slims the result (Linux: strips debug info and
unneeded symbols from the libraries that ship them, then packaging/slim_linux.py cuts ICU's
data to what Qt uses and stubs libraries nothing calls), prints where the megabytes go and
whether the bundle is within the 300 MB budget, then makes the platform's downloads in --dist:

* Linux:   tickscope-<version>-linux-<machine>.tar.gz and tickscope_<version>_<arch>.deb
           (installs into /opt/tickscope, /usr/bin/tickscope, desktop entry, icons, MIME type)
* Windows: tickscope-<version>-windows-<machine>.zip (the installer is Inno Setup's job:
           packaging/windows/tickscope.iss)
* macOS:   the bundle is dist/Tickscope.app; packaging/macos/build_macos.sh makes the .dmg

--reuse skips PyInstaller when the bundle in --dist was built from the same sources (a hash
of app/, resources/, the packaging recipe and the versions of the bundled packages), which
keeps the packaging test fast on reruns. --smoke runs packaging/smoke.py against the bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "tickscope.spec"
NAME = "tickscope"

# Everything that changes what PyInstaller produces.
HASHED_TREES = ("app", "resources")
HASHED_FILES = ("packaging/tickscope.spec", "packaging/launcher.py", "packaging/bundle_rules.py",
                "packaging/rthook_no_qtopengl.py", "packaging/slim_linux.py",
                "packaging/build.py", "packaging/macos/Info.plist")
HASHED_DISTRIBUTIONS = ("pyinstaller", "pyinstaller-hooks-contrib", "PySide6-Essentials",
                        "shiboken6", "pyarrow", "duckdb", "numpy", "pyqtgraph")

# The limit for the unpacked bundle, in bytes as `du -sb` counts them.
SIZE_BUDGET = 300_000_000

DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
DEB_PREFIX = "opt/tickscope"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from app import __version__

    return __version__


def machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "aarch64": "arm64"}.get(m, m)


def platform_tag() -> str:
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    return f"{system}-{machine()}"


def source_hash() -> str:
    digest = hashlib.sha256()
    files = [ROOT / f for f in HASHED_FILES if (ROOT / f).is_file()]
    for tree in HASHED_TREES:
        files += [p for p in (ROOT / tree).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    for path in sorted(files):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    for dist in HASHED_DISTRIBUTIONS:
        try:
            digest.update(f"{dist}=={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{dist} missing".encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def bundle_dir(dist: Path) -> Path:
    """The one-folder bundle: dist/tickscope (on macOS also wrapped as dist/Tickscope.app)."""
    return dist / NAME


def executable(bundle: Path, cli: bool = True) -> Path:
    """The executable inside ``bundle`` that runs subcommands (console) or the windowed app."""
    if sys.platform == "win32":
        return bundle / (f"{NAME}-cli.exe" if cli else f"{NAME}.exe")
    return bundle / NAME


def run_pyinstaller(dist: Path, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm",
           "--distpath", str(dist), "--workpath", str(work), "--log-level", "WARN"]
    # cwd outside the repository: its packaging/ folder must not shadow the `packaging` package.
    subprocess.run(cmd, check=True, cwd=work)


# --- slimming (Linux) --------------------------------------------------------------------

def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _sections(path: Path) -> str:
    return subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True).stdout


def strip_bundle(bundle: Path) -> int:
    """Strip what the shipped libraries do not need at run time; returns bytes saved.

    libpython from pyenv/python.org builds carries ~17 MB of DWARF, the pyarrow wheel ships
    unstripped libraries (~20 MB of symbol tables) and so does the ICU of the PySide6 wheel.
    Qt's own libraries and DuckDB's are stripped already. Libraries repaired by auditwheel
    (hashed names in *.libs/) are left alone:
    strip can corrupt the segments patchelf rewrote.
    """
    if not shutil.which("strip") or not shutil.which("readelf"):
        print("build: strip/readelf not found, bundle left unstripped", file=sys.stderr)
        return 0
    saved = 0
    for path in sorted(bundle.rglob("*")):
        if path.is_symlink() or not path.is_file() or not _is_elf(path):
            continue
        if any(part.endswith(".libs") for part in path.parts):
            continue
        sections = _sections(path)
        if ".debug_info" in sections:
            mode = "--strip-debug"
        elif ".symtab" in sections and (path.relative_to(bundle).parts[:2] == ("_internal", "pyarrow")
                                        or path.name.startswith("libicu")):
            mode = "--strip-unneeded"
        else:
            continue
        before = path.stat().st_size
        subprocess.run(["strip", mode, str(path)], check=True)
        saved += before - path.stat().st_size
    return saved


def slim_linux_bundle(bundle: Path) -> tuple[list[dict], list[str]]:
    """packaging/slim_linux.py's steps (reduced ICU data, stubbed unused libraries)."""
    if str(PACKAGING) not in sys.path:
        sys.path.insert(0, str(PACKAGING))
    import slim_linux

    steps, skipped = slim_linux.slim_bundle(bundle)
    for step in steps:
        print(f"build: {step.name}: {step.before / 1e6:.1f} -> {step.after / 1e6:.1f} MB ({step.detail})")
    for reason in skipped:
        print(f"build: WARNING: {reason}", file=sys.stderr)
    return [vars(step) for step in steps], skipped


# --- size report ---------------------------------------------------------------------------

def apparent_size(bundle: Path) -> int:
    """Bytes as `du -sb` counts them: every file, directory and symlink entry (lstat)."""
    return sum(os.lstat(p).st_size for p in [bundle, *bundle.rglob("*")])


def tree_size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def size_report(bundle: Path) -> tuple[int, list[tuple[str, int]]]:
    """Total bytes and the biggest top-level entries (grouping _internal/'s children)."""
    internal = bundle / "_internal"
    entries = []
    for top in sorted(bundle.iterdir()):
        if top == internal:
            continue
        entries.append((top.name, tree_size(top)))
    if internal.is_dir():
        libs = 0
        for child in sorted(internal.iterdir()):
            size = tree_size(child)
            if child.is_file() and child.suffix != ".zip" and size < 8 << 20:
                libs += size  # the long tail of bundled shared libraries
            else:
                entries.append((f"_internal/{child.name}", size))
        entries.append(("_internal/*.so.* (other shared libraries)", libs))
    entries.sort(key=lambda e: -e[1])
    return sum(size for _, size in entries), entries


def print_size_report(bundle: Path) -> int:
    total, entries = size_report(bundle)
    du = apparent_size(bundle)
    verdict = "within" if du < SIZE_BUDGET else "OVER"
    print(f"build: bundle {bundle} is {du / 1e6:.1f} MB (du -sb; files {total / 2**20:.1f} MiB) unpacked, "
          f"{verdict} the {SIZE_BUDGET / 1e6:.0f} MB budget")
    for name, size in entries:
        if size >= 1 << 20:
            print(f"  {size / 2**20:7.1f} MiB  {name}")
    return total


# --- Linux downloads ---------------------------------------------------------------------

def make_tarball(bundle: Path, dist: Path, ver: str) -> Path:
    out = dist / f"{NAME}-{ver}-{platform_tag()}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=f"{NAME}-{ver}")
    return out


def _system_requirements(bundle: Path) -> tuple[set[str], str | None]:
    """Sonames the bundle's ELF files link against but do not ship (the system provides
    them), and the newest GLIBC_x.y symbol version any of them asks for."""
    shipped = {p.name for p in bundle.rglob("*") if p.is_file() or p.is_symlink()}
    needed: set[str] = set()
    newest = None
    for path in bundle.rglob("*"):
        if path.is_symlink() or not path.is_file() or not _is_elf(path):
            continue
        out = subprocess.run(["readelf", "-d", "-V", "-W", str(path)], capture_output=True, text=True).stdout
        needed.update(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
        for ver in re.findall(r"Name: GLIBC_(\d+(?:\.\d+)+)", out):
            key = tuple(int(x) for x in ver.split("."))
            newest = max(newest or key, key)
    return needed - shipped, ".".join(map(str, newest)) if newest else None


def _debian_package_guess(soname: str) -> str:
    """Debian's library package naming: libfoo.so.1 -> libfoo1, libfoo2.so.0 -> libfoo2-0."""
    base, _, abi = soname.partition(".so.")
    base = base.lower().replace("_", "-")
    return f"{base}-{abi}" if base[-1].isdigit() else f"{base}{abi}"


GLIBC_SONAMES = re.compile(r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux[-\w]*)\.so")


def debian_depends(bundle: Path) -> str:
    """A Depends: line for the system libraries the bundle needs, like dpkg-shlibdeps.

    Packages are looked up with `dpkg -S` on the build machine; sonames it does not have
    installed (e.g. xcb helpers of the xcb platform plugin) fall back to Debian's naming rule.
    """
    needed, glibc = _system_requirements(bundle)
    needed = sorted(needed)
    packages: set[str] = set()
    owners: dict[str, str] = {}
    if shutil.which("dpkg") and needed:
        # One call for all: each dpkg -S reads the whole package database.
        out = subprocess.run(["dpkg", "-S", *(f"*/{soname}" for soname in needed)],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            pkg, _, path = line.partition(": ")
            soname = path.rsplit("/", 1)[-1]
            if soname in needed and soname not in owners:
                owners[soname] = pkg.split(":")[0].split(",")[0].strip()
    for soname in needed:
        if GLIBC_SONAMES.match(soname):
            continue
        packages.add(owners.get(soname) or _debian_package_guess(soname))
    libc = f"libc6 (>= {glibc})" if glibc else "libc6"
    return ", ".join([libc, *sorted(packages)])


def _copy_tree(src: Path, dst: Path) -> None:
    """Hard links where possible: the staging tree is as big as the bundle."""
    def link_or_copy(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, symlinks=True, copy_function=link_or_copy)


def make_deb(bundle: Path, dist: Path, work: Path, ver: str) -> Path:
    arch = DEB_ARCH.get(platform.machine().lower(), platform.machine().lower())
    stage = work / "deb" / f"{NAME}_{ver}_{arch}"
    if stage.exists():
        shutil.rmtree(stage)
    _copy_tree(bundle, stage / DEB_PREFIX)
    usr = stage / "usr"
    (usr / "bin").mkdir(parents=True)
    # Relative, so the link also works in a tree unpacked with `dpkg-deb -x` (the tests use that).
    os.symlink(f"../../{DEB_PREFIX}/{NAME}", usr / "bin" / NAME)
    resources = ROOT / "resources"
    apps = usr / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy2(resources / "tickscope.desktop", apps / "tickscope.desktop")
    mime = usr / "share" / "mime" / "packages"
    mime.mkdir(parents=True)
    shutil.copy2(resources / "tickscope-mime.xml", mime / "tickscope.xml")
    hicolor = usr / "share" / "icons" / "hicolor"
    for size in ICON_SIZES:
        target = hicolor / f"{size}x{size}" / "apps"
        target.mkdir(parents=True)
        shutil.copy2(resources / "icons" / f"tickscope-{size}.png", target / "tickscope.png")
    (hicolor / "scalable" / "apps").mkdir(parents=True)
    shutil.copy2(resources / "icons" / "tickscope.svg", hicolor / "scalable" / "apps" / "tickscope.svg")
    doc = usr / "share" / "doc" / NAME
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Tickscope is released under the MIT license.\n"
        "Bundled: CPython (PSF), Qt for Python / Qt 6 (LGPLv3), Apache Arrow (Apache-2.0),\n"
        "DuckDB (MIT), NumPy and OpenBLAS (BSD), pyqtgraph (MIT).\n")

    control = stage / "DEBIAN"
    control.mkdir()
    installed_kb = (tree_size(stage) + 1023) // 1024
    text = (PACKAGING / "linux" / "control.in").read_text()
    text = (text.replace("@VERSION@", ver).replace("@ARCH@", arch)
            .replace("@INSTALLED_SIZE@", str(installed_kb))
            .replace("@DEPENDS@", debian_depends(bundle)))
    (control / "control").write_text(text)
    for script in ("postinst", "postrm"):
        shutil.copy2(PACKAGING / "linux" / script, control / script)
        (control / script).chmod(0o755)
    for path in [stage, *stage.rglob("*")]:
        # dpkg-deb rejects group/world-writable control files; keep the tree's modes sane
        # whatever the umask of the build machine.
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        path.chmod(mode & ~0o022)
    out = dist / f"{NAME}_{ver}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", str(stage), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(stage)
    return out


def make_zip(bundle: Path, dist: Path, ver: str) -> Path:
    base = dist / f"{NAME}-{ver}-{platform_tag()}"
    return Path(shutil.make_archive(str(base), "zip", root_dir=bundle.parent, base_dir=bundle.name))


PACKAGERS = {
    "tar": lambda bundle, dist, work, ver: make_tarball(bundle, dist, ver),
    "deb": lambda bundle, dist, work, ver: make_deb(bundle, dist, work, ver),
    "zip": lambda bundle, dist, work, ver: make_zip(bundle, dist, ver),
}


def package_path(dist: Path, fmt: str, ver: str) -> Path:
    if fmt == "deb":
        arch = DEB_ARCH.get(platform.machine().lower(), platform.machine().lower())
        return dist / f"{NAME}_{ver}_{arch}.deb"
    suffix = {"tar": ".tar.gz", "zip": ".zip"}[fmt]
    return dist / f"{NAME}-{ver}-{platform_tag()}{suffix}"


def make_packages(bundle: Path, dist: Path, work: Path, formats, *, reuse: bool = False) -> list[Path]:
    """Make each download; with ``reuse``, one already newer than the bundle is kept."""
    ver = version()
    stamp = dist / f".{NAME}-bundle.json"
    made = []
    for fmt in formats:
        out = package_path(dist, fmt, ver)
        if reuse and out.is_file() and stamp.is_file() and out.stat().st_mtime > stamp.stat().st_mtime:
            made.append(out)
            continue
        started = time.monotonic()
        out = PACKAGERS[fmt](bundle, dist, work, ver)
        print(f"build: {out} ({out.stat().st_size / 1e6:.1f} MB, {time.monotonic() - started:.0f} s)")
        made.append(out)
    return made


# --- main ----------------------------------------------------------------------------------

def build(dist: Path, work: Path, *, reuse: bool = False) -> tuple[Path, bool]:
    """Build (or reuse) the bundle; returns its folder and whether PyInstaller ran."""
    dist.mkdir(parents=True, exist_ok=True)
    bundle = bundle_dir(dist)
    stamp = dist / f".{NAME}-bundle.json"
    digest = source_hash()
    if reuse and bundle.is_dir() and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("source_hash") == digest:
                return bundle, False
        except ValueError:
            pass
    stamp.unlink(missing_ok=True)
    started = time.monotonic()
    run_pyinstaller(dist, work)
    linux = sys.platform.startswith("linux")
    saved = strip_bundle(bundle) if linux else 0
    slimmed, slim_skipped = slim_linux_bundle(bundle) if linux else ([], [])
    seconds = time.monotonic() - started
    print(f"build: PyInstaller + strip + slimming took {seconds:.0f} s (strip saved {saved / 1e6:.1f} MB, "
          f"slimming {sum(s['before'] - s['after'] for s in slimmed) / 1e6:.1f} MB)")
    stamp.write_text(json.dumps({"source_hash": digest, "version": version(),
                                 "build_seconds": round(seconds, 1),
                                 "slimmed": slimmed, "slim_skipped": slim_skipped}))
    return bundle, True


def build_stamp(dist: Path) -> dict:
    """What build() recorded about the bundle in ``dist`` (empty if unknown)."""
    try:
        return json.loads((dist / f".{NAME}-bundle.json").read_text())
    except (OSError, ValueError):
        return {}


def default_formats() -> str:
    if sys.platform.startswith("linux"):
        return "tar,deb" if shutil.which("dpkg-deb") else "tar"
    if sys.platform == "win32":
        return "zip"
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    parser.add_argument("--formats", default=None,
                        help="comma list of tar, deb, zip, or 'none' (default: the platform's)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing bundle built from the same sources")
    parser.add_argument("--smoke", action="store_true", help="run packaging/smoke.py on the bundle")
    args = parser.parse_args(argv)
    dist, work = args.dist.resolve(), args.work.resolve()
    formats = args.formats if args.formats is not None else default_formats()
    formats = [f for f in formats.split(",") if f and f != "none"]
    unknown = [f for f in formats if f not in PACKAGERS]
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(PACKAGERS)}")
    bundle, built = build(dist, work, reuse=args.reuse)
    print_size_report(bundle)
    make_packages(bundle, dist, work, formats, reuse=not built)
    if args.smoke:
        sys.path.insert(0, str(PACKAGING))
        import smoke

        return smoke.main([str(bundle)])
    return 0


if __name__ == "__main__":
    sys.exit(main())

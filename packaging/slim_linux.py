"""Post-PyInstaller slimming of the Linux bundle: ICU data cut to what Qt uses, and
libraries that are linked but never called replaced by empty stand-ins.

Run by ``build.py`` after stripping (Linux only). Needs only binutils (``as``, ``ld``),
which stripping already needs; without them it skips with a warning and says so in the
bundle's stamp, and the size test fails in CI.

**ICU data.** The PySide6 wheel ships ICU's full common data, ``libicudata.so.73``: one
32 MB object, ``icudt73_dat``, holding an ICU "common data package" (a table of contents
plus 3,921 items). Qt calls four ICU families (``nm -D --undefined-only`` on every Qt
library and plugin of the bundle): collation (``ucol_*``: QCollator, the file dialog's
sorting), converters (``ucnv_*``: QStringConverter/QStringDecoder for encodings Qt does not
implement itself), time-zone display names (``ucal_*``: QTimeZone::displayName) and locale
case mapping (``u_strToUpper/Lower``: QLocale::toUpper; its data is compiled into libicuuc).

Kept: all collation data (every locale's tailoring); the root and supplemental bundles
(likely subtags, calendar and week data, time-zone rules, metazones, plurals); English
locale and time-zone names; every single-byte converter, and the multi-byte encodings
browsers decode (the WHATWG Encoding Standard's GBK, gb18030, GB2312, Big5, EUC-JP,
ISO-2022-JP, Shift_JIS, EUC-KR) with the base tables they extend.

Dropped: break iteration (brkitr/ with its CJK/Thai/Khmer/Lao/Burmese dictionaries; Qt
segments text itself), transliteration, number spell-out, locale display names (languages,
regions, currencies, units), non-English locale and time-zone names (QTimeZone::displayName
for another locale answers in English; the app shows no zone names), StringPrep/IDNA2003
profiles, NFKC/IDNA normalization, LocaleMatcher distances, spoof-check data, character
names, and the other multi-byte converters (IBM host and PC code pages for CJK,
EUC-TW/CNS, HKSCS, X11 compound text). 31.9 MB of items become 6.3 MB.

The reduced package is written in the same format (table of contents sorted by name,
16-byte aligned items; writing the full package back reproduces it byte for byte) and
assembled into a new ``libicudata.so.73`` exporting the same symbol under the same soname.
``packaging/icu_probe.py`` (run by smoke.py) checks that collation, case mapping and the
kept converters behave exactly as with the full data.

**Stub libraries.** Every pyarrow extension module links ``libarrow_substrait`` (4.5 MB)
although only ``pyarrow.substrait`` (left out) calls into it. A library none of whose
exported symbols any other ELF file of the bundle imports is replaced by an empty shared
library with the same soname, so the loader is satisfied; the check runs at build time
and the library is kept if anything imports from it.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

# --- a minimal ELF64 reader (dynamic symbols and soname) -----------------------------------

_SHT_DYNSYM = 11
_SHT_DYNAMIC = 6
_DT_NEEDED = 1
_DT_SONAME = 14


@dataclass
class ElfInfo:
    soname: str | None
    needed: list[str]                          # DT_NEEDED sonames
    defined: dict[str, tuple[int, int, int]]  # name -> (file offset or -1, size, st_info)
    undefined: set[str]


def read_elf(path: Path) -> ElfInfo | None:
    """Dynamic symbols, soname and DT_NEEDED of a little-endian ELF64 file with section
    headers; None for anything else (callers treat that as "cannot tell")."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if not shoff or not shnum:
        return None
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)

    def file_offset(shndx: int, value: int) -> int:
        if not 0 < shndx < len(sections):
            return -1
        _, kind, _, addr, offset, _, _, _, _, _ = sections[shndx]
        return -1 if kind == 8 else value - addr + offset  # SHT_NOBITS has no bytes

    def string(table: int, at: int) -> str:
        start = sections[table][4] + at
        return data[start:data.index(b"\0", start)].decode()

    defined: dict[str, tuple[int, int, int]] = {}
    undefined: set[str] = set()
    soname = None
    needed: list[str] = []
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind == _SHT_DYNSYM:
            for at in range(offset + entsize, offset + size, entsize):  # entry 0 is null
                name_at, info, _, shndx, value, sym_size = struct.unpack_from("<IBBHQQ", data, at)
                name = string(link, name_at)
                if shndx == 0:
                    undefined.add(name)
                else:
                    defined[name] = (file_offset(shndx, value), sym_size, info)
        elif kind == _SHT_DYNAMIC:
            for at in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, at)
                if tag == _DT_SONAME:
                    soname = string(link, value)
                elif tag == _DT_NEEDED:
                    needed.append(string(link, value))
                elif tag == 0:
                    break
    return ElfInfo(soname, needed, defined, undefined)


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


# --- ICU common data packages -------------------------------------------------------------

@dataclass
class IcuPackage:
    header: bytes                   # the package's own data header (kept verbatim)
    prefix: str                     # "icudt73l/": item names in the TOC carry it
    items: dict[str, bytes] = field(default_factory=dict)  # name without prefix -> item


def read_icu_package(blob: bytes) -> IcuPackage:
    """Parse an ICU common data package ("CmnD", format 1: offset table of contents)."""
    header_size, magic1, magic2 = struct.unpack_from("<HBB", blob, 0)
    if (magic1, magic2) != (0xDA, 0x27) or blob[12:16] != b"CmnD" or blob[16] != 1:
        raise ValueError("not an ICU common data package (CmnD format 1)")
    count, = struct.unpack_from("<I", blob, header_size)
    entries = [struct.unpack_from("<II", blob, header_size + 4 + 8 * i) for i in range(count)]
    # Item lengths follow from the next item's offset, which needs data in TOC order.
    if any(a[1] >= b[1] for a, b in pairwise(entries)):
        raise ValueError("ICU package items are not stored in table-of-contents order")
    names = []
    for name_at, _ in entries:
        start = header_size + name_at
        names.append(blob[start:blob.index(b"\0", start)].decode("ascii"))
    prefix = names[0].split("/", 1)[0] + "/"
    if not all(name.startswith(prefix) for name in names):
        raise ValueError("ICU package items do not share one prefix")
    package = IcuPackage(blob[:header_size], prefix)
    ends = [offset for _, offset in entries[1:]] + [len(blob) - header_size]
    for name, (_, offset), end in zip(names, entries, ends, strict=True):
        package.items[name[len(prefix):]] = blob[header_size + offset:header_size + end]
    return package


_PAD = b"\xaa"  # what ICU's own tools fill alignment gaps with


def _pad16(n: int) -> int:
    return (n + 15) & ~15


def write_icu_package(package: IcuPackage) -> bytes:
    """The package as bytes, laid out as ICU's icupkg writes it: header, TOC sorted by
    name (ICU binary-searches it with strcmp), names, then 16-byte aligned items."""
    names = sorted(package.items, key=lambda n: (package.prefix + n).encode("ascii"))
    count = len(names)
    toc_size = 4 + 8 * count
    name_bytes = [(package.prefix + n).encode("ascii") + b"\0" for n in names]
    name_offsets, at = [], toc_size
    for raw in name_bytes:
        name_offsets.append(at)
        at += len(raw)
    # Items are aligned relative to the whole blob, whose start is 16-byte aligned.
    header_size = len(package.header)
    data_offsets, at = [], _pad16(header_size + at) - header_size
    for name in names:
        data_offsets.append(at)
        at = _pad16(header_size + at + len(package.items[name])) - header_size
    out = bytearray(package.header)
    out += struct.pack("<I", count)
    for name_at, data_at in zip(name_offsets, data_offsets, strict=True):
        out += struct.pack("<II", name_at, data_at)
    for raw in name_bytes:
        out += raw
    for name, data_at in zip(names, data_offsets, strict=True):
        out += _PAD * (header_size + data_at - len(out))
        out += package.items[name]
    out += _PAD * (_pad16(len(out)) - len(out))
    return bytes(out)


def converter_info(item: bytes) -> tuple[int, str | None]:
    """(maximum bytes per character, base table name or None) of a .cnv item.

    Extension-only MBCS tables (e.g. windows-936-2000 on top of ibm-1386_P100-2001) name
    their base table right after the MBCS header; ICU loads it when the converter opens.
    """
    header_size, = struct.unpack_from("<H", item, 0)
    static = header_size                 # UConverterStaticData, 100 bytes
    conversion_type = item[static + 69]
    max_bytes = item[static + 71]
    base = None
    if conversion_type == 2:             # UCNV_MBCS
        mbcs = static + 100
        count_states, = struct.unpack_from("<I", item, mbcs + 4)
        if count_states == 0:            # extension-only: no state table of its own
            start = mbcs + 32            # after the version 4 header (8 x uint32)
            base = item[start:item.index(b"\0", start)].decode("ascii")
    return max_bytes, base


# What Qt needs, see the module docstring. Names are items without the package prefix.
ICU_DROPPED_TREES = frozenset({"brkitr", "translit", "rbnf", "lang", "region", "curr", "unit"})
ICU_ENGLISH_ONLY_TREES = frozenset({"", "zone"})   # main locale tree and time-zone names
ICU_DROPPED_FILES = frozenset({
    "unames.icu",       # character names (u_charName)
    "ulayout.icu",      # Indic layout properties (InPC/InSC/vo) for property queries
    "uemoji.icu",       # emoji properties for break iteration and regex
    "confusables.cfu",  # spoof checker
    "langInfo.res",     # LocaleMatcher's language distances
    "nfkc.nrm", "nfkc_cf.nrm", "uts46.nrm",  # NFKC and IDNA normalization (NFC, which
                        # collation uses, is compiled into libicuuc; Qt normalizes itself)
})
ICU_DROPPED_SUFFIXES = (".spp",)  # StringPrep profiles (IDNA2003, SASL, LDAP, ...)
# Multi-byte converters kept: the WHATWG Encoding Standard's legacy CJK encodings under
# the ICU names their usual labels resolve to (GBK, gb18030, GB2312, Big5, EUC-JP,
# Shift_JIS, EUC-KR, windows-949, and the tables ISO-2022-JP/-JP-2 load). Single-byte
# tables (2-4 KB each) are all kept.
ICU_KEPT_MULTIBYTE_CONVERTERS = frozenset({
    "windows-936-2000", "gb18030", "ibm-1383_P110-1999", "windows-950-2000", "euc-jp-2007",
    "ibm-943_P15A-2003", "ibm-970_P110_P110-2006_U2", "windows-949-2000", "jisx-212",
    "ibm-5478_P100-1995",
})
_LOCALE_BUNDLE = re.compile(r"^(root|[a-z]{2,3}(_[A-Za-z0-9]+)*)\.res$")


def keep_icu_item(name: str) -> bool:
    """Whether a (non-converter) ICU item stays; converters go through ``icu_items_to_keep``."""
    tree, _, base = name.rpartition("/")
    if tree in ICU_DROPPED_TREES or base in ICU_DROPPED_FILES or base.endswith(ICU_DROPPED_SUFFIXES):
        return False
    if tree in ICU_ENGLISH_ONLY_TREES and _LOCALE_BUNDLE.match(base) and base not in ("res_index.res",):
        stem = base[:-4]
        return stem in ("root", "en") or stem.startswith("en_")
    return True


def icu_items_to_keep(package: IcuPackage) -> set[str]:
    kept = {name for name in package.items if not name.endswith(".cnv") and keep_icu_item(name)}
    for name, item in package.items.items():
        if not name.endswith(".cnv"):
            continue
        max_bytes, base = converter_info(item)
        if max_bytes == 1 or name[:-4] in ICU_KEPT_MULTIBYTE_CONVERTERS:
            kept.add(name)
            if base:
                if f"{base}.cnv" not in package.items:
                    raise ValueError(f"ICU converter {name} extends {base}, which the package lacks")
                kept.add(f"{base}.cnv")
    return kept


# --- building replacement libraries --------------------------------------------------------

def binutils_available() -> bool:
    return bool(shutil.which("as") and shutil.which("ld"))


def link_shared(asm: str, soname: str, out: Path, workdir: Path) -> None:
    """Assemble ``asm`` and link it as a shared library with DT_SONAME ``soname``."""
    source = workdir / f"{soname}.s"
    obj = workdir / f"{soname}.o"
    source.write_text(asm + '\t.section .note.GNU-stack,"",@progbits\n')
    subprocess.run(["as", "-o", str(obj), str(source)], check=True)
    subprocess.run(["ld", "-shared", "-soname", soname, "--hash-style=both", "-z", "noexecstack",
                    "-s", "-o", str(out), str(obj)], check=True)


def build_data_library(blob: bytes, symbol: str, soname: str, out: Path, workdir: Path) -> None:
    """A shared library exporting ``symbol`` as a 16-byte aligned read-only copy of ``blob``."""
    data = workdir / f"{symbol}.bin"
    data.write_bytes(blob)
    link_shared(
        "\t.section .rodata\n"
        f"\t.globl {symbol}\n\t.type {symbol}, @object\n\t.balign 16\n"
        f"{symbol}:\n\t.incbin \"{data}\"\n\t.size {symbol}, . - {symbol}\n",
        soname, out, workdir)


def build_stub_library(soname: str, out: Path, workdir: Path) -> None:
    """An empty shared library: satisfies a DT_NEEDED, exports nothing."""
    link_shared("", soname, out, workdir)


# --- the slimming steps ---------------------------------------------------------------------

@dataclass
class Step:
    name: str
    before: int
    after: int
    detail: str


def slim_icu_data(library: Path, workdir: Path) -> Step:
    """Replace ``libicudata.so.NN`` in place with one holding only the items Qt uses."""
    info = read_elf(library)
    symbols = [s for s in (info.defined if info else {}) if re.fullmatch(r"icudt\d+_dat", s)]
    if not info or len(symbols) != 1 or not info.soname:
        raise ValueError(f"{library}: no single icudtNN_dat symbol / soname")
    symbol = symbols[0]
    offset, size, _ = info.defined[symbol]
    raw = library.read_bytes()
    package = read_icu_package(raw[offset:offset + size])
    kept = icu_items_to_keep(package)
    reduced = IcuPackage(package.header, package.prefix, {n: package.items[n] for n in kept})
    blob = write_icu_package(reduced)
    out = workdir / info.soname
    build_data_library(blob, symbol, info.soname, out, workdir)
    check = read_elf(out)
    if check.soname != info.soname or check.defined.get(symbol, (0, 0, 0))[1] != len(blob):
        raise RuntimeError(f"rebuilt {out} does not export {symbol} with the reduced data")
    before = library.stat().st_size
    shutil.copymode(library, out)
    shutil.move(str(out), str(library))
    return Step(f"ICU data ({library.name})", before, library.stat().st_size,
                f"{len(kept)} of {len(package.items)} items, "
                f"{sum(map(len, reduced.items.values())) / 1e6:.1f} of "
                f"{sum(map(len, package.items.values())) / 1e6:.1f} MB")


def imported_symbols(bundle: Path, exclude: Path) -> set[str]:
    """Every dynamic symbol some ELF file of the bundle, other than ``exclude``, imports."""
    wanted: set[str] = set()
    for path in bundle.rglob("*"):
        if path.is_symlink() or not path.is_file() or path == exclude or not is_elf(path):
            continue
        info = read_elf(path)
        if info is None:
            raise ValueError(f"cannot read the dynamic symbols of {path}")
        wanted |= info.undefined
    return wanted


def stub_unused_library(library: Path, bundle: Path, workdir: Path, imported: set[str]) -> Step | None:
    """Replace ``library`` with an empty stand-in if nothing imports any symbol it exports."""
    info = read_elf(library)
    if not info or not info.soname:
        return None
    used = sorted(set(info.defined) & imported)
    if used:
        print(f"build: keeping {library.name}: {len(used)} of its symbols are used, e.g. {used[0]}")
        return None
    before = library.stat().st_size
    out = workdir / info.soname
    build_stub_library(info.soname, out, workdir)
    shutil.copymode(library, out)
    shutil.move(str(out), str(library))
    return Step(f"stub {library.name}", before, library.stat().st_size,
                f"none of its {len(info.defined)} exported symbols is imported by another file")


# Libraries linked but not called (pyarrow links Substrait into everything).
STUB_CANDIDATES = ("libarrow_substrait.so.*",)


def slim_bundle(bundle: Path) -> tuple[list[Step], list[str]]:
    """Run every step on the bundle; returns (steps done, reasons for steps skipped)."""
    if not binutils_available():
        return [], ["binutils (as, ld) not found: ICU data and unused libraries left as they are"]
    steps: list[Step] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tickscope-slim-") as tmp:
        workdir = Path(tmp)
        icu = sorted(p for p in bundle.rglob("libicudata.so.*") if p.is_file() and not p.is_symlink())
        if not icu:
            skipped.append("no libicudata in the bundle")
        # A step that fails leaves its library as it was (it is only replaced at the end).
        for library in icu:
            try:
                steps.append(slim_icu_data(library, workdir))
            except (ValueError, RuntimeError, OSError, subprocess.CalledProcessError) as err:
                skipped.append(f"{library.name} kept whole: {err}")
        for pattern in STUB_CANDIDATES:
            for library in sorted(p for p in bundle.rglob(pattern) if p.is_file() and not p.is_symlink()):
                try:
                    step = stub_unused_library(library, bundle, workdir, imported_symbols(bundle, library))
                except (ValueError, OSError, subprocess.CalledProcessError) as err:
                    skipped.append(f"{library.name} kept: {err}")
                    continue
                if step:
                    steps.append(step)
                else:
                    skipped.append(f"{library.name} kept: other libraries import its symbols")
    return steps, skipped

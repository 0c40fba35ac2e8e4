"""Exercise every ICU service Qt uses and print the results as JSON (for smoke.py).

    LD_LIBRARY_PATH=dist/tickscope/_internal/PySide6/Qt/lib python packaging/icu_probe.py

The frozen bundle has no Python prompt, so smoke.py runs this with the build's own Python
and PySide6 bindings but with the bundle's Qt library folder first on the loader path.
libQt6Core finds ICU through its $ORIGIN run path, which LD_LIBRARY_PATH overrides, so the
bundle's libicuuc, libicui18n and reduced libicudata serve every ICU call (Qt itself may
come from the wheel: the bindings' RPATH outranks LD_LIBRARY_PATH; it is the same build).
The ``loaded`` field shows which files were mapped. Run once that way and once against
the wheel's full ICU data, the two outputs must agree wherever the reduced data claims to
keep behaviour (``packaging/slim_linux.py``).
"""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QCollator, QLocale, QStringConverter, QStringDecoder, Qt, QTimeZone, qVersion

# Words whose order differs between collation tailorings (Swedish/Danish å ä ö after z,
# German phonebook, Turkish dotless i, Spanish ñ, Lithuanian y, Indic and CJK scripts).
WORDS = ["zebra", "Äpfel", "apple", "Ångström", "ähnlich", "öl", "Zürich", "ıslak", "İstanbul",
         "istanbul", "ch", "cz", "ñu", "nz", "yra", "ira", "Ørsted", "aa", "ǎ", "ß", "ss",
         "आम", "कमल", "अनार", "ক্ষ", "கமலா", "中文", "汉字", "日本", "ひらがな", "カタカナ", "한국",
         "ไทย", "Việt", "мир", "Ёж", "ель", "عربي", "שלום"]
FILE_NAMES = ["file10.dat", "File2.dat", "file9.dat", "file100.dat", "binary_data_20251013.dat",
              "binary_data_20251013_2.dat", "Binary_data_20251012.dat"]
COLLATION_LOCALES = ["en_US", "en_IN", "hi_IN", "bn_IN", "ta_IN", "mr_IN", "gu_IN", "te_IN", "kn_IN",
                     "ml_IN", "pa_IN", "sv_SE", "da_DK", "de_DE", "tr_TR", "es_ES", "lt_LT", "fr_CA",
                     "zh_CN", "zh_TW", "ja_JP", "ko_KR", "th_TH", "vi_VN", "ru_RU", "ar_SA", "he_IL"]
CASE_TESTS = [("tr_TR", "istanbul ıi"), ("en_US", "istanbul ıi"), ("de_DE", "straße"),
              ("el_GR", "άλφα ήταν"), ("lt_LT", "i̇̀"), ("hi_IN", "file आम"), ("nl_NL", "ijssel")]
# The WHATWG Encoding Standard's legacy encodings by the labels Qt passes to ICU.
ENCODINGS = ["Shift_JIS", "EUC-JP", "ISO-2022-JP", "GBK", "GB18030", "GB2312", "Big5", "EUC-KR",
             "windows-949", "windows-874", "windows-1250", "windows-1251", "windows-1253",
             "windows-1254", "windows-1255", "windows-1256", "windows-1257", "windows-1258",
             "ISO-8859-2", "ISO-8859-5", "ISO-8859-7", "ISO-8859-8", "ISO-8859-13", "ISO-8859-15",
             "KOI8-R", "KOI8-U", "IBM866", "macintosh", "x-mac-cyrillic", "IBM437", "IBM850"]
ZONES = ["Asia/Kolkata", "America/New_York", "Europe/London", "Asia/Tokyo"]
ZONE_LOCALES = ["en_US", "en_IN", "en_GB", "hi_IN", "de_DE", "ja_JP"]


def collations() -> dict:
    out = {}
    for name in COLLATION_LOCALES:
        collator = QCollator(QLocale(name))
        out[name] = sorted(WORDS, key=collator.sortKey)
        # How QFileSystemModel (the file dialog) sorts names.
        collator.setNumericMode(True)
        collator.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        out[f"{name} files"] = sorted(FILE_NAMES, key=collator.sortKey)
    return out


def case_mappings() -> dict:
    return {f"{loc} {text}": [QLocale(loc).toUpper(text), QLocale(loc).toLower(text.upper())]
            for loc, text in CASE_TESTS}


def converters() -> dict:
    found = {}
    for label in ENCODINGS:
        decoder = QStringDecoder(label)
        found[label] = decoder.name() if decoder.isValid() else None
    return {"by_label": found, "available": sorted(QStringConverter.availableCodecs())}


def zone_names() -> dict:
    out = {}
    for zone in ZONES:
        tz = QTimeZone(zone.encode())
        for loc in ZONE_LOCALES:
            out[f"{zone} {loc}"] = tz.displayName(QTimeZone.TimeType.StandardTime,
                                                  QTimeZone.NameType.LongName, QLocale(loc))
    return out


def loaded_libraries() -> dict:
    paths = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            for lib in ("libicudata", "libicuuc", "libQt6Core"):
                if f"/{lib}.so" in path:
                    paths[lib] = path
    return paths


def main() -> int:
    result = {
        "qt": qVersion(),
        "collation": collations(),
        "case": case_mappings(),
        "converters": converters(),
        "zones": zone_names(),
        "loaded": loaded_libraries(),
    }
    json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Build Tickscope.app and dist/tickscope-<version>-macos-<arch>.dmg on a Mac.
#
#   bash packaging/macos/build_macos.sh
#
# Unsigned by default (fine for CI artifacts and local testing: right-click > Open the
# first time). Set these to sign and notarize (see packaging/macos/README.md):
#   MACOS_SIGN_IDENTITY  "Developer ID Application: Name (TEAMID)" in the login keychain
#   MACOS_NOTARY_PROFILE a profile stored with `xcrun notarytool store-credentials`
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
VERSION=$("$PY" -c 'import app; print(app.__version__)')
ARCH=$(uname -m)
APP=dist/Tickscope.app
DMG=dist/tickscope-$VERSION-macos-$ARCH.dmg

# PyInstaller signs every binary inside the .app when given an identity (the spec reads
# MACOS_SIGN_IDENTITY and packaging/macos/entitlements.plist); ad hoc otherwise.
"$PY" packaging/build.py --formats none
"$PY" packaging/smoke.py "$APP"

if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
    codesign --verify --deep --strict --verbose=2 "$APP"
fi

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp -R "$APP" "$staging/"
ln -s /Applications "$staging/Applications"
rm -f "$DMG"
hdiutil create -volname "Tickscope $VERSION" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$DMG"

if [[ -n "${MACOS_SIGN_IDENTITY:-}" ]]; then
    codesign --sign "$MACOS_SIGN_IDENTITY" --timestamp "$DMG"
fi
if [[ -n "${MACOS_NOTARY_PROFILE:-}" ]]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$MACOS_NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose "$DMG"
fi
echo "build_macos: $DMG"

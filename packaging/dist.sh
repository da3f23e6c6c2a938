#!/usr/bin/env bash
# Assembles dist/ from one glibc-2.17 build (cargo zigbuild, mk/dist.mk):
#   dist/wxmedia-VERSION-linux-x86_64.tar.gz    C/C++: headers, .so + .a, pkg-config, CMake, emulator
#   dist/python/wxmedia-VERSION-py3-none-manylinux_2_17_x86_64.whl, wxmedia-VERSION.tar.gz (sdist)
#   dist/go/                                    the Go module, prebuilt libwxmedia.a inside
# Every artifact carries LICENSE-MIT, LICENSE-APACHE and THIRD-PARTY-LICENSES.txt.
# Environment (from mk/dist.mk): ROOT DIST BUILDLIB VERSION SOVERSION NATIVE_STATIC_LIBS
# WHEEL_PLAT DIST_PY CARGO.
set -euo pipefail
: "${ROOT:?}" "${DIST:?}" "${BUILDLIB:?}" "${VERSION:?}" "${SOVERSION:?}" "${NATIVE_STATIC_LIBS:?}"
: "${WHEEL_PLAT:?}" "${DIST_PY:?}"

stage="$ROOT/build/dist"
rm -rf "$stage" "$DIST"
mkdir -p "$stage/bin" "$DIST"
real="libwxmedia.so.$VERSION"
# Reproducible archives: fixed owner, order and time (the last commit's).
mtime="@$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
tar_opts=(--sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime")

# ---- 1. strip: the shipped binaries without debug info; the library's in a file beside it
cd "$stage/bin"
objcopy --only-keep-debug "$BUILDLIB/libwxmedia.so" "$real.debug"
objcopy --strip-debug --strip-unneeded "$BUILDLIB/libwxmedia.so" "$real"
objcopy --add-gnu-debuglink="$real.debug" "$real"
chmod 644 "$real.debug"
strip --strip-debug -o libwxmedia.a "$BUILDLIB/libwxmedia.a"
strip -o wxmedia-emulator "$BUILDLIB/wxmedia-emulator"
cd "$ROOT"

# ---- 2. licences
python3 "$ROOT/packaging/third_party_licenses.py" "$stage/THIRD-PARTY-LICENSES.txt"
licences=("$ROOT/LICENSE-MIT" "$ROOT/LICENSE-APACHE" "$stage/THIRD-PARTY-LICENSES.txt")

# ---- 3. the C/C++ tarball
name="wxmedia-$VERSION-linux-x86_64"
t="$stage/$name"
install -d "$t/include" "$t/lib/pkgconfig" "$t/lib/cmake/wxmedia" "$t/bin" "$t/share/doc/wxmedia"
install -m 644 "$ROOT/include/wxmedia.h" "$ROOT/include/wxmedia.hpp" "$t/include/"
install -m 755 "$stage/bin/$real" "$t/lib/"
install -m 644 "$stage/bin/$real.debug" "$stage/bin/libwxmedia.a" "$t/lib/"
ln -s "$real" "$t/lib/libwxmedia.so.$SOVERSION"
ln -s "libwxmedia.so.$SOVERSION" "$t/lib/libwxmedia.so"
install -m 755 "$stage/bin/wxmedia-emulator" "$t/bin/"
# pkg-config: paths relative to the .pc file itself, so the folder can move.
sed -e 's|@PREFIX@|${pcfiledir}/../..|' -e 's|@LIBDIR@|${prefix}/lib|' \
    -e 's|@INCLUDEDIR@|${prefix}/include|' -e "s|@VERSION@|$VERSION|" \
    -e "s|@NATIVE_STATIC_LIBS@|$NATIVE_STATIC_LIBS|" \
    "$ROOT/wxmedia.pc.in" > "$t/lib/pkgconfig/wxmedia.pc"
cmake_libs=$(echo "$NATIVE_STATIC_LIBS" | sed -e 's/-l//g' -e 's/ -pthread//' -e 's/ /;/g')
major=${VERSION%%.*}; minor=${VERSION#*.}; minor=${minor%%.*}
for f in wxmediaConfig wxmediaConfigVersion; do
    sed -e "s|@VERSION@|$VERSION|g" -e "s|@SOVERSION@|$SOVERSION|g" \
        -e "s|@VERSION_MAJOR@|$major|g" -e "s|@VERSION_MINOR@|$minor|g" \
        -e "s|@CMAKE_STATIC_LIBS@|$cmake_libs|g" \
        "$ROOT/packaging/cmake/$f.cmake.in" > "$t/lib/cmake/wxmedia/$f.cmake"
done
install -m 644 "${licences[@]}" "$ROOT/packaging/README-c.md" "$t/share/doc/wxmedia/"
install -m 644 "${licences[@]}" "$t/"
tar -C "$stage" "${tar_opts[@]}" -czf "$DIST/$name.tar.gz" "$name"

# ---- 4. Python: sdist (sources + rust/) and a manylinux wheel from the prebuilt library
py="$stage/python"
mkdir -p "$py/wxmedia" "$py/examples" "$py/rust"
cp "$ROOT"/bindings/python/{pyproject.toml,setup.py,README.md,MANIFEST.in} "$py/"
cp "$ROOT"/bindings/python/wxmedia/*.py "$ROOT/bindings/python/wxmedia/py.typed" "$py/wxmedia/"
cp "$ROOT"/bindings/python/examples/*.py "$py/examples/"
cp "${licences[@]}" "$py/"
# rust/: the crate alone. Its Cargo.toml loses the other workspace members
# and the dev-dependencies (a path to tests/emulator) that are not shipped.
cp -r "$ROOT/src" "$ROOT/include" "$ROOT/build.rs" "$ROOT/cbindgen.toml" "$ROOT/Cargo.lock" \
      "$ROOT/LICENSE-MIT" "$ROOT/LICENSE-APACHE" "$py/rust/"
python3 - "$ROOT/Cargo.toml" "$py/rust/Cargo.toml" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
text = re.sub(r'(?m)^members = \[.*\]$', 'members = ["."]', text)
text = re.sub(r'(?ms)^\[dev-dependencies\]\n.*?(?=^\[)', '', text)
if "[dev-dependencies]" in text or 'members = ["."]' not in text:
    sys.exit("dist.sh: could not trim Cargo.toml for the sdist")
open(sys.argv[2], "w", encoding="utf-8").write(text)
EOF
# setuptools is chatty: its output goes to a log, shown only on failure.
pylog="$stage/python-build.log"
(cd "$py" && "$DIST_PY" -m build --sdist --no-isolation --outdir "$DIST/python" . &&
    WXMEDIA_PREBUILT_LIB="$stage/bin/$real" WXMEDIA_PREBUILT_EMULATOR="$stage/bin/wxmedia-emulator" \
    "$DIST_PY" -m build --wheel --no-isolation --outdir "$DIST/python" \
    -C--build-option=--plat-name="$WHEEL_PLAT" .) >"$pylog" 2>&1 || { cat "$pylog" >&2; exit 1; }

# ---- 5. Go: a module whose packages carry the prebuilt archive and emulator
# (go mod vendor keeps only Go package folders, so each folder that holds
# them has a placeholder .go file, imported under a build tag no build sets).
g="$DIST/go"
mod="github.com/wxmedia/wxmedia-go"
src="$ROOT/bindings/go"
mkdir -p "$g/wxmedia/include" "$g/wxmedia/lib/linux_amd64" "$g/wxmediatest"
for f in "$src"/*.go; do
    case "$f" in *_test.go) continue ;; esac
    cp "$f" "$g/wxmedia/"
done
cp "$src/shim.c" "$src/shim.h" "$g/wxmedia/"
cp "$ROOT/include/wxmedia.h" "$g/wxmedia/include/"
cp "$stage/bin/libwxmedia.a" "$g/wxmedia/lib/linux_amd64/"
cat > "$g/wxmedia/include/placeholder.go" <<'EOF'
// Package include holds wxmedia.h; this file only makes it a package, so
// that go mod vendor keeps the folder.
package include
EOF
cat > "$g/wxmedia/lib/linux_amd64/placeholder.go" <<'EOF'
// Package linux_amd64 holds the prebuilt libwxmedia.a; this file only makes
// it a package, so that go mod vendor keeps the folder.
package linux_amd64
EOF
cat > "$g/wxmedia/vendorkeep.go" <<EOF
//go:build wxmedia_vendorkeep

package wxmedia

// Never built (no build sets this tag); go mod vendor follows imports under
// every tag, so it keeps the folders of the header and the archive.
import (
	_ "$mod/wxmedia/include"
	_ "$mod/wxmedia/lib/linux_amd64"
)
EOF
# The build cache hashes a package's own files only: libid.h ties the
# package to the archive and header it links.
(cd "$g/wxmedia" && { echo '/* the archive and header this package links (sha256) */';
    sha256sum lib/linux_amd64/libwxmedia.a include/wxmedia.h | sed 's|^|// |'; } > libid.h)
cp "$src/wxmediatest/wxmediatest.go" "$g/wxmediatest/"
sed -e "s|\"github.com/wxmedia/wxmedia/bindings/go\"|\"$mod/wxmedia\"|" \
    -e "s|\"github.com/wxmedia/wxmedia/bindings/go/wxmediatest\"|\"$mod/wxmediatest\"|" \
    "$src/wxmediatest/example_test.go" > "$g/wxmediatest/example_test.go"
cp "$stage/bin/wxmedia-emulator" "$g/wxmediatest/wxmedia-emulator.bin"
cat > "$g/wxmediatest/embed_linux_amd64.go" <<'EOF'
package wxmediatest

import _ "embed"

// The emulator built with this release (linux/amd64, glibc >= 2.17).
//
//go:embed wxmedia-emulator.bin
var emulatorBinary []byte

func init() { embedded = emulatorBinary }
EOF
printf 'module %s\n\ngo 1.22\n' "$mod" > "$g/go.mod"
cp "${licences[@]}" "$ROOT/packaging/README-go.md" "$g/"
mv "$g/README-go.md" "$g/README.md"

echo "dist: $(cd "$DIST" && find . -type f \( -name '*.tar.gz' -o -name '*.whl' -o -name go.mod \) | sort | tr '\n' ' ')"

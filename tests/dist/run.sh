#!/usr/bin/env bash
# make dist-test: installs what `make dist` built, as a user would, OUTSIDE the
# repository and on a PATH with no cargo or rustc, and runs real transfers
# against the emulator (target/release/wxmedia-emulator, built apart from the
# shipped one; the shipped one is exercised too, by the testing helpers).
# Environment (mk/dist.mk): ROOT DIST VERSION SOVERSION GLIBC WHEEL_PLAT DIST_PY
# EMULATOR PYTHON GO CC CXX.
# No pipefail: `... | grep -q` would fail whenever grep stops reading early.
set -u
: "${ROOT:?}" "${DIST:?}" "${VERSION:?}" "${SOVERSION:?}" "${GLIBC:?}" "${WHEEL_PLAT:?}" \
  "${DIST_PY:?}" "${EMULATOR:?}"
PYTHON=${PYTHON:-python3}
GO=${GO:-go}
CC=${CC:-cc}
CXX=${CXX:-c++}

# Resolve tools before PATH loses everything else.
PYBIN=$("$PYTHON" -c 'import sys; print(sys.executable)')
GOBIN=$(command -v "$GO")
CCBIN=$(command -v "$CC")
CXXBIN=$(command -v "$CXX")
TOKEN=wxmedia-dist-token
# The user's PATH: system tools, a C compiler, Go. No cargo, no rustc.
CLEAN_PATH="/usr/bin:/bin:$(dirname "$GOBIN")"

work=$(mktemp -d /tmp/wxmedia-dist-test.XXXXXX)
case "$work" in "$ROOT"/*) echo "dist-test: $work is inside the repository" >&2; exit 1 ;; esac
emu_pids=()
cleanup() {
    for p in "${emu_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
step() {
    local what=$1; shift
    local t0=$SECONDS
    if ( "$@" ) >"$work/step.log" 2>&1; then
        echo "ok    $what ($((SECONDS - t0)) s)"
    else
        echo "FAIL  $what"; sed 's/^/      /' "$work/step.log" | tail -40
        failures=$((failures + 1))
    fi
}

# as_user CMD...: run with the user's PATH and none of the repository's
# environment (library and emulator overrides, cgo flags).
as_user() {
    env -u WXMEDIA_LIBRARY -u WXMEDIA_EMULATOR -u CGO_CFLAGS -u CGO_LDFLAGS -u CGO_CPPFLAGS \
        -u GOFLAGS -u CARGO_TARGET_DIR -u PKG_CONFIG_PATH PATH="$CLEAN_PATH" GOTOOLCHAIN=local "$@"
}

# start_emulator EXE: an emulator on 127.0.0.1:0; sets EMU_ADDR.
start_emulator() {
    local out="$work/emu.$RANDOM"
    "$1" --listen 127.0.0.1:0 --access-token "$TOKEN" >"$out" 2>"$out.err" </dev/null &
    emu_pids+=($!)
    EMU_ADDR=
    for _ in $(seq 1 300); do
        EMU_ADDR=$(grep -m1 -E "^127\.0\.0\.1:[0-9]+$" "$out" 2>/dev/null)
        [ -n "$EMU_ADDR" ] && return 0
        sleep 0.05
    done
    echo "the emulator $1 did not start:"; cat "$out.err"; return 1
}

# glibc_max FILE: the highest GLIBC_x.y version FILE needs.
glibc_max() {
    objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1
}
check_glibc() {
    local f max
    for f in "$@"; do
        max=$(glibc_max "$f")
        [ -n "$max" ] || { echo "$f: no versioned glibc symbols read"; return 1; }
        echo "$f: highest GLIBC_$max (baseline $GLIBC)"
        if [ "$(printf '%s\n%s\n' "$max" "$GLIBC" | sort -V | tail -n 1)" != "$GLIBC" ]; then
            echo "$f needs GLIBC_$max, above the $GLIBC baseline:"
            objdump -T "$f" | grep -E "GLIBC_$max\b" | head
            return 1
        fi
    done
}
not_debug() {  # shipped binaries carry no debug info
    local f
    for f in "$@"; do
        if readelf -S "$f" | grep -q '\.debug_info'; then echo "$f is not stripped"; return 1; fi
    done
}

WHEEL="$DIST/python/wxmedia-$VERSION-py3-none-$WHEEL_PLAT.whl"
SDIST="$DIST/python/wxmedia-$VERSION.tar.gz"
TARBALL="$DIST/wxmedia-$VERSION-linux-x86_64.tar.gz"
start_emulator "$EMULATOR" || exit 1
BASE_URL="http://$EMU_ADDR"

# ---- the user's PATH ---------------------------------------------------------------
no_rust() {
    if as_user bash -c 'command -v cargo || command -v rustc'; then
        echo "cargo or rustc is on the test PATH ($CLEAN_PATH)"; return 1
    fi
    return 0
}
step "the test PATH has no cargo and no rustc" no_rust

# ---- Python ---------------------------------------------------------------------------
"$PYBIN" -m zipfile -e "$WHEEL" "$work/wheel"  # (unzip may not be installed)
wheel_tag() {
    local show
    show=$("$DIST_PY" -m auditwheel show "$WHEEL" | tr '\n' ' ' | tr -s ' ')
    echo "$show"
    grep -q "is consistent with the following platform tag: \"$WHEEL_PLAT\"" <<<"$show"
}
step "auditwheel show: the wheel is $WHEEL_PLAT" wheel_tag
step "check-wheel-contents passes" "$DIST_PY" -m check_wheel_contents "$WHEEL"
wheel_layout() {
    local w="$work/wheel"
    grep -qx 'Root-Is-Purelib: false' "$w"/wxmedia-*.dist-info/WHEEL || { echo "not a platlib wheel"; return 1; }
    [ -f "$w/wxmedia/_lib/libwxmedia.so" ] || { echo "no wxmedia/_lib/libwxmedia.so at the platlib root"; return 1; }
    [ -f "$w/wxmedia/_lib/wxmedia-emulator" ] || { echo "no bundled emulator"; return 1; }
    local meta="$w/wxmedia-$VERSION.dist-info/METADATA"
    grep -qx 'License-Expression: MIT OR Apache-2.0' "$meta" || { echo "no SPDX License-Expression"; return 1; }
    for f in LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.txt; do
        grep -qx "License-File: $f" "$meta" || { echo "METADATA names no License-File $f"; return 1; }
        [ -s "$w/wxmedia-$VERSION.dist-info/licenses/$f" ] || { echo "$f not in the wheel"; return 1; }
    done
    if grep -q '^Classifier: License ::' "$meta"; then echo "deprecated licence classifier"; return 1; fi
    not_debug "$w/wxmedia/_lib/libwxmedia.so" "$w/wxmedia/_lib/wxmedia-emulator"
}
step "the wheel: platlib, bundled library + emulator (stripped), SPDX licence, licence files" wheel_layout
step "the wheel's binaries need no glibc above $GLIBC" \
    check_glibc "$work/wheel/wxmedia/_lib/libwxmedia.so" "$work/wheel/wxmedia/_lib/wxmedia-emulator"

py_install() {
    local v="$work/venv"
    "$PYBIN" -m venv "$v" || return 1
    as_user "$v/bin/python" -m pip install --quiet --disable-pip-version-check "$WHEEL" 'pytest>=7' || return 1
    cd "$work" || return 1
    as_user "$v/bin/python" -c 'import wxmedia, sys; print(wxmedia.__version__, wxmedia.library_version(), wxmedia.LIBRARY_PATH); sys.exit(0 if str(wxmedia.LIBRARY_PATH).startswith(sys.argv[1]) else 1)' "$v/" || return 1
    # Upload, then download back in ranges, against the independent emulator.
    cp "$ROOT/bindings/python/examples/demo.py" "$work/demo.py"
    as_user "$v/bin/python" "$work/demo.py" --base-url "$BASE_URL" --token "$TOKEN"
}
step "wheel in a fresh venv: upload + ranged download against the emulator" py_install
py_fixture() {
    mkdir -p "$work/pyproj" && cp "$ROOT/tests/dist/test_wheel_example.py" "$ROOT/tests/dist/conftest.py" "$work/pyproj/" || return 1
    cd "$work/pyproj" && as_user "$work/venv/bin/python" -m pytest -q -p no:cacheprovider -W error test_wheel_example.py
}
step "wxmedia.testing: the example test, on the bundled emulator" py_fixture

sdist_build() {
    # Where cargo exists (this step only): the sdist builds its own library.
    # A kept target dir makes a re-run incremental.
    local out="$work/sdist-wheel"
    tar tzf "$SDIST" | grep -q "^wxmedia-$VERSION/rust/Cargo.toml$" || { echo "no rust/ in the sdist"; return 1; }
    CARGO_TARGET_DIR="$ROOT/build/sdist-target" "$DIST_PY" -m pip wheel --quiet --no-deps \
        --no-build-isolation "$SDIST" -w "$out" || return 1
    "$PYBIN" -m venv "$work/venv-sdist" && \
    as_user "$work/venv-sdist/bin/python" -m pip install --quiet --disable-pip-version-check "$out"/wxmedia-*.whl && \
    cd "$work" && as_user "$work/venv-sdist/bin/python" -c 'import wxmedia; print(wxmedia.library_version())'
}
step "the sdist builds with cargo and imports" sdist_build

# ---- C / C++ tarball -------------------------------------------------------------
# Unpacked, then moved: every path in it must follow the folder.
mkdir -p "$work/unpack" && tar -C "$work/unpack" -xzf "$TARBALL"
mv "$work/unpack/wxmedia-$VERSION-linux-x86_64" "$work/moved-wxmedia"
P="$work/moved-wxmedia"
TAR_EMU_URL=
start_emulator "$P/bin/wxmedia-emulator" && TAR_EMU_URL="http://$EMU_ADDR"
tar_layout() {
    local real="libwxmedia.so.$VERSION" f
    for f in include/wxmedia.h lib/$real lib/$real.debug lib/libwxmedia.a lib/pkgconfig/wxmedia.pc \
             lib/cmake/wxmedia/wxmediaConfig.cmake lib/cmake/wxmedia/wxmediaConfigVersion.cmake \
             bin/wxmedia-emulator LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.txt; do
        [ -e "$P/$f" ] || { echo "missing $f"; return 1; }
    done
    [ "$(readlink "$P/lib/libwxmedia.so.$SOVERSION")" = "$real" ] || { echo "bad libwxmedia.so.$SOVERSION link"; return 1; }
    [ "$(readlink "$P/lib/libwxmedia.so")" = "libwxmedia.so.$SOVERSION" ] || { echo "bad libwxmedia.so link"; return 1; }
    readelf -d "$P/lib/$real" | grep -q "Library soname: \[libwxmedia.so.$SOVERSION\]" || { echo "wrong soname"; return 1; }
    # Stripped, with a debuglink to the separate debug file, which has the DWARF.
    not_debug "$P/lib/$real" "$P/bin/wxmedia-emulator" || return 1
    readelf --string-dump=.gnu_debuglink "$P/lib/$real" | grep -q "$real.debug" || { echo "no .gnu_debuglink"; return 1; }
    readelf -S "$P/lib/$real.debug" | grep -q '\.debug_info' || { echo "the debug file has no DWARF"; return 1; }
    ls -l "$P/lib/"
}
step "tarball: headers, stripped .so + soname links + debug file, .a, pkg-config, CMake, emulator, licences" tar_layout
step "tarball binaries need no glibc above $GLIBC" check_glibc "$P/lib/libwxmedia.so.$VERSION" "$P/bin/wxmedia-emulator"

c_cmake() {
    local s="$work/cmake-src" b="$work/cmake-build"
    mkdir -p "$s" && cp "$ROOT"/tests/dist/cmake-consumer/{CMakeLists.txt,hpp_demo.cpp} "$ROOT/examples/c/demo.c" "$s/" || return 1
    as_user cmake -S "$s" -B "$b" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$CCBIN" \
        -DCMAKE_CXX_COMPILER="$CXXBIN" >/dev/null || return 1
    as_user cmake --build "$b" || return 1
    if ldd "$b/demo_static" | grep -q libwxmedia; then echo "demo_static needs libwxmedia.so"; return 1; fi
    ldd "$b/demo_shared" | grep -q "$P/lib/libwxmedia.so.$SOVERSION" || { ldd "$b/demo_shared"; return 1; }
    cd "$work" && as_user "$b/demo_shared" "$BASE_URL" "$TOKEN" && as_user "$b/demo_static" "$BASE_URL" "$TOKEN" && \
        as_user "$b/hpp_demo" "$BASE_URL" "$TOKEN"
}
step "CMake find_package(wxmedia CONFIG): shared, static and C++ (wxmedia.hpp) demos transfer" c_cmake
c_cmake_version() {
    # Before 1.0 another minor may break the ABI: find_package(wxmedia 0.<minor+1>) must not take this one.
    local s="$work/cmake-ver" next="${VERSION%%.*}.$(( $(echo "$VERSION" | cut -d. -f2) + 1 ))"
    mkdir -p "$s" && printf 'cmake_minimum_required(VERSION 3.14)\nproject(v NONE)\nfind_package(wxmedia %s CONFIG REQUIRED)\n' "$next" > "$s/CMakeLists.txt"
    if as_user cmake -S "$s" -B "$s/b" -DCMAKE_PREFIX_PATH="$P"; then echo "find_package(wxmedia $next) accepted $VERSION"; return 1; fi
    return 0
}
step "CMake: find_package(wxmedia <next minor>) refuses $VERSION" c_cmake_version

c_pkgconfig() {
    local flags libdir
    flags=$(as_user env PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config --cflags --libs wxmedia) || return 1
    libdir=$(as_user env PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config --variable=libdir wxmedia) || return 1
    echo "pkg-config: $flags (libdir $libdir)"
    [ "$(cd "$libdir" && pwd -P)" = "$(cd "$P/lib" && pwd -P)" ] || { echo "libdir is not the moved folder"; return 1; }
    # shellcheck disable=SC2086
    as_user "$CCBIN" -std=c99 -o "$work/demo_pc" "$ROOT/examples/c/demo.c" $flags -Wl,-rpath,"$libdir" || return 1
    # Against the emulator shipped in the tarball.
    [ -n "$TAR_EMU_URL" ] || { echo "the tarball's emulator did not start"; return 1; }
    cd "$work" && as_user "$work/demo_pc" "$TAR_EMU_URL" "$TOKEN"
}
step "pkg-config consumer builds and transfers (against the tarball's emulator)" c_pkgconfig

# ---- Go module ------------------------------------------------------------------
# The module, copied outside the repository; a consumer module requires it
# through a replace directive, as a user would with a local copy.
cp -r "$DIST/go" "$work/wxmedia-go"
G="$work/goconsumer"
mkdir -p "$G"
cat > "$G/go.mod" <<EOF
module example.com/consumer

go 1.22

require github.com/wxmedia/wxmedia-go v0.0.0

replace github.com/wxmedia/wxmedia-go => $work/wxmedia-go
EOF
cp "$ROOT/tests/dist/goconsumer/main.go" "$ROOT/tests/dist/goconsumer/main_test.go" "$G/"
go_layout() {
    local m="$work/wxmedia-go" f
    for f in LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.txt wxmedia/lib/linux_amd64/libwxmedia.a \
             wxmedia/include/wxmedia.h wxmediatest/wxmedia-emulator.bin; do
        [ -s "$m/$f" ] || { echo "missing $f"; return 1; }
    done
    grep -q '^package wxmedia$' "$m/wxmedia/doc.go" || { echo "package name is not the import path's last element"; return 1; }
    grep -q '^package wxmediatest$' "$m/wxmediatest/wxmediatest.go" || return 1
}
step "Go module: prebuilt archive, header, emulator, licences; import path = package name" go_layout
go_build() {
    cd "$G" && as_user "$GOBIN" build -o consumer . || return 1
    as_user ./consumer "$BASE_URL" "$TOKEN" || return 1
    if ldd ./consumer | grep -q libwxmedia; then echo "the consumer needs libwxmedia.so"; return 1; fi
}
step "Go consumer: go build, no CGO flags, downloads from the emulator" go_build
go_vendor() {
    cd "$G" && as_user "$GOBIN" mod vendor || return 1
    local v=vendor/github.com/wxmedia/wxmedia-go
    [ -s $v/wxmedia/lib/linux_amd64/libwxmedia.a ] && [ -s $v/wxmedia/include/wxmedia.h ] && \
        [ -s $v/wxmediatest/wxmedia-emulator.bin ] || { echo "go mod vendor dropped the archive, header or emulator"; find vendor | head -30; return 1; }
    as_user "$GOBIN" build -mod=vendor -o consumer-vendored . || return 1
    as_user ./consumer-vendored "$BASE_URL" "$TOKEN" || return 1
    # wxmediatest: the user's own test on the embedded emulator.
    as_user "$GOBIN" test -mod=vendor -count=1 .
}
step "Go consumer: go mod vendor keeps the archive; -mod=vendor build + wxmediatest test" go_vendor

echo "--- done: $failures failure(s)"
[ "$failures" = 0 ]

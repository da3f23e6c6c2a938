#!/usr/bin/env bash
# The C test runner, started by `make c-test` (mk/c.mk), which builds the
# examples and test binaries first and passes ROOT, C_BUILD, EMULATOR,
# HEADER, LIB_SO, LIB_A, CC, CXX, CARGO, MAKE, WXM_NATIVE_STATIC_LIBS,
# WXM_VERSION and WXM_SOVERSION in the environment.
#
# Every check prints "ok - NAME" or "FAIL - NAME"; the C test binaries add
# their own cases.  The last line is "N passed, N failed"; the exit status is
# non-zero when anything failed.
set -u
set -o pipefail

: "${ROOT:?}" "${C_BUILD:?}" "${EMULATOR:?}" "${HEADER:?}" "${LIB_SO:?}" "${LIB_A:?}"
: "${WXM_NATIVE_STATIC_LIBS:?}" "${WXM_VERSION:?}" "${WXM_SOVERSION:?}"
CC=${CC:-cc}
CXX=${CXX:-c++}
CARGO=${CARGO:-cargo}
MAKE=${MAKE:-make}

pass=0
fail=0
work=$(mktemp -d "${TMPDIR:-/tmp}/wxm-c-test-XXXXXX")
log="$work/step.log"
emu_pid=
started=$(date +%s)

cleanup() {
    stop_emulator
    rm -rf "$work"
}
trap cleanup EXIT

ok() {
    pass=$((pass + 1))
    echo "ok - $1"
}
bad() {
    fail=$((fail + 1))
    echo "FAIL - $1"
}
# step NAME COMMAND...: run, keep the output, show it on failure.
step() {
    local name=$1
    shift
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        ok "$name ($((SECONDS - t0)) s)"
    else
        bad "$name ($((SECONDS - t0)) s)"
        sed -e 's/^/    | /' "$log" | tail -n 40
    fi
}

# ---- the emulator (for examples and consumers; the C test binaries start
#      their own) ------------------------------------------------------------

TOKEN="wxm-c-runner-TOKEN-5b8e21"
start_emulator() {
    "$EMULATOR" --listen 127.0.0.1:0 --access-token "$TOKEN" \
        >"$work/emu.out" 2>"$work/emu.err" </dev/null &
    emu_pid=$!
    local addr= i
    for i in $(seq 1 200); do
        addr=$(head -n 1 "$work/emu.out" 2>/dev/null)
        [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] && break
        addr=
        kill -0 "$emu_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$addr" ]; then
        echo "# the emulator did not start:"
        sed -e 's/^/    | /' "$work/emu.err"
        return 1
    fi
    ADDR=$addr
    export WXMEDIA_BASE_URL="http://$addr" WXMEDIA_ACCESS_TOKEN="$TOKEN"
}
stop_emulator() {
    if [ -n "$emu_pid" ] && kill -0 "$emu_pid" 2>/dev/null; then
        kill -TERM "$emu_pid" 2>/dev/null
        wait "$emu_pid" 2>/dev/null
    fi
    emu_pid=
}
admin_get() { curl -fsS --max-time 10 "http://$ADDR$1"; }

for f in "$EMULATOR" "$LIB_SO" "$LIB_A" "$HEADER"; do
    if [ ! -e "$f" ]; then
        echo "missing $f (make lib)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

echo "# wxmedia C tests: $CC ($($CC -dumpfullversion 2>/dev/null || $CC -dumpversion)), library $WXM_VERSION"

# ---- 1. the header under strict compilers -----------------------------------

hdr_bin="$work/hdr"
link_shared=(-L"$C_BUILD/lib" -lwxmedia -Wl,-rpath,"$C_BUILD/lib")
for std in c99 c11; do
    step "header compiles and runs as ${std} -Wall -Wextra -Werror -pedantic" \
        bash -c '"$1" -std="$2" -Wall -Wextra -Werror -pedantic -Wstrict-prototypes \
                    -Wmissing-prototypes -Wshadow -I"$3" "$4" -o "$5" "${@:6}" && "$5"' _ \
        "$CC" "$std" "$ROOT/include" "$ROOT/tests/c/header_c99.c" "$hdr_bin-$std" "${link_shared[@]}"
done
for std in c++11 c++17; do
    step "header compiles and runs as ${std} -Wall -Wextra -Werror -pedantic" \
        bash -c '"$1" -std="$2" -Wall -Wextra -Werror -pedantic -I"$3" "$4" -o "$5" "${@:6}" && "$5"' _ \
        "$CXX" "$std" "$ROOT/include" "$ROOT/tests/c/header_cpp.cpp" "$hdr_bin-$std" "${link_shared[@]}"
done

# Every function the header declares is called with NULL arguments by
# tests/c/test_args.c (so a new function cannot slip past that test).
check_null_coverage() {
    local fn missing=0
    for fn in $(grep -oE '\bwxm_[a-z0-9_]+\(' "$HEADER" | tr -d '(' | sort -u); do
        if ! grep -q "\b$fn(" "$ROOT/tests/c/test_args.c"; then
            echo "not exercised by test_args.c: $fn"
            missing=1
        fi
    done
    [ "$missing" -eq 0 ]
}
step "every wxm_ function in the header is exercised by the NULL-argument test" \
    check_null_coverage

# ---- 2. the static-link library list is the one rustc names ------------------

check_native_libs() {
    local out got
    out=$(cd "$ROOT" && "$CARGO" rustc --release --locked -p wxmedia --lib \
        --crate-type staticlib -- --print native-static-libs 2>&1) || {
        echo "$out" | tail -n 20
        return 1
    }
    got=$(echo "$out" | sed -n 's/.*native-static-libs: //p' | tail -n 1)
    echo "rustc:  $got"
    echo "mk/c.mk: $WXM_NATIVE_STATIC_LIBS"
    [ -n "$got" ] && [ "$got" = "$WXM_NATIVE_STATIC_LIBS" ]
}
# cargo may compile the crate once more for this (a staticlib-only build,
# cached afterwards): run it in the background while the C tests run.
check_native_libs >"$work/native.log" 2>&1 &
native_pid=$!

# ---- 3. the C tests, shared and static, under ASan + UBSan + LSan -------------

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="report_objects=1"

# run_ctest LABEL COMMAND...: run a test binary, add its cases to the counts.
run_ctest() {
    local label=$1 out="$work/ctest.log" status summary p f t0=$SECONDS
    shift
    timeout 600 "$@" 2>&1 | tee "$out" | sed -e "s/^/[$label] /"
    status=${PIPESTATUS[0]}
    echo "# $label took $((SECONDS - t0)) s"
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -n "$summary" ]; then
        p=${summary%% passed*}
        f=${summary#*, }
        f=${f%% failed*}
        pass=$((pass + p))
        fail=$((fail + f))
        if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
            bad "$label: exit status $status after all cases passed (sanitizer report at exit?)"
        fi
    else
        bad "$label: no summary line (exit status $status: crashed, hung or killed)"
    fi
}

run_ctest "shared+asan" "$C_BUILD/test/wxm_ctest-shared-asan" --emulator "$EMULATOR"
run_ctest "static+asan" "$C_BUILD/test/wxm_ctest-static-asan" --emulator "$EMULATOR"

# LeakSanitizer really sees allocations made inside the Rust library: a
# handle leaked on purpose must be reported, with a frame in the library.
leak_canary() {
    local bin=$1 status
    ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0" "$bin" --leak-canary
    status=$?
    echo "exit status $status"
    [ "$status" -ne 0 ] || { echo "LeakSanitizer did not fail the run"; return 1; }
    grep -q "ERROR: LeakSanitizer" "$log" || { echo "no LeakSanitizer report"; return 1; }
    grep -Eq "in wxm_(config|client|download)_new" "$log" ||
        { echo "no leak traced into libwxmedia"; return 1; }
}
# (step sends the output to $log, which leak_canary reads back.)
step "leak canary: LSan reports a handle leaked in libwxmedia (shared)" \
    leak_canary "$C_BUILD/test/wxm_ctest-shared-asan"
step "leak canary: LSan reports a handle leaked in libwxmedia (static)" \
    leak_canary "$C_BUILD/test/wxm_ctest-static-asan"

# ---- 4. valgrind memcheck on a subset (no sanitizers in that build) -----------

if command -v valgrind >/dev/null; then
    vg_status=0
    t0=$SECONDS
    env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS timeout 600 \
        valgrind --quiet --error-exitcode=97 --leak-check=full \
        --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        "$C_BUILD/test/wxm_ctest-shared-plain" --emulator "$EMULATOR" --valgrind-subset \
        >"$work/vg.log" 2>&1 || vg_status=$?
    sed -e 's/^/[valgrind] /' "$work/vg.log"
    echo "# valgrind took $((SECONDS - t0)) s"
    if [ "$vg_status" -eq 0 ] && grep -Eq '^[1-9][0-9]* passed, 0 failed$' "$work/vg.log"; then
        ok "valgrind memcheck: no invalid access, no definite leak (subset)"
    else
        bad "valgrind memcheck: exit status $vg_status (subset)"
    fi
    # ... and memcheck does see a leak inside the library.
    valgrind_canary() {
        local status=0
        valgrind --error-exitcode=97 --leak-check=full --show-leak-kinds=definite \
            --errors-for-leak-kinds=definite \
            "$C_BUILD/test/wxm_ctest-shared-plain" --leak-canary || status=$?
        echo "exit status $status"
        [ "$status" -eq 97 ] && grep -Eq "definitely lost" "$log" &&
            grep -Eq "by 0x[0-9A-F]+: wxm_(config|client|download)_new" "$log"
    }
    step "leak canary: valgrind reports a handle leaked in libwxmedia" valgrind_canary
else
    bad "valgrind is not installed (make c-deps)"
fi

# ---- (2, collected) --------------------------------------------------------------

native_status=0
wait "$native_pid" || native_status=$?
if [ "$native_status" -eq 0 ]; then
    ok "WXM_NATIVE_STATIC_LIBS in mk/c.mk equals rustc --print native-static-libs"
else
    bad "WXM_NATIVE_STATIC_LIBS in mk/c.mk equals rustc --print native-static-libs"
fi
sed -e 's/^/    | /' "$work/native.log" | tail -n 20

# ---- 5. the examples against an emulator ------------------------------------

ex="$C_BUILD/examples"
if start_emulator; then
    ok "emulator starts and prints its address"
else
    bad "emulator starts and prints its address"
fi

srcfile="$work/example-upload.bin"
head -c 1234567 /dev/urandom >"$srcfile"
src_sha=$(sha256sum "$srcfile" | cut -d' ' -f1)

# upload_from_path: prints "media_id ID"; the emulator got the same bytes.
example_upload_path() {
    local id sha
    "$ex/upload_from_path" file "$srcfile" | tee "$work/up1.out" || return 1
    id=$(sed -n 's/^media_id //p' "$work/up1.out")
    [ -n "$id" ] || return 1
    sha=$(admin_get "/__admin/media/$id" | sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p')
    echo "emulator sha256 $sha, file sha256 $src_sha"
    [ "$sha" = "$src_sha" ] || return 1
    echo "$id" >"$work/media_id"
}
step "example upload_from_path uploads a file intact" example_upload_path

example_upload_reader() {
    local id json
    "$ex/upload_from_reader" file "$srcfile" "from reader.bin" | tee "$work/up2.out" || return 1
    id=$(sed -n 's/^media_id //p' "$work/up2.out")
    [ -n "$id" ] || return 1
    json=$(admin_get "/__admin/media/$id") || return 1
    echo "$json"
    echo "$json" | grep -q "\"sha256\" *: *\"$src_sha\"" &&
        echo "$json" | grep -q '"filename" *: *"from reader.bin"'
}
step "example upload_from_reader uploads a stream intact, with its filename" \
    example_upload_reader

media_id=$(cat "$work/media_id" 2>/dev/null || echo none)
example_download_path() {
    "$ex/download_to_path" "$media_id" "$work/dl.bin" &&
        cmp "$srcfile" "$work/dl.bin"
}
step "example download_to_path saves the media intact" example_download_path

example_download_memory() {
    "$ex/download_to_memory" "$media_id" | tee "$work/mem.out" &&
        grep -q "^1234567 bytes in memory" "$work/mem.out"
}
step "example download_to_memory receives every byte" example_download_memory

# A failure is reported with WeChat's errcode and never shows the token.
example_error() {
    local status=0
    "$ex/download_to_path" no-such-media "$work/none.bin" >"$work/err.out" 2>&1 || status=$?
    cat "$work/err.out"
    [ "$status" -eq 1 ] && grep -q "40007" "$work/err.out" &&
        ! grep -q "$TOKEN" "$work/err.out" && [ ! -e "$work/none.bin" ]
}
step "example download_to_path reports 40007 without the token" example_error

example_demo() {
    "$ex/demo" | tee "$work/demo.out" && grep -q "^demo: OK" "$work/demo.out"
}
step "examples/c/demo: upload 3 MiB + 7, ranged download to path and sink, verify" \
    example_demo

# ---- 6. install, pkg-config, CMake -----------------------------------------------

prefix="$work/prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
unset LD_LIBRARY_PATH

check_install() {
    # (the library was built by c-test already: no second cargo run here)
    "$MAKE" --no-print-directory -C "$ROOT" install PREFIX="$prefix" C_INSTALL_DEPS= || return 1
    local lib="$prefix/lib" soname
    ls -l "$lib" "$prefix/include"
    [ -f "$prefix/include/wxmedia.h" ] && cmp "$HEADER" "$prefix/include/wxmedia.h" || return 1
    [ -f "$lib/libwxmedia.a" ] || return 1
    [ -f "$lib/libwxmedia.so.$WXM_VERSION" ] && [ ! -L "$lib/libwxmedia.so.$WXM_VERSION" ] || return 1
    [ "$(readlink "$lib/libwxmedia.so.$WXM_SOVERSION")" = "libwxmedia.so.$WXM_VERSION" ] || return 1
    [ "$(readlink "$lib/libwxmedia.so")" = "libwxmedia.so.$WXM_SOVERSION" ] || return 1
    soname=$(readelf -d "$lib/libwxmedia.so.$WXM_VERSION" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    echo "SONAME: $soname"
    [ "$soname" = "libwxmedia.so.$WXM_SOVERSION" ] || return 1
    [ -f "$lib/pkgconfig/wxmedia.pc" ] && cat "$lib/pkgconfig/wxmedia.pc"
}
step "make install PREFIX=...: header, .a, .so.$WXM_VERSION with SONAME libwxmedia.so.$WXM_SOVERSION, links, wxmedia.pc" \
    check_install

check_pkgconfig() {
    local v cflags libs
    # (pkg-config ends some answers with a space: compare the words.)
    v=$(pkg-config --modversion wxmedia) && cflags=$(echo $(pkg-config --cflags wxmedia)) &&
        libs=$(echo $(pkg-config --libs wxmedia)) || return 1
    echo "version: $v; cflags: $cflags; libs: $libs"
    echo "static: $(pkg-config --static --libs wxmedia)"
    [ "$v" = "$WXM_VERSION" ] && [ "$cflags" = "-I$prefix/include" ] &&
        [ "$libs" = "-L$prefix/lib -lwxmedia" ] &&
        [ "$(pkg-config --variable=native_static_libs wxmedia)" = "$WXM_NATIVE_STATIC_LIBS" ]
}
step "pkg-config --modversion/--cflags/--libs wxmedia describe the install" check_pkgconfig

# An example built against the installed copy, linked dynamically.
consumer_shared() {
    local bin="$work/demo-pc-shared"
    # shellcheck disable=SC2046
    "$CC" -std=c99 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags wxmedia) \
        "$ROOT/examples/c/demo.c" -o "$bin" $(pkg-config --libs wxmedia) \
        -Wl,-rpath,"$(pkg-config --variable=libdir wxmedia)" || return 1
    readelf -d "$bin" | grep NEEDED
    readelf -d "$bin" | grep -q "NEEDED.*\[libwxmedia.so.$WXM_SOVERSION\]" || return 1
    ldd "$bin" | grep wxmedia
    ldd "$bin" | grep -q "libwxmedia.so.$WXM_SOVERSION => $prefix/lib/" || return 1
    "$bin" | tail -n 2 && "$bin" >/dev/null
}
step "examples/c/demo.c built with pkg-config --cflags --libs wxmedia runs (shared)" \
    consumer_shared

# The same example linked statically against the installed libwxmedia.a.
consumer_static() {
    local bin="$work/demo-pc-static" libdir
    libdir=$(pkg-config --variable=libdir wxmedia) || return 1
    # shellcheck disable=SC2046
    "$CC" -std=c99 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags wxmedia) \
        "$ROOT/examples/c/demo.c" -o "$bin" "$libdir/libwxmedia.a" \
        $(pkg-config --variable=native_static_libs wxmedia) || return 1
    if readelf -d "$bin" | grep -q "NEEDED.*libwxmedia"; then
        echo "the static build still needs libwxmedia.so"
        return 1
    fi
    "$bin" | tail -n 1 && "$bin" >/dev/null
}
step "examples/c/demo.c linked with libwxmedia.a + native_static_libs runs (static)" \
    consumer_static

consumer_cmake() {
    local b="$work/cmake-build"
    command -v cmake >/dev/null || { echo "cmake is not installed (make c-deps)"; return 1; }
    cmake -S "$ROOT/tests/c/cmake-consumer" -B "$b" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$CC" || return 1
    cmake --build "$b" || return 1
    ldd "$b/consumer" | grep wxmedia
    ldd "$b/consumer" | grep -q "=> $prefix/lib/" || return 1
    "$b/consumer"
}
step "CMake project using pkg_check_modules(wxmedia) builds and runs" consumer_cmake

stop_emulator
echo "# c-test took $(($(date +%s) - started)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]

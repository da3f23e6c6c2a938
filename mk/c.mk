# The C/C++ host side: examples, C tests, install + pkg-config.
# Included by the top Makefile, which defines ROOT, LIBDIR, LIB_SO, LIB_A,
# EMULATOR, HEADER and PREFIX.
#
#   make c-deps       apt packages the C side needs (skips what is present)
#   make c-examples   build examples/c/*.c into build/c/examples/
#   make c-demo       upload + ranged download round trip against the emulator
#   make c-test       header checks, C tests (shared + static, ASan/UBSan/LSan,
#                     valgrind subset), examples, install + pkg-config + CMake
#   make install      header, libwxmedia.a, libwxmedia.so.0.1.0 (+ links; stripped:
#                     debug info stays in the build tree),
#                     lib/pkgconfig/wxmedia.pc under $(PREFIX) (and $(DESTDIR))
#   make uninstall    remove what install wrote

.PHONY: c-deps c-examples c-examples-build c-demo c-test c-test-build \
        install uninstall c-clean

# System libraries that a program linking libwxmedia.a statically needs:
# exactly what `rustc --print native-static-libs` names for the crate.  The
# only place this list is written; tests/c/run.sh pins it against
# `cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs`,
# and it goes into wxmedia.pc as Libs.private.
WXM_NATIVE_STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

# Debian packages the C side uses (compilers and make come with the image).
C_APT_PACKAGES := pkg-config cmake patchelf valgrind curl binutils

WXM_VERSION := $(shell sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' $(ROOT)/Cargo.toml | head -n 1)
WXM_SOVERSION := $(firstword $(subst ., ,$(WXM_VERSION)))

C_BUILD := $(ROOT)/build/c
CC ?= cc
CXX ?= c++
C_WARN := -std=c99 -Wall -Wextra -Werror -pedantic
C_OPT := -O2 -g
# The test harness's CHECK(cond) macro passes an unused "" to its printf-style
# message (see tests/c/harness.h).
C_TEST_FLAGS := -D_XOPEN_SOURCE=700 -Wno-format-extra-args
C_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
         -fno-omit-frame-pointer
# In-tree linking goes through build/c/lib, which links libwxmedia.so and
# libwxmedia.so.$(WXM_SOVERSION) to target/release, so binaries run whether
# or not the library carries a SONAME.
C_LINK_SHARED := -L$(C_BUILD)/lib -lwxmedia -Wl,-rpath,$(C_BUILD)/lib -pthread
C_LINK_STATIC := $(LIB_A) $(WXM_NATIVE_STATIC_LIBS) -pthread

C_EXAMPLES := download_to_path download_to_memory upload_from_path \
              upload_from_reader demo
C_EXAMPLE_BINS := $(addprefix $(C_BUILD)/examples/,$(C_EXAMPLES))

C_TEST_SRCS := $(addprefix $(ROOT)/tests/c/,harness.c test_args.c \
               test_download.c test_upload.c test_cancel.c test_threads.c \
               test_errors.c test_callbacks.c)
C_TEST_BINS := $(C_BUILD)/test/wxm_ctest-shared-asan \
               $(C_BUILD)/test/wxm_ctest-static-asan \
               $(C_BUILD)/test/wxm_ctest-shared-plain

# ---- dependencies ------------------------------------------------------------

c-deps:
	@missing=; for p in $(C_APT_PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    $$SUDO apt-get install -y --no-install-recommends $$missing; \
	else echo "c-deps: all present ($(C_APT_PACKAGES))"; fi

# ---- in-tree library links -------------------------------------------------

$(C_BUILD)/lib/.stamp: $(LIB_SO)
	@mkdir -p $(C_BUILD)/lib
	ln -sf $(LIB_SO) $(C_BUILD)/lib/libwxmedia.so
	ln -sf $(LIB_SO) $(C_BUILD)/lib/libwxmedia.so.$(WXM_SOVERSION)
	@touch $@

# ---- examples --------------------------------------------------------------------

c-examples: lib
	@$(MAKE) --no-print-directory -C $(ROOT) c-examples-build

c-examples-build: $(C_EXAMPLE_BINS)

$(C_BUILD)/examples/%: $(ROOT)/examples/c/%.c $(HEADER) $(C_BUILD)/lib/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(C_OPT) -I$(ROOT)/include -o $@ $< $(C_LINK_SHARED)

c-demo: c-examples
	$(ROOT)/examples/c/with-emulator.sh $(EMULATOR) -- $(C_BUILD)/examples/demo

# ---- tests ------------------------------------------------------------------------

c-test-build: $(C_TEST_BINS)

$(C_BUILD)/test/wxm_ctest-shared-asan: $(C_TEST_SRCS) $(ROOT)/tests/c/harness.h $(HEADER) $(C_BUILD)/lib/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(C_TEST_FLAGS) -O1 -g $(C_SAN) -I$(ROOT)/include \
	    -o $@ $(C_TEST_SRCS) $(C_LINK_SHARED)

$(C_BUILD)/test/wxm_ctest-static-asan: $(C_TEST_SRCS) $(ROOT)/tests/c/harness.h $(HEADER) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(C_TEST_FLAGS) -O1 -g $(C_SAN) -I$(ROOT)/include \
	    -o $@ $(C_TEST_SRCS) $(C_LINK_STATIC)

# Without sanitizers, for valgrind (which cannot run ASan binaries).
$(C_BUILD)/test/wxm_ctest-shared-plain: $(C_TEST_SRCS) $(ROOT)/tests/c/harness.h $(HEADER) $(C_BUILD)/lib/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(C_TEST_FLAGS) -O1 -g -I$(ROOT)/include \
	    -o $@ $(C_TEST_SRCS) $(C_LINK_SHARED)

c-test: lib
	@$(MAKE) --no-print-directory -C $(ROOT) c-examples-build c-test-build
	@env ROOT=$(ROOT) C_BUILD=$(C_BUILD) EMULATOR=$(EMULATOR) HEADER=$(HEADER) \
	    LIB_SO=$(LIB_SO) LIB_A=$(LIB_A) CC="$(CC)" CXX="$(CXX)" CARGO="$(CARGO)" \
	    MAKE="$(MAKE)" WXM_NATIVE_STATIC_LIBS="$(WXM_NATIVE_STATIC_LIBS)" \
	    WXM_VERSION=$(WXM_VERSION) WXM_SOVERSION=$(WXM_SOVERSION) \
	    bash $(ROOT)/tests/c/run.sh

# ---- install ----------------------------------------------------------------------

INCLUDEDIR ?= $(PREFIX)/include
INSTALL_LIBDIR ?= $(PREFIX)/lib
# pkg-config paths relative to ${prefix} when they are inside it.
C_PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INSTALL_LIBDIR))
C_PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

# libwxmedia.so.X.Y.Z carries the SONAME libwxmedia.so.X; when the build did
# not set it (build.rs: cargo:rustc-cdylib-link-arg=-Wl,-soname,libwxmedia.so.X),
# the installed copy gets it from patchelf.
# (c-test, which has just built the library, passes C_INSTALL_DEPS= .)
C_INSTALL_DEPS ?= lib
install: $(C_INSTALL_DEPS)
	@set -e; \
	inc="$(DESTDIR)$(INCLUDEDIR)"; lib="$(DESTDIR)$(INSTALL_LIBDIR)"; \
	real=libwxmedia.so.$(WXM_VERSION); so=libwxmedia.so.$(WXM_SOVERSION); \
	install -d "$$inc" "$$lib" "$$lib/pkgconfig"; \
	install -m 644 $(HEADER) "$$inc/wxmedia.h"; \
	install -m 644 $(LIB_A) "$$lib/libwxmedia.a"; \
	strip --strip-debug "$$lib/libwxmedia.a"; \
	install -m 755 $(LIB_SO) "$$lib/$$real"; \
	strip --strip-unneeded "$$lib/$$real"; \
	cur=$$(readelf -d "$$lib/$$real" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p'); \
	if [ "$$cur" != "$$so" ]; then \
	    command -v patchelf >/dev/null || { echo "install: patchelf is needed to set the SONAME (make c-deps)" >&2; exit 1; }; \
	    patchelf --set-soname "$$so" "$$lib/$$real"; \
	fi; \
	ln -sfn "$$real" "$$lib/$$so"; \
	ln -sfn "$$so" "$$lib/libwxmedia.so"; \
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(C_PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(C_PC_INCLUDEDIR)|' -e 's|@VERSION@|$(WXM_VERSION)|' \
	    -e 's|@NATIVE_STATIC_LIBS@|$(WXM_NATIVE_STATIC_LIBS)|' \
	    $(ROOT)/wxmedia.pc.in > "$$lib/pkgconfig/wxmedia.pc"; \
	echo "installed wxmedia $(WXM_VERSION) under $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f "$(DESTDIR)$(INCLUDEDIR)/wxmedia.h" \
	      "$(DESTDIR)$(INSTALL_LIBDIR)/libwxmedia.a" \
	      "$(DESTDIR)$(INSTALL_LIBDIR)/libwxmedia.so" \
	      "$(DESTDIR)$(INSTALL_LIBDIR)/libwxmedia.so.$(WXM_SOVERSION)" \
	      "$(DESTDIR)$(INSTALL_LIBDIR)/libwxmedia.so.$(WXM_VERSION)" \
	      "$(DESTDIR)$(INSTALL_LIBDIR)/pkgconfig/wxmedia.pc"

c-clean:
	rm -rf $(C_BUILD)

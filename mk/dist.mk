# Release artifacts (issue 20): everything a user installs, in dist/.
# Included by the top Makefile (ROOT, CARGO, WXM_VERSION, WXM_SOVERSION,
# WXM_NATIVE_STATIC_LIBS from mk/c.mk).
#
#   make dist        one build of libwxmedia + wxmedia-emulator against glibc
#                    2.17 (cargo zigbuild), then packaging/dist.sh: the C/C++
#                    tarball, the manylinux wheel + sdist, the Go module
#   make dist-test   tests/dist/run.sh: installs each artifact outside the
#                    repository, on a PATH without cargo, and transfers
#                    against the emulator; checks tags, glibc symbols, licences
#
# Linux x86_64 only: the one target this toolchain has.

.PHONY: dist dist-tools dist-lib dist-test dist-clean

DIST := $(ROOT)/dist
DIST_TARGET := x86_64-unknown-linux-gnu
# The glibc the shipped binaries are linked against (zig provides its
# symbol set), and the wheel tag that promises it.
DIST_GLIBC := 2.17
DIST_WHEEL_PLAT := manylinux_2_17_x86_64
DIST_BUILDLIB := $(ROOT)/target/$(DIST_TARGET)/release
DIST_VENV := $(ROOT)/build/dist-venv
DIST_PY := $(DIST_VENV)/bin/python
# Build tools, pinned: ziglang is the linker/libc that fixes the glibc
# baseline; cargo-zigbuild drives cargo with it; build makes the wheel and
# sdist; auditwheel and check-wheel-contents judge the wheel.
DIST_PIP_PACKAGES := ziglang==0.17.1 cargo-zigbuild==0.24.1 build==1.6.1 \
    'setuptools>=77' auditwheel==6.8.2 check-wheel-contents==0.6.3

$(DIST_PY):
	$(PYTHON) -m venv $(DIST_VENV)

dist-tools: $(DIST_PY)
	@$(DIST_PY) -m pip install --quiet --disable-pip-version-check $(DIST_PIP_PACKAGES)

# cargo-zigbuild finds zig through `python3 -m ziglang`: the venv's python3
# first on PATH. The `.2.17` suffix selects the glibc; the output goes to
# target/x86_64-unknown-linux-gnu/release.
dist-lib: dist-tools
	PATH="$(DIST_VENV)/bin:$$PATH" $(DIST_VENV)/bin/cargo-zigbuild zigbuild --release --locked \
	    --target $(DIST_TARGET).$(DIST_GLIBC) -p wxmedia -p wxmedia-emulator --lib --bins

dist: dist-lib
	@env ROOT=$(ROOT) DIST=$(DIST) BUILDLIB=$(DIST_BUILDLIB) VERSION=$(WXM_VERSION) \
	    SOVERSION=$(WXM_SOVERSION) NATIVE_STATIC_LIBS="$(WXM_NATIVE_STATIC_LIBS)" \
	    WHEEL_PLAT=$(DIST_WHEEL_PLAT) DIST_PY=$(DIST_PY) CARGO="$(CARGO)" \
	    bash $(ROOT)/packaging/dist.sh

dist-test: dist lib
	@env ROOT=$(ROOT) DIST=$(DIST) VERSION=$(WXM_VERSION) SOVERSION=$(WXM_SOVERSION) \
	    GLIBC=$(DIST_GLIBC) WHEEL_PLAT=$(DIST_WHEEL_PLAT) DIST_PY=$(DIST_PY) \
	    EMULATOR=$(EMULATOR) PYTHON=$(PYTHON) GO="$(GO)" CC="$(CC)" CXX="$(CXX)" \
	    CARGO="$(CARGO)" bash $(ROOT)/tests/dist/run.sh

dist-clean:
	rm -rf $(DIST) $(ROOT)/build/dist

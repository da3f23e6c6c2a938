# wxmedia — one Makefile for every host. Per-host targets live in mk/*.mk.
#   make demo   the main job: a real upload and ranged download against the
#               bundled emulator, from C, Python and Go
#   make test   every test (Rust, emulator, C, Python, Go, the bench's verdicts,
#               the release artifacts installed outside the repository)
#   make dist   everything a user installs, into dist/ (mk/dist.mk)
#   make bench  benchmarks side by side with curl and peers (not part of test)

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr/local
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
LIBDIR := $(ROOT)/target/release
LIB_SO := $(LIBDIR)/libwxmedia.so
LIB_A := $(LIBDIR)/libwxmedia.a
EMULATOR := $(LIBDIR)/wxmedia-emulator
HEADER := $(ROOT)/include/wxmedia.h

.PHONY: all lib demo test rust-test cli-test rust-lint header deps redis-deps ureq-latest versitygw
all: lib

# The library (both kinds) and the emulator, in release mode.
lib:
	$(CARGO) build --release --workspace --locked

# System packages the tests need (pkg-config, cmake, valgrind, redis-server, ...).
deps: c-deps redis-deps

# A real redis-server for the shared token store tests (tests/it/tokens.rs).
redis-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends redis-server; }

# The main job: a real upload and ranged download against the bundled
# emulator, from C, Python and Go.
demo: c-demo py-demo go-demo

# Every test. Rust first (it also checks that include/wxmedia.h is current).
test: deps rust-test ureq-latest c-test cpp-test py-test go-test bench-test dist-test

rust-lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# A real S3-compatible server (checks signatures) for the object-store
# tests (tests/it/objstore.rs), installed once into build/tools/bin.
versitygw:
	bash $(ROOT)/mk/versitygw.sh

rust-test: rust-lint versitygw
	$(CARGO) test --workspace --locked

# The command line's tests alone (cli/tests; -o s3:// runs against versitygw).
cli-test: versitygw
	$(CARGO) test -p wxmedia-cli --locked

# The newest ureq 3.x, whatever Cargo.lock pins: src/tcp.rs and src/http.rs
# plug into its `unversioned` transport API (no semver promise), so an
# update of the HTTP/TLS stack is a tested step. A copy of the tree, its own
# target directory, the transport's tests.
UREQ_LATEST := $(ROOT)/build/ureq-latest
ureq-latest:
	rm -rf $(UREQ_LATEST)/src-tree && mkdir -p $(UREQ_LATEST)/src-tree
	cd $(ROOT) && git ls-files -z --cached --others --exclude-standard \
	    | grep -zv '^bench/results/' | xargs -0 cp --parents -t $(UREQ_LATEST)/src-tree
	cd $(UREQ_LATEST)/src-tree && sed -i 's/^ureq = { version = "[^"]*"/ureq = { version = "3"/' Cargo.toml \
	    && grep -q '^ureq = { version = "3"' Cargo.toml \
	    && $(CARGO) update -p ureq \
	    && $(CARGO) tree -p wxmedia -i ureq --depth 0 \
	    && CARGO_TARGET_DIR=$(UREQ_LATEST)/target $(CARGO) test -p wxmedia --lib \
	    && CARGO_TARGET_DIR=$(UREQ_LATEST)/target $(CARGO) test -p wxmedia --test it -- \
	        download:: hostile:: tls:: file_faults:: misuse::

# Regenerate the committed header from the sources.
header:
	WXMEDIA_UPDATE_HEADER=1 $(CARGO) build --lib --locked

include $(wildcard $(ROOT)/mk/*.mk)

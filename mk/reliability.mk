# Reliability (issue 8): chaos, fuzzing, ThreadSanitizer.
# Included by the top Makefile (ROOT, CARGO). The tests themselves
# (modules of tests/it: chaos at 60 runs, hostile, kill, misuse, tls, race) run in
# `make test` through `cargo test --workspace`.
#
#   make chaos              500 seeded chaos runs in release mode; prints the
#                           outcome counts (CHAOS_RUNS, CHAOS_SEED to change)
#   make fuzz               each cargo-fuzz target for FUZZ_TIME seconds (60)
#   make tsan               the race and abi tests (token refresh) under ThreadSanitizer
#   make reliability-test   the reliability tests alone, in debug mode

.PHONY: chaos fuzz fuzz-build fuzz-tools tsan reliability-test

CHAOS_RUNS ?= 500
CHAOS_SEED ?= 0x0C4A05002026
FUZZ_TIME ?= 60
FUZZ_TARGETS := content_range content_disposition classify multipart
# cargo-fuzz and -Zsanitizer need nightly; without a nightly toolchain,
# stable with RUSTC_BOOTSTRAP=1 accepts the same flags.
NIGHTLY := $(shell rustup run nightly rustc -V >/dev/null 2>&1 && echo +nightly)
ZFLAGS_ENV := $(if $(NIGHTLY),,RUSTC_BOOTSTRAP=1)
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')

chaos:
	cd $(ROOT) && WXMEDIA_CHAOS_RUNS=$(CHAOS_RUNS) WXMEDIA_CHAOS_SEED=$(CHAOS_SEED) \
	    $(CARGO) test --release --locked --test it -- chaos:: --nocapture

reliability-test:
	cd $(ROOT) && $(CARGO) test --locked --test it -- chaos:: hostile:: kill:: \
	    misuse:: tls:: race::

fuzz-tools:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz-build: fuzz-tools
	cd $(ROOT) && $(ZFLAGS_ENV) $(CARGO) $(NIGHTLY) fuzz build --fuzz-dir fuzz

# Each target starts from the committed seeds (fuzz/seeds/T) and keeps what
# it learns in fuzz/corpus/T (ignored by git). A crash stops make with the
# input in fuzz/artifacts/T; fix it and keep it as a unit test in src/.
fuzz: fuzz-build
	@set -e; cd $(ROOT); mkdir -p target/fuzz-logs; for t in $(FUZZ_TARGETS); do \
	    mkdir -p fuzz/corpus/$$t; log=target/fuzz-logs/$$t.log; \
	    echo "== fuzz $$t for $(FUZZ_TIME) s (log: $$log)"; \
	    if ! $(ZFLAGS_ENV) $(CARGO) $(NIGHTLY) fuzz run --fuzz-dir fuzz $$t \
	        fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_TIME) >$$log 2>&1; then \
	        tail -n 60 $$log; echo "fuzz $$t FAILED: the input is in fuzz/artifacts/$$t"; exit 1; \
	    fi; \
	    grep -E '^Done [0-9]+ runs' $$log || tail -n 3 $$log; \
	done; echo "fuzz: no crash in $(FUZZ_TARGETS)"

# ThreadSanitizer needs std itself instrumented: -Zbuild-std (rust-src).
# Its own target dir, so the normal build is not rebuilt.
tsan:
	@rustup component list --toolchain nightly --installed 2>/dev/null | grep -q rust-src || \
	    rustup component add rust-src --toolchain nightly
	cd $(ROOT) && RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" \
	    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(ROOT)/mk/tsan.supp" \
	    $(ZFLAGS_ENV) $(CARGO) $(NIGHTLY) test -Zbuild-std --target $(HOST_TRIPLE) \
	    --target-dir $(ROOT)/target/tsan --test it -- race:: abi:: --test-threads=2

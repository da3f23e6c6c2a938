# Benchmarks (issue 7): wxmedia from the C, Python and Go hosts against curl,
# aria2c, requests and nginx, on loopback only. Not part of `make test`.
# Included by the top Makefile, which defines ROOT, LIBDIR, LIB_SO, EMULATOR
# and HEADER.
#
#   make bench              the full run (~30 min on 2 cores with https): downloads of
#                           1 MiB-1 GiB, uploads, 1,000 small downloads, a
#                           throttled server; prints one table and writes
#                           bench/results/DATE-full.{md,csv}
#   make bench BENCH_QUICK=1   (or make bench-quick) 1/20/256 MiB, 3 runs: a few minutes
#   make bench-deps         Debian packages (nginx-light, libnginx-mod-stream for
#                           the https throttled server, aria2, time, curl, openssl),
#                           a venv with requests and boto3 at bench/.venv, and for the
#                           object section versitygw and s5cmd in build/tools/bin
#   BENCH_ARGS="--only download --sizes 20M" passes options to bench/run.py
#   (see python3 bench/run.py --help).
#   make bench-test         how runs become verdicts (bench/tests, no transfer):
#                           part of `make test`
#   python3 bench/run.py --judge RESULTS.csv   re-judges a run by the targets as they are

.PHONY: bench bench-quick bench-deps bench-build bench-test

BENCH_DIR := $(ROOT)/bench
BENCH_BUILD := $(BENCH_DIR)/.build
BENCH_VENV := $(BENCH_DIR)/.venv
BENCH_APT := nginx-light libnginx-mod-stream aria2 time curl openssl
BENCH_QUICK ?=
BENCH_ARGS ?=
BENCH_PYTHON ?= python3

bench-deps:
	@missing=; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || \
	    { nginx -V 2>&1 || /usr/sbin/nginx -V 2>&1; } | grep -q -- '--with-stream ' || \
	    missing="$$missing libnginx-mod-stream"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v aria2c >/dev/null 2>&1 || missing="$$missing aria2"; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
	    echo "bench-deps: installing$$missing"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "bench-deps: nginx (with its stream module), aria2c, /usr/bin/time, curl and openssl present"; fi
	@[ -x $(BENCH_VENV)/bin/python ] || $(BENCH_PYTHON) -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -c 'import requests' 2>/dev/null || \
	    $(BENCH_VENV)/bin/python -m pip install --quiet requests
	@# The object section (issue 23): the S3 server, and the two-hop peers.
	@# A peer that cannot be installed is reported; run.py skips its rows.
	@$(BENCH_VENV)/bin/python -c 'import boto3' 2>/dev/null || \
	    $(BENCH_VENV)/bin/python -m pip install --quiet boto3 || \
	    echo "bench-deps: WARNING: boto3 did not install; its object rows are skipped" >&2
	@bash $(ROOT)/mk/versitygw.sh || \
	    echo "bench-deps: WARNING: versitygw did not install; the object rows are skipped" >&2
	@bash $(ROOT)/mk/s5cmd.sh || \
	    echo "bench-deps: WARNING: s5cmd did not install; its object rows are skipped" >&2

# The drivers: C (against libwxmedia.so, as the C examples link it), Go (the
# cgo bindings, static, through a replace directive), Python (the installed
# package in build/venv: make py-install).
# A copy, not a link: other builds in the same tree must not swap the
# library under a running benchmark.
$(BENCH_BUILD)/lib/.stamp: $(LIB_SO)
	@mkdir -p $(BENCH_BUILD)/lib
	rm -f $(BENCH_BUILD)/lib/libwxmedia.so*
	cp $(LIB_SO) $(BENCH_BUILD)/lib/libwxmedia.so
	@soname=$$(readelf -d $(LIB_SO) | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p'); \
	if [ -n "$$soname" ]; then ln -sf libwxmedia.so $(BENCH_BUILD)/lib/$$soname; fi
	@touch $@

# -z now, as distributions build their programs (Debian's curl among them):
# the driver's calls into the library are bound at start-up, not inside the
# timed transfer. (The library itself is always linked so, by rustc.)
$(BENCH_BUILD)/bench_wx_c: $(BENCH_DIR)/drivers/bench_wx.c $(HEADER) $(BENCH_BUILD)/lib/.stamp
	$(CC) -std=c99 -Wall -Wextra -Werror -O2 -g -I$(ROOT)/include -o $@ $< \
	    -L$(BENCH_BUILD)/lib -lwxmedia -Wl,-rpath,$(BENCH_BUILD)/lib -Wl,-z,now -pthread

# A host whose build fails (e.g. another build racing in bindings/python/build)
# is reported and its rows are skipped by run.py: the drivers are removed
# first, so that a stale one is never measured.
bench-build: lib
	@rm -f $(BENCH_BUILD)/bench_wx_c $(BENCH_BUILD)/bench_wx_go
	@$(MAKE) --no-print-directory -C $(ROOT) $(BENCH_BUILD)/bench_wx_c || \
	    echo "bench-build: WARNING: the C driver did not build; its rows are skipped" >&2
	@$(MAKE) --no-print-directory -C $(ROOT) py-install || \
	    echo "bench-build: WARNING: make py-install failed; the Python rows use what build/venv holds (see the results' versions line)" >&2
	@{ $(MAKE) --no-print-directory -C $(ROOT) go-lib && \
	   cd $(BENCH_DIR)/go && $(GO) build -o $(BENCH_BUILD)/bench_wx_go . ; } || \
	    echo "bench-build: WARNING: the Go driver did not build; its rows are skipped" >&2

bench: bench-deps bench-build
	$(BENCH_PYTHON) $(BENCH_DIR)/run.py $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

bench-quick:
	@$(MAKE) --no-print-directory -C $(ROOT) bench BENCH_QUICK=1

# The statistics and verdicts of bench/run.py, on made-up and committed runs:
# no server, no transfer, well under a second. py-install brings pytest.
bench-test: py-install
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) $(BENCH_DIR)/tests

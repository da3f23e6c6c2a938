# The Python host: bindings/python (ctypes package `wxmedia`).
# Included by the top Makefile, which defines ROOT, LIB_SO and EMULATOR.
#
#   make py-install   venv at build/venv (from $(PYTHON)), pip install ./bindings/python
#                     (which runs cargo and bundles libwxmedia.so in the package) + pytest
#                     + boto3 (+ uvloop when it installs, for the asyncio tests)
#   make py-test      pytest against the real emulator and versitygw, with WXMEDIA_LIBRARY
#                     unset so the bundled library is what is tested
#   make py-demo      start an emulator, run bindings/python/examples/demo.py, stop it
#   make py-mypy      mypy --strict on the package (installs mypy into the venv)
#   make py-clean     remove the venv and the package's build leftovers

.PHONY: py-install py-test py-demo py-mypy py-clean

PYTHON ?= python3
PY_VENV := $(ROOT)/build/venv
PY := $(PY_VENV)/bin/python
PY_PKG := $(ROOT)/bindings/python
PYTEST_ARGS ?= -q

$(PY):
	$(PYTHON) -m venv $(PY_VENV)

py-install: lib $(PY)
	$(PY) -c 'import pytest' 2>/dev/null || $(PY) -m pip install --quiet 'pytest>=7'
	@# boto3, for the tests only: they read objects written by download_to_object back with
	@# signed GETs and list uploads left behind through a client that is not ours.
	$(PY) -c 'import boto3' 2>/dev/null || $(PY) -m pip install --quiet 'boto3>=1.28'
	@# uvloop: the asyncio tests also run on it (tests/test_aio.py); they skip where it does not install.
	$(PY) -c 'import uvloop' 2>/dev/null || $(PY) -m pip install --quiet 'uvloop>=0.17' \
		|| echo "py-install: uvloop did not install; its asyncio tests will skip" >&2
	cd $(ROOT) && $(PY) -m pip install --quiet --force-reinstall --no-deps ./bindings/python
	cd / && env -u WXMEDIA_LIBRARY $(PY) -c 'import wxmedia; print("wxmedia", wxmedia.__version__, "library", wxmedia.library_version(), "at", wxmedia.LIBRARY_PATH)'

# Run from build/ so that the source tree is not on sys.path: the installed
# package (with its bundled library) is the one under test.
# versitygw: the real S3-compatible server of tests/test_objstore.py (cached in build/tools/bin).
py-test: py-install versitygw
	cd $(ROOT)/build && env -u WXMEDIA_LIBRARY WXMEDIA_EMULATOR=$(EMULATOR) \
		$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) $(PY_PKG)/tests

py-demo: py-install
	@set -euo pipefail; \
	out=$$(mktemp); err=$$(mktemp); \
	$(EMULATOR) --listen 127.0.0.1:0 --access-token wxmedia-demo-token >"$$out" 2>"$$err" & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; rm -f "$$out" "$$err"' EXIT; \
	addr=; for _ in $$(seq 1 300); do \
		addr=$$(grep -m1 -E '^127\.0\.0\.1:[0-9]+$$' "$$out" || true); \
		[ -n "$$addr" ] && break; kill -0 $$pid 2>/dev/null || break; sleep 0.05; done; \
	if [ -z "$$addr" ]; then echo "py-demo: the emulator did not start:" >&2; cat "$$err" >&2; exit 1; fi; \
	cd / && env -u WXMEDIA_LIBRARY $(PY) $(PY_PKG)/examples/demo.py \
		--base-url "http://$$addr" --token wxmedia-demo-token

py-mypy: $(PY)
	$(PY) -c 'import mypy' 2>/dev/null || $(PY) -m pip install --quiet mypy
	@# wxmedia.testing is a pytest plugin: mypy reads pytest's types.
	$(PY) -c 'import pytest' 2>/dev/null || $(PY) -m pip install --quiet 'pytest>=7'
	cd $(PY_PKG) && $(PY) -m mypy --strict wxmedia

py-clean:
	rm -rf $(PY_VENV) $(PY_PKG)/build $(PY_PKG)/wxmedia/_lib $(PY_PKG)/*.egg-info

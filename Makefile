# tshark-dicom: `make demo` and `make test` work from a clean clone on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEMO_OUT ?= demo-out
DEMO_CAPTURES ?= fixtures/captures

.PHONY: setup sysdeps testdeps venv bytecode demo test lint bench fixtures clean

setup: sysdeps venv bytecode

# tshark (the packet engine), dcmtk (real DICOM peers for tests), ethtool and iproute2
# (network namespaces with MTU-sized segments for the lossy fixture and benchmarks).
sysdeps:
	@if command -v tshark >/dev/null && [ -x /usr/bin/storescu ] && command -v ethtool >/dev/null \
	   && command -v ip >/dev/null && command -v editcap >/dev/null; then :; else \
	  echo "installing tshark, dcmtk, ethtool, iproute2 with apt-get"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	    tshark dcmtk ethtool iproute2; \
	fi
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q python3-venv; }
	@# a C compiler and Python's headers: the per-packet modules are compiled (setup.py,
	@# README "Compiled modules"); without them the package is built pure Python, slower
	@if command -v cc >/dev/null && $(PYTHON) -c "import os, sys, sysconfig; \
	    sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; \
	  then :; else \
	  echo "installing gcc and python3-dev with apt-get (compiled modules)"; \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install \
	    -y -q --no-install-recommends gcc libc6-dev python3-dev; } || \
	    echo "no C compiler: the package is built pure Python"; \
	fi

venv: $(VENV)/.installed

# The modules setup.py compiles with mypyc (its COMPILED): an edit to one rebuilds them, so
# that the tests run what the sources say (an old build is never used: README).
COMPILED := packets streams tcpevidence pdu messages demux

$(VENV)/.installed: pyproject.toml setup.py $(COMPILED:%=tshark_dicom/%.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The package's bytecode, written here: the install is editable, so pip writes none, and
# where PYTHONDONTWRITEBYTECODE is set (containers, CI images) Python never writes it
# either: every run then compiled our modules again (a capture of 17 packets: 0.64 s and
# 0.87 s of CPU, against 0.58 s and 0.76 s). Rewrites only what changed since.
bytecode: venv
	$(BIN)/python -m compileall -q tshark_dicom

demo: setup
	$(BIN)/tshark-dicom analyze $(DEMO_CAPTURES) -o $(DEMO_OUT) --format both

lint: venv
	$(BIN)/ruff check tshark_dicom tests
	$(BIN)/mypy

# Debian's Chromium renders report.html in the browser test (tests/test_report_browser.py).
testdeps:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium with apt-get (the report's browser test)"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	    chromium; }

test: setup testdeps lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/timing_cost.py
	$(BIN)/python benchmarks/make_captures.py store_4gb
	$(BIN)/python benchmarks/large_capture.py
	$(BIN)/python benchmarks/tls_cost.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/limits.py
	$(BIN)/python benchmarks/many_messages.py
	$(BIN)/python benchmarks/watch_live.py --associations 1000
	$(BIN)/python benchmarks/watch_moves.py

fixtures: setup
	$(BIN)/python fixtures/generate.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache *.egg-info build \
	  tshark_dicom/__pycache__ \
	  tshark_dicom/*.so tshark_dicom/_compiled.py

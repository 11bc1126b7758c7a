# Everything a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow test-all bench lock clean

# rxradar's C modules need a C compiler and Python's headers: Debian packages, installed here
# (apt-get) when missing.
APT_INSTALL = $$(test "$$(id -u)" = 0 || echo sudo) sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$$@"' apt-get

$(STAMP): pyproject.toml setup.py constraints.txt $(wildcard src/rxradar/*.c src/rxradar/*/*.c)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "rxradar needs Python 3.11 or newer; try: make PYTHON=python3.11"; exit 1; }
	@command -v cc >/dev/null 2>&1 || $(APT_INSTALL) gcc libc6-dev
	@$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || \
		$(APT_INSTALL) python3-dev
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rxradar demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Long-running suites (large files, kill -9 at scale): .ci/run runs them after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# Re-pin constraints.txt from what is installed (run after changing dependencies).
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v "^rxradar" | sort > constraints.txt

clean:
	rm -rf $(VENV) rxradar-workspace .pytest_cache

# Everything a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all bench lock clean

$(STAMP): pyproject.toml setup.py constraints.txt $(wildcard src/rxradar/*.c src/rxradar/*/*.c)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rxradar demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# Re-pin constraints.txt from what is installed (run after changing dependencies).
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v "^rxradar" | sort > constraints.txt

clean:
	rm -rf $(VENV) rxradar-workspace .pytest_cache

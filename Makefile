# The README's two commands: `make demo` and `make test`. Everything they need is
# installed from this repository's own files: pyproject.toml for Python packages and
# the apt line below for the browser the end-to-end test drives.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: demo test lint typecheck pytest test-live bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

# Debian's Chromium for the end-to-end test (never a browser download).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; \
	  else \
	    echo "Chromium is missing: install Debian's 'chromium' package (the e2e test will be skipped)"; \
	  fi; \
	fi

demo: $(VENV)/.installed
	$(BIN)/nbbanana demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check nbbanana tests benchmarks
	$(BIN)/ruff format --check nbbanana tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev system-deps
	$(BIN)/pytest

# mypy (about half a minute of one core, more with a cold cache) runs beside pytest, which
# leaves a core free much of the time; both must pass. Output stays whole per line.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=line typecheck pytest

# Needs GEMINI_API_KEY: the contract tests, then the notebooks against Gemini (every
# cell must run; outputs differ from the emulator's, so they are not compared).
test-live: $(VENV)/.installed-dev
	$(BIN)/pytest -m live tests
	$(BIN)/pytest --nbval-lax notebooks

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/fit_bench.py
	$(PY) benchmarks/client_bench.py
	$(PY) benchmarks/batch_bench.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis tests/artifacts

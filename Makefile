# The two commands a new user runs: `make demo` and `make test`.
# Both install the locked environment first (bootstrapping uv from PyPI if missing).

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export BATCHPRED_HOME ?= $(CURDIR)/.batchpred

.PHONY: install demo test lint bench clean

$(UV):
	$(PYTHON) -m pip install --quiet --user uv

install: $(UV)
	$(UV) sync --locked

demo: install
	$(UV) run --locked batchpred demo

test: install
	$(UV) run --locked ruff check .
	$(UV) run --locked pytest

lint: install
	$(UV) run --locked ruff check .

clean:
	rm -rf .batchpred .pytest_cache

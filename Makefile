# The two commands a new user runs: `make demo` and `make test`.
# Both install the locked environment first (bootstrapping uv from PyPI if missing).

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export BATCHPRED_HOME ?= $(CURDIR)/.batchpred

.PHONY: install services demo ui test test-fast typecheck lint bench clean

$(UV):
	$(PYTHON) -m pip install --quiet --user uv

# --compile-bytecode: every task is a fresh process, and without .pyc files each one
# compiles mlflow, xgboost, GX... from source (seconds), wherever the venv is read-only
# or PYTHONDONTWRITEBYTECODE is set. Already-compiled files are skipped.
install: $(UV)
	$(UV) sync --locked --compile-bytecode

demo: install
	$(UV) run --locked batchpred demo

# The integration tests start their own PostgreSQL cluster and Redis server from these
# binaries (as the `postgres` user when run as root), and open the HTML report in headless
# Chromium; install them from the system packages if they are missing.
services:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		echo "installing PostgreSQL server binaries"; apt-get update -qq && apt-get install -y -qq postgresql; fi
	@if ! command -v redis-server >/dev/null; then \
		echo "installing redis-server"; apt-get update -qq && apt-get install -y -qq redis-server; fi
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
		echo "installing chromium (the report tests open the HTML in it)"; apt-get update -qq && apt-get install -y -qq chromium; fi

# The Airflow UI of the embedded default; PORT=8081 make ui to choose the port.
ui: install
	$(UV) run --locked batchpred ui $(if $(PORT),--port $(PORT))

# Every tier (tests/unit, tests/integration, tests/system) after the linter and the type
# checker. Two workers (pytest-xdist), a test module each at a time, the longest modules
# first (tests/conftest.py): each worker starts its own PostgreSQL cluster and Redis.
test: install services
	$(UV) run --locked ruff check .
	$(UV) run --locked mypy
	$(UV) run --locked pytest -n 2 --dist loadfile --no-loadscope-reorder

# The unit tier alone: no PostgreSQL, Redis, Chromium or Airflow run (one small model is
# trained, on a DuckDB file in a temporary folder); about a minute. Exit code 5 (no test collected) is not a failure.
test-fast: install
	$(UV) run --locked pytest tests/unit -q || [ $$? -eq 5 ]

# mypy on pipelines/ (pyproject.toml [tool.mypy]: strict on the domain, config and adapter layers).
typecheck: install
	$(UV) run --locked mypy

# Benchmarks print figures; they are not tests (see bench/__main__.py).
bench: install services
	$(UV) run --locked python -m bench --rows 1000000 5000000
	$(UV) run --locked python -m bench.commands

lint: install
	$(UV) run --locked ruff check .

clean:
	rm -rf .batchpred .pytest_cache

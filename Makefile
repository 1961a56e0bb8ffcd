# The two commands of the README: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
UV := $(shell scripts/ensure-uv.sh)
export AIRFLOW_HOME := $(CURDIR)
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export UV_PYTHON_PREFERENCE := system

.PHONY: setup demo test lint bench bench-full clean airflow airflow-batch airflow-stop

setup:
	@$(UV) sync --frozen --quiet

demo: setup
	@$(UV) run sscard db upgrade
	@$(UV) run airflow db migrate >/dev/null
	@$(UV) run sscard demo

airflow: setup
	@scripts/airflow-local up

airflow-batch:
	@scripts/airflow-local batch

airflow-stop:
	@scripts/airflow-local down

test: setup
	@$(UV) run pytest

lint: setup
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy

bench: setup
	@$(UV) run python -m bench.intake --lines 200000 1000000 --db postgres --floor
	@$(UV) run python -m bench.issuance --applications 200000
	@$(UV) run python -m bench.answers --records 200000 1000000 --db postgres
	@$(UV) run python -m bench.servicing --lines 100000 --db postgres
	@$(UV) run python -m bench.payments --lines 1000000

bench-full: setup
	@$(UV) run python -m bench.intake --lines 200000 1000000 --db both --floor
	@$(UV) run python -m bench.issuance --applications 200000 1000000
	@$(UV) run python -m bench.answers --records 200000 1000000 --db both
	@$(UV) run python -m bench.servicing --lines 100000 --db postgres
	@$(UV) run python -m bench.payments --lines 1000000 3000000
	@$(UV) run python -m bench.payments --lines 1000000 --partner-every 10

clean:
	rm -rf var airflow.db logs .pytest_cache

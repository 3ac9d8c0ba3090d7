# tapefit: `make run` fits the sample data, `make test` runs the test suite.
# Both create .venv on first use; nothing else needs to be installed by hand.
# `make bench` runs the side-by-side benchmark (BENCH_ARGS="--workloads S,M" ...); `make bench-quick` a small one.
# `make stress` repeats real runs and accounts for every dataset (STRESS_ARGS="--rounds 10").

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
RUN_DATE ?= $(shell date -u +%Y-%m-%d)
OUT    ?= out
BENCH_ARGS ?=
BENCH_VENV := .venv-bench
# Airflow lives in its own environment (its pins clash with Beam's); the DAG test uses it.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_PINS := apache-airflow==3.3.2 apache-airflow-providers-apache-beam==6.3.1 apache-airflow-providers-google==22.8.0

.PHONY: run test lint sample-data bench bench-quick clean airflow stress

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: setup.py | $(VENV)/bin/python
	$(PIP) -e '.[report,fast]'
	touch $@

$(VENV)/.test-deps: setup.py | $(VENV)/bin/python
	$(PIP) -e '.[test,report,fast]'
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(PY) -m jobs.fit_lines --input sample_data/files --output $(OUT)/files --run_date $(RUN_DATE)
	$(PY) -m jobs.show_results --table $(OUT)/files --run_date $(RUN_DATE) --truth sample_data/truth.csv --layout files
	$(PY) -m jobs.fit_lines --input sample_data/parts --output $(OUT)/parts --group_by directory --run_date $(RUN_DATE)
	$(PY) -m jobs.show_results --table $(OUT)/parts --run_date $(RUN_DATE) --truth sample_data/truth.csv --layout parts
	$(PY) -m jobs.fit_lines --input sample_data/long --output $(OUT)/long --group_by column:dataset --run_date $(RUN_DATE)
	$(PY) -m jobs.show_results --table $(OUT)/long --run_date $(RUN_DATE) --truth sample_data/truth.csv --layout long
	$(PY) -m jobs.fit_lines --input sample_data/weighted --output $(OUT)/weighted --weight_column weight --run_date $(RUN_DATE)
	$(PY) -m jobs.show_results --table $(OUT)/weighted --run_date $(RUN_DATE) --truth sample_data/truth.csv --layout weighted
	$(PY) -m jobs.fit_lines --input sample_data/outliers --output $(OUT)/outliers --loss huber --run_date $(RUN_DATE)
	$(PY) -m jobs.show_results --table $(OUT)/outliers --run_date $(RUN_DATE) --truth sample_data/truth.csv --layout outliers
	$(PY) -m jobs.report --table $(OUT)/files --run_date $(RUN_DATE)
	$(PY) -m jobs.report --table $(OUT)/outliers --run_date $(RUN_DATE)
	@echo "reports: open $(OUT)/files/run_date=$(RUN_DATE)/_report.html and $(OUT)/outliers/run_date=$(RUN_DATE)/_report.html in a browser"

# Test files run in parallel, one worker per core (at most 4), each file on one worker.
test: $(VENV)/.test-deps
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile tests

# Repeated real runs with exact accounting, compared bit for bit (STRESS_ARGS="--rounds 10").
STRESS_ARGS ?=
stress: $(VENV)/.run-deps
	$(PY) -m tests.stress $(STRESS_ARGS)

lint: $(VENV)/.test-deps
	$(PIP) ruff
	$(VENV)/bin/ruff check pipeline jobs benchmarks tests setup.py && $(VENV)/bin/ruff format --check pipeline jobs benchmarks tests setup.py

# The benchmark runs in its own environment: a plain install (no cloud libraries, whose
# imports would add to every worker's start-up) plus DuckDB.
$(BENCH_VENV)/.deps: setup.py
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[bench,fast]'
	touch $@

bench: $(BENCH_VENV)/.deps
	$(BENCH_VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)

bench-quick: $(BENCH_VENV)/.deps
	$(BENCH_VENV)/bin/python -m benchmarks.run --quick $(BENCH_ARGS)

$(AIRFLOW_VENV)/.deps:
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(AIRFLOW_PINS)
	touch $@

airflow: $(AIRFLOW_VENV)/.deps

sample-data: $(VENV)/.run-deps
	$(PY) -m jobs.make_sample_data --out sample_data

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(BENCH_VENV) $(OUT) *.egg-info .pytest_cache

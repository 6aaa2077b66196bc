# The two commands a newcomer needs: `make run` and `make test`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GATEWAY_ARGS ?=

.PHONY: run test test-compose bench model nginx test-tools venv clean

run: model nginx  ## Run the whole stack: Nginx on :8080, the logger and 3 predictors.
	$(PY) -m gateway up $(GATEWAY_ARGS)

test: model nginx test-tools  ## Run the test suite: services, gateway, the whole stack, make run.
	$(PY) -m pytest -m "not compose"

test-compose: venv  ## Run the container test against a real Docker engine (started if needed).
	$(PY) -m pytest -m compose tests/compose

bench: model nginx  ## Benchmark every scenario with wrk; writes docs/performance.{md,json,png}, docs/observability.png.
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } || \
		{ echo "wrk is missing: sudo apt-get install -y wrk" >&2; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(PY) -m bench.run
	$(PY) -m bench.monitoring_plot

nginx:  ## Install Nginx and python3-venv with apt if missing (root), or say how.
	@gateway/install-system-packages.sh

test-tools:  ## Also what the tests need (envsubst, Chromium, ChromeDriver, PostgreSQL), the same way.
	@gateway/install-system-packages.sh --for-tests

model: venv  ## Train the model artifact unless it is current.
	$(PY) -m predictor_service.train --if-stale

venv: $(INSTALLED)

$(INSTALLED): requirements-dev.txt */requirements.txt
	@gateway/install-system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

clean:  ## Remove the venv, the model artifact, caches and the local database.
	rm -rf $(VENV) predictor_service/artifacts instance .run .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

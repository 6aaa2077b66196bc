# The two commands a newcomer needs: `make run` and `make test`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test model venv clean

run: model  ## Run the logger (:8000) and the predictor (:8001); Ctrl-C stops both.
	@LOGGER_PREDICTOR_URL=$${LOGGER_PREDICTOR_URL:-http://127.0.0.1:8001/predict} \
		$(PY) -m gunicorn -c logger_service/gunicorn.conf.py & logger=$$!; \
	$(PY) -m gunicorn -c predictor_service/gunicorn.conf.py & predictor=$$!; \
	trap 'kill $$logger $$predictor; wait' INT TERM; \
	wait

test: model  ## Run the whole test suite.
	$(PY) -m pytest

model: venv  ## Train the model artifact unless it is current.
	$(PY) -m predictor_service.train --if-stale

venv: $(INSTALLED)

$(INSTALLED): requirements-dev.txt logger_service/requirements.txt predictor_service/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

clean:  ## Remove the venv, the model artifact, caches and the local database.
	rm -rf $(VENV) predictor_service/artifacts instance .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

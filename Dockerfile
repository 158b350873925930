# syntax=docker/dockerfile:1
# Autoglue image: one image for web, worker and beat. The command picks the role, and
# AUTOGLUE_ROLE (web, worker, beat) tells the health check which one to probe.
#
# Base image, pinned by digest for reproducible builds. NOT PINNED YET: this file was written
# without registry access, so no digest is recorded. Before building a release, look it up and
# put it here (or pass it with --build-arg):
#   docker buildx imagetools inspect python:3.11-slim-bookworm    # "Digest: sha256:..."
#   PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<that digest>
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the runtime requirements in a virtualenv ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Runtime requirements only: no test tools and no embedded-PostgreSQL wheel (requirements-dev.txt
# and requirements-embedded.txt); production always sets DATABASE_URL.
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# WEB_CONCURRENCY is gunicorn's own default for --workers (the Helm chart and compose set it).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH AUTOGLUE_ROLE=web \
    WEB_CONCURRENCY=4

# pg_dump for database backups; nothing else from the distribution is needed at runtime.
# apt-get clean as well: a base without the official images' apt settings would otherwise keep
# the downloaded packages in this layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 autoglue

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . .
ARG AUTOGLUE_COMMIT=""
ARG AUTOGLUE_BUILT=""
ENV AUTOGLUE_COMMIT=$AUTOGLUE_COMMIT AUTOGLUE_BUILT=$AUTOGLUE_BUILT AUTOGLUE_BUILT_BY=docker \
    AUTOGLUE_MODIFIED=false
# collectstatic needs settings to import; these throwaway values are not used at runtime (the
# URLs are never connected to; REDIS_URL only keeps the folder broker's directories out).
RUN DJANGO_SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://build:6379/0 \
    AUTOGLUE_MASTER_KEYS=build-only:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    python manage.py collectstatic --noinput

USER autoglue
EXPOSE 8080
# web: GET /api/v1/healthz; worker and beat: the age of their liveness file (autoglue/liveness.py).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
  CMD ["python", "/app/docker/healthcheck.py"]
# The web role. Runs as any non-root user with a read-only root filesystem and a writable /tmp
# (gunicorn's worker heartbeat files, beat's pid file); the Helm chart mounts one there.
CMD ["gunicorn", "-c", "autoglue/gunicorn_conf.py", "autoglue.asgi", "--worker-class", "autoglue.workers.UvicornWorker", "--access-logfile", "/dev/null", "--graceful-timeout", "30"]

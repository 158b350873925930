# Autoglue image: one image for web, worker and beat (the command picks the role).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# pg_dump for backups, ssh client pieces come with paramiko; nothing else is needed at runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 autoglue

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
ARG AUTOGLUE_COMMIT=""
ARG AUTOGLUE_BUILT=""
ENV AUTOGLUE_COMMIT=$AUTOGLUE_COMMIT AUTOGLUE_BUILT=$AUTOGLUE_BUILT AUTOGLUE_BUILT_BY=docker \
    AUTOGLUE_MODIFIED=false
# collectstatic needs settings to import; these throwaway values are not used at runtime.
RUN DJANGO_SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    AUTOGLUE_MASTER_KEYS=build-only:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    python manage.py collectstatic --noinput

USER autoglue
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/v1/healthz', timeout=4).status != 200)"
CMD ["gunicorn", "autoglue.wsgi", "--bind", "0.0.0.0:8080", "--workers", "4", "--access-logfile", "/dev/null", "--graceful-timeout", "30"]

#!/bin/sh
# The one-shot step before web and workers start, on every install and upgrade (the Helm chart's
# migration Job, the compose stack's setup service). Each command is idempotent.
#   AUTOGLUE_ADMIN_EMAIL          make this platform admin while no admin exists (optional)
#   AUTOGLUE_ADMIN_PASSWORD_FILE  a file whose first line is that admin's break-glass password
set -eu
cd /app
# One setup at a time per database: rerun under a PostgreSQL advisory lock (manage.py run_locked),
# so a second Job waits for the first instead of migrating alongside it.
if [ "${1:-}" != "--locked" ]; then
  exec python manage.py run_locked setup -- sh "$0" --locked
fi
python manage.py migrate --noinput
python manage.py keys ensure
if [ -n "${AUTOGLUE_ADMIN_EMAIL:-}" ]; then
  if [ -n "${AUTOGLUE_ADMIN_PASSWORD_FILE:-}" ]; then
    python manage.py create_admin --email "$AUTOGLUE_ADMIN_EMAIL" --if-no-admin \
      --password-stdin < "$AUTOGLUE_ADMIN_PASSWORD_FILE"
  else
    python manage.py create_admin --email "$AUTOGLUE_ADMIN_EMAIL" --if-no-admin
  fi
fi

#!/usr/bin/env bash
# Make sure PostgreSQL (trust auth on loopback) and Redis answer on 127.0.0.1. Installs and starts
# only what is missing, so it is a no-op on a machine whose services already run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

pg_up() { python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(("127.0.0.1",5432))!=0)'; }
redis_up() {
  python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), 1)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

missing=()
pg_up || command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
redis_up || command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)
trust_hba() {
  local hba=/etc/postgresql/$ver/main/pg_hba.conf
  grep -q '^host  all all 127.0.0.1/32 trust' "$hba" 2>/dev/null && return 0
  printf 'local all all trust\nhost  all all 127.0.0.1/32 trust\nhost  all all ::1/128 trust\n' > "$hba"
}
if ! pg_up; then
  [ -d "/etc/postgresql/$ver/main" ] || pg_createcluster "$ver" main
  trust_hba
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 50); do pg_up && break; sleep 0.2; done
elif ! psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1 && [ -n "$ver" ]; then
  trust_hba
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  sleep 0.5
fi
psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null

if ! redis_up; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi
pg_up && redis_up && echo "services: postgresql and redis answer on 127.0.0.1"

#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on loopback for the server's PostgreSQL test and prints the
# SQLAlchemy URL for MALSORI_TEST_POSTGRES_URL. Installs Debian's postgresql when missing.
# Usage: url=$(scripts/ci-postgres.sh start); ...; scripts/ci-postgres.sh stop
set -euo pipefail
PORT=${MALSORI_CI_PG_PORT:-54329}
DATA=${MALSORI_CI_PG_DATA:-/tmp/malsori-ci-pg}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-start}" in
start)
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  fi
  BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  rm -rf "$DATA" && mkdir -p "$DATA"
  [ "$(id -u)" -eq 0 ] && chown postgres "$DATA"
  as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/log" -w \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DATA" start >/dev/null
  as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres malsori_test
  echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/malsori_test"
  ;;
stop)
  BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
  as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
  ;;
esac

#!/usr/bin/env bash
# A throwaway local PostgreSQL for the tests whose code paths differ from SQLite.
# Usage: scripts/pg.sh start|stop|status|url|dir   (port PG_PORT, default 55432)
#
# Where the data lives (PG_DIR overrides):
#   not root: .run/pg in the clone, and the server runs as the invoking user;
#   root:     PostgreSQL refuses to run as root, so the server runs as `postgres` and its
#             data lives in /var/tmp/fengqiao-pg-<clone hash>-<port>, owned by postgres:
#             the clone may sit in a directory that user cannot enter (e.g. /root, mode 0700).
# Installs Debian's postgresql package when no server is present (CI runs as root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_PORT="${PG_PORT:-55432}"
if [[ $(id -u) == 0 ]]; then
  BASE="${PG_DIR:-/var/tmp/fengqiao-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)-$PG_PORT}"
else
  BASE="${PG_DIR:-$ROOT/.run/pg}"
fi
DATA="$BASE/data"
SOCK="$BASE"
LOG="$BASE/pg.log"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

# Run a server command as the user that owns the data; from /, which every user can enter.
as_pg() {
  if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

ensure_installed() {
  if [[ -z "$(bindir)" || ! -x "$(bindir)/pg_ctl" ]]; then
    echo "pg.sh: installing PostgreSQL from Debian's packages" >&2
    if [[ $(id -u) == 0 ]]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      echo "pg.sh: no PostgreSQL server and not root: install postgresql" >&2; exit 1
    fi
  fi
}

running() { [[ -f "$DATA/postmaster.pid" ]] && as_pg "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

case "${1:-}" in
  start)
    ensure_installed
    B="$(bindir)"
    if running; then echo "pg.sh: already running on $PG_PORT" >&2; exit 0; fi
    if "$B/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U fengqiao 2>/dev/null; then
      echo "pg.sh: a server already answers on 127.0.0.1:$PG_PORT; using it" >&2; exit 0
    fi
    mkdir -p "$BASE"
    if [[ $(id -u) == 0 ]]; then chown postgres: "$BASE"; chmod 700 "$BASE"; fi
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
      as_pg "$B/initdb" -D "$DATA" -U fengqiao --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    as_pg "$B/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
      -o "-p $PG_PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    echo "pg.sh: ready on 127.0.0.1:$PG_PORT (data in $DATA)" >&2
    ;;
  stop)
    if running; then as_pg "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
    ;;
  status)
    running && echo running || { echo stopped; exit 1; }
    ;;
  url)
    echo "postgresql+asyncpg://fengqiao@127.0.0.1:$PG_PORT/postgres"
    ;;
  dir)
    echo "$BASE"
    ;;
  *) echo "usage: $0 start|stop|status|url|dir" >&2; exit 2 ;;
esac

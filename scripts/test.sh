#!/usr/bin/env bash
# Run the whole suite against a real broker that this script starts (and stops, if it started it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=0
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  bash scripts/kafka.sh start
  started=1
fi
pg_started=0
if ! bash scripts/pg.sh status >/dev/null 2>&1; then
  bash scripts/pg.sh start
  pg_started=1
fi
cleanup() {
  if [[ $started == 1 ]]; then bash scripts/kafka.sh stop || true; fi
  if [[ $pg_started == 1 ]]; then bash scripts/pg.sh stop || true; fi
}
trap cleanup EXIT
export FENGQIAO_KEEP_BROKER=1 FENGQIAO_KEEP_PG=1
.venv/bin/python -m pytest -q -p no:cacheprovider "${@:-tests}"

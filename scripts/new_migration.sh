#!/usr/bin/env bash
# Autogenerate an Alembic revision for one service: scripts/new_migration.sh SERVICE "message"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
svc=$1; msg=${2:-change}
tmp=$(mktemp -d)
cd "$root"
cat > "$tmp/alembic.ini" <<INI
[alembic]
script_location = $root/services/$svc/migrations
sqlalchemy.url = sqlite:///$tmp/db.sqlite
INI
.venv/bin/alembic -c "$tmp/alembic.ini" upgrade head
.venv/bin/alembic -c "$tmp/alembic.ini" revision --autogenerate -m "$msg"
rm -rf "$tmp"

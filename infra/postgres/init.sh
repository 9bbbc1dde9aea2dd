#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
# One login role and one database per service; each role owns its own database and nothing
# else, and no one but the owner (and the superuser) may connect to it.
# Needs INTAKE_DB_PASSWORD, TRIAGE_DB_PASSWORD, MEDIATION_DB_PASSWORD, FOLLOWUP_DB_PASSWORD.
set -euo pipefail
for service in intake triage mediation followup; do
  var="${service^^}_DB_PASSWORD"
  password="${!var:?set $var}"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v service="$service" -v password="$password" <<'SQL'
CREATE ROLE :"service" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE :"service" OWNER :"service";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"service" TO :"service";
SQL
  # the schema the migrations write into belongs to the service's role
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "$service" \
    -v service="$service" <<'SQL'
ALTER SCHEMA public OWNER TO :"service";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
done

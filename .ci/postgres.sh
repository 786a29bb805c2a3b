#!/usr/bin/env bash
# Install (Debian's postgresql package) and start a PostgreSQL server for the governance store tests,
# create a database and a user with a password, and print ONE line on stdout:
#   export STEWARD_TEST_PG_URL=postgresql+psycopg://USER:PASSWORD@127.0.0.1:PORT/DB
# Use: eval "$(bash .ci/postgres.sh)". Everything else goes to stderr; exits non-zero when no
# server could be started (the PostgreSQL tests then skip and say why).
set -euo pipefail

DB=${STEWARD_PG_DB:-steward_test}
ROLE=${STEWARD_PG_USER:-steward}
log() { echo "postgres.sh: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }

{
  if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
  VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION main"; then
    log "creating cluster $VERSION/main"
    as_root pg_createcluster "$VERSION" main
  fi
  if ! pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main"
    as_root pg_ctlcluster "$VERSION" main start
  fi
  PORT=$(pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $3}')
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p "$PORT" >&2
  PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
  as_postgres psql -q -p "$PORT" -v ON_ERROR_STOP=1 -d postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE "$ROLE" LOGIN;
  END IF;
END
\$\$;
ALTER ROLE "$ROLE" WITH LOGIN PASSWORD '$PASSWORD';
SQL
  if ! as_postgres psql -p "$PORT" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    as_postgres createdb -p "$PORT" -O "$ROLE" "$DB"
  fi
  log "server on 127.0.0.1:$PORT, database $DB, user $ROLE"
} >&2

echo "export STEWARD_TEST_PG_URL=postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"

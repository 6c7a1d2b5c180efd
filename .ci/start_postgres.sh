#!/usr/bin/env bash
# Start a PostgreSQL server on 127.0.0.1:5432 with user/password/database "ablate", for the
# sweep tests that share a study between two drivers, and a second role "ablate_scram" (its
# own database of the same name) that logs in only with its password (scram-sha-256), for the
# test that searches everything a study writes for that password (tests/test_secrets.py).
# Idempotent: if both roles can already log in there it does nothing. Installs the server with
# apt-get when it is missing. Prints the URL to export, without a password (ablate refuses
# URLs with one; our own cluster trusts "ablate" on loopback, any other server gets its password
# from PGPASSWORD/PGPASSFILE: scripts/test.sh writes a pgpass file); everything else goes to
# stderr:
#   export ABLATE_TEST_POSTGRES_URL=$(bash .ci/start_postgres.sh)
set -euo pipefail

PORT="${ABLATE_PG_PORT:-5432}"
DATA="${ABLATE_PG_DATA:-/tmp/ablate-postgres}"   # our own cluster, when none listens on PORT
URL="postgresql://ablate@127.0.0.1:${PORT}/ablate"
# the password-only role; the test reads the same variable (this default when unset)
SCRAM_PASSWORD="${ABLATE_PG_SCRAM_PASSWORD:-scram/Pw-7Qx4Zk9}"

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

answers() {  # true when both roles can log in (ablate with its password, ablate_scram with its own)
  PGPASSWORD=ablate PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$PORT" -U ablate -d ablate -tAc 'SELECT 1' \
    >/dev/null 2>&1 &&
  PGPASSWORD="$SCRAM_PASSWORD" PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$PORT" -U ablate_scram \
    -d ablate_scram -tAc 'SELECT 1' >/dev/null 2>&1
}

scram_rule() {  # our own cluster trusts loopback: ablate_scram must give its password (first match wins)
  local hba="$DATA/pg_hba.conf"
  if [ -s "$hba" ] && ! grep -q '^host all ablate_scram' "$hba"; then
    { printf 'host all ablate_scram 127.0.0.1/32 scram-sha-256\nhost all ablate_scram ::1/128 scram-sha-256\n'
      cat "$hba"; } > "$hba.new"
    chown postgres "$hba.new"
    mv "$hba.new" "$hba"
    as_postgres "$BIN/pg_ctl" -D "$DATA" reload >/dev/null
  fi
}

bin_dir() {  # the newest installed server's bin directory
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_own_server() {  # a private cluster in $DATA: trust auth, loopback only
  if [ ! -s "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    mkdir -p "$DATA"
    chown postgres "$DATA"
    chmod 700 "$DATA"
    as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=trust \
      --encoding=UTF8 --no-locale >/dev/null
  fi
  if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_postgres "$BIN/pg_ctl" -D "$DATA" -w -t 60 -l "$DATA/server.log" \
      -o "-h 127.0.0.1 -p $PORT -k /tmp -c max_connections=200" start >&2
  fi
}

if answers; then
  echo "$URL"
  exit 0
fi

if [ -z "$(bin_dir)" ] || ! command -v psql >/dev/null; then
  echo "installing postgresql with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
BIN="$(bin_dir)"
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres

if [ -s "$DATA/PG_VERSION" ] && as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 \
    || ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  start_own_server
  ADMIN=(-h 127.0.0.1 -p "$PORT" -U postgres)
else
  # Another server listens there (e.g. the cluster Debian's package starts on install):
  # add the ablate role and database to it, as the postgres user over its local socket.
  ADMIN=(-p "$PORT")
fi

psql_admin() { as_postgres psql "${ADMIN[@]}" -v ON_ERROR_STOP=1 -tAc "$1"; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='ablate'")" != 1 ]; then
  psql_admin "CREATE ROLE ablate LOGIN PASSWORD 'ablate'" >/dev/null
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='ablate'")" != 1 ]; then
  psql_admin "CREATE DATABASE ablate OWNER ablate" >/dev/null
fi
SCRAM_SQL="'${SCRAM_PASSWORD//\'/\'\'}'"   # the password as an SQL string literal
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='ablate_scram'")" != 1 ]; then
  psql_admin "SET password_encryption = 'scram-sha-256'; CREATE ROLE ablate_scram LOGIN PASSWORD $SCRAM_SQL" >/dev/null
else
  psql_admin "SET password_encryption = 'scram-sha-256'; ALTER ROLE ablate_scram PASSWORD $SCRAM_SQL" >/dev/null
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='ablate_scram'")" != 1 ]; then
  psql_admin "CREATE DATABASE ablate_scram OWNER ablate_scram" >/dev/null
fi
if [ "${ADMIN[0]}" = -h ]; then scram_rule; fi

answers || { echo "PostgreSQL runs but ablate@127.0.0.1:$PORT cannot log in (see $DATA/server.log)" >&2; exit 1; }
echo "$URL"

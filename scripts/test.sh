#!/usr/bin/env bash
# The test suite on a fresh machine: set up .venv, start PostgreSQL on loopback for the
# shared-study tests and a one-node Slurm cluster for the tests marked slurm, find (or apt-get
# install) Chromium for the report.html test, run pytest.
# Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if url="$(bash .ci/start_postgres.sh)"; then
  export ABLATE_TEST_POSTGRES_URL="$url"   # without a password: libpq reads it from the pgpass file
  if [ -z "${PGPASSFILE:-}" ] && [ -z "${PGPASSWORD:-}" ]; then
    # the "ablate" role's password, for a server that asks for it (our own cluster trusts loopback)
    export PGPASSFILE="$(mktemp "${TMPDIR:-/tmp}/ablate-pgpass.XXXXXX")"
    chmod 600 "$PGPASSFILE"
    echo "127.0.0.1:*:ablate:ablate:ablate" > "$PGPASSFILE"
  fi
  # The outage test stops and restarts the server: only our own cluster (the script's $DATA).
  pg_data="${ABLATE_PG_DATA:-/tmp/ablate-postgres}"
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$pg_bin" ] && [ -s "$pg_data/postmaster.pid" ]; then
    export ABLATE_TEST_PG_BIN="$pg_bin" ABLATE_TEST_PG_DATA="$pg_data"
  fi
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL could not be started; CI needs it for the shared-study tests" >&2
  exit 1
else
  echo "warning: PostgreSQL could not be started; its tests will be skipped" >&2
fi
if conf="$(bash .ci/start_slurm.sh)"; then
  export ABLATE_TEST_SLURM_CONF="$conf"   # the tests marked slurm submit to this cluster
elif [ "${CI:-}" = "true" ]; then
  echo "Slurm could not be started; CI needs it for the tests marked slurm" >&2
  exit 1
else
  echo "warning: Slurm could not be started; its tests will be skipped" >&2
fi
if browser="$(bash .ci/find_chromium.sh)"; then
  export ABLATE_TEST_CHROMIUM="$browser"
elif [ "${CI:-}" = "true" ]; then
  echo "Chromium could not be installed; CI needs it for the report.html browser test" >&2
  exit 1
else
  echo "warning: no Chromium; the report.html browser test will be skipped" >&2
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
exec .venv/bin/python -m pytest "$@"

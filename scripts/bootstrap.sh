#!/usr/bin/env bash
# Creates .venv (if missing) and installs ablate with its test extras into it. Idempotent:
# reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.ablate-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing ablate and its dependencies into .venv (a few minutes the first time)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e ".[test,postgres,dashboard]" >&2
  echo "$want" > "$stamp"
fi

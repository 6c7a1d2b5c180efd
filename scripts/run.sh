#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then run the default width ablation
# (LiH at quick scale, SQLite study storage under ./runs, W&B offline).
# Extra arguments are Hydra overrides: bash scripts/run.sh sweep.workers=2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m ablate +sweep=width "$@"

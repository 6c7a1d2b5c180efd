#!/usr/bin/env bash
# Builds .device/ (git-ignored): the wheels the GPU machine lacks, so that it can run
# benchmarks/device_check.py with no package registry. See docs/gpu.md.
#
#   bash benchmarks/device_pack.sh --kfac-src DIR            # DIR: a kfac-jax source tree or bare git dir
#   bash benchmarks/device_pack.sh --kfac-src DIR --prove PY312
#
# The GPU machine has Python 3.12, JAX 0.11.x (CUDA), numpy, scipy, optax, chex, pandas,
# matplotlib and h5py (and what pip installed with them: absl-py, toolz, typing_extensions,
# packaging, ...). Everything else that `python benchmarks/device_check.py` imports travels
# here as cp312 manylinux x86_64 or pure-Python wheels; kfac-jax as a wheel built from its
# source (its PyPI release 0.0.8 breaks on jax >= 0.9.2). No pyscf, no wandb: the check runs
# with pretrain=none logger=none.
#
# --prove PY312: makes a fresh venv with that Python 3.12, installs only the GPU machine's own
# packages from the registry (jax==$DEVICE_JAX, default 0.11.2, on CPU in place of its CUDA
# build), then runs the printed GPU command with --smoke in it: the pack installs with
# --no-index, and if anything is missing, an import fails there.
#
# Prints the one command line to run on the GPU machine (from the repository root; the device
# tool must carry .device, which git ignores).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
KFAC_SRC=${KFAC_JAX_SRC:-}
PROVE=""
DEVICE_JAX=${DEVICE_JAX:-0.11.2}   # the GPU machine's JAX (CPU wheels of it for --prove)
while [ $# -gt 0 ]; do
  case "$1" in
    --kfac-src) KFAC_SRC=$2; shift 2 ;;
    --prove) PROVE=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "device_pack.sh: unknown argument '$1' (allowed: --kfac-src DIR, --prove PYTHON3.12)" >&2; exit 2 ;;
  esac
done
if [ -z "$KFAC_SRC" ] || [ ! -e "$KFAC_SRC" ]; then
  echo "device_pack.sh: --kfac-src '$KFAC_SRC' is not a kfac-jax source tree or git dir (its PyPI release is too old for jax 0.11)" >&2
  exit 2
fi

MAX_MIB=40
PLATFORM_ARGS=(--python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
               --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
               --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform any
               --only-binary=:all: --no-deps)
# Exact versions, as resolved on the pinned CPU stack (see pyproject.toml), plus what they
# import at run time that the GPU machine lacks. Not carried: pyscf, wandb (never imported with
# pretrain=none logger=none), gast and cloudpickle (tfp's jax substrate does not import them),
# greenlet (SQLAlchemy needs it only for asyncio).
WHEELS=(
  # kfac-jax's imports (the wheel itself is built from source below)
  immutabledict==4.3.1 distrax==0.1.9 tfp-nightly==0.26.0.dev20261027 dm-tree==0.1.10
  wrapt==2.5.2 attrs==26.1.0 six==1.17.0 decorator==5.3.1
  # the forward Laplacian
  folx==0.2.30 jaxtyping==0.3.11 wadler-lindig==0.1.8
  # config
  hydra-core==1.3.8 omegaconf==2.3.1 PyYAML==6.0.4
  # the sweep driver
  optuna==5.0.0 SQLAlchemy==2.1.9 alembic==1.20.1 Mako==1.4.3 MarkupSafe==3.0.4
  colorlog==6.12.0 tqdm==4.70.1
)

rm -rf .device
mkdir -p .device/wheels .device/build
echo "== downloading ${#WHEELS[@]} wheels for cp312 manylinux x86_64" >&2
"$PY" -m pip download -q --dest .device/wheels "${PLATFORM_ARGS[@]}" "${WHEELS[@]}"

echo "== building antlr4-python3-runtime 4.9.3 (published as a source archive only)" >&2
"$PY" -m pip wheel -q --no-deps --wheel-dir .device/wheels "antlr4-python3-runtime==4.9.3"

echo "== building kfac-jax from $KFAC_SRC" >&2
SRC=.device/build/kfac-jax
mkdir -p "$SRC"
if [ -d "$KFAC_SRC/objects" ] && [ -f "$KFAC_SRC/HEAD" ]; then          # a bare git dir
  git --git-dir="$KFAC_SRC" archive HEAD | tar -x -C "$SRC"
  COMMIT=$(git --git-dir="$KFAC_SRC" rev-parse HEAD)
elif [ -d "$KFAC_SRC/.git" ]; then                                       # a clone
  git -C "$KFAC_SRC" archive HEAD | tar -x -C "$SRC"
  COMMIT=$(git -C "$KFAC_SRC" rev-parse HEAD)
else                                                                     # a plain tree
  cp -r "$KFAC_SRC"/. "$SRC"
  COMMIT=$(cat "$KFAC_SRC/COMMIT" 2>/dev/null || echo unknown)
fi
"$PY" -m pip wheel -q --no-deps --wheel-dir .device/wheels "$SRC" 2>/dev/null
rm -rf .device/build

{
  echo "# .device/ built by benchmarks/device_pack.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kfac-jax source commit: $COMMIT"
  (cd .device/wheels && ls -1s --block-size=K *.whl)
} > .device/MANIFEST.txt
# a wheel for another Python or machine would install on the GPU machine's pip only to fail there
bad=$(cd .device/wheels && ls *.whl | grep -v -E -- '-(py3|py2\.py3|cp312)-(none|cp312|abi3)-(any|manylinux[^ ]*x86_64)\.whl$' || true)
if [ -n "$bad" ]; then
  echo "device_pack.sh: wheels not for cp312 manylinux x86_64: $bad" >&2
  exit 1
fi
size_mib=$(du -sm .device | cut -f1)
echo "== .device: $(ls .device/wheels | wc -l) wheels, ${size_mib} MiB (limit ${MAX_MIB} MiB)" >&2
if [ "$size_mib" -ge "$MAX_MIB" ]; then
  echo "device_pack.sh: .device is ${size_mib} MiB, over the ${MAX_MIB} MiB limit" >&2
  exit 1
fi

# pip installs the wheels; were pip missing there, unpacking them does for these packages.
INSTALL='(python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target .device/site .device/wheels/*.whl || python3 -c "import glob, zipfile; [zipfile.ZipFile(w).extractall(\".device/site\") for w in glob.glob(\".device/wheels/*.whl\")]")'
RUN='PYTHONPATH=$PWD/.device/site:$PWD python3 benchmarks/device_check.py --out $OUT/device_check'

if [ -n "$PROVE" ]; then
  echo "== proving the pack with $PROVE in a fresh venv (the GPU machine's packages only)" >&2
  VENV=$(mktemp -d /tmp/device-prove-XXXXXX)
  "$PROVE" -m venv "$VENV/venv"
  "$VENV/venv/bin/python" -m pip install -q "jax==$DEVICE_JAX" numpy scipy optax chex pandas matplotlib h5py
  # exactly the GPU command, with that venv's python3 first on PATH and --smoke
  PATH="$VENV/venv/bin:$PATH" OUT="$VENV/out" bash -c "${INSTALL} && ${RUN/--out/--smoke --out}"
  rm -rf .device/site "$VENV"
  echo "== the pack installs and the smoke check passes on $("$PROVE" --version 2>&1)" >&2
fi

echo "$INSTALL && $RUN"

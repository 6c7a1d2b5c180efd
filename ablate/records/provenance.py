"""Where a run's code came from: the git commit of the source tree and the installed versions
of the packages the engine runs on. Standard library only (git is called as a program)."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Iterable

ENGINE_PACKAGES = ("jax", "jaxlib", "kfac-jax", "folx", "optax", "pyscf", "numpy")


def git_commit(path: str | os.PathLike | None = None) -> str:
    """The git commit of the source tree holding ``path`` (default: this package), with
    ``-dirty`` when tracked files have local changes; ``unknown`` outside a git checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parents[1]   # ablate/
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def package_versions(names: Iterable[str] = ENGINE_PACKAGES) -> dict[str, str]:
    """Installed versions of the named distributions (those not installed are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out

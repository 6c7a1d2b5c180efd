"""Names, paths and storage URLs checked once, at the edge: study names, paths without control
characters, files that must stay inside a folder (the output root, a study's folder), and
storage URLs without a password.

A study name becomes a folder (``<output_root>/<study>/``), a Slurm job name and a file name
(``<output_root>/slurm/<study>.sbatch``), so it is one path component of plain characters.
A path holding a control character (a newline, a tab, an escape) is bad input: it would break
a batch script's line or a log line and is never what the user meant. A folder read from a
shared study storage (a trial's ``run_dir``) is trusted only inside the study's own folder.
Every check raises :class:`ablate.records.errors.ConfigError` naming the key, the value and what is
allowed (the command line prints it on one line and exits with code 2).

Standard library only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ablate.records.errors import ConfigError
from ablate.records.redact import has_password, redact_url

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
STUDY_NAME_ALLOWED = "a study name of letters, digits, '.', '_' and '-' that starts with a letter or a digit"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PASSWORD_ALLOWED = ("a URL without a password: put it in ~/.pgpass (chmod 600; "
                    "host:port:database:user:password) or a file named by PGPASSFILE, or export "
                    "PGPASSWORD; libpq reads them in every process that connects (docs/sweeps.md)")


def is_study_name(name) -> bool:
    """True for a name :data:`STUDY_NAME` matches whole (``..`` cannot: it starts with a dot)."""
    return isinstance(name, str) and STUDY_NAME.fullmatch(name) is not None and name not in (".", "..")


def check_study_name(key: str, name) -> str:
    """The name itself, or ConfigError (see :data:`STUDY_NAME_ALLOWED`)."""
    if not is_study_name(name):
        raise ConfigError(key, name, STUDY_NAME_ALLOWED)
    return name


def check_path_text(key: str, value) -> None:
    """ConfigError when a path (or any text that becomes one) holds a control character."""
    if value is not None and _CONTROL.search(os.fspath(value) if isinstance(value, os.PathLike) else str(value)):
        raise ConfigError(key, str(value), "a path without control characters (newline, tab, escape ...)")


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` resolves (symbolic links followed) to ``folder`` or below it."""
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError, ValueError):   # a symlink loop, a NUL byte
        return False


def check_inside(key: str, path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """``path`` resolved, or ConfigError when it is not inside ``folder`` (see :func:`is_inside`)."""
    if not is_inside(path, folder):
        raise ConfigError(key, str(path), f"a path inside {Path(folder).resolve()}")
    return Path(path).resolve()


def check_no_password(key: str, url) -> None:
    """ConfigError (the URL shown redacted) when a storage URL carries a password: libpq reads it
    from ~/.pgpass, PGPASSFILE or PGPASSWORD in every process that connects (ablate.records.redact)."""
    if url is not None and has_password(url):
        raise ConfigError(key, redact_url(url), PASSWORD_ALLOWED)

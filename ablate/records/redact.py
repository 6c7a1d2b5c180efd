"""Passwords out of sight: the one redaction of database URLs that every print, error, report,
record and W&B config uses, and the refusal of a storage URL that carries a password.

A study's storage URL is printed (the driver's lines, ``python -m sweeps status``), written
(study.json, report.md, report.html, the W&B study run) and handed to other processes (workers,
Slurm jobs, the analysis). ablate refuses a URL with a password
(:func:`ablate.records.safe_paths.check_no_password`, with :func:`has_password`):
libpq, under both psycopg2 and psycopg, reads it from ``~/.pgpass``, ``PGPASSFILE`` or
``PGPASSWORD`` itself, in every process that connects, so the URL never needs one. A password typed on the
command line would already be in ``ps`` and the shell's history before ablate could hide it,
and carrying it to the workers and Slurm jobs would need the environment anyway.

:func:`redact_url` is SQLAlchemy's own ``make_url(...).render_as_string(hide_password=True)``
plus the ``?password=`` query parameter, after reading the user information up to the last
``@`` (a password holding ``/``, ``?``, ``#`` or ``@`` that was not percent-encoded), so odd forms
such as an empty user (``postgresql://:pw@host/db``) are hidden too. :func:`redact_text` applies
it to every URL in a line of text (an error message, a command line).

Standard library at import time (and no project module: ``ablate.records.errors`` redacts its messages
with it): SQLAlchemy is imported only when a URL has something to hide.
"""

from __future__ import annotations

import argparse
import re
from urllib.parse import quote

HIDDEN = "***"
# a URL in free text: scheme://, then anything up to white space or a quote that ends it; Hydra's
# messages and repr() may escape its ':' with backslashes (postgresql\\://u\\:pw@h)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\\*://[^\s'\"]+")
# ?password=... / &password=... in a URL's query (any case, as libpq and SQLAlchemy accept it)
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)[^&#\s]*", re.IGNORECASE)


def _split_userinfo(url: str) -> tuple[str, str, str | None, str] | None:
    """(scheme, user, password or None, host part) of ``scheme://user[:password]@host...``, the
    user information taken up to the *last* ``@``; None when the URL has none."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, host = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return scheme, user, (password if colon else None), host


def redact_url(url) -> str:
    """A storage URL (or journal file path) fit to print: the password shown as ``***``.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; also a password
    holding ``/`` or ``@``, an empty user (``://:pw@host``) and ``?password=...``. Text without
    ``://`` (a file path) is returned as it is.
    """
    text = str(url)
    parts = _split_userinfo(text)
    if parts is None or parts[2] is None:
        return _QUERY_PASSWORD.sub(r"\1" + HIDDEN, text)
    scheme, user, password, host = parts
    # percent-encode the password so that SQLAlchemy reads it whole, then let it hide it
    normal = f"{scheme}://{user}:{quote(password, safe='')}@{host}"
    try:
        from sqlalchemy.engine import make_url

        shown = make_url(normal).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: hide the user information whole
        shown = f"{scheme}://{HIDDEN}@{host}"
    return _QUERY_PASSWORD.sub(r"\1" + HIDDEN, shown)


def redact_text(text) -> str:
    """Every URL in ``text`` redacted (:func:`redact_url`); the rest unchanged."""
    text = str(text)
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match) -> str:
    url = match.group(0)
    plain = url.replace("\\", "")   # an escaped URL is judged (and shown) without its backslashes
    return redact_url(plain) if has_password(plain) else url


def has_password(url) -> bool:
    """True when a database URL carries a password (in its user information, however odd, or
    as a ``password`` query parameter)."""
    text = str(url)
    parts = _split_userinfo(text)
    return (parts is not None and parts[2] is not None) or _QUERY_PASSWORD.search(text) is not None


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose one-line usage errors (which echo the arguments) are redacted."""

    def error(self, message: str):
        super().error(redact_text(message))

"""docs/sweeps.md's generated tables of the sweep file's keys, from `sweeps.space.SweepFile`, and
of its ``claims`` block, from `sweeps.space.ClaimsBlock`.

``python -m ablate.cli.sweep_docs`` rewrites the sections between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` (``sweep-keys``, ``claims-keys``); ``--check`` exits 1 when one is stale (a
test runs the check).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ablate.cli.contract_docs import key_table_markdown, regenerate
from ablate.config.experiment import key_table
from sweeps.space import ClaimsBlock, SweepFile

DOC = Path(__file__).resolve().parents[2] / "docs" / "sweeps.md"


def sweep_keys_markdown() -> str:
    """Every key of a sweep file: meaning, unit, allowed values."""
    return key_table_markdown(key_table(SweepFile, ""))


def claims_keys_markdown() -> str:
    """Every key of a sweep file's ``claims`` block: meaning, unit, allowed values."""
    return key_table_markdown(key_table(ClaimsBlock, "claims."))


SECTIONS = {"sweep-keys": sweep_keys_markdown, "claims-keys": claims_keys_markdown}


def main(argv: list[str] | None = None) -> int:
    return regenerate(DOC, SECTIONS, "python -m ablate.cli.sweep_docs", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

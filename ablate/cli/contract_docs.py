"""docs/contracts.md's generated tables, from the record and config types themselves.

``python -m ablate.cli.contract_docs`` rewrites the generated sections of docs/contracts.md (between
``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``); ``--check`` exits 1 when any is stale.
A test runs the check, so the documentation cannot drift from the code. It reads the record
types of every layer (the sweeps' worker messages too), so, like the command line, it sits on
top of them; nothing imports it.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from ablate.config.experiment import config_key_table
from ablate.records import run_record
from sweeps import messages

DOC = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"


def key_table_markdown(table) -> str:
    """A markdown table of (key, meaning, unit, allowed) rows (`ablate.config.experiment.key_table`)."""
    rows = ["| key | unit | allowed | meaning |", "| --- | --- | --- | --- |"]
    for key, doc, unit, allowed in table:
        rows.append(f"| `{key}` | {unit or ''} | {allowed} | {doc} |")
    return "\n".join(rows)


def config_keys_markdown() -> str:
    """Every config key the validation checks: meaning, unit, allowed values."""
    return key_table_markdown(config_key_table())


def messages_markdown() -> str:
    """The worker messages and their fields."""
    rows = ["| message | direction | fields |", "| --- | --- | --- |"]
    for cls, direction in ((messages.RunTrial, "driver -> worker"), (messages.Prune, "driver -> worker"),
                           (messages.Stop, "driver -> worker"), (messages.Ready, "worker -> driver"),
                           (messages.TrialProgress, "worker -> driver"), (messages.Done, "worker -> driver"),
                           (messages.Failed, "worker -> driver")):
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls)) or "(none)"
        rows.append(f"| `{cls.__name__}` | {direction} | {fields} |")
    return "\n".join(rows)


def trial_attrs_markdown() -> str:
    return ", ".join(f"`{k}`" for k in run_record.TRIAL_ATTR_KEYS)


SECTIONS = {
    "summary": run_record.summary_fields_markdown,
    "config-keys": config_keys_markdown,
    "messages": messages_markdown,
    "trial-attrs": trial_attrs_markdown,
}


def render(text: str, sections: dict = SECTIONS, doc: Path = DOC) -> str:
    """``text`` (of ``doc``) with every generated section replaced by its current content."""
    for name, make in sections.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{doc}: no generated section {name!r}")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def regenerate(doc: Path, sections: dict, command: str, argv: list[str]) -> int:
    """Rewrite ``doc``'s generated sections; with ``--check`` in argv, write nothing and return 1
    (naming ``command``, the one that regenerates it) when any is stale."""
    text = doc.read_text(encoding="utf-8")
    new = render(text, sections, doc)
    if "--check" in argv:
        if new != text:
            print(f"{doc} is out of date: run {command}", file=sys.stderr)
            return 1
        return 0
    doc.write_text(new, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    return regenerate(DOC, SECTIONS, "python -m ablate.cli.contract_docs", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

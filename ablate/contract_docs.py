"""docs/contracts.md's generated tables, from the record and config types themselves.

``python -m ablate.contract_docs`` rewrites the generated sections of docs/contracts.md (between
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

from ablate import config, run_record, study_record
from sweeps import messages

DOC = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"


def config_keys_markdown() -> str:
    """Every config key the validation checks: meaning, unit, allowed values."""
    rows = ["| key | unit | allowed | meaning |", "| --- | --- | --- | --- |"]
    for _, prefix, cls in config.GROUP_TYPES:
        for key, doc, unit, allowed in config.key_table(cls, prefix):
            rows.append(f"| `{key}` | {unit or ''} | {allowed} | {doc} |")
    return "\n".join(rows)


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
    return ", ".join(f"`{k}`" for k in study_record.TRIAL_ATTR_KEYS)


SECTIONS = {
    "summary": run_record.summary_fields_markdown,
    "config-keys": config_keys_markdown,
    "messages": messages_markdown,
    "trial-attrs": trial_attrs_markdown,
}


def render(text: str) -> str:
    """``text`` with every generated section replaced by its current content."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{DOC}: no generated section {name!r}")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is out of date: run python -m ablate.contract_docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

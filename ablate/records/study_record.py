"""The study record: a sweep trial as Optuna's storage holds it (:class:`TrialRow`, the summary
facts copied into its user attributes) and the storage URLs every package spells the same way.

Standard library only, and no Optuna: ``sweeps`` writes these records and ``analysis`` reads
them, neither through the engine. A trial's run directory is a :class:`ablate.records.run_record.RunDir`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

from ablate.records.jsonio import finite_or_none
from ablate.records.run_record import TRIAL_ATTR_KEYS, RunSummary, trial_dir_name


# ----------------------------------------------------------------------------- storage URLs


def default_storage_url(output_root: str | os.PathLike) -> str:
    """The default study storage: ``sqlite:///<output_root>/studies.db`` (absolute path)."""
    return f"sqlite:///{Path(output_root).expanduser().resolve() / 'studies.db'}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE[?query]`` URL; None for other URLs and in-memory DBs."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


# ----------------------------------------------------------------------------- trials

def trial_attrs(summary: RunSummary) -> dict[str, Any]:
    """The facts of a run's summary copied into its Optuna trial's user attributes, so a study can
    be analysed (and its table printed) from the storage alone: the fields of
    `ablate.records.run_record.TRIAL_ATTR_KEYS` (declared ``copy=`` on RunSummary) that it holds, a
    non-finite value as None."""
    return {k: finite_or_none(summary.get(k)) for k in TRIAL_ATTR_KEYS if summary.get(k) is not None}


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One Optuna trial as tables show it, from the storage alone (user attributes).

    Built from any object with Optuna's FrozenTrial attributes (``number``, ``state``,
    ``params``, ``user_attrs``, ``system_attrs``, ``value(s)``), so this module needs no Optuna.
    """

    number: int
    run_id: str
    state: str                   # COMPLETE, RUNNING, WAITING, PRUNED, FAIL
    requeued: bool               # FAIL and enqueued again (the same run directory resumed it)
    params: dict
    value: float | None          # the objective of a single-objective study
    attrs: dict
    values: tuple = ()           # every objective value (a multi-objective study), else ()

    @classmethod
    def from_trial(cls, trial: Any) -> "TrialRow":
        attrs = dict(trial.user_attrs)
        values = getattr(trial, "values", None)
        value = finite_or_none(values[0]) if values and len(values) == 1 else None
        return cls(
            number=int(trial.number),
            run_id=str(attrs.get("run_id") or trial_dir_name(trial.number)),
            state=trial.state.name,
            requeued=bool(attrs.get("requeued")) and trial.state.name == "FAIL",
            params=trial_params(trial),
            value=value,
            attrs=attrs,
            values=tuple(finite_or_none(v) for v in values) if values and len(values) > 1 else (),
        )

    @property
    def run_dir(self) -> str | None:
        return self.attrs.get("run_dir")

    @property
    def reason(self) -> str | None:
        """Why it failed (FAIL trials only)."""
        return self.attrs.get("fail_reason") if self.state == "FAIL" else None

    def attr(self, key: str) -> Any:
        """A result user attribute, None when absent or not finite."""
        return finite_or_none(self.attrs.get(key))


def trial_params(trial: Any) -> dict[str, Any]:
    """A trial's swept values: its ``fixed_params`` system attribute (an enqueued point, exact
    types) over its Optuna params (suggested values)."""
    fixed = trial.system_attrs.get("fixed_params")
    fixed = dict(fixed) if isinstance(fixed, Mapping) else {}
    # A grid point's values are its fixed params (exact types); Optuna's params mirror them where
    # the distributions allow (see sweeps.storage.mirror_params) and hold TPE/random suggestions.
    return {**dict(trial.params), **fixed}

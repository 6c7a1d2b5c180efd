"""The engine's record types and helpers that the analysis reads, imported in this one place.

``analysis`` reads run directories and study storages through the standard-library-only record
modules of the engine (ablate.records.run_record, ablate.records.study_record, ablate.records.jsonio,
ablate.records.provenance, ablate.records.stats, and the redaction and path checks of ablate.records.redact and
ablate.records.safe_paths); every other module of this package imports these names from here.
"""

from ablate.records.jsonio import flatten
from ablate.records.provenance import git_commit, package_versions
from ablate.records.redact import ArgumentParser, redact_text, redact_url
from ablate.records.run_record import FRAME_KEYS, RunSummary, trial_dir_name
from ablate.records.safe_paths import check_inside, check_no_password, check_path_text, check_study_name
from ablate.records.stats import reblock
from ablate.records.study_record import default_storage_url, sqlite_path, trial_params

__all__ = [
    "ArgumentParser",
    "FRAME_KEYS",
    "RunSummary",
    "check_inside",
    "check_no_password",
    "check_path_text",
    "check_study_name",
    "default_storage_url",
    "flatten",
    "git_commit",
    "package_versions",
    "reblock",
    "redact_text",
    "redact_url",
    "sqlite_path",
    "trial_dir_name",
    "trial_params",
]

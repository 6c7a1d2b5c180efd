"""The engine's record types and helpers that the analysis reads, imported in this one place.

``analysis`` reads run directories and study storages through the standard-library-only record
modules of the engine (ablate.run_record, ablate.study_record, ablate.jsonio,
ablate.provenance, ablate.stats, and the redaction and path checks of ablate.redact and
ablate.safe_paths); every other module of this package imports these names from here.
"""

from ablate.jsonio import flatten
from ablate.provenance import git_commit, package_versions
from ablate.redact import ArgumentParser, redact_text, redact_url
from ablate.run_record import FRAME_KEYS, RunSummary, trial_dir_name
from ablate.safe_paths import check_inside, check_no_password, check_path_text, check_study_name
from ablate.stats import reblock
from ablate.study_record import default_storage_url, sqlite_path, trial_params

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

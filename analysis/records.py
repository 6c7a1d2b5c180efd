"""The engine's record types and helpers that the analysis reads, imported in this one place.

``analysis`` reads run directories and study storages through the standard-library-only record
module of the engine; every other module of this package imports these names from here.
"""

from ablate.records import (
    RunSummary,
    default_storage_url,
    flatten,
    git_commit,
    package_versions,
    reblock,
    sqlite_path,
    trial_params,
)

__all__ = [
    "RunSummary",
    "default_storage_url",
    "flatten",
    "git_commit",
    "package_versions",
    "reblock",
    "sqlite_path",
    "trial_params",
]

"""Records: what a run and a study leave on disk and in a storage, and the checks at the edge.

The run record (``summary.json``, the run directory's files), the study record (a trial as
Optuna's storage holds it, storage URLs), JSON helpers, provenance, the one-line errors, the
redaction of passwords, safe names and paths, and the reblocked error bar (``stats``). Every
layer reads these, the analysis included, so they import the standard library only: ``stats``
also numpy, and ``redact`` SQLAlchemy's ``make_url`` inside a function, only when a URL has a
password to hide. Nothing here imports another ablate folder.
"""

"""Command line: what ``python -m ablate`` (``ablate/__main__.py``) calls beyond a single run.

The ``--help`` page (``help``), the ``+sweep=NAME`` path that hands the sweep driver the
analysis's steps (``sweep_cli``), and the generators of docs/contracts.md and docs/sweeps.md's
tables (``contract_docs``, ``sweep_docs``). The top of the layers: it may import every ablate
folder, ``sweeps`` and ``analysis``, and nothing imports it but ``ablate/__main__.py``. With
``__main__``, the only part of ablate that imports ``sweeps`` or ``analysis``.
"""

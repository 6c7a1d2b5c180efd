"""Makes kfac-jax trace the same program in every process, so JAX's persistent compilation
cache can find a KFAC training step compiled by an earlier run.

kfac-jax 0.0.8 collects the inputs of its layer tags with ``list(set(vars))``
(``kfac_jax._src.tracer``). JAX variables hash by identity, so that order follows memory
addresses and changes from one process to the next; the traced program is the same
computation with its values created in another order, its text differs, and so does JAX's
cache key. Measured on LiH (quick scale): two processes lowered the KFAC step to different
modules (206 lines of `diff`), and every run recompiled it.

`make_deterministic` gives that module an insertion-ordered ``set`` (a dict's keys), so the
order is the order of the layer tags in the traced graph. Only the module's own name
``set`` is rebound; the builtin is untouched. It is a no-op for a kfac-jax that no longer has
the module. Checked by tests/test_compilation_cache.py (two processes, one lowered text).
"""

from __future__ import annotations

import importlib


class InsertionOrderedSet(dict):
    """The part of ``set`` kfac-jax's tracer uses, iterating in insertion order."""

    def __init__(self, items=()):
        super().__init__((x, None) for x in items)

    def add(self, item) -> None:
        self[item] = None

    def union(self, *others) -> "InsertionOrderedSet":
        return InsertionOrderedSet([*self, *(x for other in others for x in other)])

    def __sub__(self, other) -> "InsertionOrderedSet":
        return InsertionOrderedSet(x for x in self if x not in other)

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self)) + "}"


def make_deterministic() -> bool:
    """Rebinds ``set`` in kfac-jax's tracer module; True when it was there to rebind."""
    try:
        tracer = importlib.import_module("kfac_jax._src.tracer")
    except ImportError:
        return False
    tracer.set = InsertionOrderedSet
    return True

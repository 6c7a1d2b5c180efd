"""Config: the declared keys of an experiment, composing them with Hydra, and the systems.

``experiment`` declares every config key once (meaning, default, allowed values, unit) and
validates a composed config into a typed ``Experiment``; ``compose`` is the Hydra glue
(composition from ``conf/``, group options, one-line errors); ``systems`` holds the molecules
and their reference energies, which validation checks a run against. May import ``records``
only, and no JAX: the sweep driver and ``--help`` read it without starting JAX.
"""

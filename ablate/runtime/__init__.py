"""Runtime: JAX and XLA set-up, the program store, start-up timing, and pytrees as JSON.

What must hold before and around a traced program: the environment XLA reads before JAX loads
(``xla_env``, which the sweep driver reads without JAX), JAX's configuration and persistent
compilation cache (``jax_setup``), kfac-jax made to trace one program in every process
(``kfac_tracing``), traced steps kept on disk (``program_store``), pytree structures written
without pickle (``pytree_json``), and where start-up time goes (``startup``). Knows no physics.
May import ``records`` and ``config``.
"""

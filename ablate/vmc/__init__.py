"""VMC: one run of variational Monte Carlo, from a validated experiment to its run directory.

Sampling (``mcmc``), the loss and optimisers (``optimizers``), pretraining on Hartree-Fock
orbitals (``pretrain``), the trainer's phases over one ``TrainState`` (``training``),
checkpoints and pre-emption, the run's stretches and cost, the recorder of the run directory,
the config fingerprint, and ``run.run_experiment``, which ties them together. May import every
folder below it (``records``, ``config``, ``runtime``, ``wavefunction``, ``hamiltonian``,
``tracking``); never ``sweeps``, ``analysis`` or Optuna.
"""

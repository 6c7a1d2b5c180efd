"""Tracking: Weights & Biases, written and read back.

``wandb_sink`` makes every run and sweep trial a W&B run (wandb is imported only when logging
is on) and logs a study; ``wandb_records`` reads W&B's offline transaction logs back from disk.
Knows no physics. May import ``records``, ``config``, ``runtime``, ``wavefunction`` and
``hamiltonian`` (today it uses ``records`` and ``config`` only).
"""

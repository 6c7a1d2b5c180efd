"""Wave functions: the ansätze (FermiNet, Psiformer, Slater-Jastrow) as pure functions of
(params, electrons) -> (sign, log|psi|).

``networks`` builds an ansatz from its typed config; ``network_layout`` is FermiNet's parameter
and feature layout, which the hand-written Laplacian in ``hamiltonian`` reads too;
``attention`` holds the Psiformer's pieces, ``envelopes`` the orbitals' envelopes, and
``small_det`` the sampler's determinants without LAPACK. May import ``records``, ``config`` and
``runtime``.
"""

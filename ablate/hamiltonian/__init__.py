"""Hamiltonian: local energies E_L(x) in Hartree, the kinetic energy's Laplacians, and the
Gaussian basis.

``local_energy`` is the molecular Hamiltonian (potential, and the kinetic energy by folx's
forward Laplacian, a Hessian trace or ``ferminet_laplacian``, FermiNet's own forward Laplacian
written for its structure); ``gto`` evaluates a pyscf molecule's contracted Gaussians in JAX
(the Hartree-Fock orbitals pretraining fits). May import ``records``, ``config``, ``runtime``
and ``wavefunction``.
"""

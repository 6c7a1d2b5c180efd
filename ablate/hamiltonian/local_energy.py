"""The molecular Hamiltonian in atomic units: local energies E_L(x) in Hartree.

E_L = -1/2 (lap log|psi| + |grad log|psi||^2) + V(x), with V the Coulomb energy of electrons
and nuclei. The Laplacian comes from a forward Laplacian (default: one forward pass carrying
value, gradient and Laplacian) or from the trace of the Hessian (a Hessian-vector product per
coordinate), selectable with ``laplacian=forward|hessian``. The forward Laplacian is folx's
generic one, or, for FermiNet, ablate's own written for its structure
(`ablate.hamiltonian.ferminet_laplacian`; ``forward_laplacian=auto|ferminet|folx``).

A batch's local energies can be computed a chunk of walkers at a time (``energy_chunk``):
on a CPU the forward Laplacian's intermediates of a whole batch overflow the cache, and a
loop over chunks that fit is faster (N2, quick network, batch 128: 57 -> 31 ms).
"""

from __future__ import annotations

from typing import Callable

import folx
import jax
import jax.numpy as jnp

LAPLACIANS = ("forward", "hessian")

# `energy_chunk=auto` on a CPU: the largest power-of-two chunk of walkers whose biggest
# forward-Laplacian intermediate (one-electron-stream Jacobian: walkers x n x 3n x width
# floats) fits in this many bytes, about the L2 caches of the 2-core CI machine (2 x 1 MiB).
# Measured there (quick network, batch 128, ms per batch, whole batch -> chunks): N2
# 57 -> 31 (chunks of 16), Ne 17.3 -> 15.0 (32); C 5.9 and LiH 2.5 gained nothing, and the
# rule keeps them whole.
AUTO_CHUNK_BYTES = 2 * 1024 * 1024

# `laplacian_sparsity=auto`: sparse Jacobians (threshold 6: one electron pair's coordinates)
# from this many electrons on, dense below. Measured on the 2-core CPU (quick network, batch
# 128, CPU ms per local-energy batch, dense -> sparse): LiH 4.1 -> 5.1, C 8.4 -> 11.5,
# Ne 65 -> 58, N2 190 -> 128; sparse costs ~10 s more compilation, which Ne repays only after
# ~1500 iterations and N2 after ~200.
AUTO_SPARSE_FROM_ELECTRONS = 12
AUTO_SPARSE_THRESHOLD = 6

# `forward_laplacian=auto`: ablate's FermiNet-structured forward Laplacian from this many
# electrons on, folx's below. `benchmarks/forward_laplacians.py` on the 2-core CPU (quick
# network, batch 256, both engines timed interleaved; seconds one quick trial saves with
# ablate's, compilation counted): He -0.1 +- 0.3, Li -2.2 +- 1.1, Be -0.2 +- 1.0,
# LiH 0.1 +- 1.2, B 3.5 +- 1.3, C 16.5, N 17.6, Ne 58.6 (README: speed). Below 5 electrons
# E_L alone is a little faster but the step is not, and folx is the maintained library.
AUTO_FERMINET_FROM_ELECTRONS = 5


def sparsity_threshold(setting, n_electrons: int) -> int:
    """folx's sparsity threshold for a ``laplacian_sparsity`` setting: ``dense`` -> 0, an
    integer -> itself, ``auto`` -> by system size (`AUTO_SPARSE_FROM_ELECTRONS`)."""
    if setting == "dense":
        return 0
    if setting == "auto":
        return AUTO_SPARSE_THRESHOLD if n_electrons >= AUTO_SPARSE_FROM_ELECTRONS else 0
    return int(setting)


def forward_laplacian_of(setting: str, network_type: str, n_electrons: int) -> str:
    """The forward Laplacian of a ``forward_laplacian`` setting: ``ferminet`` (ablate's own,
    `ablate.hamiltonian.ferminet_laplacian`) or ``folx``; ``auto`` -> ferminet for FermiNet from
    `AUTO_FERMINET_FROM_ELECTRONS` electrons, folx otherwise. The setting is a validated one
    (`ablate.config.experiment.validate` refuses other values, and ``ferminet`` for another network)."""
    if setting == "auto":
        use_ours = network_type == "ferminet" and n_electrons >= AUTO_FERMINET_FROM_ELECTRONS
        return "ferminet" if use_ours else "folx"
    return setting


def energy_chunk(setting, n_electrons: int, width: int, batch: int, itemsize: int,
                 backend: str, method: str = "forward") -> int:
    """Walkers per chunk of the local energy for an ``energy_chunk`` setting (0: the whole batch
    at once): ``whole`` -> 0, an integer -> itself (0 if it covers the batch), ``auto`` -> for
    the forward Laplacian on a CPU by `AUTO_CHUNK_BYTES`; the whole batch on other backends
    (GPUs want the widest batch) and for the Hessian trace (N2, quick network, batch 128, CPU:
    243 ms per iteration whole, 340 ms in chunks of 16)."""
    if setting == "whole":
        return 0
    if setting == "auto":
        if backend != "cpu" or method != "forward":
            return 0
        per_walker = n_electrons * 3 * n_electrons * max(width, 1) * itemsize
        chunk = 1
        while chunk * 2 * per_walker <= AUTO_CHUNK_BYTES:
            chunk *= 2
        setting = chunk
    chunk = int(setting)
    return 0 if chunk >= batch else chunk


def over_batch(fn: Callable, chunk: int = 0) -> Callable:
    """fn(params, x) of one walker -> g(params, walkers) over walkers (B, n, 3), B values.

    ``chunk`` 0: one vmap over the batch. Otherwise a loop (`jax.lax.map`) over B / chunk
    chunks, each vmapped; walker b goes to chunk b mod (B / chunk), so a batch sharded over
    devices along B stays sharded along every chunk. A batch that ``chunk`` does not divide is
    done whole."""
    whole = jax.vmap(fn, in_axes=(None, 0))
    if chunk <= 0:
        return whole

    def chunked(params, walkers):
        b = walkers.shape[0]
        if b <= chunk or b % chunk:
            return whole(params, walkers)
        steps = b // chunk
        xs = jnp.swapaxes(walkers.reshape(chunk, steps, *walkers.shape[1:]), 0, 1)
        out = jax.lax.map(lambda x: whole(params, x), xs)          # (steps, chunk)
        return jnp.swapaxes(out, 0, 1).reshape(b)
    return chunked


def potential_energy(x, atoms, charges):
    """Coulomb energy (Hartree) of electrons x (n, 3) and nuclei atoms (A, 3) in bohr."""
    n = x.shape[0]
    r_ae = jnp.linalg.norm(x[:, None, :] - atoms[None], axis=-1)
    v = -jnp.sum(charges[None, :] / r_ae)
    if n > 1:
        i, j = jnp.triu_indices(n, k=1)
        v += jnp.sum(1.0 / jnp.linalg.norm(x[i] - x[j], axis=-1))
    if atoms.shape[0] > 1:
        a, b = jnp.triu_indices(atoms.shape[0], k=1)
        v += jnp.sum(charges[a] * charges[b] / jnp.linalg.norm(atoms[a] - atoms[b], axis=-1))
    return v


def kinetic_energy(log_abs: Callable, method: str = "forward", sparsity: int = 0) -> Callable:
    """Returns T(params, x) = -1/2 (lap f + |grad f|^2) for f = log|psi|, x of shape (n, 3).

    ``sparsity`` (forward Laplacian only): folx carries the Jacobian of every intermediate
    value sparsely while it depends on at most this many of the 3n coordinates (0: dense).
    Same result to rounding; it trades compilation time for fewer flops on many electrons.
    """
    if method not in LAPLACIANS:
        raise ValueError(f"laplacian={method!r}: allowed: {', '.join(LAPLACIANS)}")

    if method == "forward":
        def kinetic(params, x):
            flat = lambda y: log_abs(params, y.reshape(x.shape))
            out = folx.forward_laplacian(flat, sparsity_threshold=sparsity)(x.reshape(-1))
            grad = out.jacobian.dense_array
            return -0.5 * (out.laplacian + jnp.sum(grad**2))
        return kinetic

    def kinetic(params, x):
        flat = lambda y: log_abs(params, y.reshape(x.shape))
        y = x.reshape(-1)
        grad_f = jax.grad(flat)
        eye = jnp.eye(y.shape[0], dtype=y.dtype)

        def second(carry, v):
            _, hv = jax.jvp(grad_f, (y,), (v,))
            return carry + jnp.dot(hv, v), None

        lap, _ = jax.lax.scan(second, jnp.zeros((), y.dtype), eye)
        g = grad_f(y)
        return -0.5 * (lap + jnp.sum(g**2))
    return kinetic


def local_energy(apply: Callable, system, method: str = "forward", dtype=jnp.float32,
                 sparsity: int = 0, kinetic: Callable | None = None) -> Callable:
    """E_L(params, x) in Hartree for one walker x (n, 3), given apply -> (sign, log|psi|).

    ``sparsity``: folx's sparsity threshold (0: dense; see `kinetic_energy` and
    `sparsity_threshold` for the config setting). ``kinetic``: a kinetic energy T(params, x)
    written for the network (`ablate.hamiltonian.ferminet_laplacian.make_kinetic`), used instead of folx
    when ``method`` is forward."""
    atoms = jnp.asarray(system.positions, dtype)
    charges = jnp.asarray(system.charges, dtype)
    log_abs = lambda params, x: apply(params, x)[1]
    if kinetic is None or method != "forward":   # kinetic_energy also rejects an unknown method
        kinetic = kinetic_energy(log_abs, method, sparsity)

    def e_local(params, x):
        return kinetic(params, x) + potential_energy(x, atoms, charges)
    return e_local

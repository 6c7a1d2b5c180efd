"""ablate.wavefunction.small_det.slogdet against LAPACK's (jnp.linalg.slogdet) and against exact determinants."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.wavefunction import small_det


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 10, 14, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_lapack_on_random_batches(n, dtype):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(3, 17, n, n)).astype(dtype)
    sign, logdet = jax.jit(small_det.slogdet)(jnp.asarray(a))     # x64 is on in the tests
    ref_sign, ref_logdet = jnp.linalg.slogdet(jnp.asarray(a))
    assert sign.shape == logdet.shape == (3, 17) and logdet.dtype == dtype
    np.testing.assert_array_equal(np.asarray(sign), np.asarray(ref_sign))
    # Both against the float64 truth, within the rounding a matrix of its condition number allows
    # (first order: |d log|det|| <= n * eps * cond(a)); an ill-conditioned float32 draw moves
    # LAPACK's log|det| by 2e-4 as well, so a fixed tolerance between the two was a coin toss.
    a64 = a.astype(np.float64)
    truth = np.linalg.slogdet(a64)[1]
    eps = np.finfo(dtype).eps
    bound = 4 * n * eps * np.linalg.cond(a64) + 8 * eps * np.maximum(1.0, np.abs(truth))
    for got in (np.asarray(logdet, np.float64), np.asarray(ref_logdet, np.float64)):
        assert np.all(np.abs(got - truth) <= bound), np.max(np.abs(got - truth) / bound)


def test_permutations_and_a_known_determinant():
    # every 4 x 4 permutation matrix: sign = parity, log|det| = 0
    for perm in itertools.permutations(range(4)):
        p = np.eye(4)[list(perm)]
        parity = np.linalg.det(p)
        sign, logdet = small_det.slogdet(jnp.asarray(p, jnp.float32))
        assert float(sign) == parity and float(logdet) == 0.0
    # a triangular matrix needing pivots: det = product of the diagonal up to the row order
    a = np.array([[0.0, 2.0, 1.0], [3.0, 0.5, 0.0], [0.0, 0.0, -4.0]])
    sign, logdet = small_det.slogdet(jnp.asarray(a, jnp.float32))
    assert float(sign) == np.sign(np.linalg.det(a))
    assert float(logdet) == pytest.approx(np.log(abs(np.linalg.det(a))), rel=1e-6)


def test_a_singular_matrix_gives_sign_zero_and_minus_infinity_like_lapack():
    a = np.random.default_rng(0).normal(size=(2, 4, 4)).astype(np.float32)
    a[0, :, 2] = 0.0                       # a zero column
    a[1, 3] = a[1, 1]                      # two equal rows
    sign, logdet = small_det.slogdet(jnp.asarray(a))
    ref_sign, ref_logdet = jnp.linalg.slogdet(jnp.asarray(a))
    assert float(sign[0]) == 0.0 and float(logdet[0]) == -np.inf
    assert float(ref_sign[0]) == 0.0 and float(ref_logdet[0]) == -np.inf
    # two equal rows: the elimination leaves an exact zero pivot, like LAPACK's
    assert float(sign[1]) == float(ref_sign[1]) and float(logdet[1]) == float(ref_logdet[1])
    assert not np.any(np.isnan(np.asarray(logdet)))


def test_large_matrices_go_to_lapack():
    # LAPACK's LU is the custom call named getrf in the lowered program (a jaxpr's variable
    # names can spell "lu", so the jaxpr text is no evidence either way)
    a = jnp.asarray(np.random.default_rng(1).normal(size=(small_det.MAX_UNROLLED + 1,) * 2), jnp.float32)
    assert "getrf" in jax.jit(small_det.slogdet).lower(a).as_text()
    small = jnp.asarray(np.random.default_rng(1).normal(size=(small_det.MAX_UNROLLED,) * 2), jnp.float32)
    assert "getrf" not in jax.jit(small_det.slogdet).lower(small).as_text()

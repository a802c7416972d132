"""Lanczos tridiagonalization and the float64 tridiagonal eigen-solve, against numpy eigh."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab.curvature import lanczos, tridiagonal_eigh
from jaxopt_lab.curvature.lanczos import lanczos_with_beta


def _sym_matrix(eigenvalues, seed=0):
    ev = np.asarray(eigenvalues, np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(ev.size, ev.size)))
    return (q * ev) @ q.T


# negative, clustered and repeated eigenvalues
SPECTRUM = np.concatenate([[-4.0, -4.0, -1.5], [0.5, 0.5001, 0.5002], np.linspace(1, 2, 10),
                           [7.0, 7.0]])


def _run(a, m, reorthogonalize=True, key=None):
    a32 = jnp.asarray(a, jnp.float32)
    fn = jax.jit(lambda mat, v: lanczos_with_beta(lambda u: mat @ u, v, m,
                                                  reorthogonalize=reorthogonalize, key=key))
    return fn(a32, jnp.ones(a.shape[0], jnp.float32))


def test_full_lanczos_reproduces_spectrum_and_orthonormal_basis():
    a = _sym_matrix(SPECTRUM)
    n = a.shape[0]
    res, _ = _run(a, n)
    q = np.asarray(res.basis, np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(n), atol=2e-6)
    t = np.diag(res.alphas) + np.diag(res.betas, 1) + np.diag(res.betas, -1)
    np.testing.assert_allclose(q @ a @ q.T, t, atol=2e-5)
    evals, evecs = tridiagonal_eigh(res.alphas, res.betas)
    # repeated eigenvalues are all found: a breakdown restarts with an orthogonal vector
    np.testing.assert_allclose(np.asarray(evals), np.linalg.eigvalsh(a), atol=2e-5)
    np.testing.assert_allclose(np.asarray(evecs) @ np.diag(evals) @ np.asarray(evecs).T, t,
                               atol=2e-5)


def test_partial_lanczos_extreme_ritz_values_converge():
    a = _sym_matrix(np.concatenate([[-30.0], np.linspace(0, 1, 200), [40.0]]), seed=1)
    res, beta_m = _run(a, 25)
    assert res.alphas.shape == (25,) and res.betas.shape == (24,) and res.basis.shape == (25, 202)
    q = np.asarray(res.basis, np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(25), atol=2e-6)
    evals, _ = tridiagonal_eigh(res.alphas, res.betas)
    np.testing.assert_allclose([evals[0], evals[-1]], [-30.0, 40.0], rtol=1e-5)
    assert float(beta_m) > 0


def test_breakdown_restarts_and_keeps_basis_orthonormal():
    # 3 distinct eigenvalues: the Krylov space of a generic v0 is invariant after 3 steps.
    spectrum = np.repeat([-2.0, 1.0, 5.0], 4)
    a = _sym_matrix(spectrum, seed=3)
    res, _ = _run(a, 12, key=jax.random.key(7))
    assert np.all(np.isfinite(res.basis))
    assert np.isclose(float(res.betas[2]), 0.0)  # breakdown recorded as beta = 0
    q = np.asarray(res.basis, np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(12), atol=2e-6)
    evals, _ = tridiagonal_eigh(res.alphas, res.betas)
    np.testing.assert_allclose(np.asarray(evals), np.linalg.eigvalsh(a), atol=2e-5)


def test_without_reorthogonalization_few_steps_agree():
    a = _sym_matrix(SPECTRUM)
    plain, _ = _run(a, 6, reorthogonalize=False)
    full, _ = _run(a, 6)
    np.testing.assert_allclose(plain.alphas, full.alphas, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plain.betas, full.betas, rtol=1e-4, atol=1e-5)


def _count_eqns(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += _count_eqns(sub)
    return total


def test_loop_is_not_unrolled():
    mat = jnp.eye(16)
    sizes = []
    for m in (10, 100):
        jpr = jax.make_jaxpr(lambda v, m=m: lanczos(lambda u: mat @ u, v, m))(jnp.ones(16))
        sizes.append(_count_eqns(jpr.jaxpr))
    assert sizes[0] == sizes[1], sizes


def test_tridiagonal_eigh_is_float64_inside_jit():
    # Lanczos tridiagonal of diag(1e3, 3, 1, 1e-2, 1e-5) (float64, cast to float32). A
    # float32 eigh gets the smallest eigenvalue wrong by ~3x (absolute error ~1e-5);
    # the float64 solve must get it to 1e-4 relative.
    alphas = np.array([2.0080200e02, 8.0019153e02, 2.0112774e00, 1.0000129e00, 5.1886658e-03],
                      np.float32)
    betas = np.array([3.9960049e02, 2.7312944e00, 7.0551080e-01, 1.2224517e-02], np.float32)
    t = np.diag(alphas.astype(np.float64)) + np.diag(betas.astype(np.float64), 1)
    t = t + np.diag(betas.astype(np.float64), -1)
    expected = np.linalg.eigvalsh(t)
    evals, evecs = jax.jit(tridiagonal_eigh)(alphas, betas)
    assert evals.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(evals, np.float64), expected, rtol=1e-4)
    v = np.asarray(evecs, np.float64)
    np.testing.assert_allclose(v.T @ v, np.eye(5), atol=1e-6)
    np.testing.assert_allclose(v @ np.diag(np.asarray(evals, np.float64)) @ v.T, t,
                               rtol=1e-5, atol=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="num_iters"):
        lanczos(lambda u: u, jnp.ones(3), 0)
    with pytest.raises(ValueError, match="v0"):
        lanczos(lambda u: u, jnp.ones((3, 1)), 2)
    with pytest.raises(ValueError, match="v0 must be a nonzero"):
        lanczos(lambda u: u, jnp.zeros(3), 2)
    with pytest.raises(ValueError, match="v0 must be finite"):
        lanczos(lambda u: u, jnp.array([1.0, jnp.nan]), 2)
    with pytest.raises(ValueError, match="betas"):
        tridiagonal_eigh(jnp.ones(3), jnp.ones(3))

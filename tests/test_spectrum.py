"""eigsh / power_iteration / trace / spectral_density against dense float64 oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_lab.curvature import (
    eigsh,
    eigsh_matvec,
    power_iteration,
    spectral_density,
    trace,
)

K0 = jax.random.key(0)  # the start-vector key (eigsh/power_iteration need one)


def _sym_matrix(eigenvalues, seed=0):
    ev = np.asarray(eigenvalues, np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(ev.size, ev.size)))
    return (q * ev) @ q.T


TRACES = []


def quad(x, a):
    """0.5 x^T A x: Hessian A (passed as an argument, not closed over)."""
    TRACES.append(1)  # runs only while tracing: counts compiles
    return 0.5 * x @ (a @ x)


N = 24
# negative, clustered and repeated eigenvalues
SPECTRUM = np.concatenate([[-6.0, -6.0, -2.0], [0.3, 0.3001], np.linspace(0.5, 1.5, 16),
                           [4.0, 9.0, 9.0]])
A = _sym_matrix(SPECTRUM)
A32 = jnp.asarray(A, jnp.float32)


def _resid64(a, vals, vecs):
    vecs = np.asarray(vecs, np.float64)
    vals = np.asarray(vals, np.float64)
    return np.linalg.norm(vecs @ a - vals[:, None] * vecs, axis=1)


def test_eigsh_both_quadratic_negative_clustered_repeated():
    # num_iters = dim: full Krylov space, so repeated eigenvalues appear with multiplicity.
    res = eigsh(quad, jnp.zeros(N), A32, k=3, which="both", num_iters=N, key=K0)
    dense = np.linalg.eigvalsh(A)  # float64 oracle
    expected = np.concatenate([dense[:3], dense[::-1][:3]])
    np.testing.assert_allclose(np.asarray(res.eigenvalues), expected, atol=1e-4)
    assert res.eigenvectors.shape == (6, N)
    # reported residuals are real ||Hv - lambda v|| (checked in float64 with A)
    np.testing.assert_allclose(res.residuals, _resid64(A, res.eigenvalues, res.eigenvectors),
                               atol=2e-6)
    assert np.all(np.asarray(res.residuals) < 1e-4) and bool(np.all(res.converged))
    assert res.num_hvps == N + 6


def test_eigsh_partial_krylov_and_caching():
    # A (clipped) num_iters above dim behaves like num_iters = dim; the same f, shapes and
    # static options reuse the compiled program.
    r1 = eigsh(quad, jnp.zeros(N), A32, k=3, which="both", num_iters=10 * N, key=K0)
    after_first = len(TRACES)
    r2 = eigsh(quad, jnp.ones(N), 2.0 * A32, k=3, which="both", num_iters=N, key=K0)
    assert len(TRACES) == after_first  # second call: no retrace
    np.testing.assert_allclose(r2.eigenvalues, 2.0 * r1.eigenvalues, rtol=1e-5, atol=1e-5)
    # fewer steps than dim: the well separated extremes still converge
    a = _sym_matrix(np.concatenate([[-50.0], np.linspace(0.0, 1.0, 100), [80.0, 60.0]]), 2)
    r3 = eigsh(quad, jnp.zeros(103), jnp.asarray(a, jnp.float32), k=1, which="both",
               num_iters=30, key=K0)
    np.testing.assert_allclose(r3.eigenvalues, [-50.0, 80.0], rtol=1e-5)
    np.testing.assert_allclose(r3.residuals, _resid64(a, r3.eigenvalues, r3.eigenvectors),
                               rtol=1e-3, atol=1e-5)


def rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def test_eigsh_rosenbrock_minimum():
    res = eigsh(rosenbrock, jnp.ones(2), k=1, which="both", key=K0)
    np.testing.assert_allclose(res.eigenvalues, [0.39936, 1001.6006], rtol=1e-4)
    h = np.array([[802.0, -400.0], [-400.0, 200.0]])
    np.testing.assert_allclose(res.residuals, _resid64(h, res.eigenvalues, res.eigenvectors),
                               atol=1e-3)


def least_squares(w, x, y):
    return 0.5 * jnp.mean((x @ w - y) ** 2)


def test_eigsh_least_squares_gram_matrix():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 12)) * np.linspace(0.2, 3.0, 12)
    y = rng.normal(size=64)
    expected = np.linalg.eigvalsh(x.T @ x / 64)
    res = eigsh(least_squares, jnp.zeros(12), jnp.asarray(x, jnp.float32),
                jnp.asarray(y, jnp.float32), k=2, which="LA", num_iters=12, key=K0)
    np.testing.assert_allclose(res.eigenvalues, expected[::-1][:2], rtol=1e-4)


class _MLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(3, 5, rngs=rngs)
        self.l2 = nnx.Linear(5, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def test_eigsh_flax_nnx_pytree_against_dense_float64():
    graphdef, state = nnx.split(_MLP(nnx.Rngs(0)))
    kx, ky = jax.random.split(jax.random.key(1))
    batch = (jax.random.normal(kx, (16, 3)), jax.random.normal(ky, (16, 2)))

    def loss(params, batch):
        model = nnx.merge(graphdef, params)
        return jnp.mean((model(batch[0]) - batch[1]) ** 2)

    res = eigsh(loss, state, batch, k=2, which="both", num_iters=32, key=K0)
    leaves = jax.tree_util.tree_leaves(res.eigenvectors)
    assert all(leaf.shape[0] == 4 for leaf in leaves)

    with jax.enable_x64(True):
        state64 = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), state)
        batch64 = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), batch)
        flat, unravel = jax.flatten_util.ravel_pytree(state64)
        h = np.asarray(jax.jit(jax.hessian(lambda z: loss(unravel(z), batch64)))(flat))
    dense = np.linalg.eigvalsh(0.5 * (h + h.T))
    scale = np.abs(dense).max()
    expected = np.concatenate([dense[:2], dense[::-1][:2]])
    np.testing.assert_allclose(res.eigenvalues, expected, atol=2e-4 * scale)
    vecs = np.stack([jax.flatten_util.ravel_pytree(jax.tree_util.tree_map(lambda v, i=i: v[i],
                     res.eigenvectors))[0] for i in range(4)])
    np.testing.assert_allclose(res.residuals, _resid64(h, res.eigenvalues, vecs),
                               atol=1e-4 * scale)


def test_eigsh_matvec_inside_jit():
    @jax.jit
    def top(a):
        res = eigsh_matvec(lambda v: a @ v, N, k=2, which="SA", num_iters=N, key=K0)
        return res.eigenvalues

    np.testing.assert_allclose(top(A32), [-6.0, -6.0], atol=1e-4)


def test_power_iteration_deflation_top2():
    spectrum = np.concatenate([[10.0, 6.0], np.linspace(-1.0, 2.0, N - 2)])
    a = jnp.asarray(_sym_matrix(spectrum, 5), jnp.float32)
    res = power_iteration(quad, jnp.zeros(N), a, k=2, num_iters=300, tol=1e-4, key=K0)
    np.testing.assert_allclose(res.eigenvalues, [10.0, 6.0], rtol=1e-4)
    assert bool(np.all(res.converged))
    assert np.all(np.asarray(res.num_hvps) > 1) and np.all(np.asarray(res.num_hvps) < 300)
    resid = _resid64(np.asarray(a, np.float64), res.eigenvalues, res.eigenvectors)
    np.testing.assert_allclose(res.residuals, resid, rtol=1e-2, atol=1e-5)
    # first pair: true relative residual <= tol; the deflated second pair inherits the
    # first vector's error (~ lambda_1 * tol * lambda_1 / gap)
    assert resid[0] <= 1.01e-4 * 10.0 and resid[1] <= 10.0 * 1e-4 * 10.0 / 4.0


LOW_RANK = np.concatenate([[200.0, 150.0, 120.0, 100.0], np.full(N - 4, 0.5)])
A_LOW = jnp.asarray(_sym_matrix(LOW_RANK, 6), jnp.float32)


def test_trace_within_standard_errors_and_hutchpp_lower_variance():
    true = LOW_RANK.sum()
    est = {"hutchinson": [], "hutch++": []}
    ses = {"hutchinson": [], "hutch++": []}
    for seed in range(12):
        for method in est:
            e, s, *_ = trace(quad, jnp.zeros(N), A_LOW, key=jax.random.key(seed), num_probes=30,
                         method=method)
            est[method].append(float(e))
            ses[method].append(float(s))
    for method in est:
        z = (np.asarray(est[method]) - true) / np.asarray(ses[method])
        assert np.all(np.abs(z) < 5.0), (method, z)
    assert np.std(est["hutch++"]) < 0.25 * np.std(est["hutchinson"])
    assert np.mean(ses["hutch++"]) < 0.25 * np.mean(ses["hutchinson"])


def test_spectral_density_integrates_to_one_and_mean_is_trace_over_n():
    # Diagonal Hessian: with Rademacher probes v^T H v / n = tr(H) / n exactly, and with
    # num_iters = n every probe's nodes are the eigenvalues.
    diag = np.linspace(-2.0, 5.0, N)
    d = jnp.asarray(np.diag(diag), jnp.float32)
    out = spectral_density(quad, jnp.zeros(N), d, key=jax.random.key(3), num_probes=4,
                           num_iters=N)
    grid, dens = np.asarray(out.grid, np.float64), np.asarray(out.density, np.float64)
    np.testing.assert_allclose(np.trapezoid(dens, grid), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.trapezoid(dens * grid, grid), diag.mean(), atol=1e-3)
    np.testing.assert_allclose(np.asarray(out.weights).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sort(np.asarray(out.nodes), axis=1),
                               np.broadcast_to(diag, (4, N)), atol=1e-4)
    # user grid and sigma: the density is the closed-form mixture of Gaussians at diag
    grid = np.linspace(-4.0, 7.0, 1101)
    user = spectral_density(quad, jnp.zeros(N), d, key=jax.random.key(4), num_probes=4,
                            num_iters=N, grid=jnp.asarray(grid, jnp.float32), sigma=0.2)
    want = np.mean(np.exp(-0.5 * ((grid[:, None] - diag) / 0.2) ** 2), axis=1)
    want /= 0.2 * np.sqrt(2.0 * np.pi)
    np.testing.assert_allclose(np.asarray(user.density), want, atol=2e-3)


def _never_trace(x, *args):
    raise AssertionError("f was traced: validation must happen before compiling")


def test_bad_input_raises_before_compiling():
    x = jnp.zeros(4)
    with pytest.raises(ValueError, match="k"):
        eigsh(_never_trace, x, k=5, key=K0)
    with pytest.raises(ValueError, match="k"):
        eigsh(_never_trace, x, k=3, which="both", key=K0)
    with pytest.raises(ValueError, match="num_iters"):
        eigsh(_never_trace, x, num_iters=0, key=K0)
    with pytest.raises(ValueError, match="num_iters"):
        eigsh(_never_trace, x, k=3, num_iters=2, key=K0)
    with pytest.raises(ValueError, match="which"):
        eigsh(_never_trace, x, which="LX", key=K0)
    with pytest.raises(ValueError, match="x must be finite"):
        eigsh(_never_trace, x.at[1].set(jnp.nan), key=K0)
    with pytest.raises(TypeError, match="k"):
        eigsh(_never_trace, x, k=1.5, key=K0)
    with pytest.raises(TypeError, match="x must contain only floating"):
        eigsh(_never_trace, {"w": x, "count": jnp.array(3)}, key=K0)
    with pytest.raises(ValueError, match="x must contain at least one"):
        eigsh(_never_trace, {}, key=K0)
    with pytest.raises(ValueError, match="num_iters"):
        power_iteration(_never_trace, x, num_iters=0, key=K0)
    with pytest.raises(ValueError, match="k"):
        power_iteration(_never_trace, x, k=9, key=K0)
    with pytest.raises(ValueError, match="method"):
        trace(_never_trace, x, key=jax.random.key(0), method="exact")
    with pytest.raises(ValueError, match="num_probes"):
        trace(_never_trace, x, key=jax.random.key(0), num_probes=1)
    with pytest.raises(ValueError, match="x must be finite"):
        trace(_never_trace, x.at[0].set(jnp.inf), key=jax.random.key(0))
    with pytest.raises(ValueError, match="sigma"):
        spectral_density(_never_trace, x, key=jax.random.key(0), sigma=-1.0)
    with pytest.raises(ValueError, match="grid"):
        spectral_density(_never_trace, x, key=jax.random.key(0), grid=jnp.zeros((2, 2)))

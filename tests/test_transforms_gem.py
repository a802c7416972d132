"""GEM / A-GEM: projections against float64 oracles (scipy NNLS, brute-force active sets)."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST
from scipy.optimize import nnls

from jaxopt_lab.transforms import agem, agem_project, gem, gem_project

T_MAX, N_MAX = 20, 1000

# Cheap XLA compiles: these tests check values, not speed.
jit = functools.partial(jax.jit, compiler_options=FAST)


@jit
@jax.vmap
def _solve(g, G, margin):
    return gem_project(g, G, margin=margin)


def _pad(g, G):
    """Embed a (t, n) problem in (T_MAX, N_MAX): zero rows/columns change nothing."""
    t, n = G.shape
    gp = np.zeros(N_MAX)
    gp[:n] = g
    Gp = np.zeros((T_MAX, N_MAX))
    Gp[:t, :n] = G
    return gp, Gp


def solve_many(problems):
    """Solve a list of (g, G, margin) with ONE compiled, vmapped gem_project."""
    gs, Gs = zip(*[_pad(g, G) for g, G, _ in problems], strict=True)
    ms = np.array([m for _, _, m in problems], np.float32)
    out = _solve(
        jnp.asarray(np.stack(gs), jnp.float32),
        jnp.asarray(np.stack(Gs), jnp.float32),
        jnp.asarray(ms),
    )
    out = np.asarray(out, np.float64)
    return [o[: g.shape[0]] for o, (g, _, _) in zip(out, problems, strict=True)]


def oracle_nnls(g, G, margin=0.0):
    """Dual as NNLS in float64: min_{w>=0} ||G^T w + (g + G^T margin 1)||, v = w + margin."""
    b = g + G.T @ np.full(G.shape[0], margin)
    w, _ = nnls(G.T, -b, maxiter=50 * G.shape[0])
    return g + G.T @ (w + margin)


def oracle_bruteforce(g, G):
    """Enumerate every active set of the primal QP (t small) in float64; keep the best."""
    best, best_d = g.copy() if np.all(G @ g >= 0) else None, np.inf
    if best is not None:
        return best
    t = G.shape[0]
    for r in range(1, t + 1):
        for A in itertools.combinations(range(t), r):
            GA = G[list(A)]
            # closest point to g on {x: G_A x = 0}
            x = g - GA.T @ np.linalg.lstsq(GA @ GA.T, GA @ g, rcond=None)[0]
            d = np.linalg.norm(x - g)
            if np.all(G @ x >= -1e-10 * np.linalg.norm(g)) and d < best_d:
                best, best_d = x, d
    return best


def _problem(seed, t, n, correlated):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((t, n))
    g = rng.standard_normal(n)
    if correlated:  # past tasks agree with each other, g fights them
        G = G + 2.0 * rng.standard_normal(n)[None]
        g = g - 0.5 * G.mean(0)
    return g, G


def _feasible_problem():
    rng = np.random.default_rng(1)
    g = rng.standard_normal(40)
    G = rng.standard_normal((7, 40))
    return g, G * np.sign(G @ g)[:, None]  # every <g, G_k> > 0


def _rank_deficient_problem():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((4, 30))
    G = np.concatenate([base, 2.0 * base, base[:2] - base[2:]])  # rank 4, t = 10
    return rng.standard_normal(30) - G.mean(0), G


RANDOM = [
    (0, 1, 10, False),
    (1, 5, 200, True),
    (2, 20, 1000, False),
    (3, 20, 1000, True),
    (4, 20, 12, True),
    (6, 13, 517, False),
]
BRUTE = _problem(7, 5, 8, True)
MARGIN = 0.3


@pytest.fixture(scope="module")
def solved():
    problems = [(*_problem(*r), 0.0) for r in RANDOM]
    problems += [(*BRUTE, 0.0), (*_rank_deficient_problem(), 0.0)]
    problems += [(*_problem(5, 6, 50, True), MARGIN), (*_feasible_problem(), 0.5)]
    return problems, solve_many(problems)


def test_gem_matches_float64_qp_and_satisfies_constraints(solved):
    problems, outs = solved
    for (g, G, _), out in zip(problems[: len(RANDOM)], outs, strict=False):
        assert np.any(G @ g < 0)
        scale = np.linalg.norm(G, axis=1) * np.linalg.norm(g)
        assert np.min(G @ out / scale) >= -1e-5, G.shape
        np.testing.assert_allclose(out, oracle_nnls(g, G), atol=1e-5 * np.linalg.norm(g))


def test_gem_matches_bruteforce_active_set_enumeration(solved):
    g, G = BRUTE
    ref = oracle_bruteforce(g, G)
    out = solved[1][len(RANDOM)]
    np.testing.assert_allclose(out, ref, atol=1e-5 * np.linalg.norm(g))
    np.testing.assert_allclose(oracle_nnls(g, G), ref, atol=1e-8)


def test_gem_rank_deficient_memory(solved):
    (g, G, _), out = solved[0][len(RANDOM) + 1], solved[1][len(RANDOM) + 1]
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, oracle_nnls(g, G), atol=1e-5 * np.linalg.norm(g))


def test_gem_margin_is_dual_lower_bound(solved):
    (g, G, m), out = solved[0][-2], solved[1][-2]
    np.testing.assert_allclose(out, oracle_nnls(g, G, margin=m), atol=1e-5 * np.linalg.norm(g))
    assert np.min(G @ out) >= -1e-5 * np.linalg.norm(g) * np.linalg.norm(G, axis=1).max()
    # margin changes the answer (it is not a no-op) when some constraint is violated
    assert np.linalg.norm(out - oracle_nnls(g, G)) > 1e-3


def test_gem_returns_g_unchanged_when_feasible(solved):
    (g, _, _), out = solved[0][-1], solved[1][-1]
    np.testing.assert_array_equal(out, g.astype(np.float32))


def test_gem_pytree_equals_flat():
    rng = np.random.default_rng(2)
    g = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    G = {"a": rng.standard_normal((6, 3, 4)), "b": rng.standard_normal((6, 5))}
    g["a"] -= G["a"].mean(0)
    flat_g = np.concatenate([g["a"].ravel(), g["b"]])
    flat_G = np.concatenate([G["a"].reshape(6, -1), G["b"]], axis=1)
    g, G = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), (g, G))
    out = jit(gem_project)(g, G)
    (flat_out,) = solve_many([(flat_g, flat_G, 0.0)])
    np.testing.assert_allclose(
        np.concatenate([np.ravel(out["a"]), out["b"]]), flat_out, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(flat_out, oracle_nnls(flat_g, flat_G), atol=1e-5)


def test_gem_validation():
    g = jnp.ones(5)
    with pytest.raises(ValueError, match="G"):
        gem_project(g, jnp.ones((3, 4)))  # wrong width
    with pytest.raises(ValueError, match="G"):
        gem_project({"a": g}, {"b": jnp.ones((2, 5))})
    with pytest.raises(ValueError, match="margin"):
        gem_project(g, jnp.ones((3, 5)), margin=-1.0)
    with pytest.raises(ValueError, match="margin"):
        gem(margin=-0.1)
    with pytest.raises(ValueError, match="g_ref"):
        agem_project(g, jnp.ones(4))


def test_gem_transform_in_chain_counts_projections():
    opt = optax.chain(gem(), optax.sgd(1.0))
    p = jnp.zeros(3)
    state = opt.init(p)
    G = jnp.array([[0.0, 1.0, 0.0]])
    u, state = jit(opt.update)(jnp.array([1.0, -1.0, 2.0]), state, p, memory_grads=G)
    np.testing.assert_allclose(u, [-1.0, 0.0, -2.0], atol=1e-6)
    u, state = opt.update(jnp.array([1.0, 1.0, 2.0]), state, p, memory_grads=G)
    np.testing.assert_array_equal(u, [-1.0, -1.0, -2.0])
    u, state = opt.update(jnp.array([1.0, -1.0, 2.0]), state, p)  # no memory yet
    np.testing.assert_array_equal(u, [-1.0, 1.0, -2.0])
    assert int(state[0].num_projected) == 1 and int(state[0].count) == 3


def test_agem_matches_closed_form():
    rng = np.random.default_rng(4)
    project = jit(agem_project)
    for _ in range(4):
        g, r = rng.standard_normal(20), rng.standard_normal(20)
        dot = g @ r
        ref = g - dot / (r @ r) * r if dot < 0 else g
        out = project(jnp.asarray(g, jnp.float32), jnp.asarray(r, jnp.float32))
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
        if dot < 0:
            assert abs(float(jnp.dot(out, jnp.asarray(r, jnp.float32)))) < 1e-4
    # pytree, violated and not violated; zero reference leaves g unchanged
    g = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([0.5])}
    r = {"a": jnp.array([0.0, 1.0]), "b": jnp.array([0.0])}
    project = jit(agem_project)
    out = project(g, r)
    np.testing.assert_allclose(out["a"], [1.0, 0.0])
    np.testing.assert_array_equal(project(g, jax.tree.map(jnp.negative, r))["a"], g["a"])
    np.testing.assert_array_equal(project(g, jax.tree.map(jnp.zeros_like, r))["a"], g["a"])


def test_agem_transform():
    opt = optax.chain(agem(), optax.sgd(1.0))
    p = jnp.zeros(2)
    state = opt.init(p)
    u, state = opt.update(jnp.array([1.0, -2.0]), state, p, ref_grads=jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(u, [-1.0, 0.0])
    assert int(state[0].num_projected) == 1


def test_gem_float32_constraints_hold_after_refinement():
    """t = 20 past tasks, n = 1000, float32: every <g~, G_k> >= -3e-5 (absolute, with
    ||G_k|| ~ 32 and ||g|| up to ~100) and g~ within 2e-6 of the float64 NNLS solution.
    Without the primal refinement step the dual solve leaves violations near -2.5e-4."""
    rng = np.random.default_rng(1)
    t, n = 20, 1000
    run = jax.jit(lambda g, G: gem_project(g, G), compiler_options=FAST)
    for shift in (1.0, 3.0, 5.0):
        G = rng.normal(size=(t, n))
        g = rng.normal(size=n) - shift * G.mean(0)
        out = np.asarray(run(jnp.asarray(g, jnp.float32), jnp.asarray(G, jnp.float32)), np.float64)
        w, _ = nnls(G.T, -g)
        assert np.min(G @ out) >= -3e-5, (shift, np.min(G @ out))
        np.testing.assert_allclose(out, g + G.T @ w, atol=2e-6)


def test_nonfinite_memory_skips_projection_and_is_counted_inside_jit():
    g = jnp.array([1.0, -1.0, 0.5])
    G_ok = jnp.array([[0.0, 1.0, 0.0]])  # violated: g . G_0 = -1 < 0
    G_nan = G_ok.at[0, 2].set(jnp.nan)
    opt = gem()
    run = jax.jit(lambda g, G, s: opt.update(g, s, memory_grads=G))
    s = opt.init(g)
    out, s = run(g, G_ok, s)
    np.testing.assert_allclose(out, [1.0, 0.0, 0.5], atol=1e-6)  # projected
    out, s = run(g, G_nan, s)
    np.testing.assert_array_equal(out, g)  # skipped: g unchanged, not NaN
    out, s = run(g, G_ok.at[0, 0].set(jnp.inf), s)
    np.testing.assert_array_equal(out, g)
    assert (int(s.count), int(s.num_projected), int(s.nonfinite_memory)) == (3, 1, 2)

    aopt = agem()
    arun = jax.jit(lambda g, r, s: aopt.update(g, s, ref_grads=r))
    s = aopt.init(g)
    out, s = arun(g, G_ok[0], s)
    np.testing.assert_allclose(out, [1.0, 0.0, 0.5], atol=1e-6)
    out, s = arun(g, G_nan[0], s)
    np.testing.assert_array_equal(out, g)
    # a finite reference that does not bind is neither projected nor flagged
    out, s = arun(g, -G_ok[0], s)
    np.testing.assert_array_equal(out, g)
    assert (int(s.count), int(s.num_projected), int(s.nonfinite_memory)) == (3, 1, 1)


def test_eager_projections_name_nonfinite_arguments():
    g = jnp.array([1.0, -1.0])
    with pytest.raises(ValueError, match="G must be finite"):
        gem_project(g, jnp.array([[jnp.nan, 1.0]]))
    with pytest.raises(ValueError, match="g must be finite"):
        gem_project(jnp.array([jnp.inf, 1.0]), jnp.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="g_ref must be finite"):
        agem_project(g, jnp.array([0.0, jnp.nan]))
    with pytest.raises(ValueError, match="g must be finite"):
        agem_project(jnp.array([jnp.nan, 1.0]), jnp.array([0.0, 1.0]))
    # inside jit the values are unknown: no error, the projection is skipped
    out = jax.jit(agem_project)(g, jnp.array([0.0, jnp.nan]))
    np.testing.assert_array_equal(out, g)
    out = jax.jit(gem_project)(g, jnp.array([[jnp.nan, 1.0]]))
    np.testing.assert_array_equal(out, g)

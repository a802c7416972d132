"""Tests for jaxopt_lab.landscapes: catalogs re-verified with classify, closed-form oracles."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import landscapes
from jaxopt_lab.curvature import classify, classify_batch

EPS32 = float(np.finfo(np.float32).eps)

CONTRACT_NAMES = [
    "sin_quadratic_1d", "saddle", "saddle_xy", "saddle_xy3", "saddle_trig", "saddle_ripple",
    "dauphin_saddle", "monkey_saddle", "rosenbrock", "rastrigin", "ackley", "styblinski_tang",
    "levy", "himmelblau", "six_hump_camel", "goldstein_price", "deep_linear_scalar",
    "quadratic", "least_squares",
]

# Every registry landscape at its default dim, plus N-d ones in other dims.
EXTRA_DIMS = [
    ("rosenbrock", 3), ("rosenbrock", 4), ("rastrigin", 1), ("rastrigin", 3),
    ("styblinski_tang", 3), ("quadratic", 4),
]


def _all_landscapes():
    out = [landscapes.get(n) for n in landscapes.names()]
    out += [landscapes.get(n, dim=d) for n, d in EXTRA_DIMS]
    out += [landscapes.quadratic([2.0, -1.0, -1.0], seed=5), landscapes.deep_linear_scalar(2.5)]
    return out


def _by_dim(ls):
    groups: dict[int, list] = {}
    for L in ls:
        if L.critical_points:
            groups.setdefault(L.dim, []).append(L)
    return groups


def _switched(ls):
    """One function selecting landscape i: one compile covers a whole group."""
    fns = [L.fn for L in ls]
    return lambda x, i: jax.lax.switch(i, fns, x)


def test_names_cover_contract():
    assert set(CONTRACT_NAMES) <= set(landscapes.names())
    assert landscapes.names() == sorted(landscapes.names())


def test_every_catalog_point_reclassifies():
    """Every catalog point (and every global minimum) re-classified in float32 with classify.

    One compiled program per dimension (a lax.switch over the landscapes of that dim).
    The kind must match the catalog (global minima: "minimum" or "degenerate"), and the
    float32 gradient must sit within the rounding error of storing x in float32
    (~ eps ||H|| ||x||) plus 1e-5.
    """
    for dim, ls in sorted(_by_dim(_all_landscapes()).items()):
        g = _switched(ls)
        pts = [(i, p.x, p.kind) for i, L in enumerate(ls) for p in L.critical_points]
        pts += [(i, x, "global_min") for i, L in enumerate(ls) for x in L.global_minima]
        idx = np.array([p[0] for p in pts])
        xs = np.stack([p[1] for p in pts])
        kinds = np.array([p[2] for p in pts])
        names = np.array([ls[i].name for i in idx])
        c32 = classify_batch(g, jnp.asarray(xs, jnp.float32), jnp.asarray(idx),
                             grad_tol=1e30, batched_args=True)
        is_min = kinds == "global_min"
        kinds[is_min] = np.where(c32.kind[is_min] == "degenerate", "degenerate", "minimum")
        bad = c32.kind != kinds
        assert not bad.any(), (dim, names[bad], xs[bad], c32.kind[bad], kinds[bad])
        hnorm = np.max(np.abs(c32.eigenvalues), axis=1)
        tol = 1e-5 + 16 * EPS32 * hnorm * np.maximum(1.0, np.linalg.norm(xs, axis=1))
        bad = c32.grad_norm > tol
        assert not bad.any(), (names[bad], xs[bad], c32.grad_norm[bad], tol[bad])


def test_catalog_values_and_f_min():
    """Stored values equal f in float64; f at every global minimum equals f_min."""
    ls_all = _all_landscapes()
    for L in ls_all:
        lower, upper = L.bounds
        assert lower.shape == upper.shape == (L.dim,) and np.all(lower < upper), L.name
        assert L.global_minima.ndim == 2 and L.global_minima.shape[1] == L.dim, L.name
        if not np.isfinite(L.f_min):
            assert L.f_min == -math.inf and L.global_minima.shape[0] == 0, L.name
        else:
            assert L.global_minima.shape[0] >= 1, L.name
            cat = [p.value for p in L.critical_points]
            assert min(cat) >= L.f_min - 1e-9 * max(1.0, abs(L.f_min)), L.name
    for _, ls in sorted(_by_dim(ls_all).items()):
        g = jax.jit(jax.vmap(_switched(ls)))
        pts = [(i, p.x, p.value) for i, L in enumerate(ls) for p in L.critical_points]
        pts += [(i, x, L.f_min) for i, L in enumerate(ls) for x in L.global_minima]
        idx = np.array([p[0] for p in pts])
        with jax.enable_x64(True):
            got = np.asarray(g(jnp.asarray(np.stack([p[1] for p in pts])), jnp.asarray(idx)))
        want = np.array([p[2] for p in pts])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_unbounded_saddles_have_no_minimum():
    for name in ["saddle", "saddle_xy", "saddle_xy3", "saddle_trig", "saddle_ripple",
                 "dauphin_saddle", "monkey_saddle"]:
        L = landscapes.get(name)
        assert L.f_min == -math.inf and L.global_minima.shape == (0, 2)
        # unbounded below: f along the y axis goes to -inf
        assert float(L(jnp.array([0.0, 50.0]))) < -1000 or name == "monkey_saddle"
    assert float(landscapes.get("monkey_saddle")(jnp.array([-50.0, 0.0]))) < -1000


def _find(L, x, tol):
    hits = [p for p in L.critical_points if np.allclose(p.x, x, atol=tol)]
    assert len(hits) == 1, (L.name, x, [p.x for p in L.critical_points])
    return hits[0]


def test_himmelblau_published():
    L = landscapes.get("himmelblau")
    kinds = [p.kind for p in L.critical_points]
    assert len(kinds) == 9
    assert (kinds.count("minimum"), kinds.count("maximum"), kinds.count("saddle")) == (4, 1, 4)
    for x in [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]:
        p = _find(L, x, 1e-5)
        assert p.kind == "minimum" and abs(p.value) < 1e-10
    p = _find(L, (-0.270845, -0.923039), 1e-6)
    assert p.kind == "maximum" and abs(p.value - 181.617) < 1e-3
    assert L.f_min == 0.0 and L.global_minima.shape == (4, 2)


def test_six_hump_camel_and_goldstein_price_published():
    L = landscapes.get("six_hump_camel")
    assert [p.kind for p in L.critical_points].count("minimum") == 6
    assert abs(L.f_min - (-1.031628453489877)) < 1e-9
    got = sorted(map(tuple, np.round(L.global_minima, 4)))
    assert got == [(-0.0898, 0.7127), (0.0898, -0.7127)]
    G = landscapes.get("goldstein_price")
    assert G.f_min == pytest.approx(3.0, abs=1e-9)
    np.testing.assert_allclose(G.global_minima, [[0.0, -1.0]], atol=1e-9)
    for x, v in [((-0.6, -0.4), 30.0), ((1.8, 0.2), 84.0), ((1.2, 0.8), 840.0)]:
        p = _find(G, x, 1e-8)
        assert p.kind == "minimum" and p.value == pytest.approx(v, rel=1e-9)


def test_euler_characteristic_of_complete_catalogs():
    """Coercive 2-D f with all critical points in the box: #min - #saddle + #max = 1 (Morse)."""
    for name in ("himmelblau", "six_hump_camel", "goldstein_price", "rastrigin",
                 "styblinski_tang"):
        ks = [p.kind for p in landscapes.get(name).critical_points]
        assert ks.count("minimum") - ks.count("saddle") + ks.count("maximum") == 1, name
    # 1-D: minima and maxima alternate, one more minimum than maximum
    L = landscapes.get("sin_quadratic_1d")
    ks = [p.kind for p in sorted(L.critical_points, key=lambda p: p.x[0])]
    assert ks == ["minimum", "maximum"] * (len(ks) // 2) + ["minimum"]


def test_separable_products():
    L2 = landscapes.get("rastrigin")
    assert len(L2.critical_points) == 21**2
    L3 = landscapes.get("rastrigin", dim=3)  # subset: 1 + 3 * 20
    assert len(L3.critical_points) == 61 and "subset" in L3.catalog_note
    S3 = landscapes.get("styblinski_tang", dim=3)
    assert len(S3.critical_points) == 27
    assert S3.f_min == pytest.approx(-39.16616570377142 * 3, rel=1e-12)
    np.testing.assert_allclose(S3.global_minima, np.full((1, 3), -2.903534027771177), atol=1e-12)


def test_rosenbrock_hessian_at_minimum():
    L = landscapes.get("rosenbrock")
    c = classify(L.fn, jnp.ones(2))
    assert c.kind == "minimum"
    # float32: the small eigenvalue loses ~1e-5 relative to cancellation (802 + 200 - ...)
    np.testing.assert_allclose(c.eigenvalues, [0.39936, 1001.6006], rtol=1e-4)
    with jax.enable_x64(True):
        c = classify(L.fn, jnp.ones(2, jnp.float64))
    exact = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]]))
    np.testing.assert_allclose(c.eigenvalues, exact, rtol=1e-12)
    L4 = landscapes.get("rosenbrock", dim=4)
    p = _find(L4, (-0.7756592, 0.6130934, 0.3820628, 0.1459720), 1e-6)
    assert p.kind == "minimum"


def test_monkey_and_dauphin_saddles():
    c = classify(landscapes.get("monkey_saddle").fn, jnp.zeros(2))
    assert c.kind == "degenerate" and c.index == 0
    np.testing.assert_array_equal(c.eigenvalues, [0.0, 0.0])
    c = classify(landscapes.get("dauphin_saddle").fn, jnp.zeros(2))
    assert c.kind == "saddle" and c.index == 1
    np.testing.assert_allclose(c.eigenvalues, [-2.0, 10.0], rtol=1e-6)


@pytest.mark.parametrize("c", [1.0, 2.5])
def test_deep_linear_scalar(c):
    L = landscapes.deep_linear_scalar(c)
    s = math.sqrt(c)
    cls = classify(L.fn, jnp.zeros(2))
    assert cls.kind == "saddle"
    np.testing.assert_allclose(cls.eigenvalues, [-c, c], rtol=1e-6)
    cls = classify(L.fn, jnp.array([s, s]))
    assert cls.kind == "degenerate" and cls.index == 0
    np.testing.assert_allclose(cls.eigenvalues, [0.0, 2 * c], atol=1e-5 * c)
    # any point of the hyperbola ab = c is a degenerate global minimum
    with jax.enable_x64(True):
        cls = classify(L.fn, jnp.array([2 * s, s / 2], jnp.float64))
    assert cls.kind == "degenerate"
    np.testing.assert_allclose(cls.eigenvalues, [0.0, 4.25 * c], atol=1e-12)
    assert L.extras["c"] == c and L.f_min == 0.0


def test_quadratic_spectrum_and_matrix():
    eigs = np.array([3.0, -1.0, -1.0, 0.5, 0.0])
    L = landscapes.quadratic(eigs, seed=3)
    A = L.matrix
    np.testing.assert_allclose(A, A.T, atol=0)
    np.testing.assert_allclose(np.linalg.eigvalsh(A), np.sort(eigs), atol=1e-12)
    Q = L.extras["Q"]
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-12)
    with jax.enable_x64(True):
        H = np.asarray(jax.jit(jax.hessian(L.fn))(jnp.zeros(5, jnp.float64)))
    np.testing.assert_allclose(np.linalg.eigvalsh(H), np.sort(eigs), atol=1e-12)
    np.testing.assert_allclose(H, A, atol=1e-12)
    assert L.critical_points[0].kind == "saddle"  # mixed signs win over the zero eigenvalue
    assert L.f_min == -math.inf and L.global_minima.shape == (0, 5)
    assert not np.allclose(landscapes.quadratic(eigs, seed=4).matrix, A)
    P = landscapes.quadratic([1.0, 2.0])
    assert P.critical_points[0].kind == "minimum" and P.f_min == 0.0
    assert landscapes.quadratic([-1.0, -2.0]).critical_points[0].kind == "maximum"
    D = landscapes.quadratic([0.0, 2.0, 2.0])
    assert D.critical_points[0].kind == "degenerate" and D.f_min == 0.0


def test_least_squares_hessian_is_gram_over_n():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 3))
    y = rng.standard_normal(10)
    L = landscapes.least_squares(X, y)
    with jax.enable_x64(True):
        w = jnp.asarray(rng.standard_normal(3))
        H = np.asarray(jax.jit(jax.hessian(L.fn))(w))
        g_star = np.asarray(jax.jit(jax.grad(L.fn))(jnp.asarray(L.global_minima[0])))
    np.testing.assert_allclose(H, X.T @ X / 10, atol=1e-12)
    np.testing.assert_allclose(L.matrix, X.T @ X / 10, atol=1e-12)
    assert np.linalg.norm(g_star) < 1e-12
    w_ls, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(L.global_minima[0], w_ls, atol=1e-12)
    assert L.f_min == pytest.approx(0.5 * np.mean((X @ w_ls - y) ** 2), rel=1e-12)
    assert L.critical_points[0].kind == "minimum"
    # rank-deficient design: degenerate valley of minimizers
    Xd = np.concatenate([X[:, :2], X[:, :1]], axis=1)
    assert landscapes.least_squares(Xd, y).critical_points[0].kind == "degenerate"


def test_landscape_record_behaviour():
    L = landscapes.get("himmelblau")
    assert landscapes.get("himmelblau") is L and landscapes.get("himmelblau", dim=2) is L
    x = jnp.array([1.0, 2.0])
    assert float(L(x)) == float(L.fn(x)) == (1 + 2 - 11) ** 2 + (1 + 4 - 7) ** 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        L.dim = 3
    with pytest.raises(ValueError):
        L.bounds[0][0] = 1.0  # read-only arrays
    vals = jax.vmap(L.fn)(jnp.asarray(L.critical_array, jnp.float32))
    assert vals.shape == (9,)
    assert landscapes.get("rastrigin", dim=5).dim == 5


def test_get_rejects_bad_input():
    with pytest.raises(ValueError, match="himmelblau") as e:
        landscapes.get("himmelblue")
    assert "name" in str(e.value) and "rosenbrock" in str(e.value)
    with pytest.raises(ValueError, match="dim"):
        landscapes.get("himmelblau", dim=3)
    with pytest.raises(ValueError, match="dim"):
        landscapes.get("sin_quadratic_1d", dim=2)
    with pytest.raises(ValueError, match="dim"):
        landscapes.get("rosenbrock", dim=1)
    with pytest.raises(ValueError, match="dim"):
        landscapes.get("rastrigin", dim=0)
    with pytest.raises(TypeError, match="dim"):
        landscapes.get("rastrigin", dim=2.5)
    with pytest.raises(TypeError, match="name"):
        landscapes.get(3)
    with pytest.raises(ValueError, match="eigenvalues"):
        landscapes.quadratic([[1.0, 2.0]])
    with pytest.raises(ValueError, match="eigenvalues"):
        landscapes.quadratic([1.0, np.nan])
    with pytest.raises(ValueError, match="y"):
        landscapes.least_squares(np.ones((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="X"):
        landscapes.least_squares(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="c"):
        landscapes.deep_linear_scalar(-1.0)


def test_point_of_wrong_shape_raises_naming_x_before_compiling():
    L = landscapes.get("saddle")
    for bad in (jnp.zeros(3), jnp.zeros((4, 2)), jnp.zeros(())):
        with pytest.raises(ValueError, match=r"x must .*shape \(2,\).*dim=2"):
            L(bad)
        with pytest.raises(ValueError, match="x must"):
            L.fn(bad)
        with pytest.raises(ValueError, match="x must"):
            jax.jit(L.fn)(bad)  # raised while tracing, before XLA compiles anything
    with pytest.raises(ValueError, match="x must"):
        classify(landscapes.get("rosenbrock", dim=3).fn, jnp.zeros(2))
    # right shapes still work, also under vmap
    assert float(L(jnp.array([1.0, 2.0]))) == -3.0
    np.testing.assert_array_equal(jax.vmap(L.fn)(jnp.ones((3, 2))), np.zeros(3))
    assert L.fn.__name__ == "saddle"


def test_catalog_points_classify_in_float32_with_default_tolerances():
    """The float32 copy of a catalogued point keeps its kind with classify's defaults.

    Rounding x to float32 leaves ||grad|| ~ eps ||H|| ||x|| (4e-5 at Rastrigin's minima near
    |x| = 4, where ||H|| ~ 400): classify's rounding floor must absorb it, while the
    points moved by 0.05 stay not_critical.
    """
    for name in ("rastrigin", "levy", "goldstein_price"):
        L = landscapes.get(name)
        xs = jnp.asarray(L.critical_array, jnp.float32)
        got = classify_batch(L.fn, xs)
        want = np.array([p.kind for p in L.critical_points])
        bad = np.flatnonzero(got.kind != want)
        assert bad.size == 0, (name, xs[bad], got.kind[bad], got.grad_norm[bad])
        shifted = classify_batch(L.fn, xs + 0.05)
        assert np.all(shifted.kind == "not_critical"), name


def test_separable_landscapes_build_in_linear_size_with_a_lazy_catalog():
    d = 100_000
    L = landscapes.get("rastrigin", dim=d)
    assert not L.catalog_built  # the O(d^2) catalog was not materialised
    assert "not built yet" in repr(L)
    assert L.f_min == 0.0 and L.global_minima.shape == (1, d)
    np.testing.assert_array_equal(L.global_minima, 0.0)
    assert float(L(jnp.zeros(d))) == pytest.approx(0.0, abs=1e-6)
    assert L.bounds[0].shape == (d,)
    assert not L.catalog_built
    S = landscapes.get("styblinski_tang", dim=d)
    assert not S.catalog_built
    np.testing.assert_allclose(S.global_minima, -2.903534027771177, rtol=1e-12)
    np.testing.assert_allclose(S.f_min, -39.16616570377142 * d, rtol=1e-9)
    # a small dimension: the lazily built catalog agrees with the eager fields
    small = landscapes.get("styblinski_tang", dim=3)
    fmin, gmin = small.f_min, small.global_minima
    pts = small.critical_points
    assert small.catalog_built and len(pts) == 27
    assert pts[0].value == fmin and np.array_equal(pts[0].x, gmin[0])
    assert small.critical_points is pts  # built once

"""Tests for curvature.critical (classify, find_critical_points) and curvature.maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import landscapes
from jaxopt_lab.curvature import (
    KIND_NAMES,
    MAP_KIND_NAMES,
    classify,
    classify_batch,
    curvature_map,
    filter_normalize,
    find_critical_points,
    landscape_slice,
    layer_normalize,
    random_directions,
)


def _boom(*_):
    raise AssertionError("f was traced: validation must happen before compilation")


def _tree_f(p):
    return p["a"][0] ** 2 - 3.0 * p["a"][1] ** 2 + 2.0 * p["b"] ** 2 + p["a"][0] * p["b"]


def test_classify_pytree_against_dense_eigh():
    p = {"a": jnp.zeros(2), "b": jnp.zeros(())}
    c = classify(_tree_f, p)
    # flattening order of ravel_pytree: a0, a1, b
    H = np.array([[2.0, 0.0, 1.0], [0.0, -6.0, 0.0], [1.0, 0.0, 4.0]])
    np.testing.assert_allclose(c.eigenvalues, np.linalg.eigvalsh(H), rtol=1e-6)
    assert c.kind == "saddle" and c.index == 1 and c.grad_norm == 0.0
    c = classify(_tree_f, {"a": jnp.array([1.0, 0.0]), "b": jnp.zeros(())})
    assert c.kind == "not_critical" and c.grad_norm == pytest.approx(np.sqrt(5.0), rel=1e-6)


def test_classify_kinds_and_relative_eig_tol():
    f = lambda x, s, e: s * (x[0] ** 2 + e * x[1] ** 2)
    x0 = jnp.zeros(2)
    assert classify(f, x0, 1.0, 1.0).kind == "minimum"
    assert classify(f, x0, -1.0, 1.0).kind == "maximum"
    assert classify(f, x0, 1.0, -1.0).kind == "saddle"
    # eigenvalue 2e-8 is below eig_tol * max(1, 2): degenerate
    c = classify(f, x0, 1.0, 1e-8)
    assert c.kind == "degenerate" and c.index == 0
    # relative: scaling f by 1e4 keeps the kind (eigenvalue 2e-4 vs threshold 2e-2)
    assert classify(f, x0, 1e4, 1e-8).kind == "degenerate"
    assert classify(f, x0, 1e4, 1e-1).kind == "minimum"
    # a tiny eig_tol resolves it
    assert classify(f, x0, 1.0, 1e-4, eig_tol=1e-7).kind == "minimum"
    # grad_tol is absolute
    c = classify(f, jnp.array([1e-4, 0.0]), 1.0, 1.0)
    assert c.kind == "not_critical" and c.grad_norm == pytest.approx(2e-4, rel=1e-5)
    assert classify(f, jnp.array([1e-4, 0.0]), 1.0, 1.0, grad_tol=1e-3).kind == "minimum"


def test_classify_batch_matches_serial_loop():
    L = landscapes.get("six_hump_camel")
    xs = jnp.asarray(L.critical_array, jnp.float32)
    xs = jnp.concatenate([xs, jnp.array([[0.5, 0.5]])])
    batch = classify_batch(L.fn, xs, grad_tol=1e-4)
    for i in range(xs.shape[0]):
        one = classify(L.fn, xs[i], grad_tol=1e-4)
        assert one.kind == batch.kind[i]
        np.testing.assert_allclose(one.eigenvalues, batch.eigenvalues[i], rtol=1e-5, atol=1e-5)
    assert batch.kind[-1] == "not_critical"
    assert set(batch.kind) <= set(KIND_NAMES)


def test_classify_validates_before_compiling():
    with pytest.raises(ValueError, match="x"):
        classify(_boom, jnp.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="x"):
        classify(_boom, {"w": np.array([1.0, np.inf])})
    with pytest.raises(ValueError, match="grad_tol"):
        classify(_boom, jnp.zeros(2), grad_tol=-1.0)
    with pytest.raises(ValueError, match="eig_tol"):
        classify(_boom, jnp.zeros(2), eig_tol=-1e-6)
    with pytest.raises(TypeError, match="x"):
        classify(_boom, jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="x"):
        classify(_boom, {})
    with pytest.raises(ValueError, match="xs"):
        classify_batch(_boom, jnp.full((2, 2), np.nan))


def test_classify_accepts_lists_and_half_precision_and_names_bad_f():
    saddle = lambda z: z[0] ** 2 - z[1] ** 2 + 0.5 * z[0] * z[1]
    want = classify(saddle, jnp.zeros(2))
    assert want.kind == "saddle"
    # a list of numbers is one point (converted to an array), not a pytree of scalars
    for x in ([0.0, 0.0], (0.0, 0.0), [0, 0]):
        got = classify(saddle, x)
        assert got.kind == "saddle"
        np.testing.assert_allclose(got.eigenvalues, want.eigenvalues, rtol=1e-6)
    # float16 / bfloat16 points are classified in float32 (eigh has no half kernel)
    for dtype in (jnp.float16, jnp.bfloat16):
        got = classify(saddle, jnp.zeros(2, dtype))
        assert got.kind == "saddle" and got.eigenvalues.dtype == np.float32
        np.testing.assert_allclose(got.eigenvalues, want.eigenvalues, rtol=1e-6)
    got = classify_batch(saddle, jnp.zeros((3, 2), jnp.float16))
    assert list(got.kind) == ["saddle"] * 3
    # a list of arrays is still a pytree point
    tree = classify(lambda p: p[0] ** 2 + jnp.sum(p[1] ** 2), [jnp.float32(0.0), jnp.zeros(2)])
    assert tree.kind == "minimum"
    with pytest.raises(ValueError, match="x"):
        classify(saddle, [[0.0, 1.0], [2.0]])
    with pytest.raises(ValueError, match="x"):
        classify(_boom, [np.nan, 0.0])
    # f not callable: TypeError naming f
    with pytest.raises(TypeError, match="f must be a callable"):
        classify(3, jnp.zeros(2))
    with pytest.raises(TypeError, match="f must be a callable"):
        classify_batch(3, jnp.zeros((2, 2)))


def test_classify_refuses_points_where_f_or_its_derivatives_are_not_finite():
    # x finite but outside the domain of f: no "degenerate" verdict from NaN eigenvalues
    with pytest.raises(ValueError, match=r"f\(x\) is not finite"):
        classify(lambda z: jnp.sum(z**2) + jnp.log(z[0]), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="gradient of f at x is not finite"):
        classify(lambda z: jnp.sum(jnp.sqrt(jnp.abs(z))), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="x must be finite"):
        classify(lambda z: jnp.sum(z**2), jnp.array([np.inf, 0.0]))


def test_find_critical_points_himmelblau_all_nine():
    L = landscapes.get("himmelblau")
    cp = find_critical_points(L.fn, L.bounds, jax.random.key(0), num_starts=256)
    assert cp.points.shape == (9, 2) and len(cp.kinds) == 9
    assert np.all(np.diff(cp.values) >= 0)
    for p in L.critical_points:
        d = np.linalg.norm(cp.points - p.x, axis=1)
        j = int(np.argmin(d))
        assert d[j] < 1e-3, (p.x, cp.points)
        assert cp.kinds[j] == p.kind
        np.testing.assert_allclose(cp.values[j], p.value, atol=1e-3, rtol=1e-5)
    assert cp.num_converged >= 9 and np.all(cp.grad_norms <= 1e-4)
    assert cp.kinds.count("maximum") == 1 and cp.index[cp.kinds.index("maximum")] == 2


def test_find_critical_points_explicit_starts_and_args():
    # 0.5 (ab - c)^2 with c as an argument; starts near the saddle and one minimum
    f = lambda x, c: 0.5 * (x[0] * x[1] - c) ** 2
    starts = np.array([[0.1, -0.05], [1.9, 1.1]])
    cp = find_critical_points(f, ([-3.0, -3.0], [3.0, 3.0]), None, 2, args=(2.0,),
                              starts=starts)
    assert "saddle" in cp.kinds
    s = cp.points[cp.kinds.index("saddle")]
    np.testing.assert_allclose(s, [0.0, 0.0], atol=1e-5)
    deg = [p for p, k in zip(cp.points, cp.kinds, strict=True) if k == "degenerate"]
    assert len(deg) == 1 and abs(deg[0][0] * deg[0][1] - 2.0) < 1e-3


def test_find_critical_points_validates_before_compiling():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="bounds"):
        find_critical_points(_boom, ([1.0, 0.0], [0.0, 1.0]), key)
    with pytest.raises(ValueError, match="bounds"):
        find_critical_points(_boom, ([0.0, 0.0], [1.0]), key)
    with pytest.raises(ValueError, match="bounds"):
        find_critical_points(_boom, ([0.0, -np.inf], [1.0, 1.0]), key)
    with pytest.raises(ValueError, match="bounds"):
        find_critical_points(_boom, [0.0, 1.0, 2.0], key)
    with pytest.raises(ValueError, match="num_starts"):
        find_critical_points(_boom, ([0.0], [1.0]), key, num_starts=0)
    with pytest.raises(ValueError, match="dedup_tol"):
        find_critical_points(_boom, ([0.0], [1.0]), key, dedup_tol=0.0)
    with pytest.raises(ValueError, match="starts"):
        find_critical_points(_boom, ([0.0], [1.0]), key, starts=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="key"):
        find_critical_points(_boom, ([0.0], [1.0]), None)


def _himmelblau_hessian(x, y):
    """Closed-form Hessian of Himmelblau's function."""
    return (12 * x**2 + 4 * y - 42, 4 * x + 4 * y, 12 * y**2 + 4 * x - 26)


def test_curvature_map_against_closed_form_and_eigh():
    L = landscapes.get("himmelblau")
    m = curvature_map(L.fn, L.bounds, (9, 7))
    assert m.min_eig.shape == m.max_eig.shape == m.kind_codes.shape == (7, 9)
    np.testing.assert_allclose(m.xs, np.linspace(-5, 5, 9), atol=1e-6)
    np.testing.assert_allclose(m.ys, np.linspace(-5, 5, 7), atol=1e-6)
    gx, gy = np.meshgrid(m.xs.astype(np.float64), m.ys.astype(np.float64))
    a, b, d = _himmelblau_hessian(gx, gy)
    H = np.stack([np.stack([a, b], -1), np.stack([b, d], -1)], -2)
    ev = np.linalg.eigvalsh(H)  # float64 oracle on every grid point
    scale = np.max(np.abs(ev))
    np.testing.assert_allclose(m.min_eig, ev[..., 0], atol=1e-5 * scale)
    np.testing.assert_allclose(m.max_eig, ev[..., 1], atol=1e-5 * scale)
    want = np.where(ev[..., 0] > 0, 0, np.where(ev[..., 1] < 0, 1, 2))
    np.testing.assert_array_equal(m.kind_codes, want)
    # a few points against classify's dense eigh (the same tolerances)
    for i, j in [(0, 0), (3, 4), (6, 8)]:
        c = classify(L.fn, jnp.array([m.xs[j], m.ys[i]]), grad_tol=1e30)
        np.testing.assert_allclose(c.eigenvalues, [m.min_eig[i, j], m.max_eig[i, j]],
                                   rtol=1e-5, atol=1e-4)
        assert MAP_KIND_NAMES[m.kind_codes[i, j]].startswith(
            {"minimum": "positive", "maximum": "negative", "saddle": "indefinite"}[c.kind]
        )


def test_curvature_map_degenerate_and_args():
    f = lambda x, s: s * (x[0] ** 3 - 3.0 * x[0] * x[1] ** 2)  # zero Hessian only at 0
    m = curvature_map(f, ([-1.0, -1.0], [1.0, 1.0]), 5, 2.0)
    assert m.kind_codes[2, 2] == 3 and m.min_eig[2, 2] == 0.0 == m.max_eig[2, 2]
    # monkey saddle Hessian s*[[6x, -6y], [-6y, -6x]]: eigenvalues +- 6 s r
    r = np.hypot(*np.meshgrid(m.xs, m.ys))
    np.testing.assert_allclose(m.max_eig, 12.0 * r, atol=1e-5)
    np.testing.assert_allclose(m.min_eig, -12.0 * r, atol=1e-5)


def test_curvature_map_validates_before_compiling():
    with pytest.raises(ValueError, match="bounds"):
        curvature_map(_boom, ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), 10)
    with pytest.raises(ValueError, match="bounds"):
        curvature_map(_boom, ([0.0, 1.0], [1.0, 1.0]), 10)
    with pytest.raises(ValueError, match="resolution"):
        curvature_map(_boom, ([0.0, 0.0], [1.0, 1.0]), 1)
    with pytest.raises(ValueError, match="resolution"):
        curvature_map(_boom, ([0.0, 0.0], [1.0, 1.0]), (10, 2, 3))
    with pytest.raises(TypeError, match="resolution"):
        curvature_map(_boom, ([0.0, 0.0], [1.0, 1.0]), 2.5)


def _sym2_cases(rng):
    """Symmetric 2x2 entries (a, d, b): random, repeated eigenvalues, b == 0, zeros, scales."""
    a, d, b = rng.normal(size=(3, 64)) * rng.choice([1e-3, 1.0, 1e3], size=(3, 64))
    special = np.array([
        (1.0, 1.0, 0.0), (-2.5, -2.5, 0.0), (0.0, 0.0, 0.0), (3.0, 3.0, 1e-3),  # repeated
        (2.0, -1.0, 0.0), (-7.0, 4.0, 0.0), (1e4, 1.0, 0.0),  # b == 0, distinct
        (1.0, 1.0, 2.0), (0.0, 0.0, -1.0), (1e-6, -1e-6, 1e-7), (1e3, 1e3, 1e-3),
    ]).T
    return [np.concatenate([x, y]) for x, y in zip((a, d, b), special, strict=True)]


@pytest.mark.parametrize("x64", [False, True])
def test_sym2_closed_form_matches_numpy_eigh(x64):
    from jaxopt_lab.curvature.maps import _sym2_eigvals

    a, d, b = _sym2_cases(np.random.default_rng(0))
    with jax.enable_x64(x64):
        dt = jnp.float64 if x64 else jnp.float32
        lo, hi = (np.asarray(o) for o in _sym2_eigvals(*(jnp.asarray(v, dt) for v in (a, d, b))))
    assert lo.dtype == hi.dtype == np.dtype(dt)
    # oracle: float64 eigh of the matrices actually passed (rounded to dt)
    a, d, b = (np.asarray(v, dt).astype(np.float64) for v in (a, d, b))
    ev = np.linalg.eigvalsh(np.stack([np.stack([a, b], -1), np.stack([b, d], -1)], -2))
    scale = np.maximum.reduce([np.abs(a), np.abs(b), np.abs(d)])
    tol = (1e-13 if x64 else 2e-7) * scale
    assert np.all(np.abs(lo - ev[:, 0]) <= tol) and np.all(np.abs(hi - ev[:, 1]) <= tol)
    assert np.all(lo <= hi)
    rep = (a == d) & (b == 0)  # repeated eigenvalue: exact, both equal to a
    assert rep.sum() == 3
    np.testing.assert_array_equal(lo[rep], a[rep])
    np.testing.assert_array_equal(hi[rep], a[rep])
    diag = (b == 0) & ~rep  # diagonal: the sorted diagonal, exactly
    np.testing.assert_array_equal(lo[diag], np.minimum(a, d)[diag])
    np.testing.assert_array_equal(hi[diag], np.maximum(a, d)[diag])


def test_curvature_map_quadratics_against_eigh():
    # f = x^T A x / 2 has Hessian A everywhere; A passed as an arg (one compile for all A)
    f = lambda x, A: 0.5 * x @ A @ x
    a, d, b = _sym2_cases(np.random.default_rng(1))
    for i in [0, 1, 2, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74]:
        A = np.array([[a[i], b[i]], [b[i], d[i]]], np.float32)
        m = curvature_map(f, ([-1.0, -2.0], [1.0, 2.0]), (3, 2), jnp.asarray(A))
        ev = np.linalg.eigvalsh(A.astype(np.float64))
        tol = 1e-5 * max(1.0, float(np.max(np.abs(A))))
        np.testing.assert_allclose(m.min_eig, np.full((2, 3), ev[0]), rtol=0, atol=tol)
        np.testing.assert_allclose(m.max_eig, np.full((2, 3), ev[1]), rtol=0, atol=tol)
        thr = 1e-6 * max(1.0, float(np.max(np.abs(ev))))
        want = 0 if ev[0] > thr else 1 if ev[1] < -thr else 2 if ev[0] < -thr < thr < ev[1] else 3
        np.testing.assert_array_equal(m.kind_codes, np.full((2, 3), want, np.int32))
        assert m.kind_codes.dtype == np.int32 and m.min_eig.dtype == np.float32


def test_curvature_map_custom_vjp_and_forward_only_loops():
    def _g(x):
        return jnp.sin(x[0]) * x[1] ** 2 + jnp.exp(0.3 * x[0] * x[1])

    @jax.custom_vjp  # reverse mode only: the map falls back to jax.hessian
    def g_vjp(x):
        return _g(x)

    g_vjp.defvjp(lambda x: (_g(x), x), lambda x, c: (c * jax.grad(_g)(x),))

    def g_loop(x):  # fori_loop with a traced bound: forward mode only
        return jax.lax.fori_loop(0, jnp.int32(2), lambda i, s: s + 0.5 * _g(x), 0.0)

    box = ([-1.0, -0.5], [1.0, 1.5])
    hess = jax.jit(jax.hessian(_g))
    for g in (g_vjp, g_loop):
        m = curvature_map(g, box, (3, 2))
        for i, j in [(0, 0), (1, 2), (0, 1)]:  # serial oracle: dense float64 eigh
            h = np.asarray(hess(jnp.array([m.xs[j], m.ys[i]])), np.float64)
            ev = np.linalg.eigvalsh(0.5 * (h + h.T))
            np.testing.assert_allclose([m.min_eig[i, j], m.max_eig[i, j]], ev, atol=1e-5)


def _mlp_loss(p, x, y):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return jnp.mean((h @ p["w2"] - y) ** 2)


def test_landscape_slice_against_serial_loop():
    k = jax.random.split(jax.random.key(1), 4)
    p = {"w1": jax.random.normal(k[0], (3, 4)), "b1": jnp.ones(4),
         "w2": jax.random.normal(k[1], (4, 1))}
    x = jax.random.normal(k[2], (8, 3))
    y = jax.random.normal(k[3], (8, 1))
    s = landscape_slice(_mlp_loss, p, None, None, x, y, span=0.5, resolution=5,
                        key=jax.random.key(7), normalize="filter")
    assert s.values.shape == (5, 5)
    np.testing.assert_allclose(s.alphas, np.linspace(-0.5, 0.5, 5), atol=1e-7)
    # filter normalisation: per output unit norms match, biases zeroed
    np.testing.assert_allclose(np.linalg.norm(s.d1["w1"], axis=0),
                               np.linalg.norm(p["w1"], axis=0), rtol=1e-5)
    np.testing.assert_array_equal(s.d2["b1"], np.zeros(4))
    # serial oracle: one jitted loss evaluated point by point (numpy moves the params)
    loss = jax.jit(_mlp_loss)
    pn, d1, d2 = (jax.tree_util.tree_map(np.asarray, t) for t in (p, s.d1, s.d2))
    assert s.values[2, 2] == pytest.approx(float(loss(p, x, y)), rel=1e-5)
    for i, j in [(0, 0), (1, 3), (4, 2)]:
        a, b = float(s.alphas[j]), float(s.betas[i])
        q = {k: pn[k] + a * d1[k] + b * d2[k] for k in pn}
        assert s.values[i, j] == pytest.approx(float(loss(q, x, y)), rel=1e-5)


def test_landscape_slice_quadratic_closed_form():
    L = landscapes.quadratic([2.0, -1.0, 0.5], seed=2)
    A = L.matrix
    x0 = np.array([0.3, -0.2, 0.1])
    d1, d2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 1.0])
    s = landscape_slice(L.fn, jnp.asarray(x0, jnp.float32), jnp.asarray(d1, jnp.float32),
                        jnp.asarray(d2, jnp.float32), span=2.0, resolution=7)
    a, b = np.meshgrid(s.alphas.astype(np.float64), s.betas.astype(np.float64))
    pts = x0 + a[..., None] * d1 + b[..., None] * d2
    want = 0.5 * np.einsum("...i,ij,...j->...", pts, A, pts)
    np.testing.assert_allclose(s.values, want, atol=1e-5)


def test_filter_normalize_and_random_directions():
    p = {"k": jnp.arange(6.0).reshape(3, 2) + 1.0, "b": jnp.ones(2)}
    d = {"k": jnp.ones((3, 2)), "b": jnp.full(2, 5.0)}
    out = filter_normalize(d, p)
    np.testing.assert_allclose(np.linalg.norm(out["k"], axis=0),
                               np.linalg.norm(p["k"], axis=0), rtol=1e-6)
    np.testing.assert_array_equal(out["b"], 0.0)
    out = filter_normalize(d, p, zero_1d=False)
    assert float(jnp.linalg.norm(out["b"])) == pytest.approx(np.sqrt(2.0), rel=1e-6)
    r1, r2 = random_directions(jax.random.key(0), p, normalize=None)
    assert not np.allclose(r1["k"], r2["k"])
    with pytest.raises(ValueError, match="normalize"):
        random_directions(jax.random.key(0), p, normalize="batch")


def test_layer_normalize_matches_leaf_norms_and_random_directions_use_it():
    p = {"k": jnp.arange(6.0).reshape(3, 2) + 1.0, "b": jnp.array([3.0, 4.0])}
    d = {"k": jnp.ones((3, 2)), "b": jnp.array([0.0, 2.0])}
    out = layer_normalize(d, p)
    for name in p:  # each leaf rescaled to the norm of the parameter leaf, same direction
        np.testing.assert_allclose(np.linalg.norm(out[name]), np.linalg.norm(p[name]), rtol=1e-6)
        np.testing.assert_allclose(
            np.asarray(out[name]) * np.linalg.norm(d[name]),
            np.asarray(d[name]) * np.linalg.norm(p[name]),
            rtol=1e-6,
        )
    r1, _ = random_directions(jax.random.key(1), p, normalize="layer")
    raw1, _ = random_directions(jax.random.key(1), p, normalize=None)
    for name in p:
        np.testing.assert_allclose(
            np.asarray(r1[name]), np.asarray(layer_normalize(raw1, p)[name]), rtol=1e-6
        )


def test_landscape_slice_validates_before_compiling():
    x = jnp.zeros(2)
    with pytest.raises(ValueError, match="key"):
        landscape_slice(_boom, x, None, None)
    with pytest.raises(ValueError, match="d1"):
        landscape_slice(_boom, x, jnp.zeros(3), jnp.zeros(2))
    with pytest.raises(ValueError, match="x"):
        landscape_slice(_boom, jnp.array([np.nan, 0.0]), x, x)
    with pytest.raises(ValueError, match="span"):
        landscape_slice(_boom, x, x, x, span=0.0)
    with pytest.raises(ValueError, match="resolution"):
        landscape_slice(_boom, x, x, x, resolution=1)
    with pytest.raises(ValueError, match="normalize"):
        landscape_slice(_boom, x, x, x, normalize="unit")

"""Curvature operators (GGN, empirical Fisher, parameter blocks, micro-batched datasets,
user matvecs), tolerance-driven eigsh, "LM", XTrace and the fingerprint cache, against
dense float64 oracles on small networks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_lab import curvature
from jaxopt_lab.curvature._cache import cache_stats

K0 = jax.random.key(0)

COMPILES = []  # backend compiles of the curvature programs, from a jax.monitoring listener
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, fun_name="", **kw: COMPILES.append(fun_name)
    if event == "/jax/core/compile/backend_compile_duration" and "_program" in fun_name
    else None)


def _sym_matrix(eigenvalues, seed=0):
    ev = np.asarray(eigenvalues, np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(ev.size, ev.size)))
    return (q * ev) @ q.T


# ---------------------------------------------------------------- a small MLP (~100 params)
def _init(seed=0, sizes=(4, 8, 3)):
    rng = np.random.default_rng(seed)
    return {f"l{i}": {"w": jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32),
                      "b": jnp.asarray(0.1 * rng.normal(size=b), jnp.float32)}
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))}


def output_fn(p, x):
    h = jnp.tanh(x @ p["l0"]["w"] + p["l0"]["b"])
    return h @ p["l1"]["w"] + p["l1"]["b"]


def xent(logits, y):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def loss(p, x, y):
    return xent(output_fn(p, x), y)


def _data(n=30, seed=1):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
            jnp.asarray(rng.integers(0, 3, n), jnp.int32))


PARAMS = _init()
X, Y = _data()


def _f64(tree):
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
        tree)


def _dense(fn_of_flat, flat):
    return np.asarray(jax.jit(jax.hessian(fn_of_flat))(flat), np.float64)


def _oracles():
    """Dense float64 Hessian, GGN and empirical Fisher of the small MLP on (X, Y)."""
    with jax.enable_x64(True):
        p64, x64 = _f64(PARAMS), _f64(X)
        flat, unravel = ravel_pytree(p64)
        h = _dense(lambda z: loss(unravel(z), x64, Y), flat)
        jac = jax.jacobian(lambda z: output_fn(unravel(z), x64))(flat)  # [N, C, n]
        logits = output_fn(p64, x64)
        h_out = jax.hessian(lambda o: xent(o, Y))(logits)  # [N, C, N, C]
        n, c = logits.shape
        j2 = np.asarray(jac).reshape(n * c, -1)
        ggn = j2.T @ np.asarray(h_out).reshape(n * c, n * c) @ j2
        per = jax.jacobian(lambda z: jax.vmap(
            lambda o, t: xent(o[None], t[None]))(output_fn(unravel(z), x64), Y))(flat)
        per = np.asarray(per)
        fisher = per.T @ per / n
    return 0.5 * (h + h.T), 0.5 * (ggn + ggn.T), 0.5 * (fisher + fisher.T)


H, GGN, FISHER = _oracles()
DIM = H.shape[0]


def _flat(tree):
    return np.asarray(ravel_pytree(tree)[0], np.float64)


def test_ggn_and_fisher_matvec_match_dense_float64():
    v = jax.tree_util.tree_map(lambda a: jnp.ones_like(a) * 0.3, PARAMS)
    vf = _flat(v)
    gv = curvature.ggn_matvec(output_fn, xent, PARAMS, v, X, Y)
    fv = curvature.fisher_matvec(output_fn, xent, PARAMS, v, X, Y)
    np.testing.assert_allclose(_flat(gv), GGN @ vf, atol=1e-5 * np.abs(GGN @ vf).max())
    np.testing.assert_allclose(_flat(fv), FISHER @ vf, atol=1e-5 * np.abs(FISHER @ vf).max())
    assert np.linalg.eigvalsh(GGN).min() > -1e-10  # PSD by construction
    with pytest.raises(ValueError, match="v and params"):
        curvature.ggn_matvec(output_fn, xent, PARAMS, {"l0": PARAMS["l0"]}, X, Y)
    with pytest.raises(TypeError, match="loss_fn"):
        curvature.fisher_matvec(output_fn, 3, PARAMS, v, X, Y)


@pytest.mark.parametrize("kind", ["ggn", "fisher"])
def test_eigsh_on_ggn_and_fisher_operators_against_dense(kind):
    build = curvature.ggn_operator if kind == "ggn" else curvature.fisher_operator
    dense = GGN if kind == "ggn" else FISHER
    op = build(output_fn, xent, PARAMS, X, Y)
    res = curvature.eigsh(op, k=3, which="LA", key=K0, tol=1e-5, max_iters=DIM)
    want = np.linalg.eigvalsh(dense)[::-1][:3]
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-4, atol=1e-6 * want[0])
    vecs = np.asarray(res.eigenvectors_flat, np.float64)
    resid = np.linalg.norm(vecs @ dense - np.asarray(res.eigenvalues)[:, None] * vecs, axis=1)
    np.testing.assert_allclose(res.residuals, resid, atol=1e-5 * want[0])
    # pytree-shaped and flat eigenvectors are the same vectors
    tree_rows = [ravel_pytree(jax.tree_util.tree_map(lambda a, i=i: a[i], res.eigenvectors))[0]
                 for i in range(3)]
    np.testing.assert_allclose(np.stack(tree_rows), res.eigenvectors_flat, atol=0)


def test_eigsh_tolerance_driven_stops_early_with_true_residuals():
    # 300-dim operator, top pair close to the bulk: dozens of steps, below max_iters.
    spectrum = np.concatenate([[-40.0, -25.0], np.linspace(-1.0, 8.0, 295), [9.0, 9.5, 10.0]])
    a = _sym_matrix(spectrum, 3)
    op = curvature.matvec_operator(lambda v, m: m @ v, 300, jnp.asarray(a, jnp.float32))
    res = curvature.eigsh(op, k=2, which="LA", tol=1e-4, max_iters=300, key=K0)
    np.testing.assert_allclose(res.eigenvalues, [10.0, 9.5], rtol=1e-5)
    vecs = np.asarray(res.eigenvectors, np.float64)
    true_res = np.linalg.norm(vecs @ a - np.asarray(res.eigenvalues, np.float64)[:, None] * vecs,
                              axis=1)
    np.testing.assert_allclose(res.residuals, true_res, rtol=1e-2, atol=1e-5)
    norm = float(res.norm_estimate)
    np.testing.assert_allclose(norm, 40.0, rtol=1e-4)
    assert np.all(true_res <= 1e-4 * norm * 1.01) and bool(np.all(res.converged))
    assert res.num_iters < 200
    assert res.num_hvps >= res.num_iters + 2  # at least one verification of both pairs
    # a tighter tol needs more steps; "both" and "LM" on the same compiled program
    tight = curvature.eigsh(op, k=2, which="LA", tol=1e-6, max_iters=300, key=K0)
    assert tight.num_iters > res.num_iters and float(tight.residuals.max()) <= 1e-6 * 40.0
    both = curvature.eigsh(op, k=2, which="both", tol=1e-4, max_iters=300, key=K0)
    np.testing.assert_allclose(both.eigenvalues, [-40.0, -25.0, 10.0, 9.5], rtol=1e-5)
    lm = curvature.eigsh(op, k=3, which="LM", tol=1e-4, max_iters=300, key=K0)
    np.testing.assert_allclose(lm.eigenvalues, [-40.0, -25.0, 10.0], rtol=1e-5)
    # the step limit is respected and reported as not converged when too small
    short = curvature.eigsh(op, k=2, which="SA", tol=1e-7, max_iters=12, key=K0)
    assert short.num_iters == 12 and not bool(np.all(short.converged))


def test_eigsh_lm_against_dense_and_no_recompile_across_options():
    spectrum = np.concatenate([[-9.0, -7.5], np.linspace(-2.0, 3.0, 60), [8.0]])
    a = jnp.asarray(_sym_matrix(spectrum, 4), jnp.float32)

    def mv(v, m):
        return m @ v

    op = curvature.matvec_operator(mv, a.shape[0], a)
    r = curvature.eigsh(op, k=3, which="LM", num_iters=63, key=K0)
    np.testing.assert_allclose(r.eigenvalues, [-9.0, 8.0, -7.5], rtol=1e-5)
    n_first = len(COMPILES)
    for k, which, n in [(1, "LA", 20), (2, "SA", 40), (3, "both", 50), (4, "LM", 30)]:
        curvature.eigsh(op, k=k, which=which, num_iters=n, key=K0)
        curvature.eigsh(op, k=k, which=which, tol=1e-3, key=K0)
    # a new matrix of the same shape: traced argument, no recompile either
    curvature.eigsh(curvature.matvec_operator(mv, a.shape[0], 2.0 * a), k=1, key=K0)
    assert len(COMPILES) == n_first


def test_equal_new_loss_functions_do_not_recompile():
    def make_loss(scale):
        def f(p, x, y):
            return scale * loss(p, x, y)
        return f

    def scaled(p, x, y, scale):
        return scale * loss(p, x, y)

    r1 = curvature.eigsh(make_loss(2.0), PARAMS, X, Y, k=1, key=K0)
    n1 = len(COMPILES)
    misses = cache_stats()["misses"]
    r2 = curvature.eigsh(make_loss(2.0), PARAMS, X, Y, k=1, key=K0)  # new closure, equal
    assert len(COMPILES) == n1 and cache_stats()["misses"] == misses
    np.testing.assert_allclose(r1.eigenvalues, r2.eigenvalues)
    curvature.eigsh(make_loss(3.0), PARAMS, X, Y, k=1, key=K0)  # different closure value
    assert cache_stats()["misses"] == misses + 1 and len(COMPILES) > n1  # must be able to fail
    curvature.trace(functools.partial(scaled, scale=2.0), PARAMS, X, Y, key=K0)
    n2, misses2 = len(COMPILES), cache_stats()["misses"]
    curvature.trace(functools.partial(scaled, scale=2.0), PARAMS, X, Y, key=K0)
    assert len(COMPILES) == n2 and cache_stats()["misses"] == misses2


def test_param_filter_gives_the_dense_hessian_block():
    flat_paths = [path for path, _ in jax.tree_util.tree_leaves_with_path(PARAMS)]
    sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(PARAMS)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    sel = [i for i, p in enumerate(flat_paths) if p[0].key == "l1"]
    idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in sel])
    block = H[np.ix_(idx, idx)]
    for pf in (["l1"], lambda path, leaf: path[0].key == "l1"):
        op = curvature.hessian_operator(loss, PARAMS, X, Y, param_filter=pf)
        assert op.dim == idx.size
        res = curvature.eigsh(op, k=2, which="both", num_iters=idx.size, key=K0)
        dense = np.linalg.eigvalsh(block)
        np.testing.assert_allclose(res.eigenvalues, [*dense[:2], *dense[::-1][:2]],
                                   atol=1e-5 * np.abs(dense).max())
        # pytree eigenvectors: zero outside the block
        assert float(jnp.abs(res.eigenvectors["l0"]["w"]).max()) == 0.0
    est = curvature.trace(curvature.hessian_operator(loss, PARAMS, X, Y, param_filter=["l1"]),
                          key=K0, num_probes=idx.size * 2, method="xtrace")
    np.testing.assert_allclose(est.estimate, np.trace(block), rtol=1e-3)
    with pytest.raises(ValueError, match="param_filter"):
        curvature.hessian_operator(loss, PARAMS, X, Y, param_filter=["nope"])
    with pytest.raises(ValueError, match="selects no"):
        curvature.hessian_operator(loss, PARAMS, X, Y, param_filter=lambda p, x: False)


@pytest.mark.parametrize("kind", ["hessian", "ggn", "fisher"])
def test_micro_batched_dataset_equals_full_batch(kind):
    # 30 examples in micro-batches of 7 (4 full batches in a scan + a batch of 2)
    v = ravel_pytree(jax.tree_util.tree_map(lambda a: jnp.full_like(a, 0.2), PARAMS))[0]
    if kind == "hessian":
        op = curvature.hessian_operator(loss, PARAMS, X, Y, batch_size=7)
        dense = H
    else:
        build = curvature.ggn_operator if kind == "ggn" else curvature.fisher_operator
        op = build(output_fn, xent, PARAMS, X, Y, batch_size=7)
        dense = GGN if kind == "ggn" else FISHER
    static, dynamic = curvature.linear_operator.split(op)
    mv = jax.jit(lambda d, u: curvature.linear_operator.build(static, d)[0](u))
    got = np.asarray(mv(dynamic, v), np.float64)
    want = dense @ np.asarray(v, np.float64)
    np.testing.assert_allclose(got, want, atol=2e-6 * np.abs(want).max())
    res = curvature.eigsh(op, k=1, which="LA", tol=1e-5, max_iters=DIM, key=K0)
    np.testing.assert_allclose(res.eigenvalues, np.linalg.eigvalsh(dense)[-1:], rtol=1e-4)
    with pytest.raises(ValueError, match="leading"):
        curvature.hessian_operator(loss, PARAMS, X, Y[:5], batch_size=7)


def test_power_iteration_and_density_accept_operators():
    op = curvature.ggn_operator(output_fn, xent, PARAMS, X, Y)
    pw = curvature.power_iteration(op, k=1, num_iters=500, tol=1e-5, key=K0)
    np.testing.assert_allclose(pw.eigenvalues, np.linalg.eigvalsh(GGN)[-1:], rtol=1e-3)
    sd = curvature.spectral_density(op, key=K0, num_probes=4, num_iters=DIM)
    np.testing.assert_allclose(np.sort(np.asarray(sd.nodes[0], np.float64)),
                               np.linalg.eigvalsh(GGN), atol=1e-4 * np.abs(GGN).max())
    with pytest.raises(TypeError, match="CurvatureOperator"):
        curvature.eigsh(op, PARAMS, key=K0)


def test_pytree_matvec_operator_and_eigsh_matvec_pytree():
    a = jnp.asarray(_sym_matrix(np.arange(1.0, 13.0), 7), jnp.float32)
    like = {"u": jnp.zeros(5), "w": jnp.zeros((7,))}

    def mv(v, m):
        flat, unravel = ravel_pytree(v)
        return unravel(m @ flat)

    op = curvature.matvec_operator(mv, like, a)
    res = curvature.eigsh(op, k=2, which="LA", num_iters=12, key=K0)
    np.testing.assert_allclose(res.eigenvalues, [12.0, 11.0], rtol=1e-5)
    assert res.eigenvectors["u"].shape == (2, 5) and res.eigenvectors_flat.shape == (2, 12)
    r2 = jax.jit(lambda m: curvature.eigsh_matvec(lambda v: mv(v, m), like, k=2,
                                                  num_iters=12, key=K0).eigenvalues)(a)
    np.testing.assert_allclose(r2, [12.0, 11.0], rtol=1e-5)


TRACE_SPECTRUM = np.concatenate([[80.0, 50.0, 30.0, 20.0, 10.0], np.full(55, 0.5)])
A_TR = jnp.asarray(_sym_matrix(TRACE_SPECTRUM, 8), jnp.float32)


def test_trace_estimators_unbiased_and_xtrace_lowest_variance():
    true = TRACE_SPECTRUM.sum()
    op = curvature.matvec_operator(lambda v, m: m @ v, 60, A_TR)
    out = {}
    for method in ("hutchinson", "hutch++", "xtrace"):
        ests = []
        for seed in range(200):
            r = curvature.trace(op, key=jax.random.key(seed), num_probes=24, method=method)
            ests.append(float(r.estimate))
        assert r.num_matvecs == 24 and r.samples.ndim == 1
        ests = np.asarray(ests)
        # unbiased: the mean over 200 draws within 4 standard errors of the dense trace
        assert abs(ests.mean() - true) < 4.0 * ests.std(ddof=1) / np.sqrt(200) + 1e-3, method
        out[method] = ests.std()
    assert out["xtrace"] < out["hutch++"] < out["hutchinson"], out
    # the reported standard error tracks the spread (within a factor 3)
    r = curvature.trace(op, key=K0, num_probes=24, method="hutchinson")
    assert out["hutchinson"] / 3 < float(r.std_error) < 3 * out["hutchinson"]


def test_bad_input_operators_and_tol():
    with pytest.raises(ValueError, match="tol"):
        curvature.eigsh(loss, PARAMS, X, Y, key=K0, tol=0.0)
    with pytest.raises(ValueError, match="k"):
        curvature.eigsh(loss, PARAMS, X, Y, key=K0, k=0)
    with pytest.raises(ValueError, match="num_iters .* or max_iters"):
        curvature.eigsh(loss, PARAMS, X, Y, key=K0, num_iters=5, max_iters=9)
    with pytest.raises(ValueError, match="max_iters"):
        curvature.eigsh(loss, PARAMS, X, Y, key=K0, k=4, max_iters=3)
    with pytest.raises(ValueError, match="xtrace"):
        curvature.trace(curvature.matvec_operator(lambda v: v, 3), key=K0, num_probes=8,
                        method="xtrace")
    with pytest.raises(ValueError, match="matvec"):
        curvature.matvec_operator(lambda v: v[:2], 3)
    with pytest.raises(ValueError, match="batch_size"):
        curvature.ggn_operator(output_fn, xent, PARAMS, X, Y, batch_size=0)
    with pytest.raises(TypeError, match="x is required"):
        curvature.trace(loss, key=K0)

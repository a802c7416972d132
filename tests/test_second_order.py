"""Tests for the second-order transforms against closed forms and dense numpy oracles."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST

from jaxopt_lab.curvature import (
    conjugate_gradient,
    curvature_fns,
    empirical_fisher_fns,
    gauss_newton_fns,
    steihaug_cg,
)
from jaxopt_lab.transforms import (
    hessian_free,
    natural_gradient,
    saddle_free_newton,
    trust_region,
)

# Tests compile with XLA's backend optimisation off: about 3x faster compiles on CPU for
# these tiny programs.
_jit = functools.partial(jax.jit, compiler_options=FAST)


def _spd(rng, d, cond=50.0):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    evals = np.geomspace(1.0, cond, d)
    return (q * evals) @ q.T


def _quadratic(a, b):
    a, b = jnp.asarray(a), jnp.asarray(b)
    return lambda x, batch=None: 0.5 * x @ a @ x - b @ x


# ----------------------------------------------------------------------------- CG / Steihaug


def test_cg_matches_numpy_solve_on_pytree_in_at_most_d_iterations():
    rng = np.random.default_rng(0)
    d = 7
    a = _spd(rng, d)
    b = rng.normal(size=d)
    x0 = rng.normal(size=d)
    with jax.enable_x64(True):
        aj = jnp.asarray(a)
        # pytree unknown: split the vector into a dict of two leaves
        split = lambda v: {"u": v[:3], "w": v[3:]}
        join = lambda t: jnp.concatenate([t["u"], t["w"]])
        res = conjugate_gradient(
            lambda t: split(aj @ join(t)),
            split(jnp.asarray(b)),
            x0=split(jnp.asarray(x0)),
            max_iters=d,
            tol=1e-12,
        )
        x = np.asarray(join(res.x))
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert int(res.num_iters) <= d
    assert not bool(res.negative_curvature)
    assert float(res.residual_norm) <= 1e-9 * np.linalg.norm(b)


def test_cg_stops_on_negative_curvature():
    a = jnp.diag(jnp.array([1.0, -2.0]))
    res = conjugate_gradient(lambda v: a @ v, jnp.array([0.0, 1.0]), max_iters=5)
    assert bool(res.negative_curvature)
    assert int(res.num_iters) == 0


def test_steihaug_interior_is_newton_and_boundary_has_radius_norm():
    rng = np.random.default_rng(1)
    d = 5
    a = _spd(rng, d, cond=10.0)
    g = rng.normal(size=d)
    with jax.enable_x64(True):
        mv = lambda v: jnp.asarray(a) @ v
        newton = -np.linalg.solve(a, g)
        big = steihaug_cg(mv, jnp.asarray(g), 10 * np.linalg.norm(newton), max_iters=d, tol=1e-12)
        np.testing.assert_allclose(np.asarray(big.p), newton, rtol=1e-8, atol=1e-10)
        assert not bool(big.hit_boundary)
        r = 0.1 * np.linalg.norm(newton)
        small = steihaug_cg(mv, jnp.asarray(g), r, max_iters=d)
        assert bool(small.hit_boundary)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(small.p)), r, rtol=1e-10)
        # indefinite B: Steihaug follows negative curvature to the boundary
        neg = steihaug_cg(lambda v: jnp.array([1.0, -1.0]) * v, jnp.array([1e-3, 1e-3]), 2.0)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(neg.p)), 2.0, rtol=1e-10)


def test_solvers_keep_leaf_dtypes_of_a_mixed_precision_pytree():
    # a float32 leaf next to a bfloat16 leaf: the scalar step sizes are float32, so the
    # solvers must cast each iterate back to its leaf's dtype (lax.while_loop demands it)
    diag = {"a": jnp.array([2.0, 3.0], jnp.float32), "b": jnp.array([4.0], jnp.bfloat16)}
    b = {"a": jnp.array([1.0, 1.0], jnp.float32), "b": jnp.array([1.0], jnp.bfloat16)}
    mv = lambda v: jax.tree.map(jnp.multiply, diag, v)
    cg = conjugate_gradient(mv, b, max_iters=5, tol=1e-6)
    assert jax.tree.map(lambda x: x.dtype, cg.x) == jax.tree.map(lambda x: x.dtype, b)
    np.testing.assert_allclose(np.asarray(cg.x["a"]), [0.5, 1.0 / 3.0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(cg.x["b"], np.float32), [0.25], rtol=1e-2)
    st = steihaug_cg(mv, b, 10.0, max_iters=5, tol=1e-6)
    assert jax.tree.map(lambda x: x.dtype, st.p) == jax.tree.map(lambda x: x.dtype, b)
    np.testing.assert_allclose(np.asarray(st.p["a"]), [-0.5, -1.0 / 3.0], rtol=1e-5)


# ----------------------------------------------------------------------------- Hessian-free


def test_hessian_free_solves_spd_quadratic_in_at_most_d_cg_iterations():
    rng = np.random.default_rng(2)
    d = 6
    a, b = _spd(rng, d), rng.normal(size=d)
    with jax.enable_x64(True):
        f = _quadratic(a, b)
        x0 = jnp.asarray(rng.normal(size=d))
        opt = hessian_free(1.0, damping=0.0, max_iters=d, tol=1e-12)
        state = opt.init(x0)
        u, state = opt.update(jax.grad(f)(x0), state, x0, **curvature_fns(f, None))
        x1 = np.asarray(x0 + u)
    np.testing.assert_allclose(x1, np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert 1 <= int(state.num_cg_iters) <= d


def test_hessian_free_levenberg_marquardt_damping():
    rng = np.random.default_rng(3)
    a, b = _spd(rng, 3, cond=4.0), rng.normal(size=3)
    f = _quadratic(a, b)
    x0 = jnp.ones(3)
    opt = hessian_free(1.0, damping=1e-3, adapt_damping=True, max_iters=3, tol=1e-7)
    state = opt.init(x0)
    fns = curvature_fns(f, None)
    _, s1 = opt.update(jax.grad(f)(x0), state, x0, **fns)
    # the quadratic model is exact: rho = 1 > 3/4, damping shrinks by 2/3
    np.testing.assert_allclose(float(s1.ratio), 1.0, rtol=1e-2)
    np.testing.assert_allclose(float(s1.damping), 1e-3 * 2 / 3, rtol=1e-5)
    # a non-finite loss at the candidate is a failed step: damping grows by 3/2
    bad = dict(fns, value_fn=lambda p: jnp.where(jnp.all(p == x0), f(p), jnp.inf))
    _, s2 = opt.update(jax.grad(f)(x0), state, x0, **bad)
    np.testing.assert_allclose(float(s2.damping), 1.5e-3, rtol=1e-5)


def test_hessian_free_warm_start_needs_fewer_cg_iterations():
    rng = np.random.default_rng(10)
    d = 8
    a, b = _spd(rng, d, cond=100.0), rng.normal(size=d)
    f = _quadratic(a, b)
    fns = curvature_fns(f, None)
    x0 = jnp.asarray(rng.normal(size=d), jnp.float32)
    iters = {}
    for zeta in (0.0, 0.95):
        opt = hessian_free(1.0, damping=0.0, max_iters=2 * d, tol=1e-4, warm_start=zeta)

        @_jit
        def two_solves(x, opt=opt):
            # the same Newton system twice (same params and gradient)
            g = jax.grad(f)(x)
            _, s1 = opt.update(g, opt.init(x), x, **fns)
            return opt.update(g, s1, x, **fns)[1].num_cg_iters

        iters[zeta] = int(two_solves(x0))
    # the warm start 0.95 d* leaves a residual of 0.05 ||b||: fewer iterations to tol
    assert iters[0.95] < iters[0.0], iters


# ----------------------------------------------------------------------------- saddle-free Newton


def _saddle(x, batch=None):
    return x[0] ** 2 - x[1] ** 2


def _run_steps(opt, f, x, n):
    """n jitted steps of ``opt`` on ``f`` from ``x``; returns the iterates [n, d]."""
    fns = curvature_fns(f, None)

    @_jit
    def run(x):
        def step(carry, _):
            x, state = carry
            u, state = opt.update(jax.grad(f)(x), state, x, **fns)
            return (x + u, state), x + u

        return jax.lax.scan(step, (x, opt.init(x)), None, length=n)[1]

    return run


def test_saddle_free_newton_doubles_y_on_saddle_and_escapes():
    x0 = jnp.array([1e-3, 1e-3])
    # pure Dauphin step: x -> 0 (Newton), y -> y + |y| (closed form: y_k = 2^k y_0)
    xs = np.asarray(
        _run_steps(saddle_free_newton(1.0, num_iters=2, damping=0.0, key=0), _saddle, x0, 10)(x0)
    )
    np.testing.assert_allclose(xs[:, 1], 1e-3 * 2.0 ** np.arange(1, 11), rtol=1e-4)
    np.testing.assert_allclose(xs[:, 0], 0.0, atol=1e-7)
    assert abs(xs[9, 1]) > 1.0  # escaped |y| > 1 after 10 steps
    # with the negative-curvature step it escapes within a handful of steps
    opt = saddle_free_newton(
        1.0, num_iters=2, damping=1e-4, negative_curvature_step=0.5, key=0
    )
    run = _run_steps(opt, _saddle, x0, 5)
    xs = np.asarray(run(x0))
    first = int(np.argmax(np.abs(xs[:, 1]) > 1.0)) + 1
    assert np.abs(xs[-1, 1]) > 1.0 and first <= 5, xs
    # exactly at a saddle's stable manifold (y = 0) the gradient carries no y component;
    # Lanczos restarts at the breakdown and the negative-curvature step still escapes
    xs = np.asarray(run(jnp.array([1e-3, 0.0])))
    assert np.abs(xs[2, 1]) > 1.0


def test_saddle_free_newton_equals_newton_on_pd_and_abs_newton_on_indefinite():
    rng = np.random.default_rng(4)
    d = 5
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    f = lambda x, batch: 0.5 * x @ batch[0] @ x - batch[1] @ x
    with jax.enable_x64(True):
        updates = {}
        for start in ("gradient", "random"):
            opt = saddle_free_newton(
                1.0, num_iters=d, damping=0.0, krylov_start=start, key=0
            )

            def one_step(x0, h, b, opt=opt):
                g = jax.grad(f)(x0, (h, b))
                return opt.update(g, opt.init(x0), x0, **curvature_fns(f, (h, b)))[0], g

            updates[start] = _jit(one_step)
        for evals in (np.array([0.5, 1.0, 2.0, 3.0, 5.0]), np.array([-3.0, -0.5, 1.0, 2.0, 4.0])):
            h = (q * evals) @ q.T
            b = rng.normal(size=d)
            x0 = rng.normal(size=d)
            abs_h = (q * np.abs(evals)) @ q.T
            for start, upd in updates.items():
                u, g = (np.asarray(a) for a in upd(x0, h, b))
                np.testing.assert_allclose(
                    u, -np.linalg.solve(abs_h, g), rtol=1e-7, atol=1e-9, err_msg=start
                )
                if np.all(evals > 0):
                    np.testing.assert_allclose(u, -np.linalg.solve(h, g), rtol=1e-7)


# ----------------------------------------------------------------------------- trust region


def _rosenbrock(x, batch=None):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def test_trust_region_converges_on_rosenbrock_and_never_increases_f():
    opt = trust_region(1.0, initial_radius=1.0)
    fns = curvature_fns(_rosenbrock, None)

    @_jit
    def run(x):
        def step(carry, _):
            x, state = carry
            v, g = jax.value_and_grad(_rosenbrock)(x)
            u, state = opt.update(g, state, x, value=v, **fns)
            x_new = x + u
            return (x_new, state), (v, _rosenbrock(x_new), state.accepted)

        return jax.lax.scan(step, (x, opt.init(x)), None, length=60)

    (x, _), (f_before, f_after, accepted) = run(jnp.array([-1.2, 1.0]))
    np.testing.assert_allclose(np.asarray(x), [1.0, 1.0], atol=1e-3)
    acc = np.asarray(accepted)
    assert acc.sum() >= 10 and (~acc).sum() >= 1  # the ratio test does reject some steps
    assert np.all(np.asarray(f_after)[acc] <= np.asarray(f_before)[acc])
    # rejected steps leave the point unchanged
    np.testing.assert_array_equal(np.asarray(f_after)[~acc], np.asarray(f_before)[~acc])
    first_hit = int(np.argmax(np.asarray(f_after) < 1e-6))
    assert first_hit < 40


# ----------------------------------------------------------------------- natural gradient / GN


def test_natural_gradient_linear_gaussian_equals_closed_form():
    rng = np.random.default_rng(5)
    n, d = 20, 4
    x = rng.normal(size=(n, d)) * np.array([1.0, 3.0, 0.3, 2.0])
    y = rng.normal(size=n)
    lam, lr = 1e-3, 0.5
    with jax.enable_x64(True):
        apply = lambda w, xx: xx @ w
        out_loss = lambda z, yy: 0.5 * jnp.mean((z - yy) ** 2)  # Gaussian NLL, unit variance
        fns = gauss_newton_fns(apply, out_loss, (jnp.asarray(x), jnp.asarray(y)))
        w0 = jnp.asarray(rng.normal(size=d))
        g = jax.grad(fns["value_fn"])(w0)
        opt = natural_gradient(lr, damping=lam, max_iters=d, tol=1e-12)
        u, _ = opt.update(g, opt.init(w0), w0, **fns)
    fisher = x.T @ x / n  # Fisher of the linear-Gaussian model, E[x x^T] / sigma^2
    expected = -lr * np.linalg.solve(fisher + lam * np.eye(d), np.asarray(g))
    np.testing.assert_allclose(np.asarray(u), expected, rtol=1e-8)


def test_gauss_newton_vp_equals_dense_jt_h_j_and_empirical_fisher_dense():
    rng = np.random.default_rng(6)
    n, d_in, h, k = 5, 3, 4, 3
    with jax.enable_x64(True):
        params = {
            "w1": jnp.asarray(rng.normal(size=(d_in, h))),
            "w2": jnp.asarray(rng.normal(size=(h, k))),
        }
        xb = jnp.asarray(rng.normal(size=(n, d_in)))
        yb = jnp.asarray(rng.integers(0, k, size=n))
        apply = lambda p, xx: jnp.tanh(xx @ p["w1"]) @ p["w2"]

        def out_loss(z, yy):
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, yy))

        flat, unravel = jax.flatten_util.ravel_pytree(params)
        v = jnp.asarray(rng.normal(size=flat.shape[0]))

        def per_example(p, batch):
            return optax.softmax_cross_entropy_with_integer_labels(apply(p, batch[0]), batch[1])

        @_jit
        def compute(flat, v, xb, yb):
            p, vt = unravel(flat), unravel(v)
            gv = gauss_newton_fns(apply, out_loss, (xb, yb))["fvp_fn"](p, vt)
            fv = empirical_fisher_fns(per_example, (xb, yb))["fvp_fn"](p, vt)
            jac = jax.jacfwd(lambda f: apply(unravel(f), xb).ravel())(flat)  # [n k, P]
            z = apply(p, xb).ravel()
            h_out = jax.hessian(lambda zz: out_loss(zz.reshape(n, k), yb))(z)  # [n k, n k]
            grads = jax.jacrev(lambda f: per_example(unravel(f), (xb, yb)))(flat)  # [n, P]
            rav = lambda t: jax.flatten_util.ravel_pytree(t)[0]
            return rav(gv), rav(fv), jac, h_out, grads

        gv, fv, jac, h_out, grads = (np.asarray(a) for a in compute(flat, v, xb, yb))
    dense = jac.T @ h_out @ jac
    np.testing.assert_allclose(gv, dense @ np.asarray(v), rtol=1e-9, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(dense) > -1e-10)  # PSD
    dense_f = grads.T @ grads / n
    np.testing.assert_allclose(fv, dense_f @ np.asarray(v), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- optax integration

_X = np.random.default_rng(7).normal(size=(8, 3)).astype(np.float32)
_Y = np.random.default_rng(8).normal(size=8).astype(np.float32)


def _tanh_ls(w, batch):
    x, y = batch
    return 0.5 * jnp.mean((jnp.tanh(x @ w) - y) ** 2) + 0.01 * jnp.sum(w**2)


def _extra(w, batch):
    apply = lambda p, x: jnp.tanh(x @ p)
    out = lambda z, y: 0.5 * jnp.mean((z - y) ** 2)
    gn = gauss_newton_fns(apply, out, batch)
    return dict(curvature_fns(_tanh_ls, batch), fvp_fn=gn["fvp_fn"], value=_tanh_ls(w, batch))


FACTORIES = {
    "hessian_free": (hessian_free, dict(damping=1e-2, max_iters=3, adapt_damping=True), ()),
    "saddle_free_newton": (
        saddle_free_newton, dict(num_iters=3, damping=0.1, key=0), ("num_iters",)
    ),
    "trust_region": (trust_region, dict(initial_radius=0.5, max_iters=3), ()),
    "natural_gradient": (natural_gradient, dict(damping=1e-2, max_iters=3), ()),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_chain_jit_vmap_and_inject_hyperparams(name):
    factory, kwargs, static = FACTORIES[name]
    plain = optax.chain(factory(0.5, **kwargs), optax.clip_by_global_norm(10.0))
    injected = optax.chain(
        optax.inject_hyperparams(factory, static_args=static)(learning_rate=0.5, **kwargs),
        optax.clip_by_global_norm(10.0),
    )
    batch = (jnp.asarray(_X), jnp.asarray(_Y))

    def run(opt, w, batch):
        def step(carry, _):
            w, state = carry
            g = jax.grad(_tanh_ls)(w, batch)
            u, state = opt.update(g, state, w, **_extra(w, batch))
            return (optax.apply_updates(w, u), state), _tanh_ls(w, batch)

        (w, _), losses = jax.lax.scan(step, (w, opt.init(w)), None, length=3)
        return w, losses

    # serial loop (jit, injected learning rate) vs vmap over initial points (plain factory):
    # two compiles check jit, vmap == loop and inject_hyperparams at once
    run_injected = _jit(lambda w, b: run(injected, w, b))
    inits = jnp.asarray(np.random.default_rng(9).normal(size=(2, 3)).astype(np.float32))
    loop = [run_injected(w, batch) for w in inits]
    vm_w, vm_l = _jit(jax.vmap(lambda w, b: run(plain, w, b), in_axes=(0, None)))(inits, batch)
    for i, (w, losses) in enumerate(loop):
        # float32: batched and unbatched reductions may round differently
        np.testing.assert_allclose(np.asarray(vm_w[i]), np.asarray(w), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(vm_l[i]), np.asarray(losses), rtol=1e-4)
        assert float(losses[-1]) < float(losses[0])  # it makes progress


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: hessian_free(damping=-1.0), "damping"),
        (lambda: hessian_free(max_iters=0), "max_iters"),
        (lambda: hessian_free(warm_start=1.5), "warm_start"),
        (lambda: hessian_free(damping_increase=0.5), "damping_increase"),
        (lambda: natural_gradient(damping=-0.1), "damping"),
        (lambda: natural_gradient(max_iters=-3), "max_iters"),
        (lambda: saddle_free_newton(damping=-1.0, key=0), "damping"),
        (lambda: saddle_free_newton(num_iters=0, key=0), "num_iters"),
        (lambda: saddle_free_newton(krylov_start="lanczos", key=0), "krylov_start"),
        (lambda: trust_region(max_iters=0), "max_iters"),
        (lambda: trust_region(initial_radius=0.0), "initial_radius"),
        (lambda: trust_region(eta=0.5), "eta"),
        (lambda: trust_region(learning_rate=-1.0), "learning_rate"),
        (lambda: conjugate_gradient(lambda v: v, jnp.ones(2), max_iters=0), "max_iters"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_missing_extra_argument_is_named():
    opt = hessian_free()
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="hvp_fn"):
        opt.update(x, opt.init(x), x)
    opt = trust_region()
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(x, opt.init(x), x, hvp_fn=lambda p, v: v)

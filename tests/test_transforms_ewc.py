"""EWC: Fisher estimators against Python loops / brute force, penalty gradient oracle."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST

from jaxopt_lab.transforms import (
    EWCOnlineState,
    EWCSeparateState,
    ewc,
    ewc_consolidate,
    ewc_penalty,
    fisher_diagonal,
)

D, C, B = 3, 4, 5  # features, classes, examples

# Cheap XLA compiles: these tests check values, not speed.
jit = functools.partial(jax.jit, compiler_options=FAST)


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.standard_normal((D, C)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal(C), jnp.float32),
    }


def logits_fn(params, x):  # x: [B, D] -> [B, C]
    return jnp.tanh(x) @ params["w"] + params["b"]


def loss_fn(params, batch):  # mean cross-entropy over the batch
    x, y = batch
    lp = jax.nn.log_softmax(logits_fn(params, x))
    return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))


def _batch():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((B, D)), jnp.float32)
    y = jnp.asarray(rng.integers(0, C, B), jnp.int32)
    return x, y


def _random_tree(rng, like, positive=False):
    def draw(p):
        a = rng.standard_normal(p.shape)
        return jnp.asarray(np.abs(a) if positive else a, jnp.float32)

    return jax.tree.map(draw, like)


def test_fisher_diagonal_estimators_match_loops():
    params, (x, y) = _params(), _batch()
    grad = jit(jax.grad(loss_fn))

    @jit
    def all_fishers(params, x, y):
        return (
            fisher_diagonal(loss_fn, params, (x, y), kind="empirical"),
            fisher_diagonal(loss_fn, params, (x, y), kind="empirical", chunk_size=2),
            fisher_diagonal(None, params, x, kind="exact", log_prob_fn=logits_fn),
            fisher_diagonal(loss_fn, params, (x, y), kind="batched"),
        )

    emp, emp_chunked, exact, batched = all_fishers(params, x, y)

    # empirical: mean of squared per-sample gradients, Python loop over examples
    per = [grad(params, (x[i : i + 1], y[i : i + 1])) for i in range(B)]
    want = jax.tree.map(lambda *g: np.mean(np.square(np.stack(g)), axis=0), *per)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), emp, want)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), emp_chunked, want
    )

    # exact: brute-force sum over classes c of p_c * (grad log p_c)^2, loop over examples
    total = jax.tree.map(np.zeros_like, params)
    for i in range(B):
        probs = np.asarray(jax.nn.softmax(logits_fn(params, x[i : i + 1]))[0])
        for c in range(C):
            label = jnp.array([c], jnp.int32)
            g = grad(params, (x[i : i + 1], label))  # grad of -log p_c
            pc = probs[c]
            total = jax.tree.map(lambda t, gg, pc=pc: t + pc * np.square(gg), total, g)
    want_exact = jax.tree.map(lambda t: t / B, total)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), exact, want_exact
    )
    # exact and empirical differ (labels vs model samples)
    assert not np.allclose(exact["w"], emp["w"], rtol=1e-3)

    # batched: square of the minibatch gradient
    gb = grad(params, (x, y))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, np.square(b), rtol=1e-5), batched, gb)


def test_ewc_added_gradient_equals_grad_of_penalty():
    rng = np.random.default_rng(2)
    params = _params(3)
    strength = 0.7
    tasks = [
        (_random_tree(rng, params, positive=True), _random_tree(rng, params)) for _ in range(3)
    ]
    grads = _random_tree(rng, params)

    def check(mode, **kw):
        opt = ewc(*tasks[0], strength, mode=mode, **kw)

        @jit
        def run(params, grads, later_tasks):
            state = opt.init(params)
            for f, a in later_tasks:
                state = ewc_consolidate(state, f, a)
            updates, _ = opt.update(grads, state, params)
            return state, updates, jax.grad(ewc_penalty)(params, state, None, strength)

        state, updates, pen_grad = run(params, grads, tasks[1:])
        want = jax.tree.map(jnp.add, grads, pen_grad)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), updates, want
        )
        # and against the hand-written gradient strength * sum_k F_k (theta - theta*_k)
        hand = grads
        if mode == "separate":
            for f, a in tasks:
                hand = jax.tree.map(
                    lambda h, f, a, p: h + strength * f * (p - a), hand, f, a, params
                )
        else:
            hand = jax.tree.map(
                lambda h, f, a, p: h + strength * f * (p - a),
                hand,
                state.fisher,
                state.anchor,
                params,
            )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), updates, hand
        )
        return state

    sep = check("separate", max_tasks=4)
    # separate: penalty equals the sum of the single-task penalties
    total = sum(float(ewc_penalty(params, f, a, strength)) for f, a in tasks)
    np.testing.assert_allclose(float(ewc_penalty(params, sep, None, strength)), total, rtol=1e-5)

    decay = 0.5
    online = check("online", decay=decay)
    # online: F = d^2 F1 + d F2 + F3, anchor = last task's anchor
    (f1, _), (f2, _), (f3, a3) = tasks
    want_f = jax.tree.map(lambda x, y, z: decay**2 * x + decay * y + z, f1, f2, f3)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), online.fisher, want_f)
    jax.tree.map(np.testing.assert_array_equal, online.anchor, a3)
    assert int(online.num_tasks) == 3


def _nbytes(state):
    return sum(np.asarray(x).nbytes for x in jax.tree.leaves(state))


def test_online_state_size_constant_and_separate_ring_buffer():
    params = _params()
    rng = np.random.default_rng(5)
    online = ewc(mode="online", decay=0.9).init(params)
    sep = ewc(mode="separate", max_tasks=2).init(params)
    assert isinstance(online, EWCOnlineState) and isinstance(sep, EWCSeparateState)
    size_online, size_sep = _nbytes(online), _nbytes(sep)
    fold = jit(ewc_consolidate)
    tasks = [(_random_tree(rng, params, True), _random_tree(rng, params)) for _ in range(3)]
    for f, a in tasks:
        online, sep = fold(online, f, a), fold(sep, f, a)
        assert _nbytes(online) == size_online and _nbytes(sep) == size_sep
    assert int(online.num_tasks) == 3 and int(sep.num_tasks) == 3
    # capacity 2: task 3 overwrote slot 0 (the oldest), task 2 remains in slot 1
    np.testing.assert_array_equal(sep.fisher["w"][0], tasks[2][0]["w"])
    np.testing.assert_array_equal(sep.anchor["b"][1], tasks[1][1]["b"])


def test_ewc_consolidate_inside_chain_state():
    params = _params()
    opt = optax.chain(ewc(strength=1.0, mode="online"), optax.sgd(0.1))
    state = opt.init(params)
    # no task yet: pure SGD
    g = jax.tree.map(jnp.ones_like, params)
    u, _ = opt.update(g, state, params)
    jax.tree.map(lambda x: np.testing.assert_allclose(x, -0.1), u)
    ones = jax.tree.map(jnp.ones_like, params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    state = ewc_consolidate(state, ones, zeros)
    u, _ = opt.update(zeros, state, params)  # -0.1 * 1 * (params - 0)
    jax.tree.map(lambda a, p: np.testing.assert_allclose(a, -0.1 * p, rtol=1e-6), u, params)
    with pytest.raises(ValueError, match="no EWC state"):
        ewc_consolidate(optax.sgd(0.1).init(params), ones, zeros)


def test_ewc_validation():
    params = _params()
    f = jax.tree.map(jnp.ones_like, params)
    with pytest.raises(ValueError, match="strength"):
        ewc(f, params, -1.0)
    with pytest.raises(ValueError, match="fisher and anchor"):
        ewc(f, {"w": params["w"]}, 1.0)
    with pytest.raises(ValueError, match="fisher and params"):
        ewc({"w": f["w"]}, {"w": f["w"]}, 1.0).init(params)
    with pytest.raises(ValueError, match="fisher must be non-negative"):
        ewc(jax.tree.map(jnp.negative, f), params, 1.0)
    with pytest.raises(ValueError, match="mode"):
        ewc(f, params, 1.0, mode="sometimes")
    with pytest.raises(ValueError, match="decay"):
        ewc(f, params, 1.0, mode="online", decay=1.5)
    with pytest.raises(ValueError, match="params"):
        opt = ewc(f, params, 1.0)
        opt.update(f, opt.init(params), None)
    with pytest.raises(ValueError, match="kind"):
        fisher_diagonal(loss_fn, params, _batch(), kind="true")
    with pytest.raises(ValueError, match="log_prob_fn"):
        fisher_diagonal(None, params, _batch()[0], kind="exact")


def test_ewc_rejects_non_finite_or_negative_tasks_and_mismatched_params():
    p = {"w": jnp.ones(3), "b": jnp.zeros(2)}
    good_f = jax.tree.map(jnp.ones_like, p)
    nan_f = {"w": jnp.array([1.0, jnp.nan, 1.0]), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match="fisher must be finite"):
        ewc(nan_f, p, 1.0)
    with pytest.raises(ValueError, match="anchor must be finite"):
        ewc(good_f, {"w": jnp.full(3, jnp.inf), "b": jnp.zeros(2)}, 1.0)
    for mode in ("online", "separate"):
        state = ewc(mode=mode).init(p)
        with pytest.raises(ValueError, match="fisher must be non-negative"):
            ewc_consolidate(state, jax.tree.map(lambda x: -x, good_f), p)
        with pytest.raises(ValueError, match="fisher must be finite"):
            ewc_consolidate(state, nan_f, p)
        with pytest.raises(ValueError, match="fisher and anchor"):
            ewc_consolidate(state, good_f, {"w": jnp.ones(3)})
        opt = ewc(good_f, p, 1.0, mode=mode)
        st = opt.init(p)
        with pytest.raises(ValueError, match="params"):
            opt.update(p, st, {"w": jnp.ones(3), "c": jnp.zeros(2)})
        with pytest.raises(ValueError, match="params"):
            opt.update(p, st, {"w": jnp.ones(4), "b": jnp.zeros(2)})
        # the checks skip tracers: consolidation still works under jit, and is exact
        st = jax.jit(ewc_consolidate)(st, good_f, jax.tree.map(lambda x: x + 1.0, p))
        u, _ = jax.jit(opt.update)(jax.tree.map(jnp.zeros_like, p), st, p)
        if mode == "online":  # F = 1 * 1 + 1 = 2 (decay 1), anchor = p + 1: 2 * (p - (p + 1))
            np.testing.assert_allclose(u["w"], -2.0 * np.ones(3))
        else:  # two tasks: 1 * (p - p) + 1 * (p - (p + 1))
            np.testing.assert_allclose(u["w"], -1.0 * np.ones(3))

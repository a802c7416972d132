"""Perturbed GD, SWA, rollback guard and gradient monitor against direct computations."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST

from jaxopt_lab.transforms import (
    gradient_monitor,
    last_good_params,
    perturbed_gd,
    rollback_guard,
    sample_uniform_ball,
    swa,
    swa_params,
)
from jaxopt_lab.transforms.rollback import RollbackState, check_placement, restore_nonfinite

# ----------------------------------------------------------------------------- perturbed GD

# Cheap XLA compiles: these tests check values, not speed.
jit = functools.partial(jax.jit, compiler_options=FAST)


def saddle(z):  # x^2 - y^2: escape direction is y (negative curvature), x contracts
    return z[0] ** 2 - z[1] ** 2


def _run_on_saddle(opt, seed, steps=80):
    z = jnp.zeros(2)
    state = opt.init(z)
    state = jax.tree.map(  # fold the seed into typed key leaves (what the sweep engine does)
        lambda x: (
            jax.random.fold_in(x, seed)
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            else x
        ),
        state,
    )

    def body(carry, _):
        z, s = carry
        u, s = opt.update(jax.grad(saddle)(z), s, z)
        return (optax.apply_updates(z, u), s), None

    (z, state), _ = jax.lax.scan(body, (z, state), None, length=steps)
    return z, state


def test_pgd_escapes_exact_saddle_for_every_seed_gd_does_not():
    seeds = jnp.arange(64)
    radius = 0.1
    pgd = perturbed_gd(0.1, radius=radius, g_thres=1e-3, t_thres=10, key=0)

    @jit
    def both(seeds):
        z_pgd, st = jax.vmap(lambda s: _run_on_saddle(pgd, s))(seeds)
        z_gd, _ = jax.vmap(lambda s: _run_on_saddle(optax.sgd(0.1), s))(seeds)
        return z_pgd, st, z_gd

    z_pgd, st, z_gd = both(seeds)
    np.testing.assert_array_equal(np.asarray(z_gd), 0.0)  # plain GD never moves
    z_pgd = np.asarray(z_pgd)
    assert np.all(np.abs(z_pgd[:, 1]) > 1.0)  # escaped along y (the -1 eigenvector)
    assert np.all(np.abs(z_pgd[:, 0]) < radius)  # x contracts towards 0
    assert len(np.unique(np.sign(z_pgd[:, 1]))) == 2  # seeds escape both ways
    assert np.all(np.asarray(st.num_perturbations) >= 1)
    assert jax.dtypes.issubdtype(st.key.dtype, jax.dtypes.prng_key)


def test_pgd_perturbation_schedule_and_radius():
    opt = perturbed_gd(0.5, radius=0.2, g_thres=1e-3, t_thres=3, key=1)
    p = jnp.zeros(5)

    @jit
    def run(state):
        def body(s, _):
            u, s = opt.update(jnp.zeros(5), s, p)  # gradient always 0
            return s, u

        return jax.lax.scan(body, state, None, length=10)

    state, us = run(opt.init(p))
    norms = np.linalg.norm(np.asarray(us), axis=1)
    kicked = norms > 0
    np.testing.assert_array_equal(np.nonzero(kicked)[0], [0, 4, 8])  # every t_thres + 1 steps
    assert int(state.num_perturbations) == 3
    assert np.all(norms <= 0.2 + 1e-6)
    # a large gradient never triggers a kick; the update is then -lr * g
    u, s2 = opt.update(jnp.ones(5), opt.init(p), p)
    np.testing.assert_allclose(u, -0.5)
    assert int(s2.num_perturbations) == 0


def test_uniform_ball_sampling_is_in_the_ball_not_on_the_sphere():
    keys = jax.random.split(jax.random.key(0), 4000)
    like = {"a": jnp.zeros(1), "b": jnp.zeros(())}  # d = 2
    xs = jit(jax.vmap(lambda k: sample_uniform_ball(k, like, 2.0)))(keys)
    r = np.sqrt(np.asarray(xs["a"])[:, 0] ** 2 + np.asarray(xs["b"]) ** 2)
    assert r.max() <= 2.0 + 1e-6
    # P(|xi| <= r/2) = (1/2)^d = 0.25 for the ball (0 for the sphere); 5 sigma band
    assert abs(np.mean(r <= 1.0) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / 4000)


def test_pgd_validation():
    with pytest.raises(ValueError, match="radius"):
        perturbed_gd(0.1, radius=-1.0, g_thres=0.1, t_thres=1, key=0)
    with pytest.raises(ValueError, match="g_thres"):
        perturbed_gd(0.1, radius=1.0, g_thres=-0.1, t_thres=1, key=0)
    with pytest.raises(TypeError, match="t_thres"):
        perturbed_gd(0.1, radius=1.0, g_thres=0.1, t_thres=1.5, key=0)
    with pytest.raises(ValueError, match="learning_rate"):
        perturbed_gd(-0.1, radius=1.0, g_thres=0.1, t_thres=1, key=0)
    # no hidden default key: a missing or malformed key names the argument
    with pytest.raises(TypeError, match="key"):
        perturbed_gd(0.1, radius=1.0, g_thres=0.1, t_thres=1)
    with pytest.raises(TypeError, match="key must be"):
        perturbed_gd(0.1, radius=1.0, g_thres=0.1, t_thres=1, key="a")
    with pytest.raises(TypeError, match="key must be"):
        perturbed_gd(0.1, radius=1.0, g_thres=0.1, t_thres=1, key=None)


def test_pgd_registry_entry_passes_an_explicit_key():
    from jaxopt_lab import optimizers

    x = jnp.zeros(2)
    default = optimizers.get("pgd", 0.1).init(x)
    assert jax.dtypes.issubdtype(default.key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(
        jax.random.key_data(default.key),
        jax.random.key_data(jax.random.key(optimizers.PGD_KEY_SEED)),
    )
    chosen = optimizers.get("pgd", 0.1, key=jax.random.key(7)).init(x)
    np.testing.assert_array_equal(
        jax.random.key_data(chosen.key), jax.random.key_data(jax.random.key(7))
    )


# ----------------------------------------------------------------------------- SWA


def test_swa_equals_hand_computed_average():
    opt = optax.chain(optax.sgd(0.3), swa(start_step=2, frequency=3))
    f = lambda p: jnp.sum((p["a"] - 1.0) ** 2) + jnp.sum(jnp.cos(p["b"]))
    p = {"a": jnp.array([3.0, -1.0]), "b": jnp.array(0.7)}

    @jit
    def run(p):
        def body(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(f)(p), s, p)
            return (optax.apply_updates(p, u), s), p  # record the params update saw

        (p, s), seen = jax.lax.scan(body, (p, opt.init(p)), None, length=10)
        return s, seen

    state, seen = run(p)
    idx = [2, 5, 8]  # start_step=2, every 3 steps, 10 steps
    want = jax.tree.map(lambda x: np.mean(np.asarray(x)[idx], axis=0), seen)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), swa_params(state), want)
    assert int(state[1].num_averaged) == 3
    with pytest.raises(ValueError, match="params"):
        swa().update(p, swa().init(p), None)
    with pytest.raises(ValueError, match="frequency"):
        swa(frequency=0)


# ----------------------------------------------------------------------------- rollback


def quad(p):
    return 0.5 * jnp.sum(p["w"] ** 2) + jnp.sum((p["b"] - 1.0) ** 2)


def _poisoned_scan(opt, p0, k, steps, poison):
    """Scan ``steps`` guarded steps on ``quad``; ``poison(i, value, g)`` corrupts step k."""

    @jit
    def run(p):
        def body(carry, i):
            p, s = carry
            value, g = jax.value_and_grad(quad)(p)
            value, g = poison(i == k, value, g)
            u, s = opt.update(g, s, p, value=value)
            new_p = optax.apply_updates(p, u)
            return (new_p, s), (p, s.scale, s.inner_state[0].mu)

        return jax.lax.scan(body, (p, opt.init(p)), jnp.arange(steps))

    (p_final, state), (before, scales, mus) = run(p0)
    return p_final, state, jax.tree.map(np.asarray, before), np.asarray(scales), mus


def test_rollback_nan_gradient_skips_step_restores_state_and_cuts_lr_inside_scan():
    k, steps, factor = 4, 12, 0.25
    opt = rollback_guard(optax.adam(0.1), factor=factor)
    p0 = {"w": jnp.array([2.0, -1.0]), "b": jnp.array([0.5])}
    nan_grad = lambda hit, v, g: (v, jax.tree.map(lambda x: jnp.where(hit, jnp.nan, x), g))
    p_final, state, before, scales, mus = _poisoned_scan(opt, p0, k, steps, nan_grad)
    # NaN gradient at step k (finite loss: the point is fine): params after step k equal
    # those before it ...
    jax.tree.map(lambda x: np.testing.assert_array_equal(x[k + 1], x[k]), before)
    assert not np.array_equal(before["w"][k], before["w"][k - 1])
    # ... with the inner state from before step k (Adam's moments untouched by the NaN)
    jax.tree.map(
        lambda m: np.testing.assert_array_equal(np.asarray(m)[k], np.asarray(m)[k - 1]), mus
    )
    np.testing.assert_allclose(scales[:k], 1.0)
    np.testing.assert_allclose(scales[k:], factor)
    assert int(state.num_rollbacks) == 1
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(p_final))
    assert float(quad(p_final)) < float(quad(jax.tree.map(lambda x: x[k], before)))  # continues
    # the last step was good: the recorded good params are the params it was checked at
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(a, b[-1]), last_good_params(state), before
    )


def test_rollback_nan_loss_returns_to_last_certified_point_inside_scan():
    k, steps, factor = 4, 12, 0.25
    opt = rollback_guard(optax.adam(0.1), factor=factor)
    p0 = {"w": jnp.array([2.0, -1.0]), "b": jnp.array([0.5])}
    nan_loss = lambda hit, v, g: (jnp.where(hit, jnp.nan, v), g)
    p_final, state, before, scales, mus = _poisoned_scan(opt, p0, k, steps, nan_loss)
    # the loss at p_k is NaN: p_k itself is bad, so the params go back to the last point
    # whose check passed, p_{k-1}, with the inner state step k-1 started from
    jax.tree.map(lambda x: np.testing.assert_array_equal(x[k + 1], x[k - 1]), before)
    jax.tree.map(
        lambda m: np.testing.assert_array_equal(np.asarray(m)[k], np.asarray(m)[k - 2]), mus
    )
    np.testing.assert_allclose(scales[k:], factor)
    assert int(state.num_rollbacks) == 1
    assert float(quad(p_final)) < float(quad(jax.tree.map(lambda x: x[k], before)))


def test_rollback_restores_from_nan_params_and_detects_spikes():
    opt = rollback_guard(optax.sgd(0.1), factor=0.5, spike_factor=3.0, ema_decay=0.5)
    good = jnp.array([1.0, 2.0])
    state = opt.init(good)
    u, state = opt.update(jnp.ones(2), state, good, value=1.0)  # accepted
    good_next = optax.apply_updates(good, u)
    np.testing.assert_array_equal(last_good_params(state), good)  # checked at `good`
    # params got corrupted: the update is finite and points back at the last good params
    # where that is representable
    u, state = opt.update(jnp.ones(2), state, jnp.array([jnp.nan, 5.0]), value=1.0)
    np.testing.assert_array_equal(u, [0.0, 2.0 - 5.0])
    assert float(state.scale) == 0.5 and int(state.num_rollbacks) == 1
    # a loss spike at good_next (> 3 x running average 1.0) sends the params back to good
    u, state = opt.update(jnp.ones(2), state, good_next, value=10.0)
    np.testing.assert_allclose(optax.apply_updates(good_next, u), good, rtol=1e-6)
    # a NaN loss is rejected too
    u, state = opt.update(jnp.ones(2), state, good, value=jnp.nan)
    np.testing.assert_array_equal(u, 0.0)
    assert int(state.num_rollbacks) == 3 and float(state.scale) == 0.125
    # an ordinary loss is accepted with the reduced step: -0.125 * 0.1 * g
    u, state = opt.update(jnp.ones(2), state, good, value=1.5)
    np.testing.assert_allclose(u, -0.0125, rtol=1e-6)
    np.testing.assert_allclose(float(state.loss_avg), 0.5 * 1.0 + 0.5 * 1.5)
    with pytest.raises(ValueError, match="factor"):
        rollback_guard(optax.sgd(0.1), factor=2.0)
    with pytest.raises(ValueError, match="params"):
        opt.update(jnp.ones(2), state, None)


def test_rollback_rejects_a_finite_step_that_overflows_float16_and_recovers():
    # f = 0.5 (p - 60000)^2 in float16 from 40000 with SGD lr 1.5: the first update,
    # +30000, is finite in float16 but lands at 70000 > 65504 (inf in float16)
    target = jnp.float16(60000.0)
    f = lambda p: 0.5 * jnp.sum((p.astype(jnp.float32) - 60000.0) ** 2)
    opt = rollback_guard(optax.sgd(1.5), factor=0.1)

    @jit
    def run(p):
        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(f)(p)
            u, s = opt.update(g.astype(p.dtype), s, p, value=value)
            return (optax.apply_updates(p, u), s), p

        return jax.lax.scan(body, (p, opt.init(p)), None, length=60)

    (p, state), traj = run(jnp.full(2, 40000.0, jnp.float16))
    assert p.dtype == jnp.float16
    assert np.all(np.isfinite(np.asarray(traj, np.float32)))  # never left the finite range
    np.testing.assert_array_equal(np.asarray(traj[1]), 40000.0)  # overflowing step: skipped
    # converged to float16 resolution (spacing 32 there; steps below half of it stall)
    np.testing.assert_allclose(np.asarray(p, np.float32), float(target), rtol=5e-3)
    assert int(state.num_rollbacks) == 1 and float(state.scale) == pytest.approx(0.1)
    # params corrupted OUTSIDE the guard cannot be repaired additively (inf + u): the
    # helper goes back to the last good point
    bad = jnp.array([jnp.inf, 1.0], jnp.float16)
    np.testing.assert_array_equal(restore_nonfinite(bad, state), last_good_params(state))
    np.testing.assert_array_equal(restore_nonfinite(p, state), p)


def _injection_runs(opt, num_runs, steps=12):
    """Vmapped guarded runs on random quadratics with a NaN loss injected at a random step.

    Returns params before each step ``[R, T, d]``, the injection steps ``[R]`` and the
    final states.
    """
    d = 4

    def one(key):
        k1, k2, k3 = jax.random.split(key, 3)
        a = jax.random.uniform(k1, (d,), minval=0.5, maxval=2.0)
        p0 = jax.random.normal(k2, (d,))
        k = jax.random.randint(k3, (), 2, steps - 2)
        f = lambda p: 0.5 * jnp.sum(a * p**2)

        def body(carry, i):
            p, s = carry
            value, g = jax.value_and_grad(f)(p)
            value = jnp.where(i == k, jnp.nan, value)
            u, s = opt.update(g, s, p, value=value)
            return (optax.apply_updates(p, u), s), p

        (_, s), before = jax.lax.scan(body, (p0, opt.init(p0)), jnp.arange(steps))
        return before, k, s

    keys = jax.random.split(jax.random.key(0), num_runs)
    before, ks, states = jit(jax.vmap(one))(keys)
    return np.asarray(before), np.asarray(ks), states


@pytest.mark.parametrize(
    "placement",
    ["wrapper", "last_in_chain"],
)
def test_rollback_restores_the_right_point_in_every_run_where_it_is_outermost(placement):
    if placement == "wrapper":
        opt = rollback_guard(optax.adam(0.1), factor=0.5)
    else:  # stateless first stage before the guard; the guard's update is applied as is
        opt = optax.chain(optax.sgd(0.1), rollback_guard(optax.identity(), factor=0.5))
    before, ks, states = _injection_runs(opt, 256)
    r = np.arange(len(ks))
    # the loss at p_k is NaN: the params after step k are p_{k-1} again (to rounding)
    np.testing.assert_allclose(before[r, ks + 1], before[r, ks - 1], rtol=1e-6, atol=1e-7)
    assert not np.allclose(before[r, ks], before[r, ks - 1])  # the runs do move
    np.testing.assert_array_equal(np.asarray(states_guard(states).num_rollbacks), 1)
    np.testing.assert_array_equal(np.asarray(states_guard(states).num_misplaced), 0)
    check_placement(states)  # no error


def states_guard(states):
    leaves = jax.tree.leaves(states, is_leaf=lambda x: isinstance(x, RollbackState))
    return next(x for x in leaves if isinstance(x, RollbackState))


def test_rollback_followed_by_another_transform_is_refused():
    # a transform AFTER the guard rescales its restore update: the params would go to the
    # wrong point. Under jit every run counts the mismatch and check_placement raises...
    opt = optax.chain(rollback_guard(optax.identity(), factor=0.5), optax.sgd(0.1))
    before, ks, states = _injection_runs(opt, 256)
    r = np.arange(len(ks))
    wrong = ~np.all(np.isclose(before[r, ks + 1], before[r, ks - 1], rtol=1e-6), axis=-1)
    assert wrong.mean() > 0.9  # the restore really is wrong in this composition
    assert np.all(np.asarray(states_guard(states).num_misplaced) > 0)  # ...and every run says so
    with pytest.raises(ValueError, match="outermost"):
        check_placement(states)
    # ...and an eager call raises at the first step that sees the mismatch
    p = jnp.ones(2)
    state = opt.init(p)
    u, state = opt.update(jnp.ones(2), state, p, value=1.0)
    with pytest.raises(ValueError, match="OUTERMOST"):
        opt.update(jnp.ones(2), state, optax.apply_updates(p, u), value=1.0)


# ----------------------------------------------------------------------------- monitor


def test_gradient_monitor_matches_direct_norms():
    p = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([[1.0, 2.0], [2.0, 0.0]]), "b": jnp.array([0.0, 4.0])}
    gn = np.sqrt(1 + 4 + 4 + 16)
    pn = np.sqrt(9 + 16 + 1 + 4)

    wrapped = gradient_monitor(optax.sgd(0.1))
    u, s = jit(wrapped.update)(g, wrapped.init(p), p)
    np.testing.assert_allclose(float(s.grad_norm), gn, rtol=1e-6)
    np.testing.assert_allclose(float(s.leaf_grad_norms["w"]), 3.0, rtol=1e-6)
    np.testing.assert_allclose(float(s.leaf_grad_norms["b"]), 4.0, rtol=1e-6)
    np.testing.assert_allclose(float(s.update_norm), 0.1 * gn, rtol=1e-6)
    np.testing.assert_allclose(float(s.param_norm), pn, rtol=1e-6)
    np.testing.assert_allclose(float(s.update_ratio), 0.1 * gn / pn, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, -0.1 * b), u, g)

    chained = optax.chain(optax.sgd(0.5), gradient_monitor())  # watches the update
    u, s = chained.update(g, chained.init(p), p)
    np.testing.assert_allclose(float(s[1].grad_norm), 0.5 * gn, rtol=1e-6)
    np.testing.assert_allclose(float(s[1].update_ratio), 0.5 * gn / pn, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, -0.5 * b), u, g)
    assert int(s[1].count) == 1

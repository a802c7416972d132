"""Tests for jaxopt_lab.health: each detector fires on a constructed failing run, stays
quiet on a healthy one, reports the right first step, and runs inside jit(scan)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import health
from jaxopt_lab.health import FLAG_NAMES, Thresholds

T = 60  # steps of every synthetic run (one compiled scan per input structure)


@functools.partial(jax.jit, static_argnames=("th", "layer_order"))
def _scan(xs, th=Thresholds(), layer_order=None):
    """Run the monitor over stacked per-step inputs ``xs`` (dict: loss, grads, ...)."""

    def body(state, inp):
        t, x = inp
        state, rep = health.update_health(state, t, thresholds=th, layer_order=layer_order, **x)
        return state, rep

    n = xs["loss"].shape[0]
    return jax.lax.scan(body, health.init_health(th), (jnp.arange(n), xs))


def _first_true(a) -> int:
    a = np.asarray(a)
    return int(np.argmax(a)) if a.any() else -1


def _fired(state) -> dict[str, int]:
    return health.first_fired(state)


def _quiet(state, except_=()):
    fired = {k: v for k, v in _fired(state).items() if v >= 0 and k not in except_}
    assert fired == {}, f"false alarm(s): {fired}"


def _grads(norm_scales, layer_scales=(1.0, 1.0, 1.0)):
    """Stacked grads {l0, l1, l2} with global norm ``norm_scales[t]`` and layer ratios."""
    base = np.ones(4, np.float32) / 2.0  # unit norm per layer
    ls = np.asarray(layer_scales, np.float32)
    ls = ls / np.linalg.norm(ls)
    s = np.asarray(norm_scales, np.float32)[:, None]
    return {f"l{i}": {"w": jnp.asarray(s * ls[i] * base)} for i in range(3)}


# ----------------------------------------------------------------------- in-scan, jit, vmap
def _tiny_training(lr, steps=50, bias=0.0):
    """A 2-layer ReLU regression trained with SGD inside one scan; monitor every step."""
    kx, kw1, kw2 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (32, 3))
    y = jnp.sin(x[:, 0]) + 0.5 * x[:, 1]
    params = {
        "hidden": {"w": jax.random.normal(kw1, (3, 16)) * np.sqrt(2 / 3), "b": jnp.full(16, bias)},
        "out": {"w": jax.random.normal(kw2, (16,)) * 0.25, "b": jnp.zeros(())},
    }

    def forward(p, x):
        h = jax.nn.relu(x @ p["hidden"]["w"] + p["hidden"]["b"])
        return h @ p["out"]["w"] + p["out"]["b"], h

    def loss_fn(p, x, y):
        pred, h = forward(p, x)
        return jnp.mean((pred - y) ** 2), h

    th = Thresholds()

    def run(params, x, y, lr):
        def body(carry, t):
            p, hs = carry
            (loss, h), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y)
            val = loss_fn(p, x + 0.1, y)[0]
            hs, rep = health.update_health(
                hs, t, loss=loss, grads=g, params=p, activations=h, val_loss=val, thresholds=th
            )
            p = jax.tree.map(lambda a, b: a - lr * b, p, g)
            return (p, hs), rep

        return jax.lax.scan(body, (params, health.init_health(th)), jnp.arange(steps))

    return run, (params, x, y, lr)


def _callback_prims(jaxpr) -> list[str]:
    found = []
    for eqn in jaxpr.eqns:
        if "callback" in eqn.primitive.name or "debug" in eqn.primitive.name:
            found.append(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found += _callback_prims(sub)
    return found


def test_monitor_runs_in_jit_scan_without_callbacks_and_is_quiet_when_healthy():
    run, args = _tiny_training(lr=0.05)
    closed = jax.make_jaxpr(run)(*args)
    assert _callback_prims(closed.jaxpr) == []
    assert any(e.primitive.name == "scan" for e in closed.jaxpr.eqns)
    (_, hs), rep = jax.jit(run)(*args)
    assert rep.loss.shape == (50,)
    assert float(rep.loss[-1]) < float(rep.loss[0])  # it trains
    _quiet(hs)
    assert not bool(jnp.any(rep.any))
    # dead-fraction metric equals a numpy oracle at step 0
    h0 = np.maximum(np.asarray(args[1]) @ np.asarray(args[0]["hidden"]["w"]), 0.0)
    assert float(rep.dead_fraction[0]) == pytest.approx(np.mean(np.all(h0 == 0, axis=0)))
    # layer norms (default grouping: "hidden", "out" by parent path) match a numpy oracle
    g0 = jax.grad(lambda p: jnp.mean((h0 @ p["w"] + p["b"] - args[2]) ** 2))(args[0]["out"])
    out_norm = np.sqrt(sum(np.sum(np.square(v)) for v in jax.tree.leaves(g0)))
    assert float(rep.layer_grad_norms[0, 1]) == pytest.approx(out_norm, rel=1e-4)


def test_vmapped_scan_matches_serial_python_loop():
    rng = np.random.default_rng(0)
    loss = jnp.asarray(1.0 + 0.5 * (-1.0) ** np.arange(T) + 0.01 * rng.normal(size=T), jnp.float32)
    grads = _grads(2.0 ** (np.arange(T) / 3.0))
    th = Thresholds(growth_window=4, oscillation_window=8, plateau_window=10)
    # two runs in one vmapped scan: the one above and a constant (healthy, then flat) one
    loss2 = jnp.stack([loss, jnp.ones(T)])
    grads2 = jax.tree.map(lambda a: jnp.stack([a, a * 0 + 1.0]), grads)
    vstate, vrep = jax.vmap(lambda l, g: _scan({"loss": l, "grads": g}, th=th))(loss2, grads2)
    # serial oracle for run 0: a python loop over (jitted) update_health
    s = health.init_health(th)
    step = jax.jit(health.update_health, static_argnames=("thresholds", "layer_order"))
    for t in range(T):
        s, r = step(
            s, t, loss=loss[t], grads=jax.tree.map(lambda a, t=t: a[t], grads), thresholds=th
        )
        for name in FLAG_NAMES:
            assert bool(getattr(r.flags, name)) == bool(getattr(vrep.flags, name)[0, t]), (name, t)
        np.testing.assert_allclose(r.grad_norm, vrep.grad_norm[0, t], rtol=1e-6)
    fired0 = _fired(s)
    assert [int(v[0]) for v in vstate.first_step] == list(fired0.values())
    assert fired0["oscillation"] >= 0 and fired0["exploding"] >= 0
    # run 1 (closed form): only the plateau fires, when its 10-step window is full
    expected = dict.fromkeys(FLAG_NAMES, -1) | {"plateau": 10}
    assert dict(zip(FLAG_NAMES, [int(v[1]) for v in vstate.first_step], strict=True)) == expected


# ----------------------------------------------------------------------- exploding / nonfinite
def test_exploding_geometric_growth_fires_at_window_end():
    norms = 1e-3 * 2.0 ** np.arange(T)  # doubles each step
    state, rep = _scan({"loss": jnp.ones(T), "grads": _grads(norms)}, th=Thresholds())
    # increments are log 2 > log 1.5 from step 1 on; the window (10) is full at step 10
    assert _fired(state)["exploding"] == 10
    assert _first_true(rep.flags.exploding) == 10
    np.testing.assert_allclose(rep.grad_growth[10:], 2.0, rtol=1e-4)
    np.testing.assert_allclose(rep.grad_norm, norms, rtol=1e-5)
    # geometric test switched off (huge growth factor): the absolute threshold fires
    # at the first step with norm > 1e3, i.e. 1e-3 * 2**t > 1e3 -> t = 20
    th = Thresholds(growth_factor=1e6)
    state, _ = _scan({"loss": jnp.ones(T), "grads": _grads(norms)}, th=th)
    assert _fired(state)["exploding"] == int(np.argmax(norms > 1e3)) == 20


def test_exploding_quiet_on_healthy_noisy_decaying_gradients():
    rng = np.random.default_rng(1)
    norms = 5.0 * np.exp(-np.arange(T) / 20) * (1 + 0.3 * rng.uniform(size=T))
    # a short burst of growth (3 rising steps) is not geometric growth over the window
    norms[30:33] *= np.array([1.5, 2.25, 3.4])
    state, _ = _scan({"loss": jnp.linspace(2.0, 0.5, T), "grads": _grads(norms)})
    _quiet(state)


def test_nonfinite_first_step_for_loss_grads_and_params():
    loss = np.linspace(2.0, 1.0, T).astype(np.float32)
    loss[17] = np.inf
    loss[18:] = np.nan
    g = _grads(np.ones(T))
    g["l1"]["w"] = g["l1"]["w"].at[40, 2].set(jnp.nan)
    params = {"w": jnp.ones((T, 3)).at[25, 0].set(-jnp.inf)}
    state, rep = _scan({"loss": jnp.asarray(loss)})
    assert _fired(state)["nonfinite"] == 17
    state, rep = _scan({"loss": jnp.ones(T), "grads": g, "params": params})
    assert _fired(state)["nonfinite"] == 25
    assert _fired(state)["exploding"] == 40  # a NaN gradient is an exploding gradient
    assert not bool(rep.flags.nonfinite[26])  # flags are per step; first_step latches
    assert int(rep.first_step.nonfinite[26]) == 25


# ----------------------------------------------------------------------- vanishing
def test_vanishing_ratio_fires_and_matches_oracle():
    g = _grads(np.ones(T), layer_scales=(1e-5, 0.1, 1.0))
    state, rep = _scan({"loss": jnp.ones(T), "grads": g})
    assert _fired(state)["vanishing"] == 0
    w0, w2 = np.asarray(g["l0"]["w"][0]), np.asarray(g["l2"]["w"][0])
    np.testing.assert_allclose(rep.grad_ratio[0], np.linalg.norm(w0) / np.linalg.norm(w2), 1e-5)
    # healthy: comparable layer norms
    g = _grads(np.ones(T), layer_scales=(0.5, 1.0, 2.0))
    state, rep = _scan({"loss": jnp.ones(T), "grads": g})
    assert _fired(state)["vanishing"] == -1
    np.testing.assert_allclose(rep.grad_ratio, 0.25, rtol=1e-5)


def test_vanishing_layer_order_overrides_pytree_order():
    # flatten order sorts keys: "hidden" < "input" < "output", so the default ordering
    # would compare "hidden" (first) with "output" (last); layer_order fixes it
    g = {
        "input": {"kernel": jnp.full((2, 2), 1e-6), "bias": jnp.full(2, 1e-6)},
        "hidden": {"kernel": jnp.full((2, 2), 1.0)},
        "output": {"kernel": jnp.full((2, 1), 1.0)},
    }
    assert health.leaf_paths(g)[0] == "hidden/kernel"
    norms = health.layer_norms(g, ("input", "hidden", "output"))
    np.testing.assert_allclose(norms, [np.sqrt(6) * 1e-6, 2.0, np.sqrt(2)], rtol=1e-5)
    _, rep = health.update_health(health.init_health(), 0, loss=1.0, grads=g)
    assert not bool(rep.flags.vanishing)  # wrong (default) order: hidden vs output
    _, rep = health.update_health(
        health.init_health(), 0, loss=1.0, grads=g, layer_order=("input", "hidden", "output")
    )
    assert bool(rep.flags.vanishing)
    with pytest.raises(ValueError, match="layer_order entry 'nope'"):
        health.layer_norms(g, ("input", "nope"))


# ----------------------------------------------------------------------- dead units
def test_dead_units_fraction_oracle_fire_and_quiet():
    x = jax.random.normal(jax.random.key(3), (64, 8))
    w = jax.random.normal(jax.random.key(4), (8, 20)) * np.sqrt(2 / 8)
    b = jnp.zeros(20).at[:12].set(-100.0)  # 12 of 20 units can never fire: 60% dead
    acts = jax.nn.relu(x @ w + b)
    frac, per_layer = health.dead_fraction([acts, jax.nn.relu(x @ w)])
    np.testing.assert_allclose(per_layer, [0.6, 0.0])
    np.testing.assert_allclose(frac, 12 / 40)
    _, rep = health.update_health(health.init_health(), 3, loss=1.0, activations=acts)
    assert bool(rep.flags.dead_units) and int(rep.first_step.dead_units) == 3
    _, rep = health.update_health(health.init_health(), 3, loss=1.0, activations=jax.nn.relu(x @ w))
    assert not bool(rep.flags.dead_units) and int(rep.first_step.dead_units) == -1
    # overall 30% dead over both layers: quiet by default (0.5), fires at a 0.2 threshold
    both = [acts, jax.nn.relu(x @ w)]
    _, rep = health.update_health(health.init_health(), 0, loss=1.0, activations=both)
    assert not bool(rep.flags.dead_units)
    th = Thresholds(dead_fraction=0.2)
    _, rep = health.update_health(
        health.init_health(th), 0, loss=1.0, activations=both, thresholds=th
    )
    assert bool(rep.flags.dead_units) and float(rep.dead_fraction) == pytest.approx(0.3)
    # [batch, time, units]: only the last axis is units
    a3 = jnp.ones((4, 5, 3)).at[:, :, 1].set(0.0)
    np.testing.assert_allclose(health.dead_fraction(a3)[0], 1 / 3)
    with pytest.raises(ValueError, match="activations"):
        health.dead_fraction(jnp.ones(5))


# ----------------------------------------------------------------------- plateau
def _ema_np(x, decay=0.9):
    out, e = [], None
    for v in x:
        e = v if e is None else decay * e + (1 - decay) * v
        out.append(e)
    return np.asarray(out)


def test_plateau_first_step_matches_oracle_and_quiet_while_improving():
    th = Thresholds(plateau_window=10, plateau_eps=1e-3, ema_decay=0.5)
    loss = np.concatenate([np.linspace(2.0, 0.6, 20), np.full(T - 20, 0.6)]).astype(np.float32)
    state, rep = _scan({"loss": jnp.asarray(loss)}, th=th)
    ema = _ema_np(loss.astype(np.float64), decay=0.5)
    change = np.abs(ema[10:] - ema[:-10]) / np.abs(ema[:-10])
    expected = 10 + int(np.argmax(change < 1e-3))
    assert 20 < expected < T - 5
    assert _fired(state)["plateau"] == expected
    _quiet(state, except_=("plateau",))
    # constant loss: fires exactly when the window is full
    state, _ = _scan({"loss": jnp.ones(T)}, th=th)
    assert _fired(state)["plateau"] == 10
    # steadily improving loss (1% per step): quiet
    state, _ = _scan({"loss": jnp.asarray(2.0 * 0.99 ** np.arange(T))}, th=th)
    _quiet(state)
    # a floor above the plateau level means "converged", not stuck
    state, _ = _scan({"loss": jnp.asarray(loss)}, th=dataclasses.replace(th, plateau_floor=1.0))
    _quiet(state)


# ----------------------------------------------------------------------- oscillation
def test_oscillation_fires_on_zigzag_and_is_quiet_on_noisy_descent():
    zigzag = 1.0 + 0.5 * (-1.0) ** np.arange(T)
    state, rep = _scan({"loss": jnp.asarray(zigzag)})
    # a regular zigzag: every difference flips sign; the first flip is at step 2, so
    # 2 * oscillation_window (40) consecutive flips are complete at step 41
    assert _fired(state)["oscillation"] == 41
    np.testing.assert_allclose(rep.sign_change_fraction[21:], 1.0)
    rng = np.random.default_rng(2)
    noisy = 2.0 * 0.98 ** np.arange(T) * (1 + 0.03 * rng.normal(size=T))  # minibatch-like
    state, rep = _scan({"loss": jnp.asarray(noisy)})
    _quiet(state)
    assert float(np.nanmax(rep.sign_change_fraction)) > 0.5  # the sign test alone would fire
    # a converged run: loss near 0 with minibatch noise large RELATIVE to it is quiet too
    # (no regular alternation, and the loss stays near its best level)
    converged = 0.02 * (1.0 + 0.8 * rng.uniform(-1, 1, size=T))
    state, rep = _scan({"loss": jnp.asarray(converged)})
    _quiet(state)
    assert float(np.nanmax(rep.relative_diff_std)) > 0.25  # the old spread test fired here
    # a loss bouncing far above its best level (an unstable run) fires without regularity
    bounce = np.concatenate([2.0 * 0.9 ** np.arange(20), 5.0 * (1 + rng.uniform(0, 1, T - 20))])
    state, rep = _scan({"loss": jnp.asarray(bounce)})
    first = _fired(state)["oscillation"]
    assert 21 <= first < 40 and float(rep.sign_change_fraction[first]) < 1.0
    assert float(rep.above_best[first]) > 4.0
    # the floor: nothing below it
    floored = Thresholds(oscillation_floor=20.0)
    state, _ = _scan({"loss": jnp.asarray(bounce)}, th=floored)
    _quiet(state)
    with pytest.raises(ValueError, match="oscillation_above_best"):
        Thresholds(oscillation_above_best=1.0)


def _digits_runs(opt, num_seeds, steps, *, hidden=(32,), activation="relu", init="he",
                 batch_size=32):
    """Minibatch training on digits, vmapped over seeds, monitor in the scan (defaults)."""
    from jaxopt_lab import data, models

    train = data.load_digits()["train"]
    model = models.mlp(64, hidden, 10, activation=activation, init=init)
    th = health.DEFAULT_THRESHOLDS

    def one(key):
        k1, k2 = jax.random.split(key)
        p = model.init(k1)

        def body(carry, t):
            p, s, hs = carry
            b = data.sample_batch(jax.random.fold_in(k2, t), train, batch_size)
            loss, g = jax.value_and_grad(model.loss)(p, b)
            u, s = opt.update(g, s, p)
            hs, rep = health.update_health(hs, t, loss=loss, thresholds=th)
            return (optax.apply_updates(p, u), s, hs), rep

        _, rep = jax.lax.scan(body, (p, opt.init(p), health.init_health(th)), jnp.arange(steps))
        return rep

    keys = jax.random.split(jax.random.key(123), num_seeds)
    return jax.jit(jax.vmap(one))(keys)


def _longest_flip_run(losses):
    d = np.diff(losses, axis=-1)
    flips = d[..., 1:] * d[..., :-1] < 0
    best = np.zeros(flips.shape[:-1], int)
    run = np.zeros_like(best)
    for t in range(flips.shape[-1]):
        run = np.where(flips[..., t], run + 1, 0)
        best = np.maximum(best, run)
    return best


@pytest.mark.parametrize(
    "name",
    ["sgd", "momentum", "adam"],
)
def test_oscillation_quiet_on_healthy_minibatch_training_over_many_seeds(name):
    opt = {
        "sgd": optax.sgd(0.1),
        "momentum": optax.sgd(0.05, momentum=0.9),
        "adam": optax.adam(1e-2),
    }[name]
    rep = _digits_runs(opt, 128, 300)
    losses = np.asarray(rep.loss)
    assert np.median(losses[:, -20:]) < 0.5 * np.median(losses[:, :5])  # they train
    osc = np.asarray(rep.flags.oscillation)
    assert int(osc.any(axis=1).sum()) == 0
    # ...with a margin on both routes of the detector: the EMA loss stays below 3x its
    # best level (threshold 4x) and no run alternates for 30 steps (threshold 40)
    th = health.DEFAULT_THRESHOLDS
    assert float(np.nanmax(np.asarray(rep.above_best))) < 0.75 * th.oscillation_above_best
    assert int(_longest_flip_run(losses).max()) < 0.75 * 2 * th.oscillation_window
    # the old statistic alone (sign fraction > 0.5 and relative spread > 0.25) fires
    old = (np.asarray(rep.sign_change_fraction) > 0.5) & (np.asarray(rep.relative_diff_std) > 0.25)
    assert old.any(axis=1).mean() > 0.5


def test_oscillation_fires_on_a_constant_learning_rate_above_the_stability_edge():
    # the instability experiment's constant variant: tanh MLP 64-64-64-10 (Glorot),
    # minibatch SGD at lr 1.0, batch 64: the loss bounces by nats far above its best
    rep = _digits_runs(optax.sgd(1.0), 16, 300, hidden=(64, 64), activation="tanh",
                       init="xavier", batch_size=64)
    fired = np.asarray(rep.flags.oscillation).any(axis=1)
    assert fired.sum() >= 15, fired
    # same seeds at a healthy rate: quiet
    rep = _digits_runs(optax.sgd(0.1), 16, 300, hidden=(64, 64), activation="tanh",
                       init="xavier", batch_size=64)
    assert not np.asarray(rep.flags.oscillation).any()


# ----------------------------------------------------------------------- overfitting
def test_overfitting_fires_after_validation_minimum_and_quiet_otherwise():
    t = np.arange(T, dtype=np.float32)
    train = 1.0 / (1.0 + 0.1 * t)
    val = np.where(t < 25, train + 0.1, train[25] + 0.1 + 0.02 * (t - 25))
    state, rep = _scan({"loss": jnp.asarray(train), "val_loss": jnp.asarray(val)})
    first = _fired(state)["overfitting"]
    assert 25 < first <= 25 + 20 + 10
    assert first == _first_true(rep.flags.overfitting)
    assert float(rep.generalization_loss[first]) > 0.05
    assert float(rep.gap_increase[first]) > 0.05
    # healthy: val tracks train with a constant (even large) gap
    state, _ = _scan({"loss": jnp.asarray(train), "val_loss": jnp.asarray(train + 0.5)})
    _quiet(state)


# ----------------------------------------------------------------------- thresholds
def test_thresholds_override_and_validation():
    g = _grads(np.full(T, 50.0))
    state, _ = _scan({"loss": jnp.ones(T), "grads": g})
    assert _fired(state)["exploding"] == -1  # 50 < default 1e3
    state, _ = _scan({"loss": jnp.ones(T), "grads": g}, th=Thresholds(grad_norm_max=10.0))
    assert _fired(state)["exploding"] == 0
    mon = health.monitor(Thresholds(vanishing_ratio=0.5))
    _, rep = mon.update(
        mon.init(), 0, loss=1.0, grads={"a": {"w": jnp.ones(2)}, "b": {"w": jnp.ones(2) * 4}}
    )
    assert bool(rep.flags.vanishing) and float(rep.grad_ratio) == pytest.approx(0.25)
    for bad in (
        {"ema_decay": 1.0},
        {"growth_window": 1},
        {"dead_fraction": 1.5},
        {"grad_norm_max": -1.0},
        {"growth_factor": 1.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Thresholds(**bad)
    with pytest.raises(TypeError, match="plateau_window"):
        Thresholds(plateau_window=2.5)
    with pytest.raises(ValueError, match="windows do not match"):
        health.update_health(
            health.init_health(), 0, loss=1.0, thresholds=Thresholds(overfit_window=3)
        )
    with pytest.raises(ValueError, match="windows do not match"):
        health.update_health(
            health.init_health(), 0, loss=1.0, thresholds=Thresholds(growth_window=3)
        )
    with pytest.raises(TypeError, match="thresholds"):
        health.init_health({"grad_norm_max": 1.0})


# ----------------------------------------------------------------------- pure hooks
def test_seed_sensitivity_matches_numpy_and_flags():
    x = np.array([0.10, 0.12, 0.11, 0.13, 0.09, 0.10, 0.12, 0.11], np.float32)
    s = health.seed_sensitivity(jnp.asarray(x))
    q25, q50, q75 = np.percentile(x, [25, 50, 75])
    np.testing.assert_allclose([s.median, s.iqr, s.std], [q50, q75 - q25, np.std(x)], rtol=1e-5)
    assert not bool(s.flag)
    spread = health.seed_sensitivity(jnp.asarray([0.1, 0.1, 2.0, 3.0, 0.1, 2.5, 0.1, 1.5]))
    assert bool(spread.flag)
    nf = health.seed_sensitivity(jnp.asarray([0.1, 0.1, jnp.nan, 0.1]))
    assert (
        bool(nf.flag)
        and float(nf.nonfinite_fraction) == 0.25
        and float(nf.max) == pytest.approx(0.1)
    )
    with pytest.raises(ValueError, match="final_losses"):
        health.seed_sensitivity(jnp.ones((2, 2)))


def test_mode_coverage_counts_match_brute_force():
    k, std = 8, 0.05
    ang = 2 * np.pi * np.arange(k) / k
    centers = np.stack([np.cos(ang), np.sin(ang)], 1) * 2.0
    rng = np.random.default_rng(0)
    good = centers[rng.integers(0, k, 400)] + std * rng.normal(size=(400, 2))
    cov = health.mode_coverage(jnp.asarray(good), jnp.asarray(centers), std=std)
    assert int(cov.modes_covered) == 8 and not bool(cov.flag)
    assert float(cov.high_quality_fraction) > 0.98
    collapsed = centers[rng.integers(0, 2, 400)] + std * rng.normal(size=(400, 2))
    collapsed[:40] = 0.0  # junk between modes: low quality
    cov = health.mode_coverage(jnp.asarray(collapsed), jnp.asarray(centers), std=std)
    d = np.linalg.norm(collapsed[:, None] - centers[None], axis=-1)
    ok = d.min(1) <= 3 * std
    counts = np.bincount(d.argmin(1)[ok], minlength=k)
    np.testing.assert_array_equal(cov.counts, counts)
    assert int(cov.modes_covered) == 2 and bool(cov.flag)
    assert float(cov.high_quality_fraction) == pytest.approx(ok.mean())
    assert float(cov.reverse_kl) == pytest.approx(np.log(4.0), rel=0.05)  # 2 of 8 modes


def test_forgetting_matches_hand_computation():
    r = np.array([[0.9, 0.1, 0.1], [0.6, 0.8, 0.2], [0.5, 0.7, 0.95]], np.float32)
    f = health.forgetting(jnp.asarray(r))
    # BWT = mean(R[2,0]-R[0,0], R[2,1]-R[1,1]) = mean(-0.4, -0.1)
    assert float(f.backward_transfer) == pytest.approx(-0.25)
    # forgetting_j = max_{l<2} R[l, j] - R[2, j]: task0: 0.9-0.5, task1: 0.8-0.7
    np.testing.assert_allclose(f.per_task_forgetting, [0.4, 0.1], rtol=1e-6)
    assert float(f.average_accuracy) == pytest.approx(np.mean([0.5, 0.7, 0.95]))
    assert bool(f.flag)
    no = health.forgetting(jnp.asarray(np.triu(np.ones((3, 3))) * 0 + 0.9))
    assert not bool(no.flag) and float(no.backward_transfer) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="accuracy"):
        health.forgetting(jnp.ones((2, 3)))


def test_persistent_onset_matches_a_serial_walk():
    from jaxopt_lab.health.detectors import persistent_onset

    rng = np.random.default_rng(0)
    flags = rng.random((5, 7, 6)) < 0.6
    steps = np.arange(1, 7) * 10
    got = persistent_onset(flags, steps)
    for idx in np.ndindex(flags.shape[:-1]):
        want = np.inf
        for t in range(5, -1, -1):
            if not flags[idx][t]:
                break
            want = steps[t]
        assert got[idx] == want
    assert persistent_onset([True, True], [3, 4]) == 3
    with pytest.raises(ValueError, match="flags"):
        persistent_onset(np.ones((2, 3), bool), [1, 2])

"""Tests for the experiments registry, the shared training loop and the first experiments."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import data, experiments, models
from jaxopt_lab.experiments import _common


# ----------------------------------------------------------------------- registry
def test_registry_names_and_get():
    names = experiments.names()
    assert names[:2] == ["explosion", "vanishing"]
    for name in ("explosion", "vanishing"):
        mod = experiments.get(name)
        assert callable(mod.run)
        assert isinstance(mod.Config.quick(), mod.Config)
        assert isinstance(mod.Config.full(), mod.Config)
        with pytest.raises(AttributeError):  # frozen
            mod.Config.quick().num_seeds = 3
        assert mod.Config.quick().num_seeds >= 8
    with pytest.raises(ValueError, match="explosion"):
        experiments.get("nope")


def test_config_validation_before_any_compile():
    exp, van = experiments.get("explosion"), experiments.get("vanishing")
    with pytest.raises(ValueError, match="num_seeds"):
        exp.Config(num_seeds=0)
    with pytest.raises(ValueError, match="rollback_factor"):
        exp.Config(rollback_factor=2.0)
    with pytest.raises(TypeError, match="depth"):
        van.Config(depth=2.5)
    with pytest.raises(TypeError, match="config"):
        exp.run(van.Config.quick())


# ----------------------------------------------------------------------- training loop
def _tiny_problem():
    def init(key):
        return {"w": jax.random.normal(key, (3,))}

    def loss(p, batch):
        x, y = batch
        return jnp.mean((x @ p["w"] - y) ** 2)

    def batch_fn(d, key, t):
        x = jax.random.normal(key, (8, 3))
        return x, x @ d

    return init, loss, batch_fn, jnp.array([1.0, -2.0, 0.5])


def test_train_over_seeds_matches_serial_loop_and_variants_are_paired():
    init, loss, batch_fn, w_true = _tiny_problem()
    keys = _common.seed_keys(0, 3)
    opts = (optax.sgd(0.1), optax.adam(0.05))
    both = _common.train_over_seeds(
        init, loss, opts, keys=keys, steps=6, batch_fn=batch_fn, data=w_true
    )
    assert both.losses.shape == (2, 3, 6)
    assert both.params["w"].shape == (2, 3, 3)
    np.testing.assert_array_equal(both.losses[0, :, 0], both.losses[1, :, 0])  # same init/data
    # serial oracle for variant 1 (adam), seed 2: a plain python loop
    k_init, k_data = jax.random.split(keys[2])
    p = init(k_init)
    opt = opts[1]
    s = opt.init(p)

    @jax.jit
    def step(p, s, t):
        b = batch_fn(w_true, jax.random.fold_in(k_data, t), t)
        value, g = jax.value_and_grad(loss)(p, b)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, value

    serial = []
    for t in range(6):
        p, s, value = step(p, s, t)
        serial.append(float(value))
    np.testing.assert_allclose(both.losses[1, 2], serial, rtol=1e-5)
    np.testing.assert_allclose(both.params["w"][1, 2], p["w"], rtol=1e-5)
    assert both.first_step("nonfinite").shape == (2, 3)
    with pytest.raises(TypeError, match="keys"):
        _common.train_over_seeds(init, loss, opts[0], keys=jnp.zeros(3), steps=2, batch_fn=batch_fn)
    with pytest.raises(TypeError, match="optimizer"):
        _common.train_over_seeds(init, loss, [], keys=keys, steps=2, batch_fn=batch_fn)


# ----------------------------------------------------------------------- explosion
def test_explosion_quick_contrast_and_run_dir(tmp_path):
    exp = experiments.get("explosion")
    cfg = exp.Config.quick()
    out = exp.run(cfg, out_dir=tmp_path / "run")
    s = out["summary"]
    # no clipping: every seed's loss becomes non-finite
    assert s["no_clip"]["nonfinite_fraction"] == 1.0
    # clipping: finite and learns (well below the initial loss)
    assert s["clip"]["nonfinite_fraction"] == 0.0
    assert s["clip"]["final_loss"] < 0.5 * s["clip"]["initial_loss"]
    # rollback guard: recovers, with at least one rollback per seed
    assert s["rollback"]["nonfinite_fraction"] == 0.0
    assert np.isfinite(s["rollback"]["final_loss"])
    assert s["rollback"]["final_loss"] < 0.5 * s["rollback"]["initial_loss"]
    assert s["rollback"]["rollback_events"] >= 1
    assert s["no_clip"]["seed_sensitive"]  # non-finite seeds count as a failure
    a = out["arrays"]
    losses = a["losses"]
    assert losses.shape == (3, cfg.num_seeds, cfg.steps)
    # the nonfinite detector fires exactly at the first step whose loss or gradient norm is
    # non-finite (oracle: the recorded arrays), no later than the loss itself blows up
    for seed in range(cfg.num_seeds):
        bad_loss = np.nonzero(~np.isfinite(losses[0, seed]))[0][0]
        bad = np.nonzero(~np.isfinite(losses[0, seed]) | ~np.isfinite(a["grad_norm"][0, seed]))
        assert a["first_nonfinite"][0, seed] == bad[0][0] <= bad_loss
        # and the exploding-gradient flag fired no later than that
        assert 0 <= a["first_exploding"][0, seed] <= bad[0][0]
    assert np.all(a["first_nonfinite"][1] == -1)
    # paired variants: identical first loss
    np.testing.assert_array_equal(losses[0, :, 0], losses[1, :, 0])
    # run directory
    run_dir = tmp_path / "run"
    rows = _common.read_records(run_dir)
    assert len(rows) == 3 * cfg.num_seeds
    assert {r["variant"] for r in rows} == {"no_clip", "clip", "rollback"}
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["config"]["steps"] == cfg.steps
    assert {"jax", "optax", "flax"} <= set(meta["versions"])
    assert meta["device"]["count"] >= 1 and meta["seconds"]["compile"] > 0
    for png in ("loss_curves.png", "grad_norms.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------- vanishing
def test_vanishing_quick_profile_contrast(tmp_path):
    van = experiments.get("vanishing")
    cfg = van.Config.quick()
    out = van.run(cfg, out_dir=tmp_path)
    s = out["summary"]
    assert s["sigmoid"]["grad_ratio_init"] < 1e-3
    assert s["sigmoid"]["vanishing_fraction"] == 1.0
    assert s["sigmoid"]["first_vanishing_step"] == 0
    for ok in ("relu_he", "sigmoid_residual"):
        assert s[ok]["grad_ratio_init"] > 1e-2
        assert s[ok]["vanishing_fraction"] == 0.0
    layers = out["layers"]
    assert len(layers) == cfg.depth + 1 and layers[0] == "layers_0" and layers[-1] == "out"
    prof = out["arrays"]["sigmoid"]["profile_init"]
    assert prof.shape == (cfg.num_seeds, cfg.depth + 1)
    # the sigmoid profile decays monotonically towards the input
    assert np.all(np.diff(np.log(prof[0])) > 0)
    # oracle: per-layer gradient norms of seed 0 at init, from the model's own layer_norms
    model = models.mlp(64, [cfg.width] * cfg.depth, 10, activation="sigmoid", init="xavier")
    k_init, k_data = jax.random.split(_common.seed_keys(cfg.seed, cfg.num_seeds)[0])
    train = data.load_digits()["train"]
    batch = data.sample_batch(jax.random.fold_in(k_data, 0), train, cfg.batch_size)
    g = jax.jit(jax.grad(model.loss))(model.init(k_init), batch)
    np.testing.assert_allclose(prof[0], models.layer_norms(g), rtol=2e-3)
    assert len(_common.read_records(tmp_path)) == 3 * cfg.num_seeds
    for png in ("grad_profile.png", "loss_curves.png", "dead_fraction.png"):
        assert (tmp_path / png).stat().st_size > 1000


# ----------------------------------------------------------------------- plot/training
def test_training_plots_validate_and_draw_flags():
    from jaxopt_lab.plot import training as tplot

    losses = np.array([[1.0, 0.5, np.inf, np.nan], [1.0, 0.8, 0.6, 0.5]])
    fig = tplot.loss_curves({"a": losses}, flagged={"a": np.array([2, -1])})
    ax = fig.axes[0]
    (marker,) = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]
    # seed 0 blew up at step 2: the cross sits at step 2, at its last finite loss
    np.testing.assert_array_equal(marker.get_xdata(), [2])
    np.testing.assert_array_equal(marker.get_ydata(), [0.5])
    with pytest.raises(ValueError, match="flagged keys"):
        tplot.loss_curves({"a": losses}, flagged={"b": np.array([0, 0])})
    with pytest.raises(ValueError, match="losses"):
        tplot.loss_curves(np.ones((2, 2, 2)))
    fig = tplot.gradient_profile({"x": np.array([[1e-6, 1e-3, 1.0]])}, layer_labels=["a", "b", "c"])
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [1e-6, 1e-3, 1.0])
    fig = tplot.dead_fraction_curves(np.array([[0.0, 0.5], [0.0, 1.0]]), threshold=0.25)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0.0, 0.75])

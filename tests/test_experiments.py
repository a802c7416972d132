"""Tests for the experiments registry and the first experiments (explosion, vanishing)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jaxopt_lab import compare, data, experiments, models


# ----------------------------------------------------------------------- registry
def test_registry_names_and_get():
    names = experiments.names()
    assert {"explosion", "vanishing"} <= set(names)
    for name in ("explosion", "vanishing"):
        mod = experiments.get(name)
        assert callable(mod.run)
        assert isinstance(mod.Config.quick(), mod.Config)
        assert isinstance(mod.Config.full(), mod.Config)
        with pytest.raises(AttributeError):  # frozen
            mod.Config.quick().num_seeds = 3
        assert mod.Config.quick().num_seeds >= 16
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


# ----------------------------------------------------------------------- explosion
def test_explosion_quick_contrast_and_run_dir(tmp_path):
    exp = experiments.get("explosion")
    cfg = exp.Config.quick()
    out = exp.run(cfg, out_dir=tmp_path / "run")
    assert isinstance(out, compare.Results) and out.group_column == "variant"
    assert out.optimizers == ["no_clip", "clip", "rollback"]
    s = out.summary
    n = cfg.num_seeds
    # measured on 32 seeds: no_clip non-finite on 32/32 (first at steps 22-25), clip and
    # rollback on 0/32, final / initial loss at most 0.42 (clip) and 0.17 (rollback),
    # every rollback seed rolled back at least once
    # no clipping: every seed's loss becomes non-finite, and the summary lists them all
    assert s["no_clip"]["nonfinite"]["rate"] == 1.0
    assert s["nonfinite_seeds"]["no_clip"] == list(range(n))
    # clipping: finite and learns (well below the initial loss) on every seed
    assert s["clip"]["nonfinite"]["rate"] == 0.0 and s["nonfinite_seeds"]["clip"] == []
    m = out.metrics
    assert np.all(m["clip"]["final_loss"] < 0.7 * m["clip"]["initial_loss"])
    assert s["clip"]["final_loss"]["ci"][1] < 0.5 * s["clip"]["initial_loss"]
    # rollback guard: recovers, with at least one rollback per seed
    assert s["rollback"]["nonfinite"]["rate"] == 0.0
    assert np.all(m["rollback"]["final_loss"] < 0.5 * m["rollback"]["initial_loss"])
    assert np.all(m["rollback"]["rollback_events"] >= 1)
    assert s["rollback"]["rollback_events"] >= 1
    assert s["no_clip"]["seed_sensitive"]  # non-finite seeds count as a failure
    # a diverged seed is a +inf loss in the median, not dropped
    assert s["no_clip"]["final_loss"]["median"] == "inf"  # JSON: non-finite as strings
    losses = out.curves["no_clip"]["loss"][0]
    grad_norm = out.curves["no_clip"]["grad_norm"][0]
    assert out.curves["clip"]["loss"].shape == (1, n, cfg.steps)
    # the nonfinite detector fires exactly at the first step whose loss or gradient norm is
    # non-finite (oracle: the recorded arrays), no later than the loss itself blows up
    first_nf = m["no_clip"]["first_nonfinite_step"][0]
    first_ex = m["no_clip"]["first_exploding_step"][0]
    for seed in range(n):
        bad_loss = np.nonzero(~np.isfinite(losses[seed]))[0][0]
        bad = np.nonzero(~np.isfinite(losses[seed]) | ~np.isfinite(grad_norm[seed]))
        assert first_nf[seed] == bad[0][0] <= bad_loss
        # and the exploding-gradient flag fired no later than that
        assert 0 <= first_ex[seed] <= bad[0][0]
    assert np.all(m["clip"]["first_nonfinite_step"] == -1)
    # paired variants: identical first loss
    np.testing.assert_array_equal(m["no_clip"]["initial_loss"], m["clip"]["initial_loss"])
    # run directory (written by compare.store only)
    run_dir = tmp_path / "run"
    rows = compare.read_csv(run_dir)
    assert len(rows) == 3 * n
    assert {r["variant"] for r in rows} == {"no_clip", "clip", "rollback"}
    assert all(r["nonfinite"] for r in rows if r["variant"] == "no_clip")
    back = compare.load(run_dir)
    np.testing.assert_array_equal(back.metrics["clip"]["final_loss"], m["clip"]["final_loss"])
    assert back.summary["nonfinite_seeds"]["no_clip"] == list(range(n))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["config"]["steps"] == cfg.steps
    assert {"jax", "optax", "flax"} <= set(meta["versions"])
    assert meta["device"]["count"] >= 1 and meta["compile_seconds"] > 0
    assert meta["key"] == np.asarray(jax.random.key_data(jax.random.key(cfg.seed))).tolist()
    for png in ("loss_curves.png", "grad_norms.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------- vanishing
def test_vanishing_quick_profile_contrast(tmp_path):
    van = experiments.get("vanishing")
    cfg = van.Config.quick()
    out = van.run(cfg, out_dir=tmp_path)
    assert isinstance(out, compare.Results)
    s = out.summary
    assert s["sigmoid"]["grad_ratio_init"] < 1e-3
    assert s["sigmoid"]["vanishing"]["rate"] == 1.0
    assert s["sigmoid"]["first_vanishing_step"] == 0
    for ok in ("relu_he", "sigmoid_residual"):
        assert s[ok]["grad_ratio_init"] > 1e-2
        assert s[ok]["vanishing"]["rate"] == 0.0
    # the residual net learns: measured on 32 seeds, its loss fell on 32/32 (by 5.8 to
    # 13 nats from ~16); asserted: on every seed, and the median drop's CI above 2
    assert s["sigmoid_residual"]["loss_fell"]["rate"] == 1.0
    assert s["sigmoid_residual"]["loss_drop"]["ci"][0] > 2.0
    assert all(s["nonfinite_seeds"][v] == [] for v in van.VARIANTS)
    layers = out.meta["layers"]
    assert len(layers) == cfg.depth + 1 and layers[0] == "layers_0" and layers[-1] == "out"
    prof = out.curves["sigmoid"]["profile_init"][0]
    assert prof.shape == (cfg.num_seeds, cfg.depth + 1)
    # the sigmoid profile decays monotonically towards the input
    assert np.all(np.diff(np.log(prof[0])) > 0)
    # oracle: per-layer gradient norms of seed 0 at init, from the model's own layer_norms
    # (seed 0's key is fold_in(key(seed), 0); init and data streams as in compare.train)
    model = models.mlp(64, [cfg.width] * cfg.depth, 10, activation="sigmoid", init="xavier")
    key0 = jax.random.fold_in(jax.random.key(cfg.seed), 0)
    k_init, k_data = jax.random.fold_in(key0, 0), jax.random.fold_in(key0, 1)
    train = data.load_digits()["train"]
    batch = data.sample_batch(jax.random.fold_in(k_data, 0), train, cfg.batch_size)
    g = jax.jit(jax.grad(model.loss))(model.init(k_init), batch)
    np.testing.assert_allclose(prof[0], models.layer_norms(g), rtol=2e-3)
    assert len(compare.read_csv(tmp_path)) == 3 * cfg.num_seeds
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

"""dead_units experiment: the quick preset shows the expected contrast."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import compare, experiments, health
from jaxopt_lab.experiments import dead_units as du


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dead_units")
    return du.run(du.Config.quick(), out_dir=out), out


def test_contrast_large_lr_kills_relu_not_leaky(quick_run):
    # measured on 32 seeds at lr 1.0: relu_large_lr flagged 32/32, whole-set dead fraction
    # median 0.55 (min 0.15), test accuracy median 0.65; leaky ReLU dead 0.0 on every seed,
    # accuracy median 0.96, but 4/32 leaky seeds diverge (listed, never hidden); the
    # control: dead <= 0.06, flagged 0/32, accuracy median 0.96
    res, out = quick_run
    assert isinstance(res, compare.Results) and res.group_column == "variant"
    s = res.summary
    # the large step size kills a large share of ReLU units for good...
    assert s["relu_large_lr"]["flagged"]["ci"][0] > 0.8
    assert s["relu_large_lr"]["dataset_dead_fraction"]["ci"][0] > 0.3
    # ...while the control and leaky ReLU stay below the detector's threshold (no false alarm)
    assert s["relu_small_lr"]["flagged"]["rate"] == 0.0
    assert s["leaky_relu_large_lr"]["flagged"]["rate"] == 0.0
    # leaky ReLU units cannot be exactly zero (a diverged seed's NaN units are not "dead")
    assert np.all(res.metrics["leaky_relu_large_lr"]["dataset_dead_fraction"] == 0.0)
    # the cost in accuracy is reported (median + bootstrap CI) but not asserted: over 32
    # seeds it is bimodal (a relu_large_lr seed either loses most units or trains to
    # ~0.97), so its median's interval is too wide for a contrast that holds everywhere
    for v in du.VARIANTS:
        lo, hi = s[v]["test_accuracy"]["ci"]
        assert lo <= s[v]["test_accuracy"]["median"] <= hi
    # diverged seeds are reported by index, and they are exactly the non-finite records
    for v in du.VARIANTS:
        flagged = np.nonzero(res.metrics[v]["nonfinite"][0])[0].tolist()
        assert s["nonfinite_seeds"][v] == flagged
    assert s["nonfinite_seeds"]["relu_small_lr"] == []
    for name in ("records.csv", "meta.json", "dead_fraction.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0
    rows = compare.read_csv(out)
    assert len(rows) == 3 * du.Config.quick().num_seeds
    assert compare.load(out).summary["nonfinite_seeds"] == s["nonfinite_seeds"]


def test_dead_fraction_curve_matches_flag_step(quick_run):
    res, _ = quick_run
    dead = res.curves["relu_large_lr"]["dead_fraction"][0]  # [S, T]
    first = res.metrics["relu_large_lr"]["first_flag_step"][0]
    thr = du.Config.quick().dead_threshold
    for s, t in enumerate(first):
        if t >= 0:
            assert dead[s, t] > thr and np.all(dead[s, :t] <= thr)


@pytest.mark.slow  # the core's own test (test_compare_core: seed 7 of 16 == of 1024) covers it
def test_seed_i_does_not_depend_on_num_seeds():
    # seed i is fold_in(key(seed), i): the first 2 seeds of a 4-seed run are a 2-seed run
    # (5 steps: short enough that float rounding cannot grow into different outcomes)
    tiny = {"steps": 5, "hidden": (16,), "fast_compile": True}
    two = du.run(du.Config(num_seeds=2, **tiny))
    four = du.run(du.Config(num_seeds=4, **tiny))
    for v in du.VARIANTS:
        for k, a in two.metrics[v].items():
            np.testing.assert_allclose(four.metrics[v][k][:, :2], a, rtol=1e-4, atol=1e-6,
                                       err_msg=k)
        np.testing.assert_allclose(four.curves[v]["loss"][:, :2], two.curves[v]["loss"],
                                   rtol=1e-4, atol=1e-6)
    rec4 = [r for r in four.records() if r["seed"] < 2]
    assert [(r["variant"], r["seed"]) for r in two.records()] == [
        (r["variant"], r["seed"]) for r in rec4]


def test_dataset_dead_fraction_oracle():
    # two layers: layer 1 has unit 0 dead on all examples; layer 2 none dead
    a1 = jnp.array([[0.0, 1.0], [0.0, 0.0]])
    a2 = jnp.array([[1.0, 0.0, 2.0], [0.5, 3.0, 0.0]])
    assert float(health.dead_fraction((a1, a2))[0]) == pytest.approx(1 / 5)


def test_registered_and_bad_config():
    assert experiments.get("dead_units") is du
    with pytest.raises(ValueError, match="dead_threshold"):
        du.Config(dead_threshold=1.5)
    with pytest.raises(ValueError, match="hidden"):
        du.Config(hidden=())

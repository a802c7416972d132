"""dead_units experiment: the quick preset shows the expected contrast."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import experiments, health
from jaxopt_lab.experiments import dead_units as du


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dead_units")
    return du.run(du.Config.quick(), out_dir=out), out


def test_contrast_large_lr_kills_relu_not_leaky(quick_run):
    res, out = quick_run
    s = res["summary"]
    # the large step size kills a large share of ReLU units for good, on every seed...
    assert s["relu_large_lr"]["flagged_fraction"] == 1.0
    assert s["relu_large_lr"]["dataset_dead_fraction"] > 0.3
    # ...while the control and leaky ReLU stay below the detector's threshold (no false alarm)
    assert s["relu_small_lr"]["flagged_fraction"] == 0.0
    assert s["leaky_relu_large_lr"]["flagged_fraction"] == 0.0
    # leaky ReLU units cannot be exactly zero
    assert s["leaky_relu_large_lr"]["dataset_dead_fraction"] == 0.0
    # dead units cost accuracy
    assert s["relu_large_lr"]["test_accuracy"] < s["leaky_relu_large_lr"]["test_accuracy"]
    assert s["relu_large_lr"]["final_loss"] > s["relu_small_lr"]["final_loss"]
    for name in ("records.csv", "meta.json", "dead_fraction.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0


def test_dead_fraction_curve_matches_flag_step(quick_run):
    res, _ = quick_run
    dead = res["arrays"]["dead_fraction"][1]  # relu_large_lr [S, T]
    recs = [r for r in res["records"] if r["variant"] == "relu_large_lr"]
    first = np.array([r["first_flag_step"] for r in recs])
    thr = du.Config.quick().dead_threshold
    for s, t in enumerate(first):
        assert dead[s, t] > thr and np.all(dead[s, :t] <= thr)


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

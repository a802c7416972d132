"""local_minima experiment: the quick preset shows the expected contrast."""

import json

import numpy as np
import pytest

from jaxopt_lab import experiments
from jaxopt_lab.experiments import local_minima as lm


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local_minima")
    return lm.run(lm.Config.quick(), out_dir=out), out


def test_registered():
    assert experiments.get("local_minima") is lm


def test_contrast_gd_stalls_momentum_energy_search_reaches_global(quick_run):
    res, _ = quick_run
    s = res["summary"]
    land_min = -0.8766555  # global minimum value of sin(3x) + 0.5x^2
    # plain GD from -2 ends in the local minimum at -2.3228 (f = 2.0649) for every seed
    assert s["gd@-2"]["success_rate"] == 0.0
    assert abs(s["gd@-2"]["median_final_x"] - (-2.3228)) < 1e-2
    # ...and the plateau detector says so (stalled far above f_min)
    assert s["gd@-2"]["plateau_fraction"] == 1.0
    # momentum from -2 has too little energy to cross the barrier (f(-2) < f(-1.78))
    assert s["momentum@-2"]["success_rate"] == 0.0
    # from +2 it has enough (f(2) > f(0.59)): reaches the global minimum, no plateau flag
    assert s["momentum@2"]["success_rate"] == 1.0
    assert s["momentum@2"]["plateau_fraction"] == 0.0
    assert abs(s["momentum@2"]["median_final_value"] - land_min) < 1e-3
    # global search reaches the global minimum: 16 uniform restarts miss the basin
    # (about 40% of [-3, 3]) with probability ~0.6^16, so allow at most one miss in 8
    assert s["restarts"]["success_rate"] >= 7 / 8
    assert s["annealing"]["success_rate"] >= 7 / 8


def test_plateau_steps_and_records(quick_run):
    res, out = quick_run
    recs = [r for r in res["records"] if r["method"] == "gd" and r["start"] == -2.0]
    assert len(recs) == lm.Config.quick().num_seeds
    # plateau cannot fire before the window has filled
    assert all(r["plateau_step"] >= lm.Config.quick().plateau_window for r in recs)
    # the loss (f - f_min) is non-negative and ends at the local minimum's gap
    losses = res["arrays"]["losses"]
    assert np.all(losses > -1e-5)
    np.testing.assert_allclose(losses[0, 0, :, -1], 2.0648606 + 0.8766555, rtol=1e-4)
    for name in ("records.csv", "meta.json", "outcomes.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["starts"] == [-2.0, 2.0]


def test_bad_config():
    with pytest.raises(ValueError, match="starts"):
        lm.Config(starts=(5.0,))
    with pytest.raises(ValueError, match="momentum"):
        lm.Config(momentum=1.0)
    with pytest.raises(ValueError, match="num_seeds"):
        lm.Config(num_seeds=0)

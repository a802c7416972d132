"""local_minima experiment: the quick preset shows the expected contrast."""

import json

import numpy as np
import pytest

from jaxopt_lab import compare, experiments
from jaxopt_lab.experiments import local_minima as lm


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local_minima")
    return lm.run(lm.Config.quick(), out_dir=out), out


def test_registered():
    assert experiments.get("local_minima") is lm


def test_contrast_gd_stalls_momentum_energy_search_reaches_global(quick_run):
    # measured on 64 seeds: gd@-2 success 0/64 (ends at -2.3228, plateau 64/64),
    # momentum@-2 0/64, momentum@2 64/64 (no plateau flag), restarts and annealing 64/64;
    # genetic (16 x 50 generations, quick preset): 31/32
    res, _ = quick_run
    assert isinstance(res, compare.Results) and res.group_column == "variant"
    s = res.summary
    land_min = -0.8766555  # global minimum value of sin(3x) + 0.5x^2
    # plain GD from -2 ends in the local minimum at -2.3228 (f = 2.0649) for every seed
    assert s["gd@-2"]["success"]["rate"] == 0.0
    assert abs(s["gd@-2"]["median_final_x"] - (-2.3228)) < 1e-2
    # ...and the plateau detector says so (stalled far above f_min)
    assert s["gd@-2"]["plateau"]["rate"] == 1.0
    # momentum from -2 has too little energy to cross the barrier (f(-2) < f(-1.78))
    assert s["momentum@-2"]["success"]["rate"] == 0.0
    # from +2 it has enough (f(2) > f(0.59)): reaches the global minimum, no plateau flag
    assert s["momentum@2"]["success"]["rate"] == 1.0
    assert s["momentum@2"]["plateau"]["rate"] == 0.0
    assert abs(s["momentum@2"]["median_final_value"] - land_min) < 1e-3
    # global search reaches the global minimum: 16 uniform restarts miss the basin
    # (about 40% of [-3, 3]) with probability ~0.6^16; the Wilson lower bound of the
    # success rate must clear 0.8
    assert s["restarts"]["success"]["ci"][0] > 0.8
    assert s["annealing"]["success"]["ci"][0] > 0.8
    assert s["genetic"]["success"]["ci"][0] > 0.7  # 31/32 measured (Wilson lower 0.84)
    assert all(v == [] for v in s["nonfinite_seeds"].values())


def test_plateau_steps_and_records(quick_run):
    res, out = quick_run
    cfg = lm.Config.quick()
    recs = [r for r in compare.read_csv(out) if r["variant"] == "gd@-2"]
    assert len(recs) == cfg.num_seeds and all(r["start"] == -2.0 for r in recs)
    # plateau cannot fire before the window has filled
    assert all(r["plateau_step"] >= cfg.plateau_window for r in recs)
    # the loss (f - f_min) is non-negative and ends at the local minimum's gap
    losses = res.curves["gd@-2"]["loss"][0]
    assert losses.shape == (cfg.num_seeds, cfg.steps + 1)
    assert np.all(losses > -1e-5)
    np.testing.assert_allclose(losses[:, -1], 2.0648606 + 0.8766555, rtol=1e-4)
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

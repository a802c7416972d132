"""landscape_slices: the plane's centre is the loss at the final parameters, the 1-D
paths' endpoints are the endpoint losses, the same key gives the same plane bit for bit,
named bad input."""

import math

import jax
import numpy as np
import pytest

from jaxopt_lab import data
from jaxopt_lab.experiments import landscape_slices as ls

CONFIG = ls.Config(num_seeds=2, hidden=6, steps=40, trajectory_points=5, loss_examples=128,
                   interp_points=7, resolution=5, rows_per_batch=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ls") / "run"
    return ls.run(CONFIG, out_dir=out), out


def _xy():
    x, y = data.load_digits()["train"]
    return x[: CONFIG.loss_examples], y[: CONFIG.loss_examples]


def test_bad_input_names_argument():
    with pytest.raises(ValueError, match="resolution"):
        ls.Config(resolution=1)
    with pytest.raises(ValueError, match="learning_rate"):
        ls.Config(learning_rate=math.nan)
    with pytest.raises(ValueError, match="learning_rate"):
        ls.Config(learning_rate=math.inf)
    with pytest.raises(ValueError, match="interp_points"):
        ls.Config(interp_points=1)


def test_center_and_endpoints_are_the_losses(run):
    r, out = run
    m, cur = r.metrics["sgd"], r.curves["sgd"]
    assert not m["nonfinite"].any()
    # the plane's centre (a vmapped chunk) equals the final loss (the path's endpoint)
    np.testing.assert_allclose(m["plane_center"], m["final_loss"], rtol=1e-6)
    np.testing.assert_allclose(cur["interp_init_final"][0, :, 0], m["init_loss"][0])
    np.testing.assert_allclose(cur["interp_init_final"][0, :, -1], m["final_loss"][0])
    # the between path starts at seed s's final loss and ends at seed s+1's
    fin = m["final_loss"][0]
    np.testing.assert_allclose(cur["interp_between"][0, :, 0], fin, rtol=1e-6)
    np.testing.assert_allclose(cur["interp_between"][0, :, -1], np.roll(fin, -1), rtol=1e-6)
    assert np.all(m["barrier_init_final"] >= 0) and np.all(m["barrier_between"] >= 0)
    assert (out / "landscape_slices.png").exists()
    assert r.summary["nonfinite_seeds"] == {"sgd": []}


def test_direct_losses_and_same_key_same_plane():
    model, loss = ls.model_and_loss(CONFIG)
    x, y = _xy()
    p0, p1 = model.init(jax.random.key(1)), model.init(jax.random.key(2))
    alphas, v = ls.interpolate(loss, p0, p1, x, y, 9)
    np.testing.assert_allclose(v[[0, -1]], [float(loss(p0, x, y)), float(loss(p1, x, y))],
                               rtol=1e-6)
    assert ls.barrier(alphas, v) >= 0
    a = ls.plane(CONFIG, loss, p1, x, y, jax.random.key(7))
    b = ls.plane(CONFIG, loss, p1, x, y, jax.random.key(7))
    c = ls.plane(CONFIG, loss, p1, x, y, jax.random.key(8))
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    np.testing.assert_allclose(a.values[2, 2], float(loss(p1, x, y)), rtol=1e-6)

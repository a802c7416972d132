"""narrow_minima: loss clustering (closed cases), the dense float64 classification vs
numpy eigh, best-of-k restarts vs the GD seeds they come from, rates over 128 seeds with
margins, named bad input."""

import math

import jax
import numpy as np
import pytest

from jaxopt_lab import compare
from jaxopt_lab.experiments import _network
from jaxopt_lab.experiments import narrow_minima as nm


def test_bad_input_and_clusters():
    with pytest.raises(ValueError, match="gd_learning_rate"):
        nm.Config(gd_learning_rate=math.nan)
    with pytest.raises(ValueError, match="adam_learning_rate"):
        nm.Config(adam_learning_rate=math.inf)
    with pytest.raises(ValueError, match="restarts_k"):
        nm.Config(num_seeds=4, restarts_k=8)
    cl = nm.cluster_losses([0.0, 1e-6, 0.125, 0.126, np.nan, 0.5, 2e-6], gap=0.01)
    assert [c["count"] for c in cl] == [3, 2, 1, 1]
    assert cl[1]["low"] == 0.125 and cl[1]["high"] == 0.126 and cl[-1]["center"] == math.inf


def test_quick_like_run_rates_and_classification(tmp_path):
    c = nm.Config(num_seeds=128, steps=1000, num_classify=6)
    r = nm.run(c, out_dir=tmp_path / "nm")
    assert r.optimizers == list(nm.METHODS) and r.group_column == "variant"
    gd = r.metrics["gd"]
    assert gd["final_loss"].shape == (1, 128) and gd["nonfinite"].dtype == bool
    # a real share of plain-GD runs ends at a non-global solution (>= 5 of 128)
    assert gd["non_global"].sum() >= 5
    lo, hi = r.summary["gd"]["non_global"]["ci"]
    assert lo > 0.0
    # best-of-4 restarts: exactly the minimum of each group of 4 GD final losses
    f = np.where(np.isfinite(gd["final_loss"][0]), gd["final_loss"][0], np.inf)
    best = f.reshape(-1, 4).min(1)
    np.testing.assert_array_equal(r.metrics["restarts"]["final_loss"][0],
                                  np.where(np.isfinite(best), best, np.nan))
    assert r.summary["restarts"]["non_global"]["rate"] < lo
    # every non-global end point classified is a saddle, a flat (degenerate) region or
    # still moving; no method found a strict local minimum above the global tolerance
    for m in nm.TRAINED:
        assert "minimum" not in r.summary[m]["classified"]["non_global"], r.summary[m]
        assert sum(r.summary[m]["classified"]["non_global"].values()) >= 1
    assert (gd["kind_code"][0] >= 0).sum() == c.num_classify
    back = compare.load(tmp_path / "nm")
    np.testing.assert_array_equal(back.metrics["gd"]["kind_code"], gd["kind_code"])
    assert (tmp_path / "nm" / "narrow_minima.png").exists()


def test_classification_matches_dense_eigh():
    c = nm.Config(num_seeds=4, restarts_k=2)
    model, loss = nm.model_and_loss(c)
    keys = jax.random.split(jax.random.key(5), 3)
    pts = jax.vmap(model.init)(keys)
    batch = (nm.X_XOR, nm.Y_XOR)
    cl = nm.classify_points(c, pts, batch)
    for j in range(3):
        p = jax.tree.map(lambda a, j=j: np.asarray(a)[j], pts)
        ev = np.linalg.eigvalsh(_network.dense_hessian(lambda q: loss(q, batch), p))
        np.testing.assert_allclose(cl.eigenvalues[j], ev, rtol=1e-8, atol=1e-10)
    assert set(cl.kind) <= {"not_critical"}  # random initializations are not critical

"""spectra: eigsh extremes and XTrace vs a dense float64 eigh of a 790-parameter MLP,
SLQ index in [0, 1], checkpoint 0 = the initialization, named bad input."""

import math

import jax
import numpy as np
import pytest

from jaxopt_lab.experiments import spectra


def test_bad_input_names_argument():
    with pytest.raises(ValueError, match="checkpoints"):
        spectra.Config(steps=100, checkpoints=(0, 101))
    with pytest.raises(ValueError, match="checkpoints"):
        spectra.Config(steps=100, checkpoints=(-1, 10))
    with pytest.raises(ValueError, match="checkpoints"):
        spectra.Config(steps=100, checkpoints=(50, 10))
    with pytest.raises(ValueError, match="learning_rate"):
        spectra.Config(learning_rate=math.inf)


def test_spectra_match_dense_eigh(tmp_path):
    c = spectra.Config(num_seeds=1, hidden=8, steps=60, checkpoints=(0, 60),
                       curvature_examples=128, k=2)
    r = spectra.run(c, out_dir=tmp_path / "sp")
    mh = r.metrics["hessian"]
    assert mh["top_eig"].shape == (2, 1) and not mh["nonfinite"].any()
    np.testing.assert_allclose(mh["top_eig"], mh["top_dense"], rtol=1e-3)
    np.testing.assert_allclose(mh["bottom_eig"], mh["bottom_dense"], rtol=1e-2, atol=1e-4)
    assert np.all(mh["top_residual"] <= 2e-3 * np.abs(mh["top_eig"]) + 1e-6)
    # XTrace within 5 standard errors (plus 5%) of the exact trace
    err = np.abs(mh["trace"] - mh["trace_dense"])
    assert np.all(err <= 5 * mh["trace_se"] + 0.05 * np.abs(mh["trace_dense"])), (err,)
    assert np.all((mh["index_dense"] > 0) & (mh["index_dense"] < 1))
    assert np.all((mh["index_slq"] >= 0) & (mh["index_slq"] <= 1))
    for op in ("ggn", "fisher"):  # positive semi-definite operators
        assert np.all(r.metrics[op]["top_eig"] > 0) and np.all(r.metrics[op]["trace"] > 0)
    model, _, _, loss = spectra.model_and_loss(c)
    from jaxopt_lab import data

    d = data.load_digits()
    p0 = model.init(jax.random.fold_in(jax.random.fold_in(jax.random.key(c.seed), 0), 0))
    l0 = float(loss(p0, d["train"][0][:128], d["train"][1][:128]))
    np.testing.assert_allclose(mh["loss"][0, 0], l0, rtol=1e-5)
    assert (tmp_path / "sp" / "spectra.png").exists()

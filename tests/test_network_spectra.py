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


# ------------------------------------------------------------------ CNN / Fashion-MNIST
def test_model_dataset_bad_input_names_argument():
    with pytest.raises(ValueError, match="model"):
        spectra.Config(model="resnet")
    with pytest.raises(ValueError, match="dataset"):
        spectra.Config(dataset="cifar10")
    with pytest.raises(ValueError, match="channels"):
        spectra.Config(model="cnn", channels=())
    with pytest.raises(ValueError, match="channels"):
        spectra.Config(model="cnn", channels=(4, 0))
    with pytest.raises(ValueError, match="channels"):  # too many parameters for dense eigh
        spectra.Config(model="cnn", channels=(32, 64))
    with pytest.raises(ValueError, match="hidden"):  # 196 * 64 + ... > MAX_DENSE_PARAMS
        spectra.Config(dataset="fashion_mnist", hidden=64)
    with pytest.raises(ValueError, match="num_train"):
        spectra.Config(dataset="fashion_mnist", num_train=100, curvature_examples=256)


@pytest.mark.parametrize("model,dataset", [("mlp", "digits"), ("cnn", "digits"),
                                           ("mlp", "fashion_mnist"), ("cnn", "fashion_mnist")])
def test_num_params_is_the_built_networks(model, dataset):
    c = spectra.Config(model=model, dataset=dataset)
    net, *_ = spectra.model_and_loss(c)
    p = net.init(jax.random.key(0))
    assert spectra.num_params(c) == sum(np.size(a) for a in jax.tree.leaves(p))
    assert spectra.num_params(c) <= spectra.MAX_DENSE_PARAMS


def test_fashion_mnist_is_pooled_to_14x14():
    from jaxopt_lab import data

    try:
        raw = data.load_fashion_mnist(layout="image", num_train=16, num_test=1)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    d = spectra.load_data(spectra.Config(dataset="fashion_mnist", num_train=16,
                                         curvature_examples=16))
    x, y = (np.asarray(a) for a in d["train"])
    img = np.asarray(raw["train"][0])[..., 0]
    want = (img[:, 0::2, 0::2] + img[:, 1::2, 0::2] + img[:, 0::2, 1::2]
            + img[:, 1::2, 1::2]) / 4
    assert x.shape == (16, 196)
    np.testing.assert_allclose(x.reshape(16, 14, 14), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(y, np.asarray(raw["train"][1]))


def test_cnn_training_matches_serial_sgd():
    """Two CNN seeds in one sweep program (the conv work-around) = a serial SGD loop."""
    import optax

    from jaxopt_lab import compare, data

    c = spectra.Config(model="cnn", num_seeds=2, steps=3, checkpoints=(0, 3), batch_size=16)
    inputs = spectra.load_data(c)
    key = jax.random.key(c.seed)
    sw = compare.sweep(spectra.trial(c, inputs), {"sgd": (optax.sgd, {"learning_rate":
                                                                      [c.learning_rate]})},
                       num_seeds=2, key=key)
    out = sw.outputs["sgd"]
    net, _, _, loss = spectra.model_and_loss(c)
    grad = jax.jit(jax.grad(loss))
    for i in range(2):
        key_i = jax.random.fold_in(key, i)
        p = net.init(jax.random.fold_in(key_i, 0))
        k_data = jax.random.fold_in(key_i, 1)
        for t in range(c.steps):
            x, y = data.sample_batch(jax.random.fold_in(k_data, t), inputs["train"],
                                     c.batch_size)
            p = jax.tree.map(lambda a, g: a - c.learning_rate * g, p, grad(p, x, y))
        got = jax.tree.map(lambda a, i=i: np.asarray(a)[0, i, 1], out["checkpoints"])
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_cnn_spectra_match_dense_eigh():
    c = spectra.Config(model="cnn", num_seeds=2, steps=40, checkpoints=(0, 40),
                       curvature_examples=64, k=2)
    r = spectra.run(c)
    mh = r.metrics["hessian"]
    assert r.summary["model"] == "cnn" and r.summary["num_params"] == spectra.num_params(c)
    assert mh["top_eig"].shape == (2, 2) and not mh["nonfinite"].any()
    np.testing.assert_allclose(mh["top_eig"], mh["top_dense"], rtol=1e-3)
    np.testing.assert_allclose(mh["bottom_eig"], mh["bottom_dense"], rtol=1e-2, atol=1e-4)
    err = np.abs(mh["trace"] - mh["trace_dense"])
    assert np.all(err <= 5 * mh["trace_se"] + 0.05 * np.abs(mh["trace_dense"])), (err,)
    assert np.all((mh["index_dense"] > 0) & (mh["index_dense"] < 1))
    for op in ("ggn", "fisher"):
        assert np.all(r.metrics[op]["top_eig"] > 0) and np.all(r.metrics[op]["trace"] > 0)

"""Tests for jaxopt_lab.models against numpy oracles (forward passes, unrolled loops)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab.models import (
    ACTIVATIONS,
    cnn,
    kernel_initializer,
    layer_names,
    layer_norms,
    mlp,
    param_count,
    recurrent_initializer,
    rnn,
)

# ---------------------------------------------------------------- numpy oracles


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


NP_ACT = {
    "sigmoid": np_sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.01 * z),
    "gelu": lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))),
    "linear": lambda z: z,
}


def np_mlp(params, x, activation, residual=False, norm=None):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = np.asarray(x, np.float64)
    acts = []
    names = [n for n in layer_names(params) if n.startswith("layers_")]
    for name in names:
        z = h @ p[name]["kernel"] + p[name]["bias"]
        if norm == "layer":
            z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-6)
            z = z * p[name]["norm"]["scale"] + p[name]["norm"]["bias"]
        elif norm == "batch":
            z = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
            z = z * p[name]["norm"]["scale"] + p[name]["norm"]["bias"]
        a = NP_ACT[activation](z)
        acts.append(a)
        h = h + a if (residual and h.shape[-1] == a.shape[-1]) else a
    return h @ p["out"]["kernel"] + p["out"]["bias"], acts


def np_cross_entropy(logits, y):
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    return np.mean(lse - np.take_along_axis(logits, y[..., None], -1)[..., 0])


def tree_allclose(a, b, **kw):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **kw)


KEYS = jax.random.split(jax.random.key(0), 3)


def random_params(model, seed=0, scale=0.5):
    """Parameters of the right structure drawn with numpy (no init compile)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(scale * rng.normal(size=s.shape), jnp.float32),
                        shapes)


@pytest.fixture(scope="module")
def wide_mlp():
    return mlp(64, [64, 64], 3, init="normal", init_scale=0.3, norm="layer")


@pytest.fixture(scope="module")
def small_cnn():
    return cnn((8, 8, 1), 10, channels=(4, 6))


# ---------------------------------------------------------------- vmapped init


@pytest.mark.parametrize(
    "name",
    ["mlp", "cnn", "rnn"],
)
def test_vmapped_init_equals_per_seed_init(name, wide_mlp, small_cnn):
    model = {"mlp": wide_mlp, "cnn": small_cnn,
             "rnn": rnn(2, 3, 1, cell="rnn", recurrent_init="normal",
                        recurrent_scale=2.0)}[name]
    batched = jax.vmap(model.init)(KEYS)
    for i, k in enumerate(KEYS):
        single = model.init(k)
        tree_allclose(jax.tree.map(lambda a, i=i: a[i], batched), single, rtol=1e-6, atol=1e-7)
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(batched)
               if "kernel" in jax.tree_util.keystr(path) or "w_hh" in jax.tree_util.keystr(path)]
    assert kernels and all(k.shape[0] == len(KEYS) for k in kernels)
    assert not np.allclose(kernels[0][0], kernels[0][1])  # seeds differ
    if name == "mlp":  # the init arguments reach the layers
        w = np.asarray(batched["layers_1"]["kernel"])
        assert abs(w.std() / 0.3 - 1) < 0.05
        wo = np.asarray(batched["out"]["kernel"])
        assert np.abs(wo).max() <= np.sqrt(6 / (64 + 3)) + 1e-6  # xavier-uniform output
        np.testing.assert_array_equal(batched["layers_0"]["norm"]["scale"], 1.0)
        np.testing.assert_array_equal(batched["layers_0"]["bias"], 0.0)
        assert model.init(5)["out"]["kernel"].shape == (64, 3)  # int seeds accepted


# ---------------------------------------------------------------- MLP oracle


@pytest.mark.parametrize(
    "activation,residual,norm",
    [
        ("tanh", False, None),
        ("relu", True, "layer"),
        ("gelu", True, "batch"),
        ("sigmoid", False, None),
        ("leaky_relu", True, None),
    ],
)
def test_mlp_forward_matches_numpy(activation, residual, norm):
    model = mlp(4, [5, 5], 3, activation=activation, residual=residual, norm=norm)
    params = random_params(model, seed=1, scale=0.8)
    x = jax.random.normal(jax.random.key(2), (6, 4))
    want_out, want_acts = np_mlp(params, x, activation, residual, norm)
    out, acts = model.apply(params, x, return_activations=True)
    np.testing.assert_allclose(out, want_out, rtol=2e-4, atol=2e-5)
    assert len(acts) == 2
    for a, w in zip(acts, want_acts, strict=True):
        np.testing.assert_allclose(a, w, rtol=2e-4, atol=2e-5)
    if norm == "batch":  # batch statistics: loss is pure and repeatable
        y = jnp.array([0, 1, 2, 0, 1, 2])
        first = model.loss(params, (x, y))
        np.testing.assert_allclose(first, np_cross_entropy(want_out, np.asarray(y)), rtol=1e-5)
        assert float(model.loss(params, (x, y))) == float(first)


def test_mlp_cross_entropy_and_mse_losses_match_numpy():
    x = jax.random.normal(jax.random.key(4), (5, 3))
    model = mlp(3, [4], 3, activation="tanh")
    params = random_params(model, seed=3)
    want, _ = np_mlp(params, x, "tanh")
    y = jnp.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(model.loss(params, (x, y)), np_cross_entropy(want, np.asarray(y)),
                               rtol=1e-5)
    model = mlp(3, [4], 1, activation="tanh", loss="mse")
    params = random_params(model, seed=3)
    want, _ = np_mlp(params, x, "tanh")
    yr = jnp.arange(5.0)
    expected = np.mean((want[:, 0] - np.arange(5.0)) ** 2)
    np.testing.assert_allclose(model.loss(params, (x, yr)), expected, rtol=1e-5)
    # y with an explicit output axis gives the same value
    np.testing.assert_allclose(model.loss(params, (x, yr[:, None])), expected, rtol=1e-5)


def test_all_activations_have_numpy_oracles():
    z = np.linspace(-3, 3, 13, dtype=np.float32)
    assert set(ACTIVATIONS) == set(NP_ACT)
    f = jax.jit(lambda zz: {name: act(zz) for name, act in ACTIVATIONS.items()})
    for name, got in f(jnp.asarray(z)).items():
        np.testing.assert_allclose(got, NP_ACT[name](z), rtol=1e-5, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------- grouping


def test_layer_grouping_order_norms_and_count():
    model = mlp(2, [3] * 11, 2, activation="relu", residual=True)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    names = layer_names(shapes)
    assert names == tuple(f"layers_{i}" for i in range(11)) + ("out",)
    assert model.layers == names
    assert param_count(shapes) == (2 * 3 + 3) + 10 * (3 * 3 + 3) + (3 * 2 + 2)
    assert layer_names(jax.eval_shape(rnn(1, 2, 1).init, jax.random.key(0))) == ("cell", "out")
    tree = {"out": {"b": jnp.ones(2)}, "layers_10": {"k": 2 * jnp.ones((2, 2))},
            "layers_9": {"k": jnp.full((3,), 3.0), "n": {"s": jnp.ones(1)}}}
    assert layer_names(tree) == ("layers_9", "layers_10", "out")
    np.testing.assert_allclose(layer_norms(tree), [np.sqrt(28.0), 4.0, np.sqrt(2.0)], rtol=1e-6)
    batched = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), tree)  # vmapped over seeds
    np.testing.assert_allclose(jax.jit(jax.vmap(layer_norms))(batched)[1],
                               [2 * np.sqrt(28.0), 8.0, 2 * np.sqrt(2.0)], rtol=1e-6)


def test_relu_activations_nonnegative_and_dead_units_visible():
    model = mlp(3, [8, 8], 2, activation="relu")
    params = random_params(model)
    params["layers_1"]["bias"] = params["layers_1"]["bias"].at[:4].set(-1e3)  # kill 4 units
    _, acts = model.apply(params, jnp.ones((5, 3)), return_activations=True)
    assert [a.shape for a in acts] == [(5, 8), (5, 8)]
    assert np.all(np.asarray(acts[0]) >= 0)
    assert np.all(np.asarray(acts[1])[:, :4] == 0)
    assert np.any(np.asarray(acts[1])[:, 4:] > 0)


# ---------------------------------------------------------------- initialization statistics


def test_init_statistics():
    key = jax.random.key(7)
    fan_in, fan_out = 400, 300
    f = jax.jit(lambda k: {name: kernel_initializer(name, s)(k, (fan_in, fan_out))
                           for name, s in [("he", 1.0), ("xavier", 1.0), ("lecun", 1.0),
                                           ("normal", 1e-3)]})
    w = {name: np.asarray(v) for name, v in f(key).items()}
    assert abs(w["he"].std() / np.sqrt(2 / fan_in) - 1) < 0.03
    assert abs(w["xavier"].std() / np.sqrt(2 / (fan_in + fan_out)) - 1) < 0.03
    assert np.abs(w["xavier"]).max() <= np.sqrt(6 / (fan_in + fan_out)) + 1e-6
    assert abs(w["lecun"].std() / np.sqrt(1 / fan_in) - 1) < 0.03
    assert abs(w["normal"].std() / 1e-3 - 1) < 0.03
    q = np.asarray(kernel_initializer("orthogonal", 2.0)(key, (64, 32)), np.float64)
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(32), atol=1e-4)


def test_recurrent_init_spectral_scale():
    w = np.asarray(recurrent_initializer("orthogonal", 1.5)(jax.random.key(0), 16), np.float64)
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), 1.5 * np.ones(16), rtol=1e-5)
    w = np.asarray(recurrent_initializer("identity", 0.5)(jax.random.key(0), 4))
    np.testing.assert_allclose(w, 0.5 * np.eye(4))
    params = rnn(2, 6, 1, cell="gru", recurrent_scale=0.8).init(jax.random.key(0))
    for g in range(3):  # every gate block is scaled-orthogonal
        blk = np.asarray(params["cell"]["w_hh"], np.float64)[:, 6 * g: 6 * (g + 1)]
        np.testing.assert_allclose(blk.T @ blk, 0.64 * np.eye(6), atol=1e-5)


# ---------------------------------------------------------------- CNN


def test_cnn_shapes_flat_input_and_loss(small_cnn):
    model = small_cnn
    params = random_params(model, seed=2, scale=0.3)
    assert params["layers_0"]["kernel"].shape == (3, 3, 1, 4)
    assert params["out"]["kernel"].shape == (2 * 2 * 6, 10)
    x = jax.random.uniform(jax.random.key(1), (5, 8, 8, 1))
    out, acts = model.apply(params, x, return_activations=True)
    assert out.shape == (5, 10)
    assert [a.shape for a in acts] == [(5, 8, 8, 4), (5, 4, 4, 6)]
    # first block oracle: 3x3 SAME convolution + relu, computed with explicit loops
    k = np.asarray(params["layers_0"]["kernel"], np.float64)[:, :, 0, :]
    xp = np.pad(np.asarray(x, np.float64)[..., 0], ((0, 0), (1, 1), (1, 1)))
    conv = sum(xp[:, i:i + 8, j:j + 8, None] * k[i, j] for i in range(3) for j in range(3))
    want0 = np.maximum(conv + np.asarray(params["layers_0"]["bias"]), 0)
    np.testing.assert_allclose(acts[0], want0, rtol=1e-4, atol=1e-5)
    # readout oracle: out = flatten(maxpool(acts[-1])) @ W + b
    pooled = np.asarray(acts[1]).reshape(5, 2, 2, 2, 2, 6).max(axis=(2, 4)).reshape(5, -1)
    want = pooled @ np.asarray(params["out"]["kernel"]) + np.asarray(params["out"]["bias"])
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    y = jnp.arange(5)
    np.testing.assert_allclose(model.loss(params, (x.reshape(5, 64), y)),  # flat input
                               np_cross_entropy(want, np.arange(5)), rtol=1e-5)


# ---------------------------------------------------------------- recurrent nets


def np_rnn_unroll(cell, p, x):
    """Python-loop numpy oracle; returns hidden states [B, T, H]."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    x = np.asarray(x, np.float64)
    b, t_len, _ = x.shape
    hdim = p["w_hh"].shape[0]
    h = np.zeros((b, hdim))
    c = np.zeros((b, hdim))
    hs = []
    for t in range(t_len):
        xt = x[:, t]
        if cell == "rnn":
            h = np.tanh(xt @ p["w_ih"] + h @ p["w_hh"] + p["b"])
        elif cell == "lstm":
            zz = xt @ p["w_ih"] + h @ p["w_hh"] + p["b"]
            i, f, g, o = np.split(zz, 4, axis=-1)
            c = np_sigmoid(f) * c + np_sigmoid(i) * np.tanh(g)
            h = np_sigmoid(o) * np.tanh(c)
        else:
            xr, xz, xn = np.split(xt @ p["w_ih"] + p["b_ih"], 3, axis=-1)
            hr, hz, hn = np.split(h @ p["w_hh"] + p["b_hh"], 3, axis=-1)
            r, z = np_sigmoid(xr + hr), np_sigmoid(xz + hz)
            h = (1 - z) * np.tanh(xn + r * hn) + z * h
        hs.append(h)
    return np.stack(hs, axis=1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_scan_equals_python_unroll(cell):
    model = rnn(3, 4, 2, cell=cell, output="sequence", loss="cross_entropy")
    params = random_params(model, seed=5)  # random biases too: every term is exercised
    x = jax.random.normal(jax.random.key(6), (2, 5, 3))
    out, (hs,) = model.apply(params, x, return_activations=True)
    want_hs = np_rnn_unroll(cell, params["cell"], x)
    np.testing.assert_allclose(hs, want_hs, rtol=1e-4, atol=1e-5)
    want_out = want_hs @ np.asarray(params["out"]["kernel"]) + np.asarray(params["out"]["bias"])
    assert out.shape == (2, 5, 2)
    np.testing.assert_allclose(out, want_out, rtol=1e-4, atol=1e-5)
    if cell == "rnn":
        y = jnp.array([[0, 1, 0, 1, 1], [1, 1, 0, 0, 0]])
        np.testing.assert_allclose(model.loss(params, (x, y)),
                                   np_cross_entropy(want_out, np.asarray(y)), rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_output_shapes_and_gradient_check(cell):
    model = rnn(2, 3, 1, cell=cell, output="last", loss="mse")
    params = random_params(model, seed=0)
    x = jax.random.normal(jax.random.key(1), (4, 6, 2))
    y = jnp.linspace(0.0, 1.0, 4)
    out, (hs,) = model.apply(params, x, return_activations=True)
    assert out.shape == (4, 1) and hs.shape == (4, 6, 3)
    want = np_rnn_unroll(cell, params["cell"], x)[:, -1] @ np.asarray(params["out"]["kernel"])
    np.testing.assert_allclose(out, want + np.asarray(params["out"]["bias"]), rtol=1e-4,
                               atol=1e-5)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        f = jax.jit(lambda p, v, eps: (model.loss(jax.tree.map(lambda a, d: a + eps * d, p, v),
                                                  (x64, y64))))
        leaves, treedef = jax.tree.flatten(p64)
        rng = np.random.default_rng(0)
        v = jax.tree.unflatten(treedef, [jnp.asarray(rng.normal(size=np.shape(a))) for a in leaves])
        eps = 1e-5
        fd = (f(p64, v, eps) - f(p64, v, -eps)) / (2 * eps)
        g = jax.grad(f)(p64, v, 0.0)
        analytic = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(v),
                                                      strict=True))
        assert g["cell"]["w_hh"].dtype == jnp.float64
        np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-6)


def test_rnn_recurrent_scale_explodes_or_vanishes_gradients():
    """With W_hh = s I (relu IRNN), d out / d x_0 scales like s^(T-1)."""
    model = rnn(1, 4, 1, activation="relu", recurrent_init="identity")
    params = random_params(model, seed=0)
    params["cell"]["w_ih"] = jnp.ones((1, 4))
    params["cell"]["b"] = jnp.zeros(4)
    x = jnp.ones((1, 40, 1))

    def first_step_grad(p):
        g = jax.grad(lambda xx: jnp.sum(model.apply(p, xx)))(x)
        return jnp.abs(g[0, 0, 0])

    grads = jax.jit(jax.vmap(lambda s: first_step_grad(
        {**params, "cell": {**params["cell"], "w_hh": s * jnp.eye(4)}})))(jnp.array([0.9, 1.1]))
    ratio = float(grads[1] / grads[0])
    np.testing.assert_allclose(ratio, (1.1 / 0.9) ** 39, rtol=1e-3)


# ---------------------------------------------------------------- validation


def test_bad_arguments_raise_before_compiling():
    with pytest.raises(ValueError, match="activation"):
        mlp(2, [3], 2, activation="swish")
    with pytest.raises(ValueError, match="init"):
        mlp(2, [3], 2, init="xavier_uniformish")
    with pytest.raises(ValueError, match="residual"):
        mlp(2, [3, 4], 2, residual=True)
    with pytest.raises(ValueError, match="norm"):
        mlp(2, [3], 2, norm="group")
    with pytest.raises(ValueError, match="hidden"):
        mlp(2, [3, 0], 2)
    with pytest.raises(ValueError, match="init_scale"):
        mlp(2, [3], 2, init="normal", init_scale=-1.0)
    with pytest.raises(ValueError, match="loss"):
        mlp(2, [3], 2, loss="hinge")
    with pytest.raises(ValueError, match="cell"):
        rnn(2, 3, 1, cell="transformer")
    with pytest.raises(ValueError, match="recurrent_scale"):
        rnn(2, 3, 1, recurrent_scale=0.0)
    with pytest.raises(ValueError, match="in_shape"):
        cnn((3, 3, 1), 10, channels=(4, 4))
    with pytest.raises(TypeError, match="in_dim"):
        mlp(2.5, [3], 2)


def test_losses_check_labels_and_targets():
    x = jnp.ones((4, 3))
    model = mlp(3, [4], 10)
    params = model.init(0)
    ok = jnp.array([0, 9, 3, 1])
    assert np.isfinite(float(model.loss(params, (x, ok))))
    # out-of-range labels: -1 would be scored as class 9 and 10 gives a NaN loss
    for bad in ([-1, 0, 1, 2], [0, 1, 2, 10]):
        with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
            model.loss(params, (x, jnp.array(bad)))
    with pytest.raises(ValueError, match="labels must be integer"):
        model.loss(params, (x, ok.astype(jnp.float32)))
    with pytest.raises(ValueError, match="batch"):
        model.loss(params, (x, ok[:3]))  # 3 labels for 4 inputs
    with pytest.raises(ValueError, match="labels must have shape"):
        model.loss(params, (x, ok[:, None]))
    with pytest.raises(ValueError, match="batch must be a pair"):
        model.loss(params, (x, ok, ok))
    # under jit the values are unknown: shape/dtype checks still run, range checks do not
    jitted = jax.jit(model.loss)
    assert np.isfinite(float(jitted(params, (x, ok))))
    with pytest.raises(ValueError, match="labels must have shape"):
        jitted(params, (x, ok[:, None]))
    # gradients with concrete labels are checked too
    with pytest.raises(ValueError, match="labels must be in"):
        jax.grad(model.loss)(params, (x, jnp.array([0, 1, 2, 10])))

    reg = mlp(3, [4], 3, loss="mse")
    rp = reg.init(0)
    good = jnp.zeros((4, 3))
    np.testing.assert_allclose(
        reg.loss(rp, (x, good)), np.mean(np.asarray(reg.apply(rp, x)) ** 2), rtol=1e-6
    )
    with pytest.raises(ValueError, match="batch"):  # [3] for 4 inputs: broadcast before
        reg.loss(rp, (x, jnp.zeros(3)))
    for bad_shape in ((4, 1), (4,), (4, 3, 1)):
        with pytest.raises(ValueError, match="targets must have the model output's shape"):
            reg.loss(rp, (x, jnp.zeros(bad_shape)))
    # loss_fn used directly checks the same way
    from jaxopt_lab.models import loss_fn

    with pytest.raises(ValueError, match="targets"):
        loss_fn("mse")(jnp.zeros((3, 3)), jnp.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        loss_fn("cross_entropy")(jnp.zeros((2, 10)), jnp.array([0, 10]))

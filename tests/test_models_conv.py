"""models/conv.py: both paths of the vmappable convolution (patches x kernel matrix, and
lax's convolution tied to the kernel's batch axes) against lax's convolution (values and
both gradients), the transposed convolution against nnx.ConvTranspose, and the reason it
exists: conv networks vmapped over seeds AND a traced learning-rate grid in the sweep core
(which raised NotImplementedError with lax's convolution) equal the same seeds run one at
a time, on either path."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST
from flax import nnx

from jaxopt_lab import compare, models
from jaxopt_lab.models import conv
from jaxopt_lab.models.conv import patch_conv, transpose_padding

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("fn", [conv.patch_conv, conv.tied_conv, conv.vmappable_conv])
@pytest.mark.parametrize("strides, padding, lhs_dil, rhs_dil", [
    ((1, 1), "SAME", None, None),
    ((2, 2), "SAME", None, None),
    ((2, 1), "VALID", None, None),
    ((1, 1), [(2, 1), (0, 3)], (2, 2), None),
    ((1, 2), "SAME", None, (2, 1)),
])
def test_conv_paths_equal_lax_conv_values_and_gradients(fn, strides, padding, lhs_dil,
                                                        rhs_dil):
    kx, kw, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 9, 7, 4))
    w = jax.random.normal(kw, (3, 2, 4, 5))

    def ref(x, w):
        return jax.lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=lhs_dil,
                                            rhs_dilation=rhs_dil, dimension_numbers=DN,
                                            precision=jax.lax.Precision.HIGHEST)

    def mine(x, w):
        return fn(x, w, strides, padding, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
                          dimension_numbers=DN, precision=jax.lax.Precision.HIGHEST)

    y_ref, y = ref(x, w), mine(x, w)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    ct = jax.random.normal(kc, y.shape)
    g_ref = jax.grad(lambda x, w: jnp.sum(ref(x, w) * ct), argnums=(0, 1))(x, w)
    g = jax.grad(lambda x, w: jnp.sum(mine(x, w) * ct), argnums=(0, 1))(x, w)
    for a, b in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel, stride", list(itertools.product((3, 4, 5), (1, 2, 3))))
def test_dilated_patch_conv_equals_nnx_conv_transpose(kernel, stride):
    """``nnx.Conv(input_dilation=s, padding=transpose_padding(k, s), patch_conv)`` is
    ``nnx.ConvTranspose(strides=s, padding="SAME")`` with the same kernel."""
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 3))
    ref = nnx.ConvTranspose(3, 4, (kernel, kernel), strides=(stride, stride), padding="SAME",
                            rngs=nnx.Rngs(0))
    mine = nnx.Conv(3, 4, (kernel, kernel), input_dilation=(stride, stride),
                    padding=[transpose_padding(kernel, stride)] * 2,
                    conv_general_dilated=patch_conv, rngs=nnx.Rngs(0))
    mine.kernel[...] = ref.kernel[...]
    mine.bias[...] = jax.random.normal(jax.random.key(2), (4,))
    ref.bias[...] = mine.bias[...]
    y, y_ref = mine(x), ref(x)
    assert y.shape == y_ref.shape == (2, 5 * stride, 6 * stride, 4)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)


def test_patch_conv_rejects_what_it_does_not_compute():
    x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 1, 2))
    with pytest.raises(ValueError, match="feature_group_count"):
        patch_conv(x, w, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=2)
    with pytest.raises(ValueError, match="channels-last"):
        patch_conv(jnp.ones((1, 2, 4, 4)), jnp.ones((2, 2, 3, 3)), (1, 1), "SAME",
                   dimension_numbers=("NCHW", "OIHW", "NCHW"))
    with pytest.raises(ValueError, match="2-D"):
        patch_conv(jnp.ones((1, 4, 2)), jnp.ones((3, 2, 2)), (1,), "SAME")


def _cnn_trial(steps=3):
    model = models.cnn((8, 8, 1), 3, channels=(2, 3))
    x = jax.random.normal(jax.random.key(3), (16, 8, 8, 1))
    y = jnp.arange(16) % 3

    def run(opt, key, index, row, inputs):
        del index, row
        params = model.init(key)
        state = opt.init(params)

        def step(carry, t):
            p, s = carry
            idx = jax.random.randint(jax.random.fold_in(key, t), (8,), 0, 16)
            v, g = jax.value_and_grad(model.loss)(p, (inputs["x"][idx], inputs["y"][idx]))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), v

        _, losses = jax.lax.scan(step, (params, state), jnp.arange(steps))
        return {"loss": losses}

    return compare.Trial(run, inputs={"x": x, "y": y},
                         static=("conv-test", steps, conv.MAX_PATCH_BYTES))


def test_vmappable_conv_takes_patches_only_while_they_fit(monkeypatch):
    calls = []
    monkeypatch.setattr(conv, "patch_conv", lambda *a, **k: calls.append("patch") or 0)
    monkeypatch.setattr(conv, "tied_conv", lambda *a, **k: calls.append("tied") or 0)
    x, w = jnp.ones((4, 8, 8, 2)), jnp.ones((3, 3, 2, 5))  # patches: 4*8*8*18 floats
    monkeypatch.setattr(conv, "MAX_PATCH_BYTES", 4 * 8 * 8 * 18 * 4)
    conv.vmappable_conv(x, w, (1, 1), "SAME", dimension_numbers=DN)
    monkeypatch.setattr(conv, "MAX_PATCH_BYTES", 4 * 8 * 8 * 18 * 4 - 1)
    conv.vmappable_conv(x, w, (1, 1), "SAME", dimension_numbers=DN)
    assert calls == ["patch", "tied"]


@pytest.mark.parametrize("max_patch_bytes", [conv.MAX_PATCH_BYTES, 0])
def test_cnn_vmapped_over_seeds_and_learning_rates_equals_one_seed_at_a_time(
        monkeypatch, max_patch_bytes):
    """Three seeds x two traced learning rates of a CNN in one vectorised micro-batch (lax's
    convolution raised NotImplementedError here: the kernel batched on the learning-rate
    axis, the input not) equal the same seeds run one per micro-batch, with the patches
    and with the tied convolution."""
    monkeypatch.setattr(conv, "MAX_PATCH_BYTES", max_patch_bytes)
    trial = _cnn_trial()
    opts = {"sgd": (optax.sgd, {"learning_rate": [0.05, 0.5]})}
    vec = compare.sweep(trial, opts, num_seeds=3, key=jax.random.key(0),
                        compiler_options=FAST)
    one = compare.sweep(trial, opts, num_seeds=3, key=jax.random.key(0), batch_size=1,
                        compiler_options=FAST)
    a, b = vec.outputs["sgd"]["loss"], one.outputs["sgd"]["loss"]
    assert a.shape == (2, 3, 3)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[0, :, -1], a[1, :, -1])  # the two rates differ

"""A small convolutional network: (conv -> activation -> 2x2 max-pool) x K, then dense."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flax import nnx

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.models.conv import vmappable_conv
from jaxopt_lab.models.core import (
    ACTIVATIONS,
    LOSSES,
    Model,
    check_dims,
    kernel_initializer,
    make_model,
)
from jaxopt_lab.models.mlp import Dense


class CNN(nnx.Module):
    """Conv blocks ``layers_i`` and a linear readout ``out`` on the flattened features."""

    def __init__(self, in_shape, channels, out_dim, *, kernel_size, activation, init,
                 init_scale, rngs):
        self.in_shape = tuple(in_shape)
        self.activation = activation
        self.num_conv = len(channels)
        kinit = kernel_initializer(init, init_scale)
        cin = in_shape[-1]
        for i, c in enumerate(channels):
            setattr(self, f"layers_{i}", nnx.Conv(cin, c, (kernel_size, kernel_size),
                                                  padding="SAME", kernel_init=kinit,
                                                  conv_general_dilated=vmappable_conv,
                                                  rngs=rngs))
            cin = c
        h, w = in_shape[0], in_shape[1]
        for _ in channels:
            h, w = h // 2, w // 2
        self.out = Dense(h * w * cin, out_dim, init="xavier", init_scale=1.0, norm=None,
                         rngs=rngs)

    def __call__(self, x, return_activations=False):
        flat = int(np.prod(self.in_shape))
        if x.ndim >= 1 and x.shape[-1] == flat and x.shape[-3:] != self.in_shape:
            x = x.reshape(*x.shape[:-1], *self.in_shape)
        lead = x.shape[:-3]
        h = x.reshape(-1, *self.in_shape)
        act = ACTIVATIONS[self.activation]
        acts = []
        for i in range(self.num_conv):
            a = act(getattr(self, f"layers_{i}")(h))
            acts.append(a.reshape(*lead, *a.shape[1:]))
            h = nnx.max_pool(a, window_shape=(2, 2), strides=(2, 2), padding="VALID")
        out = self.out(h.reshape(h.shape[0], -1))
        out = out.reshape(*lead, out.shape[-1])
        return (out, tuple(acts)) if return_activations else out


def cnn(
    in_shape: Sequence[int] = (8, 8, 1),
    out_dim: int = 10,
    *,
    channels: Sequence[int] = (8, 16),
    kernel_size: int = 3,
    activation: str = "relu",
    init: str = "he",
    init_scale: float = 1.0,
    loss: str = "cross_entropy",
) -> Model:
    """Build a small CNN (conv-act-pool per entry of ``channels``, then dense) as a Model.

    Each block is a ``kernel_size x kernel_size`` convolution with SAME padding and a bias,
    the activation, and a 2x2 max-pool with stride 2 (odd sizes are floored). The
    readout is a dense layer on the flattened final feature map: for 8x8 inputs and
    two blocks 8 -> 4 -> 2, for 28x28 inputs 28 -> 14 -> 7.

    Parameters: ``{"layers_i": {"kernel": [k, k, c_in, c_out], "bias": [c_out]},
    "out": {"kernel": [H' * W' * c_last, out_dim], "bias": [out_dim]}}``.

    ``apply(params, x)`` takes images ``x [..., H, W, C]`` (or flat ``[..., H*W*C]``,
    reshaped) and returns ``[..., out_dim]``; with ``return_activations=True`` it returns
    ``(out, acts)``, ``acts[i]`` the post-activation feature map of block i before pooling
    ``[..., H_i, W_i, channels[i]]``.

    Args:
      in_shape: ``(H, W, C)`` of one input image; H and W must be ``>= 2 ** len(channels)``.
      out_dim: number of classes (or regression outputs).
      channels: output channels of each conv block.
      kernel_size: convolution window size.
      activation: see :func:`~jaxopt_lab.models.mlp`.
      init: conv-kernel initialization (fans include the receptive field).
      init_scale: conv-kernel multiplier (std for ``"normal"``).
      loss: ``"cross_entropy"`` or ``"mse"``.

    Returns:
      :class:`Model` with ``layers = ("layers_0", ..., "out")``.

    References:
      LeCun et al. (1998), Gradient-based learning applied to document recognition.
    """
    in_shape = check_dims("in_shape", in_shape)
    if len(in_shape) != 3:
        raise ValueError(f"in_shape must be (H, W, C), got {in_shape}")
    out_dim = check_int("out_dim", out_dim)
    channels = check_dims("channels", channels)
    if not channels:
        raise ValueError("channels must name at least one conv block, got ()")
    kernel_size = check_int("kernel_size", kernel_size)
    check_choice("activation", activation, ACTIVATIONS)
    kernel_initializer(init, init_scale)
    check_choice("loss", loss, LOSSES)
    min_side = 2 ** len(channels)
    if min(in_shape[:2]) < min_side:
        raise ValueError(
            f"in_shape {in_shape} is too small for {len(channels)} pooling blocks "
            f"(H and W must be >= {min_side})"
        )

    def build(rngs):
        return CNN(in_shape, channels, out_dim, kernel_size=kernel_size, activation=activation,
                   init=init, init_scale=init_scale, rngs=rngs)

    return make_model(build, loss=loss, name="cnn")


__all__ = ["cnn", "CNN"]

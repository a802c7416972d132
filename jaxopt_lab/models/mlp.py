"""Multilayer perceptron with selectable activation, initialization, residuals and norms."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.models.core import (
    ACTIVATIONS,
    LOSSES,
    Model,
    check_dims,
    kernel_initializer,
    make_model,
)

NORMS = (None, "layer", "batch")


class Dense(nnx.Module):
    """``z = x @ kernel + bias`` followed by an optional LayerNorm/BatchNorm.

    Parameters: ``kernel [in, out]``, ``bias [out]`` (zeros) and, with a norm,
    ``norm: {scale [out], bias [out]}``.
    """

    def __init__(self, in_dim, out_dim, *, init, init_scale, norm, rngs):
        kinit = kernel_initializer(init, init_scale)
        self.kernel = nnx.Param(kinit(rngs.params(), (in_dim, out_dim)))
        self.bias = nnx.Param(jnp.zeros((out_dim,), jnp.float32))
        if norm == "layer":
            self.norm = nnx.LayerNorm(out_dim, rngs=rngs)
        elif norm == "batch":
            # Training mode always: normalize with the batch's own statistics.
            self.norm = nnx.BatchNorm(out_dim, use_running_average=False, rngs=rngs)
        else:
            self.norm = None

    def __call__(self, x):
        z = x @ self.kernel[...] + self.bias[...]
        if self.norm is not None:
            z = self.norm(z)
        return z


class MLP(nnx.Module):
    """Hidden blocks ``layers_i`` (dense -> norm -> activation [+ skip]) and a linear ``out``."""

    def __init__(self, in_dim, hidden, out_dim, *, activation, init, init_scale, out_init,
                 residual, norm, rngs):
        self.activation = activation
        self.residual = residual
        self.num_hidden = len(hidden)
        widths = (in_dim, *hidden)
        for i in range(len(hidden)):
            setattr(self, f"layers_{i}", Dense(widths[i], widths[i + 1], init=init,
                                               init_scale=init_scale, norm=norm, rngs=rngs))
        self.out = Dense(widths[-1], out_dim, init=out_init, init_scale=1.0, norm=None,
                         rngs=rngs)

    def __call__(self, x, return_activations=False):
        act = ACTIVATIONS[self.activation]
        h = x
        acts = []
        for i in range(self.num_hidden):
            a = act(getattr(self, f"layers_{i}")(h))
            acts.append(a)
            h = h + a if (self.residual and h.shape[-1] == a.shape[-1]) else a
        out = self.out(h)
        return (out, tuple(acts)) if return_activations else out


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    activation: str = "relu",
    init: str = "he",
    init_scale: float = 1.0,
    out_init: str = "xavier",
    residual: bool = False,
    norm: str | None = None,
    loss: str = "cross_entropy",
) -> Model:
    """Build a multilayer perceptron as a pure-function :class:`Model`.

    Hidden layer ``i`` computes ``a_i = act(norm(h_{i-1} @ W_i + b_i))`` and
    ``h_i = h_{i-1} + a_i`` with ``residual=True`` (for every layer whose input and
    output widths agree: all hidden layers after the first, and the first too
    when ``in_dim == hidden[0]``), else ``h_i = a_i``. The output is the linear
    map ``out`` of the last ``h`` (logits for cross-entropy).

    Parameters are a dict ``{"layers_0": {"kernel": [in_dim, h0], "bias": [h0],
    ("norm": {"scale": [h0], "bias": [h0]})}, ..., "out": {"kernel": [h_last, out_dim],
    "bias": [out_dim]}}``; biases start at zero.

    ``apply(params, x)`` takes ``x [..., in_dim]`` and returns ``[..., out_dim]``;
    ``apply(params, x, return_activations=True)`` returns ``(out, acts)`` where
    ``acts[i]`` is the **post-activation** ``a_i [..., hidden[i]]`` of hidden layer i
    (after the norm and the nonlinearity, before the residual addition): a ReLU unit
    is dead where ``a_i == 0``; sigmoid/tanh units saturate where ``a_i`` is near
    their bounds.

    Batch norm (``norm="batch"``) always normalizes with the statistics of the batch
    given to ``apply``/``loss`` (training mode); running statistics are not tracked
    (they are reset on every call), so evaluate on reasonably large batches.

    Args:
      in_dim: input features.
      hidden: widths of the hidden layers (may be empty: a linear model).
      out_dim: outputs (classes for cross-entropy).
      activation: one of ``"sigmoid", "tanh", "relu", "leaky_relu"`` (slope 0.01),
        ``"gelu", "linear"``.
      init: hidden-kernel initialization, one of :data:`~jaxopt_lab.models.core.INITS`.
      init_scale: kernel multiplier; for ``init="normal"`` the std (1.0: exploding,
        1e-3: vanishing signals in a deep net).
      out_init: initialization of the output layer (scale 1).
      residual: add skip connections (requires equal hidden widths).
      norm: ``None``, ``"layer"`` or ``"batch"`` (applied before the activation).
      loss: ``"cross_entropy"`` (integer labels ``y [...]``) or ``"mse"`` (``y [..., out_dim]``,
        or ``[...]`` when ``out_dim == 1``).

    Returns:
      :class:`Model` with ``layers = ("layers_0", ..., "out")``.

    Example:
      >>> model = mlp(64, [32, 32], 10, activation="tanh", init="xavier")
      >>> params = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 4))  # doctest: +SKIP

    References:
      He et al. (2016), Deep Residual Learning for Image Recognition. Ba, Kiros & Hinton
      (2016), Layer Normalization. Ioffe & Szegedy (2015), Batch Normalization.
    """
    in_dim = check_int("in_dim", in_dim)
    out_dim = check_int("out_dim", out_dim)
    hidden = check_dims("hidden", hidden)
    check_choice("activation", activation, ACTIVATIONS)
    kernel_initializer(init, init_scale)  # validates init and init_scale
    kernel_initializer(out_init, 1.0)
    check_choice("norm", norm, NORMS)
    check_choice("loss", loss, LOSSES)
    if not isinstance(residual, bool):
        raise TypeError(f"residual must be a bool, got {residual!r}")
    if residual and len(set(hidden)) > 1:
        raise ValueError(f"residual=True requires equal hidden widths, got hidden={hidden}")

    def build(rngs):
        return MLP(in_dim, hidden, out_dim, activation=activation, init=init,
                   init_scale=init_scale, out_init=out_init, residual=residual, norm=norm,
                   rngs=rngs)

    return make_model(build, loss=loss, name="mlp")

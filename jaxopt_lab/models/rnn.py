"""Recurrent networks (vanilla RNN, LSTM, GRU) unrolled with ``lax.scan``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxopt_lab._validation import check_choice, check_int, check_positive
from jaxopt_lab.models.core import LOSSES, Model, kernel_initializer, make_model, orthogonal
from jaxopt_lab.models.mlp import Dense

CELLS = ("rnn", "lstm", "gru")
RECURRENT_INITS = ("orthogonal", "normal", "identity")
OUTPUTS = ("last", "sequence")
RNN_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def recurrent_initializer(kind: str, scale: float):
    """Return ``f(key, hidden) -> W_hh [hidden, hidden]`` with spectral scale ``scale``.

    ``"orthogonal"``: ``scale * Q`` with Q orthogonal, so every singular value (and the
    spectral radius) equals ``scale``: > 1 explodes, < 1 vanishes over long sequences.
    ``"normal"``: i.i.d. ``N(0, scale^2 / hidden)``, spectral radius ~ ``scale`` (circular law).
    ``"identity"``: ``scale * I`` (the IRNN of Le et al. 2015).
    """
    check_choice("recurrent_init", kind, RECURRENT_INITS)
    check_positive("recurrent_scale", scale)
    scale = float(scale)

    def f(key, hidden):
        if kind == "orthogonal":
            w = orthogonal(key, (hidden, hidden))
        elif kind == "normal":
            w = jax.random.normal(key, (hidden * hidden,), jnp.float32).reshape(hidden, hidden)
            w = w / jnp.sqrt(hidden)
        else:
            w = jnp.eye(hidden, dtype=jnp.float32)
        return w * scale

    return f


def _gates(rinit, key, hidden, n):
    keys = jax.random.split(key, n)
    return jnp.concatenate([rinit(k, hidden) for k in keys], axis=1)


class RNNCell(nnx.Module):
    """``h_t = act(x_t @ w_ih + h_{t-1} @ w_hh + b)``. Carry: ``h [B, hidden]``."""

    def __init__(self, in_dim, hidden, *, init, rinit, activation, rngs, **_):
        self.hidden = hidden
        self.activation = activation
        self.w_ih = nnx.Param(kernel_initializer(init)(rngs.params(), (in_dim, hidden)))
        self.w_hh = nnx.Param(rinit(rngs.params(), hidden))
        self.b = nnx.Param(jnp.zeros((hidden,), jnp.float32))

    def input_proj(self, x):
        return x @ self.w_ih[...] + self.b[...]

    def init_carry(self, batch, dtype):
        return jnp.zeros((batch, self.hidden), dtype)

    def step(self, h, xp):
        h = RNN_ACTIVATIONS[self.activation](xp + h @ self.w_hh[...])
        return h, h


class LSTMCell(nnx.Module):
    """LSTM with gates (i, f, g, o) stacked on the last axis of ``w_ih [in, 4h]``,
    ``w_hh [h, 4h]``, ``b [4h]``; forget-gate bias starts at ``forget_bias``.

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``. Carry: ``(h, c)``.
    """

    def __init__(self, in_dim, hidden, *, init, rinit, forget_bias, rngs, **_):
        self.hidden = hidden
        self.w_ih = nnx.Param(kernel_initializer(init)(rngs.params(), (in_dim, 4 * hidden)))
        self.w_hh = nnx.Param(_gates(rinit, rngs.params(), hidden, 4))
        b = jnp.zeros((4 * hidden,), jnp.float32).at[hidden:2 * hidden].set(forget_bias)
        self.b = nnx.Param(b)

    def input_proj(self, x):
        return x @ self.w_ih[...] + self.b[...]

    def init_carry(self, batch, dtype):
        z = jnp.zeros((batch, self.hidden), dtype)
        return (z, z)

    def step(self, carry, xp):
        h, c = carry
        i, f, g, o = jnp.split(xp + h @ self.w_hh[...], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h


class GRUCell(nnx.Module):
    """GRU with gates (r, z, n): ``w_ih [in, 3h]``, ``w_hh [h, 3h]``, ``b_ih, b_hh [3h]``.

    ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``.
    """

    def __init__(self, in_dim, hidden, *, init, rinit, rngs, **_):
        self.hidden = hidden
        self.w_ih = nnx.Param(kernel_initializer(init)(rngs.params(), (in_dim, 3 * hidden)))
        self.w_hh = nnx.Param(_gates(rinit, rngs.params(), hidden, 3))
        self.b_ih = nnx.Param(jnp.zeros((3 * hidden,), jnp.float32))
        self.b_hh = nnx.Param(jnp.zeros((3 * hidden,), jnp.float32))

    def input_proj(self, x):
        return x @ self.w_ih[...] + self.b_ih[...]

    def init_carry(self, batch, dtype):
        return jnp.zeros((batch, self.hidden), dtype)

    def step(self, h, xp):
        hp = h @ self.w_hh[...] + self.b_hh[...]
        xr, xz, xn = jnp.split(xp, 3, axis=-1)
        hr, hz, hn = jnp.split(hp, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h
        return h, h


_CELL_CLASSES = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


class RecurrentNet(nnx.Module):
    """A recurrent ``cell`` scanned over time and a dense readout ``out``."""

    def __init__(self, in_dim, hidden, out_dim, *, cell, output, init, rinit, activation,
                 forget_bias, rngs):
        self.output = output
        self.cell = _CELL_CLASSES[cell](in_dim, hidden, init=init, rinit=rinit,
                                        activation=activation, forget_bias=forget_bias,
                                        rngs=rngs)
        self.out = Dense(hidden, out_dim, init="xavier", init_scale=1.0, norm=None, rngs=rngs)

    def __call__(self, x, return_activations=False):
        unbatched = x.ndim == 2
        if unbatched:
            x = x[None]
        xp = jnp.swapaxes(self.cell.input_proj(x), 0, 1)  # [T, B, gates * hidden]
        carry0 = self.cell.init_carry(x.shape[0], xp.dtype)
        _, hs = jax.lax.scan(self.cell.step, carry0, xp)
        hs = jnp.swapaxes(hs, 0, 1)  # [B, T, hidden]
        out = self.out(hs[:, -1] if self.output == "last" else hs)
        if unbatched:
            out, hs = out[0], hs[0]
        return (out, (hs,)) if return_activations else out


def rnn(
    in_dim: int,
    hidden: int,
    out_dim: int,
    *,
    cell: str = "rnn",
    output: str = "last",
    activation: str = "tanh",
    init: str = "xavier",
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    forget_bias: float = 1.0,
    loss: str = "mse",
) -> Model:
    """Build a one-layer recurrent network (vanilla RNN, LSTM or GRU) as a Model.

    The sequence is unrolled with ``jax.lax.scan`` (one compiled step, fast to compile
    for T in the hundreds); the initial state is zero.

    ``apply(params, x)`` takes ``x [B, T, in_dim]`` (or one sequence ``[T, in_dim]``) and
    returns ``[B, out_dim]`` for ``output="last"`` (readout of the last hidden state) or
    ``[B, T, out_dim]`` for ``output="sequence"`` (readout at every step). With
    ``return_activations=True`` it returns ``(out, (hs,))``, ``hs [B, T, hidden]`` the hidden
    states ``h_t`` (for the LSTM, ``h_t`` not the cell state).

    Parameters: ``{"cell": {...}, "out": {"kernel": [hidden, out_dim], "bias": [out_dim]}}``
    with cell leaves ``w_ih [in_dim, G*hidden]``, ``w_hh [hidden, G*hidden]`` and biases
    (G = 1, 4, 3 for rnn, lstm, gru; see :class:`RNNCell`, :class:`LSTMCell`,
    :class:`GRUCell`).

    Args:
      in_dim: input features per step.
      hidden: hidden units.
      out_dim: outputs per sequence (or per step).
      cell: ``"rnn"`` (Elman), ``"lstm"`` or ``"gru"``.
      output: ``"last"`` or ``"sequence"``.
      activation: vanilla-RNN nonlinearity, ``"tanh"`` or ``"relu"`` (ignored by lstm/gru).
      init: input-kernel initialization (:data:`~jaxopt_lab.models.core.INITS`).
      recurrent_init: ``"orthogonal"`` (default), ``"normal"`` or ``"identity"``; see
        :func:`recurrent_initializer`. For gated cells each gate block gets its own.
      recurrent_scale: spectral scale of ``w_hh`` (exploding-gradient demo: e.g. 3.0;
        vanishing: 0.5).
      forget_bias: initial LSTM forget-gate bias (ignored by rnn/gru).
      loss: ``"mse"`` (adding problem: ``y [B]`` with ``out_dim=1``) or ``"cross_entropy"``
        (copy task: ``output="sequence"``, labels ``y [B, T]``).

    Returns:
      :class:`Model` with ``layers = ("cell", "out")``.

    References:
      Elman (1990), Finding structure in time. Hochreiter & Schmidhuber (1997), Long
      short-term memory. Cho et al. (2014), Learning phrase representations using RNN
      encoder-decoder. Pascanu, Mikolov & Bengio (2013), On the difficulty of training
      recurrent neural networks. Le, Jaitly & Hinton (2015), A simple way to initialize
      recurrent networks of rectified linear units.
    """
    in_dim = check_int("in_dim", in_dim)
    hidden = check_int("hidden", hidden)
    out_dim = check_int("out_dim", out_dim)
    check_choice("cell", cell, CELLS)
    check_choice("output", output, OUTPUTS)
    check_choice("activation", activation, RNN_ACTIVATIONS)
    kernel_initializer(init)
    rinit = recurrent_initializer(recurrent_init, recurrent_scale)
    check_choice("loss", loss, LOSSES)
    forget_bias = float(forget_bias)

    def build(rngs):
        return RecurrentNet(in_dim, hidden, out_dim, cell=cell, output=output, init=init,
                            rinit=rinit, activation=activation, forget_bias=forget_bias,
                            rngs=rngs)

    return make_model(build, loss=loss, name=cell)


def lstm(in_dim: int, hidden: int, out_dim: int, **kwargs) -> Model:
    """:func:`rnn` with ``cell="lstm"``."""
    return rnn(in_dim, hidden, out_dim, cell="lstm", **kwargs)


def gru(in_dim: int, hidden: int, out_dim: int, **kwargs) -> Model:
    """:func:`rnn` with ``cell="gru"``."""
    return rnn(in_dim, hidden, out_dim, cell="gru", **kwargs)

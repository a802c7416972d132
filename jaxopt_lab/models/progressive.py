"""Progressive neural networks (Rusu et al. 2016) as pure ``init`` / ``apply`` functions.

One MLP *column* per task. Hidden layer ``l`` of column ``k`` computes (eq. 1 of the
paper, with linear lateral connections)

    h_l^(k) = act(W_l^(k) h_{l-1}^(k) + b_l^(k) + sum_{j<k} U_l^(k:j) h_{l-1}^(j)),

and column ``k``'s output is ``W_out^(k) h_L^(k) + b_out^(k) + sum_{j<k} U_out^(k:j)
h_L^(j)``. Column ``k`` is trained on task ``k``; the earlier columns are frozen
(:func:`ProgressiveNet.trainable` is the 0/1 mask of what task ``k`` may change: column
``k`` and its incoming laterals), so earlier tasks are never forgotten, at the price of
a network that grows linearly with the number of tasks
(:func:`ProgressiveNet.num_params`).

To keep ONE compiled program over a whole task sequence, all ``num_columns`` columns are
allocated up front (parameters stacked on a leading column axis, laterals ``[K, K, ...]``
masked to ``j < k``); ``apply(params, x, column)`` takes a traced column index. Columns
after ``column`` are computed and discarded (they never feed earlier columns).

Parameters: ``{"layers_l": {"kernel": [K, in, h], "bias": [K, h], "lateral": [K, K, in,
h]}, ..., "out": {...}}`` (``layers_0`` has no ``lateral``: its input is the data).

References:
  Rusu et al. (2016), "Progressive Neural Networks".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.models.core import ACTIVATIONS, check_dims, kernel_initializer

__all__ = ["ProgressiveNet", "progressive"]


class ProgressiveNet(NamedTuple):
    """Pure functions of a progressive network (see the module docstring).

    Attributes:
      init: ``init(key) -> params`` (all columns).
      apply: ``apply(params, x, column) -> logits [..., out_dim]`` of column ``column``
        (int, may be traced).
      trainable: ``trainable(params, column) -> pytree of 0/1 float masks`` like params:
        1 for column ``column``'s weights and its incoming laterals, 0 elsewhere.
      num_params: ``num_params(columns) -> int``: parameters of the first ``columns``
        columns with their laterals (what a grown network holds).
      num_columns: columns allocated.
      layers: parameter groups in forward order.
    """

    init: Callable[[jax.Array], dict]
    apply: Callable[..., jax.Array]
    trainable: Callable[[dict, Any], dict]
    num_params: Callable[[int], int]
    num_columns: int
    layers: tuple[str, ...]


def progressive(in_dim: int, hidden: Sequence[int], out_dim: int, num_columns: int, *,
                activation: str = "relu", init: str = "he",
                lateral_scale: float = 0.5) -> ProgressiveNet:
    """Build a progressive network of ``num_columns`` MLP columns.

    Args:
      in_dim: input features.
      hidden: hidden widths of every column (non-empty).
      out_dim: outputs of every column.
      num_columns: columns (one per task).
      activation: one of :data:`~jaxopt_lab.models.core.ACTIVATIONS`.
      init: kernel initialization of the columns and laterals
        (:data:`~jaxopt_lab.models.core.INITS`).
      lateral_scale: multiplier of the laterals' initial values (they add to the
        column's own input).

    Returns:
      :class:`ProgressiveNet`.

    Example:
      >>> net = progressive(64, [32], 10, num_columns=3)
      >>> p = net.init(jax.random.key(0))
      >>> net.apply(p, jnp.ones((5, 64)), 2).shape
      (5, 10)

    References:
      Rusu et al. (2016), "Progressive Neural Networks".
    """
    in_dim = check_int("in_dim", in_dim)
    out_dim = check_int("out_dim", out_dim)
    k_cols = check_int("num_columns", num_columns)
    hidden = check_dims("hidden", hidden)
    if not hidden:
        raise ValueError("hidden must hold at least one layer (laterals join hidden layers)")
    check_choice("activation", activation, ACTIVATIONS)
    kinit = kernel_initializer(init, 1.0)
    linit = kernel_initializer(init, float(lateral_scale))
    act = ACTIVATIONS[activation]
    widths = (in_dim, *hidden, out_dim)
    names = tuple(f"layers_{i}" for i in range(len(hidden))) + ("out",)
    lower = jnp.asarray(np.tril(np.ones((k_cols, k_cols), np.float32), -1))  # j < k

    def init_fn(key):
        params = {}
        for li, name in enumerate(names):
            a, b = widths[li], widths[li + 1]
            kk = jax.random.fold_in(key, li)
            layer = {
                "kernel": jax.vmap(lambda k, a=a, b=b: kinit(k, (a, b)))(
                    jax.random.split(jax.random.fold_in(kk, 0), k_cols)),
                "bias": jnp.zeros((k_cols, b), jnp.float32),
            }
            if li > 0:
                lat = jax.vmap(lambda k, a=a, b=b: linit(k, (a, b)))(
                    jax.random.split(jax.random.fold_in(kk, 1), k_cols * k_cols))
                layer["lateral"] = lat.reshape(k_cols, k_cols, a, b) * lower[:, :, None, None]
            params[name] = layer
        return params

    def apply_fn(params, x, column):
        x = jnp.asarray(x, jnp.float32)
        lead = x.shape[:-1]
        x = x.reshape(-1, in_dim)
        h = None  # [K, B, width]
        for li, name in enumerate(names):
            p = params[name]
            if li == 0:
                z = jnp.einsum("bi,kio->kbo", x, p["kernel"])
            else:
                z = jnp.einsum("kbi,kio->kbo", h, p["kernel"])
                lat = p["lateral"] * lower[:, :, None, None]
                z = z + jnp.einsum("jbi,kjio->kbo", h, lat)
            z = z + p["bias"][:, None, :]
            h = act(z) if name != "out" else z
        out = jnp.take(h, column, axis=0)
        return out.reshape(*lead, out_dim)

    def trainable(params, column):
        onehot = (jnp.arange(k_cols) == column).astype(jnp.float32)
        out = {}
        for name, layer in params.items():
            out[name] = {}
            for leaf, v in layer.items():
                m = onehot.reshape((k_cols,) + (1,) * (v.ndim - 1))
                if leaf == "lateral":
                    m = m * lower.reshape((k_cols, k_cols) + (1,) * (v.ndim - 2))
                out[name][leaf] = jnp.broadcast_to(m, v.shape)
        return out

    def num_params(columns: int) -> int:
        c = check_int("columns", columns, minimum=0)
        c = min(c, k_cols)
        total = 0
        for li in range(len(names)):
            a, b = widths[li], widths[li + 1]
            total += c * (a * b + b)
            if li > 0:
                total += (c * (c - 1) // 2) * a * b
        return total

    return ProgressiveNet(init=jax.jit(init_fn), apply=jax.jit(apply_fn), trainable=trainable,
                          num_params=num_params, num_columns=k_cols, layers=names)

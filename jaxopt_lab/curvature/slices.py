"""2-D slices of any pytree loss around its parameters, with filter-normalised directions.

``landscape_slice`` evaluates ``f(x + a d1 + b d2)`` on a grid in one jitted program;
the directions are given or drawn at random and normalised per filter (Li et al. 2018)
or per layer. Grid layout (image convention): ``values[i, j]`` belongs to
``(alphas[j], betas[i])``, so ``plt.contour(alphas, betas, values)`` works directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import (
    as_key,
    check_callable,
    check_choice,
    check_finite,
    check_int,
    check_params,
    check_positive,
    check_same_structure,
    check_scalar_function,
)

__all__ = [
    "LandscapeSlice",
    "filter_normalize",
    "landscape_slice",
    "layer_normalize",
    "random_directions",
]


class LandscapeSlice(NamedTuple):
    """Result of :func:`landscape_slice`.

    Attributes:
      alphas: ``[r]`` coefficients along ``d1``.
      betas: ``[r]`` coefficients along ``d2``.
      values: ``[r, r]``, ``values[i, j] = f(x + alphas[j] d1 + betas[i] d2, *args)``.
      d1: the first direction actually used (after normalisation), pytree like ``x``.
      d2: the second direction actually used.
    """

    alphas: np.ndarray
    betas: np.ndarray
    values: np.ndarray
    d1: Any
    d2: Any


def filter_normalize(direction: Any, params: Any, *, zero_1d: bool = True) -> Any:
    """Filter-wise normalisation of a direction (Li et al., 2018).

    For every leaf with ``ndim >= 2`` each filter -- a slice along the LAST axis, i.e. one
    output unit of a flax ``Dense`` kernel ``[in, out]`` or ``Conv`` kernel
    ``[..., in, out]`` -- is rescaled to the Frobenius norm of the same filter of
    ``params``: ``d_f <- d_f / ||d_f|| * ||theta_f||``. Leaves with ``ndim <= 1`` (biases,
    norm scales) are set to zero when ``zero_1d`` (the paper's default of ignoring them)
    and normalised as a whole otherwise.

    Args:
      direction: pytree like ``params``.
      params: the parameters the slice is centred on.
      zero_1d: zero the 1-D / scalar leaves (default) instead of normalising them.

    Returns:
      The normalised direction, same structure as ``params``.

    References:
      Li, Xu, Taylor, Studer, Goldstein, 2018. Visualizing the loss landscape of neural nets.
    """
    check_same_structure("direction", direction, "params", params)

    def leaf(d, p):
        d = jnp.asarray(d)
        p = jnp.asarray(p, d.dtype)
        if d.ndim <= 1:
            if zero_1d:
                return jnp.zeros_like(d)
            return d * (jnp.linalg.norm(p) / jnp.maximum(jnp.linalg.norm(d), 1e-30))
        axes = tuple(range(d.ndim - 1))
        dn = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        pn = jnp.sqrt(jnp.sum(p * p, axis=axes, keepdims=True))
        return d * (pn / jnp.maximum(dn, 1e-30))

    return jax.tree_util.tree_map(leaf, direction, params)


def layer_normalize(direction: Any, params: Any) -> Any:
    """Scale each leaf of ``direction`` to the Frobenius norm of the same leaf of ``params``.

    Args:
      direction: pytree like ``params``.
      params: the parameters the slice is centred on.

    Returns:
      The normalised direction (a zero leaf stays zero).
    """
    check_same_structure("direction", direction, "params", params)
    return jax.tree_util.tree_map(
        lambda d, p: d * jnp.linalg.norm(p) / jnp.maximum(jnp.linalg.norm(d), 1e-30),
        direction,
        params,
    )


def random_directions(key: Any, params: Any, *, normalize: str | None = "filter") -> tuple:
    """Two random Gaussian directions shaped like ``params``, optionally normalised.

    Args:
      key: PRNG key (typed, raw ``uint32[2]`` or an int seed).
      params: pytree of float arrays.
      normalize: "filter" (Li et al., 2018, see :func:`filter_normalize`), "layer" (each
        leaf scaled to the norm of the parameter leaf, :func:`layer_normalize`), or None
        (raw Gaussian).

    Returns:
      ``(d1, d2)`` pytrees like ``params``.
    """
    key = as_key("key", key)
    check_params("params", params)
    check_choice("normalize", normalize, (None, "filter", "layer"))
    flat, unravel = ravel_pytree(params)
    k1, k2 = jax.random.split(key)
    dirs = [unravel(jax.random.normal(k, flat.shape, flat.dtype)) for k in (k1, k2)]
    if normalize == "filter":
        dirs = [filter_normalize(d, params) for d in dirs]
    elif normalize == "layer":
        dirs = [layer_normalize(d, params) for d in dirs]
    return dirs[0], dirs[1]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _slice(f, resolution, rows_per_batch, x, d1, d2, args, span):
    flat, unravel = ravel_pytree(x)
    v1, _ = ravel_pytree(d1)
    v2, _ = ravel_pytree(d2)
    coef = jnp.linspace(-1.0, 1.0, resolution, dtype=flat.dtype) * span

    def row(beta):
        base = flat + beta * v2
        return jax.vmap(lambda a: f(unravel(base + a * v1), *args))(coef)

    values = jax.lax.map(row, coef, batch_size=rows_per_batch)
    return coef, values


def landscape_slice(
    f: Callable[..., jax.Array],
    x: Any,
    d1: Any = None,
    d2: Any = None,
    *args: Any,
    span: float = 1.0,
    resolution: int = 21,
    key: Any = None,
    normalize: str | None = None,
    rows_per_batch: int = 0,
) -> LandscapeSlice:
    """2-D slice ``f(x + a d1 + b d2)`` of any loss around pytree params ``x``.

    The grid ``a, b in linspace(-span, span, resolution)`` is evaluated in one jitted
    program: a ``vmap`` over ``a`` inside a ``lax.map`` over ``b`` (memory ~ resolution
    copies of ``x``; set ``rows_per_batch`` to vectorise several rows at once).
    Directions may be given, or drawn at random from ``key`` (then ``normalize`` defaults to
    "filter", the filter-normalised directions of Li et al. 2018, when ``x`` has a leaf with
    ndim >= 2, and to raw Gaussian directions for plain vectors). Given directions are
    normalised only if ``normalize`` is set.

    Args:
      f: scalar loss ``f(x, *args)`` (e.g. ``model.loss(params, batch)``).
      x: centre, any pytree of float arrays.
      d1: first direction (pytree like ``x``) or None to draw one from ``key``.
      d2: second direction or None.
      *args: extra arguments of ``f`` (a batch, say), passed as data.
      span: half-width of the grid in units of the directions (> 0).
      resolution: grid points per axis (>= 2).
      key: PRNG key (typed, raw or int seed), required when a direction is None.
      normalize: None, "filter" or "layer" (see :func:`random_directions`).
      rows_per_batch: rows of the grid evaluated together (0 = one row at a time).

    Returns:
      :class:`LandscapeSlice`; ``values[i, j] = f(x + alphas[j] d1 + betas[i] d2)``.

    References:
      Li, Xu, Taylor, Studer, Goldstein, 2018. Visualizing the loss landscape of neural nets.
      Goodfellow, Vinyals, Saxe, 2015. Qualitatively characterizing neural network
        optimization problems.
    """
    check_callable("f", f)
    check_params("x", x)
    check_positive("span", span)
    resolution = check_int("resolution", resolution, minimum=2)
    rows_per_batch = check_int("rows_per_batch", rows_per_batch, minimum=0)
    check_choice("normalize", normalize, (None, "filter", "layer"))
    if d1 is None or d2 is None:
        if key is None:
            raise ValueError("key must be given when d1 or d2 is None (random directions)")
        key = as_key("key", key)
        default = "filter" if any(np.ndim(v) >= 2 for v in jax.tree_util.tree_leaves(x)) else None
        r1, r2 = random_directions(key, x, normalize=normalize or default)
        d1 = r1 if d1 is None else d1
        d2 = r2 if d2 is None else d2
    for name, d in (("d1", d1), ("d2", d2)):
        check_same_structure(name, d, "x", x)
        check_finite(name, d)
    if normalize == "filter":
        d1, d2 = filter_normalize(d1, x), filter_normalize(d2, x)
    elif normalize == "layer":
        d1, d2 = layer_normalize(d1, x), layer_normalize(d2, x)
    check_scalar_function(f, x, tuple(args))
    coef, values = _slice(f, resolution, rows_per_batch, x, d1, d2, tuple(args), span)
    coef = np.asarray(coef)
    return LandscapeSlice(coef, coef.copy(), np.asarray(values), d1, d2)

"""Curvature maps of 2-D landscapes and 2-D loss-landscape slices of any pytree loss.

Grid layout (both functions, image convention): ``out[i, j]`` belongs to
``(xs[j], ys[i])`` -- rows follow the second coordinate, so ``plt.imshow(out,
origin="lower", extent=...)`` and ``plt.contour(xs, ys, out)`` work directly.

Curvature-map kind codes (from the Hessian alone, no gradient test; the numbering matches
:data:`jaxopt_lab.curvature.critical.KIND_NAMES`):
``0`` positive definite (locally convex, "minimum"-like), ``1`` negative definite
("maximum"-like), ``2`` indefinite ("saddle"-like), ``3`` degenerate (an eigenvalue within
``eig_tol * max(1, max|eigenvalue|)`` of zero and no sign mix). See :data:`MAP_KIND_NAMES`.
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
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_same_structure,
)
from jaxopt_lab.curvature.critical import check_bounds

__all__ = [
    "MAP_KIND_NAMES",
    "CurvatureMap",
    "LandscapeSlice",
    "curvature_map",
    "filter_normalize",
    "landscape_slice",
    "random_directions",
]

MAP_KIND_NAMES = ("positive_definite", "negative_definite", "indefinite", "degenerate")


class CurvatureMap(NamedTuple):
    """Result of :func:`curvature_map` (numpy arrays).

    Attributes:
      xs: ``[nx]`` grid of the first coordinate.
      ys: ``[ny]`` grid of the second coordinate.
      min_eig: ``[ny, nx]`` smallest Hessian eigenvalue at ``(xs[j], ys[i])``.
      max_eig: ``[ny, nx]`` largest Hessian eigenvalue.
      kind_codes: ``[ny, nx]`` int32 codes, see :data:`MAP_KIND_NAMES`.
    """

    xs: np.ndarray
    ys: np.ndarray
    min_eig: np.ndarray
    max_eig: np.ndarray
    kind_codes: np.ndarray


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


# ----------------------------------------------------------------------------- curvature map


def _resolution_pair(resolution: Any) -> tuple[int, int]:
    if isinstance(resolution, tuple | list):
        if len(resolution) != 2:
            raise ValueError(f"resolution must be an int or a pair (nx, ny), got {resolution!r}")
        nx = check_int("resolution", resolution[0], minimum=2)
        ny = check_int("resolution", resolution[1], minimum=2)
        return nx, ny
    n = check_int("resolution", resolution, minimum=2)
    return n, n


def _sym2_eigvals(a: jax.Array, d: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Closed-form eigenvalues ``(lo, hi)`` of the symmetric 2x2 matrix ``[[a, b], [b, d]]``.

    ``(a + d)/2 -+ hypot((a - d)/2, b)``: elementwise, no batched ``eigvalsh`` call (which XLA
    runs slowly on CPU for many tiny matrices). ``hypot`` avoids overflow/underflow in the
    radius; equal eigenvalues (``a == d``, ``b == 0``) give ``lo == hi`` exactly.
    """
    mid = 0.5 * (a + d)
    rad = jnp.hypot(0.5 * (a - d), b)
    return mid - rad, mid + rad


def _map_kind_codes(lo: jax.Array, hi: jax.Array, eig_tol: jax.Array) -> jax.Array:
    """int32 :data:`MAP_KIND_NAMES` codes from the smallest/largest eigenvalue."""
    thr = eig_tol * jnp.maximum(1.0, jnp.maximum(jnp.abs(lo), jnp.abs(hi)))
    code = jnp.where(
        lo > thr, 0, jnp.where(hi < -thr, 1, jnp.where((lo < -thr) & (hi > thr), 2, 3))
    )
    return code.astype(jnp.int32)


def _hessian_2d(g: Callable[[jax.Array], jax.Array], p: jax.Array):
    """Entries ``(a, d, b)`` of the symmetrised Hessian of ``g`` at ``p: [2]``.

    Forward-over-forward (nested ``jvp`` along the unit vectors): under ``vmap`` over the
    grid this lowers to a few elementwise XLA fusions with no ``[points, 2, 2]``
    intermediates (``jax.hessian``'s reverse pass materialises padded cotangent arrays), and
    it also works for ``f`` with loops that only support forward mode. A ``jax.custom_vjp``
    inside ``f`` has no forward mode: then (at trace time, once per compile) it falls back
    to ``jax.hessian`` (forward-over-reverse); a genuine error in ``f`` re-raises there.
    """
    e0 = jnp.array([1.0, 0.0], p.dtype)
    e1 = jnp.array([0.0, 1.0], p.dtype)

    def ddir(v):
        return lambda z: jax.jvp(g, (z,), (v,))[1]

    try:
        d0, d1 = ddir(e0), ddir(e1)
        h00 = jax.jvp(d0, (p,), (e0,))[1]
        h01 = jax.jvp(d0, (p,), (e1,))[1]
        h10 = jax.jvp(d1, (p,), (e0,))[1]
        h11 = jax.jvp(d1, (p,), (e1,))[1]
    except (TypeError, NotImplementedError):  # custom_vjp: no forward mode (the old path)
        h = jax.hessian(g)(p)
        h00, h01, h10, h11 = h[0, 0], h[0, 1], h[1, 0], h[1, 1]
    return h00, h11, 0.5 * (h01 + h10)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _curvature_map(f, nx, ny, lower, upper, args, eig_tol):
    xs = lower[0] + (upper[0] - lower[0]) * jnp.arange(nx, dtype=lower.dtype) / (nx - 1)
    ys = lower[1] + (upper[1] - lower[1]) * jnp.arange(ny, dtype=lower.dtype) / (ny - 1)
    g = lambda z: f(z, *args)

    def one(x, y):
        lo, hi = _sym2_eigvals(*_hessian_2d(g, jnp.stack([x, y])))
        return lo, hi, _map_kind_codes(lo, hi, eig_tol)

    # outer vmap over rows (ys), inner over columns (xs): [ny, nx] without a meshgrid or
    # a [ny * nx, 2] point array in memory
    lo, hi, code = jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(None, 0))(xs, ys)
    return xs, ys, lo, hi, code


def curvature_map(
    f: Callable[..., jax.Array],
    bounds: Any,
    resolution: Any = 100,
    *args: Any,
    eig_tol: float = 1e-6,
) -> CurvatureMap:
    """Smallest/largest Hessian eigenvalue and curvature kind on a grid over a 2-D box.

    One jitted, vmapped program over all grid points (cached per ``f`` and resolution;
    the box is passed as data). The Hessian entries come from nested forward-mode ``jvp``
    along the two axes (``jax.hessian`` as a fallback for ``custom_vjp`` functions), and
    the 2x2 eigenvalues from the closed form ``(a + d)/2 +- hypot((a - d)/2, b)`` with
    ``b`` the symmetrised off-diagonal entry. Runs in jax's default float dtype.

    Args:
      f: scalar function ``f(x, *args)`` of ``x: [2]`` (e.g. ``landscapes.get(...).fn``).
      bounds: ``(lower, upper)``, each of shape (2,), lower < upper.
      resolution: grid points per axis, int >= 2 or a pair ``(nx, ny)``.
      *args: extra arguments of ``f``.
      eig_tol: relative eigenvalue tolerance for the kind codes (see module docstring).

    Returns:
      :class:`CurvatureMap` with ``[ny, nx]`` arrays (row i is ``ys[i]``).

    Example:
      >>> from jaxopt_lab import landscapes
      >>> L = landscapes.get("himmelblau")
      >>> cmap = curvature_map(L.fn, L.bounds, 200)
      >>> cmap.min_eig.shape
      (200, 200)
    """
    lower, upper = check_bounds(bounds, dim=2)
    nx, ny = _resolution_pair(resolution)
    check_positive("eig_tol", eig_tol, allow_zero=True)
    # jax's default float dtype (float64 under enable_x64); numpy bounds go straight into the
    # jitted call (no eager jnp dispatch per call)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    out = _curvature_map(
        f, nx, ny, np.asarray(lower, dtype), np.asarray(upper, dtype), tuple(args), eig_tol
    )
    return CurvatureMap(*(np.asarray(o) for o in jax.device_get(out)))


# ----------------------------------------------------------------------------- slices


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


def random_directions(key: jax.Array, params: Any, *, normalize: str | None = "filter") -> tuple:
    """Two random Gaussian directions shaped like ``params``, optionally normalised.

    Args:
      key: PRNG key.
      params: pytree of float arrays.
      normalize: "filter" (Li et al., 2018, see :func:`filter_normalize`), "layer" (each
        leaf scaled to the norm of the parameter leaf), or None (raw Gaussian).

    Returns:
      ``(d1, d2)`` pytrees like ``params``.
    """
    check_choice("normalize", normalize, (None, "filter", "layer"))
    flat, unravel = ravel_pytree(params)
    k1, k2 = jax.random.split(key)
    dirs = [unravel(jax.random.normal(k, flat.shape, flat.dtype)) for k in (k1, k2)]
    if normalize == "filter":
        dirs = [filter_normalize(d, params) for d in dirs]
    elif normalize == "layer":
        dirs = [
            jax.tree_util.tree_map(
                lambda d, p: d * jnp.linalg.norm(p) / jnp.maximum(jnp.linalg.norm(d), 1e-30),
                d,
                params,
            )
            for d in dirs
        ]
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
    key: jax.Array | None = None,
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
      key: PRNG key used when a direction is None.
      normalize: None, "filter" or "layer" (see :func:`random_directions`).
      rows_per_batch: rows of the grid evaluated together (0 = one row at a time).

    Returns:
      :class:`LandscapeSlice`; ``values[i, j] = f(x + alphas[j] d1 + betas[i] d2)``.

    References:
      Li, Xu, Taylor, Studer, Goldstein, 2018. Visualizing the loss landscape of neural nets.
      Goodfellow, Vinyals, Saxe, 2015. Qualitatively characterizing neural network
        optimization problems.
    """
    check_finite("x", x)
    check_positive("span", span)
    resolution = check_int("resolution", resolution, minimum=2)
    rows_per_batch = check_int("rows_per_batch", rows_per_batch, minimum=0)
    check_choice("normalize", normalize, (None, "filter", "layer"))
    if d1 is None or d2 is None:
        if key is None:
            raise ValueError("key must be given when d1 or d2 is None (random directions)")
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
        scale = lambda d, p: d * jnp.linalg.norm(p) / jnp.maximum(jnp.linalg.norm(d), 1e-30)
        d1 = jax.tree_util.tree_map(scale, d1, x)
        d2 = jax.tree_util.tree_map(scale, d2, x)
    coef, values = _slice(f, resolution, rows_per_batch, x, d1, d2, tuple(args), span)
    coef = np.asarray(coef)
    return LandscapeSlice(coef, coef.copy(), np.asarray(values), d1, d2)

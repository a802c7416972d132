"""Curvature maps of 2-D landscapes: Hessian eigenvalues and curvature kinds on a grid.

Loss-landscape slices of network losses live in :mod:`jaxopt_lab.curvature.slices`.

Grid layout (image convention): ``out[i, j]`` belongs to
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

from jaxopt_lab._validation import check_int, check_positive, check_scalar_function
from jaxopt_lab.curvature.critical import check_bounds

__all__ = [
    "MAP_KIND_NAMES",
    "CurvatureMap",
    "curvature_map",
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
    check_scalar_function(
        f, jax.ShapeDtypeStruct((2,), jnp.float32), tuple(args), x_name="a grid point"
    )
    # jax's default float dtype (float64 under enable_x64); numpy bounds go straight into the
    # jitted call (no eager jnp dispatch per call)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    out = _curvature_map(
        f, nx, ny, np.asarray(lower, dtype), np.asarray(upper, dtype), tuple(args), eig_tol
    )
    return CurvatureMap(*(np.asarray(o) for o in jax.device_get(out)))

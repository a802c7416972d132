"""Critical points: classify a point by its gradient and Hessian, and find them all by search.

Kind codes (shared with :mod:`jaxopt_lab.curvature.maps`):
``0 = "minimum"``, ``1 = "maximum"``, ``2 = "saddle"``, ``3 = "degenerate"``,
``4 = "not_critical"`` (see :data:`KIND_NAMES`).

Tolerances (used by :func:`classify`, :func:`classify_batch` and :func:`find_critical_points`):

* ``grad_tol`` is ABSOLUTE, plus the unavoidable rounding floor of the dtype: a point is
  critical when ``||grad f(x)||_2 <= grad_tol + 8 * eps * ||H||_2 * max(1, ||x||_2)``
  (``eps`` = machine epsilon of ``x``'s dtype, ``||H||_2 = max_i |lambda_i|``). The floor is
  the size of ``||H dx||`` for the rounding ``dx`` of an exact critical point to the dtype
  (``|dx_i| <= eps |x_i| / 2``), with a safety factor for the rounding of the gradient
  itself: without it the float32 copy of an exact critical point with strong curvature
  (Rastrigin's minima at ``|x| ~ 4``: ``||H|| ~ 400``, ``||grad|| ~ 4e-5``) would be
  "not_critical" for any ``grad_tol`` below its rounding noise. In float64 the floor is
  negligible. Float32 gradients also carry a rounding error of about ``1e-7`` times the
  magnitude of the terms that cancel in them, so for functions with large values
  (Goldstein-Price reaches 1e6 on its domain) either loosen ``grad_tol`` or evaluate in
  float64 (``with jax.enable_x64(True):`` and a float64 ``x``).
* ``eig_tol`` is RELATIVE to the Hessian's scale with an absolute floor: an eigenvalue
  counts as nonzero when ``|lambda| > eig_tol * max(1, max_i |lambda_i|)``. For Hessians with
  spectral norm <= 1 it is an absolute threshold; above, it is relative, which makes the
  classification invariant to rescaling ``f`` by a large constant. Float32 ``eigh`` has an
  absolute error of roughly ``1e-7 * ||H||``, so ``eig_tol`` should stay >= ~1e-6 in float32.

The kind is then "minimum" (all eigenvalues > thr), "maximum" (all < -thr), "saddle"
(some > thr and some < -thr) and "degenerate" otherwise (an eigenvalue within thr of zero
and no sign mix, which includes a zero Hessian). ``index`` counts eigenvalues < -thr.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import check_finite, check_int, check_positive

__all__ = [
    "KIND_NAMES",
    "Classification",
    "CriticalPoints",
    "check_bounds",
    "classify",
    "classify_batch",
    "find_critical_points",
]

KIND_NAMES = ("minimum", "maximum", "saddle", "degenerate", "not_critical")


class Classification(NamedTuple):
    """Result of :func:`classify` (arrays for :func:`classify_batch`, stacked on axis 0).

    Attributes:
      kind: "minimum", "maximum", "saddle", "degenerate" or "not_critical"
        (a numpy array of such strings for a batch).
      eigenvalues: Hessian eigenvalues in ascending order, ``[n]``.
      grad_norm: Euclidean norm of the gradient.
      index: number of eigenvalues below ``-thr`` (Morse index for nondegenerate points).
    """

    kind: Any
    eigenvalues: np.ndarray
    grad_norm: Any
    index: Any


class CriticalPoints(NamedTuple):
    """Result of :func:`find_critical_points`, sorted by value then coordinates.

    Attributes:
      points: ``[k, d]`` distinct critical points found inside the bounds.
      values: ``[k]`` function values.
      kinds: tuple of ``k`` kind strings (see :data:`KIND_NAMES`).
      eigenvalues: ``[k, d]`` Hessian eigenvalues (ascending per point).
      grad_norms: ``[k]`` gradient norms at the points.
      index: ``[k]`` number of negative-curvature directions.
      num_converged: how many of the starts converged inside the bounds (before dedup).
    """

    points: np.ndarray
    values: np.ndarray
    kinds: tuple
    eigenvalues: np.ndarray
    grad_norms: np.ndarray
    index: np.ndarray
    num_converged: int


# ----------------------------------------------------------------------------- helpers


def _kind_code(eigs, grad_norm, grad_tol, eig_tol, x_norm=0.0):
    """Traceable kind code (see module docstring) from ascending eigenvalues."""
    h_norm = jnp.max(jnp.abs(eigs))
    thr = eig_tol * jnp.maximum(1.0, h_norm)
    pos = jnp.any(eigs > thr)
    neg = jnp.any(eigs < -thr)
    all_pos = jnp.all(eigs > thr)
    all_neg = jnp.all(eigs < -thr)
    code = jnp.where(all_pos, 0, jnp.where(all_neg, 1, jnp.where(pos & neg, 2, 3)))
    floor = 8.0 * jnp.finfo(eigs.dtype).eps * h_norm * jnp.maximum(1.0, x_norm)
    code = jnp.where(grad_norm > grad_tol + floor, 4, code)
    index = jnp.sum(eigs < -thr)
    return code, index


def _flat_fn(f, x, args):
    flat, unravel = ravel_pytree(x)
    return flat, (lambda z: f(unravel(z), *args))


@functools.partial(jax.jit, static_argnums=0)
def _classify_one(f, x, args, grad_tol, eig_tol):
    flat, g = _flat_fn(f, x, args)
    value, grad = jax.value_and_grad(g)(flat)
    hess = jax.hessian(g)(flat)
    hess = 0.5 * (hess + hess.T)
    eigs = jnp.linalg.eigvalsh(hess)
    gnorm = jnp.linalg.norm(grad)
    code, index = _kind_code(eigs, gnorm, grad_tol, eig_tol, jnp.linalg.norm(flat))
    finite = jnp.stack(
        [jnp.isfinite(value), jnp.all(jnp.isfinite(grad)), jnp.all(jnp.isfinite(hess))]
    )
    return code, eigs, gnorm, index, finite


@functools.partial(jax.jit, static_argnums=(0, 5))
def _classify_many(f, xs, args, grad_tol, eig_tol, batched_args):
    one = lambda x, a: _classify_one.__wrapped__(f, x, a, grad_tol, eig_tol)
    return jax.vmap(one, in_axes=(0, 0 if batched_args else None))(xs, args)


def _check_tols(grad_tol, eig_tol):
    check_positive("grad_tol", grad_tol, allow_zero=True)
    check_positive("eig_tol", eig_tol, allow_zero=True)


def _as_float_tree(name, x):
    # A (nested) list/tuple of Python numbers is one point: convert it to an array (as a
    # pytree its leaves would be Python floats, which f cannot index or do arithmetic on).
    if isinstance(x, list | tuple) and x and all(
        isinstance(v, numbers.Number) and not isinstance(v, bool)
        for v in jax.tree_util.tree_leaves(x)
    ):
        try:
            x = jnp.asarray(np.asarray(x, dtype=float), dtype=jnp.result_type(float))
        except ValueError:
            raise ValueError(f"{name} must be a rectangular list of numbers, got {x!r}") from None
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves:
        raise ValueError(f"{name} must contain at least one array, got {x!r}")
    for leaf in leaves:
        arr = np.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise TypeError(f"{name} must hold floating-point arrays, got dtype {arr.dtype}")
    check_finite(name, x)
    # Half-precision points (float16, bfloat16) are classified in float32: eigh has no
    # half-precision kernel, and their rounding would swamp the tolerances anyway.
    return jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float32) if jnp.finfo(jnp.asarray(a).dtype).bits < 32 else a,
        x,
    )


def _check_f(f):
    if not callable(f):
        raise TypeError(f"f must be a callable f(x, *args) -> scalar, got {type(f).__name__}")


# ----------------------------------------------------------------------------- classify


def classify(
    f: Callable[..., jax.Array],
    x: Any,
    *args: Any,
    grad_tol: float = 1e-5,
    eig_tol: float = 1e-6,
) -> Classification:
    """Classify ``x`` as a minimum, maximum, saddle, degenerate or non-critical point of ``f``.

    Uses the dense Hessian over the flattened ``x`` and ``eigh``, so it is meant for small
    problems (n up to a few thousand). Tolerances are described in the module docstring:
    ``grad_tol`` is absolute on ``||grad||_2`` (plus the dtype's rounding floor
    ``8 eps ||H|| max(1, ||x||)``); ``eig_tol`` is relative to
    ``max(1, max |eigenvalue|)``. Computation runs in the dtype of ``x``; the jitted program
    is cached per ``f`` (pass the same function object to avoid recompiles).

    Args:
      f: scalar function ``f(x, *args)``.
      x: the point, a float array or any pytree of float arrays (flattened).
      *args: extra arguments of ``f`` (held fixed).
      grad_tol: absolute tolerance on the gradient norm (>= 0).
      eig_tol: relative tolerance on eigenvalues (>= 0).

    Returns:
      :class:`Classification` with ``kind`` (str), ``eigenvalues`` (numpy, ascending),
      ``grad_norm`` (float) and ``index`` (int).

    Example:
      >>> import jax.numpy as jnp
      >>> classify(lambda z: z[0] ** 2 - z[1] ** 2, jnp.zeros(2)).kind
      'saddle'
    """
    _check_f(f)
    _check_tols(grad_tol, eig_tol)
    x = _as_float_tree("x", x)
    code, eigs, gnorm, index, finite = _classify_one(f, x, args, grad_tol, eig_tol)
    whats = ("f(x)", "the gradient of f at x", "the Hessian of f at x")
    for ok, what in zip(np.asarray(finite), whats, strict=True):
        if not ok:
            raise ValueError(
                f"{what} is not finite: x is outside the domain of f (or f overflows there), "
                "so it cannot be classified"
            )
    return Classification(
        kind=KIND_NAMES[int(code)],
        eigenvalues=np.asarray(eigs),
        grad_norm=float(gnorm),
        index=int(index),
    )


def classify_batch(
    f: Callable[..., jax.Array],
    xs: Any,
    *args: Any,
    grad_tol: float = 1e-5,
    eig_tol: float = 1e-6,
    batched_args: bool = False,
) -> Classification:
    """Vmapped :func:`classify` over a batch of points stacked on the leading axis.

    One compiled program for the whole batch (cached per ``f``). Same tolerances as
    :func:`classify`.

    Args:
      f: scalar function ``f(x, *args)`` for ONE point.
      xs: points stacked on axis 0: an array ``[m, d]`` or a pytree with leading axis m.
      *args: extra arguments of ``f`` (shared by all points unless ``batched_args``).
      grad_tol: absolute tolerance on the gradient norm.
      eig_tol: relative tolerance on eigenvalues.
      batched_args: if True, every leaf of ``args`` is batched along axis 0 like ``xs``
        (e.g. one integer selecting a function per point).

    Returns:
      :class:`Classification` whose fields are numpy arrays with leading axis m
      (``kind`` is an array of strings).
    """
    _check_f(f)
    _check_tols(grad_tol, eig_tol)
    xs = _as_float_tree("xs", xs)
    codes, eigs, gnorms, index, _ = _classify_many(
        f, xs, args, grad_tol, eig_tol, bool(batched_args)
    )
    return Classification(
        kind=np.asarray(KIND_NAMES)[np.asarray(codes)],
        eigenvalues=np.asarray(eigs),
        grad_norm=np.asarray(gnorms),
        index=np.asarray(index),
    )


# ----------------------------------------------------------------------------- search


def check_bounds(bounds: Any, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``bounds = (lower, upper)``: 1-D, same shape, finite, lower < upper.

    Args:
      bounds: pair of array-likes of shape (d,).
      dim: required d, if given.

    Returns:
      ``(lower, upper)`` as float64 numpy arrays.
    """
    try:
        lower, upper = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be a pair (lower, upper) of arrays of shape (d,), got {bounds!r}"
        ) from None
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    if lower.ndim != 1 or upper.shape != lower.shape or lower.size == 0:
        raise ValueError(
            f"bounds must be (lower, upper) with equal shapes (d,), got shapes "
            f"{lower.shape} and {upper.shape}"
        )
    if dim is not None and lower.shape[0] != dim:
        raise ValueError(f"bounds must have shape ({dim},), got {lower.shape}")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError(f"bounds must be finite, got lower={lower}, upper={upper}")
    if not np.all(lower < upper):
        raise ValueError(f"bounds must satisfy lower < upper, got lower={lower}, upper={upper}")
    return lower, upper


@functools.partial(jax.jit, static_argnums=(0, 1))
def _lm_search(f, num_iters, starts, args, lower, upper, grad_tol, eig_tol):
    """Levenberg-Marquardt on the residual ``grad f`` from every start (vmapped)."""
    width = upper - lower
    max_step = 0.25 * jnp.max(width)

    def one(x0):
        g_fn = jax.grad(lambda z: f(z, *args))
        h_fn = jax.hessian(lambda z: f(z, *args))
        n = x0.shape[0]
        eye = jnp.eye(n, dtype=x0.dtype)

        def body(_, state):
            x, mu, gx = state
            h = h_fn(x)
            h = 0.5 * (h + h.T)
            hth = h.T @ h
            scale = jnp.maximum(jnp.trace(hth) / n, jnp.finfo(x.dtype).tiny)
            step = -jnp.linalg.solve(hth + mu * scale * eye, h.T @ gx)
            snorm = jnp.linalg.norm(step)
            step = step * jnp.minimum(1.0, max_step / jnp.maximum(snorm, 1e-30))
            x_new = x + step
            g_new = g_fn(x_new)
            ok = jnp.linalg.norm(g_new) < jnp.linalg.norm(gx)
            ok = ok & jnp.all(jnp.isfinite(g_new))
            x = jnp.where(ok, x_new, x)
            gx = jnp.where(ok, g_new, gx)
            mu = jnp.clip(jnp.where(ok, mu * 0.3, mu * 4.0), 1e-12, 1e8)
            return x, mu, gx

        init = (x0, jnp.asarray(1e-2, x0.dtype), g_fn(x0))
        x, _, _ = jax.lax.fori_loop(0, num_iters, body, init)
        code, eigs, gnorm, index, _ = _classify_one.__wrapped__(f, x, args, grad_tol, eig_tol)
        return x, f(x, *args), code, eigs, gnorm, index

    return jax.vmap(one)(starts)


def find_critical_points(
    f: Callable[..., jax.Array],
    bounds: Any,
    key: jax.Array,
    num_starts: int = 256,
    *,
    args: tuple = (),
    num_iters: int = 100,
    grad_tol: float = 1e-4,
    eig_tol: float = 1e-6,
    dedup_tol: float = 1e-3,
    starts: Any = None,
) -> CriticalPoints:
    """Find critical points of ``f`` inside a box by multi-start Levenberg-Marquardt.

    Every start (uniform in the box) runs ``num_iters`` Levenberg-Marquardt steps on the
    residual ``r(x) = grad f(x)`` (Jacobian = Hessian), i.e. damped Newton on the
    gradient, which converges to minima, maxima and saddles alike (quadratically at
    nondegenerate ones). The damping adapts (x0.3 on success, x4 on failure) and steps are
    capped at a quarter of the box width. All starts run in ONE jitted, vmapped program
    (``lax.fori_loop`` inside, cached per ``f`` and shapes). Then, on the host, points with
    ``||grad|| <= grad_tol`` inside the bounds (plus ``dedup_tol`` slack) are kept, merged
    when closer than ``dedup_tol`` (Euclidean, keeping the one with the smallest gradient),
    classified (see :func:`classify` for the tolerances) and sorted by value.

    Precision: runs in the dtype of jax's default float (float32 unless x64 is enabled);
    ``grad_tol`` must sit above float32 gradient noise for the function at hand. For
    catalogs, call it under ``with jax.enable_x64(True):``.

    Degenerate critical sets (curves of minima, e.g. ``a b = c``) yield many points along
    the set; LM converges only linearly to degenerate points.

    Args:
      f: scalar function ``f(x, *args)`` of a 1-D array ``x: [d]``.
      bounds: ``(lower, upper)``, arrays of shape (d,) with lower < upper.
      key: PRNG key for the starts.
      num_starts: number of random starts (>= 1).
      args: tuple of extra arguments of ``f`` (held fixed).
      num_iters: LM iterations per start (>= 1).
      grad_tol: absolute gradient-norm tolerance for convergence and classification.
      eig_tol: relative eigenvalue tolerance (see :func:`classify`).
      dedup_tol: merge radius for duplicates (> 0), in units of x.
      starts: optional ``[num_starts, d]`` explicit starts (then ``key`` is unused).

    Returns:
      :class:`CriticalPoints` (numpy arrays, sorted by value then coordinates).

    Example:
      >>> from jaxopt_lab import landscapes
      >>> L = landscapes.get("himmelblau")
      >>> cp = find_critical_points(L.fn, L.bounds, jax.random.key(0))  # doctest: +SKIP
      >>> len(cp.points)  # doctest: +SKIP
      9

    References:
      Levenberg, 1944. A method for the solution of certain non-linear problems in least
        squares. Marquardt, 1963. An algorithm for least-squares estimation of nonlinear
        parameters.
    """
    lower, upper = check_bounds(bounds)
    d = lower.shape[0]
    num_starts = check_int("num_starts", num_starts, minimum=1)
    num_iters = check_int("num_iters", num_iters, minimum=1)
    _check_tols(grad_tol, eig_tol)
    check_positive("dedup_tol", dedup_tol)
    args = tuple(args)
    dtype = jnp.zeros(()).dtype
    if starts is None:
        if key is None:
            raise ValueError("key must be a PRNG key when starts is None, got None")
        starts = jax.random.uniform(
            key, (num_starts, d), dtype=dtype, minval=lower.astype(dtype),
            maxval=upper.astype(dtype),
        )
    else:
        starts = np.asarray(starts)
        if starts.ndim != 2 or starts.shape[1] != d:
            raise ValueError(f"starts must have shape (num_starts, {d}), got {starts.shape}")
        check_finite("starts", starts)
        starts = jnp.asarray(starts, dtype=dtype)
    lo = jnp.asarray(lower, dtype)
    hi = jnp.asarray(upper, dtype)
    xs, vals, codes, eigs, gnorms, index = jax.device_get(
        _lm_search(f, num_iters, starts, args, lo, hi, grad_tol, eig_tol)
    )
    inside = np.all((xs >= lower - dedup_tol) & (xs <= upper + dedup_tol), axis=1)
    keep = inside & (gnorms <= grad_tol) & np.all(np.isfinite(xs), axis=1)
    num_converged = int(keep.sum())
    sel = np.flatnonzero(keep)
    sel = sel[np.argsort(gnorms[sel], kind="stable")]
    chosen: list[int] = []
    for i in sel:
        if all(np.linalg.norm(xs[i] - xs[j]) > dedup_tol for j in chosen):
            chosen.append(int(i))
    chosen_arr = np.asarray(chosen, dtype=int)
    if chosen_arr.size:
        order = np.lexsort(tuple(xs[chosen_arr].T[::-1]) + (vals[chosen_arr],))
        chosen_arr = chosen_arr[order]
    return CriticalPoints(
        points=np.asarray(xs[chosen_arr]).reshape(-1, d),
        values=np.asarray(vals[chosen_arr]),
        kinds=tuple(KIND_NAMES[int(c)] for c in codes[chosen_arr]),
        eigenvalues=np.asarray(eigs[chosen_arr]).reshape(-1, d),
        grad_norms=np.asarray(gnorms[chosen_arr]),
        index=np.asarray(index[chosen_arr]),
        num_converged=num_converged,
    )

"""Registry of named landscapes (``get``, ``names``) and the data-driven constructors."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_choice, check_finite, check_int, check_positive
from jaxopt_lab.landscapes import functions as F
from jaxopt_lab.landscapes.base import (
    CriticalPoint,
    Landscape,
    catalog_entry,
    minima_from_points,
    points_from_entry,
)

__all__ = ["deep_linear_scalar", "get", "least_squares", "names", "quadratic"]

# Separable catalogs: products of 1-D critical points are listed in full when there are at
# most this many; otherwise the subset "global minimum + points differing from it in exactly
# one coordinate" is listed.
MAX_PRODUCT_POINTS = 1024


def _box(lo: float, hi: float, dim: int):
    return (np.full(dim, lo, dtype=np.float64), np.full(dim, hi, dtype=np.float64))


def _check_dim(name: str, dim: Any, fixed: int | None, minimum: int, default: int) -> int:
    if dim is None:
        return fixed if fixed is not None else default
    dim = check_int("dim", dim, minimum=1)
    if fixed is not None and dim != fixed:
        raise ValueError(f"dim for landscape {name!r} must be {fixed} (fixed dimension), got {dim}")
    if dim < minimum:
        raise ValueError(f"dim for landscape {name!r} must be >= {minimum}, got {dim}")
    return dim


# ----------------------------------------------------------------------------- fixed 2-D


def _fixed(name, fn, dim, bounds, description, *, bounded_below=True, known_min=None):
    entry = catalog_entry(name)
    pts = points_from_entry(entry)
    if known_min is not None:
        gmin, fmin = known_min
    elif bounded_below:
        gmin, fmin = minima_from_points(pts, dim)
    else:
        gmin, fmin = np.zeros((0, dim)), -math.inf
    note = entry.get("note", "") if entry else "no catalog file found"
    return Landscape(name, fn, dim, bounds, gmin, fmin, pts, {}, description, note)


_UNBOUNDED = " Unbounded below on R^2: global_minima is empty and f_min = -inf."

_FIXED: dict[str, Callable[[], Landscape]] = {
    "sin_quadratic_1d": lambda: _fixed(
        "sin_quadratic_1d", F.sin_quadratic_1d, 1, _box(-3.0, 3.0, 1),
        "sin(3x) + 0.5 x^2 on [-3, 3]: several local minima; the catalogued lowest minimum "
        "is the global one on R (0.5 x^2 dominates outside).",
    ),
    "saddle": lambda: _fixed(
        "saddle", F.saddle, 2, _box(-2.0, 2.0, 2), "x^2 - y^2." + _UNBOUNDED,
        bounded_below=False,
    ),
    "saddle_xy": lambda: _fixed(
        "saddle_xy", F.saddle_xy, 2, _box(-2.0, 2.0, 2), "x^2 - y^2 + 0.1 x y." + _UNBOUNDED,
        bounded_below=False,
    ),
    "saddle_xy3": lambda: _fixed(
        "saddle_xy3", F.saddle_xy3, 2, _box(-2.0, 2.0, 2),
        "x^2 - y^2 + 0.1 x y^3." + _UNBOUNDED, bounded_below=False,
    ),
    "saddle_trig": lambda: _fixed(
        "saddle_trig", F.saddle_trig, 2, _box(-3.0, 3.0, 2),
        "x^2 - y^2 + 2 sin x + 2 cos y." + _UNBOUNDED, bounded_below=False,
    ),
    "saddle_ripple": lambda: _fixed(
        "saddle_ripple", F.saddle_ripple, 2, _box(-2.0, 2.0, 2),
        "x^2 - y^2 + 0.1 sin 5x + 0.1 cos 5y." + _UNBOUNDED, bounded_below=False,
    ),
    "dauphin_saddle": lambda: _fixed(
        "dauphin_saddle", F.dauphin_saddle, 2, _box(-2.0, 2.0, 2),
        "5 x^2 - y^2 (Dauphin et al., 2014): saddle at 0, eigenvalues 10 and -2." + _UNBOUNDED,
        bounded_below=False,
    ),
    "monkey_saddle": lambda: _fixed(
        "monkey_saddle", F.monkey_saddle, 2, _box(-1.5, 1.5, 2),
        "x^3 - 3 x y^2: degenerate critical point (zero Hessian) at 0." + _UNBOUNDED,
        bounded_below=False,
    ),
    "himmelblau": lambda: _fixed(
        "himmelblau", F.himmelblau, 2, _box(-5.0, 5.0, 2),
        "(x^2 + y - 11)^2 + (x + y^2 - 7)^2: 4 global minima (f = 0), 1 maximum, 4 saddles.",
    ),
    "six_hump_camel": lambda: _fixed(
        "six_hump_camel", F.six_hump_camel, 2,
        (np.array([-3.0, -2.0]), np.array([3.0, 2.0])),
        "(4 - 2.1 x^2 + x^4/3) x^2 + x y + (-4 + 4 y^2) y^2 on [-3,3]x[-2,2]: 6 minima, "
        "2 global (f = -1.0316).",
    ),
    "goldstein_price": lambda: _fixed(
        "goldstein_price", F.goldstein_price, 2, _box(-2.0, 2.0, 2),
        "Goldstein-Price on [-2, 2]^2: global minimum 3 at (0, -1).",
    ),
}


# ----------------------------------------------------------------------------- N-d


def _nd_catalog(name: str, dim: int, gmin: np.ndarray, fmin: float):
    entry = catalog_entry(f"{name}@{dim}")
    if entry:
        return points_from_entry(entry), entry.get("note", "")
    pts = (CriticalPoint(gmin, "minimum", fmin),)
    return pts, f"dim={dim} not searched: only the analytic global minimum is listed."


def _separable(name: str, dim: int, per_coord: Callable[[float], float], offset: float):
    """Catalog of a separable sum ``f = offset * d + sum_i g(x_i)`` from its 1-D roots.

    Returns ``(build, note, (x_min, f_min))``: ``build()`` makes the catalog (O(d^2)
    numbers for the one-coordinate subset, so :class:`Landscape` calls it lazily);
    the note and the global minimum cost O(1) and O(d). ``build`` is None without a
    catalog file.
    """
    entry = catalog_entry(f"{name}@1d")
    if not entry:
        return None, "no catalog file found", None
    roots = [(p["x"][0], p["kind"]) for p in entry["critical_points"]]
    gidx = int(np.argmin([per_coord(r) for r, _ in roots]))
    n = len(roots)
    complete = _power_at_most(n, dim, MAX_PRODUCT_POINTS)
    if complete:
        note = f"complete: product of the {n} 1-D critical points in the bounds ({n}^{dim})"
    else:
        note = (
            f"subset: {n}^{dim} > {MAX_PRODUCT_POINTS} critical points in the bounds; listed "
            "are the global minimum and all points differing from it in one coordinate"
        )
    note += " (kinds and values from the separable structure)"

    def value(combo):
        return offset * dim + sum(per_coord(roots[j][0]) for j in combo)

    def build():
        if complete:
            combos = itertools.product(range(n), repeat=dim)
        else:
            base = [gidx] * dim
            combos = [tuple(base)]
            for i in range(dim):
                for j in range(n):
                    if j != gidx:
                        c = list(base)
                        c[i] = j
                        combos.append(tuple(c))
        pts = []
        for combo in combos:
            x = np.array([roots[j][0] for j in combo])
            n_max = sum(roots[j][1] == "maximum" for j in combo)
            kind = "minimum" if n_max == 0 else ("maximum" if n_max == dim else "saddle")
            pts.append(CriticalPoint(x, kind, value(combo)))
        pts.sort(key=lambda p: (p.value, tuple(p.x)))
        return tuple(pts)

    # the global minimum: every coordinate at the lowest 1-D root (the catalog's first
    # point, with the same value arithmetic)
    gmin = (np.full(dim, float(roots[gidx][0])), value(itertools.repeat(gidx, dim)))
    return build, note, gmin


def _power_at_most(n: int, dim: int, limit: int) -> bool:
    """``n ** dim <= limit`` without building a dim-digit integer (dim may be 1e8)."""
    total = 1
    for _ in range(dim):
        total *= n
        if total > limit:
            return False
    return True


def _rosenbrock(dim):
    gmin = np.ones(dim)
    pts, note = _nd_catalog("rosenbrock", dim, gmin, 0.0)
    return Landscape(
        "rosenbrock", F.rosenbrock, dim, _box(-2.048, 2.048, dim), gmin[None], 0.0, pts, {},
        "sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, global minimum 0 at ones.", note,
    )


def _rastrigin(dim):
    g = lambda t: t * t - 10.0 * math.cos(2.0 * math.pi * t)
    build, note, _ = _separable("rastrigin", dim, g, 10.0)
    pts = build if build is not None else ()
    return Landscape(
        "rastrigin", F.rastrigin, dim, _box(-5.12, 5.12, dim), np.zeros((1, dim)), 0.0, pts,
        {}, "10 d + sum x_i^2 - 10 cos(2 pi x_i), global minimum 0 at 0.", note,
    )


def _styblinski_tang(dim):
    h = lambda t: 0.5 * (t**4 - 16.0 * t**2 + 5.0 * t)
    build, note, best = _separable("styblinski_tang", dim, h, 0.0)
    pts = build if build is not None else ()
    if best is not None:
        gmin, fmin = best[0][None], best[1]
    else:  # closed form fallback (root of 4t^3 - 32t + 5 = 0)
        t = -2.903534027771177
        gmin, fmin = np.full((1, dim), t), dim * h(t)
    return Landscape(
        "styblinski_tang", F.styblinski_tang, dim, _box(-5.0, 5.0, dim), gmin, fmin, pts, {},
        "0.5 sum x_i^4 - 16 x_i^2 + 5 x_i, global minimum -39.16617 d at x_i = -2.903534.",
        note,
    )


def _ackley(dim):
    gmin = np.zeros(dim)
    pts, note = _nd_catalog("ackley", dim, gmin, 0.0)
    return Landscape(
        "ackley", F.ackley, dim, _box(-32.768, 32.768, dim), gmin[None], 0.0, pts, {},
        "Ackley (a=20, b=0.2, c=2 pi), global minimum 0 at 0 (a kink; see functions.ackley).",
        note,
    )


def _levy(dim):
    gmin = np.ones(dim)
    pts, note = _nd_catalog("levy", dim, gmin, 0.0)
    return Landscape(
        "levy", F.levy, dim, _box(-10.0, 10.0, dim), gmin[None], 0.0, pts, {},
        "Levy function, global minimum 0 at ones.", note,
    )


_ND: dict[str, tuple[Callable[[int], Landscape], int]] = {
    "rosenbrock": (_rosenbrock, 2),
    "rastrigin": (_rastrigin, 1),
    "ackley": (_ackley, 1),
    "styblinski_tang": (_styblinski_tang, 1),
    "levy": (_levy, 1),
}


# ----------------------------------------------------------------------------- constructors


def _quadratic_fn(x, A):
    return 0.5 * x @ (A @ x)


def quadratic(eigenvalues: Any, *, seed: int = 0) -> Landscape:
    """Quadratic ``0.5 x^T A x`` with ``A = Q diag(eigenvalues) Q^T``, Q random orthogonal.

    ``Q`` comes from the QR decomposition of a seeded standard-normal matrix (signs fixed so
    that R has a positive diagonal, i.e. Haar-distributed). Negative, zero and repeated
    eigenvalues are allowed. ``A`` (float64) is in ``extras["A"]`` and ``.matrix``, ``Q`` in
    ``extras["Q"]``. The only critical point is 0: a minimum if all eigenvalues are > 0,
    a maximum if all < 0, a saddle with mixed signs, degenerate if any is 0. With any
    negative eigenvalue ``f`` is unbounded below (``global_minima`` empty, ``f_min = -inf``);
    with nonnegative ones 0 is a global minimizer, ``f_min = 0``.

    Args:
      eigenvalues: 1-D array-like of the spectrum (length d >= 1), finite.
      seed: integer seed of the rotation.

    Returns:
      A :class:`Landscape` named "quadratic" with bounds ``[-2, 2]^d``.

    Example:
      >>> L = quadratic([1.0, -2.0], seed=1)
      >>> L.critical_points[0].kind
      'saddle'
    """
    eigs = np.asarray(eigenvalues, dtype=np.float64)
    if eigs.ndim != 1 or eigs.size == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-D array, got shape {eigs.shape}")
    check_finite("eigenvalues", eigs)
    seed = check_int("seed", seed, minimum=0)
    d = eigs.size
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    A = (q * eigs) @ q.T
    A = 0.5 * (A + A.T)
    A.setflags(write=False)

    def fn(x):
        return _quadratic_fn(x, jnp.asarray(A, dtype=x.dtype))

    if np.all(eigs > 0):
        kind = "minimum"
    elif np.all(eigs < 0):
        kind = "maximum"
    elif np.any(eigs > 0) and np.any(eigs < 0):
        kind = "saddle"
    else:
        kind = "degenerate"
    bounded = bool(np.all(eigs >= 0))
    gmin = np.zeros((1, d)) if bounded else np.zeros((0, d))
    return Landscape(
        "quadratic", fn, d, _box(-2.0, 2.0, d), gmin, 0.0 if bounded else -math.inf,
        (CriticalPoint(np.zeros(d), kind, 0.0),),
        {"A": A, "Q": q, "eigenvalues": np.sort(eigs), "seed": seed},
        "0.5 x^T A x, A = Q diag(eigenvalues) Q^T.", "analytic: the origin is the only "
        "critical point (the null space of A when singular; its representative 0 is listed)",
    )


def _least_squares_fn(w, X, y):
    r = X @ w - y
    return 0.5 * jnp.mean(r * r)


def least_squares(X: Any, y: Any) -> Landscape:
    """Linear least squares ``f(w) = 0.5 * mean((X w - y)^2) = ||X w - y||^2 / (2 n)``.

    With this convention the Hessian is exactly ``X^T X / n`` (stored as ``extras["A"]``
    and ``.matrix``) and the gradient is ``X^T (X w - y) / n``. The minimizer is the
    minimum-norm least-squares solution ``w* = pinv(X) y``: a nondegenerate minimum when X
    has full column rank, otherwise a "degenerate" point of a flat valley of minimizers.
    Bounds: a box around ``w*`` of half-width ``max(2, 2 max|w*|)``. ``X`` and ``y`` are
    closed over by ``fn`` (cast to the dtype of ``w``); for large data sets use the models/
    interface instead.

    Args:
      X: design matrix ``[n, d]``, finite.
      y: targets ``[n]``, finite.

    Returns:
      A :class:`Landscape` named "least_squares" with ``extras`` X, y, A.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a 2-D array of shape (n, d), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    check_finite("X", X)
    check_finite("y", y)
    n, d = X.shape
    A = X.T @ X / n
    w_star = np.linalg.pinv(X) @ y
    f_star = 0.5 * float(np.mean((X @ w_star - y) ** 2))
    eigs = np.linalg.eigvalsh(A)
    kind = "minimum" if eigs[0] > 1e-10 * max(1.0, eigs[-1]) else "degenerate"

    def fn(w):
        return _least_squares_fn(w, jnp.asarray(X, w.dtype), jnp.asarray(y, w.dtype))

    half = max(2.0, 2.0 * float(np.max(np.abs(w_star))))
    for arr in (X, y, A, w_star):
        arr.setflags(write=False)
    return Landscape(
        "least_squares", fn, d, (w_star - half, w_star + half), w_star[None], f_star,
        (CriticalPoint(w_star, kind, f_star),), {"X": X, "y": y, "A": A},
        "0.5 * mean((X w - y)^2); Hessian X^T X / n.",
        "analytic: the minimum-norm least-squares solution",
    )


def deep_linear_scalar(c: float = 1.0) -> Landscape:
    """Two-layer scalar linear network ``f(a, b) = 0.5 (a b - c)^2`` (c > 0).

    Critical points: the origin, a strict saddle with Hessian ``[[0, -c], [-c, 0]]``
    (eigenvalues -c, +c), and the whole hyperbola ``a b = c`` of global minima (f = 0),
    where the Hessian ``[[b^2, a b], [a b, a^2]]`` has eigenvalues ``{a^2 + b^2, 0}``
    (degenerate, flat along the hyperbola); at ``a = b = sqrt(c)`` these are ``{2c, 0}``.
    ``global_minima`` lists the two balanced representatives ``+-(sqrt c, sqrt c)``.

    Args:
      c: target product, > 0.

    Returns:
      A :class:`Landscape` named "deep_linear_scalar", bounds ``[-2 s, 2 s]^2`` with
      ``s = max(1, sqrt(c))``, ``extras["c"] = c``.

    References:
      Saxe, McClelland, Ganguli, 2014. Exact solutions to the nonlinear dynamics of learning
        in deep linear neural networks.
    """
    check_positive("c", c)
    c = float(c)
    s = math.sqrt(c)
    entry = catalog_entry("deep_linear_scalar") if c == 1.0 else None
    if entry:
        pts = points_from_entry(entry)
        note = entry.get("note", "")
    else:
        pts = (
            CriticalPoint(np.array([-s, -s]), "degenerate", 0.0),
            CriticalPoint(np.array([s, s]), "degenerate", 0.0),
            CriticalPoint(np.zeros(2), "saddle", 0.5 * c * c),
        )
        note = "analytic: the saddle at 0 and the two balanced points of the hyperbola ab = c"
    half = 2.0 * max(1.0, s)
    fn = functools.partial(F.deep_linear_scalar_fn, c=c)
    return Landscape(
        "deep_linear_scalar", fn, 2, _box(-half, half, 2), np.array([[-s, -s], [s, s]]), 0.0,
        pts, {"c": c}, "0.5 (a b - c)^2: saddle at 0, hyperbola ab = c of degenerate minima.",
        note,
    )


def _default_quadratic(dim):
    return quadratic(np.linspace(1.0, 10.0, dim), seed=0)


def _default_least_squares(dim):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, dim))
    y = X @ np.linspace(1.0, -1.0, dim) + 0.1 * rng.standard_normal(32)
    return least_squares(X, y)


_CONSTRUCTED: dict[str, tuple[Callable[[int], Landscape], int | None, int]] = {
    # name: (builder(dim), fixed dim or None, default dim)
    "quadratic": (_default_quadratic, None, 2),
    "least_squares": (_default_least_squares, None, 2),
    "deep_linear_scalar": (lambda dim: deep_linear_scalar(1.0), 2, 2),
}


# ----------------------------------------------------------------------------- registry


def names() -> list[str]:
    """Sorted names accepted by :func:`get`."""
    return sorted([*_FIXED, *_ND, *_CONSTRUCTED])


def takes_dim(name: str) -> bool:
    """Whether landscape ``name`` accepts a ``dim`` (N-d landscapes) or has a fixed one."""
    if name not in names():
        raise ValueError(f"name must be one of {names()}, got {name!r}")
    return name in _ND or (name in _CONSTRUCTED and _CONSTRUCTED[name][1] is None)


@functools.cache
def _get_cached(name: str, dim: int) -> Landscape:
    if name in _FIXED:
        return _FIXED[name]()
    if name in _ND:
        return _ND[name][0](dim)
    return _CONSTRUCTED[name][0](dim)


def get(name: str, dim: int | None = None) -> Landscape:
    """Return the landscape ``name`` (cached: the same object, hence the same ``fn``).

    Args:
      name: one of :func:`names`.
      dim: dimension for N-d landscapes (rosenbrock >= 2, rastrigin, ackley,
        styblinski_tang, levy, quadratic, least_squares >= 1; default 2). Fixed-dimension
        landscapes accept ``None`` or their own dimension only.

    Returns:
      A :class:`Landscape`. "quadratic" uses eigenvalues ``linspace(1, 10, dim)`` (seed 0),
      "least_squares" a seeded 32 x dim Gaussian design, "deep_linear_scalar" c = 1.

    Raises:
      ValueError: unknown ``name`` (the message lists the valid names) or bad ``dim``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {names()}, got {name!r}")
    check_choice("name", name, names())
    if name in _FIXED:
        fixed = 1 if name == "sin_quadratic_1d" else 2
        dim = _check_dim(name, dim, fixed, fixed, fixed)
    elif name in _ND:
        dim = _check_dim(name, dim, None, _ND[name][1], 2)
    else:
        _, fixed, default = _CONSTRUCTED[name]
        dim = _check_dim(name, dim, fixed, 1, default)
    return _get_cached(name, dim)

"""The Landscape record, critical-point records and the catalog loader."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CATALOG_PATH", "KINDS", "CriticalPoint", "Landscape", "load_catalog"]

CATALOG_PATH = Path(__file__).with_name("catalogs.json")
KINDS = ("minimum", "maximum", "saddle", "degenerate")


def _shape_checked(fn: Callable[..., Any], dim: int, name: str) -> Callable[..., Any]:
    """Wrap ``fn`` so that a point of the wrong shape raises ValueError naming ``x``.

    The check reads only the static shape, so it runs at trace time (before anything is
    compiled) and costs nothing inside ``jit``/``vmap``.
    """
    if getattr(fn, "_landscape_dim", None) == dim:
        return fn

    @functools.wraps(fn)
    def checked(x, *args, **kwargs):
        shape = np.shape(x)
        if shape != (dim,):
            raise ValueError(
                f"x must be one point of shape ({dim},) for landscape {name!r} (dim={dim}), "
                f"got shape {shape}; use jax.vmap for a batch"
            )
        return fn(x, *args, **kwargs)

    checked._landscape_dim = dim
    return checked


def _frozen_array(a: Any, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.array(a, dtype=np.float64)
    if shape_tail is not None:
        arr = arr.reshape((-1, *shape_tail))
    arr.setflags(write=False)
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class CriticalPoint:
    """One catalogued critical point.

    Attributes:
      x: float64 array ``[d]`` (refined by a float64 Newton step before storing).
      kind: "minimum", "maximum", "saddle" or "degenerate".
      value: ``f(x)`` in float64.
    """

    x: np.ndarray
    kind: str
    value: float

    def __post_init__(self):
        object.__setattr__(self, "x", _frozen_array(self.x).reshape(-1))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "value", float(self.value))


@dataclasses.dataclass(frozen=True, eq=False)
class Landscape:
    """An analytic objective ``f(x: [d]) -> scalar`` with its domain and known points.

    Calling the instance evaluates ``fn``. Arrays are float64 numpy and read-only.

    Attributes:
      name: registry name.
      fn: pure jax function of ONE point ``x`` of shape (dim,); vmap it for batches. A point
        of another shape raises ValueError (checked at trace time, free under jit).
      dim: dimension d.
      bounds: ``(lower, upper)``, float64 arrays of shape (d,): the standard search domain.
      global_minima: ``[m, d]`` known global minimizers (``m = 0`` when ``f`` is unbounded
        below on R^d; for a continuum of minimizers, representative points).
      f_min: global minimum value (``-inf`` when unbounded below).
      critical_points: catalogued critical points (all of them inside ``bounds`` for the
        2-D landscapes; a documented subset for N-d ones, see ``catalog_note``). May be
        given as a zero-argument callable returning them: the catalog is then built on
        first access of ``.critical_points`` (N-d catalogs hold O(d^2) numbers).
      extras: extra data (e.g. ``"A"`` for :func:`quadratic`, ``"X"``, ``"y"`` for
        :func:`least_squares`, ``"c"`` for :func:`deep_linear_scalar`).
      description: formula and notes.
      catalog_note: how ``critical_points`` was obtained and whether it is complete.
    """

    name: str
    fn: Callable[[Any], Any]
    dim: int
    bounds: tuple[np.ndarray, np.ndarray]
    global_minima: np.ndarray
    f_min: float
    # default_factory (not a default value) leaves no class attribute behind, so that a
    # lazy catalog can be materialised by __getattr__ on first access
    critical_points: tuple[CriticalPoint, ...] = dataclasses.field(default_factory=tuple)
    extras: dict = dataclasses.field(default_factory=dict)
    description: str = ""
    catalog_note: str = ""

    def __post_init__(self):
        lower, upper = self.bounds
        object.__setattr__(
            self, "bounds", (_frozen_array(lower).reshape(-1), _frozen_array(upper).reshape(-1))
        )
        object.__setattr__(self, "global_minima", _frozen_array(self.global_minima, (self.dim,)))
        object.__setattr__(self, "f_min", float(self.f_min))
        if callable(self.critical_points):
            object.__setattr__(self, "_catalog_builder", self.critical_points)
            object.__delattr__(self, "critical_points")
        else:
            object.__setattr__(self, "critical_points", tuple(self.critical_points))
        object.__setattr__(self, "fn", _shape_checked(self.fn, int(self.dim), self.name))

    def __call__(self, x):
        """Evaluate ``fn(x)`` for one point ``x`` of shape (dim,)."""
        return self.fn(x)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: a lazy catalog not built yet.
        if name == "critical_points":
            builder = self.__dict__.get("_catalog_builder")
            if builder is not None:
                points = tuple(builder())
                object.__setattr__(self, "critical_points", points)
                return points
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def catalog_built(self) -> bool:
        """Whether ``critical_points`` has been materialised (False until first access
        for a lazily catalogued landscape)."""
        return "critical_points" in self.__dict__

    @property
    def matrix(self) -> np.ndarray | None:
        """The quadratic form ``A`` (``quadratic``) or ``X^T X / n`` (``least_squares``)."""
        return self.extras.get("A")

    @property
    def critical_array(self) -> np.ndarray:
        """Catalogued critical points stacked as ``[k, d]``."""
        if not self.critical_points:
            return np.zeros((0, self.dim))
        return np.stack([p.x for p in self.critical_points])

    def __repr__(self) -> str:
        count = (
            f"{len(self.critical_points)} critical points"
            if self.catalog_built
            else "critical points not built yet"
        )
        return f"Landscape(name={self.name!r}, dim={self.dim}, f_min={self.f_min}, {count})"


@functools.lru_cache(maxsize=1)
def load_catalog() -> dict:
    """The parsed ``catalogs.json`` (empty dict if the file is absent)."""
    if not CATALOG_PATH.exists():
        return {}
    with open(CATALOG_PATH) as fh:
        return json.load(fh)


def catalog_entry(key: str) -> dict | None:
    """The catalog entry ``key`` (e.g. "himmelblau" or "rosenbrock@4"), or None."""
    return load_catalog().get("landscapes", {}).get(key)


def points_from_entry(entry: dict | None) -> tuple[CriticalPoint, ...]:
    if not entry:
        return ()
    return tuple(
        CriticalPoint(np.asarray(p["x"], dtype=np.float64), p["kind"], p["value"])
        for p in entry["critical_points"]
    )


def minima_from_points(points: tuple[CriticalPoint, ...], dim: int, rtol: float = 1e-9):
    """Global minima and f_min from a complete catalog (minima with the lowest value)."""
    mins = [p for p in points if p.kind in ("minimum", "degenerate")]
    if not mins:
        return np.zeros((0, dim)), -math.inf
    f_min = min(p.value for p in mins)
    tol = rtol * max(1.0, abs(f_min))
    best = [p.x for p in mins if p.value <= f_min + tol]
    return np.stack(best), f_min

"""Shared pieces of the search package: the result type, bounds checks, jit caching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int

__all__ = ["SearchResult", "check_bounds", "check_objective", "cached_jit", "uniform_in_box"]


class SearchResult(NamedTuple):
    """Result of a global search (all fields are arrays, so results can be vmapped).

    Attributes:
      best_x: ``[d]`` best point found.
      best_value: ``[]`` ``f(best_x)``.
      history: ``[num_steps + 1]`` best value found so far after each step / generation
        (entry 0: after the initial population or starting points).
      num_evaluations: ``[]`` int32, total calls of ``f`` (a value-and-gradient call
        counts as one evaluation).
      member_values: ``[P]`` best value of each chain / restart, or the final
        population's values for the genetic algorithm.
      evaluations_per_step: ``[num_steps + 1]`` int32, cumulative evaluations at each
        history entry (for evaluations-to-target curves).
    """

    best_x: jax.Array
    best_value: jax.Array
    history: jax.Array
    num_evaluations: jax.Array
    member_values: jax.Array
    evaluations_per_step: jax.Array


def check_bounds(bounds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``bounds = (lower, upper)`` and return them as float arrays of shape (d,).

    Raises:
      ValueError naming ``bounds`` when it is not a pair of equal-shape 1-D finite
      arrays with ``lower < upper`` elementwise.
    """
    if not isinstance(bounds, tuple | list) or len(bounds) != 2:
        raise ValueError(f"bounds must be a pair (lower, upper) of (d,) arrays, got {bounds!r}")
    lower, upper = (np.asarray(b, dtype=np.float32) for b in bounds)
    if lower.ndim != 1 or upper.ndim != 1 or lower.shape != upper.shape:
        raise ValueError(
            "bounds must be (lower, upper) with matching shapes (d,), got shapes "
            f"{lower.shape} and {upper.shape}"
        )
    if lower.shape[0] == 0:
        raise ValueError("bounds must have dimension d >= 1, got d = 0")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError("bounds must be finite")
    if not np.all(lower < upper):
        bad = np.flatnonzero(~(lower < upper)).tolist()
        raise ValueError(
            f"bounds must satisfy lower < upper elementwise; violated at indices {bad}"
        )
    return lower, upper


def check_objective(f: Any, lower: Any) -> None:
    """Raise unless ``f`` is callable and maps ONE point ``x: [d]`` to a scalar.

    Only shapes are traced (``jax.eval_shape``): nothing is compiled or evaluated.
    """
    if not callable(f):
        raise TypeError(f"f must be a callable f(x: [d]) -> scalar, got {f!r}")
    d = int(np.shape(lower)[0])
    try:
        out = jax.eval_shape(f, jax.ShapeDtypeStruct((d,), jnp.asarray(lower).dtype))
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"f fails on one point x of shape ({d},) (the dimension of bounds): "
            f"{type(err).__name__}: {err}"
        ) from err
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"f must return a scalar for one point x of shape ({d},) (vmap is done for you), "
            f"got {'output shape ' + str(shape) if shape is not None else repr(out)}"
        )


def nan_to_inf(value: jax.Array) -> jax.Array:
    """Treat a NaN objective value as the worst possible one (``+inf``)."""
    return jnp.where(jnp.isnan(value), jnp.inf, value)


def check_rate(name: str, value: Any) -> float:
    """Raise ValueError unless ``value`` is a probability in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def check_population(name: str, value: Any, minimum: int = 1) -> int:
    """``check_int`` with a message fit for population / chain counts."""
    return check_int(name, value, minimum=minimum)


def uniform_in_box(key: jax.Array, lower: jax.Array, upper: jax.Array, shape=()) -> jax.Array:
    """Uniform samples in the box ``[lower, upper]``, shape ``shape + (d,)``."""
    u = jax.random.uniform(key, (*shape, lower.shape[0]), lower.dtype)
    return lower + u * (upper - lower)


_JIT_CACHE: dict[Any, Callable] = {}


def cached_jit(impl: Callable, f: Callable, static: tuple) -> Callable:
    """``jax.jit(partial(impl, f, *static))``, cached on ``(impl, f, static)`` when hashable.

    ``f`` and the static configuration become compile-time constants; the key and
    the bounds stay traced arguments, so a second call with the same ``f`` and
    configuration does not recompile.
    """
    fn = lambda *args: impl(f, *static, *args)
    try:
        cache_key = (impl, f, static)
        hash(cache_key)
    except TypeError:
        return jax.jit(fn)
    if cache_key not in _JIT_CACHE:
        if len(_JIT_CACHE) > 256:
            _JIT_CACHE.clear()
        _JIT_CACHE[cache_key] = jax.jit(fn)
    return _JIT_CACHE[cache_key]


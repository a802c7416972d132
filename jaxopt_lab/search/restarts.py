"""Random restarts: many local gradient searches from uniform starting points, vmapped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import as_key
from jaxopt_lab.search._common import (
    SearchResult,
    cached_jit,
    check_bounds,
    check_objective,
    check_population,
    uniform_in_box,
)

__all__ = ["local_search", "random_restarts"]


def _local(f, local_steps, optimizer, lower, upper, key):
    """One projected local search; returns (best_x, best_value, history [local_steps + 1])."""
    x = uniform_in_box(key, lower, upper)
    state = optimizer.init(x)
    value_and_grad = jax.value_and_grad(f)

    def step(carry, _):
        x, state, best_x, best_f = carry
        v, g = value_and_grad(x)
        better = v < best_f
        best_x = jnp.where(better, x, best_x)
        best_f = jnp.where(better, v, best_f)
        updates, state = optimizer.update(g, state, x)
        x = optax.projections.projection_box(optax.apply_updates(x, updates), lower, upper)
        return (x, state, best_x, best_f), best_f

    inf = jnp.asarray(jnp.inf, lower.dtype)
    (x, _, best_x, best_f), hist = jax.lax.scan(step, (x, state, x, inf), None, length=local_steps)
    v = f(x)  # the final iterate counts too
    better = v < best_f
    best_x = jnp.where(better, x, best_x)
    best_f = jnp.where(better, v, best_f)
    return best_x, best_f, jnp.concatenate([hist, best_f[None]])


def _run(f, num_restarts, local_steps, optimizer, lower, upper, key):
    keys = jax.random.split(key, num_restarts)
    xs, fs, hists = jax.vmap(lambda k: _local(f, local_steps, optimizer, lower, upper, k))(keys)
    i = jnp.argmin(fs)
    evals = num_restarts * (jnp.arange(local_steps + 1, dtype=jnp.int32) + 1)
    return SearchResult(xs[i], fs[i], jnp.min(hists, axis=0), evals[-1], fs, evals)


def _single(f, local_steps, optimizer, lower, upper, key):
    x, fx, hist = _local(f, local_steps, optimizer, lower, upper, key)
    evals = jnp.arange(local_steps + 1, dtype=jnp.int32) + 1
    return SearchResult(x, fx, hist, evals[-1], fx[None], evals)


def _check_optimizer(optimizer):
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    return optimizer


_DEFAULT_OPTS: dict[tuple, optax.GradientTransformation] = {}


def _resolve(bounds, local_steps, optimizer):
    lower, upper = check_bounds(bounds)
    check_population("local_steps", local_steps)
    if optimizer is None:
        # adam, learning rate cosine-decayed from 1% of the mean box width to 1e-3 of that
        # (large early steps hop over small bumps, small late steps converge); cached so
        # repeated calls hit the jit cache
        width = round(float((upper - lower).mean()), 6)
        cache_key = (width, int(local_steps))
        if cache_key not in _DEFAULT_OPTS:
            lr = optax.cosine_decay_schedule(0.01 * width, int(local_steps), alpha=1e-3)
            _DEFAULT_OPTS[cache_key] = optax.adam(lr)
        optimizer = _DEFAULT_OPTS[cache_key]
    return jnp.asarray(lower), jnp.asarray(upper), _check_optimizer(optimizer)


def random_restarts(
    f: Callable[[jax.Array], jax.Array],
    bounds: tuple[Any, Any],
    key: jax.Array | int,
    *,
    num_restarts: int = 64,
    local_steps: int = 100,
    optimizer: optax.GradientTransformation | None = None,
) -> SearchResult:
    """Minimise ``f`` over a box by local gradient searches from random starts.

    ``num_restarts`` starting points are drawn uniformly in the box; from each, the
    ``optimizer`` takes ``local_steps`` projected steps (``optax.projections.projection_box``
    keeps the iterates in the box). All restarts run vmapped inside one ``jit``
    (``lax.scan`` over steps); restart ``i`` uses ``jax.random.split(key, num_restarts)[i]``
    and equals :func:`local_search` on that key. Each value-and-gradient call counts
    as one evaluation; the best point visited is kept.

    Success needs one start inside the global minimum's basin of attraction (of the
    optimizer), so the number of restarts should exceed the inverse basin fraction:
    on 2-D Rastrigin in ``[-5.12, 5.12]^2`` that basin covers about 1% of the box.

    Args:
      f: objective for ONE point, ``f(x: [d]) -> scalar``, differentiable.
      bounds: ``(lower, upper)``, each shape ``(d,)``, ``lower < upper``.
      key: PRNG key (or int seed).
      num_restarts: number of starting points (>= 1).
      local_steps: optimizer steps per restart (>= 1).
      optimizer: any ``optax.GradientTransformation``; default ``optax.adam`` with a
        learning rate cosine-decayed over ``local_steps`` from 1% of the mean box width
        to 1e-3 of that.

    Returns:
      :class:`SearchResult`; ``num_evaluations = num_restarts * (local_steps + 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> r = random_restarts(lambda x: jnp.sum(x**2), (-jnp.ones(2), jnp.ones(2)), 0)

    References:
      Lourenco, Martin & Stutzle, 2003. Iterated local search (multi-start methods).
      Kingma & Ba, 2015. Adam: a method for stochastic optimization (default local step).
    """
    lower, upper, optimizer = _resolve(bounds, local_steps, optimizer)
    check_population("num_restarts", num_restarts)
    static = (int(num_restarts), int(local_steps), optimizer)
    key = as_key("key", key)
    check_objective(f, lower)
    return cached_jit(_run, f, static)(lower, upper, key)


def local_search(
    f: Callable[[jax.Array], jax.Array],
    bounds: tuple[Any, Any],
    key: jax.Array | int,
    *,
    local_steps: int = 100,
    optimizer: optax.GradientTransformation | None = None,
) -> SearchResult:
    """One projected local search from a uniform random start (one restart of
    :func:`random_restarts`); ``member_values`` has shape ``[1]``."""
    lower, upper, optimizer = _resolve(bounds, local_steps, optimizer)
    static = (int(local_steps), optimizer)
    key = as_key("key", key)
    check_objective(f, lower)
    return cached_jit(_single, f, static)(lower, upper, key)

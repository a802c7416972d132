"""Simulated annealing: vmapped Metropolis chains with a cooling schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import as_key, check_positive
from jaxopt_lab.search._common import (
    SearchResult,
    cached_jit,
    check_bounds,
    check_objective,
    check_population,
    nan_to_inf,
    uniform_in_box,
)

__all__ = ["anneal_chain", "simulated_annealing"]


def _schedule_spec(temperature, initial_temperature, final_temperature):
    """A hashable description of the temperature schedule (for the jit cache)."""
    if temperature is None:
        return ("geometric", float(initial_temperature), float(final_temperature))
    if callable(temperature):
        return temperature
    return ("constant", float(temperature))


def _temperature_fn(spec, num_steps):
    if callable(spec):
        return spec
    if spec[0] == "constant":
        return lambda k: spec[1]
    t0, t1 = spec[1], spec[2]
    denom = max(num_steps - 1, 1)
    return lambda k: t0 * (t1 / t0) ** (k / denom)


def _chain(f, num_steps, schedule, step_size, anneal_step_size, lower, upper, key):
    """One Metropolis chain; returns (best_x, best_value, history [num_steps + 1])."""
    k0, kloop = jax.random.split(key)
    x = uniform_in_box(k0, lower, upper)
    fx = nan_to_inf(f(x))  # a NaN value counts as the worst (+inf)
    width = upper - lower
    t_first = jnp.asarray(schedule(0), lower.dtype)

    def step(carry, k):
        x, fx, best_x, best_f, key = carry
        key, kp, ka = jax.random.split(key, 3)
        temp = jnp.asarray(schedule(k), lower.dtype)
        scale = step_size * width
        if anneal_step_size:
            scale = scale * jnp.sqrt(temp / t_first)
        y = jnp.clip(x + scale * jax.random.normal(kp, x.shape, x.dtype), lower, upper)
        fy = nan_to_inf(f(y))
        delta = fy - fx
        # Metropolis: accept downhill always, uphill with probability exp(-delta / T).
        accept = (delta <= 0) | (jax.random.uniform(ka, (), x.dtype) < jnp.exp(-delta / temp))
        accept = accept & jnp.isfinite(fy)
        x = jnp.where(accept, y, x)
        fx = jnp.where(accept, fy, fx)
        better = fy < best_f
        best_x = jnp.where(better, y, best_x)
        best_f = jnp.where(better, fy, best_f)
        return (x, fx, best_x, best_f, key), best_f

    carry = (x, fx, x, fx, kloop)
    (_, _, best_x, best_f, _), hist = jax.lax.scan(step, carry, jnp.arange(num_steps))
    return best_x, best_f, jnp.concatenate([fx[None], hist])


def _run(f, num_chains, num_steps, spec, step_size, anneal_step_size, lower, upper, key):
    schedule = _temperature_fn(spec, num_steps)
    keys = jax.random.split(key, num_chains)
    run_one = lambda k: _chain(f, num_steps, schedule, step_size, anneal_step_size, lower, upper, k)
    xs, fs, hists = jax.vmap(run_one)(keys)
    i = jnp.argmin(fs)
    evals = num_chains * (jnp.arange(num_steps + 1, dtype=jnp.int32) + 1)
    return SearchResult(
        best_x=xs[i],
        best_value=fs[i],
        history=jnp.min(hists, axis=0),
        num_evaluations=evals[-1],
        member_values=fs,
        evaluations_per_step=evals,
    )


def _single(f, num_steps, spec, step_size, anneal_step_size, lower, upper, key):
    schedule = _temperature_fn(spec, num_steps)
    x, fx, hist = _chain(f, num_steps, schedule, step_size, anneal_step_size, lower, upper, key)
    evals = jnp.arange(num_steps + 1, dtype=jnp.int32) + 1
    return SearchResult(x, fx, hist, evals[-1], fx[None], evals)


def _check(bounds, num_steps, step_size, temperature, initial_temperature, final_temperature):
    lower, upper = check_bounds(bounds)
    check_population("num_steps", num_steps)
    check_positive("step_size", step_size)
    if temperature is None:
        check_positive("initial_temperature", initial_temperature)
        check_positive("final_temperature", final_temperature)
    elif not callable(temperature):
        check_positive("temperature", temperature)
    return jnp.asarray(lower), jnp.asarray(upper)


def simulated_annealing(
    f: Callable[[jax.Array], jax.Array],
    bounds: tuple[Any, Any],
    key: jax.Array | int,
    *,
    num_chains: int = 16,
    num_steps: int = 1000,
    temperature: float | Callable[[jax.Array], jax.Array] | None = None,
    initial_temperature: float = 10.0,
    final_temperature: float = 1e-4,
    step_size: float = 0.1,
    anneal_step_size: bool = True,
) -> SearchResult:
    """Minimise ``f`` over a box with ``num_chains`` independent Metropolis chains.

    Each chain starts uniformly in the box and, for ``k = 0..num_steps-1``, proposes
    ``y = clip(x + s_k (upper - lower) N(0, I))``, accepts it with the Metropolis
    probability ``min(1, exp(-(f(y) - f(x)) / T_k))`` and remembers the best point
    seen. Chains run vmapped inside one ``jit`` (``lax.scan`` over steps); chain ``i``
    uses ``jax.random.split(key, num_chains)[i]`` and equals :func:`anneal_chain` on
    that key. A NaN value of ``f`` counts as ``+inf`` (never accepted, never the best),
    so a chain started where ``f`` is undefined moves out at its first finite proposal.

    Temperature ``T_k``: ``temperature`` may be a callable schedule ``k -> T`` (any
    optax schedule), a constant, or ``None`` for geometric cooling from
    ``initial_temperature`` to ``final_temperature``. Proposal scale ``s_k``:
    ``step_size`` (relative to the box width) times ``sqrt(T_k / T_0)`` when
    ``anneal_step_size`` (in a quadratic basin ``c x^2`` the thermal spread of ``x``
    is ``sqrt(T / c)``, so proposals shrink with it and the chains can settle into a
    minimum to high accuracy), else constant.

    Args:
      f: objective for ONE point, ``f(x: [d]) -> scalar`` (e.g. a ``Landscape``).
      bounds: ``(lower, upper)``, each shape ``(d,)``, ``lower < upper``.
      key: PRNG key (or int seed).
      num_chains: number of parallel chains (>= 1).
      num_steps: proposals per chain (>= 1).
      temperature: schedule, constant or ``None`` (geometric).
      initial_temperature: ``T_0`` of the geometric schedule (> 0).
      final_temperature: ``T_{K-1}`` of the geometric schedule (> 0).
      step_size: proposal standard deviation relative to ``upper - lower`` (> 0).
      anneal_step_size: shrink proposals with ``sqrt(T_k / T_0)``.

    Returns:
      :class:`SearchResult`; ``num_evaluations = num_chains * (num_steps + 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> f = lambda x: jnp.sum(x**2)
      >>> r = simulated_annealing(f, (-jnp.ones(2), jnp.ones(2)), 0, num_steps=200)

    References:
      Kirkpatrick, Gelatt & Vecchi, 1983. Optimization by simulated annealing.
      Metropolis, Rosenbluth, Rosenbluth, Teller & Teller, 1953. Equation of state
      calculations by fast computing machines.
    """
    lower, upper = _check(
        bounds, num_steps, step_size, temperature, initial_temperature, final_temperature
    )
    check_population("num_chains", num_chains)
    spec = _schedule_spec(temperature, initial_temperature, final_temperature)
    static = (int(num_chains), int(num_steps), spec, float(step_size), bool(anneal_step_size))
    key = as_key("key", key)
    check_objective(f, lower)
    return cached_jit(_run, f, static)(lower, upper, key)


def anneal_chain(
    f: Callable[[jax.Array], jax.Array],
    bounds: tuple[Any, Any],
    key: jax.Array | int,
    *,
    num_steps: int = 1000,
    temperature: float | Callable[[jax.Array], jax.Array] | None = None,
    initial_temperature: float = 10.0,
    final_temperature: float = 1e-4,
    step_size: float = 0.1,
    anneal_step_size: bool = True,
) -> SearchResult:
    """One simulated-annealing chain (the serial building block of :func:`simulated_annealing`).

    Same arguments as :func:`simulated_annealing` without ``num_chains``; the chain
    starts from ``key`` directly. Returns a :class:`SearchResult` with
    ``member_values`` of shape ``[1]``.

    References:
      Kirkpatrick, Gelatt & Vecchi, 1983. Optimization by simulated annealing.
    """
    lower, upper = _check(
        bounds, num_steps, step_size, temperature, initial_temperature, final_temperature
    )
    spec = _schedule_spec(temperature, initial_temperature, final_temperature)
    static = (int(num_steps), spec, float(step_size), bool(anneal_step_size))
    key = as_key("key", key)
    check_objective(f, lower)
    return cached_jit(_single, f, static)(lower, upper, key)

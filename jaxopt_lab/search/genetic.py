"""Real-coded genetic algorithm: tournament selection, blend crossover, Gaussian mutation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import as_key, check_int, check_positive
from jaxopt_lab.search._common import (
    SearchResult,
    cached_jit,
    check_bounds,
    check_objective,
    check_population,
    check_rate,
    uniform_in_box,
)

__all__ = ["breed", "genetic_algorithm"]


def _mutation_scale(spec, generation, num_generations):
    if callable(spec):
        return spec(generation)
    if spec[0] == "constant":
        return spec[1]
    s0, s1 = spec[1], spec[2]
    denom = max(num_generations - 1, 1)
    return s0 * (s1 / s0) ** (generation / denom)


def breed(
    key: jax.Array,
    population: jax.Array,
    fitness: jax.Array,
    lower: jax.Array,
    upper: jax.Array,
    *,
    num_elites: int,
    tournament_size: int,
    crossover_rate: float,
    blend_alpha: float,
    mutation_rate: float,
    mutation_scale: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """One generation of reproduction (no evaluation): returns ``(elites, children)``.

    ``elites`` ``[E, d]`` are the ``num_elites`` fittest individuals (lowest values),
    copied unchanged; ``children`` ``[P - E, d]`` each come from two tournament winners
    (``tournament_size`` contestants drawn with replacement), BLX-``alpha`` crossover
    with probability ``crossover_rate`` (else a copy of the first parent), per-gene
    Gaussian mutation with probability ``mutation_rate`` and standard deviation
    ``mutation_scale * (upper - lower)``, clipped to the box. Pure in its inputs, so
    fitness can be computed by any means (the vmapped search, or a serial loop in the
    benchmark baseline).

    References:
      Holland, 1975. Adaptation in natural and artificial systems.
      Eshelman & Schaffer, 1993. Real-coded genetic algorithms and interval-schemata.
      Miller & Goldberg, 1995. Genetic algorithms, tournament selection, and the effects
      of noise.
    """
    p, d = population.shape
    n_children = p - num_elites
    k_unif, k_noise = jax.random.split(key)
    # one uniform draw for everything (each threefry call site costs compile time):
    # columns [2 T tournament picks | d blend weights | 1 crossover coin | d mutation coins]
    t = tournament_size
    u = jax.random.uniform(k_unif, (n_children, 2 * t + 2 * d + 1), population.dtype)
    order = jnp.argsort(fitness)
    elites = population[order[:num_elites]]
    contestants = jnp.minimum((u[:, : 2 * t] * p).astype(jnp.int32), p - 1)
    contestants = contestants.reshape(n_children, 2, t)
    best = jnp.argmin(fitness[contestants], axis=-1)[..., None]
    winners = jnp.take_along_axis(contestants, best, axis=-1)[..., 0]  # [n_children, 2]
    p1, p2 = population[winners[:, 0]], population[winners[:, 1]]
    w = -blend_alpha + (1.0 + 2.0 * blend_alpha) * u[:, 2 * t : 2 * t + d]
    blended = p1 + w * (p2 - p1)
    do_cx = u[:, 2 * t + d : 2 * t + d + 1] < crossover_rate
    children = jnp.where(do_cx, blended, p1)
    mutate = u[:, 2 * t + d + 1 :] < mutation_rate
    noise = jax.random.normal(k_noise, (n_children, d), population.dtype)
    children = children + jnp.where(mutate, mutation_scale * (upper - lower) * noise, 0.0)
    return elites, jnp.clip(children, lower, upper)


def _search(
    f,
    population_size,
    num_generations,
    num_elites,
    tournament_size,
    crossover_rate,
    blend_alpha,
    mutation_rate,
    scale_spec,
    lower,
    upper,
    key,
):
    k0, kloop = jax.random.split(key)
    pop = uniform_in_box(k0, lower, upper, (population_size,))
    fit0 = jax.vmap(f)(pop)
    fit0 = jnp.where(jnp.isnan(fit0), jnp.inf, fit0)
    i0 = jnp.argmin(fit0)

    def generation(carry, g):
        pop, fit, best_x, best_f, key = carry
        key, sub = jax.random.split(key)
        scale = _mutation_scale(scale_spec, g, num_generations)
        elites, children = breed(
            sub,
            pop,
            fit,
            lower,
            upper,
            num_elites=num_elites,
            tournament_size=tournament_size,
            crossover_rate=crossover_rate,
            blend_alpha=blend_alpha,
            mutation_rate=mutation_rate,
            mutation_scale=scale,
        )
        elite_fit = jnp.sort(fit)[:num_elites]
        child_fit = jax.vmap(f)(children)
        child_fit = jnp.where(jnp.isnan(child_fit), jnp.inf, child_fit)
        pop = jnp.concatenate([elites, children])
        fit = jnp.concatenate([elite_fit, child_fit])
        i = jnp.argmin(fit)
        better = fit[i] < best_f
        best_x = jnp.where(better, pop[i], best_x)
        best_f = jnp.where(better, fit[i], best_f)
        return (pop, fit, best_x, best_f, key), best_f

    carry = (pop, fit0, pop[i0], fit0[i0], kloop)
    (pop, fit, best_x, best_f, _), hist = jax.lax.scan(
        generation, carry, jnp.arange(num_generations)
    )
    n_children = population_size - num_elites
    evals = population_size + n_children * jnp.arange(num_generations + 1, dtype=jnp.int32)
    return SearchResult(
        best_x=best_x,
        best_value=best_f,
        history=jnp.concatenate([fit0[i0][None], hist]),
        num_evaluations=evals[-1],
        member_values=fit,
        evaluations_per_step=evals,
    )


def genetic_algorithm(
    f: Callable[[jax.Array], jax.Array],
    bounds: tuple[Any, Any],
    key: jax.Array | int,
    *,
    population_size: int = 64,
    num_generations: int = 100,
    num_elites: int = 2,
    tournament_size: int = 3,
    crossover_rate: float = 0.9,
    blend_alpha: float = 0.5,
    mutation_rate: float = 0.2,
    mutation_scale: float | Callable[[jax.Array], jax.Array] | None = None,
    initial_mutation_scale: float = 0.1,
    final_mutation_scale: float = 1e-4,
) -> SearchResult:
    """Minimise ``f`` over a box with a real-coded genetic algorithm, vmapped over the population.

    The initial population is uniform in the box. Each generation (a ``lax.scan``
    step inside one ``jit``) keeps the ``num_elites`` best individuals unchanged
    (elitism: the best value never gets worse, De Jong 1975) and fills the rest with
    children from :func:`breed`: tournament selection, BLX-``alpha`` blend crossover,
    per-gene Gaussian mutation. Children are evaluated with ``jax.vmap(f)``.

    Mutation scale (relative to the box width): ``mutation_scale`` as a constant or
    a callable ``generation -> scale`` (any optax schedule), or ``None`` for a
    geometric decay from ``initial_mutation_scale`` to ``final_mutation_scale``
    (broad exploration first, fine convergence at the end).

    Args:
      f: objective for ONE point, ``f(x: [d]) -> scalar``.
      bounds: ``(lower, upper)``, each shape ``(d,)``, ``lower < upper``.
      key: PRNG key (or int seed).
      population_size: individuals per generation (>= 2).
      num_generations: generations (>= 1).
      num_elites: elites copied unchanged (0 <= E < population_size).
      tournament_size: contestants per tournament (1 <= k <= population_size).
      crossover_rate: probability that a child is a blend of two parents.
      blend_alpha: BLX-alpha extension (>= 0; 0 = arithmetic crossover).
      mutation_rate: per-gene mutation probability.
      mutation_scale: constant, schedule or ``None`` (geometric decay).
      initial_mutation_scale: start of the geometric decay (> 0).
      final_mutation_scale: end of the geometric decay (> 0).

    Returns:
      :class:`SearchResult`; ``num_evaluations = P + G (P - E)`` (elites are not
      re-evaluated); ``member_values`` the final population's values.

    Example:
      >>> import jax.numpy as jnp
      >>> r = genetic_algorithm(lambda x: jnp.sum(x**2), (-jnp.ones(2), jnp.ones(2)), 0)

    References:
      Holland, 1975. Adaptation in natural and artificial systems.
      De Jong, 1975. An analysis of the behavior of a class of genetic adaptive systems.
      Eshelman & Schaffer, 1993. Real-coded genetic algorithms and interval-schemata.
    """
    lower, upper = check_bounds(bounds)
    population_size = check_population("population_size", population_size, minimum=2)
    num_generations = check_population("num_generations", num_generations)
    num_elites = check_int("num_elites", num_elites, minimum=0)
    if num_elites >= population_size:
        raise ValueError(
            f"num_elites must be < population_size={population_size}, got {num_elites}"
        )
    tournament_size = check_int("tournament_size", tournament_size, minimum=1)
    if tournament_size > population_size:
        raise ValueError(
            f"tournament_size must be <= population_size={population_size}, got {tournament_size}"
        )
    crossover_rate = check_rate("crossover_rate", crossover_rate)
    mutation_rate = check_rate("mutation_rate", mutation_rate)
    check_positive("blend_alpha", blend_alpha, allow_zero=True)
    if mutation_scale is None:
        check_positive("initial_mutation_scale", initial_mutation_scale)
        check_positive("final_mutation_scale", final_mutation_scale)
        spec = ("geometric", float(initial_mutation_scale), float(final_mutation_scale))
    elif callable(mutation_scale):
        spec = mutation_scale
    else:
        check_positive("mutation_scale", mutation_scale, allow_zero=True)
        spec = ("constant", float(mutation_scale))
    static = (
        population_size,
        num_generations,
        num_elites,
        tournament_size,
        crossover_rate,
        float(blend_alpha),
        mutation_rate,
        spec,
    )
    key = as_key("key", key)
    check_objective(f, lower)
    return cached_jit(_search, f, static)(jnp.asarray(lower), jnp.asarray(upper), key)

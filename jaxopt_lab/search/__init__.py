"""Global search over a box: random restarts, simulated annealing, genetic algorithm.

Each method is a pure function of a PRNG key that runs a vmapped population (or
set of chains / restarts) inside one ``jit``, with ``lax.scan`` over steps, and
returns a :class:`SearchResult` ``(best_x, best_value, history, num_evaluations,
member_values, evaluations_per_step)``. The objective ``f(x)`` takes ONE point of
shape ``(d,)``; ``bounds = (lower, upper)``.

Example:
  >>> from jaxopt_lab import landscapes, search
  >>> land = landscapes.get("rastrigin", dim=2)
  >>> res = search.simulated_annealing(land.fn, land.bounds, 0, num_chains=16)
"""

from jaxopt_lab.search._common import SearchResult
from jaxopt_lab.search.annealing import anneal_chain, simulated_annealing
from jaxopt_lab.search.genetic import breed, genetic_algorithm
from jaxopt_lab.search.restarts import local_search, random_restarts

__all__ = [
    "SearchResult",
    "anneal_chain",
    "breed",
    "genetic_algorithm",
    "local_search",
    "random_restarts",
    "simulated_annealing",
]

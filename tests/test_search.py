"""Tests for jaxopt_lab.search: global minima of Rastrigin / Ackley, vmap == serial, bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAST

from jaxopt_lab import search

# Tests compile with XLA's backend optimisation off: about 3x faster compiles on CPU for
# these tiny programs; the results are the same programs' results.
_jit = functools.partial(jax.jit, compiler_options=FAST)


def _rastrigin(x):
    return jnp.sum(10.0 + x**2 - 10.0 * jnp.cos(2.0 * jnp.pi * x))


def _ackley(x):
    d = x.shape[0]
    r2 = jnp.sum(x**2) / d
    pos = r2 > 0
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)
    return -20.0 * jnp.exp(-0.2 * r) - jnp.exp(jnp.sum(jnp.cos(2 * jnp.pi * x)) / d) + 20.0 + jnp.e


def _landscape(name):
    """(fn, bounds) from the registry when present, else the inline definitions above."""
    try:
        from jaxopt_lab import landscapes

        land = landscapes.get(name, dim=2)
        return land.fn, land.bounds
    except (ImportError, AttributeError):
        fn = {"rastrigin": _rastrigin, "ackley": _ackley}[name]
        half = {"rastrigin": 5.12, "ackley": 32.768}[name]
        return fn, (np.full(2, -half), np.full(2, half))


TOL = 1e-2
NUM_SEEDS = 8
# Budgets (evaluations per run) measured on 32 seeds before fixing them here:
#   simulated_annealing 32 chains x 1000 steps = 32,032 evals: 32/32 on both landscapes
#   genetic_algorithm   pop 128 x 40 gen        =  5,168 evals: 31/32 Rastrigin, 32/32 Ackley
#   random_restarts     512 x 60 local steps    = 31,232 evals: 31/32 on both
# A global method is stochastic: we require >= 7/8 seeds (not 8/8) so that one unlucky
# seed (e.g. the GA converging prematurely into the (1, 0) basin of Rastrigin) does not
# fail the suite, while a broken method (success rate well below 90%) still does.
METHODS = {
    "simulated_annealing": lambda f, b, k: search.simulated_annealing(
        f, b, k, num_chains=32, num_steps=1000
    ),
    "genetic_algorithm": lambda f, b, k: search.genetic_algorithm(
        f, b, k, population_size=128, num_generations=40
    ),
    "random_restarts": lambda f, b, k: search.random_restarts(
        f, b, k, num_restarts=512, local_steps=60
    ),
}


@pytest.mark.parametrize("landscape", ["rastrigin", "ackley"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_reaches_global_minimum_for_most_seeds(method, landscape):
    fn, bounds = _landscape(landscape)
    keys = jax.random.split(jax.random.key(2024), NUM_SEEDS)
    run = METHODS[method]
    res = _jit(jax.vmap(lambda k: run(fn, bounds, k)))(keys)
    best = np.asarray(res.best_value)
    successes = int(np.sum(np.abs(best - 0.0) < TOL))
    assert successes >= 7, f"{method} on {landscape}: {successes}/8, best values {best}"
    # oracles: best_value is f(best_x); best-so-far history is non-increasing and ends there
    np.testing.assert_allclose(np.asarray(jax.vmap(fn)(res.best_x)), best, rtol=1e-5, atol=1e-6)
    hist = np.asarray(res.history)
    assert np.all(np.diff(hist, axis=1) <= 0)
    np.testing.assert_allclose(hist[:, -1], best)
    lower, upper = (np.asarray(b) for b in bounds)
    assert np.all(np.asarray(res.best_x) >= lower) and np.all(np.asarray(res.best_x) <= upper)


def test_evaluation_counts():
    f, bounds = _rastrigin, (np.full(2, -5.12), np.full(2, 5.12))

    @_jit
    def run_all(key):
        ga = search.genetic_algorithm(
            f, bounds, key, population_size=10, num_generations=3, num_elites=2
        )
        sa = search.simulated_annealing(f, bounds, key, num_chains=3, num_steps=4)
        rr = search.random_restarts(f, bounds, key, num_restarts=3, local_steps=4)
        return ga, sa, rr

    ga, sa, rr = run_all(jax.random.key(0))
    assert int(ga.num_evaluations) == 10 + 3 * 8  # elites are not re-evaluated
    np.testing.assert_array_equal(np.asarray(ga.evaluations_per_step), [10, 18, 26, 34])
    assert int(sa.num_evaluations) == 3 * 5 and sa.history.shape == (5,)
    assert int(rr.num_evaluations) == 3 * 5 and rr.member_values.shape == (3,)


def test_vmapped_chains_equal_serial_loop():
    f, bounds = _rastrigin, (np.full(2, -5.12), np.full(2, 5.12))
    key = jax.random.key(7)
    kw = dict(num_steps=50, initial_temperature=5.0, step_size=0.05)
    res = _jit(lambda k: search.simulated_annealing(f, bounds, k, num_chains=4, **kw))(key)
    chain = _jit(lambda k: search.anneal_chain(f, bounds, k, **kw))
    serial = [chain(k) for k in jax.random.split(key, 4)]
    np.testing.assert_allclose(
        np.asarray(res.member_values), [float(s.best_value) for s in serial], rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(res.history),
        np.min([np.asarray(s.history) for s in serial], axis=0),
        rtol=1e-6,
    )
    i = int(np.argmin([float(s.best_value) for s in serial]))
    np.testing.assert_allclose(np.asarray(res.best_x), np.asarray(serial[i].best_x), rtol=1e-6)
    # restarts: restart i of the vmapped search is local_search on key i
    rr = _jit(lambda k: search.random_restarts(f, bounds, k, num_restarts=3, local_steps=5))(key)
    one = _jit(lambda k: search.local_search(f, bounds, k, local_steps=5))(
        jax.random.split(key, 3)[1]
    )
    np.testing.assert_allclose(float(rr.member_values[1]), float(one.best_value), rtol=1e-6)


_B = (np.zeros(2), np.ones(2))


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: search.simulated_annealing(_rastrigin, (np.zeros(2), np.ones(3)), 0), "bounds"),
        (lambda: search.genetic_algorithm(_rastrigin, (np.ones(2), np.ones(2)), 0), "bounds"),
        (lambda: search.random_restarts(_rastrigin, (np.ones(2), np.zeros(2)), 0), "bounds"),
        (
            lambda: search.random_restarts(_rastrigin, (np.zeros((2, 2)), np.ones((2, 2))), 0),
            "bounds",
        ),
        (lambda: search.random_restarts(_rastrigin, np.zeros(2), 0), "bounds"),
        (lambda: search.genetic_algorithm(_rastrigin, _B, 0, population_size=0), "population_size"),
        (lambda: search.genetic_algorithm(_rastrigin, _B, 0, num_elites=64), "num_elites"),
        (lambda: search.genetic_algorithm(_rastrigin, _B, 0, mutation_rate=1.5), "mutation_rate"),
        (lambda: search.genetic_algorithm(_rastrigin, _B, 0, tournament_size=0), "tournament_size"),
        (lambda: search.simulated_annealing(_rastrigin, _B, 0, num_chains=0), "num_chains"),
        (lambda: search.simulated_annealing(_rastrigin, _B, 0, step_size=-1.0), "step_size"),
        (
            lambda: search.simulated_annealing(_rastrigin, _B, 0, initial_temperature=0.0),
            "initial_temperature",
        ),
        (lambda: search.random_restarts(_rastrigin, _B, 0, num_restarts=-1), "num_restarts"),
        (lambda: search.random_restarts(_rastrigin, _B, 0, local_steps=0), "local_steps"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


@pytest.mark.parametrize(
    "method", [search.random_restarts, search.simulated_annealing, search.genetic_algorithm]
)
def test_objective_checked_before_compiling(method):
    with pytest.raises(TypeError, match="f must be a callable"):
        method(3.0, _B, 0)
    with pytest.raises(ValueError, match=r"f must return a scalar .*\(2,\).*\(2,\)"):
        method(lambda x: x**2, _B, 0)


def _never_called(x):
    raise AssertionError("f must not be traced when the key is bad")


@pytest.mark.parametrize(
    "method",
    [
        search.random_restarts,
        search.local_search,
        search.simulated_annealing,
        search.anneal_chain,
        search.genetic_algorithm,
    ],
)
@pytest.mark.parametrize("key", ["a", None, 0.5, jnp.zeros(3)])
def test_bad_key_raises_type_error_naming_key_before_tracing_f(method, key):
    with pytest.raises(TypeError, match="^key must be a jax.random.key"):
        method(_never_called, _B, key)


def test_annealing_treats_nan_values_as_worst():
    """NaN on half of the box (x0 > 0.5): the chain, started there or not, still finds the
    minimum of sum((x - 0.25)^2) at (0.25, 0.25) in the valid half, never a NaN."""

    def f(x):
        return jnp.where(x[0] > 0.5, jnp.nan, jnp.sum((x - 0.25) ** 2))

    res = _jit(
        jax.vmap(lambda k: search.simulated_annealing(f, _B, k, num_chains=4, num_steps=200))
    )(jax.random.split(jax.random.key(0), 4))
    assert np.all(np.isfinite(res.best_value)) and np.all(np.isfinite(res.history))
    assert np.all(np.asarray(res.best_value) < 5e-2)
    assert np.all(np.asarray(res.best_x)[:, 0] <= 0.5)

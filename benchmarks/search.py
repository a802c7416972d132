"""Benchmark the vmapped global-search methods on Rastrigin (2-D and 10-D).

For each method (random restarts, simulated annealing, genetic algorithm):

* success rate over seeds (``best_value < tol``, global minimum 0) and the median
  number of evaluations until the best-so-far value first fell below ``tol``
  (successful seeds only);
* wall time of the vmapped population (one jit) against a serial Python loop over
  the population members in the same process: restarts and chains one by one
  (``local_search`` / ``anneal_chain``, each a jitted ``lax.scan``), and for the genetic
  algorithm a jitted ``breed`` per generation with the fitness evaluated member by
  member. Compile time (first call minus a warm call) is reported apart from run time.

Usage:
  python benchmarks/search.py            # full
  python benchmarks/search.py --quick    # smoke run (seconds)

Writes ``benchmarks/results/search.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import search
from jaxopt_lab.search.genetic import breed


def _landscape(dim):
    try:
        from jaxopt_lab import landscapes

        land = landscapes.get("rastrigin", dim=dim)
        return land.fn, land.bounds
    except (ImportError, AttributeError):

        def fn(x):
            return jnp.sum(10.0 + x**2 - 10.0 * jnp.cos(2.0 * jnp.pi * x))

        return fn, (np.full(dim, -5.12), np.full(dim, 5.12))


def _configs(dim, quick):
    """Budget per method and dimension (population, steps)."""
    if quick:
        return {
            "random_restarts": dict(num_restarts=64, local_steps=20),
            "simulated_annealing": dict(num_chains=8, num_steps=100),
            "genetic_algorithm": dict(population_size=32, num_generations=10),
        }
    if dim <= 2:
        return {
            "random_restarts": dict(num_restarts=512, local_steps=60),
            "simulated_annealing": dict(num_chains=32, num_steps=1000),
            "genetic_algorithm": dict(population_size=128, num_generations=40),
        }
    return {
        "random_restarts": dict(num_restarts=4096, local_steps=100),
        "simulated_annealing": dict(num_chains=64, num_steps=5000),
        "genetic_algorithm": dict(population_size=512, num_generations=300),
    }


def _timed(fn, *args):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def _serial(method, fn, bounds, key, cfg):
    """Serial Python loop over the population; returns best value (for a sanity check)."""
    if method == "random_restarts":
        keys = jax.random.split(key, cfg["num_restarts"])
        vals = [
            search.local_search(fn, bounds, k, local_steps=cfg["local_steps"]).best_value
            for k in keys
        ]
        return float(jnp.min(jnp.stack(vals)))
    if method == "simulated_annealing":
        keys = jax.random.split(key, cfg["num_chains"])
        vals = [
            search.anneal_chain(fn, bounds, k, num_steps=cfg["num_steps"]).best_value for k in keys
        ]
        return float(jnp.min(jnp.stack(vals)))
    # genetic algorithm: jitted breeding, fitness member by member (default settings)
    p, g = cfg["population_size"], cfg["num_generations"]
    lower, upper = (jnp.asarray(b, jnp.float32) for b in bounds)
    f_jit = _jitted(fn)
    breed_jit = _breed_jit()
    k0, key = jax.random.split(key)
    pop = lower + jax.random.uniform(k0, (p, lower.shape[0])) * (upper - lower)
    fit = jnp.stack([f_jit(x) for x in pop])
    for gen in range(g):
        key, sub = jax.random.split(key)
        scale = 0.1 * (1e-4 / 0.1) ** (gen / max(g - 1, 1))
        elites, children = breed_jit(sub, pop, fit, lower, upper, jnp.float32(scale))
        child_fit = jnp.stack([f_jit(x) for x in children])
        pop = jnp.concatenate([elites, children])
        fit = jnp.concatenate([jnp.sort(fit)[:2], child_fit])
    return float(jnp.min(fit))


_JITS: dict = {}


def _jitted(fn):
    return _JITS.setdefault(fn, jax.jit(fn))


def _breed_jit():
    return _JITS.setdefault(
        "breed",
        jax.jit(
            lambda k, pop, fit, lo, up, s: breed(
                k,
                pop,
                fit,
                lo,
                up,
                num_elites=2,
                tournament_size=3,
                crossover_rate=0.9,
                blend_alpha=0.5,
                mutation_rate=0.2,
                mutation_scale=s,
            )
        ),
    )


def _run_method(method, fn, bounds, key, cfg):
    return getattr(search, method)(fn, bounds, key, **cfg)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny budgets")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for success rates")
    parser.add_argument("--tol", type=float, default=1e-2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "search.json"))
    args = parser.parse_args(argv)
    num_seeds = args.seeds or (2 if args.quick else 8)
    dims = (2,) if args.quick else (2, 10)
    rows = []
    for dim in dims:
        fn, bounds = _landscape(dim)
        for method, cfg in _configs(dim, args.quick).items():
            # success over seeds, all seeds in one vmapped program
            keys = jax.random.split(jax.random.key(100 + dim), num_seeds)
            run_one = functools.partial(_run_method, method, fn, bounds, cfg=cfg)
            batched = jax.jit(jax.vmap(run_one))
            res, _ = _timed(batched, keys)
            best = np.asarray(res.best_value)
            hist = np.asarray(res.history)
            evals = np.asarray(res.evaluations_per_step)[0]
            ok = best < args.tol
            to_success = [int(evals[np.argmax(h < args.tol)]) for h in hist[ok]]
            # timing: vmapped population vs serial loop over members, one seed
            key = jax.random.key(dim)
            res1, t_first = _timed(run_one, key)
            _, t_vmap = _timed(run_one, key)
            t0 = time.perf_counter()
            _serial(method, fn, bounds, key, cfg)
            t_serial_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            serial_best = _serial(method, fn, bounds, key, cfg)
            t_serial = time.perf_counter() - t0
            row = dict(
                landscape=f"rastrigin-{dim}d",
                method=method,
                config=cfg,
                evaluations_per_run=int(res1.num_evaluations),
                seeds=num_seeds,
                successes=int(ok.sum()),
                success_rate=float(ok.mean()),
                median_evals_to_success=(float(np.median(to_success)) if to_success else None),
                median_best_value=float(np.median(best)),
                vmapped_compile_s=max(t_first - t_vmap, 0.0),
                vmapped_run_s=t_vmap,
                serial_compile_s=max(t_serial_first - t_serial, 0.0),
                serial_run_s=t_serial,
                speedup_vs_serial=t_serial / t_vmap if t_vmap > 0 else None,
                vmapped_best=float(res1.best_value),
                serial_best=serial_best,
            )
            rows.append(row)
            print(
                f"{row['landscape']:>14} {method:>20} evals/run {row['evaluations_per_run']:>8} "
                f"success {row['successes']}/{num_seeds} "
                f"evals-to-success {row['median_evals_to_success']} | "
                f"vmap run {t_vmap * 1e3:8.1f} ms (compile {row['vmapped_compile_s']:.2f} s) "
                f"serial run {t_serial * 1e3:9.1f} ms (compile {row['serial_compile_s']:.2f} s) "
                f"x{row['speedup_vs_serial']:.1f}",
                flush=True,
            )
    meta = dict(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        quick=args.quick,
        tol=args.tol,
        jax=jax.__version__,
        device=str(jax.devices()[0].device_kind),
        backend=jax.default_backend(),
        platform=platform.platform(),
        note="serial = Python loop over population members in the same process; compile "
        "time = first call minus a warm call.",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()

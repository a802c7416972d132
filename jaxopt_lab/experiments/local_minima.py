"""Local minima on the 1-D teaching curve ``f(x) = sin(3x) + 0.5 x^2``, and four remedies.

The curve has three minima in ``[-3, 3]``: the global one at ``x* = -0.4710``
(``f = -0.8767``) and local ones at ``-2.3228`` (``f = 2.0649``) and ``1.4080``
(``f = 0.1081``), separated by maxima at ``-1.7829`` (``f = 2.3937``) and ``0.5895``
(``f = 1.1543``) (the catalog of :func:`jaxopt_lab.landscapes.get`).

Methods, each vmapped over seeds in the sweep core (seed ``i`` gets ``fold_in(key(seed),
i)``; gradient methods run in :func:`jaxopt_lab.compare.run` from ``x0 + start_jitter *
N(0, 1)``, the search methods in :func:`jaxopt_lab.compare.sweep`):

* ``gd``: plain gradient descent. From ``x0 = -2`` it rolls into the local minimum at
  ``-2.32`` and stays there; the health monitor's plateau detector fires (the loss
  ``f - f_min`` stops improving while still far above 0).
* ``momentum``: heavy-ball SGD (Polyak 1964). Whether momentum crosses a barrier is an
  energy question: a heavy ball started at rest at ``x0`` can only pass a maximum lower
  than ``f(x0)``. From ``x0 = -2``, ``f(-2) = 2.279`` is BELOW the barrier ``2.394`` at
  ``-1.78``, so momentum stalls in the local minimum too (the tutorial claim that
  momentum escapes from -2 does not hold for stable step sizes; we report what happens).
  From ``x0 = +2``, ``f(2) = 1.721`` is above the barrier ``1.154`` at ``0.59`` and
  heavy momentum carries the iterate over it into the global minimum.
* ``restarts``: :func:`jaxopt_lab.search.random_restarts` (uniform starts in the bounds,
  a short local search from each): reaches the global minimum.
* ``annealing``: :func:`jaxopt_lab.search.simulated_annealing` (Metropolis chains with a
  cooling temperature): reaches the global minimum.
* ``genetic``: :func:`jaxopt_lab.search.genetic_algorithm` (a real-coded GA: elitism,
  tournament selection, blend crossover, decaying Gaussian mutation; Holland 1975).

A run is a success when its final value is within ``success_tol`` of ``f_min``.

References:
  Polyak, 1964. Some methods of speeding up the convergence of iteration methods.
  Kirkpatrick, Gelatt & Vecchi, 1983. Optimization by simulated annealing.
  Holland, 1975. Adaptation in Natural and Artificial Systems.
  Goodfellow, Bengio & Courville, 2016. Deep Learning, section 8.2 (local minima).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import compare, health, landscapes, search
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common

LANDSCAPE = "sin_quadratic_1d"
GRADIENT_METHODS: tuple[str, ...] = ("gd", "momentum")
SEARCH_METHODS: tuple[str, ...] = ("restarts", "annealing", "genetic")
METHODS: tuple[str, ...] = GRADIENT_METHODS + SEARCH_METHODS


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the local-minima experiment.

    Attributes:
      starts: starting points ``x0`` of the gradient methods (-2 is the tutorial's).
      num_seeds: runs per method and start (vmapped).
      seed: base seed (seed ``i`` is ``fold_in(key(seed), i)`` for every method).
      start_jitter: standard deviation of the per-seed perturbation of ``x0``.
      steps: gradient steps.
      gd_learning_rate: step size of plain GD.
      momentum_learning_rate: step size of heavy-ball momentum.
      momentum: heavy-ball coefficient.
      num_restarts: starts per random-restarts run.
      restart_steps: local steps per restart.
      anneal_chains: chains per annealing run.
      anneal_steps: proposals per chain.
      ga_population: individuals per genetic-algorithm generation (>= 2).
      ga_generations: generations of a genetic-algorithm run.
      success_tol: success if ``f(final) - f_min <= success_tol``.
      plateau_window: window of the plateau detector (steps).
    """

    starts: tuple[float, ...] = (-2.0, 2.0)
    num_seeds: int = 32
    seed: int = 0
    start_jitter: float = 0.05
    steps: int = 300
    gd_learning_rate: float = 0.05
    momentum_learning_rate: float = 0.1
    momentum: float = 0.95
    num_restarts: int = 16
    restart_steps: int = 100
    anneal_chains: int = 4
    anneal_steps: int = 400
    ga_population: int = 16
    ga_generations: int = 50
    success_tol: float = 1e-2
    plateau_window: int = 30

    def __post_init__(self):
        if not isinstance(self.starts, tuple) or not self.starts:
            raise ValueError(f"starts must be a non-empty tuple of floats, got {self.starts!r}")
        lo, hi = landscapes.get(LANDSCAPE).bounds
        for x0 in self.starts:
            if not (isinstance(x0, int | float) and lo[0] <= x0 <= hi[0]):
                raise ValueError(f"starts must lie in [{lo[0]}, {hi[0]}], got {x0!r}")
        for name in (
            "num_seeds",
            "steps",
            "num_restarts",
            "restart_steps",
            "anneal_chains",
            "anneal_steps",
            "ga_generations",
        ):
            check_int(name, getattr(self, name))
        check_int("ga_population", self.ga_population, minimum=2)
        check_int("plateau_window", self.plateau_window, minimum=2)
        check_int("seed", self.seed, minimum=0)
        check_positive("start_jitter", self.start_jitter, allow_zero=True)
        for name in ("gd_learning_rate", "momentum_learning_rate", "success_tol"):
            check_positive(name, getattr(self, name))
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds on a laptop CPU: 32 seeds, 300 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """256 seeds, 1000 steps, larger search budgets."""
        return cls(num_seeds=256, steps=1000, num_restarts=32, anneal_chains=8, anneal_steps=1000,
                   ga_population=32, ga_generations=100)


def _gradient_runs(c: Config, land: landscapes.Landscape, x0: float) -> compare.Results:
    """GD and momentum from ``x0`` over seeds (``compare.run``, every iterate recorded)."""
    return compare.run(
        land,
        {"gd": optax.sgd(c.gd_learning_rate),
         "momentum": optax.sgd(c.momentum_learning_rate, momentum=c.momentum)},
        num_seeds=c.num_seeds,
        steps=c.steps,
        key=jax.random.key(c.seed),
        init=("gaussian", [x0], max(c.start_jitter, 1e-12)),
        target=c.success_tol,
        record_every=1,
    )


def _plateau_steps(c: Config, losses: np.ndarray) -> np.ndarray:
    """First step the health monitor's plateau detector fires on each recorded loss curve
    (``[S, T]`` -> ``[S]``, -1: never). ``compare.run`` has no health monitor, so the
    monitor is replayed over the recorded losses (no training happens here)."""
    mon = health.monitor(
        health.Thresholds(plateau_window=c.plateau_window, plateau_floor=c.success_tol))

    def one(curve):
        def body(state, inp):
            t, loss = inp
            state, _ = mon.update(state, t, loss=loss)
            return state, None

        state, _ = jax.lax.scan(body, mon.init(), (jnp.arange(curve.shape[0]), curve))
        return state.first_step.plateau

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(losses, jnp.float32)))


def _search_trial(c: Config, land: landscapes.Landscape, method: str) -> compare.Trial:
    """One seed of a global search as a sweep-core trial (the optimizer slot is unused)."""
    bounds = land.bounds

    def run_one(opt, key, i, row, inputs):
        del opt, i, row, inputs
        if method == "restarts":
            r = search.random_restarts(land.fn, bounds, key, num_restarts=c.num_restarts,
                                       local_steps=c.restart_steps)
        elif method == "annealing":
            r = search.simulated_annealing(land.fn, bounds, key, num_chains=c.anneal_chains,
                                           num_steps=c.anneal_steps)
        else:
            r = search.genetic_algorithm(land.fn, bounds, key, population_size=c.ga_population,
                                         num_generations=c.ga_generations)
        return {"best_x": r.best_x[0], "best_value": r.best_value,
                "evaluations": r.num_evaluations}

    static = (method, c.num_restarts, c.restart_steps, c.anneal_chains, c.anneal_steps,
              c.ga_population, c.ga_generations)
    return compare.Trial(run_one, static=static)


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Run every method from every start and summarize; write a run directory if asked.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional run directory (:meth:`jaxopt_lab.compare.Results.save`):
        ``records.csv``, ``metrics.npz``, ``curves.npz``, ``meta.json``, ``outcomes.png``
        (the curve with final points) and ``loss_curves.png`` (plateau flags marked).

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``): variants
      ``"<method>@<x0>"`` for the gradient methods (hyperparameter ``start`` = ``x0``)
      and ``"restarts"``, ``"annealing"``, ``"genetic"``; per seed ``metrics[v]``: ``final_x``,
      ``final_value``, ``success`` (``final_value - f_min <= success_tol``),
      ``plateau_step`` (-1: never / search methods), ``evaluations``, ``nonfinite``;
      ``curves[v]["loss"]`` ``[1, S, steps + 1]`` = ``f(x_t) - f_min`` for ``t = 0 ..
      steps`` (gradient methods); ``summary``: ``{variant: {success (rate + Wilson CI),
      median_final_value, median_final_x, plateau (rate + CI, None for search),
      median_plateau_step, evaluations}, "nonfinite_seeds": {variant: [seeds]}}``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a local_minima.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    land = landscapes.get(LANDSCAPE)
    f_min = float(land.f_min)
    compile_s = run_s = 0.0
    variants: list[str] = []
    metrics, curves, summary, hparams = {}, {}, {}, {}
    final_points = {}

    for x0 in c.starts:
        res = _gradient_runs(c, land, x0)
        compile_s += res.meta["compile_seconds"]
        run_s += res.meta["run_seconds"]
        for method in GRADIENT_METHODS:
            traj = np.asarray(res.trajectories[method])[0, :, :, 0]  # [S, steps + 1]
            losses = np.asarray(jax.vmap(jax.vmap(land.fn))(traj[..., None])) - f_min
            first_plateau = _plateau_steps(c, losses)
            final_x = traj[:, -1]
            final_value = np.asarray(res.metrics[method]["final_value"])[0]
            success = final_value - f_min <= c.success_tol
            name = f"{method}@{x0:g}"
            variants.append(name)
            hparams[name] = [{"start": float(x0)}]
            final_points[name] = final_x
            metrics[name] = {
                "final_x": final_x,
                "final_value": final_value,
                "success": success,
                "plateau_step": first_plateau,
                "evaluations": np.full(c.num_seeds, c.steps, np.int32),
                "nonfinite": np.asarray(res.metrics[method]["nonfinite"])[0],
            }
            curves[name] = {"loss": losses}
            summary[name] = {
                "success": _common.rate(success),
                "median_final_value": float(np.median(final_value)),
                "median_final_x": float(np.median(final_x)),
                "plateau": _common.rate(first_plateau >= 0),
                "median_plateau_step": _common.median_fired(first_plateau),
                "evaluations": float(c.steps),
            }

    for method in SEARCH_METHODS:
        sw = compare.sweep(_search_trial(c, land, method), {method: optax.identity()},
                           num_seeds=c.num_seeds, key=jax.random.key(c.seed))
        compile_s += sw.compile_seconds
        run_s += sw.run_seconds
        out = {k: np.asarray(v)[0] for k, v in sw.outputs[method].items()}
        best_f = out["best_value"].astype(np.float64)
        success = best_f - f_min <= c.success_tol
        variants.append(method)
        hparams[method] = [{}]
        metrics[method] = {
            "final_x": out["best_x"],
            "final_value": best_f,
            "success": success,
            "plateau_step": np.full(c.num_seeds, -1, np.int32),
            "evaluations": out["evaluations"],
            "nonfinite": ~np.isfinite(best_f),
        }
        summary[method] = {
            "success": _common.rate(success),
            "median_final_value": float(np.median(best_f)),
            "median_final_x": float(np.median(out["best_x"])),
            "plateau": None,
            "median_plateau_step": -1.0,
            "evaluations": float(np.median(out["evaluations"])),
        }

    result = _common.results(
        c, variants, metrics, curves, summary, hparams=hparams,
        compile_seconds=compile_s, run_seconds=run_s,
        total_seconds=time.perf_counter() - t_start, experiment="local_minima",
    )
    if out_dir is not None:
        result.save(out_dir, figures=_figures(land, final_points, curves, metrics))
    return result


def _figures(land, final_points, curves, metrics):
    from jaxopt_lab import plot

    # final points only: [S, 1, 1] (one "step" per seed), drawn on the curve
    trajectories = {k: x[:, None, None] for k, x in final_points.items()}
    outcomes = plot.contour(
        land,
        trajectories,
        max_per_optimizer=None,
        mark_critical=False,
        title="sin(3x) + 0.5x^2: where each method ends",
    )
    loss_fig = plot.loss_curves(
        {k: v["loss"] + 1e-12 for k, v in curves.items()},
        flagged={k: metrics[k]["plateau_step"] for k in curves},
        flag_name="plateau",
        ylabel="f(x) - f_min",
        title="Gradient methods: loss gap, plateau detector marked",
    )
    return {"outcomes": outcomes, "loss_curves": loss_fig}

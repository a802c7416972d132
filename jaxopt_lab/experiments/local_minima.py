"""Local minima on the 1-D teaching curve ``f(x) = sin(3x) + 0.5 x^2``, and four remedies.

The curve has three minima in ``[-3, 3]``: the global one at ``x* = -0.4710``
(``f = -0.8767``) and local ones at ``-2.3228`` (``f = 2.0649``) and ``1.4080``
(``f = 0.1081``), separated by maxima at ``-1.7829`` (``f = 2.3937``) and ``0.5895``
(``f = 1.1543``) (the catalog of :func:`jaxopt_lab.landscapes.get`).

Methods, each vmapped over seeds (seed ``s`` starts at ``x0 + start_jitter * N(0, 1)``):

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

A run is a success when its final value is within ``success_tol`` of ``f_min``.

References:
  Polyak, 1964. Some methods of speeding up the convergence of iteration methods.
  Kirkpatrick, Gelatt & Vecchi, 1983. Optimization by simulated annealing.
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

from jaxopt_lab import health, landscapes, search
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common

LANDSCAPE = "sin_quadratic_1d"
GRADIENT_METHODS: tuple[str, ...] = ("gd", "momentum")
SEARCH_METHODS: tuple[str, ...] = ("restarts", "annealing")
METHODS: tuple[str, ...] = GRADIENT_METHODS + SEARCH_METHODS


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the local-minima experiment.

    Attributes:
      starts: starting points ``x0`` of the gradient methods (-2 is the tutorial's).
      num_seeds: runs per method and start (vmapped).
      seed: base seed.
      start_jitter: standard deviation of the per-seed perturbation of ``x0``.
      steps: gradient steps.
      gd_learning_rate: step size of plain GD.
      momentum_learning_rate: step size of heavy-ball momentum.
      momentum: heavy-ball coefficient.
      num_restarts: starts per random-restarts run.
      restart_steps: local steps per restart.
      anneal_chains: chains per annealing run.
      anneal_steps: proposals per chain.
      success_tol: success if ``f(final) - f_min <= success_tol``.
      plateau_window: window of the plateau detector (steps).
    """

    starts: tuple[float, ...] = (-2.0, 2.0)
    num_seeds: int = 8
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
        ):
            check_int(name, getattr(self, name))
        check_int("plateau_window", self.plateau_window, minimum=2)
        check_int("seed", self.seed, minimum=0)
        check_positive("start_jitter", self.start_jitter, allow_zero=True)
        for name in ("gd_learning_rate", "momentum_learning_rate", "success_tol"):
            check_positive(name, getattr(self, name))
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds on a laptop CPU: 8 seeds, 300 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """64 seeds, 1000 steps, larger search budgets."""
        return cls(num_seeds=64, steps=1000, num_restarts=32, anneal_chains=8, anneal_steps=1000)


def _gradient_runs(c: Config, land: landscapes.Landscape, x0: float):
    """GD and momentum from ``x0`` over seeds (one program): TrainResult with V=2."""
    f, f_min = land.fn, land.f_min

    def init(key):
        return jnp.full((1,), x0, jnp.float32) + c.start_jitter * jax.random.normal(key, (1,))

    def loss(x, _batch):  # shifted so that the loss is >= 0 and 0 at the global minimum
        return f(x) - f_min

    th = health.Thresholds(plateau_window=c.plateau_window, plateau_floor=c.success_tol)
    optimizers = (
        optax.sgd(c.gd_learning_rate),
        optax.sgd(c.momentum_learning_rate, momentum=c.momentum),
    )
    return _common.train_over_seeds(
        init,
        loss,
        optimizers,
        keys=_common.seed_keys(c.seed, c.num_seeds),
        steps=c.steps,
        batch_fn=lambda data, key, step: None,
        thresholds=th,
    )


def _search_runs(c: Config, land: landscapes.Landscape):
    """Random restarts and annealing, one run per seed (vmapped over seed keys)."""
    keys = jax.random.split(jax.random.key(c.seed + 1), c.num_seeds)
    bounds = land.bounds
    restarts = jax.vmap(
        lambda k: search.random_restarts(
            land.fn, bounds, k, num_restarts=c.num_restarts, local_steps=c.restart_steps
        )
    )(keys)
    annealing = jax.vmap(
        lambda k: search.simulated_annealing(
            land.fn, bounds, k, num_chains=c.anneal_chains, num_steps=c.anneal_steps
        )
    )(keys)
    return {"restarts": restarts, "annealing": annealing}


def run(config: Config, out_dir: Any = None) -> dict[str, Any]:
    """Run every method from every start and summarize; write a run directory if asked.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional directory for ``records.csv``, ``meta.json``, ``outcomes.png``
        (the curve with final points) and ``loss_curves.png`` (plateau flags marked).

    Returns:
      dict with ``"summary"``: ``{"<method>@<x0>": {success_rate, median_final_value,
      median_final_x, plateau_fraction, median_plateau_step, evaluations}}`` for the
      gradient methods and ``{"<method>": {...}}`` for the search methods;
      ``"records"`` (one per method, start and seed); ``"arrays"`` (``losses``
      ``[starts, 2, S, steps]``, ``final_x`` ``[starts, 2, S]``); ``"seconds"``;
      ``"out_dir"``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a local_minima.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    land = landscapes.get(LANDSCAPE)
    f_min = float(land.f_min)
    compile_s = run_s = 0.0
    summary: dict[str, dict[str, float]] = {}
    records: list[dict[str, Any]] = []
    all_losses, all_final_x, plateau_first = [], [], {}

    for x0 in c.starts:
        res = _gradient_runs(c, land, x0)
        compile_s += res.compile_seconds
        run_s += res.run_seconds
        losses = res.losses  # [2, S, T], f - f_min
        final_x = np.asarray(res.params)[..., 0]  # [2, S]
        first_plateau = res.first_step("plateau")  # [2, S]
        all_losses.append(losses)
        all_final_x.append(final_x)
        for v, method in enumerate(GRADIENT_METHODS):
            final_gap = np.asarray(jax.vmap(land.fn)(final_x[v][:, None])) - f_min
            success = final_gap <= c.success_tol
            name = f"{method}@{x0:g}"
            plateau_first[name] = first_plateau[v]
            summary[name] = {
                "success_rate": float(success.mean()),
                "median_final_value": float(np.median(final_gap + f_min)),
                "median_final_x": float(np.median(final_x[v])),
                "plateau_fraction": float((first_plateau[v] >= 0).mean()),
                "median_plateau_step": _common.median_fired(first_plateau[v]),
                "evaluations": float(c.steps),
            }
            for s in range(c.num_seeds):
                records.append(
                    {
                        "method": method,
                        "start": x0,
                        "seed": s,
                        "final_x": float(final_x[v, s]),
                        "final_value": float(final_gap[s] + f_min),
                        "success": bool(success[s]),
                        "plateau_step": int(first_plateau[v, s]),
                        "evaluations": c.steps,
                    }
                )

    t0 = time.perf_counter()
    searched = jax.block_until_ready(_search_runs(c, land))
    search_s = time.perf_counter() - t0
    for method in SEARCH_METHODS:
        r = searched[method]
        best_x = np.asarray(r.best_x)[:, 0]
        best_f = np.asarray(r.best_value, np.float64)
        success = best_f - f_min <= c.success_tol
        evals = np.asarray(r.num_evaluations)
        summary[method] = {
            "success_rate": float(success.mean()),
            "median_final_value": float(np.median(best_f)),
            "median_final_x": float(np.median(best_x)),
            "plateau_fraction": float("nan"),
            "median_plateau_step": -1.0,
            "evaluations": float(np.median(evals)),
        }
        for s in range(c.num_seeds):
            records.append(
                {
                    "method": method,
                    "start": "uniform",
                    "seed": s,
                    "final_x": float(best_x[s]),
                    "final_value": float(best_f[s]),
                    "success": bool(success[s]),
                    "plateau_step": -1,
                    "evaluations": int(evals[s]),
                }
            )

    seconds = {
        "compile": compile_s,
        "run": run_s,
        "search_including_compile": search_s,
        "total": time.perf_counter() - t_start,
    }
    losses = np.stack(all_losses)  # [starts, 2, S, T]
    final_xs = np.stack(all_final_x)  # [starts, 2, S]
    result = {
        "experiment": "local_minima",
        "summary": summary,
        "records": records,
        "arrays": {"losses": losses, "final_x": final_xs},
        "seconds": seconds,
        "out_dir": None,
    }
    if out_dir is not None:
        result["out_dir"] = str(
            _common.write_run_dir(
                out_dir,
                records,
                _common.make_meta(c, seconds=seconds, summary=summary),
                _figures(c, land, losses, final_xs, plateau_first),
            )
        )
    return result


def _figures(c, land, losses, final_xs, plateau_first):
    from jaxopt_lab import plot

    trajectories = {}
    for i, x0 in enumerate(c.starts):
        for v, method in enumerate(GRADIENT_METHODS):
            # final points only: [S, 1, 1] (one "step" per seed), drawn on the curve
            trajectories[f"{method}@{x0:g}"] = final_xs[i, v][:, None, None]
    outcomes = plot.contour(
        land,
        trajectories,
        max_per_optimizer=None,
        mark_critical=False,
        title="sin(3x) + 0.5x^2: where each method ends",
    )
    curves = {
        f"{m}@{x0:g}": losses[i, v] + 1e-12
        for i, x0 in enumerate(c.starts)
        for v, m in enumerate(GRADIENT_METHODS)
    }
    loss_fig = plot.loss_curves(
        curves,
        flagged={k: plateau_first[k] for k in curves},
        flag_name="plateau",
        ylabel="f(x) - f_min",
        title="Gradient methods: loss gap, plateau detector marked",
    )
    return {"outcomes": outcomes, "loss_curves": loss_fig}

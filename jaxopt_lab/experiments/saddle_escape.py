"""Saddle escape, the main job: optimizers x learning rates x seeds leaving a saddle.

Every optimizer starts from the same ``num_seeds`` points drawn uniformly in a ball of
radius ``init_scale`` around the landscape's first catalogued saddle (default: ``x^2 -
y^2 + 0.1xy``, saddle at the origin) and runs ``steps`` steps; a run has escaped at the
first step with ``||x - saddle|| > radius``. On a landscape with no catalogued saddle or
maximum (e.g. ``rosenbrock``) and no ``center``, starts are uniform in the landscape's
bounds and the hit step (first step with ``f <= f_min + target``) is measured instead.
One front-end of the sweep core (:func:`jaxopt_lab.compare.run`): one compiled program
per optimizer family, the learning-rate grid traced, seed ``i`` from ``fold_in(key, i)``.

The summary is one row per (optimizer, learning rate): median and IQR of the escape (hit)
step over seeds (misses count as ``inf``), the success rate with its Wilson 95% interval,
and how many runs went non-finite.

References:
  Dauphin et al., 2014. Identifying and attacking the saddle point problem in
  high-dimensional non-convex optimization.
  Jin, Ge, Netrapalli, Kakade & Jordan, 2017. How to escape saddle points efficiently.
  Du, Jin, Lee, Jordan, Poczos & Singh, 2017. Gradient descent can take exponential time
  to escape saddle points.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from jaxopt_lab._validation import check_int, check_positive

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "pgd")
# Largest trajectory recording (floats) kept from the main run; above it the contour's few
# trajectories come from a second, small run of the same seeds instead.
_MAX_RECORDED_FLOATS = 25_000_000


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the saddle-escape sweep (``jaxopt-lab compare`` flags in brackets).

    Attributes:
      landscape: landscape name [--landscape].
      dim: dimension for landscapes that take one [--dim] (None: the landscape's own).
      optimizers: optimizer registry names [--optimizers].
      learning_rates: learning-rate grid [--lr].
      num_seeds: starts per optimizer and learning rate [--seeds].
      steps: optimizer steps [--steps].
      radius: escape radius around the center [--radius].
      init_scale: starts are uniform in the ball of this radius around the center
        [--init-scale] (0: exactly at the center).
      center: escape center [--center] (None: the first catalogued saddle, else maximum).
      target: hit when ``f <= f_min + target`` [--target] (None: 1e-3 in hit mode).
      seed: master PRNG seed [--seed]; seed ``i`` uses ``fold_in(key(seed), i)``.
      trajectories: trajectories per optimizer drawn on the contour figure
        [--trajectories] (2-D and 1-D landscapes).
      figures: write figures [--no-figures turns them off].
    """

    landscape: str = "saddle_xy"
    dim: int | None = None
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    learning_rates: tuple[float, ...] = (0.01,)
    num_seeds: int = 1024
    steps: int = 500
    radius: float = 1.0
    init_scale: float = 1e-3
    center: tuple[float, ...] | None = None
    target: float | None = None
    seed: int = 0
    trajectories: int = 4
    figures: bool = True

    def __post_init__(self):
        if not isinstance(self.landscape, str) or not self.landscape:
            raise TypeError(f"landscape must be a landscape name, got {self.landscape!r}")
        if self.dim is not None:
            check_int("dim", self.dim)
        if not isinstance(self.optimizers, tuple) or not self.optimizers or not all(
                isinstance(n, str) and n for n in self.optimizers):
            raise ValueError(f"optimizers must be a non-empty tuple of names, got "
                             f"{self.optimizers!r}")
        if not isinstance(self.learning_rates, tuple) or not self.learning_rates:
            raise ValueError(f"learning_rates must be a non-empty tuple, got "
                             f"{self.learning_rates!r}")
        for lr in self.learning_rates:
            check_positive("learning_rates", lr)
        check_int("num_seeds", self.num_seeds)
        check_int("steps", self.steps)
        check_positive("radius", self.radius)
        check_positive("init_scale", self.init_scale, allow_zero=True)
        if self.center is not None:
            if not isinstance(self.center, tuple) or not self.center:
                raise ValueError(f"center must be a tuple of coordinates, got {self.center!r}")
            for c in self.center:
                if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c):
                    raise ValueError(f"center must hold finite numbers, got {self.center!r}")
        if self.target is not None:
            check_positive("target", self.target)
        check_int("seed", self.seed, minimum=0)
        check_int("trajectories", self.trajectories, minimum=0)

    @classmethod
    def quick(cls) -> Config:
        """The main job on 64 seeds (seconds; CI)."""
        return cls(num_seeds=64)

    @classmethod
    def full(cls) -> Config:
        """The main job: 1024 seeds x 500 steps of five optimizers."""
        return cls()


class Plan:
    """What a :class:`Config` resolves to: the landscape, mode, center and optimizer grid."""

    def __init__(self, config: Config):
        from jaxopt_lab import landscapes, optimizers

        c = config
        if c.center is not None and c.dim is None:
            try:  # a variable-dimension landscape takes its dimension from the center
                land = landscapes.get(c.landscape, dim=len(c.center))
            except (ValueError, TypeError):
                land = landscapes.get(c.landscape)
        else:
            land = landscapes.get(c.landscape, dim=c.dim) if c.dim else landscapes.get(
                c.landscape)
        self.landscape = land
        self.names = list(dict.fromkeys(optimizers.canonical(n) for n in c.optimizers))
        self.learning_rates = sorted(set(float(v) for v in c.learning_rates))
        self.optimizers = optimizers.grid(self.names, self.learning_rates)
        f_min = getattr(land, "f_min", None)
        self.f_min = None if f_min is None or not math.isfinite(float(f_min)) else float(f_min)
        if c.center is not None:
            if len(c.center) != land.dim:
                raise ValueError(f"center must have {land.dim} coordinates for landscape "
                                 f"{land.name!r}, got {len(c.center)}")
            self.center = np.asarray(c.center, np.float32)
        else:
            kinds = ("saddle", "maximum") if self.f_min is not None else (
                "saddle", "maximum", "degenerate")
            self.center = _catalogued_center(land, kinds)
        self.mode = "escape" if self.center is not None else "hit"
        if self.mode == "hit" and self.f_min is None:
            raise ValueError(f"landscape {land.name!r} has no catalogued saddle or maximum and "
                             f"no known f_min; give center with {land.dim} coordinates")
        self.target = (c.target if c.target is not None else 1e-3) if self.mode == "hit" \
            else c.target


def _catalogued_center(land, kinds) -> np.ndarray | None:
    """The first catalogued point of the first kind present (saddle, then maximum, ...).

    Only small catalogs are read (large separable N-d catalogs are built lazily and are
    never searched for a saddle: they have none)."""
    if getattr(land, "dim", 3) > 64:
        return None
    cps = tuple(getattr(land, "critical_points", ()) or ())
    for kind in kinds:
        for cp in cps:
            if cp.kind == kind:
                return np.asarray(cp.x, np.float32).reshape(-1) + np.float32(0.0)  # no -0
    return None


def settings_id(config: Config) -> str:
    """A short hash of everything that determines the run's records (stable across
    processes): the default run directory is named by it, so re-running the same command
    resumes an interrupted sweep."""
    from jaxopt_lab import __version__
    from jaxopt_lab.compare.store import config_hash

    fields = dataclasses.asdict(config)
    fields.pop("figures"), fields.pop("trajectories")
    return config_hash({"version": __version__, **fields})[:12]


def run(config: Config, out_dir: Any = None, *, progress: bool = False):
    """Run the sweep; summarize; write the run directory and figures if ``out_dir``.

    Args:
      config: a :class:`Config`.
      out_dir: run directory (resumable: an interrupted run of the same config resumes).
      progress: a progress bar over chunks.

    Returns:
      :class:`jaxopt_lab.compare.Results` with ``summary`` = ``{"mode", "landscape",
      "center", "target", "rows": [one row per optimizer and learning rate],
      "nonfinite_seeds": {optimizer: [[hparam index, seed], ...]}}``.
    """
    import jax

    from jaxopt_lab import compare

    if not isinstance(config, Config):
        raise TypeError(f"config must be a saddle_escape.Config, got {type(config).__name__}")
    c = config
    plan = Plan(c)
    land = plan.landscape
    kwargs = dict(num_seeds=c.num_seeds, steps=c.steps, key=jax.random.key(c.seed))
    if plan.mode == "escape":
        kwargs.update(init=("ball", plan.center, c.init_scale), escape_center=plan.center,
                      escape_radius=float(c.radius))
        if c.target is not None:
            kwargs["target"] = float(c.target)
    else:
        kwargs.update(init="uniform", target=float(plan.target))
    record_every = max(1, c.steps // 100)
    n_rec = c.steps // record_every + 1
    n_conf = len(plan.names) * len(plan.learning_rates)
    big = n_conf * c.num_seeds * n_rec * land.dim > _MAX_RECORDED_FLOATS
    want_traj = land.dim in (1, 2) and c.trajectories > 0 and c.figures
    results = compare.run(land, plan.optimizers, **kwargs, out_dir=out_dir,
                          record_every=record_every if want_traj and not big else None,
                          progress=progress)
    traj_results = results
    if want_traj and big:  # keep the main run lean: the first seeds again, recorded
        k = min(c.num_seeds, max(c.trajectories, 64))
        traj_results = compare.run(land, plan.optimizers, **{**kwargs, "num_seeds": k},
                                   record_every=record_every)
    rows = compare.stats.summarize(results)
    results.summary = {
        "mode": plan.mode,
        "landscape": land.name,
        "dim": land.dim,
        "center": None if plan.center is None else plan.center.tolist(),
        "target": plan.target,
        "rows": rows,
        "nonfinite_seeds": results.nonfinite_seeds(),
    }
    results.meta["experiment"] = {"name": "saddle_escape",
                                  "config": dataclasses.asdict(c)}
    if out_dir is not None:
        figures = _figures(c, plan, results, traj_results) if c.figures else {}
        results.save(out_dir, figures)
    return results


def _figures(c: Config, plan: Plan, results, traj_results) -> dict:
    from jaxopt_lab import plot

    land = plan.landscape
    records = results.records()
    figs = {}
    if plan.mode == "hit":
        column, what = "hit_step", "hit"
        ecdf_title = f"{land.name}: steps to reach f_min + {plan.target:g} ({c.steps} steps)"
        violin_title = f"{land.name}: hit steps of the runs that reached f_min + {plan.target:g}"
        heat_title = f"{land.name}: success rate (f <= f_min + {plan.target:g})"
    else:
        column, what = "escape_step", "escape"
        ecdf_title = f"{land.name}: escape step ECDF (radius {c.radius:g}, {c.steps} steps)"
        violin_title = f"{land.name}: escape steps of the runs that escaped"
        heat_title = f"{land.name}: escape success rate"
    figs[f"{what}_ecdf"] = plot.escape_ecdf(records, column=column, horizon=c.steps,
                                            title=ecdf_title)
    figs[f"{what}_violin"] = plot.escape_violin(records, column=column, title=violin_title)
    if len(plan.learning_rates) > 1:
        figs["success_heatmap"] = plot.success_heatmap(records, column=column,
                                                       param="learning_rate", title=heat_title)
    trajs = traj_results.trajectories
    if land.dim in (1, 2) and trajs and c.trajectories > 0:
        for h, lr in enumerate(plan.learning_rates):
            sel = {name: np.asarray(arr)[h] for name, arr in trajs.items()}
            name = "contour" if len(plan.learning_rates) == 1 else f"contour-lr{lr:g}"
            lower, upper = (np.asarray(b, dtype=float) for b in land.bounds)
            escape = None
            if plan.center is not None:
                reach = max(c.radius * 1.6, 4 * c.init_scale)
                lower = np.maximum(lower, plan.center - reach)
                upper = np.minimum(upper, plan.center + reach)
                escape = (np.asarray(plan.center, float), c.radius)
            rank = {n: np.asarray(traj_results.metrics[n][column])[h] for n in trajs}
            figs[name] = plot.contour(
                land, sel, bounds=(lower, upper), max_per_optimizer=c.trajectories,
                rank_by=rank, rank_label=column.replace("_", " "),
                escape=escape, title=f"{land.name}: {c.trajectories} trajectories per "
                f"optimizer (lr {lr:g})")
    return figs


def default_out_dir(config: Config) -> str:
    """``runs/compare-<landscape>-<settings hash>``: the same for the same settings."""
    return os.path.join("runs", f"compare-{config.landscape}-{settings_id(config)}")


__all__ = ["Config", "DEFAULT_OPTIMIZERS", "Plan", "default_out_dir", "run", "settings_id"]

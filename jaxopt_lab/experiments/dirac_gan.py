"""Dirac-GAN (Mescheder et al. 2018): which training methods converge?

``D(x) = psi x``, ``G = theta``, data at 0, minimax loss (the game Mescheder et al.
analyse); every seed starts at ``(theta, psi) ~ N(0, I)`` drawn from its key. Methods
(the ``remedy`` column): ``simultaneous`` and ``alternating`` gradient descent (neither
converges, for any learning rate), ``r1`` (alternating + R1, gamma 1), ``instance_noise``
(alternating, std 1 on both sides) — each with the ``sgd`` optimizer and with
``negative_momentum`` (SGD, momentum -0.5; Gidel et al. 2019, which converges with
alternating updates). A run has converged when ``||(theta, psi)|| < tol`` at the end.
One :func:`jaxopt_lab.compare.sweep` per method; the learning-rate grid is traced.

References:
  Mescheder, Geiger & Nowozin, 2018. Which training methods for GANs do actually
  converge?
  Gidel et al., 2019. Negative momentum for improved game dynamics.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import gan
from jaxopt_lab._validation import check_int, check_positive

METHODS: dict[str, dict] = {
    "simultaneous": {"simultaneous": True},
    "alternating": {},
    "r1": {"r1_gamma": 1.0},
    "instance_noise": {"instance_noise": 1.0},
}
OPTIMIZERS = ("sgd", "negative_momentum")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings. ``tol``: convergence radius; ``batch_size``: noise samples per update."""

    methods: tuple[str, ...] = tuple(METHODS)
    optimizers: tuple[str, ...] = OPTIMIZERS
    learning_rates: tuple[float, ...] = (0.1, 0.5)
    num_seeds: int = 16
    steps: int = 2000
    eval_every: int = 20
    batch_size: int = 256
    tol: float = 0.1
    seed: int = 0
    figures: bool = True

    def __post_init__(self):
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"methods must be in {list(METHODS)}, got {m!r}")
        for o in self.optimizers:
            if o not in OPTIMIZERS:
                raise ValueError(f"optimizers must be in {list(OPTIMIZERS)}, got {o!r}")
        for lr in self.learning_rates:
            check_positive("learning_rate", lr)
        for n in ("num_seeds", "steps", "eval_every", "batch_size"):
            check_int(n, getattr(self, n))
        if self.steps % self.eval_every:
            raise ValueError(f"steps={self.steps} must be a multiple of eval_every")
        check_positive("tol", self.tol)
        check_int("seed", self.seed, minimum=0)

    @classmethod
    def quick(cls) -> Config:
        """Simultaneous GD and R1, both optimizers, lr 0.5, 4 seeds x 600 steps (seconds)."""
        return cls(methods=("simultaneous", "r1"), learning_rates=(0.5,), num_seeds=4,
                   steps=600)

    @classmethod
    def full(cls) -> Config:
        """64 seeds, 4000 steps, learning rates 0.05, 0.1, 0.2, 0.5."""
        return cls(num_seeds=64, steps=4000, learning_rates=(0.05, 0.1, 0.2, 0.5))


def _sample(inputs, key, n):
    return gan.dirac.sample_real(key, n)


def _evaluate(samples, state, inputs):
    del samples, inputs
    return {"theta": state.g_params["theta"], "psi": state.d_params["psi"],
            "distance": jnp.hypot(state.g_params["theta"], state.d_params["psi"])}


def run(config: Config, out_dir: Any = None):
    """Run every method x optimizer x learning rate x seed; returns
    :class:`jaxopt_lab.compare.Results` (``distance``, ``converged`` per seed; curves of
    ``theta``, ``psi``, ``distance``; summary: convergence rate with its Wilson interval
    and the median final distance per row)."""
    from jaxopt_lab.compare import stats, store

    if not isinstance(config, Config):
        raise TypeError(f"config must be a dirac_gan.Config, got {type(config).__name__}")
    c = config
    t0 = time.perf_counter()
    factories = {"sgd": functools.partial(optax.sgd),
                 "negative_momentum": functools.partial(optax.sgd, momentum=-0.5)}
    optimizers = {o: (factories[o], {"learning_rate": [float(v) for v in c.learning_rates]})
                  for o in c.optimizers}
    sweeps, comp, runs = {}, 0.0, 0.0
    for m in c.methods:
        spec = gan.GANSpec(loss="minimax", batch_size=c.batch_size, **METHODS[m])
        trial = gan.make_trial(spec, gan.dirac.nets(), steps=c.steps, eval_every=c.eval_every,
                               sample_real=_sample, evaluate=_evaluate, num_eval=2,
                               static=("dirac_gan",))
        sw = gan.sweep(trial, optimizers, num_seeds=c.num_seeds, key=jax.random.key(c.seed))
        sweeps[m] = sw
        comp += sw.compile_seconds
        runs += sw.run_seconds
    res, _ = gan.results_from_sweeps(sweeps)
    rows = []
    for o in res.optimizers:
        d = np.asarray(res.metrics[o]["distance"], np.float64)
        d = np.where(np.isfinite(d), d, np.inf)
        res.metrics[o]["distance"] = d
        res.metrics[o]["converged"] = d < c.tol
        for h, hp in enumerate(res.hparams[o]):
            k = int(np.sum(d[h] < c.tol))
            rows.append({"optimizer": o, **hp, "converged_rate": k / d.shape[1],
                         "converged_ci": list(stats.wilson_interval(k, d.shape[1])),
                         "median_distance": stats.median_inf(d[h])})
    res.summary = store.jsonable({"rows": rows, "tol": c.tol,
                                  "nonfinite_seeds": res.nonfinite_seeds()})
    res.meta = store.make_meta(c, key=jax.random.key(c.seed), compile_seconds=comp,
                               run_seconds=runs, total_seconds=time.perf_counter() - t0,
                               experiment={"name": "dirac_gan",
                                           "config": dataclasses.asdict(c)})
    if out_dir is not None:
        figures = {}
        if c.figures:
            from jaxopt_lab.plot import gan as gan_plot

            labels, th, ps = [], [], []
            for o in res.optimizers:
                for h, hp in enumerate(res.hparams[o]):
                    labels.append(f"{o}, {hp['remedy']}, lr {hp['learning_rate']:g}")
                    th.append(res.curves[o]["theta"][h, 0])
                    ps.append(res.curves[o]["psi"][h, 0])
            figures["trajectories"] = gan_plot.dirac_trajectories(th, ps, labels)
        res.save(out_dir, figures)
    return res


__all__ = ["METHODS", "OPTIMIZERS", "Config", "run"]

"""Exploding gradients in a vanilla RNN, and two remedies: clipping and rollback.

A tanh RNN whose recurrent matrix is ``recurrent_scale`` times an orthogonal
matrix (spectral radius > 1) is trained by plain SGD on the adding problem.
Three paired variants trained in the sweep core (:func:`jaxopt_lab.compare.train`; seed
``i`` is ``fold_in(key(seed), i)``: the same initialization and data stream for every
variant):

* ``no_clip``: SGD. Gradient norms are large from the first steps; a few
  steps later the loss becomes non-finite. The health monitor's ``exploding``
  flag fires first (gradient norm above threshold) and its ``nonfinite`` flag
  fires exactly at the step where the loss stops being finite.
* ``clip``: ``optax.clip_by_global_norm(clip_norm)`` then SGD: stays finite and learns.
* ``rollback``: :func:`jaxopt_lab.transforms.rollback_guard` around SGD: a bad
  step (non-finite, or a loss spike) is undone and the learning rate cut; the
  run recovers (finite final loss) and the events are counted.

Summary (per variant): fraction of seeds whose final loss is non-finite, the
median first step of each flag, median initial/final loss, rollback events.

References:
  Pascanu, Mikolov & Bengio, 2013, "On the difficulty of training recurrent
  neural networks" (exploding gradients, gradient-norm clipping).
  Bengio, Simard & Frasconi, 1994, "Learning long-term dependencies with
  gradient descent is difficult".
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
import optax

from jaxopt_lab import compare, data, health, models, transforms
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common

VARIANTS: tuple[str, ...] = ("no_clip", "clip", "rollback")

#: Loss of always predicting 1 on the adding problem (Var of the target: 1/6).
BASELINE_LOSS = 1.0 / 6.0


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the explosion experiment.

    Attributes:
      num_seeds: independent runs per variant (vmapped).
      seed: base seed (seed ``i`` is ``fold_in(key(seed), i)``).
      hidden: RNN hidden units.
      length: sequence length of the adding problem.
      batch_size: sequences per step.
      steps: SGD steps.
      learning_rate: SGD learning rate (all variants).
      recurrent_scale: spectral scale of the orthogonal recurrent init (> 1 explodes).
      clip_norm: global-norm clipping threshold of the ``clip`` variant.
      rollback_factor: learning-rate cut per rollback.
      spike_factor: the guard also rolls back a loss above ``spike_factor`` times its
        running average (None: only non-finite steps).
      grad_norm_max: the health monitor's exploding-gradient threshold.
      fast_compile: compile with XLA optimization level 0 on CPU (quicker for short runs).
    """

    num_seeds: int = 16
    seed: int = 0
    hidden: int = 16
    length: int = 20
    batch_size: int = 32
    steps: int = 200
    learning_rate: float = 0.3
    recurrent_scale: float = 2.0
    clip_norm: float = 1.0
    rollback_factor: float = 0.1
    spike_factor: float | None = 4.0
    grad_norm_max: float = 1e3
    fast_compile: bool = False

    def __post_init__(self):
        for name in ("num_seeds", "hidden", "batch_size", "steps"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_int("length", self.length, minimum=2)
        for name in ("learning_rate", "recurrent_scale", "clip_norm", "grad_norm_max"):
            check_positive(name, getattr(self, name))
        check_positive("rollback_factor", self.rollback_factor)
        if self.rollback_factor > 1:
            raise ValueError(f"rollback_factor must be in (0, 1], got {self.rollback_factor!r}")
        if self.spike_factor is not None and not self.spike_factor > 1:
            raise ValueError(f"spike_factor must be > 1 or None, got {self.spike_factor!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds on a laptop CPU: 16 seeds, hidden 16, length 20, 200 steps (the contrast,
        measured on 32 seeds: no_clip non-finite on 32/32, clip and rollback on 0/32)."""
        return cls(fast_compile=True)

    @classmethod
    def full(cls) -> Config:
        """128 seeds, hidden 32, length 30, 1000 steps."""
        return cls(num_seeds=128, hidden=32, length=30, steps=1000, learning_rate=0.1)


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Run the three variants and summarize; write a run directory if ``out_dir`` is given.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional run directory (:meth:`jaxopt_lab.compare.Results.save`):
        ``records.csv``, ``metrics.npz``, ``curves.npz``, ``meta.json``,
        ``loss_curves.png`` and ``grad_norms.png``.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``): per seed
      ``metrics[v]`` (``nonfinite``, ``first_exploding_step``, ``first_nonfinite_step``,
      ``first_flag_step`` (-1: never), ``initial_loss``, ``final_loss`` (NaN when the run
      diverged), ``rollback_events``), ``curves[v]`` (``loss``, ``grad_norm`` ``[1, S,
      steps]``) and ``summary``: ``{variant: {nonfinite (rate + Wilson CI),
      first_exploding_step, first_nonfinite_step, first_flag_step (medians over the seeds
      that fired, -1 if none), initial_loss, final_loss (median + bootstrap CI; a
      diverged seed counts as +inf), rollback_events (mean), seed_relative_iqr,
      seed_sensitive}, "nonfinite_seeds": {variant: [seeds]}, "baseline_loss"}``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an explosion.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    model = models.rnn(
        2,
        c.hidden,
        1,
        cell="rnn",
        activation="tanh",
        loss="mse",
        recurrent_init="orthogonal",
        recurrent_scale=c.recurrent_scale,
    )
    sgd = optax.sgd(c.learning_rate)
    guard = transforms.rollback_guard(sgd, factor=c.rollback_factor, spike_factor=c.spike_factor)

    def clipped(max_norm):
        # no_clip is clipping at +inf (exactly the SGD update while the gradient is finite;
        # non-finite either way after): one traced grid, one compiled program for both
        return optax.chain(optax.clip_by_global_norm(max_norm), sgd)

    optimizers = {
        "sgd": (clipped, {"max_norm": [float("inf"), c.clip_norm]}),
        "rollback": guard,
    }
    rows = {"no_clip": ("sgd", 0), "clip": ("sgd", 1), "rollback": ("rollback", 0)}
    length, batch = c.length, c.batch_size

    def batch_fn(_, key, step):
        return data.adding_problem(key, batch, length)

    def rollback_events(params, _, opt_state):
        # the guard's counter, read from the final optimizer state (0 without a guard)
        st = transforms.find_state(opt_state, transforms.RollbackState, optional=True)
        return {"rollback_events": np.int32(0) if st is None else st.num_rollbacks}

    res = compare.train(
        model.init,
        model.loss,
        optimizers,
        num_seeds=c.num_seeds,
        steps=c.steps,
        key=jax.random.key(c.seed),
        batch_fn=batch_fn,
        evaluate_state=rollback_events,
        thresholds=health.Thresholds(grad_norm_max=c.grad_norm_max),
        layer_order=model.layers,
        fast_compile=c.fast_compile,
    )
    key = jax.random.key(c.seed)
    metrics, curves, summary = {}, {}, {}
    for v, name in enumerate(VARIANTS):
        fam, h = rows[name]
        losses = res.losses(fam)[h]  # [S, T]
        grad_norm = np.asarray(res.reports[fam].grad_norm)[h]
        first_nf = res.first_step(fam, "nonfinite")[h]
        first_ex = res.first_step(fam, "exploding")[h]
        first_any = np.where(
            (first_ex >= 0) & ((first_nf < 0) | (first_ex <= first_nf)), first_ex, first_nf
        )
        final = res.final[fam]
        final_loss = np.asarray(final["final_loss"])[h]
        nonfinite = np.asarray(final["nonfinite"])[h].astype(bool)
        rollbacks = np.asarray(final["rollback_events"])[h].astype(np.int32)
        metrics[name] = {
            "nonfinite": nonfinite,
            "first_exploding_step": first_ex,
            "first_nonfinite_step": first_nf,
            "first_flag_step": first_any,
            "initial_loss": losses[:, 0],
            "final_loss": final_loss,
            "rollback_events": rollbacks,
        }
        curves[name] = {"loss": losses, "grad_norm": grad_norm}
        spread = health.seed_sensitivity(final_loss)
        summary[name] = {
            "nonfinite": _common.rate(nonfinite),
            "first_exploding_step": _common.median_fired(first_ex),
            "first_nonfinite_step": _common.median_fired(first_nf),
            "first_flag_step": _common.median_fired(first_any),
            "initial_loss": float(np.median(losses[:, 0])),
            "final_loss": _common.median_ci(final_loss, jax.random.fold_in(key, v)),
            "rollback_events": float(rollbacks.mean()),
            "seed_relative_iqr": float(spread.relative_iqr),
            "seed_sensitive": bool(spread.flag),
        }
    summary["baseline_loss"] = BASELINE_LOSS
    result = _common.results(
        c, VARIANTS, metrics, curves, summary,
        compile_seconds=res.compile_seconds, run_seconds=res.run_seconds,
        hparams={"no_clip": [{"max_norm": float("inf")}], "clip": [{"max_norm": c.clip_norm}],
                 "rollback": [{}]},
        total_seconds=time.perf_counter() - t_start, experiment="explosion",
    )
    if out_dir is not None:
        from jaxopt_lab.plot import training as tplot

        figs = {
            "loss_curves": tplot.loss_curves(
                {v: curves[v]["loss"] for v in VARIANTS},
                flagged={v: metrics[v]["first_nonfinite_step"] for v in VARIANTS},
                flag_name="non-finite",
                ylabel="MSE (adding problem)",
                title=f"vanilla RNN, recurrent scale {c.recurrent_scale}: SGD lr {c.learning_rate}",
            ),
            "grad_norms": tplot.loss_curves(
                {v: curves[v]["grad_norm"] for v in VARIANTS},
                flagged={v: metrics[v]["first_exploding_step"] for v in VARIANTS},
                flag_name="exploding",
                ylabel="global gradient norm (before clipping)",
            ),
        }
        result.save(out_dir, figures=figs)
    return result

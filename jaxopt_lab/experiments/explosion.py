"""Exploding gradients in a vanilla RNN, and two remedies: clipping and rollback.

A tanh RNN whose recurrent matrix is ``recurrent_scale`` times an orthogonal
matrix (spectral radius > 1) is trained by plain SGD on the adding problem.
Three paired variants (same seeds, same data stream, one compiled program):

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

import numpy as np
import optax

from jaxopt_lab import data, health, models, transforms
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
      seed: base seed (each run's key is split from it).
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

    num_seeds: int = 8
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
        """Seconds on a laptop CPU: 8 seeds, hidden 16, length 20, 200 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """32 seeds, hidden 32, length 30, 1000 steps."""
        return cls(num_seeds=32, hidden=32, length=30, steps=1000, learning_rate=0.1)


def run(config: Config, out_dir: Any = None) -> dict[str, Any]:
    """Run the three variants and summarize; write a run directory if ``out_dir`` is given.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional directory for ``records.csv``, ``meta.json``, ``loss_curves.png``
        and ``grad_norms.png``.

    Returns:
      dict with ``"summary"`` (``{variant: {nonfinite_fraction, first_exploding_step,
      first_nonfinite_step, first_flag_step, initial_loss, final_loss, rollback_events,
      seed_relative_iqr, seed_sensitive}}``, medians over seeds; first steps are -1 when no
      seed fired; the last two from :func:`jaxopt_lab.health.seed_sensitivity` of the
      final losses), ``"arrays"``
      (``losses``, ``grad_norm`` ``[V, S, steps]``; ``first_exploding``,
      ``first_nonfinite``, ``final_loss`` ``[V, S]``; ``rollback_events`` ``[S]``),
      ``"records"`` (one dict per variant and seed), ``"variants"``, ``"seconds"``
      and ``"out_dir"``.
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
    optimizers = (
        sgd,
        optax.chain(optax.clip_by_global_norm(c.clip_norm), sgd),
        transforms.rollback_guard(sgd, factor=c.rollback_factor, spike_factor=c.spike_factor),
    )
    length, batch = c.length, c.batch_size

    def batch_fn(_, key, step):
        return data.adding_problem(key, batch, length)

    res = _common.train_over_seeds(
        model.init,
        model.loss,
        optimizers,
        keys=_common.seed_keys(c.seed, c.num_seeds),
        steps=c.steps,
        batch_fn=batch_fn,
        thresholds=health.Thresholds(grad_norm_max=c.grad_norm_max),
        layer_order=model.layers,
        fast_compile=c.fast_compile,
    )
    losses = res.losses  # [V, S, T]
    grad_norm = np.asarray(res.reports.grad_norm)
    first_nf = res.first_step("nonfinite")
    first_ex = res.first_step("exploding")
    first_any = np.where(
        (first_ex >= 0) & ((first_nf < 0) | (first_ex <= first_nf)), first_ex, first_nf
    )
    final = _common.tail_mean(losses, 20)
    nonfinite = ~np.isfinite(losses[..., -1])
    rollbacks = np.asarray(res.opt_state[2].num_rollbacks[2])  # guard state of variant 2

    summary, records = {}, []
    for v, name in enumerate(VARIANTS):
        fin = final[v][np.isfinite(final[v])]
        spread = health.seed_sensitivity(final[v])
        summary[name] = {
            "nonfinite_fraction": float(nonfinite[v].mean()),
            "first_exploding_step": _common.median_fired(first_ex[v]),
            "first_nonfinite_step": _common.median_fired(first_nf[v]),
            "first_flag_step": _common.median_fired(first_any[v]),
            "initial_loss": float(np.median(losses[v, :, 0])),
            "final_loss": float(np.median(fin)) if fin.size else float("nan"),
            "rollback_events": float(rollbacks.mean()) if name == "rollback" else 0.0,
            "seed_relative_iqr": float(spread.relative_iqr),
            "seed_sensitive": bool(spread.flag),
        }
        for s in range(c.num_seeds):
            records.append(
                {
                    "variant": name,
                    "seed": s,
                    "nonfinite": bool(nonfinite[v, s]),
                    "first_exploding_step": int(first_ex[v, s]),
                    "first_nonfinite_step": int(first_nf[v, s]),
                    "first_flag_step": int(first_any[v, s]),
                    "initial_loss": float(losses[v, s, 0]),
                    "final_loss": float(final[v, s]),
                    "rollback_events": int(rollbacks[s]) if name == "rollback" else 0,
                }
            )
    seconds = {
        "compile": res.compile_seconds,
        "run": res.run_seconds,
        "total": time.perf_counter() - t_start,
    }
    result = {
        "experiment": "explosion",
        "variants": list(VARIANTS),
        "summary": summary,
        "baseline_loss": BASELINE_LOSS,
        "arrays": {
            "losses": losses,
            "grad_norm": grad_norm,
            "first_exploding": first_ex,
            "first_nonfinite": first_nf,
            "final_loss": final,
            "rollback_events": rollbacks,
        },
        "records": records,
        "seconds": seconds,
        "out_dir": None,
    }
    if out_dir is not None:
        from jaxopt_lab.plot import training as tplot

        figs = {
            "loss_curves": tplot.loss_curves(
                dict(zip(VARIANTS, losses, strict=True)),
                flagged=dict(zip(VARIANTS, first_nf, strict=True)),
                flag_name="non-finite",
                ylabel="MSE (adding problem)",
                title=f"vanilla RNN, recurrent scale {c.recurrent_scale}: SGD lr {c.learning_rate}",
            ),
            "grad_norms": tplot.loss_curves(
                dict(zip(VARIANTS, grad_norm, strict=True)),
                flagged=dict(zip(VARIANTS, first_ex, strict=True)),
                flag_name="exploding",
                ylabel="global gradient norm (before clipping)",
            ),
        }
        meta = _common.make_meta(c, seconds=seconds, experiment="explosion", summary=summary)
        result["out_dir"] = str(_common.write_run_dir(out_dir, records, meta, figs))
    return result

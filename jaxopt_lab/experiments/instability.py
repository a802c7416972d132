"""Training instability at a constant large learning rate; warmup + cosine decay and
weight averaging (EMA) as remedies.

A tanh MLP (64 -> 64 -> 64 -> 10, Glorot init) is trained on scikit-learn's 8x8 digits
with minibatch SGD at the same PEAK learning rate under two schedules, each vmapped
over seeds:

* ``constant``: the peak rate from the first step. It is above the stability edge of
  this network (roughly ``2 / sharpness``): the loss oscillates by tens of nats from step
  to step and never settles. The health monitor's ``oscillation`` flag fires and is
  still raised over most of the last ``window`` steps.
* ``warmup_cosine``: ``optax.warmup_cosine_decay_schedule`` (linear warmup to the same
  peak, cosine decay to 0): training is stable and the loss goes to ~0.05 (the monitor
  may flag a transient oscillation around the peak of the warmup; none at the end).

Both runs also keep an exponential moving average of the weights (Polyak averaging,
:func:`jaxopt_lab.transforms.weight_ema`), so each schedule is
reported with and without EMA: averaging the oscillating iterates of the constant
schedule gives a far lower loss than its last iterate, while for the decayed schedule
it changes little.

Measures (medians over seeds): loss on the whole training set at the end (raw and EMA
weights), test accuracy (raw and EMA), the oscillation measure (standard deviation of
the step-to-step change of the minibatch loss over the last ``window`` steps, plus the
monitor's sign-change fraction), and when the oscillation flag first fired.

References:
  Goyal et al., 2017. Accurate, large minibatch SGD: training ImageNet in 1 hour (warmup).
  Loshchilov & Hutter, 2017. SGDR: stochastic gradient descent with warm restarts (cosine).
  Polyak & Juditsky, 1992. Acceleration of stochastic approximation by averaging.
  Cohen et al., 2021. Gradient descent on neural networks typically occurs at the edge
  of stability.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import data, health, models
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common
from jaxopt_lab.transforms import weight_ema

SCHEDULES: tuple[str, ...] = ("constant", "warmup_cosine")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the instability experiment.

    Attributes:
      num_seeds: runs per schedule (vmapped).
      seed: base seed (same initializations and batches for both schedules).
      hidden: hidden widths of the tanh MLP.
      batch_size: examples per step.
      steps: SGD steps.
      peak_learning_rate: the constant rate, and the peak of the warmup + cosine schedule.
      warmup_steps: linear warmup length.
      ema_decay: decay of the weight EMA.
      window: steps at the end over which the oscillation measure is taken.
      oscillation_relative_std: the monitor's oscillation threshold (std of the loss
        differences relative to the EMA loss).
      oscillation_floor: the monitor reports no oscillation while the EMA loss is below
        this (minibatch noise near a loss of 0 is large relative to the loss).
    """

    num_seeds: int = 8
    seed: int = 0
    hidden: tuple[int, ...] = (64, 64)
    batch_size: int = 64
    steps: int = 400
    peak_learning_rate: float = 1.0
    warmup_steps: int = 50
    ema_decay: float = 0.98
    window: int = 100
    oscillation_relative_std: float = 0.1
    oscillation_floor: float = 0.5

    def __post_init__(self):
        for name in ("num_seeds", "batch_size", "steps", "warmup_steps"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_int("window", self.window, minimum=2)
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty tuple of ints, got {self.hidden!r}")
        for h in self.hidden:
            check_int("hidden", h)
        check_positive("peak_learning_rate", self.peak_learning_rate)
        check_positive("oscillation_relative_std", self.oscillation_relative_std)
        check_positive("oscillation_floor", self.oscillation_floor, allow_zero=True)
        if self.warmup_steps >= self.steps:
            raise ValueError(
                f"warmup_steps must be < steps ({self.steps}), got {self.warmup_steps}"
            )
        if self.window > self.steps:
            raise ValueError(f"window must be <= steps ({self.steps}), got {self.window}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds on a laptop CPU: 8 seeds, 400 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """32 seeds, 2000 steps, warmup 200."""
        return cls(num_seeds=32, steps=2000, warmup_steps=200, window=400, ema_decay=0.995)


def _optimizers(c: Config) -> tuple[optax.GradientTransformation, ...]:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, c.peak_learning_rate, c.warmup_steps, c.steps, end_value=0.0
    )
    return tuple(
        optax.chain(optax.sgd(lr), weight_ema(c.ema_decay))
        for lr in (c.peak_learning_rate, schedule)
    )


def run(config: Config, out_dir: Any = None) -> dict[str, Any]:
    """Train under both schedules and summarize; write a run directory if asked.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional directory for ``records.csv``, ``meta.json`` and ``loss_curves.png``.

    Returns:
      dict with ``"summary"``: ``{"constant" | "constant+ema" | "warmup_cosine" |
      "warmup_cosine+ema": {final_loss, test_accuracy, oscillation, sign_change_fraction,
      oscillation_flagged_fraction, median_first_oscillation_step,
      oscillating_late_fraction}}`` (the last: share of the final ``window`` steps with
      the oscillation flag raised; the oscillation
      entries describe the training run, shared by a schedule with and without EMA);
      ``"arrays"`` (``losses [2, S, steps]``, ``final_loss``/``final_loss_ema [2, S]``);
      ``"records"``; ``"seconds"``; ``"out_dir"``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an instability.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    digits = data.load_digits()
    train_set, (x_test, y_test) = digits["train"], digits["test"]
    model = models.mlp(64, c.hidden, 10, activation="tanh", init="xavier")
    th = health.Thresholds(
        oscillation_window=min(20, c.window),
        oscillation_relative_std=c.oscillation_relative_std,
        oscillation_floor=c.oscillation_floor,
    )
    res = _common.train_over_seeds(
        model.init,
        model.loss,
        _optimizers(c),
        keys=_common.seed_keys(c.seed, c.num_seeds),
        steps=c.steps,
        batch_fn=lambda d, key, step: data.sample_batch(key, d, c.batch_size),
        data=train_set,
        thresholds=th,
        layer_order=model.layers,
    )
    losses = res.losses  # [2, S, T]
    sign_changes = np.asarray(res.reports.sign_change_fraction)  # [2, S, T]
    first_osc = res.first_step("oscillation")  # [2, S]
    # fraction of the last `window` steps at which the oscillation flag is raised
    osc_late = np.asarray(res.reports.flags.oscillation)[..., -c.window :].mean(axis=-1)
    # loss and accuracy of raw and EMA weights: vmapped over schedules and seeds
    # opt_state[v] is schedule v's chain state, leaves [2, S, ...]: take row v of each
    ema = jax.tree.map(
        lambda *leaves: jnp.stack([leaf[v] for v, leaf in enumerate(leaves)]),
        *(res.opt_state[v][1].ema for v in range(2)),
    )
    train_loss = jax.vmap(jax.vmap(lambda p: model.loss(p, train_set)))
    accuracy = jax.vmap(
        jax.vmap(lambda p: jnp.mean(jnp.argmax(model.apply(p, x_test), -1) == y_test))
    )
    final = {False: np.asarray(train_loss(res.params)), True: np.asarray(train_loss(ema))}
    acc = {False: np.asarray(accuracy(res.params)), True: np.asarray(accuracy(ema))}
    with np.errstate(invalid="ignore"):
        oscillation = np.std(np.diff(losses[..., -c.window :], axis=-1), axis=-1)  # [2, S]

    summary, records = {}, []
    for v, sched in enumerate(SCHEDULES):
        for use_ema in (False, True):
            name = sched + ("+ema" if use_ema else "")
            summary[name] = {
                "final_loss": float(np.nanmedian(final[use_ema][v])),
                "test_accuracy": float(np.median(acc[use_ema][v])),
                "oscillation": float(np.nanmedian(oscillation[v])),
                "sign_change_fraction": float(np.median(sign_changes[v, :, -c.window :])),
                "oscillation_flagged_fraction": float((first_osc[v] >= 0).mean()),
                "median_first_oscillation_step": _common.median_fired(first_osc[v]),
                "oscillating_late_fraction": float(np.median(osc_late[v])),
            }
            for s in range(c.num_seeds):
                records.append(
                    {
                        "schedule": sched,
                        "ema": use_ema,
                        "seed": s,
                        "final_loss": float(final[use_ema][v, s]),
                        "test_accuracy": float(acc[use_ema][v, s]),
                        "oscillation": float(oscillation[v, s]),
                        "first_oscillation_step": int(first_osc[v, s]),
                        "oscillating_late_fraction": float(osc_late[v, s]),
                    }
                )
    seconds = {
        "compile": res.compile_seconds,
        "run": res.run_seconds,
        "total": time.perf_counter() - t_start,
    }
    result = {
        "experiment": "instability",
        "summary": summary,
        "records": records,
        "arrays": {
            "losses": losses,
            "final_loss": final[False],
            "final_loss_ema": final[True],
        },
        "seconds": seconds,
        "out_dir": None,
    }
    if out_dir is not None:
        from jaxopt_lab import plot

        figures = {
            "loss_curves": plot.loss_curves(
                {s: losses[v] for v, s in enumerate(SCHEDULES)},
                flagged={s: first_osc[v] for v, s in enumerate(SCHEDULES)},
                flag_name="oscillation",
                title=f"Peak learning rate {c.peak_learning_rate:g}: constant vs warmup + cosine",
            )
        }
        result["out_dir"] = str(
            _common.write_run_dir(
                out_dir, records, _common.make_meta(c, seconds=seconds, summary=summary), figures
            )
        )
    return result

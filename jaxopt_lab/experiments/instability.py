"""Training instability at a constant large learning rate; warmup + cosine decay and
weight averaging (EMA) as remedies.

A tanh MLP (64 -> 64 -> 64 -> 10, Glorot init) is trained on scikit-learn's 8x8 digits
with minibatch SGD at the same PEAK learning rate under two schedules, in the sweep core
(:func:`jaxopt_lab.compare.train`, one program for both schedules; seed ``i`` is
``fold_in(key(seed), i)``: the same initialization and batches for both schedules):

* ``constant``: the peak rate from the first step. It is above the stability edge of
  this network (roughly ``2 / sharpness``): the loss oscillates by tens of nats from step
  to step and never settles. The health monitor's ``oscillation`` flag fires and is
  still raised over most of the last ``window`` steps (quick preset, peak 1.2: on 64/64
  seeds, final training loss ~30).
* ``warmup_cosine``: ``optax.warmup_cosine_decay_schedule`` (linear warmup to the same
  peak, cosine decay to 0): the rate crosses the stability edge near the end of the
  warmup, the loss catapults once (EMA loss up to ~30: the monitor's ``oscillation``
  flag fires there on most seeds, a real transient instability) and then, as the rate
  decays, training settles: no oscillation over the last ``window`` steps on any seed.
  There is no peak where warmup avoids the catapult while the constant rate oscillates:
  measured over 64 seeds, the tanh net sharpens during a warmup (at peak 0.8 with a
  150-step warmup the flag fires on 61% of warmup runs but 14% of constant runs; at 0.7
  neither fires on more than 3%).

Both runs also keep an exponential moving average of the weights (Polyak averaging,
:func:`jaxopt_lab.transforms.weight_ema`) and a stochastic weight average (the equal
average of every iterate after ``swa_start * steps``, :func:`jaxopt_lab.transforms.swa`;
Izmailov et al. 2018), so each schedule is reported for the last iterate, EMA and SWA:
averaging the oscillating iterates of the constant schedule gives a far lower loss than
its last iterate, while for the decayed schedule EMA changes little and SWA (which
averages iterates taken at higher rates) is worse than the last iterate.

Measures (medians over seeds): loss on the whole training set at the end (raw and EMA
weights), test accuracy (raw and EMA), the oscillation measure (standard deviation of
the step-to-step change of the minibatch loss over the last ``window`` steps, plus the
monitor's sign-change fraction), and when the oscillation flag first fired.

References:
  Goyal et al., 2017. Accurate, large minibatch SGD: training ImageNet in 1 hour (warmup).
  Loshchilov & Hutter, 2017. SGDR: stochastic gradient descent with warm restarts (cosine).
  Polyak & Juditsky, 1992. Acceleration of stochastic approximation by averaging.
  Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, 2018. Averaging weights leads to wider
  optima and better generalization.
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

from jaxopt_lab import compare, data, health, models
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common
from jaxopt_lab.transforms import WeightEMAState, find_state, swa, swa_params, weight_ema

SCHEDULES: tuple[str, ...] = ("constant", "warmup_cosine")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the instability experiment.

    Attributes:
      num_seeds: runs per schedule (vmapped).
      seed: base seed (seed ``i`` is ``fold_in(key(seed), i)``: the same initialization
        and batches for both schedules).
      hidden: hidden widths of the tanh MLP.
      batch_size: examples per step.
      steps: SGD steps.
      peak_learning_rate: the constant rate, and the peak of the warmup + cosine schedule.
      warmup_steps: linear warmup length.
      ema_decay: decay of the weight EMA.
      swa_start: fraction of the steps after which stochastic weight averaging starts
        (the equal-weight average of every later iterate; Izmailov et al. 2018).
      window: steps at the end over which the oscillation measure is taken.
      oscillation_relative_std: the monitor's oscillation threshold (std of the loss
        differences relative to the EMA loss).
      oscillation_floor: the monitor reports no oscillation while the EMA loss is below
        this (minibatch noise near a loss of 0 is large relative to the loss).
      fast_compile: compile with XLA optimization level 0 on CPU (quicker for short runs).
    """

    num_seeds: int = 32
    seed: int = 0
    hidden: tuple[int, ...] = (64, 64)
    batch_size: int = 64
    steps: int = 400
    peak_learning_rate: float = 1.2
    warmup_steps: int = 50
    ema_decay: float = 0.98
    swa_start: float = 0.5
    window: int = 100
    oscillation_relative_std: float = 0.1
    oscillation_floor: float = 0.5
    fast_compile: bool = False

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
        if isinstance(self.swa_start, bool) or not isinstance(self.swa_start, int | float) \
                or not 0.0 <= self.swa_start < 1.0:
            raise ValueError(f"swa_start must be a fraction in [0, 1), got {self.swa_start!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds on a laptop CPU: 32 seeds, 400 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """128 seeds, 2000 steps, warmup 200."""
        return cls(num_seeds=128, steps=2000, warmup_steps=200, window=400, ema_decay=0.995)


def _train(c: Config, peaks: list[float], digits: dict) -> tuple[Any, compare.TrainResults]:
    """Both schedules x a traced grid of peak rates, one family ``"sgd"`` (grid rows:
    :func:`_row`): ``compare.train``."""
    model = models.mlp(64, c.hidden, 10, activation="tanh", init="xavier")

    def sgd_ema(lr):
        return optax.chain(optax.sgd(lr), weight_ema(c.ema_decay),
                           swa(start_step=int(c.swa_start * c.steps)))

    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, c.warmup_steps, c.steps, end_value=0.0)

    def schedule(peak, warmup):
        # one family, both schedules (one compiled program): warmup = 0.0 is the constant
        # rate, 1.0 warmup + cosine (peak * unit: optax's factory rejects a traced peak)
        return sgd_ema(lambda step: peak * jnp.where(warmup > 0, unit(step), 1.0))

    def evaluate_state(params, d, opt_state):
        # the last iterate, the weight EMA and the SWA average (from the final opt state)
        (x, y), (x_test, y_test) = d["train"], d["test"]
        ema = find_state(opt_state, WeightEMAState).ema
        out = {}
        for suffix, p in (("", params), ("_ema", ema), ("_swa", swa_params(opt_state))):
            out[f"train_loss{suffix}"] = model.loss(p, (x, y))
            out[f"test_accuracy{suffix}"] = jnp.mean(
                jnp.argmax(model.apply(p, x_test), -1) == y_test)
        return out

    th = health.Thresholds(
        oscillation_window=min(20, c.window),
        oscillation_relative_std=c.oscillation_relative_std,
        oscillation_floor=c.oscillation_floor,
    )
    batch = c.batch_size
    res = compare.train(
        model.init,
        model.loss,
        {"sgd": (schedule, {"peak": list(peaks), "warmup": [0.0, 1.0]})},
        num_seeds=c.num_seeds,
        steps=c.steps,
        key=jax.random.key(c.seed),
        batch_fn=lambda d, key, step: data.sample_batch(key, d["train"], batch),
        data=digits,
        evaluate_state=evaluate_state,
        thresholds=th,
        layer_order=model.layers,
        fast_compile=c.fast_compile,
    )
    return model, res


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Train under both schedules and summarize; write a run directory if asked.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional run directory (:meth:`jaxopt_lab.compare.Results.save`):
        ``records.csv``, ``metrics.npz``, ``curves.npz``, ``meta.json`` and
        ``loss_curves.png``.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``, variants = the
      schedules): per seed ``metrics[v]``: ``final_loss`` / ``final_loss_ema`` (loss on
      the whole training set of the last iterate / of the weight EMA), ``test_accuracy``
      / ``test_accuracy_ema``, ``final_loss_swa`` / ``test_accuracy_swa`` (the SWA
      average of the iterates after ``swa_start * steps``), ``oscillation`` (std of the
      step-to-step change of the minibatch loss over the last ``window`` steps),
      ``first_oscillation_step`` (-1: never), ``oscillation_flagged``,
      ``oscillating_late_fraction`` (share of the last ``window`` steps with the flag
      raised), ``nonfinite``; ``curves[v]["loss"]`` ``[1, S, steps]``; ``summary``:
      ``{schedule: {final_loss, final_loss_ema, final_loss_swa, test_accuracy,
      test_accuracy_ema, test_accuracy_swa, oscillation (medians + bootstrap CIs; a
      diverged seed counts as +inf loss), sign_change_fraction, oscillation_flagged (rate
      + Wilson CI), median_first_oscillation_step, oscillating_late (rate of seeds flagged
      over more than half the last window, + CI), oscillating_late_fraction (median)},
      "nonfinite_seeds": {schedule: [seeds]}}``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an instability.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    digits = data.load_digits()
    digits = {"train": digits["train"], "test": digits["test"]}
    _, res = _train(c, [c.peak_learning_rate], digits)
    key = jax.random.key(c.seed)

    metrics, curves, summary = {}, {}, {}
    for v, name in enumerate(SCHEDULES):
        h = _row(res, name, c.peak_learning_rate)
        m = _seed_metrics(res, h, c.window)
        losses = res.losses("sgd")[h]
        metrics[name] = m
        curves[name] = {"loss": losses}
        sign_changes = np.asarray(res.reports["sgd"].sign_change_fraction)[h]
        k = jax.random.fold_in(key, v)
        summary[name] = {
            **{q: _common.median_ci(m[q], jax.random.fold_in(k, i)) for i, q in enumerate(
                ("final_loss", "final_loss_ema", "oscillation", "final_loss_swa"))},
            # accuracies: larger is better, a diverged seed is never NaN here (argmax)
            "test_accuracy": _common.median_ci(m["test_accuracy"], k),
            "test_accuracy_ema": _common.median_ci(m["test_accuracy_ema"], k),
            "test_accuracy_swa": _common.median_ci(m["test_accuracy_swa"], k),
            "sign_change_fraction": float(np.median(sign_changes[:, -c.window:])),
            "oscillation_flagged": _common.rate(m["oscillation_flagged"]),
            "median_first_oscillation_step": _common.median_fired(m["first_oscillation_step"]),
            "oscillating_late": _common.rate(m["oscillating_late_fraction"] > 0.5),
            "oscillating_late_fraction": float(np.median(m["oscillating_late_fraction"])),
        }
    result = _common.results(
        c, SCHEDULES, metrics, curves, summary,
        compile_seconds=res.compile_seconds, run_seconds=res.run_seconds,
        hparams={s: [{"peak_learning_rate": c.peak_learning_rate}] for s in SCHEDULES},
        total_seconds=time.perf_counter() - t_start, experiment="instability",
    )
    if out_dir is not None:
        from jaxopt_lab import plot

        figures = {
            "loss_curves": plot.loss_curves(
                {s: curves[s]["loss"] for s in SCHEDULES},
                flagged={s: metrics[s]["first_oscillation_step"] for s in SCHEDULES},
                flag_name="oscillation",
                title=f"Peak learning rate {c.peak_learning_rate:g}: constant vs warmup + cosine",
            )
        }
        result.save(out_dir, figures=figures)
    return result


def _row(res: compare.TrainResults, schedule: str, peak: float) -> int:
    """Grid row of ``schedule`` at ``peak`` in the ``"sgd"`` family."""
    warm = float(SCHEDULES.index(schedule))
    for h, hp in enumerate(res.hparams["sgd"]):
        if np.isclose(hp["warmup"], warm) and np.isclose(hp["peak"], peak):
            return h
    raise ValueError(f"no grid row for schedule={schedule!r}, peak={peak!r}")


def _seed_metrics(res: compare.TrainResults, h: int, window: int) -> dict:
    """Per-seed metrics of grid row ``h`` (arrays ``[S]``)."""
    name = "sgd"
    final = {k: np.asarray(a)[h] for k, a in res.final[name].items()}
    losses = res.losses(name)[h]
    first = res.first_step(name, "oscillation")[h]
    flags = np.asarray(res.reports[name].flags.oscillation)[h]
    with np.errstate(invalid="ignore"):
        oscillation = np.std(np.diff(losses[:, -window:], axis=-1), axis=-1)
    return {
        "final_loss": final["train_loss"],
        "final_loss_ema": final["train_loss_ema"],
        "test_accuracy": final["test_accuracy"],
        "test_accuracy_ema": final["test_accuracy_ema"],
        "final_loss_swa": final["train_loss_swa"],
        "test_accuracy_swa": final["test_accuracy_swa"],
        "oscillation": oscillation,
        "first_oscillation_step": first,
        "oscillation_flagged": first >= 0,
        "oscillating_late_fraction": flags[:, -window:].mean(axis=-1),
        "nonfinite": final["nonfinite"].astype(bool),
    }

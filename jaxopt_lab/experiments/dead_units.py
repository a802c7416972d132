"""Dead ReLU units under a large learning rate, and the leaky-ReLU remedy.

An MLP (64 -> 128 -> 128 -> 10) is trained on scikit-learn's 8x8 digits with plain
SGD. Three variants, each vmapped over seeds:

* ``relu_small_lr``: ReLU at a modest step size (control): few dead units.
* ``relu_large_lr``: ReLU at a large step size: early updates push many units'
  pre-activations negative for every input; their gradient is then exactly zero and
  they never recover (the "dying ReLU" problem). The health monitor's
  ``dead_units`` flag fires and the loss stalls.
* ``leaky_relu_large_lr``: leaky ReLU (slope 0.01) at the same large step size: a
  unit with negative pre-activations still gets gradient, so none die.

The dead fraction is measured two ways: per training batch inside the compiled loop
(the health monitor, every step) and, at the end, over the whole training set (a unit
is dead when its activation is zero for every training example).

References:
  Maas, Hannun & Ng, 2013. Rectifier nonlinearities improve neural network acoustic
  models (leaky ReLU).
  Lu, Shin, Su & Karniadakis, 2020. Dying ReLU and initialization: theory and
  numerical examples.
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

VARIANTS: tuple[str, ...] = ("relu_small_lr", "relu_large_lr", "leaky_relu_large_lr")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the dead-units experiment.

    Attributes:
      num_seeds: runs per variant (vmapped).
      seed: base seed (same seeds, hence same initializations, for every variant).
      hidden: hidden-layer widths.
      batch_size: examples per SGD step.
      steps: SGD steps.
      small_learning_rate: step size of the control.
      large_learning_rate: the step size that kills ReLU units.
      dead_threshold: the monitor's dead-fraction threshold.
    """

    num_seeds: int = 8
    seed: int = 0
    hidden: tuple[int, ...] = (128, 128)
    batch_size: int = 64
    steps: int = 300
    small_learning_rate: float = 0.05
    large_learning_rate: float = 1.0
    dead_threshold: float = 0.25

    def __post_init__(self):
        for name in ("num_seeds", "batch_size", "steps"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty tuple of ints, got {self.hidden!r}")
        for h in self.hidden:
            check_int("hidden", h)
        check_positive("small_learning_rate", self.small_learning_rate)
        check_positive("large_learning_rate", self.large_learning_rate)
        if not 0.0 < self.dead_threshold < 1.0:
            raise ValueError(f"dead_threshold must be in (0, 1), got {self.dead_threshold!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds on a laptop CPU: 8 seeds, 300 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """32 seeds, 2000 steps."""
        return cls(num_seeds=32, steps=2000)


def _train(c: Config, activation: str, learning_rates: tuple[float, ...], train_set):
    """Train one MLP family with one optimizer per learning rate; returns (model, result)."""
    model = models.mlp(64, c.hidden, 10, activation=activation)
    ce = models.loss_fn("cross_entropy")

    def loss(params, batch):
        out, acts = model.apply(params, batch[0], return_activations=True)
        return ce(out, batch[1]), acts

    res = _common.train_over_seeds(
        model.init,
        loss,
        tuple(optax.sgd(lr) for lr in learning_rates),
        keys=_common.seed_keys(c.seed, c.num_seeds),
        steps=c.steps,
        batch_fn=lambda d, key, step: data.sample_batch(key, d, c.batch_size),
        data=train_set,
        has_activations=True,
        thresholds=health.Thresholds(dead_fraction=c.dead_threshold),
        layer_order=model.layers,
    )
    return model, res


def run(config: Config, out_dir: Any = None) -> dict[str, Any]:
    """Run the three variants and summarize; write a run directory if ``out_dir`` is given.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional directory for ``records.csv``, ``meta.json``,
        ``dead_fraction.png`` and ``loss_curves.png``.

    Returns:
      dict with ``"summary"`` (``{variant: {dead_fraction_start, dead_fraction_end,
      dataset_dead_fraction, flagged_fraction, median_first_flag_step, final_loss,
      test_accuracy}}``, medians/means over seeds), ``"arrays"`` (``dead_fraction`` and
      ``losses`` ``[V, S, steps]``), ``"records"``, ``"seconds"``, ``"out_dir"``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a dead_units.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    digits = data.load_digits()
    train_set, (x_test, y_test) = digits["train"], digits["test"]
    runs = [
        _train(c, "relu", (c.small_learning_rate, c.large_learning_rate), train_set),
        _train(c, "leaky_relu", (c.large_learning_rate,), train_set),
    ]
    # (model, result, optimizer index) per variant, in VARIANTS order
    plan = [(runs[0], 0), (runs[0], 1), (runs[1], 0)]

    summary, records, dead_curves, loss_curves, first_flags = {}, [], {}, {}, {}
    compile_s = sum(r[1].compile_seconds for r in runs)
    run_s = sum(r[1].run_seconds for r in runs)
    for name, ((model, res), v) in zip(VARIANTS, plan, strict=True):
        pick = lambda a, v=v: a[v]  # leaves are [optimizers, seeds, ...]
        params = jax.tree.map(pick, res.params)
        dead = pick(np.asarray(res.reports.dead_fraction))  # [S, T]
        losses = pick(res.losses)
        first = pick(res.first_step("dead_units"))
        _, acts = jax.vmap(lambda p, m=model: m.apply(p, train_set[0], return_activations=True))(
            params
        )
        # dead on EVERY training example: the monitor's detector over the whole set, per seed
        dataset_dead = np.asarray(jax.vmap(lambda a: health.dead_fraction(a)[0])(acts))  # [S]
        logits = jax.vmap(lambda p, m=model: m.apply(p, x_test))(params)
        acc = np.asarray(jnp.mean(jnp.argmax(logits, -1) == y_test, axis=-1))
        final = _common.tail_mean(losses, 20)
        dead_curves[name], loss_curves[name], first_flags[name] = dead, losses, first
        summary[name] = {
            "dead_fraction_start": float(dead[:, 0].mean()),
            "dead_fraction_end": float(dead[:, -20:].mean()),
            "dataset_dead_fraction": float(dataset_dead.mean()),
            "flagged_fraction": float((first >= 0).mean()),
            "median_first_flag_step": _common.median_fired(first),
            "final_loss": float(np.nanmedian(final)),
            "test_accuracy": float(np.median(acc)),
        }
        for s in range(c.num_seeds):
            records.append(
                {
                    "variant": name,
                    "seed": s,
                    "dead_fraction_end": float(dead[s, -20:].mean()),
                    "dataset_dead_fraction": float(dataset_dead[s]),
                    "first_flag_step": int(first[s]),
                    "final_loss": float(final[s]),
                    "test_accuracy": float(acc[s]),
                }
            )
    seconds = {"compile": compile_s, "run": run_s, "total": time.perf_counter() - t_start}
    result = {
        "experiment": "dead_units",
        "variants": list(VARIANTS),
        "summary": summary,
        "records": records,
        "arrays": {
            "dead_fraction": np.stack([dead_curves[k] for k in VARIANTS]),
            "losses": np.stack([loss_curves[k] for k in VARIANTS]),
        },
        "seconds": seconds,
        "out_dir": None,
    }
    if out_dir is not None:
        from jaxopt_lab import plot

        figures = {
            "dead_fraction": plot.dead_fraction_curves(
                dead_curves, threshold=c.dead_threshold, title="Dead ReLU fraction per batch"
            ),
            "loss_curves": plot.loss_curves(
                loss_curves, flagged=first_flags, flag_name="dead units", title="Training loss"
            ),
        }
        result["out_dir"] = str(
            _common.write_run_dir(
                out_dir, records, _common.make_meta(c, seconds=seconds, summary=summary), figures
            )
        )
    return result

"""Dead ReLU units under a large learning rate, and the leaky-ReLU remedy.

An MLP (64 -> 128 -> 128 -> 10) is trained on scikit-learn's 8x8 digits with plain
SGD, in the sweep core (:func:`jaxopt_lab.compare.train`: the two ReLU learning rates are
one traced grid, one compiled program; leaky ReLU is a second call). Seed ``i`` is
``fold_in(key(seed), i)`` for every variant, so the variants are paired and seed ``i``
does not depend on how many seeds ran. Three variants:

* ``relu_small_lr``: ReLU at a modest step size (control): few dead units.
* ``relu_large_lr``: ReLU at a large step size: early updates push many units'
  pre-activations negative for every input; their gradient is then exactly zero and
  they never recover (the "dying ReLU" problem). The health monitor's
  ``dead_units`` flag fires and the loss stalls.
* ``leaky_relu_large_lr``: leaky ReLU (slope 0.01) at the same large step size: a
  unit with negative pre-activations still gets gradient, so none die. (At a still
  larger step, 1.0, leaky ReLU itself diverges on some seeds: such seeds are listed in
  the summary's ``nonfinite_seeds``, never dropped from its statistics.)

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

from jaxopt_lab import compare, data, health, models
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common

VARIANTS: tuple[str, ...] = ("relu_small_lr", "relu_large_lr", "leaky_relu_large_lr")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the dead-units experiment.

    Attributes:
      num_seeds: runs per variant (vmapped).
      seed: base seed (seed ``i`` is ``fold_in(key(seed), i)``, the same initialization
        and batches for every variant).
      hidden: hidden-layer widths.
      batch_size: examples per SGD step.
      steps: SGD steps.
      small_learning_rate: step size of the control.
      large_learning_rate: the step size that kills ReLU units.
      dead_threshold: the monitor's dead-fraction threshold.
      fast_compile: compile with XLA optimization level 0 on CPU (quicker for short runs).
    """

    num_seeds: int = 32
    seed: int = 0
    hidden: tuple[int, ...] = (128, 128)
    batch_size: int = 64
    steps: int = 300
    small_learning_rate: float = 0.05
    large_learning_rate: float = 1.0
    dead_threshold: float = 0.25
    fast_compile: bool = False

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
        """Seconds on a laptop CPU: 32 seeds, 300 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """128 seeds, 2000 steps."""
        return cls(num_seeds=128, steps=2000, fast_compile=False)


def _train(c: Config, activation: str, learning_rates: list[float], digits: dict):
    """One network family, one traced learning-rate grid: ``compare.train`` results."""
    model = models.mlp(64, c.hidden, 10, activation=activation)
    ce = models.loss_fn("cross_entropy")

    def loss(params, batch):
        out, acts = model.apply(params, batch[0], return_activations=True)
        return ce(out, batch[1]), acts

    def evaluate(params, d):
        _, acts = model.apply(params, d["train"][0], return_activations=True)
        logits = model.apply(params, d["test"][0])
        return {
            # dead on EVERY training example: the monitor's detector over the whole set
            "dataset_dead_fraction": health.dead_fraction(acts)[0],
            "test_accuracy": jnp.mean(jnp.argmax(logits, -1) == d["test"][1]),
        }

    batch = c.batch_size
    return compare.train(
        model.init,
        loss,
        {"sgd": (optax.sgd, {"learning_rate": learning_rates})},
        num_seeds=c.num_seeds,
        steps=c.steps,
        key=jax.random.key(c.seed),
        batch_fn=lambda d, key, step: data.sample_batch(key, d["train"], batch),
        data=digits,
        has_activations=True,
        evaluate=evaluate,
        thresholds=health.Thresholds(dead_fraction=c.dead_threshold),
        layer_order=model.layers,
        fast_compile=c.fast_compile,
    )


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Run the three variants and summarize; write a run directory if ``out_dir`` is given.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional run directory (:meth:`jaxopt_lab.compare.Results.save`):
        ``records.csv``, ``metrics.npz``, ``curves.npz``, ``meta.json``,
        ``dead_fraction.png`` and ``loss_curves.png``.

    Returns:
      :class:`jaxopt_lab.compare.Results` with ``group_column="variant"``: per seed
      ``metrics[v]`` (``dead_fraction_end``, ``dataset_dead_fraction``,
      ``first_flag_step``, ``final_loss``, ``test_accuracy``, ``nonfinite``), ``curves[v]``
      (``loss``, ``dead_fraction`` ``[1, S, steps]``) and ``summary``: ``{variant:
      {dead_fraction_start, dead_fraction_end, dataset_dead_fraction (median + bootstrap
      CI), flagged (rate + Wilson CI), median_first_flag_step, final_loss, test_accuracy
      (median + CI), nonfinite (rate + CI)}, "nonfinite_seeds": {variant: [seeds]}}``.
      A diverged seed counts as ``+inf`` loss in the medians (never dropped).
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a dead_units.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    digits = data.load_digits()
    digits = {"train": digits["train"], "test": digits["test"]}
    relu = _train(c, "relu", [c.small_learning_rate, c.large_learning_rate], digits)
    leaky = _train(c, "leaky_relu", [c.large_learning_rate], digits)
    plan = {VARIANTS[0]: (relu, 0), VARIANTS[1]: (relu, 1), VARIANTS[2]: (leaky, 0)}
    key = jax.random.key(c.seed)

    metrics, curves, summary = {}, {}, {}
    for v, (name, (res, h)) in enumerate(plan.items()):
        dead = np.asarray(res.reports["sgd"].dead_fraction)[h]  # [S, T]
        losses = res.losses("sgd")[h]
        first = res.first_step("sgd", "dead_units")[h]
        final = {k: np.asarray(a)[h] for k, a in res.final["sgd"].items()}
        tail = min(20, c.steps)
        metrics[name] = {
            "dead_fraction_end": dead[:, -tail:].mean(axis=-1),
            "dataset_dead_fraction": final["dataset_dead_fraction"],
            "first_flag_step": first,
            "final_loss": final["final_loss"],
            "test_accuracy": final["test_accuracy"],
            "nonfinite": final["nonfinite"].astype(bool),
        }
        curves[name] = {"loss": losses, "dead_fraction": dead}
        k = jax.random.fold_in(key, v)
        summary[name] = {
            "dead_fraction_start": float(dead[:, 0].mean()),
            "dead_fraction_end": float(metrics[name]["dead_fraction_end"].mean()),
            "dataset_dead_fraction": _common.median_ci(final["dataset_dead_fraction"], k),
            "flagged": _common.rate(first >= 0),
            "median_first_flag_step": _common.median_fired(first),
            "final_loss": _common.median_ci(final["final_loss"], k),
            "test_accuracy": _common.median_ci(final["test_accuracy"], k),
            "nonfinite": _common.rate(final["nonfinite"]),
        }
    result = _common.results(
        c, VARIANTS, metrics, curves, summary,
        compile_seconds=relu.compile_seconds + leaky.compile_seconds,
        run_seconds=relu.run_seconds + leaky.run_seconds,
        hparams={VARIANTS[0]: [{"activation": "relu", "learning_rate": c.small_learning_rate}],
                 VARIANTS[1]: [{"activation": "relu", "learning_rate": c.large_learning_rate}],
                 VARIANTS[2]: [{"activation": "leaky_relu",
                                "learning_rate": c.large_learning_rate}]},
        total_seconds=time.perf_counter() - t_start,
        experiment="dead_units",
    )
    if out_dir is not None:
        from jaxopt_lab import plot

        first_flags = {v: metrics[v]["first_flag_step"] for v in VARIANTS}
        figures = {
            "dead_fraction": plot.dead_fraction_curves(
                {v: curves[v]["dead_fraction"] for v in VARIANTS},
                threshold=c.dead_threshold, title="Dead ReLU fraction per batch",
            ),
            "loss_curves": plot.loss_curves(
                {v: curves[v]["loss"] for v in VARIANTS}, flagged=first_flags,
                flag_name="dead units", title="Training loss",
            ),
        }
        result.save(out_dir, figures=figures)
    return result

"""Vanishing gradients in a deep sigmoid MLP, and two fixes: ReLU + He init, and residuals.

Three ``depth``-layer MLPs of equal width are trained on scikit-learn's 8x8
digits with plain SGD in the sweep core (:func:`jaxopt_lab.compare.train`, one call and
one compiled program per architecture; seed ``i`` is ``fold_in(key(seed), i)``):

* ``sigmoid``: sigmoid activations, Glorot (Xavier) init. Each layer multiplies
  the backpropagated signal by ``sigmoid' <= 1/4`` times a weight matrix of
  gain ~1, so the first layer receives orders of magnitude less gradient than
  the last, and the health monitor's ``vanishing`` flag fires.
* ``relu_he``: ReLU with He init, which keeps the gradient scale across layers.
* ``sigmoid_residual``: the SAME sigmoid layers with skip connections
  ``h_i = h_{i-1} + sigmoid(W_i h_{i-1} + b_i)``: the identity path carries the
  gradient to the first layer.

The per-layer gradient-norm profile is recorded at initialization (step 0) and
after ``steps`` SGD steps; the summary reports, per variant, the median ratio
first-layer / last-layer gradient norm, the fraction of seeds flagged
``vanishing``, and the losses.

References:
  Hochreiter, 1991, "Untersuchungen zu dynamischen neuronalen Netzen".
  Glorot & Bengio, 2010, "Understanding the difficulty of training deep
  feedforward neural networks".
  He, Zhang, Ren & Sun, 2015, "Delving Deep into Rectifiers".
  He, Zhang, Ren & Sun, 2016, "Deep Residual Learning for Image Recognition".
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
import optax

from jaxopt_lab import compare, data, health, models
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common

#: variant -> (activation, init, residual)
ARCHITECTURES: dict[str, tuple[str, str, bool]] = {
    "sigmoid": ("sigmoid", "xavier", False),
    "relu_he": ("relu", "he", False),
    "sigmoid_residual": ("sigmoid", "xavier", True),
}
VARIANTS: tuple[str, ...] = tuple(ARCHITECTURES)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the vanishing-gradient experiment.

    Attributes:
      num_seeds: independent runs per architecture (vmapped).
      seed: base seed (seed ``i`` is ``fold_in(key(seed), i)``).
      depth: number of hidden layers.
      width: units per hidden layer.
      batch_size: examples per SGD step (sampled with replacement from the train split).
      steps: SGD steps after initialization.
      learning_rate: SGD learning rate (at 0.1 the 20-layer ReLU net diverges within a few
        hundred steps and the residual sigmoid net's loss grows; at 0.02 over 10 steps the
        residual net's loss still rises).
      vanishing_ratio: threshold of the health monitor (first/last layer gradient norm).
      fast_compile: compile with XLA optimization level 0 on CPU (quicker for short runs).
    """

    num_seeds: int = 32
    seed: int = 0
    depth: int = 20
    width: int = 32
    batch_size: int = 64
    steps: int = 50
    learning_rate: float = 0.005
    vanishing_ratio: float = 1e-3
    fast_compile: bool = True

    def __post_init__(self):
        for name in ("num_seeds", "depth", "width", "batch_size", "steps"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_positive("learning_rate", self.learning_rate)
        check_positive("vanishing_ratio", self.vanishing_ratio)

    @classmethod
    def quick(cls) -> Config:
        """32 seeds, 20 layers of width 32, 50 SGD steps at 0.005 (every residual seed's loss
        falls, from ~16 to ~2.7: measured on 32 seeds)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """128 seeds, 20 layers of width 64, 500 SGD steps."""
        return cls(num_seeds=128, width=64, steps=500, fast_compile=False)


def _train_variant(c: Config, name: str, train_xy: Any):
    activation, init, residual = ARCHITECTURES[name]
    model = models.mlp(
        64,
        [c.width] * c.depth,
        10,
        activation=activation,
        init=init,
        residual=residual,
        loss="cross_entropy",
    )
    xent = models.loss_fn("cross_entropy")

    def loss_and_acts(params, batch):
        x, y = batch
        out, acts = model.apply(params, x, return_activations=True)
        return xent(out, y), acts

    batch = c.batch_size

    def batch_fn(train, key, step):
        return data.sample_batch(key, train, batch)

    return model, compare.train(
        model.init,
        loss_and_acts,
        {"sgd": (optax.sgd, {"learning_rate": [c.learning_rate]})},
        num_seeds=c.num_seeds,
        steps=c.steps,
        key=jax.random.key(c.seed),
        batch_fn=batch_fn,
        data=train_xy,
        has_activations=True,
        thresholds=health.Thresholds(vanishing_ratio=c.vanishing_ratio),
        layer_order=model.layers,
        fast_compile=c.fast_compile,
    )


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Train the three architectures and compare their gradient profiles.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional run directory (:meth:`jaxopt_lab.compare.Results.save`):
        ``records.csv``, ``metrics.npz``, ``curves.npz``, ``meta.json``,
        ``grad_profile.png`` (at init and after training), ``loss_curves.png`` and
        ``dead_fraction.png``.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``): per seed
      ``metrics[v]`` (``grad_ratio_init``, ``grad_ratio_final``, ``first_layer_grad_init``,
      ``last_layer_grad_init``, ``first_vanishing_step``, ``initial_loss``,
      ``final_loss`` (mean of the last ``min(20, steps)`` losses), ``loss_drop``
      (``initial_loss - final_loss``), ``nonfinite``); ``curves[v]``: ``loss``,
      ``grad_ratio``, ``dead_fraction`` ``[1, S, steps]`` and the per-layer gradient-norm
      profiles ``profile_init`` / ``profile_final`` ``[1, S, layers]`` (last axis: layers,
      input to output, named in ``meta["layers"]``); ``summary``: ``{variant:
      {grad_ratio_init, grad_ratio_final (medians), vanishing (rate + Wilson CI),
      first_vanishing_step, initial_loss, final_loss, loss_drop (median + bootstrap
      CI), loss_fell (rate of seeds whose loss fell, + CI), seed_relative_iqr},
      "nonfinite_seeds": {variant: [seeds]}}``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a vanishing.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    train_xy = data.load_digits()["train"]
    key = jax.random.key(c.seed)

    metrics, curves, summary = {}, {}, {}
    compile_s = run_s = 0.0
    layers: tuple[str, ...] = ()
    for v, name in enumerate(VARIANTS):
        model, res = _train_variant(c, name, train_xy)
        layers = model.layers
        compile_s += res.compile_seconds
        run_s += res.run_seconds
        rep = res.reports["sgd"]
        lnorms = np.asarray(rep.layer_grad_norms)[0]  # [S, T, L]
        ratio = np.asarray(rep.grad_ratio)[0]  # [S, T]
        losses = res.losses("sgd")[0]
        first_van = res.first_step("sgd", "vanishing")[0]
        final = res.final["sgd"]
        final_loss = np.asarray(final["final_loss"])[0]
        drop = losses[:, 0] - final_loss
        metrics[name] = {
            "grad_ratio_init": ratio[:, 0],
            "grad_ratio_final": ratio[:, -1],
            "first_layer_grad_init": lnorms[:, 0, 0],
            "last_layer_grad_init": lnorms[:, 0, -1],
            "first_vanishing_step": first_van,
            "initial_loss": losses[:, 0],
            "final_loss": final_loss,
            "loss_drop": drop,
            "nonfinite": np.asarray(final["nonfinite"])[0].astype(bool),
        }
        curves[name] = {
            "loss": losses,
            "grad_ratio": ratio,
            "dead_fraction": np.asarray(rep.dead_fraction)[0],
            "profile_init": lnorms[:, 0],
            "profile_final": lnorms[:, -1],
        }
        k = jax.random.fold_in(key, v)
        summary[name] = {
            "grad_ratio_init": float(np.median(ratio[:, 0])),
            "grad_ratio_final": float(np.median(ratio[:, -1])),
            "vanishing": _common.rate(first_van >= 0),
            "first_vanishing_step": _common.median_fired(first_van),
            "initial_loss": float(np.median(losses[:, 0])),
            "final_loss": _common.median_ci(final_loss, k),
            # a diverged seed (NaN final loss) has an unknown drop: counted as -inf
            "loss_drop": _common.median_ci(-np.where(np.isnan(drop), -np.inf, drop), k),
            "loss_fell": _common.rate(drop > 0),
            "seed_relative_iqr": float(health.seed_sensitivity(final_loss).relative_iqr),
        }
        # median_ci ranks NaN as worst (+inf); for a drop, larger is better: undo the sign
        ld = summary[name]["loss_drop"]
        summary[name]["loss_drop"] = {"median": -ld["median"],
                                      "ci": [-ld["ci"][1], -ld["ci"][0]]}
    result = _common.results(
        c, VARIANTS, metrics, curves, summary,
        compile_seconds=compile_s, run_seconds=run_s,
        total_seconds=time.perf_counter() - t_start, experiment="vanishing",
        layers=list(layers),
    )
    if out_dir is not None:
        from jaxopt_lab.plot import training as tplot

        profiles = {f"{v} (init)": curves[v]["profile_init"] for v in VARIANTS}
        profiles.update({f"{v} (step {c.steps})": curves[v]["profile_final"] for v in VARIANTS})
        figs = {
            "grad_profile": tplot.gradient_profile(
                profiles,
                layer_labels=layers,
                title=f"{c.depth}-layer MLP on digits: per-layer gradient norm",
            ),
            "loss_curves": tplot.loss_curves(
                {v: curves[v]["loss"] for v in VARIANTS},
                flagged={v: metrics[v]["first_vanishing_step"] for v in VARIANTS},
                flag_name="vanishing",
                ylabel="cross-entropy",
            ),
            "dead_fraction": tplot.dead_fraction_curves(
                {v: curves[v]["dead_fraction"] for v in VARIANTS},
                threshold=health.DEFAULT_THRESHOLDS.dead_fraction,
                title="units with zero activation on the whole batch",
            ),
        }
        result.save(out_dir, figures=figs)
    return result

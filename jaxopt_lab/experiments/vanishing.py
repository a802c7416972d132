"""Vanishing gradients in a deep sigmoid MLP, and two fixes: ReLU + He init, and residuals.

Three ``depth``-layer MLPs of equal width are trained on scikit-learn's 8x8
digits with plain SGD (each vmapped over seeds, one compiled program per
architecture):

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

import numpy as np
import optax

from jaxopt_lab import data, health, models
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
      seed: base seed.
      depth: number of hidden layers.
      width: units per hidden layer.
      batch_size: examples per SGD step (sampled with replacement from the train split).
      steps: SGD steps after initialization.
      learning_rate: SGD learning rate (at 0.1 the 20-layer ReLU net diverges within a few
        hundred steps and the residual sigmoid net's loss grows).
      vanishing_ratio: threshold of the health monitor (first/last layer gradient norm).
      fast_compile: compile with XLA optimization level 0 on CPU (quicker for short runs).
    """

    num_seeds: int = 8
    seed: int = 0
    depth: int = 20
    width: int = 32
    batch_size: int = 64
    steps: int = 10
    learning_rate: float = 0.02
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
        """8 seeds, 20 layers of width 32, 10 SGD steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """32 seeds, 20 layers of width 64, 500 SGD steps."""
        return cls(num_seeds=32, width=64, steps=500, fast_compile=False)


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

    return model, _common.train_over_seeds(
        model.init,
        loss_and_acts,
        optax.sgd(c.learning_rate),
        keys=_common.seed_keys(c.seed, c.num_seeds),
        steps=c.steps,
        batch_fn=batch_fn,
        data=train_xy,
        has_activations=True,
        thresholds=health.Thresholds(vanishing_ratio=c.vanishing_ratio),
        layer_order=model.layers,
        fast_compile=c.fast_compile,
    )


def run(config: Config, out_dir: Any = None) -> dict[str, Any]:
    """Train the three architectures and compare their gradient profiles.

    Args:
      config: a :class:`Config` (e.g. ``Config.quick()``).
      out_dir: optional directory for ``records.csv``, ``meta.json``,
        ``grad_profile.png`` (at init and after training), ``loss_curves.png`` and
        ``dead_fraction.png``.

    Returns:
      dict with ``"summary"`` (``{variant: {grad_ratio_init, grad_ratio_final,
      vanishing_fraction, first_vanishing_step, initial_loss, final_loss,
      seed_relative_iqr}}``, medians over seeds (``seed_relative_iqr``: spread of the
      final losses, :func:`jaxopt_lab.health.seed_sensitivity`); ratios = first / last
      layer gradient norm, ``vanishing_fraction`` = fraction of seeds flagged at any step),
      ``"arrays"`` (``{variant: {profile_init [S, L], profile_final [S, L],
      grad_ratio [S, steps], losses [S, steps], dead_fraction [S, steps]}}``),
      ``"layers"`` (layer names, input to output), ``"records"``, ``"variants"``,
      ``"seconds"``, ``"out_dir"``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a vanishing.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    digits = data.load_digits()
    train_xy = digits["train"]

    summary, arrays, records = {}, {}, []
    seconds = {"compile": 0.0, "run": 0.0}
    layers: tuple[str, ...] = ()
    for name in VARIANTS:
        model, res = _train_variant(c, name, train_xy)
        layers = model.layers
        seconds["compile"] += res.compile_seconds
        seconds["run"] += res.run_seconds
        lnorms = np.asarray(res.reports.layer_grad_norms)  # [S, T, L]
        ratio = np.asarray(res.reports.grad_ratio)  # [S, T]
        losses = res.losses
        first_van = res.first_step("vanishing")
        final = _common.tail_mean(losses, 5)
        arrays[name] = {
            "profile_init": lnorms[:, 0],
            "profile_final": lnorms[:, -1],
            "grad_ratio": ratio,
            "losses": losses,
            "dead_fraction": np.asarray(res.reports.dead_fraction),
        }
        summary[name] = {
            "grad_ratio_init": float(np.median(ratio[:, 0])),
            "grad_ratio_final": float(np.median(ratio[:, -1])),
            "vanishing_fraction": float(np.mean(first_van >= 0)),
            "first_vanishing_step": _common.median_fired(first_van),
            "initial_loss": float(np.median(losses[:, 0])),
            "final_loss": float(np.median(final)),
            "seed_relative_iqr": float(health.seed_sensitivity(final).relative_iqr),
        }
        for s in range(c.num_seeds):
            records.append(
                {
                    "variant": name,
                    "seed": s,
                    "grad_ratio_init": float(ratio[s, 0]),
                    "grad_ratio_final": float(ratio[s, -1]),
                    "first_layer_grad_init": float(lnorms[s, 0, 0]),
                    "last_layer_grad_init": float(lnorms[s, 0, -1]),
                    "first_vanishing_step": int(first_van[s]),
                    "initial_loss": float(losses[s, 0]),
                    "final_loss": float(final[s]),
                }
            )
    seconds["total"] = time.perf_counter() - t_start
    result = {
        "experiment": "vanishing",
        "variants": list(VARIANTS),
        "layers": list(layers),
        "summary": summary,
        "arrays": arrays,
        "records": records,
        "seconds": seconds,
        "out_dir": None,
    }
    if out_dir is not None:
        from jaxopt_lab.plot import training as tplot

        profiles = {f"{v} (init)": arrays[v]["profile_init"] for v in VARIANTS}
        profiles.update({f"{v} (step {c.steps})": arrays[v]["profile_final"] for v in VARIANTS})
        figs = {
            "grad_profile": tplot.gradient_profile(
                profiles,
                layer_labels=layers,
                title=f"{c.depth}-layer MLP on digits: per-layer gradient norm",
            ),
            "loss_curves": tplot.loss_curves(
                {v: arrays[v]["losses"] for v in VARIANTS},
                flagged={
                    v: np.asarray([r["first_vanishing_step"] for r in records if r["variant"] == v])
                    for v in VARIANTS
                },
                flag_name="vanishing",
                ylabel="cross-entropy",
            ),
            "dead_fraction": tplot.dead_fraction_curves(
                {v: arrays[v]["dead_fraction"] for v in VARIANTS},
                threshold=health.DEFAULT_THRESHOLDS.dead_fraction,
                title="units with zero activation on the whole batch",
            ),
        }
        meta = _common.make_meta(c, seconds=seconds, experiment="vanishing", summary=summary)
        result["out_dir"] = str(_common.write_run_dir(out_dir, records, meta, figs))
    return result

"""Gradient flow through time in recurrent networks: initialization and gated cells.

Claim C11: Xavier input weights with orthogonal recurrent weights keep a tanh RNN's
gradients from exploding, and LSTM / GRU cells resist vanishing gradients better than a
plain RNN. Each variant is a one-layer recurrent network (:func:`jaxopt_lab.models.rnn`,
tanh, Xavier input kernels, hidden ``hidden``) on the adding problem (Hochreiter &
Schmidhuber 1997; :func:`jaxopt_lab.data.adding_problem`, sequences of ``length`` steps):

* ``rnn_normal_<g>``: ``W_hh ~ N(0, g^2 / hidden)`` (spectral radius ~ ``g``) for each
  ``g`` in ``gains``: above 1 a tanh RNN is chaotic and its gradients through time grow,
  below 1 they shrink geometrically;
* ``rnn_orthogonal``: ``W_hh`` orthogonal (every singular value 1; Saxe et al. 2014);
* ``lstm`` (forget-gate bias 1) and ``gru``, orthogonal recurrent blocks.

Gradient flow is the size of the loss gradient with respect to the input at step ``t``,
``||dL/dx_t||`` over an evaluation batch: ``flow_log10 = log10(||dL/dx_1|| /
||dL/dx_T||)`` (0: the first input matters as much as the last; << 0: vanishing; >> 0:
exploding), at initialization and after training. Every variant is then trained with
Adam on the task through the sweep core (:func:`jaxopt_lab.compare.train`, seed ``i`` =
``fold_in(key(seed), i)``: initialization from ``fold_in(key_i, 0)``, the same as the
initial flow measurement), reporting the test MSE (0.167 predicts the mean) and the
health monitor's exploding / vanishing flags.

References:
  Hochreiter & Schmidhuber, 1997. Long short-term memory.
  Bengio, Simard & Frasconi, 1994. Learning long-term dependencies with gradient descent
  is difficult.
  Pascanu, Mikolov & Bengio, 2013. On the difficulty of training recurrent neural networks.
  Saxe, McClelland & Ganguli, 2014. Exact solutions to the nonlinear dynamics of learning
  in deep linear neural networks.
  Cho et al., 2014. Learning phrase representations using RNN encoder-decoder for
  statistical machine translation (GRU).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import compare, data, models
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common

#: Adding-problem MSE of always predicting the mean of the target (Var of U(0,1) + U(0,1)).
BASELINE_MSE = 1.0 / 6.0


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the recurrent gradient-flow experiment.

    Attributes:
      num_seeds: runs per variant (vmapped).
      seed: base seed.
      length: sequence length of the adding problem.
      hidden: hidden units.
      gains: spectral scales ``g`` of the plain RNN's normal recurrent init (one variant
        each).
      steps: Adam steps (0: measure the initial gradient flow only).
      learning_rate: Adam's rate.
      batch_size: sequences per step.
      eval_size: sequences of the fixed evaluation batch (flow and test MSE).
      fast_compile: XLA optimization level 0 on CPU (compiles faster, runs the scan over
        time several times slower: off by default).
    """

    num_seeds: int = 16
    seed: int = 0
    length: int = 50
    hidden: int = 32
    gains: tuple[float, ...] = (1.0, 2.0)
    steps: int = 300
    learning_rate: float = 1e-2
    batch_size: int = 32
    eval_size: int = 256
    fast_compile: bool = False

    def __post_init__(self):
        for name in ("num_seeds", "length", "hidden", "batch_size", "eval_size"):
            check_int(name, getattr(self, name))
        check_int("steps", self.steps, minimum=0)
        check_int("seed", self.seed, minimum=0)
        if self.length < 2:
            raise ValueError(f"length must be >= 2, got {self.length}")
        if not isinstance(self.gains, tuple) or not self.gains:
            raise ValueError(f"gains must be a non-empty tuple, got {self.gains!r}")
        for g in self.gains:
            check_positive("gains", g)
        if len(set(self.gains)) != len(self.gains):
            raise ValueError(f"gains must be distinct, got {self.gains!r}")
        check_positive("learning_rate", self.learning_rate)

    @classmethod
    def quick(cls) -> Config:
        """16 seeds, length 50, 300 Adam steps (well under a minute on 2 CPU cores)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """32 seeds, length 100, 64 units, gains 0.5 / 1 / 2, 1000 Adam steps (sized for 2 CPU
        cores: about 40 CPU-minutes, estimated from the FLOPs; the earlier 64 seeds x 2000
        steps did not finish in 27 CPU-minutes, a quarter of its estimate)."""
        return cls(num_seeds=32, length=100, hidden=64, gains=(0.5, 1.0, 2.0), steps=1000,
                   learning_rate=3e-3)

    def variants(self) -> tuple[str, ...]:
        return (*(gain_name(g) for g in self.gains), "rnn_orthogonal", "lstm", "gru")


def gain_name(g: float) -> str:
    """Variant name of the plain RNN with normal recurrent init of scale ``g``."""
    return f"rnn_normal_{g:g}"


def build_model(c: Config, variant: str) -> models.Model:
    """The recurrent network of ``variant`` (2 inputs, 1 output, MSE)."""
    if variant in ("lstm", "gru"):
        return models.rnn(2, c.hidden, 1, cell=variant, init="xavier",
                          recurrent_init="orthogonal", loss="mse")
    if variant == "rnn_orthogonal":
        return models.rnn(2, c.hidden, 1, cell="rnn", activation="tanh", init="xavier",
                          recurrent_init="orthogonal", loss="mse")
    for g in c.gains:
        if variant == gain_name(g):
            return models.rnn(2, c.hidden, 1, cell="rnn", activation="tanh", init="xavier",
                              recurrent_init="normal", recurrent_scale=g, loss="mse")
    raise ValueError(f"variant must be one of {c.variants()}, got {variant!r}")


def input_gradient_norms(model: models.Model, params: Any, batch: tuple) -> jax.Array:
    """``||dL/dx_t||`` for every step ``t`` (``[T]``): the loss's gradient with respect
    to the inputs of the evaluation batch, its norm over the batch and features."""
    x, y = batch
    g = jax.grad(lambda xx: model.loss(params, (xx, y)))(x)
    return jnp.sqrt(jnp.sum(jnp.square(g), axis=(0, 2)))


def flow_log10(norms: jax.Array) -> jax.Array:
    """``log10(||dL/dx_1|| / ||dL/dx_T||)`` from :func:`input_gradient_norms` (``[..., T]``);
    ``-inf`` when the first input's gradient underflows to 0."""
    tiny = jnp.finfo(jnp.float32).tiny
    return jnp.log10(norms[..., 0]) - jnp.log10(jnp.maximum(norms[..., -1], tiny))


def _variant(c: Config, variant: str, key: jax.Array, batch: tuple) -> tuple[dict, dict, Any]:
    """Initial flow (vmapped over seeds) and the training run of one variant."""
    model = build_model(c, variant)
    seeds = jnp.arange(c.num_seeds)
    # the same initialization as compare.train's seed i: fold_in(fold_in(key, i), 0)
    init_params = jax.vmap(lambda i: model.init(jax.random.fold_in(jax.random.fold_in(key,
                                                                                     i), 0)))(seeds)
    norms0 = jax.jit(jax.vmap(lambda p: input_gradient_norms(model, p, batch)))(init_params)

    def evaluate(params, d):
        norms = input_gradient_norms(model, params, d["eval"])
        return {"test_mse": model.loss(params, d["eval"]), "flow_log10": flow_log10(norms),
                "norms": norms}

    metrics = {"initial_flow_log10": np.asarray(flow_log10(norms0))}
    curves = {"initial_input_grad_norm": np.asarray(norms0)}
    res = None
    if c.steps:
        length, bs = c.length, c.batch_size
        res = compare.train(
            model.init, model.loss, {"adam": optax.adam(c.learning_rate)},
            num_seeds=c.num_seeds, steps=c.steps, key=key,
            batch_fn=lambda d, k, step: data.adding_problem(k, bs, length),
            data={"eval": batch}, evaluate=evaluate, layer_order=model.layers,
            fast_compile=c.fast_compile)
        final = {k: np.asarray(v)[0] for k, v in res.final["adam"].items()}
        metrics.update(
            test_mse=final["test_mse"], flow_log10=final["flow_log10"],
            nonfinite=final["nonfinite"].astype(bool),
            exploding_flagged=np.asarray(res.first_step("adam", "exploding"))[0] >= 0,
            vanishing_flagged=np.asarray(res.first_step("adam", "vanishing"))[0] >= 0)
        curves.update(loss=np.asarray(res.losses("adam"))[0],
                      final_input_grad_norm=final["norms"])
    else:
        metrics["nonfinite"] = ~np.isfinite(metrics["initial_flow_log10"])
    return metrics, curves, res


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Measure the gradient flow of every variant, train them, summarize.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``): per seed
      ``initial_flow_log10``, and with ``steps > 0`` ``flow_log10`` (after training),
      ``test_mse``, ``exploding_flagged``, ``vanishing_flagged``, ``nonfinite``; curves
      ``initial_input_grad_norm`` / ``final_input_grad_norm`` ``[S, T]`` and ``loss``
      ``[S, steps]``; ``summary``: per variant medians with bootstrap CIs of the flows and
      the test MSE, rates with Wilson CIs of the flags, ``baseline_mse``,
      ``nonfinite_seeds``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a recurrent_gradients.Config, got "
                        f"{type(config).__name__}")
    c = config
    t0 = time.perf_counter()
    key = jax.random.key(c.seed)
    batch = data.adding_problem(jax.random.fold_in(jax.random.key(c.seed), 2**30), c.eval_size,
                                c.length)
    metrics, curves, summary = {}, {}, {}
    compile_s = run_s = 0.0
    for v, name in enumerate(c.variants()):
        m, cv, res = _variant(c, name, key, batch)
        metrics[name], curves[name] = m, cv
        if res is not None:
            compile_s += res.compile_seconds
            run_s += res.run_seconds
        k = jax.random.fold_in(key, 1000 + v)
        s = {q: _common.median_ci(m[q], jax.random.fold_in(k, i))
             for i, q in enumerate(("initial_flow_log10", "flow_log10", "test_mse")) if q in m}
        for q in ("exploding_flagged", "vanishing_flagged", "nonfinite"):
            if q in m:
                s[q] = _common.rate(m[q])
        summary[name] = s
    summary["baseline_mse"] = BASELINE_MSE
    result = _common.results(c, c.variants(), metrics, curves, summary,
                             compile_seconds=compile_s, run_seconds=run_s,
                             total_seconds=time.perf_counter() - t0,
                             experiment="recurrent_gradients")
    if out_dir is not None:
        from jaxopt_lab import plot

        figures = {"gradient_flow": _flow_figure(c, curves)}
        if c.steps:
            figures["loss_curves"] = plot.loss_curves(
                {v: curves[v]["loss"] for v in c.variants()},
                title=f"Adding problem, length {c.length}: training loss")
        result.save(out_dir, figures=figures)
    return result


def _flow_figure(c: Config, curves: dict):
    """Median ``||dL/dx_t||`` over seeds against ``t``, at initialization (and after
    training), one line per variant."""
    import matplotlib.pyplot as plt

    keys = ["initial_input_grad_norm"] + (["final_input_grad_norm"] if c.steps else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.6), squeeze=False)
    t = np.arange(1, c.length + 1)
    for ax, k in zip(axes[0], keys, strict=True):
        for v in c.variants():
            med = np.nanmedian(np.asarray(curves[v][k], np.float64), axis=0)
            ax.semilogy(t, np.where(med > 0, med, np.nan), label=v)
        ax.set_xlabel("input step t")
        ax.set_ylabel("||dL/dx_t|| (median over seeds)")
        ax.set_title("at initialization" if k.startswith("initial") else "after training")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


__all__ = ["BASELINE_MSE", "Config", "build_model", "flow_log10", "gain_name",
           "input_gradient_norms", "run"]


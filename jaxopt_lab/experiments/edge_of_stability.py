"""Edge of stability: full-batch GD drives the sharpness to 2 / lr and holds it there.

A small tanh MLP (64 -> hidden -> 10) is trained by full-batch gradient descent with the
square loss ``0.5 * mean ||f(x) - onehot(y)||^2`` on scikit-learn's digits, at several
learning rates (one traced grid of ``optax.sgd``: ONE compiled program for every rate and
seed, run by the sweep core :func:`jaxopt_lab.compare.sweep` as a
:class:`~jaxopt_lab.compare.Trial`). Inside the training ``lax.scan``, every
``sharpness_every`` steps, the sharpness (top Hessian eigenvalue of the full-batch loss)
is measured by ``power_iters`` Hessian-vector products of power iteration warm-started
from the previous vector (a fixed HVP count, so it batches under ``vmap``).

Cohen et al. (2021) observe that the sharpness first rises (progressive sharpening) until
it reaches ``2 / lr``, the stability limit of GD on a quadratic, and then hovers just
above it while the loss keeps falling, non-monotonically. The experiment reports, per
learning rate, the ratio of the late-training sharpness (median over the last quarter of
the readings) to ``2 / lr`` with a bootstrap interval over seeds, how many seeds reached
``0.9 * 2 / lr`` (Wilson interval) and the share of steps on which the loss rose.

References:
  Cohen, Kaur, Li, Kolter, Talwalkar, 2021. Gradient descent on neural networks typically
  occurs at the edge of stability. ICLR.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab import compare, models
from jaxopt_lab._validation import check_int
from jaxopt_lab.compare import steps as steps_mod
from jaxopt_lab.experiments import _common, _network

GROUP = "gd"


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the edge-of-stability experiment.

    Attributes:
      num_seeds: networks per learning rate (vmapped; seed ``i`` is ``fold_in(key(seed),
        i)``, the same initialization for every rate).
      seed: base seed.
      learning_rates: GD step sizes (finite, > 0), one traced grid.
      hidden: hidden width of the tanh MLP.
      num_examples: training examples (full batch; digits has 1438).
      steps: GD steps.
      sharpness_every: steps between two sharpness readings (``steps`` must be a multiple).
      power_iters: warm-started power-iteration HVPs per reading.
      reach_fraction: a seed "reached" the edge when its sharpness got to
        ``reach_fraction * 2 / lr``.
      fast_compile: XLA optimization level 0 on CPU (short runs).
    """

    num_seeds: int = 8
    seed: int = 0
    learning_rates: tuple[float, ...] = (0.1, 0.2)
    hidden: int = 16
    num_examples: int = 256
    steps: int = 400
    sharpness_every: int = 20
    power_iters: int = 10
    reach_fraction: float = 0.9
    fast_compile: bool = True

    def __post_init__(self):
        for name in ("num_seeds", "hidden", "num_examples", "steps", "sharpness_every",
                     "power_iters"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        object.__setattr__(self, "learning_rates",
                           _network.check_learning_rates("learning_rates", self.learning_rates))
        if self.steps % self.sharpness_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of sharpness_every "
                             f"({self.sharpness_every})")
        if not 0.0 < self.reach_fraction <= 1.0:
            raise ValueError(f"reach_fraction must be in (0, 1], got {self.reach_fraction!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds: 8 seeds, lr 0.1 and 0.2, 400 steps on 256 examples (lr 0.2 reaches 2 / lr)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """16 seeds, four rates, 4000 steps on every training example."""
        return cls(num_seeds=16, learning_rates=(0.05, 0.1, 0.15, 0.2), hidden=32,
                   num_examples=1438, steps=4000, sharpness_every=25, power_iters=20,
                   fast_compile=False)


def model_and_loss(c: Config):
    """``(model, loss(params, inputs))``: the tanh MLP and its full-batch square loss."""
    model = models.mlp(64, (c.hidden,), 10, activation="tanh", init="xavier", loss="mse")

    def loss(params, inputs):
        return _network.mse(model.apply(params, inputs["x"]), inputs["y"])

    return model, loss


def trial(c: Config, inputs: dict) -> compare.Trial:
    """The per-seed program: full-batch GD with sharpness readings inside the scan."""
    model, loss = model_and_loss(c)
    every, blocks, iters = c.sharpness_every, c.steps // c.sharpness_every, c.power_iters

    def run(opt, key_i, i, row, inputs):
        del i, row
        params = model.init(jax.random.fold_in(key_i, 0))
        flat, _ = ravel_pytree(params)
        v = jax.random.normal(jax.random.fold_in(key_i, 3), flat.shape, flat.dtype)
        v = v / jnp.linalg.norm(v)
        state = opt.init(params)
        f = lambda p: loss(p, inputs)  # noqa: E731
        lam0, v, _ = _network.power_sharpness(f, params, v, 3 * iters)

        def step(carry, _):
            params, state, bad = carry
            value, grads = jax.value_and_grad(f)(params)
            fns = steps_mod.loss_fns(loss, inputs)
            updates, state = steps_mod.update(opt, grads, state, params, value=value, fns=fns)
            params = optax.apply_updates(params, updates)
            ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(ravel_pytree(params)[0]))
            return (params, state, bad | ~ok), value

        def block(carry, _):
            params, state, v, bad = carry
            (params, state, bad), losses = jax.lax.scan(step, (params, state, bad), None,
                                                        length=every)
            lam, v, r = _network.power_sharpness(f, params, v, iters)
            return (params, state, v, bad), (losses, lam, r)

        (params, state, v, bad), (losses, lam, resid) = jax.lax.scan(
            block, (params, state, v, jnp.array(False)), None, length=blocks)
        return {"loss": losses.reshape(-1), "sharpness": lam, "residual": resid,
                "initial_sharpness": lam0, "nonfinite": bad, "params": params}

    return compare.Trial(run, inputs=inputs,
                         static=("edge_of_stability", c.hidden, every, blocks, iters))


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Train at every learning rate and summarize; write a run directory if ``out_dir``.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``, one group ``"gd"``
      whose hyperparameter rows are the learning rates): per seed ``late_sharpness``,
      ``ratio`` (late sharpness / (2 / lr)), ``max_sharpness``, ``initial_sharpness``,
      ``reach_step`` (first reading >= ``reach_fraction * 2/lr``; -1 never),
      ``loss_rise_fraction`` (share of late steps where the loss rose), ``final_loss``,
      ``power_residual`` (relative residual of the last reading), ``nonfinite``;
      ``curves["gd"]``: ``loss`` ``[n_lr, S, steps]``, ``sharpness`` ``[n_lr, S,
      readings]``; ``summary``: per ``"lr=<value>"`` the medians with bootstrap CIs, the
      reach rate with its Wilson CI, plus ``sharpness_steps`` and ``nonfinite_seeds``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an edge_of_stability.Config, got "
                        f"{type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    d = _network.digits_onehot(c.num_examples)
    inputs = {"x": jnp.asarray(d["x"]), "y": jnp.asarray(d["y"])}
    key = jax.random.key(c.seed)
    opts = {GROUP: (optax.sgd, {"learning_rate": list(c.learning_rates)})}
    options = {"xla_backend_optimization_level": 0} if (
        c.fast_compile and jax.default_backend() == "cpu") else None
    sw = compare.sweep(trial(c, inputs), opts, num_seeds=c.num_seeds, key=key,
                       compiler_options=options)
    out = sw.outputs[GROUP]
    loss = np.asarray(out["loss"], np.float64)  # [H, S, T]
    sharp = np.asarray(out["sharpness"], np.float64)  # [H, S, B]
    resid = np.asarray(out["residual"], np.float64)
    bad = np.asarray(out["nonfinite"], bool)
    lrs = np.asarray(c.learning_rates)[:, None]
    edge = 2.0 / lrs
    late = _network.late_slice(sharp.shape[-1])
    late_sharp = np.median(sharp[..., late], axis=-1)
    late_sharp = np.where(bad, np.nan, late_sharp)
    reached = sharp >= c.reach_fraction * edge[..., None]
    reach_step = np.where(reached.any(-1), (reached.argmax(-1) + 1) * c.sharpness_every, -1)
    tl = _network.late_slice(loss.shape[-1])
    rises = np.mean(np.diff(loss[..., tl], axis=-1) > 0, axis=-1)
    tail = min(20, c.steps)
    final_loss = np.where(bad, np.nan, loss[..., -tail:].mean(-1))
    metrics = {
        "late_sharpness": late_sharp,
        "ratio": late_sharp / edge,
        "max_sharpness": np.where(bad, np.nan, np.max(sharp, -1)),
        "initial_sharpness": np.asarray(out["initial_sharpness"], np.float64),
        "reach_step": reach_step.astype(np.int64),
        "loss_rise_fraction": rises,
        "final_loss": final_loss,
        "power_residual": resid[..., -1] / np.maximum(np.abs(sharp[..., -1]), 1e-30),
        "nonfinite": bad,
    }
    summary: dict[str, Any] = {
        "sharpness_steps": ((np.arange(sharp.shape[-1]) + 1) * c.sharpness_every).tolist(),
        "late_window": "median of the last quarter of the sharpness readings",
    }
    for h, lr in enumerate(c.learning_rates):
        k = jax.random.fold_in(key, h)
        summary[f"lr={lr:g}"] = {
            "learning_rate": lr,
            "two_over_lr": 2.0 / lr,
            "ratio": _common.median_ci(metrics["ratio"][h], k),
            "late_sharpness": _common.median_ci(late_sharp[h], k),
            "initial_sharpness": _common.median_ci(metrics["initial_sharpness"][h], k),
            "reached": _common.rate(reach_step[h] >= 0),
            "median_reach_step": _common.median_fired(reach_step[h]),
            "loss_rise_fraction": _common.median_ci(rises[h], k),
            "final_loss": _common.median_ci(final_loss[h], k),
            "nonfinite": _common.rate(bad[h]),
        }
    summary["nonfinite_seeds"] = {GROUP: [[int(h), int(s)] for h, s in zip(*np.nonzero(bad),
                                                                          strict=True)]}
    result = compare.Results(
        optimizers=[GROUP],
        hparams={GROUP: [{"learning_rate": lr} for lr in c.learning_rates]},
        metrics={GROUP: metrics},
        curves={GROUP: {"loss": loss.astype(np.float32), "sharpness": sharp.astype(np.float32)}},
        summary=compare.store.jsonable(summary),
        group_column="variant",
        meta=compare.store.make_meta(
            c, key=key, compile_seconds=sw.compile_seconds, run_seconds=sw.run_seconds,
            total_seconds=time.perf_counter() - t_start, experiment="edge_of_stability"),
    )
    if out_dir is not None:
        from jaxopt_lab.plot import network

        result.save(out_dir, figures={"edge_of_stability": network.edge_of_stability(result)})
    return result

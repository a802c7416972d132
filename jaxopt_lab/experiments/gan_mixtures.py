"""Mode collapse on 2-D Gaussian mixtures: optimizers x remedies x learning rates x seeds.

Protocol (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): a ring of 8
Gaussians (radius 1, std 0.01) or a grid of 25 ({-4,-2,0,2,4}^2, std 0.05); after every
``eval_every`` steps, 2500 generated samples are scored inside the compiled program: a
sample is high quality within 3 std of its nearest mode, a mode is captured with at least
one high-quality sample, and the reverse KL compares the generated mode histogram with
the uniform one (:func:`jaxopt_lab.gan.metrics.mixture_metrics`).

Network setups (``setup``):

* ``"pacgan"``: latent 2, G 4x400 ReLU + batch norm, D 3x200 maxout(5), Adam beta1 0.8,
  batch 100 (Lin et al. 2018, 2-D experiments; the paper's rate is 1e-4);
* ``"veegan"``: latent 256, G and D 2x128 tanh, orthogonal init gain 1.4, Adam beta1
  0.5, G lr 1e-3 with D lr 1e-4 (``d_lr_scale=0.1``), batch 512, 25k steps
  (Srivastava et al. 2017);
* ``"small"``: latent 2, G and D 2x128 ReLU, batch 64: the CPU-sized network of the
  optimizer study and of the quick preset.

Optimizers (each over the learning-rate grid, both players): ``sgd``, ``momentum0.5``,
``momentum0.9``, ``adam`` (the setup's beta1), ``rmsprop``, ``negative_momentum`` (SGD
with momentum -0.5; Gidel et al. 2019). Remedies: :data:`jaxopt_lab.gan.REMEDIES`. One
:func:`jaxopt_lab.compare.sweep` per remedy (one compiled program per optimizer family),
the learning-rate grid traced, seed ``i`` from ``fold_in(key, i)``.

Records: one row per (optimizer, remedy, learning rate, seed) with ``modes``,
``hq_fraction``, ``reverse_kl``, ``full_coverage_step`` (first evaluation step with every
mode captured, ``inf`` if never), ``collapsed`` (the health hook's mode-collapse flag,
:func:`jaxopt_lab.health.mode_coverage`, at the last evaluation), ``collapse_step`` (the
step from which that flag stayed raised to the end, ``inf`` if it was down at the end:
:func:`jaxopt_lab.health.detectors.persistent_onset`), ``d_loss``, ``g_loss``,
``nonfinite``; curves of every
metric per evaluation. Figures: sample scatter per optimizer and remedy, modes over
training.

References:
  Metz, Poole, Pfau & Sohl-Dickstein, 2017. Unrolled generative adversarial networks.
  Srivastava, Valkov, Russell, Gutmann & Sutton, 2017. VEEGAN.
  Lin, Khetan, Fanti & Oh, 2018. PacGAN: the power of two samples in GANs.
  Gidel et al., 2019. Negative momentum for improved game dynamics.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import data, gan
from jaxopt_lab._validation import check_choice, check_int, check_positive_tuple
from jaxopt_lab.experiments import _common
from jaxopt_lab.health.detectors import persistent_onset
from jaxopt_lab.models import gan_nets

SETUPS: dict[str, dict] = {
    "pacgan": dict(latent_dim=2, g_hidden=(400,) * 4, g_activation="relu", batch_norm=True,
                   d_hidden=(200,) * 3, d_activation="relu", maxout=5, init="xavier",
                   init_scale=1.0, adam_b1=0.8, batch_size=100, d_lr_scale=1.0),
    "veegan": dict(latent_dim=256, g_hidden=(128, 128), g_activation="tanh",
                   batch_norm=False, d_hidden=(128, 128), d_activation="tanh", maxout=1,
                   init="orthogonal", init_scale=1.4, adam_b1=0.5, batch_size=512,
                   d_lr_scale=0.1),
    "small": dict(latent_dim=2, g_hidden=(128, 128), g_activation="relu", batch_norm=False,
                  d_hidden=(128, 128), d_activation="relu", maxout=1, init="xavier",
                  init_scale=1.0, adam_b1=0.5, batch_size=64, d_lr_scale=1.0),
}

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum0.5", "momentum0.9", "adam", "rmsprop",
                               "negative_momentum")


def optimizer_entry(name: str, learning_rates, adam_b1: float = 0.5) -> tuple:
    """``(factory, {"learning_rate": [...]})`` of optimizer ``name`` for the sweep core."""
    check_choice("optimizers", name, OPTIMIZERS)
    factory = {
        "sgd": functools.partial(optax.sgd),
        "momentum0.5": functools.partial(optax.sgd, momentum=0.5),
        "momentum0.9": functools.partial(optax.sgd, momentum=0.9),
        "adam": functools.partial(optax.adam, b1=adam_b1),
        "rmsprop": functools.partial(optax.rmsprop),
        "negative_momentum": functools.partial(optax.sgd, momentum=-0.5),
    }[name]
    return factory, {"learning_rate": [float(v) for v in learning_rates]}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the mixture study.

    Attributes:
      mixture: ``"ring"`` (8 modes, radius 1, std 0.01) or ``"grid"`` (25, std 0.05).
      setup: network setup (:data:`SETUPS`).
      optimizers: names from :data:`OPTIMIZERS`.
      remedies: names from :data:`jaxopt_lab.gan.REMEDIES`.
      learning_rates: the traced grid (finite, > 0).
      num_seeds: seeds per (optimizer, remedy, learning rate).
      steps: generator steps; ``eval_every``: steps between evaluations.
      num_eval: generated samples per evaluation (2500 in the protocol).
      batch_size: None: the setup's.
      loss: GAN loss (:data:`jaxopt_lab.gan.losses.LOSSES`).
      num_keep: generated samples kept per seed for the scatter figure.
      seed: master seed.
      figures: write figures with ``out_dir``.
      fast_compile: XLA optimization level 0 on CPU (compiles in about half the time, runs
        slower: right for the quick preset).
    """

    mixture: str = "ring"
    setup: str = "small"
    optimizers: tuple[str, ...] = OPTIMIZERS
    remedies: tuple[str, ...] = ("none",)
    learning_rates: tuple[float, ...] = (1e-3,)
    num_seeds: int = 16
    steps: int = 2000
    eval_every: int = 200
    num_eval: int = 2500
    batch_size: int | None = None
    loss: str = "bce"
    num_keep: int = 500
    seed: int = 0
    figures: bool = True
    fast_compile: bool = False

    def __post_init__(self):
        check_choice("mixture", self.mixture, ("ring", "grid"))
        check_choice("setup", self.setup, tuple(SETUPS))
        if not isinstance(self.optimizers, tuple) or not self.optimizers:
            raise ValueError(f"optimizers must be a non-empty tuple, got {self.optimizers!r}")
        for o in self.optimizers:
            check_choice("optimizers", o, OPTIMIZERS)
        if not isinstance(self.remedies, tuple) or not self.remedies:
            raise ValueError(f"remedies must be a non-empty tuple, got {self.remedies!r}")
        for r in self.remedies:
            gan.check_remedy(r)
        check_positive_tuple("learning_rates", self.learning_rates, item="learning_rate")
        for name in ("num_seeds", "steps", "eval_every", "num_eval"):
            check_int(name, getattr(self, name))
        if self.steps % self.eval_every:
            raise ValueError(f"steps={self.steps} must be a multiple of "
                             f"eval_every={self.eval_every}")
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size)
        check_choice("loss", self.loss, gan.losses.LOSSES)
        check_int("num_keep", self.num_keep, minimum=0)
        check_int("seed", self.seed, minimum=0)

    @classmethod
    def quick(cls) -> Config:
        """Under a minute on 2 CPU cores: ring, small nets, Adam, plain and PacGAN2,
        2 seeds x 300 steps."""
        return cls(optimizers=("adam",), remedies=("none", "pack2"), num_seeds=2,
                   steps=300, eval_every=100, num_keep=200, fast_compile=True)

    @classmethod
    def full(cls) -> Config:
        """The optimizer study: six optimizers x every remedy x 16 seeds, small nets, 2000
        steps, learning rates 1e-4 and 1e-3 (hours on 2 CPU cores; see the README)."""
        return cls(remedies=tuple(gan.REMEDIES), learning_rates=(1e-4, 1e-3))

    @classmethod
    def pacgan(cls, mixture: str = "ring", **kw) -> Config:
        """PacGAN's setup: Adam 1e-4, beta1 0.8, plain and packed (m = 2, 3, 4)."""
        kw = {"optimizers": ("adam",), "remedies": ("none", "pack2", "pack3", "pack4"),
              "learning_rates": (1e-4,), "steps": 20000, "eval_every": 1000, **kw}
        return cls(mixture=mixture, setup="pacgan", **kw)

    @classmethod
    def veegan(cls, mixture: str = "ring", **kw) -> Config:
        """VEEGAN's setup: Adam beta1 0.5, G lr 1e-3, D lr 1e-4, batch 512, 25k steps."""
        kw = {"optimizers": ("adam",), "remedies": ("none",), "learning_rates": (1e-3,),
              "steps": 25000, "eval_every": 1000, **kw}
        return cls(mixture=mixture, setup="veegan", **kw)


def _compiler_options(fast: bool) -> dict | None:
    return {"xla_backend_optimization_level": 0} if fast and jax.default_backend() == "cpu" \
        else None


def _mixture(name: str) -> data.GaussianMixture:
    return data.ring(8, radius=1.0, std=0.01) if name == "ring" else data.grid(5, spacing=2.0,
                                                                             std=0.05)


def build(c: Config, remedy: str):
    """``(spec, nets)`` of remedy ``remedy`` under config ``c``."""
    s = SETUPS[c.setup]
    spec = gan.GANSpec(loss=c.loss, batch_size=c.batch_size or s["batch_size"],
                       d_lr_scale=s["d_lr_scale"])
    d_kwargs = dict(hidden=s["d_hidden"], activation=s["d_activation"], maxout=s["maxout"],
                    init=s["init"], init_scale=s["init_scale"])
    spec, d_kwargs = gan.apply_remedy(remedy, spec, d_kwargs, c.steps)
    g = gan_nets.mlp_generator(s["latent_dim"], 2, s["g_hidden"], activation=s["g_activation"],
                               batch_norm=s["batch_norm"], init=s["init"],
                               init_scale=s["init_scale"])
    d = gan_nets.mlp_discriminator(2, **d_kwargs)
    return spec, gan.nets_from_models(g, d, s["latent_dim"], (2,))


def _sample_real(std, inputs, key, n):
    centers = inputs["centers"]
    k1, k2 = jax.random.split(key)
    labels = jax.random.randint(k1, (n,), 0, centers.shape[0])
    return centers[labels] + std * jax.random.normal(k2, (n, 2), jnp.float32)


def _evaluate(std, samples, state, inputs):
    del state
    m = gan.metrics.mixture_metrics(samples, inputs["centers"], std)
    m["full_coverage"] = m["modes"] >= inputs["centers"].shape[0]
    return m


def _mean_ci(x, rng):
    mean, lo, hi = _common.mean_ci(x, rng, n_boot=1000)
    return mean, [lo, hi]


def summarize(results, seed: int = 0) -> list[dict]:
    """One row per (optimizer, remedy, learning rate): mean and bootstrap 95% interval
    over seeds of modes, high-quality fraction and reverse KL; medians (misses as inf)
    of the full-coverage step and of the collapse step; the fraction of seeds collapsed
    at the end; non-finite seeds."""
    rng = np.random.default_rng(seed)
    rows = []
    for opt in results.optimizers:
        m = results.metrics[opt]
        for h, hp in enumerate(results.hparams[opt]):
            row = {"optimizer": opt, **hp, "num_seeds": int(m["modes"].shape[1])}
            for k in ("modes", "hq_fraction", "reverse_kl"):
                row[k], row[f"{k}_ci"] = _mean_ci(m[k][h], rng)
            row["all_modes_rate"] = float(np.mean(m["full_coverage"][h]))
            fc = np.asarray(m["full_coverage_step"][h], np.float64)
            row["full_coverage_step_median"] = float(np.median(fc))
            cs = np.asarray(m["collapse_step"][h], np.float64)
            row["collapsed_rate"] = float(np.mean(np.isfinite(cs)))
            row["collapse_step_median"] = float(np.median(cs))
            row["nonfinite_seeds"] = [int(s) for s in np.nonzero(m["nonfinite"][h])[0]]
            rows.append(row)
    return rows


def run(config: Config, out_dir: Any = None):
    """Run the study; write the run directory (records, curves, meta, figures) if asked.

    Returns:
      :class:`jaxopt_lab.compare.Results` (group ``optimizer``; hparams ``remedy``,
      ``learning_rate``; ``summary = {"mixture", "setup", "rows": summarize(...),
      "nonfinite_seeds", "samples_kept"}``).
    """
    from jaxopt_lab.compare import store

    if not isinstance(config, Config):
        raise TypeError(f"config must be a gan_mixtures.Config, got {type(config).__name__}")
    c = config
    t0 = time.perf_counter()
    mix = _mixture(c.mixture)
    inputs = {"centers": np.asarray(mix.centers, np.float32)}
    s = SETUPS[c.setup]
    optimizers = {o: optimizer_entry(o, c.learning_rates, s["adam_b1"]) for o in c.optimizers}
    gan.check_learning_rates(optimizers)
    sweeps, compile_s, run_s, resumed = {}, 0.0, 0.0, 0
    config_dict = dataclasses.asdict(c)
    for remedy in c.remedies:
        spec, nets = build(c, remedy)
        trial = gan.make_trial(
            spec, nets, steps=c.steps, eval_every=c.eval_every,
            sample_real=functools.partial(_sample_real, mix.std),
            evaluate=functools.partial(_evaluate, mix.std), inputs=inputs,
            num_eval=c.num_eval, num_keep=c.num_keep,
            static=("gan_mixtures", c.setup, mix.std, remedy))
        # with out_dir, each remedy's sweep saves every finished chunk (an optimizer's
        # seeds) under sweeps/<remedy>, so an interrupted run resumes from it
        sw = gan.sweep(trial, optimizers, num_seeds=c.num_seeds, key=jax.random.key(c.seed),
                       compiler_options=_compiler_options(c.fast_compile),
                       out_dir=None if out_dir is None else os.path.join(
                           os.fspath(out_dir), "sweeps", remedy),
                       config={"experiment": "gan_mixtures", "remedy": remedy,
                               **{k: v for k, v in config_dict.items() if k != "figures"}})
        sweeps[remedy] = sw
        compile_s += sw.compile_seconds
        run_s += sw.run_seconds
        resumed += sw.resumed_chunks
    results, samples = gan.results_from_sweeps(sweeps)
    steps_axis = c.eval_every * np.arange(1, c.steps // c.eval_every + 1)
    for opt in results.optimizers:
        full = np.asarray(results.curves[opt].pop("full_coverage"), bool)
        first = np.where(full.any(-1), steps_axis[np.argmax(full, -1)], np.inf)
        results.metrics[opt]["full_coverage_step"] = first
        results.curves[opt]["full_coverage"] = full.astype(np.float32)
        collapsed = np.asarray(results.curves[opt]["collapsed"]) > 0.5
        results.metrics[opt]["collapse_step"] = persistent_onset(collapsed, steps_axis)
    rows = summarize(results, c.seed)
    results.summary = store.jsonable({
        "mixture": c.mixture, "setup": c.setup, "rows": rows,
        "nonfinite_seeds": results.nonfinite_seeds(), "eval_steps": steps_axis.tolist()})
    results.meta = store.make_meta(
        c, key=jax.random.key(c.seed), compile_seconds=compile_s, run_seconds=run_s,
        total_seconds=time.perf_counter() - t0, resumed_chunks=resumed,
        experiment={"name": "gan_mixtures", "config": config_dict})
    results.samples = samples  # not written by the store: figures only
    if out_dir is not None:
        figures = {}
        if c.figures:
            from jaxopt_lab.plot import gan as gan_plot

            figures = {
                "samples": gan_plot.sample_scatter(results, samples, mix.centers),
                "modes_over_training": gan_plot.metric_curves(results, "modes", steps_axis,
                                                              target=mix.num_modes),
            }
        results.save(out_dir, figures)
    return results


__all__ = ["OPTIMIZERS", "SETUPS", "Config", "build", "optimizer_entry", "run", "summarize"]

"""Does the choice of optimizer cause mode collapse? The image protocol, with intervals.

Protocol (Vegna, "Effects of optimizer choice on mode collapse in GANs", a student paper
in the style of Lee & Seok; claims C4/C5 of the ledger): non-saturating BCE loss, batch
256, learning rate 1e-3 for every optimizer (SGD, SGD + momentum 0.5, Adam, RMSProp; both
players), 50 epochs; generator: dense -> three 5x5 transposed convolutions with batch norm,
LeakyReLU(0.2) and a tanh output, latent 100; discriminator: two 5x5 stride-2
convolutions with 64 and 128 filters and LeakyReLU(0.2)
(:func:`~jaxopt_lab.models.gan_nets.conv_generator` /
:func:`~jaxopt_lab.models.gan_nets.conv_discriminator`, which take 28x28 and 8x8).
The source trains on MNIST with one run per optimizer and scores 500 samples; here the
data are Fashion-MNIST (Debian's ``dataset-fashion-mnist``) or scikit-learn's 8x8 digits,
with ``num_seeds`` seeds per optimizer and both 500 and 10,000 scored samples.

Metrics (inside the compiled program, every ``eval_every_epochs`` epochs, from one batch
of ``max(eval_sizes)`` generated images: the first ``n`` for size ``n``;
:func:`jaxopt_lab.gan.classifier.image_scores`): a domain classifier trained by the lab on
the same data (:func:`~jaxopt_lab.gan.classifier.fit_classifier`; its held-out accuracy
is in the summary) gives an Inception-style score ``exp(E KL(p(y|x) || p(y)))``, the KL
between the generated argmax-label histogram and the true one, and the Frechet distance
between Gaussian fits of its penultimate features on generated and held-out real images.

One :func:`jaxopt_lab.gan.sweep` (one compiled program per optimizer family, the
learning-rate grid traced, seed ``i`` from ``fold_in(key, i)``: common initializations and
batches across optimizers). An epoch is ``ceil(n_train / batch_size)`` generator steps,
real batches drawn with replacement.

Records: one row per (optimizer, learning rate, seed) with ``inception_score_n``,
``label_kl_n``, ``fid_n`` for each ``n`` in ``eval_sizes``, ``d_loss``, ``g_loss``,
``nonfinite``; curves of each per evaluation. Summary: classifier accuracy, the real
data's own scores (the ceiling / floor each metric can reach with this classifier), one
row per (optimizer, learning rate) with means and bootstrap 95% intervals over seeds, the
published numbers, and the ranking verdict (paired bootstrap of each pair's difference vs
the published order). Figures: an image grid per optimizer, IS and label KL over training.

References:
  L. Vegna. Effects of optimizer choice on mode collapse in GANs (student paper).
  Radford, Metz & Chintala, 2016. Unsupervised representation learning with deep
  convolutional generative adversarial networks.
  Salimans et al., 2016. Improved techniques for training GANs.
  Heusel et al., 2017. GANs trained by a two time-scale update rule converge to a local
  Nash equilibrium.
  Xiao, Rasul & Vollgraf, 2017. Fashion-MNIST.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import data, gan
from jaxopt_lab._validation import check_choice, check_int, check_positive_tuple
from jaxopt_lab.experiments import _common
from jaxopt_lab.experiments.gan_mixtures import optimizer_entry
from jaxopt_lab.gan import classifier
from jaxopt_lab.models import gan_nets

DATASETS: tuple[str, ...] = ("digits", "fashion_mnist")
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum0.5", "adam", "rmsprop")

#: Published final scores (C4; MNIST, 500 samples, one run each): IS and label KL.
PUBLISHED: dict[str, dict[str, float]] = {
    "sgd": {"inception_score": 4.33, "label_kl": 0.261},
    "momentum0.5": {"inception_score": 6.35, "label_kl": 0.018},
    "adam": {"inception_score": 6.25, "label_kl": 0.023},
    "rmsprop": {"inception_score": 7.73, "label_kl": 0.007},
}
#: Published ranking, best first (the same for IS and label KL).
PUBLISHED_ORDER: tuple[str, ...] = ("rmsprop", "momentum0.5", "adam", "sgd")
METRICS: tuple[str, ...] = ("inception_score", "label_kl", "fid")
_HIGHER_IS_BETTER = {"inception_score": True, "label_kl": False, "fid": False}


def _check_positive_tuple(name: str, value: Any, *, minimum: int = 1) -> None:
    if not isinstance(value, tuple) or not value:
        raise ValueError(f"{name} must be a non-empty tuple, got {value!r}")
    for v in value:
        check_int(name, v, minimum=minimum)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the image study.

    Attributes:
      dataset: ``"fashion_mnist"`` (28x28, 60,000 training images) or ``"digits"``
        (scikit-learn, 8x8, 1,438 training / 359 held-out images).
      optimizers: names from :data:`OPTIMIZERS` (``momentum0.5``: SGD with momentum 0.5).
      learning_rates: the traced grid (finite, > 0); the protocol's is ``(1e-3,)``.
      num_seeds: seeds per (optimizer, learning rate).
      epochs: training epochs (``ceil(n_train / batch_size)`` generator steps each).
      eval_every_epochs: epochs between in-program evaluations (divides ``epochs``).
      batch_size: real and fake images per discriminator update (256 in the protocol).
      eval_sizes: generated samples scored (each >= 2; the protocol's 500 and our 10,000).
      num_train: keep the first ``num_train`` training images (None: all).
      latent_dim: generator latent dimension (100).
      adam_b1: Adam's beta1 (optax default 0.9; the source does not state it).
      classifier_steps, classifier_batch: the domain classifier's Adam (1e-3) training.
      feature_dim: the classifier's penultimate width (the FID features).
      num_keep: generated images kept per seed for the image grid.
      seed: master seed (GAN seeds ``fold_in(key, i)``; classifier ``fold_in(key, 10**6)``).
      figures: write figures with ``out_dir``.
      fast_compile: XLA optimization level 0 on CPU for the GAN programs (off by default:
        the convolutions then run many times slower; the classifier never uses it).
      chunk_size: seeds per compiled call (results do not depend on it).
      seed_batch: seeds vectorised together inside a chunk (None: all of the chunk's;
        smaller bounds the peak memory, which grows with the seeds vectorised together;
        results do not depend on it).
    """

    dataset: str = "fashion_mnist"
    optimizers: tuple[str, ...] = OPTIMIZERS
    learning_rates: tuple[float, ...] = (1e-3,)
    num_seeds: int = 5
    epochs: int = 50
    eval_every_epochs: int = 1
    batch_size: int = 256
    eval_sizes: tuple[int, ...] = (500, 10000)
    num_train: int | None = None
    latent_dim: int = 100
    adam_b1: float = 0.9
    classifier_steps: int = 3000
    classifier_batch: int = 128
    feature_dim: int = 64
    num_keep: int = 64
    seed: int = 0
    figures: bool = True
    fast_compile: bool = False
    chunk_size: int | None = None
    seed_batch: int | None = None

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        if not isinstance(self.optimizers, tuple) or not self.optimizers:
            raise ValueError(f"optimizers must be a non-empty tuple, got {self.optimizers!r}")
        for o in self.optimizers:
            check_choice("optimizers", o, OPTIMIZERS)
        if len(set(self.optimizers)) != len(self.optimizers):
            raise ValueError(f"optimizers must not repeat, got {self.optimizers!r}")
        check_positive_tuple("learning_rates", self.learning_rates, item="learning_rate")
        for name in ("num_seeds", "epochs", "eval_every_epochs", "batch_size", "latent_dim",
                     "classifier_steps", "classifier_batch"):
            check_int(name, getattr(self, name))
        if self.epochs % self.eval_every_epochs:
            raise ValueError(f"epochs={self.epochs} must be a multiple of "
                             f"eval_every_epochs={self.eval_every_epochs}")
        _check_positive_tuple("eval_sizes", self.eval_sizes, minimum=2)
        if len(set(self.eval_sizes)) != len(self.eval_sizes):
            raise ValueError(f"eval_sizes must not repeat, got {self.eval_sizes!r}")
        if self.num_train is not None:
            check_int("num_train", self.num_train, minimum=2)
        check_int("feature_dim", self.feature_dim, minimum=2)
        check_int("num_keep", self.num_keep, minimum=0)
        check_int("seed", self.seed, minimum=0)
        if (isinstance(self.adam_b1, bool) or not isinstance(self.adam_b1, int | float)
                or not 0 <= self.adam_b1 < 1):
            raise ValueError(f"adam_b1 must be in [0, 1), got {self.adam_b1!r}")
        if self.chunk_size is not None:
            check_int("chunk_size", self.chunk_size)
        if self.seed_batch is not None:
            check_int("seed_batch", self.seed_batch)

    @classmethod
    def quick(cls) -> Config:
        """CI preset: digits, SGD and RMSProp, 2 seeds x 1 epoch of batch 64 (23 steps),
        50 and 200 scored samples, a 200-step classifier."""
        return cls(dataset="digits", optimizers=("sgd", "rmsprop"), num_seeds=2, epochs=1,
                   batch_size=64, eval_sizes=(50, 200), classifier_steps=200,
                   classifier_batch=64, num_keep=16)

    @classmethod
    def full(cls) -> Config:
        """The published protocol on Fashion-MNIST: four optimizers x 5 seeds, 50 epochs
        of batch 256 (11,750 steps), 500 and 10,000 samples scored every epochs (meant for
        a GPU)."""
        return cls()

    @classmethod
    def digits(cls, **kw) -> Config:
        """The protocol on scikit-learn's digits (50 epochs = 300 steps of batch 256),
        evaluated every 5 epochs: the CPU-sized full run (not timed on an idle machine; at
        a load of ~20 on 2 cores one step of one seed took about 3 s)."""
        kw = {"dataset": "digits", "classifier_steps": 1000, "classifier_batch": 64,
              "eval_every_epochs": 5, **kw}
        return cls(**kw)

    @classmethod
    def fashion_reduced(cls, **kw) -> Config:
        """A reduced Fashion-MNIST run: 6,000 training images (the held-out 10,000 stay
        whole), 20 epochs (480 steps), 500 and 2,000 samples scored (hours on 2 CPU
        cores, estimated; not run)."""
        kw = {"num_train": 6000, "epochs": 20, "eval_every_epochs": 5,
              "eval_sizes": (500, 2000), "classifier_steps": 1500, **kw}
        return cls(**kw)


def _compiler_options(fast: bool) -> dict | None:
    return {"xla_backend_optimization_level": 0} if fast and jax.default_backend() == "cpu" \
        else None


def load(c: Config) -> dict:
    """``dict(train=(x, y), test=(x, y))`` of the config's dataset, images ``[n, H, W, 1]``
    scaled to ``[-1, 1]``."""
    if c.dataset == "digits":
        d = data.load_digits(layout="image")
    else:
        d = data.load_fashion_mnist(layout="image")
    (xtr, ytr), (xte, yte) = d["train"], d["test"]
    if c.num_train is not None:
        if c.num_train > xtr.shape[0]:
            raise ValueError(f"num_train={c.num_train} exceeds the {xtr.shape[0]} training "
                             f"images of {c.dataset}")
        xtr, ytr = xtr[:c.num_train], ytr[:c.num_train]
    return {"train": (2.0 * xtr - 1.0, ytr), "test": (2.0 * xte - 1.0, yte)}


def schedule(c: Config, n_train: int) -> tuple[int, int]:
    """``(steps, eval_every)`` in generator steps: an epoch is ``ceil(n_train / batch)``."""
    per_epoch = -(-n_train // c.batch_size)
    return c.epochs * per_epoch, c.eval_every_epochs * per_epoch


def _sample_real(inputs, key, n):
    x = inputs["x"]
    return x[jax.random.randint(key, (n,), 0, x.shape[0])]


def _evaluate(model, sizes, samples, state, inputs):
    del state
    return classifier.image_scores(model, inputs["clf"], samples, sizes, inputs["ref"])


def _mean_ci(x, rng):
    mean, lo, hi = _common.mean_ci(x, rng, n_boot=2000)
    return mean, [lo, hi]


#: Fewest paired finite seeds for a pair verdict (a bootstrap over fewer is not an interval).
MIN_VERDICT_SEEDS = 5


def pair_verdict(better, worse, higher_is_better: bool, rng, n_boot: int = 2000) -> dict:
    """Paired bootstrap (over seeds, both finite) of ``better - worse``: ``"agrees"`` when
    the 95% interval of the mean difference lies on the published side of 0,
    ``"contradicts"`` on the other side, ``"unresolved"`` when it covers 0 or fewer than
    :data:`MIN_VERDICT_SEEDS` seeds are paired (the interval is still reported)."""
    a, b = np.asarray(better, np.float64), np.asarray(worse, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = (a - b)[ok] if higher_is_better else (b - a)[ok]
    if d.size == 0:
        return {"diff": float("nan"), "ci": [float("nan")] * 2, "verdict": "unresolved", "n": 0}
    means = d[rng.integers(0, d.size, (n_boot, d.size))].mean(axis=1)
    lo, hi = float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
    verdict = "agrees" if lo > 0 else ("contradicts" if hi < 0 else "unresolved")
    if d.size < MIN_VERDICT_SEEDS:
        verdict = "unresolved"
    return {"diff": float(d.mean()), "ci": [lo, hi], "verdict": verdict, "n": int(d.size)}


def ranking_verdicts(results, sizes, seed: int = 0) -> list[dict]:
    """Per (learning rate, sample size, metric in IS / label KL): our ranking by the mean,
    every published pair's paired-bootstrap verdict (differences oriented so that > 0
    means the published order holds), and an overall verdict: ``"confirmed"`` (every pair
    agrees), ``"refuted"`` (some pair contradicts), else ``"unresolved"``."""
    rng = np.random.default_rng([seed, 1])
    names = [o for o in PUBLISHED_ORDER if o in results.optimizers]
    out = []
    if len(names) < 2:
        return out
    for h, hp in enumerate(results.hparams[names[0]]):
        for n, metric in itertools.product(sizes, ("inception_score", "label_kl")):
            key = f"{metric}_{n}"
            vals = {o: np.asarray(results.metrics[o][key][h], np.float64) for o in names}
            hib = _HIGHER_IS_BETTER[metric]
            means = {o: float(np.nanmean(np.where(np.isfinite(v), v, np.nan)))
                     if np.isfinite(v).any() else float("nan") for o, v in vals.items()}
            ours = sorted(names, key=lambda o: (-means[o] if hib else means[o])
                          if np.isfinite(means[o]) else np.inf)
            pairs = []
            for i, j in itertools.combinations(range(len(names)), 2):
                v = pair_verdict(vals[names[i]], vals[names[j]], hib, rng)
                pairs.append({"better": names[i], "worse": names[j], **v})
            verdicts = {p["verdict"] for p in pairs}
            overall = ("refuted" if "contradicts" in verdicts else
                       "confirmed" if verdicts == {"agrees"} else "unresolved")
            out.append({"learning_rate": hp.get("learning_rate"), "num_samples": int(n),
                        "metric": metric, "published_order": names, "our_order": ours,
                        "same_order": ours == names, "pairs": pairs, "verdict": overall})
    return out


def summarize(results, sizes, seed: int = 0) -> list[dict]:
    """One row per (optimizer, learning rate): mean and bootstrap 95% interval over
    (finite) seeds of every metric at every sample size, the mean D and G losses, the
    published IS / label KL, and the non-finite seeds."""
    rng = np.random.default_rng(seed)
    rows = []
    for opt in results.optimizers:
        m = results.metrics[opt]
        for h, hp in enumerate(results.hparams[opt]):
            row = {"optimizer": opt, **hp, "num_seeds": int(m["nonfinite"].shape[1])}
            for metric, n in itertools.product(METRICS, sizes):
                k = f"{metric}_{n}"
                row[k], row[f"{k}_ci"] = _mean_ci(m[k][h], rng)
            for k in ("d_loss", "g_loss"):
                row[k], row[f"{k}_ci"] = _mean_ci(m[k][h], rng)
            row["published_inception_score"] = PUBLISHED[opt]["inception_score"]
            row["published_label_kl"] = PUBLISHED[opt]["label_kl"]
            row["nonfinite_seeds"] = [int(s) for s in np.nonzero(m["nonfinite"][h])[0]]
            rows.append(row)
    return rows


def build(c: Config, image_shape: tuple[int, int, int]) -> tuple[gan.GANSpec, gan.GANNets]:
    """``(spec, nets)`` of the protocol: BCE, ``batch_size``, the conv generator and
    discriminator for ``image_shape``."""
    spec = gan.GANSpec(loss="bce", batch_size=c.batch_size)
    g = gan_nets.conv_generator(c.latent_dim, image_shape)
    d = gan_nets.conv_discriminator(image_shape)
    return spec, gan.nets_from_models(g, d, c.latent_dim, image_shape)


def run(config: Config, out_dir: Any = None):
    """Run the study; write the run directory (records, curves, meta, figures) if asked.

    Returns:
      :class:`jaxopt_lab.compare.Results` (group ``optimizer``; hparams ``remedy``
      (``"none"``), ``learning_rate``; ``summary = {"dataset", "classifier_test_accuracy",
      "real", "rows", "ranking", "nonfinite_seeds", "eval_steps", ...}``).
    """
    from jaxopt_lab.compare import store

    if not isinstance(config, Config):
        raise TypeError(f"config must be a gan_images.Config, got {type(config).__name__}")
    c = config
    t0 = time.perf_counter()
    optimizers = {o: optimizer_entry(o, c.learning_rates, c.adam_b1) for o in c.optimizers}
    gan.check_learning_rates(optimizers)
    d = load(c)
    (xtr, ytr), (xte, yte) = d["train"], d["test"]
    image_shape = tuple(int(s) for s in xtr.shape[1:])
    steps, eval_every = schedule(c, xtr.shape[0])
    sizes = tuple(sorted(c.eval_sizes))
    spec, nets = build(c, image_shape)
    key = jax.random.key(c.seed)

    model = classifier.domain_classifier(image_shape, 10, c.feature_dim)
    fit = classifier.fit_classifier(model, (xtr, ytr), (xte, yte), steps=c.classifier_steps,
                                    batch_size=c.classifier_batch,
                                    key=jax.random.fold_in(key, 10**6))
    ref = classifier.reference_stats(model, fit.params, xte, ytr)
    real = _real_scores(model, fit.params, xtr, sizes, ref, jax.random.fold_in(key, 10**6 + 1))

    trial = gan.make_trial(
        spec, nets, steps=steps, eval_every=eval_every, sample_real=_sample_real,
        evaluate=functools.partial(_evaluate, model, sizes),
        inputs={"x": jnp.asarray(xtr), "clf": fit.params, "ref": ref},
        num_eval=max(sizes), num_keep=c.num_keep,
        static=("gan_images", c.dataset, image_shape, sizes, c.feature_dim))
    # with out_dir, every finished chunk (an optimizer's seeds) is saved as it ends, so an
    # interrupted run resumes from it (the store checks the config and the families)
    config_dict = dataclasses.asdict(c)
    sw = gan.sweep(trial, optimizers, num_seeds=c.num_seeds, key=key,
                   chunk_size=c.chunk_size, batch_size=c.seed_batch,
                   out_dir=None if out_dir is None else str(out_dir),
                   config={"experiment": "gan_images", **config_dict},
                   compiler_options=_compiler_options(c.fast_compile))
    results, samples = gan.results_from_sweeps({"none": sw})
    steps_axis = eval_every * np.arange(1, steps // eval_every + 1)
    results.summary = store.jsonable({
        "dataset": c.dataset, "image_shape": list(image_shape),
        "num_train": int(xtr.shape[0]), "num_heldout": int(xte.shape[0]),
        "steps": steps, "steps_per_epoch": eval_every // c.eval_every_epochs,
        "eval_sizes": list(sizes),
        "classifier_test_accuracy": fit.test_accuracy, "real": real,
        "rows": summarize(results, sizes, c.seed),
        "ranking": ranking_verdicts(results, sizes, c.seed),
        "nonfinite_seeds": results.nonfinite_seeds(), "eval_steps": steps_axis.tolist()})
    results.meta = store.make_meta(
        c, key=key, compile_seconds=sw.compile_seconds, run_seconds=sw.run_seconds,
        total_seconds=time.perf_counter() - t0, classifier_seconds=fit.seconds,
        resumed_chunks=sw.resumed_chunks, rejected_chunks=sw.rejected_chunks,
        experiment={"name": "gan_images", "config": config_dict})
    results.samples = samples  # not written by the store: figures only
    if out_dir is not None:
        figures = {}
        if c.figures:
            from jaxopt_lab.plot import gan as gan_plot

            figures = {"image_grid": gan_plot.image_grid(results, samples)}
            for n in sizes:
                for m in ("inception_score", "label_kl"):
                    figures[f"{m}_{n}_over_training"] = gan_plot.metric_curves(
                        results, f"{m}_{n}", steps_axis)
        results.save(out_dir, figures)
    return results


def _real_scores(model, params, x_train, sizes, ref, key) -> dict:
    """The metrics of REAL training images (random subsets of each size; with
    replacement when the set is smaller): the best IS / KL / FID this classifier gives."""
    n = max(sizes)
    idx = jax.random.choice(key, x_train.shape[0], (n,), replace=n > x_train.shape[0])
    scores = jax.jit(lambda p, x, r: classifier.image_scores(model, p, x, sizes, r))(
        params, jnp.asarray(x_train)[idx], ref)
    return {k: float(v) for k, v in scores.items()}


__all__ = ["DATASETS", "MIN_VERDICT_SEEDS", "OPTIMIZERS", "PUBLISHED", "PUBLISHED_ORDER",
           "Config", "build", "load", "pair_verdict", "ranking_verdicts", "run",
           "schedule", "summarize"]

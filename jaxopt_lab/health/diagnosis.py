"""Is my network stuck? The five signs of claim C18 as one diagnosis.

The material ("Local Minima in Deep Learning: Why Your ANN is Stuck") lists five signs of
being stuck: the loss plateaus early; the training loss is low but the validation loss high;
the gradient norms are tiny; the results change a lot with the initialization seed; SGD and
Adam give very different results. :func:`diagnose` measures each one on a finished training
sweep and returns a typed :class:`Diagnosis`: per :class:`Sign` the measured value, the
threshold, the step it fired (for the signs that have a time), the per-optimizer evidence and
the remedies the lab offers (:class:`Remedy`, named by their API).

The diagnosis is a pure host-side function of saved results (a :class:`compare.Results` laid
out as :func:`from_train` makes it, read back with ``compare.load`` or built by hand, or a
:class:`compare.TrainResults`), so every threshold can be changed after the run
(:class:`DiagnosisThresholds`). The tests, per sign and per optimizer (the median over seeds
is compared with the threshold; a sign fires when it fires for any optimizer):

============  ===================================================================  =========
sign          value (per seed, then the median over seeds)                         fires if
============  ===================================================================  =========
plateau       smallest relative change of the monitor's EMA loss over              < 1e-3
              ``plateau_window`` (50) steps, ``|ema[t-50] - ema[t]| / |ema[t-50]|``,
              over the steps where the EMA loss is still above ``plateau_above``
              (0.5) times the first loss (a converged run is not stuck); the
              monitor's own plateau detector replayed on the loss curve
train/val     validation loss minus training loss at the end (final parameters,     > 0.1
gap           up to ``val_examples`` examples of each split)
vanishing     mean gradient norm of the last ``window`` (20) steps / that of the   < 1e-2
gradient      first 20; also fires when the first/last layer gradient ratio (the
              monitor's ``grad_ratio``, mean of the last 20 steps) is < 1e-3
seed          relative IQR of the final losses over seeds                          > 0.5
sensitivity   (:func:`jaxopt_lab.health.seed_sensitivity`; any non-finite seed
              also fires)
optimizer     largest ratio of two optimizers' median final losses, counted only   > 2
disagreement  when their 95% bootstrap intervals of the median do not overlap
============  ===================================================================  =========

Steps: plateau and vanishing gradient: the first step the per-seed test held (median over
the seeds where it fired); train/val gap: the first step the monitor's ``overfitting``
detector fired (median over those seeds; None if it never did); seed sensitivity and
optimizer disagreement are end-of-run measures (step None).

The driver (:class:`Config`, :func:`run`) trains a named model on a named dataset with named
optimizers over seeds in the sweep core's network front-end (:func:`jaxopt_lab.compare.train`;
no training loop here) and writes the run directory through ``Results.save``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.health.detectors import seed_sensitivity
from jaxopt_lab.health.monitor import Thresholds, init_health, update_health

SIGN_NAMES: tuple[str, ...] = ("plateau", "train_val_gap", "vanishing_gradient",
                               "seed_sensitivity", "optimizer_disagreement")

#: What each sign is in the material's words (claim C18).
SIGN_TITLES = {
    "plateau": "the loss plateaus early",
    "train_val_gap": "training loss low, validation loss high",
    "vanishing_gradient": "gradient norms are tiny",
    "seed_sensitivity": "results change a lot with the seed",
    "optimizer_disagreement": "optimizers give very different results",
}

MODELS: tuple[str, ...] = ("mlp", "cnn")
DATASETS: tuple[str, ...] = ("digits", "fashion_mnist", "mnist1d")

#: Learning rate of each optimizer when none is given (the lab's registry names; a
#: second-order method's learning rate scales its Newton-like step: 1.0 is the textbook
#: method); a name missing here gets 1e-3.
DEFAULT_LEARNING_RATES = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adam": 1e-3,
                          "rmsprop": 1e-3, "adagrad": 0.05, "lion": 1e-4, "pgd": 0.1,
                          "hessian_free": 1.0, "saddle_free": 1.0, "trust_region": 1.0}


# --------------------------------------------------------------------------- types


class Remedy(NamedTuple):
    """A remedy the lab offers: what it does and the API that provides it."""

    what: str
    api: str


class Sign(NamedTuple):
    """One sign of being stuck, measured.

    Attributes:
      name: one of :data:`SIGN_NAMES`.
      fired: the sign fired for at least one optimizer.
      value: the evidence: the most extreme per-optimizer value (NaN when not measurable,
        e.g. disagreement with one optimizer).
      threshold: what ``value`` is compared with.
      direction: ``"<"`` (fires below the threshold) or ``">"`` (fires above).
      step: the step it fired (of the optimizer ``value`` comes from), or None (not fired,
        or an end-of-run sign).
      test: the test in words (window, statistic).
      detail: optimizer (or optimizer pair) -> dict of numbers: value, fired, seeds that
        fired with their Wilson interval, step, and the sign's own extras.
      remedies: what the lab offers against it.
    """

    name: str
    fired: bool
    value: float
    threshold: float
    direction: str
    step: int | None
    test: str
    detail: dict
    remedies: tuple


class Diagnosis(NamedTuple):
    """The five signs (in :data:`SIGN_NAMES` order), the optimizers and seeds they rest on."""

    signs: tuple
    optimizers: tuple
    num_seeds: int
    steps: int
    thresholds: Any

    @property
    def stuck(self) -> bool:
        """Whether any sign fired."""
        return any(s.fired for s in self.signs)

    @property
    def fired(self) -> tuple:
        """Names of the signs that fired."""
        return tuple(s.name for s in self.signs if s.fired)

    def sign(self, name: str) -> Sign:
        """The :class:`Sign` called ``name``."""
        for s in self.signs:
            if s.name == name:
                return s
        raise ValueError(f"name must be one of {SIGN_NAMES}, got {name!r}")

    def to_dict(self) -> dict:
        """Plain JSON types (non-finite floats as ``"inf"`` / ``"nan"``)."""
        from jaxopt_lab.compare.store import jsonable

        return jsonable({
            "stuck": self.stuck, "fired": list(self.fired), "optimizers": list(self.optimizers),
            "num_seeds": self.num_seeds, "steps": self.steps, "thresholds": self.thresholds,
            "signs": [{**s._asdict(), "title": SIGN_TITLES[s.name],
                       "remedies": [r._asdict() for r in s.remedies]} for s in self.signs],
        })


@dataclasses.dataclass(frozen=True)
class DiagnosisThresholds:
    """Thresholds and windows of the five tests (see the module docstring).

    Attributes:
      plateau_window: steps over which the EMA loss must improve (the monitor's window).
      plateau_eps: plateau when the relative change over the window is below this.
      plateau_above: ...while the EMA loss is above this fraction of the first loss.
      ema_decay: decay of the EMA loss (the monitor's).
      gap: train/val gap fires when val loss - train loss (at the end) exceeds this.
      window: steps averaged for the initial and the final gradient norm.
      grad_norm_ratio: vanishing when the final / initial gradient norm is below this...
      layer_ratio: ...or the first / last layer gradient-norm ratio is below this.
      seed_iqr: seed sensitivity when iqr / |median| of the final losses exceeds this.
      disagreement: optimizers disagree when the ratio of their median final losses exceeds
        this and their bootstrap intervals are disjoint.
      confidence: level of the bootstrap (medians) and Wilson (shares of seeds) intervals.
      seed: seed of the bootstrap resampling.
    """

    plateau_window: int = 50
    plateau_eps: float = 1e-3
    plateau_above: float = 0.5
    ema_decay: float = 0.9
    gap: float = 0.1
    window: int = 20
    grad_norm_ratio: float = 1e-2
    layer_ratio: float = 1e-3
    seed_iqr: float = 0.5
    disagreement: float = 2.0
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self):
        check_int("plateau_window", self.plateau_window)
        check_int("window", self.window)
        check_int("seed", self.seed, minimum=0)
        for name in ("plateau_eps", "gap", "grad_norm_ratio", "layer_ratio", "seed_iqr"):
            check_positive(name, getattr(self, name))
        for name in ("plateau_above", "ema_decay", "confidence"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        check_positive("disagreement", self.disagreement)
        if self.disagreement <= 1.0:
            raise ValueError(f"disagreement must be a ratio > 1, got {self.disagreement!r}")

    def monitor(self) -> Thresholds:
        """The health monitor's thresholds with this plateau window and EMA."""
        return Thresholds(plateau_window=self.plateau_window, plateau_eps=self.plateau_eps,
                          ema_decay=self.ema_decay, vanishing_ratio=self.layer_ratio)


DEFAULT_DIAGNOSIS_THRESHOLDS = DiagnosisThresholds()

THRESHOLD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DiagnosisThresholds))


# --------------------------------------------------------------------------- remedies

_R = Remedy
REMEDIES: dict[str, tuple] = {
    "plateau": (
        _R("an adaptive optimizer", 'optimizers.get("adam" | "rmsprop", lr)'),
        _R("a larger or cyclical / cosine learning rate",
           "optax.warmup_cosine_decay_schedule, optax.sgdr_schedule"),
        _R("noise that kicks the iterate off flat regions (perturbed GD)",
           "transforms.perturbed_gd"),
        _R("restarts from new seeds, keep the best", "compare.train(num_seeds=...), "
           "search.random_restarts"),
    ),
    "train_val_gap": (
        _R("weight decay", "optax.add_decayed_weights, optax.adamw"),
        _R("averaged weights (flatter solutions)", "transforms.swa, transforms.weight_ema"),
        _R("stop when the monitor's overfitting flag fires",
           "health.Thresholds(overfit_*), compare.train(val_fn=...)"),
        _R("normalization (batch statistics as noise)", 'models.mlp(norm="batch")'),
    ),
    "vanishing_gradient": (
        _R("skip connections", "models.mlp(residual=True)"),
        _R("normalization", 'models.mlp(norm="layer" | "batch")'),
        _R("non-saturating activations and a matched init",
           'models.mlp(activation="relu" | "gelu", init="he")'),
        _R("perturbed GD when the gradient is small at a saddle", "transforms.perturbed_gd"),
    ),
    "seed_sensitivity": (
        _R("restarts / best of several seeds", "compare.train(num_seeds=...), "
           "search.random_restarts"),
        _R("a better initialization", 'models.mlp(init="he" | "xavier" | "orthogonal")'),
        _R("normalization", 'models.mlp(norm="layer" | "batch")'),
        _R("clipping and a rollback for seeds that diverge",
           "optax.clip_by_global_norm(1.0), transforms.rollback_guard"),
    ),
    "optimizer_disagreement": (
        _R("tune each optimizer's learning rate on one grid",
           "optimizers.grid(names, learning_rates)"),
        _R("learning-rate schedules", "optax.warmup_cosine_decay_schedule"),
        _R("perturbed GD / restarts to leave the worse basin",
           "transforms.perturbed_gd, search.random_restarts"),
        _R("compare more seeds (narrower intervals)", "compare.train(num_seeds=...)"),
    ),
}


# --------------------------------------------------------------------------- input layout

#: Metrics (``[n_hparams, S]``) and curves (``[n_hparams, S, T]``) :func:`diagnose` reads
#: from a ``compare.Results``; ``val_loss``/``train_loss``/``overfitting_step`` are optional
#: (no gap sign without them), the rest are required.
REQUIRED_CURVES = ("loss", "grad_norm")
OPTIONAL_CURVES = ("grad_ratio",)
REQUIRED_METRICS = ("final_loss",)


def from_train(train_results: Any) -> Any:
    """A :class:`compare.TrainResults` as the ``compare.Results`` :func:`diagnose` reads.

    One group per optimizer (``"name"``, or ``"name@h"`` for hyperparameter row ``h`` when
    an optimizer has several). Metrics ``[1, S]``: ``final_loss``, ``nonfinite``, the
    ``evaluate`` scalars (e.g. ``train_loss`` / ``val_loss`` / accuracies) and the monitor's
    first-fired steps ``overfitting_step`` / ``plateau_step`` / ``vanishing_step`` (-1 never);
    curves ``[1, S, T]``: ``loss``, ``grad_norm``, ``grad_ratio`` and the monitor's
    ``plateau_change`` (what :func:`plateau_change` recomputes from ``loss``).
    """
    from jaxopt_lab.compare import Results, TrainResults

    if not isinstance(train_results, TrainResults):
        raise TypeError(f"train_results must be a compare.TrainResults, got "
                        f"{type(train_results).__name__}")
    tr = train_results
    labels, hparams, metrics, curves = [], {}, {}, {}
    for name in tr.optimizers:
        rows = tr.hparams[name]
        for h, hp in enumerate(rows):
            label = name if len(rows) == 1 else f"{name}@{h}"
            labels.append(label)
            hparams[label] = [dict(hp)]
            rep = tr.reports[name]
            m = {k: np.asarray(v)[h][None] for k, v in tr.final[name].items()}
            m["nonfinite"] = m["nonfinite"].astype(bool)
            for flag in ("overfitting", "plateau", "vanishing"):
                m[f"{flag}_step"] = tr.first_step(name, flag)[h][None].astype(np.int64)
            metrics[label] = m
            curves[label] = {"loss": np.asarray(rep.loss)[h][None],
                             "grad_norm": np.asarray(rep.grad_norm)[h][None],
                             "grad_ratio": np.asarray(rep.grad_ratio)[h][None],
                             "plateau_change": np.asarray(rep.plateau_change)[h][None]}
    return Results(optimizers=labels, hparams=hparams, metrics=metrics, curves=curves,
                   meta=dict(tr.meta))


# --------------------------------------------------------------------------- the tests


@functools.partial(jax.jit, static_argnames=("th",))
def _replay(losses: jax.Array, th: Thresholds):
    def one(loss_curve):
        def body(state, args):
            t, v = args
            state, rep = update_health(state, t, loss=v, thresholds=th)
            return state, (rep.plateau_change, rep.ema_loss)

        steps = jnp.arange(loss_curve.shape[0])
        return jax.lax.scan(body, init_health(th), (steps, loss_curve))[1]

    return jax.vmap(one)(losses)


def plateau_change(losses: Any, thresholds: DiagnosisThresholds = DEFAULT_DIAGNOSIS_THRESHOLDS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The health monitor's plateau statistic replayed on loss curves ``[S, T]``.

    Returns ``(change, ema)`` ``[S, T]``: the relative change of the EMA loss over
    ``plateau_window`` steps (NaN before the window is full) and the EMA loss, exactly as
    :func:`jaxopt_lab.health.update_health` computes them inside training.
    """
    x = np.asarray(losses, np.float32)
    if x.ndim != 2:
        raise ValueError(f"losses must have shape [num_seeds, steps], got {x.shape}")
    change, ema = _replay(jnp.asarray(x), thresholds.monitor())
    return np.asarray(change), np.asarray(ema)


def _moving_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing mean over ``w`` steps (over the steps so far for the first ``w - 1``)."""
    c = np.cumsum(np.concatenate([np.zeros(x.shape[:-1] + (1,)), x], -1), -1)
    n = np.arange(1, x.shape[-1] + 1)
    lo = np.maximum(n - w, 0)
    return (c[..., n] - c[..., lo]) / (n - lo)


def _first_true(mask: np.ndarray) -> np.ndarray:
    """First index along the last axis where ``mask`` holds, -1 if never."""
    return np.where(mask.any(-1), mask.argmax(-1), -1)


def _median(x: np.ndarray) -> float:
    from jaxopt_lab.compare.stats import median_inf

    x = np.asarray(x, np.float64).reshape(-1)
    return median_inf(np.where(np.isnan(x), np.inf, x)) if x.size else math.nan


def _seed_detail(value: float, per_seed: np.ndarray, first: np.ndarray, fired: bool,
                 confidence: float, **extra) -> dict:
    from jaxopt_lab.compare.stats import wilson_interval

    hit = np.asarray(first) >= 0
    k, n = int(hit.sum()), int(hit.size)
    lo, hi = wilson_interval(k, n, confidence)
    return {"value": float(value), "fired": bool(fired), "seeds_fired": k, "num_seeds": n,
            "seeds_fired_ci": [lo, hi],
            "step": int(np.median(first[hit])) if k else None,
            "per_seed": [float(v) for v in np.asarray(per_seed, np.float64).reshape(-1)],
            **extra}


def _pick(detail: dict, direction: str) -> tuple[float, int | None]:
    """The most extreme per-optimizer value (and its step), preferring ones that fired."""
    items = [d for d in detail.values() if math.isfinite(d["value"])] or list(detail.values())
    if not items:
        return math.nan, None
    fired = [d for d in items if d["fired"]] or items
    key = (lambda d: d["value"]) if direction == "<" else (lambda d: -d["value"])
    best = min(fired, key=key)
    return float(best["value"]), best.get("step")


def _sign(name: str, detail: dict, threshold: float, direction: str, test: str,
          step_from_detail: bool = True) -> Sign:
    value, step = _pick(detail, direction)
    fired = any(d["fired"] for d in detail.values())
    return Sign(name=name, fired=fired, value=value, threshold=float(threshold),
                direction=direction, step=step if (fired and step_from_detail) else None,
                test=test, detail=detail, remedies=REMEDIES[name])


def plateau_sign(curves: Mapping[str, np.ndarray], th: DiagnosisThresholds) -> Sign:
    """Plateau: ``curves`` is optimizer -> loss curves ``[S, T]``."""
    detail = {}
    for name, loss in curves.items():
        loss = np.asarray(loss, np.float64)
        change, ema = plateau_change(loss, th)
        high = ema > th.plateau_above * np.abs(loss[:, :1])
        stat = np.where(high & np.isfinite(change), np.abs(change), np.inf)
        per_seed = stat.min(-1)
        first = _first_true(stat < th.plateau_eps)
        value = _median(per_seed)
        detail[name] = _seed_detail(value, per_seed, first, value < th.plateau_eps,
                                    th.confidence)
    test = (f"min over steps with EMA loss > {th.plateau_above:g} x first loss of "
            f"|EMA loss change| / |EMA loss| over {th.plateau_window} steps (EMA decay "
            f"{th.ema_decay:g}); median over seeds")
    return _sign("plateau", detail, th.plateau_eps, "<", test)


def gap_sign(gaps: Mapping[str, tuple], th: DiagnosisThresholds) -> Sign:
    """Train/val gap: ``gaps`` is optimizer -> ``(train_loss [S], val_loss [S],
    overfitting_step [S] or None, extras dict)``."""
    detail = {}
    for name, (train, val, first, extra) in gaps.items():
        per_seed = np.asarray(val, np.float64) - np.asarray(train, np.float64)
        first = (np.full(per_seed.shape, -1) if first is None
                 else np.asarray(first).reshape(-1))
        value = _median(per_seed)
        d = _seed_detail(value, per_seed, first, value > th.gap, th.confidence,
                         train_loss=_median(train), val_loss=_median(val), **extra)
        d["monitor_overfitting_seeds"] = d.pop("seeds_fired")
        d["monitor_overfitting_ci"] = d.pop("seeds_fired_ci")
        detail[name] = d
    test = ("validation loss - training loss at the end (final parameters, up to "
            "val_examples examples of each split); "
            "median over seeds; step: first step of the monitor's overfitting flag")
    return _sign("train_val_gap", detail, th.gap, ">", test)


def vanishing_sign(curves: Mapping[str, tuple], th: DiagnosisThresholds) -> Sign:
    """Vanishing gradient: ``curves`` is optimizer -> ``(grad_norm [S, T],
    grad_ratio [S, T] or None)``.

    Two criteria: the norm ratio (final / initial gradient norm) and the layer ratio (first
    / last layer gradient norm). The sign reports the norm ratio; when only the layer ratio
    fired, it reports that one (``value``, ``threshold`` and ``step`` of the layer test).
    """
    detail = {}
    w = th.window
    for name, (gnorm, ratio) in curves.items():
        g = np.asarray(gnorm, np.float64)
        w_eff = min(w, g.shape[-1])
        g0 = np.mean(g[:, :w_eff], -1, keepdims=True)
        rel = _moving_mean(g, w_eff) / np.where(g0 > 0, g0, np.nan)
        per_seed = rel[:, -1]
        value = _median(per_seed)
        fired_norm = value < th.grad_norm_ratio
        layer_first = np.full(g.shape[0], -1)
        layer_value = math.nan
        if ratio is not None and np.isfinite(np.asarray(ratio)).any():
            lr = _moving_mean(np.asarray(ratio, np.float64), w_eff)
            layer_value = _median(lr[:, -1])
            layer_first = _first_true(lr < th.layer_ratio)
        fired_layer = layer_value < th.layer_ratio
        d = _seed_detail(value, per_seed, _first_true(rel < th.grad_norm_ratio), fired_norm,
                         th.confidence, initial_grad_norm=_median(g0[:, 0]),
                         final_grad_norm=_median(np.mean(g[:, -w_eff:], -1)))
        hit = layer_first >= 0
        d.update(fired=bool(fired_norm or fired_layer), fired_norm=bool(fired_norm),
                 fired_layer=bool(fired_layer), layer_ratio=float(layer_value),
                 layer_threshold=th.layer_ratio, layer_seeds_fired=int(hit.sum()),
                 layer_step=int(np.median(layer_first[hit])) if hit.any() else None)
        detail[name] = d
    test = (f"mean gradient norm over the last {w} steps / over the first {w}; median over "
            f"seeds (also fires when the first/last layer gradient ratio, mean of the last "
            f"{w} steps, is < {th.layer_ratio:g}: then value, threshold and step are the "
            "layer test's)")
    if any(d["fired_norm"] for d in detail.values()) or not any(
            d["fired_layer"] for d in detail.values()):
        norm_only = {k: {**d, "fired": d["fired_norm"]} for k, d in detail.items()}
        value, step = _pick(norm_only, "<")
        threshold = th.grad_norm_ratio
    else:
        layer = {k: {**d, "value": d["layer_ratio"], "fired": d["fired_layer"],
                     "step": d["layer_step"]} for k, d in detail.items()}
        value, step = _pick(layer, "<")
        threshold = th.layer_ratio
    fired = any(d["fired"] for d in detail.values())
    return Sign("vanishing_gradient", fired, value, float(threshold), "<",
                step if fired else None, test, detail, REMEDIES["vanishing_gradient"])


def seed_sign(final: Mapping[str, np.ndarray], th: DiagnosisThresholds) -> Sign:
    """Seed sensitivity: ``final`` is optimizer -> final losses ``[S]`` (S >= 2)."""
    detail = {}
    for name, x in final.items():
        s = seed_sensitivity(np.asarray(x, np.float32).reshape(-1), threshold=th.seed_iqr)
        detail[name] = {"value": float(s.relative_iqr), "fired": bool(s.flag),
                        "median": float(s.median), "iqr": float(s.iqr),
                        "min": float(s.min), "max": float(s.max),
                        "nonfinite_fraction": float(s.nonfinite_fraction), "step": None}
    test = ("relative IQR (iqr / |median|) of the final training losses over seeds "
            "(health.seed_sensitivity; a non-finite seed also fires)")
    return _sign("seed_sensitivity", detail, th.seed_iqr, ">", test, step_from_detail=False)


def disagreement_sign(final: Mapping[str, np.ndarray], th: DiagnosisThresholds) -> Sign:
    """Optimizer disagreement: ``final`` is optimizer -> final losses ``[S]``; every pair."""
    from jaxopt_lab.compare.stats import bootstrap_median_ci

    names = list(final)
    med, ci = {}, {}
    for i, name in enumerate(names):
        x = np.asarray(final[name], np.float64).reshape(-1)
        x = np.where(np.isnan(x), np.inf, x)
        med[name] = _median(x)
        ci[name] = bootstrap_median_ci(x, jax.random.fold_in(jax.random.key(th.seed), i),
                                       confidence=th.confidence)
    detail = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            lo_m, hi_m = sorted((med[a], med[b]))
            ratio = (hi_m / lo_m if lo_m > 0 else (math.inf if hi_m > lo_m else 1.0)
                     ) if math.isfinite(lo_m) else math.nan
            disjoint = ci[a][1] < ci[b][0] or ci[b][1] < ci[a][0]
            detail[f"{a} vs {b}"] = {
                "value": float(ratio), "fired": bool(disjoint and ratio > th.disagreement),
                "intervals_disjoint": bool(disjoint),
                "median": {a: med[a], b: med[b]},
                "ci": {a: list(map(float, ci[a])), b: list(map(float, ci[b]))},
                "step": None}
    test = (f"ratio of two optimizers' median final losses (larger / smaller), fires when > "
            f"{th.disagreement:g} and their {th.confidence:.0%} bootstrap intervals of the "
            "median are disjoint; needs two optimizers")
    if not detail:
        return Sign("optimizer_disagreement", False, math.nan, float(th.disagreement), ">",
                    None, test + " (only one optimizer: not measured)", {},
                    REMEDIES["optimizer_disagreement"])
    return _sign("optimizer_disagreement", detail, th.disagreement, ">", test,
                 step_from_detail=False)


# --------------------------------------------------------------------------- diagnose


def _check_thresholds(thresholds: Any) -> DiagnosisThresholds:
    if thresholds is None:
        return DEFAULT_DIAGNOSIS_THRESHOLDS
    if not isinstance(thresholds, DiagnosisThresholds):
        raise TypeError(f"thresholds must be a DiagnosisThresholds, got "
                        f"{type(thresholds).__name__}")
    return thresholds


def diagnose(results: Any, thresholds: DiagnosisThresholds | None = None) -> Diagnosis:
    """The five signs of being stuck, measured on a finished training sweep.

    Args:
      results: a :class:`compare.TrainResults` (converted by :func:`from_train`) or a
        :class:`compare.Results` with, per group (hyperparameter row 0 is used),
        curves ``loss`` and ``grad_norm`` ``[n_hparams, S, T]`` (optionally
        ``grad_ratio``), metric ``final_loss`` ``[n_hparams, S]`` and, for the gap sign,
        ``train_loss`` and ``val_loss`` (optionally ``overfitting_step``, -1 = never).
        ``S >= 2`` seeds.
      thresholds: :class:`DiagnosisThresholds` (default ``DiagnosisThresholds()``).

    Returns:
      :class:`Diagnosis`.
    """
    from jaxopt_lab.compare import Results, TrainResults

    th = _check_thresholds(thresholds)
    if isinstance(results, TrainResults):
        results = from_train(results)
    if not isinstance(results, Results):
        raise TypeError(f"results must be a compare.Results or compare.TrainResults, got "
                        f"{type(results).__name__}")
    names = list(results.optimizers)
    if not names:
        raise ValueError("results must hold at least one optimizer")
    for name in names:
        c, m = results.curves.get(name, {}), results.metrics.get(name, {})
        missing = [k for k in REQUIRED_CURVES if k not in c] + [
            k for k in REQUIRED_METRICS if k not in m]
        if missing:
            raise ValueError(f"results lacks {missing} for {name!r} (see diagnosis.from_train)")
        if np.asarray(c["loss"]).ndim != 3 or np.asarray(c["loss"]).shape[1] < 2:
            raise ValueError(f"results: curves[{name!r}]['loss'] must be [n_hparams, S >= 2, "
                             f"T], got {np.shape(c['loss'])}")
    curve = lambda n, k: np.asarray(results.curves[n][k])[0]  # noqa: E731
    metric = lambda n, k: np.asarray(results.metrics[n][k])[0]  # noqa: E731
    final = {n: metric(n, "final_loss") for n in names}
    gaps = {}
    for n in names:
        m = results.metrics[n]
        if "train_loss" in m and "val_loss" in m:
            extra = {k: _median(metric(n, k)) for k in ("train_accuracy", "val_accuracy")
                     if k in m}
            gaps[n] = (metric(n, "train_loss"), metric(n, "val_loss"),
                       metric(n, "overfitting_step") if "overfitting_step" in m else None,
                       extra)
    if gaps:
        gap = gap_sign(gaps, th)
    else:
        gap = Sign("train_val_gap", False, math.nan, float(th.gap), ">", None,
                   "no train_loss / val_loss in the results: not measured", {},
                   REMEDIES["train_val_gap"])
    signs = (
        plateau_sign({n: curve(n, "loss") for n in names}, th),
        gap,
        vanishing_sign({n: (curve(n, "grad_norm"), curve(n, "grad_ratio")
                            if "grad_ratio" in results.curves[n] else None) for n in names}, th),
        seed_sign(final, th),
        disagreement_sign(final, th),
    )
    loss0 = np.asarray(results.curves[names[0]]["loss"])
    return Diagnosis(signs=signs, optimizers=tuple(names), num_seeds=int(loss0.shape[1]),
                     steps=int(loss0.shape[2]), thresholds=th)


# --------------------------------------------------------------------------- driver


@dataclasses.dataclass(frozen=True)
class Config:
    """A diagnosis run: a named model on a named dataset, named optimizers, seeds.

    Attributes:
      model: ``"mlp"`` (hidden ReLU layers ``hidden``) or ``"cnn"`` (image data only).
      data: ``"digits"``, ``"fashion_mnist"`` or ``"mnist1d"`` (needs the mnist1d package).
      optimizers: registry names (:mod:`jaxopt_lab.optimizers`), at least one.
      learning_rates: one per optimizer, or None for :data:`DEFAULT_LEARNING_RATES`.
      num_seeds: seeds per optimizer (>= 2: the seed sign needs a spread).
      steps: training steps (>= 2).
      batch_size: minibatch size.
      hidden: MLP hidden widths or the CNN's channels per conv block (None: (64, 64) for
        the MLP, (8, 16) for the CNN).
      activation: hidden activation (:data:`jaxopt_lab.models.ACTIVATIONS`); a deep
        ``"sigmoid"`` MLP shows the vanishing-gradient sign.
      train_examples: use only the first N training examples (None: all); few examples
        make the train/val gap appear.
      val_examples: validation examples (the first of the test split) scored at the end;
        the end-of-run training loss is scored on the first ``val_examples`` training
        examples (bounded memory on Fashion-MNIST).
      monitor_examples: the first this many of them are scored at every step (the
        monitor's overfitting flag; a convolution over every validation example at every
        step would cost more than the training step).
      seed: master seed (seed i = ``fold_in(key(seed), i)``).
      thresholds: :class:`DiagnosisThresholds`.
      fast_compile: XLA optimization level 0 on CPU (short runs).
    """

    model: str = "mlp"
    data: str = "digits"
    optimizers: tuple = ("sgd", "adam")
    learning_rates: tuple | None = None
    num_seeds: int = 32
    steps: int = 2000
    batch_size: int = 64
    hidden: tuple | None = None
    activation: str = "relu"
    train_examples: int | None = None
    val_examples: int = 512
    monitor_examples: int = 128
    seed: int = 0
    thresholds: DiagnosisThresholds = DEFAULT_DIAGNOSIS_THRESHOLDS
    fast_compile: bool = False

    def __post_init__(self):
        from jaxopt_lab import optimizers as registry
        from jaxopt_lab._validation import check_choice

        check_choice("model", self.model, MODELS)
        check_choice("data", self.data, DATASETS)
        if self.model == "cnn" and self.data == "mnist1d":
            raise ValueError("model 'cnn' needs image data (digits or fashion_mnist), got "
                             "data 'mnist1d'")
        if isinstance(self.optimizers, str) or not isinstance(self.optimizers, Sequence) \
                or not self.optimizers:
            raise ValueError(f"optimizers must be a non-empty tuple of names, got "
                             f"{self.optimizers!r}")
        names = tuple(registry.canonical(n) for n in self.optimizers)
        if len(set(names)) != len(names):
            raise ValueError(f"optimizers must not repeat a name, got {self.optimizers!r}")
        object.__setattr__(self, "optimizers", names)
        if self.learning_rates is not None:
            lrs = tuple(self.learning_rates)
            if len(lrs) == 1:
                lrs = lrs * len(names)
            if len(lrs) != len(names):
                raise ValueError(f"learning_rates must give one value per optimizer "
                                 f"({len(names)}) or one for all, got {len(lrs)}")
            for v in lrs:
                check_positive("learning_rates", v)
            object.__setattr__(self, "learning_rates", tuple(float(v) for v in lrs))
        check_int("num_seeds", self.num_seeds, minimum=2)
        check_int("steps", self.steps, minimum=2)
        check_int("batch_size", self.batch_size)
        check_int("val_examples", self.val_examples)
        check_int("monitor_examples", self.monitor_examples)
        check_int("seed", self.seed, minimum=0)
        if self.train_examples is not None:
            check_int("train_examples", self.train_examples)
        if self.hidden is None:
            object.__setattr__(self, "hidden", (8, 16) if self.model == "cnn" else (64, 64))
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty tuple of ints, got {self.hidden!r}")
        for h in self.hidden:
            check_int("hidden", h)
        from jaxopt_lab.models import ACTIVATIONS

        check_choice("activation", self.activation, ACTIVATIONS)
        _check_thresholds(self.thresholds)

    @classmethod
    def quick(cls, **overrides) -> Config:
        """8 seeds x 300 steps; fast compile for the MLP (not the CNN: its convolutions
        run ~7x slower unoptimized, measured 35 s vs 5 s for 2 seeds x 100 steps on digits).
        """
        fast = overrides.get("model", cls.model) != "cnn"
        return cls(**{"num_seeds": 8, "steps": 300, "fast_compile": fast, **overrides})

    @classmethod
    def full(cls, **overrides) -> Config:
        """32 seeds x 2000 steps."""
        return cls(**overrides)

    def lr(self) -> dict:
        """Optimizer name -> learning rate."""
        lrs = self.learning_rates or tuple(DEFAULT_LEARNING_RATES.get(n, 1e-3)
                                           for n in self.optimizers)
        return dict(zip(self.optimizers, lrs, strict=True))


def _load(c: Config) -> tuple[dict, tuple]:
    """``{"train", "train_eval", "val", "monitor"}`` ``(x, y)`` pairs and the model's input
    shape (``train_eval``: the first ``val_examples`` training examples; ``monitor``: the
    first ``monitor_examples`` validation examples)."""
    from jaxopt_lab import data

    image = c.model == "cnn"
    if c.data == "digits":
        d = data.load_digits(layout="image" if image else "flat")
    elif c.data == "fashion_mnist":
        d = data.load_fashion_mnist(layout="image" if image else "flat",
                                    num_train=c.train_examples, num_test=c.val_examples)
    else:
        d = data.load_mnist1d()
    (x, y), (xt, yt) = d["train"], d["test"]
    n = len(x) if c.train_examples is None else min(c.train_examples, len(x))
    v = min(c.val_examples, len(xt))
    k, m = min(c.val_examples, n), min(c.monitor_examples, v)
    return ({"train": (x[:n], y[:n]), "train_eval": (x[:k], y[:k]), "val": (xt[:v], yt[:v]),
             "monitor": (xt[:m], yt[:m])}, tuple(np.shape(x)[1:]))


def _model(c: Config, in_shape: tuple):
    from jaxopt_lab import models

    if c.model == "cnn":
        return models.cnn(in_shape, 10, channels=c.hidden, activation=c.activation)
    return models.mlp(int(np.prod(in_shape)), c.hidden, 10, activation=c.activation)


def run(config: Config, out_dir: Any = None) -> tuple[Any, Diagnosis]:
    """Train ``config.optimizers`` x ``config.num_seeds`` and diagnose the result.

    Training is one :func:`jaxopt_lab.compare.train` call (health monitor every step,
    validation loss on ``monitor_examples`` examples every step for the monitor's
    overfitting flag, train and validation loss / accuracy on ``val_examples`` examples at
    the end through ``evaluate``).

    Args:
      config: :class:`Config`.
      out_dir: optional run directory (``Results.save``): ``records.csv``, ``metrics.npz``,
        ``curves.npz``, ``meta.json`` (the diagnosis in ``summary``) and ``diagnose.png``.

    Returns:
      ``(results, diagnosis)``: the :class:`compare.Results` (layout of :func:`from_train`,
      ``summary = {"diagnosis": diagnosis.to_dict(), "nonfinite_seeds": ...}``) and the
      :class:`Diagnosis`.
    """
    from jaxopt_lab import compare, data, models
    from jaxopt_lab import optimizers as registry

    if not isinstance(config, Config):
        raise TypeError(f"config must be a diagnosis.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    dataset, in_shape = _load(c)
    model = _model(c, in_shape)
    ce = models.loss_fn("cross_entropy")
    def loss(params, batch):
        return model.loss(params, batch)

    def scores(params, xy):
        logits = model.apply(params, xy[0])
        return ce(logits, xy[1]), jnp.mean(jnp.argmax(logits, -1) == xy[1])

    def evaluate(params, d):
        tl, ta = scores(params, d["train_eval"])
        vl, va = scores(params, d["val"])
        return {"train_loss": tl, "val_loss": vl, "train_accuracy": ta, "val_accuracy": va}

    batch = c.batch_size
    opts = {n: (registry.OPTIMIZERS[n].build, {"learning_rate": [lr]})
            for n, lr in c.lr().items()}
    tr = compare.train(
        model.init, loss, opts, num_seeds=c.num_seeds, steps=c.steps,
        key=jax.random.key(c.seed),
        batch_fn=lambda d, key, step: data.sample_batch(key, d["train"], batch),
        data=dataset, evaluate=evaluate, val_fn=lambda p, d: scores(p, d["monitor"])[0],
        thresholds=c.thresholds.monitor(), layer_order=model.layers,
        fast_compile=c.fast_compile)
    results = from_train(tr)
    diag = diagnose(results, c.thresholds)
    from jaxopt_lab.compare import store

    results.summary = store.jsonable({
        "diagnosis": diag.to_dict(),
        "nonfinite_seeds": {n: [s for _, s in v] for n, v in results.nonfinite_seeds().items()},
    })
    results.meta = store.make_meta(
        c, key=jax.random.key(c.seed), compile_seconds=tr.compile_seconds,
        run_seconds=tr.run_seconds, total_seconds=time.perf_counter() - t_start,
        experiment="diagnose", num_examples=len(dataset["train"][0]))
    if out_dir is not None:
        from jaxopt_lab.plot.diagnose import diagnosis_figure

        results.save(out_dir, figures={"diagnose": diagnosis_figure(results, diag)})
    return results, diag


__all__ = [
    "DATASETS",
    "DEFAULT_DIAGNOSIS_THRESHOLDS",
    "DEFAULT_LEARNING_RATES",
    "MODELS",
    "REMEDIES",
    "SIGN_NAMES",
    "SIGN_TITLES",
    "THRESHOLD_NAMES",
    "Config",
    "Diagnosis",
    "DiagnosisThresholds",
    "Remedy",
    "Sign",
    "diagnose",
    "disagreement_sign",
    "from_train",
    "gap_sign",
    "plateau_change",
    "plateau_sign",
    "run",
    "seed_sign",
    "vanishing_sign",
]

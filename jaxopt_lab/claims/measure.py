"""Statistics of a claim, as pure functions of an experiment's ``Results``.

Each function picks per-seed values out of ``results.metrics[group][metric]`` (one row of
the ``[n_hparams, n_seeds]`` array, chosen by hyperparameters when a group has several)
and returns an :class:`Estimate`: a point value with a 95% interval over seeds. Rates use
Wilson's interval (:func:`jaxopt_lab.compare.stats.wilson_interval`), differences of rates
Newcombe's hybrid score interval built from the two Wilson intervals, medians the
percentile bootstrap (:func:`jaxopt_lab.compare.stats.bootstrap_median_ci`), and
differences of medians or means a paired percentile bootstrap (the seeds of every variant
of an experiment share ``fold_in(key, i)``: seed ``i`` of one variant is paired with seed
``i`` of the other). Resampling uses a numpy ``Generator`` with a fixed seed, so an
estimate is a deterministic function of the results.

A value the results do not hold (a variant or remedy the run's config left out) raises
:class:`MissingData`; the ledger reports that part of the claim ``untested`` with the
message as its reason.

References:
  Wilson, 1927. Probable inference, the law of succession, and statistical inference.
  Newcombe, 1998. Interval estimation for the difference between independent
  proportions: comparison of eleven methods.
  Efron & Tibshirani, 1993. An Introduction to the Bootstrap.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxopt_lab.compare import stats

CONFIDENCE = 0.95
N_BOOT = 2000
_SEED = 20240512


class Estimate(NamedTuple):
    """A statistic over seeds: ``value`` with its 95% interval ``[lo, hi]`` and ``n`` seeds;
    ``what`` says how it was computed (shown in the ledger)."""

    value: float
    lo: float
    hi: float
    n: int
    what: str


class MissingData(LookupError):
    """The results do not hold what a statistic needs (the reason is the message)."""


# --------------------------------------------------------------------------- selection


def values(results, group: str, metric: str | Callable, where: Mapping[str, Any] | None = None
           ) -> np.ndarray:
    """Per-seed values ``[n_seeds]`` of ``metric`` for ``group`` (the row whose
    hyperparameters match every item of ``where``; the only row when ``where`` is None).
    ``metric`` may be a function of the row's per-seed metrics ``{name: [n_seeds]}``.

    Raises:
      MissingData: the group, the metric or a matching row is absent (or not unique).
    """
    if group not in results.metrics:
        raise MissingData(f"the run has no {results.group_column} {group!r} "
                          f"(it has {list(results.optimizers)})")
    m = results.metrics[group]
    h = _row(results, group, where)
    if callable(metric):
        try:
            return np.asarray(metric({k: np.asarray(v)[h].reshape(-1) for k, v in m.items()})
                              ).reshape(-1)
        except KeyError as e:
            raise MissingData(f"{group!r} has no metric {e}") from None
    if metric not in m:
        raise MissingData(f"{group!r} has no metric {metric!r}")
    return np.asarray(m[metric])[h].reshape(-1)


def _row(results, group: str, where: Mapping | None) -> int:
    rows = [h for h, hp in enumerate(results.hparams[group])
            if all(_same(hp.get(k), v) for k, v in (where or {}).items())]
    if len(rows) != 1:
        what = f" with {dict(where)}" if where else ""
        raise MissingData(f"{group!r}{what}: {len(rows)} matching runs, need exactly one")
    return rows[0]


def _same(a, b) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6)
    return a == b


def _mname(metric) -> str:
    return metric if isinstance(metric, str) else getattr(metric, "__name__", repr(metric))


def _describe(group: str, where: Mapping | None) -> str:
    if not where:
        return str(group)
    return f"{group}[{', '.join(f'{k}={v}' for k, v in where.items())}]"


def with_curve_points(results, points: Mapping[str, int]):
    """A shallow copy of ``results`` whose metrics also hold every curve's value at the
    given evaluations: ``points = {label: index}`` adds ``f"{name}@{label}"`` =
    ``curves[group][name][..., index]`` (``[n_hparams, n_seeds]``; negative indices count
    from the end), so every statistic here can compare two moments of training.

    Raises:
      MissingData: the results have no curves, or an index is outside a curve.
    """
    if not results.curves:
        raise MissingData("the run has no curves over training")
    metrics = {}
    for group, m in results.metrics.items():
        metrics[group] = dict(m)
        for name, c in results.curves.get(group, {}).items():
            c = np.asarray(c)
            for label, i in points.items():
                if not -c.shape[-1] <= i < c.shape[-1]:
                    raise MissingData(f"{group!r} curve {name!r} has {c.shape[-1]} "
                                      f"evaluations, no index {i} ({label})")
                metrics[group][f"{name}@{label}"] = c[..., i]
    return dataclasses.replace(results, metrics=metrics)


# --------------------------------------------------------------------------- rates


def rate(results, group: str, metric: str, *, where: Mapping | None = None,
         predicate: Callable[[np.ndarray], np.ndarray] | None = None) -> Estimate:
    """Share of seeds where ``metric`` is true (or ``predicate(values)`` is), Wilson CI."""
    flags = _flags(values(results, group, metric, where), predicate)
    k, n = int(flags.sum()), int(flags.size)
    lo, hi = stats.wilson_interval(k, n, CONFIDENCE)
    return Estimate(k / n, lo, hi, n, f"{k}/{n} seeds of {_describe(group, where)} "
                    f"({_mname(metric)}); Wilson 95%")


def _flags(x: np.ndarray, predicate) -> np.ndarray:
    if predicate is not None:
        return np.asarray(predicate(x), bool).reshape(-1)
    return np.asarray(x).astype(bool).reshape(-1)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int,
                        confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``p1 - p2`` with Newcombe's hybrid score interval (method 10) from Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = stats.wilson_interval(k1, n1, confidence)
    l2, u2 = stats.wilson_interval(k2, n2, confidence)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, lo), min(1.0, hi)


def rate_difference(results, a: tuple, b: tuple, metric: str, *,
                    predicate: Callable | None = None) -> Estimate:
    """Rate of ``a`` minus rate of ``b`` (each ``(group, where)``), Newcombe interval."""
    fa = _flags(values(results, a[0], metric, a[1]), predicate)
    fb = _flags(values(results, b[0], metric, b[1]), predicate)
    d, lo, hi = newcombe_difference(int(fa.sum()), fa.size, int(fb.sum()), fb.size)
    return Estimate(d, lo, hi, min(fa.size, fb.size),
                    f"{int(fa.sum())}/{fa.size} {_describe(*a)} minus {int(fb.sum())}/{fb.size} "
                    f"{_describe(*b)} ({_mname(metric)}); Newcombe 95%")


# --------------------------------------------------------------------------- medians, means


def median(results, group: str, metric: str, *, where: Mapping | None = None,
           transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Estimate:
    """Median over seeds (NaN counts as ``+inf``: a diverged seed is the worst), bootstrap CI."""
    x = np.asarray(values(results, group, metric, where), np.float64)
    if transform is not None:
        x = np.asarray(transform(x), np.float64)
    x = np.where(np.isnan(x), np.inf, x)
    lo, hi = stats.bootstrap_median_ci(x, _SEED, n_boot=N_BOOT, confidence=CONFIDENCE)
    return Estimate(stats.median_inf(x), lo, hi, int(x.size),
                    f"median over {x.size} seeds of {_describe(group, where)} ({_mname(metric)}); "
                    "bootstrap 95%")


def paired_difference(results, a: tuple, b: tuple, metric: str, *, statistic: str = "median",
                      transform: Callable[[np.ndarray], np.ndarray] | None = None,
                      metric_b: str | None = None) -> Estimate:
    """``stat(a) - stat(b)`` over paired seeds (``a``/``b`` are ``(group, where)``),
    ``stat`` the median (``inf`` allowed: ``inf - inf`` counts as 0) or the mean (finite
    values only); paired percentile bootstrap over seed indices."""
    xa = np.asarray(values(results, a[0], metric, a[1]), np.float64)
    xb = np.asarray(values(results, b[0], metric_b or metric, b[1]), np.float64)
    if transform is not None:
        xa, xb = (np.asarray(transform(x), np.float64) for x in (xa, xb))
    n = min(xa.size, xb.size)
    xa, xb = xa[:n], xb[:n]
    if statistic == "median":
        xa, xb = (np.where(np.isnan(x), np.inf, x) for x in (xa, xb))
        fn = lambda u: stats.quantile_inf(u, 0.5, axis=-1)  # noqa: E731
    elif statistic == "mean":
        keep = np.isfinite(xa) & np.isfinite(xb)
        if not keep.any():
            raise MissingData(f"no seed with finite {metric} in both {a[0]} and {b[0]}")
        xa, xb, n = xa[keep], xb[keep], int(keep.sum())
        fn = lambda u: np.mean(u, axis=-1)  # noqa: E731
    else:
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    rng = np.random.default_rng(_SEED)
    idx = rng.integers(0, n, size=(N_BOOT, n))
    boot = _diff(np.asarray(fn(xa[idx])), np.asarray(fn(xb[idx])))
    alpha = (1.0 - CONFIDENCE) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha], method="linear") if np.isfinite(boot).all() \
        else stats.quantile_inf(np.where(np.isnan(boot), np.inf, boot), np.array([alpha,
                                                                                1 - alpha]))
    est = float(_diff(np.asarray(fn(xa)), np.asarray(fn(xb))))
    return Estimate(est, float(lo), float(hi), n,
                    f"{statistic} of {_describe(*a)} minus {statistic} of {_describe(*b)} "
                    f"({_mname(metric)}) over {n} paired seeds; paired bootstrap 95%")


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    with np.errstate(invalid="ignore"):
        return np.where(both_inf, 0.0, a - b)


def log10(x: np.ndarray) -> np.ndarray:
    """``log10`` with ``0 -> -inf`` and non-finite inputs passed through (NaN stays NaN)."""
    x = np.asarray(x, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(x)


__all__ = ["CONFIDENCE", "Estimate", "MissingData", "log10", "median", "newcombe_difference",
           "paired_difference", "rate", "rate_difference", "values", "with_curve_points"]

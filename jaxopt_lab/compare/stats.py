"""Statistics for sweeps where a miss is ``+inf``: quantiles, Wilson intervals, bootstrap CIs,
Dolan-More performance profiles.

Conventions: a trajectory that never escaped / never hit has step ``+inf``; NaN counts as a
miss too. Quantiles are the usual linear-interpolation estimator (Hyndman & Fan type 7,
numpy's default) extended to ``inf``: interpolating towards ``inf`` gives ``inf``, so the
median is ``inf`` exactly when more than half the runs miss (for even ``n``: when at least
half miss), and the IQR is ``inf`` when the upper quartile is.

References:
  Wilson, 1927. Probable inference, the law of succession, and statistical inference.
  Efron & Tibshirani, 1993. An Introduction to the Bootstrap.
  Hyndman & Fan, 1996. Sample quantiles in statistical packages.
  Dolan & More, 2002. Benchmarking optimization software with performance profiles.
  Mantel, 1966. Evaluation of survival data and two new rank order statistics (log-rank).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxopt_lab._validation import check_int

_STEP_METRICS = ("escape_step", "hit_step")
_RECORD_FIXED = ("optimizer", "seed", "escape_step", "hit_step", "final_value",
                 "final_grad_norm", "nonfinite")


def _as_costs(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), np.inf, x)


def quantile_inf(x, q, axis: int = -1) -> np.ndarray:
    """Type-7 (linear) quantile that treats ``+inf`` (and NaN) as a value larger than all.

    Args:
      x: samples (misses as ``inf``); reduced along ``axis``.
      q: quantile(s) in [0, 1].
      axis: axis of ``x`` holding the samples.

    Returns:
      Array of quantiles: shape ``q.shape + x.shape without axis``.
    """
    x = np.moveaxis(np.sort(_as_costs(x), axis=axis), axis, 0)  # [n, *rest]
    n = x.shape[0]
    if n == 0:
        raise ValueError("quantile_inf needs at least one sample, got an empty array")
    q = np.asarray(q, dtype=np.float64)
    if np.any((q < 0) | (q > 1)):
        raise ValueError(f"q must be in [0, 1], got {q}")
    h = (n - 1) * q
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = (h - lo).reshape(q.shape + (1,) * (x.ndim - 1))
    lo_v, hi_v = x[lo], x[hi]  # q.shape + rest
    with np.errstate(invalid="ignore"):
        interp = lo_v + frac * (hi_v - lo_v)
    return np.where((frac == 0) | (lo_v == hi_v), lo_v,
                    np.where(np.isinf(hi_v), np.inf, interp))


def median_inf(x) -> float:
    """Median with misses (``inf``) counted: ``inf`` when more than half miss."""
    return float(quantile_inf(x, 0.5))


def iqr_inf(x) -> tuple[float, float, float]:
    """``(q25, q75, q75 - q25)``; the width is ``inf`` when ``q75`` is ``inf``."""
    q25, q75 = (float(v) for v in quantile_inf(x, np.array([0.25, 0.75])))
    width = np.inf if np.isinf(q75) else q75 - q25
    return q25, q75, float(width)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Args:
      successes: number of successes ``k`` (0 <= k <= n).
      n: number of trials (>= 1).
      confidence: two-sided level in (0, 1).

    Returns:
      ``(lower, upper)``.

    References:
      Wilson, 1927. Probable inference, the law of succession, and statistical inference.
    """
    n = check_int("n", n, minimum=1)
    k = check_int("successes", successes, minimum=0)
    if k > n:
        raise ValueError(f"successes must be <= n={n}, got {k}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lower = 0.0 if k == 0 else max(0.0, centre - half)
    upper = 1.0 if k == n else min(1.0, centre + half)
    return float(lower), float(upper)


def bootstrap_median_ci(x, key, *, n_boot: int = 1000,
                        confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median (misses as ``inf``).

    Args:
      x: samples, 1-D.
      key: ``jax.random.key`` (or an int); resampling indices come from a numpy
        ``Generator`` seeded with the key's data (reproducible, nothing to compile).
      n_boot: bootstrap resamples.
      confidence: two-sided level in (0, 1).

    Returns:
      ``(lower, upper)``; an end is ``inf`` when that share of resampled medians is ``inf``.

    References:
      Efron & Tibshirani, 1993. An Introduction to the Bootstrap (percentile interval).
    """
    n_boot = check_int("n_boot", n_boot, minimum=1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = _as_costs(x).reshape(-1)
    if x.size == 0:
        raise ValueError("bootstrap_median_ci needs at least one sample")
    return _bootstrap(x, np.random.default_rng(_key_words(key)), n_boot, confidence)


def _bootstrap(x, rng, n_boot, confidence):
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    meds = quantile_inf(x[idx], 0.5, axis=-1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = quantile_inf(meds, np.array([alpha, 1.0 - alpha]))
    return float(lo), float(hi)


def _key_words(key) -> list[int]:
    """Seed words of a JAX key (typed or raw uint32 data) or an int, for numpy's Generator."""
    import jax

    if isinstance(key, int | np.integer):
        return [int(key)]
    if jax.dtypes.issubdtype(getattr(key, "dtype", np.float32), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key, np.uint32).reshape(-1).tolist()


def _label(optimizer: str, hp: Mapping) -> str:
    if not hp:
        return optimizer
    inner = ", ".join(f"{k}={v}" for k, v in hp.items())
    return f"{optimizer}({inner})"


def _groups(source) -> list[tuple[str, dict, dict]]:
    """(optimizer, hparams, metric arrays) per configuration, from Results or records."""
    from jaxopt_lab.compare.results import Results

    if isinstance(source, Results):
        out = []
        for name in source.optimizers:
            for h, hp in enumerate(source.hparams[name]):
                out.append((name, dict(hp), {k: np.asarray(v[h])
                                             for k, v in source.metrics[name].items()}))
        return out
    groups: dict = {}
    for r in source:
        hp = {k: v for k, v in r.items() if k not in _RECORD_FIXED}
        gkey = (r["optimizer"], tuple(hp.items()))
        if gkey not in groups:
            groups[gkey] = (r["optimizer"], hp, {k: [] for k in _RECORD_FIXED[2:]})
        for k in _RECORD_FIXED[2:]:
            groups[gkey][2][k].append(r[k])
    return [(o, hp, {k: np.asarray(v) for k, v in m.items()}) for o, hp, m in groups.values()]


def summarize(source: Any, *, key: Any = None, n_boot: int = 1000,
              confidence: float = 0.95) -> list[dict]:
    """One row per (optimizer, hyperparameters): medians, IQRs and success rates.

    Args:
      source: a :class:`~jaxopt_lab.compare.Results` or its ``records()`` (list of dicts).
      key: if given, a ``jax.random.key``: adds percentile-bootstrap CIs of the medians
        (``escape_median_lo/hi``, ``hit_median_lo/hi``).
      n_boot: bootstrap resamples.
      confidence: level of the Wilson and bootstrap intervals.

    Returns:
      List of dicts with ``optimizer``, the hyperparameters, ``label``, ``n``, and for
      ``m`` in (``escape``, ``hit``): ``m_median``, ``m_q25``, ``m_q75``, ``m_iqr``,
      ``m_rate`` (finite share), ``m_rate_lo``, ``m_rate_hi`` (Wilson); ``success_rate``
      (= ``hit_rate``) with ``success_lo``/``success_hi``; ``nonfinite`` (runs that went
      NaN/Inf) and ``nonfinite_rate``;
      ``final_value_median``; ``final_grad_norm_median`` (non-finite final values, i.e.
      diverged runs, count as ``+inf``).
    """

    rows = []
    for gi, (name, hp, m) in enumerate(_groups(source)):
        n = int(m["escape_step"].size)
        row: dict[str, Any] = {"optimizer": name, **hp, "label": _label(name, hp), "n": n}
        for metric in _STEP_METRICS:
            prefix = metric.split("_")[0]
            x = _as_costs(m[metric]).reshape(-1)
            q25, q75, width = iqr_inf(x)
            k = int(np.sum(np.isfinite(x)))
            lo, hi = wilson_interval(k, n, confidence)
            row.update({
                f"{prefix}_median": median_inf(x), f"{prefix}_q25": q25, f"{prefix}_q75": q75,
                f"{prefix}_iqr": width, f"{prefix}_rate": k / n,
                f"{prefix}_rate_lo": lo, f"{prefix}_rate_hi": hi,
            })
            if key is not None:
                seed = [*_key_words(key), gi, len(prefix)]
                b_lo, b_hi = _bootstrap(x, np.random.default_rng(seed), n_boot, confidence)
                row[f"{prefix}_median_lo"], row[f"{prefix}_median_hi"] = b_lo, b_hi
        row["success_rate"] = row["hit_rate"]
        row["success_lo"], row["success_hi"] = row["hit_rate_lo"], row["hit_rate_hi"]
        row["nonfinite"] = int(np.sum(np.asarray(m["nonfinite"], bool)))
        row["nonfinite_rate"] = row["nonfinite"] / n
        for metric in ("final_value", "final_grad_norm"):
            v = np.asarray(m[metric], np.float64)
            row[f"{metric}_median"] = float(np.median(v)) if np.all(np.isfinite(v)) else float(
                quantile_inf(np.where(np.isfinite(v), v, np.inf), 0.5))
        rows.append(row)
    return rows


def performance_profile(costs: Mapping[str, Sequence[float]],
                        taus: Iterable[float]) -> dict[str, np.ndarray]:
    """Dolan-More performance profiles.

    For problem ``p`` and solver ``s`` with cost ``t[p, s]`` (steps to hit, time, ...; a
    failure is ``inf``), the ratio is ``r[p, s] = t[p, s] / min_s t[p, s]`` and the profile
    is ``rho_s(tau) = #{p : r[p, s] <= tau} / n_problems``. Problems no solver solves count
    as failures for all; a best cost of 0 gives ratio 1 to solvers with cost 0 and ``inf``
    to the others.

    Args:
      costs: solver -> costs over the same problems (equal lengths, >= 0, misses ``inf``).
      taus: ratios (>= 1) at which to evaluate the profiles.

    Returns:
      solver -> array of fractions in [0, 1], one per ``tau``.

    Example:
      >>> performance_profile({"a": [1, 2], "b": [2, 2]}, [1, 2])["b"].tolist()
      [0.5, 1.0]

    References:
      Dolan & More, 2002. Benchmarking optimization software with performance profiles.
    """
    if not isinstance(costs, Mapping) or not costs:
        raise ValueError("costs must be a non-empty dict solver -> array over problems")
    names = list(costs)
    t = np.stack([_as_costs(costs[s]).reshape(-1) for s in names], axis=1) if len(
        {np.size(costs[s]) for s in names}) == 1 else None
    if t is None:
        raise ValueError(f"costs must have the same number of problems for every solver, got "
                         f"{ {s: int(np.size(costs[s])) for s in names} }")
    if t.shape[0] == 0:
        raise ValueError("costs must cover at least one problem")
    if np.any(t < 0):
        raise ValueError("costs must be >= 0 (use inf for a failure)")
    taus = np.asarray(list(taus), dtype=np.float64)
    if taus.ndim != 1 or taus.size == 0 or np.any(~np.isfinite(taus)) or np.any(taus < 1):
        raise ValueError(f"taus must be a non-empty 1-D list of finite values >= 1, got {taus}")
    best = np.min(t, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(best == 0, np.where(t == 0, 1.0, np.inf), t / best)
    r = np.where(np.isfinite(best), r, np.inf)
    frac = np.mean(r[:, :, None] <= taus[None, None, :], axis=0)  # [solvers, taus]
    return {s: frac[i] for i, s in enumerate(names)}


def success_curve(steps, num_steps: int) -> np.ndarray:
    """Fraction of runs that escaped (or hit) by step ``t``, for ``t = 0..num_steps``.

    With every run censored at the same budget this empirical curve equals the
    Kaplan-Meier estimate of ``P(T <= t)``; misses (``inf``/NaN) never count.

    Args:
      steps: escape or hit steps, misses ``inf``.
      num_steps: last step of the curve (the run's ``steps``).

    Returns:
      ``[num_steps + 1]`` non-decreasing fractions in [0, 1].

    References:
      Kaplan & Meier, 1958. Nonparametric estimation from incomplete observations.
    """
    num_steps = check_int("num_steps", num_steps, minimum=0)
    x = _as_costs(steps).reshape(-1)
    if x.size == 0:
        raise ValueError("success_curve needs at least one run")
    counts = np.bincount(x[np.isfinite(x)].astype(np.int64).clip(0, num_steps + 1),
                         minlength=num_steps + 2)[: num_steps + 1]
    return np.cumsum(counts) / x.size


def logrank_test(steps_a, steps_b) -> tuple[float, float]:
    """Log-rank test: do two optimizers escape (or hit) at different rates?

    Escape/hit steps are time-to-event data censored at the step budget (a miss, ``inf``,
    is a censored run), so the log-rank test (Mantel, 1966) is the standard two-sample
    comparison; it uses every run, misses included.

    Args:
      steps_a: escape (or hit) steps of optimizer A, misses ``inf`` (NaN counts as a miss).
      steps_b: the same for optimizer B.

    Returns:
      ``(chi2, p_value)``: the statistic (1 degree of freedom) and its two-sided p-value;
      ``(0.0, 1.0)`` when there are no events or no variance.

    References:
      Mantel, 1966. Evaluation of survival data and two new rank order statistics arising
      in its consideration.
    """
    a = _as_costs(steps_a).reshape(-1)
    b = _as_costs(steps_b).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError("logrank_test needs at least one run per group")
    times = np.unique(np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]]))
    observed_a = expected_a = var = 0.0
    for t in times:
        na, nb = float(np.sum(a >= t)), float(np.sum(b >= t))
        da, db = float(np.sum(a == t)), float(np.sum(b == t))
        n, dd = na + nb, da + db
        observed_a += da
        expected_a += na * dd / n
        if n > 1:
            var += na * nb * dd * (n - dd) / (n * n * (n - 1))
    if var <= 0:
        return 0.0, 1.0
    chi2 = (observed_a - expected_a) ** 2 / var
    return float(chi2), float(math.erfc(math.sqrt(chi2 / 2.0)))


def profile_costs(summaries: Mapping[str, list[dict]],
                  metric: str = "hit_median") -> dict[str, np.ndarray]:
    """Arrange :func:`summarize` rows of several problems as ``performance_profile`` costs.

    Args:
      summaries: problem name -> ``summarize(...)`` rows for that problem.
      metric: summary column used as the cost (``inf`` = failure).

    Returns:
      solver label -> array of costs over problems (in ``summaries`` order); a solver
      missing on a problem gets ``inf`` there.
    """
    problems = list(summaries)
    labels: list = []
    for p in problems:
        for row in summaries[p]:
            if row["label"] not in labels:
                labels.append(row["label"])
    out = {lab: np.full(len(problems), np.inf) for lab in labels}
    for j, p in enumerate(problems):
        for row in summaries[p]:
            out[row["label"]][j] = row[metric]
    return out


__all__ = [
    "bootstrap_median_ci",
    "iqr_inf",
    "logrank_test",
    "median_inf",
    "performance_profile",
    "profile_costs",
    "quantile_inf",
    "success_curve",
    "summarize",
    "wilson_interval",
]

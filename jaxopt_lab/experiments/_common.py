"""Small helpers shared by the experiments: statistics over seeds, the summary's
non-finite seeds, the ``Results`` of an experiment, and finding one transform's state
inside an optimizer state (for ``evaluate_state`` of :func:`jaxopt_lab.compare.train`).

Training itself always goes through the sweep core (:func:`jaxopt_lab.compare.train`,
:func:`jaxopt_lab.compare.run`, :func:`jaxopt_lab.compare.sweep`); run directories are
written by :meth:`jaxopt_lab.compare.Results.save` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxopt_lab.compare import Results, stats, store


def median_fired(first_steps: Any) -> float:
    """Median of the first-fired steps that fired (>= 0); -1.0 if none fired."""
    a = np.asarray(first_steps).reshape(-1)
    a = a[a >= 0]
    return float(np.median(a)) if a.size else -1.0


def median_ci(x: Any, key: Any) -> dict[str, Any]:
    """``{"median", "ci"}`` of per-seed values; NaN (a diverged seed) counts as ``+inf``
    (worst), never dropped, so a median over diverged seeds is ``inf``, not hidden."""
    x = np.asarray(x, np.float64).reshape(-1)
    lo, hi = stats.bootstrap_median_ci(x, key)
    return {"median": stats.median_inf(x), "ci": [lo, hi]}


def mean_ci(x: Any, rng: np.random.Generator, *, n_boot: int = 2000,
            confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of the finite values of ``x`` and its percentile-bootstrap
    interval (``n_boot`` resamples drawn from ``rng``); NaNs when none is finite."""
    x = np.asarray(x, np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    a = (1.0 - confidence) / 2.0
    return float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def rate(flags: Any) -> dict[str, Any]:
    """``{"rate", "ci"}``: share of seeds where ``flags`` is true, with its 95% Wilson interval."""
    f = np.asarray(flags, bool).reshape(-1)
    lo, hi = stats.wilson_interval(int(f.sum()), int(f.size))
    return {"rate": float(f.mean()), "ci": [lo, hi]}


def seeds_where(flags: Any) -> list[int]:
    """Seed indices where ``flags`` (``[S]``) is true."""
    return [int(i) for i in np.nonzero(np.asarray(flags, bool).reshape(-1))[0]]


def results(
    config: Any,
    variants: Sequence[str],
    metrics: dict[str, dict[str, Any]],
    curves: dict[str, dict[str, Any]],
    summary: dict[str, Any],
    *,
    compile_seconds: float,
    run_seconds: float,
    hparams: dict[str, list[dict]] | None = None,
    **meta: Any,
) -> Results:
    """An experiment's :class:`~jaxopt_lab.compare.Results` (``group_column="variant"``).

    ``metrics[v][name]`` / ``curves[v][name]`` are per-seed arrays ``[S, ...]``; they get
    the leading hyperparameter axis ``[1, S, ...]`` here. ``summary`` gains
    ``"nonfinite_seeds": {variant: [seed indices]}`` from each variant's ``nonfinite``.
    """
    variants = list(variants)
    m = {v: {k: np.asarray(a)[None] for k, a in metrics[v].items()} for v in variants}
    c = {v: {k: np.asarray(a)[None] for k, a in curves.get(v, {}).items()} for v in variants}
    summary = dict(summary)
    summary["nonfinite_seeds"] = {v: seeds_where(metrics[v]["nonfinite"]) for v in variants}
    return Results(
        optimizers=variants,
        hparams=hparams or {v: [{}] for v in variants},
        metrics=m,
        curves={v: cv for v, cv in c.items() if cv},
        summary=store.jsonable(summary),
        group_column="variant",
        meta=store.make_meta(
            config,
            key=jax.random.key(config.seed),
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
            **meta,
        ),
    )

"""The "is my network stuck?" figure: loss curves per optimizer with the steps each sign
fired, the gradient-norm curves with the vanishing threshold, and the final loss of every
seed (the seed spread and the optimizers' disagreement), drawn from saved results.

Takes the :class:`jaxopt_lab.compare.Results` of :func:`jaxopt_lab.health.diagnosis.run`
(or ``compare.load(run_dir)``) and its :class:`~jaxopt_lab.health.diagnosis.Diagnosis`
(computed from the results when not given).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.plot.style import check_path, colors, median_band, save_figure

__all__ = ["diagnosis_figure"]

_MARKS = {"plateau": ("--", "plateau"), "train_val_gap": (":", "overfitting (monitor)"),
          "vanishing_gradient": ("-.", "vanishing")}


def _log_if_wide(ax, arrays) -> None:
    """Log y-scale when the positive finite values span more than a factor of 10."""
    v = np.concatenate([np.ravel(np.asarray(a, float)) for a in arrays])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() > 10 * v.min():
        ax.set_yscale("log")


def diagnosis_figure(results: Any, diagnosis: Any = None, *, path: Any = None) -> Figure:
    """Three panels: training loss (median and IQR over seeds per optimizer; vertical lines
    at the median step each sign fired, for the optimizers it fired for), gradient norm
    (log scale; dashed: the initial norm times the vanishing threshold), and the final loss
    of each seed per optimizer (strip).

    Args:
      results: a :class:`compare.Results` in the layout of ``diagnosis.from_train``.
      diagnosis: its :class:`Diagnosis` (default: ``diagnosis.diagnose(results)``).
      path: optional file to save to (checked before drawing).

    Returns:
      the :class:`~matplotlib.figure.Figure`.
    """
    from jaxopt_lab.compare import Results
    from jaxopt_lab.health import diagnosis as dg

    check_path(path)
    if not isinstance(results, Results):
        raise TypeError(f"results must be a compare.Results, got {type(results).__name__}")
    if diagnosis is None:
        diagnosis = dg.diagnose(results)
    if not isinstance(diagnosis, dg.Diagnosis):
        raise TypeError(f"diagnosis must be a Diagnosis, got {type(diagnosis).__name__}")
    names = list(results.optimizers)
    cols = dict(zip(names, colors(len(names)), strict=True))
    fig = Figure(figsize=(14, 4), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for n in names:
        for ax, k in ((ax1, "loss"), (ax2, "grad_norm")):
            y = np.asarray(results.curves[n][k])[0]
            median_band(ax, np.arange(y.shape[-1]), y, cols[n], n)
    for sign_name, (ls, label) in _MARKS.items():
        sign = diagnosis.sign(sign_name)
        for n in names:
            d = sign.detail.get(n, {})
            step = d.get("step") if d.get("fired") else None
            if sign_name == "vanishing_gradient" and d.get("fired") and not d.get("fired_norm"):
                step = d.get("layer_step")  # only the layer-ratio test fired
            if step is not None:
                ax1.axvline(step, color=cols[n], ls=ls, lw=1.2,
                            label=f"{label} ({n}, step {step})")
    th = diagnosis.thresholds
    for n in names:
        g0 = diagnosis.sign("vanishing_gradient").detail.get(n, {}).get("initial_grad_norm")
        if g0 is not None and np.isfinite(g0):
            ax2.axhline(g0 * th.grad_norm_ratio, color=cols[n], ls="--", lw=1)
    _log_if_wide(ax1, [np.asarray(results.curves[n]["loss"]) for n in names])
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (minibatch)")
    ax1.set_title("loss: median, IQR over seeds; lines: signs fired")
    ax1.legend(fontsize=7)
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("global gradient norm")
    ax2.set_title(f"gradient norm; dashed: initial x {th.grad_norm_ratio:g}")
    ax2.legend(fontsize=7)
    rng = np.random.default_rng(0)
    seed_sign = diagnosis.sign("seed_sensitivity")
    for i, n in enumerate(names):
        y = np.asarray(results.metrics[n]["final_loss"], float)[0]
        x = i + rng.uniform(-0.15, 0.15, y.shape)
        ok = np.isfinite(y)
        ax3.scatter(x[ok], y[ok], s=14, color=cols[n], alpha=0.8)
        if (~ok).any():
            ax3.scatter(x[~ok], np.full((~ok).sum(), np.nanmax(y) if ok.any() else 1.0),
                        marker="x", color="k", label="non-finite" if i == 0 else None)
        rel = seed_sign.detail.get(n, {}).get("value", np.nan)
        if ok.any():
            ax3.hlines(np.median(y[ok]), i - 0.3, i + 0.3, color=cols[n], lw=2)
        ax3.annotate(f"IQR/med {rel:.2g}", (i, 1.0), xycoords=("data", "axes fraction"),
                     ha="center", va="bottom", fontsize=8)
    ax3.set_xticks(range(len(names)), names)
    _log_if_wide(ax3, [np.asarray(results.metrics[n]["final_loss"]) for n in names])
    ax3.set_ylabel("final training loss (per seed)")
    dis = diagnosis.sign("optimizer_disagreement")
    ax3.set_title(f"final loss per seed; optimizers ratio {dis.value:.3g} "
                  f"(> {dis.threshold:g} fires)", fontsize=9, pad=14)
    return save_figure(fig, path)

"""Figures of the network-landscape experiments, drawn from saved results
(:class:`jaxopt_lab.compare.Results`, e.g. ``compare.load(run_dir)``): edge of stability,
narrow minima, spectra along training and landscape slices (the "is my network stuck?"
diagnosis has its own figure: :mod:`jaxopt_lab.plot.diagnose`).

Every function takes a ``Results`` (what the experiment returned or what was read back
from its run directory), returns a :class:`~matplotlib.figure.Figure` and saves it when
``path`` is given (checked before any drawing, :func:`jaxopt_lab.plot.style.check_path`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.plot.style import check_path, colors, median_band, save_figure

__all__ = ["edge_of_stability", "landscape_slices", "narrow_minima", "spectra"]


def _check_results(results: Any, name: str) -> None:
    from jaxopt_lab.compare import Results

    if not isinstance(results, Results):
        raise TypeError(f"results must be a compare.Results (the {name} experiment's), got "
                        f"{type(results).__name__}")


def edge_of_stability(results: Any, *, path: Any = None) -> Figure:
    """Sharpness vs step with the ``2 / lr`` line per learning rate, and the loss vs step.

    Args:
      results: the ``edge_of_stability`` experiment's results.
      path: optional file to save to.
    """
    check_path(path)
    _check_results(results, "edge_of_stability")
    group = results.optimizers[0]
    curves = results.curves[group]
    sharp, loss = np.asarray(curves["sharpness"]), np.asarray(curves["loss"])
    steps = np.asarray(results.summary["sharpness_steps"])
    lrs = [h["learning_rate"] for h in results.hparams[group]]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for h, (lr, c) in enumerate(zip(lrs, colors(len(lrs)), strict=True)):
        median_band(ax1, steps, sharp[h], c, f"lr={lr:g}")
        ax1.axhline(2.0 / lr, color=c, ls="--", lw=1)
        for s in range(loss.shape[1]):
            ax2.plot(np.arange(1, loss.shape[2] + 1), loss[h, s], color=c, lw=0.6, alpha=0.5,
                     label=f"lr={lr:g}" if s == 0 else None)
    ax1.set_xlabel("step")
    ax1.set_ylabel("sharpness (top Hessian eigenvalue)")
    ax1.set_title("sharpness (median, IQR); dashed: 2 / lr")
    ax1.legend(fontsize=8)
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("full-batch training loss")
    ax2.set_title("loss (every seed)")
    ax2.legend(fontsize=8)
    return save_figure(fig, path)


def narrow_minima(results: Any, *, path: Any = None) -> Figure:
    """Final-loss histogram per method (log-spaced bins) and the non-global rate with its
    Wilson interval.

    Args:
      results: the ``narrow_minima`` experiment's results.
      path: optional file to save to.
    """
    check_path(path)
    _check_results(results, "narrow_minima")
    methods = list(results.optimizers)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.logspace(-8, 0, 41)
    for m, c in zip(methods, colors(len(methods)), strict=True):
        f = np.asarray(results.metrics[m]["final_loss"], float).reshape(-1)
        f = np.clip(f[np.isfinite(f)], 1e-8, 1.0)
        ax1.hist(f, bins=bins, histtype="step", color=c, lw=1.4, label=m)
    ax1.axvline(results.summary["global_tol"], color="k", ls=":", lw=1, label="global tol")
    ax1.set_xscale("log")
    ax1.set_xlabel("final training loss")
    ax1.set_ylabel("runs")
    ax1.legend(fontsize=8)
    rates = [results.summary[m]["non_global"] for m in methods]
    y = np.array([r["rate"] for r in rates])
    lo = y - np.array([r["ci"][0] for r in rates])
    hi = np.array([r["ci"][1] for r in rates]) - y
    ax2.bar(range(len(methods)), y, yerr=[lo, hi], color=colors(len(methods)), capsize=4)
    ax2.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
    ax2.set_ylabel("share ending in a non-global solution")
    ax2.set_title("non-global rate (95% Wilson)")
    return save_figure(fig, path)


def spectra(results: Any, *, path: Any = None) -> Figure:
    """Hessian SLQ density per checkpoint (seed 0), the index and the loss along training,
    and the top eigenvalue / trace of the Hessian, GGN and Fisher per checkpoint.

    Args:
      results: the ``spectra`` experiment's results.
      path: optional file to save to.
    """
    check_path(path)
    _check_results(results, "spectra")
    steps = np.asarray(results.summary["checkpoints"])
    grids = results.summary["density_grid"]
    dens = np.asarray(results.curves["hessian"]["density"])
    mh = results.metrics["hessian"]
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for j, c in enumerate(colors(len(steps))):
        if grids[j] is None or not np.isfinite(dens[j, 0]).any():
            continue
        g = np.asarray(grids[j])
        ax1.semilogy(g, np.maximum(dens[j, 0, : len(g)], 1e-8), color=c, lw=1,
                     label=f"step {steps[j]}")
    ax1.set_xlabel("Hessian eigenvalue")
    ax1.set_ylabel("SLQ density (seed 0)")
    ax1.legend(fontsize=7)
    loss = np.asarray(mh["loss"], float)
    for name, marker in (("index_dense", "o"), ("index_slq", "x")):
        ax2.scatter(loss.ravel(), np.asarray(mh[name], float).ravel(), marker=marker,
                    label=name.replace("_", " "))
    ax2.set_xscale("log")
    ax2.set_xlabel("loss at checkpoint")
    ax2.set_ylabel("index (fraction of negative eigenvalues)")
    rho = float(results.summary["index_loss_spearman"])
    ax2.set_title(f"Spearman(index, loss) = {rho:.2f}")
    ax2.legend(fontsize=8)
    for op, c in zip(results.optimizers, colors(len(results.optimizers)), strict=True):
        top = np.asarray(results.metrics[op]["top_eig"], float)
        ax3.plot(np.maximum(steps, 1), np.nanmedian(top, 1), "o-", color=c, label=f"{op} top")
        tr = np.asarray(results.metrics[op]["trace"], float)
        ax3.plot(np.maximum(steps, 1), np.nanmedian(tr, 1), "s--", color=c, alpha=0.6,
                 label=f"{op} trace")
    ax3.set_xscale("log")
    ax3.set_xlabel("step (0 drawn at 1)")
    ax3.set_title("top eigenvalue and XTrace trace (median)")
    ax3.legend(fontsize=7)
    return save_figure(fig, path)


def landscape_slices(results: Any, *, path: Any = None) -> Figure:
    """The 1-D paths (init -> final and between two solutions, median over seeds with the
    quartile band), the random filter-normalized plane around seed 0's final point, and
    the loss over seed 0's top-2 PCA plane with its training trajectory drawn on it.

    Args:
      results: the ``landscape_slices`` experiment's results.
      path: optional file to save to.
    """
    check_path(path)
    _check_results(results, "landscape_slices")
    group = results.optimizers[0]
    cur = results.curves[group]
    alphas = np.asarray(results.summary["alphas"], float)
    coef = np.asarray(results.summary["plane_coefficients"], float)
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    c1, c2 = colors(2)
    median_band(ax1, alphas, np.asarray(cur["interp_init_final"])[0], c1, "init -> final")
    median_band(ax1, alphas, np.asarray(cur["interp_between"])[0], c2,
                 "final(s) -> final(s+1)")
    ax1.set_xlabel("alpha")
    ax1.set_ylabel("loss")
    ax1.set_yscale("log")
    ax1.set_title("linear interpolation (Goodfellow et al. 2015)")
    ax1.legend(fontsize=8)
    plane = np.asarray(cur["plane"])[0, 0]
    if np.isfinite(plane).any():
        cs = ax2.contour(coef, coef, np.log10(np.maximum(plane, 1e-12)), levels=15,
                         cmap="viridis")
        fig.colorbar(cs, ax=ax2, label="log10 loss")
        ax2.plot([0], [0], "k*", ms=8)
    ax2.set_xlabel("filter-normalized d1")
    ax2.set_ylabel("filter-normalized d2")
    ax2.set_title("random plane, seed 0 (Li et al. 2018)")
    pca = np.asarray(cur["pca_plane"])[0, 0]
    axes = np.asarray(cur["pca_axes"])[0, 0]
    traj = np.asarray(cur["trajectory"])[0, 0]
    if np.isfinite(pca).any():
        cs = ax3.contour(axes[0], axes[1], np.log10(np.maximum(pca, 1e-12)), levels=15,
                         cmap="viridis")
        fig.colorbar(cs, ax=ax3, label="log10 loss")
        ax3.plot(traj[:, 0], traj[:, 1], "o-", color="C3", ms=3, lw=1.2, label="trajectory")
        ax3.plot([0], [0], "k*", ms=8)
        ax3.legend(fontsize=8)
    ax3.set_xlabel("PCA 1")
    ax3.set_ylabel("PCA 2")
    ax3.set_title("trajectory on its top-2 PCA plane, seed 0")
    return save_figure(fig, path)

"""Figures of the mode-collapse lab: generated-sample scatter per optimizer and remedy,
metrics over training, Dirac-GAN trajectories. Functions of saved results only."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.plot.style import colors

__all__ = ["metric_curves", "sample_scatter"]


def sample_scatter(results: Any, samples: dict, centers: Any, *, seed: int = 0,
                   hparam_filter: dict | None = None) -> Figure:
    """Grid of scatter plots: rows = optimizers, columns = hyperparameter rows (remedy,
    learning rate); generated samples of seed ``seed`` over the mixture's centers."""
    names = [n for n in results.optimizers if n in samples]
    cols = max(len(results.hparams[n]) for n in names)
    fig = Figure(figsize=(2.2 * cols, 2.2 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), cols, squeeze=False)
    centers = np.asarray(centers)
    for i, n in enumerate(names):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(results.hparams[n]):
                ax.set_axis_off()
                continue
            hp = results.hparams[n][j]
            x = np.asarray(samples[n][j, seed])
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color="#1f77b4")
            ax.scatter(centers[:, 0], centers[:, 1], s=12, marker="x", color="#d62728")
            lim = 1.5 * np.abs(centers).max() + 0.5
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            modes = results.metrics[n]["modes"][j, seed]
            label = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in hp.values())
            ax.set_title(f"{n}\n{label}: {modes:g} modes", fontsize=7)
    return fig


def metric_curves(results: Any, metric: str, steps: Any, *, target: float | None = None
                  ) -> Figure:
    """``metric`` over training: median over seeds (line) and IQR (band) per optimizer,
    one panel per remedy / hyperparameter row."""
    first = results.optimizers[0]
    hps = results.hparams[first]
    fig = Figure(figsize=(3.2 * len(hps), 2.8), layout="constrained")
    axes = fig.subplots(1, len(hps), squeeze=False)[0]
    cs = colors(len(results.optimizers))
    steps = np.asarray(steps)
    for j, hp in enumerate(hps):
        ax = axes[j]
        for k, n in enumerate(results.optimizers):
            if j >= len(results.hparams[n]):
                continue
            y = np.asarray(results.curves[n][metric][j], np.float64)  # [S, T]
            q = np.nanquantile(y, [0.25, 0.5, 0.75], axis=0)
            ax.plot(steps, q[1], color=cs[k], label=n)
            ax.fill_between(steps, q[0], q[2], color=cs[k], alpha=0.2)
        if target is not None:
            ax.axhline(target, color="k", lw=0.8, ls="--")
        ax.set_title(", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                               for v in hp.values()), fontsize=8)
        ax.set_xlabel("generator step")
        if j == 0:
            ax.set_ylabel(metric)
    axes[0].legend(fontsize=6)
    return fig


def dirac_trajectories(theta: Any, psi: Any, labels: list[str]) -> Figure:
    """Dirac-GAN trajectories in the (theta, psi) plane, one panel per label
    (``theta``/``psi``: ``[n_panels, T]``)."""
    theta, psi = np.asarray(theta), np.asarray(psi)
    fig = Figure(figsize=(2.6 * len(labels), 2.6), layout="constrained")
    axes = fig.subplots(1, len(labels), squeeze=False)[0]
    for i, lab in enumerate(labels):
        ax = axes[i]
        ax.plot(theta[i], psi[i], lw=0.8)
        ax.scatter([0], [0], marker="*", color="#2ca02c", s=60)
        ax.set_title(lab, fontsize=8)
        ax.set_xlabel("theta")
        if i == 0:
            ax.set_ylabel("psi")
        lim = max(1.5, float(np.nanmax(np.abs(np.r_[theta[i], psi[i]])[:200])) * 1.1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    return fig


__all__ += ["dirac_trajectories"]


def _tile(images: np.ndarray, cols: int) -> np.ndarray:
    """``[k, H, W, C]`` images in ``[-1, 1]`` -> one ``[rows*H, cols*W]`` mosaic in
    ``[0, 1]`` (channels averaged; blank cells 1-pixel separated)."""
    x = np.clip((np.asarray(images, np.float64) + 1.0) / 2.0, 0.0, 1.0).mean(axis=-1)
    k, h, w = x.shape
    rows = -(-k // cols)
    out = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1))
    for i in range(k):
        r, q = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = x[i]
    return out


def image_grid(results: Any, samples: dict, *, seed: int = 0, max_images: int = 64,
               metric: str | None = None) -> Figure:
    """Generated images of seed ``seed``: rows = optimizers, columns = hyperparameter rows
    (remedy, learning rate); each panel a mosaic of up to ``max_images`` images
    (``samples[name]``: ``[n_hparams, S, k, H, W, C]`` in ``[-1, 1]``), titled with
    ``metric`` (default: the first ``inception_score*`` metric) of that seed."""
    names = [n for n in results.optimizers if n in samples]
    cols = max(len(results.hparams[n]) for n in names)
    fig = Figure(figsize=(2.6 * cols, 2.8 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), cols, squeeze=False)
    for i, n in enumerate(names):
        m = results.metrics[n]
        key = metric or next((k for k in sorted(m) if k.startswith("inception_score")), None)
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(results.hparams[n]):
                ax.set_axis_off()
                continue
            x = np.asarray(samples[n][j, seed])[:max_images]
            side = max(1, int(np.ceil(np.sqrt(x.shape[0]))))
            ax.imshow(_tile(x, side), cmap="gray", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
            label = ", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                              for v in results.hparams[n][j].values())
            title = f"{n}\n{label}"
            if key is not None and key in m:
                title += f"\n{key} {float(m[key][j, seed]):.2f}"
            ax.set_title(title, fontsize=7)
    return fig


__all__ += ["image_grid"]

"""Training-health figures: loss curves with flagged steps, gradient profiles, dead units.

Inputs are plain arrays (or dicts of them, one entry per variant) as saved by the
experiments; nothing is computed here beyond medians and quantiles across seeds.
Non-finite losses are not drawn (the curve stops where the run blew up) and the
step at which a health flag first fired is marked with a cross on each seed's curve.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.plot.style import check_path, colors, save_figure

__all__ = ["dead_fraction_curves", "gradient_profile", "loss_curves"]


def _as_dict(x: Any, name: str) -> dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        if not x:
            raise ValueError(f"{name} must not be empty")
        return {str(k): np.asarray(v, dtype=float) for k, v in x.items()}
    return {"": np.asarray(x, dtype=float)}


def _as_2d(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape [steps] or [seeds, steps], got {a.shape}")
    return a


def loss_curves(
    losses: Any,
    *,
    flagged: Any = None,
    flag_name: str = "flag",
    logy: bool = True,
    ylabel: str = "training loss",
    title: str | None = None,
    path: Any = None,
) -> Figure:
    """Loss curves of several variants (one panel each), every seed drawn, flags marked.

    Args:
      losses: ``[seeds, steps]`` (or ``[steps]``) array, or a dict ``{variant: array}``.
      flagged: first step each seed raised a health flag, ``[seeds]`` ints (-1 = never),
        or a dict with the same keys as ``losses``; marked with an ``x`` on the curve
        (at the last finite loss before it when the loss there is non-finite).
      flag_name: legend label of the markers (e.g. ``"non-finite"``).
      logy: log-scale y axis.
      ylabel: y-axis label.
      title: figure title.
      path: optional file to save to.

    Returns:
      The :class:`~matplotlib.figure.Figure`.
    """
    check_path(path)
    curves = {k: _as_2d(v, "losses") for k, v in _as_dict(losses, "losses").items()}
    flags = None if flagged is None else _as_dict(flagged, "flagged")
    if flags is not None and set(flags) != set(curves):
        raise ValueError(f"flagged keys {sorted(flags)} must match losses keys {sorted(curves)}")
    n = len(curves)
    fig = Figure(figsize=(4.2 * n, 3.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    palette = colors(max(n, 1))
    for ax, (name, L), c in zip(axes, curves.items(), palette, strict=True):
        steps = np.arange(L.shape[1])
        finite_vals = L[np.isfinite(L)]
        positive = finite_vals[finite_vals > 0]
        for s in range(L.shape[0]):
            y = np.where(np.isfinite(L[s]), L[s], np.nan)
            ax.plot(steps, y, color=c, alpha=0.35, lw=0.8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps (every seed blew up)
            med = np.nanmedian(np.where(np.isfinite(L), L, np.nan), axis=0)
        ax.plot(steps, med, color=c, lw=2.0, label="median (finite seeds)")
        if flags is not None:
            f = np.asarray(flags[name]).reshape(-1).astype(int)
            xs, ys = [], []
            for s, step in enumerate(f[: L.shape[0]]):
                if step < 0 or step >= L.shape[1]:
                    continue
                ok = np.nonzero(np.isfinite(L[s, : step + 1]))[0]
                if ok.size:
                    xs.append(step)
                    ys.append(L[s, ok[-1]])
            if xs:
                ax.plot(xs, ys, "x", color="k", ms=7, mew=1.5, label=f"first {flag_name}")
        if logy and positive.size:
            ax.set_yscale("log")
            ax.set_ylim(positive.min() / 2, positive.max() * 3)
        ax.set_xlim(0, max(L.shape[1] - 1, 1))
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.legend(fontsize=7, loc="best")
    axes[0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def gradient_profile(
    layer_norms: Any,
    *,
    layer_labels: Sequence[str] | None = None,
    title: str | None = None,
    path: Any = None,
) -> Figure:
    """Per-layer gradient-norm profile (log scale), median over seeds with an IQR band.

    Args:
      layer_norms: ``[seeds, layers]`` (or ``[layers]``) gradient norms, first (input)
        layer first, or a dict ``{variant: array}`` (one line per variant).
      layer_labels: optional tick labels, one per layer.
      title: figure title.
      path: optional file to save to.

    Returns:
      The :class:`~matplotlib.figure.Figure`.
    """
    check_path(path)
    profiles = {}
    for k, v in _as_dict(layer_norms, "layer_norms").items():
        v = v[None] if v.ndim == 1 else v
        if v.ndim != 2:
            raise ValueError(
                f"layer_norms must have shape [layers] or [seeds, layers], got {v.shape}"
            )
        profiles[k] = v
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for (name, v), c in zip(profiles.items(), colors(len(profiles)), strict=True):
        x = np.arange(1, v.shape[1] + 1)
        v = np.where(np.isfinite(v) & (v > 0), v, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, med, q75 = np.nanpercentile(v, [25, 50, 75], axis=0)
        ax.plot(x, med, "o-", color=c, ms=3, label=name or None)
        ax.fill_between(x, q25, q75, color=c, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = input side)")
    ax.set_ylabel("gradient norm")
    if layer_labels is not None:
        ax.set_xticks(
            np.arange(1, len(layer_labels) + 1), list(layer_labels), rotation=90, fontsize=6
        )
    if any(profiles):
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def dead_fraction_curves(
    dead: Any,
    *,
    threshold: float | None = None,
    title: str | None = None,
    path: Any = None,
) -> Figure:
    """Fraction of dead units over training, median over seeds with an IQR band.

    Args:
      dead: ``[seeds, steps]`` (or ``[steps]``) dead fractions, or ``{variant: array}``.
      threshold: optional detector threshold, drawn as a dashed line.
      title: figure title.
      path: optional file to save to.

    Returns:
      The :class:`~matplotlib.figure.Figure`.
    """
    check_path(path)
    curves = {k: _as_2d(v, "dead") for k, v in _as_dict(dead, "dead").items()}
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for (name, d), c in zip(curves.items(), colors(len(curves)), strict=True):
        steps = np.arange(d.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, med, q75 = np.nanpercentile(d, [25, 50, 75], axis=0)
        ax.plot(steps, med, color=c, label=name or None)
        ax.fill_between(steps, q25, q75, color=c, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("fraction of dead units")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)

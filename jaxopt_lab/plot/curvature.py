"""Curvature figures: min-eigenvalue maps with critical points, and spectral densities."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from jaxopt_lab.plot.style import KIND_STYLE, check_path, cp_fields, save_figure

__all__ = ["curvature_heatmap", "spectrum_plot"]

# Per-cell kind codes of curvature.curvature_map (code i -> MAP_KIND_NAMES[i]).
MAP_KIND_NAMES = ("positive_definite", "negative_definite", "indefinite", "degenerate")
# Cell kinds share the colours of the critical-point kinds they resemble.
_CELL_COLOR = {
    "positive_definite": KIND_STYLE["minimum"]["color"],
    "negative_definite": KIND_STYLE["maximum"]["color"],
    "indefinite": KIND_STYLE["saddle"]["color"],
    "degenerate": KIND_STYLE["degenerate"]["color"],
}


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _grid(arr: Any, nx: int, ny: int, name: str) -> np.ndarray:
    a = np.asarray(arr, dtype=float)
    if a.shape == (ny, nx):
        return a
    if a.shape == (nx, ny):  # stored as [x, y]: transpose to image layout [y, x]
        return a.T
    raise ValueError(f"{name} must have shape ({ny}, {nx}) (len(ys), len(xs)), got {a.shape}")


def curvature_heatmap(
    cmap: Any,
    *,
    critical_points: Sequence[Any] | None = None,
    kind_names: Sequence[str] | None = None,
    show_max: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Map of the smallest Hessian eigenvalue over a 2-D window, critical points marked.

    The minimum eigenvalue uses a diverging colormap centred at 0 (blue: positive curvature
    in every direction, red: some negative curvature) with the ``min_eig = 0`` contour drawn.
    If the map carries per-cell kind codes, a second panel shows them as categories.

    Args:
      cmap: a ``curvature.CurvatureMap`` (or dict) with ``xs`` [nx], ``ys`` [ny], ``min_eig``
        and optionally ``max_eig`` and ``kind_codes`` (arrays [ny, nx] or [nx, ny]).
      critical_points: items with ``x`` [2] and ``kind`` (e.g. ``Landscape.critical_points``).
      kind_names: names of the integer kind codes (code i -> kind_names[i]); defaults to the
        map's own ``kind_names`` if it has one, else ``curvature.maps.MAP_KIND_NAMES``
        (positive_definite, negative_definite, indefinite, degenerate).
      show_max: add a panel with the largest eigenvalue.
      title: figure title.
      figsize: figure size in inches (default scales with the panel count).
      path: if given, also save the figure there.

    Returns:
      Figure; its first axes is the min-eigenvalue panel.
    """
    check_path(path)
    xs = np.asarray(_field(cmap, "xs"), dtype=float)
    ys = np.asarray(_field(cmap, "ys"), dtype=float)
    if xs.ndim != 1 or ys.ndim != 1 or xs.size < 2 or ys.size < 2:
        raise ValueError(f"cmap.xs and cmap.ys must be 1-D with >= 2 points, got {xs.shape}, "
                         f"{ys.shape}")
    nx, ny = xs.size, ys.size
    min_eig = _grid(_field(cmap, "min_eig"), nx, ny, "cmap.min_eig")
    max_eig = _field(cmap, "max_eig")
    codes = _field(cmap, "kind_codes")
    if kind_names is None:
        kind_names = _field(cmap, "kind_names", MAP_KIND_NAMES)
    panels = ["min"] + (["max"] if show_max and max_eig is not None else [])
    if codes is not None and kind_names is not None:
        panels.append("kind")
    if figsize is None:
        figsize = (5.4 * len(panels) + 0.6, 4.8)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    for ax, panel in zip(axes, panels, strict=True):
        if panel in ("min", "max"):
            data = min_eig if panel == "min" else _grid(max_eig, nx, ny, "cmap.max_eig")
            finite = data[np.isfinite(data)]
            lo = float(finite.min()) if finite.size else -1.0
            hi = float(finite.max()) if finite.size else 1.0
            bound = max(abs(lo), abs(hi), 1e-12)
            if lo < 0 < hi:  # both signs: each side uses its full colour range
                norm = TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi)
            else:  # one sign only: symmetric, so colour still reads as sign and size
                norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
            im = ax.imshow(data, origin="lower", extent=extent, aspect="auto", cmap="RdBu_r",
                           norm=norm)
            if finite.size and lo < 0 < hi:
                ax.contour(xs, ys, data, levels=[0.0], colors="black", linewidths=1.0)
            which = "smallest" if panel == "min" else "largest"
            fig.colorbar(im, ax=ax, label=f"{which} Hessian eigenvalue")
            ax.set_title(f"{which} eigenvalue (0 contour in black)", fontsize=10)
        else:
            grid = _grid(codes, nx, ny, "cmap.kind_codes").astype(int)
            n = len(kind_names)
            palette = [_CELL_COLOR.get(k, KIND_STYLE.get(k, {"color": "#cccccc"})["color"])
                       for k in kind_names]
            im = ax.imshow(grid, origin="lower", extent=extent, aspect="auto",
                           cmap=ListedColormap(palette),
                           norm=BoundaryNorm(np.arange(-0.5, n + 0.5), n))
            cb = fig.colorbar(im, ax=ax, ticks=range(n))
            cb.ax.set_yticklabels([k.replace("_", " ") for k in kind_names], fontsize=8)
            ax.set_title("curvature kind per cell", fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
    kinds_drawn: list[str] = []
    for cp in critical_points or ():
        x, kind = cp_fields(cp)
        if x.shape[0] != 2 or not (xs[0] <= x[0] <= xs[-1] and ys[0] <= x[1] <= ys[-1]):
            continue
        style = KIND_STYLE.get(kind, KIND_STYLE["degenerate"])
        for ax in axes:
            ax.scatter([x[0]], [x[1]], marker=style["marker"], c=[style["color"]],
                       s=style["s"], edgecolors="black", linewidths=0.8, zorder=5)
        if kind not in kinds_drawn:
            kinds_drawn.append(kind)
    if kinds_drawn:
        handles = [
            Line2D([], [], ls="", marker=KIND_STYLE.get(k, KIND_STYLE["degenerate"])["marker"],
                   mfc=KIND_STYLE.get(k, KIND_STYLE["degenerate"])["color"], mec="black", ms=9,
                   label=k)
            for k in kinds_drawn
        ]
        axes[0].legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85,
                       title="critical points", title_fontsize=8)
    if title is not None:
        fig.suptitle(title)
    return save_figure(fig, path)


def spectrum_plot(
    grid: Any,
    density: Any,
    *,
    eigenvalues: Any = None,
    log_scale: bool = True,
    floor: float = 1e-12,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.2),
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plot a Hessian spectral density (log-scale by default), optional eigenvalue rug.

    Args:
      grid: eigenvalue grid [g] (ascending).
      density: density values [g] on ``grid`` (non-negative).
      eigenvalues: optional exact/Lanczos eigenvalues, drawn as a rug of ticks at the bottom.
      log_scale: logarithmic density axis (the bulk and the outliers differ by decades).
      floor: densities below this are clipped for the log axis.
      title: axes title.
      figsize: figure size in inches.
      path: if given, also save the figure there.

    Returns:
      Figure with one axes: the density line (and the rug, if given).
    """
    check_path(path)
    g = np.asarray(grid, dtype=float).ravel()
    d = np.asarray(density, dtype=float).ravel()
    if g.shape != d.shape or g.size < 2:
        raise ValueError(f"grid and density must be 1-D of equal length >= 2, got {g.shape} "
                         f"and {d.shape}")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    y = np.maximum(d, floor) if log_scale else d
    ax.plot(g, y, color="#1f77b4", lw=1.8, label="density")
    ax.fill_between(g, floor if log_scale else 0.0, y, color="#1f77b4", alpha=0.2)
    if eigenvalues is not None:
        ev = np.asarray(eigenvalues, dtype=float).ravel()
        ax.plot(ev, np.full(ev.shape, 0.03), ls="", marker="|", ms=14, mew=2,
                color="#d62728", label=f"eigenvalues ({ev.size})",
                transform=ax.get_xaxis_transform())
    if log_scale:
        ax.set_yscale("log")
        top = float(y.max()) if np.isfinite(y).any() else 1.0
        ax.set_ylim(max(floor, top * 1e-8), top * 3)
    ax.axvline(0.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density" + (" (log scale)" if log_scale else ""))
    ax.set_title(title if title is not None else "Hessian spectral density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)

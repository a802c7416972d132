"""Landscape figures: contour / 3-D surface / 1-D line with optimizer trajectories overlaid.

Every function takes saved results (a landscape and trajectory arrays) and returns a
:class:`matplotlib.figure.Figure`. Figures are built without ``pyplot`` (no global state,
no display needed; saving uses the Agg canvas), so they are safe in scripts, tests and loops.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["KIND_STYLE", "contour", "save_figure", "surface"]

# Marker style for each critical-point kind (shared by every figure that marks critical points).
KIND_STYLE: dict[str, dict[str, Any]] = {
    "minimum": {"marker": "*", "color": "#2ca02c", "s": 170},
    "maximum": {"marker": "^", "color": "#d62728", "s": 90},
    "saddle": {"marker": "X", "color": "#ff7f0e", "s": 110},
    "degenerate": {"marker": "D", "color": "#7f7f7f", "s": 70},
    "not_critical": {"marker": ".", "color": "#bcbd22", "s": 50},
}


def save_figure(fig: Figure, path: str | os.PathLike | None, *, dpi: int = 120) -> Figure:
    """Save ``fig`` to ``path`` (PNG/PDF/SVG by extension; parent folders created) if given.

    Args:
      fig: the figure.
      path: file path, or None to skip saving.
      dpi: resolution for raster formats.

    Returns:
      ``fig`` itself, so calls can be chained.
    """
    if path is not None:
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _landscape_parts(landscape: Any, bounds: Any):
    """Return (fn, dim, lower, upper, critical_points, name) from a Landscape or a callable."""
    fn = getattr(landscape, "fn", None)
    if fn is None:
        if not callable(landscape):
            raise TypeError(
                f"landscape must be a jaxopt_lab Landscape or a callable f(x) -> scalar, "
                f"got {type(landscape).__name__}"
            )
        fn = landscape
    if bounds is None:
        bounds = getattr(landscape, "bounds", None)
        if bounds is None:
            raise ValueError("bounds must be given as (lower, upper) when landscape is a callable")
    try:
        lower = np.atleast_1d(np.asarray(bounds[0], dtype=float))
        upper = np.atleast_1d(np.asarray(bounds[1], dtype=float))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"bounds must be (lower, upper) arrays, got {bounds!r}") from None
    if lower.shape != upper.shape or lower.ndim != 1:
        raise ValueError(f"bounds must be two 1-D arrays of equal shape, got {bounds!r}")
    if not np.all(upper > lower):
        raise ValueError(f"bounds must satisfy upper > lower, got {bounds!r}")
    dim = int(getattr(landscape, "dim", lower.shape[0]))
    crit = tuple(getattr(landscape, "critical_points", ()) or ())
    if not crit:
        minima = getattr(landscape, "global_minima", None)
        if minima is not None and np.size(minima):
            crit = tuple(
                {"x": np.asarray(m, dtype=float), "kind": "minimum"} for m in np.atleast_2d(minima)
            )
    name = getattr(landscape, "name", getattr(fn, "__name__", "f"))
    return fn, dim, lower, upper, crit, name


def _cp_fields(cp: Any) -> tuple[np.ndarray, str]:
    if isinstance(cp, Mapping):
        return np.atleast_1d(np.asarray(cp["x"], dtype=float)), str(cp["kind"])
    return np.atleast_1d(np.asarray(cp.x, dtype=float)), str(cp.kind)


def _evaluate(fn: Callable, points: np.ndarray) -> np.ndarray:
    """Evaluate ``fn`` (one point -> scalar) on ``points`` [n, d] with jax.vmap (no jit)."""
    import jax
    import jax.numpy as jnp

    pts = jnp.asarray(points, dtype=jnp.float32)
    return np.asarray(jax.vmap(fn)(pts), dtype=float)


def _as_trajectories(
    trajectories: Mapping[str, Any] | None, dim: int, max_per_optimizer: int | None
) -> dict[str, np.ndarray]:
    """Normalise {name: array [..., T, d]} to {name: array [n, T, d]} (first n kept)."""
    out: dict[str, np.ndarray] = {}
    if trajectories is None:
        return out
    if not isinstance(trajectories, Mapping):
        raise TypeError(
            "trajectories must be a mapping optimizer name -> array [..., steps, d], "
            f"got {type(trajectories).__name__}"
        )
    for name, arr in trajectories.items():
        arr = np.asarray(arr, dtype=float)
        if dim == 1 and arr.ndim >= 1 and arr.shape[-1] != 1:
            arr = arr[..., None]
        if arr.ndim < 2 or arr.shape[-1] != dim:
            raise ValueError(
                f"trajectories[{name!r}] must have shape [..., steps, {dim}], got {arr.shape}"
            )
        arr = arr.reshape(-1, arr.shape[-2], dim)
        if max_per_optimizer is not None:
            arr = arr[:max_per_optimizer]
        out[str(name)] = arr
    return out


def _mark_critical_points(ax, crit, lower, upper, fn=None, three_d=False) -> list[str]:
    kinds_drawn: list[str] = []
    for cp in crit:
        x, kind = _cp_fields(cp)
        if x.shape[0] != lower.shape[0] or np.any(x < lower) or np.any(x > upper):
            continue
        style = KIND_STYLE.get(kind, KIND_STYLE["degenerate"])
        kw = dict(marker=style["marker"], c=[style["color"]], s=style["s"],
                  edgecolors="black", linewidths=0.8, zorder=6)
        if three_d:
            z = _evaluate(fn, x[None])[0]
            ax.scatter([x[0]], [x[1]], [z], **kw)
        elif x.shape[0] == 1:
            ax.scatter([x[0]], _evaluate(fn, x[None]), **kw)
        else:
            ax.scatter([x[0]], [x[1]], **kw)
        if kind not in kinds_drawn:
            kinds_drawn.append(kind)
    return kinds_drawn


_STYLES = ("-", "--", "-.", ":")


def _legend_handles(names, colors, kinds, *, with_markers=True) -> list:
    handles = [Line2D([], [], color=c, lw=2, ls=_STYLES[i % 4], label=n)
               for i, (n, c) in enumerate(zip(names, colors, strict=True))]
    if with_markers and names:
        handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="start"))
        handles.append(Line2D([], [], ls="", marker="s", mfc="black", mec="black", label="end"))
    for kind in kinds:
        st = KIND_STYLE.get(kind, KIND_STYLE["degenerate"])
        handles.append(Line2D([], [], ls="", marker=st["marker"], mfc=st["color"], mec="black",
                              ms=9, label=kind))
    return handles


def contour(
    landscape: Any,
    trajectories: Mapping[str, Any] | None = None,
    *,
    bounds: Sequence[Any] | None = None,
    resolution: int = 150,
    levels: int = 30,
    log_scale: bool | None = None,
    max_per_optimizer: int | None = 5,
    mark_critical: bool = True,
    escape: tuple[Any, float] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 5.8),
    path: str | os.PathLike | None = None,
) -> Figure:
    """Contour plot of a 2-D landscape (line plot for 1-D) with optimizer trajectories.

    Each optimizer gets one colour (legend entry); every trajectory starts at a white
    circle and ends at a filled square. Critical points from the landscape's catalog are
    marked by kind (minimum star, maximum triangle, saddle cross, degenerate diamond).
    For 1-D landscapes ``f`` is drawn as a line and trajectory iterates as points on it.

    Args:
      landscape: a :class:`jaxopt_lab.landscapes.Landscape` (``fn``, ``dim``, ``bounds``,
        ``critical_points``) or a plain callable ``f(x: [d]) -> scalar`` (then give ``bounds``).
      trajectories: mapping optimizer name -> array ``[..., steps, d]`` (for instance
        ``Results.trajectories`` with shape ``[n_hparams, n_seeds, n_recorded, d]``); leading
        axes are flattened and the first ``max_per_optimizer`` trajectories are drawn.
      bounds: ``(lower, upper)`` of the plotted window; defaults to the landscape's bounds.
      resolution: grid points per axis.
      levels: number of contour levels.
      log_scale: colour by ``log10(f - min f + eps)``; ``None`` picks it when the range of
        ``f`` on the grid spans more than three decades.
      max_per_optimizer: trajectories drawn per optimizer (None: all).
      mark_critical: mark catalog critical points.
      escape: optional ``(center, radius)`` drawn as a dashed circle (2-D) or interval
        (1-D): the escape region of a saddle-escape sweep.
      title: figure title (default: the landscape name).
      figsize: figure size in inches.
      path: if given, also save the figure there.

    Returns:
      The matplotlib Figure (one axes + colourbar for 2-D, one axes for 1-D).

    Example:
      >>> from jaxopt_lab import landscapes, plot
      >>> fig = plot.contour(landscapes.get("saddle_xy"))  # doctest: +SKIP
    """
    fn, dim, lower, upper, crit, name = _landscape_parts(landscape, bounds)
    if dim not in (1, 2) or lower.shape[0] != dim:
        raise ValueError(
            f"contour needs a 1-D or 2-D landscape (use a 2-D slice for higher dims), got dim={dim}"
        )
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    trajs = _as_trajectories(trajectories, dim, max_per_optimizer)
    colors = _colors(len(trajs))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    if dim == 1:
        xs = np.linspace(lower[0], upper[0], resolution * 4)
        ax.plot(xs, _evaluate(fn, xs[:, None]), color="black", lw=1.5, label="f(x)")
        for arr, c in zip(trajs.values(), colors, strict=True):
            fxs = _evaluate(fn, arr.reshape(-1, 1)).reshape(arr.shape[:2]) if arr.size else []
            for tr, fx in zip(arr, fxs, strict=True):
                ax.scatter(tr[:, 0], fx, color=c, s=12, alpha=0.6, zorder=3)
                ax.scatter(tr[0, 0], fx[0], marker="o", facecolor="white", edgecolor=c,
                           s=60, zorder=4, linewidths=1.5)
                ax.scatter(tr[-1, 0], fx[-1], marker="s", color=c, edgecolor="black",
                           s=50, zorder=5)
        kinds = _mark_critical_points(ax, crit, lower, upper, fn) if mark_critical else []
        ax.set_xlim(lower[0], upper[0])
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
        handles = [Line2D([], [], color="black", lw=1.5, label="f(x)")]
        if escape is not None:
            c, r = float(np.ravel(escape[0])[0]), float(escape[1])
            for edge in (c - r, c + r):
                ax.axvline(edge, color="black", ls="--", lw=1)
            handles.append(Line2D([], [], color="black", ls="--", lw=1, label="escape radius"))
        handles += _legend_handles(list(trajs), colors, kinds)
    else:
        gx = np.linspace(lower[0], upper[0], resolution)
        gy = np.linspace(lower[1], upper[1], resolution)
        X, Y = np.meshgrid(gx, gy)
        Z = _evaluate(fn, np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
        Zf = Z[np.isfinite(Z)]
        span = float(Zf.max() - Zf.min()) if Zf.size else 0.0
        if log_scale is None:
            scale = np.median(np.abs(Zf - Zf.min())) if Zf.size else 0.0
            log_scale = bool(span > 0 and scale > 0 and span / scale > 1e3)
        if log_scale:
            Zc = np.log10(Z - (Zf.min() if Zf.size else 0.0) + max(1e-12, 1e-9 * span))
            clabel = "log10(f - min f)"
        else:
            Zc, clabel = Z, "f(x, y)"
        cs = ax.contourf(X, Y, Zc, levels=levels, cmap="viridis", alpha=0.9)
        ax.contour(X, Y, Zc, levels=levels, colors="white", linewidths=0.3, alpha=0.5)
        fig.colorbar(cs, ax=ax, label=clabel)
        for i, ((opt, arr), c) in enumerate(zip(trajs.items(), colors, strict=True)):
            for tr in arr:
                ax.plot(tr[:, 0], tr[:, 1], color=c, lw=1.4, alpha=0.9, ls=_STYLES[i % 4],
                        label="_" + opt)
                ax.scatter(tr[0, 0], tr[0, 1], marker="o", facecolor="white", edgecolor=c,
                           s=40, zorder=4, linewidths=1.5)
                ax.scatter(tr[-1, 0], tr[-1, 1], marker="s", color=c, edgecolor="black",
                           s=36, zorder=5)
        kinds = _mark_critical_points(ax, crit, lower, upper, fn) if mark_critical else []
        ax.set_xlim(lower[0], upper[0])
        ax.set_ylim(lower[1], upper[1])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        handles = _legend_handles(list(trajs), colors, kinds)
        if escape is not None:
            from matplotlib.patches import Circle

            c = np.ravel(np.asarray(escape[0], dtype=float))
            ax.add_patch(Circle((c[0], c[1]), float(escape[1]), fill=False, ls="--",
                                ec="white", lw=1.2, zorder=3))
            handles.append(Line2D([], [], color="gray", ls="--", lw=1.2, label="escape radius"))
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.85)
    if title is None:
        title = name if not trajs else f"{name}: trajectories"
    ax.set_title(title)
    return save_figure(fig, path)


def surface(
    landscape: Any,
    trajectories: Mapping[str, Any] | None = None,
    *,
    bounds: Sequence[Any] | None = None,
    resolution: int = 60,
    max_per_optimizer: int | None = 3,
    mark_critical: bool = True,
    elev: float = 35.0,
    azim: float = -60.0,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 5.8),
    path: str | os.PathLike | None = None,
) -> Figure:
    """3-D surface of a 2-D landscape with trajectories drawn on it (z = f along the path).

    Args:
      landscape: a Landscape (or a callable with ``bounds``), dimension 2.
      trajectories: mapping optimizer name -> array ``[..., steps, 2]``.
      bounds: ``(lower, upper)``; defaults to the landscape's bounds.
      resolution: grid points per axis.
      max_per_optimizer: trajectories drawn per optimizer.
      mark_critical: mark catalog critical points by kind.
      elev, azim: camera angles in degrees.
      title: title (default: the landscape name).
      figsize: figure size in inches.
      path: if given, also save the figure there.

    Returns:
      The matplotlib Figure with one 3-D axes.
    """
    fn, dim, lower, upper, crit, name = _landscape_parts(landscape, bounds)
    if dim != 2 or lower.shape[0] != 2:
        raise ValueError(f"surface needs a 2-D landscape, got dim={dim}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    trajs = _as_trajectories(trajectories, 2, max_per_optimizer)
    colors = _colors(len(trajs))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot(projection="3d")
    gx = np.linspace(lower[0], upper[0], resolution)
    gy = np.linspace(lower[1], upper[1], resolution)
    X, Y = np.meshgrid(gx, gy)
    Z = _evaluate(fn, np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.6, linewidth=0, antialiased=True)
    for (opt, arr), c in zip(trajs.items(), colors, strict=True):
        for tr in arr:
            inside = np.all((tr >= lower) & (tr <= upper), axis=1)
            tr = tr[: int(np.argmin(inside)) if not inside.all() else len(tr)]
            if len(tr) == 0:
                continue
            z = _evaluate(fn, tr)
            ax.plot(tr[:, 0], tr[:, 1], z, color=c, lw=1.8, label="_" + opt)
            ax.scatter([tr[0, 0]], [tr[0, 1]], [z[0]], marker="o", facecolor="white",
                       edgecolor=c, s=30)
            ax.scatter([tr[-1, 0]], [tr[-1, 1]], [z[-1]], marker="s", color=c, s=30)
    kinds = _mark_critical_points(ax, crit, lower, upper, fn, three_d=True) if mark_critical else []
    ax.view_init(elev=elev, azim=azim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("f(x, y)")
    handles = _legend_handles(list(trajs), colors, kinds)
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(title if title is not None else f"{name}: surface")
    return save_figure(fig, path)

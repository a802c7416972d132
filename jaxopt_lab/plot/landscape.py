"""Landscape figures: contour / 3-D surface / 1-D line with optimizer trajectories overlaid.

Every function takes saved results (a landscape and trajectory arrays) and returns a
:class:`matplotlib.figure.Figure`. Figures are built without ``pyplot`` (no global state,
no display needed; saving uses the Agg canvas), so they are safe in scripts, tests and loops.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from jaxopt_lab.plot.style import KIND_STYLE, check_path, colors, cp_fields, save_figure

__all__ = ["KIND_STYLE", "contour", "save_figure", "surface"]

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


def _evaluate(fn: Callable, points: np.ndarray) -> np.ndarray:
    """Evaluate ``fn`` (one point -> scalar) on ``points`` [n, d] with jax.vmap (no jit)."""
    import jax
    import jax.numpy as jnp

    pts = jnp.asarray(points, dtype=jnp.float32)
    return np.asarray(jax.vmap(fn)(pts), dtype=float)


def _as_trajectories(trajectories: Mapping[str, Any] | None, dim: int) -> dict[str, np.ndarray]:
    """Normalise {name: array [..., T, d]} to {name: array [n, T, d]} (all kept)."""
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
        out[str(name)] = arr.reshape(-1, arr.shape[-2], dim)
    return out


def _check_count(max_per_optimizer: Any) -> None:
    if max_per_optimizer is not None and (
        isinstance(max_per_optimizer, bool) or not isinstance(max_per_optimizer, int)
        or max_per_optimizer < 1
    ):
        raise ValueError(f"max_per_optimizer must be a positive int or None, "
                         f"got {max_per_optimizer!r}")


def _finite_prefix(tr: np.ndarray) -> tuple[np.ndarray, bool]:
    """The iterates of ``tr`` [T, d] before its first non-finite one, and whether it has one."""
    ok = np.all(np.isfinite(tr), axis=-1)
    if ok.all():
        return tr, False
    return tr[: int(np.argmin(ok))], True


def _rank_keys(name: str, arr: np.ndarray, rank_by: Mapping[str, Any] | None,
               escape: tuple[Any, float] | None, fn: Callable) -> np.ndarray:
    """One sort key per trajectory (smaller = faster / better; misses and divergence last)."""
    n = arr.shape[0]
    if rank_by is not None and name in rank_by:
        v = np.asarray(rank_by[name], dtype=float).reshape(-1)
        if v.size != n:
            raise ValueError(f"rank_by[{name!r}] must hold one value per trajectory ({n}), "
                             f"got shape {np.shape(rank_by[name])}")
        return np.where(np.isnan(v), np.inf, v)
    finite = np.all(np.isfinite(arr), axis=-1)  # [n, T]
    if escape is not None:  # first recorded iterate outside the escape radius
        center = np.ravel(np.asarray(escape[0], dtype=float))
        dist = np.linalg.norm(np.where(finite[..., None], arr, 0.0) - center, axis=-1)
        out = finite & (dist > float(escape[1]))
        return np.where(out.any(axis=1), out.argmax(axis=1), np.inf).astype(float)
    last = np.where(finite.any(axis=1), finite.shape[1] - 1 - np.argmax(finite[:, ::-1], 1), -1)
    keys = np.full(n, np.inf)
    has = last >= 0
    if has.any():  # the value of f at the last finite iterate (diverged runs rank last)
        vals = _evaluate(fn, arr[np.nonzero(has)[0], last[has]])
        diverged = ~finite[has].all(axis=1)
        keys[has] = np.where(diverged | ~np.isfinite(vals), np.inf, vals)
    return keys


def _select(keys: np.ndarray, k: int | None, select: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the trajectories to draw and their quantile in the ranking (0 = fastest)."""
    n = keys.size
    if k is None or k >= n:
        k = n
    if select == "first" or n == 0:
        idx = np.arange(k)
        order = np.argsort(keys, kind="stable")
        rank = np.empty(n, dtype=int)
        rank[order] = np.arange(n)
        return idx, rank[idx] / max(n - 1, 1)
    order = np.argsort(keys, kind="stable")
    pos = np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))
    return order[pos], pos / max(n - 1, 1)


def _rank_name(q: float, best: str, worst: str) -> str:
    if q <= 0.0:
        return best
    if q >= 1.0:
        return worst
    if abs(q - 0.5) < 1e-9:
        return "median"
    return f"{100 * q:.0f}th pct"


def _fmt_key(v: float) -> str:
    return "never" if math.isinf(v) else f"{v:g}"


def _mark_critical_points(ax, crit, lower, upper, fn=None, three_d=False) -> list[str]:
    kinds_drawn: list[str] = []
    for cp in crit:
        x, kind = cp_fields(cp)
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


def _legend_handles(names, palette, kinds, *, with_markers=True) -> list:
    handles = [Line2D([], [], color=c, lw=2, ls=_STYLES[i % 4], label=n)
               for i, (n, c) in enumerate(zip(names, palette, strict=True))]
    if with_markers and names:
        handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="start"))
        handles.append(Line2D([], [], ls="", marker="s", mfc="black", mec="black", label="end"))
    for kind in kinds:
        st = KIND_STYLE.get(kind, KIND_STYLE["degenerate"])
        handles.append(Line2D([], [], ls="", marker=st["marker"], mfc=st["color"], mec="black",
                              ms=9, label=kind))
    return handles


def _grid(fn, lower, upper, resolution, log_scale):
    """(X, Y, colour values, colour label) of f on a resolution x resolution grid."""
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
        return X, Y, Zc, "log10(f - min f)"
    return X, Y, Z, "f(x, y)"


def _window(paths: list[np.ndarray], escape, lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """Box around the drawn iterates (and the escape circle), padded, inside the bounds."""
    pts = [p for p in paths if len(p)]
    if escape is not None:
        c = np.ravel(np.asarray(escape[0], dtype=float))[:2]
        r = float(escape[1])
        pts.append(np.stack([c - r, c + r]))
    if not pts:
        return lower, upper
    allp = np.concatenate(pts)
    lo = np.maximum(allp.min(axis=0), lower)
    hi = np.minimum(allp.max(axis=0), upper)
    pad = np.maximum(0.08 * (hi - lo), 0.02 * (upper - lower))
    lo, hi = np.maximum(lo - pad, lower), np.minimum(hi + pad, upper)
    if not np.all(hi > lo):
        return lower, upper
    return lo, hi


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
    figsize: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
    layout: str = "auto",
    select: str = "spread",
    rank_by: Mapping[str, Any] | None = None,
    rank_label: str | None = None,
    zoom: bool = True,
) -> Figure:
    """Contour plot of a 2-D landscape (line plot for 1-D) with optimizer trajectories.

    2-D landscapes with trajectories get **one small panel per optimizer** (shared axes, one
    shared colourbar): the landscape in light grey, that optimizer's trajectories only,
    coloured by their rank among all its seeds (fastest ... slowest; the colour legend is
    shared), iterates as dots (their spacing shows the speed), a white circle at each
    start, a square at each end, and a red ``x`` at the last finite iterate of a trajectory
    that went non-finite. A panel's title names the optimizer, how many of its trajectories
    went non-finite, and the rank values of the drawn ones; an optimizer whose trajectories
    are all non-finite says so inside its panel. Critical points of the landscape's catalog
    are marked by kind (minimum star, maximum triangle, saddle cross, degenerate diamond).

    ``layout="overlay"`` draws every optimizer on one axes (one colour each), and 1-D
    landscapes always do: ``f`` as a line, trajectory iterates as points on it.

    Args:
      landscape: a :class:`jaxopt_lab.landscapes.Landscape` (``fn``, ``dim``, ``bounds``,
        ``critical_points``) or a plain callable ``f(x: [d]) -> scalar`` (then give ``bounds``).
      trajectories: mapping optimizer name -> array ``[..., steps, d]`` (for instance
        ``Results.trajectories[name][h]`` with shape ``[n_seeds, n_recorded, d]``); leading
        axes are flattened into one list of trajectories per optimizer.
      bounds: ``(lower, upper)`` of the largest window shown; defaults to the landscape's.
      resolution: grid points per axis.
      levels: number of contour levels.
      log_scale: colour by ``log10(f - min f + eps)``; ``None`` picks it when the range of
        ``f`` on the grid spans more than three decades.
      max_per_optimizer: trajectories drawn per optimizer (None: all).
      mark_critical: mark catalog critical points.
      escape: optional ``(center, radius)`` drawn as a dashed circle (2-D) or interval
        (1-D): the escape region of a saddle-escape sweep.
      title: figure title (default: the landscape name).
      figsize: figure size in inches (default: grows with the number of panels).
      path: if given, save the figure at exactly this path (see
        :func:`jaxopt_lab.plot.style.check_path`).
      layout: ``"panels"`` (one axes per optimizer), ``"overlay"`` (one axes) or ``"auto"``
        (panels for a 2-D landscape with trajectories, else overlay).
      select: ``"spread"`` draws trajectories at evenly spaced quantiles of the ranking
        (fastest, ..., median, ..., slowest); ``"first"`` draws the first ones.
      rank_by: optional mapping optimizer name -> one value per trajectory (same leading
        shape), smaller = faster, ``inf``/``nan`` = never (e.g.
        ``Results.metrics[name]["escape_step"][h]``). Without it the ranking is the first
        recorded iterate outside ``escape`` (if given), else ``f`` at the last iterate;
        trajectories that went non-finite rank last.
      rank_label: name of the ranked quantity shown in panel titles (default ``"escape
        step"`` with ``escape``, else ``"rank value"``); only printed with ``rank_by``.
      zoom: shrink the window (inside ``bounds``) to the drawn trajectories and the escape
        circle.

    Returns:
      The matplotlib Figure: one axes per optimizer plus a colourbar (panels), one axes
      plus a colourbar (2-D overlay) or one axes (1-D).

    Example:
      >>> from jaxopt_lab import landscapes, plot
      >>> fig = plot.contour(landscapes.get("saddle_xy"))  # doctest: +SKIP
    """
    check_path(path)
    fn, dim, lower, upper, crit, name = _landscape_parts(landscape, bounds)
    if dim not in (1, 2) or lower.shape[0] != dim:
        raise ValueError(
            f"contour needs a 1-D or 2-D landscape (use a 2-D slice for higher dims), got dim={dim}"
        )
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    if layout not in ("auto", "panels", "overlay"):
        raise ValueError(f"layout must be 'auto', 'panels' or 'overlay', got {layout!r}")
    if select not in ("spread", "first"):
        raise ValueError(f"select must be 'spread' or 'first', got {select!r}")
    if rank_by is not None and not isinstance(rank_by, Mapping):
        raise TypeError(f"rank_by must be a mapping optimizer name -> values, "
                        f"got {type(rank_by).__name__}")
    _check_count(max_per_optimizer)
    trajs = _as_trajectories(trajectories, dim)
    if rank_by is not None and (extra := sorted(set(map(str, rank_by)) - set(trajs))):
        raise ValueError(f"rank_by has names without trajectories: {extra}")
    picks = {}
    for opt, arr in trajs.items():
        keys = _rank_keys(opt, arr, rank_by, escape, fn)
        idx, q = _select(keys, max_per_optimizer, select)
        picks[opt] = (idx, q, keys)
    if layout == "auto":
        layout = "panels" if dim == 2 and trajs else "overlay"
    if layout == "panels" and dim != 2:
        raise ValueError(f"layout='panels' needs a 2-D landscape, got dim={dim}")
    if title is None:
        title = name if not trajs else f"{name}: trajectories"
    if layout == "panels":
        fig = _contour_panels(fn, lower, upper, crit, trajs, picks, resolution=resolution,
                              levels=levels, log_scale=log_scale, mark_critical=mark_critical,
                              escape=escape, title=title, figsize=figsize,
                              ranked=rank_by is not None or escape is not None,
                              rank_label=rank_label if rank_label is not None else
                              ("escape step" if escape is not None else "rank value"),
                              show_values=rank_by is not None, zoom=zoom)
        return save_figure(fig, path)
    sel = {opt: arr[picks[opt][0]] for opt, arr in trajs.items()}
    fig = _contour_overlay(fn, dim, lower, upper, crit, sel, resolution=resolution,
                           levels=levels, log_scale=log_scale, mark_critical=mark_critical,
                           escape=escape, title=title, figsize=figsize or (7.0, 5.8))
    return save_figure(fig, path)


def _mark_path(ax, tr, color, *, lw=1.4, ls="-", label=None, dots=False):
    """Draw one trajectory's finite prefix with start/end markers; return True if it diverged."""
    fp, diverged = _finite_prefix(tr)
    if len(fp) == 0:
        return diverged
    ax.plot(fp[:, 0], fp[:, 1], color=color, lw=lw, ls=ls, alpha=0.95, label=label,
            marker="." if dots else None, ms=3.5, zorder=4)
    ax.scatter(fp[0, 0], fp[0, 1], marker="o", facecolor="white", edgecolor=color,
               s=40, zorder=5, linewidths=1.5)
    if diverged:
        ax.scatter(fp[-1, 0], fp[-1, 1], marker="x", color="#d62728", s=70, zorder=6,
                   linewidths=2.2)
    else:
        ax.scatter(fp[-1, 0], fp[-1, 1], marker="s", color=color, edgecolor="black",
                   s=36, zorder=6)
    return diverged


def _contour_panels(fn, lower, upper, crit, trajs, picks, *, resolution, levels, log_scale,
                    mark_critical, escape, title, figsize, ranked, rank_label, show_values,
                    zoom) -> Figure:
    from matplotlib import colormaps
    from matplotlib.patches import Circle

    names = list(trajs)
    n = len(names)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    drawn = [_finite_prefix(t)[0] for opt in names for t in trajs[opt][picks[opt][0]]]
    lo, hi = _window(drawn, escape, lower, upper) if zoom else (lower, upper)
    X, Y, Zc, clabel = _grid(fn, lo, hi, resolution, log_scale)
    Zf = Zc[np.isfinite(Zc)]
    if isinstance(levels, int) and Zf.size and np.ptp(Zf) > 0:
        # levels at quantiles of f over the window: the shape of the landscape shows
        # everywhere, also where f spans orders of magnitude (rosenbrock's valley)
        levels = np.unique(np.quantile(Zf, np.linspace(0.0, 1.0, max(levels, 2))))
    norm = None
    if np.ndim(levels) and len(levels) >= 2:  # one grey step per level (quantile spacing)
        from matplotlib.colors import BoundaryNorm

        norm = BoundaryNorm(levels, 256)
    if figsize is None:
        figsize = (3.5 * ncols + 1.2, 3.2 * nrows + 1.3)
    fig = Figure(figsize=figsize, layout="constrained")
    grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[n:]:
        ax.remove()
    for j in range(ncols):  # the lowest panel of each column keeps its x tick labels
        col = [grid[i, j] for i in range(nrows) if i * ncols + j < n]
        col[-1].xaxis.set_tick_params(labelbottom=True)
        col[-1].set_xlabel("x")
    axes = axes[:n]
    best, worst = ("fastest", "slowest") if ranked else ("lowest final f", "highest final f")
    rank_cmap = colormaps["plasma"]
    rank_names: dict[str, Any] = {}
    any_diverged = False
    kinds: list[str] = []
    cs = None
    for ax, opt, c in zip(axes, names, colors(n), strict=True):
        arr = trajs[opt]
        idx, q, keys = picks[opt]
        cs = ax.contourf(X, Y, Zc, levels=levels, cmap="Greys", norm=norm, alpha=0.5)
        ax.contour(X, Y, Zc, levels=levels, colors="0.35", linewidths=0.3, alpha=0.6)
        if escape is not None:
            center = np.ravel(np.asarray(escape[0], dtype=float))
            ax.add_patch(Circle((center[0], center[1]), float(escape[1]), fill=False, ls="--",
                                ec="black", lw=1.0, zorder=3))
        n_bad = int(np.sum(~np.all(np.isfinite(arr), axis=(1, 2))))
        n_prefix = 0
        for i, qi in zip(idx, q, strict=True):
            rc = rank_cmap(0.8 * float(qi))
            label = _rank_name(float(qi), best, worst)
            rank_names.setdefault(label, rc)
            any_diverged |= _mark_path(ax, arr[i], rc, label="_" + label, dots=True)
            n_prefix += len(_finite_prefix(arr[i])[0]) > 1
        if mark_critical:
            kinds += [k for k in _mark_critical_points(ax, crit, lo, hi, fn) if k not in kinds]
        lines = [opt]
        if n_bad:
            lines.append(f"{n_bad}/{arr.shape[0]} non-finite")
        if show_values and len(idx):
            lines.append(f"{rank_label}: " + ", ".join(_fmt_key(keys[i]) for i in idx))
        ax.set_title("\n".join(lines), fontsize=9,
                     color="#b2182b" if n_bad == arr.shape[0] and n_bad else c)
        for spine in ax.spines.values():
            spine.set_edgecolor(c)
            spine.set_linewidth(1.6)
        if n_bad == arr.shape[0] and n_bad:
            ax.text(0.5, 0.5, f"all {n_bad} runs non-finite\n(x = last finite iterate)",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9,
                    color="#b2182b", zorder=7,
                    bbox=dict(boxstyle="round", fc="white", ec="#b2182b", alpha=0.9))
        elif arr.shape[0] == 0:
            ax.text(0.5, 0.5, "no trajectories", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9)
    axes[0].set_xlim(lo[0], hi[0])
    axes[0].set_ylim(lo[1], hi[1])
    if 1 / 3 <= (hi[0] - lo[0]) / (hi[1] - lo[1]) <= 3:  # circles look like circles
        for ax in axes:
            ax.set_aspect("equal", adjustable="box")
    for ax in axes:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("y")
    if cs is not None:
        fig.colorbar(cs, ax=axes, label=clabel, shrink=0.85)
    handles = [Line2D([], [], color=rc, lw=2, marker=".", label=lab)
               for lab, rc in rank_names.items()]
    handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="start"))
    handles.append(Line2D([], [], ls="", marker="s", mfc="gray", mec="black", label="end"))
    if any_diverged:
        handles.append(Line2D([], [], ls="", marker="x", mec="#d62728", mew=2.2,
                              label="last finite iterate (then non-finite)"))
    for kind in kinds:
        st = KIND_STYLE.get(kind, KIND_STYLE["degenerate"])
        handles.append(Line2D([], [], ls="", marker=st["marker"], mfc=st["color"], mec="black",
                              ms=9, label=kind))
    if escape is not None:
        handles.append(Line2D([], [], color="black", ls="--", lw=1.0, label="escape radius"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=8, title="trajectories drawn per optimizer (ranked over all its seeds)",
               title_fontsize=8)
    fig.suptitle(title)
    return fig


def _contour_overlay(fn, dim, lower, upper, crit, trajs, *, resolution, levels, log_scale,
                     mark_critical, escape, title, figsize) -> Figure:
    palette = colors(len(trajs))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    if dim == 1:
        xs = np.linspace(lower[0], upper[0], resolution * 4)
        ax.plot(xs, _evaluate(fn, xs[:, None]), color="black", lw=1.5, label="f(x)")
        for arr, c in zip(trajs.values(), palette, strict=True):
            for tr in arr:
                tr, _ = _finite_prefix(tr)
                if not len(tr):
                    continue
                fx = _evaluate(fn, tr)
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
        handles += _legend_handles(list(trajs), palette, kinds)
    else:
        X, Y, Zc, clabel = _grid(fn, lower, upper, resolution, log_scale)
        cs = ax.contourf(X, Y, Zc, levels=levels, cmap="viridis", alpha=0.9)
        ax.contour(X, Y, Zc, levels=levels, colors="white", linewidths=0.3, alpha=0.5)
        fig.colorbar(cs, ax=ax, label=clabel)
        for i, ((opt, arr), c) in enumerate(zip(trajs.items(), palette, strict=True)):
            for tr in arr:
                _mark_path(ax, tr, c, ls=_STYLES[i % 4], label="_" + opt)
        kinds = _mark_critical_points(ax, crit, lower, upper, fn) if mark_critical else []
        ax.set_xlim(lower[0], upper[0])
        ax.set_ylim(lower[1], upper[1])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        handles = _legend_handles(list(trajs), palette, kinds)
        if escape is not None:
            from matplotlib.patches import Circle

            c = np.ravel(np.asarray(escape[0], dtype=float))
            ax.add_patch(Circle((c[0], c[1]), float(escape[1]), fill=False, ls="--",
                                ec="white", lw=1.2, zorder=3))
            handles.append(Line2D([], [], color="gray", ls="--", lw=1.2, label="escape radius"))
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.85)
    ax.set_title(title)
    return fig


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
    select: str = "spread",
) -> Figure:
    """3-D surface of a 2-D landscape with trajectories lifted onto it.

    Args:
      landscape: a Landscape or a callable (then give ``bounds``).
      trajectories: mapping optimizer name -> array ``[..., steps, 2]``.
      bounds: ``(lower, upper)``; defaults to the landscape's bounds.
      resolution: grid points per axis.
      max_per_optimizer: trajectories drawn per optimizer.
      mark_critical: mark catalog critical points by kind.
      elev, azim: camera angles in degrees.
      title: title (default: the landscape name).
      figsize: figure size in inches.
      path: if given, save the figure at exactly this path.
      select: ``"spread"`` (trajectories spread over the ranking by final ``f``, as in
        :func:`contour`) or ``"first"``.

    Returns:
      The matplotlib Figure with one 3-D axes. Only the finite part of a trajectory inside
      ``bounds`` is drawn.
    """
    check_path(path)
    fn, dim, lower, upper, crit, name = _landscape_parts(landscape, bounds)
    if dim != 2 or lower.shape[0] != 2:
        raise ValueError(f"surface needs a 2-D landscape, got dim={dim}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    if select not in ("spread", "first"):
        raise ValueError(f"select must be 'spread' or 'first', got {select!r}")
    _check_count(max_per_optimizer)
    trajs = _as_trajectories(trajectories, 2)
    trajs = {opt: arr[_select(_rank_keys(opt, arr, None, None, fn), max_per_optimizer,
                              select)[0]] for opt, arr in trajs.items()}
    palette = colors(len(trajs))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot(projection="3d")
    gx = np.linspace(lower[0], upper[0], resolution)
    gy = np.linspace(lower[1], upper[1], resolution)
    X, Y = np.meshgrid(gx, gy)
    Z = _evaluate(fn, np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.6, linewidth=0, antialiased=True)
    for (opt, arr), c in zip(trajs.items(), palette, strict=True):
        for tr in arr:
            tr, _ = _finite_prefix(tr)
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
    handles = _legend_handles(list(trajs), palette, kinds)
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(title if title is not None else f"{name}: surface")
    return save_figure(fig, path)

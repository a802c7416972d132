"""Sweep figures from tidy records: escape-time ECDFs, violins, success-rate heatmaps.

Records are what ``compare.Results.records()`` returns (a list of dicts, one per
trajectory) or the path of a saved ``records.csv``. A metric value of ``inf`` means
"never happened within the step budget" (a miss); misses are shown, never dropped.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D

from jaxopt_lab.plot.style import check_path, colors, save_figure

__all__ = ["escape_ecdf", "escape_violin", "load_records", "success_heatmap"]

# Columns of a record that are measurements or identifiers, not hyperparameters.
RESULT_COLUMNS = frozenset(
    {"optimizer", "seed", "escape_step", "hit_step", "final_value", "final_grad_norm",
     "nonfinite", "trajectory", "index"}
)


def _parse(value: str) -> Any:
    s = value.strip()
    if s in ("True", "true"):
        return True
    if s in ("False", "false"):
        return False
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def load_records(source: Any) -> list[dict]:
    """Return records as a list of dicts from a list of dicts or a ``records.csv`` path.

    CSV cells are converted back to bool/int/float where they parse (``inf`` -> ``math.inf``).

    Args:
      source: list/tuple of dicts, an object with a ``records()`` method (``Results``), or a
        path to a CSV file with a header row.

    Returns:
      list of dicts.
    """
    if hasattr(source, "records") and callable(source.records):
        source = source.records()
    if isinstance(source, str | os.PathLike):
        with open(source, newline="") as fh:
            return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    if isinstance(source, Iterable) and not isinstance(source, str | bytes | Mapping):
        records = list(source)
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise TypeError(f"records[{i}] must be a dict, got {type(r).__name__}")
        return [dict(r) for r in records]
    raise TypeError(
        "records must be a list of dicts, a Results object or a CSV path, "
        f"got {type(source).__name__}"
    )


def _hparam_columns(records: Sequence[Mapping]) -> list[str]:
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in RESULT_COLUMNS and k not in cols:
                cols.append(k)
    return cols


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _group(records: Sequence[Mapping], by: Sequence[str] | None) -> dict[str, list[Mapping]]:
    """Group records by optimizer plus the hyperparameter columns that vary."""
    if by is None:
        by = ["optimizer"] + [
            c for c in _hparam_columns(records) if len({_fmt(r.get(c)) for r in records}) > 1
        ]
    groups: dict[str, list[Mapping]] = {}
    for r in records:
        parts = []
        for c in by:
            if c == "optimizer":
                parts.insert(0, str(r.get("optimizer", "?")))
            else:
                parts.append(f"{'lr' if c == 'learning_rate' else c}={_fmt(r.get(c))}")
        label = parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"
        groups.setdefault(label, []).append(r)
    return groups


def _values(records: Sequence[Mapping], column: str) -> np.ndarray:
    out = []
    for i, r in enumerate(records):
        if column not in r:
            raise ValueError(f"column must be a key of every record, got {column!r} "
                             f"(missing in records[{i}] with keys {sorted(r)})")
        v = float(r[column])
        if math.isnan(v):
            v = math.inf  # no event recorded: a miss (a run that diverges AFTER its escape
            # keeps its finite escape step, as in compare.stats)
        out.append(v)
    return np.asarray(out, dtype=float)


def _is_nonfinite(r: Mapping) -> bool:
    """Whether a record's run went non-finite (``nonfinite`` flag or non-finite final value)."""
    flag = r.get("nonfinite", False)
    if isinstance(flag, str):
        flag = flag.strip().lower() in ("true", "1")
    if bool(flag):
        return True
    v = r.get("final_value")
    try:
        return v is not None and not math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _n_nonfinite(records: Sequence[Mapping]) -> int:
    return sum(_is_nonfinite(r) for r in records)


def _wrap_group(label: str) -> str:
    """'momentum (lr=0.05, b1=0.9)' -> 'momentum\nlr=0.05\nb1=0.9' (narrow tick labels)."""
    if label.endswith(")") and " (" in label:
        head, rest = label.split(" (", 1)
        return "\n".join([head, *[p.strip() for p in rest[:-1].split(",")]])
    return label


def _check_records(records: Any) -> list[dict]:
    records = load_records(records)
    if not records:
        raise ValueError("records must not be empty")
    return records


def escape_ecdf(
    records: Any,
    *,
    column: str = "escape_step",
    by: Sequence[str] | None = None,
    horizon: float | None = None,
    log_x: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Empirical CDF of escape (or hit) steps per optimizer, misses included.

    The curve of a group with ``n`` runs of which ``k`` escaped rises to ``k/n`` (not 1), and
    ends at the step budget; groups with misses are annotated "m/n never escaped" next to
    the end of their curve (stacked, never overlapping) and in the legend. Groups with runs
    that went non-finite (record ``nonfinite`` true or a non-finite ``final_value``) say
    "j/n non-finite" there too, so a diverged optimizer (a flat curve at 0) is named.

    Args:
      records: list of record dicts, a Results object or a ``records.csv`` path.
      column: metric column (``escape_step`` or ``hit_step``); ``inf`` marks a miss.
      by: grouping columns (default: optimizer plus any hyperparameter column that varies).
      horizon: x where curves end (default: the largest finite value, or ``meta`` steps).
      log_x: logarithmic step axis.
      title: axes title.
      figsize: figure size in inches (default: taller with more groups).
      path: if given, save the figure at exactly this path (its folder must exist).

    Returns:
      Figure with one axes and one line per group; ``ax.get_legend()`` (under the axes)
      labels every group, and a second legend inside the axes names the groups where no
      run succeeded.
    """
    check_path(path)
    records = _check_records(records)
    groups = _group(records, by)
    vals = {g: _values(rs, column) for g, rs in groups.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in vals.values()])
    if horizon is None:
        horizon = float(finite.max()) * 1.05 if finite.size else 1.0
    horizon = max(float(horizon), 1.0)
    event = column.replace("_step", "")
    verb = {"escape": "escaped", "hit": "hit target"}.get(event, event)
    if figsize is None:  # room under the axes for the legend (two columns beyond 3 groups)
        figsize = (8.0, 4.6 + 0.22 * (len(vals) if len(vals) < 4 else math.ceil(len(vals) / 2)))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    notes = []  # (curve end height, text, colour) of groups with some misses
    never = []  # (handle, text) of groups where no run succeeded (their curve stays at 0)
    styles = ["-", "--", "-.", ":"]
    for i, ((g, v), c) in enumerate(zip(vals.items(), colors(len(vals)), strict=True)):
        n = v.size
        hits = np.sort(v[np.isfinite(v)])
        k = hits.size
        nf = _n_nonfinite(groups[g])
        x0 = 1.0 if log_x else 0.0
        xs = np.concatenate([[x0], np.maximum(hits, x0), [horizon]])
        ys = np.concatenate([[0.0], np.arange(1, k + 1) / n, [k / n]])
        parts = ([f"{n - k}/{n} never {verb}"] if k < n else []) + (
            [f"{nf}/{n} non-finite"] if nf else [])
        label = g if not parts else f"{g}: {', '.join(parts)}"
        ax.step(xs, ys, where="post", color=c, lw=2, ls=styles[i % len(styles)], label=label,
                clip_on=False if k == 0 else True, zorder=3 if k == 0 else 2)
        if 0 < k < n:
            notes.append((k / n, label, c))
        elif k == 0:
            never.append((Line2D([], [], color=c, lw=2, ls=styles[i % len(styles)]),
                          f"{g} ({nf}/{n} non-finite)" if nf else g))
    # misses annotated at the right end of their curves, stacked so that they never overlap
    # (several groups ending at the same height, e.g. at 0 when no run of them succeeded)
    last = -np.inf
    for y, text, c in sorted(notes, key=lambda t: t[0]):
        ty = max(y, last + 0.055)
        last = ty
        ax.annotate(text, xy=(horizon, ty), xytext=(-4, 2), textcoords="offset points",
                    ha="right", va="bottom", color=c, fontsize=8)
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(-0.02, max(1.05, last + 0.08))
    ax.set_xlim(1.0 if log_x else 0.0, horizon)
    ax.axhline(1.0, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(f"{event} step")
    ax.set_ylabel(f"fraction of runs {verb}")
    ax.set_title(title if title is not None else f"{event} time ECDF (misses = never {verb})")
    ax.grid(alpha=0.3)
    if never:  # named inside the axes, where matplotlib finds room ("best"): not absent
        box = Legend(ax, [h for h, _ in never], [t for _, t in never], loc="best", fontsize=8,
                     title=f"no run {verb} (curve at 0)", title_fontsize=8, framealpha=0.9)
        box.get_title().set_color("#b2182b")
        ax.add_artist(box)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), borderaxespad=0.0,
              ncols=1 if len(vals) < 4 else 2)
    return save_figure(fig, path)


def escape_violin(
    records: Any,
    *,
    column: str = "escape_step",
    by: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Violin plot of finite escape (hit) steps per group with the miss count under each.

    Tick labels are wrapped (optimizer, then one hyperparameter per line, then
    "m/n missed" and, if any, "j/n non-finite"); the default width grows with the number
    of groups; with a given ``figsize`` too narrow for them, each label becomes one vertical
    line ("optimizer, hparam=v, m/n missed"). A group with no finite
    value is annotated in its slot ("no run escaped", with its non-finite count).

    Args:
      records: list of record dicts, a Results object or a ``records.csv`` path.
      column: metric column; ``inf`` marks a miss (not drawn in the violin, counted below it).
      by: grouping columns (default: optimizer plus hyperparameters that vary).
      title: axes title.
      figsize: figure size in inches (default: width 1.1 inch per group, at least 7).
      path: if given, save the figure at exactly this path (its folder must exist).

    Returns:
      Figure with one axes; tick labels "optimizer\\nhparam=v\\nm/n missed[\\nj/n non-finite]".
    """
    check_path(path)
    records = _check_records(records)
    groups = _group(records, by)
    if figsize is None:
        figsize = (max(7.0, 1.1 * len(groups) + 1.5), 4.8)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    event = column.replace("_step", "")
    verb = {"escape": "escaped", "hit": "hit the target"}.get(event, event)
    labels = []
    empty = []
    for i, ((g, rs), c) in enumerate(zip(groups.items(), colors(len(groups)), strict=True)):
        v = _values(rs, column)
        hits = v[np.isfinite(v)]
        nf = _n_nonfinite(rs)
        if hits.size >= 2 and np.ptp(hits) > 0:
            parts = ax.violinplot([hits], positions=[i], showmedians=True, widths=0.8)
            for body in parts["bodies"]:
                body.set_facecolor(c)
                body.set_alpha(0.6)
            for name in ("cmedians", "cmins", "cmaxes", "cbars"):  # lines in the group colour
                if name in parts:
                    parts[name].set_color(c)
        elif hits.size:  # one distinct value: no density to draw, show the point + median
            ax.scatter(np.full(hits.size, i), hits, color=c, s=12)
            ax.hlines(np.median(hits), i - 0.3, i + 0.3, color=c, lw=2)
        else:
            empty.append((i, c, f"no run {verb}" + (f"\n({nf}/{v.size} non-finite)" if nf
                                                     else "")))
        label = f"{_wrap_group(g)}\n{v.size - hits.size}/{v.size} missed"
        labels.append(label + (f"\n{nf}/{v.size} non-finite" if nf else ""))
    for i, c, text in empty:  # in the slot of the group, mid-height (axes coordinates)
        ax.text(i, 0.5, text, transform=ax.get_xaxis_transform(), rotation=90, ha="center",
                va="center", fontsize=8, color=c,
                bbox=dict(boxstyle="round", fc="white", ec=c, alpha=0.9))
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(f"{event} step (runs that {verb})")
    ax.set_title(title if title is not None else f"{event} step distribution")
    ax.grid(alpha=0.3, axis="y")
    if _ticklabels_overlap(fig, ax):  # too narrow (a figsize was given): one vertical line each
        ax.set_xticks(range(len(labels)), [lab.replace("\n", ", ") for lab in labels],
                      fontsize=8, rotation=90)
        if _ticklabels_overlap(fig, ax):
            ax.tick_params(axis="x", labelsize=6)
    return save_figure(fig, path)


def _ticklabels_overlap(fig: Figure, ax) -> bool:
    """Whether any two x tick labels of ``ax`` overlap once the figure is laid out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    boxes.sort(key=lambda b: b.x0)
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:], strict=False))


def success_heatmap(
    records: Any,
    *,
    param: str = "learning_rate",
    column: str = "escape_step",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Heatmap of success rate (fraction of runs with a finite ``column``): optimizer x param.

    Each cell is annotated with its rate and run count (and "j non-finite" when runs went
    non-finite); missing combinations are blank.

    Args:
      records: list of record dicts, a Results object or a ``records.csv`` path.
      param: hyperparameter column for the x axis (e.g. ``learning_rate``).
      column: metric column whose finiteness means success.
      title: axes title.
      figsize: figure size (default scales with the grid).
      path: if given, save the figure at exactly this path (its folder must exist).

    Returns:
      Figure with the heatmap axes and a colourbar; ``fig.axes[0].images[0].get_array()``
      holds the rates [n_optimizers, n_values].
    """
    check_path(path)
    records = _check_records(records)
    if any(param not in r for r in records):
        raise ValueError(f"param must be a column of every record, got {param!r} "
                         f"(columns: {sorted(records[0])})")
    opts = list(dict.fromkeys(str(r.get("optimizer", "?")) for r in records))
    values = sorted({float(r[param]) for r in records})
    rate = np.full((len(opts), len(values)), np.nan)
    count = np.zeros((len(opts), len(values)), dtype=int)
    succ = np.zeros_like(count)
    bad = np.zeros_like(count)
    for r, v in zip(records, _values(records, column), strict=True):
        i, j = opts.index(str(r.get("optimizer", "?"))), values.index(float(r[param]))
        count[i, j] += 1
        succ[i, j] += bool(np.isfinite(v))
        bad[i, j] += _is_nonfinite(r)
    mask = count > 0
    rate[mask] = succ[mask] / count[mask]
    if figsize is None:
        figsize = (max(4.5, 1.2 * len(values) + 2.5), max(3.0, 0.55 * len(opts) + 1.8))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(rate), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(len(opts)):
        for j in range(len(values)):
            if count[i, j]:
                txt = f"{rate[i, j]:.2f}\n{succ[i, j]}/{count[i, j]}"
                if bad[i, j]:
                    txt += f"\n{bad[i, j]} non-finite"
                ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                        color="black" if rate[i, j] > 0.6 else "white")
    ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
    ax.set_yticks(range(len(opts)), opts)
    ax.set_xlabel(param.replace("_", " "))
    ax.set_ylabel("optimizer")
    event = column.replace("_step", "")
    fig.colorbar(im, ax=ax, label=f"success rate ({event} within budget)")
    ax.set_title(title if title is not None else f"success rate: optimizer x {param}")
    return save_figure(fig, path)

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

from jaxopt_lab.plot.landscape import _colors, save_figure

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
    figsize: tuple[float, float] = (8.5, 4.5),
    path: str | os.PathLike | None = None,
) -> Figure:
    """Empirical CDF of escape (or hit) steps per optimizer, misses included.

    The curve of a group with ``n`` runs of which ``k`` escaped rises to ``k/n`` (not 1), and
    ends at the step budget; groups with misses are annotated "m/n never escaped" next to
    the end of their curve and in the legend.

    Args:
      records: list of record dicts, a Results object or a ``records.csv`` path.
      column: metric column (``escape_step`` or ``hit_step``); ``inf`` marks a miss.
      by: grouping columns (default: optimizer plus any hyperparameter column that varies).
      horizon: x where curves end (default: the largest finite value, or ``meta`` steps).
      log_x: logarithmic step axis.
      title: axes title.
      figsize: figure size in inches.
      path: if given, also save the figure there.

    Returns:
      Figure with one axes and one line per group.
    """
    records = _check_records(records)
    groups = _group(records, by)
    vals = {g: _values(rs, column) for g, rs in groups.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in vals.values()])
    if horizon is None:
        horizon = float(finite.max()) * 1.05 if finite.size else 1.0
    horizon = max(float(horizon), 1.0)
    event = column.replace("_step", "")
    verb = {"escape": "escaped", "hit": "hit target"}.get(event, event)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    placed: list[float] = []  # y of annotations already drawn (to stack, not overlap)
    styles = ["-", "--", "-.", ":"]
    for i, ((g, v), c) in enumerate(zip(vals.items(), _colors(len(vals)), strict=True)):
        n = v.size
        hits = np.sort(v[np.isfinite(v)])
        k = hits.size
        x0 = 1.0 if log_x else 0.0
        xs = np.concatenate([[x0], np.maximum(hits, x0), [horizon]])
        ys = np.concatenate([[0.0], np.arange(1, k + 1) / n, [k / n]])
        label = g if k == n else f"{g}: {n - k}/{n} never {verb}"
        ax.step(xs, ys, where="post", color=c, lw=2, ls=styles[i % len(styles)], label=label)
        if k < n:
            clash = sum(abs(y - k / n) < 0.06 for y in placed)
            placed.append(k / n)
            ax.annotate(f"{g}: {n - k}/{n} never {verb}", xy=(horizon, k / n),
                        xytext=(-4, 4 + 11 * clash), textcoords="offset points", ha="right",
                        va="bottom", color=c, fontsize=8)
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(1.0 if log_x else 0.0, horizon)
    ax.axhline(1.0, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(f"{event} step")
    ax.set_ylabel(f"fraction of runs {verb}")
    ax.set_title(title if title is not None else f"{event} time ECDF (misses = never {verb})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return save_figure(fig, path)


def escape_violin(
    records: Any,
    *,
    column: str = "escape_step",
    by: Sequence[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.5),
    path: str | os.PathLike | None = None,
) -> Figure:
    """Violin plot of finite escape (hit) steps per group with the miss count under each.

    Args:
      records: list of record dicts, a Results object or a ``records.csv`` path.
      column: metric column; ``inf`` marks a miss (not drawn in the violin, counted below it).
      by: grouping columns (default: optimizer plus hyperparameters that vary).
      title: axes title.
      figsize: figure size in inches.
      path: if given, also save the figure there.

    Returns:
      Figure with one axes; tick labels "group\\nm/n missed".
    """
    records = _check_records(records)
    groups = _group(records, by)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    labels = []
    for i, ((g, rs), c) in enumerate(zip(groups.items(), _colors(len(groups)), strict=True)):
        v = _values(rs, column)
        hits = v[np.isfinite(v)]
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
        labels.append(f"{g}\n{v.size - hits.size}/{v.size} missed")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    event = column.replace("_step", "")
    verb = {"escape": "escaped", "hit": "hit the target"}.get(event, event)
    ax.set_ylabel(f"{event} step (runs that {verb})")
    ax.set_title(title if title is not None else f"{event} step distribution")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


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

    Each cell is annotated with its rate and run count; missing combinations are blank.

    Args:
      records: list of record dicts, a Results object or a ``records.csv`` path.
      param: hyperparameter column for the x axis (e.g. ``learning_rate``).
      column: metric column whose finiteness means success.
      title: axes title.
      figsize: figure size (default scales with the grid).
      path: if given, also save the figure there.

    Returns:
      Figure with the heatmap axes and a colourbar; ``fig.axes[0].images[0].get_array()``
      holds the rates [n_optimizers, n_values].
    """
    records = _check_records(records)
    if any(param not in r for r in records):
        raise ValueError(f"param must be a column of every record, got {param!r} "
                         f"(columns: {sorted(records[0])})")
    opts = list(dict.fromkeys(str(r.get("optimizer", "?")) for r in records))
    values = sorted({float(r[param]) for r in records})
    rate = np.full((len(opts), len(values)), np.nan)
    count = np.zeros((len(opts), len(values)), dtype=int)
    succ = np.zeros_like(count)
    for r, v in zip(records, _values(records, column), strict=True):
        i, j = opts.index(str(r.get("optimizer", "?"))), values.index(float(r[param]))
        count[i, j] += 1
        succ[i, j] += bool(np.isfinite(v))
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

"""Figures of a continual-learning run (:mod:`jaxopt_lab.experiments.continual`).

Every function takes SAVED results (a :class:`~jaxopt_lab.compare.Results` or a run
directory written by ``Results.save``) and draws them: accuracy matrices as heatmaps,
every task's test accuracy over training, and the memory each method holds as tasks
accumulate. Nothing is trained or scored here (seed means are the only arithmetic).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["accuracy_matrices", "cells", "figures", "memory_growth", "task_accuracy_curves"]


def _results(source: Any):
    from jaxopt_lab.compare import Results

    if isinstance(source, Results):
        return source
    if isinstance(source, str | os.PathLike):
        return Results.load(source)
    raise TypeError(f"results must be a compare.Results or a run directory, got "
                    f"{type(source).__name__}")


def cells(results: Any) -> list[tuple[str, str, str]]:
    """The ``(protocol, dataset, scenario)`` cells of a run, in first-seen order."""
    res = _results(results)
    out: list = []
    for m in res.optimizers:
        for hp in res.hparams[m]:
            c = (hp["protocol"], hp["dataset"], hp["scenario"])
            if c not in out:
                out.append(c)
    return out


def _rows(res, cell):
    """(label, method, row index, num_tasks) of every method row in ``cell``."""
    out = []
    for m in res.optimizers:
        for h, hp in enumerate(res.hparams[m]):
            if (hp["protocol"], hp["dataset"], hp["scenario"]) != tuple(cell):
                continue
            extra = [f"{k[0]}={hp[k]:g}" for k in ("learning_rate", "strength")
                     if k in hp and (k == "strength" or len(res.hparams[m]) > 1)]
            label = m + (f" ({', '.join(extra)})" if extra else "")
            t = int(np.asarray(res.metrics[m]["num_tasks"])[h, 0])
            out.append((label, m, h, t))
    return out


def _grid(n, width=3.0, height=2.6, ncols=None):
    ncols = ncols or min(n, 5)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def accuracy_matrices(results: Any, cell: tuple[str, str, str], *,
                      path: str | None = None) -> Figure:
    """Heatmaps of the seed-mean accuracy matrix ``R[i, j]`` (row: after training task
    ``i``; column: test task ``j``) of every method in ``cell``."""
    res = _results(results)
    rows = _rows(res, cell)
    if not rows:
        raise ValueError(f"cell {cell!r} is not in the results (cells: {cells(res)})")
    fig, axes = _grid(len(rows))
    im = None
    for ax, (label, m, h, t) in zip(axes, rows, strict=False):
        r = np.nanmean(np.asarray(res.curves[m]["R"])[h], axis=0)[:t, :t]
        im = ax.imshow(r, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("test task j", fontsize=7)
        ax.set_ylabel("after task i", fontsize=7)
        if t <= 6:
            for i in range(t):
                for j in range(t):
                    ax.text(j, i, f"{100 * r[i, j]:.0f}", ha="center", va="center",
                            fontsize=6, color="w" if r[i, j] < 0.6 else "k")
        ax.tick_params(labelsize=6)
    if im is not None:
        fig.colorbar(im, ax=list(axes[:len(rows)]), shrink=0.6, label="test accuracy")
    fig.suptitle(f"Accuracy matrices R[i, j] ({' / '.join(cell)}), mean over seeds")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def task_accuracy_curves(results: Any, cell: tuple[str, str, str], *,
                         path: str | None = None) -> Figure:
    """Every task's test accuracy (seed mean) over training, one panel per method; task
    boundaries dashed."""
    res = _results(results)
    rows = _rows(res, cell)
    if not rows:
        raise ValueError(f"cell {cell!r} is not in the results (cells: {cells(res)})")
    fig, axes = _grid(len(rows), width=3.2, height=2.4)
    for ax, (label, m, h, t) in zip(axes, rows, strict=False):
        c = np.nanmean(np.asarray(res.curves[m]["task_accuracy"])[h], axis=0)
        c = c[~np.all(np.isnan(c), axis=1)][:, :t]
        per_task = c.shape[0] // t if t else 1
        x = np.arange(1, c.shape[0] + 1) / max(per_task, 1)
        cmap = __import__("matplotlib").colormaps["viridis"]
        for j in range(t):
            ax.plot(x, c[:, j], color=cmap(j / max(t - 1, 1)), lw=1)
        for b in range(1, t):
            ax.axvline(b, color="0.7", ls="--", lw=0.5)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("tasks trained", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"Per-task test accuracy over training ({' / '.join(cell)}); "
                 "colour = task (dark: first)")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def memory_growth(results: Any, cell: tuple[str, str, str], *,
                  path: str | None = None) -> Figure:
    """Bytes each method holds (network + continual-learning state) after each task."""
    res = _results(results)
    rows = _rows(res, cell)
    if not rows:
        raise ValueError(f"cell {cell!r} is not in the results (cells: {cells(res)})")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    seen = set()
    for _label, m, h, t in rows:
        if m in seen:
            continue
        seen.add(m)
        mb = np.asarray(res.curves[m]["memory_bytes"])[h, 0, :t]
        ax.plot(np.arange(1, t + 1), mb / 1024.0, marker="o", ms=3, label=m)
    ax.set_yscale("log")
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("memory held (KiB)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"Memory as tasks accumulate ({cell[0]} / {cell[1]})")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def figures(results: Any) -> dict[str, Figure]:
    """Every figure of a run: ``R_<cell>``, ``curves_<cell>`` per cell and ``memory_<protocol>_
    <dataset>`` (name -> Figure, for ``Results.save``)."""
    res = _results(results)
    out = {}
    for cell in cells(res):
        name = "_".join(cell)
        out[f"R_{name}"] = accuracy_matrices(res, cell)
        out[f"curves_{name}"] = task_accuracy_curves(res, cell)
        mem = f"memory_{cell[0]}_{cell[1]}"
        if mem not in out:
            out[mem] = memory_growth(res, cell)
    return out

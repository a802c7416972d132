"""Helpers shared by every figure module: colours, critical-point styles, saving.

These are public (no leading underscore) so that ``plot.landscape``, ``plot.sweep``,
``plot.training`` and ``plot.curvature`` import them from here rather than from each other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["KIND_STYLE", "check_path", "colors", "cp_fields", "median_band", "save_figure"]

# Marker style for each critical-point kind (shared by every figure that marks critical points).
KIND_STYLE: dict[str, dict[str, Any]] = {
    "minimum": {"marker": "*", "color": "#2ca02c", "s": 170},
    "maximum": {"marker": "^", "color": "#d62728", "s": 90},
    "saddle": {"marker": "X", "color": "#ff7f0e", "s": 110},
    "degenerate": {"marker": "D", "color": "#7f7f7f", "s": 70},
    "not_critical": {"marker": ".", "color": "#bcbd22", "s": 50},
}


def colors(n: int) -> list:
    """``n`` distinct RGBA colours (tab10, or tab20 beyond ten)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def cp_fields(cp: Any) -> tuple[np.ndarray, str]:
    """``(x, kind)`` of a critical point given as a mapping or an object with ``x``/``kind``."""
    if isinstance(cp, Mapping):
        return np.atleast_1d(np.asarray(cp["x"], dtype=float)), str(cp["kind"])
    return np.atleast_1d(np.asarray(cp.x, dtype=float)), str(cp.kind)


def _formats() -> dict:
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def check_path(path: Any) -> str | None:
    """Validate a figure ``path`` before any work is done; return it as a ``str`` (or None).

    The file written is exactly this path: nothing is appended, so the name must end with an
    extension matplotlib can write (``.png``, ``.pdf``, ``.svg``, ...), and its parent folder
    must already exist (folders are never created silently).

    Raises:
      TypeError: ``path`` is not None, a ``str`` or an ``os.PathLike``.
      ValueError: no or unknown extension, or the parent folder does not exist.
    """
    if path is None:
        return None
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        raise TypeError("path must be a str or os.PathLike of str, got bytes")
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = _formats()
    if ext not in formats:
        raise ValueError(
            f"path must end with a figure extension ({', '.join('.' + e for e in sorted(formats))}"
            f"); got {path!r} (the file is written at exactly this path, nothing is appended)"
        )
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        raise ValueError(f"path={path!r}: parent folder {parent!r} does not exist "
                         "(create it first; figures never create folders)")
    return path


def median_band(ax, x: Any, y: Any, color: Any, label: str) -> None:
    """Median over seeds (rows of ``y``, ``[S, T]``) against ``x`` with the 25-75% band;
    seeds with a NaN/Inf anywhere are skipped (nothing is drawn when none is finite)."""
    y = np.asarray(y, float)
    with np.errstate(all="ignore"):
        ok = np.all(np.isfinite(y), axis=-1)
        if not ok.any():
            return
        y = y[ok]
        ax.plot(x, np.median(y, 0), color=color, lw=1.6, label=label)
        if len(y) > 1:
            ax.fill_between(x, np.quantile(y, 0.25, 0), np.quantile(y, 0.75, 0), color=color,
                            alpha=0.2, lw=0)


def save_figure(fig: Figure, path: str | os.PathLike | None, *, dpi: int = 120) -> Figure:
    """Save ``fig`` at exactly ``path`` (format from its extension) if ``path`` is given.

    Args:
      fig: the figure.
      path: file path (see :func:`check_path`), or None to skip saving.
      dpi: resolution for raster formats.

    Returns:
      ``fig`` itself, so calls can be chained; the file written is ``os.fspath(path)``.

    Raises:
      ValueError: naming ``path`` when its extension is unknown or its parent is missing.
    """
    path = check_path(path)
    if path is not None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig

"""Matplotlib figures from saved results (landscapes, sweeps, curvature).

Each function takes arrays or records and returns a :class:`matplotlib.figure.Figure`,
optionally saving it (``path=...``). Figures are created without ``pyplot``, so no display
is needed and no global figure state accumulates. Nothing heavy is computed here.

Example:
  >>> from jaxopt_lab import plot
  >>> fig = plot.escape_ecdf("runs/compare-saddle_xy-.../records.csv")  # doctest: +SKIP
  >>> fig.savefig("ecdf.png")  # doctest: +SKIP
"""

from jaxopt_lab.plot.curvature import curvature_heatmap, spectrum_plot
from jaxopt_lab.plot.landscape import contour, surface
from jaxopt_lab.plot.style import KIND_STYLE, check_path, save_figure
from jaxopt_lab.plot.sweep import escape_ecdf, escape_violin, load_records, success_heatmap
from jaxopt_lab.plot.training import dead_fraction_curves, gradient_profile, loss_curves

__all__ = [
    "KIND_STYLE",
    "check_path",
    "contour",
    "curvature_heatmap",
    "dead_fraction_curves",
    "escape_ecdf",
    "escape_violin",
    "gradient_profile",
    "load_records",
    "loss_curves",
    "save_figure",
    "spectrum_plot",
    "success_heatmap",
    "surface",
]

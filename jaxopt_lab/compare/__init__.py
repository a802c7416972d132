"""compare: the sweep engine (vmap over seeds x hyperparameters, scan over steps).

Public API:

* :func:`run` -> :class:`Results` (``records()``, ``to_csv``, ``meta``, ``trajectories``,
  ``hparams``, ``metrics``); :meth:`Results.load` reads a run directory back.
* :mod:`jaxopt_lab.compare.stats`: ``summarize``, ``wilson_interval``, ``quantile_inf``,
  ``median_inf``, ``iqr_inf``, ``bootstrap_median_ci``, ``logrank_test``,
  ``success_curve``, ``performance_profile``, ``profile_costs``.
* :func:`cache_info` / :func:`clear_cache` for the compiled-program cache.
"""

from jaxopt_lab.compare import stats
from jaxopt_lab.compare.engine import cache_info, clear_cache, run
from jaxopt_lab.compare.results import METRIC_NAMES, Results, read_csv
from jaxopt_lab.compare.stats import performance_profile, summarize

load = Results.load

__all__ = [
    "METRIC_NAMES",
    "Results",
    "cache_info",
    "clear_cache",
    "load",
    "performance_profile",
    "read_csv",
    "run",
    "stats",
    "summarize",
]

"""compare: the one sweep core and its front-ends, statistics and the run directory.

Public API:

* :func:`sweep` / :class:`Trial` (:mod:`~jaxopt_lab.compare.core`): any pure per-seed
  program vmapped over seeds x hyperparameters, one compile per optimizer family,
  chunked, sharded over devices, resumable.
* :func:`run` (:mod:`~jaxopt_lab.compare.landscape`): optimizers x seeds on an objective
  ``f(x)`` -> :class:`Results`.
* :func:`train` (:mod:`~jaxopt_lab.compare.training`): networks ``loss(params, batch)``
  trained from many seeds with every optimizer -> :class:`TrainResults`.
* :mod:`~jaxopt_lab.compare.steps`: the extra-argument contract of every optimizer update.
* :class:`Results` (``records()``, ``to_csv``, ``save``, ``load``), :func:`read_csv`;
  :mod:`~jaxopt_lab.compare.store`: the only writer and reader of run directories.
* :mod:`~jaxopt_lab.compare.stats`: ``summarize``, ``wilson_interval``, ``quantile_inf``,
  ``median_inf``, ``iqr_inf``, ``bootstrap_median_ci``, ``logrank_test``,
  ``success_curve``, ``performance_profile``, ``profile_costs``.
* :func:`cache_info` / :func:`clear_cache` for the compiled-program cache.
"""

from jaxopt_lab.compare import stats, steps, store
from jaxopt_lab.compare.cache import cache_info, clear_cache
from jaxopt_lab.compare.core import SweepOutput, Trial, sweep
from jaxopt_lab.compare.landscape import run
from jaxopt_lab.compare.results import METRIC_NAMES, Results, read_csv
from jaxopt_lab.compare.stats import performance_profile, summarize
from jaxopt_lab.compare.training import TrainResults, train

load = Results.load

__all__ = [
    "METRIC_NAMES",
    "Results",
    "SweepOutput",
    "TrainResults",
    "Trial",
    "cache_info",
    "clear_cache",
    "load",
    "performance_profile",
    "read_csv",
    "run",
    "stats",
    "steps",
    "store",
    "summarize",
    "sweep",
    "train",
]

"""continual: task sequences trained by the sweep core, and the scores of forgetting.

* :mod:`~jaxopt_lab.continual.scenarios`: task- / domain- / class-incremental scenarios
  (van de Ven & Tolias 2019) and :func:`make_sequence` (a task list as fixed-shape arrays).
* :mod:`~jaxopt_lab.continual.methods`: :data:`METHODS` (naive, joint, EWC separate /
  online with empirical / exact Fisher, GEM, A-GEM, replay, LwF, progressive networks) as
  compositions of ``transforms``, ``models`` and ``data`` pieces; :class:`Settings`.
* :mod:`~jaxopt_lab.continual.trial`: :func:`sequence_trial` (one seed's whole task
  sequence as a :class:`~jaxopt_lab.compare.Trial`) and :func:`run_sequence` (the sweep).
* :mod:`~jaxopt_lab.continual.metrics`: :func:`scores` (ACC, BWT, FWT, forgetting).

Example:
  >>> from jaxopt_lab import continual, data
  >>> tasks = data.split_tasks(data.load_digits())                      # doctest: +SKIP
  >>> seq = continual.make_sequence(tasks, "class")                     # doctest: +SKIP
  >>> out = continual.run_sequence(seq, continual.get_method("ewc"), continual.Settings(),
  ...                              num_seeds=5, key=0, strengths=[100.0])  # doctest: +SKIP
  >>> continual.scores(out["R"], out["r0"])["acc"]                      # doctest: +SKIP
"""

from jaxopt_lab.continual.methods import (
    METHODS,
    Method,
    Settings,
    get_method,
    memory_bytes,
    optimizer_entry,
)
from jaxopt_lab.continual.metrics import scores
from jaxopt_lab.continual.scenarios import SCENARIOS, TaskSequence, make_sequence, subsample
from jaxopt_lab.continual.trial import network, run_sequence, sequence_trial

__all__ = [
    "METHODS",
    "SCENARIOS",
    "Method",
    "Settings",
    "TaskSequence",
    "get_method",
    "make_sequence",
    "memory_bytes",
    "network",
    "optimizer_entry",
    "run_sequence",
    "scores",
    "sequence_trial",
    "subsample",
]

"""experiments: one module per reproduction, each with a frozen ``Config`` and ``run``.

Every experiment module defines a frozen dataclass ``Config`` with classmethods
``quick()`` (under a minute on 2 CPU cores, for CI) and ``full()``, and ``run(config,
out_dir=None) -> jaxopt_lab.compare.Results`` (``group_column="variant"``: per-seed
metrics ``[1, num_seeds]`` per variant incl. ``nonfinite``, curves over training, a
JSON-able ``summary`` of statistics over seeds with their intervals and
``"nonfinite_seeds": {variant: [seed indices]}``, and ``meta`` from
:func:`jaxopt_lab.compare.store.make_meta`). Training runs in the sweep core
(:func:`jaxopt_lab.compare.train`, :func:`~jaxopt_lab.compare.run`,
:func:`~jaxopt_lab.compare.sweep`): seed ``i`` is ``fold_in(jax.random.key(config.seed),
i)``, so seed ``i`` does not depend on how many seeds ran. With ``out_dir``, the run
directory (``records.csv``, ``metrics.npz``, ``curves.npz``, ``meta.json``, PNG
figures) is written by :meth:`~jaxopt_lab.compare.Results.save`, the only writer; read
it back with :func:`jaxopt_lab.compare.load` / :func:`~jaxopt_lab.compare.read_csv`.
Modules are imported lazily.

Example:
  >>> from jaxopt_lab import experiments
  >>> "explosion" in experiments.names()
  True
  >>> exp = experiments.get("vanishing")
  >>> results = exp.run(exp.Config.quick())  # doctest: +SKIP
  >>> results.summary["nonfinite_seeds"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Registered experiment modules (``jaxopt_lab.experiments.<name>``), imported on demand.
#: Later experiments (dead_units, instability, local_minima) are added here.
_EXPERIMENTS: tuple[str, ...] = (
    "saddle_escape",
    "explosion",
    "vanishing",
    "local_minima",
    "dead_units",
    "instability",
    "gan_mixtures",
    "gan_images",
    "dirac_gan",
    "continual",
    "edge_of_stability",
    "narrow_minima",
    "spectra",
    "landscape_slices",
    "recurrent_gradients",
)


def names() -> list[str]:
    """Names of the registered experiments, in registration order."""
    return list(_EXPERIMENTS)


def get(name: str) -> ModuleType:
    """Import and return the experiment module ``name``.

    Args:
      name: one of :func:`names`.

    Returns:
      The module, with ``Config`` (``quick()``/``full()``) and ``run(config, out_dir=None)``.

    Raises:
      ValueError: for an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str) or name not in _EXPERIMENTS:
        raise ValueError(f"experiment name must be one of {list(_EXPERIMENTS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["get", "names"]

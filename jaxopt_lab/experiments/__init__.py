"""experiments: one module per reproduction, each with a frozen ``Config`` and ``run``.

Every experiment module defines a frozen dataclass ``Config`` with classmethods
``quick()`` (seconds on a laptop CPU) and ``full()``, and ``run(config, out_dir=None)
-> dict`` (a summary plus arrays; with ``out_dir`` it writes a run directory with
``records.csv``, ``meta.json`` and PNG figures). Modules are imported lazily.

Example:
  >>> from jaxopt_lab import experiments
  >>> "explosion" in experiments.names()
  True
  >>> exp = experiments.get("vanishing")
  >>> summary = exp.run(exp.Config.quick())  # doctest: +SKIP
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
    "dirac_gan",
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

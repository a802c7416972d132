"""jaxopt_lab: a JAX laboratory for how optimization fails and what fixes it.

Subpackages are imported lazily (``jaxopt_lab.curvature`` loads on first use),
so importing the top-level package is cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "landscapes",
    "curvature",
    "transforms",
    "search",
    "compare",
    "health",
    "plot",
    "models",
    "data",
    "experiments",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

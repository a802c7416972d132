"""Loss-landscape zoo: analytic objectives ``f(x: [d]) -> scalar`` with verified catalogs.

``get(name, dim=None)`` returns a :class:`Landscape` (cached per name and dim);
``names()`` lists the registry. Constructors :func:`quadratic`, :func:`least_squares` and
:func:`deep_linear_scalar` build data-dependent landscapes. Critical-point catalogs live in
``catalogs.json``, generated and verified by ``scripts/build_catalogs.py`` with
:func:`jaxopt_lab.curvature.find_critical_points` and :func:`jaxopt_lab.curvature.classify`.

Example:
  >>> from jaxopt_lab import landscapes
  >>> L = landscapes.get("himmelblau")
  >>> len(L.critical_points), L.f_min
  (9, 0.0)
"""

from jaxopt_lab.landscapes import functions
from jaxopt_lab.landscapes.base import CriticalPoint, Landscape, load_catalog
from jaxopt_lab.landscapes.registry import (
    deep_linear_scalar,
    get,
    least_squares,
    names,
    quadratic,
    takes_dim,
)

__all__ = [
    "CriticalPoint",
    "Landscape",
    "deep_linear_scalar",
    "functions",
    "get",
    "least_squares",
    "load_catalog",
    "names",
    "quadratic",
    "takes_dim",
]

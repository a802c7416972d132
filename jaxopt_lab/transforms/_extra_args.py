"""The keyword extra arguments through which curvature reaches the second-order transforms.

:func:`~jaxopt_lab.transforms.hessian_free`, :func:`~jaxopt_lab.transforms.natural_gradient`,
:func:`~jaxopt_lab.transforms.trust_region` and
:func:`~jaxopt_lab.transforms.saddle_free_newton` return an
``optax.GradientTransformationExtraArgs`` whose ``update`` takes (names follow optax where
optax has one):

=============  ===========================================================
``value``      loss at ``params`` (scalar). Optional; computed with
               ``value_fn(params)`` when a transform needs it and it is absent.
``value_fn``   ``value_fn(params) -> scalar`` loss (same name as in
               ``optax.scale_by_zoom_linesearch``).
``hvp_fn``     ``hvp_fn(params, v) -> H(params) v`` (pytrees like ``params``).
``fvp_fn``     ``fvp_fn(params, v) -> F(params) v``: Fisher, empirical Fisher or
               Gauss-Newton matrix times ``v`` (natural gradient only).
=============  ===========================================================

:mod:`jaxopt_lab.curvature.operators` builds these closures.
"""

from __future__ import annotations

from typing import Any

__all__ = ["require_extra_arg"]


def require_extra_arg(name: str, value: Any, transform: str) -> Any:
    """Return ``value``; raise naming ``name`` when it is None (not passed).

    Raises:
      ValueError: ``value`` is None.
      TypeError: ``name`` ends in ``_fn`` and ``value`` is not callable.
    """
    if value is None:
        raise ValueError(
            f"{transform}.update requires the keyword argument {name}=...; see "
            "jaxopt_lab.transforms._extra_args for the extra-argument names and "
            "jaxopt_lab.curvature.operators for builders"
        )
    if name.endswith("_fn") and not callable(value):
        raise TypeError(
            f"{transform}.update: {name} must be callable, got {type(value).__name__}"
        )
    return value

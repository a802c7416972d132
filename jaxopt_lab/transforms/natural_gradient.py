"""Damped natural gradient as an optax gradient transformation.

:func:`natural_gradient` solves ``(F + lambda I) d = g`` by conjugate gradients on
curvature-vector products ``fvp_fn(params, v) -> F v`` (Fisher, empirical Fisher or
Gauss-Newton matrix; builders in :mod:`jaxopt_lab.curvature.operators`) passed as a
keyword extra argument of ``update`` (see :mod:`jaxopt_lab.transforms._extra_args`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_int_hparam, check_positive
from jaxopt_lab.curvature.solvers import conjugate_gradient
from jaxopt_lab.transforms._extra_args import require_extra_arg

__all__ = ["NaturalGradientState", "natural_gradient"]


class NaturalGradientState(NamedTuple):
    """State of :func:`natural_gradient`."""

    num_cg_iters: jax.Array  # [] int32, CG iterations of the last step


def natural_gradient(
    learning_rate: float = 1.0,
    *,
    damping: float = 1e-3,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> optax.GradientTransformationExtraArgs:
    """Natural gradient: update ``-learning_rate (F + lambda I)^{-1} g``, solved by CG.

    ``F`` is any positive semi-definite curvature matrix given through the extra
    argument ``fvp_fn(params, v) -> F v``: the Fisher information, the empirical
    Fisher (:func:`jaxopt_lab.curvature.empirical_fisher_fns`) or the generalised
    Gauss-Newton matrix (:func:`jaxopt_lab.curvature.gauss_newton_fns`), which equals the
    Fisher for exponential-family outputs with matching loss (Martens 2014). The damping
    makes the system definite.

    Args:
      learning_rate: step scale (> 0).
      damping: Tikhonov damping ``lambda >= 0``.
      max_iters: CG iteration cap (>= 1).
      tol: CG relative residual tolerance (>= 0).

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`NaturalGradientState`.

    References:
      Amari, 1998. Natural gradient works efficiently in learning.
      Martens, 2014. New insights and perspectives on the natural gradient method.
    """
    check_positive("learning_rate", learning_rate)
    check_positive("damping", damping, allow_zero=True)
    max_iters = check_int_hparam("max_iters", max_iters, minimum=1)
    check_positive("tol", tol, allow_zero=True)

    def init_fn(params):
        del params
        return NaturalGradientState(num_cg_iters=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, *, fvp_fn=None, **extra):
        del state, extra
        require_extra_arg("params", params, "natural_gradient")
        require_extra_arg("fvp_fn", fvp_fn, "natural_gradient")
        matvec = lambda v: optax.tree.add_scale(fvp_fn(params, v), damping, v)
        cg = conjugate_gradient(matvec, updates, max_iters=max_iters, tol=tol)
        u = optax.tree.cast_like(optax.tree.scale(-learning_rate, cg.x), updates)
        return u, NaturalGradientState(num_cg_iters=cg.num_iters)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

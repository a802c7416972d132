"""Hessian-free (truncated Newton) optimizer step as an optax gradient transformation.

:func:`hessian_free` solves the damped Newton system ``(H + lambda I) d = -g`` by
conjugate gradients on Hessian-vector products (Martens 2010), with optional
Levenberg-Marquardt adaptation of ``lambda``. The update is ``learning_rate * d``, so it
chains like ``optax.sgd``. Curvature arrives through the keyword extra arguments of
``update`` (``hvp_fn``, ``value_fn``, ``value``; see :mod:`jaxopt_lab.transforms._extra_args`),
built e.g. by :func:`jaxopt_lab.curvature.curvature_fns`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_int_hparam, check_positive, is_tracer
from jaxopt_lab.curvature.solvers import conjugate_gradient
from jaxopt_lab.transforms._extra_args import require_extra_arg

PyTree = Any

__all__ = ["HessianFreeState", "hessian_free"]


class HessianFreeState(NamedTuple):
    """State of :func:`hessian_free`."""

    damping: jax.Array  # [] current Tikhonov damping lambda (adapted when adapt_damping)
    ratio: jax.Array  # [] last reduction ratio rho (nan when not computed)
    num_cg_iters: jax.Array  # [] int32, CG iterations of the last step
    direction: PyTree  # like params: last CG solution d (warm start of the next solve)


def hessian_free(
    learning_rate: float = 1.0,
    *,
    damping: float = 1e-3,
    max_iters: int = 50,
    tol: float = 1e-5,
    adapt_damping: bool = False,
    damping_decrease: float = 2.0 / 3.0,
    damping_increase: float = 1.5,
    min_damping: float = 1e-8,
    warm_start: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Hessian-free (truncated) Newton: solve ``(H + lambda I) d = -g`` by CG on HVPs.

    The update is ``learning_rate * d``. CG stops at relative residual ``tol``,
    after ``max_iters`` iterations, or on a direction of non-positive curvature (the
    iterate so far is used; if that happens at the first iteration, ``d = -g``).

    With ``adapt_damping`` the Levenberg-Marquardt rule of Martens (2010) adapts
    ``lambda`` from the reduction ratio ``rho = (f(x + u) - f(x)) / (g^T u + u^T H u / 2)``
    of the update ``u`` (undamped quadratic model; one extra HVP and one ``value_fn``
    call): ``rho < 1/4 -> lambda *= damping_increase``, ``rho > 3/4 -> lambda *=
    damping_decrease``. The step is not rejected (Martens' rule), only the damping of
    the next step changes.

    ``warm_start = zeta > 0`` starts CG from ``zeta`` times the previous solution
    (Martens 2010 uses ``zeta = 0.95``): consecutive Newton systems are similar, so
    fewer CG iterations are needed; ``0`` starts from zero.

    Extra args of ``update``: ``hvp_fn`` (required); ``value_fn`` (required with
    ``adapt_damping``); ``value`` (optional, else ``value_fn(params)``).

    Args:
      learning_rate: scale of the Newton-like step (> 0).
      damping: Tikhonov damping ``lambda >= 0`` (initial value when adapted).
      max_iters: CG iteration cap (>= 1).
      tol: CG relative residual tolerance (>= 0).
      adapt_damping: enable the Levenberg-Marquardt damping rule.
      damping_decrease: factor (< 1) applied when ``rho > 3/4``.
      damping_increase: factor (> 1) applied when ``rho < 1/4``.
      min_damping: floor for the adapted damping.
      warm_start: CG initialisation decay ``zeta`` in ``[0, 1]``.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`HessianFreeState`.

    Example:
      >>> opt = hessian_free(1.0, damping=1e-4)
      >>> # updates, state = opt.update(g, state, params, **curvature_fns(loss, batch))

    References:
      Martens, 2010. Deep learning via Hessian-free optimization.
      Nocedal & Wright, 2006. Numerical Optimization (truncated Newton, chapter 7).
    """
    check_positive("learning_rate", learning_rate)
    check_positive("damping", damping, allow_zero=True)
    max_iters = check_int_hparam("max_iters", max_iters, minimum=1)
    check_positive("tol", tol, allow_zero=True)
    check_positive("damping_decrease", damping_decrease)
    check_positive("damping_increase", damping_increase)
    check_positive("min_damping", min_damping, allow_zero=True)
    check_positive("warm_start", warm_start, allow_zero=True)
    if not is_tracer(damping_decrease) and not float(damping_decrease) <= 1.0:
        raise ValueError(f"damping_decrease must be in (0, 1], got {damping_decrease!r}")
    if not is_tracer(damping_increase) and not float(damping_increase) >= 1.0:
        raise ValueError(f"damping_increase must be >= 1, got {damping_increase!r}")
    if not is_tracer(warm_start) and not float(warm_start) <= 1.0:
        raise ValueError(f"warm_start must be in [0, 1], got {warm_start!r}")
    use_warm_start = not (isinstance(warm_start, float | int) and warm_start == 0)

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return HessianFreeState(
            damping=jnp.asarray(damping, dtype),
            ratio=jnp.full([], jnp.nan, dtype),
            num_cg_iters=jnp.zeros([], jnp.int32),
            direction=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None, *, hvp_fn=None, value_fn=None, value=None, **extra):
        del extra
        require_extra_arg("params", params, "hessian_free")
        require_extra_arg("hvp_fn", hvp_fn, "hessian_free")
        if adapt_damping:
            require_extra_arg("value_fn", value_fn, "hessian_free")
        lam = state.damping if adapt_damping else jnp.asarray(damping, state.damping.dtype)
        g = updates
        matvec = lambda v: optax.tree.add_scale(hvp_fn(params, v), lam, v)
        x0 = optax.tree.scale(warm_start, state.direction) if use_warm_start else None
        neg_g = optax.tree.scale(-1.0, g)
        cg = conjugate_gradient(matvec, neg_g, x0=x0, max_iters=max_iters, tol=tol)
        first_neg = cg.negative_curvature & (cg.num_iters == 0)
        d = optax.tree.cast_like(optax.tree.where(first_neg, neg_g, cg.x), g)
        u = optax.tree.cast_like(optax.tree.scale(learning_rate, d), g)
        ratio, new_lam = state.ratio, state.damping
        if adapt_damping:
            f0 = value_fn(params) if value is None else value
            f1 = value_fn(optax.tree.add(params, u))
            predicted = optax.tree.vdot(g, u) + 0.5 * optax.tree.vdot(u, hvp_fn(params, u))
            ratio = jnp.where(
                predicted < 0, (f1 - f0) / jnp.where(predicted < 0, predicted, -1.0), jnp.nan
            )
            # non-finite f(x + u) counts as a failed step; at a stationary point
            # (predicted >= 0, ratio nan) the damping is kept.
            ratio = jnp.where(jnp.isnan(ratio) & (predicted < 0), -jnp.inf, ratio)
            ratio = ratio.astype(state.ratio.dtype)
            factor = jnp.where(
                ratio < 0.25, damping_increase, jnp.where(ratio > 0.75, damping_decrease, 1.0)
            )
            factor = jnp.where(jnp.isnan(ratio), 1.0, factor)
            new_lam = jnp.maximum(lam * factor, min_damping).astype(state.damping.dtype)
        new_state = HessianFreeState(
            damping=new_lam, ratio=ratio, num_cg_iters=cg.num_iters, direction=d
        )
        return u, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

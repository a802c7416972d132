"""Newton trust-region step (Steihaug-CG subproblem, ratio test) as an optax transformation.

:func:`trust_region` solves the trust-region subproblem with
:func:`jaxopt_lab.curvature.steihaug_cg` on Hessian-vector products and accepts or
rejects the step by the ratio of actual to predicted reduction (Nocedal & Wright 2006,
Algorithms 7.2 and 4.1). Curvature arrives through the keyword extra arguments of
``update`` (``hvp_fn``, ``value_fn``, ``value``; see :mod:`jaxopt_lab.transforms._extra_args`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_int_hparam, check_positive, is_tracer
from jaxopt_lab.curvature.solvers import steihaug_cg
from jaxopt_lab.transforms._extra_args import require_extra_arg

__all__ = ["TrustRegionState", "trust_region"]


class TrustRegionState(NamedTuple):
    """State of :func:`trust_region`."""

    radius: jax.Array  # [] trust-region radius Delta
    ratio: jax.Array  # [] last ratio rho = actual / predicted reduction
    accepted: jax.Array  # [] bool, last step accepted
    num_cg_iters: jax.Array  # [] int32, Steihaug-CG iterations of the last step


def trust_region(
    learning_rate: float = 1.0,
    *,
    initial_radius: float = 1.0,
    max_radius: float = 100.0,
    eta: float = 0.1,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> optax.GradientTransformationExtraArgs:
    """Newton trust-region step with a Steihaug-CG subproblem solver and a ratio test.

    Each update solves ``min_p g^T p + p^T H p / 2, ||p|| <= Delta`` approximately by
    :func:`steihaug_cg`, forms the candidate ``u = learning_rate * p`` and the ratio
    ``rho = (f(x) - f(x + u)) / (m(0) - m(u))`` of actual to predicted reduction
    (``value_fn`` evaluates the candidate). Nocedal & Wright (2006), Algorithm 4.1:
    ``rho < 1/4 -> Delta /= 4``; ``rho > 3/4`` and the step reached the boundary ->
    ``Delta = min(2 Delta, max_radius)``. The update is ``u`` when ``rho > eta`` and
    zero otherwise (rejected step), so an accepted step never increases ``f``
    when ``eta >= 0``. A non-finite ``f(x + u)`` is a rejection. At a stationary
    point (predicted reduction <= 0) the update is zero and the radius is kept.

    Extra args of ``update``: ``hvp_fn`` and ``value_fn`` (required); ``value``
    (optional, else ``value_fn(params)``).

    Args:
      learning_rate: scale of the step (1.0 is the textbook method).
      initial_radius: ``Delta_0 > 0``.
      max_radius: ``Delta_max >= initial_radius``.
      eta: acceptance threshold, ``0 <= eta < 1/4``.
      max_iters: Steihaug-CG iteration cap (>= 1).
      tol: Steihaug-CG relative residual tolerance.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`TrustRegionState`.

    References:
      Steihaug, 1983. The conjugate gradient method and trust regions in large scale
      optimization. Nocedal & Wright, 2006. Numerical Optimization, Algorithms 4.1, 7.2.
    """
    check_positive("learning_rate", learning_rate)
    check_positive("initial_radius", initial_radius)
    check_positive("max_radius", max_radius)
    check_positive("eta", eta, allow_zero=True)
    max_iters = check_int_hparam("max_iters", max_iters, minimum=1)
    check_positive("tol", tol, allow_zero=True)
    if not is_tracer(eta) and not float(eta) < 0.25:
        raise ValueError(f"eta must satisfy 0 <= eta < 0.25, got {eta!r}")
    if not (is_tracer(max_radius) or is_tracer(initial_radius)) and float(max_radius) < float(
        initial_radius
    ):
        raise ValueError(
            f"max_radius must be >= initial_radius, got {max_radius!r} < {initial_radius!r}"
        )

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return TrustRegionState(
            radius=jnp.asarray(initial_radius, dtype),
            ratio=jnp.full([], jnp.nan, dtype),
            accepted=jnp.zeros([], bool),
            num_cg_iters=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, hvp_fn=None, value_fn=None, value=None, **extra):
        del extra
        require_extra_arg("params", params, "trust_region")
        require_extra_arg("hvp_fn", hvp_fn, "trust_region")
        require_extra_arg("value_fn", value_fn, "trust_region")
        g = updates
        radius = state.radius
        matvec = lambda v: hvp_fn(params, v)
        sol = steihaug_cg(matvec, g, radius, max_iters=max_iters, tol=tol)
        u = optax.tree.cast_like(optax.tree.scale(learning_rate, sol.p), g)
        predicted = -(optax.tree.vdot(g, u) + 0.5 * optax.tree.vdot(u, matvec(u)))
        f0 = value_fn(params) if value is None else value
        f1 = value_fn(optax.tree.add(params, u))
        actual = f0 - f1
        stationary = ~(predicted > 0)
        rho = actual / jnp.where(stationary, 1.0, predicted)
        rho = jnp.where(jnp.isfinite(rho), rho, -jnp.inf)
        pnorm = optax.tree.norm(sol.p)
        at_boundary = pnorm >= 0.99 * radius
        new_radius = jnp.where(
            rho < 0.25,
            0.25 * radius,
            jnp.where((rho > 0.75) & at_boundary, jnp.minimum(2.0 * radius, max_radius), radius),
        )
        new_radius = jnp.where(stationary, radius, new_radius).astype(radius.dtype)
        accept = (rho > eta) & ~stationary
        out = optax.tree.where(accept, u, optax.tree.zeros_like(u))
        new_state = TrustRegionState(
            radius=new_radius,
            ratio=jnp.where(stationary, jnp.nan, rho).astype(state.ratio.dtype),
            accepted=accept,
            num_cg_iters=sol.num_iters,
        )
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

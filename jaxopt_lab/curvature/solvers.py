"""Krylov solvers on pytrees: conjugate gradients and Steihaug's trust-region CG.

Both run as one ``lax.while_loop`` on pytrees through a ``matvec`` closure (a Hessian-,
Gauss-Newton- or Fisher-vector product, say; see :mod:`jaxopt_lab.curvature.operators`),
so they work inside ``jit``/``vmap`` and their iteration cap may be traced. The
second-order transforms (:func:`jaxopt_lab.transforms.hessian_free`,
:func:`~jaxopt_lab.transforms.natural_gradient`, :func:`~jaxopt_lab.transforms.trust_region`)
are built on them. Iterates keep the dtypes of the right-hand side's leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import (
    check_callable,
    check_finite,
    check_int_hparam,
    check_positive,
    check_same_structure,
)

PyTree = Any


def check_matvec(matvec: Any, like: PyTree, like_name: str) -> None:
    """Raise unless ``matvec(like)`` traces to a pytree with ``like``'s structure and shapes."""
    check_callable("matvec", matvec)
    try:
        out = jax.eval_shape(matvec, like)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"matvec fails on a pytree shaped like {like_name} ({type(err).__name__}: {err})"
        ) from err
    check_same_structure(f"matvec({like_name})", out, like_name, like)

__all__ = ["CGResult", "SteihaugResult", "conjugate_gradient", "steihaug_cg"]


class CGResult(NamedTuple):
    """Result of :func:`conjugate_gradient`."""

    x: PyTree  # solution, same structure as b
    num_iters: jax.Array  # [] int32, CG iterations taken
    residual_norm: jax.Array  # [] ||b - A x||, recursively updated
    negative_curvature: jax.Array  # [] bool, stopped on p^T A p <= 0


def conjugate_gradient(
    matvec: Callable[[PyTree], PyTree],
    b: PyTree,
    *,
    x0: PyTree | None = None,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> CGResult:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` by conjugate gradients.

    Runs in one ``lax.while_loop`` on pytrees. Stops when ``||r|| <= tol * ||b||``
    (relative residual), after ``max_iters`` iterations, or when a search direction
    with non-positive curvature ``p^T A p <= 0`` is met (``A`` not positive definite;
    the current iterate is returned and ``negative_curvature`` is set). In exact
    arithmetic CG solves a ``d``-dimensional SPD system in at most ``d`` iterations.

    Args:
      matvec: ``v -> A v`` on pytrees shaped like ``b``.
      b: right-hand side (pytree of arrays).
      x0: initial guess (default zeros).
      max_iters: iteration cap (int >= 1; may be traced).
      tol: relative residual tolerance (>= 0).

    Returns:
      :class:`CGResult` ``(x, num_iters, residual_norm, negative_curvature)``.

    Example:
      >>> A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
      >>> r = conjugate_gradient(lambda v: A @ v, jnp.array([1.0, 1.0]), max_iters=2)

    References:
      Hestenes & Stiefel, 1952. Methods of conjugate gradients for solving linear systems.
    """
    max_iters = check_int_hparam("max_iters", max_iters, minimum=1)
    check_positive("tol", tol, allow_zero=True)
    check_finite("b", b)
    if x0 is not None:
        check_same_structure("x0", x0, "b", b)
        check_finite("x0", x0)
    check_matvec(matvec, b, "b")
    x = optax.tree.zeros_like(b) if x0 is None else x0
    r = b if x0 is None else optax.tree.cast_like(optax.tree.sub(b, matvec(x)), b)
    rr = optax.tree.vdot(r, r)
    threshold = tol * jnp.sqrt(optax.tree.vdot(b, b))

    def cond(carry):
        _, _, _, rr, k, neg = carry
        return (k < max_iters) & (jnp.sqrt(rr) > threshold) & ~neg

    def body(carry):
        x, r, p, rr, k, _ = carry
        ap = matvec(p)
        pap = optax.tree.vdot(p, ap)
        neg = ~(pap > 0)
        alpha = jnp.where(neg, 0.0, rr / jnp.where(neg, 1.0, pap))
        x_new = optax.tree.add_scale(x, alpha, p)
        r_new = optax.tree.add_scale(r, -alpha, ap)
        rr_new = optax.tree.vdot(r_new, r_new)
        beta = rr_new / jnp.where(rr > 0, rr, 1.0)
        p_new = optax.tree.add_scale(r_new, beta, p)
        # keep the loop carry's dtypes (a float32 scalar would promote bfloat16 leaves)
        x, r, p = optax.tree.cast_like(
            optax.tree.where(neg, (x, r, p), (x_new, r_new, p_new)), (x, r, p)
        )
        rr = jnp.where(neg, rr, rr_new)
        return x, r, p, rr, k + jnp.where(neg, 0, 1), neg

    init = (x, r, r, rr, jnp.zeros([], jnp.int32), jnp.zeros([], bool))
    x, _, _, rr, k, neg = jax.lax.while_loop(cond, body, init)
    return CGResult(x=x, num_iters=k, residual_norm=jnp.sqrt(rr), negative_curvature=neg)


class SteihaugResult(NamedTuple):
    """Result of :func:`steihaug_cg`."""

    p: PyTree  # step, same structure as g, ||p|| <= radius
    num_iters: jax.Array  # [] int32
    hit_boundary: jax.Array  # [] bool, ||p|| == radius (boundary or negative curvature)


def steihaug_cg(
    matvec: Callable[[PyTree], PyTree],
    g: PyTree,
    radius: jax.Array | float,
    *,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> SteihaugResult:
    """Approximately minimise ``g^T p + p^T B p / 2`` subject to ``||p|| <= radius``.

    CG-Steihaug (Nocedal & Wright 2006, Algorithm 7.2): CG iterations from ``p = 0``
    until the residual falls below ``tol * ||g||``, the iterate leaves the trust region,
    or a direction of non-positive curvature appears; in the last two cases the step
    follows the current direction to the boundary. ``B`` may be indefinite.

    Args:
      matvec: ``v -> B v`` on pytrees shaped like ``g``.
      g: gradient (pytree).
      radius: trust-region radius (> 0).
      max_iters: iteration cap (may be traced).
      tol: relative residual tolerance.

    Returns:
      :class:`SteihaugResult` ``(p, num_iters, hit_boundary)``.

    References:
      Steihaug, 1983. The conjugate gradient method and trust regions in large scale
      optimization. Nocedal & Wright, 2006. Numerical Optimization, Algorithm 7.2.
    """
    max_iters = check_int_hparam("max_iters", max_iters, minimum=1)
    check_positive("radius", radius)
    check_positive("tol", tol, allow_zero=True)
    check_finite("g", g)
    check_matvec(matvec, g, "g")
    radius = jnp.asarray(radius, jnp.result_type(*jax.tree.leaves(g)))
    z = optax.tree.zeros_like(g)
    r = g
    d = optax.tree.scale(-1.0, g)
    rr = optax.tree.vdot(r, r)
    threshold = tol * jnp.sqrt(rr)

    def to_boundary(z, d):
        # tau >= 0 with ||z + tau d|| = radius
        zd, dd, zz = optax.tree.vdot(z, d), optax.tree.vdot(d, d), optax.tree.vdot(z, z)
        dd = jnp.where(dd > 0, dd, 1.0)
        disc = jnp.maximum(zd * zd - dd * (zz - radius**2), 0.0)
        tau = (-zd + jnp.sqrt(disc)) / dd
        return optax.tree.add_scale(z, tau, d)

    def cond(carry):
        _, _, _, rr, k, done, _ = carry
        return (k < max_iters) & ~done & (jnp.sqrt(rr) > threshold)

    def body(carry):
        z, r, d, rr, k, _, _ = carry
        bd = matvec(d)
        dbd = optax.tree.vdot(d, bd)
        neg = ~(dbd > 0)
        alpha = rr / jnp.where(neg, 1.0, dbd)
        z_new = optax.tree.add_scale(z, alpha, d)
        outside = optax.tree.norm(z_new) >= radius
        boundary = neg | outside
        z_b = to_boundary(z, d)
        r_new = optax.tree.add_scale(r, alpha, bd)
        rr_new = optax.tree.vdot(r_new, r_new)
        beta = rr_new / jnp.where(rr > 0, rr, 1.0)
        d_new = optax.tree.add_scale(optax.tree.scale(-1.0, r_new), beta, d)
        # keep the loop carry's dtypes (a float32 scalar would promote bfloat16 leaves)
        z, r, d = optax.tree.cast_like(
            (
                optax.tree.where(boundary, z_b, z_new),
                optax.tree.where(boundary, r, r_new),
                optax.tree.where(boundary, d, d_new),
            ),
            (z, r, d),
        )
        rr = jnp.where(boundary, rr, rr_new)
        return z, r, d, rr, k + 1, boundary, boundary

    init = (z, r, d, rr, jnp.zeros([], jnp.int32), jnp.zeros([], bool), jnp.zeros([], bool))
    z, _, _, _, k, _, hit = jax.lax.while_loop(cond, body, init)
    return SteihaugResult(p=z, num_iters=k, hit_boundary=hit)

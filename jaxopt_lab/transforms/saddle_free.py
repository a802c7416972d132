"""Saddle-free Newton in a Lanczos subspace as an optax gradient transformation.

:func:`saddle_free_newton` rescales the gradient by ``1 / |lambda_i|`` in the Ritz
directions of a Krylov subspace of the Hessian (Dauphin et al. 2014), so directions of
negative curvature are descended instead of attracting the iterate as in Newton's
method. The Hessian arrives as the keyword extra argument ``hvp_fn`` of ``update`` (see
:mod:`jaxopt_lab.transforms._extra_args`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import as_key, check_choice, check_int_hparam, check_positive
from jaxopt_lab.curvature.lanczos import lanczos, tridiagonal_eigh
from jaxopt_lab.transforms._extra_args import require_extra_arg

__all__ = ["SaddleFreeState", "saddle_free_newton"]


class SaddleFreeState(NamedTuple):
    """State of :func:`saddle_free_newton`."""

    key: jax.Array  # [] typed PRNG key (key<fry>), used by krylov_start="random"
    min_eigenvalue: jax.Array  # [] smallest Ritz value of the last step
    max_eigenvalue: jax.Array  # [] largest Ritz value of the last step


def saddle_free_newton(
    learning_rate: float = 1.0,
    *,
    num_iters: int = 10,
    damping: float = 1e-4,
    krylov_start: str = "gradient",
    outside_scale: float | None = None,
    negative_curvature_step: float = 0.0,
    key: Any,
) -> optax.GradientTransformationExtraArgs:
    """Saddle-free Newton in a Krylov subspace: ``u = -lr V (|Lambda| + delta)^{-1} V^T g``.

    Builds ``m = min(num_iters, n)`` Lanczos vectors of the Hessian ``H`` (through
    ``hvp_fn``), eigendecomposes the tridiagonal matrix (``tridiagonal_eigh``) into
    Ritz values ``Lambda`` and Ritz vectors ``V`` (``[n, m]``) and rescales the
    gradient by ``1 / (|lambda_i| + damping)`` in each Ritz direction. Directions of
    negative curvature are thus *descended* (the sign of the Newton step flips there)
    and Newton's attraction to saddles disappears. On a positive-definite quadratic
    with ``m = n``, ``damping = 0`` and ``learning_rate = 1`` the update equals the
    Newton step ``-H^{-1} g``.

    The gradient component outside the subspace, ``g_perp = g - V V^T g``, is
    followed as a plain gradient step scaled by ``outside_scale`` (default ``None``:
    ``1 / (max_i |lambda_i| + damping)``, i.e. gradient descent with step ``1/L`` using
    the largest Ritz value as curvature bound). With ``krylov_start="gradient"`` the
    Lanczos start vector is ``g`` itself, so ``g`` lies in the subspace and
    ``g_perp ~ 0``; with ``krylov_start="random"`` (key in the state) the subspace
    targets extreme eigenvalues independently of ``g`` (useful exactly at a saddle,
    where ``g`` has no component along the escape direction) and ``g_perp`` matters.

    On ``f = x^2 - y^2`` one unit step doubles ``|y|`` (``y <- y + |y|``), so from
    ``|y| = 1e-3`` the pure method needs 10 steps to reach ``|y| > 1``. The optional
    ``negative_curvature_step = r > 0`` (an extension after More & Sorensen 1979,
    not part of Dauphin et al.) adds a step of length ``r`` along the Ritz vector of
    the most negative Ritz value (when it is ``< -damping``), signed to descend
    (``v^T g <= 0``); it escapes in 2 steps with ``r = 0.5``.

    Extra args of ``update``: ``hvp_fn`` (required).

    Args:
      learning_rate: scales the whole update (> 0).
      num_iters: Lanczos iterations / subspace dimension (>= 1; static: with
        ``optax.inject_hyperparams`` pass ``static_args=("num_iters",)``).
      damping: ``delta >= 0`` added to ``|lambda_i|``.
      krylov_start: ``"gradient"`` or ``"random"``.
      outside_scale: step for ``g_perp`` (``>= 0``) or ``None`` for ``1/max|lambda|``.
      negative_curvature_step: length of the optional negative-curvature step (>= 0).
      key: typed key (``jax.random.key``), raw ``uint32[2]`` key or int seed; required (no
        hidden default). Draws the random Krylov start (``krylov_start="random"``) and
        Lanczos breakdown restarts; kept in the state, so sweeps can fold a seed into it.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`SaddleFreeState`.

    References:
      Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio, 2014. Identifying and attacking
      the saddle point problem in high-dimensional non-convex optimization.
      Lanczos, 1950. An iteration method for the solution of the eigenvalue problem of
      linear differential and integral operators.
      More & Sorensen, 1979. On the use of directions of negative curvature in a modified
      Newton method.
    """
    check_positive("learning_rate", learning_rate)
    num_iters = check_int_hparam("num_iters", num_iters, minimum=1, allow_traced=False)
    check_positive("damping", damping, allow_zero=True)
    check_choice("krylov_start", krylov_start, ("gradient", "random"))
    if outside_scale is not None:
        check_positive("outside_scale", outside_scale, allow_zero=True)
    check_positive("negative_curvature_step", negative_curvature_step, allow_zero=True)
    key = as_key("key", key)

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return SaddleFreeState(
            key=key, min_eigenvalue=jnp.zeros([], dtype), max_eigenvalue=jnp.zeros([], dtype)
        )

    def update_fn(updates, state, params=None, *, hvp_fn=None, **extra):
        del extra
        require_extra_arg("params", params, "saddle_free_newton")
        require_extra_arg("hvp_fn", hvp_fn, "saddle_free_newton")
        g, unravel = ravel_pytree(updates)
        n = g.shape[0]
        m = min(num_iters, n)
        dtype = g.dtype
        matvec = lambda v: ravel_pytree(hvp_fn(params, unravel(v.astype(dtype))))[0]
        new_key, sub = jax.random.split(state.key)
        if krylov_start == "random":
            v0 = jax.random.normal(sub, (n,), dtype)
        else:
            gnorm = jnp.linalg.norm(g)
            # At an exact critical point fall back to a fixed direction (the step is 0).
            v0 = jnp.where(gnorm > 0, g, jnp.ones_like(g))
        v0 = v0 / jnp.linalg.norm(v0)
        res = lanczos(matvec, v0, m, key=jax.random.fold_in(sub, 1))
        evals, evecs = tridiagonal_eigh(res.alphas, res.betas)
        evals = jnp.asarray(evals, dtype)
        ritz = jnp.asarray(res.basis, dtype).T @ jnp.asarray(evecs, dtype)  # [n, m]
        # Lanczos breakdown (invariant subspace) can leave null or NaN basis vectors:
        # keep only finite, unit-norm Ritz vectors.
        norms = jnp.linalg.norm(ritz, axis=0)
        valid = jnp.isfinite(norms) & (jnp.abs(norms - 1.0) < 1e-2) & jnp.isfinite(evals)
        ritz = jnp.where(valid[None, :], ritz, 0.0)
        evals = jnp.where(valid, evals, 0.0)
        coeff = ritz.T @ g  # [m]
        scale = 1.0 / (jnp.abs(evals) + damping)
        scale = jnp.where(valid & jnp.isfinite(scale), scale, 0.0)
        step = -(ritz @ (coeff * scale))
        g_perp = g - ritz @ coeff
        if outside_scale is None:
            lmax = jnp.max(jnp.where(valid, jnp.abs(evals), 0.0)) + damping
            o_scale = jnp.where(lmax > 0, 1.0 / lmax, 0.0)
        else:
            o_scale = outside_scale
        step = step - o_scale * g_perp
        big = jnp.finfo(dtype).max
        lam_min = jnp.min(jnp.where(valid, evals, big))
        lam_max = jnp.max(jnp.where(valid, evals, -big))
        if not (isinstance(negative_curvature_step, float | int) and negative_curvature_step == 0):
            i = jnp.argmin(jnp.where(valid, evals, big))
            v = ritz[:, i]
            sign = jnp.where(jnp.vdot(v, g) > 0, -1.0, 1.0)
            use = lam_min < -damping
            step = step + jnp.where(use, negative_curvature_step * sign, 0.0) * v
        u = unravel((learning_rate * step).astype(dtype))
        new_state = SaddleFreeState(
            key=new_key,
            min_eigenvalue=lam_min.astype(state.min_eigenvalue.dtype),
            max_eigenvalue=lam_max.astype(state.max_eigenvalue.dtype),
        )
        return u, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

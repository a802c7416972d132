"""Stochastic Hessian trace estimation: Hutchinson and Hutch++ (probes vmapped)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import (
    as_key,
    check_callable,
    check_choice,
    check_int,
    check_params,
    check_scalar_function,
)
from jaxopt_lab.curvature.hvp import hvp

__all__ = ["trace", "trace_matvec"]

PyTree = Any
_METHODS = ("hutchinson", "hutch++")


def _rademacher(key, shape, dtype):
    return jax.random.rademacher(key, shape, dtype=dtype)


def _hutchinson(matmat, key, n, dtype, num_probes):
    z = _rademacher(key, (num_probes, n), dtype)
    samples = jnp.sum(z * matmat(z), axis=1)
    est = jnp.mean(samples)
    se = jnp.std(samples, ddof=1) / jnp.sqrt(num_probes)
    return est, se


def _hutchpp(matmat, key, n, dtype, num_probes):
    # Meyer et al. (2021), Algorithm 1: num_probes = 2 s + g matvecs in total.
    s = num_probes // 3
    g = num_probes - 2 * s
    k_s, k_g = jax.random.split(key)
    sketch = _rademacher(k_s, (s, n), dtype)
    q, _ = jnp.linalg.qr(matmat(sketch).T)  # [n, s] orthonormal range basis
    q = q.T  # [s, n]
    low_rank = jnp.sum(q * matmat(q))  # trace(Q^T A Q)
    z = _rademacher(k_g, (g, n), dtype)
    z = z - (z @ q.T) @ q  # (I - Q Q^T) z
    samples = jnp.sum(z * matmat(z), axis=1)
    est = low_rank + jnp.mean(samples)
    se = jnp.std(samples, ddof=1) / jnp.sqrt(g)
    return est, se


def _trace_core(matvec, key, n, dtype, num_probes, method):
    matmat = jax.vmap(matvec)
    if method == "hutchinson":
        return _hutchinson(matmat, key, n, dtype, num_probes)
    return _hutchpp(matmat, key, n, dtype, num_probes)


def _validate(num_probes, method, dim):
    check_choice("method", method, _METHODS)
    minimum = 2 if method == "hutchinson" else 6
    num_probes = check_int("num_probes", num_probes, minimum=minimum)
    if method == "hutch++" and num_probes // 3 > dim:
        raise ValueError(
            f"num_probes // 3 = {num_probes // 3} exceeds the dimension {dim} for hutch++"
        )
    return num_probes


def trace_matvec(
    matvec: Callable[[jax.Array], jax.Array],
    dim: int,
    *,
    key: jax.Array,
    num_probes: int = 30,
    method: str = "hutchinson",
    dtype: Any = jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """Trace of a symmetric operator given as a flat, vmappable ``matvec`` (traceable).

    See :func:`trace` for the estimators; this is the matrix-free core.
    """
    dim = check_int("dim", dim, minimum=1)
    num_probes = _validate(num_probes, method, dim)
    return _trace_core(matvec, key, dim, dtype, num_probes, method)


@functools.partial(jax.jit, static_argnames=("f", "num_probes", "method"))
def _trace_jit(f, x, args, key, *, num_probes, method):
    flat, unravel = ravel_pytree(x)
    matvec = lambda v: ravel_pytree(hvp(f, x, unravel(v), *args))[0]
    return _trace_core(matvec, key, flat.shape[0], flat.dtype, num_probes, method)


def trace(
    f: Callable[..., jax.Array],
    x: PyTree,
    *args: Any,
    key: jax.Array,
    num_probes: int = 30,
    method: str = "hutchinson",
) -> tuple[jax.Array, jax.Array]:
    """Estimate ``tr(H)`` of the Hessian of ``f`` at ``x`` from HVPs with random probes.

    "hutchinson": mean of ``z^T H z`` over ``num_probes`` Rademacher probes ``z``;
    standard error = sample std / sqrt(num_probes).

    "hutch++": spends a third of the probes on a sketch ``S``, takes an orthonormal
    basis ``Q`` of ``H S`` (one third more HVPs for ``tr(Q^T H Q)``, exact), and
    the last third (plus remainder) on Hutchinson for the deflated rest
    ``(I - QQ^T) H (I - QQ^T)``. Much lower variance when a few eigenvalues
    dominate. The standard error is that of the Hutchinson part, conditional on
    ``Q``. Uses exactly ``num_probes`` HVPs, like Hutchinson.

    All probes are vmapped (``num_probes`` HVPs in one batched call); jitted and
    cached on ``(f, shapes, num_probes, method)``.

    Args:
      f: scalar function ``f(x, *args)``.
      x: parameters (pytree).
      *args: extra arguments of ``f``.
      key: PRNG key for the probes.
      num_probes: number of HVPs (>= 2 for hutchinson, >= 6 for hutch++).
      method: "hutchinson" or "hutch++".

    Returns:
      ``(estimate, standard_error)`` scalars.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda x: 0.5 * jnp.sum(jnp.arange(1.0, 5.0) * x**2)
      >>> est, se = trace(f, jnp.zeros(4), key=jax.random.key(0))  # est ~ 10

    References:
      Hutchinson, 1989. A stochastic estimator of the trace of the influence matrix
      for Laplacian smoothing splines.
      Meyer, Musco, Musco, Woodruff, 2021. Hutch++: Optimal stochastic trace
      estimation.
    """
    check_callable("f", f)
    dim = check_params("x", x)
    num_probes = _validate(num_probes, method, dim)
    key = as_key("key", key)
    check_scalar_function(f, x, args)
    return _trace_jit(f, x, args, key, num_probes=num_probes, method=method)

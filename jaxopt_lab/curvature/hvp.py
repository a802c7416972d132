"""Hessian-vector products and dense Hessians on pytrees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import (
    check_callable,
    check_params,
    check_same_dtypes,
    check_same_structure,
    check_scalar_function,
    is_tracer,
)

PyTree = Any


def hvp(f: Callable[..., jax.Array], x: PyTree, v: PyTree, *args: Any) -> PyTree:
    """Hessian-vector product ``H(x) v`` of a scalar function, forward-over-reverse.

    Works on any pytree ``x`` (e.g. flax NNX parameter state) with ``v`` of the same
    structure; extra ``args`` (a batch, say) are passed through to ``f`` and not
    differentiated. Cost: about 2-3 gradient evaluations, memory about 2x a gradient.

    Args:
      f: scalar function ``f(x, *args)``.
      x: point, any pytree of arrays.
      v: direction, same structure as ``x``.
      *args: extra arguments of ``f`` (held fixed).

    Returns:
      ``H v``, same structure as ``x``.

    Raises:
      ValueError: ``v`` does not match ``x`` (structure or leaf shapes), ``x`` is empty,
        or a concrete ``x`` holds NaN/Inf (values are not checked under ``jit``).
      TypeError: ``x`` has a non-floating leaf, or ``v`` has other dtypes than ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> hvp(lambda x: jnp.sum(x**3), jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]))
      Array([6., 0.], dtype=float32)

    References:
      Pearlmutter, 1994. Fast exact multiplication by the Hessian.
    """
    check_callable("f", f)
    check_same_structure("v", v, "x", x)
    check_params("x", x)  # float leaves; values (finite) skipped for tracers (inside jit)
    check_same_dtypes("v", v, "x", x)
    if not any(is_tracer(leaf) for leaf in jax.tree_util.tree_leaves((x, v, args))):
        check_scalar_function(f, x, args)  # eager calls only: no extra trace inside jit
    grad_f = lambda p: jax.grad(f)(p, *args)
    return jax.jvp(grad_f, (x,), (v,))[1]


def hessian(f: Callable[..., jax.Array], x: PyTree, *args: Any) -> jax.Array:
    """Dense Hessian of ``f`` at ``x`` as a ``[n, n]`` matrix over the flattened ``x``.

    For small problems and for oracles in tests: memory is O(n^2). The matrix is
    built by vmapping :func:`hvp` over the identity and symmetrised.

    Args:
      f: scalar function ``f(x, *args)``.
      x: point, any pytree of arrays (flattened with ``ravel_pytree``).
      *args: extra arguments of ``f``.

    Returns:
      ``[n, n]`` symmetric array, ``n`` the total number of entries of ``x``.
    """
    check_callable("f", f)
    check_params("x", x)
    check_scalar_function(f, x, args)
    flat, unravel = ravel_pytree(x)
    flat_f = lambda z: f(unravel(z), *args)
    eye = jnp.eye(flat.shape[0], dtype=flat.dtype)
    h = jax.vmap(lambda e: hvp(flat_f, flat, e))(eye)
    return 0.5 * (h + h.T)

"""Curvature-vector products as closures for the second-order transforms.

Each builder returns a dict of the keyword extra arguments that the second-order
transforms of :mod:`jaxopt_lab.transforms` take in ``update`` (``value_fn``, ``hvp_fn``,
``fvp_fn``; see :mod:`jaxopt_lab.transforms._extra_args`), so a step reads
``opt.update(grads, state, params, **curvature_fns(loss, batch))``:

* :func:`curvature_fns`        -- value and Hessian-vector product of ``loss(params, batch)``
  (Pearlmutter 1994).
* :func:`gauss_newton_fns`     -- generalised Gauss-Newton product ``J^T H_out J v`` from
  ``apply(params, x)`` and a convex output loss (Schraudolph 2002).
* :func:`empirical_fisher_fns` -- ``(1/N) sum_i g_i g_i^T v`` from per-example losses.

Build them *inside* your jitted step so the batch is a traced argument, not a constant
folded into the program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_callable
from jaxopt_lab.curvature.hvp import hvp

PyTree = Any

__all__ = ["curvature_fns", "empirical_fisher_fns", "gauss_newton_fns"]


def curvature_fns(loss: Callable[..., jax.Array], batch: Any) -> dict[str, Callable]:
    """Build ``value_fn`` and ``hvp_fn`` extra arguments from ``loss(params, batch)``.

    Call this inside your jitted step, so ``batch`` is a traced argument.

    Args:
      loss: scalar ``loss(params, batch)``.
      batch: the data, held fixed.

    Returns:
      ``dict(value_fn=params -> loss, hvp_fn=(params, v) -> H v)`` ready to be
      splatted into ``opt.update(grads, state, params, **fns)``.

    Example:
      >>> fns = curvature_fns(lambda p, b: jnp.sum((p - b) ** 2), jnp.ones(3))
      >>> fns["hvp_fn"](jnp.zeros(3), jnp.ones(3))
      Array([2., 2., 2.], dtype=float32)

    References:
      Pearlmutter, 1994. Fast exact multiplication by the Hessian.
    """
    check_callable("loss", loss)

    def value_fn(params):
        return loss(params, batch)

    def hvp_fn(params, v):
        return hvp(loss, params, v, batch)

    return {"value_fn": value_fn, "hvp_fn": hvp_fn}


def gauss_newton_fns(
    apply: Callable[[PyTree, Any], jax.Array],
    output_loss: Callable[[jax.Array, Any], jax.Array],
    batch: tuple[Any, Any],
) -> dict[str, Callable]:
    """Build ``value_fn`` and a Gauss-Newton-vector product ``fvp_fn = J^T H_out J v``.

    With ``z = apply(params, x)`` the network outputs and ``L = output_loss(z, y)``
    convex in ``z``, the generalised Gauss-Newton matrix ``G = J^T H_out J`` (``J``
    the Jacobian of ``z`` in ``params``, ``H_out`` the Hessian of ``L`` in ``z``) is
    positive semi-definite. ``G v`` costs one forward-mode JVP, one output-space HVP
    and one VJP (Schraudolph 2002). For squared error and softmax cross-entropy, ``G``
    equals the Fisher information matrix (Martens 2014).

    Args:
      apply: ``apply(params, x) -> outputs``.
      output_loss: ``output_loss(outputs, y) -> scalar``, convex in ``outputs``.
      batch: ``(x, y)``.

    Returns:
      ``dict(value_fn=..., fvp_fn=(params, v) -> G v)``.

    References:
      Schraudolph, 2002. Fast curvature matrix-vector products for second-order
      gradient descent. Martens, 2014. New insights and perspectives on the natural
      gradient method.
    """
    check_callable("apply", apply)
    check_callable("output_loss", output_loss)
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(f"batch must be a pair (x, y), got {type(batch).__name__}")
    x, y = batch

    def value_fn(params):
        return output_loss(apply(params, x), y)

    def fvp_fn(params, v):
        f = lambda p: apply(p, x)
        z, jv = jax.jvp(f, (params,), (v,))
        g_out = lambda zz: jax.grad(output_loss)(zz, y)
        hjv = jax.jvp(g_out, (z,), (jv,))[1]
        _, vjp = jax.vjp(f, params)
        return vjp(hjv)[0]

    return {"value_fn": value_fn, "fvp_fn": fvp_fn}


def empirical_fisher_fns(
    per_example_loss: Callable[[PyTree, Any], jax.Array], batch: Any
) -> dict[str, Callable]:
    """Build ``value_fn`` (mean loss) and an empirical-Fisher-vector product ``fvp_fn``.

    ``F v = (1/N) sum_i g_i (g_i^T v)`` with ``g_i`` the gradient of the ``i``-th
    example's loss, computed as ``J^T (J v) / N`` with ``J`` the Jacobian of the
    ``[N]`` vector of per-example losses (one JVP and one VJP; no per-example
    gradients are stored). Martens (2014) discusses why the empirical Fisher is a
    cruder curvature model than the true Fisher / Gauss-Newton matrix.

    Args:
      per_example_loss: ``per_example_loss(params, batch) -> [N]`` losses.
      batch: the data.

    Returns:
      ``dict(value_fn=params -> mean loss, fvp_fn=(params, v) -> F v)``.

    References:
      Amari, 1998. Natural gradient works efficiently in learning. Martens, 2014. New
      insights and perspectives on the natural gradient method.
    """
    check_callable("per_example_loss", per_example_loss)

    def value_fn(params):
        return jnp.mean(per_example_loss(params, batch))

    def fvp_fn(params, v):
        f = lambda p: per_example_loss(p, batch)
        losses, jv = jax.jvp(f, (params,), (v,))
        _, vjp = jax.vjp(f, params)
        return vjp(jv / losses.shape[0])[0]

    return {"value_fn": value_fn, "fvp_fn": fvp_fn}

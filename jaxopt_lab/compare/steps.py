"""The one optimizer-update contract of every front-end of the sweep core.

Every optax transform of the lab is updated through :func:`update`, which passes the
same keyword extra arguments everywhere to a ``GradientTransformationExtraArgs`` (and
nothing to a plain ``GradientTransformation``):

* ``value``: the loss at ``params`` (this step's batch);
* ``value_fn(params)``: the loss on this step's batch at other params;
* ``grad_fn(params)``: its gradient;
* ``hvp_fn(params, v)``: Hessian-vector product (forward-over-reverse);
* ``fvp_fn(params, v)``: generalised Gauss-Newton (= Fisher for softmax cross-entropy
  and squared error) vector product, when the model gives outputs (network sweeps with
  an ``output_fn`` and ``output_loss``).

So a rollback guard, EWC, a Newton-CG, trust-region or natural-gradient step runs
unchanged on a landscape sweep, a network sweep or a task sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax


def objective_fns(f: Callable[[jax.Array], jax.Array]) -> dict[str, Callable]:
    """Extra arguments for an objective ``f(x) -> scalar`` (no outputs: no ``fvp_fn``)."""
    from jaxopt_lab.curvature import hvp

    return {"value_fn": f, "grad_fn": jax.grad(f), "hvp_fn": lambda p, v: hvp(f, p, v)}


def loss_fns(loss: Callable[[Any, Any], jax.Array], batch: Any, *,
             output_fn: Callable[[Any, Any], Any] | None = None,
             output_loss: Callable[[Any, Any], jax.Array] | None = None) -> dict[str, Callable]:
    """Extra arguments for ``loss(params, batch)`` on one batch.

    Args:
      loss: scalar ``loss(params, batch)``.
      batch: this step's batch.
      output_fn: ``output_fn(params, x) -> outputs`` of the model (``batch = (x, y)``),
        with ``output_loss(outputs, y) -> scalar`` convex in the outputs: then
        ``fvp_fn`` is the Gauss-Newton product ``J^T H_out J v`` (Schraudolph 2002).

    Returns:
      ``dict(value_fn, grad_fn, hvp_fn[, fvp_fn])``.
    """
    from jaxopt_lab.curvature import hvp

    def value_fn(params):
        return loss(params, batch)

    fns = {"value_fn": value_fn, "grad_fn": jax.grad(value_fn),
           "hvp_fn": lambda p, v: hvp(loss, p, v, batch)}
    if output_fn is not None and output_loss is not None:
        from jaxopt_lab.curvature import gauss_newton_fns

        fns["fvp_fn"] = gauss_newton_fns(output_fn, output_loss, batch)["fvp_fn"]
    return fns


def update(opt: optax.GradientTransformation, grads: Any, state: Any, params: Any, *,
           value: jax.Array, fns: dict[str, Callable]) -> tuple[Any, Any]:
    """``opt.update`` with the lab's extra arguments for a ``GradientTransformationExtraArgs``
    (``value`` plus ``fns``), the plain three-argument call otherwise."""
    if isinstance(opt, optax.GradientTransformationExtraArgs):
        return opt.update(grads, state, params, value=value, **fns)
    return opt.update(grads, state, params)


__all__ = ["loss_fns", "objective_fns", "update"]

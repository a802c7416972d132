"""Gradient monitor: record gradient / update / parameter norms in the optimizer state."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["GradientMonitorState", "gradient_monitor"]


class GradientMonitorState(NamedTuple):
    """State of :func:`gradient_monitor` (values from the latest update).

    Attributes:
        count: ``[]`` int32, updates seen.
        grad_norm: ``[]`` float32, global L2 norm of the incoming updates (gradients).
        leaf_grad_norms: pytree like params with ``[]`` float32 leaves: per-leaf norms.
        update_norm: ``[]`` float32, global norm of the outgoing update.
        param_norm: ``[]`` float32, global norm of ``params`` (NaN when not given).
        update_ratio: ``[]`` float32, ``update_norm / param_norm`` (inf if params are 0).
        inner_state: state of the wrapped transform (``optax.EmptyState()`` if none).
    """

    count: jax.Array
    grad_norm: jax.Array
    leaf_grad_norms: Any
    update_norm: jax.Array
    param_norm: jax.Array
    update_ratio: jax.Array
    inner_state: Any


def _norm(x) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))))


def gradient_monitor(
    inner: optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Record norms into the state, inside jit, without host synchronisation.

    Two ways to use it:

    * ``gradient_monitor(inner)`` WRAPS an optimizer: it sees the raw gradients going
      in and the update coming out, so ``grad_norm``/``leaf_grad_norms`` are gradient
      norms and ``update_norm``/``update_ratio`` refer to the real parameter step.
    * ``gradient_monitor()`` is a pass-through: the incoming updates are returned
      unchanged and serve as both "gradient" and "update". Chain it FIRST to watch
      gradients (``optax.chain(gradient_monitor(), optax.adam(1e-3))``) or LAST to
      watch the update (then ``grad_norm == update_norm`` = the step norm).

    Read the values from the state (e.g. ``state.grad_norm``, or collect the state from
    a ``lax.scan`` for a history); nothing is printed or copied to the host.

    Args:
        inner: optional optimizer to wrap.

    Returns:
        ``optax.GradientTransformationExtraArgs`` with :class:`GradientMonitorState`
        (extra args are forwarded to ``inner``).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> opt = gradient_monitor(optax.sgd(0.1))
        >>> p = {"w": jnp.array([3.0, 4.0])}; state = opt.init(p)
        >>> u, state = opt.update({"w": jnp.array([3.0, 4.0])}, state, p)
        >>> round(float(state.grad_norm), 5), round(float(state.update_ratio), 5)
        (5.0, 0.1)
    """
    if inner is not None and not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            f"inner must be an optax.GradientTransformation or None, got {type(inner).__name__}"
        )
    inner_tx = None if inner is None else optax.with_extra_args_support(inner)

    def init_fn(params):
        zero = jnp.zeros([], jnp.float32)
        return GradientMonitorState(
            count=jnp.zeros([], jnp.int32),
            grad_norm=zero,
            leaf_grad_norms=jax.tree.map(lambda _: zero, params),
            update_norm=zero,
            param_norm=zero,
            update_ratio=zero,
            inner_state=optax.EmptyState() if inner_tx is None else inner_tx.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        leaf = jax.tree.map(_norm, updates)
        g_norm = jnp.sqrt(sum(jnp.square(x) for x in jax.tree.leaves(leaf)))
        if inner_tx is None:
            out, inner_state = updates, state.inner_state
            u_norm = g_norm
        else:
            out, inner_state = inner_tx.update(updates, state.inner_state, params, **extra_args)
            u_norm = jnp.sqrt(sum(jnp.square(_norm(x)) for x in jax.tree.leaves(out)))
        if params is None:
            p_norm = jnp.array(jnp.nan, jnp.float32)
        else:
            p_norm = jnp.sqrt(sum(jnp.square(_norm(x)) for x in jax.tree.leaves(params)))
        return out, GradientMonitorState(
            count=optax.safe_increment(state.count),
            grad_norm=jnp.asarray(g_norm, jnp.float32),
            leaf_grad_norms=leaf,
            update_norm=jnp.asarray(u_norm, jnp.float32),
            param_norm=jnp.asarray(p_norm, jnp.float32),
            update_ratio=(u_norm / p_norm).astype(jnp.float32),
            inner_state=inner_state,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

"""Rollback guard: undo non-finite (or spiking) steps and cut the step size.

References:
    Chowdhery et al. (2022), "PaLM: Scaling Language Modeling with Pathways" (restart
    from an earlier checkpoint and skip data around loss spikes; this guard is the
    in-jit, one-step version of that practice).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import check_positive
from jaxopt_lab.transforms._state import find_state

__all__ = ["RollbackState", "last_good_params", "rollback_guard"]


class RollbackState(NamedTuple):
    """State of :func:`rollback_guard`.

    Attributes:
        inner_state: state of the wrapped transform.
        good_params: pytree like params: the last point whose check passed (finite
            params and loss, no spike); the initial params before any step.
        good_inner_state: inner state that goes with ``good_params`` (the state before
            that step's update).
        scale: ``[]`` float32, multiplier applied to the inner updates (starts at 1).
        num_rollbacks: ``[]`` int32, rejected steps so far.
        loss_avg: ``[]`` float32, exponential moving average of accepted ``value``s.
        num_values: ``[]`` int32, accepted steps that carried a ``value``.
    """

    inner_state: Any
    good_params: Any
    good_inner_state: Any
    scale: jax.Array
    num_rollbacks: jax.Array
    loss_avg: jax.Array
    num_values: jax.Array


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def rollback_guard(
    inner: optax.GradientTransformation,
    *,
    factor: float = 0.1,
    spike_factor: float | None = None,
    ema_decay: float = 0.99,
    min_scale: float = 1e-6,
) -> optax.GradientTransformationExtraArgs:
    """Wrap ``inner`` so that a bad step is rolled back and the step size is cut.

    Two kinds of failure are told apart, because they call for different repairs:

    * a BAD POINT: the current params are non-finite, or the loss ``value`` (optional
      keyword extra arg) there is non-finite, or, with ``spike_factor``, ``value >
      spike_factor * running average`` (checked once the average is positive; assumes a
      loss bounded below by 0). The params themselves are in a bad region, so the guard
      returns ``update = last_good_params - params`` (masked to 0 where that is
      non-finite, so the update itself is always finite): the params go back to the last
      point that was certified good, with the inner state that went with it.
    * a BAD STEP at a good point: the incoming gradient or the scaled inner update is
      non-finite while the point is fine (its loss, when given, is finite). The guard
      skips the step: ``update = 0``, so the params after the step equal the params
      before it, and the inner state is left as it was before the step (the bad
      gradient leaves no trace in, e.g., Adam's moments).

    Either way ``scale`` is multiplied by ``factor`` (floored at ``min_scale``) and the
    event is counted. On a good step the guard returns ``scale * inner_update``. Every
    point whose check passed is recorded as the last good point together with the inner
    state it was reached with. Everything is ``jnp.where`` selection: no Python control
    flow on values, so it runs inside ``lax.scan``/``vmap``.

    The scale multiplies the inner update; for SGD-like optimizers (update linear in the
    learning rate) this is exactly a learning-rate cut; for Adam and other scale-
    invariant methods it is likewise a step-size cut (Adam's update is ``-lr * m/sqrt(v)``).

    Compared with ``optax.apply_if_finite(inner, max_consecutive_errors)``: that wrapper
    SKIPS non-finite updates (returns zeros, keeps the inner state) but neither restores
    earlier parameters nor cuts the learning rate, and gives up after
    ``max_consecutive_errors`` bad steps, applying the bad update.

    Keep the guard OUTERMOST (last in a chain): it assumes the caller applies its
    update with ``optax.apply_updates``, so that the next ``params`` equal the recorded
    good params. If the params themselves became non-finite outside the guard, an
    additive update cannot repair them; read :func:`last_good_params` instead.

    Args:
        inner: the wrapped transform (any optax transform, e.g. ``optax.adam(1e-3)``).
        factor: step-size multiplier applied at each rollback, in (0, 1].
        spike_factor: optional; treat ``value > spike_factor * loss_avg`` as bad (> 1).
        ema_decay: decay of the running loss average, in [0, 1).
        min_scale: lower bound for ``scale`` (>= 0).

    Returns:
        ``optax.GradientTransformationExtraArgs`` with :class:`RollbackState`;
        ``update(updates, state, params, *, value=None, **extra)`` needs ``params``;
        ``value`` and other extra args are forwarded to ``inner``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> opt = rollback_guard(optax.sgd(0.1), factor=0.5)
        >>> p = jnp.ones(2); state = opt.init(p)
        >>> u, state = opt.update(jnp.array([jnp.nan, 1.0]), state, p)
        >>> u, state.scale, state.num_rollbacks
        (Array([0., 0.], dtype=float32), Array(0.5, dtype=float32), Array(1, dtype=int32))
    """
    check_positive("factor", factor)
    if not isinstance(factor, jax.core.Tracer) and np.any(np.asarray(factor) > 1):
        raise ValueError(f"factor must be in (0, 1], got {factor!r}")
    if spike_factor is not None:
        check_positive("spike_factor", spike_factor)
        if not isinstance(spike_factor, jax.core.Tracer) and np.any(np.asarray(spike_factor) <= 1):
            raise ValueError(f"spike_factor must be > 1 (or None), got {spike_factor!r}")
    check_positive("ema_decay", ema_decay, allow_zero=True)
    if not isinstance(ema_decay, jax.core.Tracer) and np.any(np.asarray(ema_decay) >= 1):
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
    check_positive("min_scale", min_scale, allow_zero=True)
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(f"inner must be an optax.GradientTransformation, got {type(inner)}")
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        inner_state = inner.init(params)
        return RollbackState(
            inner_state=inner_state,
            good_params=jax.tree.map(jnp.asarray, params),
            good_inner_state=inner_state,
            scale=jnp.ones([], jnp.float32),
            num_rollbacks=jnp.zeros([], jnp.int32),
            loss_avg=jnp.zeros([], jnp.float32),
            num_values=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        if params is None:
            raise ValueError(
                "rollback_guard needs params in update(updates, state, params); got None"
            )
        if value is not None:
            extra_args = {**extra_args, "value": value}
        inner_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        scaled = jax.tree.map(lambda u: (u * state.scale).astype(u.dtype), inner_updates)
        point_ok = _all_finite(params)
        loss_avg, num_values = state.loss_avg, state.num_values
        if value is not None:
            v = jnp.asarray(value, jnp.float32)
            point_ok = point_ok & jnp.isfinite(v)
            if spike_factor is not None:
                spike = (num_values > 0) & (loss_avg > 0) & (v > spike_factor * loss_avg)
                point_ok = point_ok & ~spike
        ok = point_ok & _all_finite(updates) & _all_finite(scaled)
        if value is not None:
            new_avg = jnp.where(num_values > 0, ema_decay * loss_avg + (1 - ema_decay) * v, v)
            loss_avg = jnp.where(ok, new_avg, loss_avg)
            num_values = num_values + ok.astype(jnp.int32)
        bad_point, bad = ~point_ok, ~ok

        back = jax.tree.map(
            lambda g, p: jnp.where(jnp.isfinite(g - p), g - p, 0).astype(p.dtype),
            state.good_params,
            params,
        )
        zeros = jax.tree.map(jnp.zeros_like, scaled)
        out = optax.tree.where(bad_point, back, optax.tree.where(bad, zeros, scaled))
        restored = optax.tree.where(
            bad_point,
            state.good_inner_state,
            optax.tree.where(bad, state.inner_state, inner_state),
        )
        new_state = RollbackState(
            inner_state=restored,
            # Record the params this step was CHECKED at (finite params and value), not
            # the unchecked params + update: those may already give a non-finite loss.
            good_params=optax.tree.where(bad_point, state.good_params, params),
            good_inner_state=optax.tree.where(
                bad_point, state.good_inner_state, state.inner_state
            ),
            scale=jnp.where(bad, jnp.maximum(state.scale * factor, min_scale), state.scale).astype(
                jnp.float32
            ),
            num_rollbacks=state.num_rollbacks + bad.astype(jnp.int32),
            loss_avg=loss_avg,
            num_values=num_values,
        )
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def last_good_params(opt_state: Any) -> Any:
    """Params recorded by the (single) :class:`RollbackState` inside ``opt_state``."""
    return find_state(opt_state, RollbackState).good_params

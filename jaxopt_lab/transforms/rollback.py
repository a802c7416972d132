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

__all__ = [
    "RollbackState",
    "check_placement",
    "last_good_params",
    "restore_nonfinite",
    "rollback_guard",
]


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
        expected_params: pytree like params: the point the guard's last update leads to
            (``params + update`` rounded to the params' dtype, as ``optax.apply_updates``
            computes it); the initial params before any step.
        num_misplaced: ``[]`` int32, steps whose ``params`` were finite but differed from
            ``expected_params``: something after the guard changed its update (it is not
            outermost) or the params were changed between steps. Restores are then
            wrong; see :func:`check_placement`.
    """

    inner_state: Any
    good_params: Any
    good_inner_state: Any
    scale: jax.Array
    num_rollbacks: jax.Array
    loss_avg: jax.Array
    num_values: jax.Array
    expected_params: Any
    num_misplaced: jax.Array


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _apply(params: Any, updates: Any) -> Any:
    """``optax.apply_updates`` (same rounding: the sum is cast to the params' dtype)."""
    return jax.tree.map(
        lambda p, u: jnp.asarray(p + u).astype(jnp.asarray(p).dtype), params, updates
    )


def _all_close(a: Any, b: Any) -> jax.Array:
    """Leafwise ``|a - b| <= 4 eps(dtype) max(|a|, |b|)`` (a few roundings apart)."""

    def close(x, y):
        x, y = jnp.asarray(x), jnp.asarray(y)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.all(x == y)
        eps = jnp.finfo(x.dtype).eps
        tiny = jnp.finfo(x.dtype).tiny
        scale = jnp.maximum(jnp.abs(x), jnp.abs(y)).astype(jnp.float32)
        diff = jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32))
        return jnp.all(diff <= 4 * float(eps) * scale + float(tiny))

    leaves = [close(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _restore_update(good: jax.Array, p: jax.Array) -> jax.Array:
    """``good - p`` computed in at least float32 (no float16 overflow of the difference),
    cast to the params' dtype and masked to 0 where non-finite."""
    wide = jnp.promote_types(p.dtype, jnp.float32)
    d = good.astype(wide) - p.astype(wide)
    d = jnp.where(jnp.isfinite(d), d, 0).astype(p.dtype)
    return jnp.where(jnp.isfinite(d), d, 0)  # the cast may overflow: mask again


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
      non-finite, or the point it leads to (``params + update`` rounded to the params'
      dtype, e.g. a finite step that overflows float16) is not finite, while the point
      is fine (its loss, when given, is finite). The guard skips the step: ``update =
      0``, so the params after the step equal the params before it, and the inner state
      is left as it was before the step (the bad gradient leaves no trace in, e.g.,
      Adam's moments). So the guard itself never turns finite params non-finite.

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

    Placement: the restore update ``last_good_params - params`` is only right if it is
    applied unchanged (``optax.apply_updates``), so the guard must be OUTERMOST: use
    ``rollback_guard(inner)`` as the whole optimizer (put every stateful transform
    inside ``inner`` so its state is rolled back too), or put it LAST in a chain
    (``optax.chain(..., rollback_guard(optax.identity()))``). A transform AFTER it
    (e.g. ``optax.chain(rollback_guard(t), optax.sgd(lr))``) rescales the restore and
    sends the params to the wrong point. The guard detects this: it records the point
    its update leads to and compares the next ``params`` with it. An eager call with
    a mismatch raises ValueError; under ``jit`` the mismatch is counted in
    ``num_misplaced`` and :func:`check_placement` raises on the final state.

    Params made non-finite OUTSIDE the guard cannot be repaired by any additive update
    (``inf + u`` is never finite): the guard then counts a rollback at every step and
    returns the finite part of the restore; use :func:`restore_nonfinite` (or
    :func:`last_good_params`) to go back to the last good point.

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
        params = jax.tree.map(jnp.asarray, params)
        return RollbackState(
            inner_state=inner_state,
            good_params=params,
            good_inner_state=inner_state,
            scale=jnp.ones([], jnp.float32),
            num_rollbacks=jnp.zeros([], jnp.int32),
            loss_avg=jnp.zeros([], jnp.float32),
            num_values=jnp.zeros([], jnp.int32),
            expected_params=params,
            num_misplaced=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        if params is None:
            raise ValueError(
                "rollback_guard needs params in update(updates, state, params); got None"
            )
        if value is not None:
            extra_args = {**extra_args, "value": value}
        params_finite = _all_finite(params)
        # Placement check: the params given now must be the point the previous update led
        # to. A finite mismatch means something after the guard rescaled its update (it
        # is not outermost) or the params were changed between steps.
        # expected_params starts at the initial params, so the first step is checked too.
        misplaced = (
            params_finite
            & _all_finite(state.expected_params)
            & ~_all_close(params, state.expected_params)
        )
        if _is_concrete(misplaced) and bool(misplaced):
            raise ValueError(
                "rollback_guard: the params passed to update are not the point its previous "
                "update led to (params + update). The guard must be the OUTERMOST transform: "
                "use rollback_guard(inner) as the whole optimizer, or put it LAST in "
                "optax.chain(..., rollback_guard(optax.identity())) with nothing after it "
                "that changes its update, and apply its update unchanged with "
                "optax.apply_updates"
            )
        inner_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        scaled = jax.tree.map(lambda u: (u * state.scale).astype(u.dtype), inner_updates)
        # The point the step would lead to, rounded as optax.apply_updates rounds it: a
        # finite update can still overflow the params' dtype (e.g. float16).
        candidate = _apply(params, scaled)
        point_ok = params_finite
        loss_avg, num_values = state.loss_avg, state.num_values
        if value is not None:
            v = jnp.asarray(value, jnp.float32)
            point_ok = point_ok & jnp.isfinite(v)
            if spike_factor is not None:
                spike = (num_values > 0) & (loss_avg > 0) & (v > spike_factor * loss_avg)
                point_ok = point_ok & ~spike
        ok = point_ok & _all_finite(updates) & _all_finite(scaled) & _all_finite(candidate)
        if value is not None:
            new_avg = jnp.where(num_values > 0, ema_decay * loss_avg + (1 - ema_decay) * v, v)
            loss_avg = jnp.where(ok, new_avg, loss_avg)
            num_values = num_values + ok.astype(jnp.int32)
        bad_point, bad = ~point_ok, ~ok

        back = jax.tree.map(_restore_update, state.good_params, params)
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
            expected_params=_apply(params, out),
            num_misplaced=state.num_misplaced + misplaced.astype(jnp.int32),
        )
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def last_good_params(opt_state: Any) -> Any:
    """Params recorded by the (single) :class:`RollbackState` inside ``opt_state``."""
    return find_state(opt_state, RollbackState).good_params


def check_placement(opt_state: Any) -> None:
    """Raise ValueError if the guard inside ``opt_state`` saw params it did not lead to.

    Eager calls of the guard raise at the first such step; inside ``jit``/``scan`` the
    guard can only count them (``num_misplaced``): call this on the final state (host
    side) to turn the count into the same error. Leading axes (seeds) are reduced.
    """
    n = int(np.sum(np.asarray(find_state(opt_state, RollbackState).num_misplaced)))
    if n:
        raise ValueError(
            f"rollback_guard: {n} step(s) received params that were not the point its "
            "previous update led to: the guard was not the outermost transform (something "
            "after it in optax.chain changed its update) or params were changed between "
            "steps, so its restores went to the wrong point. Use rollback_guard(inner) as "
            "the whole optimizer, or put it last in the chain."
        )


def restore_nonfinite(params: Any, opt_state: Any) -> Any:
    """``params`` if all finite, else the guard's last good params (pure, jit-able).

    The guard itself never makes finite params non-finite (it rejects a step whose
    result would not be finite in the params' dtype), but params corrupted OUTSIDE it
    (NaN/Inf) cannot be repaired by an additive update: ``inf + u`` is never finite.
    Call ``params = restore_nonfinite(optax.apply_updates(params, u), opt_state)`` to
    go back to the last good point in that case.
    """
    good = find_state(opt_state, RollbackState).good_params
    return optax.tree.where(_all_finite(params), params, good)

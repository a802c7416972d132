"""Elastic weight consolidation (EWC) as an optax gradient transformation.

The penalty for one finished task with diagonal Fisher ``F`` and anchor
(the parameters at the end of that task) ``theta*`` is

    penalty(theta) = (strength / 2) * sum_i F_i * (theta_i - theta*_i) ** 2,

so the transform ADDS its gradient ``strength * F * (theta - theta*)`` to the
incoming gradient. Chain it BEFORE the optimizer that scales the updates::

    opt = optax.chain(ewc(fisher, anchor, strength=100.0), optax.sgd(1e-2))

Two ways to remember several tasks:

* ``mode="separate"`` (Kirkpatrick et al. 2017): one ``(F_k, theta*_k)`` per task,
  stacked along a leading axis of capacity ``max_tasks`` (a ring buffer that keeps the
  most recent ``max_tasks`` tasks); memory grows linearly with the capacity.
* ``mode="online"`` (Schwarz et al. 2018): one running Fisher
  ``F <- decay * F + F_new`` and the latest anchor; memory is constant in the number
  of tasks.

Fold a finished task into the state with :func:`ewc_consolidate`; compute the penalty
value with :func:`ewc_penalty`.

References:
    Kirkpatrick et al. (2017), "Overcoming catastrophic forgetting in neural networks".
    Schwarz et al. (2018), "Progress & Compress: A scalable framework for continual
    learning".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import (
    check_choice,
    check_finite,
    check_int,
    check_int_hparam,
    check_positive,
    check_same_structure,
)

__all__ = [
    "EWCOnlineState",
    "EWCSeparateState",
    "ewc",
    "ewc_consolidate",
    "ewc_penalty",
    "fisher_diagonal",
]

_FISHER_KINDS = ("empirical", "exact", "batched")


# --------------------------------------------------------------------------- Fisher


def _single_example(tree: Any) -> Any:
    """Add back a leading batch axis of size 1 to one example taken out of a batch."""
    return jax.tree.map(lambda x: jnp.expand_dims(x, 0), tree)


def _batch_size(name: str, batch: Any) -> int:
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError(f"{name} must contain at least one array with a leading batch axis")
    sizes = {np.shape(x)[0] if np.ndim(x) > 0 else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{name} leaves must share one leading batch axis, got shapes "
            f"{[np.shape(x) for x in leaves]}"
        )
    return sizes.pop()


def fisher_diagonal(
    loss_fn: Callable[[Any, Any], jax.Array] | None,
    params: Any,
    batch: Any,
    *,
    kind: str = "empirical",
    log_prob_fn: Callable[[Any, Any], jax.Array] | None = None,
    chunk_size: int | None = None,
) -> Any:
    """Diagonal of the Fisher information at ``params``, a pytree shaped like ``params``.

    Three estimators (all per-sample gradients are computed with ``jax.vmap``):

    * ``"empirical"``: ``mean_i (grad loss(params, example_i)) ** 2``, the squared
      per-sample gradients of the loss at the TRUE labels. ``loss_fn(params, batch)``
      is called on single-example batches (every leaf keeps a leading axis of size 1),
      so the usual ``loss(params, batch) -> mean loss`` of ``jaxopt_lab.models`` works.
    * ``"exact"``: ``mean_i sum_c p_c(x_i) (grad log p_c(x_i)) ** 2``, the expectation
      over the model's own predictive distribution (labels are not used). Requires
      ``log_prob_fn(params, inputs) -> [B, C]`` returning logits or log-probabilities
      for a batch of inputs (``log_softmax`` is applied, which leaves log-probabilities
      unchanged); ``batch`` is then the ``inputs`` pytree alone, and ``loss_fn`` is
      ignored (may be ``None``). Cost: ``C`` backward passes per example.
    * ``"batched"``: ``(grad loss(params, batch)) ** 2``, the squared MINIBATCH
      gradient; a cheap, biased estimate some libraries use (for comparison only).

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar`` (mean loss over the batch).
        params: parameter pytree.
        batch: pytree of arrays sharing a leading batch axis ``[B, ...]``.
        kind: ``"empirical"``, ``"exact"`` or ``"batched"``.
        log_prob_fn: for ``kind="exact"``: ``log_prob_fn(params, inputs) -> [B, C]``.
        chunk_size: examples per vectorised chunk (``jax.lax.map`` batch size) to
            bound memory; ``None`` processes the whole batch at once.

    Returns:
        Pytree shaped like ``params`` with the Fisher diagonal (non-negative).

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p, b: jnp.mean((b[0] @ p - b[1]) ** 2)
        >>> x, y = jnp.ones((4, 3)), jnp.zeros(4)
        >>> fisher_diagonal(loss, jnp.ones(3), (x, y)).shape
        (3,)

    References:
        Kirkpatrick et al. (2017), "Overcoming catastrophic forgetting in neural networks".
        Kunstner, Balles & Hennig (2019), "Limitations of the empirical Fisher
        approximation for natural gradient descent".
    """
    check_choice("kind", kind, _FISHER_KINDS)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size)
    _batch_size("batch", batch)

    if kind == "batched":
        if loss_fn is None:
            raise ValueError("loss_fn must be a callable for kind='batched', got None")
        g = jax.grad(loss_fn)(params, batch)
        return jax.tree.map(jnp.square, g)

    if kind == "empirical":
        if loss_fn is None:
            raise ValueError("loss_fn must be a callable for kind='empirical', got None")

        def per_example(example):
            g = jax.grad(loss_fn)(params, _single_example(example))
            return jax.tree.map(jnp.square, g)

    else:  # exact
        if log_prob_fn is None:
            raise ValueError(
                "log_prob_fn must be given for kind='exact': "
                "log_prob_fn(params, inputs) -> [B, C] logits or log-probabilities"
            )

        def log_probs(p, example):
            out = log_prob_fn(p, _single_example(example))
            return jax.nn.log_softmax(out.reshape(-1))

        def per_example(example):
            lp = log_probs(params, example)
            probs = jax.lax.stop_gradient(jnp.exp(lp))  # [C]
            jac = jax.jacrev(log_probs)(params, example)  # leaves [C, *p.shape]
            return jax.tree.map(lambda j: jnp.tensordot(probs, jnp.square(j), axes=1), jac)

    per_sample = jax.lax.map(per_example, batch, batch_size=chunk_size)
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), per_sample)


# --------------------------------------------------------------------------- states


class EWCSeparateState(NamedTuple):
    """State of :func:`ewc` with ``mode="separate"``.

    Attributes:
        fisher: pytree like params, each leaf ``[max_tasks, *leaf.shape]``; unused
            slots hold zeros (they contribute nothing).
        anchor: pytree like params, each leaf ``[max_tasks, *leaf.shape]``.
        num_tasks: ``[]`` int32, tasks consolidated so far (may exceed ``max_tasks``;
            slot ``num_tasks % max_tasks`` is written next).
    """

    fisher: Any
    anchor: Any
    num_tasks: jax.Array


class EWCOnlineState(NamedTuple):
    """State of :func:`ewc` with ``mode="online"``.

    Attributes:
        fisher: pytree like params (leaf shapes of params): running Fisher.
        anchor: pytree like params: parameters at the end of the latest task.
        num_tasks: ``[]`` int32, tasks consolidated so far.
        decay: ``[]`` float, the factor ``gamma`` in ``F <- gamma F + F_new``.
    """

    fisher: Any
    anchor: Any
    num_tasks: jax.Array
    decay: jax.Array


_EWC_STATES = (EWCSeparateState, EWCOnlineState)


def _check_task(fisher: Any, anchor: Any) -> None:
    """Host-side checks of a task's ``(fisher, anchor)``: finite, Fisher non-negative.

    Tracers (inside ``jit``) are skipped: their values are unknown at trace time.
    """
    check_finite("fisher", fisher)
    check_finite("anchor", anchor)
    for leaf in jax.tree.leaves(fisher):
        if not isinstance(leaf, jax.core.Tracer) and np.any(np.asarray(leaf) < 0):
            raise ValueError("fisher must be non-negative, got negative entries")


def _check_params(params: Any, state: Any) -> None:
    """Raise ValueError naming ``params`` unless it matches the EWC state's anchor."""
    anchor = state.anchor
    if isinstance(state, EWCSeparateState):
        anchor = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), anchor)
    check_same_structure("params", params, "the EWC anchor (fisher)", anchor)


def _is_ewc_state(x: Any) -> bool:
    return isinstance(x, _EWC_STATES)


# --------------------------------------------------------------------------- transform


def ewc(
    fisher: Any = None,
    anchor: Any = None,
    strength: float = 1.0,
    *,
    mode: str = "separate",
    decay: float = 1.0,
    max_tasks: int = 10,
) -> optax.GradientTransformation:
    """Elastic weight consolidation: add ``strength * F * (params - anchor)`` to gradients.

    Args:
        fisher: Fisher diagonal of a finished task (pytree like params, e.g. from
            :func:`fisher_diagonal`), or ``None`` to start with no task remembered.
        anchor: parameters at the end of that task (same structure as ``fisher``), or
            ``None`` together with ``fisher=None``.
        strength: ``lambda >= 0`` in ``(lambda/2) sum F (theta - theta*)^2``. Can be
            injected with ``optax.inject_hyperparams``.
        mode: ``"separate"`` (one penalty per task, capacity ``max_tasks``) or
            ``"online"`` (one running Fisher, constant memory).
        decay: ``gamma`` in ``[0, 1]`` for the online Fisher ``F <- gamma F + F_new``
            (ignored in separate mode).
        max_tasks: capacity of the separate mode (ring buffer of the latest tasks).

    Returns:
        ``optax.GradientTransformation``; ``update`` needs ``params`` (ValueError if
        ``None``). State: :class:`EWCSeparateState` or :class:`EWCOnlineState`.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> p = {"w": jnp.ones(3)}
        >>> opt = optax.chain(ewc({"w": jnp.ones(3)}, {"w": jnp.zeros(3)}, 2.0),
        ...                   optax.sgd(0.1))
        >>> state = opt.init(p)
        >>> g = {"w": jnp.zeros(3)}
        >>> updates, state = opt.update(g, state, p)   # -0.1 * 2 * 1 * (1 - 0)
        >>> updates["w"]
        Array([-0.2, -0.2, -0.2], dtype=float32)

    References:
        Kirkpatrick et al. (2017), "Overcoming catastrophic forgetting in neural networks".
        Schwarz et al. (2018), "Progress & Compress: A scalable framework for continual
        learning".
    """
    check_choice("mode", mode, ("separate", "online"))
    check_positive("strength", strength, allow_zero=True)
    check_positive("decay", decay, allow_zero=True)
    if not isinstance(decay, jax.core.Tracer) and np.any(np.asarray(decay) > 1):
        raise ValueError(f"decay must be in [0, 1], got {decay!r}")
    max_tasks = check_int_hparam("max_tasks", max_tasks, minimum=1)
    if (fisher is None) != (anchor is None):
        raise ValueError("fisher and anchor must both be given or both be None")
    if fisher is not None:
        check_same_structure("fisher", fisher, "anchor", anchor)
        _check_task(fisher, anchor)

    def init_fn(params):
        if fisher is not None:
            check_same_structure("fisher", fisher, "params", params)
        if mode == "online":
            state = EWCOnlineState(
                fisher=jax.tree.map(jnp.zeros_like, params),
                anchor=jax.tree.map(jnp.zeros_like, params),
                num_tasks=jnp.zeros([], jnp.int32),
                decay=jnp.asarray(decay, optax.tree.dtype(params, "highest")),
            )
        else:
            state = EWCSeparateState(
                fisher=jax.tree.map(lambda p: jnp.zeros((max_tasks, *p.shape), p.dtype), params),
                anchor=jax.tree.map(lambda p: jnp.zeros((max_tasks, *p.shape), p.dtype), params),
                num_tasks=jnp.zeros([], jnp.int32),
            )
        if fisher is not None:
            state = _consolidate_one(state, fisher, anchor)
        return state

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("ewc needs params in update(updates, state, params); got None")
        _check_params(params, state)
        if isinstance(state, EWCOnlineState):
            pen = jax.tree.map(lambda f, p, a: f * (p - a), state.fisher, params, state.anchor)
        else:
            pen = jax.tree.map(
                lambda f, p, a: jnp.sum(f * (p[None] - a), axis=0),
                state.fisher,
                params,
                state.anchor,
            )
        new = jax.tree.map(
            lambda u, q: (u + jnp.asarray(strength, u.dtype) * q).astype(u.dtype), updates, pen
        )
        return new, state

    return optax.GradientTransformation(init_fn, update_fn)


def _consolidate_one(state, fisher, anchor):
    check_same_structure("fisher", fisher, "anchor", anchor)
    _check_task(fisher, anchor)
    if isinstance(state, EWCOnlineState):
        check_same_structure("fisher", fisher, "state.fisher", state.fisher)
        check_same_structure("anchor", anchor, "state.anchor", state.anchor)
        new_f = jax.tree.map(
            lambda old, f: (state.decay * old + f).astype(old.dtype), state.fisher, fisher
        )
        new_a = jax.tree.map(lambda old, a: jnp.asarray(a, old.dtype), state.anchor, anchor)
        return EWCOnlineState(new_f, new_a, state.num_tasks + 1, state.decay)
    single = jax.tree.map(lambda x: x[0], state.fisher)
    check_same_structure("fisher", fisher, "params", single)
    check_same_structure("anchor", anchor, "params", single)
    max_tasks = jax.tree.leaves(state.fisher)[0].shape[0]
    slot = state.num_tasks % max_tasks
    new_f = jax.tree.map(lambda old, f: old.at[slot].set(f.astype(old.dtype)), state.fisher, fisher)
    new_a = jax.tree.map(lambda old, a: old.at[slot].set(a.astype(old.dtype)), state.anchor, anchor)
    return EWCSeparateState(new_f, new_a, state.num_tasks + 1)


def ewc_consolidate(opt_state: Any, fisher: Any, anchor: Any) -> Any:
    """Fold a finished task ``(fisher, anchor)`` into every EWC state inside ``opt_state``.

    Online mode: ``F <- decay * F + fisher`` and ``anchor`` replaces the old anchor.
    Separate mode: ``(fisher, anchor)`` is written to slot ``num_tasks % max_tasks``.
    ``opt_state`` may be the EWC state itself or any optimizer state containing it
    (an ``optax.chain`` tuple, an ``inject_hyperparams`` state, ...). Pure and jittable.

    Args:
        opt_state: optimizer state containing one or more EWC states.
        fisher: Fisher diagonal of the finished task (pytree like params).
        anchor: parameters at the end of the finished task (pytree like params).

    Returns:
        The optimizer state with the task folded in.
    """
    found = []

    def fold(x):
        if _is_ewc_state(x):
            found.append(True)
            return _consolidate_one(x, fisher, anchor)
        return x

    out = jax.tree.map(fold, opt_state, is_leaf=_is_ewc_state)
    if not found:
        raise ValueError("opt_state contains no EWC state (EWCSeparateState/EWCOnlineState)")
    return out


def ewc_penalty(params: Any, fisher: Any, anchor: Any = None, strength: Any = 1.0) -> jax.Array:
    """Penalty value ``(strength/2) * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2``.

    Args:
        params: parameter pytree ``theta``.
        fisher: Fisher diagonal pytree like params (one task), the same stacked along a
            leading task axis (several tasks), or an EWC state (then ``anchor`` is taken
            from it and must be ``None``).
        anchor: anchor pytree matching ``fisher``.
        strength: ``lambda``.

    Returns:
        Scalar penalty; its gradient is what :func:`ewc` adds to the gradient.
    """
    if _is_ewc_state(fisher):
        if anchor is not None:
            raise ValueError("anchor must be None when fisher is an EWC state")
        fisher, anchor = fisher.fisher, fisher.anchor
    if anchor is None:
        raise ValueError("anchor must be given when fisher is not an EWC state")
    check_same_structure("fisher", fisher, "anchor", anchor)
    if jax.tree.structure(fisher) != jax.tree.structure(params):
        raise ValueError(
            "fisher and params must have the same pytree structure: "
            f"{jax.tree.structure(fisher)} vs {jax.tree.structure(params)}"
        )

    def leaf(f, a, p):
        if f.shape == p.shape:
            return jnp.sum(f * jnp.square(p - a))
        if f.shape[1:] == p.shape:
            return jnp.sum(f * jnp.square(p[None] - a))
        raise ValueError(
            f"fisher leaf shape {f.shape} matches neither params leaf {p.shape} nor a "
            f"stack [tasks, *{p.shape}]"
        )

    total = sum(jax.tree.leaves(jax.tree.map(leaf, fisher, anchor, params)))
    return 0.5 * jnp.asarray(strength) * total

"""Replay memories for continual learning, as pure functions of arrays and keys.

* A **reservoir buffer** (Vitter 1985, "Random sampling with a reservoir"): a fixed
  capacity ``m``; the ``n``-th example of the stream (0-based) goes to slot ``n`` while
  ``n < m``, afterwards it replaces slot ``j ~ U{0..n}`` when ``j < m``. After ``n``
  examples every example seen is in the buffer with probability ``min(1, m / n)``:
  experience replay's memory (Chaudhry et al. 2019, "On Tiny Episodic Memories in
  Continual Learning").
* An **episodic memory** per task (Lopez-Paz & Ranzato 2017, "Gradient Episodic
  Memory for Continual Learning"): ``m`` examples of each finished task, drawn without
  replacement, stacked ``[num_tasks, m, ...]`` (GEM / A-GEM constraints).

Every function works on ONE seed and is traceable (``jit``/``vmap``/``lax.scan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int

__all__ = [
    "Reservoir",
    "check_memory_size",
    "episodic_sample",
    "reservoir_add",
    "reservoir_init",
    "reservoir_sample",
]


class Reservoir(NamedTuple):
    """A reservoir buffer of capacity ``m``.

    Attributes:
      x: ``[m, *example_shape]`` stored inputs (zeros in slots not filled yet).
      y: ``[m]`` int32 labels.
      task: ``[m]`` int32 task index of each stored example.
      seen: ``[]`` int32, examples offered so far (slots filled: ``min(seen, m)``).
    """

    x: jax.Array
    y: jax.Array
    task: jax.Array
    seen: jax.Array


def reservoir_init(capacity: int, example_shape: Sequence[int],
                   dtype: Any = jnp.float32) -> Reservoir:
    """An empty reservoir of ``capacity`` slots for examples of ``example_shape``."""
    capacity = check_int("capacity", capacity)
    shape = tuple(int(d) for d in example_shape)
    return Reservoir(x=jnp.zeros((capacity, *shape), dtype), y=jnp.zeros((capacity,), jnp.int32),
                     task=jnp.zeros((capacity,), jnp.int32), seen=jnp.zeros([], jnp.int32))


def reservoir_add(buf: Reservoir, key: jax.Array, x: jax.Array, y: jax.Array,
                  task: jax.Array, valid: jax.Array | None = None) -> Reservoir:
    """Offer a batch of examples to the reservoir, one after the other.

    Args:
      buf: the :class:`Reservoir`.
      key: PRNG key (example ``k`` of the batch uses ``fold_in(key, k)``).
      x: ``[B, *example_shape]``.
      y: ``[B]`` labels.
      task: ``[]`` or ``[B]`` task index.
      valid: optional ``[B]`` bool; invalid examples are not offered (not counted).

    Returns:
      The updated reservoir.

    References:
      Vitter (1985), "Random sampling with a reservoir".
    """
    b = x.shape[0]
    task = jnp.broadcast_to(jnp.asarray(task, jnp.int32), (b,))
    valid = jnp.ones((b,), bool) if valid is None else jnp.asarray(valid, bool)
    m = buf.y.shape[0]

    def one(buf, k):
        n = buf.seen
        j = jax.random.randint(jax.random.fold_in(key, k), (), 0, jnp.maximum(n + 1, 1))
        slot = jnp.where(n < m, n, j)
        write = valid[k] & (slot < m)
        slot = jnp.clip(slot, 0, m - 1)
        new = Reservoir(
            x=buf.x.at[slot].set(jnp.where(write, x[k], buf.x[slot])),
            y=buf.y.at[slot].set(jnp.where(write, y[k], buf.y[slot])),
            task=buf.task.at[slot].set(jnp.where(write, task[k], buf.task[slot])),
            seen=n + valid[k].astype(jnp.int32),
        )
        return new, None

    buf, _ = jax.lax.scan(one, buf, jnp.arange(b))
    return buf


def reservoir_sample(buf: Reservoir, key: jax.Array, batch_size: int):
    """Draw ``batch_size`` stored examples uniformly with replacement.

    Returns:
      ``(x, y, task, weight)``: ``weight`` is a scalar 1.0 when the reservoir holds
      something and 0.0 while it is empty (then the examples are zeros: give them no
      weight in the loss).
    """
    batch_size = check_int("batch_size", batch_size)
    m = buf.y.shape[0]
    filled = jnp.minimum(buf.seen, m)
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(filled, 1))
    return buf.x[idx], buf.y[idx], buf.task[idx], (filled > 0).astype(jnp.float32)


def episodic_sample(key: jax.Array, x: jax.Array, y: jax.Array, n: jax.Array,
                    size: int) -> tuple[jax.Array, jax.Array]:
    """``size`` examples of one task drawn without replacement from its ``n`` valid rows.

    Args:
      key: PRNG key.
      x: ``[N, ...]`` inputs, rows ``>= n`` padding.
      y: ``[N]`` labels.
      n: ``[]`` number of valid rows (traced; must be ``>= size``, see
        :func:`check_memory_size`).
      size: examples kept (static).

    Returns:
      ``(x_mem [size, ...], y_mem [size])``.

    References:
      Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for Continual Learning".
    """
    size = check_int("size", size)
    big = x.shape[0]
    # random priorities; padding rows get +inf so the first ``size`` are valid rows
    u = jax.random.uniform(key, (big,))
    u = jnp.where(jnp.arange(big) < n, u, jnp.inf)
    idx = jnp.argsort(u)[:size]
    return x[idx], y[idx]


def check_memory_size(name: str, size: int, task_sizes: Sequence[int]) -> int:
    """Raise ValueError naming ``name`` unless ``1 <= size <= min(task_sizes)``."""
    size = check_int(name, size)
    smallest = int(np.min(np.asarray(task_sizes)))
    if size > smallest:
        raise ValueError(f"{name}={size} is larger than the smallest task ({smallest} training "
                         "examples): a memory cannot hold more examples than a task has")
    return size

"""Pure minibatch helpers (usable inside jit / lax.scan with explicit keys)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_int


def num_examples(data: Any) -> int:
    """Common leading dimension of every leaf of ``data`` (ValueError if they differ)."""
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data must contain at least one array")
    sizes = {int(jnp.shape(leaf)[0]) if jnp.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"every leaf of data must share one leading (example) axis, got {sizes}")
    return sizes.pop()


def sample_batch(key: jax.Array, data: Any, batch_size: int) -> Any:
    """Draw ``batch_size`` examples uniformly **with replacement** (``randint`` indices).

    Args:
      key: PRNG key (may be traced, e.g. a scan carry).
      data: pytree of arrays sharing the leading axis ``n`` (e.g. ``(x, y)``).
      batch_size: static batch size.

    Returns:
      the same pytree with leading axis ``batch_size``.

    Example:
      >>> def step(carry, key):                                      # doctest: +SKIP
      ...     xb, yb = sample_batch(key, (x, y), 32)
    """
    batch_size = check_int("batch_size", batch_size)
    n = num_examples(data)
    idx = jax.random.randint(key, (batch_size,), 0, n)
    return jax.tree.map(lambda a: jnp.asarray(a)[idx], data)


def batch_indices(key: jax.Array, n: int, batch_size: int, *, num_epochs: int = 1) -> jax.Array:
    """Indices of shuffled minibatches without replacement, epoch by epoch.

    Each epoch uses a fresh random permutation of ``0..n-1`` and drops the last
    ``n % batch_size`` examples of that permutation.

    Returns:
      int32 ``[num_epochs * (n // batch_size), batch_size]``: scan over it and index the
      data inside the step (memory-light for large datasets).
    """
    n = check_int("n", n)
    batch_size = check_int("batch_size", batch_size)
    num_epochs = check_int("num_epochs", num_epochs)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples {n}, got {batch_size}")
    return _batch_indices(key, n, batch_size, num_epochs)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _batch_indices(key, n, batch_size, num_epochs):
    per_epoch = n // batch_size
    keys = jax.random.split(key, num_epochs)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
    idx = perms[:, : per_epoch * batch_size].reshape(num_epochs * per_epoch, batch_size)
    return idx.astype(jnp.int32)


def batches(key: jax.Array, data: Any, batch_size: int, *, num_epochs: int = 1) -> Any:
    """Shuffle ``data`` into minibatches for ``lax.scan`` (without replacement).

    Args:
      key: PRNG key.
      data: pytree of arrays sharing the leading axis ``n``.
      batch_size: static batch size (<= n); the remainder of each epoch is dropped.
      num_epochs: number of passes, each with its own permutation.

    Returns:
      the pytree with leaves ``[num_epochs * (n // batch_size), batch_size, ...]``
      (a gathered copy of the data: use :func:`batch_indices` for very large sets).

    Example:
      >>> xs = batches(jax.random.key(0), (x, y), 32)               # doctest: +SKIP
      >>> params, losses = jax.lax.scan(train_step, params, xs)     # doctest: +SKIP
    """
    n = num_examples(data)
    idx = batch_indices(key, n, batch_size, num_epochs=num_epochs)
    return jax.tree.map(lambda a: jnp.asarray(a)[idx], data)

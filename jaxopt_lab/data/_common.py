"""Shared helpers for the offline loaders: split, dtype conversion, argument checks."""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np


def check_fraction(name: str, value, *, low_open: bool = True) -> float:
    """Raise unless ``value`` is a real number in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1), got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return value


def split_arrays(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    """Shuffle with ``np.random.default_rng(seed)`` and split off ``test_fraction``.

    Returns ``dict(train=(x, y), test=(x, y))`` of JAX arrays (x float32, y int32).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    if n_test < 1 or n_test >= len(y):
        raise ValueError(
            f"test_fraction={test_fraction} leaves an empty train or test set for {len(y)} samples"
        )
    test, train = perm[:n_test], perm[n_test:]
    return to_split(x[train], y[train], x[test], y[test])


def to_split(x_train, y_train, x_test, y_test) -> dict:
    """``dict(train=(x, y), test=(x, y))`` of JAX arrays: x float32, y int32."""
    return dict(
        train=(jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train, jnp.int32)),
        test=(jnp.asarray(x_test, jnp.float32), jnp.asarray(y_test, jnp.int32)),
    )


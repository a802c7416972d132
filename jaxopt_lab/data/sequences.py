"""Long-range sequence tasks: the adding problem and the copy task."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_int


def adding_problem(key: jax.Array, batch_size: int, length: int) -> tuple[jax.Array, jax.Array]:
    """Sample a batch of the adding problem.

    Each sequence has two input channels: channel 0 holds values ``U[0, 1)``; channel 1
    is a marker that is 1 at exactly two steps, one drawn uniformly from the first
    half ``[0, length // 2)`` and one from the second half ``[length // 2, length)``,
    and 0 elsewhere. The target is the sum of the two marked values (in [0, 2)).
    Always predicting 1 gives MSE ~ 1/6 (the baseline to beat).

    Args:
      key: PRNG key.
      batch_size: number of sequences ``B`` (static).
      length: sequence length ``T >= 2`` (static).

    Returns:
      ``(x [B, T, 2] float32, y [B] float32)``.

    References:
      Hochreiter & Schmidhuber (1997), Long Short-Term Memory (experiment 4);
      Le, Jaitly & Hinton (2015), A Simple Way to Initialize Recurrent Networks of
      Rectified Linear Units (the marker-per-half variant used here).
    """
    batch_size = check_int("batch_size", batch_size)
    length = check_int("length", length, minimum=2)
    return _adding(key, batch_size, length)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _adding(key, batch_size, length):
    kv, k1, k2 = jax.random.split(key, 3)
    half = length // 2
    # 1-D draws reshaped: XLA:CPU compiles 1-D threefry draws much faster than n-D ones.
    values = jax.random.uniform(kv, (batch_size * length,), jnp.float32).reshape(batch_size, length)
    i1 = jax.random.randint(k1, (batch_size,), 0, half)
    i2 = jax.random.randint(k2, (batch_size,), half, length)
    steps = jnp.arange(length)
    marker = ((steps == i1[:, None]) | (steps == i2[:, None])).astype(jnp.float32)
    x = jnp.stack([values, marker], axis=-1)
    y = jnp.sum(values * marker, axis=1)
    return x, y


def copy_task(
    key: jax.Array,
    batch_size: int,
    delay: int,
    *,
    copy_length: int = 10,
    num_symbols: int = 8,
    one_hot: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Sample a batch of the copy (memory) task.

    Alphabet: ``0`` = blank, ``1..num_symbols`` = data symbols, ``num_symbols + 1`` =
    delimiter ("go"). Sequence length ``L = delay + 2 * copy_length``. Input: the first
    ``copy_length`` steps hold random data symbols, then ``delay - 1`` blanks, the
    delimiter at step ``copy_length + delay - 1``, then ``copy_length`` blanks. Target:
    blanks for the first ``delay + copy_length`` steps, then the data symbols. A model
    that outputs blanks and then guesses uniformly scores cross-entropy
    ``copy_length * log(num_symbols) / L`` (the memoryless baseline).

    Args:
      key: PRNG key.
      batch_size: ``B`` (static).
      delay: ``T >= 1``, the number of steps between the end of the data and the start of
        the recall (Arjovsky et al. use T in {100, 200, 300, 500}).
      copy_length: number of symbols to memorize (10 in the paper).
      num_symbols: data alphabet size (8 in the paper).
      one_hot: return x one-hot ``[B, L, num_symbols + 2]`` float32 (else int32 tokens).

    Returns:
      ``(x, y)``: x ``[B, L, num_symbols + 2]`` float32 (or ``[B, L]`` int32), y ``[B, L]``
      int32 labels in ``0..num_symbols`` (use ``output="sequence"`` and cross-entropy).

    References:
      Hochreiter & Schmidhuber (1997), Long Short-Term Memory; Arjovsky, Shah & Bengio
      (2016), Unitary Evolution Recurrent Neural Networks (section 4.1).
    """
    batch_size = check_int("batch_size", batch_size)
    delay = check_int("delay", delay)
    copy_length = check_int("copy_length", copy_length)
    num_symbols = check_int("num_symbols", num_symbols, minimum=2)
    if not isinstance(one_hot, bool):
        raise TypeError(f"one_hot must be a bool, got {one_hot!r}")
    return _copy(key, batch_size, delay, copy_length, num_symbols, one_hot)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _copy(key, batch_size, delay, copy_length, num_symbols, one_hot):
    data = jax.random.randint(key, (batch_size * copy_length,), 1, num_symbols + 1,
                              dtype=jnp.int32).reshape(batch_size, copy_length)
    blank_mid = jnp.zeros((batch_size, delay - 1), jnp.int32)
    go = jnp.full((batch_size, 1), num_symbols + 1, jnp.int32)
    blank_end = jnp.zeros((batch_size, copy_length), jnp.int32)
    x = jnp.concatenate([data, blank_mid, go, blank_end], axis=1)
    y = jnp.concatenate([jnp.zeros((batch_size, delay + copy_length), jnp.int32), data], axis=1)
    if one_hot:
        x = jax.nn.one_hot(x, num_symbols + 2, dtype=jnp.float32)
    return x, y

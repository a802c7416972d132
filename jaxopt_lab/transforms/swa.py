"""Weight averaging as optax gradient transformations: SWA and an EMA of the weights.

References:
    Izmailov, Podoprikhin, Garipov, Vetrov & Wilson (2018), "Averaging Weights Leads to
    Wider Optima and Better Generalization".
    Polyak & Juditsky (1992), "Acceleration of stochastic approximation by averaging".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import check_int_hparam, check_positive
from jaxopt_lab.transforms._state import find_state

__all__ = ["SWAState", "WeightEMAState", "swa", "swa_params", "weight_ema"]


class SWAState(NamedTuple):
    """State of :func:`swa`.

    Attributes:
        count: ``[]`` int32, updates seen (the step index of the next update).
        num_averaged: ``[]`` int32, parameter snapshots in the average.
        average: pytree like params (leaf shapes of params): the running average
            (equal to the initial params until the first snapshot).
    """

    count: jax.Array
    num_averaged: jax.Array
    average: Any


def swa(start_step: int = 0, frequency: int = 1) -> optax.GradientTransformation:
    """Running average of the parameters from ``start_step`` every ``frequency`` steps.

    At update number ``k`` (0-based), if ``k >= start_step`` and
    ``(k - start_step) % frequency == 0``, the ``params`` passed to ``update`` (the
    iterate BEFORE this step's update is applied) join the average
    ``avg <- avg + (params - avg) / (n + 1)``. The updates pass through unchanged, so
    chain it anywhere (it only reads ``params``); read the average with
    :func:`swa_params`. Pair with a cyclic or constant learning rate
    (``optax.cosine_onecycle_schedule``, ``optax.constant_schedule``) as in the paper.

    The exponential-moving-average alternative comes straight from optax: feed the
    parameters to ``optax.ema`` as if they were updates::

        ema = optax.ema(decay=0.999)          # debiased by default
        ema_state = ema.init(params)
        ...                                   # after each optimizer step:
        ema_params, ema_state = ema.update(params, ema_state)

    Args:
        start_step: first update index that is averaged (>= 0).
        frequency: average every ``frequency`` updates (>= 1).

    Returns:
        ``optax.GradientTransformation`` with :class:`SWAState`; ``update`` needs
        ``params`` (ValueError if ``None``).

    Example:
        >>> import jax.numpy as jnp, optax
        >>> opt = optax.chain(optax.sgd(0.5), swa(start_step=0, frequency=1))
        >>> p = jnp.array([4.0]); state = opt.init(p)
        >>> for _ in range(2):
        ...     u, state = opt.update(p, state, p); p = optax.apply_updates(p, u)
        >>> swa_params(state)                 # mean of 4 and 2
        Array([3.], dtype=float32)

    References:
        Izmailov et al. (2018), "Averaging Weights Leads to Wider Optima and Better
        Generalization".
    """
    start_step = check_int_hparam("start_step", start_step, minimum=0)
    frequency = check_int_hparam("frequency", frequency, minimum=1)

    def init_fn(params):
        return SWAState(
            count=jnp.zeros([], jnp.int32),
            num_averaged=jnp.zeros([], jnp.int32),
            average=jax.tree.map(jnp.asarray, params),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("swa needs params in update(updates, state, params); got None")
        take = (state.count >= start_step) & ((state.count - start_step) % frequency == 0)
        n = state.num_averaged
        w = 1.0 / (n + 1).astype(jnp.float32)
        avg = jax.tree.map(
            lambda a, p: jnp.where(take, a + (p - a) * w.astype(a.dtype), a),
            state.average,
            params,
        )
        return updates, SWAState(
            count=optax.safe_increment(state.count),
            num_averaged=n + take.astype(jnp.int32),
            average=avg,
        )

    return optax.GradientTransformation(init_fn, update_fn)


def swa_params(opt_state: Any) -> Any:
    """The SWA average stored in ``opt_state`` (an :class:`SWAState` or a state holding one).

    Args:
        opt_state: optimizer state containing exactly one :class:`SWAState`.

    Returns:
        The averaged parameters (pytree like params).
    """
    return find_state(opt_state, SWAState).average


class WeightEMAState(NamedTuple):
    """State of :func:`weight_ema`.

    Attributes:
      ema: pytree like params (leaf shapes of params): the moving average of the weights.
    """

    ema: Any


def weight_ema(decay: float) -> optax.GradientTransformation:
    """Pass-through transform keeping an exponential moving average of the WEIGHTS.

    ``optax.ema`` averages the updates it is given (and starts from zero); here the
    average is of the parameters, starts AT the initial parameters (so it needs no
    debiasing) and is updated with ``optax.incremental_update`` from the iterate before
    each step: ``ema <- decay * ema + (1 - decay) * params``. Updates pass through
    unchanged; chain it after the optimizer, ``optax.chain(optax.sgd(lr),
    weight_ema(0.99))``, and read ``state.ema``.

    Args:
      decay: EMA decay in [0, 1).

    Returns:
      ``optax.GradientTransformation`` with :class:`WeightEMAState`; ``update`` needs params.

    References:
      Polyak & Juditsky, 1992. Acceleration of stochastic approximation by averaging.
    """
    check_positive("decay", decay, allow_zero=True)  # also rejects non-numbers and NaN
    if not isinstance(decay, jax.core.Tracer) and np.any(np.asarray(decay) >= 1):
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")

    def init(params):
        return WeightEMAState(ema=jax.tree.map(jnp.asarray, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("weight_ema needs params in update(updates, state, params)")
        return updates, WeightEMAState(optax.incremental_update(params, state.ema, 1.0 - decay))

    return optax.GradientTransformation(init, update)

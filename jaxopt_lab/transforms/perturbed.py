"""Perturbed gradient descent (Jin et al. 2017) as an optax gradient transformation.

Plain gradient descent started exactly at a strict saddle point never moves (the
gradient is zero). Perturbed GD adds a random kick ``xi ~ Uniform(ball of radius r)``
to the parameters whenever the gradient is small (``||g|| <= g_thres``) and no kick
happened in the last ``t_thres`` steps; gradient descent then amplifies the component
along the negative-curvature direction and escapes.

Sampling uniformly IN the ball of dimension ``d`` (all parameter entries together):
``xi = r * U**(1/d) * z / ||z||`` with ``z ~ N(0, I_d)`` (uniform direction on the
sphere) and ``U ~ Uniform(0, 1)`` (radius with density ``prop. to rho**(d-1)``).
``U**(1/d)`` is computed as ``exp(log(U) / d)``.

References:
    Jin, Ge, Netrapalli, Kakade & Jordan (2017), "How to Escape Saddle Points
    Efficiently".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import as_key, check_int_hparam, check_params, check_positive

__all__ = ["PerturbedGDState", "perturbed_gd", "sample_uniform_ball"]


def sample_uniform_ball(key: jax.Array, like: Any, radius: Any) -> Any:
    """Draw one point uniformly from the ball of ``radius`` in the space of ``like``.

    All leaves of ``like`` together form one vector of dimension ``d = optax.tree.size``.

    Args:
        key: PRNG key (typed or raw).
        like: pytree giving shapes and dtypes.
        radius: ball radius ``r >= 0``.

    Returns:
        Pytree like ``like`` with ``||xi|| <= r``, uniformly distributed in the ball.
    """
    key = as_key("key", key)
    check_params("like", like)
    check_positive("radius", radius, allow_zero=True)
    leaves, treedef = jax.tree.flatten(like)
    d = sum(int(np.size(x)) for x in leaves)
    k_dir, k_rad = jax.random.split(key)
    z = optax.tree.random_like(k_dir, like, jax.random.normal)
    z_norm = optax.tree.norm(z)
    u = jax.random.uniform(k_rad, (), minval=jnp.finfo(jnp.float32).tiny)
    rho = jnp.asarray(radius, jnp.float32) * jnp.exp(jnp.log(u) / d)
    scale = rho / jnp.where(z_norm > 0, z_norm, 1.0)
    return jax.tree.map(lambda x: (scale * x).astype(x.dtype), z)


class PerturbedGDState(NamedTuple):
    """State of :func:`perturbed_gd`.

    Attributes:
        count: ``[]`` int32, steps taken.
        last_perturbation: ``[]`` int32, step of the latest kick (``-t_thres - 1`` at
            start, so a kick may happen at step 0).
        key: ``[]`` typed PRNG key (``key<fry>``).
        num_perturbations: ``[]`` int32, kicks so far.
    """

    count: jax.Array
    last_perturbation: jax.Array
    key: jax.Array
    num_perturbations: jax.Array




def perturbed_gd(
    learning_rate: Any,
    *,
    radius: float,
    g_thres: float,
    t_thres: int,
    key: Any,
) -> optax.GradientTransformation:
    """Perturbed gradient descent: SGD plus a uniform-ball kick near stationary points.

    Each step: if ``||grad|| <= g_thres`` and ``step - last_kick > t_thres``, draw
    ``xi`` uniformly from the ball of radius ``radius`` (see
    :func:`sample_uniform_ball`). The returned update is
    ``-learning_rate * grad + xi`` (``xi = 0`` without a kick): the kick moves the
    parameters by at most ``radius`` and is NOT scaled by the learning rate, as in
    Jin et al. Their gradient step is taken at the kicked point ``x + xi``; here the
    kick and the gradient step at ``x`` share one update (no extra gradient
    evaluation), which differs by ``learning_rate * (grad f(x + xi) - grad f(x))``, at
    most ``learning_rate * L * radius`` for an ``L``-smooth ``f``; the escape mechanism
    (negative curvature amplifying the kick from the next step on) is unchanged.

    Args:
        learning_rate: step size ``eta`` (scalar or an optax schedule).
        radius: ``r >= 0``, the kick radius.
        g_thres: kick only when the gradient norm is at most this (>= 0).
        t_thres: minimum number of steps between kicks (>= 0).
        key: typed key (``jax.random.key``), raw ``uint32[2]`` key or int seed; required
            (no hidden default). Kept in the state as a typed key so sweeps can fold a
            seed into it.

    Returns:
        ``optax.GradientTransformation`` with :class:`PerturbedGDState`.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> opt = perturbed_gd(0.1, radius=0.1, g_thres=1e-3, t_thres=10, key=0)
        >>> x = jnp.zeros(2)          # the saddle of x^2 - y^2
        >>> state = opt.init(x)
        >>> u, state = opt.update(jnp.zeros(2), state, x)
        >>> int(state.num_perturbations)
        1

    References:
        Jin, Ge, Netrapalli, Kakade & Jordan (2017), "How to Escape Saddle Points
        Efficiently".
    """
    if not callable(learning_rate):
        check_positive("learning_rate", learning_rate)
    check_positive("radius", radius, allow_zero=True)
    check_positive("g_thres", g_thres, allow_zero=True)
    t_thres = check_int_hparam("t_thres", t_thres)
    key = as_key("key", key)

    def init_fn(params):
        return PerturbedGDState(
            count=jnp.zeros([], jnp.int32),
            last_perturbation=-jnp.asarray(t_thres, jnp.int32) - 1,
            key=key,
            num_perturbations=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None):
        del params
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        g_norm = optax.tree.norm(updates)
        kick = (g_norm <= g_thres) & (state.count - state.last_perturbation > t_thres)
        key, sub = jax.random.split(state.key)
        xi = sample_uniform_ball(sub, updates, radius)
        new = jax.tree.map(
            lambda g, x: (-jnp.asarray(lr, g.dtype) * g + jnp.where(kick, x, 0)).astype(g.dtype),
            updates,
            xi,
        )
        new_state = PerturbedGDState(
            count=optax.safe_increment(state.count),
            last_perturbation=jnp.where(kick, state.count, state.last_perturbation),
            key=key,
            num_perturbations=state.num_perturbations + kick.astype(jnp.int32),
        )
        return new, new_state

    return optax.GradientTransformation(init_fn, update_fn)

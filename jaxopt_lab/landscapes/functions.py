"""Analytic test functions ``f(x: [d]) -> scalar`` for ONE point (callers vmap).

Each function is pure jax.numpy and works in float32 or float64 (the dtype of ``x``).
Smooth everywhere except :func:`ackley` at the origin (see its docstring).

References:
  Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio, 2014. Identifying and attacking the
    saddle point problem in high-dimensional non-convex optimization.
  Rosenbrock, 1960. An automatic method for finding the greatest or least value of a function.
  Rastrigin, 1974. Systems of extremal control.
  Ackley, 1987. A connectionist machine for genetic hillclimbing.
  Styblinski and Tang, 1990. Experiments in nonconvex optimization: stochastic approximation
    with function smoothing and simulated annealing.
  Levy and Montalvo, 1985. The tunneling algorithm for the global minimization of functions.
  Himmelblau, 1972. Applied nonlinear programming.
  Dixon and Szego, 1978. The global optimization problem: an introduction (six-hump camel).
  Goldstein and Price, 1971. On descent from local minima.
  Surjanovic and Bingham, 2013. Virtual library of simulation experiments (SFU test functions).
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "sin_quadratic_1d",
    "saddle",
    "saddle_xy",
    "saddle_xy3",
    "saddle_trig",
    "saddle_ripple",
    "dauphin_saddle",
    "monkey_saddle",
    "rosenbrock",
    "rastrigin",
    "ackley",
    "styblinski_tang",
    "levy",
    "himmelblau",
    "six_hump_camel",
    "goldstein_price",
    "deep_linear_scalar_fn",
]


def sin_quadratic_1d(x):
    """``sin(3x) + 0.5 x^2`` on a 1-vector: several local minima, global min near -0.5."""
    x = x[0]
    return jnp.sin(3.0 * x) + 0.5 * x**2


def saddle(x):
    """``x^2 - y^2``: the textbook saddle at the origin (unbounded below)."""
    return x[0] ** 2 - x[1] ** 2


def saddle_xy(x):
    """``x^2 - y^2 + 0.1 x y``: a rotated saddle at the origin (unbounded below)."""
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1]


def saddle_xy3(x):
    """``x^2 - y^2 + 0.1 x y^3``: saddle at the origin with a cubic-in-y twist."""
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1] ** 3


def saddle_trig(x):
    """``x^2 - y^2 + 2 sin x + 2 cos y``: saddle shifted to (-0.739085, 0)."""
    return x[0] ** 2 - x[1] ** 2 + 2.0 * jnp.sin(x[0]) + 2.0 * jnp.cos(x[1])


def saddle_ripple(x):
    """``x^2 - y^2 + 0.1 sin 5x + 0.1 cos 5y``: a saddle with small ripples."""
    return x[0] ** 2 - x[1] ** 2 + 0.1 * jnp.sin(5.0 * x[0]) + 0.1 * jnp.cos(5.0 * x[1])


def dauphin_saddle(x):
    """``5 x^2 - y^2``: the saddle of Dauphin et al. (2014), Hessian eigenvalues 10 and -2."""
    return 5.0 * x[0] ** 2 - x[1] ** 2


def monkey_saddle(x):
    """``x^3 - 3 x y^2``: monkey saddle; zero Hessian (degenerate) at the origin."""
    return x[0] ** 3 - 3.0 * x[0] * x[1] ** 2


def rosenbrock(x):
    """``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` (d >= 2), global min 0 at ones."""
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rastrigin(x):
    """``10 d + sum_i (x_i^2 - 10 cos 2 pi x_i)``, global min 0 at the origin."""
    return jnp.sum(10.0 + x**2 - 10.0 * jnp.cos(2.0 * jnp.pi * x))


def ackley(x):
    """Ackley: ``-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos 2 pi x) + 20 + e``.

    Global min 0 at the origin, where the ``sqrt`` term has a cone-shaped kink. It is
    implemented with a "double where" so that gradients and Hessians are finite there:
    at exactly ``x = 0`` the kink term contributes zero gradient and zero Hessian, so
    the Hessian at the origin is that of the cosine term, ``e (2 pi)^2 / d * I``
    (positive definite), and the origin classifies as a minimum.
    """
    d = x.shape[0]
    r2 = jnp.sum(x**2) / d
    pos = r2 > 0
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)
    return (
        -20.0 * jnp.exp(-0.2 * r)
        - jnp.exp(jnp.sum(jnp.cos(2.0 * jnp.pi * x)) / d)
        + 20.0
        + jnp.e
    )


def styblinski_tang(x):
    """``0.5 sum_i (x_i^4 - 16 x_i^2 + 5 x_i)``, global min -39.16617 d at x_i = -2.903534."""
    return 0.5 * jnp.sum(x**4 - 16.0 * x**2 + 5.0 * x)


def levy(x):
    """Levy function (d >= 1), global min 0 at ones; ``w_i = 1 + (x_i - 1) / 4``."""
    w = 1.0 + (x - 1.0) / 4.0
    head = jnp.sin(jnp.pi * w[0]) ** 2
    mid = jnp.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * jnp.sin(jnp.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + jnp.sin(2.0 * jnp.pi * w[-1]) ** 2)
    return head + mid + tail


def himmelblau(x):
    """``(x^2 + y - 11)^2 + (x + y^2 - 7)^2``: four global minima (f = 0), one max, four saddles."""
    return (x[0] ** 2 + x[1] - 11.0) ** 2 + (x[0] + x[1] ** 2 - 7.0) ** 2


def six_hump_camel(x):
    """``(4 - 2.1 x^2 + x^4 / 3) x^2 + x y + (-4 + 4 y^2) y^2``: six local minima."""
    a, b = x[0], x[1]
    return (4.0 - 2.1 * a**2 + a**4 / 3.0) * a**2 + a * b + (-4.0 + 4.0 * b**2) * b**2


def goldstein_price(x):
    """Goldstein-Price function on [-2, 2]^2, global min 3 at (0, -1)."""
    a, b = x[0], x[1]
    t1 = 1.0 + (a + b + 1.0) ** 2 * (
        19.0 - 14.0 * a + 3.0 * a**2 - 14.0 * b + 6.0 * a * b + 3.0 * b**2
    )
    t2 = 30.0 + (2.0 * a - 3.0 * b) ** 2 * (
        18.0 - 32.0 * a + 12.0 * a**2 + 48.0 * b - 36.0 * a * b + 27.0 * b**2
    )
    return t1 * t2


def deep_linear_scalar_fn(x, c=1.0):
    """``0.5 (a b - c)^2`` for ``x = (a, b)``: a two-layer scalar linear network."""
    return 0.5 * (x[0] * x[1] - c) ** 2

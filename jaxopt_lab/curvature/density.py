"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ), probes vmapped."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import (
    as_key,
    check_callable,
    check_finite,
    check_int,
    check_params,
    check_positive,
    check_scalar_function,
)
from jaxopt_lab.curvature.hvp import hvp
from jaxopt_lab.curvature.lanczos import lanczos, tridiagonal_eigh

__all__ = ["SpectralDensity", "spectral_density"]

PyTree = Any


class SpectralDensity(NamedTuple):
    """Output of :func:`spectral_density`.

    Attributes:
      grid: ``[G]`` eigenvalue grid.
      density: ``[G]`` Gaussian-smoothed density on ``grid`` (integrates to ~1 when the
        grid covers the nodes by a few ``sigma``).
      nodes: ``[P, m]`` Ritz values (Gauss quadrature nodes) per probe.
      weights: ``[P, m]`` quadrature weights per probe (each row sums to 1).
      sigma: scalar, the Gaussian width used.
    """

    grid: jax.Array
    density: jax.Array
    nodes: jax.Array
    weights: jax.Array
    sigma: jax.Array


def _slq_nodes(matvec, key, n, dtype, num_probes, num_iters):
    k_probe, k_restart = jax.random.split(key)
    probes = jax.random.rademacher(k_probe, (num_probes, n), dtype=dtype)

    def one(v, k):
        res = lanczos(matvec, v, num_iters, key=k)
        theta, s = tridiagonal_eigh(res.alphas, res.betas)
        return theta, s[0, :] ** 2

    return jax.vmap(one)(probes, jax.random.split(k_restart, num_probes))


def _smooth(nodes, weights, grid, sigma):
    z = (grid[:, None, None] - nodes[None]) / sigma
    kern = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2.0 * jnp.pi))
    return jnp.sum(kern * weights[None], axis=(1, 2)) / nodes.shape[0]


@functools.partial(
    jax.jit, static_argnames=("f", "num_probes", "num_iters", "num_grid", "auto_sigma")
)
def _density_jit(f, x, args, key, grid, sigma, *, num_probes, num_iters, num_grid, auto_sigma):
    flat, unravel = ravel_pytree(x)
    matvec = lambda v: ravel_pytree(hvp(f, x, unravel(v), *args))[0]
    nodes, weights = _slq_nodes(matvec, key, flat.shape[0], flat.dtype, num_probes, num_iters)
    lo, hi = jnp.min(nodes), jnp.max(nodes)
    scale = jnp.maximum(jnp.maximum(jnp.abs(lo), jnp.abs(hi)), 1.0)
    if auto_sigma:
        sigma = jnp.maximum(0.01 * (hi - lo), 1e-4 * scale)
    sigma = jnp.asarray(sigma, flat.dtype)
    if num_grid:
        grid = jnp.linspace(lo - 5.0 * sigma, hi + 5.0 * sigma, num_grid, dtype=flat.dtype)
    return grid, _smooth(nodes, weights, grid, sigma), nodes, weights, sigma


def spectral_density(
    f: Callable[..., jax.Array],
    x: PyTree,
    *args: Any,
    key: jax.Array,
    num_probes: int = 8,
    num_iters: int = 64,
    grid: int | jax.Array | None = None,
    sigma: float | None = None,
) -> SpectralDensity:
    """Eigenvalue density of the Hessian of ``f`` at ``x`` by stochastic Lanczos quadrature.

    For each of ``num_probes`` Rademacher probes ``v`` (vmapped), ``num_iters``
    fully reorthogonalized Lanczos steps from ``v / ||v||`` give a Gauss quadrature
    rule: nodes = Ritz values ``theta_i``, weights = squared first components of the
    tridiagonal eigenvectors. The density is the probe average of
    ``sum_i w_i N(t; theta_i, sigma^2)``, a smoothed estimate of
    ``(1/n) sum_j delta(t - lambda_j)``; its mean equals the probe average of
    ``v^T H v / ||v||^2``, an unbiased estimate of ``tr(H) / n``.

    Memory: the Lanczos bases of all probes are held at once, ``P * m * n`` floats.

    Args:
      f: scalar function ``f(x, *args)``.
      x: parameters (pytree).
      *args: extra arguments of ``f``.
      key: PRNG key for probes (and breakdown restarts).
      num_probes: number of probes ``P``.
      num_iters: Lanczos steps ``m`` per probe (clipped to the dimension).
      grid: ``None`` (1000 points spanning the Ritz values +- 5 sigma), an int (that
        many auto points) or a 1-D array of grid points.
      sigma: Gaussian width; default ``max(0.01 * (max - min Ritz value),
        1e-4 * max(|Ritz value|, 1))``.

    Returns:
      :class:`SpectralDensity` ``(grid, density, nodes, weights, sigma)``.

    References:
      Lin, Saad, Yang, 2016. Approximating spectral densities of large matrices.
      Ubaru, Chen, Saad, 2017. Fast estimation of tr(f(A)) via stochastic Lanczos
      quadrature.
      Ghorbani, Krishnan, Xiao, 2019. An investigation into neural net optimization via
      Hessian eigenvalue density.
    """
    check_callable("f", f)
    dim = check_params("x", x)
    num_probes = check_int("num_probes", num_probes, minimum=1)
    num_iters = min(check_int("num_iters", num_iters, minimum=1), dim)
    if grid is None:
        num_grid, grid_arr = 1000, jnp.zeros((0,))
    elif isinstance(grid, int | np.integer) and not isinstance(grid, bool):
        num_grid, grid_arr = check_int("grid", grid, minimum=2), jnp.zeros((0,))
    else:
        grid_arr = jnp.asarray(grid)
        if grid_arr.ndim != 1 or grid_arr.shape[0] < 2:
            raise ValueError(
                f"grid must be None, an int >= 2 or a 1-D array of >= 2 points, "
                f"got shape {grid_arr.shape}"
            )
        check_finite("grid", grid_arr)
        num_grid = 0
    if sigma is not None:
        check_positive("sigma", sigma)
    key = as_key("key", key)
    check_scalar_function(f, x, args)
    g, d, nodes, weights, s = _density_jit(
        f,
        x,
        args,
        key,
        grid_arr,
        jnp.asarray(1.0 if sigma is None else sigma, jnp.float32),
        num_probes=num_probes,
        num_iters=num_iters,
        num_grid=num_grid,
        auto_sigma=sigma is None,
    )
    return SpectralDensity(g, d, nodes, weights, s)

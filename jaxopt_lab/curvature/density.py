"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ), probes vmapped."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import (
    as_key,
    check_finite,
    check_int,
    check_positive,
)
from jaxopt_lab.curvature import linear_operator as lo
from jaxopt_lab.curvature._cache import cached_jit
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


def _build_density(static):
    op_static, num_probes, num_iters, num_grid, auto_sigma = static

    def density_program(dynamic, key, grid, sigma):
        matvec, flat0, _ = lo.build(op_static, dynamic)
        nodes, weights = _slq_nodes(matvec, key, flat0.shape[0], flat0.dtype, num_probes,
                                    num_iters)
        lo_, hi = jnp.min(nodes), jnp.max(nodes)
        scale = jnp.maximum(jnp.maximum(jnp.abs(lo_), jnp.abs(hi)), 1.0)
        if auto_sigma:
            sigma = jnp.maximum(0.01 * (hi - lo_), 1e-4 * scale)
        sigma = jnp.asarray(sigma, flat0.dtype)
        if num_grid:
            grid = jnp.linspace(lo_ - 5.0 * sigma, hi + 5.0 * sigma, num_grid,
                                dtype=flat0.dtype)
        return grid, _smooth(nodes, weights, grid, sigma), nodes, weights, sigma

    return density_program


def spectral_density(
    f: Any,
    x: PyTree = lo._MISSING,
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

    Works on the Hessian of ``f`` or on any :class:`CurvatureOperator` (GGN, Fisher, a
    parameter block, a dataset in micro-batches, a user matvec); one compiled program
    per (operator structure, shapes, options), cached on a structural fingerprint.

    Args:
      f: scalar function ``f(x, *args)``, or a :class:`CurvatureOperator` (then no
        ``x``/``args``).
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
    op = lo.as_operator(f, x, args)
    dim = op.dim
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
    lo.check_fits(f, x, args)
    static, dynamic = lo.split(op)
    program = cached_jit(
        "spectral_density", (static, num_probes, num_iters, num_grid, sigma is None),
        _build_density)
    g, d, nodes, weights, s = program(
        dynamic, key, grid_arr, jnp.asarray(1.0 if sigma is None else sigma, jnp.float32))
    return SpectralDensity(g, d, nodes, weights, s)

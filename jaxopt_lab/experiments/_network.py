"""Helpers shared by the network-landscape experiments (edge_of_stability, narrow_minima,
spectra, landscape_slices): full-batch losses, a flat Hessian-vector product,
warm-started power iteration that runs under ``vmap`` inside a training scan, a dense
float64 Hessian for small networks, and checks of user input that name the argument.

Nothing here trains over seeds: training goes through the sweep core
(:func:`jaxopt_lab.compare.train` / :func:`jaxopt_lab.compare.sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def check_learning_rates(name: str, values: Any) -> tuple[float, ...]:
    """A non-empty tuple of finite positive learning rates; ValueError naming ``name``."""
    if isinstance(values, int | float):
        values = (values,)
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ValueError(f"{name} must be a non-empty tuple of floats, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
            raise ValueError(f"{name} must hold real numbers, got {v!r}")
        if not math.isfinite(float(v)) or float(v) <= 0.0:
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        out.append(float(v))
    return tuple(out)


def flat_hvp(loss: Callable[[Any], jax.Array], params: Any) -> Callable[[jax.Array], jax.Array]:
    """``v -> H v`` on the flattened parameters (forward-over-reverse), traceable."""
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(loss)

    def matvec(v):
        return ravel_pytree(jax.jvp(grad, (params,), (unravel(v.astype(flat.dtype)),))[1])[0]

    return matvec


def power_sharpness(loss: Callable[[Any], jax.Array], params: Any, v: jax.Array,
                    num_iters: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``num_iters`` power-iteration HVPs from the unit vector ``v`` (warm start).

    Returns ``(lambda, v_next, residual)``: the Rayleigh quotient of the last iterate,
    the next unit iterate (carry it to the next call) and ``||H v - lambda v||``. A fixed
    number of HVPs (a ``lax.fori_loop``) so that it batches under ``vmap`` without a
    ``while_loop`` running every seed to the slowest one. Finds the eigenvalue largest in
    magnitude: the sharpness whenever the top eigenvalue dominates the most negative one
    (true along GD training of these networks; the oracle test checks it).
    """
    matvec = flat_hvp(loss, params)

    def body(_, carry):
        v, _, _ = carry
        w = matvec(v)
        lam = jnp.vdot(v, w)
        r = jnp.linalg.norm(w - lam * v)
        nrm = jnp.linalg.norm(w)
        return jnp.where(nrm > 0, w / jnp.where(nrm > 0, nrm, 1.0), v), lam, r

    zero = jnp.zeros((), v.dtype)
    v, lam, r = jax.lax.fori_loop(0, num_iters, body, (v, zero, zero))
    return lam, v, r


def dense_hessian(loss: Callable[[Any], jax.Array], params: Any) -> np.ndarray:
    """The dense Hessian of ``loss`` at ``params`` in float64 (small networks only)."""
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                                                  params))

        def f(z):
            return loss(unravel(z))

        return np.asarray(jax.jit(jax.hessian(f))(flat))


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """``0.5 * mean over examples of ||pred - target||^2`` (Cohen et al. 2021's square loss)."""
    return 0.5 * jnp.mean(jnp.sum((pred - target) ** 2, axis=-1))


def digits_onehot(num_examples: int | None = None) -> dict:
    """Digits ``{"x": [n, 64], "y": [n, 10] one-hot, "x_test", "y_test", "labels"}``."""
    from jaxopt_lab import data

    d = data.load_digits()
    x, y = d["train"]
    n = len(x) if num_examples is None else min(int(num_examples), len(x))
    xt, yt = d["test"]
    eye = np.eye(10, dtype=np.float32)
    return {"x": np.asarray(x[:n], np.float32), "y": eye[np.asarray(y[:n])],
            "x_test": np.asarray(xt, np.float32), "y_test": eye[np.asarray(yt)]}


def late_slice(n: int, fraction: float = 0.25) -> slice:
    """The last ``fraction`` of ``n`` recorded points (at least one)."""
    return slice(max(0, n - max(1, int(round(n * fraction)))), n)

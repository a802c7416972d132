"""Lanczos tridiagonalization with full reorthogonalization, as one lax loop.

The loop is a ``lax.fori_loop`` over a fixed-size basis buffer, so the traced
program (and its compile time) does not grow with the number of iterations.
``tridiagonal_eigh`` solves the small tridiagonal eigenproblem in float64.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import as_key, check_callable, check_finite, check_int, is_tracer

__all__ = ["LanczosResult", "lanczos", "tridiagonal_eigh"]


class LanczosResult(NamedTuple):
    """Output of :func:`lanczos`.

    Attributes:
      alphas: ``[m]`` diagonal of the tridiagonal matrix ``T = Q A Q^T``.
      betas: ``[m-1]`` off-diagonal of ``T``; a zero marks a breakdown (restart).
      basis: ``[m, n]`` orthonormal Lanczos vectors, one per row.
    """

    alphas: jax.Array
    betas: jax.Array
    basis: jax.Array


def breakdown_tol(dtype) -> float:
    """Lanczos breakdown threshold: a beta below this multiple of the running ||T|| estimate
    counts as a breakdown (an invariant subspace was found)."""
    return 100.0 * float(jnp.finfo(dtype).eps)


#: Rows of the Krylov basis read per block by :func:`orthogonalize_against`.
ORTHO_BLOCK = 8


def orthogonalize_against(w: jax.Array, basis: jax.Array, count: Any, *,
                          passes: int = 2) -> jax.Array:
    """Gram-Schmidt of ``w`` against the first ``count`` rows of ``basis`` (traceable).

    The filled rows are read in blocks of :data:`ORTHO_BLOCK` (a loop over
    ``ceil(count / block)`` blocks, classical Gram-Schmidt inside a block, blocks in turn),
    so a step costs ``O(count x n)``, not ``O(rows x n)``: a large, mostly empty Krylov
    buffer no longer makes every step as dear as a full one. ``passes = 2``: "twice is
    enough" (Giraud, Langou & Rozloznik 2005).
    """
    rows = basis.shape[0]
    b = min(ORTHO_BLOCK, rows)
    count = jnp.asarray(count, jnp.int32)
    offsets = jnp.arange(b)

    def block(i, w):
        start = jnp.minimum(i * b, rows - b)  # the last block may overlap the one before
        blk = jax.lax.dynamic_slice_in_dim(basis, start, b, axis=0)
        ids = start + offsets
        keep = (ids >= i * b) & (ids < count)
        return w - jnp.where(keep, blk @ w, 0.0) @ blk

    for _ in range(passes):
        w = jax.lax.fori_loop(0, (count + b - 1) // b, block, w)
    return w


def combine_rows(coeffs: jax.Array, basis: jax.Array, count: Any) -> jax.Array:
    """``sum_{i < count} coeffs[i] * basis[i]`` (traceable), reading only the first
    ``count`` rows, in blocks of :data:`ORTHO_BLOCK` (``count = 0``: zeros, free)."""
    rows = basis.shape[0]
    b = min(ORTHO_BLOCK, rows)
    count = jnp.asarray(count, jnp.int32)
    offsets = jnp.arange(b)

    def block(i, acc):
        start = jnp.minimum(i * b, rows - b)
        blk = jax.lax.dynamic_slice_in_dim(basis, start, b, axis=0)
        c = jax.lax.dynamic_slice_in_dim(coeffs, start, b, axis=0)
        ids = start + offsets
        return acc + jnp.where((ids >= i * b) & (ids < count), c, 0.0) @ blk

    return jax.lax.fori_loop(0, (count + b - 1) // b, block,
                             jnp.zeros(basis.shape[1:], basis.dtype))


def restart_direction(pool: jax.Array, j: Any) -> jax.Array:
    """A random restart direction for step ``j`` after a Lanczos breakdown: the random
    vector ``pool`` (drawn once per run) rotated by a step-dependent shift (cheap, and a
    different direction at every step)."""
    return jnp.roll(pool, 7919 * (jnp.asarray(j, jnp.int32) + 1))


def fresh_start(q: jax.Array, basis: jax.Array, count: Any, fresh: Any) -> jax.Array:
    """``q`` itself, or, when ``fresh`` (a restart direction), ``q`` orthogonalized
    against the first ``count`` basis rows and normalized (zero when the Krylov space is
    exhausted). ``count = 0`` when not fresh costs nothing (an empty block loop)."""
    z = orthogonalize_against(q, basis, count)
    nz = jnp.linalg.norm(z)
    tol = breakdown_tol(q.dtype)
    return jnp.where(fresh, jnp.where(nz > tol, z / jnp.where(nz > 0, nz, 1.0), 0.0), q)


def lanczos_with_beta(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    num_iters: int,
    *,
    reorthogonalize: bool = True,
    key: jax.Array | None = None,
) -> tuple[LanczosResult, jax.Array]:
    """Like :func:`lanczos` but also returns the final ``beta_m`` (for residual estimates)."""
    check_callable("matvec", matvec)
    num_iters = check_int("num_iters", num_iters, minimum=1)
    if v0.ndim != 1:
        raise ValueError(f"v0 must be a flat 1-D vector of shape (n,), got shape {v0.shape}")
    check_finite("v0", v0)
    if not is_tracer(v0) and not np.any(np.asarray(v0)):
        raise ValueError("v0 must be a nonzero vector, got all zeros")
    n = v0.shape[0]
    m = num_iters
    dtype = v0.dtype if jnp.issubdtype(v0.dtype, jnp.floating) else jnp.float32
    v0 = v0.astype(dtype)
    key = jax.random.key(0) if key is None else as_key("key", key)
    tol = breakdown_tol(dtype)

    # Breakdown restarts: a random direction from this pool, orthogonalized against the
    # basis at the start of the next step (fresh_start); no lax.cond holding the basis.
    pool = jax.random.normal(key, (n,), dtype)
    q0 = v0 / jnp.linalg.norm(v0)

    def body(j, carry):
        basis, alphas, betas, q, q_prev, beta_prev, anorm, fresh = carry
        q = fresh_start(q, basis, jnp.where(fresh, j, 0), fresh)
        basis = basis.at[j].set(q)
        w = matvec(q)
        alpha = jnp.vdot(q, w)
        w = w - alpha * q - beta_prev * q_prev
        if reorthogonalize:
            w = orthogonalize_against(w, basis, j + 1)
        beta = jnp.linalg.norm(w)
        anorm = jnp.maximum(anorm, jnp.abs(alpha) + beta + beta_prev)
        broke = beta <= tol * anorm
        q_next = jnp.where(broke, restart_direction(pool, j),
                           w / jnp.where(beta > 0, beta, 1.0))
        beta = jnp.where(broke, jnp.zeros_like(beta), beta)
        return (basis, alphas.at[j].set(alpha), betas.at[j].set(beta), q_next, q, beta,
                anorm, broke)

    init = (
        jnp.zeros((m, n), dtype),
        jnp.zeros((m,), dtype),
        jnp.zeros((m,), dtype),
        q0,
        jnp.zeros_like(q0),
        jnp.zeros((), dtype),
        jnp.zeros((), dtype),
        jnp.bool_(False),
    )
    basis, alphas, betas, *_ = jax.lax.fori_loop(0, m, body, init)
    return LanczosResult(alphas, betas[: m - 1], basis), betas[m - 1]


def lanczos(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    num_iters: int,
    *,
    reorthogonalize: bool = True,
    key: jax.Array | None = None,
) -> LanczosResult:
    """Run ``num_iters`` Lanczos steps on a symmetric linear operator.

    Builds an orthonormal basis ``Q`` (rows) of the Krylov space
    ``span{v0, A v0, ..., A^{m-1} v0}`` and the tridiagonal ``T = Q A Q^T`` given by
    ``alphas`` (diagonal) and ``betas`` (off-diagonal). Each step costs one
    ``matvec``. The loop is a ``lax.fori_loop``: tracing and compile time do not grow
    with ``num_iters``; the basis buffer is ``[num_iters, n]``.

    With ``reorthogonalize=True`` every new vector is orthogonalized against all
    stored vectors by two passes of classical Gram-Schmidt (rows not yet filled are
    masked out), which keeps ``Q`` orthonormal to working precision and prevents
    spurious ("ghost") copies of converged eigenvalues. Cost O(m n) per step.

    Breakdown: when ``beta_j <= 100 * eps * ||T||`` the Krylov space is invariant
    (its Ritz values are exact eigenvalues). The step then stores ``beta_j = 0`` and
    restarts with a random vector orthogonalized against the basis (drawn from
    ``key``, default ``jax.random.key(0)``), so ``T`` becomes block diagonal and all
    ``m`` rows of the basis stay orthonormal. If the whole space is exhausted
    (``m > n``), the restart vector is zero and the remaining rows are zero: callers
    should keep ``num_iters <= n`` (``eigsh`` clips it).

    Works inside ``jit``/``vmap``; it is not jitted itself (``matvec`` is a closure).

    Args:
      matvec: function ``[n] -> [n]``, a symmetric linear operator.
      v0: ``[n]`` start vector (normalized internally, must be nonzero).
      num_iters: number of steps ``m >= 1`` (static).
      reorthogonalize: full reorthogonalization (recommended).
      key: PRNG key for breakdown restarts (optional).

    Returns:
      ``LanczosResult(alphas [m], betas [m-1], basis [m, n])``.

    Example:
      >>> import jax.numpy as jnp
      >>> A = jnp.diag(jnp.arange(1.0, 6.0))
      >>> res = lanczos(lambda v: A @ v, jnp.ones(5), 5)
      >>> evals, _ = tridiagonal_eigh(res.alphas, res.betas)  # ~ [1, 2, 3, 4, 5]

    References:
      Lanczos, 1950. An iteration method for the solution of the eigenvalue problem
      of linear differential and integral operators.
      Paige, 1972. Computational variants of the Lanczos method for the eigenproblem.
      Giraud, Langou, Rozloznik, 2005. The loss of orthogonality in the Gram-Schmidt
      orthogonalization process ("twice is enough").
    """
    return lanczos_with_beta(matvec, v0, num_iters, reorthogonalize=reorthogonalize, key=key)[0]


def _enable_x64():
    # jax.enable_x64 in recent jax; jax.experimental.enable_x64 in older releases.
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def use_x64() -> bool:
    """Whether the tridiagonal eigen-solve runs in float64 (TPUs have none; CPU, GPU do)."""
    return jax.default_backend() != "tpu"


def tridiagonal_eigh(alphas: jax.Array, betas: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eigen-decomposition of the symmetric tridiagonal matrix ``(alphas, betas)``.

    The small ``m x m`` problem is solved in float64 through a local
    ``jax.enable_x64(True)`` context, which also works while tracing inside ``jit`` or
    ``vmap`` (the traced ops are float64, the results are cast back to the input
    dtype). Without x64 (on TPU, where float64 is not native) it falls back to a
    float32 ``eigh``; eigenvalues are then accurate to about ``1e-7 * ||T||``
    absolute, so eigenvalues much smaller than the largest lose relative accuracy.

    Args:
      alphas: ``[m]`` diagonal.
      betas: ``[m-1]`` off-diagonal.

    Returns:
      ``(evals [m] ascending, evecs [m, m])`` with ``T = evecs @ diag(evals) @ evecs.T``
      (eigenvectors are columns).
    """
    alphas = jnp.asarray(alphas)
    betas = jnp.asarray(betas)
    if alphas.ndim != 1 or betas.shape != (max(alphas.shape[0] - 1, 0),):
        raise ValueError(
            f"alphas must have shape (m,) and betas shape (m-1,), got {alphas.shape} "
            f"and {betas.shape}"
        )
    if not jnp.issubdtype(alphas.dtype, jnp.floating):
        alphas = alphas.astype(jnp.float32)
    return tridiagonal_eigh_jit(alphas, betas.astype(alphas.dtype), x64=use_x64())


@functools.partial(jax.jit, static_argnames=("x64",))
def tridiagonal_eigh_jit(alphas, betas, *, x64):
    """Eigen-decomposition of the Lanczos tridiagonal (float64 when ``x64``), traceable."""
    out_dtype = alphas.dtype

    def solve(dtype):
        a = alphas.astype(dtype)
        b = betas.astype(dtype)
        t = jnp.diag(a) + jnp.diag(b, 1) + jnp.diag(b, -1)
        return jnp.linalg.eigh(t)

    if x64:
        with _enable_x64():
            w, v = solve(jnp.float64)
            w, v = w.astype(out_dtype), v.astype(out_dtype)
        return w, v
    w, v = solve(jnp.float32)
    return w.astype(out_dtype), v.astype(out_dtype)

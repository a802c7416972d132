"""Extreme eigenpairs of symmetric curvature operators: Lanczos ``eigsh`` and deflated
power iteration.

Both work matrix-free (Hessian-vector products, or any :class:`CurvatureOperator`:
GGN, empirical Fisher, a parameter block, a dataset in micro-batches, a user matvec)
and report true residuals ``||A v - lambda v||`` computed with real matvecs.

``eigsh`` is one jitted program per (operator structure, shapes, buffer size): ``k``,
``which``, the step limit and ``tol`` are traced values, so changing them does not
recompile as long as the Krylov buffer (a size ladder 64, 96, 128, 192, 256, ...) and
the output slots (8, 16, 32, ...) still fit. The program is cached on a structural
fingerprint of the user's functions (:mod:`jaxopt_lab.curvature._cache`): a new but
equal ``lambda`` or ``functools.partial`` reuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import (
    as_key,
    check_callable,
    check_choice,
    check_int,
    check_params,
    check_positive,
)
from jaxopt_lab.curvature import linear_operator as lo
from jaxopt_lab.curvature._cache import cached_jit
from jaxopt_lab.curvature.lanczos import (
    breakdown_tol,
    combine_rows,
    fresh_start,
    orthogonalize_against,
    restart_direction,
    tridiagonal_eigh_jit,
    use_x64,
)

__all__ = [
    "EigshResult",
    "PowerIterationResult",
    "eigsh",
    "eigsh_matvec",
    "power_iteration",
    "power_iteration_matvec",
]

PyTree = Any
_WHICH = ("LA", "SA", "both", "LM")
_CODE = {w: i for i, w in enumerate(_WHICH)}
_CHECK_EVERY = 5  # minimum Lanczos steps between two Ritz-residual checks


class EigshResult(NamedTuple):
    """Output of :func:`eigsh` / :func:`eigsh_matvec`.

    Attributes:
      eigenvalues: ``[K]`` Ritz values; ``K = k`` ("LA": largest first, descending;
        "SA": smallest first, ascending; "LM": largest magnitude first) or ``K = 2k``
        for "both" (the "SA" block followed by the "LA" block).
      eigenvectors: unit Ritz vectors stacked on a leading ``K`` axis, shaped like the
        parameters (zeros outside a ``param_filter`` block); ``[K, n]`` for a flat
        operator.
      residuals: ``[K]`` true residual norms ``||A v - lambda v||`` (one extra matvec
        each, at every verification).
      converged: ``[K]`` bool, ``residual <= tol * norm_estimate``.
      num_hvps: total matvecs: Lanczos steps + residual verifications.
      num_iters: Lanczos steps taken.
      eigenvectors_flat: ``[K, d]`` the same vectors over the flattened (selected)
        parameters, in ``ravel_pytree`` order.
      norm_estimate: ``max |Ritz value|``, a lower bound on ``||A||_2`` (exact up to the
        convergence of the extreme pair).
    """

    eigenvalues: jax.Array
    eigenvectors: PyTree
    residuals: jax.Array
    converged: jax.Array
    num_hvps: Any
    num_iters: Any = None
    eigenvectors_flat: jax.Array | None = None
    norm_estimate: jax.Array | None = None


class PowerIterationResult(NamedTuple):
    """Output of :func:`power_iteration`.

    Attributes:
      eigenvalues: ``[k]`` dominant eigenvalues (by magnitude), in the order found.
      eigenvectors: unit eigenvectors stacked on a leading ``k`` axis.
      residuals: ``[k]`` true residual norms ``||H v - lambda v||`` at the returned pair
        (computed with the last HVP of the iteration, not an extra one).
      num_hvps: ``[k]`` int32, HVPs spent on each pair (the last one included the
        residual check that triggered the stop).
      converged: ``[k]`` bool, relative residual of the deflated operator ``<= tol``
        reached within ``num_iters``.
    """

    eigenvalues: jax.Array
    eigenvectors: PyTree
    residuals: jax.Array
    num_hvps: jax.Array
    converged: jax.Array


# ------------------------------------------------------------------------- validation
def _buffer_size(m: int, dim: int) -> int:
    """Krylov buffer rows for ``m`` steps: ``dim`` when small, else the ladder 64, 96, ..."""
    if dim <= 64:
        return dim
    size, i = 64, 0
    while size < m:
        size = 64 * 2 ** ((i + 1) // 2) * (3 if (i + 1) % 2 else 2) // 2
        i += 1
    return min(size, dim)


def _slots(k_total: int, m_buf: int) -> int:
    size = 8
    while size < k_total:
        size *= 2
    return min(size, m_buf)


def _validate_eigs(k, which, num_iters, max_iters, dim, tol):
    k = check_int("k", k, minimum=1)
    check_choice("which", which, _WHICH)
    check_positive("tol", tol)
    k_total = 2 * k if which == "both" else k
    if k_total > dim:
        what = f"2*k = {k_total}" if which == "both" else f"k = {k}"
        raise ValueError(f"k too large: {what} exceeds the dimension {dim} (which={which!r})")
    if num_iters is not None and max_iters is not None:
        raise ValueError("pass num_iters (a fixed number of steps) or max_iters, not both")
    adaptive = num_iters is None
    if adaptive:
        name = "max_iters"
        limit = min(dim, max(120, 8 * k_total)) if max_iters is None else max_iters
    else:
        name, limit = "num_iters", num_iters
    limit = check_int(name, limit, minimum=1)
    # Documented clipping: a Krylov space has at most `dim` dimensions.
    limit = min(limit, dim)
    if limit < k_total:
        raise ValueError(
            f"{name} must be >= the number of requested eigenpairs ({k_total}), got {limit}"
        )
    return k, k_total, limit, adaptive


# ------------------------------------------------------------------------ the engine
def _select(evals, j, k, which, slots):
    """Indices into ascending ``evals`` (valid entries ``< j``) for each output slot.

    Sort-free (a sort costs more to compile than the rest of the selection): the "LM"
    order is the rank of each valid ``|evals|`` by pairwise comparison, O(m^2) flops.
    """
    m = evals.shape[0]
    s = jnp.arange(slots)
    pos = jnp.arange(m)
    valid = pos < j
    mag = jnp.abs(evals)
    beats = (mag[None, :] > mag[:, None]) | ((mag[None, :] == mag[:, None])
                                              & (pos[None, :] < pos[:, None]))
    rank = jnp.sum(beats & valid[None, :], axis=1)  # rank[i]: valid entries ahead of i
    lm = jnp.argmax((rank[None, :] == s[:, None]) & valid[None, :], axis=1)
    la = j - 1 - s
    both = jnp.where(s < k, s, j - 1 - (s - k))
    idx = jnp.where(which == 0, la, jnp.where(which == 1, s, jnp.where(which == 2, both, lm)))
    active = s < jnp.where(which == 2, 2 * k, k)
    return jnp.clip(idx, 0, jnp.maximum(j - 1, 0)), active


def _ritz(alphas, betas, j, anorm):
    """Eigenpairs of the leading ``j x j`` block of ``T``; padding sorts above them."""
    m = alphas.shape[0]
    pos = jnp.arange(m)
    pad = (2.0 * anorm + 1.0) * (1.0 + pos.astype(alphas.dtype) / m)
    a = jnp.where(pos < j, alphas, pad)
    b = jnp.where(pos[:-1] < j - 1, betas[:-1], 0.0)
    return tridiagonal_eigh_jit(a, b, x64=use_x64())


def _engine(matvec, v0, key, k, which, limit, tol, adaptive, *, m_buf, slots):
    """Lanczos with a dynamic step count and residual-driven stopping, as one while_loop.

    One ``matvec`` call site: each loop iteration is either a Lanczos step or the
    true-residual check of one Ritz pair. Returns
    ``(vals, vecs [slots, n], resid, converged, steps, matvecs, norm)``.
    """
    n = v0.shape[0]
    dtype = v0.dtype
    rows = m_buf
    brk = breakdown_tol(dtype)
    k = jnp.asarray(k, jnp.int32)
    which = jnp.asarray(which, jnp.int32)
    limit = jnp.minimum(jnp.asarray(limit, jnp.int32), min(m_buf, n))
    tol = jnp.asarray(tol, dtype)
    adaptive = jnp.asarray(adaptive, bool)
    k_total = jnp.where(which == 2, 2 * k, k)

    orthogonalize = orthogonalize_against  # the filled rows only, blockwise, twice

    def ritz_vector(basis, coeffs, count):
        y = combine_rows(coeffs, basis, count)
        return y / jnp.maximum(jnp.linalg.norm(y), jnp.finfo(dtype).tiny)

    def check(alphas, betas, j, anorm):
        evals, evecs = _ritz(alphas, betas, j, anorm)
        idx, active = _select(evals, j, k, which, slots)
        s_mat = evecs[:, idx]
        est = jnp.abs(betas[j - 1] * evecs[j - 1, idx])
        norm = jnp.maximum(jnp.abs(evals[0]), jnp.abs(evals[jnp.maximum(j - 1, 0)]))
        ok = jnp.all(jnp.where(active, est <= tol * norm, True))
        go = (j >= limit) | (adaptive & ok)
        return s_mat, evals[idx], active, norm, go

    def next_check(j):
        return jnp.minimum(j + jnp.maximum(_CHECK_EVERY, j // 4), limit)

    restart_pool = jax.random.normal(key, (n,), dtype)

    def body(st):
        lanczos = st["phase"] == 0
        j = st["j"]
        coeffs = jnp.pad(st["s_mat"][:, st["s"]], (0, rows - m_buf))
        q = fresh_start(st["q"], st["basis"], jnp.where(lanczos & st["fresh"], j, 0),
                        st["fresh"])
        # (no lax.cond: the Ritz vector's block loop runs zero times in the Lanczos phase)
        u = jnp.where(lanczos, q, ritz_vector(st["basis"], coeffs, jnp.where(lanczos, 0, j)))
        w = matvec(u)
        # --- Lanczos step (its results are kept only in the Lanczos phase)
        jj = jnp.minimum(j, rows - 1)
        basis = st["basis"].at[jj].set(jnp.where(lanczos, u, st["basis"][jj]))
        alpha = jnp.vdot(u, w)
        r = w - alpha * u - st["beta_prev"] * st["q_prev"]
        r = orthogonalize(r, basis, jnp.where(lanczos, j + 1, 0))
        beta = jnp.linalg.norm(r)
        anorm = jnp.maximum(st["anorm"], jnp.abs(alpha) + beta + st["beta_prev"])
        broke = lanczos & (beta <= brk * anorm)
        # breakdown: restart from a random direction, orthogonalized against the basis by
        # the next Lanczos step (fresh_start). No lax.cond here: a conditional holding the
        # basis made every step several times dearer on CPU.
        q_next = jnp.where(broke, restart_direction(restart_pool, j),
                           r / jnp.where(beta > 0, beta, 1.0))
        beta = jnp.where(broke, jnp.zeros_like(beta), beta)
        j1 = jnp.where(lanczos, j + 1, j)
        pick = lambda new, old: jnp.where(lanczos, new, old)
        alphas = st["alphas"].at[jj].set(pick(alpha, st["alphas"][jj]))
        betas = st["betas"].at[jj].set(pick(beta, st["betas"][jj]))
        # --- residual verification of Ritz pair s
        s = st["s"]
        res_s = jnp.linalg.norm(w - st["vals"][s] * u)
        resid = st["resid"].at[s].set(jnp.where(lanczos, st["resid"][s], res_s))
        s1 = jnp.where(lanczos, s, s + 1)
        verified = (~lanczos) & (s1 >= k_total)
        ok = jnp.all(jnp.where(st["active"], resid <= tol * st["norm"], True))
        stop = verified & (ok | (j >= limit) | ~adaptive)
        # --- Ritz check after a Lanczos step
        do_check = lanczos & ((j1 >= st["next_check"]) | (j1 >= limit))
        s_mat, vals, active, norm, go = jax.lax.cond(
            do_check,
            lambda: check(alphas, betas, j1, anorm),
            lambda: (st["s_mat"], st["vals"], st["active"], st["norm"], jnp.bool_(False)),
        )
        phase = jnp.where(stop, 2, jnp.where(go, 1, jnp.where(verified, 0, st["phase"])))
        nxt = jnp.where((do_check & ~go) | (verified & ~stop), next_check(j1), st["next_check"])
        return {
            "basis": basis, "alphas": alphas, "betas": betas,
            "q": pick(q_next, st["q"]), "q_prev": pick(u, st["q_prev"]),
            "fresh": pick(broke, st["fresh"]),
            "beta_prev": pick(beta, st["beta_prev"]), "anorm": pick(anorm, st["anorm"]),
            "j": j1, "phase": phase, "s": jnp.where(go, 0, s1), "next_check": nxt,
            "s_mat": s_mat, "vals": vals, "active": active, "norm": norm,
            "resid": jnp.where(go, jnp.full_like(resid, jnp.inf), resid),
            "hvps": st["hvps"] + 1,
        }

    first = jnp.where(adaptive, jnp.minimum(jnp.maximum(k_total, _CHECK_EVERY), limit), limit)
    zero = jnp.zeros((), dtype)
    init = {
        "basis": jnp.zeros((rows, n), dtype), "alphas": jnp.zeros((m_buf,), dtype),
        "betas": jnp.zeros((m_buf,), dtype), "q": v0 / jnp.linalg.norm(v0),
        "q_prev": jnp.zeros((n,), dtype), "fresh": jnp.bool_(False), "beta_prev": zero,
        "anorm": zero,
        "j": jnp.int32(0), "phase": jnp.int32(0), "s": jnp.int32(0), "next_check": first,
        "s_mat": jnp.zeros((m_buf, slots), dtype), "vals": jnp.zeros((slots,), dtype),
        "active": jnp.zeros((slots,), bool), "norm": zero,
        "resid": jnp.full((slots,), jnp.inf, dtype), "hvps": jnp.int32(0),
    }
    st = jax.lax.while_loop(lambda st: st["phase"] != 2, body, init)
    vecs = st["s_mat"].T @ st["basis"][:m_buf]
    vecs = vecs / jnp.maximum(jnp.linalg.norm(vecs, axis=1, keepdims=True),
                              jnp.finfo(dtype).tiny)
    conv = st["active"] & (st["resid"] <= tol * st["norm"])
    return st["vals"], vecs, st["resid"], conv, st["j"], st["hvps"], st["norm"]


# ---------------------------------------------------------------------- public API
def eigsh_matvec(
    matvec: Callable[[Any], Any],
    dim: Any,
    *,
    k: int = 1,
    which: str = "LA",
    num_iters: int | None = None,
    max_iters: int | None = None,
    key: Any,
    tol: float = 1e-3,
    v0: jax.Array | None = None,
    dtype: Any = jnp.float32,
) -> EigshResult:
    """Extreme eigenpairs of a symmetric operator given as a ``matvec`` (traceable).

    The matrix-free core of :func:`eigsh`, for use inside your own ``jit`` (it is not
    jitted itself; ``matvec`` may close over traced values). Same algorithm, stopping
    rule and result as :func:`eigsh`; ``num_hvps``/``num_iters`` are int32 arrays.

    Args:
      matvec: ``v -> A v``, symmetric (not checked: it would cost matvecs).
      dim: an int ``n`` (``matvec`` acts on flat ``[n]`` vectors) or a pytree of float
        arrays giving the shape of ``v`` (``eigenvectors`` then come back in that shape).
      k, which, num_iters, max_iters, tol: as in :func:`eigsh`.
      key: PRNG key (typed, raw or int seed; required) for the start vector and
        breakdown restarts.
      v0: optional flat start vector ``[n]`` (overrides the random one).
      dtype: dtype of the random start vector for a flat operator.

    Returns:
      :class:`EigshResult`.

    References:
      Lanczos, 1950. An iteration method for the solution of the eigenvalue problem
      of linear differential and integral operators.
      Saad, 2011. Numerical Methods for Large Eigenvalue Problems (2nd ed.).
    """
    check_callable("matvec", matvec)
    if isinstance(dim, int | np.integer) and not isinstance(dim, bool):
        n = check_int("dim", dim, minimum=1)
        flat_mv, unravel = matvec, None
    else:
        n = check_params("dim", dim)
        flat0, unravel = ravel_pytree(dim)
        dtype = flat0.dtype
        flat_mv = lambda v: ravel_pytree(matvec(unravel(v)))[0]
    k, k_total, limit, adaptive = _validate_eigs(k, which, num_iters, max_iters, n, tol)
    key = as_key("key", key)
    k_start, k_restart = jax.random.split(key)
    if v0 is None:
        v0 = jax.random.normal(k_start, (n,), dtype)
    m_buf = _buffer_size(limit, n)
    vals, vecs, resid, conv, steps, hvps, norm = _engine(
        flat_mv, v0, k_restart, k, _CODE[which], limit, tol, adaptive,
        m_buf=m_buf, slots=_slots(k_total, m_buf))
    sl = slice(0, k_total)
    tree = vecs[sl] if unravel is None else jax.vmap(unravel)(vecs[sl])
    return EigshResult(vals[sl], tree, resid[sl], conv[sl], hvps, steps, vecs[sl], norm)


def _build_eigsh(static):
    op_static, m_buf, slots = static

    def eigsh_program(dynamic, key, k, which, limit, tol, adaptive):
        matvec, flat0, embed = lo.build(op_static, dynamic)
        k_start, k_restart = jax.random.split(key)
        v0 = jax.random.normal(k_start, flat0.shape, flat0.dtype)
        vals, vecs, resid, conv, steps, hvps, norm = _engine(
            matvec, v0, k_restart, k, which, limit, tol, adaptive, m_buf=m_buf, slots=slots)
        return vals, vecs, embed(vecs), resid, conv, steps, hvps, norm

    return eigsh_program


def eigsh(
    f: Any,
    x: PyTree = lo._MISSING,
    *args: Any,
    k: int = 1,
    which: str = "LA",
    num_iters: int | None = None,
    max_iters: int | None = None,
    key: Any,
    tol: float = 1e-3,
) -> EigshResult:
    """Extreme eigenpairs of the Hessian of ``f`` at ``x``, or of any curvature operator.

    Fully reorthogonalized Lanczos (classical Gram-Schmidt against the filled basis rows,
    twice, as masked products with the whole buffer) over matvecs, Ritz pairs from a
    float64 tridiagonal eigen-solve, and true residuals ``||A v - lambda v||`` from real matvecs.

    Stopping. With ``num_iters`` given, exactly that many Lanczos steps run (``tol`` only
    sets the ``converged`` flags). Otherwise (default) the run is tolerance driven: from
    step ``max(K, 5)`` on, every ``max(5, j // 4)`` steps the Ritz residual estimates
    ``|beta_j s_ji|`` of the requested pairs are checked; when all are below
    ``tol * norm_estimate`` the true residuals are computed with one matvec per pair,
    and the run stops if they all pass, else Lanczos continues. It stops at
    ``max_iters`` in any case (``converged`` then tells which pairs made it).
    ``norm_estimate = max |Ritz value|`` (a lower bound on ``||A||_2``), so the test is a
    backward-error test: each returned pair is an exact eigenpair of ``A + E`` with
    ``||E||_2 <= tol * ||A||``. The eigenvalue error is at most the residual, and about
    ``residual**2 / gap`` when the pair is separated by ``gap`` from the rest.

    One compiled program serves every ``k``, ``which``, step limit and ``tol`` while the
    Krylov buffer (rows from the ladder 64, 96, 128, 192, 256, 384, ... covering the
    limit; ``dim`` when ``dim <= 64``) and the output slots (8, 16, ... covering ``K``)
    stay the same. Memory: the buffer holds ``rows x dim`` floats (``rows = 128`` for the
    default ``max_iters = 120``: 154 MB for 300k float32 parameters); step ``j``'s
    reorthogonalization reads only the ``j`` filled rows, in blocks of 32
    (:func:`~jaxopt_lab.curvature.lanczos.orthogonalize_against`), so a large
    ``max_iters`` costs memory, not time per step.

    Single-vector Lanczos sees one copy of an exactly repeated eigenvalue until the
    Krylov space is exhausted (a breakdown restart then finds the other copies). Symmetry
    of a user operator is not checked.

    Args:
      f: scalar function ``f(x, *args)`` -- or a :class:`CurvatureOperator` (from
        ``hessian_operator``, ``ggn_operator``, ``fisher_operator``,
        ``matvec_operator``; then pass no ``x``/``args``). An equal new function object
        (same code and closure values) reuses the compiled program.
      x: parameters, any pytree of float arrays.
      *args: extra arguments of ``f`` (e.g. a batch), not differentiated.
      k: eigenpairs per end (``k <= dim``; ``2k <= dim`` for "both").
      which: "LA" (largest, descending), "SA" (smallest, ascending), "LM" (largest
        magnitude, descending |lambda|) or "both" (the ``k`` smallest then the ``k``
        largest).
      num_iters: a fixed number of Lanczos steps (no early stop); clipped to ``dim``;
        must be ``>= K``.
      max_iters: the step limit of a tolerance-driven run; default
        ``min(dim, max(120, 8K))``; clipped to ``dim``; ``>= K``.
      key: PRNG key (typed, raw or int seed; required) for the start vector.
      tol: residual tolerance relative to ``norm_estimate`` (``> 0``).

    Returns:
      :class:`EigshResult` (``num_hvps`` and ``num_iters`` as Python ints).

    Example:
      >>> import jax.numpy as jnp
      >>> f = lambda x: 0.5 * jnp.sum(jnp.arange(1.0, 6.0) * x**2)
      >>> vals = eigsh(f, jnp.zeros(5), k=2, key=jax.random.key(0)).eigenvalues  # ~ [5, 4]

    References:
      Lanczos, 1950. An iteration method for the solution of the eigenvalue problem
      of linear differential and integral operators.
      Pearlmutter, 1994. Fast exact multiplication by the Hessian.
      Stathopoulos, McCombs, 2010. PRIMME: PReconditioned Iterative MultiMethod
      Eigensolver (the ``||r|| <= tol ||A||`` stopping test).
      Ghorbani, Krishnan, Xiao, 2019. An investigation into neural net optimization via
      Hessian eigenvalue density.
    """
    op = lo.as_operator(f, x, args)
    dim = op.dim
    k, k_total, limit, adaptive = _validate_eigs(k, which, num_iters, max_iters, dim, tol)
    key = as_key("key", key)
    lo.check_fits(f, x, args)
    m_buf = _buffer_size(limit, dim)
    static, dynamic = lo.split(op)
    program = cached_jit("eigsh", (static, m_buf, _slots(k_total, m_buf)), _build_eigsh)
    vals, flat, tree, resid, conv, steps, hvps, norm = program(
        dynamic, key, np.int32(k), np.int32(_CODE[which]), np.int32(limit),
        np.float32(tol), np.bool_(adaptive))
    sl = slice(0, k_total)
    tree = jax.tree_util.tree_map(lambda a: a[sl], tree)
    return EigshResult(vals[sl], tree, resid[sl], conv[sl], int(hvps), int(steps), flat[sl],
                       norm)


def _power_core(matvec, key, n, dtype, k, num_iters, tol):
    """Deflated power iteration; traceable. Returns (vecs [k,n], vals, resid, hvps, conv)."""
    ks = jnp.arange(k)

    def one_pair(i, carry):
        vecs, vals, resids, hvps, convs = carry
        mask = (ks < i).astype(dtype)

        def project(v):
            for _ in range(2):
                v = v - ((vecs @ v) * mask) @ vecs
            return v

        def deflate(v):
            v = project(v)
            return v / jnp.linalg.norm(v)

        start = deflate(jax.random.normal(jax.random.fold_in(key, i), (n,), dtype))

        def cond(s):
            it, done = s[4], s[5]
            return jnp.logical_and(it < num_iters, jnp.logical_not(done))

        def body(s):
            v, *_, it, _ = s
            v = deflate(v)
            w = matvec(v)
            lam = jnp.vdot(v, w)
            r_true = jnp.linalg.norm(w - lam * v)
            w = project(w)  # the deflated operator P H P applied to v (P v = v)
            r_defl = jnp.linalg.norm(w - lam * v)
            done = r_defl <= tol * jnp.maximum(jnp.abs(lam), jnp.finfo(dtype).tiny)
            w_norm = jnp.linalg.norm(w)
            v_next = jnp.where(done | (w_norm == 0), v, w / jnp.where(w_norm > 0, w_norm, 1.0))
            return v_next, lam, r_true, r_defl, it + 1, done

        inf = jnp.full((), jnp.inf, dtype)
        init = (start, jnp.zeros((), dtype), inf, inf, jnp.int32(0), jnp.bool_(False))
        v, lam, r, _, it, done = jax.lax.while_loop(cond, body, init)
        return (vecs.at[i].set(v), vals.at[i].set(lam), resids.at[i].set(r),
                hvps.at[i].set(it), convs.at[i].set(done))

    init = (jnp.zeros((k, n), dtype), jnp.zeros((k,), dtype), jnp.zeros((k,), dtype),
            jnp.zeros((k,), jnp.int32), jnp.zeros((k,), bool))
    return jax.lax.fori_loop(0, k, one_pair, init)


def power_iteration_matvec(
    matvec: Callable[[jax.Array], jax.Array],
    dim: int,
    *,
    k: int = 1,
    num_iters: int = 100,
    key: Any,
    tol: float = 1e-3,
    dtype: Any = jnp.float32,
) -> PowerIterationResult:
    """Deflated power iteration on a flat ``matvec`` (traceable; see :func:`power_iteration`).

    Args:
      matvec: ``[dim] -> [dim]`` symmetric operator.
      dim: dimension ``n``.
      k: number of dominant eigenpairs (``<= dim``).
      num_iters: maximum HVPs per eigenpair.
      key: PRNG key (typed, raw or int seed; required) for the start vectors.
      tol: stop a pair when ``||P H v - lambda v|| <= tol |lambda|`` (``P``: deflation).
      dtype: dtype of the iterates.

    Returns:
      :class:`PowerIterationResult` with ``eigenvectors`` of shape ``[k, dim]``.
    """
    check_callable("matvec", matvec)
    dim = check_int("dim", dim, minimum=1)
    k = check_int("k", k, minimum=1)
    if k > dim:
        raise ValueError(f"k too large: k = {k} exceeds the dimension {dim}")
    num_iters = check_int("num_iters", num_iters, minimum=1)
    check_positive("tol", tol)
    key = as_key("key", key)
    vecs, vals, resid, hvps, conv = _power_core(matvec, key, dim, dtype, k, num_iters, tol)
    return PowerIterationResult(vals, vecs, resid, hvps, conv)


def _build_power(static):
    op_static, k = static

    def power_program(dynamic, key, num_iters, tol):
        matvec, flat0, embed = lo.build(op_static, dynamic)
        vecs, vals, resid, hvps, conv = _power_core(
            matvec, key, flat0.shape[0], flat0.dtype, k, num_iters, tol)
        return vals, embed(vecs), resid, hvps, conv

    return power_program


def power_iteration(
    f: Any,
    x: PyTree = lo._MISSING,
    *args: Any,
    k: int = 1,
    num_iters: int = 100,
    key: Any,
    tol: float = 1e-3,
) -> PowerIterationResult:
    """Dominant Hessian eigenpairs by power iteration with deflation (PyHessian baseline).

    For each pair ``i``: start from a random unit vector, then repeat
    ``v <- deflate(v); w = H v; lambda = v.w; r = ||w - lambda v||``; stop when
    ``r <= tol |lambda|`` or after ``num_iters`` HVPs, else ``v <- w / ||w||``.
    ``deflate`` orthogonalizes against the pairs already found (two Gram-Schmidt
    passes), as in PyHessian. Finds eigenvalues largest in MAGNITUDE (a large
    negative one comes first). The stopping test uses the residual of the deflated
    operator ``P H P`` (``P`` projects out the pairs found); for the first pair that
    is the true residual. ``residuals`` reports the true ``||H v - lambda v||`` from
    the same HVP (no extra HVP), which for later pairs also carries the error of
    the earlier vectors (about ``lambda_1 * tol * lambda_1 / gap``). ``num_hvps``
    counts HVPs per pair, so the cost to reach a given relative residual is reported
    directly. Kept as the baseline
    for :func:`eigsh` (Lanczos), which converges much faster.

    Args:
      f: scalar function ``f(x, *args)``, or a :class:`CurvatureOperator` (then no
        ``x``/``args``).
      x: parameters (pytree).
      *args: extra arguments of ``f``.
      k: number of eigenpairs.
      num_iters: max HVPs per pair (``>= 1``; a traced value: changing it does not
        recompile).
      key: PRNG key (typed, raw or int seed; required) for the start vectors.
      tol: relative residual at which a pair stops.

    Returns:
      :class:`PowerIterationResult`.

    References:
      Von Mises, Pollaczek-Geiringer, 1929. Praktische Verfahren der
      Gleichungsaufloesung.
      Yao, Gholami, Keutzer, Mahoney, 2020. PyHessian: Neural networks through the
      lens of the Hessian.
    """
    k = check_int("k", k, minimum=1)
    num_iters = check_int("num_iters", num_iters, minimum=1)
    check_positive("tol", tol)
    op = lo.as_operator(f, x, args)
    if k > op.dim:
        raise ValueError(f"k too large: k = {k} exceeds the dimension {op.dim}")
    key = as_key("key", key)
    lo.check_fits(f, x, args)
    static, dynamic = lo.split(op)
    program = cached_jit("power_iteration", (static, k), _build_power)
    vals, vecs, resid, hvps, conv = program(dynamic, key, np.int32(num_iters), np.float32(tol))
    return PowerIterationResult(vals, vecs, resid, hvps, conv)

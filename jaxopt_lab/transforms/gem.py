"""Gradient episodic memory (GEM) and averaged GEM (A-GEM) projections and transforms.

GEM projection (Lopez-Paz & Ranzato 2017). Given the current gradient ``g`` (``n``
entries) and the gradients of the ``t`` past tasks on their episodic memories, the rows
of ``G`` (``[t, n]``), GEM solves the primal QP

    min_{g~} 0.5 ||g~ - g||^2   s.t.   G g~ >= 0        (no past-task loss increases).

Lagrangian with multipliers ``v >= 0``: ``L = 0.5||g~ - g||^2 - v^T G g~``.
Stationarity gives ``g~ = g + G^T v``; substituting back gives the DUAL

    min_{v >= 0} 0.5 v^T (G G^T) v + (G g)^T v,

a ``t x t`` problem, equivalently the non-negative least-squares problem
``min_{v >= 0} 0.5 ||G^T v + g||^2``. Its KKT conditions are exactly primal
feasibility ``G g~ = G G^T v + G g >= 0``, ``v >= 0`` and complementarity.

Solver: the Lawson-Hanson active-set method written on the Gram matrix ``K = G G^T``
(``t x t``) inside one ``lax.while_loop`` (no host copy, no quadprog). Each iteration
either adds the most violated constraint to the passive set or steps back towards
feasibility; it terminates in a finite number of steps (capped by ``max_iters``) when
every constraint holds to ``tol * ||G_k|| * ||g||``. Linear algebra on the ``n``-long
vectors is done leaf by leaf with ``Precision.HIGHEST`` (no concatenated copy).

``margin`` is the original implementation's ``memory_strength``: the official GEM
code solves the same dual with the bound ``v >= margin`` instead of ``v >= 0``; this
is what we do (substituting ``v = margin + w``, ``w >= 0``). A positive margin pushes
every past-task gradient into ``g~`` with weight at least ``margin`` (a bias towards
the memories); ``G g~ >= 0`` still holds at the solution. As in the original, the
projection only runs when some constraint is violated; otherwise ``g`` is returned
unchanged, bit for bit.

A-GEM (Chaudhry et al. 2019) keeps one constraint, against the gradient ``g_ref`` on
a batch drawn from the whole memory, with the closed form
``g - (g . g_ref / ||g_ref||^2) g_ref`` when ``g . g_ref < 0``.

References:
    Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for Continual Learning".
    Chaudhry, Ranzato, Rohrbach & Elhoseiny (2019), "Efficient Lifelong Learning with
    A-GEM".
    Lawson & Hanson (1974), "Solving Least Squares Problems" (the NNLS algorithm).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import check_finite, check_int_hparam, check_positive

__all__ = ["GEMState", "agem", "agem_project", "gem", "gem_project"]

_HI = jax.lax.Precision.HIGHEST


def _check_memory(name: str, G: Any, g: Any) -> int:
    """Check that every leaf of ``G`` is ``[t, *g_leaf.shape]``; return ``t``."""
    tg, tG = jax.tree.structure(g), jax.tree.structure(G)
    if tg != tG:
        raise ValueError(f"{name} must have the pytree structure of g: {tG} vs {tg}")
    ts = set()
    for gl, Gl in zip(jax.tree.leaves(g), jax.tree.leaves(G), strict=True):
        gs, Gs = np.shape(gl), np.shape(Gl)
        if len(Gs) != len(gs) + 1 or Gs[1:] != gs:
            if len(gs) == 1 and len(Gs) == 2:
                raise ValueError(
                    f"{name} must have shape [t, {gs[0]}] (width = size of g), got {Gs}"
                )
            raise ValueError(f"{name} leaves must have shape [t, *{gs}], got {Gs}")
        ts.add(Gs[0])
    if len(ts) != 1:
        raise ValueError(f"{name} leaves must share one leading task axis, got {sorted(ts)}")
    t = ts.pop()
    if t < 1:
        raise ValueError(f"{name} must hold at least one past-task gradient, got t={t}")
    return t


def _gram(G: Any, g: Any) -> tuple[jax.Array, jax.Array]:
    """``K = G G^T`` ([t, t]) and ``G g`` ([t]) accumulated leaf by leaf."""
    K, Gg = 0.0, 0.0
    for gl, Gl in zip(jax.tree.leaves(g), jax.tree.leaves(G), strict=True):
        M = Gl.reshape(Gl.shape[0], -1)
        K = K + jnp.matmul(M, M.T, precision=_HI)
        Gg = Gg + jnp.matmul(M, gl.reshape(-1), precision=_HI)
    return K, Gg


def _nnls_gram(K, q, tol_vec, max_iters):
    """Lawson-Hanson for ``min_{w >= 0} 0.5 w^T K w + q^T w`` given ``K`` (PSD) and ``q``.

    Returns ``(w, iterations)``. ``tol_vec`` [t]: a constraint ``k`` counts as violated
    when the negative gradient ``-(K w + q)_k`` exceeds ``tol_vec[k]``.
    """
    t = K.shape[0]
    dtype = K.dtype
    eye = jnp.eye(t, dtype=dtype)
    # A tiny ridge keeps the passive-set solve defined when G is rank deficient; one
    # step of iterative refinement against the un-ridged matrix removes its bias.
    ridge = jnp.finfo(dtype).eps * jnp.max(jnp.diag(K))

    def solve_passive(P):
        PP = P[:, None] & P[None, :]
        M0 = jnp.where(PP, K, 0.0) + jnp.where(P, 0.0, 1.0) * eye
        M = M0 + jnp.where(P, ridge, 0.0) * eye
        rhs = jnp.where(P, -q, 0.0)
        s = jnp.linalg.solve(M, rhs)
        s = s + jnp.linalg.solve(M, rhs - jnp.matmul(M0, s, precision=_HI))
        return jnp.where(P, s, 0.0)

    def cond(c):
        _, _, it, done = c
        return (~done) & (it < max_iters)

    def body(c):
        w, P, it, _ = c
        s = solve_passive(P)
        feasible = jnp.all(jnp.where(P, s > 0, True))
        # -- feasible: accept s, then add the most violated constraint (if any).
        neg_grad = -(jnp.matmul(K, s, precision=_HI) + q)
        cand = jnp.where(P, -jnp.inf, neg_grad - tol_vec)
        j = jnp.argmax(cand)
        add = cand[j] > 0
        P_add = P.at[j].set(P[j] | add)
        # -- infeasible: step from w towards s until a passive variable hits zero.
        blocking = P & (s <= 0)
        denom = jnp.where(blocking, w - s, 1.0)
        ratio = jnp.where(blocking & (denom > 0), w / jnp.where(denom > 0, denom, 1.0), jnp.inf)
        alpha = jnp.clip(jnp.min(ratio), 0.0, 1.0)
        w_step = w + alpha * (s - w)
        hit = P & ((w_step <= 0) | (blocking & (ratio <= alpha)))
        P_rm = P & ~hit
        w_step = jnp.where(P_rm, jnp.maximum(w_step, 0.0), 0.0)
        w_new = jnp.where(feasible, s, w_step)
        P_new = jnp.where(feasible, P_add, P_rm)
        done = feasible & ~add
        return w_new, P_new, it + 1, done

    init = (jnp.zeros(t, dtype), jnp.zeros(t, bool), jnp.zeros([], jnp.int32), jnp.array(False))
    w, _, it, _ = jax.lax.while_loop(cond, body, init)
    return w, it


def gem_project(
    g: Any,
    G: Any,
    *,
    margin: float = 0.0,
    tol: float = 1e-6,
    max_iters: int | None = None,
) -> Any:
    """Project ``g`` onto ``{x : <x, G_k> >= 0 for every past task k}`` (GEM).

    Returns the Euclidean-closest vector to ``g`` satisfying every constraint by solving
    the ``t x t`` dual QP ``min_{v >= margin} 0.5 v^T G G^T v + (G g)^T v`` inside jit
    and returning ``g + G^T v`` (see the module docstring for the derivation and for
    how ``margin`` relates to the original ``memory_strength``). When no constraint is
    violated (``G g >= 0``) ``g`` is returned unchanged, exactly.

    Args:
        g: current gradient: a 1-D array ``[n]`` or any pytree.
        G: past-task gradients: ``[t, n]`` for a 1-D ``g``, or a pytree with the
            structure of ``g`` whose leaves carry a leading task axis ``[t, *leaf]``.
        margin: lower bound on the dual variables (original ``memory_strength``), >= 0.
        tol: relative tolerance: constraint ``k`` is satisfied when
            ``<g~, G_k> >= -tol * ||G_k|| * ||g||``.
        max_iters: cap on active-set iterations (default ``3 t + 10``).

    Returns:
        ``g~`` with the structure and dtype of ``g``.

    Example:
        >>> import jax.numpy as jnp
        >>> g = gem_project(jnp.array([1.0, -1.0]), jnp.array([[0.0, 1.0]]))
        >>> [round(float(x), 5) for x in g]
        [1.0, 0.0]

    References:
        Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for Continual Learning".
    """
    t = _check_memory("G", G, g)
    check_positive("margin", margin, allow_zero=True)
    check_positive("tol", tol)
    check_finite("g", g)
    check_finite("G", G)
    max_iters = 3 * t + 10 if max_iters is None else check_int_hparam("max_iters", max_iters, 1)
    return _gem_project(g, G, margin, tol, max_iters)[0]


def _gem_project(g, G, margin, tol, max_iters):
    """Unchecked GEM projection; returns ``(g~, violated, memory_finite)``.

    A non-finite memory skips the projection (``g`` is returned unchanged) and is
    reported through ``memory_finite``: projecting onto NaN constraints would turn the
    whole update into NaN.
    """
    K, Gg = _gram(G, g)
    dtype = K.dtype
    memory_finite = _tree_finite(G)
    violated = jnp.any(Gg < 0) & memory_finite

    def project(_):
        m = jnp.asarray(margin, dtype)
        q = Gg + m * jnp.sum(K, axis=1)  # K @ (m * ones)
        g_norm = jnp.sqrt(optax.tree.norm(g, squared=True)).astype(dtype)
        tol_vec = jnp.asarray(tol, dtype) * jnp.sqrt(jnp.diag(K)) * g_norm
        w, _ = _nnls_gram(K, q, tol_vec, max_iters)
        v = w + m

        def primal(v):
            return jax.tree.map(
                lambda gl, Gl: (gl + jnp.tensordot(v, Gl, axes=1, precision=_HI)).astype(gl.dtype),
                g,
                G,
            )

        # One step of iterative refinement in the primal: the active constraints
        # (w > 0) must hold with equality, G_P g~ = 0. Recomputing G g~ from the rounded
        # g~ and correcting v on P removes most of the rounding left by the dual solve
        # (about 10x smaller violations in float32 for n = 1000); costs one G pass.
        out = primal(v)
        resid = sum(
            jnp.matmul(Gl.reshape(Gl.shape[0], -1), ol.reshape(-1), precision=_HI)
            for ol, Gl in zip(jax.tree.leaves(out), jax.tree.leaves(G), strict=True)
        )
        active = w > 0
        eye = jnp.eye(K.shape[0], dtype=dtype)
        ridge = jnp.finfo(dtype).eps * jnp.max(jnp.diag(K))
        M = jnp.where(active[:, None] & active[None, :], K, 0.0)
        M = M + jnp.where(active, ridge, 1.0) * eye
        delta = jnp.linalg.solve(M, jnp.where(active, -resid, 0.0))
        return primal(v + jnp.where(active, delta, 0.0))

    return jax.lax.cond(violated, project, lambda _: g, None), violated, memory_finite


def _tree_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def agem_project(g: Any, g_ref: Any) -> Any:
    """A-GEM projection: ``g - (g.g_ref / ||g_ref||^2) g_ref`` if ``g.g_ref < 0`` else ``g``.

    Args:
        g: current gradient (pytree).
        g_ref: reference gradient on a batch from the episodic memory (same structure).

    Returns:
        Projected gradient with the structure of ``g`` (``g`` itself, exactly, when
        ``g . g_ref >= 0`` or when ``g_ref`` is not finite).

    Raises:
        ValueError: mismatched structures/shapes, or (for concrete inputs, i.e. outside
            ``jit``) a non-finite ``g`` or ``g_ref``.

    References:
        Chaudhry et al. (2019), "Efficient Lifelong Learning with A-GEM".
    """
    _check_ref(g, g_ref)
    check_finite("g", g)
    check_finite("g_ref", g_ref)
    return _agem_project(g, g_ref)[0]


def _check_ref(g: Any, g_ref: Any) -> None:
    if jax.tree.structure(g) != jax.tree.structure(g_ref):
        raise ValueError(
            "g_ref must have the pytree structure of g: "
            f"{jax.tree.structure(g_ref)} vs {jax.tree.structure(g)}"
        )
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"g_ref leaf shape {np.shape(b)} must equal g's {np.shape(a)}")


def _agem_project(g: Any, g_ref: Any) -> tuple[Any, jax.Array, jax.Array]:
    """Unchecked A-GEM; returns ``(g~, violated, ref_finite)``; a non-finite ``g_ref``
    skips the projection."""
    ref_finite = _tree_finite(g_ref)
    dot = optax.tree.vdot(g, g_ref)
    sq = optax.tree.norm(g_ref, squared=True)
    violated = (dot < 0) & ref_finite
    coef = jnp.where(violated, dot / jnp.where(sq > 0, sq, 1.0), 0.0)
    out = jax.tree.map(
        lambda a, b: jnp.where(violated, (a - coef * b).astype(a.dtype), a), g, g_ref
    )
    return out, violated, ref_finite


class GEMState(NamedTuple):
    """State of :func:`gem` and :func:`agem`.

    Attributes:
        count: ``[]`` int32, updates seen.
        num_projected: ``[]`` int32, updates where a constraint was violated.
        nonfinite_memory: ``[]`` int32, updates whose memory / reference gradient had
            NaN or Inf entries: the projection was skipped (updates passed through
            unchanged). Non-zero means the memory is corrupted.
    """

    count: jax.Array
    num_projected: jax.Array
    nonfinite_memory: jax.Array


def _init_gem_state(params):
    del params
    zero = jnp.zeros([], jnp.int32)
    return GEMState(zero, zero, zero)


def gem(
    *, margin: float = 0.0, tol: float = 1e-6, max_iters: int | None = None
) -> optax.GradientTransformationExtraArgs:
    """GEM as a transform: project the gradient with :func:`gem_project`.

    ``update(updates, state, params=None, *, memory_grads=None)``: ``memory_grads`` is
    the pytree of past-task gradients with a leading task axis (``[t, *leaf]``); when it
    is ``None`` (no past task yet) updates pass through unchanged. To keep one compiled
    program while tasks accumulate, allocate ``t = max_tasks`` rows and leave the rows
    of tasks not seen yet at zero: a zero row never binds (``<g~, 0> >= 0``) and does not
    change the result. A memory with NaN/Inf entries is not projected onto (updates pass
    through unchanged) and is counted in ``GEMState.nonfinite_memory``. Chain it BEFORE
    the optimizer (it acts on raw gradients)::

        opt = optax.chain(gem(margin=0.5), optax.sgd(0.1))
        updates, state = opt.update(grads, state, params, memory_grads=G)

    Args:
        margin: see :func:`gem_project` (original ``memory_strength``).
        tol: see :func:`gem_project`.
        max_iters: see :func:`gem_project`.

    Returns:
        ``optax.GradientTransformationExtraArgs`` with :class:`GEMState`.

    References:
        Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for Continual Learning".
    """
    check_positive("margin", margin, allow_zero=True)
    check_positive("tol", tol)
    if max_iters is not None:
        max_iters = check_int_hparam("max_iters", max_iters, minimum=1)

    def update_fn(updates, state, params=None, *, memory_grads=None, **extra_args):
        del params, extra_args
        if memory_grads is None:
            return updates, state._replace(count=state.count + 1)
        t = _check_memory("memory_grads", memory_grads, updates)
        iters = 3 * t + 10 if max_iters is None else max_iters
        new, violated, finite = _gem_project(updates, memory_grads, margin, tol, iters)
        return new, GEMState(
            state.count + 1,
            state.num_projected + violated.astype(jnp.int32),
            state.nonfinite_memory + (~finite).astype(jnp.int32),
        )

    return optax.GradientTransformationExtraArgs(_init_gem_state, update_fn)


def agem() -> optax.GradientTransformationExtraArgs:
    """A-GEM as a transform: project with :func:`agem_project` against ``ref_grads``.

    ``update(updates, state, params=None, *, ref_grads=None)``: ``ref_grads`` is the
    gradient on a batch drawn from the episodic memory (pytree like the updates); when
    ``None``, updates pass through. A ``ref_grads`` with NaN/Inf entries is not projected
    onto (updates pass through) and is counted in ``GEMState.nonfinite_memory``. Chain
    it BEFORE the optimizer.

    Returns:
        ``optax.GradientTransformationExtraArgs`` with :class:`GEMState`.

    References:
        Chaudhry et al. (2019), "Efficient Lifelong Learning with A-GEM".
    """

    def update_fn(updates, state, params=None, *, ref_grads=None, **extra_args):
        del params, extra_args
        if ref_grads is None:
            return updates, state._replace(count=state.count + 1)
        _check_ref(updates, ref_grads)
        new, violated, finite = _agem_project(updates, ref_grads)
        return new, GEMState(
            state.count + 1,
            state.num_projected + violated.astype(jnp.int32),
            state.nonfinite_memory + (~finite).astype(jnp.int32),
        )

    return optax.GradientTransformationExtraArgs(_init_gem_state, update_fn)

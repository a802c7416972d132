"""Second-order optimizer steps as optax gradient transformations.

Four curvature-aware steps, each a factory returning an
``optax.GradientTransformationExtraArgs`` whose output is the *update* (the
negative direction times ``learning_rate``), so they chain like ``optax.sgd``:

* :func:`hessian_free`       -- truncated Newton, CG on Hessian-vector products
  (Martens 2010), optional Levenberg-Marquardt damping adaptation.
* :func:`saddle_free_newton` -- Krylov/Lanczos subspace, step ``-V |Lambda|^-1 V^T g``
  (Dauphin et al. 2014).
* :func:`trust_region`       -- Steihaug-CG subproblem + ratio test (Nocedal & Wright
  2006, Algorithms 7.2 and 4.1).
* :func:`natural_gradient`   -- CG on Fisher / Gauss-Newton-vector products
  (Amari 1998; Martens 2014).

Curvature arrives through keyword extra arguments of ``update`` (names follow
optax where optax has one):

=============  ===========================================================
``value``      loss at ``params`` (scalar). Optional; computed with
               ``value_fn(params)`` when a transform needs it and it is absent.
``value_fn``   ``value_fn(params) -> scalar`` loss (same name as in
               ``optax.scale_by_zoom_linesearch``).
``hvp_fn``     ``hvp_fn(params, v) -> H(params) v`` (pytrees like ``params``).
``fvp_fn``     ``fvp_fn(params, v) -> F(params) v``: Fisher, empirical Fisher or
               Gauss-Newton matrix times ``v`` (natural gradient only).
=============  ===========================================================

Builders for these closures: :func:`curvature_fns` (value and Hessian-vector
product of ``loss(params, batch)``), :func:`gauss_newton_fns` (``J^T H_out J v``
from ``apply(params, x)`` and a convex output loss; Schraudolph 2002) and
:func:`empirical_fisher_fns` (``(1/N) sum_i g_i g_i^T v`` from per-example losses).
Build them *inside* your jitted step so the batch is a traced argument, not a
constant folded into the program.

Pure solvers, usable on their own: :func:`conjugate_gradient` and
:func:`steihaug_cg`, both ``lax.while_loop`` on pytrees.

Hyperparameters may be injected with ``optax.inject_hyperparams``. Iteration
counts of the CG solvers (``max_iters``) may be traced; the Krylov dimension
of :func:`saddle_free_newton` (``num_iters``) sets an array shape and must be
listed in ``static_args``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import check_choice, check_int, check_positive, is_tracer

PyTree = Any

__all__ = [
    "CGResult",
    "HessianFreeState",
    "NaturalGradientState",
    "SaddleFreeState",
    "SteihaugResult",
    "TrustRegionState",
    "conjugate_gradient",
    "curvature_fns",
    "empirical_fisher_fns",
    "gauss_newton_fns",
    "hessian_free",
    "natural_gradient",
    "saddle_free_newton",
    "steihaug_cg",
    "trust_region",
]


# ----------------------------------------------------------------------------- pytree algebra


def _vdot(a: PyTree, b: PyTree) -> jax.Array:
    leaves = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.vdot(x, y).real, a, b))
    return sum(leaves, jnp.zeros([], jnp.result_type(*jax.tree.leaves(a))))


def _axpy(alpha: jax.Array, x: PyTree, y: PyTree) -> PyTree:
    """``alpha * x + y`` leafwise."""
    return jax.tree.map(lambda xi, yi: (alpha * xi + yi).astype(yi.dtype), x, y)


def _scale(alpha: jax.Array, x: PyTree) -> PyTree:
    return jax.tree.map(lambda xi: (alpha * xi).astype(xi.dtype), x)


def _zeros_like(x: PyTree) -> PyTree:
    return jax.tree.map(jnp.zeros_like, x)


def _where(cond: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(lambda ai, bi: jnp.where(cond, ai, bi), a, b)


# ----------------------------------------------------------------------------- validation


def _check_iters(name: str, value: Any, *, allow_traced: bool = True) -> Any:
    """check_int that also accepts concrete integer 0-d arrays (optax.inject_hyperparams)."""
    if is_tracer(value):
        if not allow_traced:
            raise TypeError(
                f"{name} sets an array shape and must be a concrete int, got a traced value; "
                f"with optax.inject_hyperparams pass static_args=({name!r},)"
            )
        return value
    if isinstance(value, jax.Array | np.ndarray) and np.ndim(value) == 0:
        if np.issubdtype(np.asarray(value).dtype, np.integer):
            value = int(value)
    return check_int(name, value, minimum=1)


def _require(name: str, value: Any, transform: str) -> Any:
    if value is None:
        raise ValueError(
            f"{transform}.update requires the keyword argument {name}=...; "
            "see jaxopt_lab.transforms.second_order for the extra-argument names"
        )
    return value


# ----------------------------------------------------------------------------- solvers


class CGResult(NamedTuple):
    """Result of :func:`conjugate_gradient`."""

    x: PyTree  # solution, same structure as b
    num_iters: jax.Array  # [] int32, CG iterations taken
    residual_norm: jax.Array  # [] ||b - A x||, recursively updated
    negative_curvature: jax.Array  # [] bool, stopped on p^T A p <= 0


def conjugate_gradient(
    matvec: Callable[[PyTree], PyTree],
    b: PyTree,
    *,
    x0: PyTree | None = None,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> CGResult:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` by conjugate gradients.

    Runs in one ``lax.while_loop`` on pytrees. Stops when ``||r|| <= tol * ||b||``
    (relative residual), after ``max_iters`` iterations, or when a search direction
    with non-positive curvature ``p^T A p <= 0`` is met (``A`` not positive definite;
    the current iterate is returned and ``negative_curvature`` is set). In exact
    arithmetic CG solves a ``d``-dimensional SPD system in at most ``d`` iterations.

    Args:
      matvec: ``v -> A v`` on pytrees shaped like ``b``.
      b: right-hand side (pytree of arrays).
      x0: initial guess (default zeros).
      max_iters: iteration cap (int >= 1; may be traced).
      tol: relative residual tolerance (>= 0).

    Returns:
      :class:`CGResult` ``(x, num_iters, residual_norm, negative_curvature)``.

    Example:
      >>> A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
      >>> r = conjugate_gradient(lambda v: A @ v, jnp.array([1.0, 1.0]), max_iters=2)

    References:
      Hestenes & Stiefel, 1952. Methods of conjugate gradients for solving linear systems.
    """
    max_iters = _check_iters("max_iters", max_iters)
    check_positive("tol", tol, allow_zero=True)
    x = _zeros_like(b) if x0 is None else x0
    r = jax.tree.map(jnp.subtract, b, matvec(x)) if x0 is not None else b
    rr = _vdot(r, r)
    bnorm = jnp.sqrt(_vdot(b, b))
    threshold = tol * bnorm

    def cond(carry):
        _, _, _, rr, k, neg = carry
        return (k < max_iters) & (jnp.sqrt(rr) > threshold) & ~neg

    def body(carry):
        x, r, p, rr, k, _ = carry
        ap = matvec(p)
        pap = _vdot(p, ap)
        neg = ~(pap > 0)
        alpha = jnp.where(neg, 0.0, rr / jnp.where(neg, 1.0, pap))
        x_new = _axpy(alpha, p, x)
        r_new = _axpy(-alpha, ap, r)
        rr_new = _vdot(r_new, r_new)
        beta = rr_new / jnp.where(rr > 0, rr, 1.0)
        p_new = _axpy(beta, p, r_new)
        x, r, p = _where(neg, x, x_new), _where(neg, r, r_new), _where(neg, p, p_new)
        rr = jnp.where(neg, rr, rr_new)
        return x, r, p, rr, k + jnp.where(neg, 0, 1), neg

    init = (x, r, r, rr, jnp.zeros([], jnp.int32), jnp.zeros([], bool))
    x, _, _, rr, k, neg = jax.lax.while_loop(cond, body, init)
    return CGResult(x=x, num_iters=k, residual_norm=jnp.sqrt(rr), negative_curvature=neg)


class SteihaugResult(NamedTuple):
    """Result of :func:`steihaug_cg`."""

    p: PyTree  # step, same structure as g, ||p|| <= radius
    num_iters: jax.Array  # [] int32
    hit_boundary: jax.Array  # [] bool, ||p|| == radius (boundary or negative curvature)


def steihaug_cg(
    matvec: Callable[[PyTree], PyTree],
    g: PyTree,
    radius: jax.Array | float,
    *,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> SteihaugResult:
    """Approximately minimise ``g^T p + p^T B p / 2`` subject to ``||p|| <= radius``.

    CG-Steihaug (Nocedal & Wright 2006, Algorithm 7.2): CG iterations from ``p = 0``
    until the residual falls below ``tol * ||g||``, the iterate leaves the trust region,
    or a direction of non-positive curvature appears; in the last two cases the step
    follows the current direction to the boundary. ``B`` may be indefinite.

    Args:
      matvec: ``v -> B v`` on pytrees shaped like ``g``.
      g: gradient (pytree).
      radius: trust-region radius (> 0).
      max_iters: iteration cap (may be traced).
      tol: relative residual tolerance.

    Returns:
      :class:`SteihaugResult` ``(p, num_iters, hit_boundary)``.

    References:
      Steihaug, 1983. The conjugate gradient method and trust regions in large scale
      optimization. Nocedal & Wright, 2006. Numerical Optimization, Algorithm 7.2.
    """
    max_iters = _check_iters("max_iters", max_iters)
    check_positive("radius", radius)
    check_positive("tol", tol, allow_zero=True)
    radius = jnp.asarray(radius, jnp.result_type(*jax.tree.leaves(g)))
    z = _zeros_like(g)
    r = g
    d = _scale(-1.0, g)
    rr = _vdot(r, r)
    threshold = tol * jnp.sqrt(rr)

    def to_boundary(z, d):
        # tau >= 0 with ||z + tau d|| = radius
        zd, dd, zz = _vdot(z, d), _vdot(d, d), _vdot(z, z)
        dd = jnp.where(dd > 0, dd, 1.0)
        disc = jnp.maximum(zd * zd - dd * (zz - radius**2), 0.0)
        tau = (-zd + jnp.sqrt(disc)) / dd
        return _axpy(tau, d, z)

    def cond(carry):
        _, _, _, rr, k, done, _ = carry
        return (k < max_iters) & ~done & (jnp.sqrt(rr) > threshold)

    def body(carry):
        z, r, d, rr, k, _, _ = carry
        bd = matvec(d)
        dbd = _vdot(d, bd)
        neg = ~(dbd > 0)
        alpha = rr / jnp.where(neg, 1.0, dbd)
        z_new = _axpy(alpha, d, z)
        outside = jnp.sqrt(_vdot(z_new, z_new)) >= radius
        boundary = neg | outside
        z_b = to_boundary(z, d)
        r_new = _axpy(alpha, bd, r)
        rr_new = _vdot(r_new, r_new)
        beta = rr_new / jnp.where(rr > 0, rr, 1.0)
        d_new = _axpy(beta, d, _scale(-1.0, r_new))
        z = _where(boundary, z_b, z_new)
        r = _where(boundary, r, r_new)
        d = _where(boundary, d, d_new)
        rr = jnp.where(boundary, rr, rr_new)
        return z, r, d, rr, k + 1, boundary, boundary

    init = (z, r, d, rr, jnp.zeros([], jnp.int32), jnp.zeros([], bool), jnp.zeros([], bool))
    z, _, _, _, k, _, hit = jax.lax.while_loop(cond, body, init)
    return SteihaugResult(p=z, num_iters=k, hit_boundary=hit)


# ----------------------------------------------------------------------------- closure builders


def curvature_fns(loss: Callable[..., jax.Array], batch: Any) -> dict[str, Callable]:
    """Build ``value_fn`` and ``hvp_fn`` extra arguments from ``loss(params, batch)``.

    Call this inside your jitted step, so ``batch`` is a traced argument.

    Args:
      loss: scalar ``loss(params, batch)``.
      batch: the data, held fixed.

    Returns:
      ``dict(value_fn=params -> loss, hvp_fn=(params, v) -> H v)`` ready to be
      splatted into ``opt.update(grads, state, params, **fns)``.

    Example:
      >>> fns = curvature_fns(lambda p, b: jnp.sum((p - b) ** 2), jnp.ones(3))
      >>> fns["hvp_fn"](jnp.zeros(3), jnp.ones(3))
      Array([2., 2., 2.], dtype=float32)

    References:
      Pearlmutter, 1994. Fast exact multiplication by the Hessian.
    """
    from jaxopt_lab.curvature.hvp import hvp

    def value_fn(params):
        return loss(params, batch)

    def hvp_fn(params, v):
        return hvp(loss, params, v, batch)

    return {"value_fn": value_fn, "hvp_fn": hvp_fn}


def gauss_newton_fns(
    apply: Callable[[PyTree, Any], jax.Array],
    output_loss: Callable[[jax.Array, Any], jax.Array],
    batch: tuple[Any, Any],
) -> dict[str, Callable]:
    """Build ``value_fn`` and a Gauss-Newton-vector product ``fvp_fn = J^T H_out J v``.

    With ``z = apply(params, x)`` the network outputs and ``L = output_loss(z, y)``
    convex in ``z``, the generalised Gauss-Newton matrix ``G = J^T H_out J`` (``J``
    the Jacobian of ``z`` in ``params``, ``H_out`` the Hessian of ``L`` in ``z``) is
    positive semi-definite. ``G v`` costs one forward-mode JVP, one output-space HVP
    and one VJP (Schraudolph 2002). For squared error and softmax cross-entropy, ``G``
    equals the Fisher information matrix (Martens 2014).

    Args:
      apply: ``apply(params, x) -> outputs``.
      output_loss: ``output_loss(outputs, y) -> scalar``, convex in ``outputs``.
      batch: ``(x, y)``.

    Returns:
      ``dict(value_fn=..., fvp_fn=(params, v) -> G v)``.

    References:
      Schraudolph, 2002. Fast curvature matrix-vector products for second-order
      gradient descent. Martens, 2014. New insights and perspectives on the natural
      gradient method.
    """
    x, y = batch

    def value_fn(params):
        return output_loss(apply(params, x), y)

    def fvp_fn(params, v):
        f = lambda p: apply(p, x)
        z, jv = jax.jvp(f, (params,), (v,))
        g_out = lambda zz: jax.grad(output_loss)(zz, y)
        hjv = jax.jvp(g_out, (z,), (jv,))[1]
        _, vjp = jax.vjp(f, params)
        return vjp(hjv)[0]

    return {"value_fn": value_fn, "fvp_fn": fvp_fn}


def empirical_fisher_fns(
    per_example_loss: Callable[[PyTree, Any], jax.Array], batch: Any
) -> dict[str, Callable]:
    """Build ``value_fn`` (mean loss) and an empirical-Fisher-vector product ``fvp_fn``.

    ``F v = (1/N) sum_i g_i (g_i^T v)`` with ``g_i`` the gradient of the ``i``-th
    example's loss, computed as ``J^T (J v) / N`` with ``J`` the Jacobian of the
    ``[N]`` vector of per-example losses (one JVP and one VJP; no per-example
    gradients are stored). Martens (2014) discusses why the empirical Fisher is a
    cruder curvature model than the true Fisher / Gauss-Newton matrix.

    Args:
      per_example_loss: ``per_example_loss(params, batch) -> [N]`` losses.
      batch: the data.

    Returns:
      ``dict(value_fn=params -> mean loss, fvp_fn=(params, v) -> F v)``.

    References:
      Amari, 1998. Natural gradient works efficiently in learning. Martens, 2014. New
      insights and perspectives on the natural gradient method.
    """

    def value_fn(params):
        return jnp.mean(per_example_loss(params, batch))

    def fvp_fn(params, v):
        f = lambda p: per_example_loss(p, batch)
        losses, jv = jax.jvp(f, (params,), (v,))
        _, vjp = jax.vjp(f, params)
        return vjp(jv / losses.shape[0])[0]

    return {"value_fn": value_fn, "fvp_fn": fvp_fn}


# ----------------------------------------------------------------------------- Hessian-free


class HessianFreeState(NamedTuple):
    """State of :func:`hessian_free`."""

    damping: jax.Array  # [] current Tikhonov damping lambda (adapted when adapt_damping)
    ratio: jax.Array  # [] last reduction ratio rho (nan when not computed)
    num_cg_iters: jax.Array  # [] int32, CG iterations of the last step
    direction: PyTree  # like params: last CG solution d (warm start of the next solve)


def hessian_free(
    learning_rate: float = 1.0,
    *,
    damping: float = 1e-3,
    max_iters: int = 50,
    tol: float = 1e-5,
    adapt_damping: bool = False,
    damping_decrease: float = 2.0 / 3.0,
    damping_increase: float = 1.5,
    min_damping: float = 1e-8,
    warm_start: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Hessian-free (truncated) Newton: solve ``(H + lambda I) d = -g`` by CG on HVPs.

    The update is ``learning_rate * d``. CG stops at relative residual ``tol``,
    after ``max_iters`` iterations, or on a direction of non-positive curvature (the
    iterate so far is used; if that happens at the first iteration, ``d = -g``).

    With ``adapt_damping`` the Levenberg-Marquardt rule of Martens (2010) adapts
    ``lambda`` from the reduction ratio ``rho = (f(x + u) - f(x)) / (g^T u + u^T H u / 2)``
    of the update ``u`` (undamped quadratic model; one extra HVP and one ``value_fn``
    call): ``rho < 1/4 -> lambda *= damping_increase``, ``rho > 3/4 -> lambda *=
    damping_decrease``. The step is not rejected (Martens' rule), only the damping of
    the next step changes.

    ``warm_start = zeta > 0`` starts CG from ``zeta`` times the previous solution
    (Martens 2010 uses ``zeta = 0.95``): consecutive Newton systems are similar, so
    fewer CG iterations are needed; ``0`` starts from zero.

    Extra args of ``update``: ``hvp_fn`` (required); ``value_fn`` (required with
    ``adapt_damping``); ``value`` (optional, else ``value_fn(params)``).

    Args:
      learning_rate: scale of the Newton-like step (> 0).
      damping: Tikhonov damping ``lambda >= 0`` (initial value when adapted).
      max_iters: CG iteration cap (>= 1).
      tol: CG relative residual tolerance (>= 0).
      adapt_damping: enable the Levenberg-Marquardt damping rule.
      damping_decrease: factor (< 1) applied when ``rho > 3/4``.
      damping_increase: factor (> 1) applied when ``rho < 1/4``.
      min_damping: floor for the adapted damping.
      warm_start: CG initialisation decay ``zeta`` in ``[0, 1]``.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`HessianFreeState`.

    Example:
      >>> opt = hessian_free(1.0, damping=1e-4)
      >>> # updates, state = opt.update(g, state, params, **curvature_fns(loss, batch))

    References:
      Martens, 2010. Deep learning via Hessian-free optimization.
      Nocedal & Wright, 2006. Numerical Optimization (truncated Newton, chapter 7).
    """
    check_positive("learning_rate", learning_rate)
    check_positive("damping", damping, allow_zero=True)
    max_iters = _check_iters("max_iters", max_iters)
    check_positive("tol", tol, allow_zero=True)
    check_positive("damping_decrease", damping_decrease)
    check_positive("damping_increase", damping_increase)
    check_positive("min_damping", min_damping, allow_zero=True)
    check_positive("warm_start", warm_start, allow_zero=True)
    if not is_tracer(damping_decrease) and not float(damping_decrease) <= 1.0:
        raise ValueError(f"damping_decrease must be in (0, 1], got {damping_decrease!r}")
    if not is_tracer(damping_increase) and not float(damping_increase) >= 1.0:
        raise ValueError(f"damping_increase must be >= 1, got {damping_increase!r}")
    if not is_tracer(warm_start) and not float(warm_start) <= 1.0:
        raise ValueError(f"warm_start must be in [0, 1], got {warm_start!r}")
    use_warm_start = not (isinstance(warm_start, float | int) and warm_start == 0)

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return HessianFreeState(
            damping=jnp.asarray(damping, dtype),
            ratio=jnp.full([], jnp.nan, dtype),
            num_cg_iters=jnp.zeros([], jnp.int32),
            direction=_zeros_like(params),
        )

    def update_fn(updates, state, params=None, *, hvp_fn=None, value_fn=None, value=None, **extra):
        del extra
        _require("params", params, "hessian_free")
        _require("hvp_fn", hvp_fn, "hessian_free")
        if adapt_damping:
            _require("value_fn", value_fn, "hessian_free")
        lam = state.damping if adapt_damping else jnp.asarray(damping, state.damping.dtype)
        g = updates
        matvec = lambda v: _axpy(lam, v, hvp_fn(params, v))
        x0 = _scale(warm_start, state.direction) if use_warm_start else None
        cg = conjugate_gradient(matvec, _scale(-1.0, g), x0=x0, max_iters=max_iters, tol=tol)
        first_neg = cg.negative_curvature & (cg.num_iters == 0)
        d = _where(first_neg, _scale(-1.0, g), cg.x)
        u = _scale(learning_rate, d)
        ratio, new_lam = state.ratio, state.damping
        if adapt_damping:
            f0 = value_fn(params) if value is None else value
            f1 = value_fn(jax.tree.map(jnp.add, params, u))
            predicted = _vdot(g, u) + 0.5 * _vdot(u, hvp_fn(params, u))
            ratio = jnp.where(
                predicted < 0, (f1 - f0) / jnp.where(predicted < 0, predicted, -1.0), jnp.nan
            )
            # non-finite f(x + u) counts as a failed step; at a stationary point
            # (predicted >= 0, ratio nan) the damping is kept.
            ratio = jnp.where(jnp.isnan(ratio) & (predicted < 0), -jnp.inf, ratio)
            ratio = ratio.astype(state.ratio.dtype)
            factor = jnp.where(
                ratio < 0.25, damping_increase, jnp.where(ratio > 0.75, damping_decrease, 1.0)
            )
            factor = jnp.where(jnp.isnan(ratio), 1.0, factor)
            new_lam = jnp.maximum(lam * factor, min_damping).astype(state.damping.dtype)
        new_state = HessianFreeState(
            damping=new_lam, ratio=ratio, num_cg_iters=cg.num_iters, direction=d
        )
        return u, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ----------------------------------------------------------------------------- natural gradient


class NaturalGradientState(NamedTuple):
    """State of :func:`natural_gradient`."""

    num_cg_iters: jax.Array  # [] int32, CG iterations of the last step


def natural_gradient(
    learning_rate: float = 1.0,
    *,
    damping: float = 1e-3,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> optax.GradientTransformationExtraArgs:
    """Natural gradient: update ``-learning_rate (F + lambda I)^{-1} g``, solved by CG.

    ``F`` is any positive semi-definite curvature matrix given through the extra
    argument ``fvp_fn(params, v) -> F v``: the Fisher information, the empirical
    Fisher (:func:`empirical_fisher_fns`) or the generalised Gauss-Newton matrix
    (:func:`gauss_newton_fns`), which equals the Fisher for exponential-family outputs
    with matching loss (Martens 2014). The damping makes the system definite.

    Args:
      learning_rate: step scale (> 0).
      damping: Tikhonov damping ``lambda >= 0``.
      max_iters: CG iteration cap (>= 1).
      tol: CG relative residual tolerance (>= 0).

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`NaturalGradientState`.

    References:
      Amari, 1998. Natural gradient works efficiently in learning.
      Martens, 2014. New insights and perspectives on the natural gradient method.
    """
    check_positive("learning_rate", learning_rate)
    check_positive("damping", damping, allow_zero=True)
    max_iters = _check_iters("max_iters", max_iters)
    check_positive("tol", tol, allow_zero=True)

    def init_fn(params):
        del params
        return NaturalGradientState(num_cg_iters=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None, *, fvp_fn=None, **extra):
        del state, extra
        _require("params", params, "natural_gradient")
        _require("fvp_fn", fvp_fn, "natural_gradient")
        matvec = lambda v: _axpy(damping, v, fvp_fn(params, v))
        cg = conjugate_gradient(matvec, updates, max_iters=max_iters, tol=tol)
        return _scale(-learning_rate, cg.x), NaturalGradientState(num_cg_iters=cg.num_iters)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ----------------------------------------------------------------------------- trust region


class TrustRegionState(NamedTuple):
    """State of :func:`trust_region`."""

    radius: jax.Array  # [] trust-region radius Delta
    ratio: jax.Array  # [] last ratio rho = actual / predicted reduction
    accepted: jax.Array  # [] bool, last step accepted
    num_cg_iters: jax.Array  # [] int32, Steihaug-CG iterations of the last step


def trust_region(
    learning_rate: float = 1.0,
    *,
    initial_radius: float = 1.0,
    max_radius: float = 100.0,
    eta: float = 0.1,
    max_iters: int = 50,
    tol: float = 1e-5,
) -> optax.GradientTransformationExtraArgs:
    """Newton trust-region step with a Steihaug-CG subproblem solver and a ratio test.

    Each update solves ``min_p g^T p + p^T H p / 2, ||p|| <= Delta`` approximately by
    :func:`steihaug_cg`, forms the candidate ``u = learning_rate * p`` and the ratio
    ``rho = (f(x) - f(x + u)) / (m(0) - m(u))`` of actual to predicted reduction
    (``value_fn`` evaluates the candidate). Nocedal & Wright (2006), Algorithm 4.1:
    ``rho < 1/4 -> Delta /= 4``; ``rho > 3/4`` and the step reached the boundary ->
    ``Delta = min(2 Delta, max_radius)``. The update is ``u`` when ``rho > eta`` and
    zero otherwise (rejected step), so an accepted step never increases ``f``
    when ``eta >= 0``. A non-finite ``f(x + u)`` is a rejection. At a stationary
    point (predicted reduction <= 0) the update is zero and the radius is kept.

    Extra args of ``update``: ``hvp_fn`` and ``value_fn`` (required); ``value``
    (optional, else ``value_fn(params)``).

    Args:
      learning_rate: scale of the step (1.0 is the textbook method).
      initial_radius: ``Delta_0 > 0``.
      max_radius: ``Delta_max >= initial_radius``.
      eta: acceptance threshold, ``0 <= eta < 1/4``.
      max_iters: Steihaug-CG iteration cap (>= 1).
      tol: Steihaug-CG relative residual tolerance.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`TrustRegionState`.

    References:
      Steihaug, 1983. The conjugate gradient method and trust regions in large scale
      optimization. Nocedal & Wright, 2006. Numerical Optimization, Algorithms 4.1, 7.2.
    """
    check_positive("learning_rate", learning_rate)
    check_positive("initial_radius", initial_radius)
    check_positive("max_radius", max_radius)
    check_positive("eta", eta, allow_zero=True)
    max_iters = _check_iters("max_iters", max_iters)
    check_positive("tol", tol, allow_zero=True)
    if not is_tracer(eta) and not float(eta) < 0.25:
        raise ValueError(f"eta must satisfy 0 <= eta < 0.25, got {eta!r}")
    if not (is_tracer(max_radius) or is_tracer(initial_radius)) and float(max_radius) < float(
        initial_radius
    ):
        raise ValueError(
            f"max_radius must be >= initial_radius, got {max_radius!r} < {initial_radius!r}"
        )

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return TrustRegionState(
            radius=jnp.asarray(initial_radius, dtype),
            ratio=jnp.full([], jnp.nan, dtype),
            accepted=jnp.zeros([], bool),
            num_cg_iters=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, *, hvp_fn=None, value_fn=None, value=None, **extra):
        del extra
        _require("params", params, "trust_region")
        _require("hvp_fn", hvp_fn, "trust_region")
        _require("value_fn", value_fn, "trust_region")
        g = updates
        radius = state.radius
        matvec = lambda v: hvp_fn(params, v)
        sol = steihaug_cg(matvec, g, radius, max_iters=max_iters, tol=tol)
        u = _scale(learning_rate, sol.p)
        predicted = -(_vdot(g, u) + 0.5 * _vdot(u, matvec(u)))
        f0 = value_fn(params) if value is None else value
        f1 = value_fn(jax.tree.map(jnp.add, params, u))
        actual = f0 - f1
        stationary = ~(predicted > 0)
        rho = actual / jnp.where(stationary, 1.0, predicted)
        rho = jnp.where(jnp.isfinite(rho), rho, -jnp.inf)
        pnorm = jnp.sqrt(_vdot(sol.p, sol.p))
        at_boundary = pnorm >= 0.99 * radius
        new_radius = jnp.where(
            rho < 0.25,
            0.25 * radius,
            jnp.where((rho > 0.75) & at_boundary, jnp.minimum(2.0 * radius, max_radius), radius),
        )
        new_radius = jnp.where(stationary, radius, new_radius).astype(radius.dtype)
        accept = (rho > eta) & ~stationary
        out = _where(accept, u, _zeros_like(u))
        new_state = TrustRegionState(
            radius=new_radius,
            ratio=jnp.where(stationary, jnp.nan, rho).astype(state.ratio.dtype),
            accepted=accept,
            num_cg_iters=sol.num_iters,
        )
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ----------------------------------------------------------------------------- saddle-free Newton


class SaddleFreeState(NamedTuple):
    """State of :func:`saddle_free_newton`."""

    key: jax.Array  # [] typed PRNG key (key<fry>), used by krylov_start="random"
    min_eigenvalue: jax.Array  # [] smallest Ritz value of the last step
    max_eigenvalue: jax.Array  # [] largest Ritz value of the last step


def saddle_free_newton(
    learning_rate: float = 1.0,
    *,
    num_iters: int = 10,
    damping: float = 1e-4,
    krylov_start: str = "gradient",
    outside_scale: float | None = None,
    negative_curvature_step: float = 0.0,
    key: int | jax.Array = 0,
) -> optax.GradientTransformationExtraArgs:
    """Saddle-free Newton in a Krylov subspace: ``u = -lr V (|Lambda| + delta)^{-1} V^T g``.

    Builds ``m = min(num_iters, n)`` Lanczos vectors of the Hessian ``H`` (through
    ``hvp_fn``), eigendecomposes the tridiagonal matrix (``tridiagonal_eigh``) into
    Ritz values ``Lambda`` and Ritz vectors ``V`` (``[n, m]``) and rescales the
    gradient by ``1 / (|lambda_i| + damping)`` in each Ritz direction. Directions of
    negative curvature are thus *descended* (the sign of the Newton step flips there)
    and Newton's attraction to saddles disappears. On a positive-definite quadratic
    with ``m = n``, ``damping = 0`` and ``learning_rate = 1`` the update equals the
    Newton step ``-H^{-1} g``.

    The gradient component outside the subspace, ``g_perp = g - V V^T g``, is
    followed as a plain gradient step scaled by ``outside_scale`` (default ``None``:
    ``1 / (max_i |lambda_i| + damping)``, i.e. gradient descent with step ``1/L`` using
    the largest Ritz value as curvature bound). With ``krylov_start="gradient"`` the
    Lanczos start vector is ``g`` itself, so ``g`` lies in the subspace and
    ``g_perp ~ 0``; with ``krylov_start="random"`` (key in the state) the subspace
    targets extreme eigenvalues independently of ``g`` (useful exactly at a saddle,
    where ``g`` has no component along the escape direction) and ``g_perp`` matters.

    On ``f = x^2 - y^2`` one unit step doubles ``|y|`` (``y <- y + |y|``), so from
    ``|y| = 1e-3`` the pure method needs 10 steps to reach ``|y| > 1``. The optional
    ``negative_curvature_step = r > 0`` (an extension after More & Sorensen 1979,
    not part of Dauphin et al.) adds a step of length ``r`` along the Ritz vector of
    the most negative Ritz value (when it is ``< -damping``), signed to descend
    (``v^T g <= 0``); it escapes in 2 steps with ``r = 0.5``.

    Extra args of ``update``: ``hvp_fn`` (required).

    Args:
      learning_rate: scales the whole update (> 0).
      num_iters: Lanczos iterations / subspace dimension (>= 1; static: with
        ``optax.inject_hyperparams`` pass ``static_args=("num_iters",)``).
      damping: ``delta >= 0`` added to ``|lambda_i|``.
      krylov_start: ``"gradient"`` or ``"random"``.
      outside_scale: step for ``g_perp`` (``>= 0``) or ``None`` for ``1/max|lambda|``.
      negative_curvature_step: length of the optional negative-curvature step (>= 0).
      key: int seed or typed key for ``krylov_start="random"``.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`SaddleFreeState`.

    References:
      Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio, 2014. Identifying and attacking
      the saddle point problem in high-dimensional non-convex optimization.
      Lanczos, 1950. An iteration method for the solution of the eigenvalue problem of
      linear differential and integral operators.
      More & Sorensen, 1979. On the use of directions of negative curvature in a modified
      Newton method.
    """
    check_positive("learning_rate", learning_rate)
    num_iters = _check_iters("num_iters", num_iters, allow_traced=False)
    check_positive("damping", damping, allow_zero=True)
    check_choice("krylov_start", krylov_start, ("gradient", "random"))
    if outside_scale is not None:
        check_positive("outside_scale", outside_scale, allow_zero=True)
    check_positive("negative_curvature_step", negative_curvature_step, allow_zero=True)

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree.leaves(params))
        k = key
        if not (isinstance(k, jax.Array) and jax.dtypes.issubdtype(k.dtype, jax.dtypes.prng_key)):
            k = jax.random.key(k)
        return SaddleFreeState(
            key=k, min_eigenvalue=jnp.zeros([], dtype), max_eigenvalue=jnp.zeros([], dtype)
        )

    def update_fn(updates, state, params=None, *, hvp_fn=None, **extra):
        del extra
        from jaxopt_lab.curvature.lanczos import lanczos, tridiagonal_eigh

        _require("params", params, "saddle_free_newton")
        _require("hvp_fn", hvp_fn, "saddle_free_newton")
        g, unravel = ravel_pytree(updates)
        n = g.shape[0]
        m = min(num_iters, n)
        dtype = g.dtype
        matvec = lambda v: ravel_pytree(hvp_fn(params, unravel(v.astype(dtype))))[0]
        new_key, sub = jax.random.split(state.key)
        if krylov_start == "random":
            v0 = jax.random.normal(sub, (n,), dtype)
        else:
            gnorm = jnp.linalg.norm(g)
            # At an exact critical point fall back to a fixed direction (the step is 0).
            v0 = jnp.where(gnorm > 0, g, jnp.ones_like(g))
        v0 = v0 / jnp.linalg.norm(v0)
        res = lanczos(matvec, v0, m, key=jax.random.fold_in(sub, 1))
        evals, evecs = tridiagonal_eigh(res.alphas, res.betas)
        evals = jnp.asarray(evals, dtype)
        ritz = jnp.asarray(res.basis, dtype).T @ jnp.asarray(evecs, dtype)  # [n, m]
        # Lanczos breakdown (invariant subspace) can leave null or NaN basis vectors:
        # keep only finite, unit-norm Ritz vectors.
        norms = jnp.linalg.norm(ritz, axis=0)
        valid = jnp.isfinite(norms) & (jnp.abs(norms - 1.0) < 1e-2) & jnp.isfinite(evals)
        ritz = jnp.where(valid[None, :], ritz, 0.0)
        evals = jnp.where(valid, evals, 0.0)
        coeff = ritz.T @ g  # [m]
        scale = 1.0 / (jnp.abs(evals) + damping)
        scale = jnp.where(valid & jnp.isfinite(scale), scale, 0.0)
        step = -(ritz @ (coeff * scale))
        g_perp = g - ritz @ coeff
        if outside_scale is None:
            lmax = jnp.max(jnp.where(valid, jnp.abs(evals), 0.0)) + damping
            o_scale = jnp.where(lmax > 0, 1.0 / lmax, 0.0)
        else:
            o_scale = outside_scale
        step = step - o_scale * g_perp
        big = jnp.finfo(dtype).max
        lam_min = jnp.min(jnp.where(valid, evals, big))
        lam_max = jnp.max(jnp.where(valid, evals, -big))
        if not (isinstance(negative_curvature_step, float | int) and negative_curvature_step == 0):
            i = jnp.argmin(jnp.where(valid, evals, big))
            v = ritz[:, i]
            sign = jnp.where(jnp.vdot(v, g) > 0, -1.0, 1.0)
            use = lam_min < -damping
            step = step + jnp.where(use, negative_curvature_step * sign, 0.0) * v
        u = unravel((learning_rate * step).astype(dtype))
        new_state = SaddleFreeState(
            key=new_key,
            min_eigenvalue=lam_min.astype(state.min_eigenvalue.dtype),
            max_eigenvalue=lam_max.astype(state.max_eigenvalue.dtype),
        )
        return u, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

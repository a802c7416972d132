"""Stochastic trace estimation of curvature operators: Hutchinson, Hutch++ and XTrace.

Probes are vmapped (one batched matvec call per stage). Works on the Hessian of a loss
or on any :class:`~jaxopt_lab.curvature.CurvatureOperator` (GGN, empirical Fisher, a
parameter block, a dataset in micro-batches, a user matvec).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import as_key, check_callable, check_choice, check_int
from jaxopt_lab.curvature import linear_operator as lo
from jaxopt_lab.curvature._cache import cached_jit

__all__ = ["TraceEstimate", "trace", "trace_matvec"]

PyTree = Any
_METHODS = ("hutchinson", "hutch++", "xtrace")


class TraceEstimate(NamedTuple):
    """Output of :func:`trace` / :func:`trace_matvec`.

    Attributes:
      estimate: scalar estimate of ``tr(A)``.
      std_error: scalar standard error (see :func:`trace` per method).
      num_matvecs: matvecs spent (an int).
      samples: ``[S]`` the per-sample estimates whose mean is ``estimate`` (Hutchinson:
        ``z^T A z``; Hutch++: ``tr(Q^T A Q) + z^T P A P z``; XTrace: the ``s``
        leave-one-out estimates).
    """

    estimate: jax.Array
    std_error: jax.Array
    num_matvecs: int
    samples: jax.Array


def _rademacher(key, shape, dtype):
    return jax.random.rademacher(key, shape, dtype=dtype)


def _se(samples):
    return jnp.std(samples, ddof=1) / jnp.sqrt(samples.shape[0])


def _hutchinson(matmat, key, n, dtype, num_probes):
    z = _rademacher(key, (num_probes, n), dtype)
    samples = jnp.sum(z * matmat(z), axis=1)
    return jnp.mean(samples), _se(samples), samples


def _hutchpp(matmat, key, n, dtype, num_probes):
    # Meyer et al. (2021), Algorithm 1: num_probes = 2 s + g matvecs in total.
    s = num_probes // 3
    g = num_probes - 2 * s
    k_s, k_g = jax.random.split(key)
    sketch = _rademacher(k_s, (s, n), dtype)
    q, _ = jnp.linalg.qr(matmat(sketch).T)  # [n, s] orthonormal range basis
    q = q.T  # [s, n]
    low_rank = jnp.sum(q * matmat(q))  # trace(Q^T A Q)
    z = _rademacher(k_g, (g, n), dtype)
    z = z - (z @ q.T) @ q  # (I - Q Q^T) z
    samples = low_rank + jnp.sum(z * matmat(z), axis=1)
    return jnp.mean(samples), _se(samples), samples


def _xtrace(matmat, key, n, dtype, num_probes):
    # Epperly, Tropp, Webber (2024), basic XTrace: s = num_probes // 2 test vectors w_i;
    # estimate i = tr(Q_i^T A Q_i) + w_i^T P_i A P_i w_i with Q_i an orthonormal basis of
    # A W_{-i} (all test vectors but w_i) and P_i = I - Q_i Q_i^T. With A W = Q R and
    # S = columns of R^{-T} normalised, Q_i Q_i^T = Q (I - s_i s_i^T) Q^T, so all s
    # estimates come from the same 2 s matvecs (A W and A Q).
    s = num_probes // 2
    w = _rademacher(key, (s, n), dtype).T  # [n, s]
    y = matmat(w.T).T  # A W
    q, r = jnp.linalg.qr(y)  # [n, s], [s, s]
    z = matmat(q.T).T  # A Q
    h = q.T @ z
    h = 0.5 * (h + h.T)  # Q^T A Q
    r_inv_t = jnp.linalg.inv(r).T
    sv = r_inv_t / jnp.linalg.norm(r_inv_t, axis=0, keepdims=True)  # columns s_i
    wq = q.T @ w  # columns Q^T w_i
    c = wq - sv * jnp.sum(sv * wq, axis=0)  # (I - s_i s_i^T) Q^T w_i
    apw = y - z @ c  # A P_i w_i   (P_i w_i = w_i - Q c_i)
    qt_apw = r - h @ c  # Q^T A P_i w_i   (Q^T A W = Q^T Y = R)
    # w_i^T P_i (A P_i w_i) = w^T x - (Q^T w)^T (I - s s^T) (Q^T x)
    tr_w = (jnp.sum(w * apw, axis=0) - jnp.sum(wq * qt_apw, axis=0)
            + jnp.sum(sv * wq, axis=0) * jnp.sum(sv * qt_apw, axis=0))
    tr_qi = jnp.trace(h) - jnp.sum(sv * (h @ sv), axis=0)
    samples = tr_qi + tr_w
    return jnp.mean(samples), _se(samples), samples


def _trace_core(matvec, key, n, dtype, num_probes, method):
    matmat = jax.vmap(matvec)
    fn = {"hutchinson": _hutchinson, "hutch++": _hutchpp, "xtrace": _xtrace}[method]
    return fn(matmat, key, n, dtype, num_probes)


def _num_matvecs(num_probes, method):
    return 2 * (num_probes // 2) if method == "xtrace" else num_probes


def _validate(num_probes, method, dim):
    check_choice("method", method, _METHODS)
    minimum = {"hutchinson": 2, "hutch++": 6, "xtrace": 4}[method]
    num_probes = check_int("num_probes", num_probes, minimum=minimum)
    if method == "hutch++" and num_probes // 3 > dim:
        raise ValueError(
            f"num_probes // 3 = {num_probes // 3} exceeds the dimension {dim} for hutch++"
        )
    if method == "xtrace" and num_probes // 2 > dim:
        raise ValueError(
            f"num_probes // 2 = {num_probes // 2} exceeds the dimension {dim} for xtrace"
        )
    return num_probes


def trace_matvec(
    matvec: Callable[[jax.Array], jax.Array],
    dim: int,
    *,
    key: jax.Array,
    num_probes: int = 30,
    method: str = "hutchinson",
    dtype: Any = jnp.float32,
) -> TraceEstimate:
    """Trace of a symmetric operator given as a flat, vmappable ``matvec`` (traceable).

    See :func:`trace` for the estimators; this is the matrix-free core, for use inside
    your own ``jit`` (``num_matvecs`` is a Python int).
    """
    check_callable("matvec", matvec)
    dim = check_int("dim", dim, minimum=1)
    num_probes = _validate(num_probes, method, dim)
    key = as_key("key", key)
    est, se, samples = _trace_core(matvec, key, dim, dtype, num_probes, method)
    return TraceEstimate(est, se, _num_matvecs(num_probes, method), samples)


def _build_trace(static):
    op_static, num_probes, method = static

    def trace_program(dynamic, key):
        matvec, flat0, _ = lo.build(op_static, dynamic)
        return _trace_core(matvec, key, flat0.shape[0], flat0.dtype, num_probes, method)

    return trace_program


def trace(
    f: Any,
    x: PyTree = lo._MISSING,
    *args: Any,
    key: jax.Array,
    num_probes: int = 30,
    method: str = "hutchinson",
) -> TraceEstimate:
    """Estimate ``tr(A)`` of the Hessian of ``f`` at ``x`` (or of an operator) from matvecs.

    "hutchinson": mean of ``z^T A z`` over ``num_probes`` Rademacher probes ``z``;
    standard error = sample std / sqrt(num_probes). Unbiased.

    "hutch++": a third of the probes sketch ``S``, ``Q`` = orthonormal basis of ``A S``
    (a third more matvecs for ``tr(Q^T A Q)``, exact), the rest (plus remainder) on
    Hutchinson for the deflated ``(I - QQ^T) A (I - QQ^T)``. Unbiased. The standard error
    is that of the Hutchinson part, conditional on ``Q``. ``num_probes`` matvecs.

    "xtrace": ``s = num_probes // 2`` Rademacher test vectors, ``2 s`` matvecs. Each test
    vector ``w_i`` in turn plays Hutchinson's probe for the part of ``A`` outside the
    range of ``A W_{-i}`` (the other ``s - 1`` vectors), whose trace is taken exactly:
    the mean of these ``s`` exchangeable leave-one-out estimates is unbiased and has the
    low-rank variance reduction of Hutch++ with every sample used for both roles. The
    standard error is std / sqrt(s) of the leave-one-out estimates (they are dependent,
    so it is an error indicator rather than an exact standard error, as in the paper).
    Needs ``A W`` of full column rank ``s`` (``A`` of rank >= ``num_probes // 2``), else
    the QR's ``R`` is singular and the result is not finite.

    All probes are vmapped. One compiled program per (operator structure, shapes,
    ``num_probes``, ``method``), cached on a structural fingerprint of ``f``.

    Args:
      f: scalar function ``f(x, *args)``, or a :class:`CurvatureOperator` (then no
        ``x``/``args``).
      x: parameters (pytree).
      *args: extra arguments of ``f``.
      key: PRNG key for the probes.
      num_probes: matvec budget (>= 2 hutchinson, >= 6 hutch++, >= 4 xtrace, where an
        odd budget uses one matvec less).
      method: "hutchinson", "hutch++" or "xtrace".

    Returns:
      :class:`TraceEstimate` ``(estimate, std_error, num_matvecs, samples)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda x: 0.5 * jnp.sum(jnp.arange(1.0, 5.0) * x**2)
      >>> trace(f, jnp.zeros(4), key=jax.random.key(0)).estimate  # ~ 10

    References:
      Hutchinson, 1989. A stochastic estimator of the trace of the influence matrix
      for Laplacian smoothing splines.
      Meyer, Musco, Musco, Woodruff, 2021. Hutch++: Optimal stochastic trace
      estimation.
      Epperly, Tropp, Webber, 2024. XTrace: making the most of every sample in
      stochastic trace estimation.
    """
    op = lo.as_operator(f, x, args)
    num_probes = _validate(num_probes, method, op.dim)
    key = as_key("key", key)
    lo.check_fits(f, x, args)
    static, dynamic = lo.split(op)
    program = cached_jit("trace", (static, num_probes, method), _build_trace)
    est, se, samples = program(dynamic, key)
    return TraceEstimate(est, se, _num_matvecs(num_probes, method), samples)



"""Symmetric curvature operators for the spectral tools: Hessian, GGN, empirical Fisher,
or any matvec, optionally restricted to a block of parameters and accumulated over a
dataset in micro-batches.

A :class:`CurvatureOperator` is a plain description (functions + arrays); the spectral
tools (:func:`~jaxopt_lab.curvature.eigsh`, :func:`~jaxopt_lab.curvature.trace`,
:func:`~jaxopt_lab.curvature.spectral_density`,
:func:`~jaxopt_lab.curvature.power_iteration`) take it in place of ``f`` and build the
flat matrix-vector product inside their jitted program, with the arrays as traced
arguments (never constants folded into the program) and the functions keyed by a
structural fingerprint (an equal fresh ``lambda`` or ``functools.partial`` reuses the
compiled program).

Symmetry is not checked (that would cost matvecs): a non-symmetric ``matvec`` gives
meaningless Lanczos results. The Hessian, GGN and empirical Fisher are symmetric by
construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab._validation import (
    check_callable,
    check_int,
    check_params,
    check_same_dtypes,
    check_same_structure,
    check_scalar_function,
    is_tracer,
)

__all__ = [
    "CurvatureOperator",
    "fisher_matvec",
    "fisher_operator",
    "ggn_matvec",
    "ggn_operator",
    "hessian_operator",
    "matvec_operator",
]

PyTree = Any
_KINDS = ("hessian", "ggn", "fisher", "matvec")


class CurvatureOperator(NamedTuple):
    """A symmetric linear operator on (a block of) a parameter pytree.

    Build it with :func:`hessian_operator`, :func:`ggn_operator`,
    :func:`fisher_operator` or :func:`matvec_operator`; do not fill the fields by hand.

    Attributes:
      kind: "hessian", "ggn", "fisher" or "matvec".
      fns: the user's callables (static, fingerprinted).
      params: the point (pytree), or the ``like`` template of a matvec operator.
      data: tuple of array pytrees, traced arguments of the program.
      mask: tuple of bools, one per leaf of ``params``: the selected block.
      batch_size: micro-batch size over the leading axis of ``data``, or ``None``.
      num_examples: leading size ``N`` of ``data`` when micro-batched, else ``None``.
      dim: size of the selected block (the operator is ``dim x dim``).
    """

    kind: str
    fns: tuple
    params: PyTree
    data: tuple
    mask: tuple
    batch_size: int | None
    num_examples: int | None
    dim: int


# ------------------------------------------------------------------ direct products
def _check_pair(name_v, v, params):
    check_same_structure(name_v, v, "params", params)
    check_same_dtypes(name_v, v, "params", params)


def _ggn_mv(output_fn, loss_fn, params, v, inputs, targets):
    f = lambda p: output_fn(p, inputs)
    z, jv = jax.jvp(f, (params,), (v,))
    g_out = lambda zz: jax.grad(loss_fn)(zz, targets)
    hjv = jax.jvp(g_out, (z,), (jv,))[1]
    _, vjp = jax.vjp(f, params)
    return vjp(hjv)[0]


def _per_example_losses(output_fn, loss_fn, params, inputs, targets):
    out = output_fn(params, inputs)
    one = lambda o, t: loss_fn(jax.tree_util.tree_map(lambda a: a[None], o),
                               jax.tree_util.tree_map(lambda a: a[None], t))
    return jax.vmap(one)(out, targets)


def _fisher_mv(output_fn, loss_fn, params, v, inputs, targets, denom=None):
    f = lambda p: _per_example_losses(output_fn, loss_fn, p, inputs, targets)
    losses, jv = jax.jvp(f, (params,), (v,))
    _, vjp = jax.vjp(f, params)
    n = losses.shape[0] if denom is None else denom
    return vjp(jv / n)[0]


def _check_model_fns(output_fn, loss_fn, params, inputs, targets):
    check_callable("output_fn", output_fn)
    check_callable("loss_fn", loss_fn)
    check_params("params", params)
    try:
        out = jax.eval_shape(output_fn, params, inputs)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"params/inputs do not fit output_fn: output_fn(params, inputs) fails "
            f"({type(err).__name__}: {err})"
        ) from err
    try:
        val = jax.eval_shape(loss_fn, out, targets)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"targets do not fit loss_fn: loss_fn(outputs, targets) fails "
            f"({type(err).__name__}: {err})"
        ) from err
    if getattr(val, "shape", None) != () or not jnp.issubdtype(val.dtype, jnp.floating):
        raise ValueError(f"loss_fn must return a real floating scalar, got {val}")


def ggn_matvec(
    output_fn: Callable[[PyTree, Any], Any],
    loss_fn: Callable[[Any, Any], jax.Array],
    params: PyTree,
    v: PyTree,
    inputs: Any,
    targets: Any,
) -> PyTree:
    """Generalised Gauss-Newton product ``G v = J^T H_out J v`` for any model.

    ``J`` is the Jacobian of ``outputs = output_fn(params, inputs)`` in ``params`` and
    ``H_out`` the Hessian of ``loss_fn(outputs, targets)`` in ``outputs``. For a loss
    convex in the outputs (squared error, softmax cross-entropy on logits) ``G`` is
    positive semi-definite; it is the Hessian without the term that carries the
    network's second derivatives. Cost: one JVP, one output-space HVP, one VJP.

    Args:
      output_fn: ``output_fn(params, inputs) -> outputs`` (any pytree of arrays).
      loss_fn: ``loss_fn(outputs, targets) -> scalar``.
      params: parameter pytree.
      v: direction, same structure, shapes and dtypes as ``params``.
      inputs, targets: the data.

    Returns:
      ``G v``, shaped like ``params``.

    References:
      Schraudolph, 2002. Fast curvature matrix-vector products for second-order
      gradient descent.
      Martens, 2014. New insights and perspectives on the natural gradient method.
    """
    _check_model_fns(output_fn, loss_fn, params, inputs, targets)
    _check_pair("v", v, params)
    return _ggn_mv(output_fn, loss_fn, params, v, inputs, targets)


def fisher_matvec(
    output_fn: Callable[[PyTree, Any], Any],
    loss_fn: Callable[[Any, Any], jax.Array],
    params: PyTree,
    v: PyTree,
    inputs: Any,
    targets: Any,
) -> PyTree:
    """Empirical Fisher product ``F v = (1/N) sum_i g_i (g_i^T v)`` for any model.

    Per-example means: example ``i`` is row ``i`` of every leaf of ``outputs`` and
    ``targets`` (leading axis ``N``), and its loss is ``loss_fn`` applied to that one
    example as a batch of one (leading axis of size 1), so for a mean-reduced
    ``loss_fn`` it is the example's own loss; ``g_i`` is its gradient in ``params``.
    ``output_fn`` must treat the examples independently (no batch statistics), else the
    "per-example" gradients mix examples. Computed as ``J^T (J v) / N`` with ``J`` the
    Jacobian of the ``[N]`` per-example losses (one JVP, one VJP; no per-example
    gradients stored). PSD by construction; a cruder curvature model than the GGN /
    true Fisher (Kunstner et al. 2019).

    Args:
      output_fn: ``output_fn(params, inputs) -> outputs`` (leading axis ``N``).
      loss_fn: ``loss_fn(outputs, targets) -> scalar``.
      params: parameter pytree.
      v: direction, same structure, shapes and dtypes as ``params``.
      inputs, targets: the data (``targets`` with leading axis ``N``).

    Returns:
      ``F v``, shaped like ``params``.

    References:
      Amari, 1998. Natural gradient works efficiently in learning.
      Kunstner, Balles, Hennig, 2019. Limitations of the empirical Fisher approximation
      for natural gradient descent.
    """
    _check_model_fns(output_fn, loss_fn, params, inputs, targets)
    _check_pair("v", v, params)
    return _fisher_mv(output_fn, loss_fn, params, v, inputs, targets)


# ------------------------------------------------------------------------ builders
def _mask(params: PyTree, param_filter: Any) -> tuple:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if param_filter is None:
        return tuple(True for _ in leaves)
    if callable(param_filter):
        mask = tuple(bool(param_filter(path, leaf)) for path, leaf in leaves)
    elif isinstance(param_filter, str | Sequence):
        keys = (param_filter,) if isinstance(param_filter, str) else tuple(param_filter)

        def top(path):
            p = path[0] if path else None
            return getattr(p, "key", getattr(p, "name", getattr(p, "idx", None)))

        present = {top(path) for path, _ in leaves}
        missing = [k for k in keys if k not in present]
        if missing:
            raise ValueError(
                f"param_filter names top-level keys {missing} that params does not have "
                f"(it has {sorted(map(repr, present))})"
            )
        mask = tuple(top(path) in keys for path, _ in leaves)
    else:
        raise TypeError(
            "param_filter must be None, a callable (path, leaf) -> bool or a list of "
            f"top-level keys, got {param_filter!r}"
        )
    if not any(mask):
        raise ValueError("param_filter selects no parameter")
    return mask


def _check_batching(batch_size, data, name):
    if batch_size is None:
        return None, None
    batch_size = check_int("batch_size", batch_size, minimum=1)
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None
             for leaf in jax.tree_util.tree_leaves(data)}
    if not sizes or None in sizes or len(sizes) != 1:
        raise ValueError(
            f"batch_size needs every array of {name} to share one leading (example) axis, "
            f"got leading sizes {sorted(map(str, sizes))}"
        )
    n = sizes.pop()
    if n < 1:
        raise ValueError(f"{name} has no examples")
    return batch_size, int(n)


def _dim(params, mask):
    leaves = jax.tree_util.tree_leaves(params)
    return int(sum(np.size(x) for x, m in zip(leaves, mask, strict=True) if m))


def hessian_operator(
    f: Callable[..., jax.Array],
    params: PyTree,
    *args: Any,
    param_filter: Any = None,
    batch_size: int | None = None,
) -> CurvatureOperator:
    """The Hessian of ``f(params, *args)`` as an operator (optionally a block, a dataset).

    Args:
      f: scalar ``f(params, *args)``.
      params: point, any pytree of float arrays.
      *args: data (traced arguments, not differentiated).
      param_filter: restrict to a block of parameters: ``None`` (all), a callable
        ``(path, leaf) -> bool`` over ``jax.tree_util.tree_leaves_with_path(params)``,
        or a list of top-level keys (dict keys / attribute names / indices). The
        operator is then ``H_BB``, the Hessian in the selected leaves with the others
        fixed (differentiated only in the block).
      batch_size: accumulate over the dataset in micro-batches of this size: every
        array in ``args`` has the same leading example axis ``N``; the product is
        ``sum_b (n_b / N) H_b v`` with ``H_b`` the Hessian of ``f`` on micro-batch ``b``
        (``n_b`` examples), which equals the Hessian of the dataset mean loss when ``f``
        is a mean over its batch. Full batches run in one ``lax.scan`` inside the
        program, a smaller last batch in one more call. Memory: one micro-batch's HVP
        (about 2-3 gradients of ``batch_size`` examples) plus O(n) accumulators; the
        dataset itself must fit on the device.

    Returns:
      :class:`CurvatureOperator`.

    References:
      Pearlmutter, 1994. Fast exact multiplication by the Hessian.
    """
    check_callable("f", f)
    check_params("params", params)
    mask = _mask(params, param_filter)
    batch_size, n = _check_batching(batch_size, args, "args")
    probe = args if batch_size is None else _take(args, 0, min(batch_size, n))
    check_scalar_function(f, params, probe, x_name="params")
    return CurvatureOperator("hessian", (f,), params, tuple(args), mask, batch_size, n,
                             _dim(params, mask))


def ggn_operator(
    output_fn: Callable[[PyTree, Any], Any],
    loss_fn: Callable[[Any, Any], jax.Array],
    params: PyTree,
    inputs: Any,
    targets: Any,
    *,
    param_filter: Any = None,
    batch_size: int | None = None,
) -> CurvatureOperator:
    """The generalised Gauss-Newton matrix (see :func:`ggn_matvec`) as an operator.

    ``param_filter`` and ``batch_size`` as in :func:`hessian_operator` (with micro-batches
    the product is ``sum_b (n_b / N) G_b v``, the GGN of the dataset mean loss when
    ``loss_fn`` is a batch mean).

    References:
      Schraudolph, 2002. Fast curvature matrix-vector products for second-order
      gradient descent.
    """
    _check_model_fns(output_fn, loss_fn, params, inputs, targets)
    mask = _mask(params, param_filter)
    batch_size, n = _check_batching(batch_size, (inputs, targets), "(inputs, targets)")
    return CurvatureOperator("ggn", (output_fn, loss_fn), params, (inputs, targets), mask,
                             batch_size, n, _dim(params, mask))


def fisher_operator(
    output_fn: Callable[[PyTree, Any], Any],
    loss_fn: Callable[[Any, Any], jax.Array],
    params: PyTree,
    inputs: Any,
    targets: Any,
    *,
    param_filter: Any = None,
    batch_size: int | None = None,
) -> CurvatureOperator:
    """The empirical Fisher (see :func:`fisher_matvec` for "per example") as an operator.

    ``param_filter`` and ``batch_size`` as in :func:`hessian_operator`; micro-batching
    is exact here: ``F v = (1/N) sum_b J_b^T J_b v`` over all ``N`` examples.

    References:
      Amari, 1998. Natural gradient works efficiently in learning.
    """
    _check_model_fns(output_fn, loss_fn, params, inputs, targets)
    mask = _mask(params, param_filter)
    batch_size, n = _check_batching(batch_size, (inputs, targets), "(inputs, targets)")
    if n is None:
        lead = {np.shape(x)[0] for x in jax.tree_util.tree_leaves(targets) if np.ndim(x)}
        if len(lead) != 1:
            raise ValueError("targets must have one leading example axis for the Fisher")
    return CurvatureOperator("fisher", (output_fn, loss_fn), params, (inputs, targets), mask,
                             batch_size, n, _dim(params, mask))


def matvec_operator(matvec: Callable[..., Any], like: Any, *operands: Any) -> CurvatureOperator:
    """Any symmetric operator given as ``matvec(v, *operands)``.

    Args:
      matvec: ``v -> A v`` on vectors shaped like ``like``; extra ``operands`` (arrays,
        e.g. a matrix or a batch) are passed through as traced arguments of the
        program, so a new matrix of the same shape reuses the compile. Close over
        arrays instead and they become constants of the program (and a large array is
        fingerprinted by identity: a new one recompiles). Symmetry is assumed, not
        checked.
      like: an int ``n`` (flat vectors ``[n]``) or a pytree of float arrays giving the
        shape of ``v``.
      *operands: extra arguments of ``matvec``.

    Returns:
      :class:`CurvatureOperator` of kind "matvec".
    """
    check_callable("matvec", matvec)
    if isinstance(like, int | np.integer) and not isinstance(like, bool):
        n = check_int("like", like, minimum=1)
        template = jnp.zeros((n,), jnp.float32)
        flat = True
    else:
        check_params("like", like)
        template = like
        flat = False
    try:
        out = jax.eval_shape(matvec, template, *operands)
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(
            f"matvec(v, *operands) fails for v shaped like `like` ({type(err).__name__}: {err})"
        ) from err
    check_same_structure("matvec output", out, "like", template)
    mask = _mask(template, None)
    return CurvatureOperator("matvec", (matvec, flat), template, tuple(operands), mask, None,
                             None, _dim(template, mask))


def as_operator(f: Any, x: Any, args: tuple, *, f_name: str = "f") -> CurvatureOperator:
    """``f`` itself if it is an operator (then ``x``/``args`` must be absent), else the Hessian."""
    if isinstance(f, CurvatureOperator):
        if x is not _MISSING or args:
            raise TypeError(
                f"{f_name} is a CurvatureOperator: pass no x or extra arguments (they are in it)"
            )
        return f
    check_callable(f_name, f)
    if x is _MISSING:
        raise TypeError(f"x is required when {f_name} is a loss function")
    check_params("x", x)
    return CurvatureOperator("hessian", (f,), x, tuple(args), _mask(x, None), None, None,
                             _dim(x, _mask(x, None)))


def check_fits(f: Any, x: Any, args: tuple) -> None:
    """For a loss ``f`` (not an operator): ``f(x, *args)`` traces to a float scalar.

    Call after the cheap checks; traces shapes only (``jax.eval_shape``).
    """
    if not isinstance(f, CurvatureOperator):
        check_scalar_function(f, x, args)


class _Missing:
    def __repr__(self):
        return "<missing>"


_MISSING = _Missing()


# ------------------------------------------------------------------ inside the program
def _take(data, start, size):
    return jax.tree_util.tree_map(lambda a: jax.lax.slice_in_dim(a, start, start + size), data)


def split(op: CurvatureOperator) -> tuple[tuple, tuple]:
    """``(static, dynamic)``: the fingerprinted part and the traced arrays of ``op``."""
    treedef = jax.tree_util.tree_structure(op.params)
    static = (op.kind, op.fns, treedef, op.mask, op.batch_size, op.num_examples)
    return static, (op.params, op.data)


def build(static: tuple, dynamic: tuple):
    """Traceable pieces of the operator: ``(matvec [d] -> [d], x0 [d], embed)``.

    ``embed`` maps a flat block vector ``[d]`` (or ``[K, d]``) to a pytree like
    ``params`` (zeros outside the block).
    """
    kind, fns, treedef, mask, batch_size, n = static
    params, data = dynamic
    leaves = treedef.flatten_up_to(params)
    sel = [leaf for leaf, m in zip(leaves, mask, strict=True) if m]
    flat0, unravel_sel = ravel_pytree(sel)

    def merge(sel_leaves):
        it = iter(sel_leaves)
        return treedef.unflatten([next(it) if m else leaf
                                  for leaf, m in zip(leaves, mask, strict=True)])

    def embed_one(v):
        it = iter(unravel_sel(v))
        return treedef.unflatten([next(it) if m else jnp.zeros_like(leaf)
                                  for leaf, m in zip(leaves, mask, strict=True)])

    def embed(v):
        return embed_one(v) if v.ndim == 1 else jax.vmap(embed_one)(v)

    if kind == "matvec":
        matvec_fn, flat = fns
        if flat:
            return (lambda v: matvec_fn(v, *data)), flat0, (lambda v: v)
        _, unravel_full = ravel_pytree(params)
        mv = lambda v: ravel_pytree(matvec_fn(unravel_full(v), *data))[0]
        return mv, flat0, embed

    sel_tangent = lambda v: unravel_sel(v)

    def batch_mv(v, batch):
        t = sel_tangent(v)
        if kind == "hessian":
            (f,) = fns
            g = lambda s: jax.grad(lambda ss: f(merge(ss), *batch))(s)
            out = jax.jvp(g, (sel,), (t,))[1]
        elif kind == "ggn":
            output_fn, loss_fn = fns
            out_fn = lambda s, inputs: output_fn(merge(s), inputs)
            out = _ggn_mv(out_fn, loss_fn, sel, t, *batch)
        else:
            output_fn, loss_fn = fns
            out_fn = lambda s, inputs: output_fn(merge(s), inputs)
            out = _fisher_mv(out_fn, loss_fn, sel, t, *batch,
                             denom=None if batch_size is None else batch_size)
        return ravel_pytree(out)[0]

    if batch_size is None:
        return (lambda v: batch_mv(v, data)), flat0, embed

    num_full, rest = divmod(n, batch_size)
    if num_full:
        stacked = jax.tree_util.tree_map(
            lambda a: a[: num_full * batch_size].reshape((num_full, batch_size) + a.shape[1:]),
            data)
    tail = _take(data, num_full * batch_size, rest) if rest else None

    def mv(v):
        # mean over examples: each micro-batch weighted by its size / N
        acc = jnp.zeros_like(flat0)
        if num_full:
            def step(a, batch):
                return a + batch_mv(v, batch) * (batch_size / n), None

            acc, _ = jax.lax.scan(step, acc, stacked)
        if rest:
            out = batch_mv(v, tail)
            if kind == "fisher":  # batch_mv divides by batch_size; rescale to rest
                out = out * (batch_size / rest)
            acc = acc + out * (rest / n)
        return acc

    return mv, flat0, embed


def dim_and_dtype(op: CurvatureOperator) -> tuple[int, Any]:
    leaves = [x for x, m in zip(jax.tree_util.tree_leaves(op.params), op.mask, strict=True) if m]
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    return op.dim, dtype


def is_tracing(op: CurvatureOperator) -> bool:
    return any(is_tracer(x) for x in jax.tree_util.tree_leaves((op.params, op.data)))

"""The pure-function wrapper around Flax NNX modules, plus shared pieces.

A :class:`Model` exposes an NNX module to the rest of the lab as three pure
functions built with ``nnx.split`` / ``nnx.merge``:

* ``init(key) -> params``: builds the module from ``key`` and returns its
  ``nnx.Param`` leaves as a **plain nested dict of arrays** (``nnx.to_pure_dict``),
  e.g. ``{"layers_0": {"kernel": [in, h], "bias": [h]}, ..., "out": {...}}``.
  Plain dicts vmap, flatten, serialise and feed optax without any NNX types;
  ``jax.vmap(model.init)(keys)`` initializes many seeds in one call (every
  leaf gains a leading seed axis).
* ``apply(params, x, *, return_activations=False)``: rebuilds the module
  (``nnx.merge``) from the graph definition and ``params`` at trace time and
  calls it. With ``return_activations=True`` it returns ``(output, acts)`` where
  ``acts`` is a tuple with one array per hidden layer (see each builder for
  what is recorded).
* ``loss(params, batch)`` with ``batch = (x, y)``: mean softmax cross-entropy
  with integer labels (``"cross_entropy"``) or mean squared error (``"mse"``).

Parameters are grouped per layer at the top level of the dict (``layers_0``,
``layers_1``, ..., ``out``), so :func:`layer_norms` gives per-layer gradient
norms directly. Non-parameter NNX state (batch-norm running statistics) is not
part of ``params``: see :func:`make_model`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxopt_lab._validation import check_choice, check_int, check_positive, is_tracer

Params = dict[str, Any]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.01),
    "gelu": jax.nn.gelu,
    "linear": lambda x: x,
}

#: Kernel initializations. ``init_scale`` multiplies the kernel, except for
#: ``"normal"`` where it IS the standard deviation (1.0 explodes, 1e-3 vanishes).
INITS: tuple[str, ...] = (
    "xavier",  # Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    "glorot",  # alias of "xavier"
    "xavier_normal",  # Glorot normal: std sqrt(2 / (fan_in + fan_out))
    "he",  # He normal (truncated, variance-corrected): std sqrt(2 / fan_in)
    "kaiming",  # alias of "he"
    "lecun",  # LeCun normal: std sqrt(1 / fan_in)
    "orthogonal",  # (semi-)orthogonal: W^T W = I when fan_in >= fan_out
    "normal",  # N(0, init_scale^2), deliberately scale-unaware
)

LOSSES: tuple[str, ...] = ("cross_entropy", "mse")


def kernel_initializer(init: str, init_scale: float = 1.0) -> Callable[..., jax.Array]:
    """Return ``f(key, shape, dtype) -> kernel`` for an initialization scheme.

    Args:
      init: one of :data:`INITS`. Fans are computed as in ``jax.nn.initializers``
        (last axis = fan_out, second-to-last = fan_in, leading axes = receptive field).
      init_scale: multiplier of the kernel (the gain); for ``"normal"`` it is the std.

    Returns:
      An initializer ``f(key, shape, dtype=jnp.float32)``.

    References:
      Glorot & Bengio (2010), Understanding the difficulty of training deep feedforward
      neural networks. He et al. (2015), Delving Deep into Rectifiers. Saxe et al. (2014),
      Exact solutions to the nonlinear dynamics of learning in deep linear neural networks.
    """
    check_choice("init", init, INITS)
    check_positive("init_scale", init_scale)
    scale = float(init_scale)

    def f(key, shape, dtype=jnp.float32):
        shape = tuple(int(d) for d in shape)
        w = _sample_kernel(init, key, shape).astype(dtype)
        return w * jnp.asarray(scale, dtype)

    return f


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel: ``[..., in, out]`` with leading receptive-field axes."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


# std of a standard normal truncated to [-2, 2] (as in jax.nn.initializers.variance_scaling)
_TRUNC_STD = 0.87962566103423978


def _sample_kernel(init: str, key, shape: tuple[int, ...]) -> jax.Array:
    # Random numbers are drawn as a 1-D vector and reshaped: XLA:CPU compiles a 1-D
    # threefry draw several times faster than a 4-D one (seconds per conv layer).
    n = int(np.prod(shape))
    fan_in, fan_out = fans(shape)
    if init in ("xavier", "glorot"):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        flat = jax.random.uniform(key, (n,), jnp.float32, -limit, limit)
    elif init == "normal":
        flat = jax.random.normal(key, (n,), jnp.float32)
    elif init == "orthogonal":
        return orthogonal(key, shape)
    else:
        var = {"xavier_normal": 2.0 / (fan_in + fan_out), "he": 2.0 / fan_in,
               "kaiming": 2.0 / fan_in, "lecun": 1.0 / fan_in}[init]
        flat = jax.random.truncated_normal(key, -2.0, 2.0, (n,), jnp.float32)
        flat = flat * np.float32(np.sqrt(var) / _TRUNC_STD)
    return flat.reshape(shape)


def orthogonal(key, shape: tuple[int, ...]) -> jax.Array:
    """(Semi-)orthogonal kernel: the ``[prod(shape[:-1]), shape[-1]]`` matrix has orthonormal
    columns (rows if it is wide), via QR of a Gaussian matrix with sign correction.

    References:
      Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics of
      learning in deep linear neural networks.
    """
    rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
    big, small = max(rows, cols), min(rows, cols)
    a = jax.random.normal(key, (big * small,), jnp.float32).reshape(big, small)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    if rows < cols:
        q = q.T
    return q.reshape(shape)


class Model(NamedTuple):
    """Pure-function view of an NNX module (see the module docstring).

    Attributes:
      init: ``init(key) -> params`` (plain nested dict of arrays).
      apply: ``apply(params, x, *, return_activations=False) -> out | (out, acts)``.
      loss: ``loss(params, batch) -> scalar`` with ``batch = (x, y)``.
      name: short description, e.g. ``"mlp"``.
      layers: top-level parameter group names in forward order.
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[..., Any]
    loss: Callable[[Params, tuple[jax.Array, jax.Array]], jax.Array]
    name: str
    layers: tuple[str, ...]


def loss_fn(kind: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Return ``f(prediction, target) -> scalar`` for ``kind`` in :data:`LOSSES`.

    ``"cross_entropy"``: ``prediction`` holds logits ``[..., classes]`` and ``target``
    integer labels ``[...]`` (shape ``prediction.shape[:-1]``, values in
    ``[0, classes)``); mean over all leading positions.
    ``"mse"``: mean of ``(prediction - target)^2`` over all elements; the target must
    have the prediction's shape, or one axis fewer when the prediction's last axis is 1
    (then it is compared to ``prediction[..., 0]``): no silent broadcasting.

    Shapes and dtypes are checked at trace time (always); label values only when they
    are concrete (not inside ``jit``). Either raises ValueError naming ``labels`` or
    ``targets``.
    """
    check_choice("loss", kind, LOSSES)
    if kind == "cross_entropy":

        def ce(logits, y):
            check_labels(y, np.shape(logits))
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

        return ce

    def mse(pred, y):
        check_targets(y, np.shape(pred))
        y = jnp.asarray(y, pred.dtype)
        if y.ndim == pred.ndim - 1 and pred.shape[-1] == 1:
            pred = pred[..., 0]
        return jnp.mean((pred - y) ** 2)

    return mse


def check_labels(labels: Any, logits_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless ``labels`` are integer class indices for ``logits_shape``.

    Dtype and shape (``logits_shape[:-1]``) are always checked; the range
    ``[0, classes)`` only for concrete values (skipped for tracers).
    """
    dtype = getattr(labels, "dtype", None)
    if dtype is None:
        dtype = np.asarray(labels).dtype
    if not (jnp.issubdtype(dtype, jnp.integer) and not jnp.issubdtype(dtype, jnp.bool_)):
        raise ValueError(f"labels must be integer class indices, got dtype {dtype}")
    shape, want = np.shape(labels), tuple(logits_shape[:-1])
    if shape != want:
        raise ValueError(
            f"labels must have shape {want} (the model output {tuple(logits_shape)} without "
            f"its class axis), got {shape}"
        )
    if not is_tracer(labels):
        arr = np.asarray(labels)
        classes = logits_shape[-1]
        if arr.size and (arr.min() < 0 or arr.max() >= classes):
            raise ValueError(
                f"labels must be in [0, {classes}) for {classes} classes, got values in "
                f"[{arr.min()}, {arr.max()}]"
            )


def check_targets(targets: Any, pred_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless the MSE ``targets`` match ``pred_shape`` (no broadcasting).

    Accepted: the prediction's shape, or that shape without a trailing axis of size 1.
    """
    shape, pred_shape = np.shape(targets), tuple(pred_shape)
    ok = shape == pred_shape or (
        len(pred_shape) >= 1 and pred_shape[-1] == 1 and shape == pred_shape[:-1]
    )
    if not ok:
        raise ValueError(
            f"targets must have the model output's shape {pred_shape}"
            + (f" or {pred_shape[:-1]}" if pred_shape and pred_shape[-1] == 1 else "")
            + f", got {shape}"
        )


def _check_batch(batch: Any) -> tuple[Any, Any]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValueError(
            f"batch must be a pair (x, y), got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, tuple | list) else "")
        )
    x, y = batch
    nx, ny = np.shape(x), np.shape(y)
    if nx and ny and nx[0] != ny[0]:
        raise ValueError(
            f"batch (x, y) must hold as many targets/labels as inputs: x has {nx[0]} "
            f"(shape {nx}), y has {ny[0]} (shape {ny})"
        )
    return x, y


def as_float(x: Any) -> jax.Array:
    """``x`` as a JAX array, integers and booleans cast to float32."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def make_model(
    build: Callable[[nnx.Rngs], nnx.Module], *, loss: str, name: str
) -> Model:
    """Wrap ``build(rngs) -> module`` into a :class:`Model` of pure functions.

    The module's ``__call__(x, return_activations=False)`` must return the output,
    or ``(output, tuple_of_hidden_activations)`` when asked.

    Non-``nnx.Param`` state (``nnx.BatchStat``: batch-norm running mean/var) is kept
    out of ``params``: ``apply`` and ``loss`` restore it at its initial value on every
    call and discard any update, so batch norm always normalizes with the
    statistics of the batch it is given (training mode) and the functions stay pure.

    Args:
      build: function of ``nnx.Rngs`` returning a fresh module.
      loss: ``"cross_entropy"`` or ``"mse"``.
      name: model name stored on the result.

    Returns:
      A :class:`Model`.
    """
    lossf = loss_fn(loss)
    abstract = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    graphdef, abs_params, abs_rest = nnx.split(abstract, nnx.Param, ...)
    layers = tuple(_natural_sorted(nnx.to_pure_dict(abs_params).keys()))
    rest_pure: dict = {}
    if jax.tree_util.tree_leaves(abs_rest):

        def _rest(key):
            return nnx.split(build(nnx.Rngs(key)), nnx.Param, ...)[2]

        rest_pure = jax.tree.map(np.asarray, nnx.to_pure_dict(jax.jit(_rest)(jax.random.key(0))))

    def init(key):
        module = build(nnx.Rngs(key))
        _, params, _ = nnx.split(module, nnx.Param, ...)
        return nnx.to_pure_dict(params)

    def _module(params):
        states = [nnx.State(params)]
        if rest_pure:
            states.append(nnx.State(jax.tree.map(jnp.asarray, rest_pure)))
        return nnx.merge(graphdef, *states)

    def apply(params, x, *, return_activations=False):
        return _module(params)(as_float(x), return_activations=return_activations)

    def loss_(params, batch):
        x, y = batch
        return lossf(apply(params, x), y)

    loss_jit = jax.jit(loss_)
    out_classes: dict = {}

    def loss_checked(params, batch):
        x, y = _check_batch(batch)
        # Shapes and dtypes are checked while tracing (in lossf); the label RANGE needs
        # values, so it is checked here when they are concrete (not under jit/vmap).
        if loss == "cross_entropy" and not is_tracer(y) and not is_tracer(x):
            key = (np.shape(x), jax.tree_util.tree_structure(params),
                   tuple(np.shape(leaf) for leaf in jax.tree_util.tree_leaves(params)))
            if key not in out_classes:
                out_classes[key] = jax.eval_shape(apply, params, x).shape
            check_labels(y, out_classes[key])
        return loss_jit(params, (x, y))

    init.__doc__ = f"Initialize {name} parameters from a PRNG key (plain nested dict)."
    apply.__doc__ = f"Apply {name}: ``apply(params, x, *, return_activations=False)``."
    loss_checked.__doc__ = (
        f"Mean {loss} loss of {name} on ``batch = (x, y)`` (labels/targets checked)."
    )
    # jit-wrapped so eager calls compile once per shape instead of op by op; inside a
    # caller's jit/vmap/grad they are simply inlined.
    init_jit = jax.jit(init)

    def init_(key):
        if isinstance(key, int | np.integer):  # convenience: an int seed
            key = jax.random.key(int(key))
        return init_jit(key)

    init_.__doc__ = init.__doc__
    return Model(
        init=init_,
        apply=jax.jit(apply, static_argnames=("return_activations",)),
        loss=loss_checked,
        name=name,
        layers=layers,
    )


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def _natural_sorted(names) -> list[str]:
    # Forward order: layers_0, layers_1, ..., layers_10, then everything else (cell, out).
    names = list(names)
    rank = {"layers": 0, "cell": 1, "out": 2}
    return sorted(names, key=lambda n: (rank.get(str(n).split("_")[0], 1), _natural_key(n)))


def layer_names(params: Params) -> tuple[str, ...]:
    """Top-level parameter groups in forward order (``layers_0, ..., layers_{L-1}, out``).

    Args:
      params: parameters (or gradients) from a :class:`Model`.

    Returns:
      Tuple of group names; ``layers_10`` sorts after ``layers_9``.
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of per-layer groups, got {type(params).__name__}")
    return tuple(_natural_sorted(params.keys()))


def layer_norms(tree: Params) -> jax.Array:
    """L2 norm of each top-level group, in :func:`layer_names` order.

    Works on parameters or gradients, inside ``jit``/``vmap``.

    Args:
      tree: nested dict from a :class:`Model` (e.g. ``jax.grad(model.loss)(params, b)``).

    Returns:
      float32 array ``[num_layers]``.

    Example:
      >>> g = jax.grad(model.loss)(params, (x, y))            # doctest: +SKIP
      >>> dict(zip(layer_names(g), layer_norms(g)))          # doctest: +SKIP
    """
    norms = [optax.tree.norm(tree[name]) for name in layer_names(tree)]
    return jnp.stack(norms)


def param_count(params: Any) -> int:
    """Total number of scalar parameters (all leaves; a vmapped seed axis counts too)."""
    return int(sum(np.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params)))


def check_dims(name: str, dims: Sequence[int]) -> tuple[int, ...]:
    """Validate a sequence of positive layer widths (may be empty)."""
    if isinstance(dims, int | np.integer):
        dims = (int(dims),)
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive ints, got {dims!r}") from None
    for i, d in enumerate(dims):
        check_int(f"{name}[{i}]", d, minimum=1)
    return tuple(int(d) for d in dims)

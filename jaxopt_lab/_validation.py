"""Shared argument checks: each raises a ValueError/TypeError naming the argument.

Checks run on the host, before anything is traced or compiled. Checks on array
*values* (finiteness) are skipped for tracers, so the same public function can
be called eagerly (checked) or from inside ``jit`` (unchecked).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_tracer(x: Any) -> bool:
    """True when ``x`` is a JAX tracer (we are inside jit/vmap/grad)."""
    return isinstance(x, jax.core.Tracer)


def check_int(name: str, value: Any, *, minimum: int | None = 1) -> int:
    """Return ``value`` as int; raise TypeError if not an integer, ValueError if < minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_int_hparam(
    name: str, value: Any, *, minimum: int | None = 0, allow_traced: bool = True
) -> Any:
    """``check_int`` for an integer hyperparameter of an optax transform.

    ``optax.inject_hyperparams`` turns numeric arguments into arrays: concrete 0-d
    integer arrays are accepted and returned as ``int``. Tracers (inside a jitted
    ``update``) pass through unchecked, or raise TypeError when ``allow_traced`` is
    False (the value sets an array shape and must be listed in ``static_args``).
    """
    if is_tracer(value):
        if not allow_traced:
            raise TypeError(
                f"{name} sets an array shape and must be a concrete int, got a traced value; "
                f"with optax.inject_hyperparams pass static_args=({name!r},)"
            )
        return value
    if isinstance(value, jax.Array | np.ndarray) and np.ndim(value) == 0:
        if not np.issubdtype(np.asarray(value).dtype, np.integer):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    return check_int(name, value, minimum=minimum)


def as_key(name: str, key: Any) -> jax.Array:
    """Return ``key`` as one typed PRNG key (``jax.random.key``), or raise naming ``name``.

    Accepts a typed key of shape ``()``, a legacy raw ``uint32[2]`` key
    (``jax.random.PRNGKey``), or an integer seed (a Python/numpy int, or a 0-d integer
    array, which ``optax.inject_hyperparams`` makes of an int argument; traced values
    are allowed). Nothing is compiled.

    Raises:
      TypeError: ``key`` is none of these (``None``, a string, a float, ...).
      ValueError: a typed key array that is not a single key (shape ``!= ()``).
    """
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array | np.ndarray):
        dtype = key.dtype
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            if key.shape != ():
                raise ValueError(
                    f"{name} must be a single PRNG key, got a key array of shape {key.shape} "
                    "(index or vmap over it)"
                )
            return key
        if dtype == np.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(jnp.asarray(key))
        if key.shape == () and np.issubdtype(dtype, np.integer) and dtype != np.bool_:
            return jax.random.key(key)
    if isinstance(key, jax.Array | np.ndarray):
        got = f"an array of shape {key.shape} and dtype {key.dtype}"
    else:
        got = f"{key!r} ({type(key).__name__})"
    raise TypeError(
        f"{name} must be a jax.random.key(seed), a raw uint32[2] key or an int seed, got {got}"
    )


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> Any:
    """Raise unless ``value`` is a real number > 0 (>= 0 with ``allow_zero``).

    Tracers and arrays with more than one element are passed through unchecked
    (their value is unknown at trace time or checked elementwise by the caller).
    """
    if is_tracer(value):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def check_positive_tuple(name: str, values: Any, *, item: str) -> tuple:
    """Raise ValueError unless ``values`` is a non-empty tuple of finite real numbers > 0
    (``name`` names the tuple, ``item`` one entry, e.g. ``"learning_rate"``)."""
    if not isinstance(values, tuple) or not values:
        raise ValueError(f"{name} must be a non-empty tuple, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) \
                or v <= 0:
            raise ValueError(f"{item} must be finite and > 0, got {v!r}")
    return values


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Raise ValueError unless ``value`` is one of ``choices`` (listed in the message)."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_callable(name: str, value: Any) -> Any:
    """Raise TypeError unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r} ({type(value).__name__})")
    return value


def check_vector(name: str, x: Any, dim: int | None = None) -> Any:
    """Raise unless ``x`` is a 1-D array (of length ``dim`` if given) with finite entries."""
    shape = np.shape(x)
    if len(shape) != 1:
        raise ValueError(f"{name} must be a 1-D array of shape (d,), got shape {shape}")
    if dim is not None and shape[0] != dim:
        raise ValueError(f"{name} must have shape ({dim},), got shape {shape}")
    check_finite(name, x)
    return x


def check_finite(name: str, tree: Any) -> Any:
    """Raise ValueError if any leaf of ``tree`` holds NaN or Inf (tracers are skipped)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        if is_tracer(leaf):
            continue
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got non-finite entries")
    return tree


def _tree_size(x: Any) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(x)))


def check_params(name: str, x: Any) -> int:
    """Validate a parameter pytree (non-empty, floating, finite); return its total size."""
    leaves = jax.tree_util.tree_leaves(x)
    for leaf in leaves:
        dtype = getattr(leaf, "dtype", None) or np.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{name} must contain only floating-point arrays, got a leaf of dtype {dtype} "
                "(split non-parameter state off, e.g. nnx.split(model, nnx.Param, ...))"
            )
    dim = _tree_size(x)
    if dim == 0:
        raise ValueError(f"{name} must contain at least one parameter, got an empty pytree")
    check_finite(name, x)
    return dim


def check_scalar_function(
    f: Any, x: Any, args: tuple = (), *, f_name: str = "f", x_name: str = "x"
) -> None:
    """Raise unless ``f(x, *args)`` traces to a real floating scalar.

    Only shapes are traced (``jax.eval_shape``, cached like ``jit`` on ``f`` and the
    argument shapes): nothing is compiled or evaluated. A
    TypeError/ValueError/IndexError raised while tracing (``x`` of the wrong shape for
    ``f``, say) becomes a ValueError naming ``x_name``; a non-scalar or non-float output
    names ``f_name``. Call it after the cheap checks, right before compiling.
    """
    check_callable(f_name, f)
    try:
        out = jax.eval_shape(f, x, *args)  # cached per (f, shapes): no retrace next call
    except (TypeError, ValueError, IndexError) as err:
        shapes = jax.tree_util.tree_map(np.shape, x)
        raise ValueError(
            f"{x_name} does not fit {f_name}: calling {f_name} on {x_name} of shape "
            f"{shapes} fails ({type(err).__name__}: {err})"
        ) from err
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"{f_name} must return a real floating scalar, got "
            f"{'shape ' + str(shape) + ' and dtype ' + str(dtype) if shape is not None else out}"
        )


def check_same_dtypes(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Raise TypeError unless the leaves of two same-structure pytrees share dtypes."""
    for la, lb in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        da, db = jnp.result_type(la), jnp.result_type(lb)
        if da != db:
            raise TypeError(
                f"{name_a} must have the dtypes of {name_b}: a leaf of dtype {da} "
                f"against {db} (cast {name_a}, e.g. {name_a}.astype({name_b}.dtype))"
            )


def check_same_structure(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Raise ValueError unless two pytrees have the same structure and leaf shapes."""
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:
        raise ValueError(f"{name_a} and {name_b} must have the same pytree structure: {ta} vs {tb}")
    for la, lb in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        if np.shape(la) != np.shape(lb):
            raise ValueError(
                f"{name_a} and {name_b} must have the same leaf shapes: "
                f"{np.shape(la)} vs {np.shape(lb)}"
            )


_KEY_WORDS: dict = {}


def key_words(key: Any) -> np.ndarray:
    """The raw ``uint32`` words of a typed PRNG key as numpy (memoized per key object: a
    key is immutable, and unwrapping one is an eager device call)."""
    hit = _KEY_WORDS.get(id(key))
    if hit is not None and hit[0] is key:
        return hit[1]
    words = np.asarray(jax.random.key_data(key))
    words.setflags(write=False)
    _KEY_WORDS[id(key)] = (key, words)  # the key is kept alive: its id is not reused
    while len(_KEY_WORDS) > 64:
        _KEY_WORDS.pop(next(iter(_KEY_WORDS)))
    return words

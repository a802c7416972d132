"""Jitted curvature programs cached on a structural fingerprint of the user's functions.

``jax.jit`` with a function as a static argument keys its cache on the function's
identity (``__hash__``/``__eq__``), so a fresh ``lambda`` with the same code and closure
values, or a new ``functools.partial`` with equal arguments, compiles again. Here the
key is structural: code object, default values and closure contents (recursively);
small arrays (<= 16384 entries) by dtype, shape and a digest of their bytes; anything
else (modules, large arrays, arbitrary objects) by identity, kept alive by the cache
entry so an identity is never reused while the entry exists.

Like ``jax.jit`` itself, the key does not see module globals a function reads: rebinding
a global between two calls does not invalidate a cached program.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import types
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

_MAX_DEPTH = 12
_MAX_ARRAY_SIZE = 1 << 14
_MAX_ENTRIES = 64


def fingerprint(obj: Any, refs: list, _depth: int = 0) -> Any:
    """Hashable structural key of ``obj``; objects keyed by identity are appended to refs."""
    fp = functools.partial(fingerprint, refs=refs, _depth=_depth + 1)
    if _depth > _MAX_DEPTH:
        return _identity(obj, refs)
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        return (type(obj).__name__, obj)
    if isinstance(obj, np.generic):
        return ("np", str(obj.dtype), obj.item())
    if isinstance(obj, tuple | list):
        return (type(obj).__qualname__, tuple(fp(o) for o in obj))
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: repr(kv[0]))
        return ("dict", tuple((repr(k), fp(v)) for k, v in items))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return ("dataclass", type(obj).__qualname__,
                tuple((f.name, fp(getattr(obj, f.name))) for f in dataclasses.fields(obj)))
    if isinstance(obj, functools.partial):
        return ("partial", fp(obj.func), fp(obj.args), fp(obj.keywords))
    if isinstance(obj, types.FunctionType):
        cells = tuple(fp(_cell(c)) for c in (obj.__closure__ or ()))
        return ("fn", obj.__code__, fp(obj.__defaults__), fp(obj.__kwdefaults__), cells)
    if isinstance(obj, types.MethodType):
        return ("method", fp(obj.__func__), fp(obj.__self__))
    if isinstance(obj, types.BuiltinFunctionType | type):
        return ("named", getattr(obj, "__module__", None), getattr(obj, "__qualname__", repr(obj)))
    if isinstance(obj, jax.tree_util.PyTreeDef):
        return ("treedef", obj)
    if isinstance(obj, np.ndarray | jax.Array) and not isinstance(obj, jax.core.Tracer):
        if obj.size <= _MAX_ARRAY_SIZE:
            try:
                is_key = jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key)
                arr = np.asarray(jax.random.key_data(obj) if is_key else obj)
            except Exception:  # noqa: BLE001 - non-addressable arrays: by identity
                return _identity(obj, refs)
            digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
            return ("array", str(obj.dtype), arr.shape, digest)
    return _identity(obj, refs)


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return "<empty cell>"


def _identity(obj, refs):
    refs.append(obj)
    return ("id", type(obj).__qualname__, id(obj))


_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def cached_jit(name: str, static: Any, build: Callable[[Any], Callable]) -> Callable:
    """The jitted program ``jax.jit(build(static))`` for the fingerprint of ``static``.

    ``name`` separates programs of different tools. The first ``static`` seen for a key
    is the one the program closes over (later equal ones are interchangeable by
    construction). At most 64 programs are kept (least recently used evicted).
    """
    refs: list = []
    key = (name, fingerprint(static, refs))
    try:
        hash(key)
    except TypeError:  # an unhashable piece slipped through: key the whole thing by identity
        refs = [static]
        key = (name, ("id", id(static)))
    entry = _PROGRAMS.get(key)
    if entry is not None:
        _PROGRAMS.move_to_end(key)
        _STATS["hits"] += 1
        return entry[0]
    _STATS["misses"] += 1
    program = jax.jit(build(static))
    _PROGRAMS[key] = (program, refs, static)
    while len(_PROGRAMS) > _MAX_ENTRIES:
        _PROGRAMS.popitem(last=False)
    return program


def cache_stats() -> dict:
    """``{"hits", "misses", "entries"}`` of the program cache (for tests and benchmarks)."""
    return {**_STATS, "entries": len(_PROGRAMS)}

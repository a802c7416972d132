"""Structural fingerprints of functions and transforms, for caching and config hashes.

Shared by the sweep core's compile cache and run-directory identity
(:mod:`jaxopt_lab.compare`) and the curvature programs' cache
(:mod:`jaxopt_lab.curvature`).

Two closures built by the same code with equal captured values (``optax.sgd(0.1)``
called twice) get the same fingerprint, so a sweep in a user loop reuses the
compiled program. Objects that cannot be compared by value are keyed by identity;
the caller keeps them alive (``refs``) so an identity is never reused while the
cache entry that holds it exists.

Like ``jax.jit``, the fingerprint does not see module globals that a function
reads: rebinding a global between two calls does not invalidate the cache.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import types
from typing import Any

import jax
import numpy as np

_MAX_DEPTH = 12
_MAX_ARRAY_SIZE = 1 << 14


def fingerprint(obj: Any, refs: list | None = None, *, stable: bool = False, _depth: int = 0):
    """Hashable structural key of ``obj``.

    Args:
      obj: function, partial, optax transform (a NamedTuple of functions), scalar, array, ...
      refs: list that receives every object keyed by identity (keep it alive with the key).
      stable: if True, produce a key that is the same in another process (code objects
        become their qualified name plus a digest of their bytecode, identities become
        the type name); used for the resumable run's config hash.

    Returns:
      A hashable, comparable tuple.
    """
    fp = functools.partial(fingerprint, refs=refs, stable=stable, _depth=_depth + 1)
    if _depth > _MAX_DEPTH:
        return _by_identity(obj, refs, stable)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, obj)
    if isinstance(obj, np.generic):
        return ("np", str(obj.dtype), obj.item())
    if isinstance(obj, (tuple, list)):
        return (type(obj).__qualname__, tuple(fp(o) for o in obj))
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: repr(kv[0]))
        return ("dict", tuple((repr(k), fp(v)) for k, v in items))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return ("dataclass", type(obj).__module__, type(obj).__qualname__,
                tuple((f.name, fp(getattr(obj, f.name))) for f in dataclasses.fields(obj)))
    if isinstance(obj, functools.partial):
        return ("partial", fp(obj.func), fp(obj.args), fp(obj.keywords))
    if isinstance(obj, types.FunctionType):
        cells = tuple(fp(_cell(c)) for c in (obj.__closure__ or ()))
        code = _code_key(obj.__code__) if stable else obj.__code__
        return ("fn", code, fp(obj.__defaults__), fp(obj.__kwdefaults__), cells)
    if isinstance(obj, types.MethodType):
        return ("method", fp(obj.__func__), fp(obj.__self__))
    if isinstance(obj, jax.tree_util.PyTreeDef):
        return ("treedef", str(obj)) if stable else ("treedef", obj)
    if isinstance(obj, (types.BuiltinFunctionType, type)):
        return ("named", getattr(obj, "__module__", None), getattr(obj, "__qualname__", repr(obj)))
    if isinstance(obj, (np.ndarray, jax.Array)) and not isinstance(obj, jax.core.Tracer):
        try:
            is_key = jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key)
            arr = np.asarray(jax.random.key_data(obj) if is_key else obj)
        except Exception:  # noqa: BLE001 - non-addressable or exotic arrays: by identity
            return _by_identity(obj, refs, stable)
        if arr.size <= _MAX_ARRAY_SIZE or stable:
            digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
            return ("array", str(obj.dtype), arr.shape, digest)
    return _by_identity(obj, refs, stable)


_MEMO: collections.OrderedDict = collections.OrderedDict()
_MEMO_SIZE = 256


def fingerprint_memo(obj: Any, refs: list) -> Any:
    """:func:`fingerprint` of a function or transform, memoized by identity.

    Like ``jax.jit``'s own cache, this assumes a function object's code and closure do not
    change after its first use (rebinding a closure cell is not seen). The object is kept
    alive while memoized, so its id is never reused for another object. Mutable containers
    (dicts, lists) are fingerprinted afresh every time.
    """
    if not isinstance(obj, (types.FunctionType, functools.partial, tuple)):
        return fingerprint(obj, refs)
    hit = _MEMO.get(id(obj))
    if hit is not None and hit[0] is obj:
        _MEMO.move_to_end(id(obj))
        refs.extend(hit[2])
        return hit[1]
    own: list = []
    fp = fingerprint(obj, own)
    if isinstance(obj, tuple) and not _immutable(fp):
        refs.extend(own)
        return fp
    _MEMO[id(obj)] = (obj, fp, tuple(own))
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    refs.extend(own)
    return fp


def _immutable(fp) -> bool:
    """A tuple's fingerprint with no list or dict inside (its value cannot change)."""
    if isinstance(fp, tuple):
        if fp and fp[0] in ("list", "dict"):
            return False
        return all(_immutable(x) for x in fp)
    return True


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # empty cell
        return "<empty cell>"


@functools.lru_cache(maxsize=4096)
def _code_key(code: types.CodeType):
    h = hashlib.sha256(code.co_code)
    h.update(repr(tuple(c for c in code.co_consts if not isinstance(c, types.CodeType))).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            h.update(repr(_code_key(c)).encode())
    return ("code", code.co_qualname, h.hexdigest())


def _by_identity(obj, refs, stable):
    if stable:
        return ("object", type(obj).__module__, type(obj).__qualname__)
    if refs is not None:
        refs.append(obj)
    return ("id", id(obj))


def stable_hash(obj: Any) -> str:
    """Hex digest of ``obj``'s stable fingerprint (same value in every process)."""
    return hashlib.sha256(repr(fingerprint(obj, stable=True)).encode()).hexdigest()

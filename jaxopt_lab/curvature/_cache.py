"""Jitted curvature programs cached on a structural fingerprint of the user's functions.

``jax.jit`` with a function as a static argument keys its cache on the function's
identity (``__hash__``/``__eq__``), so a fresh ``lambda`` with the same code and closure
values, or a new ``functools.partial`` with equal arguments, compiles again. Here the
key is structural (:func:`jaxopt_lab._fingerprint.fingerprint`): code object, default
values and closure contents (recursively); small arrays (<= 16384 entries) by dtype, shape
and a digest of their bytes; anything else (modules, large arrays, arbitrary objects) by
identity, kept alive by the cache entry so an identity is never reused while the entry
exists.

Like ``jax.jit`` itself, the key does not see module globals a function reads: rebinding
a global between two calls does not invalidate a cached program.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import jax

from jaxopt_lab._fingerprint import fingerprint

_MAX_ENTRIES = 64


_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def cached_jit(name: str, static: Any, build: Callable[[Any], Callable]) -> Callable:
    """The jitted program ``jax.jit(build(static))`` for the fingerprint of ``static``.

    ``name`` separates programs of different tools. The first ``static`` seen for a key
    is the one the program closes over (later equal ones are interchangeable by
    construction). At most 64 programs are kept (least recently used evicted).
    """
    refs: list = []
    key = (name, fingerprint(static, refs))  # jaxopt_lab._fingerprint (shared with compare)
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

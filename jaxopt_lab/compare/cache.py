"""The process-wide cache of compiled sweep programs (an LRU with hit/miss counters).

A program is keyed on the structural fingerprint of the per-seed trial and the optimizer
family, the static configuration, shapes and device layout, so a second sweep with the
same optimizers and shapes compiles nothing.
"""

from __future__ import annotations

import collections
import threading

CACHE_SIZE = 64


class ProgramCache:
    """LRU cache of compiled executables with hit/miss counters."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.compiles = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key):
        """The cached value for ``key`` (counted as a hit), or None (a miss)."""
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                self.hits += 1
                return self._d[key][0]
            self.misses += 1
            return None

    def put(self, key, compiled, refs):
        """Keep ``compiled`` under ``key``; ``refs`` are objects keyed by identity in
        ``key`` (kept alive so an identity is never reused while the entry exists)."""
        with self._lock:
            self.compiles += 1
            self._d[key] = (compiled, refs)
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)

    def clear(self):
        """Drop every entry and reset the counters."""
        with self._lock:
            self._d.clear()
            self.hits = self.misses = self.compiles = 0


PROGRAMS = ProgramCache(CACHE_SIZE)


def cache_info() -> dict:
    """Counters of the compiled-program cache: ``hits``, ``misses``, ``compiles``, ``size``."""
    return {"hits": PROGRAMS.hits, "misses": PROGRAMS.misses, "compiles": PROGRAMS.compiles,
            "size": len(PROGRAMS)}


def clear_cache() -> None:
    """Drop every cached compiled program and reset the counters."""
    PROGRAMS.clear()

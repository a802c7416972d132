"""Shared test set-up: fast-compile flags and JAX's persistent compilation cache.

* ``FAST``: XLA compiler options for test-only ``jax.jit`` calls (optimization level 0
  and no expensive LLVM passes: about half the compile time of the small programs the
  tests build, which run for milliseconds). Import it as ``from conftest import FAST``.
* The persistent compilation cache (``JAXOPT_LAB_TEST_CACHE``, default
  ``~/.cache/jaxopt_lab/jax-tests``) keeps compiled programs across test sessions and
  across the pytest-xdist workers, so a second run of the suite compiles little. It only
  changes how long compiling takes, never a result.
* Matplotlib draws off screen (``Agg``).
* Every test process starts JAX's backend here, with its one CPU device, so the command
  line's ``use_cpu_cores`` (called by ``cli.main``) changes nothing whatever test runs
  first.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

_CACHE_DIR = os.environ.get(
    "JAXOPT_LAB_TEST_CACHE",
    os.path.join(os.path.expanduser("~"), ".cache", "jaxopt_lab", "jax-tests"),
)
try:
    os.makedirs(_CACHE_DIR, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
except OSError:  # an unwritable home: run without the persistent cache
    pass

jax.devices()  # start the backend now (see the module docstring)

"""The sweep engine: every optimizer x hyperparameter x seed in one compiled program.

Layout of the computation, per optimizer family (one factory and one set of
static hyperparameters):

* ``jax.vmap`` over hyperparameter combinations (traced: the factory is called
  with tracers, so a learning-rate grid is one program) and over seeds;
* ``lax.scan`` over steps, metrics kept in the carry (no stored trajectories
  unless ``record_every`` is set), no host synchronisation per step;
* the seed axis is split into chunks of ``chunk_size`` (so memory and throughput
  stay flat as seeds grow) and each chunk is sharded over every device with a
  1-D ``NamedSharding`` mesh named ``"seeds"``;
* programs are compiled ahead of time (``jit(...).lower(...).compile()``) and kept
  in a process-wide cache keyed on the structure of the objective and optimizer,
  static configuration and shapes: a second ``run`` with the same optimizers and
  shapes compiles nothing (``meta["compile_seconds"] == 0``).

Key discipline (results never depend on chunking or device count): with
``k_i = fold_in(key, i)`` for global seed index ``i``,

* the start of seed ``i`` is drawn from ``fold_in(k_i, 0)`` (uniform in bounds,
  Gaussian, or ``init(fold_in(k_i, 0), 1)[0]`` for a callable ``init``) or is row
  ``i`` of an ``init`` array;
* every typed PRNG-key leaf of the optimizer state (after ``opt.init``) becomes
  ``fold_in(fold_in(leaf, i), bits(fold_in(k_i, 1)))``: each trajectory gets its
  own noise stream, which also changes with ``key`` (legacy uint32 keys in a field
  named ``rng_key``/``key``/``prng_key``, as in ``optax.noisy_sgd``, are folded too);
* starts and noise are the same for every optimizer and hyperparameter (common
  random numbers), so differences between optimizers are not sampling noise.

Multi-host: call ``jax.distributed.initialize()`` first and run the same ``run(...)`` call in
every process. The mesh spans ``jax.devices()`` (all hosts); each process feeds and computes
only its devices' shards of every chunk, results are all-gathered, and only process 0 writes
``out_dir``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime
import inspect
import itertools
import numbers
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab._validation import check_finite, check_int, check_positive, check_vector
from jaxopt_lab.compare import _fingerprint
from jaxopt_lab.compare.results import METRIC_NAMES, Results

_DEFAULT_CHUNK = {"cpu": 65536, "gpu": 1 << 20, "tpu": 1 << 20}
# Elements (hparams x seeds x d) per vectorised micro-batch. On CPU small batches stay in
# cache and below XLA's multi-threading threshold: throughput at 64k seeds then matches 1k
# (2-D saddle: ~10x faster than one 64k-wide batch on a loaded 2-core machine).
_MICRO_ELEMENTS = {"cpu": 2048}
_MAX_CHUNK_ELEMENTS = 1 << 27
_CACHE_SIZE = 64
_GAUSSIAN_ESCAPE_SCALE = 1e-3
_DEFAULT_TARGET = 1e-3


# --------------------------------------------------------------------------- cache


class _ProgramCache:
    """LRU cache of compiled executables with hit/miss counters."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.compiles = 0

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                self.hits += 1
                return self._d[key][0]
            self.misses += 1
            return None

    def put(self, key, compiled, refs):
        with self._lock:
            self.compiles += 1
            self._d[key] = (compiled, refs)
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)

    def clear(self):
        with self._lock:
            self._d.clear()
            self.hits = self.misses = self.compiles = 0


_CACHE = _ProgramCache(_CACHE_SIZE)


def cache_info() -> dict:
    """Counters of the compiled-program cache: ``hits``, ``misses``, ``compiles``, ``size``."""
    return {
        "hits": _CACHE.hits,
        "misses": _CACHE.misses,
        "compiles": _CACHE.compiles,
        "size": len(_CACHE._d),
    }


def clear_cache() -> None:
    """Drop every cached compiled program and reset the counters."""
    _CACHE.clear()


# --------------------------------------------------------------------------- specs


@dataclasses.dataclass
class _Group:
    static: dict  # static hyperparameters (Python values, baked into the program)
    indices: list  # positions of this group's combinations in the family's hparams list
    traced: dict  # name -> np.ndarray [H_g] float32


@dataclasses.dataclass
class _Family:
    name: str
    factory: Callable | None  # None for a ready-made transform
    transform: Any  # the ready-made transform, or factory(**first combination)
    hparams: list  # list of dicts (all combinations, output order)
    groups: list  # list of _Group
    extra_args: bool
    desc: dict  # JSON-able description for meta / config hash


def _is_transform(obj) -> bool:
    return isinstance(obj, optax.GradientTransformation) or (
        hasattr(obj, "init") and hasattr(obj, "update") and callable(obj.update)
    )


def _resolve_factory(name: str, value: Any) -> Callable:
    if callable(value):
        return value
    if isinstance(value, str):
        for mod_name in ("optax", "jaxopt_lab.transforms"):
            try:
                mod = __import__(mod_name, fromlist=["_"])
            except ImportError:
                continue
            fac = getattr(mod, value, None)
            if callable(fac):
                return fac
        raise ValueError(
            f"optimizers[{name!r}]: unknown optimizer {value!r}; give an optax transform, "
            "a factory, or the name of an optax / jaxopt_lab.transforms factory"
        )
    raise TypeError(
        f"optimizers[{name!r}] must be an optax GradientTransformation or (factory, grid), "
        f"got {type(value).__name__}"
    )


def _is_traced_grid(values: list) -> bool:
    """Real-number lists with at least one float are traced; ints, bools, strings are static."""
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return False
    return any(isinstance(v, (float, np.floating)) for v in values)


def _make_family(name: str, entry: Any, force_static: bool = False) -> _Family:
    if not isinstance(name, str) or not name:
        raise TypeError(f"optimizers keys must be non-empty strings, got {name!r}")
    if _is_transform(entry):  # an optax transform (a NamedTuple of init/update)
        extra = isinstance(entry, optax.GradientTransformationExtraArgs)
        return _Family(name, None, entry, [{}], [_Group({}, [0], {})], extra,
                       {"kind": "transform", "fingerprint": _fingerprint.stable_hash(entry)})
    if isinstance(entry, str):
        entry = (entry, {})
    if not (isinstance(entry, tuple | list) and len(entry) == 2):
        raise TypeError(
            f"optimizers[{name!r}] must be an optax GradientTransformation or a pair "
            f"(factory, {{hyperparameter: [values]}}), got {entry!r}"
        )
    factory = _resolve_factory(name, entry[0])
    grid = entry[1]
    if not isinstance(grid, Mapping):
        raise TypeError(f"optimizers[{name!r}]: grid must be a dict name -> list, got {grid!r}")
    keys, lists = [], []
    for k, v in grid.items():
        if not isinstance(k, str):
            raise TypeError(f"optimizers[{name!r}]: grid keys must be strings, got {k!r}")
        vals = list(np.asarray(v).tolist()) if isinstance(v, np.ndarray) else v
        if isinstance(vals, str) or not isinstance(vals, list | tuple):
            vals = [vals]
        if len(vals) == 0:
            raise ValueError(f"optimizers[{name!r}]: grid[{k!r}] must not be empty")
        keys.append(k)
        lists.append(list(vals))
    try:
        inspect.signature(factory).bind_partial(**dict.fromkeys(keys))
    except TypeError as e:
        raise ValueError(
            f"optimizers[{name!r}]: the factory does not accept hyperparameters {keys}: {e}"
        ) from None
    except ValueError:  # no signature available (builtins): checked by the call below
        pass
    combos = [dict(zip(keys, c, strict=True)) for c in itertools.product(*lists)]
    try:
        tx = factory(**combos[0])
    except Exception as e:  # noqa: BLE001 - reported as a ValueError naming the entry
        raise ValueError(
            f"optimizers[{name!r}]: factory(**{combos[0]!r}) failed: {type(e).__name__}: {e}"
        ) from None
    if not _is_transform(tx):
        raise TypeError(
            f"optimizers[{name!r}]: factory must return an optax GradientTransformation, "
            f"got {type(tx).__name__}"
        )
    traced_keys = [] if force_static else [
        k for k, vals in zip(keys, lists, strict=True) if _is_traced_grid(vals)
    ]
    static_keys = [k for k in keys if k not in traced_keys]
    groups: dict = {}
    for idx, c in enumerate(combos):
        skey = tuple((k, _fingerprint.fingerprint(c[k])) for k in static_keys)
        if skey not in groups:
            groups[skey] = _Group({k: c[k] for k in static_keys}, [], {})
        groups[skey].indices.append(idx)
    for g in groups.values():
        g.traced = {k: np.asarray([combos[i][k] for i in g.indices], np.float32)
                    for k in traced_keys}
    extra = isinstance(tx, optax.GradientTransformationExtraArgs)
    desc = {
        "kind": "factory",
        "factory": f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', '?')}",
        "fingerprint": _fingerprint.stable_hash(factory),
        "grid": {k: [_jsonable(v) for v in vals] for k, vals in zip(keys, lists, strict=True)},
        "traced": traced_keys,
    }
    return _Family(name, factory, tx, combos, list(groups.values()), extra, desc)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return repr(v)


# --------------------------------------------------------------------------- problem


@dataclasses.dataclass
class _Problem:
    f: Callable
    dim: int
    name: str
    bounds: tuple | None
    f_min: float | None
    critical_points: tuple


def _as_problem(objective, dim, bounds) -> _Problem:
    if isinstance(objective, str):  # a landscape name: jaxopt_lab.landscapes.get(name, dim)
        from jaxopt_lab import landscapes

        objective = landscapes.get(objective, dim=dim) if dim is not None else landscapes.get(
            objective)
    fn = getattr(objective, "fn", None)
    if fn is not None and callable(fn):
        ldim = getattr(objective, "dim", None)
        if dim is not None and ldim is not None and int(dim) != int(ldim):
            raise ValueError(f"dim={dim} disagrees with objective.dim={ldim}")
        lb = getattr(objective, "bounds", None)
        fmin = getattr(objective, "f_min", None)
        return _Problem(
            fn, None if ldim is None else int(ldim), str(getattr(objective, "name", "landscape")),
            bounds if bounds is not None else lb,
            None if fmin is None or not np.isfinite(fmin) else float(fmin),
            tuple(getattr(objective, "critical_points", ()) or ()),
        )
    if not callable(objective):
        raise TypeError(
            f"objective must be a Landscape or a callable f(x) -> scalar, got {type(objective)}"
        )
    name = getattr(objective, "__qualname__", type(objective).__name__)
    return _Problem(objective, None if dim is None else int(dim), name, bounds, None, ())


def _as_key(key):
    if isinstance(key, jax.Array | np.ndarray) and jax.dtypes.issubdtype(
        key.dtype, jax.dtypes.prng_key
    ):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return jax.random.key(int(key))
    arr = np.asarray(key) if isinstance(key, jax.Array | np.ndarray) else None
    if arr is not None and arr.dtype == np.uint32 and arr.shape == (2,):
        return jax.random.wrap_key_data(jnp.asarray(arr))
    raise TypeError(f"key must be a jax.random.key(seed) (or an int seed), got {key!r}")


# --------------------------------------------------------------------------- program


@dataclasses.dataclass(frozen=True)
class _Static:
    """Everything that changes the traced program (part of the cache key)."""

    steps: int
    record_every: int | None
    init_mode: str  # uniform | gaussian | array | callable
    escape_on: bool
    margin_on: bool
    hit_on: bool
    extra_args: bool
    unroll: int
    key_impl: str


_RAW_KEY_FIELDS = ("rng_key", "key", "prng_key")


def _fold_key_leaves(state, i, bits):
    """Fold seed index ``i`` and ``bits`` into every PRNG key in an optimizer state.

    Typed keys (``jax.random.key``) are found by dtype. Legacy raw keys (uint32 ``[..., 2]``)
    are folded too when their field is named ``rng_key``/``key``/``prng_key`` (optax's
    ``add_noise``/``noisy_sgd`` keep one), so those transforms also get per-seed noise.
    """

    def fold_typed(leaf):
        flat = leaf.reshape(-1)
        flat = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, i), bits))(flat)
        return flat.reshape(leaf.shape)

    def fold(path, leaf):
        if not hasattr(leaf, "dtype"):
            return leaf
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return fold_typed(leaf)
        name = getattr(path[-1], "name", None) if path else None
        if (name in _RAW_KEY_FIELDS and leaf.dtype == jnp.uint32 and leaf.ndim >= 1
                and leaf.shape[-1] == 2):
            return jax.random.key_data(fold_typed(jax.random.wrap_key_data(leaf)))
        return leaf

    return jax.tree_util.tree_map_with_path(fold, state)


def _build_program(f, family: _Family, group_static: dict, traced_keys: tuple, st: _Static,
                   init_fn: Callable | None, n_hparams: int, mesh: Mesh, padded: int,
                   micro: int):
    """Return program(hv, offset, x0_rows, key_data, init_a, init_b, center, radius, margin,
    f_center, hit_thr) -> (metrics dict of [H, C], trajectories [H, C, R, d] or None)."""
    n_dev = mesh.devices.size
    vg = jax.value_and_grad(f)

    def make_opt(hv):
        if family.factory is None:
            return family.transform
        return family.factory(**group_static, **hv)

    def one(hv, i, x0_row, key, init_a, init_b, center, radius, margin, f_center, hit_thr):
        opt = make_opt(hv)
        k_i = jax.random.fold_in(key, i)
        k_start = jax.random.fold_in(k_i, 0)
        if st.init_mode == "uniform":
            x0 = jax.random.uniform(k_start, init_a.shape, jnp.float32, init_a, init_b)
        elif st.init_mode == "gaussian":
            x0 = init_a + init_b * jax.random.normal(k_start, init_a.shape, jnp.float32)
        elif st.init_mode == "callable":
            x0 = jnp.reshape(jnp.asarray(init_fn(k_start, 1), jnp.float32), center.shape)
        else:
            x0 = x0_row
        state = opt.init(x0)
        bits = jax.random.bits(jax.random.fold_in(k_i, 1), dtype=jnp.uint32)
        state = _fold_key_leaves(state, i, bits)

        def update_metrics(m, x, v, g, t):
            esc, hit, bad = m
            tf = t.astype(jnp.float32)
            if st.escape_on:
                now = jnp.sum(jnp.square(x - center)) > radius * radius
                if st.margin_on:
                    now = now | (v < f_center - margin)
                esc = jnp.where(jnp.isinf(esc) & now, tf, esc)
            if st.hit_on:
                hit = jnp.where(jnp.isinf(hit) & (v <= hit_thr), tf, hit)
            bad = bad | ~jnp.isfinite(v) | ~jnp.all(jnp.isfinite(g)) | ~jnp.all(jnp.isfinite(x))
            return esc, hit, bad

        def step(carry, _):
            x, s, v, g, t, m = carry
            if st.extra_args:
                u, s = opt.update(
                    g, s, x, value=v, value_fn=f,
                    hvp_fn=lambda p, w: _hvp(f, p, w),
                )
            else:
                u, s = opt.update(g, s, x)
            x = optax.apply_updates(x, u)
            t = t + 1
            v, g = vg(x)
            return (x, s, v, g, t, update_metrics(m, x, v, g, t)), None

        def run_n(carry, n):
            if n == 0:
                return carry
            return jax.lax.scan(step, carry, None, length=n, unroll=min(st.unroll, n))[0]

        v0, g0 = vg(x0)
        inf = jnp.array(jnp.inf, jnp.float32)
        t0 = jnp.array(0, jnp.int32)
        m0 = update_metrics((inf, inf, jnp.array(False)), x0, v0, g0, t0)
        carry = (x0, state, v0, g0, t0, m0)
        traj = None
        if st.record_every:
            k = st.record_every
            nb, rem = divmod(st.steps, k)

            def block(c, _):
                c = run_n(c, k)
                return c, c[0]

            carry, xs = jax.lax.scan(block, carry, None, length=nb)
            traj = jnp.concatenate([x0[None], xs], axis=0)
            carry = run_n(carry, rem)
        else:
            carry = run_n(carry, st.steps)
        x, _, v, g, _, (esc, hit, bad) = carry
        metrics = {
            "escape_step": esc,
            "hit_step": hit,
            "final_value": v.astype(jnp.float32),
            "final_grad_norm": jnp.linalg.norm(g).astype(jnp.float32),
            "nonfinite": bad,
        }
        return metrics, traj

    seeds = jax.vmap(one, in_axes=(None, 0, 0, None, None, None, None, None, None, None, None))
    hypers = jax.vmap(seeds, in_axes=(0,) + (None,) * 10, axis_size=n_hparams)

    def chunk(hv, offset, x0, key_data, *rest):
        """[C] seeds -> [n_dev, m, b]: vmap over devices (sharded), lax.map over m
        micro-batches of b seeds (sequential, cache-sized), vmap over b. Seed indices are
        ``offset + arange(C)`` (built on device: only a scalar travels per chunk); ``x0`` is
        ``[C, d]`` for array starts and ``[C, 0]`` otherwise."""
        c = padded
        m = c // (n_dev * micro)
        idx = offset + jnp.arange(c, dtype=jnp.int32)
        if n_dev > 1:
            idx = jax.lax.with_sharding_constraint(idx, NamedSharding(mesh, P("seeds")))
        idx3 = idx.reshape(n_dev, m, micro)
        x3 = x0.reshape(n_dev, m, micro, x0.shape[-1])
        key = jax.random.wrap_key_data(key_data, impl=st.key_impl)
        rest = (key, *rest)

        def per_device(i2, x2):
            if m == 1:  # one micro-batch: no loop (smaller program, faster compile)
                return jax.tree_util.tree_map(lambda a: a[None], hypers(hv, i2[0], x2[0], *rest))
            return jax.lax.map(lambda a: hypers(hv, a[0], a[1], *rest), (i2, x2))

        if n_dev == 1:
            metrics, traj = jax.tree_util.tree_map(lambda a: a[None], per_device(idx3[0], x3[0]))
        else:
            metrics, traj = jax.vmap(per_device)(idx3, x3)  # leaves [n_dev, m, H, b, ...]

        def merge(a):
            a = jnp.moveaxis(a, 2, 0)  # [H, n_dev, m, b, ...]
            return a.reshape((a.shape[0], c) + a.shape[4:])

        return jax.tree_util.tree_map(merge, metrics), (None if traj is None else merge(traj))

    return chunk


def _hvp(f, p, v):
    from jaxopt_lab.curvature import hvp

    return hvp(f, p, v)


# --------------------------------------------------------------------------- devices


def _mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("seeds",))


def _put(mesh, arr, spec):
    sharding = NamedSharding(mesh, spec)
    if jax.process_count() == 1:
        return jax.device_put(arr, sharding)
    arr = np.asarray(arr)
    return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])


def _fetch(x) -> np.ndarray:
    if x is None:
        return None
    if jax.process_count() > 1 and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


# --------------------------------------------------------------------------- run


def run(
    objective: Any,
    optimizers: Mapping[str, Any],
    *,
    num_seeds: int,
    steps: int,
    key: Any,
    init: Any = None,
    escape_radius: float | None = None,
    escape_center: Any = None,
    escape_margin: float | None = None,
    target: float | None = None,
    record_every: int | None = None,
    chunk_size: int | None = None,
    out_dir: str | None = None,
    progress: bool = False,
    dim: int | None = None,
    bounds: Any = None,
    unroll: int = 1,
    batch_size: int | None = None,
) -> Results:
    """Run every optimizer (x hyperparameter grid) from ``num_seeds`` starts on one objective.

    Args:
      objective: a ``jaxopt_lab.landscapes.Landscape`` (uses ``.fn``, ``.dim``, ``.bounds``,
        ``.f_min``, ``.critical_points``), a landscape name (``landscapes.get(name, dim)``),
        or any pure ``f(x) -> scalar`` for ``x`` of shape ``(d,)`` (then give ``dim``, or an
        ``init`` / ``escape_center`` / ``bounds`` that fixes ``d``).
      optimizers: mapping name -> optax ``GradientTransformation``, or name ->
        ``(factory, grid)`` with ``grid`` a dict of lists (Cartesian product). ``factory`` may
        be a callable or the name of an optax / ``jaxopt_lab.transforms`` factory. Grid
        entries whose values are real numbers with at least one float are traced (one
        program for the whole grid); ints, bools and strings are static (one program per
        static combination). Transforms that are ``optax.GradientTransformationExtraArgs``
        get ``update(g, state, x, value=f(x), value_fn=f, hvp_fn=lambda p, v: H(p) v)``.
      num_seeds: starts per optimizer and hyperparameter combination (>= 1).
      steps: optimizer steps per trajectory (>= 0).
      key: ``jax.random.key(seed)`` (an int seed is accepted). See the module docstring for
        the key discipline.
      init: ``"uniform"`` (in bounds), ``("gaussian", center, scale)``, an array of starts
        ``[num_seeds, d]``, or a callable ``init(key, n) -> [n, d]`` (called as
        ``init(fold_in(fold_in(key, i), 0), 1)`` for seed ``i``, so it must be traceable).
        Default: Gaussian with scale 1e-3 around ``escape_center`` when that is given, else
        uniform in bounds.
      escape_radius: a trajectory has escaped at the first step ``t`` (0..steps) with
        ``||x_t - escape_center|| > escape_radius``.
      escape_center: the saddle (shape ``(d,)``). Default when ``escape_radius`` is given: the
        first critical point of kind ``"saddle"`` in ``objective.critical_points``.
      escape_margin: if given, a step also counts as escaped when
        ``f(x_t) < f(escape_center) - escape_margin`` (fell below the saddle's level).
      target: hit when ``f(x_t) <= f_min + target`` (``f_min`` from the landscape); for an
        objective without ``f_min``, ``target`` is an absolute threshold. Default 1e-3 when
        ``f_min`` is known; otherwise no hit metric (all ``inf``).
      record_every: if given, keep ``x_t`` for ``t = 0, k, 2k, ... <= steps``.
      chunk_size: seeds per compiled call and per resumable chunk file (default: 65536 on
        CPU, 2**20 on accelerators, capped at ``num_seeds`` and so that one chunk's state or
        recorded trajectories stay under 2**27 elements); padded internally to a multiple
        of (device count x micro-batch). Results do not depend on it.
      out_dir: run directory (``records.csv``, ``meta.json``, chunk files); an interrupted
        run with the same arguments resumes from its finished chunks.
      progress: show a tqdm bar over chunks.
      dim: dimension of ``x`` for a plain callable objective.
      bounds: ``(lower, upper)`` for a plain callable objective (needed for uniform starts).
      unroll: ``lax.scan`` unroll factor (performance only; part of the cache key).
      batch_size: seeds per vectorised micro-batch inside a chunk (performance only; the
        micro-batches of a chunk run one after another inside the compiled program).
        Default: about 2048 elements (hparams x seeds x d) on CPU, which keeps the working
        set in cache; the whole per-device chunk on accelerators.

    Returns:
      :class:`Results`. Misses (never escaped / never hit) are ``+inf``, never the step
      budget. ``meta`` holds ``compile_seconds`` (0.0 on a full cache hit) apart from
      ``run_seconds``.

    Example:
      >>> import jax, optax
      >>> from jaxopt_lab import compare
      >>> f = lambda x: x[0] ** 2 - x[1] ** 2
      >>> res = compare.run(f, {"sgd": (optax.sgd, {"learning_rate": [0.01, 0.1]})},
      ...                   num_seeds=8, steps=50, key=jax.random.key(0),
      ...                   escape_center=[0.0, 0.0], escape_radius=0.5)
      >>> len(res.records())
      16
    """
    t_start = time.perf_counter()
    # ---------------------------------------------------------------- validation
    num_seeds = check_int("num_seeds", num_seeds, minimum=1)
    steps = check_int("steps", steps, minimum=0)
    unroll = check_int("unroll", unroll, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if record_every is not None:
        record_every = check_int("record_every", record_every, minimum=1)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    if escape_radius is not None:
        check_positive("escape_radius", escape_radius)
        escape_radius = float(escape_radius)
    if escape_margin is not None:
        check_positive("escape_margin", escape_margin, allow_zero=True)
        escape_margin = float(escape_margin)
    if target is not None:
        check_finite("target", np.asarray(target, float))
        if np.ndim(target) != 0:
            raise ValueError(f"target must be a scalar, got shape {np.shape(target)}")
        target = float(target)
    if not isinstance(optimizers, Mapping):
        raise TypeError(f"optimizers must be a dict name -> transform, got {type(optimizers)}")
    if len(optimizers) == 0:
        raise ValueError("optimizers must not be empty")
    key = _as_key(key)
    problem = _as_problem(objective, dim, bounds)
    families = [_make_family(n, e) for n, e in optimizers.items()]

    # dimension
    d = problem.dim
    cands = []
    if isinstance(init, np.ndarray | jax.Array) or (
        isinstance(init, list) and init and isinstance(init[0], list | tuple | np.ndarray)
    ):
        init = np.asarray(init, np.float32)
        if init.ndim != 2:
            raise ValueError(f"init array must have shape (num_seeds, d), got {init.shape}")
        cands.append(("init", init.shape[1]))
    if isinstance(init, tuple) and len(init) == 3 and init[0] == "gaussian":
        cands.append(("init", np.size(init[1])))
    if escape_center is not None:
        escape_center = np.asarray(escape_center, np.float32)
        cands.append(("escape_center", escape_center.shape[-1] if escape_center.ndim else 1))
    if problem.bounds is not None:
        lo, hi = (np.asarray(b, np.float32).reshape(-1) for b in problem.bounds)
        cands.append(("bounds", lo.shape[0]))
    if d is None:
        if not cands:
            raise ValueError("dim must be given for a plain callable objective without init "
                             "array, escape_center or bounds")
        d = int(cands[0][1])
    d = check_int("dim", d, minimum=1)

    # bounds
    if problem.bounds is not None:
        lo, hi = (np.broadcast_to(np.asarray(b, np.float32), (d,)).copy()
                  for b in problem.bounds)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
            raise ValueError(f"bounds must be finite with upper > lower, got {lo}, {hi}")
        problem.bounds = (lo, hi)

    # escape
    escape_on = escape_radius is not None
    if escape_center is not None and not escape_on:
        raise ValueError("escape_center is given but escape_radius is None; give escape_radius "
                         "> 0 to measure escapes")
    if escape_margin is not None and not escape_on:
        raise ValueError("escape_margin needs escape_radius (and escape_center)")
    if escape_on and escape_center is None:
        saddles = [c for c in problem.critical_points if getattr(c, "kind", None) == "saddle"]
        if not saddles:
            raise ValueError("escape_radius is given but no escape_center, and the objective has "
                             "no critical point of kind 'saddle'; pass escape_center")
        escape_center = np.asarray(saddles[0].x, np.float32)
    if escape_on:
        check_vector("escape_center", escape_center.reshape(-1), d)
        escape_center = escape_center.reshape(d)

    # init
    init_a = init_b = x0_all = None
    init_fn = None
    init_desc: Any
    if init is None:
        if escape_center is not None:
            init = ("gaussian", escape_center, _GAUSSIAN_ESCAPE_SCALE)
        elif problem.bounds is not None:
            init = "uniform"
        else:
            raise ValueError("init is None and the objective has no bounds: give init "
                             "(array, callable, 'uniform' with bounds, or ('gaussian', c, s))")
    if isinstance(init, str):
        if init != "uniform":
            raise ValueError(f"init must be 'uniform', ('gaussian', center, scale), an array "
                             f"or a callable; got {init!r}")
        if problem.bounds is None:
            raise ValueError("init='uniform' needs bounds (a Landscape or bounds=(lo, hi))")
        init_mode = "uniform"
        init_a, init_b = problem.bounds
        init_desc = {"mode": "uniform", "lower": init_a.tolist(), "upper": init_b.tolist()}
    elif isinstance(init, tuple) and len(init) == 3 and init[0] == "gaussian":
        init_mode = "gaussian"
        init_a = np.asarray(init[1], np.float32).reshape(-1)
        check_vector("init center", init_a, d)
        scale = np.asarray(init[2], np.float32)
        check_positive("init scale", scale)
        init_b = np.broadcast_to(scale, (d,)).astype(np.float32)
        init_desc = {"mode": "gaussian", "center": init_a.tolist(), "scale": init_b.tolist()}
    elif isinstance(init, np.ndarray):
        if init.shape != (num_seeds, d):
            raise ValueError(f"init array must have shape (num_seeds, d) = ({num_seeds}, {d}), "
                             f"got {init.shape}")
        check_finite("init", init)
        init_mode = "array"
        x0_all = init
        init_desc = {"mode": "array", "sha256": _fingerprint.stable_hash(init)}
    elif callable(init):
        init_mode = "callable"
        init_fn = init
        try:
            shp = jax.eval_shape(lambda k: init(k, 1), jax.random.key(0))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"init callable failed when traced as init(key, 1): {e}") from None
        if tuple(getattr(shp, "shape", ())) not in ((1, d), (d,)):
            raise ValueError(f"init(key, 1) must return shape (1, {d}), got {shp}")
        init_desc = {"mode": "callable", "fingerprint": _fingerprint.stable_hash(init)}
    else:
        raise TypeError(f"init must be 'uniform', ('gaussian', center, scale), an array or a "
                        f"callable, got {init!r}")
    if init_a is None:
        init_a = np.zeros(d, np.float32)
        init_b = np.zeros(d, np.float32)

    # objective check (abstract evaluation only; no compilation)
    try:
        out = jax.eval_shape(problem.f, jax.ShapeDtypeStruct((d,), jnp.float32))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"objective failed on an input of shape ({d},): "
                         f"{type(e).__name__}: {e}") from None
    if getattr(out, "shape", None) != ():
        raise ValueError(f"objective must return a scalar for x of shape ({d},), got {out}")

    # hit threshold
    if target is None and problem.f_min is not None:
        target = _DEFAULT_TARGET
    hit_on = target is not None
    hit_thr = None
    if hit_on:
        hit_thr = target + (problem.f_min if problem.f_min is not None else 0.0)
    center = escape_center if escape_on else np.zeros(d, np.float32)
    f_center = float(problem.f(jnp.asarray(center))) if escape_on and escape_margin else 0.0

    # ---------------------------------------------------------------- layout
    mesh = _mesh()
    n_dev = mesh.devices.size
    platform = jax.devices()[0].platform
    if chunk_size is None:
        # cap the per-chunk state (and recorded trajectories) at ~2**27 elements per array
        h_max = max(len(f.hparams) for f in families)
        per_seed = h_max * d * ((steps // record_every + 1) if record_every else 1)
        chunk_size = min(num_seeds, _DEFAULT_CHUNK.get(platform, 1 << 20),
                         max(1, _MAX_CHUNK_ELEMENTS // per_seed))
    chunk_size = min(chunk_size, num_seeds)
    n_chunks = -(-num_seeds // chunk_size)

    config = {
        "objective": problem.name,
        "objective_fingerprint": _fingerprint.stable_hash(problem.f),
        "dim": d,
        "optimizers": {fam.name: fam.desc for fam in families},
        "num_seeds": num_seeds,
        "steps": steps,
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "key_impl": str(jax.random.key_impl(key)),
        "init": init_desc,
        "escape_radius": escape_radius,
        "escape_center": None if not escape_on else center.tolist(),
        "escape_margin": escape_margin,
        "target": target,
        "f_min": problem.f_min,
        "hit_threshold": hit_thr,
        "record_every": record_every,
        "chunk_size": chunk_size,
        "unroll": unroll,
    }
    store = None
    if out_dir is not None:
        from jaxopt_lab.compare.store import RunStore

        store = RunStore(out_dir, config)

    # ---------------------------------------------------------------- compile
    replicated = NamedSharding(mesh, P())
    seeds_1d = NamedSharding(mesh, P("seeds"))
    rows = NamedSharding(mesh, P("seeds", None))
    scalars = dict(
        key=_put(mesh, np.asarray(jax.random.key_data(key)), P()),
        init_a=_put(mesh, init_a, P()),
        init_b=_put(mesh, init_b, P()),
        center=_put(mesh, np.asarray(center, np.float32), P()),
        radius=_put(mesh, np.float32(escape_radius or 1.0), P()),
        margin=_put(mesh, np.float32(escape_margin or 0.0), P()),
        f_center=_put(mesh, np.float32(f_center), P()),
        hit_thr=_put(mesh, np.float32(hit_thr if hit_on else 0.0), P()),
    )
    f_refs: list = []
    f_fp = _fingerprint.fingerprint(problem.f, f_refs)
    init_fp = _fingerprint.fingerprint(init_fn, f_refs) if init_fn is not None else None
    compile_seconds = 0.0
    per_family_compile = {}
    hits = misses = 0
    programs = {}  # (family index, group index) -> compiled
    def compile_family(fam):
        progs, secs_total, n_hit = [], 0.0, 0
        fi = families.index(fam)
        for gi, group in enumerate(fam.groups):
            if store is not None and all(
                store.has_chunk(_chunk_name(fi, gi, c)) for c in range(n_chunks)
            ):
                progs.append(None)  # every chunk resumes from disk: nothing to compile
                continue
            compiled, secs, hit = _compiled_program(
                problem.f, fam, group, init_fn, f_fp, init_fp, f_refs, d, chunk_size,
                batch_size, steps, record_every, init_mode, escape_on,
                escape_margin is not None, hit_on, unroll, mesh, scalars, seeds_1d, rows,
                replicated, str(jax.random.key_impl(key)),
            )
            if compiled is None:
                return None
            progs.append(compiled)  # (executable, padded chunk, micro-batch) or _Pending
            secs_total += secs
            n_hit += int(hit)
        return progs, secs_total, n_hit

    for fi, fam in enumerate(families):
        got = compile_family(fam)
        if got is None:  # the factory cannot take traced hyperparameters: make them static
            fam = families[fi] = _make_family(fam.name, optimizers[fam.name], force_static=True)
            got = compile_family(fam)
        progs, secs, n_hit = got
        for gi, compiled in enumerate(progs):
            programs[(fi, gi)] = compiled
        per_family_compile[fam.name] = secs
        compile_seconds += secs
        hits += n_hit
        misses += sum(p is not None for p in progs) - n_hit

    # XLA compilation of every new program, in parallel threads (XLA releases the GIL)
    pending_programs = {k: p for k, p in programs.items() if isinstance(p, _Pending)}
    if pending_programs:
        t_compile = time.perf_counter()

        def xla_compile(p):
            t0 = time.perf_counter()
            return p.lowered.compile(), time.perf_counter() - t0

        workers = min(len(pending_programs), os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            done = dict(zip(pending_programs, pool.map(xla_compile, pending_programs.values()),
                            strict=True))
        compile_seconds += time.perf_counter() - t_compile
        for k, (executable, secs) in done.items():
            p = pending_programs[k]
            _CACHE.put(p.cache_key, executable, p.refs)
            programs[k] = (executable, p.padded, p.micro)
            compile_seconds += p.lower_seconds
            per_family_compile[families[k[0]].name] += p.lower_seconds + secs

    # ---------------------------------------------------------------- execute
    n_rec = (steps // record_every + 1) if record_every else 0
    metrics = {
        fam.name: {m: np.empty((len(fam.hparams), num_seeds), np.bool_ if m == "nonfinite"
                               else np.float32) for m in METRIC_NAMES}
        for fam in families
    }
    trajs = {
        fam.name: np.empty((len(fam.hparams), num_seeds, n_rec, d), np.float32)
        for fam in families
    } if record_every else {}

    items = [(fi, gi, c) for fi, fam in enumerate(families) for gi in range(len(fam.groups))
             for c in range(n_chunks)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="compare.run", unit="chunk")
    resumed = 0
    t_run = time.perf_counter()

    def place(fi, gi, c, out):
        fam = families[fi]
        group = fam.groups[gi]
        lo_s = c * chunk_size
        hi_s = min(num_seeds, lo_s + chunk_size)
        n = hi_s - lo_s
        rows_idx = np.asarray(group.indices)
        for m in METRIC_NAMES:
            metrics[fam.name][m][rows_idx, lo_s:hi_s] = out[m][:, :n]
        if record_every:
            trajs[fam.name][rows_idx, lo_s:hi_s] = out["trajectories"][:, :n]

    def dispatch(fi, gi, c):
        executable, padded, _ = programs[(fi, gi)]
        lo_s = c * chunk_size
        if x0_all is not None:
            x0 = np.zeros((padded, d), np.float32)
            n = min(num_seeds, lo_s + padded) - lo_s
            x0[:n] = x0_all[lo_s:lo_s + n]
        else:
            x0 = np.zeros((padded, 0), np.float32)
        hv = group_args[(fi, gi)]
        return executable(
            hv, _put(mesh, np.int32(lo_s), P()), _put(mesh, x0, P("seeds", None)),
            scalars["key"], scalars["init_a"], scalars["init_b"], scalars["center"],
            scalars["radius"], scalars["margin"], scalars["f_center"], scalars["hit_thr"],
        )

    def collect(item, result):
        fi, gi, c = item
        m, tr = result
        out = {k: _fetch(v) for k, v in m.items()}
        if record_every:
            out["trajectories"] = _fetch(tr)
        lo_s = c * chunk_size
        n = min(num_seeds, lo_s + chunk_size) - lo_s
        out = {k: v[:, :n] for k, v in out.items()}
        if store is not None:
            store.save_chunk(_chunk_name(fi, gi, c), out)
        place(fi, gi, c, out)
        if bar is not None:
            bar.update(1)

    group_args = {  # traced hyperparameters, on device once per run
        (fi, gi): {k: _put(mesh, v, P()) for k, v in fam.groups[gi].traced.items()}
        for fi, fam in enumerate(families) for gi in range(len(fam.groups))
    }
    pending = None
    for item in items:
        name = _chunk_name(*item)
        if store is not None and store.has_chunk(name):
            out = store.load_chunk(name)
            place(*item, out)
            resumed += 1
            if bar is not None:
                bar.update(1)
            continue
        result = dispatch(*item)  # asynchronous: overlaps with the previous chunk's transfer
        if pending is not None:
            collect(*pending)
        pending = (item, result)
    if pending is not None:
        collect(*pending)
    if bar is not None:
        bar.close()
    run_seconds = time.perf_counter() - t_run

    total_h = sum(len(f.hparams) for f in families)
    traj_steps = float(num_seeds) * steps * total_h
    meta = {
        "config": config,
        "versions": _versions(),
        "device_kind": jax.devices()[0].device_kind,
        "platform": platform,
        "device_count": n_dev,
        "process_count": jax.process_count(),
        "compile_seconds": compile_seconds,
        "compile_seconds_per_optimizer": per_family_compile,
        "run_seconds": run_seconds,
        "total_seconds": time.perf_counter() - t_start,
        "cache_hits": hits,
        "cache_misses": misses,
        "programs": sum(p is not None for p in programs.values()),
        "chunks": len(items),
        "resumed_chunks": resumed,
        "padded_chunk_size": max((p[1] for p in programs.values() if p), default=0),
        "micro_batch": max((p[2] for p in programs.values() if p), default=0),
        "trajectory_steps": traj_steps,
        "trajectory_steps_per_second": traj_steps / run_seconds if run_seconds > 0 else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    results = Results(
        optimizers=[f.name for f in families],
        hparams={f.name: [dict(h) for h in f.hparams] for f in families},
        metrics=metrics,
        trajectories=trajs,
        meta=meta,
    )
    if store is not None:
        store.finalize(results)
    return results


def _layout(chunk_size: int, n_dev: int, h: int, d: int, batch_size: int | None):
    """(padded chunk, micro-batch): the chunk is padded to n_dev * m * micro seeds."""
    per_dev = -(-chunk_size // n_dev)
    if batch_size is None:
        target = _MICRO_ELEMENTS.get(jax.devices()[0].platform)
        batch_size = per_dev if target is None else max(1, target // (h * d))
    micro = max(1, min(batch_size, per_dev))
    m = -(-per_dev // micro)
    return n_dev * m * micro, micro


def _compiled_program(f, fam, group, init_fn, f_fp, init_fp, f_refs, d, chunk_size, batch_size,
                      steps, record_every, init_mode, escape_on, margin_on, hit_on, unroll, mesh,
                      scalars, seeds_1d, rows, replicated, key_impl):
    """Return ((compiled, padded, micro), compile_seconds, cache_hit), or (None, 0, False) if
    tracing the hyperparameters failed (caller retries with static hyperparameters)."""
    n_dev = mesh.devices.size
    padded, micro = _layout(chunk_size, n_dev, len(group.indices), d, batch_size)
    st = _Static(steps, record_every, init_mode, escape_on, margin_on, hit_on, fam.extra_args,
                 unroll, key_impl)
    refs = list(f_refs)
    opt_fp = _fingerprint.fingerprint(
        fam.transform if fam.factory is None else fam.factory, refs)
    static_fp = _fingerprint.fingerprint(group.static, refs)
    traced_keys = tuple(group.traced)
    h = len(group.indices)
    cache_key = (
        f_fp, init_fp, opt_fp, static_fp, traced_keys, h, st, d, padded, micro,
        tuple(dev.id for dev in mesh.devices.flat), jax.config.jax_enable_x64,
    )
    compiled = _CACHE.get(cache_key)
    if compiled is not None:
        return (compiled, padded, micro), 0.0, True
    program = _build_program(f, fam, group.static, traced_keys, st, init_fn, h, mesh, padded,
                             micro)
    metric_sh = {m: NamedSharding(mesh, P(None, "seeds")) for m in METRIC_NAMES}
    traj_sh = NamedSharding(mesh, P(None, "seeds", None, None)) if record_every else None
    hv_sh = {k: replicated for k in traced_keys}
    jitted = jax.jit(
        program,
        in_shardings=(hv_sh, replicated, rows) + (replicated,) * 8,
        out_shardings=(metric_sh, traj_sh),
    )
    sds = jax.ShapeDtypeStruct
    args = (
        {k: sds((h,), jnp.float32, sharding=replicated) for k in traced_keys},
        sds((), jnp.int32, sharding=replicated),
        sds((padded, d if init_mode == "array" else 0), jnp.float32, sharding=rows),
        *(scalars[k] for k in ("key", "init_a", "init_b", "center", "radius", "margin",
                               "f_center", "hit_thr")),
    )
    t0 = time.perf_counter()
    try:
        lowered = jitted.lower(*args)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError):
        if traced_keys:
            return None, 0.0, False
        raise
    return _Pending(lowered, cache_key, refs, padded, micro, time.perf_counter() - t0), 0.0, False


@dataclasses.dataclass
class _Pending:
    """A lowered program waiting for XLA compilation (compiled in parallel by ``run``)."""

    lowered: Any
    cache_key: tuple
    refs: list
    padded: int
    micro: int
    lower_seconds: float


def _chunk_name(fi: int, gi: int, c: int) -> str:
    return f"f{fi:03d}-g{gi:03d}-c{c:06d}"


def _versions() -> dict:
    import sys

    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for mod in ("jax", "jaxlib", "optax", "flax"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


__all__ = ["run", "cache_info", "clear_cache"]

"""THE sweep core: every optimizer x hyperparameter x seed of a pure per-seed trial in one
compiled program per optimizer family.

Every study of the lab is a front-end of :func:`sweep`: landscape sweeps
(:func:`jaxopt_lab.compare.run`), network training (:func:`jaxopt_lab.compare.train`),
and the two-player and task-sequence loops of the GAN and continual-learning labs. A
front-end supplies a :class:`Trial`: ONE seed's whole run as a pure function
``run(opt, key, index, seed_input, inputs) -> nested dict of arrays`` (its own
``lax.scan`` over steps, metrics in the carry); the core does the rest:

* ``jax.vmap`` over hyperparameter combinations (traced: the optimizer factory is called
  with tracers, so a learning-rate grid is one program) and over seeds;
* the seed axis is split into chunks of ``chunk_size`` seeds (memory and throughput stay
  flat as seeds grow), each chunk sharded over every device with a 1-D ``NamedSharding``
  mesh named ``"seeds"`` and, inside a device, run in micro-batches of ``batch_size``;
* programs are compiled ahead of time, in parallel threads, and kept in a process-wide
  cache keyed on the trial's and optimizer's structure, static configuration and shapes
  (a second sweep with the same optimizers and shapes compiles nothing);
* with ``out_dir``, every chunk is saved with its identity and checksum as soon as it is
  done (:class:`jaxopt_lab.compare.store.RunStore`): an interrupted sweep resumes.

Key discipline: seed ``i`` of the sweep gets ``key_i = fold_in(key, i)`` and nothing else,
the same for every optimizer and hyperparameter (common random numbers), so a seed's
result never depends on how many seeds ran, the chunking or the number of devices.

Multi-host: call ``jax.distributed.initialize()`` first and make the same call in every
process; each process computes its devices' shards, outputs are all-gathered, and only
process 0 writes ``out_dir``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab import _fingerprint
from jaxopt_lab._validation import as_key, check_int, key_words
from jaxopt_lab.compare import devices
from jaxopt_lab.compare.cache import PROGRAMS
from jaxopt_lab.compare.families import OptimizerFamily, make_families, make_family

#: Default seeds per chunk (one compiled call, one resumable chunk file).
DEFAULT_CHUNK = {"cpu": 65536, "gpu": 1 << 20, "tpu": 1 << 20}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One seed's whole run, as the pure function the core vmaps over seeds and
    hyperparameters.

    Attributes:
      run: ``run(opt, key, index, seed_input, inputs) -> outputs`` for ONE seed: ``opt``
        is the optax transform of this hyperparameter combination, ``key`` is
        ``fold_in(sweep_key, index)`` (derive every random stream of the seed from it with
        ``fold_in``), ``index`` the global seed index (int32 scalar), ``seed_input`` this
        seed's row of ``seed_inputs`` (or None), ``inputs`` the shared arrays. ``outputs``
        is a nested dict (string keys without '/') of arrays; the core adds the leading
        ``[n_hparams, n_seeds]`` axes.
      inputs: pytree of arrays passed to the program as an argument (never closed over, so
        XLA does not constant-fold data), the same for every seed.
      seed_inputs: pytree of arrays with a leading ``num_seeds`` axis (e.g. given starts),
        sharded with the seeds; or None.
      static: hashable description of everything ``run`` closes over that changes the
        program (part of the compile-cache key, beside ``run``'s structural fingerprint).
      identity: optional hashable key that replaces ``run``'s structural fingerprint in the
        compile-cache key (a front-end that already fingerprinted what ``run`` closes over
        passes it, saving the work per call); then ``refs`` are the objects that key holds
        by identity (kept alive with the cached program).
    """

    run: Callable
    inputs: Any = None
    seed_inputs: Any = None
    static: Any = None
    identity: Any = None
    refs: tuple = ()


class SweepOutput(NamedTuple):
    """What :func:`sweep` returns.

    Attributes:
      families: the optimizer families, in the order given.
      outputs: family name -> the trial's outputs with leading axes ``[n_hparams,
        num_seeds]`` (numpy), rows in the order of ``family.hparams``.
      compile_seconds: lowering + XLA compilation (0.0 on a full cache hit).
      compile_seconds_per_family: family name -> its share of ``compile_seconds``.
      run_seconds: execution of every chunk, transfers and chunk files included.
      cache_hits: programs found in the compile cache.
      cache_misses: programs compiled.
      chunks: (family, group, chunk) items of the sweep.
      resumed_chunks: items read back from ``out_dir`` instead of computed.
      rejected_chunks: paths of chunk files found unusable on resume (recomputed).
      padded_chunk: seeds per compiled call after padding.
      micro_batch: seeds per vectorised micro-batch on a device.
      device_count: devices of the mesh.
    """

    families: list
    outputs: dict
    compile_seconds: float
    compile_seconds_per_family: dict
    run_seconds: float
    cache_hits: int
    cache_misses: int
    chunks: int
    resumed_chunks: int
    rejected_chunks: list
    padded_chunk: int
    micro_batch: int
    device_count: int


def chunk_name(fi: int, gi: int, c: int) -> str:
    """File name stem of chunk ``c`` of group ``gi`` of family ``fi``."""
    return f"f{fi:03d}-g{gi:03d}-c{c:06d}"


def _program(trial: Trial, family: OptimizerFamily, group_static: dict, n_hparams: int,
             mesh, padded: int, micro: int, has_seed_inputs: bool, key_impl: str):
    """program(hv, offset, seed_rows, key_data, inputs) -> outputs [H, padded, ...]."""
    n_dev = mesh.devices.size

    def make_opt(hv):
        if family.factory is None:
            return family.transform
        return family.factory(**group_static, **hv)

    def one(hv, i, row, key, inputs):
        return trial.run(make_opt(hv), jax.random.fold_in(key, i), i,
                         row if has_seed_inputs else None, inputs)

    seeds = jax.vmap(one, in_axes=(None, 0, 0, None, None))
    hypers = jax.vmap(seeds, in_axes=(0, None, None, None, None), axis_size=n_hparams)

    def program(hv, offset, rows, key_data, inputs):
        m = padded // (n_dev * micro)
        idx = offset + jnp.arange(padded, dtype=jnp.int32)
        if n_dev > 1:
            idx = jax.lax.with_sharding_constraint(idx, NamedSharding(mesh, P("seeds")))
        idx3 = idx.reshape(n_dev, m, micro)
        rows3 = jax.tree.map(lambda a: a.reshape((n_dev, m, micro) + a.shape[1:]), rows)
        key = jax.random.wrap_key_data(key_data, impl=key_impl)

        def per_device(i2, r2):
            if m == 1:  # one micro-batch: no loop (smaller program, faster compile)
                first = jax.tree.map(lambda a: a[0], r2)
                return jax.tree.map(lambda a: a[None], hypers(hv, i2[0], first, key, inputs))
            return jax.lax.map(lambda a: hypers(hv, a[0], a[1], key, inputs), (i2, r2))

        if n_dev == 1:
            out = jax.tree.map(lambda a: a[None],
                               per_device(idx3[0], jax.tree.map(lambda a: a[0], rows3)))
        else:
            out = jax.vmap(per_device)(idx3, rows3)  # leaves [n_dev, m, H, micro, ...]

        def merge(a):
            a = jnp.moveaxis(a, 2, 0)  # [H, n_dev, m, micro, ...]
            return a.reshape((a.shape[0], padded) + a.shape[4:])

        return jax.tree.map(merge, out)

    return program


@dataclasses.dataclass
class _Pending:
    """A lowered program waiting for XLA compilation (compiled in parallel by ``sweep``)."""

    lowered: Any
    cache_key: tuple
    refs: list


_NO_ROWS: dict = {}


def _no_rows(mesh, padded: int):
    """The placeholder ``[padded, 0]`` rows of a trial without seed inputs (cached)."""
    k = (tuple(d.id for d in mesh.devices.flat), padded)
    if k not in _NO_ROWS:
        _NO_ROWS[k] = devices.put(mesh, np.zeros((padded, 0), np.float32), P("seeds"))
    return _NO_ROWS[k]


def _rows_for_chunk(seed_inputs, lo: int, n: int, padded: int):
    """This chunk's rows of ``seed_inputs``, zero-padded to ``padded`` seeds."""
    def pad(a):
        a = np.asarray(a)
        out = np.zeros((padded,) + a.shape[1:], a.dtype)
        out[:n] = a[lo:lo + n]
        return out

    return jax.tree.map(pad, seed_inputs)


def sweep(
    trial: Trial,
    optimizers: Mapping[str, Any] | list,
    *,
    num_seeds: int,
    key: Any,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    out_dir: str | os.PathLike | None = None,
    config: Any = None,
    progress: bool = False,
    compiler_options: dict | None = None,
) -> SweepOutput:
    """Run ``trial`` for every optimizer family x hyperparameter combination x seed.

    Args:
      trial: the per-seed program (:class:`Trial`).
      optimizers: mapping name -> optax ``GradientTransformation``, or name ->
        ``(factory, grid)`` with ``grid`` a dict of lists (Cartesian product; float grids
        traced, ints/bools/strings static), or a list of already-built
        :class:`~jaxopt_lab.compare.families.OptimizerFamily`.
      num_seeds: seeds per combination (>= 1).
      key: ``jax.random.key(seed)`` (an int seed is accepted); seed ``i`` gets
        ``fold_in(key, i)``.
      chunk_size: seeds per compiled call and per resumable chunk file (default: 65536 on
        CPU, 2**20 on accelerators, capped at ``num_seeds``). Results do not depend on it.
      batch_size: seeds per vectorised micro-batch on a device (performance only).
      out_dir: run directory for resumable chunk files (:class:`RunStore`); ``config`` (a
        JSON-able description of everything that determines the outputs) keys it.
      config: see ``out_dir`` (required with it).
      progress: show a tqdm bar over chunks.
      compiler_options: XLA options for every compiled program (part of the cache key).

    Returns:
      :class:`SweepOutput`.
    """
    num_seeds = check_int("num_seeds", num_seeds, minimum=1)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(trial, Trial):
        raise TypeError(f"trial must be a compare.core.Trial, got {type(trial).__name__}")
    key = as_key("key", key)
    if isinstance(optimizers, list) and all(isinstance(f, OptimizerFamily) for f in optimizers):
        families = list(optimizers)
        entries = None
    else:
        families = make_families(optimizers)
        entries = optimizers
    has_seed_inputs = trial.seed_inputs is not None
    if has_seed_inputs:
        for leaf in jax.tree.leaves(trial.seed_inputs):
            if np.shape(leaf)[:1] != (num_seeds,):
                raise ValueError(f"seed_inputs leaves must have a leading axis of num_seeds="
                                 f"{num_seeds}, got shape {np.shape(leaf)}")

    if jax.process_count() > 1:  # every process must run the same sweep: check, name it
        _check_processes_agree(trial, families, num_seeds, chunk_size, batch_size, key, config)
    mesh = devices.seed_mesh()
    n_dev = mesh.devices.size
    plat = devices.platform()
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK.get(plat, 1 << 20)
    chunk_size = min(chunk_size, num_seeds)
    n_chunks = -(-num_seeds // chunk_size)
    padded, micro = devices.chunk_layout(chunk_size, n_dev, batch_size)
    key_impl = str(jax.random.key_impl(key))

    store = None
    if out_dir is not None:
        from jaxopt_lab.compare.store import RunStore

        if config is None:
            raise ValueError("out_dir needs config (what determines the outputs)")
        store = RunStore(out_dir, {"config": config, "chunk_size": chunk_size,
                                   "num_seeds": num_seeds,
                                   "families": [f.stable_desc() for f in families]})

    replicated = NamedSharding(mesh, P())
    seed_sharded = NamedSharding(mesh, P("seeds"))
    out_sharding = NamedSharding(mesh, P(None, "seeds"))
    key_dev, inputs_dev = devices.put(
        mesh, (key_words(key), jax.tree.map(np.asarray, trial.inputs)),
        P())
    rows_abstract = (
        jax.tree.map(lambda a: jax.ShapeDtypeStruct((padded,) + np.shape(a)[1:],
                                                    np.asarray(a).dtype,
                                                    sharding=seed_sharded), trial.seed_inputs)
        if has_seed_inputs else jax.ShapeDtypeStruct((padded, 0), jnp.float32,
                                                     sharding=seed_sharded)
    )
    refs: list = list(trial.refs)
    run_fp = (trial.identity if trial.identity is not None
              else _fingerprint.fingerprint(trial.run, refs))
    trial_fp = (run_fp, trial.static)
    avals = jax.tree.map(lambda a: (np.shape(a), str(np.asarray(a).dtype)),
                         (trial.inputs, trial.seed_inputs))
    avals_fp = (jax.tree.structure((trial.inputs, trial.seed_inputs)),
                tuple(jax.tree.leaves(avals)))
    opts_fp = None if compiler_options is None else tuple(sorted(compiler_options.items()))
    mesh_fp = tuple(dev.id for dev in mesh.devices.flat)

    def needed(fi, gi):
        return store is None or not all(
            store.has_chunk(chunk_name(fi, gi, c)) for c in range(n_chunks))

    def lower(fam: OptimizerFamily, group) -> _Pending | tuple | None:
        grefs = list(refs)
        opt_fp = _fingerprint.fingerprint_memo(
            fam.transform if fam.factory is None else fam.factory, grefs)
        static_fp = _fingerprint.fingerprint(group.static, grefs)
        traced_keys = tuple(group.traced)
        h = len(group.indices)
        cache_key = (trial_fp, avals_fp, opt_fp, static_fp, traced_keys, h, padded, micro,
                     mesh_fp, key_impl, opts_fp, jax.config.jax_enable_x64, has_seed_inputs)
        compiled = PROGRAMS.get(cache_key)
        if compiled is not None:
            return compiled, True
        program = _program(trial, fam, group.static, h, mesh, padded, micro, has_seed_inputs,
                           key_impl)
        jitted = jax.jit(program,
                         in_shardings=({k: replicated for k in traced_keys}, replicated,
                                       seed_sharded, replicated, replicated),
                         out_shardings=out_sharding)
        args = ({k: jax.ShapeDtypeStruct((h,), jnp.float32, sharding=replicated)
                 for k in traced_keys},
                jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
                rows_abstract, key_dev, inputs_dev)
        try:
            lowered = jitted.lower(*args)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                jax.errors.TracerIntegerConversionError):
            if traced_keys:
                return None  # the factory cannot take traced hyperparameters
            raise
        return _Pending(lowered, cache_key, grefs)

    # ---------------------------------------------------------------- lower (and cache)
    t_lower = time.perf_counter()
    programs: dict = {}
    hits = 0
    lower_seconds: dict = {}
    for fi in range(len(families)):
        t0 = time.perf_counter()
        for attempt in range(2):
            fam = families[fi]
            got = {}
            for gi, group in enumerate(fam.groups):
                if not needed(fi, gi):
                    continue
                p = lower(fam, group)
                if p is None:
                    break
                got[gi] = p
            else:
                break
            if attempt == 1 or entries is None:
                raise ValueError(f"optimizers[{fam.name!r}]: the factory cannot take traced "
                                 "hyperparameters")
            families[fi] = make_family(fam.name, entries[fam.name], force_static=True)
        for gi, p in got.items():
            if isinstance(p, tuple):
                programs[(fi, gi)] = p[0]
                hits += 1
            else:
                programs[(fi, gi)] = p
        lower_seconds[families[fi].name] = time.perf_counter() - t0
    compile_seconds = time.perf_counter() - t_lower
    if hits == len(programs):
        compile_seconds = 0.0  # a full cache hit: nothing was lowered or compiled
    per_family = {f.name: (lower_seconds[f.name] if hits < len(programs) else 0.0)
                  for f in families}

    pending = {k: p for k, p in programs.items() if isinstance(p, _Pending)}
    if pending:
        t0 = time.perf_counter()

        def xla_compile(p):
            t = time.perf_counter()
            return p.lowered.compile(compiler_options), time.perf_counter() - t

        workers = min(len(pending), os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            done = dict(zip(pending, pool.map(xla_compile, pending.values()), strict=True))
        compile_seconds += time.perf_counter() - t0
        for k, (executable, secs) in done.items():
            PROGRAMS.put(pending[k].cache_key, executable, pending[k].refs)
            programs[k] = executable
            per_family[families[k[0]].name] += secs

    # ---------------------------------------------------------------- execute
    outputs: dict = {f.name: None for f in families}
    items = [(fi, gi, c) for fi, f in enumerate(families) for gi in range(len(f.groups))
             for c in range(n_chunks)]
    needed_items = [it for it in items
                    if store is None or not store.has_chunk(chunk_name(*it))]
    group_args, offsets = devices.put(mesh, (
        {(fi, gi): dict(f.groups[gi].traced)
         for fi, f in enumerate(families) for gi in range(len(f.groups))},
        {c: np.int32(c * chunk_size) for c in sorted({it[2] for it in needed_items})},
    ), P())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="sweep", unit="chunk")

    def place(fi, gi, c, out):
        fam = families[fi]
        lo = c * chunk_size
        n = min(num_seeds, lo + chunk_size) - lo
        rows_idx = np.asarray(fam.groups[gi].indices)
        if outputs[fam.name] is None:
            outputs[fam.name] = jax.tree.map(
                lambda a: np.zeros((len(fam.hparams), num_seeds) + a.shape[2:], a.dtype), out)
        dest = outputs[fam.name]

        def put_rows(d, a):
            d[rows_idx, lo:lo + n] = a[:, :n]
            return d

        jax.tree.map(put_rows, dest, out)

    def identity(fi, gi, c):
        lo = c * chunk_size
        return store.identity(chunk_name(fi, gi, c), family=families[fi].name, group=gi,
                              chunk=c, seeds=[lo, min(num_seeds, lo + chunk_size)])

    def dispatch(fi, gi, c):
        lo = c * chunk_size
        n = min(num_seeds, lo + chunk_size) - lo
        if has_seed_inputs:
            rows = devices.put(mesh, _rows_for_chunk(trial.seed_inputs, lo, n, padded),
                               P("seeds"))
        else:
            rows = _no_rows(mesh, padded)
        offset = offsets[c] if c in offsets else devices.put(mesh, np.int32(lo), P())
        return programs[(fi, gi)](group_args[(fi, gi)], offset, rows, key_dev, inputs_dev)

    def collect(item, result):
        fi, gi, c = item
        lo = c * chunk_size
        n = min(num_seeds, lo + chunk_size) - lo
        out = jax.tree.map(lambda a: a[:, :n], devices.fetch(result))
        if store is not None:
            store.save_chunk(chunk_name(*item), out, identity(*item))
        place(fi, gi, c, out)
        if bar is not None:
            bar.update(1)

    t_run = time.perf_counter()
    resumed = 0
    in_flight = None
    for item in items:
        if store is not None and store.has_chunk(chunk_name(*item)):
            out = store.load_chunk(chunk_name(*item), identity(*item))
            if out is not None:
                place(*item, out)
                resumed += 1
                if bar is not None:
                    bar.update(1)
                continue
            if (item[0], item[1]) not in programs:  # a rejected chunk of a resumed group
                fam = families[item[0]]
                p = lower(fam, fam.groups[item[1]])
                if isinstance(p, _Pending):
                    t0 = time.perf_counter()
                    executable = p.lowered.compile(compiler_options)
                    compile_seconds += time.perf_counter() - t0
                    PROGRAMS.put(p.cache_key, executable, p.refs)
                    p = (executable, False)
                programs[(item[0], item[1])] = p[0]
        result = dispatch(*item)  # asynchronous: overlaps with the previous chunk's transfer
        if in_flight is not None:
            collect(*in_flight)
        in_flight = (item, result)
    if in_flight is not None:
        collect(*in_flight)
    if bar is not None:
        bar.close()
    run_seconds = time.perf_counter() - t_run
    return SweepOutput(
        families=families, outputs=outputs, compile_seconds=compile_seconds,
        compile_seconds_per_family=per_family, run_seconds=run_seconds, cache_hits=hits,
        cache_misses=len(pending), chunks=len(items), resumed_chunks=resumed,
        rejected_chunks=[] if store is None else list(store.rejected),
        padded_chunk=padded, micro_batch=micro, device_count=n_dev,
    )


def _check_processes_agree(trial, families, num_seeds, chunk_size, batch_size, key, config):
    """All-gather a hash of this sweep's arguments, versions and program; raise in every
    process (before compiling) when they differ, naming what differs."""
    from jaxopt_lab.compare import distributed
    from jaxopt_lab.compare.store import checksum, flatten_arrays, jsonable, versions

    inputs = {"inputs": trial.inputs, "seed_inputs": trial.seed_inputs}
    leaves = {f"a{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(inputs))}
    distributed.check_consistent({
        "arguments": jsonable({"num_seeds": num_seeds, "chunk_size": chunk_size,
                               "batch_size": batch_size, "config": config,
                               "key": key_words(key).tolist(),
                               "optimizers": [f.stable_desc() for f in families],
                               "static": repr(trial.static)}),
        "data": checksum(flatten_arrays(leaves)) if leaves else None,
        "versions": versions(),
        "program": _fingerprint.stable_hash(trial.run),
    })


def sweep_meta(config, key, sw: SweepOutput, t_start: float, **extra) -> dict:
    """The run's ``meta`` (one schema, :func:`jaxopt_lab.compare.store.make_meta`) with the
    core's compile / cache / chunk counters."""
    from jaxopt_lab.compare.store import make_meta

    meta = make_meta(
        config, key=key, compile_seconds=sw.compile_seconds, run_seconds=sw.run_seconds,
        total_seconds=time.perf_counter() - t_start,
        compile_seconds_per_optimizer=sw.compile_seconds_per_family,
        cache_hits=sw.cache_hits, cache_misses=sw.cache_misses,
        programs=sw.cache_hits + sw.cache_misses, chunks=sw.chunks,
        resumed_chunks=sw.resumed_chunks, resumed=sw.resumed_chunks > 0,
        rejected_chunks=sw.rejected_chunks, padded_chunk_size=sw.padded_chunk,
        micro_batch=sw.micro_batch, **extra,
    )
    ts = extra.get("trajectory_steps")
    if ts is not None:
        meta["trajectory_steps_per_second"] = ts / sw.run_seconds if sw.run_seconds > 0 else None
    return meta


__all__ = ["DEFAULT_CHUNK", "SweepOutput", "Trial", "chunk_name", "sweep", "sweep_meta"]

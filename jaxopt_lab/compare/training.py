"""Network training sweeps: ``loss(params, batch)`` trained from many seeds with every
optimizer, a front-end of the sweep core (:func:`jaxopt_lab.compare.core.sweep`).

Per seed ``i`` (``key_i = fold_in(key, i)``, supplied by the core): ``params =
init(fold_in(key_i, 0))``; the batch of step ``t`` is ``batch_fn(data, fold_in(fold_in(
key_i, 1), t), t)``; every PRNG-key leaf of the optimizer state is folded per seed (as in
landscape sweeps); the health monitor runs at every step inside the ``lax.scan``; the
optimizer gets the lab's extra arguments (:mod:`jaxopt_lab.compare.steps`), so a
second-order or natural-gradient step trains a network too. Every optimizer and
hyperparameter sees the same initializations and batches (paired comparisons).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import health
from jaxopt_lab._validation import as_key, check_int
from jaxopt_lab.compare import core
from jaxopt_lab.compare import steps as steps_mod
from jaxopt_lab.compare.families import make_families
from jaxopt_lab.compare.landscape import fold_key_leaves


class TrainResults(NamedTuple):
    """What :func:`train` returns; per optimizer name, leading axes ``[n_hparams, S]``.

    Attributes:
      optimizers: optimizer names in the order given.
      hparams: name -> list of hyperparameter dicts (row order of every array).
      final: name -> dict of ``evaluate(params, data)`` scalars at the end, plus
        ``final_loss`` (mean of the last ``min(20, steps)`` training losses, NaN when any of
        them is non-finite) and ``nonfinite`` (the loss, a gradient or a parameter went
        NaN/Inf at any step).
      reports: name -> :class:`~jaxopt_lab.health.HealthReport` with leaves
        ``[n_hparams, S, steps, ...]`` (the monitor at every step).
      health: name -> final :class:`~jaxopt_lab.health.HealthState`, leaves ``[n_hparams, S,
        ...]``.
      params: name -> final parameters (leaves ``[n_hparams, S, ...]``), or None unless
        ``keep_params``.
      meta: the run's metadata (:func:`jaxopt_lab.compare.core.sweep_meta`).
      opt_state: name -> final optimizer state (leaves ``[n_hparams, S, ...]``; e.g. a weight
        EMA or a rollback counter), or None unless ``keep_state``.
    """

    optimizers: list
    hparams: dict
    final: dict
    reports: dict
    health: dict
    params: dict | None
    meta: dict
    opt_state: dict | None = None

    @property
    def compile_seconds(self) -> float:
        return float(self.meta["compile_seconds"])

    @property
    def run_seconds(self) -> float:
        return float(self.meta["run_seconds"])

    def losses(self, name: str) -> np.ndarray:
        """Training loss ``[n_hparams, S, steps]`` of optimizer ``name``."""
        return np.asarray(self.reports[name].loss)

    def first_step(self, name: str, flag: str) -> np.ndarray:
        """First step each run raised ``flag`` (``[n_hparams, S]`` int, -1 = never)."""
        return np.asarray(getattr(self.health[name].first_step, flag))


def _as_dict(x):
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return {k: _as_dict(v) for k, v in zip(x._fields, x, strict=True)}
    return x


def _health_tuple(cls, d: dict):
    return cls(**{k: health.Flags(**v) if isinstance(v, dict) else v for k, v in d.items()})


def train(
    init: Callable[[jax.Array], Any],
    loss: Callable[[Any, Any], Any],
    optimizers: Mapping[str, Any],
    *,
    num_seeds: int,
    steps: int,
    key: Any,
    batch_fn: Callable[[Any, jax.Array, jax.Array], Any],
    data: Any = None,
    has_activations: bool = False,
    evaluate: Callable[[Any, Any], dict] | None = None,
    evaluate_state: Callable[[Any, Any, Any], dict] | None = None,
    val_fn: Callable[[Any, Any], jax.Array] | None = None,
    output_fn: Callable[[Any, Any], Any] | None = None,
    output_loss: Callable[[Any, Any], jax.Array] | None = None,
    thresholds: health.Thresholds = health.DEFAULT_THRESHOLDS,
    layer_order: Sequence[str] | None = None,
    keep_params: bool = False,
    keep_state: bool = False,
    fast_compile: bool = False,
    chunk_size: int | None = None,
    out_dir: str | None = None,
    config: Any = None,
) -> TrainResults:
    """Train one network per seed and optimizer configuration, all in the sweep core.

    Args:
      init: ``init(key) -> params``.
      loss: ``loss(params, batch) -> scalar`` or, with ``has_activations``,
        ``-> (scalar, activations)`` (activations go to the dead-unit detector).
      optimizers: as in :func:`jaxopt_lab.compare.run`: name -> transform or
        ``(factory, grid)`` (float grids traced: one program per family).
      num_seeds: seeds per configuration.
      steps: training steps (>= 1).
      key: ``jax.random.key(seed)`` (an int seed is accepted).
      batch_fn: ``batch_fn(data, key, step) -> batch`` (pure, traceable).
      data: pytree of arrays passed into the compiled program as an argument (never closed
        over), e.g. a whole training set to sample from.
      has_activations: whether ``loss`` returns ``(loss, activations)``.
      evaluate: ``evaluate(params, data) -> dict of scalars`` computed at the end inside the
        program (test accuracy, whole-dataset statistics, ...).
      evaluate_state: ``evaluate_state(params, data, opt_state) -> dict of scalars`` at the
        end, for what lives in the optimizer state (a weight EMA's accuracy, a rollback
        guard's counter, ...).
      val_fn: ``val_fn(params, data) -> validation loss`` at every step (overfitting
        detector).
      output_fn: ``output_fn(params, x) -> outputs`` with ``output_loss(outputs, y)``: gives
        the optimizers a Gauss-Newton ``fvp_fn`` (batches must then be ``(x, y)``).
      output_loss: see ``output_fn``.
      thresholds: health-monitor thresholds.
      layer_order: layer path prefixes, input to output (``model.layers``).
      keep_params: return the final parameters of every run.
      keep_state: return the final optimizer state of every run (a pytree of arrays; typed
        PRNG keys come back as their key data).
      fast_compile: compile with XLA optimization level 0 on CPU (about half the compile
        time, a slower run: right for short runs such as quick presets).
      chunk_size: seeds per compiled call (and per resumable chunk with ``out_dir``).
      out_dir: resumable chunk files (needs ``config``, what determines the outputs).
      config: JSON-able description of the run (the resumable store's key).

    Returns:
      :class:`TrainResults`.
    """
    t_start = time.perf_counter()
    num_seeds = check_int("num_seeds", num_seeds, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    key = as_key("key", key)
    for name, fn in (("init", init), ("loss", loss), ("batch_fn", batch_fn)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    for name, fn in (("evaluate", evaluate), ("evaluate_state", evaluate_state),
                     ("val_fn", val_fn)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
    if (output_fn is None) != (output_loss is None):
        raise ValueError("output_fn and output_loss go together (both or neither)")
    if not isinstance(thresholds, health.Thresholds):
        raise TypeError(f"thresholds must be a health.Thresholds, got {type(thresholds)}")
    families = make_families(optimizers)
    layer_order = None if layer_order is None else tuple(layer_order)
    loss_value = (lambda p, b: loss(p, b)[0]) if has_activations else loss
    tail = min(20, steps)

    def run(opt, key_i, i, row, data):
        del row
        k_data = jax.random.fold_in(key_i, 1)
        params = init(jax.random.fold_in(key_i, 0))
        state = opt.init(params)
        bits = jax.random.bits(jax.random.fold_in(key_i, 2), dtype=jnp.uint32)
        state = fold_key_leaves(state, i, bits)

        def body(carry, t):
            params, state, hs, bad = carry
            batch = batch_fn(data, jax.random.fold_in(k_data, t), t)
            if has_activations:
                (value, acts), grads = jax.value_and_grad(loss, has_aux=True)(params, batch)
            else:
                (value, grads), acts = jax.value_and_grad(loss)(params, batch), None
            val = None if val_fn is None else val_fn(params, data)
            hs, rep = health.update_health(
                hs, t, loss=value, grads=grads, params=params, activations=acts,
                val_loss=val, thresholds=thresholds, layer_order=layer_order)
            fns = steps_mod.loss_fns(loss_value, batch, output_fn=output_fn,
                                     output_loss=output_loss)
            updates, state = steps_mod.update(opt, grads, state, params, value=value, fns=fns)
            params = optax.apply_updates(params, updates)
            finite = jnp.isfinite(value) & jnp.all(jnp.asarray(
                [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((grads, params))]))
            return (params, state, hs, bad | ~finite), rep

        carry0 = (params, state, health.init_health(thresholds), jnp.array(False))
        (params, state, hs, bad), reps = jax.lax.scan(body, carry0, jnp.arange(steps))
        last = reps.loss[-tail:]
        final = {"final_loss": jnp.where(jnp.all(jnp.isfinite(last)), jnp.mean(last), jnp.nan),
                 "nonfinite": bad}
        if evaluate is not None:
            final.update(evaluate(params, data))
        if evaluate_state is not None:
            final.update(evaluate_state(params, data, state))
        out = {"final": final, "reports": _as_dict(reps), "health": _as_dict(hs)}
        if keep_params:
            out["params"] = params
        if keep_state:
            out["opt_state"] = _state_dict(state)
        return out

    static = ("train", has_activations, steps, thresholds, layer_order, keep_params, keep_state)
    trial = core.Trial(run, inputs=data, static=static)
    sw = core.sweep(trial, families, num_seeds=num_seeds, key=key, chunk_size=chunk_size,
                    out_dir=out_dir, config=config,
                    compiler_options=_compiler_options(fast_compile))
    names = [f.name for f in sw.families]
    meta = core.sweep_meta(config, key, sw, t_start,
                           trajectory_steps=float(num_seeds) * steps *
                           sum(len(f.hparams) for f in sw.families))
    return TrainResults(
        optimizers=names,
        hparams={f.name: [dict(h) for h in f.hparams] for f in sw.families},
        final={n: sw.outputs[n]["final"] for n in names},
        reports={n: _health_tuple(health.HealthReport, sw.outputs[n]["reports"])
                 for n in names},
        health={n: _health_tuple(health.HealthState, sw.outputs[n]["health"]) for n in names},
        params={n: sw.outputs[n]["params"] for n in names} if keep_params else None,
        meta=meta,
        opt_state={n: _state_tree(sw.families[i], sw.outputs[n]["opt_state"], init)
                   for i, n in enumerate(names)} if keep_state else None,
    )


def _state_dict(state) -> dict:
    """An optimizer state as a flat dict of arrays (the core stores nested dicts only)."""
    leaves = jax.tree.leaves(state)
    return {f"leaf{i:04d}": (jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x) for i, x in enumerate(leaves)}


def _state_tree(family, flat: dict, init):
    """Rebuild the optimizer state's structure (from ``opt.init`` traced abstractly) around
    the stacked leaves ``[n_hparams, S, ...]``."""
    params = jax.eval_shape(init, jax.random.key(0))
    template = jax.eval_shape(family.transform.init, params)
    treedef = jax.tree.structure(template)
    return jax.tree.unflatten(treedef, [flat[k] for k in sorted(flat)])


def _compiler_options(fast_compile: bool) -> dict | None:
    if fast_compile and jax.default_backend() == "cpu":
        return {"xla_backend_optimization_level": 0}
    return None


__all__ = ["TrainResults", "train"]

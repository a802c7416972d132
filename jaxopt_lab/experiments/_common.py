"""Shared helpers for experiments: the seed-vmapped training loop and run directories.

* :func:`train_over_seeds` compiles ONE program ``jit(vmap(scan))``: every seed
  initializes its own parameters and data stream from its key, trains for
  ``steps`` steps inside ``lax.scan`` and runs the health monitor at every step.
* :func:`write_run_dir` writes ``records.csv``, ``meta.json`` (config, library
  versions, device, seconds) and PNG figures.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import health
from jaxopt_lab._validation import check_int


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Output of :func:`train_over_seeds` (leading axis = seed everywhere).

    Attributes:
      params: final parameters, leaves ``[S, ...]``.
      opt_state: final optimizer state, leaves ``[S, ...]``.
      health_state: final :class:`~jaxopt_lab.health.HealthState`, leaves ``[S, ...]``.
      reports: per-step :class:`~jaxopt_lab.health.HealthReport`, leaves ``[S, steps, ...]``.
      compile_seconds: time spent lowering + compiling.
      run_seconds: time of the compiled run (until results are ready).
    """

    params: Any
    opt_state: Any
    health_state: Any
    reports: Any
    compile_seconds: float
    run_seconds: float

    @property
    def losses(self) -> np.ndarray:
        """Training loss ``[S, steps]`` as numpy."""
        return np.asarray(self.reports.loss)

    def first_step(self, flag: str) -> np.ndarray:
        """First step each seed raised ``flag`` (``[S]`` int, -1 = never)."""
        return np.asarray(getattr(self.health_state.first_step, flag))


def _update(opt, grads, opt_state, params, loss):
    if isinstance(opt, optax.GradientTransformationExtraArgs):
        return opt.update(grads, opt_state, params, value=loss)
    return opt.update(grads, opt_state, params)


def _select_update(optimizers, index, grads, states, params, loss):
    """Update with ``optimizers[index]`` (``index`` may be traced); other states unchanged."""
    if len(optimizers) == 1:
        updates, new = _update(optimizers[0], grads, states[0], params, loss)
        return updates, (new,)

    def branch(i):
        def f(operands):
            grads, states, params, loss = operands
            updates, new = _update(optimizers[i], grads, states[i], params, loss)
            return updates, tuple(new if j == i else st for j, st in enumerate(states))

        return f

    return jax.lax.switch(
        index, [branch(i) for i in range(len(optimizers))], (grads, states, params, loss)
    )


def train_over_seeds(
    init: Callable[[jax.Array], Any],
    loss: Callable[[Any, Any], Any],
    optimizer: optax.GradientTransformation | Sequence[optax.GradientTransformation],
    *,
    keys: jax.Array,
    steps: int,
    batch_fn: Callable[[Any, jax.Array, jax.Array], Any],
    data: Any = None,
    has_activations: bool = False,
    val_fn: Callable[[Any, Any], jax.Array] | None = None,
    thresholds: health.Thresholds = health.DEFAULT_THRESHOLDS,
    layer_order: Sequence[str] | None = None,
    fast_compile: bool = False,
) -> TrainResult:
    """Train one model per key with ``jit(vmap(scan))`` and the health monitor at every step.

    Per seed: ``k_init, k_data = split(key)``; ``params = init(k_init)``; at step
    ``t`` the batch is ``batch_fn(data, fold_in(k_data, t), t)``; gradients of
    ``loss`` are passed to the optimizer (with ``value=loss`` for
    ``GradientTransformationExtraArgs``, e.g. the rollback guard) and to
    :func:`~jaxopt_lab.health.update_health` together with the current params
    (and activations / validation loss when given).

    With a SEQUENCE of ``V`` optimizers (variants of one experiment on the same
    model), everything runs in one compiled program ``jit(vmap_V(vmap_S(scan)))``:
    variant ``v`` uses ``optimizers[v]`` (selected by ``lax.switch`` on its index)
    and every variant sees the same seeds, so the variants are paired. The model
    and its gradient are compiled once instead of ``V`` times.

    Args:
      init: ``init(key) -> params``.
      loss: ``loss(params, batch) -> scalar`` or, with ``has_activations``,
        ``-> (scalar, activations)`` (activations go to the dead-unit detector).
      optimizer: an optax transformation, or a sequence of them (variants).
      keys: ``[S]`` typed PRNG keys, one per seed.
      steps: training steps.
      batch_fn: ``batch_fn(data, key, step) -> batch`` (pure, traceable).
      data: pytree of arrays passed into the compiled program as an argument
        (never closed over), e.g. a whole training set to sample from.
      has_activations: whether ``loss`` returns ``(loss, activations)``.
      val_fn: optional ``val_fn(params, data) -> validation loss`` (overfitting detector).
      thresholds: health-monitor thresholds.
      layer_order: layer path prefixes, input to output (``model.layers``).
      fast_compile: on CPU, compile with XLA's backend optimization level 0: about
        half the compile time for a slower run; right for short runs (quick presets).

    Returns:
      :class:`TrainResult`; leading axes ``[S]`` for one optimizer, ``[V, S]`` for a
      sequence. ``opt_state`` is then a tuple with one state per optimizer (the
      state of variant ``v`` is ``opt_state[v]`` at index ``[v]``).
    """
    steps = check_int("steps", steps)
    keys = jnp.asarray(keys)
    if not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.ndim != 1:
        raise TypeError(
            f"keys must be a 1-D array of typed PRNG keys, got {keys.dtype}{keys.shape}"
        )
    single = isinstance(optimizer, optax.GradientTransformation)
    optimizers = (optimizer,) if single else tuple(optimizer)
    if not optimizers or not all(isinstance(o, optax.GradientTransformation) for o in optimizers):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation or a non-empty sequence of "
            f"them, got {optimizer!r}"
        )
    layer_order = None if layer_order is None else tuple(layer_order)

    def one(key, index, data):
        k_init, k_data = jax.random.split(key)
        params = init(k_init)
        states = tuple(o.init(params) for o in optimizers)
        carry0 = (params, states, health.init_health(thresholds))

        def body(carry, t):
            params, states, hs = carry
            batch = batch_fn(data, jax.random.fold_in(k_data, t), t)
            if has_activations:
                (value, acts), grads = jax.value_and_grad(loss, has_aux=True)(params, batch)
            else:
                (value, grads), acts = jax.value_and_grad(loss)(params, batch), None
            val = None if val_fn is None else val_fn(params, data)
            hs, rep = health.update_health(
                hs,
                t,
                loss=value,
                grads=grads,
                params=params,
                activations=acts,
                val_loss=val,
                thresholds=thresholds,
                layer_order=layer_order,
            )
            updates, states = _select_update(optimizers, index, grads, states, params, value)
            params = optax.apply_updates(params, updates)
            return (params, states, hs), rep

        (params, states, hs), reps = jax.lax.scan(body, carry0, jnp.arange(steps))
        return params, states, hs, reps

    over_seeds = jax.vmap(one, in_axes=(0, None, None))
    if single:
        program = jax.jit(over_seeds)
    else:
        program = jax.jit(jax.vmap(over_seeds, in_axes=(None, 0, None)))
    index = jnp.int32(0) if single else jnp.arange(len(optimizers), dtype=jnp.int32)
    t0 = time.perf_counter()
    compiled = program.lower(keys, index, data).compile(compiler_options(fast_compile))
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, index, data))
    t2 = time.perf_counter()
    params, states, hs, reps = out
    return TrainResult(params, states[0] if single else states, hs, reps, t1 - t0, t2 - t1)


def compiler_options(fast_compile: bool) -> dict[str, Any] | None:
    """XLA options for ``Lowered.compile``: optimization level 0 on CPU when ``fast_compile``."""
    if fast_compile and jax.default_backend() == "cpu":
        return {"xla_backend_optimization_level": 0}
    return None


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``[num_seeds]`` typed keys split from ``jax.random.key(seed)``."""
    check_int("seed", seed, minimum=0)
    check_int("num_seeds", num_seeds)
    return jax.random.split(jax.random.key(seed), num_seeds)


# --------------------------------------------------------------------------- run directory
def versions() -> dict[str, str]:
    """Versions of Python and the libraries a run depends on."""
    import flax
    import matplotlib

    import jaxopt_lab

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", jax.__version__),
        "optax": optax.__version__,
        "flax": flax.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "jaxopt_lab": jaxopt_lab.__version__,
    }


def device_info() -> dict[str, Any]:
    """Backend, device kind and count of the default backend."""
    devs = jax.devices()
    return {"platform": devs[0].platform, "kind": devs[0].device_kind, "count": len(devs)}


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray | jax.Array):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf/nan
    return x


def make_meta(config: Any, *, seconds: dict[str, float], **extra: Any) -> dict[str, Any]:
    """The ``meta.json`` content: config, versions, device, seconds and any extras."""
    return _jsonable(
        {
            "config": config,
            "versions": versions(),
            "device": device_info(),
            "seconds": seconds,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra,
        }
    )


def write_run_dir(
    out_dir: str | Path,
    records: list[dict[str, Any]],
    meta: dict[str, Any],
    figures: dict[str, Any] | None = None,
) -> Path:
    """Write ``records.csv``, ``meta.json`` and ``<name>.png`` figures into ``out_dir``.

    Args:
      out_dir: directory (created if missing).
      records: list of flat dicts, one row each (columns = union of keys, first-seen order).
      meta: JSON-serialisable dict (see :func:`make_meta`).
      figures: ``{name: matplotlib Figure}``; each is saved as ``name.png``.

    Returns:
      The directory as a ``Path``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    with open(out / "records.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in records:
            w.writerow({k: _jsonable(v) for k, v in r.items()})
    (out / "meta.json").write_text(json.dumps(_jsonable(meta), indent=2, sort_keys=True))
    for name, fig in (figures or {}).items():
        fig.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
    return out


def median_fired(first_steps: Any) -> float:
    """Median of the first-fired steps that fired (>= 0); -1.0 if none fired."""
    a = np.asarray(first_steps).reshape(-1)
    a = a[a >= 0]
    return float(np.median(a)) if a.size else -1.0


def tail_mean(losses: Any, n: int = 20) -> np.ndarray:
    """Mean of the last ``n`` entries along the last axis (the final loss of noisy SGD)."""
    a = np.asarray(losses, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return a[..., -min(n, a.shape[-1]) :].mean(axis=-1)


def read_records(path: str | Path) -> list[dict[str, str]]:
    """Read ``records.csv`` (from a run directory or the file itself) as a list of dicts."""
    p = Path(path)
    if p.is_dir():
        p = p / "records.csv"
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))

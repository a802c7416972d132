"""Landscape sweeps: optimizers x hyperparameters x seeds on an objective ``f(x)``, a
front-end of the sweep core (:func:`jaxopt_lab.compare.core.sweep`).

Per seed ``i`` (``key_i = fold_in(key, i)``, supplied by the core):

* the start is drawn from ``fold_in(key_i, 0)`` (uniform in bounds, uniform in a ball,
  Gaussian, or ``init(fold_in(key_i, 0), 1)[0]`` for a callable ``init``) or is row ``i``
  of an ``init`` array;
* every PRNG-key leaf of the optimizer state (after ``opt.init``) becomes
  ``fold_in(fold_in(leaf, i), bits(fold_in(key_i, 1)))``: each trajectory gets its own
  noise stream, which also changes with ``key`` (legacy uint32 keys in a field named
  ``rng_key``/``key``/``prng_key``, as in ``optax.noisy_sgd``, are folded too);
* starts and noise are the same for every optimizer and hyperparameter (common random
  numbers), so differences between optimizers are not sampling noise;
* ``lax.scan`` over steps with the escape / hit / non-finite metrics in the carry.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import _fingerprint
from jaxopt_lab._validation import (
    as_key,
    check_finite,
    check_int,
    check_positive,
    check_vector,
    key_words,
)
from jaxopt_lab.compare import core, devices
from jaxopt_lab.compare import steps as steps_mod
from jaxopt_lab.compare.families import make_families
from jaxopt_lab.compare.results import METRIC_NAMES, Results

# Elements (hparams x seeds x d) per vectorised micro-batch. On CPU small batches stay in
# cache and below XLA's multi-threading threshold: throughput at 64k seeds then matches 1k
# (2-D saddle: ~10x faster than one 64k-wide batch on a loaded 2-core machine).
_MICRO_ELEMENTS = {"cpu": 2048}
_MAX_CHUNK_ELEMENTS = 1 << 27
#: Default radius of the ball of starts around ``escape_center``.
ESCAPE_INIT_SCALE = 1e-3
_DEFAULT_TARGET = 1e-3
_INIT_MODES = ("uniform", "ball", "gaussian")
# (objective fingerprint, dim) -> refs: objectives already checked to return a scalar
_CHECKED_OBJECTIVES: dict = {}


@dataclasses.dataclass
class _Problem:
    f: Callable
    dim: int | None
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
        fmin = getattr(objective, "f_min", None)
        return _Problem(
            fn, None if ldim is None else int(ldim), str(getattr(objective, "name", "landscape")),
            bounds if bounds is not None else getattr(objective, "bounds", None),
            None if fmin is None or not np.isfinite(fmin) else float(fmin),
            tuple(getattr(objective, "critical_points", ()) or ()),
        )
    if not callable(objective):
        raise TypeError(
            f"objective must be a Landscape, a landscape name or a callable f(x) -> scalar, "
            f"got {type(objective).__name__}"
        )
    name = getattr(objective, "__qualname__", type(objective).__name__)
    return _Problem(objective, None if dim is None else int(dim), name, bounds, None, ())


@dataclasses.dataclass(frozen=True)
class _Static:
    """Everything that changes the traced per-seed program."""

    steps: int
    record_every: int | None
    init_mode: str  # uniform | ball | gaussian | array | callable
    escape_on: bool
    margin_on: bool
    hit_on: bool
    unroll: int


_RAW_KEY_FIELDS = ("rng_key", "key", "prng_key")


def fold_key_leaves(state, i, bits):
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


def sample_start(mode: str, key, a, b, d: int):
    """One start of ``mode`` from ``key``: ``uniform`` in the box ``[a, b]``, ``ball``
    uniform in the ball of radius ``b[0]`` around ``a``, ``gaussian`` ``a + b * N(0, I)``."""
    if mode == "uniform":
        return jax.random.uniform(key, (d,), jnp.float32, a, b)
    if mode == "gaussian":
        return a + b * jax.random.normal(key, (d,), jnp.float32)
    k_dir, k_rad = jax.random.split(key)
    z = jax.random.normal(k_dir, (d,), jnp.float32)
    z = z / jnp.maximum(jnp.linalg.norm(z), 1e-30)
    rho = b[0] * jax.random.uniform(k_rad, (), jnp.float32) ** (1.0 / d)
    return a + rho * z


def _landscape_trial(f: Callable, st: _Static, init_fn: Callable | None, d: int):
    """The per-seed program of a landscape sweep (see the module docstring)."""

    def run(opt, key, i, row, packed):
        vg = jax.value_and_grad(f)
        fns = steps_mod.objective_fns(f)
        inputs = {"init_a": packed[:d], "init_b": packed[d:2 * d],
                  "center": packed[2 * d:3 * d], "radius": packed[3 * d],
                  "margin": packed[3 * d + 1], "f_center": packed[3 * d + 2],
                  "hit_thr": packed[3 * d + 3]}
        k_start = jax.random.fold_in(key, 0)
        if st.init_mode in _INIT_MODES:
            x0 = sample_start(st.init_mode, k_start, inputs["init_a"], inputs["init_b"], d)
        elif st.init_mode == "callable":
            x0 = jnp.reshape(jnp.asarray(init_fn(k_start, 1), jnp.float32), (d,))
        else:
            x0 = row
        state = opt.init(x0)
        bits = jax.random.bits(jax.random.fold_in(key, 1), dtype=jnp.uint32)
        state = fold_key_leaves(state, i, bits)
        center, radius = inputs["center"], inputs["radius"]

        def update_metrics(m, x, v, g, t):
            esc, hit, bad = m
            tf = t.astype(jnp.float32)
            if st.escape_on:
                now = jnp.sum(jnp.square(x - center)) > radius * radius
                if st.margin_on:
                    now = now | (v < inputs["f_center"] - inputs["margin"])
                esc = jnp.where(jnp.isinf(esc) & now, tf, esc)
            if st.hit_on:
                hit = jnp.where(jnp.isinf(hit) & (v <= inputs["hit_thr"]), tf, hit)
            bad = bad | ~jnp.isfinite(v) | ~jnp.all(jnp.isfinite(g)) | ~jnp.all(jnp.isfinite(x))
            return esc, hit, bad

        def step(carry, _):
            x, s, v, g, t, m = carry
            u, s = steps_mod.update(opt, g, s, x, value=v, fns=fns)
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
        carry = (x0, state, v0, g0, t0, update_metrics((inf, inf, jnp.array(False)), x0, v0,
                                                       g0, t0))
        out = {}
        if st.record_every:
            k = st.record_every
            nb, rem = divmod(st.steps, k)

            def block(c, _):
                c = run_n(c, k)
                return c, c[0]

            carry, xs = jax.lax.scan(block, carry, None, length=nb)
            out["trajectories"] = jnp.concatenate([x0[None], xs], axis=0)
            carry = run_n(carry, rem)
        else:
            carry = run_n(carry, st.steps)
        _, _, v, g, _, (esc, hit, bad) = carry
        out["metrics"] = {
            "escape_step": esc,
            "hit_step": hit,
            "final_value": v.astype(jnp.float32),
            "final_grad_norm": jnp.linalg.norm(g).astype(jnp.float32),
            "nonfinite": bad,
        }
        return out

    return run


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


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
        static combination). A ``GradientTransformationExtraArgs`` gets the lab's extra
        arguments (:mod:`jaxopt_lab.compare.steps`): ``value``, ``value_fn``, ``grad_fn``,
        ``hvp_fn``.
      num_seeds: starts per optimizer and hyperparameter combination (>= 1).
      steps: optimizer steps per trajectory (>= 1).
      key: ``jax.random.key(seed)`` (an int seed is accepted). See the module docstring.
      init: ``"uniform"`` (in bounds), ``("ball", center, radius)`` (uniform in the ball),
        ``("gaussian", center, scale)``, an array of starts ``[num_seeds, d]``, or a
        callable ``init(key, n) -> [n, d]`` (called as ``init(fold_in(fold_in(key, i), 0),
        1)`` for seed ``i``, so it must be traceable). Default: uniform in the ball of radius
        1e-3 around ``escape_center`` when that is given, else uniform in bounds.
      escape_radius: a trajectory has escaped at the first step ``t`` (0..steps) with
        ``||x_t - escape_center|| > escape_radius``.
      escape_center: the saddle (shape ``(d,)``). Default when ``escape_radius`` is given: the
        first critical point of kind ``"saddle"`` in ``objective.critical_points``.
      escape_margin: if given, a step also counts as escaped when
        ``f(x_t) < f(escape_center) - escape_margin`` (fell below the saddle's level).
      target: hit when ``f(x_t) <= f_min + target`` (``target > 0``; ``f_min`` from the
        landscape); for an objective without ``f_min``, ``target`` is an absolute
        threshold. Default 1e-3 when ``f_min`` is known; otherwise no hit metric (``inf``).
      record_every: if given, keep ``x_t`` for ``t = 0, k, 2k, ... <= steps``. The bytes
        this takes are estimated first; more than half of this machine's memory is refused.
      chunk_size: seeds per compiled call and per resumable chunk file (default: 65536 on
        CPU, 2**20 on accelerators, capped at ``num_seeds`` and so that one chunk's state or
        recorded trajectories stay under 2**27 elements). Results do not depend on it.
      out_dir: run directory (``records.csv``, ``meta.json``, chunk files); an interrupted
        run with the same arguments resumes from its finished chunks.
      progress: show a tqdm bar over chunks.
      dim: dimension of ``x`` for a plain callable objective.
      bounds: ``(lower, upper)`` for a plain callable objective (needed for uniform starts).
      unroll: ``lax.scan`` unroll factor (performance only; part of the cache key).
      batch_size: seeds per vectorised micro-batch inside a chunk (performance only).
        Default: about 2048 elements (hparams x seeds x d) on CPU, which keeps the working
        set in cache; the whole per-device chunk on accelerators.

    Returns:
      :class:`Results` with ``metrics`` :data:`METRIC_NAMES` per optimizer. Misses (never
      escaped / never hit) are ``+inf``, never the step budget. ``meta`` holds
      ``compile_seconds`` (0.0 on a full cache hit) apart from ``run_seconds``.

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
    num_seeds = check_int("num_seeds", num_seeds, minimum=1)
    steps = check_int("steps", steps, minimum=1)
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
        if np.ndim(target) != 0:
            raise ValueError(f"target must be a scalar, got shape {np.shape(target)}")
        check_finite("target", np.asarray(target, float))
        target = float(target)
    key = as_key("key", key)
    problem = _as_problem(objective, dim, bounds)
    if target is not None and problem.f_min is not None and not target > 0:
        raise ValueError(f"target must be > 0 (a tolerance above f_min={problem.f_min:g}), "
                         f"got {target:g}")
    families = make_families(optimizers)

    # dimension
    d = problem.dim
    cands = []
    if isinstance(init, np.ndarray | jax.Array) or (
        isinstance(init, list) and init and isinstance(init[0], list | tuple | np.ndarray)
    ):
        init = np.asarray(init, np.float32)
        if init.ndim != 2:
            raise ValueError(f"init array must have shape (num_seeds, d), got {init.shape}")
        cands.append(init.shape[1])
    if isinstance(init, tuple) and len(init) == 3 and init[0] in ("gaussian", "ball"):
        cands.append(np.size(init[1]))
    if escape_center is not None:
        escape_center = np.asarray(escape_center, np.float32)
        cands.append(escape_center.shape[-1] if escape_center.ndim else 1)
    if problem.bounds is not None:
        lo, _ = (np.asarray(b, np.float32).reshape(-1) for b in problem.bounds)
        cands.append(lo.shape[0])
    if d is None:
        if not cands:
            raise ValueError("dim must be given for a plain callable objective without init "
                             "array, escape_center or bounds")
        d = int(cands[0])
    d = check_int("dim", d, minimum=1)

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
    if init is None:
        if escape_center is not None:
            init = ("ball", escape_center, ESCAPE_INIT_SCALE)
        elif problem.bounds is not None:
            init = "uniform"
        else:
            raise ValueError("init is None and the objective has no bounds: give init "
                             "(array, callable, 'uniform' with bounds, ('ball', c, r) or "
                             "('gaussian', c, s))")
    if isinstance(init, str):
        if init != "uniform":
            raise ValueError(f"init must be 'uniform', ('ball', center, radius), ('gaussian', "
                             f"center, scale), an array or a callable; got {init!r}")
        if problem.bounds is None:
            raise ValueError("init='uniform' needs bounds (a Landscape or bounds=(lo, hi))")
        init_mode = "uniform"
        init_a, init_b = problem.bounds
        init_desc = {"mode": "uniform", "lower": init_a.tolist(), "upper": init_b.tolist()}
    elif isinstance(init, tuple) and len(init) == 3 and init[0] in ("gaussian", "ball"):
        init_mode = init[0]
        init_a = np.asarray(init[1], np.float32).reshape(-1)
        check_vector("init center", init_a, d)
        scale = np.asarray(init[2], np.float32)
        if init_mode == "ball":
            if scale.ndim != 0:
                raise ValueError(f"init radius must be a scalar, got shape {scale.shape}")
            check_positive("init radius", scale, allow_zero=True)
        else:
            check_positive("init scale", scale, allow_zero=True)
        init_b = np.broadcast_to(scale, (d,)).astype(np.float32)
        init_desc = {"mode": init_mode, "center": init_a.tolist(), "scale": init_b.tolist()}
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
        raise TypeError(f"init must be 'uniform', ('ball', center, radius), ('gaussian', "
                        f"center, scale), an array or a callable, got {init!r}")
    if init_a is None:
        init_a = np.zeros(d, np.float32)
        init_b = np.zeros(d, np.float32)

    # objective check (abstract evaluation only, once per objective and dimension)
    refs: list = []
    f_fp = _fingerprint.fingerprint_memo(problem.f, refs)
    init_fp = None if init_fn is None else _fingerprint.fingerprint_memo(init_fn, refs)
    if (f_fp, d) not in _CHECKED_OBJECTIVES:
        try:
            out = jax.eval_shape(problem.f, jax.ShapeDtypeStruct((d,), jnp.float32))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"objective failed on an input of shape ({d},): "
                             f"{type(e).__name__}: {e}") from None
        if getattr(out, "shape", None) != ():
            raise ValueError(f"objective must return a scalar for x of shape ({d},), got {out}")
        _CHECKED_OBJECTIVES[(f_fp, d)] = tuple(refs)
        while len(_CHECKED_OBJECTIVES) > 256:
            _CHECKED_OBJECTIVES.pop(next(iter(_CHECKED_OBJECTIVES)))

    if target is None and problem.f_min is not None:
        target = _DEFAULT_TARGET
    hit_on = target is not None
    hit_thr = (target + (problem.f_min or 0.0)) if hit_on else None
    center = escape_center if escape_on else np.zeros(d, np.float32)
    f_center = float(problem.f(jnp.asarray(center))) if escape_on and escape_margin else 0.0

    # memory: refuse what cannot fit before compiling anything
    total_h = sum(len(f.hparams) for f in families)
    n_rec = (steps // record_every + 1) if record_every else 0
    traj_bytes = 4 * total_h * num_seeds * n_rec * d
    if traj_bytes > _memory_bytes() // 2:
        raise ValueError(
            f"record_every={record_every}: the trajectories of {total_h} configurations x "
            f"{num_seeds} seeds x {n_rec} records x {d} dims would take "
            f"{traj_bytes / 2**30:.1f} GiB, more than half of this machine's "
            f"{_memory_bytes() / 2**30:.1f} GiB; record less often or run fewer seeds")

    plat = devices.platform()
    h_max = max(len(f.hparams) for f in families)
    if chunk_size is None:
        per_seed = h_max * d * (n_rec or 1)
        chunk_size = min(num_seeds, core.DEFAULT_CHUNK.get(plat, 1 << 20),
                         max(1, _MAX_CHUNK_ELEMENTS // per_seed))
    chunk_size = min(chunk_size, num_seeds)
    if batch_size is None and plat in _MICRO_ELEMENTS:
        batch_size = max(1, _MICRO_ELEMENTS[plat] // (h_max * d))

    st = _Static(steps, record_every, init_mode, escape_on, escape_margin is not None, hit_on,
                 unroll)
    # one packed vector (one transfer per call): init_a, init_b, center [d each], radius,
    # margin, f_center, hit threshold
    inputs = np.concatenate([
        np.asarray(init_a, np.float32), np.asarray(init_b, np.float32),
        np.asarray(center, np.float32),
        np.asarray([escape_radius or 1.0, escape_margin or 0.0, f_center,
                    hit_thr if hit_on else 0.0], np.float32)])
    trial = core.Trial(_landscape_trial(problem.f, st, init_fn, d), inputs=inputs,
                       seed_inputs=x0_all, static=st,
                       identity=("landscape", f_fp, init_fp, d), refs=tuple(refs))
    config = {
        "objective": problem.name,
        # identifies the objective across processes (the resumable store's key): computed
        # only when there is a run directory
        "objective_fingerprint": (_fingerprint.stable_hash(problem.f)
                                  if out_dir is not None else None),
        "dim": d,
        "optimizers": {fam.name: fam.stable_desc() if out_dir is not None else fam.desc
                       for fam in families},
        "num_seeds": num_seeds,
        "steps": steps,
        "key": key_words(key).tolist(),
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
    sw = core.sweep(trial, families, num_seeds=num_seeds, key=key, chunk_size=chunk_size,
                    batch_size=batch_size, out_dir=out_dir, config=config, progress=progress)
    names = [f.name for f in sw.families]
    metrics = {n: {m: sw.outputs[n]["metrics"][m] for m in METRIC_NAMES} for n in names}
    trajs = {n: sw.outputs[n]["trajectories"] for n in names} if record_every else {}
    traj_steps = float(num_seeds) * steps * total_h
    results = Results(
        optimizers=names,
        hparams={f.name: [dict(h) for h in f.hparams] for f in sw.families},
        metrics=metrics,
        trajectories=trajs,
        meta=core.sweep_meta(config, key, sw, t_start, trajectory_steps=traj_steps),
    )
    results.meta["nonfinite_seeds"] = {n: int(np.sum(metrics[n]["nonfinite"])) for n in names}
    if out_dir is not None:
        results.save(out_dir)
    return results


__all__ = ["ESCAPE_INIT_SCALE", "fold_key_leaves", "run", "sample_start"]

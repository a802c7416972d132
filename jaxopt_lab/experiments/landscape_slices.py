"""Loss-landscape slices of a network: 1-D linear interpolations (Goodfellow et al. 2015)
and 2-D filter-normalized planes with the training trajectory on its PCA plane (Li et al.
2018).

A tanh MLP (64 -> hidden -> 10, cross-entropy) is trained on digits by minibatch SGD from
``num_seeds`` seeds in ONE program of the sweep core (the same :class:`compare.Trial` as
:mod:`jaxopt_lab.experiments.spectra`: the parameters at every checkpoint step are kept
in the scan's carry, so no second training loop exists). Then, per seed, on the loss over
``loss_examples`` training examples:

* **init -> final**: ``L((1 - a) theta_0 + a theta_T)`` for ``a`` in ``[0, 1]``
  (``interp_points`` values, endpoints exact), and its *barrier*: the maximum over ``a``
  of the loss minus the straight line between the endpoint losses (0 or below: no bump
  on the path, as Goodfellow et al. observed for most networks);
* **between two solutions**: the same between the finals of seed ``s`` and seed
  ``s + 1`` (cyclic; needs two seeds, else NaN);
* **random plane**: ``L(theta_T + a d1 + b d2)`` with ``d1, d2`` Gaussian directions
  drawn from a key (``fold_in(key, 20_000 + s)``) and filter-normalized (Li et al. 2018:
  every output unit's filter rescaled to the norm of the same filter of ``theta_T``;
  biases zeroed, as that paper does), on a ``resolution`` x ``resolution`` grid over
  ``[-span, span]^2`` evaluated by :func:`jaxopt_lab.curvature.landscape_slice` in
  vmapped chunks (``rows_per_batch`` rows per chunk; the same ``loss`` object is
  passed every time, so the plane compiles once per run), bit-reproducible for the key;
* **trajectory plane**: the top-2 PCA directions of ``theta_t - theta_T`` over the
  checkpoints, the trajectory projected on them, and the loss over the same plane
  (a margin of ``pca_margin`` around the projected path), the contour the path is drawn
  on.

References:
  Goodfellow, Vinyals, Saxe, 2015. Qualitatively characterizing neural network
  optimization problems. ICLR.
  Li, Xu, Taylor, Studer, Goldstein, 2018. Visualizing the loss landscape of neural nets.
  NeurIPS.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab import compare, curvature, data
from jaxopt_lab._validation import check_int
from jaxopt_lab.experiments import _common, _network, spectra

VARIANT = "sgd"


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the landscape-slices experiment.

    Attributes:
      num_seeds: training runs (one program); the between-solutions path needs >= 2.
      seed: base seed.
      hidden: hidden width of the tanh MLP.
      steps: SGD steps.
      batch_size: SGD minibatch.
      learning_rate: SGD step size (finite, > 0).
      trajectory_points: checkpoints kept for the trajectory (evenly spaced, 0 and
        ``steps`` included; >= 3).
      loss_examples: training examples the landscape loss is measured on.
      interp_points: values of ``a`` on each 1-D path (>= 2).
      resolution: grid points per axis of the 2-D planes (>= 2).
      span: half-width of the random plane in units of the filter-normalized directions.
      pca_margin: the trajectory plane covers ``(1 + pca_margin)`` x the path's extent.
      rows_per_batch: grid rows per vmapped chunk (0 = one row at a time).
      fast_compile: XLA optimization level 0 on CPU for the training program.
    """

    num_seeds: int = 2
    seed: int = 0
    hidden: int = 12
    steps: int = 200
    batch_size: int = 64
    learning_rate: float = 0.2
    trajectory_points: int = 11
    loss_examples: int = 512
    interp_points: int = 21
    resolution: int = 15
    span: float = 1.0
    pca_margin: float = 0.3
    rows_per_batch: int = 5
    fast_compile: bool = True

    def __post_init__(self):
        for name in ("num_seeds", "hidden", "steps", "batch_size", "loss_examples"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_int("trajectory_points", self.trajectory_points, minimum=3)
        check_int("interp_points", self.interp_points, minimum=2)
        check_int("resolution", self.resolution, minimum=2)
        check_int("rows_per_batch", self.rows_per_batch, minimum=0)
        _network.check_learning_rates("learning_rate", self.learning_rate)
        for name in ("span", "pca_margin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(
                    float(v)) or float(v) < (0.0 if name == "pca_margin" else 1e-12):
                raise ValueError(f"{name} must be a finite number "
                                 f"{'>= 0' if name == 'pca_margin' else '> 0'}, got {v!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds: 2 seeds, 200 steps, 15 x 15 planes."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """4 seeds, 3000 steps, 51 x 51 planes on 1024 examples."""
        return cls(num_seeds=4, hidden=32, steps=3000, trajectory_points=31,
                   loss_examples=1024, interp_points=51, resolution=51, rows_per_batch=17,
                   fast_compile=False)

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """The trajectory's steps: evenly spaced, 0 and ``steps`` included, deduplicated."""
        pts = np.unique(np.round(np.linspace(0, self.steps, self.trajectory_points)))
        return tuple(int(s) for s in pts)


def _spectra_config(c: Config) -> spectra.Config:
    """The spectra experiment's settings for the same training run (its Trial is reused)."""
    return spectra.Config(num_seeds=c.num_seeds, seed=c.seed, hidden=c.hidden,
                          steps=c.steps, batch_size=c.batch_size,
                          learning_rate=c.learning_rate, checkpoints=c.checkpoints,
                          fast_compile=c.fast_compile)


def model_and_loss(c: Config):
    """``(model, loss(params, x, y))`` of the tanh MLP (cross-entropy)."""
    model, _, _, loss = spectra.model_and_loss(_spectra_config(c))
    return model, loss


@functools.lru_cache(maxsize=8)
def _interp_program(loss):
    def curve(p0, p1, alphas, x, y):
        def at(a):
            p = jax.tree.map(lambda u, v: (1 - a) * u + a * v, p0, p1)
            return loss(p, x, y)

        return jax.vmap(at)(alphas)

    return jax.jit(curve)


def interpolate(loss: Any, p0: Any, p1: Any, x: Any, y: Any, num: int) -> tuple:
    """``(alphas, L((1 - a) p0 + a p1))`` for ``num`` values of ``a`` in ``[0, 1]`` (one
    vmapped program; at ``a = 0`` and ``a = 1`` the parameters are ``p0`` and ``p1``
    exactly)."""
    num = check_int("interp_points", num, minimum=2)
    alphas = np.linspace(0.0, 1.0, num, dtype=np.float32)
    vals = _interp_program(loss)(p0, p1, jnp.asarray(alphas), x, y)
    return alphas, np.asarray(vals)


def barrier(alphas: np.ndarray, values: np.ndarray) -> float:
    """``max_a [L(a) - ((1 - a) L(0) + a L(1))]`` (Goodfellow et al. 2015's bump)."""
    a, v = np.asarray(alphas, np.float64), np.asarray(values, np.float64)
    return float(np.max(v - ((1 - a) * v[0] + a * v[-1])))


def pca_plane(trajectory: Any, final: Any) -> tuple:
    """Top-2 PCA directions of ``theta_t - theta_T`` (rows of ``trajectory``, flat).

    Returns ``(d1, d2, coords [n, 2], explained [2])``: unit directions (flat, float32),
    the projection of every checkpoint on them, and the share of the variance of the
    (uncentered, as Li et al.) differences each explains.
    """
    m = np.asarray(trajectory, np.float64) - np.asarray(final, np.float64)[None]
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    d = vt[:2]
    # deterministic sign: the initial point has a non-negative coordinate on each axis
    sign = np.where(m[0] @ d.T < 0, -1.0, 1.0)
    d = d * sign[:, None]
    total = float(np.sum(s ** 2))
    explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return d[0].astype(np.float32), d[1].astype(np.float32), m @ d.T, explained


def plane(c: Config, loss: Any, params: Any, x: Any, y: Any, key: Any
          ) -> curvature.LandscapeSlice:
    """The random filter-normalized plane around ``params`` (vmapped chunks)."""
    return curvature.landscape_slice(
        loss, params, None, None, x, y, span=c.span,
        resolution=c.resolution, key=key, normalize="filter",
        rows_per_batch=c.rows_per_batch)


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Train, slice the landscape of every seed, summarize.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``, one variant
      ``"sgd"`` with one row ``{"learning_rate": lr}``; metrics ``[1, num_seeds]``):
      ``init_loss``, ``final_loss``, ``barrier_init_final``, ``barrier_between`` (seed
      ``s`` to ``s + 1``), ``plane_center``, ``plane_min``, ``plane_max``,
      ``plane_rise`` (mean over the plane of the loss minus its centre), ``pca_explained``
      (variance share of the top-2 PCA directions), ``nonfinite``. Curves ``[1, S, ...]``:
      ``interp_init_final``, ``interp_between``, ``plane``, ``pca_plane``,
      ``trajectory`` (PCA coordinates of the checkpoints), ``pca_axes`` (the two axes'
      grid coordinates), ``loss`` (training loss per step). ``summary``: medians with
      bootstrap intervals, the grids, ``nonfinite_seeds``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a landscape_slices.Config, got "
                        f"{type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    d = data.load_digits()
    inputs = {"train": (jnp.asarray(d["train"][0]), jnp.asarray(d["train"][1]))}
    key = jax.random.key(c.seed)
    options = {"xla_backend_optimization_level": 0} if (
        c.fast_compile and jax.default_backend() == "cpu") else None
    sc = _spectra_config(c)
    sw = compare.sweep(spectra.trial(sc, inputs),
                       {VARIANT: (optax.sgd, {"learning_rate": [c.learning_rate]})},
                       num_seeds=c.num_seeds, key=key, compiler_options=options)
    out = sw.outputs[VARIANT]
    bad = np.asarray(out["nonfinite"], bool)[0]
    x = inputs["train"][0][: c.loss_examples]
    y = inputs["train"][1][: c.loss_examples]
    _, loss = model_and_loss(c)
    S, A, R, n_ck = c.num_seeds, c.interp_points, c.resolution, len(c.checkpoints)
    ckpt = jax.tree.map(lambda a: np.asarray(a)[0], out["checkpoints"])  # [S, n_ck, ...]

    def params_at(s, j):
        return jax.tree.map(lambda a: a[s, j], ckpt)

    names = ("init_loss", "final_loss", "barrier_init_final", "barrier_between",
             "plane_center", "plane_min", "plane_max", "plane_rise", "pca_explained")
    m = {n: np.full((1, S), np.nan) for n in names}
    cur = {"interp_init_final": np.full((1, S, A), np.nan),
           "interp_between": np.full((1, S, A), np.nan),
           "plane": np.full((1, S, R, R), np.nan),
           "pca_plane": np.full((1, S, R, R), np.nan),
           "trajectory": np.full((1, S, n_ck, 2), np.nan),
           "pca_axes": np.full((1, S, 2, R), np.nan)}
    t_slice = time.perf_counter()
    alphas = np.linspace(0.0, 1.0, A, dtype=np.float32)
    coef = np.linspace(-1.0, 1.0, R, dtype=np.float32) * c.span
    for s in range(S):
        if bad[s]:
            continue
        p0, pT = params_at(s, 0), params_at(s, n_ck - 1)
        _, v = interpolate(loss, p0, pT, x, y, A)
        cur["interp_init_final"][0, s] = v
        m["init_loss"][0, s], m["final_loss"][0, s] = v[0], v[-1]
        m["barrier_init_final"][0, s] = barrier(alphas, v)
        s2 = (s + 1) % S
        if S >= 2 and not bad[s2]:
            _, v2 = interpolate(loss, pT, params_at(s2, n_ck - 1), x, y, A)
            cur["interp_between"][0, s] = v2
            m["barrier_between"][0, s] = barrier(alphas, v2)
        sl = plane(c, loss, pT, x, y, jax.random.fold_in(key, 20_000 + s))
        vals = np.asarray(sl.values, np.float64)
        cur["plane"][0, s] = vals
        center = vals[R // 2, R // 2] if R % 2 else np.nan
        m["plane_center"][0, s] = center
        m["plane_min"][0, s], m["plane_max"][0, s] = np.min(vals), np.max(vals)
        m["plane_rise"][0, s] = np.mean(vals) - v[-1]
        # trajectory plane: PCA of the checkpoints around the final point
        flat_T, unravel = ravel_pytree(pT)
        traj = np.stack([np.asarray(ravel_pytree(params_at(s, j))[0]) for j in range(n_ck)])
        e1, e2, coords, explained = pca_plane(traj, np.asarray(flat_T))
        m["pca_explained"][0, s] = float(np.sum(explained))
        cur["trajectory"][0, s] = coords
        ext = (1.0 + c.pca_margin) * np.maximum(np.max(np.abs(coords), axis=0), 1e-6)
        sl2 = curvature.landscape_slice(
            loss, pT, unravel(jnp.asarray(e1 * ext[0])),
            unravel(jnp.asarray(e2 * ext[1])), x, y, span=1.0, resolution=R,
            rows_per_batch=c.rows_per_batch)
        cur["pca_plane"][0, s] = np.asarray(sl2.values)
        cur["pca_axes"][0, s] = np.stack([np.asarray(sl2.alphas) * ext[0],
                                          np.asarray(sl2.betas) * ext[1]])
    slice_seconds = time.perf_counter() - t_slice
    m["nonfinite"] = bad[None].copy() | ~np.isfinite(m["final_loss"])
    bad_all = m["nonfinite"][0]
    summary: dict[str, Any] = {
        "checkpoints": list(c.checkpoints),
        "alphas": alphas.tolist(),
        "plane_coefficients": coef.tolist(),
        "slice_seconds": slice_seconds,
    }
    for i, n in enumerate(names):
        summary[n] = _common.median_ci(m[n][0], jax.random.fold_in(key, 30_000 + i))
    summary["nonfinite_seeds"] = {VARIANT: _common.seeds_where(bad_all)}
    curves = {k: v.astype(np.float32) for k, v in cur.items()}
    curves["loss"] = np.asarray(out["loss"], np.float32)
    result = compare.Results(
        optimizers=[VARIANT],
        hparams={VARIANT: [{"learning_rate": c.learning_rate}]},
        metrics={VARIANT: m},
        curves={VARIANT: curves},
        summary=compare.store.jsonable(summary),
        group_column="variant",
        meta=compare.store.make_meta(
            c, key=key, compile_seconds=sw.compile_seconds, run_seconds=sw.run_seconds,
            slice_seconds=slice_seconds, total_seconds=time.perf_counter() - t_start,
            experiment="landscape_slices"),
    )
    if out_dir is not None:
        from jaxopt_lab.plot import network

        result.save(out_dir, figures={"landscape_slices": network.landscape_slices(result)})
    return result

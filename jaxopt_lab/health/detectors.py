"""Stateless failure detectors: pure functions of arrays, usable inside ``jit``.

Every function here is a pure ``jax.numpy`` computation (no host callbacks, no
Python control flow on array values), so it can run inside ``lax.scan`` at every
training step or on a ``vmap``-ped batch of runs. The stateful, windowed
detectors (plateau, oscillation, geometric gradient growth, overfitting) live in
:mod:`jaxopt_lab.health.monitor`, which builds on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int, check_positive

_TINY = 1e-30


# --------------------------------------------------------------------------- pytree norms
def _key_str(k: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def leaf_paths(tree: Any) -> list[str]:
    """Return the ``"a/b/c"`` path string of every leaf of ``tree``, in flatten order.

    Args:
      tree: any pytree (dicts, lists, NamedTuples, ``nnx.State``).

    Returns:
      List of strings, one per leaf, e.g. ``["layers/0/kernel", "layers/0/bias"]``.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return ["/".join(_key_str(k) for k in path) for path, _ in flat]


def layer_groups(tree: Any, layer_order: Sequence[str] | None = None) -> list[list[int]]:
    """Group the leaves of ``tree`` into layers (host-side, static).

    By default a layer is the set of leaves that share a parent path (for
    ``{"l0": {"kernel", "bias"}, "l1": {...}}`` the layers are ``l0`` and ``l1``),
    ordered by their first leaf in pytree flatten order. Flatten order sorts dict
    keys, so for names like ``"layer_10"`` vs ``"layer_2"`` pass ``layer_order``:
    a sequence of path prefixes (``"layers/0"``, ``"out"``), one per layer, in
    input-to-output order. A leaf belongs to the first prefix that matches whole
    path components.

    Args:
      tree: pytree of parameters or gradients.
      layer_order: optional path prefixes, one per layer, first (input) to last.

    Returns:
      List of lists of leaf indices (into ``jax.tree_util.tree_leaves(tree)``).

    Raises:
      ValueError: if a prefix in ``layer_order`` matches no leaf, or ``tree`` is empty.
    """
    paths = leaf_paths(tree)
    if not paths:
        raise ValueError("tree must have at least one leaf, got an empty pytree")
    if layer_order is None:
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            parent = p.rsplit("/", 1)[0] if "/" in p else p
            groups.setdefault(parent, []).append(i)
        return list(groups.values())
    if isinstance(layer_order, str) or not all(isinstance(s, str) for s in layer_order):
        raise TypeError(f"layer_order must be a sequence of path strings, got {layer_order!r}")
    out: list[list[int]] = [[] for _ in layer_order]
    for i, p in enumerate(paths):
        for j, prefix in enumerate(layer_order):
            prefix = prefix.strip("/")
            if p == prefix or p.startswith(prefix + "/"):
                out[j].append(i)
                break
    for j, idx in enumerate(out):
        if not idx:
            raise ValueError(
                f"layer_order entry {layer_order[j]!r} matches no leaf; leaf paths are {paths}"
            )
    return out


def _leaf_sq_norms(tree: Any) -> list[jax.Array]:
    return [
        jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in jax.tree_util.tree_leaves(tree)
    ]


def global_norm(tree: Any) -> jax.Array:
    """Euclidean norm of all leaves of ``tree`` together (float32 scalar)."""
    sq = _leaf_sq_norms(tree)
    return jnp.sqrt(sum(sq[1:], sq[0])) if sq else jnp.float32(0.0)


def layer_norms(tree: Any, layer_order: Sequence[str] | None = None) -> jax.Array:
    """Per-layer Euclidean norms of ``tree``, first (input) layer first.

    Args:
      tree: pytree of gradients (or parameters).
      layer_order: optional path prefixes defining the layers; see :func:`layer_groups`.

    Returns:
      float32 array ``[num_layers]``.
    """
    groups = layer_groups(tree, layer_order)
    sq = _leaf_sq_norms(tree)
    return jnp.sqrt(jnp.stack([sum(sq[i] for i in g) for g in groups]))


def all_finite(tree: Any) -> jax.Array:
    """True (bool scalar) iff every inexact leaf of ``tree`` is free of NaN and Inf."""
    oks = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    if not oks:
        return jnp.bool_(True)
    return jnp.all(jnp.stack(oks))


# --------------------------------------------------------------------------- gradient flow
def vanishing_ratio(layer_grad_norms: jax.Array) -> jax.Array:
    """Ratio of the first layer's gradient norm to the last layer's.

    Args:
      layer_grad_norms: ``[num_layers]`` per-layer gradient norms (first = input side).

    Returns:
      float32 scalar ``norms[0] / norms[-1]``; NaN when the last norm is zero or
      not finite (no gradient reaches the output layer: nothing to compare).

    References:
      Hochreiter, 1991, "Untersuchungen zu dynamischen neuronalen Netzen".
      Glorot & Bengio, 2010, "Understanding the difficulty of training deep
      feedforward neural networks".
    """
    first, last = layer_grad_norms[0], layer_grad_norms[-1]
    ok = jnp.isfinite(last) & (last > _TINY)
    return jnp.where(ok, first / jnp.where(ok, last, 1.0), jnp.nan)


# --------------------------------------------------------------------------- dead units
def dead_fraction(activations: Any, *, atol: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """Fraction of units whose activation is zero on every example of the batch.

    A unit is one index of the LAST axis of an activation array; all other axes
    (batch, time, space) are reduced over. For ReLU-family activations a unit
    that outputs 0 on the whole batch receives no gradient ("dead ReLU").

    Args:
      activations: array or pytree (list/tuple/dict) of post-activation arrays
        ``[batch, ..., units]`` of ReLU-family layers.
      atol: a unit counts as zero where ``|a| <= atol``.

    Returns:
      ``(fraction, per_layer)``: float32 scalar fraction of dead units over all
      layers together, and float32 ``[num_layers]`` per-layer fractions.

    References:
      Lu, Shin, Su & Karniadakis, 2019, "Dying ReLU and initialization: theory
      and numerical examples".
    """
    check_positive("atol", atol, allow_zero=True)
    leaves = jax.tree_util.tree_leaves(activations)
    if not leaves:
        raise ValueError("activations must contain at least one array, got an empty pytree")
    dead_counts, sizes = [], []
    for a in leaves:
        a = jnp.asarray(a)
        if a.ndim < 2:
            raise ValueError(
                f"activations must have shape [batch, ..., units] (ndim >= 2), got {a.shape}"
            )
        dead = jnp.all(jnp.abs(a) <= atol, axis=tuple(range(a.ndim - 1)))
        dead_counts.append(jnp.sum(dead).astype(jnp.float32))
        sizes.append(a.shape[-1])
    counts = jnp.stack(dead_counts)
    per_layer = counts / jnp.asarray(sizes, jnp.float32)
    return jnp.sum(counts) / float(sum(sizes)), per_layer


# --------------------------------------------------------------------------- across seeds
class SeedSpread(NamedTuple):
    """Spread of final losses across seeds (all float32 scalars except ``flag``)."""

    median: jax.Array
    iqr: jax.Array  # 75th - 25th percentile of the finite losses
    std: jax.Array
    min: jax.Array
    max: jax.Array
    relative_iqr: jax.Array  # iqr / |median|
    nonfinite_fraction: jax.Array
    flag: jax.Array  # bool: relative_iqr > threshold or any seed non-finite


def seed_sensitivity(final_losses: jax.Array, *, threshold: float = 0.5) -> SeedSpread:
    """Sensitivity to initialization: spread of the final losses of a vmapped batch of runs.

    Args:
      final_losses: ``[num_seeds]`` final losses, one per seed (e.g. the output
        of ``vmap(train)(keys)``). Non-finite entries count as failed seeds and
        are left out of the order statistics.
      threshold: flag when ``iqr / |median| > threshold`` (or any seed is non-finite).

    Returns:
      :class:`SeedSpread`.

    Example:
      >>> s = seed_sensitivity(jnp.array([0.1, 0.1, 0.1, 0.1, 2.0]))  # one outlier
      >>> bool(s.flag)
      False
    """
    check_positive("threshold", threshold)
    x = jnp.asarray(final_losses, jnp.float32)
    if x.ndim != 1 or x.shape[0] < 2:
        raise ValueError(f"final_losses must have shape [num_seeds >= 2], got {x.shape}")
    return _seed_sensitivity(x, jnp.float32(threshold))


@jax.jit
def _seed_sensitivity(x: jax.Array, threshold: jax.Array) -> SeedSpread:
    finite = jnp.isfinite(x)
    xf = jnp.where(finite, x, jnp.nan)
    q25, med, q75 = jnp.nanpercentile(xf, jnp.array([25.0, 50.0, 75.0]))
    iqr = q75 - q25
    rel = iqr / jnp.maximum(jnp.abs(med), 1e-12)
    nonfinite = 1.0 - jnp.mean(finite.astype(jnp.float32))
    return SeedSpread(
        median=med,
        iqr=iqr,
        std=jnp.nanstd(xf),
        min=jnp.nanmin(xf),
        max=jnp.nanmax(xf),
        relative_iqr=rel,
        nonfinite_fraction=nonfinite,
        flag=(rel > threshold) | (nonfinite > 0),
    )


# --------------------------------------------------------------------------- flag onsets
def persistent_onset(flags: Any, steps: Any) -> np.ndarray:
    """The step from which a flag stayed raised to the end of a curve.

    Args:
      flags: ``[..., T]`` booleans (a detector evaluated at ``T`` points of training).
      steps: ``[T]`` the training step of each point.

    Returns:
      ``[...]`` float64: ``steps[t]`` for the first ``t`` with ``flags[..., t:]`` all
      raised, ``inf`` where the last point is not flagged (the condition did not persist).
      A flag raised from the first point on returns ``steps[0]``.
    """
    f = np.asarray(flags, bool)
    steps = np.asarray(steps, np.float64).reshape(-1)
    if f.ndim < 1 or f.shape[-1] != steps.size or steps.size == 0:
        raise ValueError(f"flags must have shape [..., T] with T = len(steps) = {steps.size}, "
                         f"got {f.shape}")
    streak = np.flip(np.cumprod(np.flip(f, -1), -1), -1).astype(bool)
    first = np.argmax(streak, -1)
    return np.where(f[..., -1], steps[first], np.inf)


# --------------------------------------------------------------------------- GAN hook
class ModeCoverage(NamedTuple):
    """Mode-collapse statistics of a batch of generated samples."""

    modes_covered: jax.Array  # int32: modes with >= min_count high-quality samples
    high_quality_fraction: jax.Array  # float32: samples within num_std stds of their mode
    counts: jax.Array  # int32 [num_modes]: high-quality samples per mode
    reverse_kl: jax.Array  # float32: KL(sample mode histogram || uniform over modes)
    flag: jax.Array  # bool: modes_covered < min_coverage * num_modes


def mode_coverage(
    samples: jax.Array,
    centers: jax.Array,
    *,
    std: float,
    num_std: float = 3.0,
    min_count: int = 1,
    min_coverage: float = 1.0,
) -> ModeCoverage:
    """Mode-collapse hook: how many known modes the generated samples cover.

    Each sample is assigned to its nearest mode center; it is *high quality* if
    it lies within ``num_std * std`` of that center. A mode is *covered* if it
    received at least ``min_count`` high-quality samples. This is the protocol
    used on the 2-D ring/grid mixtures of Metz et al. (2017) and Srivastava et
    al. (2017).

    Args:
      samples: ``[n, d]`` generated samples.
      centers: ``[k, d]`` mode centers of the target mixture.
      std: standard deviation of each mixture component (> 0).
      num_std: high-quality radius in units of ``std``.
      min_count: high-quality samples a mode needs to count as covered.
      min_coverage: flag mode collapse when fewer than ``min_coverage * k`` modes are covered.

    Returns:
      :class:`ModeCoverage`.

    References:
      Metz, Poole, Pfau & Sohl-Dickstein, 2017, "Unrolled Generative Adversarial Networks".
      Srivastava, Valkov, Russell, Gutmann & Sutton, 2017, "VEEGAN: Reducing Mode
      Collapse in GANs using Implicit Variational Learning".
    """
    check_positive("std", std)
    check_positive("num_std", num_std)
    check_positive("min_coverage", min_coverage)
    check_int("min_count", min_count)
    samples, centers = jnp.asarray(samples), jnp.asarray(centers)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(
            "samples and centers must have shapes [n, d] and [k, d] with the same d, got "
            f"{samples.shape} and {centers.shape}"
        )
    return _mode_coverage(samples, centers, std, num_std, min_count, min_coverage)


@jax.jit
def _mode_coverage(samples, centers, std, num_std, min_count, min_coverage) -> ModeCoverage:
    d2 = jnp.sum((samples[:, None, :] - centers[None, :, :]) ** 2, axis=-1)  # [n, k]
    nearest = jnp.argmin(d2, axis=1)
    good = jnp.min(d2, axis=1) <= (num_std * std) ** 2
    k = centers.shape[0]
    counts = jnp.zeros((k,), jnp.int32).at[nearest].add(good.astype(jnp.int32))
    covered = jnp.sum(counts >= min_count).astype(jnp.int32)
    p = counts / jnp.maximum(jnp.sum(counts), 1)
    kl = jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0) * k), 0.0))
    return ModeCoverage(
        modes_covered=covered,
        high_quality_fraction=jnp.mean(good.astype(jnp.float32)),
        counts=counts,
        reverse_kl=kl,
        flag=covered < min_coverage * k,
    )


# --------------------------------------------------------------------------- continual
class ForgettingReport(NamedTuple):
    """Continual-learning metrics of an accuracy matrix."""

    average_accuracy: jax.Array  # mean_j R[T-1, j]
    backward_transfer: jax.Array  # mean_{j<T-1} R[T-1, j] - R[j, j]
    average_forgetting: jax.Array  # mean_{j<T-1} max_{l<T-1} R[l, j] - R[T-1, j]
    per_task_forgetting: jax.Array  # [T-1]
    flag: jax.Array  # bool: average_forgetting > threshold


def forgetting(accuracy: jax.Array, *, threshold: float = 0.1) -> ForgettingReport:
    """Forgetting hook: accuracy drop on earlier tasks from an accuracy matrix.

    Args:
      accuracy: ``[T, T]`` matrix ``R[i, j]`` = test accuracy on task ``j`` after
        training on tasks ``0..i`` (entries above the diagonal are ignored by
        the forgetting measures).
      threshold: flag when the average forgetting exceeds this value.

    Returns:
      :class:`ForgettingReport`. ``backward_transfer`` is negative when learning
      later tasks hurt earlier ones.

    Example:
      >>> r = forgetting(jnp.array([[0.9, 0.1], [0.5, 0.95]]))
      >>> round(float(r.backward_transfer), 2)
      -0.4

    References:
      Lopez-Paz & Ranzato, 2017, "Gradient Episodic Memory for Continual Learning".
      Chaudhry, Dokania, Ajanthan & Torr, 2018, "Riemannian Walk for Incremental
      Learning: Understanding Forgetting and Intransigence".
    """
    check_positive("threshold", threshold, allow_zero=True)
    r = jnp.asarray(accuracy, jnp.float32)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise ValueError(f"accuracy must be a square [T, T] matrix with T >= 2, got {r.shape}")
    return _forgetting(r, jnp.float32(threshold))


@jax.jit
def _forgetting(r: jax.Array, threshold: jax.Array) -> ForgettingReport:
    t = r.shape[0]
    final = r[t - 1]
    bwt = jnp.mean(final[: t - 1] - jnp.diagonal(r)[: t - 1])
    best_before = jnp.max(
        r[: t - 1, : t - 1],
        axis=0,
        initial=-jnp.inf,
        where=jnp.tril(jnp.ones((t - 1, t - 1), bool)),
    )
    per_task = best_before - final[: t - 1]
    avg_f = jnp.mean(per_task)
    return ForgettingReport(
        average_accuracy=jnp.mean(final),
        backward_transfer=bwt,
        average_forgetting=avg_f,
        per_task_forgetting=per_task,
        flag=avg_f > threshold,
    )

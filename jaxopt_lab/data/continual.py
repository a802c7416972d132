"""Continual-learning task builders: permuted tasks and split (class-pair) tasks."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int


def _check_split(data) -> None:
    if not (isinstance(data, dict) and {"train", "test"} <= set(data)):
        raise ValueError("data must be a dict(train=(x, y), test=(x, y)) as returned by loaders")
    for part in ("train", "test"):
        if not (isinstance(data[part], tuple | list) and len(data[part]) == 2):
            raise ValueError(f"data[{part!r}] must be a pair (x, y), got {type(data[part])}")


def permutations(num_tasks: int, dim: int, *, seed: int = 0,
                 identity_first: bool = True) -> np.ndarray:
    """Fixed-seed feature permutations, one per task.

    Args:
      num_tasks: number of tasks.
      dim: number of input features.
      seed: seed of ``numpy.random.default_rng``; permutation ``t`` depends only on
        ``seed``, ``dim``, ``identity_first`` and ``t`` (not on ``num_tasks``).
      identity_first: task 0 uses the identity (the unpermuted data, as in Goodfellow
        et al. 2013 / Kirkpatrick et al. 2017); else every task is a random permutation.

    Returns:
      int32 numpy array ``[num_tasks, dim]``, each row a permutation of ``0..dim-1``.
    """
    num_tasks = check_int("num_tasks", num_tasks)
    dim = check_int("dim", dim)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    perms = []
    for t in range(num_tasks):
        if t == 0 and identity_first:
            perms.append(np.arange(dim))
        else:
            perms.append(rng.permutation(dim))
    return np.stack(perms).astype(np.int32)


def permuted_tasks(data: dict, num_tasks: int, *, seed: int = 0,
                   identity_first: bool = True) -> list[dict]:
    """Build permuted-input tasks (e.g. permuted MNIST) from one dataset.

    Every task applies one fixed permutation (see :func:`permutations`) to the flattened
    input features of both its train and test inputs; labels are unchanged.

    Args:
      data: ``dict(train=(x, y), test=(x, y))`` with x ``[n, ...]`` (any feature shape;
        features are permuted in flattened order and reshaped back).
      num_tasks: number of tasks.
      seed: permutation seed.
      identity_first: task 0 is the unpermuted data.

    Returns:
      list of ``num_tasks`` dicts ``dict(train=(x, y), test=(x, y))`` with the input shapes
      and dtypes of ``data``.

    References:
      Goodfellow et al. (2013), An Empirical Investigation of Catastrophic Forgetting in
      Gradient-Based Neural Networks. Kirkpatrick et al. (2017), Overcoming catastrophic
      forgetting in neural networks.
    """
    _check_split(data)
    x_train = jnp.asarray(data["train"][0])
    dim = int(np.prod(x_train.shape[1:]))
    perms = permutations(num_tasks, dim, seed=seed, identity_first=identity_first)

    def permute(x, perm):
        x = jnp.asarray(x)
        flat = x.reshape(x.shape[0], -1)
        return flat[:, perm].reshape(x.shape)

    tasks = []
    for perm in perms:
        tasks.append({part: (permute(data[part][0], perm), jnp.asarray(data[part][1]))
                      for part in ("train", "test")})
    return tasks


def split_tasks(
    data: dict,
    class_groups: Sequence[Sequence[int]] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)),
    *,
    relabel: bool = False,
) -> list[dict]:
    """Build split tasks (e.g. split MNIST): task t keeps the examples of ``class_groups[t]``.

    Args:
      data: ``dict(train=(x, y), test=(x, y))`` with integer labels y ``[n]``.
      class_groups: disjoint groups of class labels, one group per task (default the
        five pairs 0/1, 2/3, 4/5, 6/7, 8/9).
      relabel: if True, labels become the position within the group (0/1 for pairs:
        "task-incremental", multi-head use); if False the original labels are kept
        ("class-incremental", one shared head).

    Returns:
      list of dicts ``dict(train=(x, y), test=(x, y))``; examples keep their original order,
      so task sizes differ (tasks cannot be stacked).

    References:
      Zenke, Poole & Ganguli (2017), Continual Learning Through Synaptic Intelligence.
    """
    _check_split(data)
    groups = [tuple(int(c) for c in g) for g in class_groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError(f"class_groups must be non-empty groups of labels, got {class_groups!r}")
    flat = [c for g in groups for c in g]
    if len(set(flat)) != len(flat):
        raise ValueError(f"class_groups must be disjoint, got {class_groups!r}")
    present = set(np.unique(np.asarray(data["train"][1])).tolist())
    absent = sorted(set(flat) - present)
    if absent:
        raise ValueError(f"class_groups names labels {absent} absent from the training data")
    tasks = []
    for g in groups:
        task = {}
        for part in ("train", "test"):
            x, y = data[part]
            y_np = np.asarray(y)
            idx = np.flatnonzero(np.isin(y_np, g))
            y_new = y_np[idx]
            if relabel:
                garr = np.asarray(g)
                order = np.argsort(garr)
                y_new = order[np.searchsorted(garr[order], y_new)]
            task[part] = (jnp.asarray(x)[idx], jnp.asarray(y_new, jnp.int32))
        tasks.append(task)
    return tasks

"""The three continual-learning scenarios, and a task list stacked into fixed-shape arrays.

van de Ven & Tolias (2019), "Three scenarios for continual learning":

* ``"task"`` (task-incremental): the task's identity is given; a multi-head output,
  realised here as ONE output layer whose logits are masked to the task's classes (the
  classes of other tasks do not compete). Tasks that share labels (permuted tasks) get
  their own block of outputs (label + ``t * classes``).
* ``"domain"`` (domain-incremental): no task identity, the same label space for every
  task: a label becomes its rank within the task's classes (split pairs: 0/1), and only
  the first ``max classes per task`` outputs are used.
* ``"class"`` (class-incremental): no task identity, one shared head over every class
  seen (split tasks keep their original labels; permuted tasks get new classes
  ``label + t * classes``).

Every scenario of one task list uses the same output width (the largest any scenario
needs), so the three scenarios are one compiled program with different data (masks,
labels). :func:`make_sequence` stacks the tasks (padded to the largest task) into a
:class:`TaskSequence` of arrays, the ``inputs`` of a task-sequence trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_choice, check_int

__all__ = ["SCENARIOS", "TaskSequence", "make_sequence", "subsample"]

SCENARIOS: tuple[str, ...] = ("task", "domain", "class")


class TaskSequence(NamedTuple):
    """A task list as fixed-shape arrays (``T`` tasks, padded to ``N`` / ``M`` rows).

    Attributes:
      x_train: ``[T, N, *example]`` float32 (rows ``>= n_train[t]`` are padding).
      y_train: ``[T, N]`` int32 labels in this scenario's label space.
      n_train: ``[T]`` int32 valid training rows per task.
      x_test: ``[T, M, *example]`` float32.
      y_test: ``[T, M]`` int32.
      test_valid: ``[T, M]`` bool.
      head_mask: ``[T, W]`` bool, the outputs task ``t`` may use (``W`` = output width).
    """

    x_train: jax.Array
    y_train: jax.Array
    n_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    test_valid: jax.Array
    head_mask: jax.Array

    @property
    def num_tasks(self) -> int:
        return int(self.n_train.shape[0])

    @property
    def num_outputs(self) -> int:
        return int(self.head_mask.shape[1])

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[2:])


def _check_tasks(tasks) -> list[dict]:
    if not isinstance(tasks, list | tuple) or len(tasks) < 2:
        raise ValueError(f"tasks must be a list of at least 2 dict(train=(x, y), test=(x, y)), "
                         f"got {type(tasks).__name__}"
                         + (f" of length {len(tasks)}" if isinstance(tasks, list | tuple) else ""))
    shapes = set()
    for t, task in enumerate(tasks):
        if not (isinstance(task, dict) and {"train", "test"} <= set(task)):
            raise ValueError(f"tasks[{t}] must be a dict(train=(x, y), test=(x, y))")
        for part in ("train", "test"):
            x, y = task[part]
            if np.shape(x)[0] != np.shape(y)[0] or np.shape(x)[0] == 0:
                raise ValueError(f"tasks[{t}][{part!r}] must hold as many labels as inputs "
                                 f"(>= 1), got x {np.shape(x)} and y {np.shape(y)}")
            shapes.add(tuple(np.shape(x)[1:]))
    if len(shapes) != 1:
        raise ValueError(f"tasks must all have the same input shape, got {sorted(shapes)}")
    return list(tasks)


def subsample(tasks: Sequence[dict], *, max_train: int | None = None,
              max_test: int | None = None, seed: int = 0) -> list[dict]:
    """Keep at most ``max_train`` / ``max_test`` examples per task (a fixed-seed subset)."""
    tasks = _check_tasks(tasks)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    out = []
    for task in tasks:
        new = {}
        for part, cap in (("train", max_train), ("test", max_test)):
            x, y = task[part]
            n = np.shape(x)[0]
            if cap is not None and n > check_int(f"max_{part}", cap):
                idx = np.sort(rng.choice(n, cap, replace=False))
                x, y = np.asarray(x)[idx], np.asarray(y)[idx]
            new[part] = (x, y)
        out.append(new)
    return out


def make_sequence(tasks: Sequence[dict], scenario: str) -> TaskSequence:
    """Stack ``tasks`` (from :func:`jaxopt_lab.data.split_tasks` with original labels or
    :func:`jaxopt_lab.data.permuted_tasks`) into a :class:`TaskSequence` for ``scenario``.

    Args:
      tasks: list of ``dict(train=(x, y), test=(x, y))`` with integer labels, all inputs
        of one shape.
      scenario: ``"task"``, ``"domain"`` or ``"class"`` (see the module docstring).

    Returns:
      :class:`TaskSequence` (numpy arrays).

    Raises:
      ValueError: naming ``scenario`` (unknown) or ``tasks`` (fewer than 2, different
        input shapes, empty parts, a test label the task's training set lacks).

    References:
      van de Ven & Tolias (2019), "Three scenarios for continual learning".
      Hsu, Liu, Ramasamy & Kira (2018), "Re-evaluating Continual Learning Scenarios".
    """
    check_choice("scenario", scenario, SCENARIOS)
    tasks = _check_tasks(tasks)
    n_tasks = len(tasks)
    classes = []
    for t, task in enumerate(tasks):
        c = np.unique(np.asarray(task["train"][1]))
        extra = sorted(set(np.unique(np.asarray(task["test"][1])).tolist()) - set(c.tolist()))
        if extra:
            raise ValueError(f"tasks[{t}]: test labels {extra} are absent from its training set")
        if c.min() < 0:
            raise ValueError(f"tasks[{t}]: labels must be >= 0, got {int(c.min())}")
        classes.append(c.astype(np.int64))
    flat = np.concatenate(classes)
    disjoint = len(np.unique(flat)) == len(flat)
    k_max = max(len(c) for c in classes)
    n_labels = int(flat.max()) + 1
    width = n_labels if disjoint else n_tasks * n_labels  # the largest any scenario needs

    def relabel(t, y):
        y = np.asarray(y).astype(np.int64)
        if scenario == "domain":
            return np.searchsorted(classes[t], y)
        return y if disjoint else y + t * n_labels

    mask = np.zeros((n_tasks, width), bool)
    for t in range(n_tasks):
        if scenario == "task":
            mask[t, relabel(t, classes[t])] = True
        elif scenario == "domain":
            mask[t, :k_max] = True
        else:
            mask[t, :] = True

    def stack(part):
        xs = [np.asarray(task[part][0], np.float32) for task in tasks]
        ys = [relabel(t, task[part][1]) for t, task in enumerate(tasks)]
        big = max(len(y) for y in ys)
        x_out = np.zeros((n_tasks, big, *xs[0].shape[1:]), np.float32)
        y_out = np.zeros((n_tasks, big), np.int32)
        valid = np.zeros((n_tasks, big), bool)
        for t, (x, y) in enumerate(zip(xs, ys, strict=True)):
            x_out[t, :len(y)], y_out[t, :len(y)], valid[t, :len(y)] = x, y, True
        return x_out, y_out, valid

    xtr, ytr, vtr = stack("train")
    xte, yte, vte = stack("test")
    return TaskSequence(x_train=xtr, y_train=ytr, n_train=vtr.sum(1).astype(np.int32),
                        x_test=xte, y_test=yte, test_valid=vte, head_mask=mask)


def as_jax(seq: TaskSequence) -> TaskSequence:
    """The sequence's arrays as JAX arrays."""
    return TaskSequence(*(jnp.asarray(a) for a in seq))

"""Continual-learning methods as compositions of transforms, models and data pieces.

=====================  ==============================================================
method                 composition
=====================  ==============================================================
``naive``              the base optimizer alone (fine-tuning task after task)
``joint``              the base optimizer on batches drawn from every task so far (the
                       upper bound; it keeps all data: ``data`` side)
``ewc``                ``chain(transforms.ewc(mode="separate"), base)``, empirical
                       Fisher (``transforms.fisher_diagonal``) folded in after each task
                       with ``transforms.ewc_consolidate`` (Kirkpatrick et al. 2017)
``ewc_exact``          the same with the exact (model-sampled) Fisher
``online_ewc``         ``mode="online"``: one running Fisher (Schwarz et al. 2018)
``online_ewc_exact``   online, exact Fisher
``gem``                ``chain(transforms.gem(), base)`` with per-task episodic memories
                       (``data.memory.episodic_sample``; Lopez-Paz & Ranzato 2017)
``agem``               ``chain(transforms.agem(), base)``, reference gradient on a batch
                       from the memories (Chaudhry et al. 2019)
``replay``             experience replay from a reservoir buffer
                       (``data.memory.reservoir_*``; Chaudhry et al. 2019, "On Tiny
                       Episodic Memories in Continual Learning")
``lwf``                ``models.distill.distillation_loss`` to the model before the task
                       on the old tasks' outputs (Li & Hoiem 2016)
``progressive``        ``models.progressive``: a frozen column per task with laterals
                       (Rusu et al. 2016)
=====================  ==============================================================
"""

from __future__ import annotations

import dataclasses

import numpy as np
import optax

from jaxopt_lab import transforms
from jaxopt_lab._validation import check_choice, check_int, check_positive

__all__ = ["METHODS", "Method", "Settings", "get_method", "memory_bytes", "optimizer_entry"]

_SPECS = {
    "naive": ("naive", "separate", "empirical"),
    "joint": ("joint", "separate", "empirical"),
    "ewc": ("ewc", "separate", "empirical"),
    "ewc_exact": ("ewc", "separate", "exact"),
    "online_ewc": ("ewc", "online", "empirical"),
    "online_ewc_exact": ("ewc", "online", "exact"),
    "gem": ("gem", "separate", "empirical"),
    "agem": ("agem", "separate", "empirical"),
    "replay": ("replay", "separate", "empirical"),
    "lwf": ("lwf", "separate", "empirical"),
    "progressive": ("progressive", "separate", "empirical"),
}

#: Method names, in table order.
METHODS: tuple[str, ...] = tuple(_SPECS)


@dataclasses.dataclass(frozen=True)
class Method:
    """A method: ``name`` (one of :data:`METHODS`), its ``kind`` and, for EWC, the
    ``ewc_mode`` (``"separate"``/``"online"``) and ``fisher`` (``"empirical"``/``"exact"``)."""

    name: str
    kind: str
    ewc_mode: str = "separate"
    fisher: str = "empirical"


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name`` (ValueError naming ``method`` otherwise)."""
    check_choice("method", name, METHODS)
    kind, mode, fisher = _SPECS[name]
    return Method(name, kind, mode, fisher)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every method of a task-sequence run shares (static: part of the program).

    Attributes:
      hidden: hidden widths of the MLP (and of each progressive column).
      activation: hidden activation.
      steps_per_task: optimizer steps on each task.
      batch_size: examples per step from the current task.
      optimizer: base optimizer, ``"sgd"`` or ``"adam"``.
      memory_per_task: GEM / A-GEM episodic memories per task.
      memory_batch: A-GEM reference batch drawn from the memories.
      replay_capacity: reservoir slots of experience replay.
      replay_batch: replayed examples per step.
      fisher_samples: examples of a finished task used for its Fisher diagonal.
      ewc_decay: ``gamma`` of online EWC.
      lwf_alpha: weight of the distillation loss.
      lwf_temperature: distillation temperature.
      eval_every: steps between evaluations of every task's test accuracy (curves).
    """

    hidden: tuple[int, ...] = (100, 100)
    activation: str = "relu"
    steps_per_task: int = 200
    batch_size: int = 32
    optimizer: str = "adam"
    memory_per_task: int = 50
    memory_batch: int = 64
    replay_capacity: int = 250
    replay_batch: int = 32
    fisher_samples: int = 200
    ewc_decay: float = 1.0
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    eval_every: int = 50

    def __post_init__(self):
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty tuple of ints, got {self.hidden!r}")
        for h in self.hidden:
            check_int("hidden", h)
        for name in ("steps_per_task", "batch_size", "memory_per_task", "memory_batch",
                     "replay_capacity", "replay_batch", "fisher_samples", "eval_every"):
            check_int(name, getattr(self, name))
        check_choice("optimizer", self.optimizer, ("sgd", "adam"))
        if self.steps_per_task % self.eval_every:
            raise ValueError(f"eval_every={self.eval_every} must divide steps_per_task="
                             f"{self.steps_per_task}")
        if not 0.0 <= self.ewc_decay <= 1.0:
            raise ValueError(f"ewc_decay must be in [0, 1], got {self.ewc_decay!r}")
        check_positive("lwf_alpha", self.lwf_alpha, allow_zero=True)
        check_positive("lwf_temperature", self.lwf_temperature)


def _base(optimizer: str):
    return optax.adam if optimizer == "adam" else optax.sgd


def optimizer_entry(method: Method, settings: Settings, num_tasks: int, *,
                    learning_rates, strengths=None):
    """``(factory, grid)`` of ``method`` for :func:`jaxopt_lab.compare.sweep`: the
    learning rates (and EWC strengths) are traced float grids (one program)."""
    base = _base(settings.optimizer)
    grid = {"learning_rate": [float(v) for v in learning_rates]}
    for v in grid["learning_rate"]:
        check_positive("learning_rates", v)
    if method.kind == "ewc":
        if strengths is None or len(strengths) == 0:
            raise ValueError("strengths must list at least one EWC strength")
        for v in strengths:
            check_positive("strengths", v, allow_zero=True)
        grid["strength"] = [float(v) for v in strengths]
        mode, decay = method.ewc_mode, settings.ewc_decay

        def factory(learning_rate, strength):
            return optax.chain(transforms.ewc(strength=strength, mode=mode, decay=decay,
                                              max_tasks=num_tasks), base(learning_rate))
    elif method.kind == "gem":
        def factory(learning_rate):
            return optax.chain(transforms.gem(), base(learning_rate))
    elif method.kind == "agem":
        def factory(learning_rate):
            return optax.chain(transforms.agem(), base(learning_rate))
    else:
        def factory(learning_rate):
            return base(learning_rate)
    return factory, grid


def memory_bytes(method: Method, settings: Settings, *, num_tasks: int, n_train,
                 example_bytes: int, network_params, itemsize: int = 4) -> np.ndarray:
    """Bytes each method holds after each task ``t`` (``[T]``): its network plus the state
    it keeps for continual learning (Fisher and anchors, memories, data, a teacher copy).

    Args:
      method: the :class:`Method`.
      settings: the run's :class:`Settings`.
      num_tasks: ``T``.
      n_train: ``[T]`` training examples per task (joint keeps all data seen).
      example_bytes: bytes of one stored example (input + int32 label + int32 task id).
      network_params: ``network_params(t) -> int``: parameters in use after task ``t``
        (progressive networks grow; others are constant).
      itemsize: bytes per parameter.

    Returns:
      int64 ``[T]``.
    """
    out = np.zeros(num_tasks, np.int64)
    n_train = np.asarray(n_train)
    for t in range(num_tasks):
        p = int(network_params(t))
        extra = 0
        if method.kind == "ewc":
            held = 1 if method.ewc_mode == "online" else min(t + 1, num_tasks)
            extra = 2 * held * p * itemsize
        elif method.kind in ("gem", "agem"):
            extra = (t + 1) * settings.memory_per_task * example_bytes
        elif method.kind == "replay":
            seen = (t + 1) * settings.steps_per_task * settings.batch_size
            extra = min(seen, settings.replay_capacity) * example_bytes
        elif method.kind == "joint":
            extra = int(n_train[: t + 1].sum()) * example_bytes
        elif method.kind == "lwf":
            extra = p * itemsize
        out[t] = p * itemsize + extra
    return out

"""A whole task sequence for one method as ONE compiled program: a front-end of the sweep
core (:func:`jaxopt_lab.compare.sweep`).

:func:`sequence_trial` builds the :class:`~jaxopt_lab.compare.Trial` whose ``run`` trains
ONE seed through every task (``lax.scan`` over tasks, each a ``lax.scan`` over steps in
chunks of ``eval_every``) with key-driven batches; the core vmaps it over seeds and the
traced hyperparameter grid (learning rate, EWC strength), chunks, shards and caches the
compile. Per seed ``key_i`` (from the core): parameters from ``fold_in(key_i, 0)``;
batches of step ``s`` of task ``t`` from ``fold_in(fold_in(fold_in(key_i, 1), t), s)``;
episodic memories from ``fold_in(key_i, 2)``, Fisher samples from ``fold_in(key_i, 3)``.
Every method sees the same initialization and task batches for a seed (paired).

Outputs per seed: ``R [T, T]`` (``R[i, j]`` = test accuracy on task ``j`` after training
task ``i``, evaluated inside the program), ``r0 [T]`` (accuracy of the initial network,
the forward-transfer baseline), ``curve [T * steps / eval_every, T]`` (every task's test
accuracy over training), ``nonfinite`` (a loss went NaN/Inf).

The optimizer of every step is updated through :func:`jaxopt_lab.compare.steps.update`;
GEM's ``memory_grads`` and A-GEM's ``ref_grads`` travel with the other extra arguments.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import compare, transforms
from jaxopt_lab._validation import as_key, check_int
from jaxopt_lab.continual.methods import Method, Settings, memory_bytes, optimizer_entry
from jaxopt_lab.continual.scenarios import TaskSequence
from jaxopt_lab.data import memory as mem_lib
from jaxopt_lab.models import mlp
from jaxopt_lab.models.distill import distillation_loss, masked_logits
from jaxopt_lab.models.progressive import progressive

__all__ = ["check_sequence", "network", "run_sequence", "sequence_trial"]


@functools.lru_cache(maxsize=64)
def network(in_dim: int, hidden: tuple, out_dim: int, activation: str,
            columns: int | None = None):
    """The network of a run, built once per shape (a stable identity for the compile
    cache): an MLP, or a progressive network of ``columns`` columns."""
    if columns is not None:
        return progressive(in_dim, hidden, out_dim, columns, activation=activation)
    return mlp(in_dim, hidden, out_dim, activation=activation)


def check_sequence(seq: Any, method: Method, settings: Settings) -> TaskSequence:
    """Host-side checks of a run's inputs (ValueError naming the argument)."""
    if not isinstance(seq, TaskSequence):
        raise TypeError(f"seq must be a continual.TaskSequence, got {type(seq).__name__}")
    if not isinstance(method, Method):
        raise TypeError(f"method must be a continual.Method, got {type(method).__name__}")
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be a continual.Settings, got {type(settings).__name__}")
    if seq.x_train.ndim != 3:
        raise ValueError(f"seq inputs must be flat vectors [T, N, features], got "
                         f"{seq.x_train.shape}")
    n = np.asarray(seq.n_train)
    if method.kind in ("gem", "agem"):
        mem_lib.check_memory_size("memory_per_task", settings.memory_per_task, n)
    if method.kind == "ewc":
        mem_lib.check_memory_size("fisher_samples", settings.fisher_samples, n)
    return seq


def _accuracy(logits, y, valid):
    hit = (jnp.argmax(logits, -1) == y) & valid
    return jnp.sum(hit) / jnp.maximum(jnp.sum(valid), 1)


def sequence_trial(seq: TaskSequence, method: Method, settings: Settings) -> compare.Trial:
    """The :class:`~jaxopt_lab.compare.Trial` of ``method`` on ``seq`` (its arrays are the
    trial's ``inputs``: never closed over). See the module docstring for its outputs."""
    check_sequence(seq, method, settings)
    s = settings
    n_tasks, in_dim, width = seq.num_tasks, seq.x_train.shape[2], seq.num_outputs
    prog = method.kind == "progressive"
    net = network(in_dim, s.hidden, width, s.activation, n_tasks if prog else None)
    kind = method.kind
    n_evals = s.steps_per_task // s.eval_every
    m = s.memory_per_task

    def forward(params, x, column):
        return net.apply(params, x, column) if prog else net.apply(params, x)

    def run(opt, key, index, row, seq: TaskSequence):
        del index, row
        heads = seq.head_mask
        # the task identity is known (multi-head) when the tasks' output masks differ
        known_task = jnp.any(heads != heads[:1])

        def loss(params, batch, column):
            logits = masked_logits(forward(params, batch["x"], column), heads[batch["task"]])
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
            total = jnp.sum(batch["w"] * ce)
            if "teacher" in batch:
                total = total + batch["kd_w"] * distillation_loss(
                    forward(params, batch["x"], column), batch["teacher"], batch["kd_mask"],
                    temperature=s.lwf_temperature)
            return total

        def evaluate(params, t):
            def one(j):
                col = jnp.where(known_task, j, t)
                logits = masked_logits(forward(params, seq.x_test[j], col), heads[j])
                return _accuracy(logits, seq.y_test[j], seq.test_valid[j])
            return jax.vmap(one)(jnp.arange(n_tasks))

        def draw(k, t, size):
            idx = jax.random.randint(k, (size,), 0, seq.n_train[t])
            return seq.x_train[t, idx], seq.y_train[t, idx]

        k_data = jax.random.fold_in(key, 1)
        params = net.init(jax.random.fold_in(key, 0))
        state = opt.init(params)
        if kind in ("gem", "agem"):
            memory = (jnp.zeros((n_tasks, m, in_dim), jnp.float32),
                      jnp.zeros((n_tasks, m), jnp.int32))
        elif kind == "replay":
            memory = mem_lib.reservoir_init(s.replay_capacity, (in_dim,))
        else:
            memory = jnp.zeros(())
        r0 = evaluate(params, 0)

        def task_body(carry, t):
            params, state, memory = carry
            teacher = params
            k_t = jax.random.fold_in(k_data, t)
            kd_mask = jnp.any(heads & (jnp.arange(n_tasks) < t)[:, None], axis=0)

            def step(carry, i):
                params, state, memory = carry
                ks = jax.random.fold_in(k_t, i)
                b = s.batch_size
                if kind == "joint":
                    u = jax.random.randint(jax.random.fold_in(ks, 1), (b,), 0, t + 1)
                    r = jax.random.uniform(jax.random.fold_in(ks, 0), (b,))
                    idx = jnp.minimum((r * seq.n_train[u]).astype(jnp.int32),
                                      seq.n_train[u] - 1)
                    x, y, task = seq.x_train[u, idx], seq.y_train[u, idx], u
                else:
                    x, y = draw(jax.random.fold_in(ks, 0), t, b)
                    task = jnp.full((b,), t, jnp.int32)
                w = jnp.full((b,), 1.0 / b)
                batch = {"x": x, "y": y, "task": task, "w": w}
                if kind == "replay":
                    rb = s.replay_batch
                    rx, ry, rt, filled = mem_lib.reservoir_sample(
                        memory, jax.random.fold_in(ks, 2), rb)
                    batch = {"x": jnp.concatenate([x, rx]), "y": jnp.concatenate([y, ry]),
                             "task": jnp.concatenate([task, rt]),
                             "w": jnp.concatenate([w, jnp.full((rb,), filled / rb)])}
                if kind == "lwf":
                    batch["teacher"] = forward(teacher, x, t)
                    batch["kd_mask"] = kd_mask
                    batch["kd_w"] = jnp.where(t > 0, s.lwf_alpha, 0.0)

                def loss_t(p, bt):
                    return loss(p, bt, t)

                value, grads = jax.value_and_grad(loss_t)(params, batch)
                fns = compare.steps.loss_fns(loss_t, batch)
                if kind == "gem":
                    mx, my = memory

                    def mem_grad(j, rows):
                        mb = {"x": mx[j], "y": my[j], "task": jnp.full((m,), j, jnp.int32),
                              "w": jnp.full((m,), 1.0 / m)}
                        g = jax.grad(loss)(params, mb, j)
                        return jax.tree.map(lambda r, a: r.at[j].set(a), rows, g)

                    # only the t finished tasks' memories (t is the same for every seed:
                    # an unbatched loop bound); rows of unseen tasks stay zero
                    zeros = jax.tree.map(lambda a: jnp.zeros((n_tasks, *a.shape), a.dtype),
                                         params)
                    fns["memory_grads"] = jax.lax.fori_loop(0, t, mem_grad, zeros)
                elif kind == "agem":
                    mx, my = memory
                    kr = jax.random.fold_in(ks, 3)
                    mb_size = s.memory_batch
                    u = jax.random.randint(jax.random.fold_in(kr, 0), (mb_size,), 0,
                                           jnp.maximum(t, 1))
                    idx = jax.random.randint(jax.random.fold_in(kr, 1), (mb_size,), 0, m)
                    rbatch = {"x": mx[u, idx], "y": my[u, idx], "task": u,
                              "w": jnp.full((mb_size,), 1.0 / mb_size)}
                    g_ref = jax.grad(loss_t)(params, rbatch)
                    fns["ref_grads"] = jax.tree.map(lambda a: jnp.where(t > 0, a, 0.0), g_ref)
                if prog:
                    mask = net.trainable(params, t)
                    grads = jax.tree.map(jnp.multiply, grads, mask)
                updates, state = compare.steps.update(opt, grads, state, params, value=value,
                                                      fns=fns)
                if prog:  # frozen columns stay exactly as they are (whatever the optimizer)
                    updates = jax.tree.map(jnp.multiply, updates, mask)
                params = optax.apply_updates(params, updates)
                if kind == "replay":
                    memory = mem_lib.reservoir_add(memory, jax.random.fold_in(ks, 4), x, y, t)
                return (params, state, memory), ~jnp.isfinite(value)

            def chunk(carry, c):
                carry, bad = jax.lax.scan(step, carry, c * s.eval_every + jnp.arange(s.eval_every))
                return carry, (evaluate(carry[0], t), jnp.any(bad))

            (params, state, memory), (curve, bad) = jax.lax.scan(
                chunk, (params, state, memory), jnp.arange(n_evals))
            if kind == "ewc":
                kf = jax.random.fold_in(jax.random.fold_in(key, 3), t)
                fx, fy = mem_lib.episodic_sample(kf, seq.x_train[t], seq.y_train[t],
                                                 seq.n_train[t], s.fisher_samples)
                tid = jnp.full((s.fisher_samples,), t, jnp.int32)
                if method.fisher == "exact":
                    fisher = transforms.fisher_diagonal(
                        None, params, {"x": fx, "task": tid}, kind="exact", chunk_size=50,
                        log_prob_fn=lambda p, b: masked_logits(forward(p, b["x"], t),
                                                               heads[b["task"]]))
                else:
                    fisher = transforms.fisher_diagonal(
                        lambda p, b: loss(p, b, t), params,
                        {"x": fx, "y": fy, "task": tid, "w": jnp.ones_like(fy, jnp.float32)},
                        kind="empirical", chunk_size=50)
                state = transforms.ewc_consolidate(state, fisher, params)
            if kind in ("gem", "agem"):
                kf = jax.random.fold_in(jax.random.fold_in(key, 2), t)
                ex, ey = mem_lib.episodic_sample(kf, seq.x_train[t], seq.y_train[t],
                                                 seq.n_train[t], m)
                memory = (memory[0].at[t].set(ex), memory[1].at[t].set(ey))
            return (params, state, memory), (evaluate(params, t), curve, jnp.any(bad))

        _, (r, curves, bad) = jax.lax.scan(task_body, (params, state, memory),
                                           jnp.arange(n_tasks))
        return {"R": r, "r0": r0, "curve": curves.reshape(n_tasks * n_evals, n_tasks),
                "nonfinite": jnp.any(bad)}

    static = ("continual", method, settings, seq.x_train.shape, seq.num_outputs)
    return compare.Trial(run, inputs=seq, static=static)


def run_sequence(seq: TaskSequence, method: Method, settings: Settings, *, num_seeds: int,
                 key: Any, learning_rates=(1e-3,), strengths=None,
                 fast_compile: bool = False) -> dict:
    """Train ``method`` through ``seq`` for every seed and hyperparameter in the sweep core.

    Args:
      seq: the :class:`~jaxopt_lab.continual.TaskSequence` (one scenario).
      method: :func:`~jaxopt_lab.continual.get_method`'s result.
      settings: :class:`~jaxopt_lab.continual.Settings`.
      num_seeds: seeds (seed ``i`` = ``fold_in(key, i)``, by the core).
      key: ``jax.random.key`` or an int seed.
      learning_rates: traced grid of learning rates.
      strengths: traced grid of EWC strengths (EWC methods only).
      fast_compile: XLA optimization level 0 on CPU (short runs).

    Returns:
      ``dict(hparams=[dicts], R [H, S, T, T], r0 [H, S, T], curve [H, S, n, T],
      nonfinite [H, S], memory_bytes [T], compile_seconds, run_seconds)``.
    """
    num_seeds = check_int("num_seeds", num_seeds)
    key = as_key("key", key)
    trial = sequence_trial(seq, method, settings)
    entry = optimizer_entry(method, settings, seq.num_tasks, learning_rates=learning_rates,
                            strengths=strengths)
    opts = None
    if fast_compile and jax.default_backend() == "cpu":
        opts = {"xla_backend_optimization_level": 0}
    t0 = time.perf_counter()
    sw = compare.sweep(trial, {method.name: entry}, num_seeds=num_seeds, key=key,
                       compiler_options=opts)
    fam = sw.families[0]
    out = sw.outputs[method.name]
    net = network(seq.x_train.shape[2], settings.hidden, seq.num_outputs, settings.activation,
                  seq.num_tasks if method.kind == "progressive" else None)
    if method.kind == "progressive":
        count = net.num_params
        per_task = lambda t: count(t + 1)  # noqa: E731
    else:
        p = jax.eval_shape(net.init, jax.random.key(0))
        n_p = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(p))
        per_task = lambda t: n_p  # noqa: E731
    ex_bytes = int(np.prod(seq.example_shape)) * 4 + 8
    mb = memory_bytes(method, settings, num_tasks=seq.num_tasks, n_train=seq.n_train,
                      example_bytes=ex_bytes, network_params=per_task)
    return {"hparams": [dict(h) for h in fam.hparams], "R": out["R"], "r0": out["r0"],
            "curve": out["curve"], "nonfinite": out["nonfinite"], "memory_bytes": mb,
            "compile_seconds": sw.compile_seconds, "run_seconds": sw.run_seconds,
            "seconds": time.perf_counter() - t0}

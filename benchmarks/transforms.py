"""Benchmark: GEM vs A-GEM vs plain SGD step time; online vs separate EWC state size.

Setup: an MLP 100-256-256-10 (~94k params), batch 64 of the current task, an episodic
memory of 10 past tasks x 32 examples. One training step is

* SGD:   grad on the batch, ``optax.sgd``;
* A-GEM: grad on the batch + ONE reference grad on all 320 memory examples, ``agem``;
* GEM:   grad on the batch + 10 per-task memory grads (``vmap`` over tasks, the same
  320 examples), ``gem`` (t = 10 dual QP inside jit).

So GEM and A-GEM see the same data; GEM additionally keeps 10 gradient copies and
solves the QP. We also time the projections alone on fixed gradients. Steps are timed
inside ONE jitted ``lax.scan``, after ``block_until_ready``; compile time is reported
apart. EWC: bytes of the optimizer state for 1, 10, 100 tasks (``jax.eval_shape``, no
allocation) in online mode (constant) and separate mode (capacity = number of tasks).

Usage: python benchmarks/transforms.py [--quick]
Writes benchmarks/results/transforms.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab.transforms import agem, agem_project, ewc, gem, gem_project

SIZES = (100, 256, 256, 10)
BATCH, TASKS, PER_TASK = 64, 10, 32


def init_mlp(key):
    params = []
    for i, (m, n) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        k = jax.random.fold_in(key, i)
        params.append({"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros(n)})
    return params


def loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


grad = jax.grad(loss)


def make_data(key, steps):
    kx, ky, kmx, kmy = jax.random.split(key, 4)
    xs = jax.random.normal(kx, (steps, BATCH, SIZES[0]))
    ys = jax.random.randint(ky, (steps, BATCH), 0, SIZES[-1])
    mem_x = jax.random.normal(kmx, (TASKS, PER_TASK, SIZES[0]))
    mem_y = jax.random.randint(kmy, (TASKS, PER_TASK), 0, SIZES[-1])
    return xs, ys, mem_x, mem_y


def make_train(method):
    lr = 0.05
    if method == "sgd":
        opt = optax.sgd(lr)
    elif method == "agem":
        opt = optax.chain(agem(), optax.sgd(lr))
    else:
        opt = optax.chain(gem(), optax.sgd(lr))

    def train(params, xs, ys, mem_x, mem_y):
        def step(carry, batch):
            p, s = carry
            g = grad(p, *batch)
            if method == "sgd":
                extra = {}
            elif method == "agem":
                extra = {"ref_grads": grad(p, mem_x.reshape(-1, SIZES[0]), mem_y.reshape(-1))}
            else:
                extra = {"memory_grads": jax.vmap(grad, (None, 0, 0))(p, mem_x, mem_y)}
            u, s = opt.update(g, s, p, **extra)
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(step, (params, opt.init(params)), (xs, ys))
        return p, s

    return jax.jit(train)


def time_compiled(fn, args, repeats):
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, (statistics.median(runs), min(runs)), out


def projection_fns(steps):
    """Projection alone, ``steps`` times in a scan (inputs perturbed per step)."""

    def run_gem(g, G, noise):
        def body(acc, e):
            return acc + gem_project(g + e, G)[0], None

        return jax.lax.scan(body, jnp.zeros(()), noise)[0]

    def run_agem(g, r, noise):
        def body(acc, e):
            return acc + agem_project(g + e, r)[0], None

        return jax.lax.scan(body, jnp.zeros(()), noise)[0]

    return jax.jit(run_gem), jax.jit(run_agem)


def ewc_sizes(params, task_counts):
    out = []
    for n in task_counts:
        online = jax.eval_shape(ewc(mode="online", decay=0.9).init, params)
        sep = jax.eval_shape(ewc(mode="separate", max_tasks=n).init, params)
        nbytes = lambda t: int(
            sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(t))
        )
        out.append({"tasks": n, "online_bytes": nbytes(online), "separate_bytes": nbytes(sep)})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps, 1 repeat")
    args = ap.parse_args(argv)
    steps, repeats = (5, 1) if args.quick else (100, 5)

    key = jax.random.key(0)
    params = init_mlp(key)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    data = make_data(jax.random.fold_in(key, 1), steps)

    rows = {}
    for method in ("sgd", "agem", "gem"):
        compile_s, (run_s, best_s), (_, state) = time_compiled(
            make_train(method), (params, *data), repeats
        )
        projected = None if method == "sgd" else int(state[0].num_projected)
        rows[method] = {
            "compile_s": compile_s,
            "run_s": run_s,
            "step_ms": 1e3 * run_s / steps,
            "step_ms_min": 1e3 * best_s / steps,
            "projected_steps": projected,
        }

    # projections alone on fixed gradients of the MLP
    p = params
    g = jax.tree.map(lambda x: x.ravel(), grad(p, data[0][0], data[1][0]))
    g = jnp.concatenate(jax.tree.leaves(g))
    G = jax.vmap(grad, (None, 0, 0))(p, data[2], data[3])
    G = jnp.concatenate([x.reshape(TASKS, -1) for x in jax.tree.leaves(G)], axis=1)
    r = G.mean(0)
    g = g - 2.0 * r  # make constraints bind
    noise = 1e-3 * jax.random.normal(jax.random.fold_in(key, 2), (steps, g.size))
    run_gem, run_agem = projection_fns(steps)
    proj = {}
    for name, fn, a in (
        ("gem_project", run_gem, (g, G, noise)),
        ("agem_project", run_agem, (g, r, noise)),
    ):
        c, (t, best), _ = time_compiled(fn, a, repeats)
        proj[name] = {
            "compile_s": c,
            "run_s": t,
            "call_ms": 1e3 * t / steps,
            "call_ms_min": 1e3 * best / steps,
        }
    violated = int(jnp.sum(G @ g < 0))

    sizes = ewc_sizes(params, (1, 10, 100))

    ratio_step = rows["gem"]["step_ms"] / rows["agem"]["step_ms"]
    ratio_proj = proj["gem_project"]["call_ms"] / proj["agem_project"]["call_ms"]
    print(f"MLP {SIZES}: {n_params} params; batch {BATCH}; memory {TASKS} tasks x {PER_TASK}")
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); steps={steps}")
    print("times: median over repeats, min in the (min) column")
    print(
        f"{'method':<14}{'compile s':>11}{'step ms':>10}{'(min)':>9}{'vs A-GEM':>10}{'vs SGD':>9}"
        f"{'projected':>11}"
    )
    for m, row in rows.items():
        print(
            f"{m:<14}{row['compile_s']:>11.2f}{row['step_ms']:>10.3f}{row['step_ms_min']:>9.3f}"
            f"{row['step_ms'] / rows['agem']['step_ms']:>10.2f}"
            f"{row['step_ms'] / rows['sgd']['step_ms']:>9.2f}"
            f"{'' if row['projected_steps'] is None else row['projected_steps']:>11}"
        )
    print(f"projection alone (t={TASKS}, {violated} constraints violated at the base point):")
    for m, row in proj.items():
        print(f"{m:<14}{row['compile_s']:>11.2f}{row['call_ms']:>10.3f}{row['call_ms_min']:>9.3f}")
    print(
        f"GEM / A-GEM: full step {ratio_step:.2f}x, projection alone {ratio_proj:.2f}x "
        f"(target <= 1.5x for the step)"
    )
    print(f"{'EWC tasks':<10}{'online bytes':>14}{'separate bytes':>16}")
    for row in sizes:
        print(f"{row['tasks']:<10}{row['online_bytes']:>14}{row['separate_bytes']:>16}")

    result = {
        "benchmark": "transforms",
        "quick": args.quick,
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "device_kind": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "mlp_sizes": SIZES,
        "n_params": int(n_params),
        "batch": BATCH,
        "memory": {"tasks": TASKS, "per_task": PER_TASK},
        "steps": steps,
        "repeats": repeats,
        "step": rows,
        "projection": proj,
        "gem_over_agem_step": ratio_step,
        "gem_over_agem_projection": ratio_proj,
        "ewc_state_bytes": sizes,
    }
    out = pathlib.Path(__file__).parent / "results" / "transforms.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

"""Overhead of the health monitor on an MLP training step.

For each case, two programs are compiled and timed in this process:

* ``baseline``: ``jit(scan)`` of N SGD steps of an MLP (``jaxopt_lab.models.mlp``,
  ReLU, He init) on minibatches sampled from a random data set that is passed in
  as an argument;
* ``monitor``: the same scan with :func:`jaxopt_lab.health.update_health` at every
  step, fed the loss, the gradients, the parameters and the hidden activations
  (so every detector runs: non-finite, exploding, vanishing, dead units,
  plateau, oscillation).

Compile time (lower + compile) is reported apart from run time. Run time is the
best (minimum) and median of ``--repeats`` calls of the compiled program; the
overhead is ``monitor / baseline - 1`` on the minima (target <= 15%). Cases with
``seeds > 1`` vmap the whole training over seeds (one program).

Usage::

    python benchmarks/health.py [--quick] [--repeats R] [--out PATH]

Writes ``benchmarks/results/health.json`` and prints a table. Timings on a shared
machine are noisy: rerun before quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from jaxopt_lab import data, health, models  # noqa: E402

FULL_CASES = [
    # name, in_dim, hidden, out_dim, batch, steps, seeds
    ("mlp 784-512-512-10 b128", 784, [512, 512], 10, 128, 300, 1),
    ("mlp 64-[64]x8-10 b64", 64, [64] * 8, 10, 64, 1000, 1),
    ("mlp 64-[64]x8-10 b64 x8 seeds", 64, [64] * 8, 10, 64, 500, 8),
    ("mlp 64-[32]x20-10 b64 (vanishing net)", 64, [32] * 20, 10, 64, 1000, 1),
]
QUICK_CASES = [
    ("mlp 64-128-128-10 b64", 64, [128, 128], 10, 64, 100, 1),
    ("mlp 64-[32]x4-10 b32 x4 seeds", 64, [32] * 4, 10, 32, 100, 4),
]


def build_programs(in_dim, hidden, out_dim, batch, steps, seeds):
    """Return (baseline, monitored) jitted programs and their arguments."""
    model = models.mlp(in_dim, hidden, out_dim, activation="relu", init="he")
    xent = models.loss_fn("cross_entropy")
    opt = optax.sgd(0.01)
    th = health.Thresholds()

    def loss_and_acts(params, b):
        out, acts = model.apply(params, b[0], return_activations=True)
        return xent(out, b[1]), acts

    def train(key, dataset, monitored):
        params = model.init(key)
        carry0 = (params, opt.init(params), health.init_health(th))

        def body(carry, t):
            params, opt_state, hs = carry
            b = data.sample_batch(jax.random.fold_in(key, t), dataset, batch)
            (loss, acts), grads = jax.value_and_grad(loss_and_acts, has_aux=True)(params, b)
            if monitored:
                hs, rep = health.update_health(
                    hs,
                    t,
                    loss=loss,
                    grads=grads,
                    params=params,
                    activations=acts,
                    thresholds=th,
                    layer_order=model.layers,
                )
                out = (loss, rep.flags.exploding)
            else:
                out = (loss, jnp.bool_(False))
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, hs), out

        (params, _, hs), outs = jax.lax.scan(body, carry0, jnp.arange(steps))
        return params, hs, outs

    kx, ky = jax.random.split(jax.random.key(1))
    dataset = (
        jax.random.normal(kx, (2048, in_dim), jnp.float32),
        jax.random.randint(ky, (2048,), 0, out_dim),
    )
    keys = jax.random.split(jax.random.key(0), seeds)
    progs = {}
    for name, monitored in (("baseline", False), ("monitor", True)):

        def f(keys, dataset, monitored=monitored):
            return jax.vmap(lambda k: train(k, dataset, monitored))(keys)

        progs[name] = jax.jit(f)
    return (
        progs,
        (keys, dataset),
        sum(
            int(np.prod(np.shape(p))) for p in jax.tree.leaves(jax.eval_shape(model.init, keys[0]))
        ),
    )


def time_case(case, repeats):
    name, in_dim, hidden, out_dim, batch, steps, seeds = case
    progs, args, n_params = build_programs(in_dim, hidden, out_dim, batch, steps, seeds)
    row = {"case": name, "params": n_params, "batch": batch, "steps": steps, "seeds": seeds}
    compiled = {}
    for key, prog in progs.items():
        t0 = time.perf_counter()
        compiled[key] = prog.lower(*args).compile()
        row[f"{key}_compile_s"] = time.perf_counter() - t0
        jax.block_until_ready(compiled[key](*args))  # warm-up
    times = {k: [] for k in compiled}
    for _ in range(repeats):  # interleave to share machine noise
        for key, c in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(c(*args))
            times[key].append(time.perf_counter() - t0)
    for key, ts in times.items():
        row[f"{key}_min_s"] = min(ts)
        row[f"{key}_median_s"] = float(np.median(ts))
        row[f"{key}_us_per_step"] = 1e6 * min(ts) / steps
    row["overhead"] = row["monitor_min_s"] / row["baseline_min_s"] - 1.0
    row["overhead_median"] = row["monitor_median_s"] / row["baseline_median_s"] - 1.0
    # the two programs train identically (the monitor only observes)
    p_base = compiled["baseline"](*args)[0]
    p_mon = compiled["monitor"](*args)[0]
    row["same_params"] = bool(
        all(
            np.allclose(a, b, rtol=1e-5, atol=1e-6)
            for a, b in zip(jax.tree.leaves(p_base), jax.tree.leaves(p_mon), strict=True)
        )
    )
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per program")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "health.json"))
    args = ap.parse_args(argv)
    cases = QUICK_CASES if args.quick else FULL_CASES
    repeats = args.repeats or (3 if args.quick else 7)
    rows = []
    hdr = (
        f"{'case':40s} {'params':>8s} {'base us/step':>12s} {'mon us/step':>12s} "
        f"{'overhead':>9s} {'(median)':>9s} {'compile b/m s':>14s}"
    )
    print(hdr)
    print("-" * len(hdr))
    for case in cases:
        r = time_case(case, repeats)
        rows.append(r)
        print(
            f"{r['case']:40s} {r['params']:8d} {r['baseline_us_per_step']:12.1f} "
            f"{r['monitor_us_per_step']:12.1f} {100 * r['overhead']:8.1f}% "
            f"{100 * r['overhead_median']:8.1f}% "
            f"{r['baseline_compile_s']:6.2f}/{r['monitor_compile_s']:<6.2f}"
            + ("" if r["same_params"] else "  PARAMS DIFFER")
        )
    out = {
        "benchmark": "health",
        "quick": args.quick,
        "repeats": repeats,
        "target_overhead": 0.15,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "device_kind": jax.devices()[0].device_kind,
            "device_count": jax.device_count(),
            "cpu_count": os.cpu_count(),
        },
        "cases": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()

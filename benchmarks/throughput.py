"""Throughput of ``jaxopt_lab.compare.run`` against a tutorial-style numpy saddle-escape loop.

Measures trajectory-steps per second (one optimizer step of one trajectory, including the
objective, gradient and escape/hit bookkeeping) for 1, 64, 1024, 16384 and 65536 seeds on the
2-D saddle ``f(x, y) = x^2 - y^2 + 0.1 x y`` with momentum SGD, and a 100-D Rastrigin sweep
(a learning-rate grid for SGD + Adam). The baseline is how tutorials write a saddle-escape
analyzer: a Python loop over seeds and over steps on numpy arrays with one optimizer object
per run. The baseline is timed on fewer seeds/steps (its cost is linear in both) and
compared per trajectory-step; both run in this process. Compile time is reported apart from
run time (compile is the first call; the timed call hits the compiled-program cache).

Usage::

    python benchmarks/throughput.py [--quick] [--max-seeds N] [--steps S] [--out PATH]

On a GPU/TPU, ``--max-seeds 1048576`` (or more) adds larger seed counts.
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

from jaxopt_lab import compare  # noqa: E402

LR, MOMENTUM, RADIUS, INIT_SCALE = 1e-3, 0.9, 1.0, 1e-3


def saddle_xy(x):
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1]


def rastrigin(x):
    return 10.0 * x.shape[0] + jnp.sum(x**2 - 10.0 * jnp.cos(2 * jnp.pi * x))


# ----------------------------------------------------------------- tutorial-style baseline


class NumpyMomentumSGD:
    """Heavy-ball SGD as tutorials write it (same update as optax.sgd(lr, momentum))."""

    def __init__(self, learning_rate, momentum):
        self.lr, self.momentum, self.velocity = learning_rate, momentum, None

    def step(self, x, grad):
        if self.velocity is None:
            self.velocity = np.zeros_like(x)
        self.velocity = self.momentum * self.velocity + grad
        return x - self.lr * self.velocity


class NumpyAdam:
    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = learning_rate, b1, b2, eps
        self.m = self.v = None
        self.t = 0

    def step(self, x, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(x), np.zeros_like(x)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mh = self.m / (1 - self.b1**self.t)
        vh = self.v / (1 - self.b2**self.t)
        return x - self.lr * mh / (np.sqrt(vh) + self.eps)


def np_saddle(x):
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1]


def np_saddle_grad(x):
    return np.array([2 * x[0] + 0.1 * x[1], -2 * x[1] + 0.1 * x[0]])


def np_rastrigin(x):
    return 10.0 * x.size + np.sum(x**2 - 10.0 * np.cos(2 * np.pi * x))


def np_rastrigin_grad(x):
    return 2 * x + 20 * np.pi * np.sin(2 * np.pi * x)


def baseline(f, grad, make_opt, starts, steps, center=None, radius=None, threshold=None):
    """Python loop over seeds and steps; returns per-seed records like compare.run."""
    out = []
    for x0 in starts:
        x = np.array(x0, dtype=np.float64)
        opt = make_opt()
        escape = hit = float("inf")
        nonfinite = False
        for t in range(steps + 1):
            value, g = f(x), grad(x)
            if center is not None and escape == float("inf"):
                if np.linalg.norm(x - center) > radius:
                    escape = float(t)
            if threshold is not None and hit == float("inf") and value <= threshold:
                hit = float(t)
            if not (np.isfinite(value) and np.all(np.isfinite(g))):
                nonfinite = True
            if t < steps:
                x = opt.step(x, g)
        out.append({"escape_step": escape, "hit_step": hit, "final_value": float(value),
                    "final_grad_norm": float(np.linalg.norm(g)), "nonfinite": nonfinite})
    return out


def time_baseline(n_seeds, steps, **kw):
    rng = np.random.default_rng(0)
    starts = kw.pop("starts_fn")(rng, n_seeds)
    t0 = time.perf_counter()
    recs = baseline(starts=starts, steps=steps, **kw)
    secs = time.perf_counter() - t0
    return {"seeds": n_seeds, "steps": steps, "seconds": secs,
            "traj_steps_per_s": n_seeds * steps / secs}, recs


# ----------------------------------------------------------------------------- engine


def time_engine(objective, optimizers, n_seeds, steps, repeats, **kw):
    first = compare.run(objective, optimizers, num_seeds=n_seeds, steps=steps,
                        key=jax.random.key(0), **kw)
    best = None
    spent, r = 0.0, 0
    # at least `repeats` timed calls, more (up to 25) until ~1 s was spent: short calls are
    # dominated by scheduler noise on a shared machine; the best call is kept
    while r < repeats or (spent < 1.0 and r < 25):
        r += 1
        res = compare.run(objective, optimizers, num_seeds=n_seeds, steps=steps,
                          key=jax.random.key(r), **kw)
        assert res.meta["compile_seconds"] == 0.0, "second call must hit the compile cache"
        spent += res.meta["run_seconds"]
        if best is None or res.meta["run_seconds"] < best.meta["run_seconds"]:
            best = res
    n_h = sum(len(v) for v in best.hparams.values())
    secs = best.meta["run_seconds"]
    return {
        "seeds": n_seeds, "steps": steps, "hparam_configs": n_h,
        "compile_seconds": first.meta["compile_seconds"],
        "run_seconds": secs,
        "traj_steps_per_s": n_seeds * steps * n_h / secs,
        "timed_calls": r,
        "chunks": best.meta["chunks"],
        "padded_chunk_size": best.meta["padded_chunk_size"],
    }, best


# ------------------------------------------------------ end to end and hand-written kernel


def hand_written_kernel(n_seeds, steps, micro=None):
    """A minimal hand-written ``jit(vmap(scan))`` computing the SAME metrics as the engine
    (escape step, hit step, final value, final gradient norm, non-finite flag) for momentum
    SGD on the 2-D saddle, starts uniform in the ball of radius INIT_SCALE. ``micro``: run
    the seeds in ``lax.map`` micro-batches of that size (what the engine does on CPU)."""
    opt = optax.sgd(LR, momentum=MOMENTUM)
    vg = jax.value_and_grad(saddle_xy)

    def one(key):
        kd, kr = jax.random.split(key)
        z = jax.random.normal(kd, (2,))
        x0 = INIT_SCALE * jax.random.uniform(kr) ** 0.5 * z / jnp.linalg.norm(z)

        def step(c, _):
            x, s, v, g, t, esc, hit, bad = c
            u, s = opt.update(g, s, x)
            x = x + u
            t = t + 1
            v, g = vg(x)
            tf = t.astype(jnp.float32)
            esc = jnp.where(jnp.isinf(esc) & (jnp.sum(x * x) > RADIUS**2), tf, esc)
            hit = jnp.where(jnp.isinf(hit) & (v <= -1.0), tf, hit)
            bad = bad | ~jnp.isfinite(v) | ~jnp.all(jnp.isfinite(g)) | ~jnp.all(jnp.isfinite(x))
            return (x, s, v, g, t, esc, hit, bad), None

        v0, g0 = vg(x0)
        c = (x0, opt.init(x0), v0, g0, 0, jnp.inf, jnp.inf, False)
        c, _ = jax.lax.scan(step, c, None, length=steps)
        return c[5], c[6], c[2], jnp.linalg.norm(c[3]), c[7]

    batched = jax.vmap(one)
    if micro is None or micro >= n_seeds:
        fn = jax.jit(batched)
    else:
        fn = jax.jit(lambda k: jax.lax.map(batched, k.reshape(-1, micro)))
    keys = jax.random.split(jax.random.key(0), n_seeds)
    jax.block_until_ready(fn(keys))  # compile
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(keys))
        best = min(best, time.perf_counter() - t0)
    return {"seeds": n_seeds, "steps": steps, "micro_batch": micro, "run_seconds": best,
            "traj_steps_per_s": n_seeds * steps / best}


def end_to_end(n_seeds, steps, b_row, repeats=20):
    """A warm ``compare.run`` timed as a user calls it, the compiled program alone, and the
    numpy per-seed loop's cost for the same work (its rate measured in this process)."""
    from jaxopt_lab import landscapes

    land = landscapes.get("saddle_xy")
    opts = {"momentum_sgd": optax.sgd(LR, momentum=MOMENTUM)}
    kw = dict(num_seeds=n_seeds, steps=steps, escape_radius=RADIUS,
              init=("ball", [0.0, 0.0], INIT_SCALE))
    keys = [jax.random.key(r) for r in range(repeats + 1)]  # the caller's keys, made first
    compare.run(land, opts, key=keys[-1], **kw)
    totals, runs = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        res = compare.run(land, opts, key=keys[r], **kw)
        totals.append(time.perf_counter() - t0)
        runs.append(res.meta["run_seconds"])
    # the executable alone: the cached program called directly on the same arguments
    from jaxopt_lab.compare.cache import PROGRAMS

    total = float(np.min(totals))
    baseline_secs = n_seeds * steps / b_row["traj_steps_per_s"]
    return {"seeds": n_seeds, "steps": steps, "end_to_end_seconds": total,
            "median_end_to_end_seconds": float(np.median(totals)),
            "median_overhead_seconds": float(np.median(np.asarray(totals) - np.asarray(runs))),
            "run_seconds": float(np.min(runs)),
            "overhead_seconds": total - float(np.min(runs)),
            "numpy_loop_seconds_same_work": baseline_secs,
            "speedup_end_to_end": baseline_secs / total, "programs_cached": len(PROGRAMS)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few seeds and steps")
    ap.add_argument("--steps", type=int, default=None, help="steps per trajectory (saddle)")
    ap.add_argument("--max-seeds", type=int, default=None,
                    help="largest seed count (adds powers of 4 above 65536 up to this)")
    ap.add_argument("--chunk-size", type=int, default=None, help="compare.run chunk_size")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "throughput.json"))
    args = ap.parse_args(argv)

    quick = args.quick
    steps = args.steps or (200 if quick else 1000)
    seed_counts = [1, 64, 1024] if quick else [1, 64, 1024, 16384, 65536]
    if args.max_seeds:
        seed_counts = [s for s in seed_counts if s <= args.max_seeds]
        s = 65536 * 4
        while s <= args.max_seeds:
            seed_counts.append(s)
            s *= 4
        if seed_counts[-1] != args.max_seeds and args.max_seeds > seed_counts[-1]:
            seed_counts.append(args.max_seeds)
    base_seeds, base_steps = (4, 200) if quick else (16, steps)
    repeats = 2 if quick else 3  # minimum timed calls per row (the best is kept)

    dev = jax.devices()
    print(f"jax {jax.__version__} on {len(dev)} x {dev[0].device_kind} ({dev[0].platform}); "
          f"python {platform.python_version()}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f}")
    center = np.zeros(2)
    saddle_kw = dict(escape_center=[0.0, 0.0], escape_radius=RADIUS,
                     init=("gaussian", [0.0, 0.0], INIT_SCALE), chunk_size=args.chunk_size)
    optimizers = {"momentum_sgd": optax.sgd(LR, momentum=MOMENTUM)}

    b_row, b_recs = time_baseline(
        base_seeds, base_steps, f=np_saddle, grad=np_saddle_grad,
        make_opt=lambda: NumpyMomentumSGD(LR, MOMENTUM),
        starts_fn=lambda rng, n: INIT_SCALE * rng.standard_normal((n, 2)),
        center=center, radius=RADIUS)
    print(f"\nbaseline (numpy, Python loop over seeds and steps), timed on {base_seeds} seeds x "
          f"{base_steps} steps: {b_row['traj_steps_per_s']:.3g} trajectory-steps/s")

    rows = []
    hdr = (f"{'seeds':>8} {'steps':>6} {'compile s':>10} {'run s':>9} {'traj-steps/s':>13} "
           f"{'x baseline':>11} {'chunks':>6}")
    print(f"\n2-D saddle x^2 - y^2 + 0.1xy, momentum SGD (lr={LR}, m={MOMENTUM})\n{hdr}")
    for n in seed_counts:
        row, res = time_engine(saddle_xy, optimizers, n, steps, repeats, **saddle_kw)
        row["speedup_vs_baseline"] = row["traj_steps_per_s"] / b_row["traj_steps_per_s"]
        esc = res.metrics["momentum_sgd"]["escape_step"]
        row["escape_rate"] = float(np.mean(np.isfinite(esc)))
        rows.append(row)
        print(f"{n:>8} {steps:>6} {row['compile_seconds']:>10.2f} {row['run_seconds']:>9.4f} "
              f"{row['traj_steps_per_s']:>13.3g} {row['speedup_vs_baseline']:>11.0f} "
              f"{row['chunks']:>6}")
    ablation = None
    if not quick and jax.devices()[0].platform == "cpu":
        # why the engine micro-batches on CPU: the same 65536 seeds as one vectorised batch
        ab_kw = dict(saddle_kw, batch_size=65536)
        ablation, _ = time_engine(saddle_xy, optimizers, 65536, steps, repeats, **ab_kw)
        print(f"ablation: 65536 seeds as ONE vectorised batch (batch_size=65536): "
              f"{ablation['traj_steps_per_s']:.3g} trajectory-steps/s")
    # agreement of the two implementations on escape steps (same dynamics, own starts)
    b_esc = np.array([r["escape_step"] for r in b_recs])
    by_n = {r["seeds"]: r for r in rows}
    flat = None
    if 1024 in by_n and max(by_n) >= 65536:
        big = by_n[max(s for s in by_n if s <= 65536)]
        flat = by_n[1024]["traj_steps_per_s"] / big["traj_steps_per_s"]
        print(f"throughput ratio 1024 / {big['seeds']} seeds: {flat:.2f} (target within 2x)")

    # end to end, as a user calls it: 1024 seeds x 1000 steps
    e2e = end_to_end(1024, steps, b_row, repeats=10 if quick else 30)
    print(f"\nend to end, 1024 seeds x {steps} steps (warm compare.run, best of "
          f"{10 if quick else 30}): {e2e['end_to_end_seconds'] * 1e3:.2f} ms total, "
          f"{e2e['run_seconds'] * 1e3:.2f} ms in run_seconds (dispatch, program, transfers), "
          f"{e2e['overhead_seconds'] * 1e3:.2f} ms Python around it (median "
          f"{e2e['median_overhead_seconds'] * 1e3:.2f} ms; target < 1 ms); numpy per-seed loop for "
          f"the same work {e2e['numpy_loop_seconds_same_work']:.2f} s -> "
          f"{e2e['speedup_end_to_end']:.0f}x (target >= 1000x)")
    # the engine's kernel vs a hand-written kernel computing the same metrics
    n_big = 65536 if not quick else 4096
    eng_row = next((r for r in rows if r["seeds"] == n_big), None)
    if eng_row is None:
        eng_row, _ = time_engine(saddle_xy, optimizers, n_big, steps, repeats,
                                 **{**saddle_kw, "init": ("ball", [0.0, 0.0], INIT_SCALE)})
    hand = [hand_written_kernel(n_big, steps)]
    if jax.devices()[0].platform == "cpu":
        hand.append(hand_written_kernel(n_big, steps, micro=1024))
    best_hand = max(hand, key=lambda r: r["traj_steps_per_s"])
    kernel_ratio = best_hand["traj_steps_per_s"] / eng_row["traj_steps_per_s"]
    print(f"{n_big} seeds: engine {eng_row['traj_steps_per_s']:.3g} trajectory-steps/s; "
          "hand-written jit(vmap(scan)) with the same metrics "
          + ", ".join(f"{r['traj_steps_per_s']:.3g} (micro-batch {r['micro_batch']})"
                      for r in hand)
          + f" -> hand / engine = {kernel_ratio:.2f} (target <= 1.5)")

    # 100-D Rastrigin sweep
    d = 100
    r_seeds, r_steps = (64, 100) if quick else (1024, 1000)
    lrs = [1e-3, 3e-3, 1e-2]
    r_opts = {"sgd": (optax.sgd, {"learning_rate": lrs}), "adam": optax.adam(1e-2)}
    r_kw = dict(bounds=(-5.12 * np.ones(d), 5.12 * np.ones(d)), target=1.0,
                chunk_size=args.chunk_size)
    r_row, r_res = time_engine(rastrigin, r_opts, r_seeds, r_steps, repeats, **r_kw)
    rb_seeds, rb_steps = (2, 50) if quick else (4, 200)
    rb_row, _ = time_baseline(
        rb_seeds, rb_steps, f=np_rastrigin, grad=np_rastrigin_grad,
        make_opt=lambda: NumpyMomentumSGD(1e-3, 0.0),
        starts_fn=lambda rng, n: rng.uniform(-5.12, 5.12, (n, d)), threshold=1.0)
    r_row["baseline_traj_steps_per_s"] = rb_row["traj_steps_per_s"]
    r_row["speedup_vs_baseline"] = r_row["traj_steps_per_s"] / rb_row["traj_steps_per_s"]
    summ = compare.summarize(r_res)
    r_row["final_value_median"] = {s["label"]: s["final_value_median"] for s in summ}
    print(f"\n100-D Rastrigin: SGD lr grid {lrs} + Adam, {r_seeds} seeds x {r_steps} steps "
          f"(4 configs, 2 programs)\n"
          f"  compile {r_row['compile_seconds']:.2f} s, run {r_row['run_seconds']:.3f} s, "
          f"{r_row['traj_steps_per_s']:.3g} trajectory-steps/s; numpy baseline "
          f"({rb_seeds} seeds x {rb_steps} steps) {rb_row['traj_steps_per_s']:.3g}/s -> "
          f"{r_row['speedup_vs_baseline']:.0f}x")
    for s in summ:
        print(f"  {s['label']:<32} median final f = {s['final_value_median']:.2f}, "
              f"hit rate (f <= 1) {s['hit_rate']:.3f}")

    out = {
        "benchmark": "throughput",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "machine": {"platform": dev[0].platform, "device_kind": dev[0].device_kind,
                    "device_count": len(dev), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "jax": jax.__version__,
                    "optax": optax.__version__},
        "saddle": {"objective": "x^2 - y^2 + 0.1xy", "optimizer": f"sgd(lr={LR}, m={MOMENTUM})",
                   "steps": steps, "baseline": b_row, "engine": rows,
                   "throughput_ratio_1k_to_max": flat,
                   "ablation_one_batch_65536": ablation,
                   "baseline_escape_rate": float(np.mean(np.isfinite(b_esc)))},
        "rastrigin_100d": {**r_row, "baseline": rb_row},
        "end_to_end_1024": e2e,
        "hand_written_kernel": {"rows": hand, "engine": eng_row,
                                "hand_over_engine": kernel_ratio},
        "load_average_at_end": list(os.getloadavg()),
        "note": "baseline timed on fewer seeds/steps; compared per trajectory-step; "
                "engine rows keep the best of several timed calls (shared machine)",
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"\nwrote {args.out}")
    return out


if __name__ == "__main__":
    main()

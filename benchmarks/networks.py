"""Network-training throughput in the sweep core: many seeds in one program, and the GAN and
continual-learning experiments at their full presets' settings.

Three sections (``--only``, comma-separated; default all), in one process:

1. ``mlp``: the same MLP on scikit-learn digits trained with ``jaxopt_lab.compare.train``
   (Adam 1e-3, batch 64, health monitor on) for 1 seed and for N seeds (1024 by default),
   each in its own compiled program (one call to compile, then the median of timed calls;
   run time = the core's ``run_seconds``: program, transfers). Reports the cost ratio
   N seeds / 1 seed (target on an H100/H200: <= 4x for 1024 seeds) and seed-steps/s.
2. ``gan``: ``jaxopt_lab.experiments.gan_mixtures`` with ``Config.full()``'s settings (six
   optimizers x two learning rates x 16 seeds x 2000 steps, small nets, ring) on a subset
   of the remedies (``--gan-remedies``, default ``none``) and optionally of the
   optimizers (``--gan-optimizers``): compile and run seconds, GAN steps (one generator
   step with its discriminator step, per seed and configuration) per second, and a rough
   wall-time estimate of the whole full preset (every program assumed to compile and run
   like the measured ones).
3. ``continual``: ``jaxopt_lab.experiments.continual`` with ``Config.full()``'s split
   protocol (MLP 2x256, 500 steps per task, 5 tasks, 5 seeds, EWC strength grid and naive
   at two learning rates) on digits, one scenario, a subset of methods
   (``--continual-methods``): compile and run seconds, training steps (per seed,
   hyperparameter row, task and step) per second.

``--quick`` shrinks every section for a CPU smoke run (64 seeds, one GAN optimizer, the
quick continual settings; XLA optimization level 0 on CPU). Prints a table and writes
``results/networks.json`` (``networks_quick.json`` with ``--quick``) or ``--out``.

Usage::

    python benchmarks/networks.py [--quick] [--only mlp,gan,continual] [--seeds 1024]
        [--steps 500] [--hidden 128,128] [--gan-remedies none] [--continual-methods ...]
        [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxopt_lab import compare, data, models  # noqa: E402

SECTIONS = ("mlp", "gan", "continual")


# ------------------------------------------------------------------------ 1. MLP seeds
def bench_mlp(num_seeds: int, steps: int, hidden: tuple, batch: int, repeats: int,
              fast_compile: bool = False) -> dict:
    digits = data.load_digits()
    model = models.mlp(64, hidden, 10, activation="relu")

    def evaluate(params, d):
        logits = model.apply(params, d["test"][0])
        return {"test_accuracy": jnp.mean(jnp.argmax(logits, -1) == d["test"][1])}

    kw = dict(steps=steps, batch_fn=lambda d, key, step: data.sample_batch(key, d["train"],
                                                                           batch),
              data=digits, evaluate=evaluate, fast_compile=fast_compile)
    opts = {"adam": optax.adam(1e-3)}
    n_params = int(sum(np.size(x) for x in jax.tree.leaves(model.init(jax.random.key(0)))))
    rows = {}
    for n in (1, num_seeds):
        first = compare.train(model.init, model.loss, opts, num_seeds=n, key=0, **kw)
        runs, walls = [], []
        for r in range(repeats):
            t0 = time.perf_counter()
            res = compare.train(model.init, model.loss, opts, num_seeds=n, key=r + 1, **kw)
            walls.append(time.perf_counter() - t0)
            runs.append(res.run_seconds)
        run = statistics.median(runs)
        acc = np.asarray(res.final["adam"]["test_accuracy"])
        rows[n] = {"seeds": n, "compile_seconds": first.compile_seconds,
                   "run_seconds_median": run, "run_seconds_min": min(runs),
                   "call_seconds_median": statistics.median(walls),
                   "seed_steps_per_s": n * steps / run,
                   "test_accuracy_median": float(np.median(acc)), "timed_calls": repeats}
        print(f"  {n:>6} seeds: compile {first.compile_seconds:7.2f} s, run {run:8.4f} s "
              f"(call {rows[n]['call_seconds_median']:.4f} s), {n * steps / run:10.3g} "
              f"seed-steps/s, median test accuracy {rows[n]['test_accuracy_median']:.3f}")
    one, many = rows[1], rows[num_seeds]
    ratio = many["run_seconds_median"] / one["run_seconds_median"]
    call_ratio = many["call_seconds_median"] / one["call_seconds_median"]
    print(f"  cost {num_seeds} seeds / 1 seed: {ratio:.2f}x run, {call_ratio:.2f}x whole call "
          f"(target <= 4x for 1024 seeds on an H100/H200)")
    return {"model": f"MLP 64-{'-'.join(map(str, hidden))}-10 relu", "params": n_params,
            "data": "digits (1438 train)", "optimizer": "adam(1e-3)", "batch": batch,
            "steps": steps, "fast_compile": fast_compile, "one_seed": one, "many_seeds": many,
            "num_seeds": num_seeds, "cost_ratio": ratio, "call_cost_ratio": call_ratio}


# ------------------------------------------------------------------------ 2. GAN preset
def bench_gan(quick: bool, remedies: tuple, optimizers: tuple | None = None) -> dict:
    from jaxopt_lab import gan
    from jaxopt_lab.experiments import gan_mixtures as gm

    full = gm.Config.full()
    if quick:
        c = dataclasses.replace(full, optimizers=("adam",), remedies=remedies,
                                learning_rates=(1e-3,), num_seeds=2, steps=100, eval_every=50,
                                num_eval=200, num_keep=0, figures=False, fast_compile=True)
    else:
        c = dataclasses.replace(full, remedies=remedies, figures=False)
    if optimizers:
        c = dataclasses.replace(c, optimizers=optimizers)
    res = gm.run(c)
    compile_s, run_s = float(res.meta["compile_seconds"]), float(res.meta["run_seconds"])
    per_remedy = len(c.optimizers) * len(c.learning_rates) * c.num_seeds * c.steps
    gan_steps = per_remedy * len(c.remedies)
    rate = gan_steps / run_s
    n_full = len(gan.REMEDIES)
    full_steps = (len(full.optimizers) * len(full.learning_rates) * full.num_seeds
                  * full.steps * n_full)
    programs, full_programs = len(c.optimizers) * len(c.remedies), len(full.optimizers) * n_full
    # at full-preset settings only: the quick sizes say nothing about the full preset's cost
    estimate = None if quick else compile_s / programs * full_programs + full_steps / rate
    print(f"  {len(c.optimizers)} optimizers x {len(c.learning_rates)} lr x {c.num_seeds} seeds"
          f" x {c.steps} steps x remedies {list(c.remedies)}: compile {compile_s:.1f} s, run "
          f"{run_s:.2f} s, {rate:.3g} GAN steps/s"
          + ("" if estimate is None else
             f"; whole full preset ({n_full} remedies) ~{estimate:.0f} s (rough)"))
    return {"config": {"optimizers": list(c.optimizers), "remedies": list(c.remedies),
                       "learning_rates": list(c.learning_rates), "num_seeds": c.num_seeds,
                       "steps": c.steps, "eval_every": c.eval_every, "setup": c.setup,
                       "mixture": c.mixture},
            "full_preset": not quick, "compile_seconds": compile_s, "run_seconds": run_s,
            "total_seconds": float(res.meta["total_seconds"]), "gan_steps": gan_steps,
            "gan_steps_per_s": rate, "programs": programs, "full_preset_remedies": n_full,
            "full_preset_programs": full_programs, "full_preset_estimate_seconds": estimate,
            "note": "estimate = measured compile per program (optimizer family x remedy) x "
                    "the full preset's programs + all its GAN steps at the measured rate; "
                    "remedies differ in cost (unrolled D, minibatch discrimination cost "
                    "several plain steps), so it is a lower bound"}


# ------------------------------------------------------------------ 3. continual preset
def bench_continual(quick: bool, methods: tuple) -> dict:
    from jaxopt_lab.experiments import continual as cx

    base = cx.Config.quick() if quick else cx.Config.full()
    split = dataclasses.replace(base.protocols[0], datasets=("digits",), scenarios=("class",),
                                methods=methods)
    c = dataclasses.replace(base, protocols=(split,), num_seeds=2 if quick else base.num_seeds)
    res = cx.run(c)
    compile_s, run_s = float(res.meta["compile_seconds"]), float(res.meta["run_seconds"])
    rows = sum(len(res.hparams[m]) for m in res.optimizers)
    s = split.settings
    train_steps = rows * c.num_seeds * split.num_tasks * s.steps_per_task
    rate = train_steps / run_s
    print(f"  split digits, class-incremental, methods {list(methods)} ({rows} rows) x "
          f"{c.num_seeds} seeds x {split.num_tasks} tasks x {s.steps_per_task} steps: compile "
          f"{compile_s:.1f} s, run {run_s:.2f} s, {rate:.3g} training steps/s")
    return {"config": {"preset": "quick" if quick else "full", "protocol": "split",
                       "dataset": "digits", "scenario": "class", "methods": list(methods),
                       "hparam_rows": rows, "num_seeds": c.num_seeds,
                       "num_tasks": split.num_tasks, "steps_per_task": s.steps_per_task,
                       "hidden": list(s.hidden), "batch_size": s.batch_size},
            "compile_seconds": compile_s, "run_seconds": run_s,
            "total_seconds": float(res.meta["total_seconds"]), "train_steps": train_steps,
            "train_steps_per_s": rate}


# ------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU smoke sizes")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--seeds", type=int, default=None, help="MLP seeds (default 1024; 64 quick)")
    ap.add_argument("--steps", type=int, default=None, help="MLP steps (default 500; 50 quick)")
    ap.add_argument("--hidden", default=None, help="MLP widths (default 128,128; 32 quick)")
    ap.add_argument("--repeats", type=int, default=None, help="timed MLP calls (5; 2 quick)")
    ap.add_argument("--gan-remedies", default="none", help="comma-separated remedies")
    ap.add_argument("--gan-optimizers", default=None,
                    help="comma-separated optimizers (default: the full preset's six)")
    ap.add_argument("--continual-methods", default=None,
                    help="comma-separated methods (default naive,ewc,gem; naive quick)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    bad = [x for x in only if x not in SECTIONS]
    if bad or not only:
        ap.error(f"--only: unknown section(s) {bad}, allowed: {', '.join(SECTIONS)}")
    q = args.quick
    out_path = args.out or os.path.join(HERE, "results",
                                        "networks_quick.json" if q else "networks.json")
    dev = jax.devices()
    print(f"# networks: jax {jax.__version__} on {len(dev)} x {dev[0].device_kind} "
          f"({dev[0].platform}); {os.cpu_count()} CPUs")
    out = {"benchmark": "networks", "quick": q,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"platform": dev[0].platform, "device_kind": dev[0].device_kind,
                       "device_count": len(dev), "cpu_count": os.cpu_count(),
                       "python": platform.python_version(), "jax": jax.__version__}}

    def save():  # after every section: a later section's timeout keeps the earlier ones
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w") as fh:
            json.dump(out, fh, indent=2)

    if "mlp" in only:
        seeds = args.seeds or (64 if q else 1024)
        steps = args.steps or (50 if q else 500)
        hidden = tuple(int(w) for w in (args.hidden or ("32" if q else "128,128")).split(","))
        print(f"\n## MLP on digits, compare.train: 1 seed vs {seeds} seeds, {steps} steps")
        out["mlp"] = bench_mlp(seeds, steps, hidden, batch=32 if q else 64,
                               repeats=args.repeats or (2 if q else 5), fast_compile=q)
        save()
    if "gan" in only:
        print("\n## GAN mixtures, full preset settings" + (" (quick sizes)" if q else ""))
        out["gan_preset"] = bench_gan(q, tuple(args.gan_remedies.split(",")), tuple(
            args.gan_optimizers.split(",")) if args.gan_optimizers else None)
        save()
    if "continual" in only:
        methods = tuple((args.continual_methods or ("naive" if q else "naive,ewc,gem"))
                        .split(","))
        print("\n## continual learning, full preset settings" + (" (quick sizes)" if q else ""))
        out["continual_preset"] = bench_continual(q, methods)
        save()
    save()
    print(f"\nwrote {out_path}")
    return out


if __name__ == "__main__":
    main()

"""GAN benchmarks, end to end as a user calls them, ratios within one process:

1. 16 seeds of the ring GAN in one vmapped program (the sweep core, ``gan.sweep``) vs the
   same seeds one after another, two ways: the jitted one-step function called from
   Python for every step of every seed (``serial_step``: how a per-step training loop
   runs), and one jitted ``lax.scan`` over all steps per seed (``serial_scan``: the
   strongest serial baseline).
2. The image protocol's conv GAN (digits 8x8, batch 256, ``--image-seeds`` seeds): the
   core's program with every seed in one vectorised micro-batch vs one seed per
   micro-batch (``batch_size=1``: the seed loop the image study used before its
   convolutions became vmappable, :func:`jaxopt_lab.models.conv.vmappable_conv`).
3. Each remedy's cost per step relative to the plain step (one seed, jitted scan; the
   fastest of ``2 * repeats + 1`` calls).

Prints a table, writes benchmarks/results/gan.json.

Usage: python benchmarks/gan.py [--quick] [--seeds N] [--steps S] [--remedies a,b]
       [--image-seeds N] [--image-steps S] [--cpu-devices N] [--out PATH]

On a CPU the sweep runs as ``jaxopt-lab`` runs it: one single-threaded device per core
(:func:`jaxopt_lab.compare.devices.use_cpu_cores`; ``--cpu-devices 1``: JAX's one device);
the serial baselines run on the default device, as a user's loop would.

``--seeds``/``--steps`` replace the seed count (16) and steps (200; 50 with ``--quick``),
``--remedies`` times only those remedies (``none`` is always timed first: the baseline),
``--out`` writes the JSON elsewhere (the accelerator run, ``benchmarks/accelerator.sh``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import gan
from jaxopt_lab.experiments import gan_mixtures as gm

HERE = os.path.dirname(os.path.abspath(__file__))


def _timed(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts)


def _seed_program(spec, nets, steps, opt, sample):
    """One seed's run (scan of the two-player step), jitted once."""
    @jax.jit
    def run(key, centers):
        st = gan.init_state(spec, nets, opt, jax.random.fold_in(key, 0))

        def body(s, t):
            return gan.gan_step(spec, nets, opt, s, jax.random.fold_in(key, t),
                                lambda k, n: sample({"centers": centers}, k, n))
        s, info = jax.lax.scan(body, st, jnp.arange(steps))
        return info.g_loss[-1]
    return run


def _step_program(spec, nets, opt, sample):
    """One jitted generator step (with its discriminator updates) of one seed."""
    @jax.jit
    def step(state, key, centers):
        return gan.gan_step(spec, nets, opt, state, key,
                            lambda k, n: sample({"centers": centers}, k, n))[0]
    return step


def _serial_steps(spec, nets, opt, step, key, centers, seeds, steps):
    last = None
    for i in range(seeds):
        k = jax.random.fold_in(key, i)
        st = gan.init_state(spec, nets, opt, jax.random.fold_in(k, 0))
        for t in range(steps):
            st = step(st, jax.random.fold_in(k, t), centers)
        last = st
    return last.g_params


def image_benchmark(seeds: int, steps: int, repeats: int) -> dict:
    """The conv GAN of the image protocol (digits, batch 256): all seeds vectorised vs one
    seed per micro-batch, both through the sweep core (compile excluded: warm calls)."""
    from jaxopt_lab.experiments import gan_images as gi

    c = gi.Config.digits(num_seeds=seeds, optimizers=("adam",))
    d = gi.load(c)
    x = jnp.asarray(d["train"][0])
    spec, nets = gi.build(c, tuple(x.shape[1:]))
    trial = gan.make_trial(spec, nets, steps=steps, eval_every=steps,
                           sample_real=gi._sample_real,
                           evaluate=lambda smp, st, inp: {"mean": jnp.mean(smp)},
                           inputs={"x": x}, num_eval=16, static=("bench-images", steps))
    opts = {"adam": optax.adam(1e-3)}
    key = jax.random.key(0)
    out = {"seeds": seeds, "steps": steps, "setup": "digits 8x8, batch 256, conv G/D"}
    for name, micro in (("vectorised", None), ("seed_loop", 1)):
        sw = gan.sweep(trial, opts, num_seeds=seeds, key=key, batch_size=micro)
        t = _timed(lambda m=micro: gan.sweep(trial, opts, num_seeds=seeds, key=key,
                                             batch_size=m).outputs["adam"]["final"]["mean"],
                   repeats)[0]
        out[f"{name}_seconds"] = t
        out[f"{name}_compile_seconds"] = sw.compile_seconds
    out["speedup"] = out["seed_loop_seconds"] / out["vectorised_seconds"]
    print(f"image GAN, {seeds} seeds x {steps} steps: vectorised {out['vectorised_seconds']:.2f}"
          f" s, one seed per micro-batch {out['seed_loop_seconds']:.2f} s, speed-up "
          f"{out['speedup']:.2f}x")
    return out


def main(quick: bool, seeds: int | None = None, steps: int | None = None,
         remedies: list | None = None, out_path: str | None = None,
         image_seeds: int | None = None, image_steps: int | None = None):
    seeds, steps, repeats = seeds or 16, steps or (50 if quick else 200), (2 if quick else 3)
    c = gm.Config(steps=steps, eval_every=steps, num_seeds=seeds, num_keep=0,
                  optimizers=("adam",))
    mix = gm._mixture("ring")
    centers = np.asarray(mix.centers, np.float32)
    sample = functools.partial(gm._sample_real, mix.std)
    opt = optax.adam(1e-3)
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "jax": jax.__version__, "backend": jax.default_backend(),
                       "devices": jax.device_count(),
                       "xla_flags": os.environ.get("XLA_FLAGS", "")},
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "seeds": seeds, "steps": steps, "setup": "small (latent 2, G/D 2x128 ReLU, batch 64)"}
    # vmapped: the core's program (one seed axis, 16 seeds)
    spec, nets = gm.build(c, "none")
    trial = gan.make_trial(spec, nets, steps=steps, eval_every=steps, sample_real=sample,
                           evaluate=functools.partial(gm._evaluate, mix.std),
                           inputs={"centers": centers}, num_eval=100)
    key = jax.random.key(0)
    sw = gan.sweep(trial, {"adam": opt}, num_seeds=seeds, key=key)
    t_v = _timed(lambda: gan.sweep(trial, {"adam": opt}, num_seeds=seeds, key=key).outputs[
        "adam"]["final"]["g_loss"], repeats)
    prog = _seed_program(spec, nets, steps, opt, sample)
    jax.block_until_ready(prog(key, centers))
    t_s = _timed(lambda: [prog(jax.random.fold_in(key, i), centers) for i in range(seeds)],
                 repeats)
    step = _step_program(spec, nets, opt, sample)
    jax.block_until_ready(_serial_steps(spec, nets, opt, step, key, centers, 1, 2))
    t_p = _timed(lambda: _serial_steps(spec, nets, opt, step, key, centers, seeds, steps),
                 repeats)
    out["vmapped_seconds"], out["serial_scan_seconds"] = t_v[0], t_s[0]
    out["serial_step_seconds"] = t_p[0]
    out["vmapped_compile_seconds"] = sw.compile_seconds
    out["speedup_vs_serial_scan"] = t_s[0] / t_v[0]
    out["speedup_vs_serial_step"] = t_p[0] / t_v[0]
    print(f"{seeds} seeds x {steps} steps: vmapped {t_v[0]:.3f} s; serial jitted step "
          f"{t_p[0]:.3f} s ({out['speedup_vs_serial_step']:.2f}x), serial jitted scan "
          f"{t_s[0]:.3f} s ({out['speedup_vs_serial_scan']:.2f}x) (target >= 4x)")
    # remedy cost per step (one seed, jitted scan), relative to the plain step
    costs = {}
    base = None
    for remedy in ["none"] + [r for r in (remedies or gan.REMEDIES) if r != "none"]:
        spec_r, nets_r = gm.build(c, remedy)
        p = _seed_program(spec_r, nets_r, steps, opt, sample)
        jax.block_until_ready(p(key, centers))
        # the fastest of several calls: one seed's short scan is noisy on a shared CPU
        t = _timed(lambda p=p: p(key, centers), 2 * repeats + 1)[1] / steps
        base = t if remedy == "none" else base
        costs[remedy] = {"seconds_per_step": t, "relative": t / base}
        print(f"  {remedy:26s} {1e3 * t:8.3f} ms/step  {t / base:5.2f}x")
    out["remedy_cost"] = costs
    if image_seeds != 0:
        out["images"] = image_benchmark(image_seeds or 5, image_steps or (3 if quick else 12),
                                        repeats)
    path = out_path or os.path.join(HERE, "results", "gan_quick.json" if quick else "gan.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    print("wrote", path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--remedies", default=None, help="comma-separated subset of gan.REMEDIES")
    ap.add_argument("--image-seeds", type=int, default=None,
                    help="seeds of the conv-GAN comparison (default 5; 0 skips it)")
    ap.add_argument("--image-steps", type=int, default=None)
    ap.add_argument("--cpu-devices", type=int, default=None,
                    help="CPU devices for the sweep (default: one per core)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from jaxopt_lab.compare import devices

    devices.use_cpu_cores(a.cpu_devices)
    main(a.quick, a.seeds, a.steps, a.remedies.split(",") if a.remedies else None, a.out,
         a.image_seeds, a.image_steps)

"""Curvature engine benchmark: HVP cost, Lanczos vs power iteration, compile flatness, maps.

Five measurements, all in one process (ratios against baselines run in the same process):

1. HVP (forward-over-reverse) time and compiled memory over gradient time and memory on
   an MLP 784-1024-256-10 (~1.07M params, tanh) with a Fashion-MNIST batch of 128.
   Memory = temp + argument + output bytes from
   ``jax.jit(f).lower(...).compile().memory_analysis()``. Targets: <= 3x time, <= 2x memory.
2. HVPs needed to reach relative residual ``||Hv - lambda v|| / |lambda| <= 1e-3`` on the top
   eigenpair of that Hessian: fully reorthogonalized Lanczos (one run of ``M`` steps; the
   ``j``-step Ritz pair is read from its prefix, its residual checked with a true HVP that is
   not counted) vs power iteration (PyHessian-style; its residual comes free with each
   HVP). Target <= 30 HVPs for Lanczos.
3. Compile time (lower + compile, not run) of Lanczos on that HVP at 30, 90 and 300 steps:
   flat, because the loop is a ``lax.fori_loop``.
4. A 200x200 curvature map (both Hessian eigenvalues of 2-D Rosenbrock on [-2,2]x[-1,3]):
   vmapped dense Hessian + eigvalsh in one jit (``jaxopt_lab.curvature.curvature_map`` when
   it exists) vs the tutorial way, a Python double loop with a numpy central finite-difference
   Hessian and ``numpy.linalg.eigh`` per point. The loop is timed on a subset of points and
   extrapolated linearly to 40000 points. Two loop variants: the objective written in numpy
   (fastest possible loop) and the same JAX objective called eagerly (what a user of this
   library would pass).

5. The eigsh engine before/after (``--only eigsh``): on an MLP 784-256-256-128-10
   (300,938 params) with a batch of 128, the static-option eigsh of the previous commit
   (loaded from git, same process) vs the current one: first-call (compile + run) time for
   four new (k, which, num_iters) combinations, run time and top-1 error of the top-5 at
   40 steps, the tolerance-driven bottom eigenvalue (steps, HVPs) vs 200 fixed steps, and
   the spread over seeds of the three trace estimators at 30 matvecs.

6. Lanczos top-5 (``--only top5``): ``curvature.eigsh(k=5, which="LA", tol=1e-3)`` on the
   section-1 network (tolerance driven, default step limit): first call, run time, steps,
   HVPs, eigenvalues and their relative residuals.

Usage::

    python benchmarks/curvature.py [--quick] [--out PATH] [--only SECTION ...]
                                   [--sizes 784,2048,2048,2048,10] [--batch-size N]

``--quick`` shrinks the MLP (784-128-64-10, batch 32), the Lanczos budget and the map
(40x40) for a smoke run and writes ``results/curvature_quick.json`` instead. ``--only``
runs a subset of the sections (``hvp``, ``residual``, ``compile``, ``map``; repeatable or
comma-separated), e.g. ``--only map``; a partial run MERGES its sections into the existing
JSON (other sections and their dates are kept, see ``section_dates_utc``). ``--sizes`` and
``--batch-size`` replace the network of sections 1-3 and 6 (the first width must be 784):
``--sizes 784,2048,2048,2048,10`` is a 10.0M-parameter MLP (the accelerator run,
``benchmarks/accelerator.sh``). Timings on a shared machine are noisy: rerun before quoting.
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
from flax import nnx  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from jaxopt_lab.curvature import hessian, hvp, lanczos, power_iteration  # noqa: E402

TARGET_RESID = 1e-3
SECTIONS = ("hvp", "residual", "compile", "map", "eigsh", "top5")
SECTION_KEYS = {"hvp": "hvp_vs_grad", "residual": "hvps_to_residual",
                "compile": "lanczos_compile", "map": "curvature_map", "eigsh": "eigsh_engine",
                "top5": "lanczos_top5"}
# the eigsh implementation before the tolerance-driven engine, run as the in-process baseline
BASELINE_REV = "0ee89f4^"
NOTES = [
    "Lanczos HVP count: steps j of one run whose j-step top Ritz pair first has a "
    "true relative residual <= 1e-3; the checking HVP is not counted.",
    "Power iteration HVP count: HVPs until its own (true) relative residual <= 1e-3.",
    "Map loop times are measured on a random subset of grid points and extrapolated "
    "linearly to all points.",
    "Map vectorized time: median over repeated full public curvature_map calls (grid, "
    "Hessians, both eigenvalues and kind codes at every point, results as host numpy "
    "arrays), after one compile call; the loop computes only the eigenvalues.",
    "Memory is XLA's compiled memory analysis (temp + argument + output bytes); the "
    "HVP takes the direction v as an extra argument.",
    "Timings come from one run on a possibly shared machine: noisy.",
    "eigsh section: MLP 784-256-256-128-10 (300,938 params), batch 128; 'before' is the "
    "static-option eigsh of commit 0ee89f4^ loaded from git in the same process; compile "
    "seconds = first call minus the median of later calls with the same options.",
    "Partial runs (--only) merge into the existing JSON; section_dates_utc gives the date "
    "of each section's measurement.",
]


# ------------------------------------------------------------------------------ model + data
class MLP(nnx.Module):
    def __init__(self, sizes, rngs):
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def load_batch(batch_size):
    try:
        from jaxopt_lab.data.fashion_mnist import read_idx

        root = "/usr/share/datasets/fashion-mnist"
        images = read_idx(f"{root}/train-images-idx3-ubyte.gz")[:batch_size]
        labels = read_idx(f"{root}/train-labels-idx1-ubyte.gz")[:batch_size]
        x = images.reshape(batch_size, -1).astype(np.float32) / 255.0
        return jnp.asarray(x), jnp.asarray(labels.astype(np.int32)), "fashion-mnist"
    except Exception:  # pragma: no cover - fall back to synthetic data
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch_size, 784)).astype(np.float32)
        y = rng.integers(0, 10, batch_size).astype(np.int32)
        return jnp.asarray(x), jnp.asarray(y), "synthetic"


def make_problem(sizes, batch_size):
    graphdef, params = nnx.split(MLP(sizes, nnx.Rngs(0)))

    def loss(p, batch):
        logits = nnx.merge(graphdef, p)(batch[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    x, y, source = load_batch(batch_size)
    return loss, params, (x, y), source


# ---------------------------------------------------------------------------------- helpers
def timed_compile(fn, *args):
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, t1 - t0, t2 - t1


def run_time(compiled, *args, repeats):
    jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def memory_bytes(compiled):
    ma = compiled.memory_analysis()
    if ma is None:
        return None
    return {
        "temp": int(ma.temp_size_in_bytes),
        "argument": int(ma.argument_size_in_bytes),
        "output": int(ma.output_size_in_bytes),
        "total": int(ma.temp_size_in_bytes + ma.argument_size_in_bytes
                     + ma.output_size_in_bytes),
    }


# -------------------------------------------------------------------------- 1. HVP vs grad
def bench_hvp(loss, params, batch, repeats):
    v = jax.tree_util.tree_map(lambda p: jnp.ones_like(p) * 1e-2, params)
    grad_c, g_low, g_comp = timed_compile(lambda p, b: jax.grad(loss)(p, b), params, batch)
    hvp_c, h_low, h_comp = timed_compile(lambda p, u, b: hvp(loss, p, u, b), params, v, batch)
    g_med, g_min = run_time(grad_c, params, batch, repeats=repeats)
    h_med, h_min = run_time(hvp_c, params, v, batch, repeats=repeats)
    g_mem, h_mem = memory_bytes(grad_c), memory_bytes(hvp_c)
    out = {
        "grad_seconds_median": g_med, "grad_seconds_min": g_min,
        "hvp_seconds_median": h_med, "hvp_seconds_min": h_min,
        "time_ratio": h_med / g_med,
        "grad_compile_seconds": g_low + g_comp, "hvp_compile_seconds": h_low + h_comp,
        "grad_memory": g_mem, "hvp_memory": h_mem,
    }
    if g_mem and h_mem:
        out["memory_ratio"] = h_mem["total"] / g_mem["total"]
        out["temp_memory_ratio"] = h_mem["temp"] / max(g_mem["temp"], 1)
    return out


# ------------------------------------------------------- 2. HVPs to a relative residual 1e-3
def bench_hvps_to_residual(loss, params, batch, max_lanczos, max_power):
    flat, unravel = ravel_pytree(params)
    n = flat.shape[0]

    def flat_hvp(p, b, u):
        return ravel_pytree(hvp(loss, p, unravel(u), b))[0]

    def run_lanczos(p, b, v0):
        return lanczos(lambda u: flat_hvp(p, b, u), v0, max_lanczos)

    v0 = jax.random.normal(jax.random.key(0), (n,), flat.dtype)
    lz_c, lz_low, lz_comp = timed_compile(run_lanczos, params, batch, v0)
    t0 = time.perf_counter()
    res = jax.block_until_ready(lz_c(params, batch, v0))
    lz_run = time.perf_counter() - t0
    hvp_c = jax.jit(flat_hvp)
    alphas = np.asarray(res.alphas, np.float64)
    betas = np.asarray(res.betas, np.float64)
    basis = np.asarray(res.basis)
    history = []
    needed = None
    for j in range(1, max_lanczos + 1):
        t = np.diag(alphas[:j]) + np.diag(betas[: j - 1], 1) + np.diag(betas[: j - 1], -1)
        w, s = np.linalg.eigh(t)
        y = (s[:, -1].astype(np.float32) @ basis[:j]).astype(np.float32)
        y /= np.linalg.norm(y)
        hy = np.asarray(hvp_c(params, batch, jnp.asarray(y)))
        rel = float(np.linalg.norm(hy - w[-1] * y) / abs(w[-1]))
        history.append({"hvps": j, "ritz_value": float(w[-1]), "relative_residual": rel})
        if rel <= TARGET_RESID:
            needed = j
            break
    t0 = time.perf_counter()
    pw = power_iteration(loss, params, batch, k=1, num_iters=max_power, tol=TARGET_RESID,
                         key=jax.random.key(0))
    jax.block_until_ready(pw.eigenvalues)
    pw_first = time.perf_counter() - t0  # includes compile
    t0 = time.perf_counter()
    pw = power_iteration(loss, params, batch, k=1, num_iters=max_power, tol=TARGET_RESID,
                         key=jax.random.key(0))
    jax.block_until_ready(pw.eigenvalues)
    pw_run = time.perf_counter() - t0
    return {
        "dim": int(n),
        "lanczos_hvps": needed,
        "lanczos_max_steps": max_lanczos,
        "lanczos_top_eigenvalue": history[-1]["ritz_value"],
        "lanczos_final_relative_residual": history[-1]["relative_residual"],
        "lanczos_compile_seconds": lz_low + lz_comp,
        "lanczos_run_seconds_for_max_steps": lz_run,
        "lanczos_history": history,
        "power_hvps": int(pw.num_hvps[0]),
        "power_converged": bool(pw.converged[0]),
        "power_eigenvalue": float(pw.eigenvalues[0]),
        "power_relative_residual": float(pw.residuals[0] / abs(pw.eigenvalues[0])),
        "power_run_seconds": pw_run,
        "power_compile_seconds_approx": max(pw_first - pw_run, 0.0),
    }


# ------------------------------------------------------------------ 3. compile flatness
def bench_compile(loss, params, batch, steps_list, repeats=2):
    flat, unravel = ravel_pytree(params)
    v0 = jnp.ones_like(flat)
    out = []
    for m in steps_list:
        # a fresh function object each repeat, so no jit-cache hit; keep the fastest
        lows, comps = [], []
        for _ in range(repeats):
            def run(p, b, v, m=m):
                mv = lambda u: ravel_pytree(hvp(loss, p, unravel(u), b))[0]
                return lanczos(mv, v, m)

            _, low, comp = timed_compile(run, params, batch, v0)
            lows.append(low)
            comps.append(comp)
        out.append({"num_iters": m, "lower_seconds": min(lows), "compile_seconds": min(comps),
                    "total_seconds": min(lo + c for lo, c in zip(lows, comps, strict=True)),
                    "repeats": repeats})
    return out


# -------------------------------------------------------------------- 4. curvature map
def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def rosenbrock_np(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def fd_hessian(f, x, h=1e-4):
    d = x.shape[0]
    hess = np.zeros((d, d))
    eye = np.eye(d) * h
    f0 = f(x)
    for i in range(d):
        hess[i, i] = (f(x + eye[i]) - 2.0 * f0 + f(x - eye[i])) / h**2
        for j in range(i + 1, d):
            val = (f(x + eye[i] + eye[j]) - f(x + eye[i] - eye[j])
                   - f(x - eye[i] + eye[j]) + f(x - eye[i] - eye[j])) / (4.0 * h**2)
            hess[i, j] = hess[j, i] = val
    return hess


def loop_map(f, xs, ys, points):
    out = []
    for i, j in points:
        h = fd_hessian(lambda p: float(f(p)), np.array([xs[i], ys[j]], np.float64))
        out.append(np.linalg.eigh(h)[0])
    return np.array(out)


def bench_map(resolution, subset, subset_eager, repeats=20):
    lo, hi = np.array([-2.0, -1.0]), np.array([2.0, 3.0])
    xs = np.linspace(lo[0], hi[0], resolution)
    ys = np.linspace(lo[1], hi[1], resolution)
    method = "vmap(hessian + eigvalsh) in the benchmark"
    try:  # the library's map, once it exists
        from jaxopt_lab.curvature import curvature_map  # noqa: F401

        use_lib = True
        method = "jaxopt_lab.curvature.curvature_map"
    except ImportError:
        use_lib = False

    if use_lib:
        from jaxopt_lab.curvature import curvature_map

        t0 = time.perf_counter()
        cm = curvature_map(rosenbrock, (lo, hi), resolution)
        jax.block_until_ready(cm.min_eig)
        first = time.perf_counter() - t0
        # timed: one full public call (grid, Hessians, eigenvalues, kind codes, host arrays)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            cm = curvature_map(rosenbrock, (lo, hi), resolution)
            jax.block_until_ready(cm.min_eig)
            times.append(time.perf_counter() - t0)
        vec_time, vec_min = float(np.median(times)), float(np.min(times))
        compile_s = max(first - vec_time, 0.0)
        eig_grid = np.stack([np.asarray(cm.min_eig), np.asarray(cm.max_eig)], -1)
        lib_xs, lib_ys = np.asarray(cm.xs), np.asarray(cm.ys)
        grid_fn = None
        if lib_xs.ndim == 1 and lib_ys.ndim == 1:
            xs, ys = lib_xs, lib_ys
            # documented layout: [ny, nx] arrays, row j is ys[j]
            grid_fn = [lambda i, j: eig_grid[j, i]]
    else:
        def map_fn(xg, yg):
            pts = jnp.stack(jnp.meshgrid(xg, yg, indexing="ij"), -1).reshape(-1, 2)
            eig = jax.vmap(lambda p: jnp.linalg.eigvalsh(hessian(rosenbrock, p)))(pts)
            return eig.reshape(xg.shape[0], yg.shape[0], 2)

        xg, yg = jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32)
        compiled, low, comp = timed_compile(map_fn, xg, yg)
        compile_s = low + comp
        repeats = 5
        vec_time, vec_min = run_time(compiled, xg, yg, repeats=repeats)
        eig_grid = np.asarray(compiled(xg, yg))
        grid_fn = [lambda i, j: eig_grid[i, j]]

    rng = np.random.default_rng(0)
    pts = [tuple(p) for p in rng.integers(0, resolution, size=(subset, 2))]
    t0 = time.perf_counter()
    loop_eigs = loop_map(rosenbrock_np, xs, ys, pts)
    loop_np = (time.perf_counter() - t0) / subset
    pts_e = pts[:subset_eager]
    jax_f = lambda p: rosenbrock(jnp.asarray(p, jnp.float32))
    loop_map(jax_f, xs, ys, pts_e[:2])  # warm the eager op cache
    t0 = time.perf_counter()
    loop_map(jax_f, xs, ys, pts_e)
    loop_eager = (time.perf_counter() - t0) / len(pts_e)
    total = resolution * resolution
    agree = None
    if grid_fn is not None:
        agree = min(
            float(np.max([np.max(np.abs(fn(i, j) - e) / np.maximum(1.0, np.abs(e)))
                          for (i, j), e in zip(pts, loop_eigs, strict=True)]))
            for fn in grid_fn
        )
    return {
        "resolution": resolution,
        "points": total,
        "vectorized_method": method,
        "vectorized_seconds": vec_time,
        "vectorized_seconds_min": vec_min,
        "vectorized_repeats": repeats,
        "vectorized_compile_seconds": compile_s,
        "loop_numpy_f_seconds_per_point": loop_np,
        "loop_numpy_f_points_timed": subset,
        "loop_numpy_f_seconds_extrapolated": loop_np * total,
        "speedup_vs_numpy_f_loop": loop_np * total / vec_time,
        "loop_eager_jax_f_seconds_per_point": loop_eager,
        "loop_eager_jax_f_points_timed": len(pts_e),
        "loop_eager_jax_f_seconds_extrapolated": loop_eager * total,
        "speedup_vs_eager_jax_f_loop": loop_eager * total / vec_time,
        "max_relative_difference_vs_finite_differences": agree,
    }


# ---------------------------------------------------------- 5. eigsh engine before/after
def _load_baseline_spectrum():
    import importlib.util
    import subprocess
    import tempfile

    src = subprocess.run(["git", "show", f"{BASELINE_REV}:jaxopt_lab/curvature/spectrum.py"],
                         cwd=os.path.dirname(HERE), capture_output=True, text=True, check=True)
    path = os.path.join(tempfile.mkdtemp(), "spectrum_before.py")
    with open(path, "w") as fh:
        fh.write(src.stdout)
    spec = importlib.util.spec_from_file_location("spectrum_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _timed(fn, repeats=3):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.eigenvalues)
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn().eigenvalues)
        runs.append(time.perf_counter() - t0)
    run = float(np.median(runs))
    return out, {"first_call_seconds": first, "run_seconds": run,
                 "compile_seconds": max(first - run, 0.0)}


def bench_eigsh(sizes, batch_size, quick):
    from jaxopt_lab import curvature

    before = _load_baseline_spectrum()
    loss, params, batch, _ = make_problem(sizes, batch_size)
    n = int(sum(p.size for p in jax.tree_util.tree_leaves(params)))
    key = jax.random.key(0)
    out = {"dim": n, "sizes": list(sizes), "baseline": BASELINE_REV}
    # reference top eigenvalue: a long fixed run of the new engine
    ref = curvature.eigsh(loss, params, batch, k=1, num_iters=160, key=key)
    out["reference_top_eigenvalue"] = float(ref.eigenvalues[0])
    rows = []
    combos = [(5, "LA", 40), (1, "SA", 60), (3, "both", 50), (2, "LA", 80)]
    for impl, mod in (("before", before), ("after", curvature)):
        for k, which, m in combos:
            res, t = _timed(lambda mod=mod, k=k, which=which, m=m: mod.eigsh(
                loss, params, batch, k=k, which=which, num_iters=m, key=key), repeats=2)
            row = {"impl": impl, "k": k, "which": which, "num_iters": m, **t,
                   "top_eigenvalue": float(np.max(np.asarray(res.eigenvalues)))}
            if which == "LA":
                row["top1_relative_error"] = abs(float(res.eigenvalues[0])
                                                 - out["reference_top_eigenvalue"]) / abs(
                    out["reference_top_eigenvalue"])
            rows.append(row)
            print(f"  {impl:6s} k={k} {which:4s} num_iters={m}: first call "
                  f"{t['first_call_seconds']:.2f} s, run {t['run_seconds']:.3f} s")
    out["fixed_steps"] = rows
    # tolerance-driven bottom eigenvalue vs the old fixed 200 steps (a new static option)
    res, t = _timed(lambda: curvature.eigsh(loss, params, batch, k=1, which="SA", tol=1e-3,
                                            max_iters=300, key=key), repeats=1)
    out["bottom_tol"] = {"tol": 1e-3, "max_iters": 300, **t,
                         "eigenvalue": float(res.eigenvalues[0]),
                         "residual": float(res.residuals[0]),
                         "norm_estimate": float(res.norm_estimate),
                         "converged": bool(res.converged[0]), "num_iters": res.num_iters,
                         "num_hvps": res.num_hvps}
    old, t_old = _timed(lambda: before.eigsh(loss, params, batch, k=1, which="SA",
                                             num_iters=200, key=key), repeats=1)
    out["bottom_before_200_steps"] = {**t_old, "eigenvalue": float(old.eigenvalues[0]),
                                      "residual": float(old.residuals[0])}
    # trace estimators at an equal matvec budget: spread over seeds
    seeds = 4 if quick else 10
    tr = {}
    for method in ("hutchinson", "hutch++", "xtrace"):
        ests = [float(curvature.trace(loss, params, batch, key=jax.random.key(s),
                                      num_probes=30, method=method).estimate)
                for s in range(seeds)]
        tr[method] = {"mean": float(np.mean(ests)), "std_over_seeds": float(np.std(ests)),
                      "seeds": seeds, "num_probes": 30}
    out["trace_std_30_matvecs"] = tr
    return out


# ---------------------------------------------------------------- 6. Lanczos top-5
def bench_top5(loss, params, batch, k=5, tol=1e-3, repeats=2):
    from jaxopt_lab import curvature

    key = jax.random.key(0)
    res, t = _timed(lambda: curvature.eigsh(loss, params, batch, k=k, which="LA", tol=tol,
                                            key=key), repeats=repeats)
    vals = np.asarray(res.eigenvalues, np.float64)
    return {"k": k, "which": "LA", "tol": tol, **t, "num_iters": int(res.num_iters),
            "num_hvps": int(res.num_hvps), "eigenvalues": vals.tolist(),
            "relative_residuals": (np.asarray(res.residuals, np.float64)
                                   / np.abs(vals)).tolist(),
            "converged": np.asarray(res.converged).tolist()}


def _print_eigsh(r5):
    rows = {(r["impl"], r["k"], r["which"], r["num_iters"]): r for r in r5["fixed_steps"]}
    for key in [k for k in rows if k[0] == "after"]:
        a, b = rows[key], rows[("before",) + key[1:]]
        print(f"| eigsh k={key[1]} {key[2]} {key[3]} steps: first call (compile+run) "
              f"before / after | {b['first_call_seconds']:.2f} / {a['first_call_seconds']:.2f} s"
              f" | |")
    a = rows[("after", 5, "LA", 40)]
    b = rows[("before", 5, "LA", 40)]
    print(f"| top-5 LA, 40 steps, run time before / after | {b['run_seconds']:.3f} / "
          f"{a['run_seconds']:.3f} s ({a['run_seconds'] / b['run_seconds']:.2f}x) | |")
    print(f"| top-1 relative error (40 steps) before / after | "
          f"{b['top1_relative_error']:.1e} / {a['top1_relative_error']:.1e} | |")
    bt, bo = r5["bottom_tol"], r5["bottom_before_200_steps"]
    print(f"| bottom eigenvalue, tol 1e-3: steps / HVPs / first call | {bt['num_iters']} / "
          f"{bt['num_hvps']} / {bt['first_call_seconds']:.2f} s (lambda {bt['eigenvalue']:.4g},"
          f" converged={bt['converged']}) | |")
    print(f"| bottom eigenvalue before, 200 fixed steps, first call | "
          f"{bo['first_call_seconds']:.2f} s (lambda {bo['eigenvalue']:.4g}) | |")
    tr = r5["trace_std_30_matvecs"]
    print("| trace std over seeds, 30 matvecs: hutchinson / hutch++ / xtrace | "
          + " / ".join(f"{tr[m]['std_over_seeds']:.3g}" for m in ("hutchinson", "hutch++",
                                                                  "xtrace")) + " | |")


# ------------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--only", action="append", default=None, metavar="SECTION",
                        help="run only these sections (repeatable or comma-separated): "
                        + ", ".join(SECTIONS) + "; results merge into the existing JSON")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/curvature.json, "
                        "curvature_quick.json with --quick)")
    parser.add_argument("--sizes", default=None,
                        help="MLP widths of sections hvp/residual/compile/top5, comma-"
                        "separated, first 784 (e.g. 784,2048,2048,2048,10: 10.0M params)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch of sections hvp/residual/compile/top5")
    args = parser.parse_args(argv)
    only = list(SECTIONS) if args.only is None else [
        x.strip() for item in args.only for x in item.split(",") if x.strip()]
    bad = [x for x in only if x not in SECTIONS]
    if bad or not only:
        parser.error(f"--only: unknown section(s) {bad}, allowed: {', '.join(SECTIONS)}")
    if args.out is None:
        name = "curvature_quick.json" if args.quick else "curvature.json"
        args.out = os.path.join(HERE, "results", name)

    if args.quick:
        sizes, batch_size, repeats = (784, 128, 64, 10), 32, 20
        max_lanczos, max_power, steps_list = 40, 300, (30, 90, 300)
        resolution, subset, subset_eager = 40, 100, 10
    else:
        sizes, batch_size, repeats = (784, 1024, 256, 10), 128, 30
        max_lanczos, max_power, steps_list = 60, 2000, (30, 90, 300)
        resolution, subset, subset_eager = 200, 400, 40
    if args.sizes:
        sizes = tuple(int(w) for w in args.sizes.split(","))
        if len(sizes) < 2 or sizes[0] != 784:
            parser.error(f"--sizes: at least two widths, the first 784, got {args.sizes}")
    batch_size = args.batch_size or batch_size

    r1 = r2 = r3 = r4 = r5 = r6 = None
    model = None
    if {"hvp", "residual", "compile", "top5"} & set(only):
        loss, params, batch, source = make_problem(sizes, batch_size)
        n_params = int(sum(p.size for p in jax.tree_util.tree_leaves(params)))
        model = {"sizes": list(sizes), "params": n_params, "batch": batch_size, "data": source}
        print(f"# MLP {'-'.join(map(str, sizes))} ({n_params} params), batch {batch_size} "
              f"({source}), device {jax.devices()[0].device_kind}, jax {jax.__version__}")
        if "hvp" in only:
            r1 = bench_hvp(loss, params, batch, repeats)
        if "residual" in only:
            r2 = bench_hvps_to_residual(loss, params, batch, max_lanczos, max_power)
        if "compile" in only:
            r3 = bench_compile(loss, params, batch, steps_list)
        if "top5" in only:
            r6 = bench_top5(loss, params, batch)
    if "eigsh" in only:
        eig_sizes = (784, 64, 32, 10) if args.quick else (784, 256, 256, 128, 10)
        print(f"# eigsh engine, MLP {'-'.join(map(str, eig_sizes))}, device "
              f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
        r5 = bench_eigsh(eig_sizes, 32 if args.quick else 128, args.quick)
    if "map" in only:
        print(f"# curvature map {resolution}x{resolution}, device "
              f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
        r4 = bench_map(resolution, subset, subset_eager)

    print("\n| measurement | value | target |")
    print("|---|---|---|")
    if r1 is not None:
        _print_hvp(r1)
    if r2 is not None:
        _print_residual(r2)
    if r3 is not None:
        for row in r3:
            print(f"| Lanczos lower+compile, {row['num_iters']} steps | "
                  f"{row['total_seconds']:.2f} s | flat |")
    if r4 is not None:
        _print_map(r4)
    if r5 is not None:
        _print_eigsh(r5)
    if r6 is not None:
        print(f"| Lanczos top-5 (tol 1e-3): steps / HVPs | {r6['num_iters']} / "
              f"{r6['num_hvps']} (converged {sum(r6['converged'])}/5) | |")
        print(f"| Lanczos top-5: first call / run | {r6['first_call_seconds']:.2f} s / "
              f"{r6['run_seconds']:.3f} s | |")
        print("| top-5 eigenvalues | " + ", ".join(f"{v:.5g}" for v in r6["eigenvalues"])
              + " | |")

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ran = {"hvp_vs_grad": r1, "hvps_to_residual": r2, "lanczos_compile": r3, "curvature_map": r4,
           "eigsh_engine": r5, "lanczos_top5": r6}
    ran = {k: v for k, v in ran.items() if v is not None}
    result = {}
    if set(only) != set(SECTIONS) and os.path.exists(args.out):
        with open(args.out) as fh:  # partial run: keep the other sections' results
            old = json.load(fh)
        if old.get("quick") == args.quick:
            result = old
            result.setdefault("section_dates_utc", {
                k: old.get("date_utc") for k in SECTION_KEYS.values() if k in old})
    result.update({
        "benchmark": "curvature",
        "quick": args.quick,
        "date_utc": now,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "device": jax.devices()[0].device_kind,
                    "backend": jax.default_backend()},
        "versions": {"jax": jax.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    })
    if model is not None:
        result["model"] = model
    result.update(ran)
    result.setdefault("section_dates_utc", {}).update({k: now for k in ran})
    result["notes"] = NOTES
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {args.out} (sections: {', '.join(ran)})")
    return result


def _print_hvp(r1):
    mb = lambda m: m["total"] / 2**20 if m else float("nan")
    print(f"| grad time (median) | {r1['grad_seconds_median'] * 1e3:.2f} ms | |")
    print(f"| HVP time (median) | {r1['hvp_seconds_median'] * 1e3:.2f} ms | |")
    print(f"| HVP / grad time | {r1['time_ratio']:.2f}x | <= 3x |")
    print(f"| grad memory (temp+arg+out) | {mb(r1['grad_memory']):.1f} MiB | |")
    print(f"| HVP memory (temp+arg+out) | {mb(r1['hvp_memory']):.1f} MiB | |")
    print(f"| HVP / grad memory | {r1.get('memory_ratio', float('nan')):.2f}x | <= 2x |")


def _print_residual(r2):
    print(f"| top eigenvalue (Lanczos / power) | {r2['lanczos_top_eigenvalue']:.5g} / "
          f"{r2['power_eigenvalue']:.5g} | |")
    print(f"| HVPs to rel. residual 1e-3, Lanczos | {r2['lanczos_hvps']} "
          f"(max {r2['lanczos_max_steps']}) | <= 30 |")
    print(f"| HVPs to rel. residual 1e-3, power iteration | {r2['power_hvps']} "
          f"(converged={r2['power_converged']}) | |")


def _print_map(r4):
    print(f"| {r4['resolution']}x{r4['resolution']} map, vectorized "
          f"({r4['vectorized_method']}), median of {r4['vectorized_repeats']} | "
          f"{r4['vectorized_seconds'] * 1e3:.2f} ms (min {r4['vectorized_seconds_min'] * 1e3:.2f}"
          f" ms, +{r4['vectorized_compile_seconds']:.2f} s compile) | |")
    print(f"| map, Python loop + numpy FD Hessian, numpy f (extrapolated from "
          f"{r4['loop_numpy_f_points_timed']} pts) | "
          f"{r4['loop_numpy_f_seconds_extrapolated']:.2f} s | |")
    print(f"| speedup vs numpy-f loop | {r4['speedup_vs_numpy_f_loop']:.0f}x | >= 1000x |")
    print(f"| map, Python loop + numpy FD Hessian, eager JAX f (extrapolated from "
          f"{r4['loop_eager_jax_f_points_timed']} pts) | "
          f"{r4['loop_eager_jax_f_seconds_extrapolated']:.2f} s | |")
    print(f"| speedup vs eager-JAX-f loop | {r4['speedup_vs_eager_jax_f_loop']:.0f}x | |")
    if r4["max_relative_difference_vs_finite_differences"] is not None:
        print(f"| map max rel. difference vs FD loop | "
              f"{r4['max_relative_difference_vs_finite_differences']:.2e} | |")


if __name__ == "__main__":
    main()

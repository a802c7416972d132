"""A 51 x 51 filter-normalized loss plane (Li et al. 2018) of an MLP on digits: the lab's
vmapped chunks (:func:`jaxopt_lab.curvature.landscape_slice`, ``rows_per_batch`` rows per
``vmap`` chunk inside one jitted program) vs a per-point Python loop of the same jitted
loss (one call per grid point, ``float`` of each value, as a hand-written loop does).

Both compute ``loss(unravel(theta + a d1 + b d2), x, y)`` with the same directions; the
script checks they agree (max abs difference printed) and reports compile-free wall times
(median of ``--repeats`` calls after a warm-up) and the speed-up (target >= 20x on CPU).
Three setups by default (``--setups``, ``EXAMPLESxHIDDEN``): ``512x64`` (each point a
512 x 64 x 64 matmul: compute-bound, the loop's per-call overhead is small beside it),
``64x16`` and ``16x8`` (each point tiny: the loop is dominated by Python/dispatch
overhead, the case vectorization removes). Prints a table and writes
``results/landscape_slices.json`` (or ``--out``).

Usage::

    python benchmarks/landscape_slices.py [--resolution 51] [--setups 512x64,64x16,16x8]
        [--rows-per-batch 17] [--repeats 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab import curvature, data, models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=51)
    ap.add_argument("--setups", default="512x64,64x16,16x8",
                    help="comma-separated EXAMPLESxHIDDEN")
    ap.add_argument("--rows-per-batch", type=int, default=17)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "landscape_slices.json"))
    a = ap.parse_args()
    if a.resolution < 2:
        raise SystemExit(f"--resolution must be >= 2, got {a.resolution}")
    setups = []
    for item in a.setups.split(","):
        try:
            ex, hid = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--setups must be EXAMPLESxHIDDEN items, got {item!r}") from None
        setups.append((ex, hid))
    runs = [bench(a, ex, hid) for ex, hid in setups]
    result = {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "jax": jax.__version__, "backend": jax.default_backend(),
                    "load_average": list(os.getloadavg())},
        "resolution": a.resolution, "rows_per_batch": a.rows_per_batch,
        "repeats": a.repeats, "target": 20.0, "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {a.out}")


def bench(a, examples: int, hidden: int) -> dict:
    """Time one setup; print its table; return its record."""
    d = data.load_digits()
    x = jnp.asarray(d["train"][0][: examples])
    y = jnp.asarray(d["train"][1][: examples])
    model = models.mlp(64, (hidden,), 10, activation="tanh", init="xavier")
    ce = models.loss_fn("cross_entropy")

    def loss(params, xx, yy):
        return ce(model.apply(params, xx), yy)

    params = model.init(jax.random.key(0))
    d1, d2 = curvature.random_directions(jax.random.key(1), params, normalize="filter")
    n_params = int(ravel_pytree(params)[0].size)

    def vmapped():
        return curvature.landscape_slice(loss, params, d1, d2, x, y, span=1.0,
                                         resolution=a.resolution,
                                         rows_per_batch=a.rows_per_batch).values

    flat, unravel = ravel_pytree(params)
    v1, v2 = ravel_pytree(d1)[0], ravel_pytree(d2)[0]

    @jax.jit
    def point(alpha, beta, xx, yy):
        return loss(unravel(flat + beta * v2 + alpha * v1), xx, yy)

    coef = np.asarray(jnp.linspace(-1.0, 1.0, a.resolution, dtype=flat.dtype))

    def loop():
        out = np.empty((a.resolution, a.resolution), np.float32)
        for i, beta in enumerate(coef):
            for j, alpha in enumerate(coef):
                out[i, j] = float(point(alpha, beta, x, y))
        return out

    def timed(fn):
        t0 = time.perf_counter()
        v = np.asarray(fn())
        first = time.perf_counter() - t0
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            v = np.asarray(fn())
            times.append(time.perf_counter() - t0)
        return v, first, statistics.median(times)

    v_vm, first_vm, t_vm = timed(vmapped)
    v_lp, first_lp, t_lp = timed(loop)
    diff = float(np.max(np.abs(v_vm - v_lp)))
    speedup = t_lp / t_vm
    rows = [("vmapped chunks (landscape_slice)", first_vm, t_vm),
            ("per-point loop of the jitted loss", first_lp, t_lp)]
    print(f"{a.resolution}x{a.resolution} filter-normalized plane, MLP 64-{hidden}-10 "
          f"({n_params} params), {examples} examples, jax {jax.__version__} "
          f"{jax.default_backend()}")
    print(f"{'method':36s} {'first call s':>13s} {'median s':>10s}")
    for name, f, t in rows:
        print(f"{name:36s} {f:13.3f} {t:10.3f}")
    print(f"speed-up {speedup:.1f}x (target >= 20x: {'met' if speedup >= 20 else 'MISSED'});"
          f" max |vmapped - loop| = {diff:.2e}")
    return {"examples": examples, "hidden": hidden, "num_params": n_params,
            "vmapped": {"first_call_s": first_vm, "median_s": t_vm},
            "loop": {"first_call_s": first_lp, "median_s": t_lp},
            "speedup": speedup, "met": bool(speedup >= 20), "max_abs_difference": diff}


if __name__ == "__main__":
    main()

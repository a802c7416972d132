"""SLQ accuracy against a dense float64 ``eigh`` on networks of at most 5k parameters.

For small networks trained on digits / Fashion-MNIST (the ``spectra`` experiment's
models, trained by its sweep-core Trial), at initialization and after training, the
lab's SLQ (:func:`jaxopt_lab.curvature.spectral_density`) at several (probes, Lanczos
steps) budgets is compared with the exact spectrum of the float64 Hessian (same data):

* density L1: both measures smoothed by the same Gaussian (``sigma`` = 1% of the exact
  spectral range) on a common grid (exact range +- 5 sigma, 4001 points),
  ``L1 = int |p_slq - p_dense|`` (0 = equal, 2 = disjoint);
* W1 / range: Wasserstein-1 distance between the SLQ quadrature measure (nodes, weights
  averaged over probes) and the exact empirical spectral measure, computed exactly from
  the two CDFs, divided by ``lambda_max - lambda_min`` (no smoothing involved);
* trace error: ``|n * mean_p sum_i w_i theta_i - tr H| / sum |lambda|``;
* extreme eigenvalue errors: ``|max theta - lambda_max| / |lambda_max|`` and
  ``|min theta - lambda_min| / |lambda_max|``;
* index error: ``|SLQ weight on negative nodes - fraction of negative eigenvalues|``
  (an eigenvalue counts as negative below ``-1e-6 max |lambda|``, as in ``spectra``).

Each cell is the mean (and max) over ``--keys`` probe keys. The matvec count of a
budget is ``probes x steps``.

Usage::

    python benchmarks/slq_accuracy.py [--quick] [--keys 3] [--out PATH]

``--quick`` uses two networks and two budgets (smoke run, ``slq_accuracy_quick.json``).
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

NEG_THRESHOLD = 1e-6
GRID_POINTS = 4001
SIGMA_FRACTION = 0.01


# ------------------------------------------------------------------ metrics (shared)
def gaussian_smooth(nodes, weights, grid, sigma):
    """``sum_i w_i N(grid; nodes_i, sigma^2)`` for flat nodes/weights (weights sum to 1)."""
    nodes = np.asarray(nodes, np.float64).ravel()
    weights = np.asarray(weights, np.float64).ravel()
    out = np.zeros_like(grid)
    for start in range(0, nodes.size, 512):
        z = (grid[:, None] - nodes[None, start:start + 512]) / sigma
        out += np.exp(-0.5 * z**2) @ weights[start:start + 512]
    return out / (sigma * np.sqrt(2.0 * np.pi))


def common_grid(eigs, sigma_fraction=SIGMA_FRACTION, points=GRID_POINTS):
    """``(grid, sigma)``: exact range +- 5 sigma, sigma = fraction of the exact range."""
    lo, hi = float(np.min(eigs)), float(np.max(eigs))
    sigma = sigma_fraction * max(hi - lo, 1e-12)
    return np.linspace(lo - 5 * sigma, hi + 5 * sigma, points), sigma


def density_l1(nodes, weights, eigs, grid, sigma):
    """L1 distance of the smoothed quadrature measure and smoothed exact spectrum."""
    eigs = np.asarray(eigs, np.float64)
    p = gaussian_smooth(nodes, weights, grid, sigma)
    q = gaussian_smooth(eigs, np.full(eigs.size, 1.0 / eigs.size), grid, sigma)
    return float(np.trapezoid(np.abs(p - q), grid))


def wasserstein1(nodes, weights, eigs):
    """Exact W1 between the discrete measure (nodes, weights / sum) and the empirical
    measure of ``eigs``: the integral of |CDF difference|."""
    a = np.asarray(nodes, np.float64).ravel()
    wa = np.asarray(weights, np.float64).ravel()
    wa = wa / wa.sum()
    b = np.asarray(eigs, np.float64).ravel()
    wb = np.full(b.size, 1.0 / b.size)
    pts = np.concatenate([a, b])
    w = np.concatenate([wa, -wb])
    order = np.argsort(pts, kind="stable")
    pts, w = pts[order], w[order]
    cdf_diff = np.cumsum(w)[:-1]
    return float(np.sum(np.abs(cdf_diff) * np.diff(pts)))


def quadrature_stats(nodes, weights, eigs, n):
    """Every accuracy metric of one SLQ result ``nodes/weights [P, m]`` against the exact
    eigenvalues ``eigs``."""
    nodes = np.asarray(nodes, np.float64)
    weights = np.asarray(weights, np.float64)
    eigs = np.sort(np.asarray(eigs, np.float64))
    P = nodes.shape[0]
    grid, sigma = common_grid(eigs)
    lam_max = float(np.max(np.abs(eigs)))
    span = float(eigs[-1] - eigs[0])
    trace_slq = n * float(np.mean(np.sum(weights * nodes, axis=1)))
    index_slq = float(np.mean(np.sum(weights * (nodes < -NEG_THRESHOLD * lam_max), axis=1)))
    index_dense = float(np.mean(eigs < -NEG_THRESHOLD * lam_max))
    return {
        "density_l1": density_l1(nodes, weights / P, eigs, grid, sigma),
        "w1_over_range": wasserstein1(nodes, weights, eigs) / span,
        "trace_rel_error": abs(trace_slq - float(eigs.sum())) / float(np.abs(eigs).sum()),
        "top_rel_error": abs(float(nodes.max()) - float(eigs[-1])) / lam_max,
        "bottom_rel_error": abs(float(nodes.min()) - float(eigs[0])) / lam_max,
        "index_abs_error": abs(index_slq - index_dense),
        "trace_slq": trace_slq, "index_slq": index_slq,
    }


# -------------------------------------------------------------------------- networks
def networks(quick):
    """``(name, spectra.Config)`` of the networks (all <= 5k parameters)."""
    from jaxopt_lab.experiments import spectra

    base = dict(num_seeds=1, steps=300, checkpoints=(0, 300), curvature_examples=256)
    nets = [("mlp-digits-64-32-10", spectra.Config(hidden=32, **base)),
            ("cnn-digits-c4-c8", spectra.Config(model="cnn", channels=(4, 8), **base)),
            ("mlp-fmnist14-196-16-10", spectra.Config(dataset="fashion_mnist", hidden=16,
                                                      **base))]
    return nets[:2] if quick else nets


def trained_points(c):
    """``(loss, [(step, params)], x, y)``: the spectra Trial's checkpoints of seed 0."""
    import optax

    from jaxopt_lab import compare
    from jaxopt_lab.experiments import spectra

    inputs = spectra.load_data(c)
    sw = compare.sweep(spectra.trial(c, inputs),
                       {"sgd": (optax.sgd, {"learning_rate": [c.learning_rate]})},
                       num_seeds=1, key=jax.random.key(c.seed))
    out = sw.outputs["sgd"]
    pts = [(s, jax.tree.map(lambda a, j=j: np.asarray(a)[0, 0, j], out["checkpoints"]))
           for j, s in enumerate(c.checkpoints)]
    _, _, _, loss = spectra.model_and_loss(c)
    x = inputs["train"][0][: c.curvature_examples]
    y = inputs["train"][1][: c.curvature_examples]
    return loss, pts, x, y


def run_network(name, c, budgets, keys):
    from jaxopt_lab import curvature
    from jaxopt_lab.experiments import spectra

    loss, pts, x, y = trained_points(c)
    rows = []
    for step, params in pts:
        n = int(sum(np.size(a) for a in jax.tree.leaves(params)))
        t0 = time.perf_counter()
        eigs = np.linalg.eigvalsh(spectra._dense(loss, params, x, y))
        t_dense = time.perf_counter() - t0
        base = {"network": name, "step": int(step), "params": n,
                "loss": float(loss(params, x, y)), "dense_seconds": t_dense,
                "lambda_max": float(eigs[-1]), "lambda_min": float(eigs[0]),
                "trace": float(eigs.sum()),
                "index": float(np.mean(eigs < -NEG_THRESHOLD * np.max(np.abs(eigs))))}
        for probes, steps in budgets:
            per_key = []
            for k in range(keys):
                d = curvature.spectral_density(loss, params, x, y, key=jax.random.key(k),
                                               num_probes=probes, num_iters=steps)
                per_key.append(quadrature_stats(np.asarray(d.nodes), np.asarray(d.weights),
                                                eigs, n))
            row = dict(base, probes=probes, steps=steps, matvecs=probes * steps, keys=keys)
            for m in per_key[0]:
                vals = np.array([r[m] for r in per_key])
                row[m] = float(vals.mean())
                row[m + "_max"] = float(vals.max())
            rows.append(row)
            print(f"  {name} step {step} P={probes} m={steps}: L1 {row['density_l1']:.3f}, "
                  f"W1/range {row['w1_over_range']:.2e}, trace err "
                  f"{row['trace_rel_error']:.2e}, index err {row['index_abs_error']:.3f}",
                  flush=True)
    return rows


def print_table(rows):
    print("\n| network (params) | step | probes x steps (matvecs) | density L1 | W1 / range "
          "| trace rel. err | top rel. err | bottom rel. err | index abs. err "
          "(exact index) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} ({r['params']}) | {r['step']} | {r['probes']} x {r['steps']} "
              f"({r['matvecs']}) | {r['density_l1']:.3f} (max {r['density_l1_max']:.3f}) | "
              f"{r['w1_over_range']:.1e} | {r['trace_rel_error']:.1e} | "
              f"{r['top_rel_error']:.1e} | {r['bottom_rel_error']:.1e} | "
              f"{r['index_abs_error']:.3f} ({r['index']:.3f}) |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two networks, two budgets")
    parser.add_argument("--keys", type=int, default=3, help="probe keys per cell (>= 1)")
    parser.add_argument("--out", default=None, help="JSON path (default "
                        "benchmarks/results/slq_accuracy.json, _quick with --quick)")
    args = parser.parse_args(argv)
    if args.keys < 1:
        parser.error(f"--keys must be >= 1, got {args.keys}")
    if args.out is None:
        args.out = os.path.join(HERE, "results", "slq_accuracy_quick.json" if args.quick
                                else "slq_accuracy.json")
    budgets = ((4, 20), (8, 80)) if args.quick else ((1, 20), (4, 40), (8, 80), (16, 80))
    print(f"# SLQ vs dense eigh, device {jax.devices()[0].device_kind}, jax {jax.__version__}")
    t0 = time.perf_counter()
    rows = []
    for name, c in networks(args.quick):
        rows += run_network(name, c, budgets, args.keys)
    print_table(rows)
    result = {
        "benchmark": "slq_accuracy", "quick": args.quick,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "device": jax.devices()[0].device_kind, "backend": jax.default_backend()},
        "versions": {"jax": jax.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "sigma_fraction": SIGMA_FRACTION, "grid_points": GRID_POINTS,
        "budgets": [list(b) for b in budgets], "rows": rows,
        "total_seconds": time.perf_counter() - t0,
        "notes": [
            "Networks: the spectra experiment's models (tanh), trained by its sweep-core "
            "Trial (SGD, 300 steps, lr 0.2, batch 64), seed 0; curvature on the first 256 "
            "training examples; step 0 = initialization.",
            "Density L1 uses one Gaussian (sigma = 1% of the exact range) for both measures.",
            "Each metric is the mean over --keys probe keys (max in *_max).",
        ],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()

"""Head-to-head: the lab's curvature engine against PyHessian, hessian-eigenthings and matfree.

One MLP (tanh, the ``eigsh`` section of ``benchmarks/curvature.py``: 784-256-256-128-10,
300,938 parameters, a Fashion-MNIST batch of 128), its weights copied from the lab's
flax model into an equal torch model (losses and HVPs checked to agree). For every
library and every setting of its own budget knob (a ladder, cheapest first, stopped at
the first setting that reaches the target), the returned eigenpairs are checked the same
way: the TRUE relative residual ``||H v - lambda v|| / |lambda|`` of every returned pair
(``v`` normalized), with the lab's exact float32 HVP on the same batch. Reported per
run: HVPs spent (counted by wrapping each library's HVP call), wall time (JAX: first
call = compile + run, and a second, warm run; torch: one run, no warm-up), the
eigenvalues and the largest relative residual of the ``k`` pairs.

* top-1 and top-5 (largest algebraic): lab ``eigsh(which="LA", tol)``, PyHessian
  ``hessian.eigenvalues(top_n, tol)`` (deflated power iteration), hessian-eigenthings
  ``lanczos(which="LA", max_iter)`` (and, in ``--quick`` only, top-1 by its
  ``deflated_power_iteration(tol)``, whose HVP rebuilds the graph every call), matfree
  ``eig.eigh_partial(decomp.tridiag_sym(m))`` (the lab's HVP as its matvec);
* bottom-1 (smallest algebraic): lab ``which="SA"``, hessian-eigenthings
  ``lanczos(which="SA")``, matfree's bottom Ritz pair; PyHessian offers none;
* also the issue's fixed-budget side-by-side: top-5 at 40 Lanczos steps (lab
  ``num_iters=40``, matfree 40, hessian-eigenthings 40), with the top-1 error against a
  reference (lab ``eigsh`` at ``tol=1e-6``).

Target: at equal residual (every returned pair at relative residual <= ``--target``,
default 1e-3), the lab spends fewer HVPs and less (warm) wall time than each peer.

On a small MLP (64-32-10 on 256 digits, 2,410 parameters) with a dense float64 Hessian:
spectral densities (SLQ) of the lab, PyHessian, hessian-eigenthings and matfree at the
same (probes, steps) budgets, each library's quadrature nodes/weights smoothed by the
same Gaussian on a common grid and compared with the dense spectrum (L1 and W1 / range,
see ``benchmarks/slq_accuracy.py``); and trace estimates at equal matvecs against the
exact trace (lab XTrace / Hutch++ / Hutchinson, PyHessian Hutchinson,
hessian-eigenthings Hutch++ / Hutchinson, matfree Hutchinson / XTrace), relative error
mean and spread over seeds.

Needs the optional extra ``peers`` (CPU torch, pyhessian, hessian-eigenthings, matfree);
never needed by the tests::

    python benchmarks/peers/curvature.py [--quick] [--target 1e-3]
        [--out benchmarks/results/peers_curvature.json]

Compatibility shim (reported in the JSON): PyHessian 0.1's ``density`` calls
``torch.eig``, removed from torch; it runs here with ``torch.eig`` provided by
``torch.linalg.eigh`` (eigenvalues in column 0, zero imaginary parts in column 1).

References:
  Yao, Gholami, Keutzer, Mahoney (2020). PyHessian: Neural networks through the lens of
  the Hessian. Golmant et al., pytorch-hessian-eigenthings. Kraemer et al. (2024),
  Gradients of functions of large matrices (matfree).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback

import numpy as np

# One compute thread per library: on a shared, oversubscribed CPU a multi-threaded
# torch spends most of its time spinning (20 HVPs of a 2.4k-parameter MLP: 19 s with 2
# threads, 0.5 s with 1, under a load of 17), which would flatter the lab. XLA: no
# multi-threaded Eigen, one intra-op thread. Set --threads to change both.
_THREADS = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), "1")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                           + ("false" if _THREADS == "1" else "true")
                           + f" intra_op_parallelism_threads={_THREADS}")

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(BENCH))
sys.path.insert(0, BENCH)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import slq_accuracy as metrics  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from jaxopt_lab import curvature  # noqa: E402


def _load_lab_bench():
    spec = importlib.util.spec_from_file_location("_lab_curvature_bench",
                                                  os.path.join(BENCH, "curvature.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LAB = _load_lab_bench()
PEERS = ("pyhessian", "hessian_eigenthings", "matfree")
SHIMS: dict = {}  # compatibility shims applied to a peer: name -> the original error


def import_peers():
    """``{name: module or None}`` and ``{name: error text}`` for the peers and torch."""
    mods, errors = {}, {}
    for name in ("torch",) + PEERS:
        try:
            mods[name] = __import__(name)
        except Exception as err:  # noqa: BLE001 - record any import failure exactly
            mods[name] = None
            errors[name] = f"{type(err).__name__}: {err}"
    return mods, errors


# ------------------------------------------------------------------ models + weight copy
def torch_mlp(torch, params, sizes):
    """An equal torch MLP (Linear + tanh), weights copied from the lab's flax params."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for (idx, kind), leaf in zip(leaf_ids(params), jax.tree.leaves(params), strict=True):
        t = torch.from_numpy(np.array(leaf, np.float32))
        with torch.no_grad():
            if kind == "kernel":
                linears[idx].weight.copy_(t.T)
            else:
                linears[idx].bias.copy_(t)
    return model, linears


def leaf_ids(params):
    """``[(layer index, "kernel" | "bias")]`` in the order of ``jax.tree.leaves``."""
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
        idx = next(k for k in keys if isinstance(k, int))
        kind = "kernel" if "kernel" in keys else "bias"
        out.append((idx, kind))
    return out


def torch_to_flat(params, linears, tensors):
    """Per-parameter torch tensors (order of ``model.parameters()``: W0, b0, W1, ...) or a
    flat torch vector in that order -> the lab's flat float32 numpy vector."""
    import torch

    if isinstance(tensors, torch.Tensor):
        parts, off = [], 0
        for lin in linears:
            for p in (lin.weight, lin.bias):
                parts.append(tensors[off:off + p.numel()].reshape(p.shape))
                off += p.numel()
        tensors = parts
    by_id = {}
    for i in range(len(linears)):
        by_id[(i, "kernel")] = tensors[2 * i].detach().cpu().numpy().T
        by_id[(i, "bias")] = tensors[2 * i + 1].detach().cpu().numpy()
    return np.concatenate([np.asarray(by_id[k], np.float32).ravel() for k in leaf_ids(params)])


# ------------------------------------------------------------------------ residual oracle
class Oracle:
    """The lab's exact HVP on the flat parameter vector (jitted, float32)."""

    def __init__(self, loss, params, batch):
        flat, unravel = ravel_pytree(params)
        self.n = flat.shape[0]

        def mv(v):
            return ravel_pytree(curvature.hvp(loss, params, unravel(v), batch))[0]

        self.hvp = jax.jit(mv)

    def rel_residuals(self, vals, vecs):
        """``||H v - lambda v|| / |lambda|`` per pair, ``v`` normalized."""
        out = []
        for lam, v in zip(np.asarray(vals, np.float64), vecs, strict=True):
            v = np.asarray(v, np.float32)
            v = v / np.linalg.norm(v)
            hv = np.asarray(self.hvp(jnp.asarray(v)), np.float64)
            out.append(float(np.linalg.norm(hv - lam * v) / abs(lam)))
        return out


# ------------------------------------------------------------------------------ runners
def _time_jax(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, first, time.perf_counter() - t0


def run_lab(loss, params, batch, k, which, tol=None, num_iters=None, max_iters=None):
    key = jax.random.key(0)
    kw = dict(k=k, which=which, key=key)
    if num_iters is not None:
        kw["num_iters"] = num_iters
    else:
        kw.update(tol=tol, max_iters=max_iters)
    res, first, run = _time_jax(lambda: curvature.eigsh(loss, params, batch, **kw))
    vals = np.asarray(res.eigenvalues, np.float64)
    vecs = np.asarray(res.eigenvectors_flat)
    return vals, vecs, int(res.num_hvps), first, run


class MatfreeEigh:
    """matfree's partial eigh (full reorthogonalization) with the lab's HVP as matvec."""

    def __init__(self, loss, params, batch):
        import matfree.decomp
        import matfree.eig

        self.md, self.me = matfree.decomp, matfree.eig
        flat, unravel = ravel_pytree(params)
        self.n, self.dtype = flat.shape[0], flat.dtype
        self.loss, self.params, self.batch, self.unravel = loss, params, batch, unravel
        self._fns = {}

    def _fn(self, m, count):
        if (m, count) not in self._fns:
            loss, unravel = self.loss, self.unravel
            eigh = self.me.eigh_partial(self.md.tridiag_sym(m))

            def program(p, b, v0):
                def mv(v):
                    if count:
                        jax.debug.callback(self._inc)
                    return ravel_pytree(curvature.hvp(loss, p, unravel(v), b))[0]

                return eigh(mv, v0)

            self._fns[(m, count)] = jax.jit(program)
        return self._fns[(m, count)]

    def _inc(self):
        self.count += 1

    def run(self, m, k, which):
        v0 = jax.random.normal(jax.random.key(0), (self.n,), self.dtype)
        fn = self._fn(m, False)
        (vals, vecs), first, run = _time_jax(lambda: fn(self.params, self.batch, v0))
        if not hasattr(self, "verified"):  # HVPs counted once, in a separate untimed run
            self.count = 0
            jax.block_until_ready(self._fn(m, True)(self.params, self.batch, v0))
            self.verified = {"num_matvecs": m, "hvps_counted": self.count}
        hvps = m * self.verified["hvps_counted"] // self.verified["num_matvecs"]
        vals, vecs = np.asarray(vals, np.float64), np.asarray(vecs)
        order = np.argsort(vals)
        sel = order[::-1][:k] if which == "LA" else order[:k]
        return vals[sel], vecs[sel], hvps, first, run


class TorchSide:
    """PyHessian and hessian-eigenthings on the torch copy, HVPs counted."""

    def __init__(self, mods, model, linears, xb, yb, params):
        self.torch, self.mods = mods["torch"], mods
        self.model, self.linears, self.params = model, linears, params
        self.x, self.y = xb, yb
        self.crit = self.torch.nn.CrossEntropyLoss()
        self.count = 0
        if mods.get("pyhessian") is not None:
            import pyhessian  # noqa: F401 - loads the module pyhessian.hessian

            ph = sys.modules["pyhessian.hessian"]  # the attribute is the class
            orig = ph.hessian_vector_product

            def counted(*a, **kw):
                self.count += 1
                return orig(*a, **kw)

            ph.hessian_vector_product = counted
        if mods.get("hessian_eigenthings") is not None:
            import hessian_eigenthings as he

            self.he = he

    def to_flat(self, t):
        return torch_to_flat(self.params, self.linears, t)

    # PyHessian ------------------------------------------------------------------------
    def pyhessian(self):
        import pyhessian

        # its constructor calls loss.backward(create_graph=True), which ADDS into .grad:
        # clear it, or a second construction sees twice the gradient (and Hessian)
        self.model.zero_grad(set_to_none=True)
        return pyhessian.hessian(self.model, self.crit, data=(self.x, self.y), cuda=False)

    def ph_eigs(self, k, tol, max_iter):
        self.torch.manual_seed(0)
        self.count = 0
        t0 = time.perf_counter()
        h = self.pyhessian()
        vals, vecs = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
        run = time.perf_counter() - t0
        flat = np.stack([self.to_flat(list(v)) for v in vecs])
        return np.asarray(vals, np.float64), flat, self.count, run, run

    # hessian-eigenthings ----------------------------------------------------------------
    def he_operator(self):
        op = self.he.HessianOperator(self.model, [(self.x, self.y)],
                                     self.he.supervised_loss(self.crit), full_dataset=True)
        orig = op.matvec

        def counted(v):
            self.count += 1
            return orig(v)

        op.matvec = counted
        return op

    def he_lanczos(self, k, which, max_iter):
        self.count = 0
        t0 = time.perf_counter()
        res = self.he.lanczos(self.he_operator(), k=k, max_iter=max_iter, which=which, seed=0)
        run = time.perf_counter() - t0
        flat = np.stack([self.to_flat(v) for v in res.eigenvectors])
        return res.eigenvalues.double().numpy(), flat, self.count, run, run

    def he_power(self, k, tol, max_iter):
        self.count = 0
        t0 = time.perf_counter()
        res = self.he.deflated_power_iteration(self.he_operator(), k=k, max_iter=max_iter,
                                               tol=tol, seed=0)
        run = time.perf_counter() - t0
        vals = res.eigenvalues.double().numpy()
        order = np.argsort(-vals)  # it sorts by magnitude; report largest algebraic first
        flat = np.stack([self.to_flat(v) for v in res.eigenvectors])
        return vals[order], flat[order], self.count, run, run


# --------------------------------------------------------------------- eigen head-to-head
def eigen_ladders(k, which, quick):
    """``{method: [(setting label, callable(ctx) -> (vals, vecs, hvps, first, run))]}``."""
    lab_tols = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]
    steps = [10, 20, 40, 80, 160]
    # PyHessian's stopping test is the relative change of the Rayleigh quotient, far
    # below the residual: its ladder starts at 1e-4 (tol 1e-3 left a residual of 1.7e-2
    # on the 301k MLP); top-5 gets one setting (deflated power iteration is slow)
    ph_tols = [1e-4, 1e-5, 1e-6] if k == 1 else [1e-6]
    max_power = 200 if k == 1 else 100  # power iterations per eigenvalue
    # default step limit (Krylov buffer of 128 rows); the bottom end may need more steps
    lab = [(t, None) for t in lab_tols] + ([(1e-5, 300), (1e-6, 300)] if which == "SA"
                                           else [])
    lad = {"lab eigsh": [(f"tol={t:g}" + (f",max_iters={mi}" if mi else ""),
                          lambda c, t=t, mi=mi: run_lab(c["loss"], c["params"], c["batch"],
                                                        k, which, tol=t, max_iters=mi))
                         for t, mi in lab]}
    lad["matfree eigh_partial"] = [(f"m={m}", lambda c, m=m: c["matfree"].run(m, k, which))
                                   for m in steps if m >= k]
    lad["hessian-eigenthings lanczos"] = [
        (f"max_iter={m}", lambda c, m=m: c["torch"].he_lanczos(k, which, m))
        for m in steps if m >= k]
    if which == "LA":
        lad["pyhessian power"] = [(f"tol={t:g}", lambda c, t=t: c["torch"].ph_eigs(
            k, t, max_power)) for t in ph_tols]
        if quick and k == 1:  # its HVP rebuilds the graph every call: quick run only
            lad["hessian-eigenthings power"] = [
                (f"tol={t:g}", lambda c, t=t: c["torch"].he_power(k, t, 300))
                for t in (1e-2, 1e-3)]
    return lad


def available(method, ctx):
    mods = ctx["mods"]
    if method.startswith("matfree"):
        return mods.get("matfree") is not None
    for prefix, mod in (("pyhessian", "pyhessian"), ("hessian-eigenthings",
                                                     "hessian_eigenthings")):
        if method.startswith(prefix):
            return mods.get(mod) is not None and mods.get("torch") is not None
    return True


def eigen_task(ctx, k, which, target, quick):
    rows = []
    for method, ladder in eigen_ladders(k, which, quick).items():
        if not available(method, ctx):
            rows.append({"method": method, "error": "not installed (see import_errors)"})
            continue
        for label, fn in ladder:
            try:
                vals, vecs, hvps, first, run = fn(ctx)
            except Exception as err:  # noqa: BLE001 - a peer failing is a result
                rows.append({"method": method, "setting": label,
                             "error": f"{type(err).__name__}: {err}",
                             "traceback": traceback.format_exc(limit=3)})
                print(f"  {method} {label}: FAILED {type(err).__name__}: {err}", flush=True)
                break
            res = ctx["oracle"].rel_residuals(vals, vecs)
            row = {"method": method, "setting": label, "hvps": int(hvps),
                   "first_call_seconds": first, "run_seconds": run,
                   "eigenvalues": [float(v) for v in vals], "rel_residuals": res,
                   "max_rel_residual": max(res), "reached": max(res) <= target}
            rows.append(row)
            print(f"  {method:28s} {label:13s} HVPs {hvps:5d}  run {run:7.2f} s  first "
                  f"{first:7.2f} s  max rel. residual {max(res):.1e}  "
                  f"lambda {vals[0]:.5g}", flush=True)
            if row["reached"]:
                break
    return rows


def best_rows(rows):
    """Cheapest setting reaching the target per method (None if none did)."""
    out = {}
    for r in rows:
        if "error" in r and "hvps" not in r:
            out.setdefault(r["method"], None)
            continue
        if r.get("reached") and out.get(r["method"]) is None:
            out[r["method"]] = r
        out.setdefault(r["method"], None)
    return out


def fixed40(ctx, reference):
    """The issue's side-by-side: top-5 at 40 Lanczos steps, top-1 error vs reference."""
    runs = {"lab eigsh num_iters=40": lambda: run_lab(ctx["loss"], ctx["params"],
                                                      ctx["batch"], 5, "LA", num_iters=40)}
    if ctx["mods"].get("matfree") is not None:
        runs["matfree m=40"] = lambda: ctx["matfree"].run(40, 5, "LA")
    if ctx["mods"].get("hessian_eigenthings") is not None and ctx["mods"].get("torch"):
        runs["hessian-eigenthings lanczos max_iter=40"] = lambda: ctx["torch"].he_lanczos(
            5, "LA", 40)
    rows = []
    for name, fn in runs.items():
        vals, vecs, hvps, first, run = fn()
        res = ctx["oracle"].rel_residuals(vals, vecs)
        rows.append({"method": name, "hvps": int(hvps), "first_call_seconds": first,
                     "run_seconds": run, "eigenvalues": [float(v) for v in vals],
                     "top1_rel_error": abs(float(vals[0]) - reference) / abs(reference),
                     "max_rel_residual": max(res), "rel_residuals": res})
        print(f"  {name:40s} run {run:6.2f} s, top-1 error {rows[-1]['top1_rel_error']:.1e}, "
              f"max rel. residual {max(res):.1e}", flush=True)
    return rows


# ------------------------------------------------------------------- density + trace (small)
def small_problem(mods):
    from jaxopt_lab import data

    sizes = (64, 32, 10)
    graphdef, params = LAB.nnx.split(LAB.MLP(sizes, LAB.nnx.Rngs(0)))
    d = data.load_digits()
    x, y = jnp.asarray(d["train"][0][:256]), jnp.asarray(d["train"][1][:256])

    def loss(p, batch):
        logits = LAB.nnx.merge(graphdef, p)(batch[0])
        return LAB.optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    return sizes, loss, params, (x, y)


def dense_eigs(loss, params, batch):
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(jax.tree.map(
            lambda a: jnp.asarray(np.asarray(a), jnp.float64), params))
        b64 = (jnp.asarray(np.asarray(batch[0]), jnp.float64), jnp.asarray(batch[1]))
        h = jax.jit(jax.hessian(lambda z: loss(unravel(z), b64)))(flat)
        return np.linalg.eigvalsh(np.asarray(h))


def densities(mods, sizes, loss, params, batch, eigs, budgets, errors):
    n = eigs.size
    rows = []
    model, linears = (torch_mlp(mods["torch"], params, sizes) if mods.get("torch") else
                      (None, None))
    ts = (TorchSide(mods, model, linears, torch_x(mods, batch), torch_y(mods, batch),
                    params) if model is not None else None)
    mf = MatfreeSLQ(loss, params, batch) if mods.get("matfree") else None
    for probes, steps in budgets:
        runs = {"lab spectral_density": lambda P=probes, m=steps: lab_slq(loss, params, batch,
                                                                          P, m)}
        if ts is not None and mods.get("pyhessian"):
            runs["pyhessian density"] = lambda P=probes, m=steps: ph_slq(ts, P, m)
        if ts is not None and mods.get("hessian_eigenthings"):
            runs["hessian-eigenthings spectral_density"] = (
                lambda P=probes, m=steps: he_slq(ts, P, m))
        if mf is not None:
            runs["matfree tridiag_sym + eigh"] = lambda P=probes, m=steps: mf.run(P, m)
        for name, fn in runs.items():
            try:
                nodes, weights, hvps, run = fn()
            except Exception as err:  # noqa: BLE001
                rows.append({"method": name, "probes": probes, "steps": steps,
                             "error": f"{type(err).__name__}: {err}"})
                print(f"  {name} P={probes} m={steps}: FAILED {type(err).__name__}: {err}")
                continue
            st = metrics.quadrature_stats(nodes, weights, eigs, n)
            rows.append({"method": name, "probes": probes, "steps": steps, "hvps": int(hvps),
                         "run_seconds": run, **st})
            print(f"  {name:38s} P={probes:2d} m={steps:3d}: L1 {st['density_l1']:.3f}  "
                  f"W1/range {st['w1_over_range']:.2e}  HVPs {hvps}  {run:.2f} s", flush=True)
    return rows


def torch_x(mods, batch):
    return mods["torch"].from_numpy(np.array(batch[0], np.float32))


def torch_y(mods, batch):
    return mods["torch"].from_numpy(np.array(batch[1], np.int64))


def lab_slq(loss, params, batch, P, m):
    fn = lambda: curvature.spectral_density(loss, params, batch, key=jax.random.key(0),
                                            num_probes=P, num_iters=m)
    d, _, run = _time_jax(fn)
    return np.asarray(d.nodes), np.asarray(d.weights), P * m, run


def ph_slq(ts, P, m):
    torch = ts.torch
    if not getattr(torch.eig, "_lab_shim", False):  # compatibility shim, see the docstring
        try:
            torch.eig(torch.eye(2), eigenvectors=True)
        except Exception as err:  # noqa: BLE001 - recorded in the JSON
            SHIMS["torch.eig"] = f"{type(err).__name__}: {str(err).splitlines()[0]}"

            def eig(t, eigenvectors=False):
                w, v = torch.linalg.eigh(t)
                return torch.stack([w, torch.zeros_like(w)], 1), v

            eig._lab_shim = True
            torch.eig = eig
    torch.manual_seed(0)
    ts.count = 0
    t0 = time.perf_counter()
    nodes, weights = ts.pyhessian().density(iter=m, n_v=P)
    run = time.perf_counter() - t0
    return np.asarray(nodes, np.float64), np.asarray(weights, np.float64), ts.count, run


def he_slq(ts, P, m):
    ts.count = 0
    t0 = time.perf_counter()
    r = ts.he.spectral_density(ts.he_operator(), num_runs=P, lanczos_steps=m, seed=0)
    run = time.perf_counter() - t0
    nodes = r.raw_eigenvalues.double().numpy()
    weights = r.raw_weights.double().numpy()
    nodes = np.where(np.isfinite(nodes), nodes, 0.0)
    return nodes, weights, ts.count, run


class MatfreeSLQ:
    """SLQ the matfree way: ``decomp.tridiag_sym(m)`` from Rademacher probes (vmapped),
    nodes/weights from the eigen-decomposition of the tridiagonal matrix."""

    def __init__(self, loss, params, batch):
        import matfree.decomp

        self.md = matfree.decomp
        flat, unravel = ravel_pytree(params)
        self.n, self.dtype = flat.shape[0], flat.dtype
        self.loss, self.params, self.batch, self.unravel = loss, params, batch, unravel

    def run(self, P, m):
        tri = self.md.tridiag_sym(m)
        loss, unravel = self.loss, self.unravel

        @jax.jit
        def program(p, b, key):
            mv = lambda v: ravel_pytree(curvature.hvp(loss, p, unravel(v), b))[0]  # noqa: E731
            probes = jax.random.rademacher(key, (P, self.n), self.dtype)

            def one(v):
                _, T, *_ = tri(mv, v)
                theta, s = jnp.linalg.eigh(T)
                return theta, s[0] ** 2

            return jax.vmap(one)(probes)

        (nodes, weights), _, run = _time_jax(lambda: program(self.params, self.batch,
                                                              jax.random.key(0)))
        return np.asarray(nodes), np.asarray(weights), P * m, run


def traces(mods, sizes, loss, params, batch, exact, budgets, seeds):
    rows = []
    ts = None
    if mods.get("torch") is not None:
        model, linears = torch_mlp(mods["torch"], params, sizes)
        ts = TorchSide(mods, model, linears, torch_x(mods, batch), torch_y(mods, batch),
                       params)
    mf_tr = matfree_trace(loss, params, batch) if mods.get("matfree") else None
    for B in budgets:
        runs = {f"lab {m}": (lambda s, m=m, B=B: (float(curvature.trace(
            loss, params, batch, key=jax.random.key(s), num_probes=B, method=m).estimate),
            B)) for m in ("xtrace", "hutch++", "hutchinson")}
        if ts is not None and mods.get("pyhessian"):
            runs["pyhessian trace (Hutchinson)"] = lambda s, B=B: ph_trace(ts, B, s)
        if ts is not None and mods.get("hessian_eigenthings"):
            for m in ("hutch++", "hutchinson"):
                runs[f"hessian-eigenthings {m}"] = lambda s, m=m, B=B: he_trace(ts, B, m, s)
        if mf_tr is not None:
            for m in ("hutchinson", "xtrace"):
                runs[f"matfree {m}"] = lambda s, m=m, B=B: mf_tr(m, B, s)
        for name, fn in runs.items():
            try:
                t0 = time.perf_counter()
                out = [fn(s) for s in range(seeds)]
                secs = (time.perf_counter() - t0) / seeds
            except Exception as err:  # noqa: BLE001
                rows.append({"method": name, "budget": B, "error": f"{type(err).__name__}: "
                             f"{err}"})
                print(f"  {name} B={B}: FAILED {type(err).__name__}: {err}")
                continue
            est = np.array([o[0] for o in out])
            rel = np.abs(est - exact) / abs(exact)
            rows.append({"method": name, "budget": B, "matvecs": int(out[0][1]),
                         "seeds": seeds, "estimates": est.tolist(),
                         "rel_error_mean": float(rel.mean()), "rel_error_max": float(rel.max()),
                         "seconds_per_estimate_incl_compile": secs})
            print(f"  {name:34s} B={B:3d} matvecs {out[0][1]:3d}: rel. error mean "
                  f"{rel.mean():.2e} max {rel.max():.2e}", flush=True)
    return rows


def ph_trace(ts, B, seed):
    ts.torch.manual_seed(seed)
    ts.count = 0
    vals = ts.pyhessian().trace(maxIter=B, tol=0.0)  # tol 0: all B probes
    return float(np.mean(vals)), ts.count


def he_trace(ts, B, method, seed):
    ts.count = 0
    r = ts.he.trace(ts.he_operator(), num_matvecs=B, method=method, seed=seed)
    return float(r.estimate), ts.count


def matfree_trace(loss, params, batch):
    from matfree import stochtrace

    flat, unravel = ravel_pytree(params)
    cache = {}

    def fn(method, B, seed):
        if (method, B) not in cache:
            if method == "hutchinson":
                est = stochtrace.estimator_monte_carlo(
                    stochtrace.monte_carlo_trace(), stochtrace.sampler_signs(flat, num=B))
                per_key = B
            else:
                est = stochtrace.estimator_leave_one_out(
                    stochtrace.leave_one_out_xtrace(),
                    stochtrace.sampler_normal(flat, num=B // 2))
                per_key = 2 * (B // 2)

            @jax.jit
            def program(p, b, key):
                mv = lambda v: ravel_pytree(curvature.hvp(loss, p, unravel(v), b))[0]  # noqa: E731
                return jnp.mean(est(mv, key))

            cache[(method, B)] = (program, per_key)
        program, per_key = cache[(method, B)]
        return float(program(params, batch, jax.random.key(seed))), per_key

    return fn


# ------------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small network, short ladders")
    parser.add_argument("--target", type=float, default=1e-3,
                        help="relative residual every returned pair must reach (> 0)")
    parser.add_argument("--out", default=None, help="JSON path (default "
                        "benchmarks/results/peers_curvature.json, _quick with --quick)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: "
                        "top1,top5,bottom,fixed40,density,trace; a partial run merges its "
                        "sections into the existing JSON (dates in section_dates_utc)")
    parser.add_argument("--threads", default="1", help="compute threads of torch and XLA "
                        "(pass as --threads=N; default 1, see the note at the top)")
    args = parser.parse_args(argv)
    if not args.target > 0:
        parser.error(f"--target must be > 0, got {args.target}")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.out is None:
        args.out = os.path.join(BENCH, "results", "peers_curvature_quick.json" if args.quick
                                else "peers_curvature.json")
    mods, errors = import_peers()
    versions = {"jax": jax.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    for name, mod in mods.items():
        if mod is not None:
            versions[name] = getattr(mod, "__version__", None)
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("pyhessian", "hessian-eigenthings", "matfree", "torch"):
        try:
            versions[dist.replace("-", "_")] = version(dist)
        except PackageNotFoundError:
            pass
    torch = mods.get("torch")
    if torch is not None:
        torch.set_num_threads(int(args.threads))
        versions["torch_threads"] = torch.get_num_threads()
    versions["xla_flags"] = os.environ["XLA_FLAGS"].strip()
    print(f"# peers: {versions}; import errors: {errors or 'none'}")
    sizes, bs = ((784, 64, 32, 10), 32) if args.quick else ((784, 256, 256, 128, 10), 128)
    loss, params, batch, source = LAB.make_problem(sizes, bs)
    n = int(sum(p.size for p in jax.tree.leaves(params)))
    print(f"# MLP {'-'.join(map(str, sizes))} ({n} params), batch {bs} ({source}), "
          f"device {jax.devices()[0].device_kind}")
    oracle = Oracle(loss, params, batch)
    ctx = {"loss": loss, "params": params, "batch": batch, "oracle": oracle, "mods": mods,
           "matfree": MatfreeEigh(loss, params, batch) if mods.get("matfree") else None,
           "torch": None}
    check = {}
    if torch is not None:
        model, linears = torch_mlp(torch, params, sizes)
        ctx["torch"] = TorchSide(mods, model, linears, torch_x(mods, batch),
                                 torch_y(mods, batch), params)
        # the copy is the same function: loss and one HVP agree
        with torch.no_grad():
            lt = float(torch.nn.functional.cross_entropy(model(ctx["torch"].x), ctx["torch"].y))
        v = np.asarray(jax.random.normal(jax.random.key(1), (n,)), np.float32)
        hv_lab = np.asarray(oracle.hvp(jnp.asarray(v)))
        ps = [p for lin in linears for p in (lin.weight, lin.bias)]
        out = torch.nn.functional.cross_entropy(model(ctx["torch"].x), ctx["torch"].y)
        g = torch.autograd.grad(out, ps, create_graph=True)
        vt, off = [], 0
        flat_t = torch.from_numpy(_flat_to_torch_order(params, linears, v))
        for p in ps:
            vt.append(flat_t[off:off + p.numel()].reshape(p.shape))
            off += p.numel()
        hv_t = ctx["torch"].to_flat(list(torch.autograd.grad(g, ps, grad_outputs=vt)))
        check = {"loss_lab": float(loss(params, batch)), "loss_torch": lt,
                 "hvp_rel_difference": float(np.linalg.norm(hv_t - hv_lab)
                                             / np.linalg.norm(hv_lab))}
        print(f"# copy check: loss lab {check['loss_lab']:.6f} torch {lt:.6f}, HVP rel. "
              f"difference {check['hvp_rel_difference']:.1e}")
    t_start = time.perf_counter()
    result = {}
    if skip and os.path.exists(args.out):  # a partial run merges into the existing JSON
        with open(args.out) as fh:
            old = json.load(fh)
        if old.get("quick") == args.quick and old.get("target") == args.target:
            result = old
    result.update({"benchmark": "peers_curvature", "quick": args.quick, "target": args.target,
              "model": {"sizes": list(sizes), "params": n, "batch": bs, "data": source},
              "copy_check": check, "import_errors": errors, "versions": versions})
    dates = result.setdefault("section_dates_utc", {})
    def save():
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for sec in ("top1", "top5", "bottom", "fixed40", "density", "trace"):
            if sec not in skip and sec in result:
                dates[sec] = now
        result.update({
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "total_seconds": time.perf_counter() - t_start,
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "load_average_1min": os.getloadavg()[0],
                        "device": jax.devices()[0].device_kind},
            "notes": NOTES,
        })
        if SHIMS:
            result["shims"] = dict(SHIMS)
        if ctx["matfree"] is not None and hasattr(ctx["matfree"], "verified"):
            result["matfree_hvp_count_check"] = ctx["matfree"].verified
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2, default=_jsonable)

    tasks = [("top1", 1, "LA"), ("top5", 5, "LA"), ("bottom", 1, "SA")]
    for name, k, which in tasks:
        if name in skip:
            continue
        print(f"\n## {name} (k={k}, which={which})")
        rows = eigen_task(ctx, k, which, args.target, args.quick)
        result[name] = {"rows": rows, "best": best_rows(rows)}
        save()
    if "fixed40" not in skip:
        ref = curvature.eigsh(loss, params, batch, k=1, tol=1e-6, max_iters=400,
                              key=jax.random.key(0))
        reference = float(ref.eigenvalues[0])
        print(f"\n## top-5 at 40 Lanczos steps (reference lambda_1 = {reference:.7g})")
        result["fixed40"] = {"reference_top_eigenvalue": reference,
                             "rows": fixed40(ctx, reference)}
        save()
    if not {"density", "trace"} <= skip:
        s_sizes, s_loss, s_params, s_batch = small_problem(mods)
        s_n = int(sum(p.size for p in jax.tree.leaves(s_params)))
        eigs = dense_eigs(s_loss, s_params, s_batch)
        print(f"\n## small MLP {'-'.join(map(str, s_sizes))} ({s_n} params) on 256 digits: "
              f"dense eigh, lambda in [{eigs[0]:.4g}, {eigs[-1]:.4g}], trace {eigs.sum():.5g}")
        result["small_model"] = {"sizes": list(s_sizes), "params": s_n, "batch": 256,
                                 "data": "digits", "lambda_min": float(eigs[0]),
                                 "lambda_max": float(eigs[-1]), "trace": float(eigs.sum())}
        if "density" not in skip:
            budgets = ((4, 40),) if args.quick else ((4, 40), (8, 80))
            result["density"] = densities(mods, s_sizes, s_loss, s_params, s_batch, eigs,
                                          budgets, errors)
            save()
        if "trace" not in skip:
            result["trace"] = traces(mods, s_sizes, s_loss, s_params, s_batch,
                                     float(eigs.sum()), (30,) if args.quick else (60,),
                                     3 if args.quick else 5)
    save()
    print_tables(result)
    print(f"\nwrote {args.out}")
    return result


def _flat_to_torch_order(params, linears, flat):
    """The lab's flat vector -> a flat vector in torch's parameter order (W0, b0, ...)."""
    parts, off = {}, 0
    for (idx, kind), leaf in zip(leaf_ids(params), jax.tree.leaves(params), strict=True):
        parts[(idx, kind)] = flat[off:off + leaf.size].reshape(leaf.shape)
        off += leaf.size
    out = []
    for i in range(len(linears)):
        out += [parts[(i, "kernel")].T.ravel(), parts[(i, "bias")].ravel()]
    return np.ascontiguousarray(np.concatenate(out), np.float32)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


NOTES = [
    "Relative residual: ||Hv - lambda v|| / |lambda| with the lab's exact float32 HVP "
    "(forward-over-reverse) on the same batch, v normalized; max over the k pairs.",
    "HVPs: every call of the library's HVP, counted by wrapping it (matfree: counted by a "
    "jax.debug.callback in a separate untimed run); the lab's count includes its "
    "residual-check HVPs (EigshResult.num_hvps).",
    "Ladders run cheapest first and stop at the first setting whose every pair reaches "
    "the target; 'best' is that setting.",
    "Wall time: JAX methods first call (compile + run) and a second warm run; torch "
    "methods one run (PyHessian's includes building its create_graph gradient).",
    "PyHessian 0.1: no smallest-eigenvalue option; density needs torch.eig (removed from "
    "torch), shimmed with torch.linalg.eigh.",
    "hessian-eigenthings lanczos: default reorthogonalization (on for max_iter <= 50, "
    "off above); its HVP rebuilds the create_graph gradient at every call.",
    "Densities: every library's nodes/weights smoothed by the same Gaussian (1% of the "
    "exact range) on the same grid; L1 and W1/range against the dense float64 spectrum.",
    "The machine is a shared 2-core CPU under heavy load from other jobs: absolute "
    "times are inflated and noisy; compare within one run.",
]


def print_tables(r):
    for name in ("top1", "top5", "bottom"):
        if name not in r:
            continue
        print(f"\n### {name}: cheapest setting reaching max rel. residual <= {r['target']:g}")
        print("| method | setting | HVPs | warm run (s) | first call (s) | max rel. residual "
              "| eigenvalues |")
        print("|---|---|---|---|---|---|---|")
        for method, row in r[name]["best"].items():
            if row is None:
                last = [x for x in r[name]["rows"] if x["method"] == method]
                last = last[-1] if last else {}
                why = last.get("error") or (f"not reached (last {last.get('setting')}: "
                                            f"{last.get('max_rel_residual', float('nan')):.1e}"
                                            f", {last.get('hvps')} HVPs)")
                print(f"| {method} | - | - | - | - | {why} | |")
                continue
            print(f"| {method} | {row['setting']} | {row['hvps']} | {row['run_seconds']:.2f} "
                  f"| {row['first_call_seconds']:.2f} | {row['max_rel_residual']:.1e} | "
                  + ", ".join(f"{v:.5g}" for v in row["eigenvalues"]) + " |")
    if "fixed40" in r:
        print(f"\n### top-5 at 40 Lanczos steps (reference lambda_1 "
              f"{r['fixed40']['reference_top_eigenvalue']:.7g})")
        print("| method | HVPs | warm run (s) | first call (s) | top-1 rel. error | "
              "max rel. residual |")
        print("|---|---|---|---|---|---|")
        for row in r["fixed40"]["rows"]:
            print(f"| {row['method']} | {row['hvps']} | {row['run_seconds']:.2f} | "
                  f"{row['first_call_seconds']:.2f} | {row['top1_rel_error']:.1e} | "
                  f"{row['max_rel_residual']:.1e} |")
    if "density" in r:
        sm = r["small_model"]
        print(f"\n### spectral density vs dense eigh (MLP {sm['params']} params)")
        print("| method | probes x steps | HVPs | density L1 | W1 / range | trace rel. err | "
              "top rel. err | time (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for row in r["density"]:
            if "error" in row:
                print(f"| {row['method']} | {row['probes']} x {row['steps']} | - | "
                      f"{row['error']} | | | | |")
                continue
            print(f"| {row['method']} | {row['probes']} x {row['steps']} | {row['hvps']} | "
                  f"{row['density_l1']:.3f} | {row['w1_over_range']:.1e} | "
                  f"{row['trace_rel_error']:.1e} | {row['top_rel_error']:.1e} | "
                  f"{row['run_seconds']:.2f} |")
    if "trace" in r:
        print(f"\n### trace vs exact ({r['small_model']['trace']:.6g})")
        print("| method | matvecs | rel. error mean (max) over seeds |")
        print("|---|---|---|")
        for row in r["trace"]:
            if "error" in row:
                print(f"| {row['method']} | {row['budget']} | {row['error']} |")
                continue
            print(f"| {row['method']} | {row['matvecs']} | {row['rel_error_mean']:.2e} "
                  f"({row['rel_error_max']:.2e}, {row['seeds']} seeds) |")


if __name__ == "__main__":
    main()

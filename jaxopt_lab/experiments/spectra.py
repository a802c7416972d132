"""Curvature spectra along training: Hessian, Gauss-Newton and empirical Fisher of an MLP
or a CNN on digits or Fashion-MNIST at checkpoints, and the index (fraction of negative
Hessian eigenvalues) against the loss (Dauphin et al. 2014, claim C26).

The network (``model``): a tanh MLP (inputs -> hidden -> 10) or a small tanh CNN
(conv 3x3 -> 2x2 max-pool per entry of ``channels``, then a dense readout;
:func:`jaxopt_lab.models.cnn`), cross-entropy. The data (``dataset``): scikit-learn's
8x8 digits (64 inputs) or the first ``num_train`` Fashion-MNIST training images
average-pooled 2x2 to 14x14 (196 inputs), so that the network stays small enough for the
dense float64 ``eigh`` oracle (at most :data:`MAX_DENSE_PARAMS` parameters). It is
trained by minibatch SGD from
``num_seeds`` seeds in ONE program of the sweep core (a :class:`~jaxopt_lab.compare.Trial`
run by :func:`jaxopt_lab.compare.sweep`: the parameters at every checkpoint step are
kept in the scan's carry, so no second training loop exists). At each checkpoint, on the
full curvature set (``curvature_examples`` training examples) the lab's curvature engine
measures, for the Hessian ``H``, the Gauss-Newton ``G`` and the empirical Fisher ``F``:

* the top ``k`` eigenvalues (and for ``H`` the bottom ``k``) with their true residuals
  (:func:`jaxopt_lab.curvature.eigsh`, tolerance-driven);
* the trace by XTrace (:func:`jaxopt_lab.curvature.trace`, with its standard error);
* for ``H``: the SLQ density (:func:`jaxopt_lab.curvature.spectral_density`) and the
  index estimated from it (quadrature weight on negative nodes), and, the network being
  small, the exact spectrum by a dense float64 ``eigh`` (exact index, trace, extremes).

Dauphin et al. (2014) argue that critical points of high loss are saddles with a large
index and that the index falls with the loss; here the index is read along the training
path (not only at critical points): the summary reports the Spearman correlation of
index and loss over checkpoints x seeds and the index per checkpoint.

References:
  Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio, 2014. Identifying and attacking the
  saddle point problem in high-dimensional non-convex optimization. NeurIPS.
  Ghorbani, Krishnan, Xiao, 2019. An investigation into neural net optimization via
  Hessian eigenvalue density. ICML.
  Sagun, Evci, Guney, Dauphin, Bottou, 2018. Empirical analysis of the Hessian of
  over-parametrized neural networks.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab import compare, curvature, data, models
from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.compare import steps as steps_mod
from jaxopt_lab.experiments import _common, _network

OPERATORS: tuple[str, ...] = ("hessian", "ggn", "fisher")
MODELS: tuple[str, ...] = ("mlp", "cnn")
DATASETS: tuple[str, ...] = ("digits", "fashion_mnist")
# input image side per dataset (digits 8x8; Fashion-MNIST 28x28 average-pooled to 14x14)
IMAGE_SIDE = {"digits": 8, "fashion_mnist": 14}
# the dense float64 eigh of every checkpoint needs a small network
MAX_DENSE_PARAMS = 6000


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the spectra experiment.

    Attributes:
      num_seeds: training runs (one program).
      seed: base seed.
      model: "mlp" (tanh MLP, one hidden layer) or "cnn" (tanh CNN, ``channels``).
      dataset: "digits" (8x8) or "fashion_mnist" (14x14 after 2x2 average pooling).
      hidden: hidden width of the tanh MLP (the dense eigh needs a small network).
      channels: conv channels of the CNN (one 3x3 conv + 2x2 max-pool per entry).
      num_train: Fashion-MNIST training images used (digits: all 1438).
      steps: SGD steps.
      batch_size: SGD minibatch.
      learning_rate: SGD step size (finite, > 0).
      checkpoints: steps (0 = initialization, ..., ``steps``) where spectra are measured.
      curvature_examples: training examples the curvature is measured on (full batch).
      k: eigenvalues at each end.
      eig_tol: eigsh relative tolerance.
      trace_probes: XTrace matvecs.
      slq_probes / slq_iters: SLQ probes and Lanczos steps.
      fast_compile: XLA optimization level 0 on CPU for the training program.
    """

    num_seeds: int = 2
    seed: int = 0
    model: str = "mlp"
    dataset: str = "digits"
    hidden: int = 12
    channels: tuple[int, ...] = (4, 8)
    num_train: int = 10000
    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 0.2
    checkpoints: tuple[int, ...] = (0, 30, 100, 300)
    curvature_examples: int = 256
    k: int = 3
    eig_tol: float = 1e-3
    trace_probes: int = 40
    slq_probes: int = 4
    slq_iters: int = 40
    fast_compile: bool = True

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        for name in ("num_seeds", "hidden", "steps", "batch_size", "curvature_examples", "k",
                     "trace_probes", "slq_probes", "slq_iters", "num_train"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        if not isinstance(self.channels, tuple) or not 1 <= len(self.channels) <= 2:
            raise ValueError(f"channels must be a tuple of 1 or 2 conv widths, got "
                             f"{self.channels!r}")
        for ch in self.channels:
            check_int("channels", ch)
        if self.dataset == "fashion_mnist" and self.curvature_examples > self.num_train:
            raise ValueError(f"curvature_examples={self.curvature_examples} exceeds "
                             f"num_train={self.num_train}")
        n = num_params(self)
        if n > MAX_DENSE_PARAMS:
            field = "hidden" if self.model == "mlp" else "channels"
            raise ValueError(
                f"{field}: the {self.model} on {self.dataset} has {n} parameters, more than "
                f"the {MAX_DENSE_PARAMS} the dense eigh oracle allows; use a smaller "
                f"{field}")
        _network.check_learning_rates("learning_rate", self.learning_rate)
        if not isinstance(self.checkpoints, tuple) or not self.checkpoints:
            raise ValueError(f"checkpoints must be a non-empty tuple of steps, got "
                             f"{self.checkpoints!r}")
        for s in self.checkpoints:
            if isinstance(s, bool) or not isinstance(s, int | np.integer) or not (
                    0 <= s <= self.steps):
                raise ValueError(f"checkpoints must be integer steps in [0, steps={self.steps}]"
                                 f", got {s!r} in {self.checkpoints!r}")
        if list(self.checkpoints) != sorted(set(self.checkpoints)):
            raise ValueError(f"checkpoints must be strictly increasing, got {self.checkpoints!r}")

    @classmethod
    def quick(cls) -> Config:
        """Seconds: 2 seeds, 300 steps, 4 checkpoints, 256 curvature examples."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """4 seeds, 3000 steps, 7 checkpoints, 1024 curvature examples, k = 10."""
        return cls(num_seeds=4, hidden=24, steps=3000,
                   checkpoints=(0, 10, 30, 100, 300, 1000, 3000), curvature_examples=1024,
                   k=10, trace_probes=100, slq_probes=10, slq_iters=80, fast_compile=False)


def num_params(c: Config) -> int:
    """Parameter count of the configured network (without building it)."""
    side = IMAGE_SIDE[c.dataset]
    if c.model == "mlp":
        return side * side * c.hidden + c.hidden + 10 * c.hidden + 10
    n, cin = 0, 1
    for ch in c.channels:
        n += 9 * cin * ch + ch
        cin, side = ch, side // 2
    return n + side * side * cin * 10 + 10


def model_and_loss(c: Config):
    """``(model, output_fn, loss_fn, loss(params, x, y))`` of the tanh MLP or CNN (both take
    flat inputs ``[..., side * side]``; the CNN reshapes them to ``[..., side, side, 1]``)."""
    side = IMAGE_SIDE[c.dataset]
    if c.model == "mlp":
        model = models.mlp(side * side, (c.hidden,), 10, activation="tanh", init="xavier")
    else:
        model = models.cnn((side, side, 1), 10, channels=c.channels, activation="tanh",
                           init="xavier")
    ce = models.loss_fn("cross_entropy")

    def loss(params, x, y):
        return ce(model.apply(params, x), y)

    return model, model.apply, ce, loss


def trial(c: Config, inputs: dict) -> compare.Trial:
    """Minibatch SGD keeping the parameters of every checkpoint step in the carry."""
    model, _, _, loss = model_and_loss(c)
    ck = jnp.asarray(c.checkpoints, jnp.int32)
    bs = c.batch_size

    def run(opt, key_i, i, row, inputs):
        del i, row
        params = model.init(jax.random.fold_in(key_i, 0))
        state = opt.init(params)
        k_data = jax.random.fold_in(key_i, 1)
        store0 = jax.tree.map(lambda a: jnp.where(
            (ck == 0).reshape((-1,) + (1,) * a.ndim), a[None], jnp.zeros_like(a)[None]), params)

        def step(carry, t):
            params, state, store, bad = carry
            x, y = data.sample_batch(jax.random.fold_in(k_data, t), inputs["train"], bs)
            fn = lambda p: loss(p, x, y)  # noqa: E731
            value, grads = jax.value_and_grad(fn)(params)
            fns = steps_mod.loss_fns(lambda p, b: loss(p, *b), (x, y))
            updates, state = steps_mod.update(opt, grads, state, params, value=value, fns=fns)
            params = optax.apply_updates(params, updates)
            hit = ck == t + 1
            store = jax.tree.map(lambda s, a: jnp.where(hit.reshape((-1,) + (1,) * a.ndim),
                                                        a[None], s), store, params)
            bad = bad | ~jnp.isfinite(value)
            return (params, state, store, bad), value

        carry = (params, state, store0, jnp.array(False))
        (params, state, store, bad), losses = jax.lax.scan(step, carry, jnp.arange(c.steps))
        return {"checkpoints": store, "loss": losses, "nonfinite": bad}

    return compare.Trial(run, inputs=inputs, static=("spectra", c.model, c.dataset, c.hidden,
                                                     tuple(c.channels), c.steps, bs,
                                                     tuple(c.checkpoints)))


def load_data(c: Config) -> dict:
    """``{"train": (x [n, side * side], y [n])}`` of the configured dataset (flat float32)."""
    if c.dataset == "digits":
        d = data.load_digits()
        return {"train": (jnp.asarray(d["train"][0]), jnp.asarray(d["train"][1]))}
    d = data.load_fashion_mnist(layout="image", num_train=c.num_train, num_test=1)
    x = np.asarray(d["train"][0]).reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4))
    return {"train": (jnp.asarray(x.reshape(-1, 196), jnp.float32),
                      jnp.asarray(d["train"][1]))}


def measure(c: Config, params: Any, x: Any, y: Any, key: Any, fns: tuple | None = None
            ) -> dict:
    """Every curvature quantity at one point (see the module docstring), numpy scalars.

    ``fns``: ``model_and_loss(c)`` built once by the caller (the same function objects at
    every checkpoint, so every curvature program compiles once per run).
    """
    _, output_fn, ce, loss = fns if fns is not None else model_and_loss(c)
    out: dict[str, Any] = {"loss": float(loss(params, x, y))}
    ops = {"hessian": curvature.hessian_operator(loss, params, x, y),
           "ggn": curvature.ggn_operator(output_fn, ce, params, x, y),
           "fisher": curvature.fisher_operator(output_fn, ce, params, x, y)}
    for j, (name, op) in enumerate(ops.items()):
        kj = jax.random.fold_in(key, j)
        which = "both" if name == "hessian" else "LA"
        e = curvature.eigsh(op, k=c.k, which=which, key=kj, tol=c.eig_tol)
        vals, res = np.asarray(e.eigenvalues, np.float64), np.asarray(e.residuals, np.float64)
        top, top_r = (vals[c.k:], res[c.k:]) if which == "both" else (vals, res)
        tr = curvature.trace(op, key=jax.random.fold_in(kj, 1), num_probes=c.trace_probes,
                             method="xtrace")
        out[name] = {"top": top, "top_residual": top_r, "trace": float(tr.estimate),
                     "trace_se": float(tr.std_error), "num_matvecs": int(e.num_hvps)}
        if which == "both":
            out[name].update(bottom=vals[: c.k], bottom_residual=res[: c.k])
    dens = curvature.spectral_density(ops["hessian"], key=jax.random.fold_in(key, 9),
                                      num_probes=c.slq_probes, num_iters=c.slq_iters)
    nodes, weights = np.asarray(dens.nodes), np.asarray(dens.weights)
    out["hessian"]["index_slq"] = float(np.mean(np.sum(weights * (nodes < 0), axis=-1)))
    out["hessian"]["density"] = (np.asarray(dens.grid), np.asarray(dens.density))
    ev = np.linalg.eigvalsh(_dense(loss, params, x, y))
    out["hessian"]["dense"] = ev
    return out


@functools.lru_cache(maxsize=8)
def _dense_program(loss):
    def h(params, x, y):
        flat, unravel = ravel_pytree(params)
        return jax.hessian(lambda z: loss(unravel(z), x, y))(flat)

    return jax.jit(h)


def _dense(loss, params, x, y) -> np.ndarray:
    """Dense float64 Hessian of ``loss(params, x, y)`` (one compiled program per loss)."""
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), params)
        return np.asarray(_dense_program(loss)(p64, jnp.asarray(np.asarray(x), jnp.float64),
                                               jnp.asarray(np.asarray(y))))


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Train, measure every operator at every checkpoint of every seed, summarize.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``; variants
      :data:`OPERATORS`, hyperparameter rows = checkpoints ``{"step": s}``, so metrics are
      ``[n_checkpoints, num_seeds]``): ``loss``, ``top_eig`` / ``top_residual`` (largest
      of the top k), ``trace`` / ``trace_se`` (XTrace), and for the Hessian
      ``bottom_eig`` / ``bottom_residual``, ``index_slq``, ``index_dense``, ``trace_dense``,
      ``top_dense``, ``bottom_dense``; ``nonfinite``. ``curves["hessian"]["density"]``
      ``[n_ckpt, S, G]`` (grid in the summary, per checkpoint), ``curves["hessian"]
      ["loss"]`` the training loss. ``summary``: per checkpoint medians, the Spearman
      correlation of index and loss, ``nonfinite_seeds``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a spectra.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    inputs = load_data(c)
    key = jax.random.key(c.seed)
    options = {"xla_backend_optimization_level": 0} if (
        c.fast_compile and jax.default_backend() == "cpu") else None
    sw = compare.sweep(trial(c, inputs), {"sgd": (optax.sgd, {"learning_rate":
                                                              [c.learning_rate]})},
                       num_seeds=c.num_seeds, key=key, compiler_options=options)
    out = sw.outputs["sgd"]
    bad = np.asarray(out["nonfinite"], bool)[0]
    x = inputs["train"][0][: c.curvature_examples]
    y = inputs["train"][1][: c.curvature_examples]
    n_ck, S = len(c.checkpoints), c.num_seeds
    names = ["loss", "top_eig", "top_residual", "trace", "trace_se"]
    hnames = ["bottom_eig", "bottom_residual", "index_slq", "index_dense", "trace_dense",
              "top_dense", "bottom_dense"]
    metrics = {op: {n: np.full((n_ck, S), np.nan) for n in names + (
        hnames if op == "hessian" else [])} for op in OPERATORS}
    density, grids = [[None] * S for _ in range(n_ck)], [None] * n_ck
    t_curv = time.perf_counter()
    fns = model_and_loss(c)
    for j in range(n_ck):
        for s in range(S):
            if bad[s]:
                continue
            p = jax.tree.map(lambda a, j=j, s=s: np.asarray(a)[0, s, j], out["checkpoints"])
            m = measure(c, p, x, y, jax.random.fold_in(jax.random.fold_in(key, 10_000 + j), s), fns)
            for op in OPERATORS:
                r = m[op]
                metrics[op]["loss"][j, s] = m["loss"]
                metrics[op]["top_eig"][j, s] = r["top"][0]
                metrics[op]["top_residual"][j, s] = r["top_residual"][0]
                metrics[op]["trace"][j, s] = r["trace"]
                metrics[op]["trace_se"][j, s] = r["trace_se"]
            h, mh = m["hessian"], metrics["hessian"]
            mh["bottom_eig"][j, s], mh["bottom_residual"][j, s] = h["bottom"][0], \
                h["bottom_residual"][0]
            ev = h["dense"]
            mh["index_slq"][j, s] = h["index_slq"]
            # exact index: eigenvalues below -1e-6 |lambda_max| (rounding of a float64 eigh)
            mh["index_dense"][j, s] = np.mean(ev < -1e-6 * np.max(np.abs(ev)))
            mh["trace_dense"][j, s], mh["top_dense"][j, s] = ev.sum(), ev[-1]
            mh["bottom_dense"][j, s] = ev[0]
            grids[j] = h["density"][0]
            density[j][s] = h["density"][1]
    curvature_seconds = time.perf_counter() - t_curv
    for op in OPERATORS:
        metrics[op]["nonfinite"] = np.broadcast_to(bad, (n_ck, S)).copy()
    G = max((len(g) for g in grids if g is not None), default=0)
    dens = np.full((n_ck, S, G), np.nan)
    for j in range(n_ck):
        for s in range(S):
            if density[j][s] is not None:
                dens[j, s, : len(density[j][s])] = density[j][s]
    mh = metrics["hessian"]
    ok = np.isfinite(mh["index_dense"]) & np.isfinite(mh["loss"])
    summary: dict[str, Any] = {
        "model": c.model, "dataset": c.dataset, "num_params": num_params(c),
        "checkpoints": list(c.checkpoints),
        "index_loss_spearman": _spearman(mh["loss"][ok], mh["index_dense"][ok]),
        "index_slq_vs_dense_max_abs": float(np.nanmax(np.abs(mh["index_slq"] -
                                                             mh["index_dense"]))),
        "density_grid": [None if g is None else np.asarray(g).tolist() for g in grids],
        "curvature_seconds": curvature_seconds,
    }
    for j, step in enumerate(c.checkpoints):
        kj = jax.random.fold_in(key, j)
        row = {"loss": _common.median_ci(mh["loss"][j], kj),
               "index_dense": _common.median_ci(mh["index_dense"][j], kj),
               "index_slq": _common.median_ci(mh["index_slq"][j], kj)}
        for op in OPERATORS:
            row[op] = {"top_eig": _common.median_ci(metrics[op]["top_eig"][j], kj),
                       "trace": _common.median_ci(metrics[op]["trace"][j], kj)}
        row["hessian"]["bottom_eig"] = _common.median_ci(mh["bottom_eig"][j], kj)
        summary[f"step={step}"] = row
    summary["nonfinite_seeds"] = {op: _common.seeds_where(bad) for op in OPERATORS}
    result = compare.Results(
        optimizers=list(OPERATORS),
        hparams={op: [{"step": s} for s in c.checkpoints] for op in OPERATORS},
        metrics=metrics,
        curves={"hessian": {"density": dens.astype(np.float32),
                            "loss": np.repeat(np.asarray(out["loss"], np.float32), n_ck, 0)}},
        summary=compare.store.jsonable(summary),
        group_column="variant",
        meta=compare.store.make_meta(
            c, key=key, compile_seconds=sw.compile_seconds, run_seconds=sw.run_seconds,
            curvature_seconds=curvature_seconds, total_seconds=time.perf_counter() - t_start,
            experiment="spectra"),
    )
    if out_dir is not None:
        from jaxopt_lab.plot import network

        result.save(out_dir, figures={"spectra": network.spectra(result)})
    return result


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with < 3 points."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size < 3:
        return float("nan")

    def rank(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(v.size)
        r[order] = np.arange(v.size)
        for u in np.unique(v):
            r[v == u] = r[v == u].mean()
        return r

    ra, rb = rank(a), rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])

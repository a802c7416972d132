"""Real local minima of a deliberately narrow network: a 2-2-1 tanh MLP on XOR.

The four XOR points are fitted with the square loss by a network with only two hidden
tanh units (9 parameters). From ``num_seeds`` initializations (>= 1024 in the full
preset; one compiled program per optimizer in the sweep core,
:func:`jaxopt_lab.compare.train`, every optimizer seeing the same initializations) each
method trains full batch:

* ``gd``: plain gradient descent;
* ``momentum``: heavy ball (0.9);
* ``adam``;
* ``perturbed_gd``: gradient descent with uniform-ball kicks where the gradient is small
  (Jin et al. 2017, :func:`jaxopt_lab.transforms.perturbed_gd`, explicit key folded per
  seed by the core);
* ``restarts``: best of ``restarts_k`` plain-GD runs (consecutive GD seeds grouped, the
  lowest final loss kept; ``k`` times the compute of one run).

The final losses are clustered (1-D, a new cluster where sorted losses jump by more than
``cluster_gap``); a run ends in a non-global solution when its final loss exceeds
``global_tol`` (the global minimum is 0: XOR is representable). A sample of end points
per method is classified with the dense float64 Hessian
(:func:`jaxopt_lab.curvature.classify_batch`): minimum (all eigenvalues > tol), saddle
(a negative one), degenerate (none negative, some ~0: flat directions, e.g. a saturated
unit drifting to infinity) or not critical (gradient above ``grad_tol``: still moving).
The summary reports, per method, the rate of non-global end points with its Wilson
interval and the kinds found among the classified ones.

References:
  Rumelhart, Hinton, Williams, 1986 (XOR with backpropagation; runs that get stuck).
  Sprinkhuizen-Kuyper, Boers, 1999. The local minima of the error surface of the 2-2-1
  XOR network. Annals of Mathematics and Artificial Intelligence.
  Jin, Ge, Netrapalli, Kakade, Jordan, 2017. How to escape saddle points efficiently.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import compare, curvature, models
from jaxopt_lab._validation import check_int, check_positive
from jaxopt_lab.experiments import _common, _network
from jaxopt_lab.transforms import perturbed_gd

METHODS: tuple[str, ...] = ("gd", "momentum", "adam", "perturbed_gd", "restarts")
TRAINED: tuple[str, ...] = METHODS[:4]
X_XOR = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], np.float32)
Y_XOR = np.array([0.0, 1.0, 1.0, 0.0], np.float32)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the narrow-minima experiment.

    Attributes:
      num_seeds: initializations per method (one program per method).
      seed: base seed (seed ``i`` = ``fold_in(key(seed), i)``, shared by every method).
      hidden: hidden tanh units (2: the narrow 2-2-1 network).
      steps: full-batch steps.
      gd_learning_rate / momentum_learning_rate / adam_learning_rate: step sizes.
      perturb_radius / perturb_g_thres / perturb_t_thres: perturbed-GD kick radius,
        gradient threshold and minimum steps between kicks.
      restarts_k: GD runs per random-restart attempt.
      global_tol: a final loss above this is a non-global end point.
      cluster_gap: sorted final losses further apart than this start a new cluster.
      num_classify: end points per method classified by the dense Hessian (the non-global
        ones first).
      grad_tol / eig_tol: classification tolerances (absolute gradient norm; eigenvalues
        relative to ``max(1, |H|)``).
      fast_compile: XLA optimization level 0 on CPU.
    """

    num_seeds: int = 256
    seed: int = 0
    hidden: int = 2
    steps: int = 1000
    gd_learning_rate: float = 0.5
    momentum_learning_rate: float = 0.1
    adam_learning_rate: float = 0.05
    perturb_radius: float = 0.5
    perturb_g_thres: float = 1e-3
    perturb_t_thres: int = 100
    restarts_k: int = 4
    global_tol: float = 0.02
    cluster_gap: float = 0.01
    num_classify: int = 16
    grad_tol: float = 1e-3
    eig_tol: float = 1e-4
    fast_compile: bool = True

    def __post_init__(self):
        for name in ("num_seeds", "hidden", "steps", "restarts_k", "num_classify"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_int("perturb_t_thres", self.perturb_t_thres, minimum=0)
        for name in ("gd_learning_rate", "momentum_learning_rate", "adam_learning_rate"):
            _network.check_learning_rates(name, getattr(self, name))
        for name in ("perturb_radius", "global_tol", "cluster_gap", "grad_tol", "eig_tol",
                     "perturb_g_thres"):
            check_positive(name, getattr(self, name))
        if self.restarts_k > self.num_seeds:
            raise ValueError(f"restarts_k ({self.restarts_k}) must be <= num_seeds "
                             f"({self.num_seeds})")

    @classmethod
    def quick(cls) -> Config:
        """Seconds: 256 seeds x 4 trained methods, 1000 steps."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """4096 seeds, 5000 steps, 64 classified end points per method."""
        return cls(num_seeds=4096, steps=5000, num_classify=64, fast_compile=False)


def model_and_loss(c: Config):
    """``(model, loss(params, batch))``: the 2-h-1 tanh MLP and its square loss."""
    model = models.mlp(2, (c.hidden,), 1, activation="tanh", init="xavier", loss="mse")

    def loss(params, batch):
        return jnp.mean((model.apply(params, batch[0])[..., 0] - batch[1]) ** 2)

    return model, loss


def optimizers(c: Config) -> dict:
    """The four trained methods as ``compare.train`` optimizer families."""
    return {
        "gd": (optax.sgd, {"learning_rate": [c.gd_learning_rate]}),
        "momentum": (lambda learning_rate: optax.sgd(learning_rate, momentum=0.9),
                     {"learning_rate": [c.momentum_learning_rate]}),
        "adam": (optax.adam, {"learning_rate": [c.adam_learning_rate]}),
        "perturbed_gd": (lambda learning_rate: perturbed_gd(
            learning_rate, radius=c.perturb_radius, g_thres=c.perturb_g_thres,
            t_thres=c.perturb_t_thres, key=jax.random.key(c.seed + 1)),
            {"learning_rate": [c.gd_learning_rate]}),
    }


def cluster_losses(losses: Any, gap: float) -> list[dict]:
    """1-D clusters of final losses: sorted values split where they jump by > ``gap``.

    Non-finite losses form their own cluster (``center`` = inf). Returns ``[{"center"
    (median), "low", "high", "count"}]`` from the lowest cluster up.
    """
    x = np.asarray(losses, np.float64).reshape(-1)
    finite = np.sort(x[np.isfinite(x)])
    out = []
    if finite.size:
        cuts = np.nonzero(np.diff(finite) > gap)[0] + 1
        for part in np.split(finite, cuts):
            out.append({"center": float(np.median(part)), "low": float(part[0]),
                        "high": float(part[-1]), "count": int(part.size)})
    bad = int((~np.isfinite(x)).sum())
    if bad:
        out.append({"center": float("inf"), "low": float("inf"), "high": float("inf"),
                    "count": bad})
    return out


def classify_points(c: Config, params: Any, batch: tuple) -> curvature.Classification:
    """Dense float64 Hessian classification of stacked end points (leading axis)."""
    _, loss = model_and_loss(c)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), params)
        b64 = tuple(jnp.asarray(np.asarray(b), jnp.float64) for b in batch)
        return curvature.classify_batch(loss, p64, b64, grad_tol=c.grad_tol,
                                        eig_tol=c.eig_tol)


def _sample(final: np.ndarray, non_global: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to ``n`` end points, the non-global ones first (finite only)."""
    finite = np.isfinite(final)
    bad_idx = np.nonzero(non_global & finite)[0]
    good_idx = np.nonzero(~non_global & finite)[0]
    return np.concatenate([bad_idx[:n], good_idx[: max(0, n - len(bad_idx))]])


def run(config: Config, out_dir: Any = None) -> compare.Results:
    """Train every method from the same seeds, cluster, classify and summarize.

    Returns:
      :class:`jaxopt_lab.compare.Results` (``group_column="variant"``, variants
      :data:`METHODS`): per seed (``restarts``: per attempt of ``restarts_k`` GD runs)
      ``final_loss``, ``non_global``, ``accuracy`` (sign agreement on the 4 points),
      ``nonfinite``; per trained method ``kind_code`` (-1 not classified, else the index
      into :data:`jaxopt_lab.curvature.KIND_NAMES`) and ``min_eigenvalue``; ``curves``:
      the training loss (``[1, S, steps]``); ``summary``: per method the non-global rate
      with its Wilson CI, the loss clusters, the kinds of the classified end points, and
      ``nonfinite_seeds``.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a narrow_minima.Config, got {type(config).__name__}")
    c = config
    t_start = time.perf_counter()
    model, loss = model_and_loss(c)
    batch = (jnp.asarray(X_XOR), jnp.asarray(Y_XOR))
    key = jax.random.key(c.seed)

    def evaluate(params, d):
        pred = model.apply(params, d[0])[..., 0]
        return {"accuracy": jnp.mean((pred > 0.5) == (d[1] > 0.5))}

    res = compare.train(model.init, loss, optimizers(c), num_seeds=c.num_seeds,
                        steps=c.steps, key=key, batch_fn=lambda d, k, t: d, data=batch,
                        evaluate=evaluate, keep_params=True, fast_compile=c.fast_compile)
    metrics, curves, summary = {}, {}, {}
    for name in TRAINED:
        final = np.asarray(res.final[name]["final_loss"], np.float64)[0]
        bad = np.asarray(res.final[name]["nonfinite"], bool)[0]
        non_global = ~(final <= c.global_tol)  # NaN counts as non-global
        idx = _sample(final, non_global, c.num_classify)
        codes = np.full(c.num_seeds, -1, np.int64)
        min_eig = np.full(c.num_seeds, np.nan)
        kinds: dict[str, dict[str, int]] = {"non_global": {}, "global": {}}
        if idx.size:
            pts = jax.tree.map(lambda a, idx=idx: np.asarray(a)[0, idx], res.params[name])
            cl = classify_points(c, pts, batch)
            codes[idx] = [curvature.KIND_NAMES.index(k) for k in cl.kind]
            min_eig[idx] = cl.eigenvalues[:, 0]
            for j, kind in zip(idx, cl.kind, strict=True):
                part = kinds["non_global" if non_global[j] else "global"]
                part[str(kind)] = part.get(str(kind), 0) + 1
        metrics[name] = {
            "final_loss": final,
            "non_global": non_global,
            "accuracy": np.asarray(res.final[name]["accuracy"], np.float64)[0],
            "kind_code": codes,
            "min_eigenvalue": min_eig,
            "nonfinite": bad,
        }
        curves[name] = {"loss": res.losses(name)[0]}
        summary[name] = {
            "non_global": _common.rate(non_global),
            "clusters": cluster_losses(final, c.cluster_gap),
            "classified": kinds,
            "nonfinite": _common.rate(bad),
        }
    # random restarts: best of k consecutive GD seeds (k times the compute)
    k = c.restarts_k
    n_att = c.num_seeds // k
    gd = metrics["gd"]
    loss_k = np.where(np.isfinite(gd["final_loss"]), gd["final_loss"], np.inf)
    loss_k = loss_k[: n_att * k].reshape(n_att, k)
    best = np.argmin(loss_k, axis=1)
    rows = np.arange(n_att) * k + best
    best_loss = np.where(np.isfinite(loss_k.min(1)), loss_k.min(1), np.nan)
    metrics["restarts"] = {
        "final_loss": best_loss,
        "non_global": ~(best_loss <= c.global_tol),
        "accuracy": gd["accuracy"][rows],
        "nonfinite": np.all(gd["nonfinite"][: n_att * k].reshape(n_att, k), axis=1),
    }
    summary["restarts"] = {
        "non_global": _common.rate(metrics["restarts"]["non_global"]),
        "clusters": cluster_losses(best_loss, c.cluster_gap),
        "attempts": n_att,
        "runs_per_attempt": k,
        "nonfinite": _common.rate(metrics["restarts"]["nonfinite"]),
        "independence_prediction": float(np.mean(gd["non_global"]) ** k),
    }
    summary["global_tol"] = c.global_tol
    hp = {"gd": {"learning_rate": c.gd_learning_rate},
          "momentum": {"learning_rate": c.momentum_learning_rate, "momentum": 0.9},
          "adam": {"learning_rate": c.adam_learning_rate},
          "perturbed_gd": {"learning_rate": c.gd_learning_rate, "radius": c.perturb_radius},
          "restarts": {"learning_rate": c.gd_learning_rate, "k": k}}
    result = _common.results(
        c, METHODS, metrics, curves, summary,
        compile_seconds=res.compile_seconds, run_seconds=res.run_seconds,
        hparams={m: [hp[m]] for m in METHODS},
        total_seconds=time.perf_counter() - t_start, experiment="narrow_minima")
    if out_dir is not None:
        from jaxopt_lab.plot import network

        result.save(out_dir, figures={"narrow_minima": network.narrow_minima(result)})
    return result

"""Head-to-head: the lab's task-sequence programs against avalanche-lib's strategies.

The same tensors (split scikit-learn digits, five class pairs, class-incremental: one
10-way head), the same network (MLP 64-h-10, ReLU) with the SAME initial weights per seed
(the lab's initialization of seed ``i`` copied into the torch model), the same optimizer
(Adam), learning rate, batch size, number of optimizer steps per task and memory sizes
in avalanche-lib's Naive, EWC, GEM, AGEM and Replay (reservoir buffer) strategies and in
the lab (:func:`jaxopt_lab.continual.run_sequence`, every seed in ONE program). Both are
evaluated the same way: after each task, the test accuracy of every task (``R [T, T]``;
accuracy computed here for avalanche, not through its metric plugins, so the scores are
the lab's :func:`~jaxopt_lab.continual.scores`). Prints ACC and forgetting (mean and 95%
bootstrap interval over seeds) side by side with the wall time per seed, and writes JSON.

What cannot be made identical (and is reported with the numbers):

* batches: the lab draws each step's batch uniformly with replacement (key-driven);
  avalanche iterates shuffled epochs (``train_epochs = round(steps * batch / n_task)``,
  so the step counts match to within one epoch);
* EWC: the lab uses the per-example empirical Fisher and ``(lambda/2) sum F d^2``;
  avalanche squares minibatch-mean gradients (about ``F / batch``) and uses
  ``lambda sum F d^2``, so avalanche runs with ``ewc_lambda = lambda * batch / 2``;
* Replay: avalanche concatenates ``batch`` current and ``batch`` replayed examples into
  one mean loss; the lab adds the replayed examples' mean loss to the current one;
* the wall time of avalanche is its whole ``train`` loop per seed (Python, torch CPU,
  ``--torch-threads`` intra-op threads, default 1: the fastest for these small MLPs);
  the lab's is compile (XLA optimization level 0, as the presets) + run of all seeds
  divided by the number of seeds (and the run alone, also per seed).

Needs the optional extra ``peers`` (``pip install -e ".[peers]"``: avalanche-lib and CPU
torch); never needed by the tests.

    python benchmarks/peers/continual_avalanche.py --seeds 5 \\
        --out benchmarks/results/continual_avalanche.json

References:
  Lomonaco et al. (2021), "Avalanche: an End-to-End Library for Continual Learning".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import jax
import numpy as np

from jaxopt_lab import continual, data

METHODS = ("naive", "ewc", "gem", "agem", "replay")


def interval(x, resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean and 95% percentile-bootstrap interval of the mean over seeds."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (resamples, x.size))].mean(1)
    return {"mean": float(x.mean()), "ci": [float(np.quantile(means, 0.025)),
                                            float(np.quantile(means, 0.975))],
            "per_seed": [float(v) for v in x]}


def lab_init(settings, seq, key, seed: int):
    """The lab's initial parameters of seed ``seed`` (the sweep core's ``fold_in(key, i)``,
    then the trial's ``fold_in(., 0)``)."""
    net = continual.network(seq.x_train.shape[2], settings.hidden, seq.num_outputs,
                            settings.activation)
    return net.init(jax.random.fold_in(jax.random.fold_in(key, seed), 0))


def lab(seq, settings, seeds, lr, strength, key, methods=METHODS):
    out = {}
    for name in methods:
        m = continual.get_method(name)
        t0 = time.perf_counter()
        r = continual.run_sequence(seq, m, settings, num_seeds=seeds, key=key,
                                   learning_rates=[lr],
                                   strengths=[strength] if m.kind == "ewc" else None,
                                   fast_compile=True)
        wall = time.perf_counter() - t0
        sc = continual.scores(r["R"], r["r0"])
        out[name] = {"acc": interval(sc["acc"][0]), "forgetting": interval(sc["forgetting"][0]),
                     "seconds_per_seed": wall / seeds,
                     "run_seconds_per_seed": r["run_seconds"] / seeds,
                     "compile_seconds": r["compile_seconds"], "wall_seconds": wall}
    return out


def avalanche(tasks, seq, settings, seeds, lr, strength, key, methods=METHODS, threads=1):
    import torch
    from avalanche.benchmarks.scenarios.deprecated.generic_benchmark_creation import (
        create_generic_benchmark_from_tensor_lists,
    )
    from avalanche.training import AGEM, EWC, GEM, Naive
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.storage_policy import ReservoirSamplingBuffer

    torch.set_num_threads(threads)
    tr = [[torch.tensor(np.asarray(t["train"][0], np.float32)),
           torch.tensor(np.asarray(t["train"][1], np.int64))] for t in tasks]
    te = [(torch.tensor(np.asarray(t["test"][0], np.float32)),
           torch.tensor(np.asarray(t["test"][1], np.int64))) for t in tasks]
    bench = create_generic_benchmark_from_tensor_lists(
        train_tensors=tr, test_tensors=[list(p) for p in te], task_labels=[0] * len(tasks))
    n_mean = float(np.mean([len(t["train"][1]) for t in tasks]))
    epochs = max(1, round(settings.steps_per_task * settings.batch_size / n_mean))
    in_dim, h = seq.x_train.shape[2], settings.hidden[0]

    def model_for(seed):
        p = lab_init(settings, seq, key, seed)
        model = torch.nn.Sequential(torch.nn.Linear(in_dim, h), torch.nn.ReLU(),
                                    torch.nn.Linear(h, seq.num_outputs))
        with torch.no_grad():
            for layer, name in ((model[0], "layers_0"), (model[2], "out")):
                layer.weight.copy_(torch.tensor(np.asarray(p[name]["kernel"]).T))
                layer.bias.copy_(torch.tensor(np.asarray(p[name]["bias"])))
        return model

    def accuracies(model):
        model.eval()
        with torch.no_grad():
            return [float((model(x).argmax(-1) == y).float().mean()) for x, y in te]

    res = {}
    for name in methods:
        accs, forg, wall = [], [], 0.0
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = model_for(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            kw = dict(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
                      train_mb_size=settings.batch_size, train_epochs=epochs,
                      eval_mb_size=1000, device="cpu", evaluator=EvaluationPlugin(loggers=[]))
            if name == "naive":
                strat = Naive(**kw)
            elif name == "ewc":
                strat = EWC(**kw, ewc_lambda=strength * settings.batch_size / 2)
            elif name == "gem":
                strat = GEM(**kw, patterns_per_exp=settings.memory_per_task,
                            memory_strength=0.0)
            elif name == "agem":
                strat = AGEM(**kw, patterns_per_exp=settings.memory_per_task,
                             sample_size=settings.memory_batch)
            else:
                strat = Naive(**kw, plugins=[ReplayPlugin(
                    mem_size=settings.replay_capacity, batch_size=settings.batch_size,
                    batch_size_mem=settings.replay_batch,
                    storage_policy=ReservoirSamplingBuffer(settings.replay_capacity))])
            r0 = np.asarray(accuracies(model))
            r = np.zeros((len(tasks), len(tasks)))
            t0 = time.perf_counter()
            for i, exp in enumerate(bench.train_stream):
                strat.train(exp)
                r[i] = accuracies(model)
            wall += time.perf_counter() - t0
            s = continual.scores(r[None], r0[None])
            accs.append(float(s["acc"][0]))
            forg.append(float(s["forgetting"][0]))
        res[name] = {"acc": interval(accs), "forgetting": interval(forg),
                     "seconds_per_seed": wall / seeds, "epochs_per_task": epochs}
        print(f"  avalanche {name}: ACC {np.mean(accs):.3f}, {wall / seeds:.2f} s/seed",
              flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per task")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--strength", type=float, default=1e3, help="the lab's EWC lambda")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads (1: fastest for these small MLPs)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    methods = tuple(a.methods.split(","))
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: unknown method {m!r} (choose from {METHODS})")
    d = data.load_digits()
    tasks = data.split_tasks({"train": d["train"], "test": d["test"]})
    n_min = min(len(t["train"][1]) for t in tasks)
    settings = continual.Settings(hidden=(a.hidden,), steps_per_task=a.steps,
                                  batch_size=a.batch, memory_per_task=50, memory_batch=64,
                                  replay_capacity=250, replay_batch=a.batch,
                                  fisher_samples=min(200, n_min), eval_every=a.steps)
    seq = continual.make_sequence(tasks, "class")
    key = jax.random.key(0)
    print(f"split digits, class-IL, MLP 64-{a.hidden}-10, Adam {a.lr:g}, batch {a.batch}, "
          f"{a.steps} steps per task, {a.seeds} seeds; load {os.getloadavg()}", flush=True)
    rows = {"lab": lab(seq, settings, a.seeds, a.lr, a.strength, key, methods)}
    try:
        rows["avalanche"] = avalanche(tasks, seq, settings, a.seeds, a.lr, a.strength, key,
                                      methods, a.torch_threads)
    except ImportError as exc:
        print(f"avalanche-lib not installed ({exc}); lab only. pip install -e '.[peers]'")
    print(f"{'method':8s} {'lib':10s} {'ACC (95% CI)':>22s} {'forgetting (95% CI)':>24s} "
          f"{'s/seed':>8s}")
    for lib_name, res in rows.items():
        for m, v in res.items():
            ac, fo = v["acc"], v["forgetting"]
            print(f"{m:8s} {lib_name:10s} {ac['mean']:6.3f} [{ac['ci'][0]:.3f}, "
                  f"{ac['ci'][1]:.3f}] {fo['mean']:8.3f} [{fo['ci'][0]:.3f}, "
                  f"{fo['ci'][1]:.3f}] {v['seconds_per_seed']:8.3f}")
    if "avalanche" in rows:
        ratios = {}
        for m in methods:
            lab_m, av = rows["lab"][m], rows["avalanche"][m]
            ac_l, ac_a = lab_m["acc"]["ci"], av["acc"]["ci"]
            ratios[m] = {"speedup_per_seed": av["seconds_per_seed"] / lab_m["seconds_per_seed"],
                         "speedup_run_only": (av["seconds_per_seed"]
                                              / lab_m["run_seconds_per_seed"]),
                         "acc_intervals_overlap": bool(ac_l[1] >= ac_a[0]
                                                       and ac_a[1] >= ac_l[0])}
            print(f"{m:8s} lab speed-up per seed x{ratios[m]['speedup_per_seed']:.1f} "
                  f"(run only x{ratios[m]['speedup_run_only']:.1f}); ACC intervals overlap: "
                  f"{ratios[m]['acc_intervals_overlap']}")
        rows["comparison"] = ratios
    if a.out:
        rows["meta"] = {"date": datetime.datetime.now(datetime.UTC).isoformat(),
                        "machine": platform.platform(), "cpus": os.cpu_count(),
                        "load_average": os.getloadavg(), "args": vars(a),
                        "jax": jax.__version__}
        try:
            import avalanche as av_mod
            import torch

            rows["meta"].update(torch=torch.__version__, avalanche=av_mod.__version__)
        except ImportError:
            pass
        with open(a.out, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()

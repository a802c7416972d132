"""Head-to-head: the lab's task-sequence programs against avalanche-lib's strategies.

The same tensors (split digits, five class pairs, class-incremental), network (MLP, one
hidden layer), optimizer (Adam), steps per task, batch size and memory sizes in
avalanche-lib's Naive, EWC, GEM, AGEM and Replay strategies and in the lab
(:func:`jaxopt_lab.continual.run_sequence`, all seeds in one program). Prints ACC and
forgetting (median over seeds) side by side with the wall time per seed, and writes JSON.

Needs the optional extra ``peers`` (``pip install -e ".[peers]"``: avalanche-lib and CPU
torch); never needed by the tests.

    python benchmarks/peers/continual_avalanche.py --seeds 5 --out benchmarks/results/cl.json

References:
  Lomonaco et al. (2021), "Avalanche: an End-to-End Library for Continual Learning".
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from jaxopt_lab import continual, data

METHODS = {"naive": "Naive", "ewc": "EWC", "gem": "GEM", "agem": "AGEM", "replay": "Replay"}


def lab(seq, settings, seeds, lr, strength):
    out = {}
    for name in METHODS:
        m = continual.get_method(name)
        t0 = time.perf_counter()
        r = continual.run_sequence(seq, m, settings, num_seeds=seeds, key=0,
                                   learning_rates=[lr],
                                   strengths=[strength] if m.kind == "ewc" else None)
        wall = time.perf_counter() - t0
        sc = continual.scores(r["R"], r["r0"])
        out[name] = {"acc": float(np.median(sc["acc"])),
                     "forgetting": float(np.median(sc["forgetting"])),
                     "seconds_per_seed": wall / seeds, "compile_seconds": r["compile_seconds"]}
    return out


def avalanche(tasks, settings, seeds, lr, strength):
    import torch
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils import as_classification_dataset
    from avalanche.training import AGEM, EWC, GEM, Naive, Replay
    from torch.utils.data import TensorDataset

    def ds(part):
        out = []
        for t in tasks:
            x, y = (torch.tensor(np.asarray(a)) for a in t[part])
            d = TensorDataset(x.float(), y.long())
            d.targets = y.long()
            out.append(as_classification_dataset(d))
        return out

    bench = benchmark_from_datasets(train=ds("train"), test=ds("test"))
    epochs = max(1, round(settings.steps_per_task * settings.batch_size
                          / len(tasks[0]["train"][1])))
    res = {}
    for name, cls in METHODS.items():
        accs, forg, wall = [], [], 0.0
        for seed in range(seeds):
            torch.manual_seed(seed)
            h = settings.hidden[0]
            model = torch.nn.Sequential(torch.nn.Linear(64, h), torch.nn.ReLU(),
                                        torch.nn.Linear(h, 10))
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            kw = dict(train_mb_size=settings.batch_size, train_epochs=epochs,
                      eval_mb_size=1000, device="cpu")
            extra = {"ewc": {"ewc_lambda": strength},
                     "gem": {"patterns_per_exp": settings.memory_per_task,
                             "memory_strength": 0.0},
                     "agem": {"patterns_per_exp": settings.memory_per_task,
                              "sample_size": settings.memory_batch},
                     "replay": {"mem_size": settings.replay_capacity}}.get(name, {})
            strat = getattr(__import__("avalanche.training", fromlist=[cls]), cls)(
                model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(), **kw,
                **extra)
            t0 = time.perf_counter()
            r = np.zeros((len(tasks), len(tasks)))
            for i, exp in enumerate(bench.train_stream):
                strat.train(exp)
                ev = strat.eval(bench.test_stream)
                for j in range(len(tasks)):
                    key = f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}"
                    r[i, j] = ev.get(key, np.nan)
            wall += time.perf_counter() - t0
            s = continual.scores(r[None], np.zeros((1, len(tasks))))
            accs.append(float(s["acc"][0]))
            forg.append(float(s["forgetting"][0]))
        res[name] = {"acc": float(np.median(accs)), "forgetting": float(np.median(forg)),
                     "seconds_per_seed": wall / seeds}
    del EWC, GEM, AGEM, Naive, Replay  # imported to fail early when avalanche is absent
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--strength", type=float, default=1e3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    d = data.load_digits()
    tasks = data.split_tasks({"train": d["train"], "test": d["test"]})
    settings = continual.Settings(hidden=(100,), steps_per_task=a.steps, batch_size=32,
                                  memory_per_task=50, memory_batch=64, replay_capacity=250,
                                  eval_every=a.steps)
    seq = continual.make_sequence(tasks, "class")
    rows = {"lab": lab(seq, settings, a.seeds, a.lr, a.strength)}
    try:
        rows["avalanche"] = avalanche(tasks, settings, a.seeds, a.lr, a.strength)
    except ImportError as exc:
        print(f"avalanche-lib not installed ({exc}); lab only. pip install -e '.[peers]'")
    print(f"{'method':8s} {'lib':10s} {'ACC':>6s} {'forget':>7s} {'s/seed':>8s}")
    for lib, res in rows.items():
        for m, v in res.items():
            print(f"{m:8s} {lib:10s} {v['acc']:6.3f} {v['forgetting']:7.3f} "
                  f"{v['seconds_per_seed']:8.3f}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()

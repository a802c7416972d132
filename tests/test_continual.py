"""Continual-learning lab: scenarios, memories, progressive networks, distillation, the
task-sequence trial against a serial loop, scores, and the quick preset end to end."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import continual, data, transforms
from jaxopt_lab.data import memory as mem_lib
from jaxopt_lab.models.distill import distillation_loss, masked_logits
from jaxopt_lab.models.progressive import progressive


@pytest.fixture(scope="module")
def digits():
    d = data.load_digits()
    return {"train": d["train"], "test": d["test"]}


# --------------------------------------------------------------------------- scenarios
def test_scenarios_labels_and_masks(digits):
    tasks = data.split_tasks(digits)
    task = continual.make_sequence(tasks, "task")
    dom = continual.make_sequence(tasks, "domain")
    cls = continual.make_sequence(tasks, "class")
    assert task.num_outputs == dom.num_outputs == cls.num_outputs == 10
    for t in range(5):
        n = int(task.n_train[t])
        assert n == int((np.asarray(digits["train"][1]) // 2 == t).sum())
        assert set(np.unique(task.y_train[t, :n])) == {2 * t, 2 * t + 1}
        assert set(np.unique(dom.y_train[t, :n])) == {0, 1}
        np.testing.assert_array_equal(cls.y_train[t, :n], task.y_train[t, :n])
        np.testing.assert_array_equal(np.flatnonzero(task.head_mask[t]), [2 * t, 2 * t + 1])
        np.testing.assert_array_equal(np.flatnonzero(dom.head_mask[t]), [0, 1])
        assert cls.head_mask[t].all()
    # permuted tasks share labels: task- and class-IL get a block of outputs per task
    perm = data.permuted_tasks(digits, 3)
    pt = continual.make_sequence(perm, "task")
    assert pt.num_outputs == 30
    np.testing.assert_array_equal(np.flatnonzero(pt.head_mask[2]), np.arange(20, 30))
    assert int(pt.y_train[2].min()) == 20
    pd = continual.make_sequence(perm, "domain")
    np.testing.assert_array_equal(pd.y_train[1], pd.y_train[0])


def test_bad_input_names_the_argument(digits):
    tasks = data.split_tasks(digits)
    with pytest.raises(ValueError, match="class_groups"):
        data.split_tasks(digits, [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="absent"):
        data.split_tasks(digits, [(0, 1), (10, 11)])
    with pytest.raises(ValueError, match="scenario"):
        continual.make_sequence(tasks, "instance")
    with pytest.raises(ValueError, match="method"):
        continual.get_method("si")
    odd = [tasks[0], {"train": (tasks[1]["train"][0][:, :32], tasks[1]["train"][1]),
                      "test": (tasks[1]["test"][0][:, :32], tasks[1]["test"][1])}]
    with pytest.raises(ValueError, match="tasks must all have the same input shape"):
        continual.make_sequence(odd, "class")
    seq = continual.make_sequence(tasks, "class")
    big = continual.Settings(memory_per_task=100_000, eval_every=50)
    with pytest.raises(ValueError, match="memory_per_task"):
        continual.sequence_trial(seq, continual.get_method("gem"), big)
    with pytest.raises(ValueError, match="eval_every"):
        continual.Settings(steps_per_task=100, eval_every=30)
    from jaxopt_lab.experiments import continual as exp

    with pytest.raises(ValueError, match="methods"):
        exp.Protocol("split", ("digits",), ("task",), ("nope",), continual.Settings())
    with pytest.raises(ValueError, match="datasets"):
        exp.Protocol("split", ("mnist",), ("task",), ("naive",), continual.Settings())


# --------------------------------------------------------------------------- memories
def test_reservoir_keeps_each_example_with_probability_m_over_n():
    n, m, trials = 120, 12, 1500
    ids = jnp.arange(n, dtype=jnp.int32)

    def one(key):
        buf = mem_lib.reservoir_init(m, (1,))
        for b in range(0, n, 30):  # the stream arrives in batches of 30
            chunk = ids[b:b + 30]
            buf = mem_lib.reservoir_add(buf, jax.random.fold_in(key, b), chunk[:, None] * 1.0,
                                        chunk, 0)
        return jnp.zeros(n).at[buf.y].add(1.0), buf.seen

    counts, seen = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), trials))
    assert np.all(np.asarray(seen) == n)
    np.testing.assert_allclose(np.asarray(counts).sum(1), m)  # full, no duplicates
    freq = np.asarray(counts).mean(0)
    sd = np.sqrt(m / n * (1 - m / n) / trials)
    assert np.all(np.abs(freq - m / n) < 5 * sd), (freq.min(), freq.max())
    # early and late examples alike (no bias towards the start or the end of the stream)
    assert abs(freq[: n // 2].mean() - freq[n // 2:].mean()) < 3 * sd


def test_reservoir_fills_first_and_sampling_weight():
    buf = mem_lib.reservoir_init(5, (2,))
    x, y, t, w = mem_lib.reservoir_sample(buf, jax.random.key(0), 4)
    assert float(w) == 0.0
    buf = jax.jit(mem_lib.reservoir_add)(buf, jax.random.key(1), jnp.ones((3, 2)),
                                         jnp.arange(3), 7)
    np.testing.assert_array_equal(buf.y[:3], [0, 1, 2])
    assert int(buf.seen) == 3 and np.all(np.asarray(buf.task[:3]) == 7)
    _, ys, _, w = mem_lib.reservoir_sample(buf, jax.random.key(2), 50)
    assert float(w) == 1.0 and set(np.asarray(ys).tolist()) <= {0, 1, 2}


def test_episodic_sample_without_replacement_from_valid_rows():
    x = jnp.arange(20.0)[:, None]
    y = jnp.arange(20, dtype=jnp.int32)
    for s in range(10):
        _, ym = mem_lib.episodic_sample(jax.random.key(s), x, y, jnp.int32(8), 8)
        assert sorted(np.asarray(ym).tolist()) == list(range(8))
    with pytest.raises(ValueError, match="memory_size"):
        mem_lib.check_memory_size("memory_size", 9, [8, 12])


# --------------------------------------------------------------------------- models
def test_progressive_columns_are_isolated_and_grow():
    net = progressive(6, [5, 4], 3, num_columns=3)
    p = net.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (7, 6))
    out1 = net.apply(p, x, 1)
    # changing column 2 (and its laterals) leaves columns 0 and 1 exactly as they were
    p2 = jax.tree.map(lambda a, mk: a + 3.0 * mk, p, net.trainable(p, 2))
    np.testing.assert_array_equal(net.apply(p2, x, 1), out1)
    assert not np.allclose(net.apply(p2, x, 2), net.apply(p, x, 2))
    # column 1 depends on column 0 through its laterals
    p3 = jax.tree.map(lambda a, mk: a + mk, p, net.trainable(p, 0))
    assert not np.allclose(net.apply(p3, x, 1), out1)
    # trainable(1): column 1 and laterals from column 0 into column 1 only
    mask = net.trainable(p, 1)
    lat = np.asarray(mask["layers_1"]["lateral"])
    assert lat[1, 0].all() and not lat[1, 1].any() and not lat[0].any() and not lat[2].any()
    # parameter count: columns grow linearly, laterals j < k
    full = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(p))
    upper = sum(6 * a.shape[2] * a.shape[3] for d in p.values() for k, a in d.items()
                if k == "lateral")  # the 9 - 3 laterals with j >= k are never used
    assert net.num_params(3) == full - upper
    per_col = 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3
    assert net.num_params(1) == per_col
    assert net.num_params(2) == 2 * per_col + 5 * 4 + 4 * 3


def test_distillation_loss_matches_formula():
    s = jax.random.normal(jax.random.key(0), (4, 5))
    t = jax.random.normal(jax.random.key(1), (4, 5))
    mask = jnp.array([True, True, False, True, False])
    tt = 2.0
    got = distillation_loss(s, t, mask, temperature=tt)
    ps = jax.nn.softmax(np.asarray(t)[:, [0, 1, 3]] / tt)
    lq = jax.nn.log_softmax(np.asarray(s)[:, [0, 1, 3]] / tt)
    np.testing.assert_allclose(got, -tt**2 * np.mean(np.sum(ps * lq, 1)), rtol=1e-5)
    # minimised (over the student) at the teacher
    g = jax.grad(lambda z: distillation_loss(z, t, mask, temperature=tt))(t)
    np.testing.assert_allclose(np.asarray(g)[:, np.asarray(mask)], 0.0, atol=1e-6)
    assert float(masked_logits(s, mask)[0, 2]) < -1e8


# --------------------------------------------------------------------------- scores
def test_scores_oracle():
    r = np.array([[0.9, 0.2, 0.1], [0.6, 0.8, 0.3], [0.5, 0.7, 0.95]])
    b = np.array([0.1, 0.1, 0.2])
    s = continual.scores(r[None], b[None])
    np.testing.assert_allclose(s["acc"], [(0.5 + 0.7 + 0.95) / 3], rtol=1e-6)
    np.testing.assert_allclose(s["bwt"], [((0.5 - 0.9) + (0.7 - 0.8)) / 2], rtol=1e-6)
    np.testing.assert_allclose(s["fwt"], [((0.2 - 0.1) + (0.3 - 0.2)) / 2], rtol=1e-5)
    np.testing.assert_allclose(s["forgetting"], [((0.9 - 0.5) + (0.8 - 0.7)) / 2], rtol=1e-6)
    with pytest.raises(ValueError, match="r0"):
        continual.scores(r, b[:2])


def test_accuracy_matrix_of_a_known_classifier(digits):
    """With a learning rate of ~0 the network stays its initialization: every row of R is
    the accuracy of that known classifier, computed here directly from its predictions."""
    tasks = continual.subsample(data.split_tasks(digits), max_train=60, max_test=40)
    s = continual.Settings(hidden=(32,), steps_per_task=4, batch_size=4, eval_every=2)
    seq = continual.make_sequence(tasks, "task")
    out = continual.run_sequence(seq, continual.get_method("naive"), s, num_seeds=2, key=0,
                                 learning_rates=[1e-30], fast_compile=True)
    net = continual.network(64, (32,), 10, "relu")
    for i in range(2):
        params = net.init(jax.random.fold_in(jax.random.fold_in(jax.random.key(0), i), 0))
        want = []
        for j in range(5):
            lg = masked_logits(net.apply(params, seq.x_test[j]), seq.head_mask[j])
            v = np.asarray(seq.test_valid[j])
            want.append(np.mean(np.argmax(np.asarray(lg), -1)[v] == np.asarray(seq.y_test[j])[v]))
        np.testing.assert_allclose(out["r0"][0, i], want, atol=1e-6)
        np.testing.assert_allclose(out["R"][0, i], np.tile(want, (5, 1)), atol=1e-6)
    scores = continual.scores(out["R"], out["r0"])
    np.testing.assert_allclose(scores["forgetting"], 0.0, atol=1e-6)


# --------------------------------------------------------------------------- trial vs loop
def _serial(seq, settings, key, lr, strength, mode):
    """Python loops over tasks and steps for ONE seed, the transforms called directly."""
    net = continual.network(seq.x_train.shape[2], settings.hidden, seq.num_outputs,
                            settings.activation)
    heads = jnp.asarray(seq.head_mask)
    opt = optax.chain(transforms.ewc(strength=strength, mode=mode, max_tasks=seq.num_tasks),
                      optax.adam(lr))

    def loss(p, x, y, t):
        lg = masked_logits(net.apply(p, x), heads[t])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, y))

    @jax.jit
    def step(params, state, x, y, t):
        upd, state = opt.update(jax.grad(loss)(params, x, y, t), state, params)
        return optax.apply_updates(params, upd), state

    @jax.jit
    def consolidate(state, params, fx, fy, t):
        fisher = transforms.fisher_diagonal(lambda p, b: loss(p, b[0], b[1], t), params,
                                            (fx, fy))
        return transforms.ewc_consolidate(state, fisher, params)

    params = net.init(jax.random.fold_in(key, 0))
    state = opt.init(params)
    k_data = jax.random.fold_in(key, 1)
    rows = []
    for t in range(seq.num_tasks):
        k_t = jax.random.fold_in(k_data, t)
        for i in range(settings.steps_per_task):
            ks = jax.random.fold_in(jax.random.fold_in(k_t, i), 0)
            idx = jax.random.randint(ks, (settings.batch_size,), 0, seq.n_train[t])
            params, state = step(params, state, seq.x_train[t][idx], seq.y_train[t][idx], t)
        kf = jax.random.fold_in(jax.random.fold_in(key, 3), t)
        fx, fy = mem_lib.episodic_sample(kf, jnp.asarray(seq.x_train[t]),
                                         jnp.asarray(seq.y_train[t]), seq.n_train[t],
                                         settings.fisher_samples)
        state = consolidate(state, params, fx, fy, t)
        row = []
        for j in range(seq.num_tasks):
            lg = masked_logits(net.apply(params, seq.x_test[j]), heads[j])
            hit = (np.argmax(lg, -1) == seq.y_test[j]) & seq.test_valid[j]
            row.append(hit.sum() / seq.test_valid[j].sum())
        rows.append(row)
    return np.asarray(rows)


@pytest.mark.parametrize("mode", ["separate", "online"])
def test_vmapped_sequence_equals_serial_loop(digits, mode):
    tasks = continual.subsample(data.split_tasks(digits, [(0, 1), (2, 3), (4, 5)]),
                                max_train=50, max_test=30)
    s = continual.Settings(hidden=(8,), steps_per_task=12, batch_size=5, eval_every=6,
                           fisher_samples=10)
    seq = continual.make_sequence(tasks, "class")
    name = "ewc" if mode == "separate" else "online_ewc"
    out = continual.run_sequence(seq, continual.get_method(name), s, num_seeds=2, key=3,
                                 learning_rates=[0.05], strengths=[50.0])
    for i in range(2):
        ref = _serial(seq, s, jax.random.fold_in(jax.random.key(3), i), 0.05, 50.0, mode)
        np.testing.assert_allclose(out["R"][0, i], ref, atol=1.5 / 30)
        # the loop is not trivial: the network learned its first task
        assert ref[0, 0] > 0.8


# --------------------------------------------------------------------------- the preset
def test_quick_preset_end_to_end(tmp_path):
    from jaxopt_lab.compare import read_csv
    from jaxopt_lab.experiments import continual as exp

    cfg = exp.Config.quick()
    res = exp.run(cfg, out_dir=tmp_path / "run")
    recs = read_csv(tmp_path / "run")
    for col in ("method", "scenario", "dataset", "seed", "acc", "bwt", "fwt", "forgetting"):
        assert col in recs[0]
    assert {r["scenario"] for r in recs} == {"task", "domain", "class"}
    files = set(os.listdir(tmp_path / "run"))
    assert {"R_split_digits_class.png", "curves_split_digits_task.png",
            "memory_split_digits.png", "curves.npz"} <= files

    def get(method, scenario, key, lr=1e-3):
        for h, hp in enumerate(res.hparams[method]):
            if hp["scenario"] == scenario and hp["learning_rate"] == lr:
                return np.asarray(res.metrics[method][key][h])
        raise KeyError((method, scenario))

    # scenario difficulty (van de Ven & Tolias 2019): class-IL forgets far more than task-IL
    assert get("naive", "class", "forgetting").min() > get("naive", "task", "forgetting").max()
    assert get("naive", "class", "forgetting").mean() > 0.5
    # progressive networks: no forgetting at all with the task identity; memory grows
    assert np.all(get("progressive", "task", "forgetting") == 0.0)
    mb = np.asarray(res.curves["progressive"]["memory_bytes"])[0, 0]
    assert mb[-1] > 4 * mb[0]
    # GEM beats naive fine-tuning in class-IL on every seed (paired seeds), and by a
    # margin on average over the 5 seeds
    for m in ("gem",):
        gain = get(m, "class", "acc") - get("naive", "class", "acc")
        assert np.all(gain > 0) and gain.mean() > 0.1, (m, gain)
    r = np.asarray(res.curves["naive"]["R"])
    assert r.shape[1:] == (cfg.num_seeds, 5, 5)
    assert not any(res.summary["nonfinite_seeds"].values())
    assert {"C6", "C7", "C8", "C9"} <= set(res.summary["claims"])


# --------------------------------------------------------------------------- tables
def test_mean_ci_and_tables():
    from jaxopt_lab.compare import Results
    from jaxopt_lab.experiments import continual as exp

    assert exp.mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    m, lo, hi = exp.mean_ci(np.arange(10.0), seed=1)
    assert m == 4.5 and 2.0 < lo < 4.5 < hi < 7.0

    def hp(sc, **kw):
        return {"protocol": "split", "dataset": "digits", "scenario": sc,
                "learning_rate": 1e-3, **kw}

    res = Results(optimizers=["naive", "ewc"],
                  hparams={"naive": [hp("task"), hp("class")],
                           "ewc": [hp("task", strength=1.0), hp("task", strength=10.0)]},
                  metrics={"naive": {"acc": np.array([[0.9, 0.9], [0.2, 0.2]])},
                           "ewc": {"acc": np.array([[0.5, 0.5], [0.7, 0.7]])}},
                  group_column="method")
    text = exp.tables(res)
    naive = next(line for line in text.splitlines() if line.startswith("| naive"))
    # task-IL 90%, no domain-IL run, class-IL 20%; Hsu et al.'s naive Adam row alongside
    assert naive == "| naive | 90.0 [90.0, 90.0] | 20.0 [20.0, 20.0] | 93.5 | 19.7 |"
    ewc = next(line for line in text.splitlines() if line.startswith("| ewc"))
    assert "70.0 [70.0, 70.0]" in ewc and "lambda=10" in ewc  # the better strength
    with pytest.raises(ValueError, match="metric"):
        exp.tables(res, metric="loss")

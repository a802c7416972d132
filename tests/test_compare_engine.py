"""compare.run against a serial per-seed Python loop (the oracle), cache reuse, validation."""

from __future__ import annotations

import math
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import compare
from jaxopt_lab.compare import read_csv
from jaxopt_lab.curvature import hvp

STEPS, SEEDS, RADIUS, SCALE, TARGET, MARGIN = 30, 5, 0.5, 0.1, -0.9, 0.1
KEY = 3


def quartic_saddle(x):
    """Saddle at 0 (value 0), two minima at y = +-1.416 with f_min ~ -1.005."""
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1] + 0.25 * x[1] ** 4


class NoisyState(NamedTuple):
    key: jax.Array  # typed PRNG key, shape ()


def noisy_curvature_step(learning_rate, sigma=0.02):
    """Stochastic extra-args transform: uses value, hvp_fn and a typed key in its state."""

    def init(params):
        del params
        return NoisyState(jax.random.key(11))

    def update(updates, state, params=None, *, value=None, value_fn=None, hvp_fn=None, **kw):
        del value_fn, kw
        key, sub = jax.random.split(state.key)
        hg = hvp_fn(params, updates)
        noise = sigma * jax.random.normal(sub, updates.shape, updates.dtype)
        step = -learning_rate * (updates - 0.05 * hg) / (1.0 + 0.1 * jnp.abs(value)) + noise
        return step, NoisyState(key)

    return optax.GradientTransformationExtraArgs(init, update)


def optimizers():
    return {
        # lr 3.0 diverges (|x| grows ~5x a step): exercises the nonfinite flag
        "sgd": (optax.sgd, {"learning_rate": [0.05, 0.1, 3.0], "momentum": [0.5]}),
        "noisy": noisy_curvature_step(0.1),
    }


def engine_call(**over):
    kw = dict(num_seeds=SEEDS, steps=STEPS, key=jax.random.key(KEY), dim=2,
              init=("gaussian", [0.0, 0.0], SCALE), escape_center=[0.0, 0.0],
              escape_radius=RADIUS, escape_margin=MARGIN, target=TARGET, record_every=7,
              chunk_size=3)
    kw.update(over)
    return compare.run(quartic_saddle, optimizers(), **kw)


@pytest.fixture(scope="module")
def result():
    return engine_call()


def _make_step(make_opt):
    """One optimizer step of ONE trajectory (jitted so the Python loop below is quick)."""

    @jax.jit
    def step(x, state, g, v, hp):
        opt = make_opt(hp)
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            u, state = opt.update(g, state, x, value=v, value_fn=quartic_saddle,
                                  hvp_fn=lambda p, w: hvp(quartic_saddle, p, w))
        else:
            u, state = opt.update(g, state, x)
        return optax.apply_updates(x, u), state

    return step


_VG = jax.jit(jax.value_and_grad(quartic_saddle))
_SERIAL_STEPS = {
    "sgd": _make_step(lambda hp: optax.sgd(hp["learning_rate"], momentum=0.5)),
    "noisy": _make_step(lambda hp: noisy_curvature_step(0.1)),
}


def serial_oracle(name, hp, seed):
    """The same trajectory, one seed at a time, plain Python loop over steps with optax."""
    opt = optax.sgd(**hp) if hp else optimizers()[name]
    step = _SERIAL_STEPS[name]
    key = jax.random.key(KEY)
    k_i = jax.random.fold_in(key, seed)
    x = SCALE * jax.random.normal(jax.random.fold_in(k_i, 0), (2,), jnp.float32)
    state = opt.init(x)
    bits = jax.random.bits(jax.random.fold_in(k_i, 1), dtype=jnp.uint32)
    state = jax.tree_util.tree_map(
        lambda leaf: jax.random.fold_in(jax.random.fold_in(leaf, seed), bits)
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf, state)
    vg = _VG
    escape = hit = math.inf
    nonfinite = False
    traj = []
    for t in range(STEPS + 1):
        v, g = vg(x)
        xn, vn, gn = np.asarray(x), float(v), np.asarray(g)
        if t % 7 == 0:
            traj.append(xn)
        # escaped: left the ball, or fell MARGIN below the saddle's value f(0) = 0
        if escape == math.inf and (np.linalg.norm(xn) > RADIUS or vn < 0.0 - MARGIN):
            escape = float(t)
        if hit == math.inf and vn <= TARGET:
            hit = float(t)
        nonfinite |= not (np.isfinite(vn) and np.all(np.isfinite(gn)))
        if t == STEPS:
            break
        x, state = step(x, state, g, v, hp)
    return {"escape_step": escape, "hit_step": hit, "final_value": vn,
            "final_grad_norm": float(np.linalg.norm(gn)), "nonfinite": nonfinite,
            "traj": np.stack(traj)}


def test_matches_serial_loop(result):
    assert result.optimizers == ["sgd", "noisy"]
    assert len(result.hparams["sgd"]) == 3 and result.hparams["noisy"] == [{}]
    assert result.trajectories["sgd"].shape == (3, SEEDS, STEPS // 7 + 1, 2)
    assert result.meta["programs"] == 2  # one per optimizer family (lr grid traced)
    checked_escape = checked_hit = checked_nonfinite = 0
    for name in result.optimizers:
        for h, hp in enumerate(result.hparams[name]):
            for s in range(SEEDS):
                ref = serial_oracle(name, hp, s)
                got = {k: result.metrics[name][k][h, s] for k in compare.METRIC_NAMES}
                assert got["escape_step"] == ref["escape_step"], (name, hp, s)
                assert got["hit_step"] == ref["hit_step"], (name, hp, s)
                assert bool(got["nonfinite"]) == ref["nonfinite"]
                np.testing.assert_allclose(got["final_value"], ref["final_value"],
                                           rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(got["final_grad_norm"], ref["final_grad_norm"],
                                           rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(result.trajectories[name][h, s], ref["traj"],
                                           rtol=1e-4, atol=1e-5)
                checked_escape += math.isfinite(ref["escape_step"])
                checked_hit += math.isfinite(ref["hit_step"])
                checked_nonfinite += ref["nonfinite"]
    # the oracle comparison is informative: some trajectories escape / hit, some do not
    assert 0 < checked_escape and 0 < checked_hit < 4 * SEEDS
    assert checked_nonfinite == SEEDS  # exactly the lr = 3.0 row diverged
    # noise streams differ between seeds (key leaves were folded per trajectory)
    fv = result.metrics["noisy"]["final_value"][0]
    assert len(set(np.round(fv, 6).tolist())) == SEEDS


def test_misses_are_inf_not_budget(result):
    for name in result.optimizers:
        for k in ("escape_step", "hit_step"):
            a = result.metrics[name][k]
            assert a.dtype == np.float32
            assert not np.any(a == STEPS + 1) and np.all((a <= STEPS) | np.isinf(a))
    hit = result.metrics["sgd"]["hit_step"]
    assert np.any(np.isinf(hit)) and np.all(np.isposinf(hit[~np.isfinite(hit)]))
    recs = result.records()
    assert any(r["hit_step"] == math.inf for r in recs)


def test_records_and_csv_roundtrip(result, tmp_path):
    recs = result.records()
    assert len(recs) == 4 * SEEDS
    r0 = recs[0]
    assert list(r0) == ["optimizer", "learning_rate", "momentum", "seed", *compare.METRIC_NAMES]
    assert "learning_rate" not in recs[-1] and recs[-1]["optimizer"] == "noisy"
    assert isinstance(r0["escape_step"], float) and isinstance(r0["nonfinite"], bool)
    path = tmp_path / "records.csv"
    result.to_csv(path)
    back = read_csv(path)
    assert len(back) == len(recs)
    for a, b in zip(recs, back, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):  # inf and nan survive the round trip
                assert a[k] == pytest.approx(b[k], rel=1e-6, nan_ok=True) or a[k] == b[k]
            else:
                assert a[k] == b[k]
    meta = result.meta
    for k in ("config", "versions", "device", "key", "compile_seconds", "run_seconds",
              "date"):
        assert k in meta
    assert meta["versions"]["optax"] == optax.__version__


def test_compile_cache_reused_and_landscape_defaults():
    """Second call with new transform objects, another key and radius: no compile."""
    saddle = types.SimpleNamespace(
        name="quartic", fn=quartic_saddle, dim=2, f_min=-1.00500625,
        bounds=(np.array([-2.0, -2.0]), np.array([2.0, 2.0])),
        critical_points=(types.SimpleNamespace(x=np.zeros(2), kind="saddle", value=0.0),),
    )
    kw = dict(num_seeds=4, steps=12, escape_radius=0.3)
    first = compare.run(saddle, {"m": optax.sgd(0.1, momentum=0.9)}, key=1, **kw)
    before = compare.cache_info()
    kw["escape_radius"] = 0.2
    second = compare.run(saddle, {"m": optax.sgd(0.1, momentum=0.9)}, key=2, **kw)
    after = compare.cache_info()
    assert first.meta["cache_misses"] == 1 or first.meta["compile_seconds"] == 0.0
    assert second.meta["compile_seconds"] == 0.0 and second.meta["cache_hits"] == 1
    assert after["compiles"] == before["compiles"] and after["hits"] == before["hits"] + 1
    # defaults: center from the saddle, starts uniform in the ball of radius 1e-3, target 1e-3
    # above f_min
    cfg = second.meta["config"]
    assert cfg["escape_center"] == [0.0, 0.0] and cfg["init"]["mode"] == "ball"
    assert cfg["init"]["scale"] == pytest.approx([1e-3, 1e-3])
    assert cfg["hit_threshold"] == pytest.approx(-1.00500625 + 1e-3)
    assert np.all(np.isinf(second.metrics["m"]["hit_step"]))  # 12 steps: no hit yet
    # different key -> different starts -> different final values
    assert not np.allclose(first.metrics["m"]["final_value"],
                           second.metrics["m"]["final_value"])


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        ({"optimizers": {"x": ("definitely_not_an_optimizer", {})}}, ValueError, "unknown"),
        ({"optimizers": {"x": 3}}, TypeError, "optimizers['x']"),
        ({"optimizers": {"x": (optax.sgd, {"not_a_param": [1.0]})}}, ValueError, "not_a_param"),
        ({"optimizers": {}}, ValueError, "optimizers"),
        ({"num_seeds": 0}, ValueError, "num_seeds"),
        ({"steps": -1}, ValueError, "steps"),
        ({"steps": 0}, ValueError, "steps"),
        ({"record_every": 1, "num_seeds": 10**6, "steps": 10**6}, ValueError,
         "record_every"),
        ({"escape_radius": 0.0}, ValueError, "escape_radius"),
        ({"escape_radius": -1.0}, ValueError, "escape_radius"),
        ({"init": np.zeros((SEEDS, 3))}, ValueError, "init"),
        ({"init": np.zeros((SEEDS + 1, 2))}, ValueError, "init"),
        ({"key": "abc"}, TypeError, "key"),
        ({"record_every": 0}, ValueError, "record_every"),
    ],
)
def test_bad_inputs_raise_before_compiling(kwargs, exc, needle):
    base = dict(optimizers={"sgd": optax.sgd(0.1)}, num_seeds=SEEDS, steps=5, key=0, dim=2,
                init=("gaussian", [0.0, 0.0], 0.1), escape_center=[0.0, 0.0],
                escape_radius=0.5)
    base.update(kwargs)
    before = compare.cache_info()["compiles"]
    with pytest.raises(exc, match=__import__("re").escape(needle)):
        compare.run(quartic_saddle, **base)
    assert compare.cache_info()["compiles"] == before


def test_escape_center_without_radius_is_an_error():
    with pytest.raises(ValueError, match="escape_radius"):
        compare.run(quartic_saddle, {"s": optax.sgd(0.1)}, num_seeds=2, steps=1, key=0,
                    escape_center=[0.0, 0.0])


def test_grid_split_into_traced_and_static_groups():
    """Float lists are traced (one program); bools/ints/strings are static groups."""
    from jaxopt_lab.compare.families import make_family

    fam = make_family("sgd", (optax.sgd, {"learning_rate": [0.1, 0.2, 0.3],
                                           "nesterov": [False, True], "momentum": [0.9]}))
    assert len(fam.hparams) == 6
    assert [g.static for g in fam.groups] == [{"nesterov": False}, {"nesterov": True}]
    assert [g.indices for g in fam.groups] == [[0, 2, 4], [1, 3, 5]]
    np.testing.assert_allclose(fam.groups[1].traced["learning_rate"], [0.1, 0.2, 0.3])
    assert set(fam.groups[0].traced) == {"learning_rate", "momentum"}
    fam = make_family("adam", ("adam", {"learning_rate": [1e-3]}))  # optax name resolves
    assert fam.factory is optax.adam and fam.hparams == [{"learning_rate": 1e-3}]


def test_array_and_callable_init_give_the_recorded_starts():
    starts = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.0], [0.1, -0.2]], np.float32)
    kw = dict(num_seeds=4, steps=2, key=jax.random.key(4), record_every=1, dim=2)
    opts = {"s": optax.sgd(0.1), "n": optax.noisy_sgd(0.1, eta=1.0, key=0)}
    res = compare.run(quartic_saddle, opts, init=starts, **kw)
    np.testing.assert_array_equal(res.trajectories["s"][0, :, 0], starts)
    # one plain SGD step from each start: x1 = x0 - 0.1 * grad f(x0)
    grads = np.stack([np.asarray(jax.grad(quartic_saddle)(x)) for x in starts])
    np.testing.assert_allclose(res.trajectories["s"][0, :, 1], starts - 0.1 * grads, rtol=1e-6)
    # optax.noisy_sgd keeps a legacy uint32 key: it is folded per seed too, so seeds 0 and 3
    # (same start) get different noise
    noisy = res.trajectories["n"][0, :, 1]
    assert not np.allclose(noisy[0], noisy[3])
    kw["num_seeds"], kw["steps"] = 3, 2
    starts = starts[:3]

    def init(k, n):
        return jax.random.uniform(k, (n, 2), minval=-1.0, maxval=1.0)

    res = compare.run(quartic_saddle, {"s": optax.sgd(0.1)}, init=init, **kw)
    assert res.trajectories["s"].shape == (1, 3, 3, 2)
    for i in range(3):  # start of seed i = init(fold_in(fold_in(key, i), 0), 1)[0]
        k0 = jax.random.fold_in(jax.random.fold_in(jax.random.key(4), i), 0)
        np.testing.assert_allclose(res.trajectories["s"][0, i, 0], init(k0, 1)[0], rtol=1e-6)

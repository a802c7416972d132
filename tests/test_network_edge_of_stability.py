"""edge_of_stability: sharpness readings vs a dense float64 eigh, GD vs a serial loop,
the quick preset's edge (ratio ~ 1 at lr 0.2 over 8 seeds), named bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST

from jaxopt_lab import compare
from jaxopt_lab.experiments import _network
from jaxopt_lab.experiments import edge_of_stability as eos


def test_bad_input_names_argument():
    for bad in [(0.1, math.inf), (float("nan"),), (), (-0.1,)]:
        with pytest.raises(ValueError, match="learning_rates"):
            eos.Config(learning_rates=bad)
    with pytest.raises(ValueError, match="sharpness_every"):
        eos.Config(steps=101, sharpness_every=20)
    with pytest.raises(TypeError, match="config"):
        eos.run({"steps": 3})


def test_sharpness_matches_dense_eigh_and_serial_gd():
    c = eos.Config(num_seeds=2, learning_rates=(0.2,), hidden=6, num_examples=64, steps=60,
                   sharpness_every=20, power_iters=10)
    d = _network.digits_onehot(c.num_examples)
    inputs = {"x": jnp.asarray(d["x"]), "y": jnp.asarray(d["y"])}
    key = jax.random.key(3)
    sw = compare.sweep(eos.trial(c, inputs), {"gd": (optax.sgd, {"learning_rate": [0.2]})},
                       num_seeds=2, key=key, compiler_options=FAST)
    out = sw.outputs["gd"]
    model, loss = eos.model_and_loss(c)
    assert sum(np.size(v) for v in jax.tree.leaves(model.init(key))) < 2000
    for s in range(2):
        params = jax.tree.map(lambda a, s=s: a[0, s], out["params"])
        H = _network.dense_hessian(lambda p: loss(p, inputs), params)
        ev = np.linalg.eigvalsh(H)
        top = ev[np.argmax(np.abs(ev))]
        assert top == ev[-1] > 0  # the largest-magnitude eigenvalue is the sharpness
        np.testing.assert_allclose(out["sharpness"][0, s, -1], top, rtol=2e-3)
        # serial Python loop of the same GD from the same initialization
        p = model.init(jax.random.fold_in(jax.random.fold_in(key, s), 0))
        g = jax.jit(jax.value_and_grad(lambda q: loss(q, inputs)))
        serial = []
        for _ in range(c.steps):
            value, grads = g(p)
            serial.append(float(value))
            p = jax.tree.map(lambda a, b: a - 0.2 * b, p, grads)
        np.testing.assert_allclose(out["loss"][0, s], serial, rtol=2e-4, atol=1e-6)


def test_quick_preset_sits_at_the_edge(tmp_path):
    c = eos.Config.quick()
    r = eos.run(c, out_dir=tmp_path / "eos")
    assert r.group_column == "variant" and r.optimizers == ["gd"]
    m = r.metrics["gd"]
    assert m["ratio"].shape == (2, c.num_seeds) and m["nonfinite"].dtype == bool
    assert not m["nonfinite"].any() and r.summary["nonfinite_seeds"] == {"gd": []}
    # lr 0.2: late sharpness within 10% of 2/lr on every one of 8 seeds, loss not monotone
    assert np.all(np.abs(m["ratio"][1] - 1.0) < 0.1), m["ratio"][1]
    s = r.summary["lr=0.2"]
    assert s["ratio"]["ci"][0] > 0.9 and s["ratio"]["ci"][1] < 1.1
    assert s["loss_rise_fraction"]["median"] > 0.05
    assert np.all(m["power_residual"][1] < 0.1)
    # lr 0.1 (2/lr = 20): below its edge at the end of this short run
    assert np.median(m["ratio"][0]) < 0.9
    assert r.curves["gd"]["sharpness"].shape == (2, c.num_seeds, c.steps // c.sharpness_every)
    back = compare.load(tmp_path / "eos")
    assert (tmp_path / "eos" / "edge_of_stability.png").exists()
    np.testing.assert_array_equal(back.metrics["gd"]["ratio"], m["ratio"])

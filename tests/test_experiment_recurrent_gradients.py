"""recurrent_gradients (C11): gradient flow through time, its oracles and the run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import compare, data, experiments
from jaxopt_lab.experiments import recurrent_gradients as rg

# fast_compile: XLA level 0 (compile-bound at this size: 35 s instead of 40-66 s cold)
TINY = rg.Config(num_seeds=3, length=20, hidden=16, gains=(2.0,), steps=10, batch_size=8,
                 eval_size=16, fast_compile=True)


def test_input_gradient_norms_match_finite_differences():
    c = TINY
    model = rg.build_model(c, "rnn_orthogonal")
    params = model.init(jax.random.key(3))
    x, y = data.adding_problem(jax.random.key(4), 4, c.length)
    norms = rg.input_gradient_norms(model, params, (x, y))
    g = jax.grad(lambda xx: model.loss(params, (xx, y)))(x)
    for t in (0, c.length // 2, c.length - 1):
        d = jnp.zeros_like(x).at[:, t].set(g[:, t])  # direction: the step-t gradient
        eps = 1e-2 / float(jnp.linalg.norm(d))
        fd = (model.loss(params, (x + eps * d, y)) - model.loss(params, (x - eps * d, y))) / (
            2 * eps)
        # directional derivative along g_t / ||g_t|| = ||g_t||
        np.testing.assert_allclose(float(fd) / float(jnp.linalg.norm(d)), float(norms[t]),
                                   rtol=2e-2)
    assert float(rg.flow_log10(norms)) == pytest.approx(
        np.log10(float(norms[0]) / float(norms[-1])), rel=1e-5)


def test_run_key_discipline_and_the_initial_contrast(tmp_path):
    c = TINY
    res = rg.run(c, out_dir=tmp_path)
    assert res.optimizers == ["rnn_normal_2", "rnn_orthogonal", "lstm", "gru"]
    key = jax.random.key(c.seed)
    batch = data.adding_problem(jax.random.fold_in(key, 2**30), c.eval_size, c.length)
    for v in res.optimizers:
        model = rg.build_model(c, v)
        for i in range(c.num_seeds):  # serial oracle: seed i's own initialization
            p = model.init(jax.random.fold_in(jax.random.fold_in(key, i), 0))
            want = float(rg.flow_log10(rg.input_gradient_norms(model, p, batch)))
            np.testing.assert_allclose(res.metrics[v]["initial_flow_log10"][0, i], want,
                                       rtol=1e-4, atol=1e-4)
    # spectral radius 2 (chaotic tanh RNN): the first input's gradient is far larger than
    # the last one's; orthogonal: it is not (measured here: medians +2.2 vs -0.6; at
    # length 50 and 16 seeds +3.6 vs -1.7)
    assert np.median(res.metrics["rnn_normal_2"]["initial_flow_log10"]) > np.median(
        res.metrics["rnn_orthogonal"]["initial_flow_log10"]) + 1.5
    for v in res.optimizers:
        m = res.metrics[v]
        assert m["test_mse"].shape == (1, c.num_seeds) and np.all(np.isfinite(m["test_mse"]))
        assert res.curves[v]["initial_input_grad_norm"].shape == (1, c.num_seeds, c.length)
    assert set(res.summary["nonfinite_seeds"]) == set(res.optimizers)
    for name in ("records.csv", "meta.json", "gradient_flow.png", "loss_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(compare.read_csv(tmp_path)) == len(res.optimizers) * c.num_seeds


def test_registered_and_bad_config():
    assert experiments.get("recurrent_gradients") is rg
    for kw, name in ((dict(length=1), "length"), (dict(gains=()), "gains"),
                     (dict(gains=(1.0, 1.0)), "gains"), (dict(gains=(-1.0,)), "gains"),
                     (dict(learning_rate=float("nan")), "learning_rate"),
                     (dict(steps=-1), "steps")):
        with pytest.raises(ValueError, match=name):
            rg.Config(**kw)
    with pytest.raises(ValueError, match="variant"):
        rg.build_model(rg.Config(), "transformer")
    with pytest.raises(TypeError, match="Config"):
        rg.run({"steps": 1})

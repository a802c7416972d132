"""The one sweep core: seed results independent of how many seeds ran (landscapes and
networks), the extra-argument contract on network sweeps (second-order and natural
gradient), a custom Trial, and the README example equal to the CLI's main job."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import compare, curvature, models, transforms
from jaxopt_lab.compare import steps


def quartic_saddle(x):
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1] + 0.25 * x[1] ** 4


def test_seed_7_of_16_equals_seed_7_of_1024_landscape():
    opts = {"sgd": (optax.sgd, {"learning_rate": [0.05, 0.1]}),
            "noisy": optax.noisy_sgd(0.05, eta=0.5, key=0),
            "pgd": transforms.perturbed_gd(0.05, radius=0.05, g_thres=0.05, t_thres=3,
                                           key=jax.random.key(0))}
    kw = dict(steps=40, key=jax.random.key(3), init=("ball", [0.0, 0.0], 0.1),
              escape_center=[0.0, 0.0], escape_radius=0.5, dim=2, record_every=10)
    # chunks of 16 in both runs: one compiled program per family serves both (a seed's
    # result does not depend on the chunking either: that is tested on 4 devices elsewhere)
    small = compare.run(quartic_saddle, opts, num_seeds=16, chunk_size=16, **kw)
    big = compare.run(quartic_saddle, opts, num_seeds=1024, chunk_size=16, **kw)
    for name in small.optimizers:
        for m in compare.METRIC_NAMES:
            np.testing.assert_allclose(small.metrics[name][m][:, 7], big.metrics[name][m][:, 7],
                                       rtol=1e-6, err_msg=f"{name}/{m}")
        np.testing.assert_allclose(small.trajectories[name][:, 7], big.trajectories[name][:, 7],
                                   rtol=1e-6)
        # and the seeds differ from each other (the comparison can fail)
        assert not np.allclose(small.trajectories[name][:, 7], small.trajectories[name][:, 8])


def _tiny_problem():
    model = models.mlp(4, [8], 3, activation="tanh", init="xavier")
    x = jax.random.normal(jax.random.key(1), (64, 4))
    y = jnp.argmax(x[:, :3] + 0.3 * x[:, 3:4], axis=1).astype(jnp.int32)
    ce = models.loss_fn("cross_entropy")

    def batch_fn(data, key, step):
        idx = jax.random.choice(key, data[0].shape[0], (16,), replace=False)
        return data[0][idx], data[1][idx]

    def evaluate(params, data):
        return {"accuracy": jnp.mean(jnp.argmax(model.apply(params, data[0]), -1) == data[1])}

    return model, (x, y), ce, batch_fn, evaluate


def test_seed_7_of_16_equals_seed_7_of_1024_network():
    model, data, _, batch_fn, evaluate = _tiny_problem()
    opts = {"sgd": (optax.sgd, {"learning_rate": [0.1, 0.5]})}
    kw = dict(steps=6, key=jax.random.key(5), batch_fn=batch_fn, data=data,
              evaluate=evaluate, keep_params=True, chunk_size=16)
    small = compare.train(model.init, model.loss, opts, num_seeds=16, **kw)
    big = compare.train(model.init, model.loss, opts, num_seeds=1024, **kw)
    for a, b in zip(jax.tree.leaves(small.params), jax.tree.leaves(big.params), strict=True):
        np.testing.assert_allclose(a[:, 7], b[:, 7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.losses("sgd")[:, 7], big.losses("sgd")[:, 7], rtol=1e-5)
    assert not np.allclose(small.losses("sgd")[:, 7], small.losses("sgd")[:, 8])
    # seed i's initial params are init(fold_in(fold_in(key, i), 0))
    p7 = model.init(jax.random.fold_in(jax.random.fold_in(jax.random.key(5), 7), 0))
    loss0 = float(model.loss(p7, batch_fn(data, jax.random.fold_in(
        jax.random.fold_in(jax.random.fold_in(jax.random.key(5), 7), 1), 0), 0)))
    assert small.losses("sgd")[0, 7, 0] == pytest.approx(loss0, rel=1e-5)


def test_natural_gradient_and_hessian_free_train_a_network():
    """The same extra arguments reach every transform on a network sweep: a natural-
    gradient step (needs fvp_fn) equals the serial step built from curvature operators."""
    model, data, ce, batch_fn, evaluate = _tiny_problem()
    key = jax.random.key(2)
    ng = transforms.natural_gradient(0.5, damping=1e-2, max_iters=20)
    res = compare.train(model.init, model.loss,
                        {"ng": ng, "hf": transforms.hessian_free(0.5, damping=1.0,
                                                                 max_iters=10)},
                        num_seeds=2, steps=1, key=key, batch_fn=batch_fn, data=data,
                        output_fn=model.apply, output_loss=ce, keep_params=True)
    # serial oracle for seed 1
    k1 = jax.random.fold_in(key, 1)
    p = model.init(jax.random.fold_in(k1, 0))
    batch = batch_fn(data, jax.random.fold_in(jax.random.fold_in(k1, 1), 0), 0)
    value, grads = jax.value_and_grad(model.loss)(p, batch)
    fns = {"value_fn": lambda q: model.loss(q, batch),
           "fvp_fn": curvature.gauss_newton_fns(model.apply, ce, batch)["fvp_fn"]}
    u, _ = ng.update(grads, ng.init(p), p, value=value, **fns)
    expected = optax.apply_updates(p, u)
    got = jax.tree.map(lambda a: a[0, 1], res.params["ng"])
    # CG in float32 under vmap takes a slightly different rounding path: compare the steps
    # taken, relative to the step's size (a missing fvp_fn would raise; a wrong operator
    # would give a different direction altogether)
    diff = optax.tree.norm(jax.tree.map(lambda a, b: a - b, got, expected))
    assert float(diff) < 1e-2 * float(optax.tree.norm(u)), (float(diff), float(optax.tree.norm(u)))


@pytest.mark.slow  # the one-step oracle above covers the plumbing; this trains for longer
def test_natural_gradient_and_hessian_free_reduce_a_network_loss():
    model, data, ce, batch_fn, evaluate = _tiny_problem()
    key = jax.random.key(2)
    ng = transforms.natural_gradient(0.5, damping=1e-2, max_iters=20)
    res = compare.train(model.init, model.loss, {"ng": ng, "hf": transforms.hessian_free(
        0.5, damping=1.0, max_iters=10)}, num_seeds=4, steps=15, key=key, batch_fn=batch_fn,
        data=data, output_fn=model.apply, output_loss=ce, evaluate=evaluate)
    for name in ("ng", "hf"):
        losses = res.losses(name)[0]
        assert np.all(losses[:, -3:].mean(1) < 0.8 * losses[:, 0]), (name, losses[:, [0, -1]])
        assert not np.any(res.final[name]["nonfinite"])


def test_a_custom_trial_runs_in_the_core():
    """Any per-seed program is a front-end: a Monte Carlo estimate of E[u] per seed."""
    def run(opt, key, index, row, inputs):
        del opt, row
        u = jax.random.uniform(key, (inputs["n"].shape[0],))
        return {"mean": jnp.mean(u), "index": index}

    trial = compare.Trial(run, inputs={"n": np.zeros(1000, np.float32)})
    out = compare.sweep(trial, {"none": optax.identity()}, num_seeds=5, key=7, chunk_size=2)
    np.testing.assert_array_equal(out.outputs["none"]["index"], [[0, 1, 2, 3, 4]])
    want = [float(jnp.mean(jax.random.uniform(jax.random.fold_in(jax.random.key(7), i),
                                              (1000,)))) for i in range(5)]
    np.testing.assert_allclose(out.outputs["none"]["mean"][0], want, rtol=1e-6)
    with pytest.raises(TypeError, match="trial"):
        compare.sweep(run, {"none": optax.identity()}, num_seeds=1, key=0)


def test_steps_update_passes_extra_args_only_to_extra_args_transforms():
    seen = {}

    def init(params):
        return optax.EmptyState()

    def update(g, state, params=None, **extra):
        seen.update(extra)
        return g, state

    fns = steps.objective_fns(quartic_saddle)
    x = jnp.array([0.3, -0.2])
    steps.update(optax.GradientTransformationExtraArgs(init, update), jnp.ones(2),
                 optax.EmptyState(), x, value=quartic_saddle(x), fns=fns)
    assert set(seen) == {"value", "value_fn", "grad_fn", "hvp_fn"}
    np.testing.assert_allclose(seen["hvp_fn"](x, jnp.array([1.0, 0.0])),
                               jax.hessian(quartic_saddle)(x)[:, 0], rtol=1e-6)
    u, _ = steps.update(optax.sgd(0.1), jnp.ones(2), optax.sgd(0.1).init(x), x,
                        value=quartic_saddle(x), fns=fns)
    np.testing.assert_allclose(u, -0.1 * jnp.ones(2))


def test_train_keeps_the_final_optimizer_state():
    model, data, _, batch_fn, _ = _tiny_problem()
    res = compare.train(model.init, model.loss, {"adam": optax.adam(1e-2)}, num_seeds=3,
                        steps=4, key=1, batch_fn=batch_fn, data=data, keep_state=True,
                        keep_params=True,
                        evaluate_state=lambda p, d, s: {"count": s[0].count})
    np.testing.assert_array_equal(res.final["adam"]["count"], np.full((1, 3), 4))
    adam_state = res.opt_state["adam"][0]
    np.testing.assert_array_equal(adam_state.count, np.full((1, 3), 4))
    assert adam_state.mu["out"]["kernel"].shape == (1, 3) + res.params["adam"]["out"][
        "kernel"].shape[2:]
    assert res.opt_state is not None and compare.train(
        model.init, model.loss, {"adam": optax.adam(1e-2)}, num_seeds=1, steps=1, key=1,
        batch_fn=batch_fn, data=data).opt_state is None

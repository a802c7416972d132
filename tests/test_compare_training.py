"""compare.train: the per-seed program equals a serial loop; optimizers are paired."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import compare


def _tiny_problem():
    def init(key):
        return {"w": jax.random.normal(key, (3,))}

    def loss(p, batch):
        x, y = batch
        return jnp.mean((x @ p["w"] - y) ** 2)

    def batch_fn(d, key, t):
        x = jax.random.normal(key, (8, 3))
        return x, x @ d

    return init, loss, batch_fn, jnp.array([1.0, -2.0, 0.5])


def test_train_matches_serial_loop_and_optimizers_share_initial_params():
    init, loss, batch_fn, w_true = _tiny_problem()
    key = jax.random.key(0)
    opts = {"sgd": optax.sgd(0.1), "adam": optax.adam(0.05)}
    res = compare.train(init, loss, opts, num_seeds=3, steps=6, key=key, batch_fn=batch_fn,
                        data=w_true, keep_params=True)
    assert res.losses("sgd").shape == (1, 3, 6)
    assert res.params["adam"]["w"].shape == (1, 3, 3)
    # both optimizers start from the same initial params and see the same first batch
    np.testing.assert_array_equal(res.losses("sgd")[0, :, 0], res.losses("adam")[0, :, 0])
    for name, opt in opts.items():

        @jax.jit
        def step(p, s, b, opt=opt):
            value, g = jax.value_and_grad(loss)(p, b)
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s, value

        for i in range(3):
            # serial oracle: seed i's key is fold_in(key, i); init and data streams as
            # documented in compare.training
            key_i = jax.random.fold_in(key, i)
            p = init(jax.random.fold_in(key_i, 0))
            k_data = jax.random.fold_in(key_i, 1)
            s = opt.init(p)
            serial = []
            for t in range(6):
                p, s, value = step(p, s, batch_fn(w_true, jax.random.fold_in(k_data, t), t))
                serial.append(float(value))
            np.testing.assert_allclose(res.losses(name)[0, i], serial, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(res.params[name]["w"][0, i], p["w"], rtol=1e-5,
                                       atol=1e-6)
    assert res.first_step("sgd", "nonfinite").shape == (1, 3)
    assert not np.any(res.final["adam"]["nonfinite"])

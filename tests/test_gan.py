"""Tests of the GAN lab against oracles: Dirac-GAN closed forms and dynamics, the vmapped
sweep vs a serial loop, FID/IS/KL vs numpy/scipy, spectral norm vs SVD, bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from jaxopt_lab import compare, gan
from jaxopt_lab.models import gan_nets

DIRAC = gan.dirac.nets()


def _dirac_state(spec, opt, theta, psi):
    g_tx, d_tx = gan.players(opt, spec)
    g, d = {"theta": jnp.float32(theta)}, {"psi": jnp.float32(psi)}
    return gan.GANState(g, d, g_tx.init(g), d_tx.init(d), None, jnp.int32(0))


@pytest.mark.parametrize("loss", gan.losses.LOSSES)
def test_dirac_step_equals_closed_form_gradients(loss):
    h, theta, psi = 0.1, 0.7, -1.3
    spec = gan.GANSpec(loss=loss, batch_size=4, simultaneous=True, r1_gamma=0.5)
    st = _dirac_state(spec, optax.sgd(h), theta, psi)
    new, _ = gan.gan_step(spec, DIRAC, optax.sgd(h), st, jax.random.key(0),
                          gan.dirac.sample_real)
    gt, gp = gan.dirac.gradients(theta, psi, loss, r1_gamma=0.5)
    np.testing.assert_allclose(new.g_params["theta"], theta - h * gt, rtol=1e-5)
    np.testing.assert_allclose(new.d_params["psi"], psi - h * gp, rtol=1e-5)
    # alternating: G sees the updated psi
    spec = dataclasses.replace(spec, simultaneous=False)
    new, _ = gan.gan_step(spec, DIRAC, optax.sgd(h), st, jax.random.key(0),
                          gan.dirac.sample_real)
    psi1 = psi - h * gp
    gt1, _ = gan.dirac.gradients(theta, psi1, loss)
    np.testing.assert_allclose(new.g_params["theta"], theta - h * gt1, rtol=1e-5)


LRS = jnp.asarray([0.1, 0.5])


def _final_distance(spec, momentum=0.0, steps=2000):
    """Final ||(theta, psi)|| from (1, 1) for each learning rate of LRS (vmapped)."""
    @jax.jit
    @jax.vmap
    def go(lr):
        opt = optax.sgd(lr, momentum=momentum or None)
        st = _dirac_state(spec, opt, 1.0, 1.0)

        def body(s, t):
            s, _ = gan.gan_step(spec, DIRAC, opt, s, jax.random.fold_in(jax.random.key(1), t),
                                gan.dirac.sample_real)
            return s, None
        s = jax.lax.scan(body, st, jnp.arange(steps))[0]
        return jnp.hypot(s.g_params["theta"], s.d_params["psi"])

    return np.asarray(go(LRS))


def test_dirac_convergence():
    start = np.sqrt(2.0)
    spec = gan.GANSpec(loss="minimax", batch_size=8)
    # simultaneous GD spirals out, alternating GD circles: neither converges
    assert np.all(_final_distance(dataclasses.replace(spec, simultaneous=True)) > start)
    assert np.all(_final_distance(spec) > 0.5 * start)
    # R1 and instance noise converge (noise: to a small stochastic floor)
    assert np.all(_final_distance(dataclasses.replace(spec, r1_gamma=1.0)) < 1e-3)
    noisy = dataclasses.replace(spec, batch_size=256, instance_noise=1.0)
    assert np.all(_final_distance(noisy) < 0.1)


def test_dirac_negative_momentum():
    spec = gan.GANSpec(loss="minimax", batch_size=8)
    # alternating + negative momentum converges at lr 0.5 (slowly at 0.1: rate ~ lr^2)
    assert _final_distance(spec, momentum=-0.5)[1] < 1e-3
    assert np.all(_final_distance(dataclasses.replace(spec, simultaneous=True),
                                  momentum=-0.5) > 0.5)


def _tiny_trial(remedy="none", steps=20):
    spec = gan.GANSpec(batch_size=16)
    d_kw = {"hidden": (16,)}
    spec, d_kw = gan.apply_remedy(remedy, spec, d_kw, steps)
    g = gan_nets.mlp_generator(2, 2, (16,))
    d = gan_nets.mlp_discriminator(2, **d_kw)
    nets = gan.nets_from_models(g, d, 2, (2,))
    centers = np.asarray([[1.0, 0.0], [-1.0, 0.0]], np.float32)

    def sample(inputs, key, n):
        lab = jax.random.randint(key, (n,), 0, 2)
        noise = jax.random.normal(jax.random.fold_in(key, 1), (n, 2))
        return jnp.asarray(inputs["c"])[lab] + 0.01 * noise

    def evaluate(x, state, inputs):
        return gan.metrics.mixture_metrics(x, inputs["c"], 0.01)

    trial = gan.make_trial(spec, nets, steps=steps, eval_every=10, sample_real=sample,
                           evaluate=evaluate, inputs={"c": centers}, num_eval=50,
                           num_keep=5)
    return spec, nets, trial, sample, {"c": centers}


def test_vmapped_sweep_equals_serial_loop():
    spec, nets, trial, sample, inputs = _tiny_trial()
    key = jax.random.key(3)
    sw = gan.sweep(trial, {"adam": (optax.adam, {"learning_rate": [1e-3, 1e-2]})},
                   num_seeds=2, key=key)
    out = sw.outputs["adam"]
    for h, lr in enumerate([1e-3, 1e-2]):
        opt = optax.adam(lr)
        step = jax.jit(lambda s, k, opt=opt: gan.gan_step(
            spec, nets, opt, s, k, lambda kk, n: sample(inputs, kk, n)))
        for i in range(2):
            ki = jax.random.fold_in(key, i)
            st = gan.init_state(spec, nets, opt, jax.random.fold_in(ki, 0))
            for t in range(20):  # plain Python loop, one jitted step at a time
                st, info = step(st, jax.random.fold_in(jax.random.fold_in(ki, 1), t))
            assert bool(info.finite)
            kept = nets.g_apply(st.g_params, jax.random.normal(
                jax.random.fold_in(jax.random.fold_in(ki, 2), 2), (5, 2)))
            np.testing.assert_allclose(out["samples"][h, i], kept, rtol=1e-4, atol=1e-5)
            x = nets.g_apply(st.g_params, jax.random.normal(
                jax.random.fold_in(jax.random.fold_in(ki, 2), 1), (50, 2)))
            ev = gan.metrics.mixture_metrics(x, inputs["c"], 0.01)
            assert float(out["final"]["modes"][h, i]) == float(ev["modes"])
            np.testing.assert_allclose(out["final"]["hq_fraction"][h, i], ev["hq_fraction"])
    res, _ = gan.results_from_sweeps({"none": sw})
    assert res.hparams["adam"][1] == {"remedy": "none", "learning_rate": 1e-2}
    assert res.metrics["adam"]["modes"].shape == (2, 2)
    assert res.curves["adam"]["modes"].shape == (2, 2, 2)


@pytest.mark.parametrize("remedy", ["unrolled", "spectral_norm", "minibatch_discrimination",
                                    "pack3"])
def test_every_remedy_runs_finite(remedy):
    spec, nets, _, sample, inputs = _tiny_trial(remedy)
    opt = optax.adam(1e-3)
    st = gan.init_state(spec, nets, opt, jax.random.key(0))
    st, info = jax.jit(lambda s: gan.gan_step(spec, nets, opt, s, jax.random.key(1),
                                              lambda k, n: sample(inputs, k, n)))(st)
    assert bool(info.finite)
    if remedy == "spectral_norm":
        assert st.sn_u is not None


def test_spectral_norm_converges_to_top_singular_value():
    w = jax.random.normal(jax.random.key(0), (7, 5))
    p = {"layers_0": {"kernel": w, "bias": jnp.zeros(5)}}
    u = gan_nets.spectral_norm_init(p, jax.random.key(1))
    for _ in range(50):
        q, u = gan_nets.spectral_normalize(p, u)
    np.testing.assert_allclose(np.linalg.svd(np.asarray(q["layers_0"]["kernel"]))[1][0], 1.0,
                               rtol=1e-4)
    np.testing.assert_array_equal(q["layers_0"]["bias"], p["layers_0"]["bias"])


def test_fid_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 1.0
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    np.testing.assert_allclose(float(gan.metrics.fid(a, b)), ref, rtol=1e-3)
    assert abs(float(gan.metrics.fid(a, a))) < 1e-3


def test_inception_score_and_label_kl_oracles():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(10) * 0.3, size=200)
    marg = p.mean(0)
    ref = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marg)), axis=1)))
    np.testing.assert_allclose(float(gan.metrics.inception_score(p)), ref, rtol=1e-4)
    # one-hot uniform predictions over 10 classes: IS = 10; collapsed: IS = 1
    eye = np.eye(10)[np.arange(200) % 10]
    np.testing.assert_allclose(float(gan.metrics.inception_score(eye)), 10.0, rtol=1e-5)
    np.testing.assert_allclose(float(gan.metrics.inception_score(np.eye(10)[[3] * 50])), 1.0)
    hist = np.ones(10) / 10
    counts = np.bincount(np.argmax(p, 1), minlength=10) + 1e-6
    q = counts / counts.sum()
    np.testing.assert_allclose(float(gan.metrics.label_kl(p, hist)),
                               np.sum(q * np.log(q / hist)), rtol=1e-4)


def test_bad_input_named_before_compiling():
    spec = gan.GANSpec(batch_size=8)
    g = gan_nets.mlp_generator(2, 2, (8,))
    d = gan_nets.mlp_discriminator(2, (8,))
    with pytest.raises(ValueError, match="latent_dim"):
        gan.check_nets(gan.nets_from_models(g, d, 3, (2,)), spec)
    with pytest.raises(ValueError, match="data_shape"):
        gan.check_nets(gan.nets_from_models(g, d, 2, (3,)), spec)
    with pytest.raises(ValueError, match="pack"):
        gan.check_nets(gan.nets_from_models(g, d, 2, (2,)), dataclasses.replace(spec, pack=2))
    with pytest.raises(ValueError, match="remedy"):
        gan.check_remedy("dropout")
    with pytest.raises(ValueError, match="loss"):
        gan.GANSpec(loss="lsgan")
    with pytest.raises(ValueError, match="pack"):
        gan.GANSpec(pack=0)
    with pytest.raises(ValueError, match="unroll_steps"):
        gan.GANSpec(unroll_steps=-1)
    with pytest.raises(ValueError, match="learning_rate"):
        gan.check_learning_rates({"sgd": (optax.sgd, {"learning_rate": [float("nan")]})})
    from jaxopt_lab.experiments import gan_mixtures

    with pytest.raises(ValueError, match="learning_rate"):
        gan_mixtures.Config(learning_rates=(float("inf"),))
    with pytest.raises(ValueError, match="remedy"):
        gan_mixtures.Config(remedies=("nope",))
    assert compare.cache_info() is not None

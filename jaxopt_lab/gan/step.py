"""The two-player GAN step: a pure function of both players' state, a key and a sampler.

Both players are driven by ANY optax transform (the core's ``opt`` for one learning rate
of a grid); each player gets its own ``opt.init`` state, so clipping, a weight EMA, the
rollback guard or lookahead compose unchanged. A two-timescale rule (VEEGAN's D lr = G lr
/ 10) is ``GANSpec(d_lr_scale=0.1)``: the discriminator's updates are scaled after the
transform (``optax.chain(opt, optax.scale(0.1))``), which for every optimizer whose learning
rate is its final scale (SGD, momentum, Adam, RMSProp, ...) equals a 10x smaller D rate,
while the rate itself stays a traced hyperparameter of the core's grid.

One step (``d_steps`` discriminator updates, then one generator update):

* alternating (default): each D update sees a fresh real batch and fresh latents; the
  G update sees the updated D;
* ``simultaneous=True``: the G gradient is taken at the D parameters from BEFORE this
  step's D updates (simultaneous gradient descent).

Remedies of the step (the network-side ones, packing, minibatch discrimination and
minibatch standard deviation, are options of :mod:`jaxopt_lab.models.gan_nets`):
instance noise (Sonderby et al. 2016; Arjovsky & Bottou 2017), linearly annealed to 0
over ``noise_anneal_steps``; one-sided label smoothing (Salimans et al. 2016);
``d_steps``; an R1 penalty (Mescheder et al. 2018); the WGAN-GP gradient penalty
(Gulrajani et al. 2017); an unrolled discriminator (Metz et al. 2017: the G loss is
taken at D's parameters after ``unroll_steps`` differentiable optax updates in a
``lax.scan``, gradients flowing through them); spectral normalization of D (Miyato et al.
2018: one power-iteration step per D update, the vectors carried in
:class:`GANState`); a lower learning rate (``lr_scale``).

References:
  Goodfellow et al., 2014. Generative adversarial nets.
  Metz, Poole, Pfau & Sohl-Dickstein, 2017. Unrolled generative adversarial networks.
  Sonderby, Caballero, Theis, Shi & Huszar, 2016. Amortised MAP inference for image
  super-resolution (instance noise).
  Mescheder, Geiger & Nowozin, 2018. Which training methods for GANs do actually
  converge?
  Miyato, Kataoka, Koyama & Yoshida, 2018. Spectral normalization for generative
  adversarial networks.
  Heusel et al., 2017. GANs trained by a two time-scale update rule converge to a local
  Nash equilibrium.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.compare import steps as steps_mod
from jaxopt_lab.gan.losses import (
    LOSSES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from jaxopt_lab.models.gan_nets import spectral_norm_init, spectral_normalize


def _check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class GANSpec:
    """Static description of the two-player step (hashable: part of the compile key).

    Attributes:
      loss: one of :data:`~jaxopt_lab.gan.losses.LOSSES` (``"bce"``: non-saturating).
      batch_size: discriminator inputs per update (real and fake each).
      pack: PacGAN packing degree m: ``batch_size * pack`` samples per side, the
        discriminator network must take them (``mlp_discriminator(pack=m)``).
      d_steps: discriminator updates per generator update (>= 1).
      simultaneous: simultaneous instead of alternating updates.
      instance_noise: std of the Gaussian noise added to D's real and fake inputs.
      noise_anneal_steps: anneal that std linearly to 0 over this many steps (0: constant).
      label_smoothing: one-sided: real target ``1 - label_smoothing`` (bce/minimax only).
      r1_gamma: R1 weight: ``gamma / 2 * E ||grad D(x_real)||^2`` (0: off).
      gp_weight: WGAN-GP weight (0: off).
      unroll_steps: unrolled-discriminator steps for the G loss (0: off).
      spectral_norm: spectral normalization of every D kernel.
      lr_scale: multiplies both players' updates (the "lower learning rate" remedy).
      d_lr_scale: multiplies D's updates on top (two time-scale rules).
    """

    loss: str = "bce"
    batch_size: int = 64
    pack: int = 1
    d_steps: int = 1
    simultaneous: bool = False
    instance_noise: float = 0.0
    noise_anneal_steps: int = 0
    label_smoothing: float = 0.0
    r1_gamma: float = 0.0
    gp_weight: float = 0.0
    unroll_steps: int = 0
    spectral_norm: bool = False
    lr_scale: float = 1.0
    d_lr_scale: float = 1.0

    def __post_init__(self):
        check_choice("loss", self.loss, LOSSES)
        check_int("batch_size", self.batch_size)
        check_int("pack", self.pack)
        check_int("d_steps", self.d_steps)
        check_int("unroll_steps", self.unroll_steps, minimum=0)
        check_int("noise_anneal_steps", self.noise_anneal_steps, minimum=0)
        for name in ("instance_noise", "label_smoothing", "r1_gamma", "gp_weight"):
            _check_nonneg(name, getattr(self, name))
        for name in ("lr_scale", "d_lr_scale"):
            if _check_nonneg(name, getattr(self, name)) == 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.label_smoothing >= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.label_smoothing and self.loss not in ("bce", "minimax"):
            raise ValueError(f"label_smoothing applies to loss 'bce'/'minimax', not "
                             f"{self.loss!r}")
        if not isinstance(self.simultaneous, bool) or not isinstance(self.spectral_norm, bool):
            raise TypeError("simultaneous and spectral_norm must be bools")


class GANNets(NamedTuple):
    """The two networks as pure functions.

    Attributes:
      g_init: ``g_init(key) -> g_params``.
      g_apply: ``g_apply(g_params, z [n, latent_dim]) -> x [n, *data_shape]``.
      d_init: ``d_init(key) -> d_params``.
      d_apply: ``d_apply(d_params, x [n * pack, *data_shape]) -> logits [n, 1] or [n]``.
      latent_dim: dimension of the standard-normal latent.
      data_shape: shape of one data sample.
    """

    g_init: Callable
    g_apply: Callable
    d_init: Callable
    d_apply: Callable
    latent_dim: int
    data_shape: tuple


def nets_from_models(generator, discriminator, latent_dim: int, data_shape) -> GANNets:
    """:class:`GANNets` from two :class:`~jaxopt_lab.models.Model` s."""
    return GANNets(generator.init, lambda p, z: generator.apply(p, z), discriminator.init,
                   lambda p, x: discriminator.apply(p, x), int(latent_dim), tuple(data_shape))


def check_nets(nets: GANNets, spec: GANSpec) -> None:
    """Raise ValueError naming ``latent_dim`` or ``data_shape`` when the networks do not
    take / give those shapes (traced with ``jax.eval_shape``: nothing is compiled)."""
    check_int("latent_dim", nets.latent_dim)
    n = spec.batch_size * spec.pack
    key = jax.random.key(0)
    g_params = jax.eval_shape(nets.g_init, key)
    z = jax.ShapeDtypeStruct((n, nets.latent_dim), jnp.float32)
    try:
        x = jax.eval_shape(nets.g_apply, g_params, z)
    except (TypeError, ValueError) as e:
        raise ValueError(f"latent_dim={nets.latent_dim} does not match the generator's input: "
                         f"{str(e).splitlines()[0]}") from None
    want = (n, *nets.data_shape)
    if tuple(x.shape) != want:
        raise ValueError(f"data_shape={nets.data_shape} does not match the generator's output "
                         f"sample shape {tuple(x.shape[1:])}")
    d_params = jax.eval_shape(nets.d_init, key)
    try:
        out = jax.eval_shape(nets.d_apply, d_params, jax.ShapeDtypeStruct(want, jnp.float32))
    except (TypeError, ValueError) as e:
        raise ValueError(f"data_shape={nets.data_shape} (pack={spec.pack}) does not match the "
                         f"discriminator's input: {str(e).splitlines()[0]}") from None
    if tuple(out.shape) not in ((spec.batch_size,), (spec.batch_size, 1)):
        raise ValueError(f"the discriminator must give one logit per packed input: "
                         f"[{spec.batch_size}, 1] for {n} samples with pack={spec.pack}, got "
                         f"{tuple(out.shape)}")


class GANState(NamedTuple):
    """Both players' state (arrays only: vmappable over seeds and learning rates).

    Attributes:
      g_params, d_params: the generator's and discriminator's parameters.
      g_opt_state, d_opt_state: each player's optax state.
      sn_u: power-iteration vectors of D's kernels (``[out]`` per kernel, None elsewhere)
        with spectral normalization, else None.
      step: int32 generator steps taken.
    """

    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    sn_u: Any
    step: jax.Array


class StepInfo(NamedTuple):
    """Per-step scalars: D's loss (mean over its ``d_steps``), G's loss, and whether every
    loss and parameter stayed finite."""

    d_loss: jax.Array
    g_loss: jax.Array
    finite: jax.Array


def players(opt: optax.GradientTransformation, spec: GANSpec):
    """``(g_tx, d_tx)``: the transform of each player (``opt`` with the spec's scales)."""
    g_scale = spec.lr_scale
    d_scale = spec.lr_scale * spec.d_lr_scale
    g_tx = opt if g_scale == 1.0 else optax.chain(opt, optax.scale(g_scale))
    d_tx = opt if d_scale == 1.0 else optax.chain(opt, optax.scale(d_scale))
    return g_tx, d_tx


def init_state(spec: GANSpec, nets: GANNets, opt: optax.GradientTransformation,
               key: jax.Array) -> GANState:
    """Initial :class:`GANState`: G from ``fold_in(key, 0)``, D from ``fold_in(key, 1)``,
    spectral-norm vectors from ``fold_in(key, 2)``."""
    g_tx, d_tx = players(opt, spec)
    g = nets.g_init(jax.random.fold_in(key, 0))
    d = nets.d_init(jax.random.fold_in(key, 1))
    u = spectral_norm_init(d, jax.random.fold_in(key, 2)) if spec.spectral_norm else None
    return GANState(g, d, g_tx.init(g), d_tx.init(d), u, jnp.zeros((), jnp.int32))


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.asarray(leaves)) if leaves else jnp.array(True)


def gan_step(spec: GANSpec, nets: GANNets, opt: optax.GradientTransformation,
             state: GANState, key: jax.Array,
             sample_real: Callable[[jax.Array, int], jax.Array]) -> tuple[GANState, StepInfo]:
    """One generator step with its ``d_steps`` discriminator updates (pure, jit/vmap-able).

    Args:
      spec: the static :class:`GANSpec`.
      nets: the networks.
      opt: the optax transform of both players (see the module docstring).
      state: :class:`GANState`.
      key: this step's key (every draw is a ``fold_in`` of it).
      sample_real: ``sample_real(key, n) -> [n, *data_shape]`` real samples (pure).

    Returns:
      ``(new_state, StepInfo)``.
    """
    g_tx, d_tx = players(opt, spec)
    n = spec.batch_size * spec.pack
    t = state.step.astype(jnp.float32)
    if spec.instance_noise and spec.noise_anneal_steps:
        sigma = spec.instance_noise * jnp.maximum(0.0, 1.0 - t / spec.noise_anneal_steps)
    else:
        sigma = jnp.float32(spec.instance_noise)

    def noisy(x, k):
        if not spec.instance_noise:
            return x
        return x + sigma * jax.random.normal(k, x.shape, x.dtype)

    def latents(k):
        return jax.random.normal(k, (n, nets.latent_dim), jnp.float32)

    def d_effective(d_params, u):
        return spectral_normalize(d_params, u) if spec.spectral_norm else (d_params, u)

    def d_objective(d_params, u, g_params, k):
        d_eff, u_new = d_effective(d_params, u)

        def dfn(x):
            return nets.d_apply(d_eff, x)

        real = noisy(sample_real(jax.random.fold_in(k, 0), n), jax.random.fold_in(k, 2))
        fake = jax.lax.stop_gradient(nets.g_apply(g_params, latents(jax.random.fold_in(k, 1))))
        fake = noisy(fake, jax.random.fold_in(k, 3))
        loss = discriminator_loss(spec.loss, dfn(real), dfn(fake),
                                  label_smoothing=spec.label_smoothing)
        if spec.r1_gamma:
            loss = loss + 0.5 * spec.r1_gamma * r1_penalty(dfn, real)
        if spec.gp_weight:
            loss = loss + spec.gp_weight * gradient_penalty(dfn, real, fake,
                                                            jax.random.fold_in(k, 4))
        return loss, u_new

    def d_update(d_params, d_state, u, g_params, k):
        (loss, u_new), grads = jax.value_and_grad(d_objective, has_aux=True)(
            d_params, u, g_params, k)
        fns = steps_mod.loss_fns(lambda p, _: d_objective(p, u, g_params, k)[0], None)
        updates, d_state = steps_mod.update(d_tx, grads, d_state, d_params, value=loss,
                                            fns=fns)
        return optax.apply_updates(d_params, updates), d_state, u_new, loss

    def g_objective(g_params, d_params, d_state, u, k):
        if spec.unroll_steps:
            def unroll(carry, j):
                dp, ds = carry
                dp, ds, _, _ = d_update(dp, ds, u, g_params, jax.random.fold_in(k, 100 + j))
                return (dp, ds), None

            (d_params, _), _ = jax.lax.scan(unroll, (d_params, d_state),
                                            jnp.arange(spec.unroll_steps))
        d_eff, _ = d_effective(d_params, u)
        fake = noisy(nets.g_apply(g_params, latents(jax.random.fold_in(k, 1))),
                     jax.random.fold_in(k, 3))
        return generator_loss(spec.loss, nets.d_apply(d_eff, fake))

    def g_grad(g_params, d_params, d_state, u, k):
        loss, grads = jax.value_and_grad(g_objective)(g_params, d_params, d_state, u, k)
        return loss, grads

    k_d, k_g = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    if spec.simultaneous:
        g_loss, g_grads = g_grad(state.g_params, state.d_params, state.d_opt_state,
                                 state.sn_u, k_g)

    def d_body(carry, j):
        dp, ds, u = carry
        dp, ds, u, loss = d_update(dp, ds, u, state.g_params, jax.random.fold_in(k_d, j))
        return (dp, ds, u), loss

    (d_params, d_state, u), d_losses = jax.lax.scan(
        d_body, (state.d_params, state.d_opt_state, state.sn_u), jnp.arange(spec.d_steps))
    if not spec.simultaneous:
        g_loss, g_grads = g_grad(state.g_params, d_params, d_state, u, k_g)

    g_fns = steps_mod.loss_fns(lambda p, _: g_objective(p, d_params, d_state, u, k_g), None)
    g_updates, g_state = steps_mod.update(g_tx, g_grads, state.g_opt_state, state.g_params,
                                          value=g_loss, fns=g_fns)
    g_params = optax.apply_updates(state.g_params, g_updates)
    d_loss = jnp.mean(d_losses)
    finite = (jnp.isfinite(d_loss) & jnp.isfinite(g_loss) & _all_finite(g_params)
              & _all_finite(d_params))
    new = GANState(g_params, d_params, g_state, d_state, u, state.step + 1)
    return new, StepInfo(d_loss, g_loss, finite)


__all__ = ["GANNets", "GANSpec", "GANState", "StepInfo", "check_nets", "gan_step",
           "init_state", "nets_from_models", "players"]

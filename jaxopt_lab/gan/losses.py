"""GAN losses and penalties, as pure functions of discriminator logits and callables.

Convention: the discriminator ``D`` gives a real-valued logit ``[n]`` (or ``[n, 1]``) and
wants it high on real data; both players MINIMIZE their loss.

=============  ============================================  ===============================
``loss``       discriminator loss                             generator loss
=============  ============================================  ===============================
``bce``        ``softplus(-D(x)) + softplus(D(G(z)))``        ``softplus(-D(G(z)))``
               (binary cross-entropy)                         (non-saturating, the default)
``minimax``    as ``bce``                                     ``-softplus(D(G(z)))``
``hinge``      ``relu(1 - D(x)) + relu(1 + D(G(z)))``         ``-D(G(z))``
``wasserstein``  ``D(G(z)) - D(x)`` (add a gradient penalty)  ``-D(G(z))``
=============  ============================================  ===============================

One-sided label smoothing replaces the real target 1 by ``1 - label_smoothing`` in the
cross-entropy losses (Salimans et al. 2016).

References:
  Goodfellow et al., 2014. Generative adversarial nets (minimax and non-saturating).
  Lim & Ye, 2017. Geometric GAN (hinge); Miyato et al., 2018 (hinge with spectral norm).
  Arjovsky, Chintala & Bottou, 2017. Wasserstein GAN.
  Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, 2017. Improved training of
  Wasserstein GANs (gradient penalty).
  Mescheder, Geiger & Nowozin, 2018. Which training methods for GANs do actually
  converge? (R1 penalty).
  Salimans et al., 2016. Improved techniques for training GANs (one-sided label smoothing).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_choice

LOSSES: tuple[str, ...] = ("bce", "minimax", "hinge", "wasserstein")


def _flat(logits):
    logits = jnp.asarray(logits)
    return logits.reshape(logits.shape[0], -1)[:, 0] if logits.ndim > 1 else logits


def discriminator_loss(kind: str, real_logits: jax.Array, fake_logits: jax.Array, *,
                       label_smoothing: float = 0.0) -> jax.Array:
    """Mean discriminator loss of ``kind`` (see the module table)."""
    check_choice("loss", kind, LOSSES)
    r, f = _flat(real_logits), _flat(fake_logits)
    if kind in ("bce", "minimax"):
        t = 1.0 - label_smoothing  # one-sided: only the real target is smoothed
        real = t * jax.nn.softplus(-r) + (1.0 - t) * jax.nn.softplus(r)
        return jnp.mean(real) + jnp.mean(jax.nn.softplus(f))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))
    return jnp.mean(f) - jnp.mean(r)


def generator_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
    """Mean generator loss of ``kind`` (see the module table)."""
    check_choice("loss", kind, LOSSES)
    f = _flat(fake_logits)
    if kind == "bce":
        return jnp.mean(jax.nn.softplus(-f))
    if kind == "minimax":
        return -jnp.mean(jax.nn.softplus(f))
    return -jnp.mean(f)


def _input_grad_sq(d: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """Per-sample squared norm of ``d/dx sum(D(x))`` ([n]); exact per-sample gradients when
    D treats samples independently, the packed/batch-coupled gradient otherwise."""
    g = jax.grad(lambda xx: jnp.sum(d(xx)))(x)
    return jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=-1)


def r1_penalty(d: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
    """R1 penalty ``E_x ||grad_x D(x)||^2`` on real data (multiply by ``gamma / 2``).

    References:
      Mescheder, Geiger & Nowozin, 2018. Which training methods for GANs do actually
      converge?
    """
    return jnp.mean(_input_grad_sq(d, real))


def gradient_penalty(d: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
    """WGAN-GP penalty ``E (||grad D(x_hat)|| - 1)^2`` at random interpolates ``x_hat`` of
    real and fake samples (multiply by ``lambda``, 10 in the paper).

    References:
      Gulrajani et al., 2017. Improved training of Wasserstein GANs.
    """
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
    x_hat = eps * real + (1.0 - eps) * fake
    norms = jnp.sqrt(_input_grad_sq(d, x_hat) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)


__all__ = ["LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty", "r1_penalty"]

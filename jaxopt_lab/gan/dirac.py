"""Dirac-GAN (Mescheder et al. 2018): the smallest GAN that shows whether a training
method converges.

Data: a Dirac at 0. Generator: ``G = theta`` (every sample equals ``theta``).
Discriminator: ``D(x) = psi * x``. The unique equilibrium is ``theta = psi = 0``. With
this lab's conventions (:mod:`jaxopt_lab.gan.losses`, both players minimize) the
gradients are closed forms (:func:`gradients`); at the equilibrium the gradient field is
a pure rotation, so simultaneous gradient descent spirals outwards
(``||(theta, psi)||`` grows by ``sqrt(1 + (h/2)^2)`` per step of the linearization) and
alternating gradient descent circles forever, for every learning rate ``h``, while an R1
penalty (``gamma / 2 * psi^2``), instance noise and negative momentum (Gidel et al. 2019)
damp the rotation and converge.

References:
  Mescheder, Geiger & Nowozin, 2018. Which training methods for GANs do actually
  converge?
  Gidel, Askari Hemmat, Pezeshki, Le Priol, Huang, Lacoste-Julien & Mitliagkas, 2019.
  Negative momentum for improved game dynamics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_choice
from jaxopt_lab.gan.losses import LOSSES
from jaxopt_lab.gan.step import GANNets


def _g_init(key):
    return {"theta": jax.random.normal(key, (), jnp.float32)}


def _g_apply(p, z):
    return jnp.broadcast_to(p["theta"], (z.shape[0], 1))


def _d_init(key):
    return {"psi": jax.random.normal(key, (), jnp.float32)}


def _d_apply(p, x):
    return p["psi"] * x


def nets() -> GANNets:
    """The Dirac-GAN networks (latent 1, data shape ``(1,)``; params are scalars drawn
    N(0, 1) from the key)."""
    return GANNets(_g_init, _g_apply, _d_init, _d_apply, 1, (1,))


def sample_real(key: jax.Array, n: int) -> jax.Array:
    """The data: ``n`` copies of 0 (shape ``[n, 1]``)."""
    del key
    return jnp.zeros((n, 1), jnp.float32)


def gradients(theta, psi, loss: str = "bce", *, r1_gamma: float = 0.0):
    """Closed-form ``(dL_G/dtheta, dL_D/dpsi)`` of the Dirac-GAN (no noise, no penalty but
    R1), with ``sigma`` the logistic function:

    * ``bce``: ``(-sigma(-psi theta) psi, sigma(psi theta) theta)``;
    * ``minimax``: ``(-sigma(psi theta) psi, sigma(psi theta) theta)``;
    * ``hinge``: ``(-psi, theta * [1 + psi theta > 0])``;
    * ``wasserstein``: ``(-psi, theta)``;

    R1 adds ``gamma * psi`` to D's gradient (``grad_x D = psi`` at the data).
    """
    check_choice("loss", loss, LOSSES)
    s = jax.nn.sigmoid
    t = psi * theta
    if loss == "bce":
        gt, gp = -s(-t) * psi, s(t) * theta
    elif loss == "minimax":
        gt, gp = -s(t) * psi, s(t) * theta
    elif loss == "hinge":
        gt, gp = -psi, theta * (1.0 + t > 0)
    else:
        gt, gp = -psi, theta
    return gt, gp + r1_gamma * psi


__all__ = ["gradients", "nets", "sample_real"]

"""gan: the two-player step (both players any optax transform), GAN losses and penalties,
mode-collapse remedies and metrics, the Dirac-GAN, and the GAN front-end of the sweep
core (no training loop of its own).

* :mod:`~jaxopt_lab.gan.step`: :class:`GANSpec`, :class:`GANNets`, :class:`GANState`,
  :func:`init_state`, :func:`gan_step`.
* :mod:`~jaxopt_lab.gan.losses`: ``bce`` (non-saturating), ``minimax``, ``hinge``,
  ``wasserstein``; R1 and WGAN-GP penalties.
* :mod:`~jaxopt_lab.gan.remedies`: the remedies by name.
* :mod:`~jaxopt_lab.gan.metrics`: modes / high quality / reverse KL; IS, label KL, FID.
* :mod:`~jaxopt_lab.gan.dirac`: the Dirac-GAN and its closed-form gradients.
* :mod:`~jaxopt_lab.gan.sweep`: the per-seed run as a ``compare.Trial`` and the merged
  ``Results``.
"""

from jaxopt_lab.gan import classifier, dirac, losses, metrics, remedies
from jaxopt_lab.gan.remedies import REMEDIES, apply_remedy, check_remedy
from jaxopt_lab.gan.step import (
    GANNets,
    GANSpec,
    GANState,
    StepInfo,
    check_nets,
    gan_step,
    init_state,
    nets_from_models,
    players,
)
from jaxopt_lab.gan.sweep import check_learning_rates, make_trial, results_from_sweeps, sweep

__all__ = [
    "REMEDIES",
    "GANNets",
    "GANSpec",
    "GANState",
    "StepInfo",
    "apply_remedy",
    "check_learning_rates",
    "check_nets",
    "check_remedy",
    "classifier",
    "dirac",
    "gan_step",
    "init_state",
    "losses",
    "make_trial",
    "metrics",
    "nets_from_models",
    "players",
    "remedies",
    "results_from_sweeps",
    "sweep",
]

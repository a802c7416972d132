"""Mode-collapse remedies by name: each is a change of the step (:class:`GANSpec`) and/or
of the discriminator network's options (:func:`jaxopt_lab.models.gan_nets.mlp_discriminator`).

==========================  =================================================================
name                        what changes (reference)
==========================  =================================================================
``none``                    nothing
``lower_lr``                both players' updates x 0.1 (the tutorial's first advice)
``instance_noise``          N(0, 0.1^2) on D's inputs, annealed to 0 over half the steps
                            (Sonderby et al. 2016)
``label_smoothing``         one-sided, real target 0.9 (Salimans et al. 2016)
``d_steps``                 3 discriminator updates per generator update (a stronger D)
``minibatch_discrimination``  16 kernels of dimension 5 (Salimans et al. 2016)
``minibatch_stddev``        the batch-std feature (Karras et al. 2018)
``pack2``/``pack3``/``pack4``  PacGAN packing m = 2, 3, 4 (Lin et al. 2018)
``unrolled``                5 unrolled D steps in the G loss (Metz et al. 2017)
``spectral_norm``           spectral normalization of D (Miyato et al. 2018)
``r1``                      R1 penalty, gamma = 0.1 (Mescheder et al. 2018)
==========================  =================================================================
"""

from __future__ import annotations

import dataclasses

from jaxopt_lab._validation import check_int
from jaxopt_lab.gan.step import GANSpec

REMEDIES: dict[str, tuple[dict, dict]] = {
    "none": ({}, {}),
    "lower_lr": ({"lr_scale": 0.1}, {}),
    "instance_noise": ({"instance_noise": 0.1}, {}),
    "label_smoothing": ({"label_smoothing": 0.1}, {}),
    "d_steps": ({"d_steps": 3}, {}),
    "minibatch_discrimination": ({}, {"minibatch_kernels": 16, "minibatch_kernel_dim": 5}),
    "minibatch_stddev": ({}, {"minibatch_stddev": True}),
    "pack2": ({"pack": 2}, {"pack": 2}),
    "pack3": ({"pack": 3}, {"pack": 3}),
    "pack4": ({"pack": 4}, {"pack": 4}),
    "unrolled": ({"unroll_steps": 5}, {}),
    "spectral_norm": ({"spectral_norm": True}, {}),
    "r1": ({"r1_gamma": 0.1}, {}),
}


def check_remedy(name: str) -> str:
    """``name`` if it is a known remedy, else ValueError naming ``remedy``."""
    if not isinstance(name, str) or name not in REMEDIES:
        raise ValueError(f"remedy must be one of {list(REMEDIES)}, got {name!r}")
    return name


def apply_remedy(name: str, spec: GANSpec, d_kwargs: dict, steps: int
                 ) -> tuple[GANSpec, dict]:
    """``(spec, discriminator kwargs)`` with remedy ``name`` applied (``steps``: the run's
    generator steps, for the instance-noise annealing)."""
    check_remedy(name)
    steps = check_int("steps", steps)
    spec_changes, d_changes = REMEDIES[name]
    spec_changes = dict(spec_changes)
    if "instance_noise" in spec_changes:
        spec_changes["noise_anneal_steps"] = max(1, steps // 2)
    return dataclasses.replace(spec, **spec_changes), {**d_kwargs, **d_changes}


__all__ = ["REMEDIES", "apply_remedy", "check_remedy"]

"""transforms: optax gradient transformations that optax lacks (see DESIGN.md).

First order: EWC, GEM / A-GEM, perturbed GD, SWA, rollback guard, gradient monitor.
Second order: Hessian-free Newton-CG, damped natural gradient, Steihaug trust region,
saddle-free Newton; their curvature closures come from :mod:`jaxopt_lab.curvature.operators`
(re-exported here) and their CG solvers from :mod:`jaxopt_lab.curvature.solvers`.
Every factory returns an ``optax.GradientTransformation`` (``...ExtraArgs`` where the
update takes keyword extra arguments) whose state is a NamedTuple of arrays.
"""

from jaxopt_lab.curvature.operators import (  # re-exported for convenience; home: curvature
    curvature_fns,
    empirical_fisher_fns,
    gauss_newton_fns,
)
from jaxopt_lab.transforms._state import find_state
from jaxopt_lab.transforms.ewc import (
    EWCOnlineState,
    EWCSeparateState,
    ewc,
    ewc_consolidate,
    ewc_penalty,
    fisher_diagonal,
)
from jaxopt_lab.transforms.gem import GEMState, agem, agem_project, gem, gem_project
from jaxopt_lab.transforms.monitor import GradientMonitorState, gradient_monitor
from jaxopt_lab.transforms.natural_gradient import NaturalGradientState, natural_gradient
from jaxopt_lab.transforms.newton import HessianFreeState, hessian_free
from jaxopt_lab.transforms.perturbed import PerturbedGDState, perturbed_gd, sample_uniform_ball
from jaxopt_lab.transforms.rollback import (
    RollbackState,
    check_placement,
    last_good_params,
    restore_nonfinite,
    rollback_guard,
)
from jaxopt_lab.transforms.saddle_free import SaddleFreeState, saddle_free_newton
from jaxopt_lab.transforms.swa import SWAState, WeightEMAState, swa, swa_params, weight_ema
from jaxopt_lab.transforms.trust_region import TrustRegionState, trust_region

__all__ = [
    "HessianFreeState",
    "NaturalGradientState",
    "SaddleFreeState",
    "TrustRegionState",
    "curvature_fns",
    "empirical_fisher_fns",
    "gauss_newton_fns",
    "hessian_free",
    "natural_gradient",
    "saddle_free_newton",
    "trust_region",
    "EWCOnlineState",
    "EWCSeparateState",
    "GEMState",
    "GradientMonitorState",
    "PerturbedGDState",
    "RollbackState",
    "SWAState",
    "WeightEMAState",
    "agem",
    "agem_project",
    "ewc",
    "ewc_consolidate",
    "ewc_penalty",
    "fisher_diagonal",
    "gem",
    "gem_project",
    "gradient_monitor",
    "last_good_params",
    "perturbed_gd",
    "rollback_guard",
    "check_placement",
    "find_state",
    "restore_nonfinite",
    "sample_uniform_ball",
    "swa",
    "swa_params",
    "weight_ema",
]

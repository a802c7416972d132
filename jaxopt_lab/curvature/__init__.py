"""Curvature analysis: HVPs, Lanczos, spectra, critical points, curvature-vector
product closures and CG solvers for second-order steps (see DESIGN.md)."""

from jaxopt_lab.curvature.critical import (
    KIND_NAMES,
    Classification,
    CriticalPoints,
    classify,
    classify_batch,
    find_critical_points,
)
from jaxopt_lab.curvature.density import SpectralDensity, spectral_density
from jaxopt_lab.curvature.hvp import hessian, hvp
from jaxopt_lab.curvature.lanczos import LanczosResult, lanczos, tridiagonal_eigh
from jaxopt_lab.curvature.linear_operator import (
    CurvatureOperator,
    fisher_matvec,
    fisher_operator,
    ggn_matvec,
    ggn_operator,
    hessian_operator,
    matvec_operator,
)
from jaxopt_lab.curvature.maps import MAP_KIND_NAMES, CurvatureMap, curvature_map
from jaxopt_lab.curvature.operators import curvature_fns, empirical_fisher_fns, gauss_newton_fns
from jaxopt_lab.curvature.slices import (
    LandscapeSlice,
    filter_normalize,
    landscape_slice,
    layer_normalize,
    random_directions,
)
from jaxopt_lab.curvature.solvers import CGResult, SteihaugResult, conjugate_gradient, steihaug_cg
from jaxopt_lab.curvature.spectrum import (
    EigshResult,
    PowerIterationResult,
    eigsh,
    eigsh_matvec,
    power_iteration,
    power_iteration_matvec,
)
from jaxopt_lab.curvature.trace import TraceEstimate, trace, trace_matvec

__all__ = [
    "CurvatureOperator",
    "TraceEstimate",
    "fisher_matvec",
    "fisher_operator",
    "ggn_matvec",
    "ggn_operator",
    "hessian_operator",
    "matvec_operator",
    "CGResult",
    "SteihaugResult",
    "conjugate_gradient",
    "curvature_fns",
    "empirical_fisher_fns",
    "gauss_newton_fns",
    "steihaug_cg",
    "EigshResult",
    "LanczosResult",
    "PowerIterationResult",
    "SpectralDensity",
    "eigsh",
    "eigsh_matvec",
    "lanczos",
    "power_iteration",
    "power_iteration_matvec",
    "spectral_density",
    "trace",
    "trace_matvec",
    "tridiagonal_eigh",
    "hessian",
    "hvp",
    "KIND_NAMES",
    "MAP_KIND_NAMES",
    "Classification",
    "CriticalPoints",
    "CurvatureMap",
    "LandscapeSlice",
    "classify",
    "classify_batch",
    "curvature_map",
    "filter_normalize",
    "find_critical_points",
    "landscape_slice",
    "layer_normalize",
    "random_directions",
]

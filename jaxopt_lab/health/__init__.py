"""health: training-health monitor computed inside ``jit`` (see DESIGN.md).

Stateful monitor (inside ``lax.scan``): :func:`init_health`, :func:`update_health`,
:func:`monitor`, :class:`Thresholds`, :class:`HealthState`, :class:`HealthReport`.
Stateless detectors: :func:`global_norm`, :func:`layer_norms`, :func:`vanishing_ratio`,
:func:`dead_fraction`, :func:`seed_sensitivity`, :func:`mode_coverage`, :func:`forgetting`.
Diagnosis (host side, on a finished sweep): :func:`diagnose` -> :class:`Diagnosis` of the five
signs of being stuck (:mod:`jaxopt_lab.health.diagnosis`, which also has the driver ``run``).
"""

from jaxopt_lab.health.detectors import (
    ForgettingReport,
    ModeCoverage,
    SeedSpread,
    all_finite,
    dead_fraction,
    forgetting,
    global_norm,
    layer_groups,
    layer_norms,
    leaf_paths,
    mode_coverage,
    seed_sensitivity,
    vanishing_ratio,
)
from jaxopt_lab.health.diagnosis import (
    Diagnosis,
    DiagnosisThresholds,
    Remedy,
    Sign,
    diagnose,
)
from jaxopt_lab.health.monitor import (
    DEFAULT_THRESHOLDS,
    FLAG_NAMES,
    Flags,
    HealthMonitor,
    HealthReport,
    HealthState,
    Thresholds,
    first_fired,
    init_health,
    monitor,
    update_health,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Diagnosis",
    "DiagnosisThresholds",
    "FLAG_NAMES",
    "Flags",
    "ForgettingReport",
    "HealthMonitor",
    "HealthReport",
    "HealthState",
    "Remedy",
    "Sign",
    "ModeCoverage",
    "SeedSpread",
    "Thresholds",
    "all_finite",
    "dead_fraction",
    "diagnose",
    "first_fired",
    "forgetting",
    "global_norm",
    "init_health",
    "layer_groups",
    "layer_norms",
    "leaf_paths",
    "mode_coverage",
    "monitor",
    "seed_sensitivity",
    "update_health",
    "vanishing_ratio",
]

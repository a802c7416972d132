"""Curvature analysis: HVPs, Lanczos, spectra, critical points (see DESIGN.md)."""

from jaxopt_lab.curvature.hvp import hessian, hvp

__all__ = ["hessian", "hvp"]

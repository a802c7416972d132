"""Scores of accuracy matrices: ACC, BWT, forgetting (via :func:`jaxopt_lab.health.forgetting`)
and FWT.

For ``R[i, j]`` (accuracy on task ``j`` after training task ``i``) and ``b_j`` (accuracy
of the initial network on task ``j``):

* ACC = ``mean_j R[T-1, j]``;
* BWT = ``mean_{j<T-1} R[T-1, j] - R[j, j]`` (Lopez-Paz & Ranzato 2017);
* FWT = ``mean_{j>0} R[j-1, j] - b_j`` (Lopez-Paz & Ranzato 2017);
* forgetting = ``mean_{j<T-1} max_{i<T-1} R[i, j] - R[T-1, j]`` (Chaudhry et al. 2018,
  "Riemannian Walk for Incremental Learning").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import health

__all__ = ["scores"]


def _one(r, b):
    rep = health.forgetting(r)
    t = r.shape[0]
    fwt = jnp.mean(jnp.diagonal(r, offset=1) - b[1:]) if t > 1 else jnp.nan
    return {"acc": rep.average_accuracy, "bwt": rep.backward_transfer, "fwt": fwt,
            "forgetting": rep.average_forgetting}


def scores(r, r0) -> dict[str, np.ndarray]:
    """ACC, BWT, FWT and forgetting of accuracy matrices.

    Args:
      r: ``[..., T, T]`` accuracy matrices (any leading axes, e.g. ``[H, S]``).
      r0: ``[..., T]`` accuracies of the initial networks.

    Returns:
      dict ``acc, bwt, fwt, forgetting`` of float arrays with the leading axes.

    Example:
      >>> s = scores(np.array([[0.9, 0.5], [0.6, 0.8]]), np.array([0.5, 0.5]))
      >>> [round(float(s[k]), 2) for k in ("acc", "bwt", "fwt", "forgetting")]
      [0.7, -0.3, 0.0, 0.3]
    """
    r = np.asarray(r, np.float32)
    r0 = np.asarray(r0, np.float32)
    if r.ndim < 2 or r.shape[-1] != r.shape[-2] or r.shape[-1] < 2:
        raise ValueError(f"r must be [..., T, T] with T >= 2, got {r.shape}")
    if r0.shape != r.shape[:-1]:
        raise ValueError(f"r0 must have shape {r.shape[:-1]}, got {r0.shape}")
    lead = r.shape[:-2]
    flat = jax.vmap(_one)(jnp.asarray(r.reshape(-1, *r.shape[-2:])),
                          jnp.asarray(r0.reshape(-1, r.shape[-1])))
    return {k: np.asarray(v).reshape(lead) for k, v in flat.items()}

"""Mode-collapse metrics, pure and jit-able (computed inside the training program).

* 2-D mixtures (:func:`mixture_metrics`): modes captured, fraction of high-quality
  samples (within ``num_std`` stds of the nearest mode) and the reverse KL of the
  generated mode histogram to the uniform one, from :func:`jaxopt_lab.health.mode_coverage`
  (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018).
* Images, scored by a domain classifier trained by the lab: an Inception-style score
  ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al. 2016), the KL between the generated
  label histogram and the true one, and the Frechet distance between Gaussian fits of the
  classifier's penultimate features (Heusel et al. 2017), with the matrix square root
  taken through symmetric eigendecompositions.

References:
  Salimans et al., 2016. Improved techniques for training GANs.
  Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, 2017. GANs trained by a two
  time-scale update rule converge to a local Nash equilibrium.
  Srivastava, Valkov, Russell, Gutmann & Sutton, 2017. VEEGAN: Reducing mode collapse in
  GANs using implicit variational learning.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_lab import health


def mixture_metrics(samples: jax.Array, centers: jax.Array, std: float,
                    num_std: float = 3.0, min_coverage: float = 1.0) -> dict:
    """``{"modes", "hq_fraction", "reverse_kl", "collapsed"}`` of ``samples [n, 2]`` on a
    mixture with ``centers [k, 2]`` and component std ``std`` (a mode is captured with one
    high-quality sample; ``collapsed`` is the health hook's flag, 1.0 when fewer than
    ``min_coverage * k`` modes are captured)."""
    cov = health.mode_coverage(samples, centers, std=std, num_std=num_std,
                               min_coverage=min_coverage)
    return {"modes": cov.modes_covered.astype(jnp.float32),
            "hq_fraction": cov.high_quality_fraction,
            "reverse_kl": cov.reverse_kl,
            "collapsed": cov.flag.astype(jnp.float32)}


def _xlogy_ratio(p, q):
    return jnp.where(p > 0, p * (jnp.log(jnp.where(p > 0, p, 1.0)) - jnp.log(q)), 0.0)


def inception_score(probs: jax.Array) -> jax.Array:
    """``exp(mean_i KL(p(y|x_i) || mean_j p(y|x_j)))`` of class probabilities ``[n, C]``."""
    probs = jnp.asarray(probs, jnp.float32)
    marginal = jnp.mean(probs, axis=0)
    kl = jnp.sum(_xlogy_ratio(probs, jnp.maximum(marginal, 1e-30)[None]), axis=-1)
    return jnp.exp(jnp.mean(kl))


def label_kl(probs: jax.Array, true_hist: jax.Array, *, eps: float = 1e-6) -> jax.Array:
    """``KL(generated label histogram || true histogram)``; generated labels are the
    classifier's argmax, the histogram smoothed by ``eps`` so the KL stays finite."""
    c = probs.shape[-1]
    counts = jnp.zeros((c,), jnp.float32).at[jnp.argmax(probs, -1)].add(1.0)
    p = (counts + eps) / jnp.sum(counts + eps)
    q = jnp.asarray(true_hist, jnp.float32)
    q = q / jnp.sum(q)
    return jnp.sum(_xlogy_ratio(p, q))


def _sqrt_psd(a):
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> jax.Array:
    """``||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)`` (symmetric form of
    ``tr sqrtm(C1 C2)``: both square roots by ``eigh``)."""
    s1 = _sqrt_psd(cov1)
    inner = _sqrt_psd(s1 @ cov2 @ s1)
    return jnp.sum((mu1 - mu2) ** 2) + jnp.trace(cov1) + jnp.trace(cov2) - 2 * jnp.trace(inner)


def gaussian_fit(features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and (unbiased) covariance of ``features [n, f]``."""
    f = jnp.asarray(features, jnp.float32)
    mu = jnp.mean(f, axis=0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


def fid(features_a: jax.Array, features_b: jax.Array) -> jax.Array:
    """Frechet distance between Gaussian fits of two feature sets ``[n, f]``, ``[m, f]``."""
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


__all__ = ["fid", "frechet_distance", "gaussian_fit", "inception_score", "label_kl",
           "mixture_metrics"]

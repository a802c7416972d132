"""2-D Gaussian mixtures for GAN mode-collapse experiments (ring of 8, 5x5 grid)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int, check_positive


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
    """Equal-weight isotropic Gaussian mixture in 2-D.

    Attributes:
      name: ``"ring"`` or ``"grid"`` (or a user label).
      centers: float64 numpy array ``[k, 2]`` of mode centers (exact, host-side).
      std: per-coordinate standard deviation of every component.
    """

    name: str
    centers: np.ndarray
    std: float

    @property
    def num_modes(self) -> int:
        """Number of components ``k``."""
        return int(self.centers.shape[0])

    def sample(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """Draw ``n`` points (``n`` static; usable inside jit/scan with a traced key).

        Returns:
          ``(points [n, 2] float32, labels [n] int32)``, labels the component indices.
        """
        n = check_int("n", n)
        k_label, k_noise = jax.random.split(key)
        labels = jax.random.randint(k_label, (n,), 0, self.num_modes, dtype=jnp.int32)
        centers = jnp.asarray(self.centers, jnp.float32)
        noise = jax.random.normal(k_noise, (2 * n,), jnp.float32).reshape(n, 2)
        noise = noise * jnp.float32(self.std)
        return centers[labels] + noise, labels


def ring(num_modes: int = 8, *, radius: float = 2.0, std: float = 0.02) -> GaussianMixture:
    """Mixture with modes at angles ``2 pi k / num_modes`` (k = 0..num_modes-1) on a circle.

    Centers are ``radius * (cos(2 pi k / K), sin(2 pi k / K))`` computed in float64.

    References:
      Metz, Poole, Pfau & Sohl-Dickstein (2017), Unrolled Generative Adversarial Networks.
    """
    num_modes = check_int("num_modes", num_modes)
    check_positive("radius", radius)
    check_positive("std", std)
    angles = np.linspace(0.0, 2.0 * np.pi, num_modes, endpoint=False)
    centers = float(radius) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    centers.setflags(write=False)
    return GaussianMixture("ring", centers, float(std))


def grid(side: int = 5, *, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    """Mixture with ``side x side`` modes on a centred square grid (default 25 modes at
    {-4, -2, 0, 2, 4}^2), row-major: mode ``i * side + j`` at ``(c_i, c_j)``.

    References:
      Srivastava et al. (2017), VEEGAN: Reducing Mode Collapse in GANs using Implicit
      Variational Learning.
    """
    side = check_int("side", side)
    check_positive("spacing", spacing)
    check_positive("std", std)
    coords = (np.arange(side) - (side - 1) / 2.0) * float(spacing)
    gx, gy = np.meshgrid(coords, coords, indexing="ij")
    centers = np.stack([gx.ravel(), gy.ravel()], axis=1)
    centers.setflags(write=False)
    return GaussianMixture("grid", centers, float(std))


def nearest_mode(points: jax.Array, centers) -> tuple[jax.Array, jax.Array]:
    """Index of and Euclidean distance to the nearest center for each point.

    Args:
      points: ``[n, 2]``.
      centers: ``[k, 2]`` (e.g. ``mixture.centers``).

    Returns:
      ``(index [n] int32, distance [n] float32)``. A sample counts as "high quality" for
      the mode-collapse metric when ``distance < 3 * std`` (Srivastava et al. 2017).
    """
    points = jnp.asarray(points, jnp.float32)
    centers = jnp.asarray(centers, jnp.float32)
    d2 = jnp.sum((points[:, None, :] - centers[None, :, :]) ** 2, axis=-1)
    idx = jnp.argmin(d2, axis=1).astype(jnp.int32)
    return idx, jnp.sqrt(jnp.take_along_axis(d2, idx[:, None], axis=1)[:, 0])

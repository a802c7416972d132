"""scikit-learn's bundled 8x8 handwritten digits (1797 images, no download)."""

from __future__ import annotations

import functools

import numpy as np

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.data._common import check_fraction, split_arrays


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # pixel counts 0..16 -> [0, 1]
    y = bunch.target.astype(np.int32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_digits(
    *, test_fraction: float = 0.2, seed: int = 0, layout: str = "flat"
) -> dict:
    """Load scikit-learn's 8x8 digits with a fixed-seed train/test split.

    Args:
      test_fraction: fraction of the 1797 samples held out (0.2 -> 1438 train / 359 test).
      seed: seed of the ``numpy.random.default_rng`` shuffle before splitting.
      layout: ``"flat"`` -> x ``[n, 64]``; ``"image"`` -> x ``[n, 8, 8, 1]`` (NHWC).

    Returns:
      ``dict(train=(x, y), test=(x, y))``: x float32 in [0, 1] (pixel / 16), y int32 in 0..9.

    Example:
      >>> d = load_digits()
      >>> d["train"][0].shape, d["test"][0].shape
      ((1438, 64), (359, 64))

    References:
      Alpaydin & Kaynak (1998), Optical Recognition of Handwritten Digits (UCI).
    """
    test_fraction = check_fraction("test_fraction", test_fraction)
    seed = check_int("seed", seed, minimum=0)
    check_choice("layout", layout, ("flat", "image"))
    x, y = _raw_digits()
    if layout == "image":
        x = x.reshape(-1, 8, 8, 1)
    return split_arrays(x, y, test_fraction, seed)

"""MNIST-1D generated locally with the ``mnist1d`` package (never its download path)."""

from __future__ import annotations

import functools
import random

import numpy as np

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.data._common import check_fraction, to_split

SEQ_LENGTH = 40


@functools.lru_cache(maxsize=8)
def _generate(num_samples: int, seed: int, train_split: float):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    args.train_split = train_split
    # make_dataset reseeds the *global* numpy and ``random`` generators; restore them.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    out = tuple(np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test"))
    for a in out:
        a.setflags(write=False)
    return out


def load_mnist1d(
    *,
    num_samples: int = 5000,
    seed: int = 42,
    train_split: float = 0.8,
    layout: str = "flat",
) -> dict:
    """Generate MNIST-1D locally with ``mnist1d.data.make_dataset`` (cached in memory).

    The package's defaults (``seed=42``, ``num_samples=5000``, ``train_split=0.8``)
    reproduce the published dataset: 4000 train / 1000 test sequences of length 40.
    The global ``numpy.random`` / ``random`` states are restored after generation.

    Args:
      num_samples: total examples (``num_samples // 10`` per class; >= 10).
      seed: generator seed.
      train_split: fraction used for training.
      layout: ``"flat"`` -> x ``[n, 40]``; ``"sequence"`` -> x ``[n, 40, 1]`` (for RNNs).

    Returns:
      ``dict(train=(x, y), test=(x, y))``: x float32 (standardized over the whole
      generated set: mean ~0, std ~1), y int32 in 0..9.

    References:
      Greydanus & Kobak (2024), Scaling Down Deep Learning with MNIST-1D.
    """
    num_samples = check_int("num_samples", num_samples, minimum=10)
    seed = check_int("seed", seed, minimum=0)
    train_split = check_fraction("train_split", train_split)
    check_choice("layout", layout, ("flat", "sequence"))
    n = (num_samples // 10) * 10
    if int(n * train_split) < 1 or int(n * train_split) >= n:
        raise ValueError(
            f"train_split={train_split} leaves an empty train or test set for {n} samples"
        )
    x, y, xt, yt = _generate(num_samples, seed, train_split)
    if layout == "sequence":
        x, xt = x[..., None], xt[..., None]
    return to_split(x, y, xt, yt)

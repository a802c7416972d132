"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (idx gzip files, offline)."""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

from jaxopt_lab._validation import check_choice, check_int
from jaxopt_lab.data._common import to_split

DEFAULT_PATH = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "JAXOPT_LAB_FASHION_MNIST"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one (optionally gzipped) idx file into a uint8 array of its declared shape.

    The idx header is two zero bytes, a type byte (0x08 = uint8), the number of
    dimensions, then one big-endian uint32 per dimension.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file (header {raw[:4]!r})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header declares shape {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def resolve_path(path: str | os.PathLike | None = None) -> Path:
    """The Fashion-MNIST directory: ``path``, else ``$JAXOPT_LAB_FASHION_MNIST``, else
    ``/usr/share/datasets/fashion-mnist``. Raises FileNotFoundError naming the Debian
    package when a file is missing."""
    if path is None:
        path = os.environ.get(ENV_VAR) or DEFAULT_PATH
    path = Path(path)
    missing = [name for name in FILES.values() if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found in {str(path)!r} (missing {missing}). "
            "Install Debian's package with `apt-get install dataset-fashion-mnist` "
            f"(files go to {DEFAULT_PATH}), or pass path=... / set ${ENV_VAR} to a directory "
            f"holding {sorted(FILES.values())}."
        )
    return path


@functools.lru_cache(maxsize=2)
def _load_uint8(path: str) -> tuple[np.ndarray, ...]:
    p = Path(path)
    arrays = tuple(read_idx(p / FILES[k]) for k in
                   ("train_images", "train_labels", "test_images", "test_labels"))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def load_fashion_mnist(
    path: str | os.PathLike | None = None,
    *,
    layout: str = "image",
    num_train: int | None = None,
    num_test: int | None = None,
) -> dict:
    """Load Fashion-MNIST (60000 train / 10000 test) from local idx gzip files.

    The parsed uint8 arrays are cached in memory per directory (``functools.lru_cache``).

    Args:
      path: directory holding the four ``*-ubyte.gz`` files; default
        ``$JAXOPT_LAB_FASHION_MNIST`` or ``/usr/share/datasets/fashion-mnist``.
      layout: ``"image"`` -> x ``[n, 28, 28, 1]`` (NHWC); ``"flat"`` -> x ``[n, 784]``.
      num_train: keep only the first ``num_train`` training examples (default all).
      num_test: keep only the first ``num_test`` test examples (default all).

    Returns:
      ``dict(train=(x, y), test=(x, y))``: x float32 in [0, 1] (pixel / 255),
      y int32 in 0..9 (names in :data:`CLASSES`).

    Raises:
      FileNotFoundError: when the files are absent (names ``dataset-fashion-mnist``).

    References:
      Xiao, Rasul & Vollgraf (2017), Fashion-MNIST: a Novel Image Dataset for
      Benchmarking Machine Learning Algorithms.
    """
    check_choice("layout", layout, ("image", "flat"))
    if num_train is not None:
        num_train = check_int("num_train", num_train)
    if num_test is not None:
        num_test = check_int("num_test", num_test)
    root = resolve_path(path)
    xtr, ytr, xte, yte = _load_uint8(str(root.resolve()))
    xtr, ytr = xtr[:num_train], ytr[:num_train]
    xte, yte = xte[:num_test], yte[:num_test]
    shape = (28, 28, 1) if layout == "image" else (784,)

    def prep(x):
        return (x.astype(np.float32) * np.float32(1.0 / 255.0)).reshape(-1, *shape)

    return to_split(prep(xtr), ytr, prep(xte), yte)

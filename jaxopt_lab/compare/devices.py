"""Devices of a sweep: the 1-D ``"seeds"`` mesh, host <-> device transfers, chunk layout.

One code path for one CPU, several GPUs, forced CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``) and several hosts under
``jax.distributed``: the mesh spans ``jax.devices()``, every process feeds only its own
shards (``make_array_from_callback``) and gathers every chunk's outputs.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from jaxopt_lab._validation import check_int


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def use_cpu_cores(cores: int | None = None) -> int | None:
    """Give a CPU sweep every core: ``cores`` CPU devices (default: :func:`cpu_cores`),
    each running its shard of the seed axis on one thread (Eigen's intra-op threads off).

    A sweep's seeds are independent, so one XLA stream per core beats one stream whose
    matrix products are split over the cores: measured on a 2-core x86 machine, the
    8-Gaussian GAN's 16 seeds ran 1.96x faster and VEEGAN's networks 1.54x
    (``benchmarks/gan.py``, ``benchmarks/RESULTS.md``). Results do not depend on the device
    count (seed ``i``'s key is ``fold_in(key, i)``).

    Must run before JAX initializes its backends (the command line calls it first). Leaves
    everything as it is, returning None, when that has happened, when ``cores`` is 1, or
    when ``XLA_FLAGS`` already sets the CPU device count (the user's choice wins). Affects
    only the CPU backend: on a GPU or TPU machine the accelerator stays the default device.

    Returns:
      The CPU device count set, or None when nothing was changed.

    Raises:
      TypeError / ValueError: ``cores`` is not an integer >= 1 (``check_int``).
    """
    n = cpu_cores() if cores is None else check_int("cores", cores)
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1 or "xla_force_host_platform_device_count" in flags:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # backends already initialized: too late to change
        return None
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return n


def seed_mesh() -> Mesh:
    """A 1-D mesh named ``"seeds"`` over every device of every process."""
    return Mesh(np.asarray(jax.devices()), ("seeds",))


def put(mesh: Mesh, tree, spec):
    """Place a pytree of host arrays on ``mesh``, every leaf with partition ``spec``, in one
    batched transfer (multi-process safe: each process feeds only its own shards)."""
    sharding = NamedSharding(mesh, spec)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(arr):
        arr = np.asarray(arr)
        return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])

    return jax.tree.map(one, tree)


def fetch(tree):
    """A pytree of device arrays as numpy (one batched transfer), all-gathered across
    processes when needed."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        def one(x):
            if x is None or x.is_fully_addressable:
                return np.asarray(x)
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))

        return jax.tree.map(one, tree)
    return jax.device_get(tree)


def chunk_layout(chunk_size: int, n_dev: int, batch_size: int | None) -> tuple[int, int]:
    """``(padded chunk, micro-batch)``: a chunk of seeds is padded to ``n_dev * m * micro``
    seeds, each device running ``m`` micro-batches of ``micro`` seeds one after another
    (``batch_size`` seeds; default: the whole per-device share at once)."""
    per_dev = -(-chunk_size // n_dev)
    micro = max(1, min(batch_size or per_dev, per_dev))
    m = -(-per_dev // micro)
    return n_dev * m * micro, micro


def platform() -> str:
    """Platform of the default backend (``cpu``, ``gpu``, ``tpu``)."""
    return jax.devices()[0].platform
